//! [`AlertSink`]: where the pipeline hands over alerts and incidents.
//!
//! `publish` never does I/O: it folds the batch into a pending set and wakes a dedicated
//! writer thread, which commits everything pending in one SQLite transaction (alerts,
//! incidents and their webhook outbox rows together), then broadcasts the stored
//! versions to SSE clients and wakes the webhook worker.
//!
//! Nothing is dropped. Alerts are upserted by id and every re-emission carries the full
//! state, so a newer version of an alert that is still pending simply replaces the
//! older one (counted as `coalesced`): the pending set is bounded by the number of
//! *distinct* alerts, which the detector bounds. Only if the writer falls
//! `sink_max_pending` distinct alerts behind (a stalled disk) does `publish` wait for it
//! (counted as `blocked`): back-pressure onto the pipeline, whose ingest queue then
//! sheds and counts load instead of this crate losing alerts. Pending work is written
//! when the last sink handle is dropped; call [`AlertSink::flush`] before shutdown to be
//! sure it is committed.
//!
//! A failed commit (a full disk) is kept and retried every half second. Until one
//! succeeds the store reports [`AlertStore::writes_failing`] (the process is not
//! ready), and whenever the pending set has changed it is written to the store's spool,
//! which survives a crash and is replayed at the next start. What does not fit in the
//! spool is reported in `eastwest_alerts_at_risk` and, at exit, logged as lost. The
//! first commit that succeeds clears the spool.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use eastwest_model::{Alert, Incident};
use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::Notify;

use crate::ApiError;
use crate::config::WebhookConfig;
use crate::events::EventHub;
use crate::metrics::ApiMetrics;
use crate::store::{AlertStore, OutboxItem, Replayed};
use crate::webhook::payload::{self, PayloadContext};

const WRITER_IDLE_CHECK: Duration = Duration::from_millis(250);
const WRITE_RETRY_DELAY: Duration = Duration::from_millis(500);

/// Cheap to clone; all clones feed the same writer.
#[derive(Clone)]
pub struct AlertSink {
    shared: Arc<SinkShared>,
}

/// Everything needed to commit a batch and announce it.
pub(crate) struct WriterCtx {
    pub store: AlertStore,
    pub events: EventHub,
    pub metrics: Arc<ApiMetrics>,
    pub webhooks: Arc<RwLock<Arc<Vec<WebhookConfig>>>>,
    pub payload: PayloadContext,
    pub outbox_notify: Arc<Notify>,
}

struct SinkShared {
    pending: Mutex<Pending>,
    /// The writer waits here for work.
    work: Condvar,
    /// Publishers and flushers wait here for the writer's progress.
    progress: Condvar,
    max_pending: usize,
    ctx: WriterCtx,
}

#[derive(Default)]
struct Pending {
    alerts: Vec<Alert>,
    alert_index: HashMap<String, usize>,
    incidents: Vec<Incident>,
    incident_index: HashMap<String, usize>,
    /// Of the pending ones, those replayed from the spool and not published since.
    replayed: Replayed,
    /// Publishes accepted so far / known to be committed.
    published: u64,
    committed: u64,
}

