//! Typed access to span and resource attributes across semantic-convention versions.

use std::borrow::Cow;

use eastwest_model::CompactString;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};

pub use super::keys::Key;

/// Longest name or route kept; telemetry is attacker-controlled.
pub const MAX_FIELD_BYTES: usize = 256;

/// An attribute's value as span reading sees it, borrowed from a decoded request or
/// straight from its protobuf bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    /// A value span reading never reads (bytes, arrays, maps), or none at all.
    Other,
}

impl<'a> Val<'a> {
    pub fn of(v: &'a AnyValue) -> Self {
        match &v.value {
            Some(Value::StringValue(s)) => Val::Str(s),
            Some(Value::BoolValue(b)) => Val::Bool(*b),
            Some(Value::IntValue(i)) => Val::Int(*i),
            Some(Value::DoubleValue(d)) => Val::Double(*d),
            _ => Val::Other,
        }
    }
}

/// One attribute list indexed by [`Key`] (first occurrence wins): one pass over the
/// list, then every lookup is an array read, however many attributes a sender attaches.
#[derive(Clone, Copy)]
pub struct KeyIndex<'a>([Option<Val<'a>>; Key::COUNT]);

impl Default for KeyIndex<'_> {
    fn default() -> Self {
        Self([None; Key::COUNT])
    }
}

impl<'a> KeyIndex<'a> {
    pub fn of(kvs: &'a [KeyValue]) -> Self {
        let mut index = Self::default();
        for kv in kvs {
            index.insert(&kv.key, kv.value.as_ref().map(Val::of));
        }
        index
    }

    /// Adds one attribute (`value` is `None` when the pair has no value at all).
    pub fn insert(&mut self, name: &str, value: Option<Val<'a>>) {
        if let Some(key) = Key::of(name) {
            self.insert_key(key, value);
        }
    }

    /// [`KeyIndex::insert`] for a name already looked up.
    pub fn insert_key(&mut self, key: Key, value: Option<Val<'a>>) {
        let slot = &mut self.0[key as usize];
        if slot.is_none() {
            *slot = value;
        }
    }

    fn get(&self, key: Key) -> Option<Val<'a>> {
        self.0[key as usize]
    }
}

/// Attribute lookup over a span's own attributes, then its resource's. Both lists are
/// indexed; a batch indexes each resource once for all of its spans, and its spans
/// borrow that index (an index is a few kilobytes: not copied per span).
pub struct Attrs<'a> {
    span: Index<'a>,
    resource: Index<'a>,
}

/// An index borrowed (a resource's, shared by its spans; a span's read off the wire,
/// which is not copied again) or owned.
enum Index<'a> {
    Shared(&'a KeyIndex<'a>),
    Own(Box<KeyIndex<'a>>),
}

impl<'a> Index<'a> {
    fn get(&self, key: Key) -> Option<Val<'a>> {
        match self {
            Index::Shared(index) => index.get(key),
            Index::Own(index) => index.get(key),
        }
    }
}

