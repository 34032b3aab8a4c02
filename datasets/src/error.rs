#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("unknown scenario: {0}")]
    UnknownScenario(String),
}
