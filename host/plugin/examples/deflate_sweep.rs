//! How zlib-rs's match search trades CPU for ratio on a file: each setting compresses FILE
//! through the object engine's own gzip compressor (`object::codec::Deflater`), in the
//! blocks an object is written in, on one thread, and prints the thread's CPU seconds per GB
//! of FILE and the ratio. Give FILE the JSON lines rustsink writes (an object of
//! `compression none`), to choose a gzip default.
//!
//! usage: cargo run --release --example deflate_sweep -- FILE SETTING...
//!
//! A SETTING is `LEVEL` (zlib-rs's own level) or `LEVEL:GOOD,LAZY,NICE,CHAIN` (the level's
//! algorithm with `deflateTune`'s four values); `4:4,12,128,8` is rustsink's default. Each
//! setting runs twice, in turn with the others, so that a machine whose speed drifts shows it.

use std::borrow::Cow;

use rustsink::object::codec::{Block, BlockCompressor, Codec, Deflater, StreamPosition};

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

/// Compresses `data` block after block of one stream; returns the CPU seconds and the
/// compressed size.
fn compress(data: &[u8], deflater: &Deflater) -> (f64, usize) {
    let block_size = Codec::Gzip.format().block_size();
    let mut compressed = 0;
    let started = thread_cpu_seconds();
    for (index, raw) in data.chunks(block_size).enumerate() {
        let position = StreamPosition {
            stream: 0,
            offset: (index * block_size) as u64,
        };
        // Each block goes on from where the one before ended, on this one thread, so the
        // compressor needs no dictionary.
        let mut block = Block::new(raw, Cow::Borrowed(&[]), position);
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
    let (path, settings) = args
        .split_first()
        .expect("usage: deflate_sweep FILE SETTING...");
    let data = std::fs::read(path).expect("a readable FILE");
    let deflaters: Vec<Deflater> = settings
        .iter()
        .map(|setting| {
            let (level, tuned) = match setting.split_once(':') {
                Some((level, tune)) => {
                    let values: Vec<i32> = tune
                        .split(',')
                        .map(|v| v.parse().expect("GOOD,LAZY,NICE,CHAIN are numbers"))
                        .collect();
                    let tune: [i32; 4] = values.try_into().expect("four tuning values");
                    (level, Some(tune))
                }
                None => (setting.as_str(), None),
            };
            Deflater::with_search(level.parse().expect("LEVEL is a number"), tuned)
        })
        .collect();
    let gigabytes = data.len() as f64 / 1e9;
    for round in 1..=2 {
        for (setting, deflater) in settings.iter().zip(&deflaters) {
            let (seconds, compressed) = compress(&data, deflater);
            println!(
                "round {round}  {setting:<16} {:6.2} CPU-s per GB   ratio {:.3}",
                seconds / gigabytes,
                data.len() as f64 / compressed as f64
            );
        }
    }
}
