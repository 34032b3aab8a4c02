use std::path::PathBuf;

/// Everything that can go wrong compiling, reading or replaying policies.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("reading the data dir")]
    Baseline(#[from] eastwest_baseline::BaselineError),
    #[error("querying the call history")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error("reading query results")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error(
        "no baseline snapshot in {0} (run `eastwest serve` until it writes one, or give --since/--until to read the call history)"
    )]
    NoSnapshot(PathBuf),
    #[error("document {index}: {detail}")]
    Parse { index: usize, detail: String },
    #[error("writing yaml")]
    Yaml(#[from] yaml_serde::Error),
    #[error("unknown policy format {0:?} (expected istio, networkpolicy, cilium or linkerd)")]
    UnknownFormat(String),
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("in {}", path.display())]
    InFile {
        path: PathBuf,
        source: Box<PolicyError>,
    },
}
