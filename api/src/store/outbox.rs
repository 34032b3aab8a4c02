//! The webhook outbox: rows written in the same transaction as the alert they announce,
//! so a delivery is never lost between "stored" and "sent". The delivery id is chosen
//! at enqueue time and never changes, across retries and restarts.
//!
//! A row names its hook by the configured `name`; the URL (a credential) is looked up
//! from the config at send time and never stored. `target` keeps only the redacted URL
//! (scheme, host, port, digest) of the last attempt, for dead letters.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;

use super::{AlertStore, now_ms};
use crate::ApiError;

/// A rendered payload for one destination.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub destination: String,
    pub body: String,
}

/// A pending delivery due for an attempt.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub seq: i64,
    pub delivery_id: String,
    pub destination: String,
    pub alert_id: String,
    pub body: String,
    pub attempts: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub delivery_id: String,
    /// The hook's configured name.
    pub destination: String,
    /// Where the last attempt went, redacted: `scheme://host[:port] (digest)`.
    pub target: Option<String>,
    pub alert_id: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub dead_at: Option<DateTime<Utc>>,
}

pub(crate) fn enqueue(
    tx: &Transaction<'_>,
    alert_id: &str,
    item: &OutboxItem,
) -> Result<(), ApiError> {
    let now = now_ms();
    tx.execute(
        "INSERT INTO webhook_outbox (delivery_id, destination, alert_id, body, next_attempt_at, created_at)
         VALUES (?, ?, ?, ?, ?, ?)",
        params![uuid::Uuid::now_v7().to_string(), item.destination, alert_id, item.body, now, now],
    )?;
    Ok(())
}

fn ms_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl AlertStore {
    /// Pending deliveries whose next attempt is due at `now_ms`, oldest first.
    pub fn due_deliveries(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxRow>, ApiError> {
        self.with_writer(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, delivery_id, destination, alert_id, body, attempts FROM webhook_outbox
                 WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, seq LIMIT ?",
            )?;
            let rows = stmt.query_map(params![now_ms, limit as i64], |r| {
                Ok(OutboxRow {
                    seq: r.get(0)?,
                    delivery_id: r.get(1)?,
                    destination: r.get(2)?,
                    alert_id: r.get(3)?,
                    body: r.get(4)?,
                    attempts: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// When the earliest pending delivery is due (unix ms).
    pub fn next_delivery_due(&self) -> Result<Option<i64>, ApiError> {
        self.with_writer(|conn| {
            Ok(conn
                .query_row(
                    "SELECT MIN(next_attempt_at) FROM webhook_outbox WHERE status = 'pending'",
                    [],
                    |r| r.get::<_, Option<i64>>(0),
                )
                .optional()?
                .flatten())
        })
    }

    /// `target` is the redacted URL the attempt went to.
    pub fn mark_delivered(&self, seq: i64, attempts: u32, target: &str) -> Result<(), ApiError> {
        self.finish(seq, "delivered", attempts, None, Some(target))
    }

    /// `error` and `target` must not quote the hook's URL (see `webhook::redact`);
    /// `target` is `None` when no attempt was made.
    pub fn mark_dead(
        &self,
        seq: i64,
        attempts: u32,
        error: &str,
        target: Option<&str>,
    ) -> Result<(), ApiError> {
        self.finish(seq, "dead", attempts, Some(error), target)
    }

    fn finish(
        &self,
        seq: i64,
        status: &str,
        attempts: u32,
        error: Option<&str>,
        target: Option<&str>,
    ) -> Result<(), ApiError> {
        self.with_writer(|conn| {
            conn.execute(
                "UPDATE webhook_outbox SET status = ?, attempts = ?, last_error = COALESCE(?, last_error),
                 target = COALESCE(?, target), finished_at = ? WHERE seq = ?",
                params![status, attempts, error, target, now_ms(), seq],
            )?;
            Ok(())
        })
    }

    /// Moves a delivery's next attempt to `next_at_ms`, recording how many attempts
    /// were made (unchanged when it was only rate-limited), the error and the redacted
    /// target of the failed attempt.
    pub fn reschedule(
        &self,
        seq: i64,
        attempts: u32,
        next_at_ms: i64,
        error: Option<&str>,
        target: Option<&str>,
    ) -> Result<(), ApiError> {
        self.with_writer(|conn| {
            conn.execute(
                "UPDATE webhook_outbox SET attempts = ?, next_attempt_at = ?,
                 last_error = COALESCE(?, last_error), target = COALESCE(?, target) WHERE seq = ?",
                params![attempts, next_at_ms, error, target, seq],
            )?;
            Ok(())
        })
    }

    pub fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, ApiError> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT delivery_id, destination, target, alert_id, attempts, last_error, created_at,
                 finished_at FROM webhook_outbox WHERE status = 'dead' ORDER BY finished_at DESC, seq DESC LIMIT ?",
            )?;
            let rows = stmt.query_map([limit as i64], |r| {
                Ok(DeadLetter {
                    delivery_id: r.get(0)?,
                    destination: r.get(1)?,
                    target: r.get(2)?,
                    alert_id: r.get(3)?,
                    attempts: r.get(4)?,
                    last_error: r.get(5)?,
                    created_at: ms_to_time(r.get(6)?),
                    dead_at: r.get::<_, Option<i64>>(7)?.map(ms_to_time),
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Outbox rows by (destination, status): `pending`, `delivered`, `dead`.
    pub fn outbox_counts(&self) -> Result<Vec<(String, String, u64)>, ApiError> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT destination, status, COUNT(*) FROM webhook_outbox GROUP BY destination, status
                 ORDER BY destination, status",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Forgets delivered rows finished before `before_ms` (dead letters are kept).
    pub fn prune_delivered(&self, before_ms: i64) -> Result<usize, ApiError> {
        self.with_writer(|conn| {
            Ok(conn.execute(
                "DELETE FROM webhook_outbox WHERE status = 'delivered' AND finished_at < ?",
                [before_ms],
            )?)
        })
    }
}
