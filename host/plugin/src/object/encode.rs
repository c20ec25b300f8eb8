//! JSON lines: one record per line, as Fluent Bit's `out_s3` writes `json_lines`.
//!
//! The event time comes first under `json_date_key` (unless it is off), then the record's
//! fields in their order. Values that JSON has no word for are written by these rules, so
//! every line is valid JSON whatever the record holds:
//!
//! | msgpack | JSON |
//! |---|---|
//! | string or binary | string; bytes that are not UTF-8 become U+FFFD |
//! | integer (any size msgpack allows) | number, exact |
//! | float | number; NaN and infinities become `null` |
//! | map key that is not a string | the key's JSON text, as a string (`1` -> `"1"`), cut at [`MAX_KEY_TEXT`] bytes |
//! | ext type 0 of 8 bytes (an EventTime) | seconds with a fraction, as a number |
//! | other ext | string `"ext:<type>:<hex of the data>"` |
//!
//! The V2 metadata map is not written. The record is written straight from its msgpack
//! bytes, in the same walk that checks them ([`read_line`]).
//!
//! With `log_key`, a line holds only that field's value, as `out_s3` writes it: a string (or
//! binary) as it is, any other value as JSON. A record without the field is written whole,
//! as JSON, rather than lost.

use std::io::Write;

use time::OffsetDateTime;

use crate::config::{DateFormat, JsonLines};
use crate::event::msgpack::{Item, MAX_DEPTH, read_item, skip_within};
use crate::event::{Event, EventTime, Unreadable};

/// Appends one checked event as a line, newline included: its `log_key` field if that is
/// set (and the record has it), else the whole record as JSON. Returns false for a record
/// that lacks the `log_key` field.
pub fn write_line(out: &mut Vec<u8>, event: &Event<'_>, format: &JsonLines) -> bool {
    // A checked body always reads; were it not to, nothing of its line is left written.
    read_line(out, event.time, &mut &event.body[..], format).unwrap_or(true)
}

/// Appends one checked event as a JSON line, newline included.
pub fn write_json_line(out: &mut Vec<u8>, event: &Event<'_>, format: &JsonLines) {
    let _ = whole_or_nothing(out, |out| {
        write_json_line_of(out, event.time, &mut &event.body[..], format)
    });
}

/// Reads the record at the front of `body`, not yet checked, and appends it as
/// [`write_line`] does, moving past it: the one walk over a record that decoding it and
/// writing it take ([`crate::event::Events::next_with`]). A record that is not one whole
/// map nested at most [`MAX_DEPTH`] deep is refused, and nothing of its line is left in
/// `out`.
pub fn read_line(
    out: &mut Vec<u8>,
    time: EventTime,
    body: &mut &[u8],
    format: &JsonLines,
) -> Result<bool, Unreadable> {
    whole_or_nothing(out, |out| match &format.log_key {
        Some(log_key) => write_log_key_line(out, time, body, log_key, format),
        None => write_json_line_of(out, time, body, format).map(|()| true),
    })
}

/// Runs `write`, and leaves nothing of what it wrote if it fails half way.
fn whole_or_nothing<T>(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<T, Unreadable>,
) -> Result<T, Unreadable> {
    let line_start = out.len();
    let written = write(out);
    if written.is_err() {
        out.truncate(line_start);
    }
    written
}

