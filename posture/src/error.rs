use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PostureError {
    #[error("reading the call history failed: {0}")]
    History(#[from] eastwest_baseline::BaselineError),
    #[error("reading the alert store failed: {0}")]
    Alerts(#[from] eastwest_api::ApiError),
    #[error("sensitive pattern {name:?} is not a valid regular expression: {source}")]
    Pattern { name: String, source: regex::Error },
    #[error("data dir {0} does not exist")]
    NoDataDir(PathBuf),
    #[error("writing the report failed: {0}")]
    Render(String),
    #[error("invalid report period: {0}")]
    Period(String),
    #[error("reading or replaying the policy files")]
    Policy(#[from] eastwest_policy::PolicyError),
}

impl From<csv::Error> for PostureError {
    fn from(e: csv::Error) -> Self {
        Self::Render(e.to_string())
    }
}

impl From<serde_json::Error> for PostureError {
    fn from(e: serde_json::Error) -> Self {
        Self::Render(e.to_string())
    }
}
