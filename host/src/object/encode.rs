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
//! | map key that is not a string | the key's JSON text, as a string (`1` -> `"1"`) |
//! | ext type 0 of 8 bytes (an EventTime) | seconds with a fraction, as a number |
//! | other ext | string `"ext:<type>:<hex of the data>"` |
//!
//! The V2 metadata map is not written.

use std::io::Write;

use rmpv::ValueRef;
use time::OffsetDateTime;

use crate::config::{DateFormat, JsonLines};
use crate::event::{Event, EventTime};

/// Appends one event as a JSON line, newline included.
pub fn write_json_line(out: &mut Vec<u8>, event: &Event<'_>, format: &JsonLines) {
    out.push(b'{');
    let mut first = true;
    if let Some(key) = &format.date_key {
        write_string(out, key);
        out.push(b':');
        write_time(out, event.time, format.date_format);
        first = false;
    }
    if let ValueRef::Map(fields) = &event.body {
        for (key, value) in fields {
            if !first {
                out.push(b',');
            }
            first = false;
            write_key(out, key);
            out.push(b':');
            write_value(out, value);
        }
    }
    out.extend_from_slice(b"}\n");
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

fn write_string(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("writing JSON to a Vec cannot fail");
}

fn write_bytes_as_string(out: &mut Vec<u8>, bytes: &[u8]) {
    // Checking first is much faster than from_utf8_lossy on text that is valid, as logs are.
    match std::str::from_utf8(bytes) {
        Ok(text) => write_string(out, text),
        Err(_) => write_string(out, &String::from_utf8_lossy(bytes)),
    }
}

fn write_float(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        serde_json::to_writer(&mut *out, &value).expect("writing JSON to a Vec cannot fail");
    } else {
        out.extend_from_slice(b"null");
    }
}

fn write_key(out: &mut Vec<u8>, key: &ValueRef<'_>) {
    match key {
        ValueRef::String(text) => write_bytes_as_string(out, text.as_bytes()),
        ValueRef::Binary(bytes) => write_bytes_as_string(out, bytes),
        other => {
            let mut text = Vec::new();
            write_value(&mut text, other);
            write_bytes_as_string(out, &text);
        }
    }
}

fn write_value(out: &mut Vec<u8>, value: &ValueRef<'_>) {
    match value {
        ValueRef::Nil => out.extend_from_slice(b"null"),
        ValueRef::Boolean(true) => out.extend_from_slice(b"true"),
        ValueRef::Boolean(false) => out.extend_from_slice(b"false"),
        ValueRef::Integer(integer) => {
            let _ = write!(out, "{integer}");
        }
        ValueRef::F32(float) => write_float(out, f64::from(*float)),
        ValueRef::F64(float) => write_float(out, *float),
        ValueRef::String(text) => write_bytes_as_string(out, text.as_bytes()),
        ValueRef::Binary(bytes) => write_bytes_as_string(out, bytes),
        ValueRef::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        ValueRef::Map(fields) => {
            out.push(b'{');
            for (index, (key, item)) in fields.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_key(out, key);
                out.push(b':');
                write_value(out, item);
            }
            out.push(b'}');
        }
        ValueRef::Ext(0, data) if data.len() == 8 => {
            let seconds = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            let nanos = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
            write_float(out, f64::from(seconds) + f64::from(nanos) / 1e9);
        }
        ValueRef::Ext(kind, data) => {
            let hex: String = data.iter().map(|byte| format!("{byte:02x}")).collect();
            write_string(out, &format!("ext:{kind}:{hex}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use rmpv::Value;

    use super::*;
    use crate::event::chunk::{ChunkWriter, EventFormat, TimeForm};
    use crate::event::events;

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
        }
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
                },
            );
            assert_eq!(text, format!("{{\"t\":{expected}}}\n"), "{format:?}");
        }
        let none = JsonLines {
            date_key: None,
            date_format: DateFormat::Iso8601,
        };
        assert_eq!(line(body, time, none), "{}\n");
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
}
