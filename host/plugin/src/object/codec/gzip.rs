//! Gzip objects: one gzip member, built by hand around raw deflate blocks
//! ([`Deflater`](super::Deflater)), each ending as a sync flush ends.
//!
//! The bytes up to any block's end are a valid deflate prefix, aligned to a byte. Sealing
//! appends an empty final block (`03 00`) and the trailer (CRC-32 and length of the
//! uncompressed data), both of which follow from the committed state alone. So recovery
//! after a crash seals to exactly the bytes a clean run would have delivered.
//!
//! A block ends with the bytes `00 00 ff ff`; those are where a commit may end. Deflate
//! data has no checksum of its own, so the marker can also turn up inside a block:
//! [`Format::seals_whole`] inflates a prefix with the final block after it to be sure.

use flate2::{Decompress, FlushDecompress, Status};

use super::{Format, Piece};
use crate::object::writer::Committed;

/// The gzip member header: deflate, no name, modification time 0 (so the bytes do not
/// depend on when the object was written), unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// An empty final deflate block with fixed codes.
const FINAL_EMPTY_BLOCK: [u8; 2] = [0x03, 0x00];
/// How a block of a gzip object ends.
const SYNC_MARKER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// Output is inflated this much at a time.
const OUT_BUFFER: usize = 256 << 10;

/// The gzip layout.
#[derive(Debug)]
pub struct Gzip;

impl Format for Gzip {
    fn header(&self) -> &'static [u8] {
        &HEADER
    }

    fn extension(&self) -> &'static str {
        ".gz"
    }

    fn compresses(&self) -> bool {
        true
    }

    /// Blocks just under the size at which libdeflate starts a second deflate block, so
    /// that the [`Deflater`](super::Deflater) finds where each ends from its header alone.
    fn block_size(&self) -> usize {
        super::deflate::BLOCK_SIZE
    }

    fn trailer(&self, committed: &Committed) -> Vec<u8> {
        let mut end = Vec::with_capacity(10);
        end.extend_from_slice(&FINAL_EMPTY_BLOCK);
        end.extend_from_slice(&committed.crc.to_le_bytes());
        // ISIZE is the size modulo 2^32, as the gzip format defines it.
        end.extend_from_slice(&(committed.raw as u32).to_le_bytes());
        end
    }

    fn scan(&self, stored: &[u8], visit: &mut dyn FnMut(Piece<'_>) -> bool) -> Result<(), String> {
        // Inflate piece by piece, each piece ending where a block may end.
        let ends = stored
            .windows(SYNC_MARKER.len())
            .enumerate()
            .filter(|(_, window)| *window == SYNC_MARKER)
            .map(|(at, _)| at + SYNC_MARKER.len())
            .chain([stored.len()]);
        let mut inflater = Inflater::new();
        let mut start = 0;
        for end in ends {
            let mut going = true;
            inflater.feed(&stored[start..end], &mut |data| {
                going = going && visit(Piece::Data(data));
            })?;
            if !going || (!inflater.ended && !visit(Piece::End(end))) {
                return Ok(());
            }
            start = end;
        }
        Ok(())
    }

    fn seals_whole(&self, stored: &[u8], raw: u64) -> bool {
        let mut inflater = Inflater::new();
        let mut inflated = 0;
        let mut count = |data: &[u8]| inflated += data.len() as u64;
        inflater.feed(stored, &mut count).is_ok()
            && inflater.feed(&FINAL_EMPTY_BLOCK, &mut count).is_ok()
            && inflater.ended
            && inflated == raw
    }

    fn reader<'a>(
        &self,
        stored: Box<dyn std::io::Read + 'a>,
    ) -> std::io::Result<Box<dyn std::io::Read + 'a>> {
        Ok(Box::new(flate2::read::GzDecoder::new(
            std::io::BufReader::new(stored),
        )))
    }
}

/// Inflates raw deflate data fed in pieces.
struct Inflater {
    inflate: Decompress,
    out: Vec<u8>,
    /// Input bytes taken so far.
    consumed: usize,
    /// Whether the final block was read.
    ended: bool,
}

impl Inflater {
    fn new() -> Inflater {
        Inflater {
            inflate: Decompress::new(false),
            out: Vec::with_capacity(OUT_BUFFER),
            consumed: 0,
            ended: false,
        }
    }

    /// Inflates all of `input`, handing what comes out to `data`; an error says what is
    /// wrong and where.
    fn feed(&mut self, mut input: &[u8], data: &mut dyn FnMut(&[u8])) -> Result<(), String> {
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
            data(&self.out);
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
}
