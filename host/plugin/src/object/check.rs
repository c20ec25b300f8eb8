//! Reading an object's file back after a restart: does it hold what the journal committed,
//! and if it is damaged (or the journal is lost), how much of it is intact.
//!
//! Each reads the object's file into memory once (at most about `total_file_size`) and
//! decodes it with its [codec](super::codec), keeping only the CRC, the length and the
//! line being checked of the decoded data. An object can be cut and sealed where its codec
//! says a commit may end; [`intact_prefix`] looks for the last such point before any
//! damage.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use super::codec::{Codec, Piece};
use super::writer::Committed;

/// Checks that the file at `path` holds the data `committed` describes (its CRC-32 and
/// length) and, when `sealed` is given, that it ends there as a sealed object does.
///
/// # Errors
///
/// The file cannot be read (`Err` of the outer result), or it does not hold what was
/// committed: where and why (the inner one).
pub fn verify(
    path: &Path,
    codec: Codec,
    committed: Committed,
    sealed: Option<u64>,
) -> io::Result<Result<(), String>> {
    let format = codec.format();
    let bytes = read_prefix(path, sealed.unwrap_or(committed.len))?;
    if (bytes.len() as u64) < committed.len {
        return Ok(Err(format!(
            "the file holds {} bytes but {} were committed",
            bytes.len(),
            committed.len
        )));
    }
    let (data, end) = bytes.split_at(committed.len as usize);
    let Some(stored) = data.strip_prefix(format.header()) else {
        return Ok(Err(format!("the {codec} header is damaged")));
    };
    let mut hasher = crc32fast::Hasher::new();
    let mut raw = 0;
    let scanned = format.scan(stored, &mut |piece| {
        if let Piece::Data(data) = piece {
            hasher.update(data);
            raw += data.len() as u64;
        }
        true
    });
    if let Err(reason) = scanned {
        return Ok(Err(reason));
    }
    let crc = hasher.finalize();
    if (crc, raw) != (committed.crc, committed.raw) {
        return Ok(Err(format!(
            "its data has CRC-32 {crc:08x} and length {raw}, but CRC-32 {:08x} and length {} \
             were committed",
            committed.crc, committed.raw
        )));
    }
    if let Some(len) = sealed {
        if (bytes.len() as u64) < len {
            return Ok(Err(format!(
                "the file holds {} bytes but {len} were sealed",
                bytes.len()
            )));
        }
        if end != format.trailer(&committed) {
            return Ok(Err(format!("the end of the {codec} object is damaged")));
        }
    }
    Ok(Ok(()))
}

/// The longest prefix of the object's file that is intact and ends where a commit may
/// end: the state to seal it at. None when not even the header is intact.
///
/// Compressed data may decode without error and still be damaged (deflate has no
/// checksum of its own). So besides decoding, the data must be whole lines, and JSON
/// lines unless `raw_lines` (`log_key` values), as rustsink writes them: the prefix ends
/// before the first line that is not.
///
/// # Errors
///
/// When the file cannot be read.
pub fn intact_prefix(path: &Path, codec: Codec, raw_lines: bool) -> io::Result<Option<Committed>> {
    let format = codec.format();
    let bytes = std::fs::read(path)?;
    let Some(stored) = bytes.strip_prefix(format.header()) else {
        return Ok(None);
    };
    let mut lines = LineCheck {
        raw: raw_lines,
        ..LineCheck::default()
    };
    let mut hasher = crc32fast::Hasher::new();
    let mut raw = 0;
    let mut last = None;
    // (stored bytes, raw bytes, CRC) at each point where the data so far is intact.
    let mut checkpoints = vec![(0, 0, hasher.clone().finalize())];
    // Damage only ends the scan: everything before it was checked.
    let _ = format.scan(stored, &mut |piece| match piece {
        Piece::Data(data) => {
            hasher.update(data);
            raw += data.len() as u64;
            lines.feed(data);
            last = data.last().copied().or(last);
            !lines.failed
        }
        Piece::End(end) => {
            if last.is_none_or(|last| last == b'\n') {
                checkpoints.push((end, raw, hasher.clone().finalize()));
            }
            true
        }
    });
    for &(end, raw, crc) in checkpoints.iter().rev() {
        if format.seals_whole(&stored[..end], raw) {
            return Ok(Some(Committed {
                len: (format.header().len() + end) as u64,
                crc,
                raw,
            }));
        }
    }
    unreachable!("an empty object seals whole")
}

/// Checks that data is whole JSON lines, fed in pieces.
#[derive(Debug, Default)]
struct LineCheck {
    /// The start of a line not yet ended.
    partial: Vec<u8>,
    /// Bytes fed before `partial`: the end of the last whole, valid line.
    valid_up_to: u64,
    /// Whether a line that is not JSON (or too long) was found; nothing after it counts.
    failed: bool,
    /// Whether any line counts, JSON or not.
    raw: bool,
}

/// A line longer than this is damage: no record comes near it.
const MAX_LINE: usize = 64 << 20;

