//! The file of one object while it is being written: compressed blocks (or plain lines),
//! laid out by the object's [codec](super::codec), that can be committed, rolled back, and
//! sealed, the same way after a crash as without one.
//!
//! Every block ends at a point where the object may be committed, and what a seal appends
//! depends only on the committed length, CRC and size, which the journal records. So
//! recovery after a crash seals to exactly the bytes a clean run would have delivered, and
//! a re-delivery writes the same key with the same bytes.
//!
//! Any write can fail (a full disk); [`ObjectWriter::rollback`] cuts the file back to the
//! last commit. Blocks refer to no data before them, so the next block is compressed as
//! any other.
//!
//! Writes are positioned (`pwrite` at the tracked length), so a cut-back file is continued
//! exactly where its last commit ended.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::codec::{Block, Codec, Format};
/// Input is compressed in blocks of about this size (whole lines) unless its format says
/// otherwise, so a size cut falls between lines near it.
pub const SLICE: usize = 128 * 1024;

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
    /// The state of a new object: its codec's header and no data.
    pub fn empty(codec: Codec) -> Committed {
        Committed {
            len: codec.format().header().len() as u64,
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
    format: &'static dyn Format,
    committed: Committed,
    /// The state after the last write, not yet committed.
    current: Committed,
    hasher: crc32fast::Hasher,
}

impl ObjectWriter {
    /// Creates the file of a new object and writes its codec's header.
    ///
    /// # Errors
    ///
    /// When the file cannot be created or written.
    pub fn create(path: &Path, codec: Codec) -> io::Result<ObjectWriter> {
        let mut file = crate::store::private::create_new(path)?;
        file.write_all(codec.format().header())?;
        Ok(Self::with_state(path, file, codec, Committed::empty(codec)))
    }

    /// Opens the file of an object after a restart and cuts it back to `committed`.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened, or is shorter than the committed length (it was
    /// damaged outside rustsink).
    pub fn reopen(path: &Path, codec: Codec, committed: Committed) -> io::Result<ObjectWriter> {
        let file = crate::store::private::options()
            .read(true)
            .write(true)
            .open(path)?;
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
        Ok(Self::with_state(path, file, codec, committed))
    }

    fn with_state(path: &Path, file: File, codec: Codec, state: Committed) -> Self {
        ObjectWriter {
            path: path.to_owned(),
            file,
            format: codec.format(),
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

    /// Splits up to about `budget` bytes of `lines` into blocks of whole lines, of about the
    /// format's [`block_size`](Format::block_size). Compressed objects need their blocks
    /// compressed before [`append_blocks`](Self::append_blocks).
    pub fn next_blocks<'a>(&self, lines: &'a [u8], budget: usize) -> Vec<Block<'a>> {
        let mut blocks = Vec::new();
        let mut start = 0;
        while start < lines.len() && start < budget {
            let end = slice_end(lines, start, self.format.block_size());
            blocks.push(Block::new(&lines[start..end]));
            start = end;
        }
        blocks
    }

    /// Appends blocks from [`next_blocks`](Self::next_blocks), in order, until the stored
    /// size reaches `cut_at`; returns how many bytes of data they held. Nothing is durable
    /// before [`sync`](Self::sync).
    ///
    /// # Errors
    ///
    /// When a block could not be compressed or the file cannot be written; call
    /// [`rollback`](Self::rollback) then.
    pub fn append_blocks<'a>(
        &mut self,
        blocks: impl IntoIterator<Item = Block<'a>>,
        cut_at: u64,
    ) -> io::Result<usize> {
        let mut taken = 0;
        for block in blocks {
            if self.current.len >= cut_at {
                break;
            }
            let stored = match (self.format.compresses(), block.compressed) {
                (false, _) => Cow::Borrowed(block.raw),
                (true, Some(compressed)) => Cow::Owned(compressed?),
                (true, None) => {
                    return Err(io::Error::other("a block was appended uncompressed"));
                }
            };
            self.file.write_all_at(&stored, self.current.len)?;
            self.current.len += stored.len() as u64;
            self.current.raw += block.raw.len() as u64;
            self.hasher.update(block.raw);
            taken += block.raw.len();
        }
        Ok(taken)
    }

    /// Syncs the file, so that the state [`pending`](Self::pending) returns can be
    /// committed. (Every block already ends at a byte-aligned point.)
    ///
    /// # Errors
    ///
    /// When the file cannot be synced; call [`rollback`](Self::rollback) then.
    pub fn sync(&mut self) -> io::Result<()> {
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

    /// Forgets everything since the last commit: the file is cut back.
    ///
    /// # Errors
    ///
    /// When the file cannot be cut back; the object must not be written again then.
    pub fn rollback(&mut self) -> io::Result<()> {
        self.current = self.committed;
        self.hasher =
            crc32fast::Hasher::new_with_initial_len(self.committed.crc, self.committed.raw);
        self.file.set_len(self.committed.len)
    }

    /// Ends the object at the last commit: cuts anything uncommitted, appends the codec's
    /// trailer, syncs, and returns the final length. The writer must not be written to afterwards;
    /// sealing again (after a failed seal) gives the same bytes.
    ///
    /// # Errors
    ///
    /// When the file cannot be written or synced.
    pub fn seal(&mut self) -> io::Result<u64> {
        self.rollback()?;
        let trailer = self.format.trailer(&self.committed);
        self.file.write_all_at(&trailer, self.committed.len)?;
        self.file.sync_data()?;
        Ok(self.committed.len + trailer.len() as u64)
    }
}

/// The end of the next slice of `lines` from `start`: about `size` bytes, at a line end.
fn slice_end(lines: &[u8], start: usize, size: usize) -> usize {
    let target = (start + size).min(lines.len());
    match lines[target..].iter().position(|&b| b == b'\n') {
        Some(newline) => target + newline + 1,
        None => lines.len(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::GzDecoder;

    use super::*;
    use crate::object::codec::{BlockCompressor, Compression, Deflater, GZIP_BLOCK_SIZE};

    /// The object's data, read as one gzip member.
    fn gunzip(path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        GzDecoder::new(File::open(path).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn lines(from: usize, to: usize) -> Vec<u8> {
        (from..to)
            .flat_map(|n| format!("{{\"n\":{n},\"msg\":\"line {n} of the test\"}}\n").into_bytes())
            .collect()
    }

    const GZIP: Codec = Codec::Gzip;

    /// Appends `lines` as the engine does, compressing on this thread.
    fn write(
        writer: &mut ObjectWriter,
        lines: &[u8],
        cut_at: u64,
        compressor: &dyn BlockCompressor,
    ) -> usize {
        let mut blocks = writer.next_blocks(lines, usize::MAX);
        blocks
            .iter_mut()
            .for_each(|block| compressor.compress(block));
        writer.append_blocks(blocks, cut_at).unwrap()
    }

    #[test]
    fn commits_rollbacks_and_seal_read_back_with_gzip() {
        let deflater = Deflater::new(6);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        let mut writer = ObjectWriter::create(&path, GZIP).unwrap();
        write(&mut writer, &lines(0, 1000), u64::MAX, &deflater);
        writer.sync().unwrap();
        writer.commit();
        write(&mut writer, &lines(1000, 2000), u64::MAX, &deflater);
        writer.rollback().unwrap();
        write(&mut writer, &lines(2000, 3000), u64::MAX, &deflater);
        writer.sync().unwrap();
        writer.commit();
        write(&mut writer, &lines(3000, 3010), u64::MAX, &deflater);
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
        let deflater = Deflater::new(6);
        let dir = tempfile::tempdir().unwrap();
        let (clean, crashed) = (dir.path().join("clean"), dir.path().join("crashed"));
        let mut states = Vec::new();
        for path in [&clean, &crashed] {
            let mut writer = ObjectWriter::create(path, GZIP).unwrap();
            write(&mut writer, &lines(0, 500), u64::MAX, &deflater);
            writer.sync().unwrap();
            writer.commit();
            states.push(writer.committed());
            if path == &crashed {
                // Uncommitted bytes that a crash leaves behind.
                write(&mut writer, &lines(500, 900), u64::MAX, &deflater);
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
    fn blocks_are_whole_lines_of_about_the_size_of_their_format() {
        let dir = tempfile::tempdir().unwrap();
        let data = lines(0, 100_000);
        for (codec, size) in [(GZIP, GZIP_BLOCK_SIZE), (Codec::Zstd, 1 << 20)] {
            let writer = ObjectWriter::create(&dir.path().join(codec.name()), codec).unwrap();
            let blocks = writer.next_blocks(&data, usize::MAX);
            assert_eq!(blocks.len(), data.len().div_ceil(size), "{codec}");
            let mut joined = Vec::new();
            for block in &blocks[..blocks.len() - 1] {
                assert!(block.raw.ends_with(b"\n"), "{codec}");
                assert!((size..size + 100).contains(&block.raw.len()), "{codec}");
                joined.extend_from_slice(block.raw);
            }
            joined.extend_from_slice(blocks.last().unwrap().raw);
            assert_eq!(joined, data, "{codec}");
        }
    }

    /// README's promise for `total_file_size`: an object goes past it by its last block at
    /// most, about 256 KiB of input (1 MiB with zstd).
    #[test]
    fn an_object_cut_by_size_goes_past_it_by_one_block_at_most() {
        let dir = tempfile::tempdir().unwrap();
        let data = lines(0, 100_000);
        for (codec, size) in [(GZIP, GZIP_BLOCK_SIZE), (Codec::Zstd, 1 << 20)] {
            let compressor = Compression { codec, level: 1 }.compressor().unwrap();
            let mut writer = ObjectWriter::create(&dir.path().join(codec.name()), codec).unwrap();
            // A cut far below one block's compressed size: the first block alone passes it.
            let taken = write(&mut writer, &data, 1_000, &*compressor);
            assert!((size..size + 100).contains(&taken), "{codec}: {taken}");
        }
    }

    #[test]
    fn a_write_stops_at_a_line_end_once_the_cut_size_is_reached() {
        let deflater = Deflater::new(6);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        let mut writer = ObjectWriter::create(&path, Codec::None).unwrap();
        let input = lines(0, 20_000);
        let taken = write(&mut writer, &input, 100_000, &deflater);
        assert!(taken < input.len() && taken >= 100_000, "{taken}");
        assert_eq!(input[taken - 1], b'\n');
        writer.sync().unwrap();
        writer.commit();
        assert_eq!(writer.seal().unwrap(), taken as u64);
        assert_eq!(std::fs::read(&path).unwrap(), &input[..taken]);
    }

    #[test]
    fn a_gzip_object_cut_by_size_holds_whole_lines_and_the_rest_fits_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let deflater = Deflater::new(6);
        let input = lines(0, 60_000);
        let mut first = ObjectWriter::create(&dir.path().join("first"), GZIP).unwrap();
        let taken = write(&mut first, &input, 20_000, &deflater);
        assert!(taken < input.len() && input[taken - 1] == b'\n', "{taken}");
        assert!(first.stored_len() >= 20_000);
        let mut second = ObjectWriter::create(&dir.path().join("second"), GZIP).unwrap();
        // In small steps: a block each.
        for piece in input[taken..].chunks(5_000) {
            let rest = write(&mut second, piece, u64::MAX, &deflater);
            assert_eq!(rest, piece.len());
        }
        for writer in [&mut first, &mut second] {
            writer.sync().unwrap();
            writer.commit();
            writer.seal().unwrap();
        }
        let mut joined = gunzip(&dir.path().join("first"));
        joined.extend(gunzip(&dir.path().join("second")));
        assert_eq!(joined, input);
    }

    #[test]
    fn an_empty_object_is_a_valid_empty_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        ObjectWriter::create(&path, GZIP).unwrap().seal().unwrap();
        assert_eq!(gunzip(&path), b"");
    }
}
