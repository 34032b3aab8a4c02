//! Webhook delivery from the durable outbox: at-least-once, exponential backoff with
//! jitter, `Retry-After`, per-destination rate limits, dead letters after
//! `max_attempts`. The delivery id is fixed at enqueue time, so receivers can drop
//! duplicates (a crash between "receiver said 2xx" and "marked delivered" re-sends).
//!
//! A hook's URL is a credential: rows, logs, metrics and the API name the hook by its
//! configured `name` and [`redact::redacted_url`]; the URL is read from the config at
//! send time only. Receivers verify deliveries as `docs/WEBHOOKS.md` describes.

pub mod delivery;
mod enrich;
pub mod payload;
pub mod redact;
pub mod sanitize;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use parking_lot::RwLock;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::WebhookConfig;
use crate::metrics::{ApiMetrics, DeliveryOutcome};
use crate::store::{AlertStore, OutboxRow, now_ms};
use delivery::{AttemptResult, RateLimiter};

/// Deliveries fetched per round.
const BATCH: usize = 64;
/// Concurrent requests per round.
const CONCURRENCY: usize = 8;
/// Longest idle sleep; new work also wakes the worker through its `Notify`.
const MAX_IDLE: Duration = Duration::from_secs(5);
/// On shutdown, due deliveries get one last try within this deadline.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(2);
/// Delivered rows are kept this long (then pruned); dead letters are kept.
const DELIVERED_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

pub(crate) struct Worker {
    pub store: AlertStore,
    pub metrics: Arc<ApiMetrics>,
    pub webhooks: Arc<RwLock<Arc<Vec<WebhookConfig>>>>,
    pub notify: Arc<Notify>,
    client: reqwest::Client,
    limiters: HashMap<String, RateLimiter>,
}

impl Worker {
    pub fn new(
        store: AlertStore,
        metrics: Arc<ApiMetrics>,
        webhooks: Arc<RwLock<Arc<Vec<WebhookConfig>>>>,
        notify: Arc<Notify>,
    ) -> Self {
        let client = reqwest::Client::builder()
            .user_agent(concat!("eastwest/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            store,
            metrics,
            webhooks,
            notify,
            client,
            limiters: HashMap::new(),
        }
    }

    pub async fn run(mut self, cancel: CancellationToken) {
        let mut last_prune = Instant::now();
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let delivered = match self.round(None).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook outbox round failed");
                    0
                }
            };
            if last_prune.elapsed() > Duration::from_secs(3600) {
                last_prune = Instant::now();
                let before = now_ms() - DELIVERED_RETENTION_MS;
                let _ = self.store.run(move |s| s.prune_delivered(before)).await;
            }
            if delivered > 0 {
                continue;
            }
            let wait = match self.store.run(|s| s.next_delivery_due()).await {
                Ok(Some(due)) => Duration::from_millis(
                    (due - now_ms()).clamp(10, MAX_IDLE.as_millis() as i64) as u64,
                ),
                _ => MAX_IDLE,
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        // Last attempt for what is due now, within a short deadline; the rest stays in
        // the outbox for the next start.
        let deadline = Instant::now() + SHUTDOWN_DEADLINE;
        if tokio::time::timeout(SHUTDOWN_DEADLINE, self.round(Some(deadline)))
            .await
            .is_err()
        {
            tracing::info!(
                "webhook worker stopped with deliveries in flight; they will be retried"
            );
        }
    }

