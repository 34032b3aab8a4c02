//! Turning telemetry-minted names into Kubernetes names, label values, principals and
//! paths. Every name here is attacker-controlled text: a value that cannot be written
//! exactly (a label value with a `*`, a principal with a wildcard, a path segment with
//! a template operator) is refused, never widened. Quoting is the YAML serialiser's job.

use std::sync::LazyLock;

use eastwest_model::Protocol;
use regex::Regex;

/// The pod label policies select workloads by (`app: <service>`, as Istio's canonical
/// service and most charts set it).
pub const APP_LABEL: &str = "app";
/// The label Kubernetes sets on every namespace to its own name.
pub const NAMESPACE_LABEL: &str = "kubernetes.io/metadata.name";
/// Cilium's label for a pod's namespace.
pub const CILIUM_NAMESPACE_LABEL: &str = "k8s:io.kubernetes.pod.namespace";
/// The route the collector reports once an edge has more distinct routes than
/// `[normalizer] max_routes_per_edge` (eastwest-collector's `OVERFLOW_ROUTE`): the call's
/// real path is unknown, so it is no path at all here.
pub const OVERFLOW_ROUTE: &str = "{overflow}";

/// Whether a call's route is the collector's overflow stand-in (an HTTP or gRPC call
/// whose path is unknown).
pub fn is_overflow(protocol: Protocol, route: &str) -> bool {
    matches!(protocol, Protocol::Http | Protocol::Grpc) && route == OVERFLOW_ROUTE
}

static LABEL_VALUE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$").unwrap());
static DNS_LABEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$").unwrap());
static METHOD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Z][A-Z0-9_-]{0,31}$").unwrap());
static PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\{[A-Za-z_][A-Za-z0-9_.-]{0,63}\}$").unwrap());

/// A valid label value, exactly as written.
pub fn label_value(s: &str) -> Option<&str> {
    LABEL_VALUE.is_match(s).then_some(s)
}

/// A valid namespace name.
pub fn namespace(s: &str) -> Option<&str> {
    DNS_LABEL.is_match(s).then_some(s)
}

/// An HTTP method token as policies may name it (upper case letters, digits, `_`, `-`).
pub fn method(s: &str) -> Option<&str> {
    METHOD.is_match(s).then_some(s)
}

/// A SPIFFE id as Istio writes principals (`td/ns/x/sa/y`), refused when it holds a
/// character Istio would read as a wildcard or that cannot be in a URI.
pub fn istio_principal(spiffe: &str) -> Option<String> {
    let p = spiffe.strip_prefix("spiffe://")?;
    (!p.is_empty() && p.chars().all(|c| c.is_ascii_graphic() && c != '*')).then(|| p.to_owned())
}

/// `(namespace, service account)` of a Kubernetes SPIFFE id `spiffe://td/ns/NS/sa/SA`.
pub fn spiffe_account(spiffe: &str) -> Option<(&str, &str)> {
    let rest = spiffe.strip_prefix("spiffe://")?;
    let (_, path) = rest.split_once('/')?;
    let mut parts = path.split('/');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("ns"), Some(ns), Some("sa"), Some(sa), None) => Some((namespace(ns)?, dns_name(sa)?)),
        _ => None,
    }
}

fn dns_name(s: &str) -> Option<&str> {
    (s.len() <= 253 && s.split('.').all(|l| DNS_LABEL.is_match(l))).then_some(s)
}

/// One segment of a route as a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    /// A placeholder (`{id}`): any one segment.
    Any,
}

/// A route as an HTTP path: `/`-separated segments, placeholders as [`Segment::Any`].
/// gRPC routes (`pkg.Service/Method`) get their leading slash. `None` for anything that
/// is not a plain absolute path (query, fragment, spaces, control characters).
pub fn path_segments(protocol: Protocol, route: &str) -> Option<Vec<Segment>> {
    // `/{overflow}` would read as a one-segment template for gRPC.
    if route == OVERFLOW_ROUTE {
        return None;
    }
    let path = match protocol {
        Protocol::Grpc if !route.starts_with('/') => format!("/{route}"),
        Protocol::Http | Protocol::Grpc => route.to_owned(),
        _ => return None,
    };
    if !path.starts_with('/')
        || path.len() > 2048
        || path
            .chars()
            .any(|c| !c.is_ascii_graphic() || c == '?' || c == '#')
    {
        return None;
    }
    Some(
        path[1..]
            .split('/')
            .map(|s| {
                if PLACEHOLDER.is_match(s) {
                    Segment::Any
                } else {
                    Segment::Literal(s.to_owned())
                }
            })
            .collect(),
    )
}

/// The Istio `paths` entry for a route: exact, or a path template with `{*}` for each
/// placeholder. `None` when a literal segment holds `*`, `{` or `}`, which Istio would
/// read as a wildcard or template operator.
pub fn istio_path(protocol: Protocol, route: &str) -> Option<String> {
    let segs = path_segments(protocol, route)?;
    let mut out = String::new();
    for s in segs {
        out.push('/');
        match s {
            Segment::Any => out.push_str("{*}"),
            Segment::Literal(l) if l.contains(['*', '{', '}']) => return None,
            Segment::Literal(l) => out.push_str(&l),
        }
    }
    Some(out)
}

