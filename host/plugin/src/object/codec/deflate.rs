//! Deflate in independent blocks, so that one object's data can be compressed on several
//! threads at once.
//!
//! Each block is compressed by its own compressor, primed with the (up to) 32 KiB of data
//! that precede the block in the stream and ended with a sync flush. The compressed blocks
//! then concatenate into one valid deflate stream (the way pigz splits its work): a sync
//! flush ends on a byte boundary, and a decoder's window at the start of a block holds
//! exactly the data the block's compressor was primed with. Priming with less, even with
//! nothing, is also valid; it only costs some ratio.
//!
//! A compressor remembers where in which stream it stopped. When the next block of that
//! stream comes to it (always, on one thread), it goes on from where it was: its window
//! already holds the block's dictionary, so priming is skipped, which saves about a
//! quarter of the hashing that priming costs per block.

use std::io;

use flate2::{Compress, FlushCompress};

use super::{Block, BlockCompressor, Spares, StreamPosition};

/// A compressor kept for later blocks, and where its last block ended.
#[derive(Debug)]
struct Spare {
    compressor: Compress,
    ends_at: StreamPosition,
}

/// Compresses blocks at one gzip level, keeping its compressors (about 300 KiB each at
/// level 6) for the next blocks.
#[derive(Debug)]
pub struct Deflater {
    level: u32,
    spare: Spares<Spare>,
}

impl BlockCompressor for Deflater {
    /// Deflates `block`, ending with a sync flush. Safe to call from several threads.
    fn compress(&self, block: &mut Block<'_>) {
        let (mut compressor, continues) = self.take_compressor(block.position);
        let dictionary: &[u8] = if continues { &[] } else { &block.dictionary };
        let result = deflate_block(&mut compressor, dictionary, block.raw);
        if result.is_ok() {
            self.spare.put(Spare {
                compressor,
                ends_at: block.end(),
            });
        }
        block.compressed = Some(result);
    }

    fn release(&self) {
        self.spare.clear();
    }
}

impl Deflater {
    /// A deflater at `level` (0 to 9).
    pub fn new(level: u32) -> Deflater {
        Deflater {
            level,
            spare: Spares::new(),
        }
    }

    /// A compressor for a block starting at `position`, and whether it stopped right
    /// there (its window then holds what precedes the block).
    fn take_compressor(&self, position: StreamPosition) -> (Compress, bool) {
        let mut spare = self.spare.lock();
        if let Some(at) = spare.iter().position(|s| s.ends_at == position) {
            return (spare.swap_remove(at).compressor, true);
        }
        match spare.pop() {
            Some(Spare { mut compressor, .. }) => {
                compressor.reset();
                (compressor, false)
            }
            None => (
                Compress::new(flate2::Compression::new(self.level), false),
                false,
            ),
        }
    }
}