    /// One pass over due deliveries; returns how many rows it handled.
    async fn round(&mut self, deadline: Option<Instant>) -> Result<usize, crate::ApiError> {
        let due = self
            .store
            .run(|s| s.due_deliveries(now_ms(), BATCH))
            .await?;
        if due.is_empty() {
            return Ok(0);
        }
        let hooks = self.webhooks.read().clone();
        let mut plans = Vec::with_capacity(due.len());
        for row in due {
            plans.push(self.plan(row, &hooks).await?);
        }
        let handled = plans.len();
        let sends = plans.into_iter().flatten();
        let client = self.client.clone();
        let results: Vec<_> = futures::stream::iter(sends)
            .map(|(row, hook)| {
                let client = client.clone();
                async move {
                    let mut timeout = hook.timeout;
                    if let Some(d) = deadline {
                        timeout = timeout.min(
                            d.saturating_duration_since(Instant::now())
                                .max(Duration::from_millis(50)),
                        );
                    }
                    let result =
                        delivery::attempt(&client, &hook, &row.delivery_id, &row.body, timeout)
                            .await;
                    (row, hook, result)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (row, hook, result) in results {
            self.record(row, &hook, result).await?;
        }
        Ok(handled)
    }

    /// Decides whether a due row is sent now (`Some`), dead-lettered (unknown destination) or
    /// pushed back by the destination's rate limit.
    async fn plan(
        &mut self,
        row: OutboxRow,
        hooks: &[WebhookConfig],
    ) -> Result<Option<(OutboxRow, WebhookConfig)>, crate::ApiError> {
        let Some(hook) = hooks.iter().find(|h| h.name == row.destination).cloned() else {
            self.metrics
                .count_delivery(&row.destination, DeliveryOutcome::DeadLettered);
            let (seq, attempts) = (row.seq, row.attempts);
            self.store
                .run(move |s| {
                    s.mark_dead(seq, attempts, "destination is no longer configured", None)
                })
                .await?;
            return Ok(None);
        };
        let limiter = self
            .limiters
            .entry(hook.name.clone())
            .or_insert_with(|| RateLimiter::per_minute(hook.max_per_minute));
        if let Err(wait) = limiter.try_take(Instant::now()) {
            self.metrics
                .count_delivery(&hook.name, DeliveryOutcome::RateLimited);
            let (seq, attempts) = (row.seq, row.attempts);
            let next = now_ms() + wait.as_millis() as i64 + 1;
            self.store
                .run(move |s| s.reschedule(seq, attempts, next, None, None))
                .await?;
            return Ok(None);
        }
        Ok(Some((row, hook)))
    }

    async fn record(
        &self,
        row: OutboxRow,
        hook: &WebhookConfig,
        result: AttemptResult,
    ) -> Result<(), crate::ApiError> {
        let attempts = row.attempts + 1;
        let seq = row.seq;
        let target = hook.target();
        match result {
            AttemptResult::Delivered => {
                self.metrics
                    .count_delivery(&hook.name, DeliveryOutcome::Delivered);
                self.store
                    .run(move |s| s.mark_delivered(seq, attempts, &target))
                    .await
            }
            AttemptResult::Permanent { error } => {
                self.metrics
                    .count_delivery(&hook.name, DeliveryOutcome::Failed);
                self.metrics
                    .count_delivery(&hook.name, DeliveryOutcome::DeadLettered);
                tracing::warn!(destination = %hook.name, %target, delivery = %row.delivery_id, %error, "webhook refused; dead-lettered");
                self.store
                    .run(move |s| s.mark_dead(seq, attempts, &error, Some(&target)))
                    .await
            }
            AttemptResult::Retry { error, retry_after } => {
                self.metrics
                    .count_delivery(&hook.name, DeliveryOutcome::Failed);
                if attempts >= hook.max_attempts {
                    self.metrics
                        .count_delivery(&hook.name, DeliveryOutcome::DeadLettered);
                    tracing::warn!(destination = %hook.name, %target, delivery = %row.delivery_id, %error, attempts, "webhook dead-lettered");
                    return self
                        .store
                        .run(move |s| s.mark_dead(seq, attempts, &error, Some(&target)))
                        .await;
                }
                let delay = retry_after.unwrap_or_else(|| delivery::backoff(hook, attempts));
                let next = now_ms() + delay.as_millis() as i64;
                tracing::debug!(destination = %hook.name, %target, delivery = %row.delivery_id, %error, ?delay, "webhook retry scheduled");
                self.store
                    .run(move |s| s.reschedule(seq, attempts, next, Some(&error), Some(&target)))
                    .await
            }
        }
    }
}
