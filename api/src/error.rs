/// Everything that can go wrong in the API crate; HTTP handlers map it to a status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unauthorized")]
    Unauthorized,
    /// A `Host` this server does not answer to (DNS rebinding): 421.
    #[error("misdirected request: {0}")]
    MisdirectedHost(String),
    /// A state-changing request a web page may have forged (CSRF): 403.
    #[error("forbidden: {0}")]
    Forbidden(String),
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