/// What the writer took to commit.
struct Batch {
    alerts: Vec<Alert>,
    incidents: Vec<Incident>,
    replayed: Replayed,
    /// `published` when it was taken.
    target: u64,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.incidents.is_empty()
    }

    fn len(&self) -> usize {
        self.alerts.len() + self.incidents.len()
    }

    /// Adds newer versions; returns how many replaced a pending version.
    fn merge(&mut self, alerts: Vec<Alert>, incidents: Vec<Incident>) -> u64 {
        let mut coalesced = 0;
        for a in alerts {
            match self.alert_index.get(&a.id) {
                Some(&i) => {
                    self.alerts[i] = a;
                    coalesced += 1;
                }
                None => {
                    self.alert_index.insert(a.id.clone(), self.alerts.len());
                    self.alerts.push(a);
                }
            }
        }
        for inc in incidents {
            match self.incident_index.get(&inc.id) {
                Some(&i) => self.incidents[i] = inc,
                None => {
                    self.incident_index
                        .insert(inc.id.clone(), self.incidents.len());
                    self.incidents.push(inc);
                }
            }
        }
        coalesced
    }

    /// Puts back a batch that failed to commit, under anything newer published since.
    fn restore_older(&mut self, batch: Batch) {
        let newer = std::mem::take(self);
        let (published, committed) = (newer.published, newer.committed);
        let mut replayed = batch.replayed;
        for a in &newer.alerts {
            replayed.alerts.remove(&a.id);
        }
        for i in &newer.incidents {
            replayed.incidents.remove(&i.id);
        }
        self.merge(batch.alerts, batch.incidents);
        self.merge(newer.alerts, newer.incidents);
        self.replayed = replayed;
        self.published = published;
        self.committed = committed;
    }

    fn take(&mut self) -> Batch {
        self.alert_index.clear();
        self.incident_index.clear();
        Batch {
            alerts: std::mem::take(&mut self.alerts),
            incidents: std::mem::take(&mut self.incidents),
            replayed: std::mem::take(&mut self.replayed),
            target: self.published,
        }
    }
}

impl WriterCtx {
    fn write(&self, batch: &Batch) -> Result<(), ApiError> {
        let (alerts, incidents) = (&batch.alerts, &batch.incidents);
        let hooks = self.webhooks.read().clone();
        let deliveries_for = |alert: &Alert| -> Vec<OutboxItem> {
            hooks
                .iter()
                .filter(|w| w.wants(alert.kind, alert.severity))
                .filter_map(|w| {
                    let body = payload::render(w, alert, &self.payload).ok()?;
                    Some(OutboxItem {
                        destination: w.name.clone(),
                        body,
                    })
                })
                .collect()
        };
        let outcome =
            self.store
                .write_batch(alerts, incidents, &batch.replayed, &deliveries_for)?;
        self.metrics.sink_batches.fetch_add(1, Ordering::Relaxed);
        for (alert, is_new) in &outcome.alerts {
            if *is_new {
                self.metrics.count_new_alert(alert.kind, alert.severity);
            } else {
                self.metrics.alert_updates.fetch_add(1, Ordering::Relaxed);
            }
            self.events.alert(alert);
        }
        for incident in &outcome.incidents {
            self.metrics
                .incidents_written
                .fetch_add(1, Ordering::Relaxed);
            self.events.incident(incident);
        }
        if outcome.enqueued > 0 {
            self.outbox_notify.notify_one();
        }
        Ok(())
    }

    /// After a commit succeeded: ready again, and what the spool held is stored.
    fn committed(&self) {
        if self.store.set_writes_failing(false) {
            tracing::info!("the alert store writes again");
        }
        self.metrics.alerts_at_risk.store(0, Ordering::Relaxed);
        let cleared = self
            .store
            .with_spool(|s| if s.holds_records() { s.clear() } else { Ok(()) });
        match cleared {
            Some(Ok(())) => self.metrics.spool_alerts.store(0, Ordering::Relaxed),
            // Replaying stored alerts at the next start writes nothing older.
            Some(Err(e)) => tracing::warn!(error = %e, "clearing the alert spool failed"),
            None => {}
        }
    }

    /// After a commit failed: not ready, and what is pending goes to the spool. Returns
    /// how many alerts are in neither (lost if the process ends now).
    fn spool(&self, alerts: &[Alert], incidents: &[Incident]) -> usize {
        let at_risk = match self.store.with_spool(|s| s.write(alerts, incidents)) {
            Some(Ok(w)) => {
                self.metrics
                    .spool_alerts
                    .store(w.alerts as i64, Ordering::Relaxed);
                if w.alerts_left_out > 0 {
                    tracing::warn!(
                        spooled = w.alerts,
                        left_out = w.alerts_left_out,
                        "the alert spool is full; the least severe alerts wait in memory only"
                    );
                }
                w.alerts_left_out
            }
            Some(Err(e)) => {
                self.metrics
                    .spool_write_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, alerts = alerts.len(), "writing the alert spool failed; pending alerts wait in memory only");
                alerts.len()
            }
            None => alerts.len(),
        };
        self.metrics
            .alerts_at_risk
            .store(at_risk as i64, Ordering::Relaxed);
        at_risk
    }
}

