//! Makes a complete deflate stream joinable: its last block no longer final, and after it an
//! empty stored block, which ends on a byte boundary with `00 00 ff ff` as a sync flush
//! does. Another deflate stream can then follow, and the two decode as one.
//!
//! Both changes need to know, to the bit, where the last block starts and where the stream
//! ends. A stream of one dynamic-Huffman block, which is what libdeflate makes of a gzip
//! block, gives them away cheaply: the block starts at bit 0, and its header gives the code
//! of its end-of-block symbol, which only zero bits (libdeflate's padding) follow. When just
//! one position in the last byte fits that, it is the end. Any other stream is inflated to
//! find them, which costs about a sixth of what compressing it did.

#![allow(
    unsafe_code,
    reason = "zlib's C API, the one that stops at deflate block boundaries, is called here"
)]

use std::ffi::c_int;
use std::io;

use libz_rs_sys as zlib;

/// The most bytes [`make_joinable`] adds.
pub const GROWTH: usize = 5;

/// The literal/length symbol that ends a block.
const END_OF_BLOCK: u16 = 256;

/// The order in which a dynamic block's header gives the lengths of the code-length code.
const CODE_LENGTH_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Makes `stream`, a complete raw deflate stream of `raw_len` bytes of data whose last
/// byte is padded with zero bits (as libdeflate and zlib pad), joinable.
///
/// # Errors
///
/// When `stream` does not end in its last byte; and when it does not inflate to `raw_len`
/// bytes, where it is inflated: a stream whose end its header does not give, and every
/// stream in a debug build.
pub fn make_joinable(stream: &mut Vec<u8>, raw_len: usize) -> io::Result<()> {
    let (last_block, end) = match single_block_end(stream) {
        Some(end) => {
            #[cfg(debug_assertions)]
            assert_eq!(
                bounds_by_inflating(stream, raw_len)?,
                (0, end),
                "the end read from the block's header is where inflating ends"
            );
            (0, end)
        }
        None => bounds_by_inflating(stream, raw_len)?,
    };
    let len = end.div_ceil(8) as usize;
    if len != stream.len() {
        return Err(io::Error::other(format!(
            "the deflate stream ends at byte {len} of {}",
            stream.len()
        )));
    }
    stream[(last_block / 8) as usize] &= !(1 << (last_block % 8));
    let used = (end % 8) as u32;
    if used != 0 {
        stream[len - 1] &= ((1u16 << used) - 1) as u8;
    }
    // An empty stored block: three zero bits (not final; stored), zero bits up to the
    // byte's end, a length of 0 and its complement. The three bits take the last byte's
    // unused bits when there are three of them.
    if used == 0 || used > 5 {
        stream.push(0);
    }
    stream.extend_from_slice(&[0, 0, 0xff, 0xff]);
    Ok(())
}

/// Where `stream` ends, in bits, if it is one final dynamic-Huffman block and only one
/// position in its last byte fits its end-of-block code followed by zero bits.
fn single_block_end(stream: &[u8]) -> Option<u64> {
    let mut bits = Bits {
        data: stream,
        at: 0,
    };
    // Final, dynamic Huffman codes.
    if bits.take(1)? != 1 || bits.take(2)? != 2 {
        return None;
    }
    let literals = bits.take(5)? as usize + 257;
    let distances = bits.take(5)? as usize + 1;
    let code_lengths = bits.take(4)? as usize + 4;
    let mut code_length_lengths = [0u8; 19];
    for &symbol in &CODE_LENGTH_ORDER[..code_lengths] {
        code_length_lengths[symbol] = bits.take(3)? as u8;
    }
    let code_length_code = Decoder::new(&code_length_lengths);
    let mut lengths = Vec::with_capacity(literals + distances);
    while lengths.len() < literals + distances {
        let (length, repeat) = match code_length_code.decode(&mut bits)? {
            length @ 0..=15 => (length as u8, 1),
            16 => (*lengths.last()?, 3 + bits.take(2)?),
            17 => (0, 3 + bits.take(3)?),
            18 => (0, 11 + bits.take(7)?),
            _ => return None,
        };
        lengths.extend(std::iter::repeat_n(length, repeat as usize));
    }
    if lengths.len() != literals + distances {
        return None;
    }
    let (code, code_len) = Decoder::new(&lengths[..literals]).code_of(END_OF_BLOCK)?;
    // Huffman codes are written from their most significant bit on.
    let written = (0..code_len).fold(0, |bits, i| bits | ((code >> (code_len - 1 - i)) & 1) << i);
    only_end(stream, bits.at, written, code_len)
}

