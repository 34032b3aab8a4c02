//! Calls turned into the `calls` table's Arrow columns, a row at a time: each call is
//! read once while every column grows, instead of once per column. A flush holds tens
//! of thousands of calls, far more than the caches do, so reading every call once per
//! column would fetch each from memory again for each of the table's columns.

use std::fmt::Write;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, RecordBatch, StringBuilder,
    TimestampNanosecondBuilder, UInt32Builder, UInt64Builder,
};
use eastwest_model::{Call, Workload};

use crate::history::{calls_schema, weight};

/// Bytes per value a name column starts with; builders grow past it as needed.
const NAME_BYTES: usize = 24;

/// The `calls` columns being built, in schema order.
pub(crate) struct CallColumns {
    time: TimestampNanosecondBuilder,
    source: StringBuilder,
    source_service: StringBuilder,
    source_namespace: StringBuilder,
    source_principal: StringBuilder,
    destination: StringBuilder,
    destination_service: StringBuilder,
    destination_namespace: StringBuilder,
    destination_principal: StringBuilder,
    protocol: StringBuilder,
    method: StringBuilder,
    route: StringBuilder,
    status: UInt32Builder,
    error: BooleanBuilder,
    duration_ns: UInt64Builder,
    mtls: BooleanBuilder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    entry_service: StringBuilder,
    entry_route: StringBuilder,
    response_flags: StringBuilder,
    destination_address: StringBuilder,
    source_version: StringBuilder,
    request_id: StringBuilder,
    weight: Float64Builder,
    learned: BooleanBuilder,
    request_bytes: UInt64Builder,
    response_bytes: UInt64Builder,
}

fn names(rows: usize, bytes_per_value: usize) -> StringBuilder {
    StringBuilder::with_capacity(rows, rows * bytes_per_value)
}

/// A workload key (`Workload::key`) written straight into a column, not allocated.
fn push_key(b: &mut StringBuilder, w: &Workload) {
    b.write_str(&w.service).expect("writing to memory");
    if let Some(ns) = w.key_namespace() {
        b.write_char('.').expect("writing to memory");
        b.write_str(ns).expect("writing to memory");
    }
    b.append_value("");
}

impl CallColumns {
    pub(crate) fn with_capacity(rows: usize) -> Self {
        Self {
            time: TimestampNanosecondBuilder::with_capacity(rows),
            source: names(rows, NAME_BYTES),
            source_service: names(rows, NAME_BYTES),
            source_namespace: names(rows, NAME_BYTES),
            source_principal: names(rows, 2 * NAME_BYTES),
            destination: names(rows, NAME_BYTES),
            destination_service: names(rows, NAME_BYTES),
            destination_namespace: names(rows, NAME_BYTES),
            destination_principal: names(rows, 2 * NAME_BYTES),
            protocol: names(rows, 4),
            method: names(rows, 4),
            route: names(rows, 2 * NAME_BYTES),
            status: UInt32Builder::with_capacity(rows),
            error: BooleanBuilder::with_capacity(rows),
            duration_ns: UInt64Builder::with_capacity(rows),
            mtls: BooleanBuilder::with_capacity(rows),
            trace_id: names(rows, 32),
            span_id: names(rows, 16),
            entry_service: names(rows, NAME_BYTES),
            entry_route: names(rows, 2 * NAME_BYTES),
            response_flags: names(rows, 2),
            destination_address: names(rows, 2 * NAME_BYTES),
            source_version: names(rows, 4),
            request_id: names(rows, 36),
            weight: Float64Builder::with_capacity(rows),
            learned: BooleanBuilder::with_capacity(rows),
            request_bytes: UInt64Builder::with_capacity(rows),
            response_bytes: UInt64Builder::with_capacity(rows),
        }
    }

    pub(crate) fn push(&mut self, c: &Call, learned: bool) {
        self.time.append_value(c.event_time_ns);
        push_key(&mut self.source, &c.source);
        self.source_service.append_value(&c.source.service);
        self.source_namespace
            .append_option(c.source.namespace.as_deref());
        self.source_principal
            .append_option(c.source.principal.as_deref());
        push_key(&mut self.destination, &c.destination);
        self.destination_service
            .append_value(&c.destination.service);
        self.destination_namespace
            .append_option(c.destination.namespace.as_deref());
        self.destination_principal
            .append_option(c.destination.principal.as_deref());
        self.protocol.append_value(c.protocol.as_str());
        self.method.append_value(&c.method);
        self.route.append_value(&c.route);
        self.status.append_option(c.status);
        self.error.append_value(c.error);
        self.duration_ns.append_value(c.duration_ns);
        self.mtls.append_option(c.mtls);
        self.trace_id.append_value(&c.trace_id);
        self.span_id.append_value(&c.span_id);
        let entry = c.entry.as_ref();
        self.entry_service
            .append_option(entry.map(|e| e.service.as_str()));
        self.entry_route
            .append_option(entry.map(|e| e.route.as_str()));
        self.response_flags
            .append_option(c.response_flags.as_deref());
        self.destination_address
            .append_option(c.destination_address.as_deref());
        self.source_version
            .append_option(c.source_version.as_deref());
        self.request_id.append_option(c.request_id.as_deref());
        self.weight.append_value(weight(c));
        self.learned.append_value(learned);
        self.request_bytes.append_option(c.request_bytes);
        self.response_bytes.append_option(c.response_bytes);
    }

