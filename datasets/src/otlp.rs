//! Small builders for OTLP protobuf values shared by the generator, the converters, the
//! demo feed and the tests.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

/// A string attribute.
pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// An integer attribute.
pub fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// String value of attribute `key`, when present and a string.
#[cfg_attr(not(test), allow(dead_code))]
pub fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
}

/// Groups `(resource attributes, span)` pairs into one request, one `ResourceSpans` per
/// distinct resource (in first-seen order) so that requests stay compact.
pub fn export(spans: Vec<(Vec<KeyValue>, Span)>) -> ExportTraceServiceRequest {
    let mut resource_spans: Vec<ResourceSpans> = Vec::new();
    for (resource, span) in spans {
        let existing = resource_spans
            .iter_mut()
            .find(|r| r.resource.as_ref().map(|r| &r.attributes) == Some(&resource));
        match existing {
            Some(rs) => rs.scope_spans[0].spans.push(span),
            None => resource_spans.push(ResourceSpans {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }
    ExportTraceServiceRequest { resource_spans }
}

/// Spans per export request in generated and converted files.
pub const SPANS_PER_EXPORT: usize = 1024;

/// Re-cuts requests in span end-time order, as a collector sends spans (when they end),
/// each with up to [`SPANS_PER_EXPORT`] spans. Stable: equal end times keep their order.
/// Files grouped by trace, or with injected spans appended, would otherwise arrive
/// minutes out of order.
pub fn in_end_time_order(
    requests: Vec<ExportTraceServiceRequest>,
) -> Vec<ExportTraceServiceRequest> {
    let mut spans = Vec::new();
    for req in requests {
        for rs in req.resource_spans {
            let attrs = rs.resource.map(|r| r.attributes).unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    spans.push((attrs.clone(), span));
                }
            }
        }
    }
    spans.sort_by_key(|(_, s)| s.end_time_unix_nano);
    let mut out = Vec::new();
    let mut it = spans.into_iter().peekable();
    while it.peek().is_some() {
        out.push(export(it.by_ref().take(SPANS_PER_EXPORT).collect()));
    }
    out
}

/// Every span of a request with its resource's `service.name`.
#[cfg_attr(not(test), allow(dead_code))]
pub fn spans_with_service(req: &ExportTraceServiceRequest) -> impl Iterator<Item = (&str, &Span)> {
    req.resource_spans.iter().flat_map(|rs| {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| attr(&r.attributes, "service.name"))
            .unwrap_or("");
        rs.scope_spans
            .iter()
            .flat_map(move |ss| ss.spans.iter().map(move |s| (service, s)))
    })
}
