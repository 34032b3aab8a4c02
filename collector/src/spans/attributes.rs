//! Typed access to span and resource attributes across semantic-convention versions.

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};

/// Longest name or route kept; telemetry is attacker-controlled.
pub const MAX_FIELD_BYTES: usize = 256;

/// Attribute lookup over a span's own attributes, then its resource's.
#[derive(Clone, Copy)]
pub struct Attrs<'a> {
    pub span: &'a [KeyValue],
    pub resource: &'a [KeyValue],
}

fn find<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    kvs.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

/// String values are borrowed from the span (most lookups only test or parse them);
/// other scalars are formatted.
fn as_string(v: &AnyValue) -> Option<Cow<'_, str>> {
    match v.value.as_ref()? {
        Value::StringValue(s) if !s.is_empty() => Some(Cow::Borrowed(truncated(s))),
        Value::IntValue(i) => Some(Cow::Owned(i.to_string())),
        Value::BoolValue(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::DoubleValue(d) => Some(Cow::Owned(d.to_string())),
        _ => None,
    }
}

fn as_i64(v: &AnyValue) -> Option<i64> {
    match v.value.as_ref()? {
        Value::IntValue(i) => Some(*i),
        Value::StringValue(s) => s.trim().parse().ok(),
        Value::DoubleValue(d) if d.is_finite() => Some(*d as i64),
        _ => None,
    }
}

fn as_bool(v: &AnyValue) -> Option<bool> {
    match v.value.as_ref()? {
        Value::BoolValue(b) => Some(*b),
        Value::StringValue(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        },
        Value::IntValue(i) => Some(*i != 0),
        _ => None,
    }
}

/// Cuts `s` to at most [`MAX_FIELD_BYTES`] on a character boundary.
pub fn truncate(s: &str) -> String {
    truncated(s).to_string()
}

/// `s` cut to at most [`MAX_FIELD_BYTES`] on a character boundary, borrowed.
pub fn truncated(s: &str) -> &str {
    if s.len() <= MAX_FIELD_BYTES {
        return s;
    }
    let mut end = MAX_FIELD_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl<'a> Attrs<'a> {
    pub fn new(span: &'a [KeyValue], resource: &'a [KeyValue]) -> Self {
        Self { span, resource }
    }

    /// First of `keys` present on the span (then the resource) as a non-empty string.
    pub fn str(&self, keys: &[&str]) -> Option<Cow<'a, str>> {
        keys.iter()
            .find_map(|k| find(self.span, k).and_then(as_string))
            .or_else(|| {
                keys.iter()
                    .find_map(|k| find(self.resource, k).and_then(as_string))
            })
    }

    pub fn span_str(&self, keys: &[&str]) -> Option<Cow<'a, str>> {
        keys.iter()
            .find_map(|k| find(self.span, k).and_then(as_string))
    }

    pub fn resource_str(&self, keys: &[&str]) -> Option<Cow<'a, str>> {
        keys.iter()
            .find_map(|k| find(self.resource, k).and_then(as_string))
    }

    pub fn int(&self, keys: &[&str]) -> Option<i64> {
        keys.iter()
            .find_map(|k| find(self.span, k).and_then(as_i64))
    }

    pub fn bool(&self, keys: &[&str]) -> Option<bool> {
        keys.iter()
            .find_map(|k| find(self.span, k).and_then(as_bool))
    }

    /// Whether any of `keys` is on the span as a non-empty scalar.
    pub fn span_has(&self, keys: &[&str]) -> bool {
        keys.iter()
            .any(|k| find(self.span, k).is_some_and(|v| as_string(v).is_some()))
    }

    pub fn has(&self, key: &str) -> bool {
        find(self.span, key).is_some() || find(self.resource, key).is_some()
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};

    pub fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    pub fn kv_int(key: &str, value: i64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Value::IntValue(value)),
            }),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn span_attributes_win_over_resource_and_ints_read_from_strings() {
        let span = [kv("http.status_code", "503"), kv("x", "span")];
        let res = [kv("x", "resource"), kv("service.name", "cart")];
        let a = Attrs::new(&span, &res);
        assert_eq!(a.str(&["x"]).as_deref(), Some("span"));
        assert_eq!(a.str(&["service.name"]).as_deref(), Some("cart"));
        assert_eq!(
            a.int(&["http.response.status_code", "http.status_code"]),
            Some(503)
        );
    }

    #[test]
    fn strings_are_borrowed_and_presence_ignores_empty_values() {
        let span = [
            kv("db.system", ""),
            kv("rpc.system", "grpc"),
            kv_int("n", 7),
        ];
        let a = Attrs::new(&span, &[]);
        assert!(matches!(
            a.span_str(&["rpc.system"]),
            Some(Cow::Borrowed("grpc"))
        ));
        assert_eq!(a.span_str(&["n"]).as_deref(), Some("7"));
        assert!(!a.span_has(&["db.system", "missing"]));
        assert!(a.span_has(&["db.system", "n"]));
        let long = "x".repeat(MAX_FIELD_BYTES + 10);
        let span = [kv("long", &long)];
        let a = Attrs::new(&span, &[]);
        assert_eq!(
            a.span_str(&["long"]).map(|v| v.len()),
            Some(MAX_FIELD_BYTES)
        );
    }

    #[test]
    fn long_values_are_truncated_on_char_boundaries() {
        let long = "é".repeat(300);
        let t = truncate(&long);
        assert!(t.len() <= MAX_FIELD_BYTES);
        assert!(t.chars().all(|c| c == 'é'));
    }
}
