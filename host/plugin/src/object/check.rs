//! Reading an object's file back after a restart: does it hold what the journal committed,
//! and if it is damaged (or the journal is lost), how much of it is intact.
//!
//! Each reads the object's file into memory once (at most about `total_file_size`) and
//! inflates it in pieces, keeping only the CRC, the length and the line being checked of
//! the inflated data. [`intact_prefix`] then inflates the prefix it chose once more, with
//! the final block after it, to make sure the cut falls where a block ends.
//! A gzip object is a header, deflate blocks that each end with a sync flush (the bytes
//! `00 00 ff ff`), and after sealing an empty final block and the trailer; every block
//! holds whole lines. So the points where a block ends are where an object can be cut and
//! sealed, and [`intact_prefix`] looks for the last of them before any damage.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use flate2::{Decompress, FlushDecompress, Status};

use super::writer::{Committed, FINAL_EMPTY_BLOCK, GZIP_HEADER};

/// How a block of a gzip object ends.
const SYNC_MARKER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// Output is inflated this much at a time.
const OUT_BUFFER: usize = 256 << 10;

/// Checks that the file at `path` holds the data `committed` describes (its CRC-32 and
/// length) and, when `sealed` is given, that it ends there as a sealed object does.
///
/// # Errors
///
/// The file cannot be read (`Err` of the outer result), or it does not hold what was
/// committed: where and why (the inner one).
pub fn verify(
    path: &Path,
    gzip: bool,
    committed: Committed,
    sealed: Option<u64>,
) -> io::Result<Result<(), String>> {
    let bytes = read_prefix(path, sealed.unwrap_or(committed.len))?;
    if (bytes.len() as u64) < committed.len {
        return Ok(Err(format!(
            "the file holds {} bytes but {} were committed",
            bytes.len(),
            committed.len
        )));
    }
    let data = &bytes[..committed.len as usize];
    let (crc, raw) = if gzip {
        if !data.starts_with(&GZIP_HEADER) {
            return Ok(Err("the gzip header is damaged".into()));
        }
        let mut inflater = Inflater::new();
        if let Err(reason) = inflater.feed(&data[GZIP_HEADER.len()..]) {
            return Ok(Err(reason));
        }
        (inflater.hasher.finalize(), inflater.raw)
    } else {
        (crc32fast::hash(data), data.len() as u64)
    };
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
        if gzip {
            let mut end = Vec::from(FINAL_EMPTY_BLOCK);
            end.extend_from_slice(&committed.crc.to_le_bytes());
            end.extend_from_slice(&(committed.raw as u32).to_le_bytes());
            if bytes[committed.len as usize..] != end[..] {
                return Ok(Err("the end of the gzip stream is damaged".into()));
            }
        }
    }
    Ok(Ok(()))
}

