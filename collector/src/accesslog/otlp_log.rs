//! OTLP log records from Envoy's OpenTelemetry access logger (Istio's `envoyOtelAls`
//! provider) → calls. A record is an access log when its body is a line in the text or
//! JSON format, its body is a key/value list with access-log keys, or its attributes
//! carry those keys (body fields win, attributes fill the gaps). The resource names the
//! reporting workload (`istio.canonical_service`, `service.name`, `k8s.namespace.name`…).

use eastwest_model::Call;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use super::fields::AccessLogFields;
use super::{json, parse_access_log_line};
use crate::CollectorError;
use crate::dedup::CallOrigin;

/// Nesting deeper than this in a key/value body is not an access log; stop there.
const MAX_DEPTH: usize = 4;

fn any_to_json(v: &AnyValue, depth: usize) -> serde_json::Value {
    match v.value.as_ref() {
        Some(Value::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Value::IntValue(i)) => serde_json::Value::from(*i),
        Some(Value::DoubleValue(d)) => serde_json::Value::from(*d),
        Some(Value::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Value::KvlistValue(kv)) if depth < MAX_DEPTH => {
            serde_json::Value::Object(kv_to_map(&kv.values, depth + 1))
        }
        _ => serde_json::Value::Null,
    }
}

fn kv_to_map(kvs: &[KeyValue], depth: usize) -> serde_json::Map<String, serde_json::Value> {
    kvs.iter()
        .filter_map(|kv| Some((kv.key.clone(), any_to_json(kv.value.as_ref()?, depth))))
        .collect()
}

/// Fills every absent field of `base` from `extra`.
fn fill_from(mut base: AccessLogFields, extra: AccessLogFields) -> AccessLogFields {
    macro_rules! fill {
        ($($f:ident),*) => { $( if base.$f.is_none() { base.$f = extra.$f; } )* };
    }
    fill!(
        start_time,
        method,
        path,
        protocol,
        response_code,
        response_flags,
        response_code_details,
        duration_ms,
        request_id,
        authority,
        upstream_host,
        upstream_cluster,
        downstream_remote_address,
        requested_server_name,
        downstream_peer_uri_san,
        upstream_peer_uri_san,
        trace_id,
        span_id,
        bytes_received,
        bytes_sent
    );
    base
}

/// One OTLP log record → call. `Ok(None)` for records that are not access logs (no
/// method, path or cluster anywhere); `Err` for a body that looks like an access log but
/// does not parse.
pub fn parse_log_record(
    resource: &[KeyValue],
    record: &LogRecord,
) -> Result<Option<(Call, CallOrigin)>, CollectorError> {
    let reporter = crate::spans::resource_workload(resource);
    let from_attributes = json::fields_from_map(&kv_to_map(&record.attributes, 0));
    let from_body = match record.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Value::StringValue(s)) if !s.trim().is_empty() => Some(parse_access_log_line(s)?),
        Some(Value::KvlistValue(kv)) => Some(json::fields_from_map(&kv_to_map(&kv.values, 0))),
        _ => None,
    };
    let mut fields = match from_body {
        Some(body) => fill_from(body, from_attributes),
        None => from_attributes,
    };
    if fields.method.is_none() && fields.path.is_none() && fields.upstream_cluster.is_none() {
        return Ok(None);
    }
    if fields.trace_id.is_none()
        && record.trace_id.len() == 16
        && record.trace_id.iter().any(|b| *b != 0)
    {
        fields.trace_id = Some(hex::encode(&record.trace_id).into());
    }
    if fields.span_id.is_none()
        && record.span_id.len() == 8
        && record.span_id.iter().any(|b| *b != 0)
    {
        fields.span_id = Some(hex::encode(&record.span_id).into());
    }
    let record_time = if record.time_unix_nano > 0 {
        record.time_unix_nano
    } else {
        record.observed_time_unix_nano
    };
    fields
        .into_call(&reporter, i64::try_from(record_time).unwrap_or(0))
        .map(Some)
}

