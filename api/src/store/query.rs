//! Alert list filters and keyset pagination.

use chrono::{DateTime, Utc};
use eastwest_model::{Alert, AlertKind, AlertState, Severity};
use rusqlite::types::Value;
use serde::Serialize;

use crate::ApiError;

pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1000;

/// Position after the last alert of a page (newest first: `last_seen` desc, `id` desc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub last_seen_us: i64,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}_{}", self.last_seen_us, self.id)
    }

    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let bad = || {
            ApiError::BadRequest(format!(
                "invalid cursor {text:?} (use the `next` value of a previous page)"
            ))
        };
        let (us, id) = text.split_once('_').ok_or_else(bad)?;
        let last_seen_us = us.parse().map_err(|_| bad())?;
        if id.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            last_seen_us,
            id: id.to_string(),
        })
    }

    pub(crate) fn after(alert: &Alert) -> Self {
        Self {
            last_seen_us: alert.last_seen.timestamp_micros(),
            id: alert.id.clone(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// Any of these kinds; empty means all.
    pub kinds: Vec<AlertKind>,
    /// At least this severity.
    pub min_severity: Option<Severity>,
    /// `last_seen >= since`.
    pub since: Option<DateTime<Utc>>,
    pub state: Option<AlertState>,
    /// Workload keys.
    pub source: Option<String>,
    pub destination: Option<String>,
    pub incident: Option<String>,
    pub before: Option<Cursor>,
    /// Page size; 0 means [`DEFAULT_PAGE`]; capped at [`MAX_PAGE`].
    pub limit: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertPage {
    pub alerts: Vec<Alert>,
    /// Pass as `before` to get the next (older) page; `null` on the last page.
    pub next: Option<String>,
}

impl AlertFilter {
    pub(crate) fn page_size(&self) -> usize {
        match self.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        }
    }

    /// `WHERE …` clause and its parameters.
    pub(crate) fn to_sql(&self) -> (String, Vec<Value>) {
        let mut clauses: Vec<String> = Vec::new();
        let mut params: Vec<Value> = Vec::new();
        if !self.kinds.is_empty() {
            let marks = vec!["?"; self.kinds.len()].join(",");
            clauses.push(format!("kind IN ({marks})"));
            params.extend(self.kinds.iter().map(|k| Value::Text(k.as_str().into())));
        }
        if let Some(sev) = self.min_severity {
            clauses.push("severity >= ?".into());
            params.push(Value::Integer(severity_rank(sev)));
        }
        if let Some(since) = self.since {
            clauses.push("last_seen >= ?".into());
            params.push(Value::Integer(since.timestamp_micros()));
        }
        if let Some(state) = self.state {
            clauses.push("state = ?".into());
            params.push(Value::Text(state_str(state).into()));
        }
        for (column, value) in [
            ("source_key", &self.source),
            ("destination_key", &self.destination),
            ("incident_id", &self.incident),
        ] {
            if let Some(v) = value {
                clauses.push(format!("{column} = ?"));
                params.push(Value::Text(v.clone()));
            }
        }
        if let Some(c) = &self.before {
            clauses.push("(last_seen < ? OR (last_seen = ? AND id < ?))".into());
            params.push(Value::Integer(c.last_seen_us));
            params.push(Value::Integer(c.last_seen_us));
            params.push(Value::Text(c.id.clone()));
        }
        let sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        (sql, params)
    }
}

pub(crate) fn severity_rank(s: Severity) -> i64 {
    Severity::ALL.iter().position(|x| *x == s).unwrap_or(0) as i64
}

pub fn state_str(s: AlertState) -> &'static str {
    match s {
        AlertState::Open => "open",
        AlertState::Acked => "acked",
        AlertState::Accepted => "accepted",
    }
}

pub fn parse_state(s: &str) -> Option<AlertState> {
    [AlertState::Open, AlertState::Acked, AlertState::Accepted]
        .into_iter()
        .find(|x| state_str(*x) == s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn cursor_round_trips(us in any::<i64>(), id in "[a-zA-Z0-9_:.-]{1,40}") {
            let c = Cursor { last_seen_us: us, id };
            prop_assert_eq!(Cursor::parse(&c.encode()).unwrap(), c);
        }

        #[test]
        fn cursor_parse_never_panics(text in ".{0,60}") {
            let _ = Cursor::parse(&text);
        }
    }

    #[test]
    fn bad_cursors_are_rejected_with_a_message() {
        for bad in ["", "abc", "12", "12_", "x_y"] {
            let err = Cursor::parse(bad).unwrap_err().to_string();
            assert!(err.contains("invalid cursor"), "{bad}: {err}");
        }
    }

    #[test]
    fn severity_ranks_follow_order() {
        assert!(severity_rank(Severity::Critical) > severity_rank(Severity::High));
        assert_eq!(severity_rank(Severity::Info), 0);
        assert_eq!(parse_state("acked"), Some(AlertState::Acked));
        assert_eq!(parse_state("nope"), None);
    }
}
