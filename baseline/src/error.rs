use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid baseline config: {0}")]
    Config(String),
    #[error("corrupt baseline file {path}: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{path} was written by a newer eastwest (format {found}, this build reads up to {supported}); upgrade eastwest or point --data-dir elsewhere"
    )]
    NewerFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("no baseline snapshot in {0}")]
    NoSnapshot(PathBuf),
    #[error("query failed: {0}")]
    Query(String),
    #[error(
        "only read-only queries are allowed (SELECT, WITH … SELECT, EXPLAIN, SHOW, DESCRIBE): {0}"
    )]
    ReadOnly(String),
}

impl BaselineError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, detail: impl ToString) -> Self {
        Self::Corrupt {
            path: path.into(),
            detail: detail.to_string(),
        }
    }
}

impl From<datafusion::error::DataFusionError> for BaselineError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Self::Query(e.to_string())
    }
}
