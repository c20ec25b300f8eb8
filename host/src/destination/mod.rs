//! Where sealed objects are delivered: a [`Destination`] stores an object at its key.
//!
//! The engine hands over objects that are complete and synced in `store_dir`; a
//! destination reads the file as it likes (whole, or in parts for a multipart upload) and
//! must leave the key holding the whole object or nothing. Delivering the same object twice
//! (after a crash) writes the same bytes to the same key.

pub mod dir;

use std::fmt::Debug;
use std::path::PathBuf;

/// A sealed object, ready to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedObject {
    /// The object's id (its `$INDEX`).
    pub id: u64,
    /// The key it is delivered at.
    pub key: String,
    /// Its file in `store_dir`.
    pub path: PathBuf,
    /// The file's length.
    pub len: u64,
}

/// A place objects are delivered to.
pub trait Destination: Send + Sync + Debug {
    /// Stores `object` at its key, complete or not at all.
    ///
    /// # Errors
    ///
    /// Why it did not happen; [`DeliveryError::is_retryable`] says whether to try again.
    fn put(&self, object: &SealedObject) -> Result<(), DeliveryError>;

    /// Whether an object is stored at `key`.
    ///
    /// # Errors
    ///
    /// When the destination cannot be asked.
    fn exists(&self, key: &str) -> Result<bool, DeliveryError>;

    /// Where objects go, for log lines.
    fn describe(&self) -> String;
}

/// A delivery that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// A local file operation failed (full disk, permissions, ...).
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The key cannot name an object at this destination.
    #[error("the key '{key}' cannot be used: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// Why not.
        reason: &'static str,
    },
}

impl DeliveryError {
    /// Whether trying again later may succeed. Local I/O errors may (space is freed,
    /// permissions are fixed, a volume is remounted); a bad key never does.
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliveryError::Io { .. } => true,
            DeliveryError::InvalidKey { .. } => false,
        }
    }
}
