//! The attribute keys span reading looks up, as an enum: a span's attributes are
//! indexed by key once (one pass), so each of the many lookups across conventions is an
//! array read instead of a scan of every attribute.

macro_rules! attribute_keys {
    ($($name:ident = $key:literal,)*) => {
        /// An attribute key of some semantic-convention version, Istio or Linkerd.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Key {
            $($name,)*
        }

        impl Key {
            pub const COUNT: usize = [$($key,)*].len();
            #[cfg(test)]
            pub const ALL: [Key; Key::COUNT] = [$(Key::$name,)*];

            #[cfg(test)]
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Key::$name => $key,)*
                }
            }

            /// The key named `name`, if span reading ever looks it up.
            pub fn of(name: &str) -> Option<Key> {
                Key::of_bytes(name.as_bytes())
            }

            /// [`Key::of`] for a name still in wire bytes: every key is ASCII, so bytes
            /// that name one are valid UTF-8 without checking them.
            pub fn of_bytes(name: &[u8]) -> Option<Key> {
                const NAMES: [&[u8]; Key::COUNT] = [$($key.as_bytes(),)*];
                const KEYS: [Key; Key::COUNT] = [$(Key::$name,)*];
                // Built by the compiler: a full bucket fails the build, and a lookup
                // reads a table that is there from the start.
                static TABLE: BucketTable = BucketTable::new(&NAMES);
                TABLE.find(name).map(|i| KEYS[i])
            }
        }
    };
}

/// Key names by length and two of their bytes: a name is compared with at most
/// [`BUCKET_WIDTH`] candidates, chosen without hashing it (span reading looks up every
/// attribute key of every span, and most are ones it ignores). A name's cost is bounded
/// whatever its bytes: one bucket, a few comparisons.
struct BucketTable {
    names: &'static [&'static [u8]],
    buckets: [[u8; BUCKET_WIDTH]; BUCKETS],
}

const BUCKET_WIDTH: usize = 4;
const NO_KEY: u8 = u8::MAX;
/// Longest name a bucket exists for: longer names are no key.
const MAX_NAME: usize = 63;
const BYTE_BUCKETS: usize = 16;
const BUCKETS: usize = (MAX_NAME + 1) * BYTE_BUCKETS;

impl BucketTable {
    const fn bucket(name: &[u8]) -> Option<usize> {
        let len = name.len();
        if len == 0 || len > MAX_NAME {
            return None;
        }
        let mixed = (name[len - 1] ^ name[len / 2].rotate_left(2)) as usize;
        Some(len * BYTE_BUCKETS + mixed % BYTE_BUCKETS)
    }

    const fn new(names: &'static [&'static [u8]]) -> Self {
        assert!(
            names.len() < NO_KEY as usize,
            "too many keys for u8 indices"
        );
        let mut buckets = [[NO_KEY; BUCKET_WIDTH]; BUCKETS];
        let mut i = 0;
        while i < names.len() {
            let Some(bucket) = Self::bucket(names[i]) else {
                panic!("key names are short and not empty");
            };
            let mut slot = 0;
            while slot < BUCKET_WIDTH && buckets[bucket][slot] != NO_KEY {
                slot += 1;
            }
            assert!(
                slot < BUCKET_WIDTH,
                "a bucket of key names is full: widen it"
            );
            buckets[bucket][slot] = i as u8;
            i += 1;
        }
        BucketTable { names, buckets }
    }

    fn find(&self, name: &[u8]) -> Option<usize> {
        let bucket = &self.buckets[Self::bucket(name)?];
        bucket
            .iter()
            .take_while(|i| **i != NO_KEY)
            .map(|&i| usize::from(i))
            .find(|&i| self.names[i] == name)
    }
}

