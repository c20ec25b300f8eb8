//! The file of one object while it is being written: a gzip stream (or plain lines) that can
//! be committed, rolled back, and sealed, the same way after a crash as without one.
//!
//! Gzip is built by hand around flate2's raw deflate so that every commit point is a sync
//! flush: the bytes up to it are a valid deflate prefix, aligned to a byte. Sealing appends
//! an empty final block (`03 00`) and the trailer (CRC-32 and length of the uncompressed
//! data). Since a sealed object depends only on the committed length, CRC and size, which
//! the journal records, recovery after a crash seals to exactly the bytes a clean run
//! would have delivered, and a re-delivery writes the same key with the same bytes.
//!
//! Any write can fail (a full disk); [`ObjectWriter::rollback`] cuts the file back to the
//! last commit. A fresh compressor may continue a stream after a sync flush (it only loses
//! the dictionary), which is also what lets idle objects give their compressor's memory
//! back ([`ObjectWriter::release_compressor`]).
//!
//! Writes are positioned (`pwrite` at the tracked length), so a cut-back file is continued
//! exactly where its last commit ended.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use flate2::{Compress, FlushCompress};

use crate::config::Compression;

/// The gzip member header: deflate, no name, modification time 0 (so the bytes do not
/// depend on when the object was written), unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// An empty final deflate block with fixed codes.
const FINAL_EMPTY_BLOCK: [u8; 2] = [0x03, 0x00];
/// Input is compressed in slices of this size, so a size cut falls between lines near it.
pub const SLICE: usize = 64 * 1024;

/// What the journal records at a commit: enough to check and to seal the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Committed {
    /// Bytes of the file that are committed.
    pub len: u64,
    /// CRC-32 of the uncompressed data so far.
    pub crc: u32,
    /// Size of the uncompressed data so far.
    pub raw: u64,
}

impl Committed {
    /// The state of a new object: the gzip header (if any) and no data.
    pub fn empty(compression: Compression) -> Committed {
        let len = match compression {
            Compression::Gzip { .. } => GZIP_HEADER.len() as u64,
            Compression::None => 0,
        };
        Committed {
            len,
            crc: 0,
            raw: 0,
        }
    }
}

/// An object's file, open for appending.
#[derive(Debug)]
pub struct ObjectWriter {
    path: PathBuf,
    file: File,
    /// The gzip level; None writes plain lines.
    level: Option<u32>,
    /// Created on the first write after a commit point; None after a rollback or release.
    compressor: Option<Box<Compress>>,
    output: Vec<u8>,
    committed: Committed,
    /// The state after the last write, not yet committed.
    current: Committed,
    hasher: crc32fast::Hasher,
}

impl ObjectWriter {
    /// Creates the file of a new object and writes the gzip header, if any.
    ///
    /// # Errors
    ///
    /// When the file cannot be created or written.
    pub fn create(path: &Path, compression: Compression) -> io::Result<ObjectWriter> {
        let mut file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(path)?;
        let level = match compression {
            Compression::Gzip { level } => Some(level),
            Compression::None => None,
        };
        if level.is_some() {
            file.write_all(&GZIP_HEADER)?;
        }
        let committed = Committed::empty(compression);
        Ok(Self::with_state(path, file, level, committed))
    }

