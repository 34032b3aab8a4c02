//! Schema versions of `alerts.db`, applied in order and recorded in `PRAGMA user_version`.

use rusqlite::Connection;

use crate::ApiError;

/// Index `i` migrates a database from version `i` to `i + 1`. Append only.
const MIGRATIONS: &[&str] = &[
    // v1: alerts, their state history, incidents, the webhook outbox.
    "CREATE TABLE alerts (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        severity INTEGER NOT NULL,
        score REAL NOT NULL,
        source_key TEXT NOT NULL,
        destination_key TEXT,
        incident_id TEXT,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'open',
        body TEXT NOT NULL
    );
    CREATE INDEX alerts_by_last_seen ON alerts(last_seen DESC, id DESC);
    CREATE INDEX alerts_by_edge ON alerts(source_key, destination_key);
    CREATE INDEX alerts_by_incident ON alerts(incident_id);
    CREATE TABLE alert_state_changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_id TEXT NOT NULL REFERENCES alerts(id),
        state TEXT NOT NULL,
        actor TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX state_changes_by_alert ON alert_state_changes(alert_id, seq);
    CREATE TABLE incidents (
        id TEXT PRIMARY KEY,
        severity INTEGER NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX incidents_by_last_seen ON incidents(last_seen DESC, id DESC);
    CREATE TABLE webhook_outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id TEXT NOT NULL UNIQUE,
        destination TEXT NOT NULL,
        alert_id TEXT NOT NULL,
        body TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        created_at INTEGER NOT NULL,
        finished_at INTEGER
    );
    CREATE INDEX outbox_due ON webhook_outbox(status, next_attempt_at);",
    // v2: webhook URLs are credentials. Outbox rows name their hook by `name`; `target`
    // keeps the redacted URL (scheme, host, port, digest) of the last attempt. Errors of
    // earlier versions quoted the full URL: their detail is dropped, and `secure_delete`
    // zeroes the freed bytes instead of leaving them in the file.
    "PRAGMA secure_delete = ON;
    ALTER TABLE webhook_outbox ADD COLUMN target TEXT;
    UPDATE webhook_outbox
       SET last_error = 'request failed (detail removed on upgrade: it could quote the webhook URL)'
     WHERE last_error LIKE 'request failed%';",
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Connection settings shared by every connection to the store.
///
/// WAL lets the API read while the writer commits. `synchronous=FULL` fsyncs the WAL at
/// every commit: alerts are few and committed in batches, so the cost is small, and an
/// alert the API has shown (or a delivery it marked done) then survives power loss, not
/// just `kill -9` (which `NORMAL` would already survive).
pub(crate) fn configure(conn: &Connection) -> Result<(), ApiError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(())
}

pub(crate) fn migrate(conn: &mut Connection) -> Result<(), ApiError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(ApiError::Schema(format!(
            "alerts.db has schema version {version}, newer than this binary's {SCHEMA_VERSION}"
        )));
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", from as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("a.db")).unwrap();
        configure(&conn).unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(
            migrate(&mut conn)
                .unwrap_err()
                .to_string()
                .contains("newer")
        );
    }

    #[test]
    fn v2_drops_error_details_that_quoted_webhook_urls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let mut conn = Connection::open(&path).unwrap();
        configure(&conn).unwrap();
        // A v1 store with a dead letter whose error quotes a Slack URL.
        let tx = conn.transaction().unwrap();
        tx.execute_batch(MIGRATIONS[0]).unwrap();
        tx.pragma_update(None, "user_version", 1).unwrap();
        tx.commit().unwrap();
        let leaked = "request failed: error sending request for url \
                      (https://hooks.slack.com/services/T1/B2/SECRETSECRETSECRET)";
        for (id, error) in [("d1", leaked), ("d2", "receiver answered 500")] {
            conn.execute(
                "INSERT INTO webhook_outbox (delivery_id, destination, alert_id, body, status,
                 next_attempt_at, last_error, created_at) VALUES (?, 'slack', 'a', '{}', 'dead', 0, ?, 0)",
                [id, error],
            )
            .unwrap();
        }
        migrate(&mut conn).unwrap();
        let errors: Vec<String> = conn
            .prepare("SELECT last_error FROM webhook_outbox ORDER BY delivery_id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            errors[0].starts_with("request failed (detail removed"),
            "{errors:?}"
        );
        assert_eq!(errors[1], "receiver answered 500");
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
        drop(conn);
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(18).any(|w| w == b"SECRETSECRETSECRET"),
            "the old error text is gone from the file"
        );
    }
}
