//! Posture findings and audit reports: computed over the data dir by `eastwest-posture`
//! (which depends on this crate for the alert store), served here through [`Evidence`].

use std::time::Duration;

use crate::ApiError;

/// A response body and its content type.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub content_type: &'static str,
    pub body: String,
}

/// What `GET /api/v1/posture` and `GET /api/v1/report` serve. Methods run on blocking
/// threads (they scan the Parquet history).
pub trait Evidence: Send + Sync + 'static {
    /// Ranked posture findings (JSON) over the history of the last `since`.
    fn posture(&self, since: Duration) -> Result<Rendered, ApiError>;
    /// The audit report over the last `since` as `json`, `csv` or `html`.
    fn report(&self, since: Duration, format: &str) -> Result<Rendered, ApiError>;
}