impl AlertSink {
    /// Starts the writer thread. What the store's spool held at open is pending first.
    pub(crate) fn start(ctx: WriterCtx, max_pending: usize) -> Result<Self, ApiError> {
        let mut pending = Pending::default();
        if let Some(spooled) = ctx.store.take_spooled().filter(|s| !s.is_empty()) {
            ctx.metrics
                .spool_alerts
                .store(spooled.alerts.len() as i64, Ordering::Relaxed);
            pending.replayed = Replayed {
                alerts: spooled.alerts.iter().map(|a| a.id.clone()).collect(),
                incidents: spooled.incidents.iter().map(|i| i.id.clone()).collect(),
            };
            pending.merge(spooled.alerts, spooled.incidents);
            pending.published += 1;
        }
        let shared = Arc::new(SinkShared {
            pending: Mutex::new(pending),
            work: Condvar::new(),
            progress: Condvar::new(),
            max_pending: max_pending.max(1),
            ctx,
        });
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("eastwest-alert-writer".into())
            .spawn(move || writer_loop(weak))?;
        Ok(Self { shared })
    }

    /// Hands alerts (new or re-emitted with updated counts) and incidents to the store,
    /// SSE clients and webhooks. Returns at once unless the writer is far behind.
    pub fn publish(&self, alerts: Vec<Alert>, incidents: Vec<Incident>) {
        if alerts.is_empty() && incidents.is_empty() {
            return;
        }
        let shared = &self.shared;
        let mut pending = shared.pending.lock();
        let mut counted_block = false;
        while pending.len() >= shared.max_pending
            && alerts
                .iter()
                .any(|a| !pending.alert_index.contains_key(&a.id))
        {
            if !counted_block {
                shared
                    .ctx
                    .metrics
                    .sink_blocked
                    .fetch_add(1, Ordering::Relaxed);
                counted_block = true;
            }
            shared.progress.wait_for(&mut pending, WRITER_IDLE_CHECK);
        }
        if !pending.replayed.is_empty() {
            for a in &alerts {
                pending.replayed.alerts.remove(&a.id);
            }
            for i in &incidents {
                pending.replayed.incidents.remove(&i.id);
            }
        }
        let coalesced = pending.merge(alerts, incidents);
        pending.published += 1;
        shared
            .ctx
            .metrics
            .sink_coalesced
            .fetch_add(coalesced, Ordering::Relaxed);
        shared
            .ctx
            .metrics
            .sink_pending
            .store(pending.len() as i64, Ordering::Relaxed);
        shared.work.notify_one();
    }

    /// Blocks until everything published before this call is committed, or `timeout`.
    /// Returns whether it was.
    pub fn flush_blocking(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut pending = self.shared.pending.lock();
        let target = pending.published;
        while pending.committed < target {
            if self
                .shared
                .progress
                .wait_until(&mut pending, deadline)
                .timed_out()
            {
                return pending.committed >= target;
            }
        }
        true
    }

    /// Async form of [`AlertSink::flush_blocking`].
    pub async fn flush(&self, timeout: Duration) -> bool {
        let sink = self.clone();
        tokio::task::spawn_blocking(move || sink.flush_blocking(timeout))
            .await
            .unwrap_or(false)
    }
}

