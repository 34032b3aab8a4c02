#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    #[error("invalid detector config: {0}")]
    Config(String),
}
