//! The ceiling of the object engine: gzip at the default level (4; flate2 on zlib-rs) over
//! a file, one core, nothing else. `benches/engine.sh` prints it beside the end-to-end numbers.
//!
//! usage: cargo run --release --example gzip_ceiling -- FILE [RAW_BYTES]
//!
//! With RAW_BYTES, the speed is given as RAW_BYTES per second: FILE is then what the plugin
//! compresses (its JSON lines) and RAW_BYTES the size of the raw log they came from.

use std::io::Write;
use std::time::Instant;

use flate2::Compression;
use flate2::write::GzEncoder;

/// `compression_level`'s default.
const LEVEL: u32 = 4;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: gzip_ceiling FILE [RAW_BYTES]");
    let input = std::fs::read(&path)?;
    let counted = match args.next() {
        Some(raw) => raw.parse::<usize>().expect("RAW_BYTES is a number"),
        None => input.len(),
    };
    // Best of three, as benches/engine.sh takes its runs.
    let mut seconds = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        let mut encoder = GzEncoder::new(std::io::sink(), Compression::new(LEVEL));
        for slice in input.chunks(64 * 1024) {
            encoder.write_all(slice)?;
        }
        encoder.finish()?;
        seconds = seconds.min(start.elapsed().as_secs_f64());
    }
    println!(
        "gzip level {LEVEL} (zlib-rs), one core, compression only (best of 3), {path}: {:.1} MB/s",
        counted as f64 / 1_048_576.0 / seconds
    );
    Ok(())
}
