//! Any bytes as a flush chunk: decoding and JSON encoding never panic, every line is valid
//! JSON, every record that was checked reads as a value, and an error points inside the
//! chunk, after the events that decoded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustsink::config::{DateFormat, JsonLines};
use rustsink::event::events;
use rustsink::object::encode::write_json_line;

fuzz_target!(|chunk: &[u8]| {
    let format = JsonLines {
        date_key: Some("date".into()),
        date_format: DateFormat::Iso8601,
    };
    let mut line = Vec::new();
    for item in events(chunk) {
        match item {
            Ok(event) => {
                event.record();
                line.clear();
                write_json_line(&mut line, &event, &format);
                rustsink_fuzz::assert_json(&line);
            }
            Err(error) => assert!(error.offset < chunk.len()),
        }
    }
});
