//! Receiver configuration (`[otlp]` in the TOML config).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::shape::RequestLimits;
use crate::CollectorError;

pub const DEFAULT_GRPC_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 4317));
pub const DEFAULT_HTTP_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 4318));
/// Largest request body accepted, checked on the wire and again after decompression.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Export requests buffered between the receivers and the pipeline.
pub const DEFAULT_QUEUE_CAPACITY: usize = 256;
/// How long a request waits for room in a full queue before it is refused: bursts are
/// absorbed in arrival order rather than refused and retried out of order.
pub const DEFAULT_QUEUE_WAIT: Duration = Duration::from_millis(500);
/// What a client told "queue full" should wait before retrying.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Upper bound for `max_body_bytes`: a request is held in memory whole.
pub const MAX_BODY_BYTES_LIMIT: usize = 1024 * 1024 * 1024;
/// What all export requests in flight or queued may hold together (bodies, decoded
/// requests, batches waiting for the pipeline).
pub const DEFAULT_MEMORY_BUDGET_BYTES: u64 = 1024 * 1024 * 1024;
/// Largest decoded size of one request (estimated from its wire bytes before decoding).
pub const DEFAULT_MAX_DECODED_BYTES_PER_REQUEST: u64 = 256 * 1024 * 1024;
/// Spans or log records in one request (an OTel Collector batch is 8,192 by default).
pub const DEFAULT_MAX_RECORDS_PER_REQUEST: u64 = 200_000;
/// Resource and scope groups in one request.
pub const DEFAULT_MAX_GROUPS_PER_REQUEST: u64 = 20_000;
/// Attributes on one resource, scope, span, event, link or log record (SDKs cap at 128).
pub const DEFAULT_MAX_ATTRIBUTES_PER_ITEM: u64 = 256;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiverConfig {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub max_body_bytes: usize,
    pub queue_capacity: usize,
    #[serde(with = "humantime_serde")]
    pub queue_wait: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    pub memory_budget_bytes: u64,
    pub max_decoded_bytes_per_request: u64,
    pub max_records_per_request: u64,
    pub max_groups_per_request: u64,
    pub max_attributes_per_item: u64,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            grpc_addr: DEFAULT_GRPC_ADDR,
            http_addr: DEFAULT_HTTP_ADDR,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            queue_wait: DEFAULT_QUEUE_WAIT,
            retry_after: DEFAULT_RETRY_AFTER,
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET_BYTES,
            max_decoded_bytes_per_request: DEFAULT_MAX_DECODED_BYTES_PER_REQUEST,
            max_records_per_request: DEFAULT_MAX_RECORDS_PER_REQUEST,
            max_groups_per_request: DEFAULT_MAX_GROUPS_PER_REQUEST,
            max_attributes_per_item: DEFAULT_MAX_ATTRIBUTES_PER_ITEM,
        }
    }
}

impl ReceiverConfig {
    pub fn validate(&self) -> Result<(), CollectorError> {
        let invalid = |msg: String| Err(CollectorError::InvalidConfig(msg));
        if self.max_body_bytes == 0 || self.max_body_bytes > MAX_BODY_BYTES_LIMIT {
            return invalid(format!(
                "max_body_bytes must be in 1..={MAX_BODY_BYTES_LIMIT}, got {}",
                self.max_body_bytes
            ));
        }
        if self.queue_capacity == 0 {
            return invalid("queue_capacity must be at least 1".into());
        }
        if self.retry_after.is_zero() {
            return invalid("retry_after must be positive".into());
        }
        if self.memory_budget_bytes < self.max_body_bytes as u64 {
            return invalid(format!(
                "memory_budget_bytes ({}) must hold at least one body of max_body_bytes ({})",
                self.memory_budget_bytes, self.max_body_bytes
            ));
        }
        if self.max_decoded_bytes_per_request > self.memory_budget_bytes {
            return invalid(format!(
                "max_decoded_bytes_per_request ({}) must not exceed memory_budget_bytes ({})",
                self.max_decoded_bytes_per_request, self.memory_budget_bytes
            ));
        }
        for (name, value) in [
            (
                "max_decoded_bytes_per_request",
                self.max_decoded_bytes_per_request,
            ),
            ("max_records_per_request", self.max_records_per_request),
            ("max_groups_per_request", self.max_groups_per_request),
            ("max_attributes_per_item", self.max_attributes_per_item),
        ] {
            if value == 0 {
                return invalid(format!("{name} must be at least 1"));
            }
        }
        let (g, h) = (self.grpc_addr, self.http_addr);
        if g == h && g.port() != 0 {
            return invalid(format!("grpc_addr and http_addr are both {g}"));
        }
        Ok(())
    }

    /// The per-request caps checked before a request is decoded.
    pub fn limits(&self) -> RequestLimits {
        RequestLimits {
            max_groups: self.max_groups_per_request,
            max_records: self.max_records_per_request,
            max_attributes_per_list: self.max_attributes_per_item,
            max_decoded_bytes: self.max_decoded_bytes_per_request,
        }
    }

    /// `Retry-After` header value: whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_design_contract() {
        let c = ReceiverConfig::default();
        assert_eq!(c.grpc_addr.to_string(), "127.0.0.1:4317");
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:4318");
        assert_eq!(c.max_body_bytes, 16 << 20);
        c.validate().unwrap();
    }

    #[test]
    fn toml_overrides_and_rejects_unknown_or_invalid_values() {
        let c: ReceiverConfig =
            toml::from_str("grpc_addr = \"0.0.0.0:5317\"\nretry_after = \"1500ms\"").unwrap();
        assert_eq!(c.grpc_addr.port(), 5317);
        assert_eq!(c.retry_after_secs(), 2);
        assert!(toml::from_str::<ReceiverConfig>("grpc = \"x\"").is_err());
        let zero = ReceiverConfig {
            queue_capacity: 0,
            ..Default::default()
        };
        assert!(zero.validate().is_err());
        let same = ReceiverConfig {
            http_addr: DEFAULT_GRPC_ADDR,
            ..Default::default()
        };
        assert!(same.validate().is_err());
    }
}
