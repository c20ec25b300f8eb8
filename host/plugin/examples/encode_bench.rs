//! The work rustsink does per record, alone: decoding chunks and writing JSON lines, in
//! memory, on one thread, with no compression and no Fluent Bit. Each line of FILE (a JSON
//! object, as `benches/generate_logs.py` writes) becomes a record, as `tail` with a JSON
//! parser makes it; the records are packed into V2 chunks of about 2 MiB.
//!
//! usage: cargo run --release --example encode_bench -- FILE [ROUNDS]
//!
//! Each round prints the time of decoding every chunk, and of decoding and writing every
//! record as a JSON line. For counts that do not vary with the machine's load, run one
//! round under `valgrind --tool=callgrind` and read the instructions of `decode_all` and
//! `encode_all` (BENCHMARKS.md).

use std::time::Instant;

use rustsink::config::{DateFormat, JsonLines};
use rustsink::event::chunk::{ChunkWriter, EventFormat, TimeForm};
use rustsink::event::{EventTime, events};
use rustsink::object::encode::read_line;

/// Decodes every event: what checking a chunk costs.
#[inline(never)]
fn decode_all(chunks: &[Vec<u8>]) -> usize {
    let mut records = 0;
    for chunk in chunks {
        for event in events(chunk) {
            records += usize::from(event.is_ok());
        }
    }
    records
}

/// Decodes every event and writes it as a JSON line, as the object engine does (one walk
/// over each record); returns the bytes written.
#[inline(never)]
fn encode_all(chunks: &[Vec<u8>], json: &JsonLines, out: &mut Vec<u8>) -> usize {
    let mut written = 0;
    for chunk in chunks {
        out.clear();
        let mut decoded = events(chunk);
        while decoded
            .next_with(|header, body| read_line(out, header.time, body, json))
            .is_some()
        {}
        written += out.len();
    }
    written
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("usage: encode_bench FILE [ROUNDS]");
    let text = std::fs::read_to_string(path).expect("a readable log file");
    let rounds: usize = args
        .get(2)
        .map_or(5, |r| r.parse().expect("ROUNDS is a number"));
    let mut chunks = Vec::new();
    let mut writer = ChunkWriter::new();
    for (n, line) in text.lines().enumerate() {
        let json: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let body = rmpv::ext::to_value(&json).expect("JSON converts to msgpack");
        let time = EventTime::new(1_700_000_000 + (n / 1000) as i64, (n % 1000) as u32 * 1000);
        writer.push(EventFormat::V2, TimeForm::EventTime, time, None, body);
        if writer.len() >= 2 << 20 {
            chunks.push(std::mem::take(&mut writer).finish());
        }
    }
    chunks.push(writer.finish());
    let bytes: usize = chunks.iter().map(Vec::len).sum();
    let json = JsonLines {
        date_key: Some("date".into()),
        date_format: DateFormat::Iso8601,
        log_key: None,
    };
    let mut out = Vec::with_capacity(8 << 20);
    for _ in 0..rounds {
        let started = Instant::now();
        let records = decode_all(&chunks);
        let decode = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let written = encode_all(&chunks, &json, &mut out);
        let both = started.elapsed().as_secs_f64();
        println!(
            "{records} records, {:.0} MB msgpack: decode {:.3} s ({:.2} s/GB), decode+json {:.3} s ({:.2} s/GB), {:.0} MB of lines",
            bytes as f64 / 1e6,
            decode,
            decode / (bytes as f64 / 1e9),
            both,
            both / (bytes as f64 / 1e9),
            written as f64 / 1e6
        );
    }
}