/// The longest prefix of the object's file that is intact and ends where a block (or, for
/// plain objects, a line) ends: the state to seal it at. None when not even the gzip
/// header is intact.
///
/// Deflate data has no checksum of its own, and damage to it may still inflate. So besides
/// inflating without error, the data must be whole JSON lines, as rustsink writes them:
/// the prefix ends before the first line that is not.
///
/// # Errors
///
/// When the file cannot be read.
pub fn intact_prefix(path: &Path, gzip: bool) -> io::Result<Option<Committed>> {
    let bytes = std::fs::read(path)?;
    if !gzip {
        let mut lines = LineCheck::default();
        lines.feed(&bytes);
        let len = lines.valid_up_to as usize;
        return Ok(Some(Committed {
            len: len as u64,
            crc: crc32fast::hash(&bytes[..len]),
            raw: len as u64,
        }));
    }
    if !bytes.starts_with(&GZIP_HEADER) {
        return Ok(None);
    }
    let body = &bytes[GZIP_HEADER.len()..];
    // Inflate piece by piece, each piece ending where a block may end, and note the state
    // at each such end while everything so far is intact.
    let mut ends: Vec<usize> = body
        .windows(SYNC_MARKER.len())
        .enumerate()
        .filter(|(_, window)| *window == SYNC_MARKER)
        .map(|(at, _)| at + SYNC_MARKER.len())
        .collect();
    ends.push(body.len());
    let mut checkpoints = vec![(0, 0, crc32fast::hash(&[]))];
    let mut inflater = Inflater::new();
    inflater.lines = Some(LineCheck::default());
    let mut start = 0;
    for end in ends {
        let bad_line = |inflater: &Inflater| inflater.lines.as_ref().is_some_and(|l| l.failed);
        if inflater.feed(&body[start..end]).is_err() || bad_line(&inflater) {
            break;
        }
        start = end;
        if !inflater.ended && inflater.ends_a_line() {
            checkpoints.push((end, inflater.raw, inflater.hasher.clone().finalize()));
        }
    }
    // A marker can also turn up inside compressed data: an end counts only if the data up
    // to it, with the final block after it, is a whole deflate stream.
    for &(end, raw, crc) in checkpoints.iter().rev() {
        let mut sealed = Inflater::new();
        if sealed.feed(&body[..end]).is_ok()
            && sealed.feed(&FINAL_EMPTY_BLOCK).is_ok()
            && sealed.ended
            && sealed.raw == raw
        {
            return Ok(Some(Committed {
                len: (GZIP_HEADER.len() + end) as u64,
                crc,
                raw,
            }));
        }
    }
    unreachable!("an empty prefix is a whole stream with the final block")
}

/// Checks that data is whole JSON lines, fed in pieces.
#[derive(Debug, Default)]
struct LineCheck {
    /// The start of a line not yet ended.
    partial: Vec<u8>,
    /// Bytes fed before `partial`: the end of the last whole, valid line.
    valid_up_to: u64,
    /// Whether a line that is not JSON was found; nothing after it counts.
    failed: bool,
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
                is_json(&data[..at])
            } else {
                self.partial.extend_from_slice(&data[..at]);
                let valid = is_json(&self.partial);
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

/// Whether an object file's bytes begin as rustsink's gzip objects do.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_HEADER)
}

