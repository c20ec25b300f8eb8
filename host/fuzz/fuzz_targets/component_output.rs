//! Any bytes as what a filter component returns (garbage msgpack, huge declared maps,
//! deep nesting): the host reads it as it reads a filter's output, never panics, and
//! writes every event it accepts as one line of valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustsink::config::{DateFormat, JsonLines};
use rustsink::event::events;
use rustsink::object::encode::write_json_line;
use rustsink::wasm::chain::normalize;

fuzz_target!(|batch: &[u8]| {
    // What the next filter would be handed.
    let normalized = normalize(batch);
    let base = normalized.batch.as_ptr() as usize;
    let found: Vec<_> = events(&normalized.batch)
        .map(|event| {
            let raw = event.expect("a normalized batch decodes").raw;
            let start = raw.as_ptr() as usize - base;
            start..start + raw.len()
        })
        .collect();
    assert_eq!(
        found, normalized.ranges,
        "each event where normalize says it is"
    );
    // What the object engine writes.
    let format = JsonLines {
        date_key: Some("date".into()),
        date_format: DateFormat::Iso8601,
        log_key: None,
    };
    let mut line = Vec::new();
    for event in events(batch).flatten() {
        line.clear();
        write_json_line(&mut line, &event, &format);
        rustsink_fuzz::assert_json(&line);
    }
});
