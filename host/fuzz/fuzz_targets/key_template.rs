//! Any text as `s3_key_format` and any tag: parsing never panics, and a template with
//! `$INDEX` renders a different key for each index.
#![no_main]

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use rustsink::object::key::{KeyContext, KeyTemplate};

fuzz_target!(|input: (&str, &str, &str, i64, u64)| {
    let (template, delimiters, tag, seconds, index) = input;
    let Ok(template) = KeyTemplate::parse(template, delimiters) else {
        return;
    };
    let mut context = KeyContext {
        window_start: DateTime::<Utc>::from_timestamp(seconds % 10_000_000_000, 0)
            .unwrap_or_default(),
        tag,
        index,
        uuid: "a1b2c3d4",
        hostname: "host",
        agent_id: "agent",
    };
    let key = template.render(&context);
    let series = template.series(&context);
    if template.uses_index() {
        context.index = index.wrapping_add(1);
        assert_ne!(template.render(&context), key, "{series}");
    }
});
