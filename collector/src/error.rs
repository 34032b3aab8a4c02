#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("malformed payload: {0}")]
    Malformed(String),
}
