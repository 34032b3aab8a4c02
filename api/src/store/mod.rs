//! The durable alert store: one SQLite database (`<data_dir>/alerts.db`) holding alerts,
//! their state history, incidents and the webhook outbox.
//!
//! Every call here is blocking; async callers go through [`AlertStore::run`], which
//! moves the work to tokio's blocking pool. Two connections: one for writes (the sink's
//! writer thread, state changes, the outbox) and one for reads, so API reads never wait
//! behind a commit (WAL).

mod alerts;
mod outbox;
mod query;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags};

use crate::ApiError;

pub use alerts::{AlertRecord, StateChange, WriteOutcome};
pub use outbox::{DeadLetter, OutboxItem, OutboxRow};
pub use query::{AlertFilter, AlertPage, Cursor, DEFAULT_PAGE, MAX_PAGE, parse_state, state_str};
pub use schema::SCHEMA_VERSION;

pub const DATABASE_FILE: &str = "alerts.db";

#[derive(Clone)]
pub struct AlertStore {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

impl AlertStore {
    /// Opens (creating and migrating when needed) `<data_dir>/alerts.db`.
    pub fn open(data_dir: &Path) -> Result<Self, ApiError> {
        std::fs::create_dir_all(data_dir)?;
        Self::open_file(&data_dir.join(DATABASE_FILE))
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
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
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
