//! The cost of filter components per record, beside the same work done natively.
//!
//! usage: filter_bench LOG NOOP.wasm REDACT.wasm [RECORDS_PER_BATCH]
//!
//! Each line of LOG becomes a record `{"log": line}`, as Fluent Bit's tail input makes it;
//! every twentieth line gets an email and a card number appended, so that `redact` has
//! something to mask. The records go in batches (1,000 by default) through:
//! - `noop`, a component that returns each batch as it came: the boundary alone;
//! - `redact` (plugins/redact), decoding, masking and encoding inside the component;
//! - the same masking code (plugins/redact/src/mask.rs) compiled natively, with the same
//!   decoding and encoding.
//!
//! Each row is the best of three passes over all batches. Then the memory an instance
//! costs: 32 instances of each component are started and given one batch each, and the
//! growth of the process's resident memory is divided by 32. Last, what starting an
//! instance costs (instantiation and `init`, as after a failure), the mean of 500, with
//! the allocator the engine uses (`RUSTSINK_WASM_POOL=off` turns the pool off).

#[path = "../../../plugins/redact/src/mask.rs"]
mod mask;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmpv::Value;
use rustsink::config::ComponentLimits;
use rustsink::event::EventTime;
use rustsink::event::chunk::{ChunkWriter, EventFormat, TimeForm};
use rustsink::log::{Logger, Threshold};
use rustsink::wasm::chain;
use rustsink::wasm::filter::FilterComponent;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, log, noop, redact, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: filter_bench LOG NOOP.wasm REDACT.wasm [RECORDS_PER_BATCH]");
    };
    let per_batch: usize = rest.first().map_or(Ok(1000), |n| n.parse())?;
    let text = std::fs::read_to_string(log)?;
    let batches = batches(&text, per_batch);
    let records: usize = text.lines().count();
    let bytes = text.len();
    println!(
        "{records} records ({:.1} MiB of log) in batches of {per_batch}",
        bytes as f64 / 1048576.0
    );
    println!("| path | ns per record | records/s | MB/s of log |");
    println!("|---|---|---|---|");
    let row = |label: &str, elapsed: Duration| {
        let per_record = elapsed.as_nanos() as f64 / records as f64;
        println!(
            "| {label} | {per_record:.0} | {:.0} | {:.1} |",
            records as f64 / elapsed.as_secs_f64(),
            bytes as f64 / 1e6 / elapsed.as_secs_f64()
        );
    };
    let cache = tempfile::tempdir()?;
    let logger = Logger::stderr("bench", Threshold::from_env());
    let limits = ComponentLimits {
        memory: 256 << 20,
        timeout: Duration::from_secs(60),
    };
    for (label, path) in [("noop component", noop), ("redact component", redact)] {
        let component = Arc::new(FilterComponent::load(
            path.as_ref(),
            cache.path(),
            limits.clone(),
            &logger,
        )?);
        let mut instance = component.start()?;
        let elapsed = best_of_three(|| {
            for batch in &batches {
                let out = chain::run_once(&mut instance, "bench", batch)
                    .expect("the component processes the batch");
                std::hint::black_box(out);
            }
        });
        row(label, elapsed);
    }
    let patterns = mask::Patterns {
        emails: true,
        cards: true,
    };
    let elapsed = best_of_three(|| {
        for batch in &batches {
            std::hint::black_box(redact_natively(batch, patterns));
        }
    });
    row("redact, native Rust", elapsed);
    if let Some(peak) = status_kib("VmHWM") {
        println!("peak RSS of the whole process: {peak} KiB");
    }
    let mut memory_rows = Vec::new();
    let mut start_rows = Vec::new();
    for (label, path) in [("noop", noop), ("redact", redact)] {
        let component = Arc::new(FilterComponent::load(
            path.as_ref(),
            cache.path(),
            limits.clone(),
            &logger,
        )?);
        const INSTANCES: u64 = 32;
        let before = status_kib("VmRSS").unwrap_or(0);
        let mut instances = Vec::new();
        for _ in 0..INSTANCES {
            let mut instance = component.start()?;
            let out = chain::run_once(&mut instance, "bench", &batches[0]).expect("a batch");
            std::hint::black_box(out);
            instances.push(instance);
        }
        let after = status_kib("VmRSS").unwrap_or(0);
        memory_rows.push(format!(
            "| {label} | {} KiB |",
            after.saturating_sub(before) / INSTANCES
        ));
        drop(instances);
        const STARTS: u32 = 500;
        let started = Instant::now();
        for _ in 0..STARTS {
            std::hint::black_box(component.start()?);
        }
        start_rows.push(format!(
            "| {label} | {:.1} µs |",
            started.elapsed().as_secs_f64() * 1e6 / f64::from(STARTS)
        ));
    }
    println!("| component | resident memory per instance, after one batch |");
    println!("|---|---|");
    println!("{}", memory_rows.join("\n"));
    println!(
        "| component | start of an instance ({:?} allocator) |",
        rustsink::wasm::engine::allocator()
    );
    println!("|---|---|");
    println!("{}", start_rows.join("\n"));
    Ok(())
}

/// A `KiB` line of /proc/self/status.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn batches(text: &str, per_batch: usize) -> Vec<Vec<u8>> {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .chunks(per_batch)
        .enumerate()
        .map(|(batch, lines)| {
            let mut writer = ChunkWriter::new();
            for (i, line) in lines.iter().enumerate() {
                let log = if (batch * per_batch + i).is_multiple_of(20) {
                    format!("{line} user=jane.doe@example.com card=4111 1111 1111 1111")
                } else {
                    (*line).to_owned()
                };
                writer.push(
                    EventFormat::V2,
                    TimeForm::EventTime,
                    EventTime::new(1_714_557_600, 0),
                    Some(Value::Map(Vec::new())),
                    Value::Map(vec![(Value::from("log"), Value::from(log))]),
                );
            }
            writer.finish()
        })
        .collect()
}

/// What the redact component does to a batch, natively: decode, mask strings, encode.
fn redact_natively(mut batch: &[u8], patterns: mask::Patterns) -> Vec<u8> {
    fn scrub(value: &mut Value, patterns: mask::Patterns) {
        match value {
            Value::String(text) => {
                if let Some(masked) = text.as_str().and_then(|t| mask::mask(t, patterns, "****")) {
                    *value = Value::from(masked);
                }
            }
            Value::Map(entries) => entries.iter_mut().for_each(|(_, v)| scrub(v, patterns)),
            Value::Array(items) => items.iter_mut().for_each(|v| scrub(v, patterns)),
            _ => {}
        }
    }
    let mut out = Vec::with_capacity(batch.len());
    while !batch.is_empty() {
        let mut event = rmpv::decode::read_value(&mut batch).expect("a valid batch");
        if let Value::Array(parts) = &mut event
            && let Some(body) = parts.get_mut(1)
        {
            scrub(body, patterns);
        }
        rmpv::encode::write_value(&mut out, &event).expect("encoding to memory");
    }
    out
}

fn best_of_three(mut pass: impl FnMut()) -> Duration {
    pass(); // warm-up
    (0..3)
        .map(|_| {
            let start = Instant::now();
            pass();
            start.elapsed()
        })
        .min()
        .expect("three passes")
}
