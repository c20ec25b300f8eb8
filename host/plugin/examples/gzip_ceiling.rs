//! The ceiling of the object engine: gzip at the default level, through the engine's own
//! compressor (`object::codec::Deflater`, in its blocks), over a file, one core, nothing
//! else. `benches/engine.sh` prints it beside the end-to-end numbers.
//!
//! usage: cargo run --release --example gzip_ceiling -- FILE [RAW_BYTES]
//!
//! With RAW_BYTES, the speed is given as RAW_BYTES per second: FILE is then what the plugin
//! compresses (its JSON lines) and RAW_BYTES the size of the raw log they came from.

use std::time::Instant;

use rustsink::config::GZIP_LEVEL;
use rustsink::object::codec::{Block, BlockCompressor, Deflater, GZIP_BLOCK_SIZE};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: gzip_ceiling FILE [RAW_BYTES]");
    let input = std::fs::read(&path).expect("a readable FILE");
    let counted = match args.next() {
        Some(raw) => raw.parse::<usize>().expect("RAW_BYTES is a number"),
        None => input.len(),
    };
    let deflater = Deflater::new(GZIP_LEVEL.unsigned_abs());
    // Best of three, as benches/engine.sh takes its runs.
    let mut seconds = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        for raw in input.chunks(GZIP_BLOCK_SIZE) {
            let mut block = Block::new(raw);
            deflater.compress(&mut block);
            block
                .compressed
                .expect("compressed")
                .expect("deflate works");
        }
        seconds = seconds.min(start.elapsed().as_secs_f64());
    }
    println!(
        "gzip level {GZIP_LEVEL} (libdeflate), one core, compression only (best of 3), {path}: {:.1} MB/s",
        counted as f64 / 1_048_576.0 / seconds
    );
}
