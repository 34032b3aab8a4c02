//! Peer names → the workloads they address. A client span whose callee emitted no span
//! names that callee only as its caller addressed it: a Kubernetes short name
//! (`foo-service`, `foo-service.shop`, `foo-service.shop.svc[.cluster.local]`, with or
//! without a port), `peer.service`, a pod IP. The callee's own spans name it `foo-service`
//! in `shop`; without resolution the two are two workloads, and a known call whose server
//! span is missing (a timeout) reads as a new edge.
//!
//! Resolution, first hit wins:
//! 1. the workload whose own spans carry that service name and namespace (a bare name
//!    takes the caller's namespace, as Kubernetes DNS does; `svc.ns` is tried as service
//!    `svc` in `ns`); a name with no namespace in a mesh without namespaces resolves to the
//!    one workload of that name;
//! 2. the workload that answered when a caller last used that name and the callee's span
//!    was there (learned from pairs: a Service name that differs from the workload name);
//! 3. for an IP, the workload whose spans carry that `k8s.pod.ip`.
//!
//! Names of workloads' own spans win over pair-learned aliases, so no pair can redirect a
//! name some workload calls itself. What resolves nowhere stays a distinct peer. Each
//! table is bounded (`max_edges` entries); when full, the half used least recently goes.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

use eastwest_model::Workload;

use super::Hasher;

/// A bounded map whose least recently used half is evicted when it is full.
struct Recent<K, V> {
    map: HashMap<K, (V, u64), Hasher>,
    max: usize,
}

impl<K: Eq + Hash, V> Recent<K, V> {
    fn new(max: usize) -> Self {
        Self {
            map: HashMap::default(),
            max: max.max(2),
        }
    }

    fn insert(&mut self, key: K, value: V, seq: u64) {
        if !self.map.contains_key(&key) && self.map.len() >= self.max {
            let mut seen: Vec<u64> = self.map.values().map(|(_, s)| *s).collect();
            let middle = seen.len() / 2;
            let cut = *seen.select_nth_unstable(middle).1;
            self.map.retain(|_, (_, s)| *s > cut);
        }
        self.map.insert(key, (value, seq));
    }

    /// Marks `key` used now; false when it is not there.
    fn touch(&mut self, key: &K, seq: u64) -> bool {
        match self.map.get_mut(key) {
            Some(entry) => {
                entry.1 = seq;
                true
            }
            None => false,
        }
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key).map(|(v, _)| v)
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// (lower-case service, lower-case namespace or empty).
type NameKey = (String, String);

fn name_key(service: &str, namespace: Option<&str>) -> NameKey {
    (
        service.to_ascii_lowercase(),
        namespace.unwrap_or("").to_ascii_lowercase(),
    )
}

pub struct PeerNames {
    /// Workloads by the names their own spans carry.
    own: Recent<NameKey, Workload>,
    /// How many known workloads carry each service name (any namespace), and the last:
    /// resolves a bare name when the caller's namespace is unknown.
    by_service: Recent<String, (u32, Workload)>,
    /// Names callers used for a workload whose span answered.
    aliases: Recent<NameKey, Workload>,
    ips: Recent<IpAddr, Workload>,
    seq: u64,
}

impl PeerNames {
    pub fn new(max_entries: usize) -> Self {
        Self {
            own: Recent::new(max_entries),
            by_service: Recent::new(max_entries),
            aliases: Recent::new(max_entries),
            ips: Recent::new(max_entries),
            seq: 0,
        }
    }

    /// Entries held across the tables.
    pub fn len(&self) -> usize {
        self.own.len() + self.by_service.len() + self.aliases.len() + self.ips.len()
    }

    /// A span emitted by `workload` (from the pod at `pod_ip`, if known).
    pub fn learn_own(&mut self, workload: &Workload, pod_ip: Option<&str>) {
        if workload.service == "unknown" {
            return;
        }
        self.seq += 1;
        let key = name_key(&workload.service, workload.namespace.as_deref());
        let plain = || Workload {
            principal: None,
            ..workload.clone()
        };
        if self.own.touch(&key, self.seq) {
            self.by_service.touch(&key.0, self.seq);
        } else {
            let count = self
                .by_service
                .get(&key.0)
                .map_or(1, |(n, _)| n.saturating_add(1));
            self.by_service
                .insert(key.0.clone(), (count, plain()), self.seq);
            self.own.insert(key, plain(), self.seq);
        }
        if let Some(ip) = pod_ip.and_then(|ip| ip.parse::<IpAddr>().ok())
            && !self.ips.get(&ip).is_some_and(|w| same_name(w, workload))
        {
            self.ips.insert(ip, plain(), self.seq);
        }
    }