fn as_string(v: Val<'_>) -> Option<Cow<'_, str>> {
    match v {
        Val::Str(s) if !s.is_empty() => Some(Cow::Borrowed(truncated(s))),
        Val::Int(i) => Some(Cow::Owned(i.to_string())),
        Val::Bool(b) => Some(Cow::Borrowed(if b { "true" } else { "false" })),
        Val::Double(d) => Some(Cow::Owned(d.to_string())),
        _ => None,
    }
}

fn as_i64(v: Val<'_>) -> Option<i64> {
    match v {
        Val::Int(i) => Some(i),
        Val::Str(s) => s.trim().parse().ok(),
        Val::Double(d) if d.is_finite() => Some(d as i64),
        _ => None,
    }
}

/// A byte count: ints, string-encoded ints (Envoy's tracer writes every tag as a
/// string) and whole doubles; anything else is absent (see [`crate::sizes`]).
fn as_size(v: Val<'_>) -> Option<u64> {
    match v {
        Val::Int(i) => crate::sizes::size_from_int(i),
        Val::Str(s) => crate::sizes::parse_size(s),
        Val::Double(d) => crate::sizes::size_from_double(d),
        _ => None,
    }
}

fn as_bool(v: Val<'_>) -> Option<bool> {
    match v {
        Val::Bool(b) => Some(b),
        Val::Str(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        },
        Val::Int(i) => Some(i != 0),
        _ => None,
    }
}

/// Cuts `s` to at most [`MAX_FIELD_BYTES`] on a character boundary.
pub fn truncate(s: &str) -> CompactString {
    truncated(s).into()
}

/// `s` in upper case, inline when short (the method of every call, from spans and
/// access logs alike).
pub fn ascii_upper(s: &str) -> CompactString {
    let mut out = CompactString::from(s);
    out.as_mut_str().make_ascii_uppercase();
    out
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
        Self {
            span: Index::Own(Box::new(KeyIndex::of(span))),
            resource: Index::Own(Box::new(KeyIndex::of(resource))),
        }
    }

    /// A span's attributes over its resource's, already indexed.
    pub fn with_resource(span: &'a [KeyValue], resource: &'a KeyIndex<'a>) -> Self {
        Self {
            span: Index::Own(Box::new(KeyIndex::of(span))),
            resource: Index::Shared(resource),
        }
    }

    /// A span's attributes over its resource's, both already indexed.
    pub fn indexed(span: &'a KeyIndex<'a>, resource: &'a KeyIndex<'a>) -> Self {
        Self {
            span: Index::Shared(span),
            resource: Index::Shared(resource),
        }
    }

    fn resource_value(&self, key: Key) -> Option<Val<'a>> {
        self.resource.get(key)
    }

    fn span_value(&self, key: Key) -> Option<Val<'a>> {
        self.span.get(key)
    }

    /// First of `keys` present on the span (then the resource) as a non-empty string.
    pub fn str(&self, keys: &[Key]) -> Option<Cow<'a, str>> {
        self.span_str(keys).or_else(|| self.resource_str(keys))
    }

    pub fn span_str(&self, keys: &[Key]) -> Option<Cow<'a, str>> {
        keys.iter()
            .find_map(|k| self.span_value(*k).and_then(as_string))
    }

    pub fn resource_str(&self, keys: &[Key]) -> Option<Cow<'a, str>> {
        keys.iter()
            .find_map(|k| self.resource_value(*k).and_then(as_string))
    }

    pub fn int(&self, keys: &[Key]) -> Option<i64> {
        keys.iter()
            .find_map(|k| self.span_value(*k).and_then(as_i64))
    }

    /// First of `keys` on the span holding a usable byte count (a key whose value is
    /// garbage does not hide a later one).
    pub fn size(&self, keys: &[Key]) -> Option<u64> {
        keys.iter()
            .find_map(|k| self.span_value(*k).and_then(as_size))
    }

    pub fn bool(&self, keys: &[Key]) -> Option<bool> {
        keys.iter()
            .find_map(|k| self.span_value(*k).and_then(as_bool))
    }

    /// Whether any of `keys` is on the span as a non-empty scalar.
    pub fn span_has(&self, keys: &[Key]) -> bool {
        self.span_str(keys).is_some()
    }

    pub fn has(&self, key: Key) -> bool {
        self.span_value(key).is_some() || self.resource_value(key).is_some()
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
        let span = [
            kv("http.status_code", "503"),
            kv("peer.service", "span"),
            kv("peer.service", "second copy"),
            kv("not.a.known.key", "x"),
        ];
        let res = [kv("peer.service", "resource"), kv("service.name", "cart")];
        let a = Attrs::new(&span, &res);
        assert_eq!(a.str(&[Key::PeerService]).as_deref(), Some("span"));
        assert_eq!(a.str(&[Key::ServiceName]).as_deref(), Some("cart"));
        assert_eq!(a.span_str(&[Key::ServiceName]), None);
        assert_eq!(
            a.int(&[Key::HttpResponseStatusCode, Key::HttpStatusCode]),
            Some(503)
        );
        assert!(a.has(Key::ServiceName) && !a.has(Key::NodeId));
    }

    #[test]
    fn strings_are_borrowed_and_presence_ignores_empty_values() {
        let span = [
            kv("db.system", ""),
            kv("rpc.system", "grpc"),
            kv_int("server.port", 7),
        ];
        let a = Attrs::new(&span, &[]);
        assert!(matches!(
            a.span_str(&[Key::RpcSystem]),
            Some(Cow::Borrowed("grpc"))
        ));
        assert_eq!(a.span_str(&[Key::ServerPort]).as_deref(), Some("7"));
        assert!(!a.span_has(&[Key::DbSystem, Key::DbSystemName]));
        assert!(a.span_has(&[Key::DbSystem, Key::ServerPort]));
        let long = "x".repeat(MAX_FIELD_BYTES + 10);
        let span = [kv("http.route", &long)];
        let a = Attrs::new(&span, &[]);
        assert_eq!(
            a.span_str(&[Key::HttpRoute]).map(|v| v.len()),
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
