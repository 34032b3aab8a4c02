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
//! sheds and counts load instead of this crate losing alerts. Failed commits are kept
//! and retried. Pending work is written when the last sink handle is dropped; call
//! [`AlertSink::flush`] before shutdown to be sure it is committed.

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
use crate::store::{AlertStore, OutboxItem};
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
    /// Publishes accepted so far / known to be committed.
    published: u64,
    committed: u64,
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
    fn restore_older(&mut self, alerts: Vec<Alert>, incidents: Vec<Incident>) {
        let newer = std::mem::take(self);
        let (published, committed) = (newer.published, newer.committed);
        self.merge(alerts, incidents);
        self.merge(newer.alerts, newer.incidents);
        self.published = published;
        self.committed = committed;
    }

    fn take(&mut self) -> (Vec<Alert>, Vec<Incident>, u64) {
        self.alert_index.clear();
        self.incident_index.clear();
        (
            std::mem::take(&mut self.alerts),
            std::mem::take(&mut self.incidents),
            self.published,
        )
    }
}

impl WriterCtx {
    fn write(&self, alerts: &[Alert], incidents: &[Incident]) -> Result<(), ApiError> {
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
        let outcome = self.store.write_batch(alerts, incidents, &deliveries_for)?;
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
}

impl AlertSink {
    pub(crate) fn start(ctx: WriterCtx, max_pending: usize) -> Result<Self, ApiError> {
        let shared = Arc::new(SinkShared {
            pending: Mutex::new(Pending::default()),
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
    loop {
        let Some(shared) = weak.upgrade() else { return };
        let (alerts, incidents, target) = {
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
        match shared.ctx.write(&alerts, &incidents) {
            Ok(()) => {
                let mut pending = shared.pending.lock();
                pending.committed = pending.committed.max(target);
                if pending.is_empty() {
                    pending.committed = pending.published;
                }
                shared
                    .ctx
                    .metrics
                    .sink_pending
                    .store(pending.len() as i64, Ordering::Relaxed);
                shared.progress.notify_all();
            }
            Err(e) => {
                shared
                    .ctx
                    .metrics
                    .store_write_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, alerts = alerts.len(), "alert store write failed; retrying");
                shared.pending.lock().restore_older(alerts, incidents);
                drop(shared);
                std::thread::sleep(WRITE_RETRY_DELAY);
            }
        }
    }
}

impl Drop for SinkShared {
    /// The last handle is gone: commit whatever is still pending.
    fn drop(&mut self) {
        let (alerts, incidents, _) = self.pending.get_mut().take();
        if alerts.is_empty() && incidents.is_empty() {
            return;
        }
        if let Err(e) = self.ctx.write(&alerts, &incidents) {
            tracing::error!(error = %e, alerts = alerts.len(), "final alert store write failed");
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
        let store = AlertStore::open(dir).unwrap();
        let metrics = Arc::new(ApiMetrics::default());
        let ctx = WriterCtx {
            store: store.clone(),
            events: EventHub::new(16),
            metrics: metrics.clone(),
            webhooks: Arc::new(RwLock::new(Arc::new(Vec::new()))),
            payload: PayloadContext {
                public_base: "http://x".into(),
                hostname: "h".into(),
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
}