    /// A caller in `caller_ns` named its callee `peer`, and the callee's own span says it
    /// is `callee`: later calls by that name reach `callee` too.
    pub fn learn_alias(&mut self, peer: &Workload, caller_ns: Option<&str>, callee: &Workload) {
        // The common case, checked without allocating: the caller used the callee's name.
        if peer.service.eq_ignore_ascii_case(&callee.service)
            && peer.namespace.as_deref().is_none_or(|ns| {
                callee
                    .namespace
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(ns))
            })
        {
            return;
        }
        if callee.service == "unknown"
            || peer.service == "unknown"
            || self.resolve_own(peer, caller_ns).is_some()
        {
            return;
        }
        let key = name_key(&peer.service, peer.namespace.as_deref().or(caller_ns));
        if self.aliases.get(&key).is_some_and(|w| same_name(w, callee)) {
            return;
        }
        self.seq += 1;
        let plain = Workload {
            principal: None,
            ..callee.clone()
        };
        self.aliases.insert(key, plain, self.seq);
    }

    /// The workload `peer` (a name from a caller in `caller_ns`) addresses, if known.
    pub fn resolve(&self, peer: &Workload, caller_ns: Option<&str>) -> Option<Workload> {
        if peer.service == "unknown" {
            return None;
        }
        if let Some(w) = self.resolve_own(peer, caller_ns) {
            return Some(w.clone());
        }
        let key = name_key(&peer.service, peer.namespace.as_deref().or(caller_ns));
        if let Some(w) = self.aliases.get(&key) {
            return Some(w.clone());
        }
        let ip = peer.service.parse::<IpAddr>().ok()?;
        self.ips.get(&ip).cloned()
    }

    /// The workload a pod IP belongs to, if its spans said.
    pub fn resolve_ip(&self, ip: &str) -> Option<Workload> {
        let ip = ip.parse::<IpAddr>().ok()?;
        self.ips.get(&ip).cloned()
    }

    fn resolve_own(&self, peer: &Workload, caller_ns: Option<&str>) -> Option<&Workload> {
        let service = peer.service.as_str();
        if let Some(ns) = peer.namespace.as_deref() {
            return self
                .own
                .get(&name_key(service, Some(ns)))
                // The callee's spans carry no namespace: its name alone identifies it.
                .or_else(|| self.own.get(&name_key(service, None)));
        }
        // `svc.ns`: a Service addressed with its namespace.
        if let Some((svc, ns)) = service.split_once('.')
            && !ns.contains('.')
            && let Some(w) = self.own.get(&name_key(svc, Some(ns)))
        {
            return Some(w);
        }
        if let Some(w) = self.own.get(&name_key(service, caller_ns)) {
            return Some(w);
        }
        if caller_ns.is_some() {
            return self.own.get(&name_key(service, None));
        }
        // The caller's namespace is unknown: a name only one workload carries.
        match self.by_service.get(&service.to_ascii_lowercase()) {
            Some((1, w)) => Some(w),
            _ => None,
        }
    }
}

