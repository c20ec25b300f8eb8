//! Where decoded records are delivered.

pub mod dir;

/// A delivery that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Writing to the local filesystem failed (full disk, permissions, ...).
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl DeliveryError {
    /// Whether trying again later may succeed. Every local I/O error may: space is freed,
    /// permissions are fixed, a volume is remounted.
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliveryError::Io { .. } => true,
        }
    }
}
