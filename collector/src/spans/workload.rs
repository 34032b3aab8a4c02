//! Who a span belongs to: workload identity from resource and Istio/Linkerd attributes,
//! and peer names for sides that emitted no span.

use eastwest_model::{CompactString, Workload};

use super::attributes::{Attrs, Key, truncate};
use super::text::{before_any, has_byte, rsplit_once_byte, split_byte, split_once_byte};

/// Service names generic proxies report for every workload; identity then comes from
/// Kubernetes resource attributes.
const GENERIC_PROXY_NAMES: &[&str] = &["linkerd-proxy", "envoy", "istio-proxy", "unknown_service"];

/// The workload that emitted the span, and its version (never part of identity).
pub fn own_workload(attrs: &Attrs) -> (Workload, Option<CompactString>) {
    let service_name = attrs.resource_str(&[Key::ServiceName]).unwrap_or_default();
    let generic = service_name.is_empty()
        || GENERIC_PROXY_NAMES.contains(&&*service_name)
        || service_name.starts_with("unknown_service");
    let istio_proxy = attrs.has(Key::UpstreamCluster) || attrs.has(Key::NodeId);

    let mut service = attrs.str(&[Key::IstioCanonicalService]);
    let mut namespace = attrs.str(&[
        Key::IstioNamespace,
        Key::ServiceNamespace,
        Key::K8sNamespaceName,
    ]);
    if service.is_none() && generic {
        service = attrs.resource_str(&[
            Key::K8sDeploymentName,
            Key::K8sStatefulsetName,
            Key::K8sDaemonsetName,
            Key::App,
        ]);
    }
    if service.is_none() && istio_proxy {
        // Istio sidecars name themselves `service.namespace`.
        if let Some((svc, ns)) = split_once_byte(&service_name, b'.')
            && !svc.is_empty()
            && !ns.is_empty()
            && !has_byte(ns, b'.')
        {
            service = Some(svc.to_string().into());
            namespace = namespace.or_else(|| Some(ns.to_string().into()));
        }
    }
    let service = service.unwrap_or_else(|| {
        if service_name.is_empty() {
            "unknown".into()
        } else {
            service_name
        }
    });
    let version = attrs.str(&[
        Key::IstioCanonicalRevision,
        Key::ServiceVersion,
        Key::K8sDeploymentRevision,
    ]);
    (
        Workload {
            service: truncate(&service),
            namespace: namespace.map(CompactString::from),
            principal: None,
        },
        version.map(CompactString::from),
    )
}

/// An Istio `upstream_cluster` (`outbound|9080|v3|ratings.bookinfo.svc.cluster.local`).
#[derive(Debug, Clone, PartialEq)]
pub struct IstioCluster<'a> {
    pub inbound: bool,
    pub port: Option<u16>,
    pub service: Option<CompactString>,
    pub namespace: Option<CompactString>,
    /// Borrowed: a cluster host is rarely kept (only as a destination address).
    pub host: Option<&'a str>,
}

pub fn parse_upstream_cluster(cluster: &str) -> Option<IstioCluster<'_>> {
    let mut parts = split_byte(cluster, b'|');
    let direction = parts.next()?;
    let inbound = match direction {
        "inbound" => true,
        "outbound" => false,
        _ => return None,
    };
    let port = parts.next().and_then(|p| p.parse().ok());
    let _subset = parts.next();
    let host = parts.next().filter(|h| !h.is_empty());
    let (service, namespace) = match host.map(split_k8s_host) {
        Some((s, n)) => (Some(s), n),
        None => (None, None),
    };
    Some(IstioCluster {
        inbound,
        port,
        service,
        namespace,
        host,
    })
}

/// `ratings.bookinfo.svc.cluster.local` → (`ratings`, `bookinfo`); other hosts → (host, None).
pub fn split_k8s_host(host: &str) -> (CompactString, Option<CompactString>) {
    let host = before_any(host, b":");
    let mut labels = split_byte(host, b'.');
    if let (Some(service), Some(namespace), Some("svc")) =
        (labels.next(), labels.next(), labels.next())
    {
        return (truncate(service), Some(truncate(namespace)));
    }
    (truncate(host), None)
}

