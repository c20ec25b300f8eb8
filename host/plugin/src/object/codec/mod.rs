//! How an object's data is stored: plain JSON lines, gzip or zstd.
//!
//! A codec owns everything of an object's file that is not the data itself: the header a
//! new object starts with, how a block of lines is compressed, the points where a commit
//! may end (and so where a damaged object can be cut back to), and the trailer a seal
//! appends. The journal records each object's [`Codec`] by name, so that recovery reads
//! an object the way it was written, whatever the configuration says now.
//!
//! Every codec compresses the data in blocks of whole lines that can be compressed on
//! several threads at once and that each end at a point where the object can be committed.
//!
//! Adding a codec: a file here with its [`Format`] (and its [`BlockCompressor`]), its name in
//! [`Codec`], and its `compression` value in `config`.

mod deflate;
mod gzip;
mod plain;
mod zstd;

use std::fmt::Debug;
use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

pub use deflate::{BLOCK_SIZE as GZIP_BLOCK_SIZE, Deflater};

use super::writer::{Committed, SLICE};

/// Enough of a file's start to hold any codec's header.
const HEADER_MAX: usize = 16;

/// An object's codec, as the journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// Plain JSON lines.
    None,
    /// One gzip member.
    Gzip,
    /// zstd frames, one per block.
    Zstd,
}

impl Codec {
    /// Every codec, for messages and tests.
    pub const ALL: [Codec; 3] = [Codec::None, Codec::Gzip, Codec::Zstd];

    /// The name `compression` takes and the journal stores.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
        }
    }

    /// How objects of this codec are laid out.
    pub fn format(self) -> &'static dyn Format {
        match self {
            Codec::None => &plain::Plain,
            Codec::Gzip => &gzip::Gzip,
            Codec::Zstd => &zstd::Zstd,
        }
    }

    /// The codec of the object file at `path` that the journal does not describe, by the
    /// header it starts with (plain when none matches, or the file cannot be read). Reads
    /// only the file's first bytes.
    pub fn of_file(path: &std::path::Path) -> Codec {
        let mut start = Vec::with_capacity(HEADER_MAX);
        let read = std::fs::File::open(path).and_then(|file| {
            io::Read::read_to_end(&mut io::Read::take(file, HEADER_MAX as u64), &mut start)
        });
        match read {
            Ok(_) => Codec::sniff(&start),
            Err(_) => Codec::None,
        }
    }

    /// The codec whose header `bytes` start with (plain when none matches).
    fn sniff(bytes: &[u8]) -> Codec {
        Codec::ALL
            .into_iter()
            .find(|codec| {
                let header = codec.format().header();
                !header.is_empty() && bytes.starts_with(header)
            })
            .unwrap_or(Codec::None)
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A codec and its level, as configured (`compression`, `compression_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    /// The codec new objects are written with.
    pub codec: Codec,
    /// Its level, in the codec's own range; 0 for `none`.
    pub level: i32,
}

impl Compression {
    /// Plain JSON lines.
    pub const NONE: Compression = Compression {
        codec: Codec::None,
        level: 0,
    };

    /// The compressor of new objects' blocks; None for plain objects.
    pub fn compressor(&self) -> Option<Box<dyn BlockCompressor>> {
        match self.codec {
            Codec::None => None,
            Codec::Gzip => Some(Box::new(Deflater::new(self.level.unsigned_abs()))),
            Codec::Zstd => Some(Box::new(zstd::FrameCompressor::new(self.level))),
        }
    }
}

/// How objects of one codec are laid out.
pub trait Format: Sync + Debug {
    /// What every object of this codec starts with (a valid, empty object).
    fn header(&self) -> &'static [u8];
    /// How keys of such objects end by default, as `.gz`.
    fn extension(&self) -> &'static str;
    /// Whether blocks are compressed; if not, they are stored as they are.
    fn compresses(&self) -> bool;
    /// About how much data (whole lines) a block holds: the unit compressed on one thread,
    /// and the finest point at which an object is cut by size or salvaged.
    fn block_size(&self) -> usize {
        SLICE
    }
    /// What a seal appends to an object committed at `committed`.
    fn trailer(&self, committed: &Committed) -> Vec<u8>;
    /// Decodes `stored`, an object's bytes after its header (up to a commit, or to
    /// whatever a crash left), in order: the data, and each point where a commit may end.
    /// Stops early when `visit` returns false.
    ///
    /// # Errors
    ///
    /// Where and why the bytes stop being a valid object; everything visited before is
    /// intact.
    fn scan(&self, stored: &[u8], visit: &mut dyn FnMut(Piece<'_>) -> bool) -> Result<(), String>;
    /// The decoded data of a sealed object, read from `stored` as it is needed.
    ///
    /// # Errors
    ///
    /// When the decoder cannot be set up.
    fn reader<'a>(&self, stored: Box<dyn io::Read + 'a>) -> io::Result<Box<dyn io::Read + 'a>>;
    /// Whether `stored`, which ends at a [`Piece::End`] and decodes to `raw` bytes, seals
    /// into a whole object: a point may look like one and be none (deflate's marker can
    /// turn up inside compressed data).
    fn seals_whole(&self, _stored: &[u8], _raw: u64) -> bool {
        true
    }
}

/// What [`Format::scan`] finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Decoded data, in order.
    Data(&'a [u8]),
    /// A point where a commit may end: the bytes of the stored data before it.
    End(usize),
}

/// Compresses blocks at one level; called from several threads at once.
pub trait BlockCompressor: Send + Sync + Debug {
    /// Compresses `block` and stores the result in it.
    fn compress(&self, block: &mut Block<'_>);
    /// Gives back the memory kept for later blocks.
    fn release(&self);
}

/// Compression contexts kept between blocks, shared by the threads that compress: a context
/// costs hundreds of KiB to set up. [`BlockCompressor::release`] clears them.
struct Spares<T>(Mutex<Vec<T>>);

impl<T> Spares<T> {
    fn new() -> Spares<T> {
        Spares(Mutex::new(Vec::new()))
    }

    fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn put(&self, spare: T) {
        self.lock().push(spare);
    }

    fn clear(&self) {
        self.lock().clear();
    }
}

impl<T> Debug for Spares<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spares")
            .field("kept", &self.lock().len())
            .finish()
    }
}

/// One block of an object's data, and once compressed, its stored bytes.
#[derive(Debug)]
pub struct Block<'a> {
    /// The uncompressed data of the block: whole lines.
    pub raw: &'a [u8],
    /// The compressed block; None until compressed.
    pub compressed: Option<io::Result<Vec<u8>>>,
}

impl<'a> Block<'a> {
    /// A block not yet compressed.
    pub fn new(raw: &'a [u8]) -> Block<'a> {
        Block {
            raw,
            compressed: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_is_told_by_its_header_and_named_as_configured() {
        for codec in Codec::ALL {
            assert!(codec.format().header().len() <= HEADER_MAX);
            assert_eq!(Codec::sniff(codec.format().header()), codec);
            let json = serde_json::to_string(&codec).unwrap();
            assert_eq!(json, format!("\"{}\"", codec.name()));
        }
        assert_eq!(Codec::sniff(b"{\"log\":1}\n"), Codec::None);
    }
}
