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
//!
//! Levels are zlib-rs's (those of zlib-ng), but for the default, 4, which searches less
//! deeply for matches than zlib-rs's own level 4: at most 8 candidates instead of 24. On
//! JSON lines that costs about 15% less CPU for objects about 2% larger (BENCHMARKS.md).
//! Only zlib's C API can set that (`deflateTune`), hence libz-rs-sys here rather than
//! flate2.

#![allow(
    unsafe_code,
    reason = "zlib's C API, the one that can tune the match search, is called here"
)]

use std::ffi::c_int;
use std::io;

use libz_rs_sys as zlib;

use super::{Block, BlockCompressor, Spares, StreamPosition};

/// A compressor kept for later blocks, and where its last block ended.
#[derive(Debug)]
struct Spare {
    compressor: RawDeflate,
    ends_at: StreamPosition,
}

/// Compresses blocks at one gzip level, keeping its compressors (about 300 KiB each at
/// level 6) for the next blocks.
#[derive(Debug)]
pub struct Deflater {
    search: Search,
    spare: Spares<Spare>,
}

impl BlockCompressor for Deflater {
    /// Deflates `block`, ending with a sync flush. Safe to call from several threads.
    fn compress(&self, block: &mut Block<'_>) {
        let result =
            self.take_compressor(block.position)
                .and_then(|(mut compressor, continues)| {
                    if !continues {
                        compressor.set_dictionary(&block.dictionary)?;
                    }
                    let compressed = compressor.sync_flush(block.raw)?;
                    self.spare.put(Spare {
                        compressor,
                        ends_at: block.end(),
                    });
                    Ok(compressed)
                });
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
            search: Search::of_level(level),
            spare: Spares::new(),
        }
    }

    /// A deflater with `level`'s algorithm and, if `tuned`, `deflateTune`'s good length,
    /// lazy match, nice length and chain length instead of zlib-rs's own for that level:
    /// for measuring settings against the default (`examples/deflate_sweep.rs`).
    pub fn with_search(level: u32, tuned: Option<[c_int; 4]>) -> Deflater {
        Deflater {
            search: Search {
                level: level.min(9) as c_int,
                tuned,
            },
            spare: Spares::new(),
        }
    }

    /// A compressor for a block starting at `position`, and whether it stopped right
    /// there (its window then holds what precedes the block).
    fn take_compressor(&self, position: StreamPosition) -> io::Result<(RawDeflate, bool)> {
        let spare = {
            let mut spares = self.spare.lock();
            if let Some(at) = spares.iter().position(|s| s.ends_at == position) {
                return Ok((spares.swap_remove(at).compressor, true));
            }
            spares.pop()
        };
        // Reset or set up outside the lock, which the other compressing threads wait on.
        match spare {
            Some(Spare { mut compressor, .. }) => {
                compressor.reset()?;
                Ok((compressor, false))
            }
            None => Ok((RawDeflate::new(self.search)?, false)),
        }
    }
}

/// A level, and how its match search differs from zlib-rs's for that level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Search {
    level: c_int,
    /// `deflateTune`'s good length, lazy match, nice length and chain length.
    tuned: Option<[c_int; 4]>,
}

impl Search {
    fn of_level(level: u32) -> Search {
        Search {
            level: level.min(9) as c_int,
            // Level 4's lazy matching, with at most 8 candidates to a match (zlib-rs: 24)
            // and a search that stops at a match of 128 bytes (32), which gains back
            // some of the ratio at no cost.
            tuned: (level == 4).then_some([4, 12, 128, 8]),
        }
    }
}

/// One raw deflate stream of zlib-rs, driven through zlib's C API.
struct RawDeflate {
    /// Boxed: zlib checks that a stream has not moved since it was set up.
    stream: Box<zlib::z_stream>,
    search: Search,
}

// SAFETY: the stream's state is owned by this value alone and used by one thread at a time
// (`&mut self`); its input and output pointers are set only for the length of a call.
unsafe impl Send for RawDeflate {}

impl RawDeflate {
    fn new(search: Search) -> io::Result<RawDeflate> {
        let mut stream = Box::<zlib::z_stream>::default();
        // SAFETY: `stream` is a z_stream with no allocator set (the library's own is used)
        // that stays in its box; the version and size are those of the library called.
        let code = unsafe {
            zlib::deflateInit2_(
                &mut *stream,
                search.level,
                zlib::Z_DEFLATED,
                // Negative: raw deflate, with a window of 2^15 bytes (32 KiB).
                -15,
                8,
                zlib::Z_DEFAULT_STRATEGY,
                zlib::zlibVersion(),
                std::mem::size_of::<zlib::z_stream>() as c_int,
            )
        };
        check(code, "deflateInit2")?;
        // From here on, dropping it ends the stream.
        let mut deflate = RawDeflate { stream, search };
        deflate.tune()?;
        Ok(deflate)
    }

    /// Applies the search's tuning; a reset undoes it.
    fn tune(&mut self) -> io::Result<()> {
        let Some([good, lazy, nice, chain]) = self.search.tuned else {
            return Ok(());
        };
        // SAFETY: the stream was set up by deflateInit2_ and has not been ended.
        let code = unsafe { zlib::deflateTune(&mut *self.stream, good, lazy, nice, chain) };
        check(code, "deflateTune")
    }

    /// Starts a new stream with the same settings.
    fn reset(&mut self) -> io::Result<()> {
        // SAFETY: the stream was set up by deflateInit2_ and has not been ended.
        let code = unsafe { zlib::deflateReset(&mut *self.stream) };
        check(code, "deflateReset")?;
        self.tune()
    }

