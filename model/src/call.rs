use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// A workload as eastwest identifies it: the logical service, not the pod or version.
/// Pods and versions of one service share one identity so that rollouts inherit the
/// baseline.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct Workload {
    pub service: CompactString,
    pub namespace: Option<CompactString>,
    /// SPIFFE id (or other authenticated identity) the workload presented, when known.
    pub principal: Option<CompactString>,
}

impl Workload {
    pub fn new(service: impl Into<CompactString>) -> Self {
        Self {
            service: service.into(),
            namespace: None,
            principal: None,
        }
    }

    pub fn in_namespace(mut self, namespace: impl Into<CompactString>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    pub fn with_principal(mut self, principal: impl Into<CompactString>) -> Self {
        self.principal = Some(principal.into());
        self
    }

    /// `service.namespace` when the namespace is known, else `service`: the key used for
    /// edges, graphs and baselines (the principal is *not* part of the identity key).
    pub fn key(&self) -> CompactString {
        // Hot path (several times per call): no formatting machinery, and short keys stay
        // inline.
        let namespace = self.key_namespace().map_or(0, |ns| 1 + ns.len());
        let mut key = CompactString::with_capacity(self.service.len() + namespace);
        self.write_key(&mut key);
        key
    }

    /// [`Workload::key`] written over `out`, whose buffer is reused: a caller that keys
    /// every call allocates only when a key outgrows the last one.
    pub fn write_key(&self, out: &mut CompactString) {
        out.clear();
        out.push_str(&self.service);
        if let Some(ns) = self.key_namespace() {
            out.push('.');
            out.push_str(ns);
        }
    }

    /// The namespace as [`Workload::key`] writes it after the service: known and not
    /// empty.
    pub fn key_namespace(&self) -> Option<&str> {
        self.namespace.as_deref().filter(|ns| !ns.is_empty())
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Http,
    Grpc,
    Db,
    Messaging,
    Tcp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
            Protocol::Db => "db",
            Protocol::Messaging => "messaging",
            Protocol::Tcp => "tcp",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "http" => Protocol::Http,
            "grpc" => Protocol::Grpc,
            "db" => Protocol::Db,
            "messaging" => Protocol::Messaging,
            "tcp" => Protocol::Tcp,
            _ => return None,
        })
    }
}

/// The request a call happened inside: the service and route of the trace's root
/// server span (where the request entered the mesh).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct Entry {
    pub service: CompactString,
    /// `METHOD /route/template` for HTTP, `package.Service/Method` for gRPC.
    pub route: CompactString,
}

/// One service-to-service request, the unit everything downstream of the collector
/// reasons about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Call {
    /// Event time: the telemetry's own start timestamp, unix nanoseconds.
    pub event_time_ns: i64,
    pub source: Workload,
    pub destination: Workload,
    pub protocol: Protocol,
    /// HTTP method, `POST` for gRPC, the operation for db/messaging (`SELECT`, `publish`).
    pub method: CompactString,
    /// Route template (`/users/{id}`), gRPC `package.Service/Method`, db table or topic.
    pub route: CompactString,
    /// HTTP status code, or gRPC status code for gRPC calls; `None` when unknown.
    pub status: Option<u32>,
    /// True when the call failed (5xx, gRPC error, span status error).
    pub error: bool,
    pub duration_ns: u64,
    /// `Some(true)` when the telemetry says the call was mutual-TLS, `Some(false)` when it
    /// says plaintext, `None` when it does not say.
    pub mtls: Option<bool>,
    /// Lower-case hex, empty when unknown (access logs without tracing headers).
    pub trace_id: CompactString,
    pub span_id: CompactString,
    pub entry: Option<Entry>,
    /// Envoy `%RESPONSE_FLAGS%` (`NR`, `UAEX`, `UF`, …) when the telemetry carries them.
    pub response_flags: Option<CompactString>,
    /// Destination address as `host:port` when known (cloud metadata, Envoy admin port).
    pub destination_address: Option<CompactString>,
    /// Version/revision of the source workload (rollout awareness); never part of identity.
    pub source_version: Option<CompactString>,
    /// `x-request-id` when known: joins access-log lines with spans.
    pub request_id: Option<CompactString>,
    /// Adjusted count from trace sampling (`tracestate` `ot=th`): 1.0 when unsampled.
    pub weight: f64,
    /// The principal the caller's own telemetry claimed, when the callee observed another
    /// one on the connection (`source.principal` then holds the observed one, which wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_principal: Option<CompactString>,
    /// Request body bytes (`http.request.body.size`, Envoy `%BYTES_RECEIVED%`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_bytes: Option<u64>,
    /// Response body bytes (`http.response.body.size`, Envoy `%BYTES_SENT%`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_bytes: Option<u64>,
}

impl Call {
    /// `source.key() -> destination.key()`.
    pub fn edge_key(&self) -> (CompactString, CompactString) {
        (self.source.key(), self.destination.key())
    }

    /// [`Call::edge_key`] written over `out`, reusing its buffers.
    pub fn write_edge_key(&self, out: &mut (CompactString, CompactString)) {
        self.source.write_key(&mut out.0);
        self.destination.write_key(&mut out.1);
    }

    /// How many calls this one stands for: its sampling weight, or 1 when the weight is
    /// not a positive finite number (unsampled, or a value no count can use).
    pub fn sampling_weight(&self) -> f64 {
        if self.weight > 0.0 && self.weight.is_finite() {
            self.weight
        } else {
            1.0
        }
    }
}

/// RFC 3339 rendering of an event time in unix nanoseconds (UTC, millisecond precision).
pub fn format_event_time(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_key_includes_namespace_only_when_known() {
        assert_eq!(Workload::new("cart").key(), "cart");
        assert_eq!(
            Workload::new("cart").in_namespace("shop").key(),
            "cart.shop"
        );
        assert_eq!(Workload::new("cart").in_namespace("").key(), "cart");
    }

    #[test]
    fn written_keys_match_built_ones_whatever_the_buffer_held() {
        let long = Workload::new("recommendationservice").in_namespace("online-boutique");
        let short = Workload::new("cart");
        let mut out = (CompactString::default(), CompactString::default());
        for (source, destination) in [(&long, &short), (&short, &long), (&short, &short)] {
            let call = Call {
                source: source.clone(),
                destination: destination.clone(),
                ..Call::default()
            };
            call.write_edge_key(&mut out);
            assert_eq!(out, call.edge_key());
        }
    }

    #[test]
    fn sampling_weight_counts_unusable_weights_as_one() {
        let weighted = |weight| Call {
            weight,
            ..Call::default()
        };
        assert_eq!(weighted(4.0).sampling_weight(), 4.0);
        for unusable in [0.0, -2.0, f64::NAN, f64::INFINITY] {
            assert_eq!(weighted(unusable).sampling_weight(), 1.0, "{unusable}");
        }
    }

    #[test]
    fn event_time_renders_as_rfc3339_utc() {
        assert_eq!(
            format_event_time(1_700_000_000_123_000_000),
            "2023-11-14T22:13:20.123Z"
        );
    }
}
