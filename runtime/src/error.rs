//! The runtime's errors: configuration, start-up and the stages that can fail.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid config file {}: {source}", path.display())]
    ConfigFile {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("invalid config {section}: {reason}")]
    Config { section: String, reason: String },
    #[error("cannot create data dir {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot bind the OTLP receivers: {0}")]
    Receivers(#[from] eastwest_collector::CollectorError),
    #[error("cannot bind the API on {addr}: {source}")]
    ApiBind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot restore the baseline from {}: {source}", path.display())]
    Restore {
        path: PathBuf,
        #[source]
        source: eastwest_baseline::BaselineError,
    },
    #[error("alert store or API: {0}")]
    Api(#[from] eastwest_api::ApiError),
    #[error("cannot start the {stage} thread: {source}")]
    Thread {
        stage: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the {0} stage failed")]
    StageFailed(&'static str),
    #[error("scenario: {0}")]
    Dataset(#[from] eastwest_datasets::DatasetError),
    #[error("cannot create a temporary directory: {0}")]
    TempDir(#[source] std::io::Error),
}