/// Up to `len` bytes from the start of the file.
fn read_prefix(path: &Path, len: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?.take(len).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Inflates raw deflate data fed in pieces, keeping only the CRC, the length, the last
/// byte of what comes out, and whether it is whole JSON lines.
struct Inflater {
    /// None when the lines are not checked (the CRC does it).
    lines: Option<LineCheck>,
    inflate: Decompress,
    out: Vec<u8>,
    hasher: crc32fast::Hasher,
    raw: u64,
    last: Option<u8>,
    /// Input bytes taken so far.
    consumed: usize,
    /// Whether the final block was read.
    ended: bool,
}

impl Inflater {
    fn new() -> Inflater {
        Inflater {
            lines: None,
            inflate: Decompress::new(false),
            out: Vec::with_capacity(OUT_BUFFER),
            hasher: crc32fast::Hasher::new(),
            raw: 0,
            last: None,
            consumed: 0,
            ended: false,
        }
    }

    /// Inflates all of `input`; an error says what is wrong and where.
    fn feed(&mut self, mut input: &[u8]) -> Result<(), String> {
        loop {
            if self.ended {
                return match input.is_empty() {
                    true => Ok(()),
                    false => Err(format!(
                        "{} bytes follow the end of the deflate stream",
                        input.len()
                    )),
                };
            }
            self.out.clear();
            let (in_before, out_before) = (self.inflate.total_in(), self.inflate.total_out());
            let status = self
                .inflate
                .decompress_vec(input, &mut self.out, FlushDecompress::None)
                .map_err(|error| {
                    format!(
                        "the deflate data is damaged at byte {} of the stream: {error}",
                        self.consumed
                    )
                })?;
            let taken = (self.inflate.total_in() - in_before) as usize;
            self.consumed += taken;
            input = &input[taken..];
            self.hasher.update(&self.out);
            if let Some(lines) = &mut self.lines {
                lines.feed(&self.out);
            }
            self.raw += self.out.len() as u64;
            if let Some(&last) = self.out.last() {
                self.last = Some(last);
            }
            let made = self.inflate.total_out() - out_before;
            match status {
                Status::StreamEnd => self.ended = true,
                _ if input.is_empty() && (made as usize) < OUT_BUFFER => return Ok(()),
                Status::BufError if taken == 0 && made == 0 => {
                    return Err(format!(
                        "the deflate data stops making sense at byte {} of the stream",
                        self.consumed
                    ));
                }
                _ => {}
            }
        }
    }

    /// Whether what came out so far is whole lines (or nothing).
    fn ends_a_line(&self) -> bool {
        self.last.is_none_or(|last| last == b'\n')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Compression;
    use crate::object::deflate::Deflater;
    use crate::object::writer::ObjectWriter;

    /// A gzip object of `count` numbered lines written in blocks, committed, and sealed
    /// when asked; its committed state.
    fn object(path: &Path, count: usize, seal: bool) -> (Committed, Option<u64>) {
        let compression = Compression::Gzip { level: 6 };
        let mut writer = ObjectWriter::create(path, compression).unwrap();
        let lines: String = (0..count)
            .map(|n| format!("{{\"n\":{n},\"pad\":\"{}\"}}\n", "x".repeat(n % 97)))
            .collect();
        let deflater = Deflater::new(6);
        let mut rest = lines.as_bytes();
        while !rest.is_empty() {
            let mut blocks = writer.next_blocks(rest, 64 << 10);
            blocks.iter_mut().for_each(|block| deflater.deflate(block));
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
        for seal in [false, true] {
            let path = dir.path().join(format!("object-{seal}"));
            let (committed, sealed) = object(&path, 20_000, seal);
            assert_eq!(verify(&path, true, committed, sealed).unwrap(), Ok(()));
            let mut bytes = std::fs::read(&path).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x10;
            std::fs::write(&path, &bytes).unwrap();
            assert!(verify(&path, true, committed, sealed).unwrap().is_err());
        }
    }

    #[test]
    fn the_intact_prefix_ends_at_a_block_before_the_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        let (committed, _) = object(&path, 40_000, false);
        // Intact, unsealed: all of it.
        assert_eq!(intact_prefix(&path, true).unwrap(), Some(committed));
        // Cut in the middle of a block, as a crash during a write leaves it.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        let cut = intact_prefix(&path, true).unwrap().unwrap();
        assert!(cut.len < bytes.len() as u64 - 100 && cut.raw > 0, "{cut:?}");
        // Damage in the middle: what is before it survives, and seals to a valid object.
        let mut damaged = bytes.clone();
        let middle = damaged.len() / 2;
        damaged[middle..middle + 64].fill(0x5a);
        std::fs::write(&path, &damaged).unwrap();
        let prefix = intact_prefix(&path, true).unwrap().unwrap();
        assert!(prefix.len <= middle as u64 && prefix.raw > 0, "{prefix:?}");
        let mut writer =
            ObjectWriter::reopen(&path, Compression::Gzip { level: 6 }, prefix).unwrap();
        writer.seal().unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(File::open(&path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text.len() as u64, prefix.raw);
        assert!(text.ends_with('\n') && text.starts_with("{\"n\":0,"));
        // A damaged header leaves nothing to salvage.
        damaged[0] = 0;
        std::fs::write(&path, &damaged).unwrap();
        assert_eq!(intact_prefix(&path, true).unwrap(), None);
    }

    #[test]
    fn plain_objects_are_checked_by_their_crc_and_cut_at_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain");
        std::fs::write(&path, b"{\"a\":1}\n{\"a\":2}\n{\"a\"").unwrap();
        let prefix = intact_prefix(&path, false).unwrap().unwrap();
        assert_eq!(prefix.len, 16);
        assert_eq!(verify(&path, false, prefix, None).unwrap(), Ok(()));
        let wrong = Committed { crc: 1, ..prefix };
        assert!(verify(&path, false, wrong, None).unwrap().is_err());
    }
}