/// An anchored regular expression matching the route's paths: literals escaped, each
/// placeholder one non-empty segment.
pub fn path_regex(protocol: Protocol, route: &str) -> Option<String> {
    let segs = path_segments(protocol, route)?;
    let mut out = String::from("^");
    for s in segs {
        out.push('/');
        match s {
            Segment::Any => out.push_str("[^/]+"),
            Segment::Literal(l) => out.push_str(&regex::escape(&l)),
        }
    }
    out.push('$');
    Some(out)
}

/// The route as a literal path (gRPC routes get their leading slash).
pub fn plain_path(protocol: Protocol, route: &str) -> Option<String> {
    path_segments(protocol, route)?;
    Some(match protocol {
        Protocol::Grpc if !route.starts_with('/') => format!("/{route}"),
        _ => route.to_owned(),
    })
}

/// Whether a route has placeholders (then it needs a template or a regex).
pub fn is_template(protocol: Protocol, route: &str) -> bool {
    path_segments(protocol, route).is_some_and(|s| s.contains(&Segment::Any))
}

/// A Kubernetes object name (DNS subdomain) from parts: lower-cased, anything else
/// replaced by `-`, and a hash of the parts when that changed or shortened them, so
/// two workloads never share a name.
pub fn object_name(parts: &[&str]) -> String {
    let joined = parts.join("-");
    let mut clean: String = joined
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    let changed = clean != joined || clean.len() > 56;
    clean.truncate(56);
    let mut clean = clean.trim_matches('-').to_owned();
    if changed {
        clean.push_str(&format!("-{:06x}", fnv(&joined) & 0xff_ffff));
    }
    if clean.is_empty() {
        "eastwest".into()
    } else {
        clean
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_become_istio_paths_without_new_wildcards() {
        let p = |r| istio_path(Protocol::Http, r);
        assert_eq!(p("/users/{id}").as_deref(), Some("/users/{*}"));
        assert_eq!(p("/a/{id}/b/{uuid}").as_deref(), Some("/a/{*}/b/{*}"));
        assert_eq!(p("/health").as_deref(), Some("/health"));
        assert_eq!(p("/admin*"), None);
        assert_eq!(p("/a/{**}"), None);
        assert_eq!(p("/a/{id"), None);
        assert_eq!(p("/a b"), None);
        assert_eq!(p("/a?x=1"), None);
        assert_eq!(p("relative"), None);
        assert_eq!(
            istio_path(Protocol::Grpc, "hipstershop.CartService/GetCart").as_deref(),
            Some("/hipstershop.CartService/GetCart")
        );
        assert_eq!(istio_path(Protocol::Db, "/users"), None);
        // The overflow stand-in is no path, for gRPC as for HTTP.
        assert_eq!(istio_path(Protocol::Grpc, OVERFLOW_ROUTE), None);
        assert_eq!(path_regex(Protocol::Http, OVERFLOW_ROUTE), None);
        assert!(is_overflow(Protocol::Grpc, OVERFLOW_ROUTE));
        assert!(!is_overflow(Protocol::Tcp, OVERFLOW_ROUTE));
    }

    #[test]
    fn regexes_escape_literals() {
        let r = path_regex(Protocol::Http, "/a.b/{id}/(x)").unwrap();
        assert_eq!(r, r"^/a\.b/[^/]+/\(x\)$");
        let re = Regex::new(&r).unwrap();
        assert!(re.is_match("/a.b/42/(x)"));
        assert!(!re.is_match("/aXb/42/(x)"));
        assert!(!re.is_match("/a.b/4/2/(x)"));
    }

    #[test]
    fn names_are_refused_rather_than_widened() {
        assert_eq!(label_value("cart"), Some("cart"));
        assert_eq!(label_value("*"), None);
        assert_eq!(label_value(""), None);
        assert_eq!(label_value("a b"), None);
        assert_eq!(namespace("Shop"), None);
        assert_eq!(method("GET"), Some("GET"));
        assert_eq!(method("GET|POST"), None);
        assert_eq!(method(".*"), None);
        assert_eq!(
            istio_principal("spiffe://cluster.local/ns/shop/sa/cart").as_deref(),
            Some("cluster.local/ns/shop/sa/cart")
        );
        assert_eq!(istio_principal("spiffe://cluster.local/ns/shop/sa/*"), None);
        assert_eq!(istio_principal("cluster.local/ns/shop/sa/cart"), None);
        assert_eq!(
            spiffe_account("spiffe://cluster.local/ns/shop/sa/cart"),
            Some(("shop", "cart"))
        );
        assert_eq!(
            spiffe_account("spiffe://cluster.local/ns/shop/sa/cart/x"),
            None
        );
    }

    #[test]
    fn object_names_are_valid_and_distinct() {
        assert_eq!(object_name(&["eastwest", "cart"]), "eastwest-cart");
        let a = object_name(&["eastwest", "Cart_Service"]);
        let b = object_name(&["eastwest", "cart-service"]);
        assert_ne!(a, b);
        assert!(DNS_LABEL.is_match(&a), "{a}");
        let long = object_name(&["x".repeat(300).as_str()]);
        assert!(long.len() <= 63 && DNS_LABEL.is_match(&long), "{long}");
    }
}
