//! Attacks injected into the detection part of a real timeline, each with its label.
//! Attacker code runs inside a compromised service's real request handling: its calls
//! hang under that service's real SERVER spans, in its pods, named the way that service
//! names its calls, so the detector sees them exactly as it sees the recorded calls.

use chrono::DateTime;
use eastwest_model::{AlertKind, Label};

use super::style::{CallSpec, Ids, Styles, call_rows, copy_rows, pod_of, subtree};
use super::timeline::{SpanIndex, Timeline};
use crate::convert::{NezhaRow, service_from_pod};
use crate::error::DatasetError;

const MS: u64 = 1_000_000;

/// gRPC UNIMPLEMENTED: what a server answers for a method it does not have.
pub(crate) const UNIMPLEMENTED: i64 = 12;

/// Methods the payment service does not have (the probe's guesses).
pub(crate) const PROBED_METHODS: [&str; 8] = [
    "hipstershop.PaymentService/Refund",
    "hipstershop.PaymentService/ListTransactions",
    "hipstershop.PaymentService/GetCard",
    "hipstershop.PaymentService/ExportCards",
    "hipstershop.PaymentService/DeleteCard",
    "hipstershop.PaymentService/Capture",
    "hipstershop.PaymentService/Void",
    "hipstershop.PaymentService/ListCustomers",
];

/// Services the cart service never calls, each with a method it really serves.
pub(crate) const FAN_OUT_TARGETS: [(&str, &str); 8] = [
    (
        "currencyservice",
        "hipstershop.CurrencyService/GetSupportedCurrencies",
    ),
    (
        "productcatalogservice",
        "hipstershop.ProductCatalogService/ListProducts",
    ),
    ("shippingservice", "hipstershop.ShippingService/GetQuote"),
    ("paymentservice", "hipstershop.PaymentService/Charge"),
    (
        "emailservice",
        "hipstershop.EmailService/SendOrderConfirmation",
    ),
    ("adservice", "hipstershop.AdService/GetAds"),
    (
        "recommendationservice",
        "hipstershop.RecommendationService/ListRecommendations",
    ),
    ("checkoutservice", "hipstershop.CheckoutService/PlaceOrder"),
];

/// gRPC server reflection: how a tool like grpcurl lists a server's services and
/// methods before calling them.
pub(crate) const REFLECTION: &str = "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

pub(crate) const LIST_PRODUCTS: &str = "hipstershop.ProductCatalogService/ListProducts";

#[allow(clippy::too_many_arguments)] // the label's fields, in schema order
pub(crate) fn label(
    name: &str,
    kind: Option<AlertKind>,
    src: &str,
    dst: Option<&str>,
    method: Option<&str>,
    route: Option<&str>,
    start: u64,
    end: u64,
) -> Label {
    Label {
        scenario: name.into(),
        kind,
        // The recorded spans carry no namespace: workload keys are bare service names.
        source: src.into(),
        destination: dst.map(Into::into),
        method: method.map(Into::into),
        route: route.map(Into::into),
        start: DateTime::from_timestamp_nanos(start as i64),
        end: DateTime::from_timestamp_nanos(end as i64),
        class: if kind.is_some() { "attack" } else { "benign" }.into(),
    }
}

/// One attack's injected calls: `(label name, kind, destination, method)` per call is
/// what its label needs.
pub(crate) struct Injector<'a> {
    pub timeline: &'a mut Timeline,
    pub styles: Styles,
    pub ids: Ids,
}

fn not_found(what: String) -> DatasetError {
    DatasetError::InvalidOptions(format!(
        "the traces have no {what}: use more files or a smaller learning share"
    ))
}

