//! Records as JSON, by the rule rustsink's objects follow, so that a record reads the
//! same whichever sink wrote it.
//!
//! Strings and binary values become JSON strings (bytes that are not UTF-8 become U+FFFD);
//! map keys that are not strings become the string of their JSON; NaN and infinities
//! become `null`; an EventTime becomes seconds with a fraction; any other extension type
//! becomes the string `ext:<type>:<hex bytes>`.

use std::fmt::Write;

use rmpv::Value;

use crate::Record;

impl Record {
    /// The record as one JSON object, with the event time in seconds (with a fraction)
    /// under `date_key` first when one is given.
    pub fn to_json(&self, date_key: Option<&str>) -> String {
        let mut out = String::with_capacity(256);
        out.push('{');
        let mut first = true;
        if let Some(key) = date_key {
            write_string(&mut out, key);
            out.push(':');
            write_float(&mut out, self.time().as_f64());
            first = false;
        }
        for (key, value) in self.fields() {
            if !first {
                out.push(',');
            }
            first = false;
            write_key(&mut out, key);
            out.push(':');
            write_value(&mut out, value);
        }
        out.push('}');
        out
    }
}

fn write_string(out: &mut String, text: &str) {
    out.push_str(&serde_json::to_string(text).expect("a string always encodes"));
}

fn write_bytes(out: &mut String, bytes: &[u8]) {
    write_string(out, &String::from_utf8_lossy(bytes));
}

fn write_float(out: &mut String, value: f64) {
    if value.is_finite() {
        out.push_str(&serde_json::to_string(&value).expect("a finite float always encodes"));
    } else {
        out.push_str("null");
    }
}

fn write_key(out: &mut String, key: &Value) {
    match key {
        Value::String(text) => write_bytes(out, text.as_bytes()),
        Value::Binary(bytes) => write_bytes(out, bytes),
        other => {
            let mut text = String::new();
            write_value(&mut text, other);
            write_string(out, &text);
        }
    }
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Nil => out.push_str("null"),
        Value::Boolean(yes) => out.push_str(if *yes { "true" } else { "false" }),
        Value::Integer(integer) => {
            let _ = write!(out, "{integer}");
        }
        Value::F32(float) => write_float(out, f64::from(*float)),
        Value::F64(float) => write_float(out, *float),
        Value::String(text) => write_bytes(out, text.as_bytes()),
        Value::Binary(bytes) => write_bytes(out, bytes),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Map(fields) => {
            out.push('{');
            for (index, (key, item)) in fields.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_key(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
        Value::Ext(0, data) if data.len() == 8 => {
            let seconds = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            let nanos = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
            write_float(out, f64::from(seconds) + f64::from(nanos) / 1e9);
        }
        Value::Ext(kind, data) => {
            let hex: String = data.iter().map(|byte| format!("{byte:02x}")).collect();
            write_string(out, &format!("ext:{kind}:{hex}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch;

    #[test]
    fn odd_values_follow_the_documented_rule() {
        let fields = Value::Map(vec![
            (Value::from("log"), Value::from("a \"quoted\" line")),
            (Value::from("bin"), Value::Binary(vec![b'o', b'k', 0xff])),
            (Value::from(7), Value::from(f64::NAN)),
            (Value::from("ext"), Value::Ext(5, vec![0xab, 0x01])),
            (
                Value::from("nested"),
                Value::Map(vec![(Value::from("n"), Value::from(-3))]),
            ),
        ]);
        let time = Value::Ext(
            0,
            [5u32.to_be_bytes(), 500_000_000u32.to_be_bytes()].concat(),
        );
        let event = Value::Array(vec![Value::Array(vec![time, Value::Map(vec![])]), fields]);
        let mut encoded = Vec::new();
        rmpv::encode::write_value(&mut encoded, &event).unwrap();
        let record = batch::records("", &encoded).unwrap().remove(0);
        assert_eq!(
            record.to_json(Some("date")),
            r#"{"date":5.5,"log":"a \"quoted\" line","bin":"ok\u{fffd}","7":null,"ext":"ext:5:ab01","nested":{"n":-3}}"#
                .replace("\\u{fffd}", "\u{fffd}")
        );
        assert_eq!(record.time().as_f64(), 5.5);
    }
}
