use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("unknown scenario: {0}")]
    UnknownScenario(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad file {path}: {detail}")]
    BadFile { path: PathBuf, detail: String },
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// The topology lacks what the scenario needs (e.g. a database for `bulk-read`).
    #[error("scenario {scenario} is not available on topology {topology}: {reason}")]
    ScenarioUnavailable {
        scenario: String,
        topology: String,
        reason: String,
    },
    #[error("replay to {endpoint} failed: {detail}")]
    Replay { endpoint: String, detail: String },
}

impl DatasetError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        DatasetError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