fn deflate_block(compressor: &mut Compress, dictionary: &[u8], raw: &[u8]) -> io::Result<Vec<u8>> {
    if !dictionary.is_empty() {
        compressor
            .set_dictionary(dictionary)
            .map_err(io::Error::other)?;
    }
    let mut output = Vec::with_capacity(raw.len() / 2 + 64);
    let mut input = raw;
    loop {
        let before = compressor.total_in();
        compressor
            .compress_vec(input, &mut output, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        input = &input[(compressor.total_in() - before) as usize..];
        // Output space left over means the flush is complete.
        if input.is_empty() && output.len() < output.capacity() {
            return Ok(output);
        }
        output.reserve(output.capacity());
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use std::borrow::Cow;

    use flate2::read::DeflateDecoder;

    use super::super::WINDOW;
    use super::*;

    fn inflate(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        DeflateDecoder::new(stream).read_to_end(&mut out).unwrap();
        out
    }

    fn at(stream: u64, offset: usize) -> StreamPosition {
        StreamPosition {
            stream,
            offset: offset as u64,
        }
    }

    #[test]
    fn blocks_primed_or_continued_concatenate_into_one_stream() {
        let data: Vec<u8> = (0..20_000)
            .flat_map(|n| format!("{{\"n\":{n},\"level\":\"info\"}}\n").into_bytes())
            .collect();
        let cuts = [0, 100_000, 250_000, 251_000, data.len()];
        // One stream: every block continues the compressor of the one before. A stream
        // of its own per block: every block is primed with its dictionary.
        for continued in [true, false] {
            let deflater = Deflater::new(6);
            let mut stream = Vec::new();
            for (n, pair) in cuts.windows(2).enumerate() {
                let dictionary = &data[pair[0].saturating_sub(WINDOW)..pair[0]];
                let position = at(if continued { 1 } else { n as u64 }, pair[0]);
                let mut block =
                    Block::new(&data[pair[0]..pair[1]], Cow::Borrowed(dictionary), position);
                deflater.compress(&mut block);
                stream.extend(block.compressed.unwrap().unwrap());
            }
            // The final empty block that a seal appends.
            stream.extend([0x03, 0x00]);
            assert_eq!(inflate(&stream), data, "continued: {continued}");
        }
    }

    #[test]
    fn a_block_refers_back_into_its_dictionary() {
        let mut rng = fastrand::Rng::with_seed(3);
        let noise: Vec<u8> = (0..20_000).map(|_| rng.u8(..)).collect();
        let deflater = Deflater::new(6);
        let mut primed = Block::new(&noise, Cow::Borrowed(&noise[..]), at(1, 20_000));
        let mut unprimed = Block::new(&noise, Cow::Borrowed(&[]), at(2, 0));
        deflater.compress(&mut primed);
        deflater.compress(&mut unprimed);
        let primed = primed.compressed.unwrap().unwrap();
        let unprimed = unprimed.compressed.unwrap().unwrap();
        assert!(primed.len() < 1_000, "{}", primed.len());
        assert!(unprimed.len() > 19_000, "{}", unprimed.len());
        let mut decoder = flate2::Decompress::new(false);
        decoder.set_dictionary(&noise).unwrap();
        let mut out = Vec::with_capacity(40_000);
        decoder
            .decompress_vec(&primed, &mut out, flate2::FlushDecompress::Sync)
            .unwrap();
        assert_eq!(out, noise);
    }

    #[test]
    fn only_the_next_block_of_a_stream_continues_a_compressor() {
        let mut rng = fastrand::Rng::with_seed(5);
        let noise: Vec<u8> = (0..20_000).map(|_| rng.u8(..)).collect();
        let deflater = Deflater::new(6);
        let mut first = Block::new(&noise, Cow::Borrowed(&[]), at(1, 0));
        deflater.compress(&mut first);
        // Given no dictionary, a block still refers back into the data before it when it
        // continues its stream's compressor...
        let mut next = Block::new(&noise, Cow::Borrowed(&[]), at(1, 20_000));
        deflater.compress(&mut next);
        let next = next.compressed.unwrap().unwrap();
        assert!(next.len() < 1_000, "{}", next.len());
        // ...and never into another stream's data, nor into data of its own stream that
        // is not just before it.
        for position in [at(2, 40_000), at(1, 20_000), at(1, 60_001)] {
            let mut other = Block::new(&noise, Cow::Borrowed(&[]), position);
            deflater.compress(&mut other);
            let other = other.compressed.unwrap().unwrap();
            assert!(other.len() > 19_000, "{position:?}: {}", other.len());
        }
    }

    #[test]
    fn incompressible_data_larger_than_the_first_guess_is_complete() {
        let mut rng = fastrand::Rng::with_seed(7);
        let data: Vec<u8> = (0..300_000).map(|_| rng.u8(..)).collect();
        let mut block = Block::new(&data, Cow::Borrowed(&[]), at(1, 0));
        Deflater::new(9).compress(&mut block);
        let mut stream = block.compressed.unwrap().unwrap();
        stream.extend([0x03, 0x00]);
        assert_eq!(inflate(&stream), data);
    }
}
