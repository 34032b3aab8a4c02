//! Alerts, state changes and incidents.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use eastwest_model::{Alert, AlertState, Incident};
use rusqlite::{OptionalExtension, Row, Transaction, params, params_from_iter};
use serde::Serialize;

use super::outbox::{self, OutboxItem};
use super::query::{AlertFilter, AlertPage, Cursor, parse_state, severity_rank, state_str};
use super::{AlertStore, now_ms};
use crate::ApiError;

/// One recorded operator action on an alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateChange {
    pub state: AlertState,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// An alert with its state history (`GET /api/v1/alerts/{id}`).
#[derive(Debug, Clone, Serialize)]
pub struct AlertRecord {
    #[serde(flatten)]
    pub alert: Alert,
    pub history: Vec<StateChange>,
}

/// What one committed batch changed.
#[derive(Debug, Default)]
pub struct WriteOutcome {
    /// Stored versions (with state and merged `first_seen`), and whether each was new.
    pub alerts: Vec<(Alert, bool)>,
    pub incidents: Vec<Incident>,
    pub enqueued: usize,
}

/// Alerts and incidents replayed from the spool after a restart. The store may already
/// hold them, or newer versions (a crash between a commit and the clearing of the
/// spool): each is written only when it is newer than the stored version.
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    pub alerts: HashSet<String>,
    pub incidents: HashSet<String>,
}

impl Replayed {
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.incidents.is_empty()
    }
}

/// Whether `table` holds `id` with a `last_seen` at or after `last_seen_us`.
fn stored_is_as_new(
    tx: &Transaction<'_>,
    table: &str,
    id: &str,
    last_seen_us: i64,
) -> Result<bool, ApiError> {
    let stored: Option<i64> = tx
        .query_row(
            &format!("SELECT last_seen FROM {table} WHERE id = ?"),
            [id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(stored.is_some_and(|s| s >= last_seen_us))
}

const ALERT_COLUMNS: &str = "body, state";

fn alert_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Alert, ApiError>> {
    let body: String = row.get(0)?;
    let state: String = row.get(1)?;
    Ok(serde_json::from_str::<Alert>(&body)
        .map_err(ApiError::from)
        .map(|mut a| {
            a.state = parse_state(&state).unwrap_or_default();
            a
        }))
}

fn collect_alerts(
    rows: impl Iterator<Item = rusqlite::Result<Result<Alert, ApiError>>>,
) -> Result<Vec<Alert>, ApiError> {
    rows.map(|r| r.map_err(ApiError::from).and_then(|a| a))
        .collect()
}

impl AlertStore {
    /// Upserts alerts by id (keeping the earliest `first_seen` and the operator's
    /// state) and incidents, and queues webhook deliveries for alerts that are new or
    /// escalated, all in one transaction. Of the `replayed` ones, only versions newer
    /// than the stored ones are written.
    pub(crate) fn write_batch(
        &self,
        alerts: &[Alert],
        incidents: &[Incident],
        replayed: &Replayed,
        deliveries_for: &dyn Fn(&Alert) -> Vec<OutboxItem>,
    ) -> Result<WriteOutcome, ApiError> {
        self.with_writer(|conn| {
            let tx = conn.transaction()?;
            let mut outcome = WriteOutcome::default();
            for alert in alerts {
                if replayed.alerts.contains(&alert.id)
                    && stored_is_as_new(
                        &tx,
                        "alerts",
                        &alert.id,
                        alert.last_seen.timestamp_micros(),
                    )?
                {
                    continue;
                }
                let (stored, notify, is_new) = upsert_alert(&tx, alert)?;
                if notify {
                    for item in deliveries_for(&stored) {
                        outbox::enqueue(&tx, &stored.id, &item)?;
                        outcome.enqueued += 1;
                    }
                }
                outcome.alerts.push((stored, is_new));
            }
            for incident in incidents {
                if replayed.incidents.contains(&incident.id)
                    && stored_is_as_new(
                        &tx,
                        "incidents",
                        &incident.id,
                        incident.last_seen.timestamp_micros(),
                    )?
                {
                    continue;
                }
                outcome.incidents.push(upsert_incident(&tx, incident)?);
            }
            tx.commit()?;
            Ok(outcome)
        })
    }

    pub fn list_alerts(&self, filter: &AlertFilter) -> Result<AlertPage, ApiError> {
        let (clause, params) = filter.to_sql();
        let size = filter.page_size();
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alerts {clause} ORDER BY last_seen DESC, id DESC LIMIT {}",
            size + 1
        );
        let mut alerts = self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            collect_alerts(stmt.query_map(params_from_iter(params), alert_from_row)?)
        })?;
        let next = if alerts.len() > size {
            alerts.truncate(size);
            alerts.last().map(|a| Cursor::after(a).encode())
        } else {
            None
        };
        Ok(AlertPage { alerts, next })
    }

    pub fn get_alert(&self, id: &str) -> Result<Option<AlertRecord>, ApiError> {
        self.with_reader(|conn| {
            let alert = conn
                .query_row(
                    &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?"),
                    [id],
                    alert_from_row,
                )
                .optional()?
                .transpose()?;
            let Some(alert) = alert else { return Ok(None) };
            let mut stmt = conn.prepare_cached(
                "SELECT state, actor, at FROM alert_state_changes WHERE alert_id = ? ORDER BY seq",
            )?;
            let history = stmt
                .query_map([id], |r| {
                    Ok(StateChange {
                        state: parse_state(&r.get::<_, String>(0)?).unwrap_or_default(),
                        by: r.get(1)?,
                        at: DateTime::from_timestamp_millis(r.get(2)?).unwrap_or_default(),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(AlertRecord { alert, history }))
        })
    }

    /// Records an operator action; `Ok(None)` when the alert does not exist. Setting
    /// the state it already has records nothing.
    pub fn set_state(
        &self,
        id: &str,
        state: AlertState,
        by: &str,
    ) -> Result<Option<Alert>, ApiError> {
        self.with_writer(|conn| {
            let tx = conn.transaction()?;
            let current = tx
                .query_row(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?"), [id], alert_from_row)
                .optional()?
                .transpose()?;
            let Some(mut alert) = current else { return Ok(None) };
            if alert.state != state {
                tx.execute("UPDATE alerts SET state = ? WHERE id = ?", params![state_str(state), id])?;
                tx.execute(
                    "INSERT INTO alert_state_changes (alert_id, state, actor, at) VALUES (?, ?, ?, ?)",
                    params![id, state_str(state), by, now_ms()],
                )?;
                alert.state = state;
            }
            tx.commit()?;
            Ok(Some(alert))
        })
    }

    /// Edges (source key, destination key) with an alert that was not accepted.
    pub fn alerted_edges(&self) -> Result<HashSet<(String, String)>, ApiError> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT DISTINCT source_key, destination_key FROM alerts
                 WHERE state != 'accepted' AND destination_key IS NOT NULL",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    pub fn list_incidents(&self, limit: usize) -> Result<Vec<Incident>, ApiError> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT body FROM incidents ORDER BY last_seen DESC, id DESC LIMIT ?",
            )?;
            let rows = stmt.query_map([limit as i64], |r| r.get::<_, String>(0))?;
            rows.map(|r| Ok(serde_json::from_str(&r?)?)).collect()
        })
    }

    pub fn get_incident(&self, id: &str) -> Result<Option<(Incident, Vec<Alert>)>, ApiError> {
        let body: Option<String> = self.with_reader(|conn| {
            Ok(conn
                .query_row("SELECT body FROM incidents WHERE id = ?", [id], |r| {
                    r.get(0)
                })
                .optional()?)
        })?;
        let Some(body) = body else { return Ok(None) };
        let incident: Incident = serde_json::from_str(&body)?;
        // Alerts the incident lists, plus any alert that names the incident.
        let mut alerts = self
            .list_alerts(&AlertFilter {
                incident: Some(id.to_string()),
                limit: super::MAX_PAGE,
                ..Default::default()
            })?
            .alerts;
        let mut seen: HashSet<String> = alerts.iter().map(|a| a.id.clone()).collect();
        self.with_reader(|conn| {
            let mut stmt =
                conn.prepare_cached(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?"))?;
            for alert_id in incident.alert_ids.iter().take(super::MAX_PAGE) {
                if seen.insert(alert_id.clone())
                    && let Some(alert) = stmt.query_row([alert_id], alert_from_row).optional()?
                {
                    alerts.push(alert?);
                }
            }
            Ok(())
        })?;
        alerts.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then_with(|| b.id.cmp(&a.id)));
        Ok(Some((incident, alerts)))
    }
}