    /// Opens the file of an object after a restart and cuts it back to `committed`.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened, or is shorter than the committed length (it was
    /// damaged outside rustsink).
    pub fn reopen(
        path: &Path,
        compression: Compression,
        committed: Committed,
    ) -> io::Result<ObjectWriter> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let actual = file.metadata()?.len();
        if actual < committed.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} holds {actual} bytes but {} were committed",
                    path.display(),
                    committed.len
                ),
            ));
        }
        file.set_len(committed.len)?;
        let level = match compression {
            Compression::Gzip { level } => Some(level),
            Compression::None => None,
        };
        Ok(Self::with_state(path, file, level, committed))
    }

    fn with_state(path: &Path, file: File, level: Option<u32>, state: Committed) -> Self {
        ObjectWriter {
            path: path.to_owned(),
            file,
            level,
            compressor: None,
            output: Vec::new(),
            committed: state,
            current: state,
            hasher: crc32fast::Hasher::new_with_initial_len(state.crc, state.raw),
        }
    }

    /// The object's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the file, committed or not.
    pub fn stored_len(&self) -> u64 {
        self.current.len
    }

    /// The state at the last commit.
    pub fn committed(&self) -> Committed {
        self.committed
    }

    /// Appends `lines`, compressed, without making them durable. Stops at a line end once
    /// the stored size reaches `cut_at` and returns how many bytes of `lines` it took.
    ///
    /// # Errors
    ///
    /// When the file cannot be written; call [`rollback`](Self::rollback) then.
    pub fn write(&mut self, lines: &[u8], cut_at: u64) -> io::Result<usize> {
        let mut taken = 0;
        while taken < lines.len() {
            if self.current.len >= cut_at {
                break;
            }
            let end = slice_end(lines, taken);
            self.append(&lines[taken..end])?;
            taken = end;
        }
        Ok(taken)
    }

    fn append(&mut self, input: &[u8]) -> io::Result<()> {
        self.hasher.update(input);
        self.current.raw += input.len() as u64;
        match self.level {
            None => {
                self.file.write_all_at(input, self.current.len)?;
                self.current.len += input.len() as u64;
                Ok(())
            }
            Some(_) => self.deflate(input, FlushCompress::None),
        }
    }

    fn deflate(&mut self, mut input: &[u8], flush: FlushCompress) -> io::Result<()> {
        let level = self.level.unwrap_or(6);
        let compressor = self
            .compressor
            .get_or_insert_with(|| Box::new(Compress::new(flate2::Compression::new(level), false)));
        if self.output.capacity() == 0 {
            self.output.reserve_exact(SLICE);
        }
        loop {
            self.output.clear();
            let before = compressor.total_in();
            compressor
                .compress_vec(input, &mut self.output, flush)
                .map_err(io::Error::other)?;
            input = &input[(compressor.total_in() - before) as usize..];
            self.file.write_all_at(&self.output, self.current.len)?;
            self.current.len += self.output.len() as u64;
            // Output space left over means the compressor has nothing more to give.
            if input.is_empty() && self.output.len() < self.output.capacity() {
                return Ok(());
            }
        }
    }

    /// Ends the pending writes at a byte-aligned point and syncs the file, so that the
    /// state [`pending`](Self::pending) returns can be committed.
    ///
    /// # Errors
    ///
    /// When the file cannot be written or synced; call [`rollback`](Self::rollback) then.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.compressor.is_some() {
            self.deflate(&[], FlushCompress::Sync)?;
        }
        if self.current != self.committed {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// The state that [`commit`](Self::commit) would make the committed one.
    pub fn pending(&mut self) -> Committed {
        self.current.crc = self.hasher.clone().finalize();
        self.current
    }

    /// Whether anything was written since the last commit.
    pub fn has_pending(&self) -> bool {
        self.current.len != self.committed.len
    }

    /// Marks everything written and synced so far as committed (the journal has it).
    pub fn commit(&mut self) {
        self.committed = self.pending();
    }

    /// Forgets everything since the last commit: the file is cut back and the compressor
    /// dropped.
    ///
    /// # Errors
    ///
    /// When the file cannot be cut back; the object must not be written again then.
    pub fn rollback(&mut self) -> io::Result<()> {
        self.compressor = None;
        self.current = self.committed;
        self.hasher =
            crc32fast::Hasher::new_with_initial_len(self.committed.crc, self.committed.raw);
        self.file.set_len(self.committed.len)
    }

    /// Gives back the compressor's memory (about 300 KiB at level 6); the next write
    /// starts a new one. Call it only right after a commit.
    pub fn release_compressor(&mut self) {
        if !self.has_pending() {
            self.compressor = None;
        }
    }

    /// Ends the object at the last commit: cuts anything uncommitted, appends the gzip end,
    /// syncs, and returns the final length. The writer must not be written to afterwards;
    /// sealing again (after a failed seal) gives the same bytes.
    ///
    /// # Errors
    ///
    /// When the file cannot be written or synced.
    pub fn seal(&mut self) -> io::Result<u64> {
        self.rollback()?;
        let mut len = self.committed.len;
        if self.level.is_some() {
            let mut end = Vec::with_capacity(10);
            end.extend_from_slice(&FINAL_EMPTY_BLOCK);
            end.extend_from_slice(&self.committed.crc.to_le_bytes());
            // ISIZE is the size modulo 2^32, as the gzip format defines it.
            end.extend_from_slice(&(self.committed.raw as u32).to_le_bytes());
            self.file.write_all_at(&end, len)?;
            len += end.len() as u64;
        }
        self.file.sync_data()?;
        Ok(len)
    }
}