/// Writes the record's `log_key` field alone, or the whole record when it has none.
fn write_log_key_line(
    out: &mut Vec<u8>,
    time: EventTime,
    body: &mut &[u8],
    log_key: &str,
    format: &JsonLines,
) -> Result<bool, Unreadable> {
    let start = *body;
    let Ok(Item::Map(fields)) = read_item(body) else {
        return Err(Unreadable);
    };
    let mut found = false;
    for _ in 0..fields {
        let is_log_key = !found
            && matches!(read_item(&mut &body[..]),
                Ok(Item::Str(key) | Item::Bin(key)) if key == log_key.as_bytes());
        // Past the key (which may be a map or an array), and past its value unless it is
        // the field, which is written: a string (or binary) as it is.
        skip_within(body, MAX_DEPTH - 1).map_err(|_| Unreadable)?;
        if !is_log_key {
            skip_within(body, MAX_DEPTH - 1).map_err(|_| Unreadable)?;
            continue;
        }
        found = true;
        let mut value = *body;
        match read_item(&mut value) {
            Ok(Item::Str(raw) | Item::Bin(raw)) => {
                out.extend_from_slice(raw);
                *body = value;
            }
            _ => write_value(out, body, MAX_DEPTH - 1)?,
        }
        out.push(b'\n');
    }
    if found {
        return Ok(true);
    }
    *body = start;
    write_json_line_of(out, time, body, format)?;
    Ok(false)
}

/// Writes the whole record as a JSON line, newline included.
fn write_json_line_of(
    out: &mut Vec<u8>,
    time: EventTime,
    body: &mut &[u8],
    format: &JsonLines,
) -> Result<(), Unreadable> {
    out.push(b'{');
    let mut first = true;
    if let Some(key) = &format.date_key {
        write_string(out, key);
        out.push(b':');
        write_time(out, time, format.date_format);
        first = false;
    }
    let Ok(Item::Map(fields)) = read_item(body) else {
        return Err(Unreadable);
    };
    for _ in 0..fields {
        if !first {
            out.push(b',');
        }
        first = false;
        write_key(out, body, MAX_DEPTH - 1)?;
        out.push(b':');
        write_value(out, body, MAX_DEPTH - 1)?;
    }
    out.extend_from_slice(b"}\n");
    Ok(())
}

fn write_time(out: &mut Vec<u8>, time: EventTime, format: DateFormat) {
    let calendar = match format {
        DateFormat::Iso8601 => Some((b'T', "Z")),
        DateFormat::JavaSqlTimestamp => Some((b' ', "")),
        _ => None,
    };
    if let Some((separator, suffix)) = calendar
        && let Ok(date) = OffsetDateTime::from_unix_timestamp(time.seconds)
        && let Ok(year) = u32::try_from(date.year())
        && year <= 9999
    {
        // By hand rather than with write!: this runs once a record.
        out.push(b'"');
        push_digits(out, year, 4);
        out.push(b'-');
        push_digits(out, u8::from(date.month()).into(), 2);
        out.push(b'-');
        push_digits(out, date.day().into(), 2);
        out.push(separator);
        push_digits(out, date.hour().into(), 2);
        out.push(b':');
        push_digits(out, date.minute().into(), 2);
        out.push(b':');
        push_digits(out, date.second().into(), 2);
        out.push(b'.');
        push_digits(out, time.nanos / 1_000, 6);
        out.extend_from_slice(suffix.as_bytes());
        out.push(b'"');
        return;
    }
    match format {
        DateFormat::Epoch => {
            let _ = write!(out, "{}", time.seconds);
        }
        DateFormat::EpochMs => {
            let millis = i128::from(time.seconds) * 1_000 + i128::from(time.nanos / 1_000_000);
            let _ = write!(out, "{millis}");
        }
        // Double, and calendar formats for times outside the years 0000 to 9999.
        _ => write_float(out, time.seconds as f64 + f64::from(time.nanos) / 1e9),
    }
}

/// Appends `value` in decimal with exactly `width` digits (`value` must fit).
fn push_digits(out: &mut Vec<u8>, mut value: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for digit in out[start..].iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Writes bytes as a JSON string; what is not UTF-8 becomes U+FFFD, as
/// `String::from_utf8_lossy` makes it.
fn write_bytes_as_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let rest = escape_contents(out, bytes, true);
    // From the first byte that is not ASCII (so at a character boundary), checked once:
    // much faster than from_utf8_lossy on text that is valid, as logs are.
    if !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(_) => escape_contents(out, rest, false),
            Err(_) => escape_contents(out, String::from_utf8_lossy(rest).as_bytes(), false),
        };
    }
    out.push(b'"');
}