fn writer_loop(weak: Weak<SinkShared>) {
    // `published` when the pending set was last spooled, while commits fail.
    let mut spooled_at: Option<u64> = None;
    loop {
        let Some(shared) = weak.upgrade() else { return };
        let batch = {
            let mut pending = shared.pending.lock();
            if pending.is_empty() {
                shared.work.wait_for(&mut pending, WRITER_IDLE_CHECK);
            }
            if pending.is_empty() {
                pending.committed = pending.published;
                shared.progress.notify_all();
                continue;
            }
            pending.take()
        };
        shared.progress.notify_all();
        let ctx = &shared.ctx;
        match ctx.write(&batch) {
            Ok(()) => {
                ctx.committed();
                spooled_at = None;
                let mut pending = shared.pending.lock();
                pending.committed = pending.committed.max(batch.target);
                if pending.is_empty() {
                    pending.committed = pending.published;
                }
                ctx.metrics
                    .sink_pending
                    .store(pending.len() as i64, Ordering::Relaxed);
                shared.progress.notify_all();
            }
            Err(e) => {
                ctx.metrics
                    .store_write_errors
                    .fetch_add(1, Ordering::Relaxed);
                if ctx.store.set_writes_failing(true) {
                    tracing::debug!(error = %e, "alert store write failed again; retrying");
                } else {
                    tracing::error!(error = %e, alerts = batch.alerts.len(), "alert store write failed; not ready until it writes again, alerts wait in the spool");
                }
                let changed = {
                    let mut pending = shared.pending.lock();
                    pending.restore_older(batch);
                    (spooled_at != Some(pending.published)).then(|| {
                        spooled_at = Some(pending.published);
                        (pending.alerts.clone(), pending.incidents.clone())
                    })
                };
                if let Some((alerts, incidents)) = changed {
                    ctx.spool(&alerts, &incidents);
                }
                drop(shared);
                std::thread::sleep(WRITE_RETRY_DELAY);
            }
        }
    }
}