/// Every access-log record of a request as calls with their origin; the second value
/// counts records that looked like access logs but could not be parsed.
pub fn calls_from_otlp_logs_with_origin(
    request: &ExportLogsServiceRequest,
) -> (Vec<(Call, CallOrigin)>, u64) {
    let mut calls = Vec::new();
    let mut rejected = 0;
    for rl in &request.resource_logs {
        let resource = rl
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or(&[]);
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
    calls_from_otlp_logs_with_origin(request)
        .0
        .into_iter()
        .map(|(c, _)| c)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use eastwest_model::Workload;
    use opentelemetry_proto::tonic::common::v1::KeyValueList;
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn s(key: &str, v: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn body(v: Value) -> Option<AnyValue> {
        Some(AnyValue { value: Some(v) })
    }

    const TEXT: &str = include_str!("../../tests/fixtures/accesslog/istio_text.log");
    const JSON: &str = include_str!("../../tests/fixtures/accesslog/istio_json.log");

    fn line(src: &'static str, contains: &str) -> &'static str {
        src.lines()
            .find(|l| !l.starts_with('#') && l.contains(contains))
            .unwrap()
    }

    #[test]
    fn outbound_text_body_is_a_call_from_the_reporting_workload() {
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![s("service.name", "sleep"), s("k8s.namespace.name", "foo")],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![
                        LogRecord {
                            body: body(Value::StringValue(
                                line(TEXT, "outbound|8000||httpbin").into(),
                            )),
                            ..Default::default()
                        },
                        LogRecord {
                            body: body(Value::StringValue("[x] \"broken".into())),
                            ..Default::default()
                        },
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
        assert_eq!(call.source, Workload::new("sleep").in_namespace("foo"));
        assert_eq!(
            call.destination,
            Workload::new("httpbin").in_namespace("foo")
        );
        assert_eq!(
            (call.method.as_str(), call.route.as_str(), call.status),
            ("GET", "/status/{id}", Some(418))
        );
        assert_eq!(call.event_time_ns, 1_606_339_578_409_000_000);
        assert_eq!(
            call.request_id.as_deref(),
            Some("84961386-6d84-929d-98bd-c5aee93b5c88")
        );
        assert_eq!(call.duration_ns, 4_000_000);
        assert_eq!(call.mtls, None);
        assert_eq!(calls_from_otlp_logs(&request).len(), 1);
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
                s("source.principal", "spiffe://cluster.local/ns/shop/sa/cart"),
            ],
            trace_id: vec![0xab; 16],
            span_id: vec![0xcd; 8],
            ..Default::default()
        };
        let resource = [
            s("istio.canonical_service", "users"),
            s("k8s.namespace.name", "shop"),
        ];
        let (call, origin) = parse_log_record(&resource, &record).unwrap().unwrap();
        assert_eq!(origin, CallOrigin::InboundLog);
        assert_eq!(call.source.key(), "cart.shop");
        assert_eq!(
            call.source.principal.as_deref(),
            Some("spiffe://cluster.local/ns/shop/sa/cart")
        );
        assert_eq!(call.destination.key(), "users.shop");
        assert_eq!(call.mtls, Some(true));
        assert_eq!(call.trace_id, "ab".repeat(16));
        assert_eq!(call.span_id, "cd".repeat(8));
        assert_eq!((call.request_bytes, call.response_bytes), (None, None));
    }

    #[test]
    fn byte_counts_come_from_the_body_or_the_attributes() {
        let int = |key: &str, v: i64| KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Value::IntValue(v)),
            }),
            ..Default::default()
        };
        // A text body's counts; an attribute fills only what the body left out (`-`).
        let text = line(TEXT, "outbound|8000||httpbin").replacen(" 0 135 ", " - 135 ", 1);
        let record = LogRecord {
            body: body(Value::StringValue(text)),
            attributes: vec![int("bytes_received", 64), int("bytes_sent", 1)],
            ..Default::default()
        };
        let (call, _) = parse_log_record(&[s("service.name", "sleep")], &record)
            .unwrap()
            .unwrap();
        assert_eq!(
            (call.request_bytes, call.response_bytes),
            (Some(64), Some(135))
        );
        // Attributes alone, as ints; a negative one is absent.
        let record = LogRecord {
            attributes: vec![
                s("start_time", "2024-05-01T10:00:00Z"),
                s("method", "GET"),
                s(
                    "upstream_cluster",
                    "outbound|80||users.shop.svc.cluster.local",
                ),
                int("bytes_received", -5),
                int("bytes_sent", 5_000_000),
            ],
            ..Default::default()
        };
        let (call, _) = parse_log_record(&[s("service.name", "web")], &record)
            .unwrap()
            .unwrap();
        assert_eq!(
            (call.request_bytes, call.response_bytes),
            (None, Some(5_000_000))
        );
    }

    #[test]
    fn json_string_and_kvlist_bodies_are_access_logs_and_attributes_fill_gaps() {
        let resource = [s("service.name", "users.shop")];
        let json_record = LogRecord {
            body: body(Value::StringValue(line(JSON, "r-1").into())),
            attributes: vec![
                s("x-request-id", "ignored-body-wins"),
                s(
                    "upstream_peer_uri_san",
                    "spiffe://cluster.local/ns/shop/sa/users",
                ),
            ],
            ..Default::default()
        };
        let (call, origin) = parse_log_record(&resource, &json_record).unwrap().unwrap();
        assert_eq!(origin, CallOrigin::InboundLog);
        assert_eq!(
            (call.method.as_str(), call.route.as_str()),
            ("DELETE", "/admin/users/{id}")
        );
        assert_eq!(call.request_id.as_deref(), Some("r-1"));
        assert_eq!(
            call.destination.principal.as_deref(),
            Some("spiffe://cluster.local/ns/shop/sa/users")
        );
        assert_eq!(call.response_flags.as_deref(), Some("RBAC"));

        let kv_record = LogRecord {
            time_unix_nano: 1_700_000_000_000_000_000,
            body: body(Value::KvlistValue(KeyValueList {
                values: vec![
                    s("method", "POST"),
                    s("path", "/orders"),
                    s(
                        "upstream_cluster",
                        "outbound|80||orders.shop.svc.cluster.local",
                    ),
                ],
            })),
            ..Default::default()
        };
        let (call, _) = parse_log_record(&[s("service.name", "web")], &kv_record)
            .unwrap()
            .unwrap();
        assert_eq!(call.destination.key(), "orders.shop");
        assert_eq!(
            call.event_time_ns, 1_700_000_000_000_000_000,
            "record time when the body has none"
        );
    }

    #[test]
    fn non_access_log_records_are_skipped() {
        let record = LogRecord {
            body: body(Value::StringValue("{\"msg\":\"hello\"}".into())),
            ..Default::default()
        };
        assert!(parse_log_record(&[], &record).unwrap().is_none());
        assert!(
            parse_log_record(&[], &LogRecord::default())
                .unwrap()
                .is_none()
        );
    }
}
