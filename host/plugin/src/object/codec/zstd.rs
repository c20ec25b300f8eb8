//! zstd objects: one independent zstd frame per block, each with its content size and
//! checksum. Concatenated frames are one valid zstd stream, which `zstd -d`, DuckDB and
//! every zstd reader decode whole.
//!
//! An object starts with an empty frame, so that an object sealed before any data is a
//! valid one; every frame's end is a point where a commit may end, and a seal appends
//! nothing. A frame's checksum catches damage that would still decode.

use zstd::zstd_safe;

use super::{Block, BlockCompressor, Format, Piece, Spares};
use crate::object::writer::Committed;

/// An empty frame: single segment, content size 0, one empty last block, and the
/// checksum of nothing.
const EMPTY_FRAME: [u8; 13] = [
    0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x00, 0x01, 0x00, 0x00, 0x99, 0xe9, 0xd8, 0x51,
];

/// About how much data a frame holds.
const FRAME: usize = 1 << 20;

/// The zstd layout.
#[derive(Debug)]
pub struct Zstd;

impl Format for Zstd {
    fn header(&self) -> &'static [u8] {
        &EMPTY_FRAME
    }

    fn extension(&self) -> &'static str {
        ".zst"
    }

    fn compresses(&self) -> bool {
        true
    }

    /// Frames of about 1 MiB: level 1 then finds longer matches than in 128 KiB, for about
    /// 12% less CPU and 1.5% smaller objects (BENCHMARKS.md), and zstd costs too little to
    /// need the finer split that spreads gzip's blocks over threads.
    fn block_size(&self) -> usize {
        FRAME
    }

    fn trailer(&self, _committed: &Committed) -> Vec<u8> {
        Vec::new()
    }

    fn scan(&self, stored: &[u8], visit: &mut dyn FnMut(Piece<'_>) -> bool) -> Result<(), String> {
        let mut end = 0;
        while end < stored.len() {
            let rest = &stored[end..];
            let damaged = |reason: String| format!("the zstd frame at byte {end} {reason}");
            let size = zstd_safe::find_frame_compressed_size(rest).map_err(|code| {
                damaged(format!("is damaged: {}", zstd_safe::get_error_name(code)))
            })?;
            let data = zstd::stream::decode_all(&rest[..size])
                .map_err(|error| damaged(format!("does not decode: {error}")))?;
            end += size;
            if !visit(Piece::Data(&data)) || !visit(Piece::End(end)) {
                break;
            }
        }
        Ok(())
    }
    fn reader<'a>(
        &self,
        stored: Box<dyn std::io::Read + 'a>,
    ) -> std::io::Result<Box<dyn std::io::Read + 'a>> {
        // The decoder reads on across frames.
        Ok(Box::new(::zstd::stream::read::Decoder::new(stored)?))
    }
}

/// Compresses each block into a frame of its own, at one level, keeping its compression
/// contexts for the next blocks.
#[derive(Debug)]
pub struct FrameCompressor {
    level: i32,
    spare: Spares<zstd::bulk::Compressor<'static>>,
}

impl FrameCompressor {
    /// A compressor at `level` (1 to 19).
    pub fn new(level: i32) -> FrameCompressor {
        FrameCompressor {
            level,
            spare: Spares::new(),
        }
    }

    fn take(&self) -> std::io::Result<zstd::bulk::Compressor<'static>> {
        if let Some(compressor) = self.spare.lock().pop() {
            return Ok(compressor);
        }
        let mut compressor = zstd::bulk::Compressor::new(self.level)?;
        compressor.include_checksum(true)?;
        compressor.include_contentsize(true)?;
        Ok(compressor)
    }
}

impl BlockCompressor for FrameCompressor {
    fn compress(&self, block: &mut Block<'_>) {
        let result = self.take().and_then(|mut compressor| {
            let frame = compressor.compress(block.raw)?;
            self.spare.put(compressor);
            Ok(frame)
        });
        block.compressed = Some(result);
    }

    fn release(&self) {
        self.spare.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_concatenate_after_the_empty_one_and_scan_back_frame_by_frame() {
        let data: Vec<u8> = (0..20_000)
            .flat_map(|n| format!("{{\"n\":{n},\"level\":\"info\"}}\n").into_bytes())
            .collect();
        assert_eq!(zstd::stream::decode_all(&EMPTY_FRAME[..]).unwrap(), b"");
        let compressor = FrameCompressor::new(3);
        let mut object = EMPTY_FRAME.to_vec();
        let mut ends = Vec::new();
        for piece in data.chunks(100_000) {
            let mut block = Block::new(piece);
            compressor.compress(&mut block);
            object.extend(block.compressed.unwrap().unwrap());
            ends.push(object.len() - EMPTY_FRAME.len());
        }
        assert!(object.len() < data.len() / 4, "{}", object.len());
        assert_eq!(zstd::stream::decode_all(&object[..]).unwrap(), data);

        let (mut scanned, mut found) = (Vec::new(), Vec::new());
        let result = Zstd.scan(&object[EMPTY_FRAME.len()..], &mut |piece| {
            match piece {
                Piece::Data(bytes) => scanned.extend_from_slice(bytes),
                Piece::End(end) => found.push(end),
            }
            true
        });
        assert_eq!(result, Ok(()));
        assert_eq!((&scanned, &found), (&data, &ends));

        // A flipped byte inside a frame: its checksum (or its structure) gives it away.
        let middle = EMPTY_FRAME.len() + ends[0] + (ends[1] - ends[0]) / 2;
        object[middle] ^= 0x40;
        let mut found = Vec::new();
        let result = Zstd.scan(&object[EMPTY_FRAME.len()..], &mut |piece| {
            if let Piece::End(end) = piece {
                found.push(end);
            }
            true
        });
        assert!(result.is_err(), "{result:?}");
        assert_eq!(found, [ends[0]]);
    }
}