impl LineCheck {
    fn feed(&mut self, mut data: &[u8]) {
        while !self.failed && !data.is_empty() {
            let Some(at) = data.iter().position(|&b| b == b'\n') else {
                self.partial.extend_from_slice(data);
                self.failed = self.partial.len() > MAX_LINE;
                return;
            };
            let line_len = self.partial.len() + at + 1;
            let valid = if self.partial.is_empty() {
                self.raw || is_json(&data[..at])
            } else {
                self.partial.extend_from_slice(&data[..at]);
                let valid = self.raw || is_json(&self.partial);
                self.partial.clear();
                valid
            };
            if !valid {
                self.failed = true;
                return;
            }
            self.valid_up_to += line_len as u64;
            data = &data[at + 1..];
        }
    }
}

fn is_json(line: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
}

/// Up to `len` bytes from the start of the file.
fn read_prefix(path: &Path, len: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?.take(len).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::codec::Compression;
    use crate::object::writer::ObjectWriter;

    const COMPRESSED: [Compression; 2] = [
        Compression {
            codec: Codec::Gzip,
            level: 6,
        },
        Compression {
            codec: Codec::Zstd,
            level: 3,
        },
    ];

    /// An object of `count` numbered lines written in blocks, committed, and sealed when
    /// asked; its committed state.
    fn object(
        path: &Path,
        compression: Compression,
        count: usize,
        seal: bool,
    ) -> (Committed, Option<u64>) {
        let mut writer = ObjectWriter::create(path, compression.codec).unwrap();
        let lines: String = (0..count)
            .map(|n| format!("{{\"n\":{n},\"pad\":\"{}\"}}\n", "x".repeat(n % 97)))
            .collect();
        let compressor = compression.compressor().unwrap();
        let mut rest = lines.as_bytes();
        while !rest.is_empty() {
            let mut blocks = writer.next_blocks(rest, 64 << 10);
            blocks
                .iter_mut()
                .for_each(|block| compressor.compress(block));
            let taken = writer.append_blocks(blocks, u64::MAX).unwrap();
            rest = &rest[taken..];
        }
        writer.sync().unwrap();
        writer.commit();
        let committed = writer.committed();
        let sealed = seal.then(|| writer.seal().unwrap());
        (committed, sealed)
    }

    #[test]
    fn an_intact_object_verifies_and_a_flipped_byte_does_not() {
        let dir = tempfile::tempdir().unwrap();
        for compression in COMPRESSED {
            let codec = compression.codec;
            for seal in [false, true] {
                let path = dir.path().join(format!("object-{codec}-{seal}"));
                let (committed, sealed) = object(&path, compression, 20_000, seal);
                assert_eq!(verify(&path, codec, committed, sealed).unwrap(), Ok(()));
                let mut bytes = std::fs::read(&path).unwrap();
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0x10;
                std::fs::write(&path, &bytes).unwrap();
                assert!(
                    verify(&path, codec, committed, sealed).unwrap().is_err(),
                    "{codec}"
                );
            }
        }
    }

    #[test]
    fn the_intact_prefix_ends_at_a_block_before_the_damage() {
        let dir = tempfile::tempdir().unwrap();
        for compression in COMPRESSED {
            let codec = compression.codec;
            let path = dir.path().join(format!("object-{codec}"));
            let (committed, _) = object(&path, compression, 40_000, false);
            // Intact, unsealed: all of it.
            assert_eq!(intact_prefix(&path, codec, false).unwrap(), Some(committed));
            // Cut in the middle of a block, as a crash during a write leaves it.
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
            let cut = intact_prefix(&path, codec, false).unwrap().unwrap();
            assert!(cut.len < bytes.len() as u64 - 100 && cut.raw > 0, "{cut:?}");
            // Damage in the middle: what is before it survives, and seals to a valid
            // object.
            let mut damaged = bytes.clone();
            let middle = damaged.len() / 2;
            damaged[middle..middle + 64].fill(0x5a);
            std::fs::write(&path, &damaged).unwrap();
            let prefix = intact_prefix(&path, codec, false).unwrap().unwrap();
            assert!(prefix.len <= middle as u64 && prefix.raw > 0, "{prefix:?}");
            let mut writer = ObjectWriter::reopen(&path, codec, prefix).unwrap();
            let sealed = writer.seal().unwrap();
            assert_eq!(verify(&path, codec, prefix, Some(sealed)).unwrap(), Ok(()));
            let text = decode(codec, &std::fs::read(&path).unwrap());
            assert_eq!(text.len() as u64, prefix.raw);
            assert!(text.ends_with(b"\n") && text.starts_with(b"{\"n\":0,"));
            // A damaged header leaves nothing to salvage.
            damaged[0] = 0;
            std::fs::write(&path, &damaged).unwrap();
            assert_eq!(intact_prefix(&path, codec, false).unwrap(), None);
        }
    }

    fn decode(codec: Codec, bytes: &[u8]) -> Vec<u8> {
        let mut text = Vec::new();
        let mut reader = codec.format().reader(Box::new(bytes)).unwrap();
        reader.read_to_end(&mut text).unwrap();
        text
    }

    #[test]
    fn plain_objects_are_checked_by_their_crc_and_cut_at_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain");
        std::fs::write(&path, b"{\"a\":1}\n{\"a\":2}\n{\"a\"").unwrap();
        let prefix = intact_prefix(&path, Codec::None, false).unwrap().unwrap();
        assert_eq!(prefix.len, 16);
        assert_eq!(verify(&path, Codec::None, prefix, None).unwrap(), Ok(()));
        let wrong = Committed { crc: 1, ..prefix };
        assert!(verify(&path, Codec::None, wrong, None).unwrap().is_err());
    }
}