/// Returns the stored alert, whether webhooks should hear about it (new or escalated),
/// and whether it is new.
fn upsert_alert(tx: &Transaction<'_>, alert: &Alert) -> Result<(Alert, bool, bool), ApiError> {
    let old: Option<(i64, i64, String)> = tx
        .query_row(
            "SELECT severity, first_seen, state FROM alerts WHERE id = ?",
            [&alert.id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let mut stored = alert.clone();
    let rank = severity_rank(alert.severity);
    let (notify, is_new) = match &old {
        None => (true, true),
        Some((old_rank, old_first_us, state)) => {
            if *old_first_us < stored.first_seen.timestamp_micros() {
                stored.first_seen =
                    DateTime::from_timestamp_micros(*old_first_us).unwrap_or(stored.first_seen);
            }
            stored.state = parse_state(state).unwrap_or_default();
            (rank > *old_rank, false)
        }
    };
    let mut body_alert = stored.clone();
    body_alert.state = AlertState::Open; // the state column is the truth
    tx.execute(
        "INSERT INTO alerts (id, kind, severity, score, source_key, destination_key, incident_id,
                             first_seen, last_seen, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT(id) DO UPDATE SET kind = ?2, severity = ?3, score = ?4, source_key = ?5,
             destination_key = ?6, incident_id = ?7, first_seen = ?8, last_seen = ?9, body = ?10",
        params![
            stored.id,
            stored.kind.as_str(),
            rank,
            stored.score,
            stored.source.key().as_str(),
            stored.destination.as_ref().map(|d| d.key().to_string()),
            stored.incident_id,
            stored.first_seen.timestamp_micros(),
            stored.last_seen.timestamp_micros(),
            serde_json::to_string(&body_alert)?,
        ],
    )?;
    Ok((stored, notify, is_new))
}

fn upsert_incident(tx: &Transaction<'_>, incident: &Incident) -> Result<Incident, ApiError> {
    let old_first: Option<i64> = tx
        .query_row(
            "SELECT first_seen FROM incidents WHERE id = ?",
            [&incident.id],
            |r| r.get(0),
        )
        .optional()?;
    let mut stored = incident.clone();
    if let Some(first_us) = old_first.filter(|f| *f < incident.first_seen.timestamp_micros()) {
        stored.first_seen = DateTime::from_timestamp_micros(first_us).unwrap_or(stored.first_seen);
    }
    tx.execute(
        "INSERT INTO incidents (id, severity, first_seen, last_seen, body) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(id) DO UPDATE SET severity = ?2, first_seen = ?3, last_seen = ?4, body = ?5",
        params![
            stored.id,
            severity_rank(stored.severity),
            stored.first_seen.timestamp_micros(),
            stored.last_seen.timestamp_micros(),
            serde_json::to_string(&stored)?,
        ],
    )?;
    Ok(stored)
}
