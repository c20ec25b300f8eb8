//! How zlib-rs's match search trades CPU for ratio on a file: each setting compresses FILE
//! in blocks of 128 KiB ended by sync flushes (as `object::codec::deflate` does), on one
//! thread, and prints the thread's CPU seconds per GB of FILE and the ratio. Give FILE the
//! JSON lines rustsink writes (an object of `compression none`), to choose a gzip default.
//!
//! usage: cargo run --release --example deflate_sweep -- FILE SETTING...
//!
//! A SETTING is `LEVEL` (zlib-rs's own level) or `LEVEL:GOOD,LAZY,NICE,CHAIN` (the level's
//! algorithm with `deflateTune`'s four values); `4:4,12,128,8` is rustsink's default. Each
//! setting runs twice, in turn with the others, so that a machine whose speed drifts shows it.

#![allow(
    unsafe_code,
    reason = "zlib's C API is the one that can tune the search"
)]

use std::ffi::c_int;

use libz_rs_sys as zlib;

const BLOCK: usize = 128 * 1024;

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

/// Compresses `data` with one setting; returns the CPU seconds and the compressed size.
fn compress(data: &[u8], level: c_int, tune: Option<[c_int; 4]>) -> (f64, usize) {
    let mut stream = Box::<zlib::z_stream>::default();
    // SAFETY: a z_stream with no allocator set, boxed so that it does not move; the version
    // and size are the library's own.
    let code = unsafe {
        zlib::deflateInit2_(
            &mut *stream,
            level,
            zlib::Z_DEFLATED,
            -15,
            8,
            zlib::Z_DEFAULT_STRATEGY,
            zlib::zlibVersion(),
            std::mem::size_of::<zlib::z_stream>() as c_int,
        )
    };
    assert_eq!(code, zlib::Z_OK, "deflateInit2");
    if let Some([good, lazy, nice, chain]) = tune {
        // SAFETY: the stream was set up above.
        let code = unsafe { zlib::deflateTune(&mut *stream, good, lazy, nice, chain) };
        assert_eq!(code, zlib::Z_OK, "deflateTune");
    }
    let mut output = vec![0u8; 2 * BLOCK + 1024];
    let mut compressed = 0;
    let started = thread_cpu_seconds();
    for block in data.chunks(BLOCK) {
        stream.next_in = block.as_ptr();
        stream.avail_in = block.len() as u32;
        loop {
            stream.next_out = output.as_mut_ptr();
            stream.avail_out = output.len() as u32;
            // SAFETY: zlib reads at most `avail_in` bytes of `block` and writes at most
            // `avail_out` bytes of `output`, both alive for the call.
            let code = unsafe { zlib::deflate(&mut *stream, zlib::Z_SYNC_FLUSH) };
            assert!(
                code == zlib::Z_OK || code == zlib::Z_BUF_ERROR,
                "deflate: {code}"
            );
            compressed += output.len() - stream.avail_out as usize;
            // Room left over after a sync flush: the flush is complete.
            if stream.avail_out > 0 {
                break;
            }
        }
    }
    let seconds = thread_cpu_seconds() - started;
    // SAFETY: the stream was set up above and is ended once.
    unsafe { zlib::deflateEnd(&mut *stream) };
    (seconds, compressed)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, settings) = args
        .split_first()
        .expect("usage: deflate_sweep FILE SETTING...");
    let data = std::fs::read(path).expect("a readable FILE");
    let parsed: Vec<(c_int, Option<[c_int; 4]>)> = settings
        .iter()
        .map(|setting| {
            let (level, tune) = match setting.split_once(':') {
                Some((level, tune)) => {
                    let values: Vec<c_int> = tune
                        .split(',')
                        .map(|v| v.parse().expect("GOOD,LAZY,NICE,CHAIN are numbers"))
                        .collect();
                    let tune: [c_int; 4] = values.try_into().expect("four tuning values");
                    (level, Some(tune))
                }
                None => (setting.as_str(), None),
            };
            (level.parse().expect("LEVEL is a number"), tune)
        })
        .collect();
    let gigabytes = data.len() as f64 / 1e9;
    for round in 1..=2 {
        for (setting, &(level, tune)) in settings.iter().zip(&parsed) {
            let (seconds, compressed) = compress(&data, level, tune);
            println!(
                "round {round}  {setting:<16} {:6.2} CPU-s per GB   ratio {:.3}",
                seconds / gigabytes,
                data.len() as f64 / compressed as f64
            );
        }
    }
}