/// The one position in the last byte of `stream`, after `header_end`, that `code` (`len`
/// bits as written) ends and only zero bits follow; None if there are several, or none.
fn only_end(stream: &[u8], header_end: u64, code: u32, len: u32) -> Option<u64> {
    let total = stream.len() as u64 * 8;
    let mut found = None;
    for end in total.saturating_sub(7)..=total {
        let fits = end >= header_end + u64::from(len)
            && bits_at(stream, end, (total - end) as u32) == Some(0)
            && bits_at(stream, end - u64::from(len), len) == Some(code);
        if fits && found.replace(end).is_some() {
            return None;
        }
    }
    found
}

/// Where the last block of `stream` starts and where the stream ends, in bits, found by
/// inflating it block by block.
fn bounds_by_inflating(stream: &[u8], raw_len: usize) -> io::Result<(u64, u64)> {
    let mut inflate = RawInflate::new()?;
    let mut out = vec![0u8; raw_len + 1];
    let z = &mut *inflate.stream;
    z.next_in = stream.as_ptr();
    z.avail_in = u32::try_from(stream.len()).map_err(io::Error::other)?;
    z.next_out = out.as_mut_ptr();
    z.avail_out = u32::try_from(out.len()).map_err(io::Error::other)?;
    let (mut last_block, mut end) = (0, None);
    loop {
        // SAFETY: the stream is set up and not ended; its input and output pointers are
        // within `stream` and `out`, which outlive the loop, with their lengths left.
        let code = unsafe { zlib::inflate(z, zlib::Z_BLOCK) };
        let taken = (stream.len() - z.avail_in as usize) as u64;
        // Bits of the last byte taken that inflate has not used yet.
        let unused = (z.data_type & 7) as u64;
        let at_boundary = z.data_type & 128 != 0;
        let in_last_block = z.data_type & 64 != 0;
        match code {
            zlib::Z_STREAM_END => break,
            zlib::Z_OK if at_boundary && in_last_block => end = Some(taken * 8 - unused),
            zlib::Z_OK if at_boundary => last_block = taken * 8 - unused,
            zlib::Z_OK => {}
            code => {
                return Err(io::Error::other(format!(
                    "zlib's inflate failed with code {code} at byte {taken}"
                )));
            }
        }
    }
    let made = z.total_out as usize;
    z.next_in = std::ptr::null();
    z.next_out = std::ptr::null_mut();
    match end {
        Some(end) if made == raw_len => Ok((last_block, end)),
        _ => Err(io::Error::other(format!(
            "the deflate stream inflates to {made} bytes, not {raw_len}"
        ))),
    }
}

/// Bits read from the first on, each byte from its least significant bit on.
struct Bits<'a> {
    data: &'a [u8],
    at: u64,
}

impl Bits<'_> {
    fn take(&mut self, count: u32) -> Option<u32> {
        let value = bits_at(self.data, self.at, count)?;
        self.at += u64::from(count);
        Some(value)
    }
}

/// The `count` (up to 32) bits of `data` from bit `at` on, the first as the least
/// significant; None past the end.
fn bits_at(data: &[u8], at: u64, count: u32) -> Option<u32> {
    (0..count).try_fold(0u32, |value, i| {
        let bit = at + u64::from(i);
        let byte = *data.get((bit / 8) as usize)?;
        Some(value | u32::from((byte >> (bit % 8)) & 1) << i)
    })
}

/// A canonical Huffman code (RFC 1951, 3.2.2), read a bit at a time: slow, and only used
/// on a header.
struct Decoder {
    /// How many symbols have a code of each length.
    counts: [u16; 16],
    /// The symbols with a code, by code length, then by value.
    symbols: Vec<u16>,
}

impl Decoder {
    fn new(lengths: &[u8]) -> Decoder {
        let mut counts = [0u16; 16];
        for &l in lengths {
            counts[l as usize] += 1;
        }
        counts[0] = 0;
        let mut symbols: Vec<u16> = (0..lengths.len() as u16).collect();
        symbols.retain(|&s| lengths[s as usize] != 0);
        symbols.sort_by_key(|&s| lengths[s as usize]);
        Decoder { counts, symbols }
    }