impl Injector<'_> {
    /// The earliest SERVER span of `service` starting at or after `t`:
    /// (window, row).
    fn server_span(&self, service: &str, t: u64) -> Result<(usize, usize), DatasetError> {
        let first = self.timeline.window_at(t as i64).unwrap_or(usize::MAX);
        for (w, win) in self.timeline.windows.iter().enumerate().skip(first) {
            let ix = SpanIndex::new(&win.rows);
            let best = (win.rows.iter().enumerate())
                .filter(|(_, r)| r.start >= t && service_from_pod(&r.pod) == service)
                .filter(|(_, r)| ix.is_server(r))
                .min_by_key(|(i, r)| (r.start, *i));
            if let Some((i, _)) = best {
                return Ok((w, i));
            }
        }
        Err(not_found(format!(
            "span of {service} after the injection time"
        )))
    }

    /// Calls from inside one real request that `src` serves at or after `t`, one after
    /// the other; returns their rows' [start, end].
    fn calls_in_request(
        &mut self,
        src: &str,
        t: u64,
        calls: &[(&str, &str)],
        grpc_status: Option<i64>,
    ) -> Result<(u64, u64), DatasetError> {
        let (w, i) = self.server_span(src, t)?;
        let win = &self.timeline.windows[w];
        let parent = &win.rows[i];
        let (trace, parent_id, caller_pod) =
            (parent.trace.clone(), parent.id.clone(), parent.pod.clone());
        let mut start = parent.start + MS / 5;
        let first = start;
        let mut rows = Vec::new();
        for (callee, method) in calls {
            let callee_pod = pod_of(&win.rows, callee);
            let duration = 2 * MS + self.ids.jitter(MS);
            rows.extend(call_rows(
                &CallSpec {
                    trace: &trace,
                    parent: &parent_id,
                    caller_pod: &caller_pod,
                    callee_pod: &callee_pod,
                    method,
                    start,
                    duration,
                    grpc_status,
                },
                &self.styles,
                &mut self.ids,
            ));
            start += duration + MS / 2;
        }
        let end = rows.iter().map(|r| r.end).max().unwrap_or(first);
        self.timeline.windows[w].rows.extend(rows);
        Ok((first, end))
    }

    /// One call from `src` to a service (or method) it never calls.
    pub fn single(
        &mut self,
        name: &str,
        kind: AlertKind,
        (src, dst, method): (&str, &str, &str),
        t: u64,
    ) -> Result<Label, DatasetError> {
        let (start, end) = self.calls_in_request(src, t, &[(dst, method)], None)?;
        Ok(label(
            name,
            Some(kind),
            src,
            Some(dst),
            Some("POST"),
            Some(method),
            start,
            end,
        ))
    }

    /// `src` calls every target service within one request.
    pub fn fan_out(&mut self, name: &str, src: &str, t: u64) -> Result<Label, DatasetError> {
        let (start, end) = self.calls_in_request(src, t, &FAN_OUT_TARGETS, None)?;
        Ok(label(
            name,
            Some(AlertKind::FanOut),
            src,
            None,
            None,
            None,
            start,
            end,
        ))
    }

    /// `src` tries methods `dst` does not have; each answers UNIMPLEMENTED.
    pub fn probing(
        &mut self,
        name: &str,
        src: &str,
        dst: &str,
        t: u64,
    ) -> Result<Label, DatasetError> {
        let calls: Vec<(&str, &str)> = PROBED_METHODS.iter().map(|m| (dst, *m)).collect();
        let (start, end) = self.calls_in_request(src, t, &calls, Some(UNIMPLEMENTED))?;
        Ok(label(
            name,
            Some(AlertKind::Probing),
            src,
            Some(dst),
            None,
            None,
            start,
            end,
        ))
    }

    /// Requests that enter the mesh at `src` (a service only ever reached through the
    /// frontend): copies of a real request `src` served, cut off from their caller, so
    /// its known call to `dst` happens inside a request that never led there.
    pub fn context(
        &mut self,
        name: &str,
        (src, dst, method): (&str, &str, &str),
        t: u64,
        copies: u64,
    ) -> Result<Label, DatasetError> {
        let (w, i) = self.server_span(src, t)?;
        let rows = &self.timeline.windows[w].rows;
        let tree = subtree(rows, &rows[i]);
        let ix = SpanIndex::new(rows);
        if !tree.iter().any(|r| ix.callee(r) == Some(dst)) {
            return Err(not_found(format!("request of {src} that calls {dst}")));
        }
        let mut injected = Vec::new();
        for k in 0..copies {
            let trace = self.ids.trace();
            let mut copy = copy_rows(&tree, &trace, k * 1_000 * MS, &mut self.ids);
            copy[0].parent = None;
            injected.extend(copy);
        }
        let (start, end) = extent(&injected);
        self.timeline.windows[w].rows.extend(injected);
        Ok(label(
            name,
            Some(AlertKind::ContextAnomaly),
            src,
            Some(dst),
            Some("POST"),
            Some(method),
            start,
            end,
        ))
    }

    /// In every request `src` serves during [t, t + duration), its first call to `dst`
    /// is repeated `repeats` more times, one after the other.
    pub fn bulk(
        &mut self,
        name: &str,
        (src, dst, method): (&str, &str, &str),
        (t, duration): (u64, u64),
        repeats: u64,
    ) -> Result<Label, DatasetError> {
        let mut span = (u64::MAX, 0);
        for w in 0..self.timeline.windows.len() {
            let rows = &self.timeline.windows[w].rows;
            let ix = SpanIndex::new(rows);
            let mut injected = Vec::new();
            for server in rows.iter().filter(|r| {
                r.start >= t
                    && r.start < t + duration
                    && service_from_pod(&r.pod) == src
                    && ix.is_server(r)
            }) {
                let Some(client) = rows.iter().find(|r| {
                    r.trace == server.trace
                        && r.parent.as_ref() == Some(&server.id)
                        && ix.callee(r) == Some(dst)
                }) else {
                    continue;
                };
                let tree = subtree(rows, client);
                let step = client.end.saturating_sub(client.start) + MS / 4;
                for k in 1..=repeats {
                    injected.extend(copy_rows(&tree, &client.trace, k * step, &mut self.ids));
                }
            }
            if !injected.is_empty() {
                let (s, e) = extent(&injected);
                span = (span.0.min(s), span.1.max(e));
                self.timeline.windows[w].rows.extend(injected);
            }
        }
        if span.0 == u64::MAX {
            return Err(not_found(format!(
                "request of {src} calling {dst} to repeat"
            )));
        }
        Ok(label(
            name,
            Some(AlertKind::RateSpike),
            src,
            Some(dst),
            Some("POST"),
            Some(method),
            span.0,
            span.1,
        ))
    }
}

pub(crate) fn extent(rows: &[NezhaRow]) -> (u64, u64) {
    let start = rows.iter().map(|r| r.start).min().unwrap_or(0);
    let end = rows.iter().map(|r| r.end).max().unwrap_or(start);
    (start, end)
}