/// Writes a string as a JSON string, with the same bytes as `serde_json::to_writer`.
fn write_string(out: &mut Vec<u8>, text: &str) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    escape_contents(out, text.as_bytes(), false);
    out.push(b'"');
}

/// How a byte is written inside a JSON string: 0 as itself, `u` as `\u00XX`, any other
/// value `v` as a backslash and `v`. The same escapes as serde_json writes.
const ESCAPE: [u8; 256] = {
    let mut table = [0; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Writes the inside of a JSON string: `text`, escaped as serde_json escapes it. With
/// `ascii_only`, stops before the first group of bytes that holds one that is not ASCII,
/// and returns what is left from there; otherwise writes everything.
///
/// By hand because this is the hottest loop after deflate: log lines that hold JSON have
/// a quote every few bytes. Eight bytes are checked at once for a byte to escape (a
/// quote, a backslash, a control character).
fn escape_contents<'a>(out: &mut Vec<u8>, text: &'a [u8], ascii_only: bool) -> &'a [u8] {
    let mut rest = text;
    while let Some(group) = rest.first_chunk::<8>() {
        let word = u64::from_le_bytes(*group);
        if ascii_only && word & HIGHS != 0 {
            return rest;
        }
        let to_escape = to_escape(word);
        // All eight bytes, then back to the clean ones: copying a fixed size is a single
        // move, where a short copy of any length is a call.
        out.extend_from_slice(group);
        if to_escape == 0 {
            rest = &rest[8..];
            continue;
        }
        // The first flagged byte (little-endian: the lowest) is always a real one.
        let clean = (to_escape.trailing_zeros() / 8) as usize;
        out.truncate(out.len() - (8 - clean));
        push_escaped(out, rest[clean]);
        rest = &rest[clean + 1..];
    }
    // The last few bytes (all of a short key), checked at once too: padded with spaces,
    // which need no escape and are ASCII.
    let mut last = [b' '; 8];
    for (padded, &byte) in last.iter_mut().zip(rest) {
        *padded = byte;
    }
    let word = u64::from_le_bytes(last);
    if ascii_only && word & HIGHS != 0 {
        return rest;
    }
    if to_escape(word) == 0 {
        // Eight bytes and back, as above.
        out.extend_from_slice(&last);
        out.truncate(out.len() - (8 - rest.len()));
    } else {
        for &byte in rest {
            push_escaped(out, byte);
        }
    }
    &[]
}

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// The high bit of each byte of `word` (eight bytes of a string, little-endian) that JSON
/// needs escaped: a quote, a backslash, a control character. Exact up to the first one.
#[inline]
fn to_escape(word: u64) -> u64 {
    /// The high bit of each byte of `word` that is zero; exact up to the first one.
    fn zero_bytes(word: u64) -> u64 {
        word.wrapping_sub(ONES) & !word & HIGHS
    }
    zero_bytes(word ^ (ONES * u64::from(b'"')))
        | zero_bytes(word ^ (ONES * u64::from(b'\\')))
        // Bytes below 0x20, by the same borrow trick.
        | (word.wrapping_sub(ONES * 0x20) & !word & HIGHS)
}

/// Writes one byte of a JSON string, escaped if it must be.
#[inline]
fn push_escaped(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match ESCAPE[usize::from(byte)] {
        0 => out.push(byte),
        b'u' => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0xf)],
        ]),
        short => out.extend_from_slice(&[b'\\', short]),
    }
}

fn write_float(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        serde_json::to_writer(&mut *out, &value).expect("writing JSON to a Vec cannot fail");
    } else {
        out.extend_from_slice(b"null");
    }
}

/// The most bytes of a map key's JSON text, when the key is not a string.
pub const MAX_KEY_TEXT: usize = 1024;

