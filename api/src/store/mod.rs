//! The durable alert store: one SQLite database (`<data_dir>/alerts.db`) holding alerts,
//! their state history, incidents and the webhook outbox.
//!
//! Every call here is blocking; async callers go through [`AlertStore::run`], which
//! moves the work to tokio's blocking pool. Two connections: one for writes (the sink's
//! writer thread, state changes, the outbox) and one for reads, so API reads never wait
//! behind a commit (WAL).
//!
//! While commits fail (a full disk) the store says so ([`AlertStore::writes_failing`],
//! which readiness reads) and, when opened with one, keeps what waits for it in the
//! [`spool`]: a preallocated file that survives a crash and is replayed at the next
//! start.

mod alerts;
mod outbox;
mod query;
mod schema;
pub mod spool;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags};

use crate::ApiError;

pub(crate) use alerts::Replayed;
pub use alerts::{AlertRecord, StateChange, WriteOutcome};
pub use outbox::{DeadLetter, OutboxItem, OutboxRow};
pub use query::{AlertFilter, AlertPage, Cursor, DEFAULT_PAGE, MAX_PAGE, parse_state, state_str};
pub use schema::SCHEMA_VERSION;
pub use spool::{MIN_SPOOL_BYTES, SPOOL_FILE, Spooled};

use spool::Spool;

pub const DATABASE_FILE: &str = "alerts.db";

#[derive(Clone)]
pub struct AlertStore {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    /// Set by the alert sink while its commits fail, cleared by the next that succeeds.
    write_failing: AtomicBool,
    spool: Mutex<Option<Spool>>,
    /// What the spool held when the store opened, until the sink takes it.
    spooled: Mutex<Option<Spooled>>,
}

impl AlertStore {
    /// Opens (creating and migrating when needed) `<data_dir>/alerts.db`.
    pub fn open(data_dir: &Path) -> Result<Self, ApiError> {
        std::fs::create_dir_all(data_dir)?;
        Self::open_file(&data_dir.join(DATABASE_FILE))
    }

    /// [`AlertStore::open`] with a spool of `spool_bytes` (`<data_dir>/alerts.spool`,
    /// none when 0). A spool that cannot be made (the disk is already full) is logged and
    /// left out; the file, if any, is left as it is for a later start.
    pub fn open_with_spool(data_dir: &Path, spool_bytes: u64) -> Result<Self, ApiError> {
        let store = Self::open(data_dir)?;
        if spool_bytes == 0 {
            return Ok(store);
        }
        let path = data_dir.join(SPOOL_FILE);
        match Spool::open(&path, spool_bytes) {
            Ok((spool, spooled)) => {
                if !spooled.is_empty() {
                    tracing::warn!(
                        alerts = spooled.alerts.len(),
                        incidents = spooled.incidents.len(),
                        spool = %path.display(),
                        "alerts the store could not write before the last stop are in the spool; writing them now"
                    );
                }
                *store.inner.spool.lock() = Some(spool);
                *store.inner.spooled.lock() = Some(spooled);
            }
            Err(e) => {
                tracing::error!(error = %e, "no alert spool: alerts wait in memory only while the store cannot write");
            }
        }
        Ok(store)
    }

    pub fn open_file(path: &Path) -> Result<Self, ApiError> {
        let mut writer = Connection::open(path)?;
        schema::configure(&writer)?;
        schema::migrate(&mut writer)?;
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        reader.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(Self {
            inner: Arc::new(StoreInner {
                path: path.to_path_buf(),
                writer: Mutex::new(writer),
                reader: Mutex::new(reader),
                write_failing: AtomicBool::new(false),
                spool: Mutex::new(None),
                spooled: Mutex::new(None),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Every stored alert, newest first (all pages of [`AlertStore::list_alerts`]).
    pub fn all_alerts(&self) -> Result<Vec<eastwest_model::Alert>, ApiError> {
        let mut out = Vec::new();
        let mut before = None;
        loop {
            let page = self.list_alerts(&AlertFilter {
                limit: MAX_PAGE,
                before,
                ..Default::default()
            })?;
            out.extend(page.alerts);
            match page.next {
                Some(next) => before = Some(Cursor::parse(&next)?),
                None => return Ok(out),
            }
        }
    }

    /// Whether the alert sink's last commit failed (then the process is not ready).
    pub fn writes_failing(&self) -> bool {
        self.inner.write_failing.load(Ordering::Relaxed)
    }

    /// Sets the flag; returns its previous value.
    pub(crate) fn set_writes_failing(&self, failing: bool) -> bool {
        self.inner.write_failing.swap(failing, Ordering::Relaxed)
    }

    /// What the spool held at open, once.
    pub(crate) fn take_spooled(&self) -> Option<Spooled> {
        self.inner.spooled.lock().take()
    }

    /// Runs `f` on the spool, when there is one.
    pub(crate) fn with_spool<T>(&self, f: impl FnOnce(&mut Spool) -> T) -> Option<T> {
        self.inner.spool.lock().as_mut().map(f)
    }

    /// Runs blocking store work off the async runtime.
    pub async fn run<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&AlertStore) -> Result<T, ApiError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(|e| ApiError::Task(e.to_string()))?
    }

    /// Caps the database at its current size (`Some(0)`) plus `extra` pages, or lifts the
    /// cap (`None`): SQLite then fails writes with `SQLITE_FULL`, as on a full disk.
    #[cfg(test)]
    pub(crate) fn cap_pages(&self, extra: Option<i64>) {
        self.with_writer(|conn| {
            let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
            let cap = extra.map_or(i64::from(u32::MAX - 1), |e| pages + e);
            conn.pragma_update(None, "max_page_count", cap)?;
            Ok(())
        })
        .unwrap();
    }

    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        f(&self.inner.reader.lock())
    }

    fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        f(&mut self.inner.writer.lock())
    }
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
