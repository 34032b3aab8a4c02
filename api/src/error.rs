/// Everything that can go wrong in the API crate; HTTP handlers map it to a status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unauthorized")]
    Unauthorized,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid config: {0}")]
    Config(String),
    #[error("alert store: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("alert store schema: {0}")]
    Schema(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("background task failed: {0}")]
    Task(String),
}
