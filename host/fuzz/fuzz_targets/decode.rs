//! Any bytes as a flush chunk: decoding and JSON encoding never panic, every line is valid
//! JSON, every record that was checked reads as a value, and an error points inside the
//! chunk, after the events that decoded. With `log_key`, a record is written as one line
//! or more (a raw value may hold newlines), and whole as JSON when it lacks the field.
//! Writing each record in the walk that checks it (as the object engine does) gives the
//! same lines and errors as checking it first.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustsink::config::{DateFormat, JsonLines};
use rustsink::event::events;
use rustsink::object::encode::{read_line, write_json_line, write_line};

fuzz_target!(|chunk: &[u8]| {
    let format = JsonLines {
        date_key: Some("date".into()),
        date_format: DateFormat::Iso8601,
        log_key: None,
    };
    let raw = JsonLines {
        log_key: Some("log".into()),
        ..format.clone()
    };
    for format in [&format, &raw] {
        let mut checked_first = Vec::new();
        let two_walks: Vec<_> = events(chunk)
            .map(|item| item.map(|event| write_line(&mut checked_first, &event, format)))
            .collect();
        let mut in_one_walk = Vec::new();
        let mut decoded = events(chunk);
        let mut one_walk = Vec::new();
        while let Some(item) =
            decoded.next_with(|header, body| read_line(&mut in_one_walk, header.time, body, format))
        {
            one_walk.push(item.map(|(_, found)| found));
        }
        assert_eq!(one_walk, two_walks);
        assert_eq!(in_one_walk, checked_first);
    }
    let mut line = Vec::new();
    for item in events(chunk) {
        match item {
            Ok(event) => {
                event.record();
                line.clear();
                write_json_line(&mut line, &event, &format);
                rustsink_fuzz::assert_json(&line);
                line.clear();
                let found = write_line(&mut line, &event, &raw);
                assert_eq!(line.last(), Some(&b'\n'));
                if !found {
                    rustsink_fuzz::assert_json(&line);
                }
            }
            Err(error) => assert!(error.offset < chunk.len()),
        }
    }
});
