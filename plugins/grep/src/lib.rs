//! `grep`: keeps the records whose field matches a regular expression, or drops them,
//! like Fluent Bit's `grep` filter (`Regex` and `Exclude`).
//!
//! Options:
//! - `key` (required): the field to look at.
//! - `regex` (required): the pattern (Rust `regex` syntax, without look-around).
//! - `mode` (`keep`): `keep` passes only matching records, `drop` passes all others.
//!
//! A record without the field, or whose field is not a string, does not match. Numbers
//! and booleans are matched in their text form.

use regex_lite::Regex;
use rustsink_sdk::{Description, Error, Filter, OptionSpec, Options, Record, Value, Verdict};

struct Grep {
    key: String,
    regex: Regex,
    keep_matching: bool,
}

impl Filter for Grep {
    fn describe() -> Description {
        Description {
            name: "grep".into(),
            summary: "Keeps or drops records whose field matches a regular expression".into(),
            options: vec![
                OptionSpec::required("key", "the field to match"),
                OptionSpec::required("regex", "the regular expression"),
                OptionSpec::with_default(
                    "mode",
                    "keep: pass only matching records; drop: pass the others",
                    "keep",
                ),
            ],
        }
    }

    fn new(options: &Options) -> Result<Self, Error> {
        let pattern = options.require("regex")?;
        let regex = Regex::new(pattern)
            .map_err(|e| Error::fatal(format!("option 'regex': cannot use '{pattern}': {e}")))?;
        let keep_matching = match options.get("mode").unwrap_or("keep") {
            "keep" => true,
            "drop" => false,
            other => {
                return Err(Error::fatal(format!(
                    "option 'mode': cannot use '{other}': expected keep or drop"
                )));
            }
        };
        Ok(Grep {
            key: options.require("key")?.to_owned(),
            regex,
            keep_matching,
        })
    }

    fn process(&mut self, record: &mut Record) -> Verdict {
        let matches = match record.get(&self.key) {
            Some(Value::String(text)) => text.as_str().is_some_and(|t| self.regex.is_match(t)),
            Some(value @ (Value::Integer(_) | Value::F64(_) | Value::Boolean(_))) => {
                self.regex.is_match(&value.to_string())
            }
            _ => false,
        };
        if matches == self.keep_matching {
            Verdict::Keep
        } else {
            Verdict::Drop
        }
    }
}

rustsink_sdk::export_filter!(Grep);
