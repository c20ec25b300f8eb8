//! Where sealed objects are delivered: a [`Destination`] stores an object at its key.
//!
//! The engine hands over objects that are complete and synced in `store_dir`; a
//! destination reads the file as it likes (whole, or in parts for a multipart upload) and
//! must leave the key holding the whole object or nothing. While an object is open, the
//! engine also shows the destination its committed bytes, which a destination that uploads
//! in parts stores ahead. Delivering the same object twice (after a crash) writes the same
//! bytes to the same key.

pub mod dir;
pub mod s3;

use std::fmt::Debug;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::SinkConfig;
use crate::metrics::Metrics;
use crate::object::ObjectFormat;
use crate::object::codec::Codec;

/// Why a destination did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The folder of `sink dir` cannot be used.
    #[error(transparent)]
    Dir(#[from] DeliveryError),
    /// The S3 client's threads cannot start.
    #[error("starting the S3 client's threads: {0}")]
    Runtime(#[source] io::Error),
    /// A sink component takes the records itself: it has no destination.
    #[error("a sink component has no destination")]
    Component,
}

/// Opens the destination that `sink` delivers the object engine's objects to: a folder
/// (`sink dir`) or a bucket (`sink s3`).
///
/// # Errors
///
/// When the destination cannot be used (nothing is sent yet), or `sink` is a component.
pub fn open(sink: &SinkConfig, metrics: &Metrics) -> Result<Box<dyn Destination>, OpenError> {
    Ok(match sink {
        SinkConfig::Dir { path, file_mode } => {
            Box::new(dir::DirDestination::open(path, *file_mode)?)
        }
        SinkConfig::S3(s3) => Box::new(
            s3::S3Destination::open((**s3).clone(), metrics.clone()).map_err(OpenError::Runtime)?,
        ),
        SinkConfig::Component(_) => return Err(OpenError::Component),
    })
}

/// A sealed object, ready to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedObject {
    /// The object's id in the store.
    pub id: u64,
    /// The key it is delivered at.
    pub key: String,
    /// Drawn when it opened, and stored with it: a destination that finds an object at the
    /// key tells by it whether that object is this one.
    pub token: String,
    /// The tag of its records and the start of their window, to give it another key of
    /// its series if its key is taken.
    pub tag: String,
    /// See `tag`.
    pub window_start: i64,
    /// Its file in `store_dir`.
    pub path: PathBuf,
    /// How its file is stored.
    pub codec: Codec,
    /// What it is delivered as: a Parquet object's file holds its lines, and the delivery
    /// writes the Parquet file from them.
    pub format: ObjectFormat,
    /// The file's length.
    pub len: u64,
    /// How far an earlier attempt at uploading it in parts came.
    pub progress: Option<UploadProgress>,
}

impl SealedObject {
    /// The sealed object of what the journal says of it.
    pub fn new(
        opened: &crate::store::journal::Opened,
        path: PathBuf,
        len: u64,
        progress: Option<UploadProgress>,
    ) -> SealedObject {
        SealedObject {
            id: opened.id,
            key: opened.key.clone(),
            // Objects of a version 1 journal have none: the store's id stands in for it.
            token: if opened.token.is_empty() {
                format!("id-{}", opened.id)
            } else {
                opened.token.clone()
            },
            tag: opened.tag.clone(),
            window_start: opened.window_start,
            path,
            codec: opened.codec,
            format: opened.format,
            len,
            progress,
        }
    }
}

/// An upload in parts that has begun: what a destination needs to resume it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadProgress {
    /// The destination's id of the upload (an S3 multipart upload id).
    pub upload_id: String,
    /// The size of every part but the last, in bytes of the object's file.
    pub part_size: u64,
    /// The parts stored so far, in order of their numbers.
    pub parts: Vec<PartDone>,
}

/// A part of an upload that the destination has stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartDone {
    /// Its number, from 1.
    pub number: u32,
    /// The destination's tag for it (an S3 ETag), needed to complete the upload.
    pub etag: String,
    /// Its checksum, when uploads carry one (`checksum_algorithm`), also needed to
    /// complete the upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// Where a destination records how far an upload in parts has come.
pub trait ProgressLog {
    /// The progress an earlier attempt recorded, if any.
    fn resume(&self) -> Option<&UploadProgress>;

