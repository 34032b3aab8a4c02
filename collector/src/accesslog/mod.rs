//! Envoy/Istio access logs → calls: the Istio default text format, its JSON encoding,
//! and OTLP log records from Envoy's OpenTelemetry access logger.

mod fields;
mod istio_text;
mod json;

use eastwest_model::{Call, Workload};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

pub use fields::AccessLogFields;
pub use istio_text::parse_istio_text;
pub use json::parse_istio_json;

use crate::CollectorError;
use crate::dedup::CallOrigin;

/// Parses one line in either format (JSON when it starts with `{`).
pub fn parse_access_log_line(line: &str) -> Result<AccessLogFields, CollectorError> {
    if line.trim_start().starts_with('{') { parse_istio_json(line) } else { parse_istio_text(line) }
}

/// One line → call, seen from the workload whose proxy wrote it.
pub fn call_from_line(line: &str, reporter: &Workload) -> Result<(Call, CallOrigin), CollectorError> {
    parse_access_log_line(line)?.into_call(reporter, 0)
}

fn any_to_json(v: &AnyValue) -> serde_json::Value {
    match v.value.as_ref() {
        Some(Value::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Value::IntValue(i)) => serde_json::Value::from(*i),
        Some(Value::DoubleValue(d)) => serde_json::Value::from(*d),
        Some(Value::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Value::KvlistValue(kv)) => serde_json::Value::Object(kv_to_map(&kv.values)),
        _ => serde_json::Value::Null,
    }
}

fn kv_to_map(kvs: &[KeyValue]) -> serde_json::Map<String, serde_json::Value> {
    kvs.iter().filter_map(|kv| Some((kv.key.clone(), any_to_json(kv.value.as_ref()?)))).collect()
}

/// One OTLP log record → call: a string body in the text or JSON format, a key/value
/// body, or the access-log keys as attributes. `Ok(None)` for records that are not
/// access logs (no method, path or cluster anywhere).
pub fn parse_log_record(resource: &[KeyValue], record: &LogRecord) -> Result<Option<(Call, CallOrigin)>, CollectorError> {
    let reporter = crate::spans::resource_workload(resource);
    let mut fields = match record.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Value::StringValue(s)) if !s.trim().is_empty() => parse_access_log_line(s)?,
        Some(Value::KvlistValue(kv)) => json::fields_from_map(&kv_to_map(&kv.values)),
        _ => json::fields_from_map(&kv_to_map(&record.attributes)),
    };
    if fields.method.is_none() && fields.path.is_none() && fields.upstream_cluster.is_none() {
        return Ok(None);
    }
    if fields.trace_id.is_none() && record.trace_id.len() == 16 {
        fields.trace_id = Some(hex::encode(&record.trace_id));
    }
    if fields.span_id.is_none() && record.span_id.len() == 8 {
        fields.span_id = Some(hex::encode(&record.span_id));
    }
    let fallback = i64::try_from(record.time_unix_nano.max(record.observed_time_unix_nano)).unwrap_or(0);
    fields.into_call(&reporter, fallback).map(Some)
}

/// Every access-log record of a request as calls with their origin; the second value
/// counts records that could not be parsed.
pub fn calls_from_otlp_logs_with_origin(request: &ExportLogsServiceRequest) -> (Vec<(Call, CallOrigin)>, u64) {
    let mut calls = Vec::new();
    let mut rejected = 0;
    for rl in &request.resource_logs {
        let resource = rl.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or(&[]);
        for sl in &rl.scope_logs {
            for record in &sl.log_records {
                match parse_log_record(resource, record) {
                    Ok(Some(c)) => calls.push(c),
                    Ok(None) => {}
                    Err(_) => rejected += 1,
                }
            }
        }
    }
    (calls, rejected)
}

/// Calls only (origin dropped), for callers that do not deduplicate.
pub fn calls_from_otlp_logs(request: &ExportLogsServiceRequest) -> Vec<Call> {
    calls_from_otlp_logs_with_origin(request).0.into_iter().map(|(c, _)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn s(key: &str, v: &str) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(Value::StringValue(v.into())) }), ..Default::default() }
    }

    const LINE: &str = r#"[2020-11-25T21:26:18.409Z] "GET /status/418 HTTP/1.1" 418 - via_upstream - "-" 0 135 4 4 "-" "curl/7.73.0-DEV" "84961386-6d84-929d-98bd-c5aee93b5c88" "httpbin:8000" "10.44.1.27:80" outbound|8000||httpbin.foo.svc.cluster.local 10.44.1.23:37652 10.0.45.184:8000 10.44.1.23:46520 - default"#;

    #[test]
    fn outbound_text_line_from_an_otlp_record_is_a_call_from_the_reporter() {
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource { attributes: vec![s("service.name", "sleep.foo")], ..Default::default() }),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![
                        LogRecord { body: Some(AnyValue { value: Some(Value::StringValue(LINE.into())) }), ..Default::default() },
                        LogRecord { body: Some(AnyValue { value: Some(Value::StringValue("[x] \"broken".into())) }), ..Default::default() },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let (calls, rejected) = calls_from_otlp_logs_with_origin(&request);
        assert_eq!(rejected, 1);
        let (call, origin) = &calls[0];
        assert_eq!(*origin, CallOrigin::OutboundLog);
        assert_eq!(call.source, Workload::new("sleep.foo"));
        assert_eq!(call.destination, Workload::new("httpbin").in_namespace("foo"));
        assert_eq!((call.method.as_str(), call.route.as_str(), call.status), ("GET", "/status/{id}", Some(418)));
        assert_eq!(call.event_time_ns, 1_606_339_578_409_000_000);
    }

    #[test]
    fn inbound_attribute_record_takes_the_caller_from_its_spiffe_id() {
        let record = LogRecord {
            attributes: vec![
                s("start_time", "2024-05-01T10:00:00Z"),
                s("method", "GET"),
                s("path", "/admin/metrics"),
                s("response_code", "200"),
                s("upstream_cluster", "inbound|8080||"),
                s("downstream_peer_uri_san", "spiffe://cluster.local/ns/shop/sa/cart"),
            ],
            ..Default::default()
        };
        let resource = [s("istio.canonical_service", "users"), s("k8s.namespace.name", "shop")];
        let (call, origin) = parse_log_record(&resource, &record).unwrap().unwrap();
        assert_eq!(origin, CallOrigin::InboundLog);
        assert_eq!(call.source.key(), "cart.shop");
        assert_eq!(call.source.principal.as_deref(), Some("spiffe://cluster.local/ns/shop/sa/cart"));
        assert_eq!(call.destination.key(), "users.shop");
        assert_eq!(call.mtls, Some(true));
    }

    #[test]
    fn non_access_log_records_are_skipped() {
        let record = LogRecord { body: Some(AnyValue { value: Some(Value::StringValue("{\"msg\":\"hello\"}".into())) }), ..Default::default() };
        assert!(parse_log_record(&[], &record).unwrap().is_none());
    }
}