    /// The code of `symbol` and its length in bits; None if it has no code.
    fn code_of(&self, symbol: u16) -> Option<(u32, u32)> {
        let index = self.symbols.iter().position(|&s| s == symbol)?;
        // The first code of each length, and how many symbols have shorter codes.
        let (mut first, mut before) = (0u32, 0usize);
        for (length, &count) in self.counts.iter().enumerate().skip(1) {
            if index < before + count as usize {
                return Some((first + (index - before) as u32, length as u32));
            }
            before += count as usize;
            first = (first + u32::from(count)) << 1;
        }
        None
    }

    fn decode(&self, bits: &mut Bits<'_>) -> Option<u16> {
        // The first code of each length, and how many symbols have shorter codes.
        let (mut code, mut first, mut index) = (0u32, 0u32, 0usize);
        for &count in &self.counts[1..] {
            code |= bits.take(1)?;
            let count = u32::from(count);
            if code < first + count {
                return self.symbols.get(index + (code - first) as usize).copied();
            }
            index += count as usize;
            first = (first + count) << 1;
            code <<= 1;
        }
        None
    }
}

/// One raw inflate stream of zlib-rs, driven through zlib's C API.
struct RawInflate {
    /// Boxed: zlib checks that a stream has not moved since it was set up.
    stream: Box<zlib::z_stream>,
}

impl RawInflate {
    fn new() -> io::Result<RawInflate> {
        let mut stream = Box::<zlib::z_stream>::default();
        // SAFETY: `stream` is a z_stream with no allocator set (the library's own is used)
        // that stays in its box; the version and size are those of the library called.
        let code = unsafe {
            zlib::inflateInit2_(
                &mut *stream,
                // Negative: raw deflate, with a window of 2^15 bytes.
                -15,
                zlib::zlibVersion(),
                std::mem::size_of::<zlib::z_stream>() as c_int,
            )
        };
        match code {
            zlib::Z_OK => Ok(RawInflate { stream }),
            code => Err(io::Error::other(format!(
                "zlib's inflateInit2 failed with code {code}"
            ))),
        }
    }
}

impl Drop for RawInflate {
    fn drop(&mut self) {
        // SAFETY: the stream was set up by inflateInit2_ and is ended once, here.
        unsafe { zlib::inflateEnd(&mut *self.stream) };
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::DeflateDecoder;
    use libdeflater::{CompressionLvl, Compressor};
    use proptest::prelude::*;

    use super::*;

    fn libdeflate(raw: &[u8], level: i32) -> Vec<u8> {
        let mut compressor = Compressor::new(CompressionLvl::new(level).unwrap());
        let mut out = vec![0; compressor.deflate_compress_bound(raw.len())];
        let len = compressor.deflate_compress(raw, &mut out).unwrap();
        out.truncate(len);
        out
    }

    fn inflate(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        DeflateDecoder::new(stream).read_to_end(&mut out).unwrap();
        out
    }

    /// Lines of words from a small vocabulary, of varied lengths.
    fn lines(seed: u64, size: usize) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let words = [
            "info", "GET /api", "user=", "42", "timeout", "\"ok\"", "{}", "é",
        ];
        let mut out = Vec::with_capacity(size + 16);
        while out.len() < size {
            out.extend_from_slice(words[rng.usize(..words.len())].as_bytes());
            out.push(if rng.u8(..8) == 0 { b'\n' } else { b' ' });
        }
        out.truncate(size);
        out
    }

    /// Joins `pieces`, each made joinable, and ends the stream.
    fn joined(pieces: &[(Vec<u8>, usize)]) -> Vec<u8> {
        let mut stream = Vec::new();
        for (piece, raw_len) in pieces {
            let mut piece = piece.clone();
            make_joinable(&mut piece, *raw_len).unwrap();
            assert!(piece.ends_with(&[0, 0, 0xff, 0xff]));
            stream.extend(piece);
        }
        stream.extend([0x03, 0x00]);
        stream
    }

    #[test]
    fn the_end_read_from_a_header_is_where_inflating_ends() {
        let mut read_from_header = 0;
        for seed in 0..30 {
            let lines = super::super::tests::log_lines(seed, 100 + seed as usize * 90);
            // Up to a gzip block's size, at the default level and the highest.
            let raw = &lines[..lines.len().min(super::super::BLOCK_SIZE)];
            for level in [5, 9] {
                let stream = libdeflate(raw, level);
                let inflated = bounds_by_inflating(&stream, raw.len()).unwrap();
                if let Some(end) = single_block_end(&stream) {
                    assert_eq!((0, end), inflated, "seed {seed}, level {level}");
                    read_from_header += 1;
                }
            }
        }
        // Nearly every block of log lines is read from its header alone.
        assert!(read_from_header >= 55, "{read_from_header} of 60");
    }