/// The end of the next slice of `lines` from `start`: about [`SLICE`] bytes, at a line end.
fn slice_end(lines: &[u8], start: usize) -> usize {
    let target = (start + SLICE).min(lines.len());
    match lines[target..].iter().position(|&b| b == b'\n') {
        Some(newline) => target + newline + 1,
        None => lines.len(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::MultiGzDecoder;

    use super::*;

    fn gunzip(path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        MultiGzDecoder::new(File::open(path).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn lines(from: usize, to: usize) -> Vec<u8> {
        (from..to)
            .flat_map(|n| format!("{{\"n\":{n},\"msg\":\"line {n} of the test\"}}\n").into_bytes())
            .collect()
    }

    const GZIP: Compression = Compression::Gzip { level: 6 };

    #[test]
    fn commits_rollbacks_and_seal_read_back_with_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        let mut writer = ObjectWriter::create(&path, GZIP).unwrap();
        writer.write(&lines(0, 1000), u64::MAX).unwrap();
        writer.sync().unwrap();
        writer.commit();
        writer.write(&lines(1000, 2000), u64::MAX).unwrap();
        writer.rollback().unwrap();
        writer.write(&lines(2000, 3000), u64::MAX).unwrap();
        writer.sync().unwrap();
        writer.commit();
        writer.release_compressor();
        writer.write(&lines(3000, 3010), u64::MAX).unwrap();
        writer.sync().unwrap();
        writer.commit();
        writer.seal().unwrap();
        let mut expected = lines(0, 1000);
        expected.extend(lines(2000, 3010));
        assert_eq!(gunzip(&path), expected);
        let status = std::process::Command::new("gzip")
            .arg("-t")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn recovery_seals_to_the_same_bytes_as_a_clean_seal() {
        let dir = tempfile::tempdir().unwrap();
        let (clean, crashed) = (dir.path().join("clean"), dir.path().join("crashed"));
        let mut states = Vec::new();
        for path in [&clean, &crashed] {
            let mut writer = ObjectWriter::create(path, GZIP).unwrap();
            writer.write(&lines(0, 500), u64::MAX).unwrap();
            writer.sync().unwrap();
            writer.commit();
            states.push(writer.committed());
            if path == &crashed {
                // Uncommitted bytes that a crash leaves behind.
                writer.write(&lines(500, 900), u64::MAX).unwrap();
                drop(writer);
            } else {
                writer.seal().unwrap();
            }
        }
        ObjectWriter::reopen(&crashed, GZIP, states[1])
            .unwrap()
            .seal()
            .unwrap();
        assert_eq!(
            std::fs::read(&clean).unwrap(),
            std::fs::read(&crashed).unwrap()
        );
        assert_eq!(gunzip(&crashed), lines(0, 500));
    }

    #[test]
    fn a_write_stops_at_a_line_end_once_the_cut_size_is_reached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        let mut writer = ObjectWriter::create(&path, Compression::None).unwrap();
        let input = lines(0, 20_000);
        let taken = writer.write(&input, 100_000).unwrap();
        assert!(taken < input.len() && taken >= 100_000, "{taken}");
        assert_eq!(input[taken - 1], b'\n');
        writer.sync().unwrap();
        writer.commit();
        assert_eq!(writer.seal().unwrap(), taken as u64);
        assert_eq!(std::fs::read(&path).unwrap(), &input[..taken]);
    }

    #[test]
    fn an_empty_object_is_a_valid_empty_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        ObjectWriter::create(&path, GZIP).unwrap().seal().unwrap();
        assert_eq!(gunzip(&path), b"");
    }
}