impl Drop for SinkShared {
    /// The last handle is gone: commit whatever is still pending, or spool it.
    fn drop(&mut self) {
        let batch = self.pending.get_mut().take();
        if batch.alerts.is_empty() && batch.incidents.is_empty() {
            return;
        }
        match self.ctx.write(&batch) {
            Ok(()) => self.ctx.committed(),
            Err(e) => {
                let lost = self.ctx.spool(&batch.alerts, &batch.incidents);
                tracing::error!(
                    error = %e,
                    alerts = batch.alerts.len(),
                    lost,
                    "final alert store write failed; the spool keeps the rest for the next start"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use eastwest_model::{AlertKind, AlertState, Severity, Workload};

    fn alert(id: &str, count: u64) -> Alert {
        Alert {
            id: id.into(),
            kind: AlertKind::NewEdge,
            severity: Severity::Low,
            score: 1.0,
            source: Workload::new("a"),
            destination: Some(Workload::new("b")),
            method: None,
            route: None,
            entry: None,
            first_seen: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            last_seen: Utc.timestamp_opt(1_700_000_000 + count as i64, 0).unwrap(),
            count,
            trace_ids: vec![],
            incident_id: None,
            summary: String::new(),
            evidence: Default::default(),
            state: AlertState::Open,
        }
    }

    fn sink(dir: &std::path::Path, max_pending: usize) -> (AlertSink, AlertStore, Arc<ApiMetrics>) {
        sink_on(AlertStore::open(dir).unwrap(), max_pending)
    }

    fn sink_on(store: AlertStore, max_pending: usize) -> (AlertSink, AlertStore, Arc<ApiMetrics>) {
        let metrics = Arc::new(ApiMetrics::default());
        let ctx = WriterCtx {
            store: store.clone(),
            events: EventHub::new(16),
            metrics: metrics.clone(),
            webhooks: Arc::new(RwLock::new(Arc::new(Vec::new()))),
            payload: PayloadContext {
                public_base: "http://x".into(),
                hostname: "h".into(),
                trace_url_template: None,
            },
            outbox_notify: Arc::new(Notify::new()),
        };
        (AlertSink::start(ctx, max_pending).unwrap(), store, metrics)
    }

    #[test]
    fn updates_coalesce_and_the_latest_version_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (sink, store, _) = sink(dir.path(), 1000);
        for count in 1..=300 {
            sink.publish(vec![alert("same", count)], vec![]);
        }
        assert!(sink.flush_blocking(Duration::from_secs(10)));
        let stored = store.get_alert("same").unwrap().unwrap();
        assert_eq!(stored.alert.count, 300);
    }

    #[test]
    fn a_full_pending_set_applies_back_pressure_without_losing_alerts() {
        let dir = tempfile::tempdir().unwrap();
        let (sink, store, metrics) = sink(dir.path(), 2);
        for i in 0..50 {
            sink.publish(
                vec![alert(&format!("a{i}"), 1), alert(&format!("b{i}"), 1)],
                vec![],
            );
        }
        assert!(sink.flush_blocking(Duration::from_secs(10)));
        let page = store
            .list_alerts(&crate::store::AlertFilter {
                limit: 1000,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page.alerts.len(), 100);
        assert_eq!(metrics.count_total_new(), 100);
    }

    #[test]
    fn dropping_the_last_handle_writes_what_is_pending() {
        let dir = tempfile::tempdir().unwrap();
        let (sink, store, _) = sink(dir.path(), 1000);
        sink.publish(vec![alert("last", 7)], vec![]);
        drop(sink);
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.get_alert("last").unwrap().is_none() {
            assert!(Instant::now() < deadline, "pending alert was lost on drop");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn spooled_ids(dir: &std::path::Path) -> Vec<String> {
        let path = dir.join(crate::store::SPOOL_FILE);
        let (_, spooled) =
            crate::store::spool::Spool::open(&path, crate::store::MIN_SPOOL_BYTES).unwrap();
        spooled.alerts.into_iter().map(|a| a.id).collect()
    }

    #[test]
    fn failing_writes_are_reported_spooled_and_written_when_the_store_can_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = AlertStore::open_with_spool(dir.path(), crate::store::MIN_SPOOL_BYTES).unwrap();
        let (sink, store, metrics) = sink_on(store, 1000);
        store.cap_pages(Some(0));
        let mut big = alert("big", 1);
        big.summary = "x".repeat(20_000); // needs new pages
        sink.publish(vec![big], vec![]);
        wait_until("the failure is reported", || store.writes_failing());
        wait_until("the alert is spooled", || {
            metrics.spool_alerts.load(Ordering::Relaxed) == 1
        });
        assert!(metrics.store_write_errors.load(Ordering::Relaxed) > 0);
        assert_eq!(metrics.alerts_at_risk.load(Ordering::Relaxed), 0);
        assert!(store.get_alert("big").unwrap().is_none());
        // The spool on disk holds it: what a restart after a crash would replay.
        assert_eq!(spooled_ids(dir.path()), ["big"]);
        assert!(!sink.flush_blocking(Duration::from_millis(300)));

        store.cap_pages(None);
        assert!(sink.flush_blocking(Duration::from_secs(10)));
        assert!(!store.writes_failing());
        assert_eq!(store.get_alert("big").unwrap().unwrap().alert.count, 1);
        assert_eq!(metrics.spool_alerts.load(Ordering::Relaxed), 0);
        assert!(spooled_ids(dir.path()).is_empty(), "the spool was cleared");
    }

    #[test]
    fn a_restart_writes_what_the_spool_holds_without_regressing_stored_alerts() {
        let dir = tempfile::tempdir().unwrap();
        {
            // Before the "crash": "kept" was committed at count 5 and spooled at count 3,
            // "lost" only spooled.
            let store = AlertStore::open(dir.path()).unwrap();
            let (sink, _, _) = sink_on(store, 1000);
            sink.publish(vec![alert("kept", 5)], vec![]);
            assert!(sink.flush_blocking(Duration::from_secs(10)));
            let path = dir.path().join(crate::store::SPOOL_FILE);
            let (mut spool, _) =
                crate::store::spool::Spool::open(&path, crate::store::MIN_SPOOL_BYTES).unwrap();
            spool
                .write(&[alert("kept", 3), alert("spooled", 2)], &[])
                .unwrap();
        }
        let store = AlertStore::open_with_spool(dir.path(), crate::store::MIN_SPOOL_BYTES).unwrap();
        let (sink, store, metrics) = sink_on(store, 1000);
        assert!(sink.flush_blocking(Duration::from_secs(10)));
        assert_eq!(store.get_alert("spooled").unwrap().unwrap().alert.count, 2);
        assert_eq!(store.get_alert("kept").unwrap().unwrap().alert.count, 5);
        assert_eq!(
            metrics.count_total_new(),
            1,
            "only the spooled alert is new"
        );
        assert!(spooled_ids(dir.path()).is_empty(), "the spool was cleared");
    }
}