    /// Primes a new stream with the data that precedes it (its last 32 KiB are used).
    fn set_dictionary(&mut self, dictionary: &[u8]) -> io::Result<()> {
        if dictionary.is_empty() {
            return Ok(());
        }
        let len = u32::try_from(dictionary.len()).map_err(io::Error::other)?;
        // SAFETY: the stream is set up and not ended; zlib reads `len` bytes of
        // `dictionary`, which lives for the call.
        let code =
            unsafe { zlib::deflateSetDictionary(&mut *self.stream, dictionary.as_ptr(), len) };
        check(code, "deflateSetDictionary")
    }

    /// Deflates `raw` and ends with a sync flush, so that the output ends on a byte
    /// boundary with an empty stored block.
    fn sync_flush(&mut self, raw: &[u8]) -> io::Result<Vec<u8>> {
        let mut output: Vec<u8> = Vec::with_capacity(raw.len() / 2 + 64);
        let mut input = raw;
        loop {
            let offered = input.len().min(u32::MAX as usize);
            let room = (output.capacity() - output.len()).min(u32::MAX as usize);
            let stream = &mut *self.stream;
            stream.next_in = input.as_ptr();
            stream.avail_in = offered as u32;
            stream.next_out = output.spare_capacity_mut().as_mut_ptr().cast();
            stream.avail_out = room as u32;
            let flush = match offered == input.len() {
                true => zlib::Z_SYNC_FLUSH,
                false => zlib::Z_NO_FLUSH,
            };
            // SAFETY: the stream is set up and not ended; zlib reads at most `avail_in`
            // bytes of `input` and writes at most `avail_out` bytes into the unused
            // capacity of `output`, both of which outlive the call.
            let code = unsafe { zlib::deflate(stream, flush) };
            let taken = offered - stream.avail_in as usize;
            let written = room - stream.avail_out as usize;
            let room_left = stream.avail_out > 0;
            stream.next_in = std::ptr::null();
            stream.next_out = std::ptr::null_mut();
            stream.avail_in = 0;
            stream.avail_out = 0;
            // BUF_ERROR only says that no progress was possible, which the loop handles.
            if code != zlib::Z_BUF_ERROR {
                check(code, "deflate")?;
            }
            // SAFETY: zlib initialised the `written` bytes after the current length.
            unsafe { output.set_len(output.len() + written) };
            input = &input[taken..];
            // Output room left over after a sync flush means the flush is complete.
            if input.is_empty() && flush == zlib::Z_SYNC_FLUSH && room_left {
                return Ok(output);
            }
            output.reserve(output.capacity().max(64));
        }
    }
}

impl std::fmt::Debug for RawDeflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawDeflate")
            .field("search", &self.search)
            .finish_non_exhaustive()
    }
}

impl Drop for RawDeflate {
    fn drop(&mut self) {
        // SAFETY: the stream was set up by deflateInit2_ and is ended once, here.
        unsafe { zlib::deflateEnd(&mut *self.stream) };
    }
}

/// An error for a return code of zlib other than Z_OK.
fn check(code: c_int, call: &str) -> io::Result<()> {
    match code {
        zlib::Z_OK => Ok(()),
        code => Err(io::Error::other(format!(
            "zlib's {call} failed with code {code}"
        ))),
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

    /// Log-like JSON lines, varied enough that how deeply matches are searched shows.
    fn log_lines(seed: u64, lines: usize) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let words = [
            "GET",
            "POST",
            "/api/orders",
            "/health",
            "timeout",
            "user",
            "cart",
            "ok",
        ];
        (0..lines)
            .flat_map(|n| {
                let message: Vec<&str> = (0..rng.usize(2..12))
                    .map(|_| words[rng.usize(..words.len())])
                    .collect();
                format!(
                    "{{\"n\":{n},\"latency_ms\":{},\"trace\":\"{:016x}\",\"msg\":\"{}\"}}\n",
                    rng.u32(..5000),
                    rng.u64(..),
                    message.join(" ")
                )
                .into_bytes()
            })
            .collect()
    }

    fn compress_alone(deflater: &Deflater, data: &[u8], position: StreamPosition) -> Vec<u8> {
        let mut block = Block::new(data, Cow::Borrowed(&[]), position);
        deflater.compress(&mut block);
        block.compressed.unwrap().unwrap()
    }

    #[test]
    fn level_4_searches_less_deeply_than_zlib_level_4_and_a_reset_keeps_that() {
        let data = log_lines(11, 4_000);
        let zlib_level = |level| {
            let mut compress = flate2::Compress::new(flate2::Compression::new(level), false);
            let mut out = Vec::with_capacity(data.len());
            compress
                .compress_vec(&data, &mut out, flate2::FlushCompress::Sync)
                .unwrap();
            out
        };
        let deflater = Deflater::new(4);
        let tuned = compress_alone(&deflater, &data, at(1, 0));
        let mut stream = tuned.clone();
        stream.extend([0x03, 0x00]);
        assert_eq!(inflate(&stream), data);
        // Other bytes than zlib-rs's level 4, of a size between its levels 3 and 4.
        let (level_3, level_4) = (zlib_level(3), zlib_level(4));
        assert!(tuned != level_4, "level 4 is zlib-rs's own");
        assert!(
            level_4.len() < tuned.len() && tuned.len() < level_3.len(),
            "level 3: {}, tuned 4: {}, level 4: {}",
            level_3.len(),
            tuned.len(),
            level_4.len()
        );
        // The spare compressor is reset for a block of another stream: the same bytes
        // as a new compressor's, tuning and all.
        let reset = compress_alone(&deflater, &data, at(2, 0));
        assert!(reset == tuned, "a reset compressor searches otherwise");
        // Other levels are zlib-rs's own.
        assert_eq!(
            compress_alone(&Deflater::new(6), &data, at(1, 0)),
            zlib_level(6)
        );
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