    /// Records `progress` durably; a later attempt, after a restart too, gets it from
    /// [`resume`](Self::resume). `None` forgets it (the upload was aborted).
    ///
    /// # Errors
    ///
    /// When it cannot be made durable; the destination should then fail the attempt.
    fn record(&mut self, progress: Option<UploadProgress>) -> io::Result<()>;
}

/// Progress kept in memory only: for one-off deliveries and tests.
impl ProgressLog for Option<UploadProgress> {
    fn resume(&self) -> Option<&UploadProgress> {
        self.as_ref()
    }

    fn record(&mut self, progress: Option<UploadProgress>) -> io::Result<()> {
        *self = progress;
        Ok(())
    }
}

/// A place objects are delivered to.
pub trait Destination: Send + Sync + Debug {
    /// Stores `object` at its key, complete or not at all, and never over another object:
    /// when the key holds an object with another token, nothing is written and the answer
    /// is [`DeliveryError::KeyTaken`]; when it holds this object (delivered before a crash
    /// lost the record of it), the answer is Ok. A destination that uploads in parts
    /// records its progress in `progress` as it goes and resumes from it.
    ///
    /// # Errors
    ///
    /// Why it did not happen; [`DeliveryError::is_retryable`] says whether to try again.
    fn put(
        &self,
        object: &SealedObject,
        progress: &mut dyn ProgressLog,
    ) -> Result<(), DeliveryError>;

    /// The size of the parts that [`put_ahead`](Self::put_ahead) stores; None when this
    /// destination stores nothing before an object is sealed.
    fn ahead_part_size(&self) -> Option<u64> {
        None
    }

    /// Stores ahead what it can of an object that is still open: `object.len` is its
    /// committed length, bytes of its file that never change. A destination that uploads in
    /// parts stores the next part if more data follows it, recording it in `progress`;
    /// [`put`](Self::put) of the sealed object resumes from them. Storing nothing is an
    /// answer too: `progress` then stays empty, and `put` does all of it.
    ///
    /// # Errors
    ///
    /// Why a part was not stored; `put` sends it later.
    fn put_ahead(
        &self,
        object: &SealedObject,
        progress: &mut dyn ProgressLog,
    ) -> Result<(), DeliveryError> {
        let _ = (object, progress);
        Ok(())
    }

    /// Whether an object is stored at `key`.
    ///
    /// # Errors
    ///
    /// When the destination cannot be asked.
    fn exists(&self, key: &str) -> Result<bool, DeliveryError>;

    /// Where objects go, for log lines.
    fn describe(&self) -> String;

    /// Gives up on `object` (it is being quarantined): frees what a partial delivery holds
    /// at the destination, such as the parts of an unfinished multipart upload. Best effort.
    fn abandon(&self, object: &SealedObject) {
        let _ = object;
    }
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
    /// A request to a remote destination failed.
    #[error("{action}: {detail}")]
    Request {
        /// What was being done, with the bucket and key.
        action: String,
        /// What went wrong, and what to do about it.
        detail: String,
        /// Whether the server refused the credentials (expired, rotated, denied): new
        /// credentials may succeed at once.
        credentials_refused: bool,
    },
    /// Another object is already at the key; nothing was written over it.
    #[error("the key '{key}' already holds another object")]
    KeyTaken {
        /// The key.
        key: String,
    },
    /// The object could not be written in its format.
    #[error("writing the object as Parquet: {0}")]
    Convert(#[from] crate::object::parquet::ConvertError),
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
    /// permissions are fixed, a volume is remounted), and so may requests (a server comes
    /// back, a policy is fixed); a bad key never does.
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliveryError::Io { .. } | DeliveryError::Request { .. } => true,
            // The object goes to another key of its series.
            DeliveryError::KeyTaken { .. } => true,
            DeliveryError::InvalidKey { .. } => false,
            DeliveryError::Convert(error) => error.is_retryable(),
        }
    }

    /// The cause without the object it happened to: failures of many objects for one cause
    /// (a policy, a full disk, a server down) have the same.
    pub fn cause(&self) -> String {
        match self {
            DeliveryError::Io { action, source, .. } => format!("{action}: {source}"),
            DeliveryError::Request { detail, .. } => detail.clone(),
            DeliveryError::KeyTaken { .. } => "the key holds another object".to_owned(),
            DeliveryError::InvalidKey { reason, .. } => (*reason).to_owned(),
            DeliveryError::Convert(error) => error.cause(),
        }
    }
}
