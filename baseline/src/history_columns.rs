//! Calls into the columns of the `calls` table, one call at a time: each call is read
//! once, every field while its memory is hot, instead of once per column (a flush holds
//! tens of thousands of calls, far more than any cache).

use std::fmt::Write;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, RecordBatch, StringBuilder,
    TimestampNanosecondBuilder, UInt32Builder, UInt64Builder,
};
use eastwest_model::{Call, Workload};

use crate::history::calls_schema;

/// Bytes of a typical string value, for the builders' first allocation.
const TYPICAL_STRING: usize = 24;

/// One Arrow builder per column of the `calls` schema, in its order.
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

/// A workload key ([`Workload::key`]) written straight into a column, not allocated.
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
        let s = || StringBuilder::with_capacity(rows, rows * TYPICAL_STRING);
        Self {
            time: TimestampNanosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            source: s(),
            source_service: s(),
            source_namespace: s(),
            source_principal: s(),
            destination: s(),
            destination_service: s(),
            destination_namespace: s(),
            destination_principal: s(),
            protocol: s(),
            method: s(),
            route: s(),
            status: UInt32Builder::with_capacity(rows),
            error: BooleanBuilder::with_capacity(rows),
            duration_ns: UInt64Builder::with_capacity(rows),
            mtls: BooleanBuilder::with_capacity(rows),
            trace_id: s(),
            span_id: s(),
            entry_service: s(),
            entry_route: s(),
            response_flags: s(),
            destination_address: s(),
            source_version: s(),
            request_id: s(),
            weight: Float64Builder::with_capacity(rows),
            learned: BooleanBuilder::with_capacity(rows),
            request_bytes: UInt64Builder::with_capacity(rows),
            response_bytes: UInt64Builder::with_capacity(rows),
        }
    }

    /// Rows the builders hold room for before they grow.
    #[cfg(test)]
    pub(crate) fn rows_capacity(&self) -> usize {
        self.time.capacity()
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
        self.weight.append_value(c.sampling_weight());
        self.learned.append_value(learned);
        self.request_bytes.append_option(c.request_bytes);
        self.response_bytes.append_option(c.response_bytes);
    }

    pub(crate) fn finish(mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.source_service.finish()),
            Arc::new(self.source_namespace.finish()),
            Arc::new(self.source_principal.finish()),
            Arc::new(self.destination.finish()),
            Arc::new(self.destination_service.finish()),
            Arc::new(self.destination_namespace.finish()),
            Arc::new(self.destination_principal.finish()),
            Arc::new(self.protocol.finish()),
            Arc::new(self.method.finish()),
            Arc::new(self.route.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.error.finish()),
            Arc::new(self.duration_ns.finish()),
            Arc::new(self.mtls.finish()),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.entry_service.finish()),
            Arc::new(self.entry_route.finish()),
            Arc::new(self.response_flags.finish()),
            Arc::new(self.destination_address.finish()),
            Arc::new(self.source_version.finish()),
            Arc::new(self.request_id.finish()),
            Arc::new(self.weight.finish()),
            Arc::new(self.learned.finish()),
            Arc::new(self.request_bytes.finish()),
            Arc::new(self.response_bytes.finish()),
        ];
        RecordBatch::try_new(calls_schema(), columns).expect("columns match the calls schema")
    }
}