fn same_name(a: &Workload, b: &Workload) -> bool {
    a.service == b.service && a.namespace == b.namespace
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn foo() -> Workload {
        Workload::new("foo-service").in_namespace("shop")
    }

    fn peer_from_host(host: &str) -> Workload {
        let (service, namespace) = super::super::workload::split_k8s_host(host);
        Workload {
            service,
            namespace,
            principal: None,
        }
    }

    #[test]
    fn short_kubernetes_names_resolve_to_the_workload_of_the_namespace() {
        let mut names = PeerNames::new(100);
        names.learn_own(&foo(), None);
        names.learn_own(&Workload::new("foo-service").in_namespace("prod"), None);
        for host in [
            "foo-service",
            "foo-service:8080",
            "foo-service.shop",
            "foo-service.shop:8080",
            "foo-service.shop.svc",
            "foo-service.shop.svc.cluster.local",
            "foo-service.shop.svc.cluster.local:8080",
            "FOO-SERVICE.shop.svc.cluster.local.",
        ] {
            assert_eq!(
                names.resolve(&peer_from_host(host), Some("shop")),
                Some(foo()),
                "{host}"
            );
        }
        assert_eq!(
            names.resolve(&peer_from_host("foo-service"), Some("prod")),
            Some(Workload::new("foo-service").in_namespace("prod")),
            "a bare name stays in the caller's namespace"
        );
        assert_eq!(
            names.resolve(
                &peer_from_host("foo-service.dev.svc.cluster.local"),
                Some("shop")
            ),
            None,
            "another namespace's service is not this one"
        );
        assert_eq!(
            names.resolve(&peer_from_host("foo-service"), None),
            None,
            "two workloads carry the name and the caller's namespace is unknown"
        );
        assert_eq!(names.resolve(&peer_from_host("redis"), Some("shop")), None);
        assert_eq!(
            names.resolve(&peer_from_host("api.stripe.com"), Some("shop")),
            None
        );
    }

    #[test]
    fn unique_names_resolve_without_namespaces() {
        let mut names = PeerNames::new(100);
        names.learn_own(&Workload::new("cart"), None);
        assert_eq!(
            names.resolve(&Workload::new("cart"), Some("shop")),
            Some(Workload::new("cart"))
        );
        assert_eq!(
            names.resolve(&Workload::new("cart").in_namespace("shop"), None),
            Some(Workload::new("cart"))
        );
        names.learn_own(&foo(), None);
        assert_eq!(
            names.resolve(&Workload::new("foo-service"), None),
            Some(foo())
        );
    }

    #[test]
    fn aliases_come_from_pairs_and_never_override_own_names() {
        let mut names = PeerNames::new(100);
        let reviews = Workload::new("reviews-v2").in_namespace("shop");
        names.learn_own(&reviews, None);
        names.learn_own(&foo(), None);
        names.learn_alias(&Workload::new("reviews"), Some("shop"), &reviews);
        assert_eq!(
            names.resolve(&Workload::new("reviews"), Some("shop")),
            Some(reviews.clone())
        );
        // A forged pair cannot make `foo-service` mean something else.
        names.learn_alias(&Workload::new("foo-service"), Some("shop"), &reviews);
        assert_eq!(
            names.resolve(&Workload::new("foo-service"), Some("shop")),
            Some(foo())
        );
    }

    #[test]
    fn pod_ips_resolve_to_their_workload() {
        let mut names = PeerNames::new(100);
        names.learn_own(&foo(), Some("10.1.2.3"));
        assert_eq!(
            names.resolve(&Workload::new("10.1.2.3"), Some("shop")),
            Some(foo())
        );
        assert_eq!(names.resolve_ip("10.1.2.3"), Some(foo()));
        assert_eq!(names.resolve_ip("10.1.2.4"), None);
    }

    #[test]
    fn tables_stay_bounded() {
        let mut names = PeerNames::new(8);
        for i in 0..100 {
            names.learn_own(&Workload::new(format!("w{i}")).in_namespace("ns"), None);
            assert!(names.len() <= 4 * 8);
        }
        assert_eq!(
            names.resolve(&Workload::new("w99"), Some("ns")),
            Some(Workload::new("w99").in_namespace("ns"))
        );
    }

    proptest! {
        /// Every way a caller in the callee's namespace can write a Kubernetes name
        /// resolves to the workload the callee's own spans name; a caller elsewhere
        /// reaches it with the namespace spelled out, and a bare name from elsewhere
        /// does not.
        #[test]
        fn every_spelling_of_a_known_name_resolves(
            service in "[a-z][a-z0-9-]{0,12}",
            ns in "[a-z][a-z0-9]{0,8}",
            other_ns in "[a-z][a-z0-9]{0,8}",
            form in 0usize..4,
            port in proptest::option::of(1u16..65535),
            others in proptest::collection::vec(("[a-z]{1,6}", "[a-z]{1,6}"), 0..20),
        ) {
            prop_assume!(ns != other_ns);
            let own = Workload::new(service.clone()).in_namespace(ns.clone());
            let mut names = PeerNames::new(1000);
            for (s, n) in &others {
                names.learn_own(&Workload::new(s.clone()).in_namespace(n.clone()), None);
            }
            names.learn_own(&own, None);
            let mut host = match form {
                0 => service.clone(),
                1 => format!("{service}.{ns}"),
                2 => format!("{service}.{ns}.svc"),
                _ => format!("{service}.{ns}.svc.cluster.local"),
            };
            if let Some(p) = port {
                host.push_str(&format!(":{p}"));
            }
            let peer = peer_from_host(&host);
            prop_assert_eq!(names.resolve(&peer, Some(&ns)), Some(own.clone()));
            if form > 0 {
                prop_assert_eq!(names.resolve(&peer, Some(&other_ns)), Some(own.clone()));
            } else if !others.iter().any(|(s, n)| *s == service && *n == other_ns) {
                prop_assert_eq!(names.resolve(&peer, Some(&other_ns)), None);
            }
        }
    }
}
