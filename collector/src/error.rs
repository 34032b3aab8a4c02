#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("malformed payload: {0}")]
    Malformed(String),
    #[error("invalid receiver config: {0}")]
    InvalidConfig(String),
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        what: String,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Serve(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("sending to {endpoint} failed: {reason}")]
    Send { endpoint: String, reason: String },
}