attribute_keys! {
    HttpResponseStatusCode = "http.response.status_code",
    HttpStatusCode = "http.status_code",
    RpcGrpcStatusCode = "rpc.grpc.status_code",
    GrpcStatusCode = "grpc.status_code",
    SourcePrincipal = "source.principal",
    TlsClientPrincipal = "tls.client.principal",
    DownstreamPeerUriSan = "downstream_peer_uri_san",
    DestinationPrincipal = "destination.principal",
    TlsServerPrincipal = "tls.server.principal",
    UpstreamPeerUriSan = "upstream_peer_uri_san",
    DownstreamPeerPrincipal = "downstream_peer.principal",
    ConnectionUriSanPeerCertificate = "connection.uri_san_peer_certificate",
    LinkerdClientId = "client_id",
    UpstreamPeerPrincipal = "upstream_peer.principal",
    UpstreamUriSanPeerCertificate = "upstream.uri_san_peer_certificate",
    LinkerdServerId = "server_id",
    UpstreamCluster = "upstream_cluster",
    UrlFull = "url.full",
    HttpUrl = "http.url",
    HttpAuthority = "http.authority",
    HttpHost = "http.host",
    ConnectionMtls = "connection.mtls",
    IstioMtls = "istio.mtls",
    TlsMutual = "tls.mutual",
    ConnectionSecurityPolicyIstio = "connection_security_policy",
    ConnectionSecurityPolicy = "connection.security_policy",
    ResponseFlags = "response_flags",
    GuidXRequestId = "guid:x-request-id",
    HttpRequestHeaderXRequestId = "http.request.header.x-request-id",
    XRequestId = "x-request-id",
    RpcSystem = "rpc.system",
    DbSystem = "db.system",
    DbSystemName = "db.system.name",
    MessagingSystem = "messaging.system",
    HttpRequestMethod = "http.request.method",
    HttpMethod = "http.method",
    UrlPath = "url.path",
    HttpTarget = "http.target",
    HttpPath = "http.path",
    RpcService = "rpc.service",
    RpcMethod = "rpc.method",
    DbQueryText = "db.query.text",
    DbStatement = "db.statement",
    DbOperationName = "db.operation.name",
    DbOperation = "db.operation",
    DbCollectionName = "db.collection.name",
    DbSqlTable = "db.sql.table",
    DbMongodbCollection = "db.mongodb.collection",
    DbNamespace = "db.namespace",
    DbName = "db.name",
    MessagingOperationType = "messaging.operation.type",
    MessagingOperation = "messaging.operation",
    MessagingDestinationName = "messaging.destination.name",
    MessagingDestination = "messaging.destination",
    HttpRoute = "http.route",
    ServerPort = "server.port",
    NetPeerPort = "net.peer.port",
    NetHostPort = "net.host.port",
    ServerAddress = "server.address",
    NetPeerName = "net.peer.name",
    NetPeerIp = "net.peer.ip",
    NetworkPeerAddress = "network.peer.address",
    K8sPodIp = "k8s.pod.ip",
    PeerService = "peer.service",
    ServiceName = "service.name",
    IstioCanonicalService = "istio.canonical_service",
    IstioNamespace = "istio.namespace",
    ServiceNamespace = "service.namespace",
    K8sNamespaceName = "k8s.namespace.name",
    K8sDeploymentName = "k8s.deployment.name",
    K8sStatefulsetName = "k8s.statefulset.name",
    K8sDaemonsetName = "k8s.daemonset.name",
    App = "app",
    IstioCanonicalRevision = "istio.canonical_revision",
    ServiceVersion = "service.version",
    K8sDeploymentRevision = "k8s.deployment.revision",
    NodeId = "node_id",
    HttpRequestBodySize = "http.request.body.size",
    HttpResponseBodySize = "http.response.body.size",
    HttpRequestContentLength = "http.request_content_length",
    HttpResponseContentLength = "http.response_content_length",
    EnvoyRequestSize = "request_size",
    EnvoyResponseSize = "response_size",
    HttpRequestContentLengthUncompressed = "http.request_content_length_uncompressed",
    HttpResponseContentLengthUncompressed = "http.response_content_length_uncompressed",
    HttpRequestSize = "http.request.size",
    HttpResponseSize = "http.response.size",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips_through_its_name() {
        let mut names = std::collections::HashSet::new();
        for key in Key::ALL {
            let name = key.as_str();
            assert!(names.insert(name), "{name} twice");
            assert_eq!(Key::of(name), Some(key));
        }
        assert_eq!(Key::of("http.methodx"), None);
    }

    #[test]
    fn names_near_a_key_are_no_key() {
        for key in Key::ALL {
            let name = key.as_str();
            let mut changed = name.as_bytes().to_vec();
            changed[0] ^= 0x20;
            assert_eq!(Key::of_bytes(&changed), None, "{name}");
            assert_eq!(Key::of(&name[1..]), None, "{name}");
            assert_eq!(Key::of(&format!("{name}.")), None, "{name}");
        }
        assert_eq!(Key::of(""), None);
        assert_eq!(Key::of(&"a".repeat(64)), None);
        assert_eq!(Key::of(&"a".repeat(100_000)), None);
    }
}