    /// Whatever libdeflate makes of a piece of data, the end read from the header (when
    /// there is one) is where inflating ends.
    #[test]
    fn the_end_read_from_a_header_is_never_another() {
        for seed in 0..40 {
            let raw = lines(seed, 1_000 + seed as usize * 6_000);
            for level in [1, 5, 9, 12] {
                let stream = libdeflate(&raw, level);
                if let Some(end) = single_block_end(&stream) {
                    let inflated = bounds_by_inflating(&stream, raw.len()).unwrap();
                    assert_eq!((0, end), inflated, "seed {seed}, level {level}");
                }
            }
        }
    }

    #[test]
    fn an_end_that_more_than_one_position_fits_is_not_guessed() {
        // A code of bits 0, 1: it ends at bit 2 of the last byte, zeros after it.
        assert_eq!(only_end(&[0xff, 0b10], 0, 0b10, 2), Some(10));
        // Nor where the header is still being read.
        assert_eq!(only_end(&[0xff, 0b10], 10, 0b10, 2), None);
        // A code of two zero bits fits wherever the last byte's zeros are.
        assert_eq!(only_end(&[0xff, 0b0000_0100], 0, 0b00, 2), None);
        assert_eq!(only_end(&[0xff, 0], 0, 0, 2), None);
    }

    #[test]
    fn streams_of_several_blocks_or_fixed_codes_are_inflated_to_find_their_bounds() {
        let mut rng = fastrand::Rng::with_seed(9);
        // libdeflate ends a block at about 300,000 bytes, and where the data changes.
        let mut mixed = lines(1, 200_000);
        mixed.extend((0..200_000).map(|_| rng.u8(..)));
        mixed.extend(lines(2, 300_000));
        let tiny = b"x".to_vec();
        for raw in [mixed, tiny, Vec::new()] {
            let stream = libdeflate(&raw, 5);
            assert_eq!(single_block_end(&stream), None, "{} bytes", raw.len());
            let (last_block, end) = bounds_by_inflating(&stream, raw.len()).unwrap();
            assert!(raw.len() < 300_000 || last_block > 0);
            assert!(end <= stream.len() as u64 * 8);
            let both = joined(&[(stream.clone(), raw.len()), (stream, raw.len())]);
            assert_eq!(inflate(&both), [&raw[..], &raw[..]].concat());
        }
    }

    #[test]
    fn a_stream_that_inflates_to_another_length_is_refused() {
        // Fixed codes: the end is found by inflating, in every build.
        let raw = b"x".repeat(40);
        let error = make_joinable(&mut libdeflate(&raw, 5), raw.len() + 1).unwrap_err();
        assert!(error.to_string().contains("not 41"), "{error}");
        let raw = lines(3, 10_000);
        let mut stream = libdeflate(&raw, 5);
        // A single block's end is read from its header; only a debug build inflates it too.
        #[cfg(debug_assertions)]
        {
            let error = make_joinable(&mut stream.clone(), raw.len() + 1).unwrap_err();
            assert!(error.to_string().contains("not 10001"), "{error}");
        }
        stream.truncate(stream.len() / 2);
        assert!(make_joinable(&mut stream, raw.len()).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Every end of a stream's last byte: pieces of every size and level join into one
        /// stream that inflates to their data, in order.
        #[test]
        fn joined_pieces_inflate_to_their_data(
            seeds in proptest::collection::vec((any::<u64>(), 0usize..40_000, 0i32..=12, any::<bool>()), 1..5),
        ) {
            let mut data = Vec::new();
            let mut pieces = Vec::new();
            for (seed, size, level, noise) in seeds {
                let raw = match noise {
                    false => lines(seed, size),
                    true => {
                        let mut rng = fastrand::Rng::with_seed(seed);
                        (0..size % 3_000).map(|_| rng.u8(..)).collect()
                    }
                };
                pieces.push((libdeflate(&raw, level), raw.len()));
                data.extend(raw);
            }
            prop_assert_eq!(inflate(&joined(&pieces)), data);
        }
    }
}
