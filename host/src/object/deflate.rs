//! Deflate in independent blocks, so that one object's data can be compressed on several
//! threads at once.
//!
//! Each block is compressed by its own compressor, primed with the (up to) 32 KiB of data
//! that precede the block in the stream and ended with a sync flush. The compressed blocks
//! then concatenate into one valid deflate stream (the way pigz splits its work): a sync
//! flush ends on a byte boundary, and a decoder's window at the start of a block holds
//! exactly the data the block's compressor was primed with. Priming with less, even with
//! nothing, is also valid; it only costs some ratio.

use std::borrow::Cow;
use std::io;
use std::sync::{Mutex, PoisonError};

use flate2::{Compress, FlushCompress};

/// How far back deflate can refer: the most of the preceding data a block can use.
pub const WINDOW: usize = 32 * 1024;

/// One block of an object's data, and once [`Deflater::deflate`] ran, its compressed bytes.
#[derive(Debug)]
pub struct Block<'a> {
    /// The uncompressed data of the block: whole lines.
    pub raw: &'a [u8],
    /// The data just before the block (at most [`WINDOW`] bytes).
    pub dictionary: Cow<'a, [u8]>,
    /// The compressed block; None until deflated.
    pub deflated: Option<io::Result<Vec<u8>>>,
}

impl<'a> Block<'a> {
    /// A block not yet compressed.
    pub fn new(raw: &'a [u8], dictionary: Cow<'a, [u8]>) -> Block<'a> {
        Block {
            raw,
            dictionary,
            deflated: None,
        }
    }
}

/// Compresses blocks at one gzip level, keeping its compressors (about 300 KiB each at
/// level 6) for the next blocks.
#[derive(Debug)]
pub struct Deflater {
    level: u32,
    spare: Mutex<Vec<Compress>>,
}

impl Deflater {
    /// A deflater at `level` (0 to 9).
    pub fn new(level: u32) -> Deflater {
        Deflater {
            level,
            spare: Mutex::new(Vec::new()),
        }
    }

    /// Compresses `block` and stores the result in it. Safe to call from several threads.
    pub fn deflate(&self, block: &mut Block<'_>) {
        let mut compressor = self.take_compressor();
        let result = deflate_block(&mut compressor, &block.dictionary, block.raw);
        if result.is_ok() {
            self.spare
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(compressor);
        }
        block.deflated = Some(result);
    }

    /// Gives back the memory of the compressors kept for later blocks.
    pub fn release(&self) {
        self.spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn take_compressor(&self) -> Compress {
        let spare = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match spare {
            Some(mut compressor) => {
                compressor.reset();
                compressor
            }
            None => Compress::new(flate2::Compression::new(self.level), false),
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

    use flate2::read::DeflateDecoder;

    use super::*;

    fn inflate(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        DeflateDecoder::new(stream).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn blocks_primed_with_what_precedes_them_concatenate_into_one_stream() {
        let data: Vec<u8> = (0..20_000)
            .flat_map(|n| format!("{{\"n\":{n},\"level\":\"info\"}}\n").into_bytes())
            .collect();
        let deflater = Deflater::new(6);
        let cuts = [0, 100_000, 250_000, 251_000, data.len()];
        let mut stream = Vec::new();
        for pair in cuts.windows(2) {
            let dictionary = &data[pair[0].saturating_sub(WINDOW)..pair[0]];
            let mut block = Block::new(&data[pair[0]..pair[1]], Cow::Borrowed(dictionary));
            deflater.deflate(&mut block);
            stream.extend(block.deflated.unwrap().unwrap());
        }
        // The final empty block that a seal appends.
        stream.extend([0x03, 0x00]);
        assert_eq!(inflate(&stream), data);
    }

    #[test]
    fn a_block_refers_back_into_its_dictionary() {
        let mut rng = fastrand::Rng::with_seed(3);
        let noise: Vec<u8> = (0..20_000).map(|_| rng.u8(..)).collect();
        let deflater = Deflater::new(6);
        let mut primed = Block::new(&noise, Cow::Borrowed(&noise[..]));
        let mut unprimed = Block::new(&noise, Cow::Borrowed(&[]));
        deflater.deflate(&mut primed);
        deflater.deflate(&mut unprimed);
        let primed = primed.deflated.unwrap().unwrap();
        let unprimed = unprimed.deflated.unwrap().unwrap();
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
    fn incompressible_data_larger_than_the_first_guess_is_complete() {
        let mut rng = fastrand::Rng::with_seed(7);
        let data: Vec<u8> = (0..300_000).map(|_| rng.u8(..)).collect();
        let mut block = Block::new(&data, Cow::Borrowed(&[]));
        Deflater::new(9).deflate(&mut block);
        let mut stream = block.deflated.unwrap().unwrap();
        stream.extend([0x03, 0x00]);
        assert_eq!(inflate(&stream), data);
    }
}
