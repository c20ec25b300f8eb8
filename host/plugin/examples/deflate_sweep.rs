//! What each gzip level costs and gains on a file: FILE is compressed through the object
//! engine's own gzip compressor (`object::codec::Deflater`), in the blocks an object is
//! written in, on one thread, and the thread's CPU seconds per GB of FILE and the ratio are
//! printed. Give FILE the JSON lines rustsink writes (an object of `compression none`), to
//! choose a gzip default.
//!
//! usage: cargo run --release --example deflate_sweep -- FILE LEVEL...
//!
//! Each level runs twice, in turn with the others, so that a machine whose speed drifts
//! shows it.

use rustsink::object::codec::{Block, BlockCompressor, Deflater, GZIP_BLOCK_SIZE};

/// The CPU time of the calling thread, in seconds.
fn thread_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc is mounted");
    // After the command's name (in parentheses): utime and stime are fields 12 and 13.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Compresses `data` block after block; returns the CPU seconds and the compressed size.
fn compress(data: &[u8], deflater: &Deflater) -> (f64, usize) {
    let mut compressed = 0;
    let started = thread_cpu_seconds();
    for raw in data.chunks(GZIP_BLOCK_SIZE) {
        let mut block = Block::new(raw);
        deflater.compress(&mut block);
        let stored = block
            .compressed
            .expect("compressed")
            .expect("deflate works");
        compressed += stored.len();
    }
    (thread_cpu_seconds() - started, compressed)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, levels) = args
        .split_first()
        .expect("usage: deflate_sweep FILE LEVEL...");
    let data = std::fs::read(path).expect("a readable FILE");
    let deflaters: Vec<Deflater> = levels
        .iter()
        .map(|level| Deflater::new(level.parse().expect("LEVEL is a number")))
        .collect();
    let gigabytes = data.len() as f64 / 1e9;
    for round in 1..=2 {
        for (level, deflater) in levels.iter().zip(&deflaters) {
            let (seconds, compressed) = compress(&data, deflater);
            println!(
                "round {round}  level {level:<3} {:6.2} CPU-s per GB   ratio {:.3}",
                seconds / gigabytes,
                data.len() as f64 / compressed as f64
            );
        }
    }
}
