//! Turning events into the bytes of an object, and reading them back after a restart.

pub mod check;
pub mod codec;
pub mod encode;
pub mod key;
pub mod parquet;
pub mod writer;

use serde::{Deserialize, Serialize};

/// What a delivered object holds (`format`), as the journal records it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectFormat {
    /// JSON lines, in the object's codec.
    #[default]
    JsonLines,
    /// A Parquet file, written from the object's JSON lines when it is delivered.
    Parquet,
}

impl ObjectFormat {
    /// Whether this is the default, which the journal leaves unsaid.
    pub fn is_json_lines(&self) -> bool {
        *self == ObjectFormat::JsonLines
    }
}