/// Writes the map key at the front of `rest` and moves past it; a map or array in it may
/// nest `depth` levels.
fn write_key(out: &mut Vec<u8>, rest: &mut &[u8], depth: usize) -> Result<(), Unreadable> {
    let before = *rest;
    match read_item(rest) {
        Ok(Item::Str(bytes) | Item::Bin(bytes)) => write_bytes_as_string(out, bytes),
        Ok(_) => {
            *rest = before;
            let mut text = Vec::new();
            write_value(&mut text, rest, depth)?;
            // Keys nested in keys are escaped again at every level, which doubles them: a
            // bound on each keeps a small record from growing without end.
            if text.len() > MAX_KEY_TEXT {
                text.truncate(MAX_KEY_TEXT);
                text.extend_from_slice("…".as_bytes());
            }
            write_bytes_as_string(out, &text);
        }
        Err(_) => return Err(Unreadable),
    }
    Ok(())
}

/// Writes the value at the front of `rest` (with all its elements) and moves past it; its
/// maps and arrays may nest `depth` levels.
fn write_value(out: &mut Vec<u8>, rest: &mut &[u8], depth: usize) -> Result<(), Unreadable> {
    let Ok(item) = read_item(rest) else {
        return Err(Unreadable);
    };
    match item {
        Item::Nil => out.extend_from_slice(b"null"),
        Item::Bool(true) => out.extend_from_slice(b"true"),
        Item::Bool(false) => out.extend_from_slice(b"false"),
        Item::Uint(integer) => {
            out.extend_from_slice(itoa::Buffer::new().format(integer).as_bytes())
        }
        Item::Int(integer) => out.extend_from_slice(itoa::Buffer::new().format(integer).as_bytes()),
        Item::F32(float) => write_float(out, f64::from(float)),
        Item::F64(float) => write_float(out, float),
        Item::Str(bytes) | Item::Bin(bytes) => write_bytes_as_string(out, bytes),
        Item::Array(len) => {
            let inner = depth.checked_sub(1).ok_or(Unreadable)?;
            out.push(b'[');
            for index in 0..len {
                if index > 0 {
                    out.push(b',');
                }
                write_value(out, rest, inner)?;
            }
            out.push(b']');
        }
        Item::Map(len) => {
            let inner = depth.checked_sub(1).ok_or(Unreadable)?;
            out.push(b'{');
            for index in 0..len {
                if index > 0 {
                    out.push(b',');
                }
                write_key(out, rest, inner)?;
                out.push(b':');
                write_value(out, rest, inner)?;
            }
            out.push(b'}');
        }
        Item::Ext(0, &[s0, s1, s2, s3, n0, n1, n2, n3]) => {
            let seconds = u32::from_be_bytes([s0, s1, s2, s3]);
            let nanos = u32::from_be_bytes([n0, n1, n2, n3]);
            write_float(out, f64::from(seconds) + f64::from(nanos) / 1e9);
        }
        Item::Ext(kind, data) => {
            let hex: String = data.iter().map(|byte| format!("{byte:02x}")).collect();
            write_string(out, &format!("ext:{kind}:{hex}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rmpv::Value;

    use super::*;
    use crate::event::chunk::{ChunkWriter, EventFormat, TimeForm};
    use crate::event::events;
    use crate::event::tests::{arb_event, at, nested_deeper_than_allowed};

    fn line(body: Value, time: EventTime, format: JsonLines) -> String {
        let mut chunk = ChunkWriter::new();
        chunk.push(EventFormat::V2, TimeForm::EventTime, time, None, body);
        let chunk = chunk.finish();
        let event = events(&chunk).next().unwrap().unwrap();
        let mut out = Vec::new();
        write_json_line(&mut out, &event, &format);
        String::from_utf8(out).unwrap()
    }

    fn iso() -> JsonLines {
        JsonLines {
            date_key: Some("date".into()),
            date_format: DateFormat::Iso8601,
            log_key: None,
        }
    }

    #[test]
    fn log_key_writes_that_field_alone_a_string_as_it_is() {
        let format = JsonLines {
            log_key: Some("log".into()),
            ..iso()
        };
        let time = EventTime::new(1_714_557_600, 0);
        let write = |body: Value| {
            let mut chunk = ChunkWriter::new();
            chunk.push(EventFormat::V2, TimeForm::EventTime, time, None, body);
            let chunk = chunk.finish();
            let event = events(&chunk).next().unwrap().unwrap();
            let mut out = Vec::new();
            let found = write_line(&mut out, &event, &format);
            (String::from_utf8(out).unwrap(), found)
        };
        let field = |value: Value| {
            Value::Map(vec![
                (
                    Value::Map(vec![(1.into(), 2.into())]),
                    Value::from("a map key"),
                ),
                (Value::from("stream"), Value::from("stdout")),
                (Value::from("log"), value),
            ])
        };
        assert_eq!(
            write(field(Value::from("GET / 200 \"ok\""))),
            ("GET / 200 \"ok\"\n".to_owned(), true)
        );
        assert_eq!(
            write(field(Value::Binary(b"raw bytes".to_vec()))),
            ("raw bytes\n".to_owned(), true)
        );
        let nested = Value::Map(vec![(Value::from("level"), Value::from("info"))]);
        assert_eq!(
            write(field(nested)),
            ("{\"level\":\"info\"}\n".to_owned(), true)
        );
        assert_eq!(write(field(Value::from(7))), ("7\n".to_owned(), true));
        // Without the field, the record is written whole.
        let other = Value::Map(vec![(Value::from("msg"), Value::from("x"))]);
        assert_eq!(
            write(other),
            (
                "{\"date\":\"2024-05-01T10:00:00.000000Z\",\"msg\":\"x\"}\n".to_owned(),
                false
            )
        );
    }

    #[test]
    fn date_comes_first_in_out_s3_format() {
        let body = Value::Map(vec![(Value::from("log"), Value::from("hello"))]);
        let text = line(body, EventTime::new(1_714_557_600, 123_456_789), iso());
        assert_eq!(
            text,
            "{\"date\":\"2024-05-01T10:00:00.123456Z\",\"log\":\"hello\"}\n"
        );
    }

    #[test]
    fn every_date_format_matches_fluent_bit() {
        let time = EventTime::new(1_714_557_600, 987_654_321);
        let body = Value::Map(vec![]);
        for (format, expected) in [
            (
                DateFormat::JavaSqlTimestamp,
                "\"2024-05-01 10:00:00.987654\"",
            ),
            (DateFormat::Double, "1714557600.9876542"),
            (DateFormat::Epoch, "1714557600"),
            (DateFormat::EpochMs, "1714557600987"),
        ] {
            let text = line(
                body.clone(),
                time,
                JsonLines {
                    date_key: Some("t".into()),
                    date_format: format,
                    log_key: None,
                },
            );
            assert_eq!(text, format!("{{\"t\":{expected}}}\n"), "{format:?}");
        }
        let none = JsonLines {
            date_key: None,
            date_format: DateFormat::Iso8601,
            log_key: None,
        };
        assert_eq!(line(body, time, none), "{}\n");
    }

    proptest::proptest! {
        #[test]
        fn strings_are_escaped_as_serde_json_escapes_them(text in ".*", ascii in "[ -~\\x00-\\x1f\\x7f]*") {
            for text in [&text, &ascii] {
                let mut ours = Vec::new();
                write_string(&mut ours, text);
                proptest::prop_assert_eq!(ours, serde_json::to_vec(text).unwrap());
            }
        }

        #[test]
        fn bytes_are_written_as_their_lossy_utf8_string(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            text in ".{0,12}",
        ) {
            // Valid UTF-8 after some ASCII, and bytes that may not be, alone and after it.
            let mut valid = b"plain ascii!".to_vec();
            valid.extend_from_slice(text.as_bytes());
            let mut invalid = valid.clone();
            invalid.extend_from_slice(&bytes);
            for bytes in [&bytes, &valid, &invalid] {
                let mut ours = Vec::new();
                write_bytes_as_string(&mut ours, bytes);
                let expected = serde_json::to_vec(&String::from_utf8_lossy(bytes)).unwrap();
                proptest::prop_assert_eq!(ours, expected);
            }
        }
    }

    #[test]
    fn every_byte_that_needs_it_is_escaped_wherever_it_stands() {
        for byte in 0u8..0x80 {
            for at in 0..20 {
                let mut text = "abcdefghijklmnopqrs".to_string();
                text.insert(at, char::from(byte));
                let mut ours = Vec::new();
                write_string(&mut ours, &text);
                assert_eq!(
                    ours,
                    serde_json::to_vec(&text).unwrap(),
                    "{byte:#x} at {at}"
                );
            }
        }
    }

    #[test]
    fn odd_values_become_valid_json() {
        let body = Value::Map(vec![
            (Value::from("bin"), Value::Binary(vec![b'o', b'k', 0xff])),
            (Value::from(7), Value::from(u64::MAX)),
            (Value::from("neg"), Value::from(i64::MIN)),
            (Value::from("nan"), Value::F64(f64::NAN)),
            (Value::from("ext"), Value::Ext(5, vec![0xab, 0x01])),
            (
                Value::from("nested"),
                Value::Map(vec![(Value::Boolean(true), Value::Array(vec![Value::Nil]))]),
            ),
            (Value::from("quote\"\n"), Value::from("tab\t")),
        ]);
        let text = line(body, EventTime::new(0, 0), iso());
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(parsed["bin"], "ok\u{fffd}");
        assert_eq!(parsed["7"], serde_json::json!(u64::MAX));
        assert_eq!(parsed["neg"], serde_json::json!(i64::MIN));
        assert_eq!(parsed["nan"], serde_json::Value::Null);
        assert_eq!(parsed["ext"], "ext:5:ab01");
        assert_eq!(parsed["nested"]["true"], serde_json::json!([null]));
        assert_eq!(parsed["quote\"\n"], "tab\t");
        assert!(text.ends_with("}\n") && text.matches('\n').count() == 1);
    }

    #[test]
    fn keys_nested_in_keys_stay_bounded() {
        // {{{...{"k": 1}: 1}...: 1}: 1}, 200 levels of maps as keys: each level would
        // escape the one inside it again, doubling it, without the bound.
        let mut key = Value::Map(vec![(Value::from("k"), Value::from(1))]);
        for _ in 0..200 {
            key = Value::Map(vec![(key, Value::from(1))]);
        }
        let record = Value::Map(vec![(key, Value::from(1))]);
        let mut chunk = crate::event::chunk::ChunkWriter::new();
        chunk.push(
            crate::event::chunk::EventFormat::V1,
            crate::event::chunk::TimeForm::Integer,
            crate::event::EventTime::new(1, 0),
            None,
            record,
        );
        let chunk = chunk.finish();
        let event = events(&chunk).next().unwrap().unwrap();
        let mut line = Vec::new();
        let started = std::time::Instant::now();
        write_json_line(
            &mut line,
            &event,
            &JsonLines {
                date_key: None,
                date_format: crate::config::DateFormat::Iso8601,
                log_key: None,
            },
        );
        assert!(line.len() < 8 * MAX_KEY_TEXT, "{} bytes", line.len());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        serde_json::from_slice::<serde_json::Value>(&line).unwrap();
    }

    /// The lines and errors of a chunk, its records checked and then written.
    fn in_two_walks(chunk: &[u8], format: &JsonLines) -> (Vec<u8>, Vec<Result<bool, String>>) {
        let mut out = Vec::new();
        let results = events(chunk)
            .map(|event| {
                event
                    .map(|event| write_line(&mut out, &event, format))
                    .map_err(|error| error.to_string())
            })
            .collect();
        (out, results)
    }

    /// The same, each record read once as it is written.
    fn in_one_walk(chunk: &[u8], format: &JsonLines) -> (Vec<u8>, Vec<Result<bool, String>>) {
        let mut out = Vec::new();
        let mut decoded = events(chunk);
        let mut results = Vec::new();
        while let Some(event) =
            decoded.next_with(|header, body| read_line(&mut out, header.time, body, format))
        {
            results.push(event.map(|(_, found)| found).map_err(|e| e.to_string()));
        }
        (out, results)
    }

    fn chunk_of(events: Vec<(bool, u8, i64, u32, Value)>) -> Vec<u8> {
        let mut chunk = ChunkWriter::new();
        for (v2, _, seconds, nanos, body) in events {
            let format = if v2 { EventFormat::V2 } else { EventFormat::V1 };
            chunk.push(format, TimeForm::EventTime, at(seconds, nanos), None, body);
        }
        chunk.finish()
    }

    fn with_log_key() -> JsonLines {
        JsonLines {
            log_key: Some("log".into()),
            ..iso()
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        /// Reading each record once as it is written gives the lines and errors of
        /// checking it first, whatever the chunk holds.
        #[test]
        fn one_walk_writes_what_two_walks_write(
            list in proptest::collection::vec(arb_event(), 1..6),
            position in proptest::prelude::any::<proptest::sample::Index>(),
            byte in proptest::prelude::any::<u8>(),
            log in proptest::prelude::any::<bool>(),
        ) {
            let mut chunk = chunk_of(list);
            let corrupted = position.index(chunk.len());
            chunk[corrupted] = byte;
            let format = if log { with_log_key() } else { iso() };
            proptest::prop_assert_eq!(in_one_walk(&chunk, &format), in_two_walks(&chunk, &format));
        }

        #[test]
        fn one_walk_reads_any_bytes_as_two_walks_do(
            chunk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            log in proptest::prelude::any::<bool>(),
        ) {
            let format = if log { with_log_key() } else { iso() };
            proptest::prop_assert_eq!(in_one_walk(&chunk, &format), in_two_walks(&chunk, &format));
        }
    }

    #[test]
    fn one_walk_refuses_a_record_nested_too_deeply_and_keeps_the_next() {
        let deepest_allowed = match nested_deeper_than_allowed() {
            Value::Map(mut fields) => fields.pop().unwrap().1,
            _ => unreachable!(),
        };
        let log_field = |value: Value| Value::Map(vec![(Value::from("log"), value)]);
        let bodies = [
            nested_deeper_than_allowed(),
            deepest_allowed.clone(),
            log_field(nested_deeper_than_allowed()),
            // Too deep in a key.
            Value::Map(vec![(nested_deeper_than_allowed(), Value::Nil)]),
            log_field(Value::from("kept")),
            Value::Map(vec![(Value::from("after"), Value::from(1))]),
        ];
        let events = bodies
            .into_iter()
            .map(|body| (true, 0, 1_700_000_000, 0, body))
            .collect();
        let chunk = chunk_of(events);
        for format in [iso(), with_log_key()] {
            let (lines, results) = in_one_walk(&chunk, &format);
            assert_eq!(
                (&lines, &results),
                (
                    &in_two_walks(&chunk, &format).0,
                    &in_two_walks(&chunk, &format).1
                )
            );
            let refused: Vec<bool> = results.iter().map(Result::is_err).collect();
            assert_eq!(refused, [true, false, true, true, false, false]);
            assert!(
                results[0].as_ref().unwrap_err().contains("deeper than 256"),
                "{results:?}"
            );
            let text = String::from_utf8(lines).unwrap();
            assert_eq!(text.lines().count(), 3, "{text}");
        }
    }
}