    pub(crate) fn finish(mut self) -> RecordBatch {
        let strings = |b: &mut StringBuilder| -> ArrayRef { Arc::new(b.finish()) };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish().with_timezone("UTC")),
            strings(&mut self.source),
            strings(&mut self.source_service),
            strings(&mut self.source_namespace),
            strings(&mut self.source_principal),
            strings(&mut self.destination),
            strings(&mut self.destination_service),
            strings(&mut self.destination_namespace),
            strings(&mut self.destination_principal),
            strings(&mut self.protocol),
            strings(&mut self.method),
            strings(&mut self.route),
            Arc::new(self.status.finish()),
            Arc::new(self.error.finish()),
            Arc::new(self.duration_ns.finish()),
            Arc::new(self.mtls.finish()),
            strings(&mut self.trace_id),
            strings(&mut self.span_id),
            strings(&mut self.entry_service),
            strings(&mut self.entry_route),
            strings(&mut self.response_flags),
            strings(&mut self.destination_address),
            strings(&mut self.source_version),
            strings(&mut self.request_id),
            Arc::new(self.weight.finish()),
            Arc::new(self.learned.finish()),
            Arc::new(self.request_bytes.finish()),
            Arc::new(self.response_bytes.finish()),
        ];
        RecordBatch::try_new(calls_schema(), columns).expect("columns match the calls schema")
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Float64Type, TimestampNanosecondType};
    use datafusion::arrow::util::display::array_value_to_string;
    use eastwest_model::{Entry, Protocol};

    use super::*;

    /// A call whose every field holds a value no other field holds.
    fn full_call() -> Call {
        Call {
            event_time_ns: 1_767_607_200_000_000_007,
            source: Workload::new("web")
                .in_namespace("shop")
                .with_principal("spiffe://td/ns/shop/sa/web"),
            destination: Workload::new("users")
                .in_namespace("accounts")
                .with_principal("spiffe://td/ns/accounts/sa/users"),
            protocol: Protocol::Grpc,
            method: "POST".into(),
            route: "/users.Users/Get".into(),
            status: Some(14),
            error: true,
            duration_ns: 1234,
            mtls: Some(false),
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: "b7ad6b7169203331".into(),
            entry: Some(Entry {
                service: "gateway".into(),
                route: "GET /login".into(),
            }),
            response_flags: Some("UF".into()),
            destination_address: Some("users.accounts.svc:8080".into()),
            source_version: Some("v2".into()),
            request_id: Some("5f3c0f2e-0000-4000-8000-000000000001".into()),
            weight: 4.0,
            claimed_principal: None,
            request_bytes: Some(10),
            response_bytes: Some(20),
        }
    }

    fn text(batch: &RecordBatch, column: &str, row: usize) -> Option<String> {
        let array = batch.column_by_name(column).expect("a calls column");
        (!array.is_null(row)).then(|| array_value_to_string(array, row).unwrap())
    }

    #[test]
    fn every_column_holds_its_field_and_absent_fields_are_null() {
        let full = full_call();
        let bare = Call {
            source: Workload::new("job"),
            destination: Workload::new("db"),
            method: "GET".into(),
            route: "/".into(),
            trace_id: "1".into(),
            span_id: "2".into(),
            weight: f64::NAN,
            ..Default::default()
        };
        let mut columns = CallColumns::with_capacity(1);
        columns.push(&full, true);
        columns.push(&bare, false);
        let batch = columns.finish();
        assert_eq!(batch.num_rows(), 2);

        let expected = [
            ("source", Some("web.shop"), Some("job")),
            ("source_service", Some("web"), Some("job")),
            ("source_namespace", Some("shop"), None),
            ("source_principal", Some("spiffe://td/ns/shop/sa/web"), None),
            ("destination", Some("users.accounts"), Some("db")),
            ("destination_service", Some("users"), Some("db")),
            ("destination_namespace", Some("accounts"), None),
            (
                "destination_principal",
                Some("spiffe://td/ns/accounts/sa/users"),
                None,
            ),
            ("protocol", Some("grpc"), Some("http")),
            ("method", Some("POST"), Some("GET")),
            ("route", Some("/users.Users/Get"), Some("/")),
            ("status", Some("14"), None),
            ("error", Some("true"), Some("false")),
            ("duration_ns", Some("1234"), Some("0")),
            ("mtls", Some("false"), None),
            (
                "trace_id",
                Some("0af7651916cd43dd8448eb211c80319c"),
                Some("1"),
            ),
            ("span_id", Some("b7ad6b7169203331"), Some("2")),
            ("entry_service", Some("gateway"), None),
            ("entry_route", Some("GET /login"), None),
            ("response_flags", Some("UF"), None),
            ("destination_address", Some("users.accounts.svc:8080"), None),
            ("source_version", Some("v2"), None),
            (
                "request_id",
                Some("5f3c0f2e-0000-4000-8000-000000000001"),
                None,
            ),
            ("learned", Some("true"), Some("false")),
            ("request_bytes", Some("10"), None),
            ("response_bytes", Some("20"), None),
        ];
        for (column, first, second) in expected {
            assert_eq!(text(&batch, column, 0).as_deref(), first, "{column}");
            assert_eq!(text(&batch, column, 1).as_deref(), second, "{column}");
        }
        let time = batch.column_by_name("time").unwrap();
        assert_eq!(
            time.as_primitive::<TimestampNanosecondType>().value(0),
            full.event_time_ns
        );
        // A weight the learner would not count as one is written as it counts it.
        let weights = batch.column_by_name("weight").unwrap();
        assert_eq!(weights.as_primitive::<Float64Type>().values(), &[4.0, 1.0]);
        // Every column of the schema was checked above.
        assert_eq!(expected.len() + 2, batch.num_columns());
    }
}