/// `spiffe://td/ns/NS/sa/SA` (Istio, SPIRE) or Linkerd's
/// `SA.NS.serviceaccount.identity.linkerd.TD` → (SA, NS).
pub fn spiffe_service_account(principal: &str) -> Option<(CompactString, CompactString)> {
    if let Some(rest) = principal.strip_prefix("spiffe://") {
        let mut parts = rest.split('/').skip(1);
        return match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("ns"), Some(ns), Some("sa"), Some(sa)) if !ns.is_empty() && !sa.is_empty() => {
                Some((sa.into(), ns.into()))
            }
            _ => None,
        };
    }
    let (account, rest) = principal.split_once(".serviceaccount.identity.")?;
    let (sa, ns) = account.split_once('.')?;
    (!sa.is_empty() && !ns.is_empty() && !ns.contains('.') && !rest.is_empty())
        .then(|| (sa.into(), ns.into()))
}

/// `host:port` from a URL's authority.
pub fn url_authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = before_any(rest, b"/?#");
    let authority = rsplit_once_byte(authority, b'@')
        .map(|(_, a)| a)
        .unwrap_or(authority);
    (!authority.is_empty()).then_some(authority)
}

/// Path part of a URL (`/a/b?x` from `http://h/a/b?x`).
pub fn url_path(url: &str) -> &str {
    match url.split_once("://") {
        Some((_, rest)) => split_once_byte(rest, b'/').map_or("/", |(host, _)| &rest[host.len()..]),
        None => url,
    }
}

#[cfg(test)]
mod tests {
    use super::super::attributes::test_support::kv;
    use super::*;

    #[test]
    fn istio_sidecar_names_split_into_service_and_namespace() {
        let res = [kv("service.name", "reviews.bookinfo")];
        let span = [
            kv("upstream_cluster", "inbound|9080||"),
            kv("istio.canonical_revision", "v3"),
        ];
        let (w, v) = own_workload(&Attrs::new(&span, &res));
        assert_eq!(w, Workload::new("reviews").in_namespace("bookinfo"));
        assert_eq!(v.as_deref(), Some("v3"));
    }

    #[test]
    fn canonical_service_wins_and_plain_sdk_names_stay_whole() {
        let span = [
            kv("istio.canonical_service", "ratings"),
            kv("istio.namespace", "bookinfo"),
        ];
        let res = [kv("service.name", "ratings-v1.bookinfo")];
        assert_eq!(
            own_workload(&Attrs::new(&span, &res)).0,
            Workload::new("ratings").in_namespace("bookinfo")
        );
        let res = [
            kv("service.name", "com.example.cart"),
            kv("service.namespace", "shop"),
        ];
        assert_eq!(
            own_workload(&Attrs::new(&[], &res)).0,
            Workload::new("com.example.cart").in_namespace("shop")
        );
    }

    #[test]
    fn linkerd_generic_proxy_name_uses_kubernetes_attributes() {
        let res = [
            kv("service.name", "linkerd-proxy"),
            kv("k8s.deployment.name", "web"),
            kv("k8s.namespace.name", "emojivoto"),
            kv("k8s.pod.name", "web-5f86686c4d-58p7k"),
        ];
        assert_eq!(
            own_workload(&Attrs::new(&[], &res)).0,
            Workload::new("web").in_namespace("emojivoto")
        );
    }

    #[test]
    fn upstream_clusters_parse() {
        let c =
            parse_upstream_cluster("outbound|9080|v3|ratings.bookinfo.svc.cluster.local").unwrap();
        assert!(!c.inbound);
        assert_eq!(c.port, Some(9080));
        assert_eq!(c.service.as_deref(), Some("ratings"));
        assert_eq!(c.namespace.as_deref(), Some("bookinfo"));
        assert!(parse_upstream_cluster("inbound|9080||").unwrap().inbound);
        assert_eq!(parse_upstream_cluster("PassthroughCluster"), None);
    }

    #[test]
    fn spiffe_ids_and_urls() {
        assert_eq!(
            spiffe_service_account("spiffe://cluster.local/ns/shop/sa/cart"),
            Some(("cart".into(), "shop".into()))
        );
        assert_eq!(spiffe_service_account("spiffe://x/y"), None);
        assert_eq!(
            spiffe_service_account("web.emojivoto.serviceaccount.identity.linkerd.cluster.local"),
            Some(("web".into(), "emojivoto".into()))
        );
        assert_eq!(
            spiffe_service_account("web.serviceaccount.identity.x"),
            None
        );
        assert_eq!(
            url_authority("http://169.254.169.254/latest/meta-data"),
            Some("169.254.169.254")
        );
        assert_eq!(url_path("http://h:80/a/1?x=2"), "/a/1?x=2");
    }
}
