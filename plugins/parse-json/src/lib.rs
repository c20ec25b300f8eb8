//! `parse-json`: parses a field holding a JSON object (such as the `log` of an application
//! that logs JSON) into fields of the record.
//!
//! Options:
//! - `key` (`log`): the field to parse;
//! - `target` (empty): put the parsed fields under this field instead of at the top level;
//! - `keep_original` (`false`): keep `key` after a successful parse.
//!
//! A value that is not a JSON object is left as it is and counted (`parse_json.failed`):
//! nothing of the record is lost. Parsed fields replace fields of the same name.

use rustsink_sdk::{Description, Error, Filter, OptionSpec, Options, Record, Value, Verdict};

struct ParseJson {
    key: String,
    target: Option<String>,
    keep_original: bool,
}

impl Filter for ParseJson {
    fn describe() -> Description {
        Description {
            name: "parse-json".into(),
            summary: "Parses a JSON string field into structured fields".into(),
            options: vec![
                OptionSpec::with_default("key", "the field holding JSON", "log"),
                OptionSpec::with_default("target", "a field to put the parsed fields under", ""),
                OptionSpec::with_default(
                    "keep_original",
                    "keep the field after parsing it",
                    "false",
                ),
            ],
        }
    }

    fn new(options: &Options) -> Result<Self, Error> {
        Ok(ParseJson {
            key: options.get("key").unwrap_or("log").to_owned(),
            target: options
                .get("target")
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            keep_original: options.parse("keep_original")?.unwrap_or(false),
        })
    }

    fn process(&mut self, record: &mut Record) -> Verdict {
        let parsed = record
            .get_str(&self.key)
            .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
            .filter(serde_json::Value::is_object)
            .and_then(|object| rmpv::ext::to_value(object).ok());
        let Some(Value::Map(fields)) = parsed else {
            rustsink_sdk::count("parse_json.failed", 1);
            return Verdict::Keep;
        };
        if !self.keep_original {
            record.remove(&self.key);
        }
        match &self.target {
            Some(target) => record.set(target, Value::Map(fields)),
            None => {
                for (name, value) in fields {
                    if let Some(name) = name.as_str() {
                        record.set(name, value);
                    }
                }
            }
        }
        Verdict::Keep
    }
}

rustsink_sdk::export_filter!(ParseJson);
