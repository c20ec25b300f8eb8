//! `redact`: masks the values of named fields, and emails and payment card numbers
//! anywhere in string values (nested maps and arrays included).
//!
//! Options:
//! - `fields` (empty): field names, separated by commas, whose values are replaced by
//!   `mask` whatever they hold;
//! - `patterns` (`email,card`): what to find in strings: `email`, `card`, both, or `none`;
//! - `mask` (`****`): what replaces each match.
//!
//! Card numbers are 13 to 19 digits, optionally grouped by single spaces or dashes, that
//! pass the Luhn check, so order ids and trace ids are left alone.

pub mod mask;

use mask::Patterns;
use rustsink_sdk::{Description, Error, Filter, OptionSpec, Options, Record, Value, Verdict};

struct Redact {
    fields: Vec<String>,
    patterns: Patterns,
    mask: String,
}

impl Filter for Redact {
    fn describe() -> Description {
        Description {
            name: "redact".into(),
            summary: "Masks named fields, and emails and card numbers in strings".into(),
            options: vec![
                OptionSpec::with_default(
                    "fields",
                    "fields whose values are masked, comma-separated",
                    "",
                ),
                OptionSpec::with_default(
                    "patterns",
                    "what to mask in strings: email, card, none",
                    "email,card",
                ),
                OptionSpec::with_default("mask", "what replaces each match", "****"),
            ],
        }
    }

    fn new(options: &Options) -> Result<Self, Error> {
        let list = |name: &str| -> Vec<String> {
            options
                .get(name)
                .unwrap_or_default()
                .split(',')
                .map(|item| item.trim().to_owned())
                .filter(|item| !item.is_empty())
                .collect()
        };
        let mut patterns = Patterns {
            emails: false,
            cards: false,
        };
        for pattern in list("patterns") {
            match pattern.as_str() {
                "email" => patterns.emails = true,
                "card" => patterns.cards = true,
                "none" => {}
                other => {
                    return Err(Error::fatal(format!(
                        "option 'patterns': cannot use '{other}': expected email, card or none"
                    )));
                }
            }
        }
        Ok(Redact {
            fields: list("fields"),
            patterns,
            mask: options.get("mask").unwrap_or("****").to_owned(),
        })
    }

    fn process(&mut self, record: &mut Record) -> Verdict {
        // Most records hold nothing to mask: left untouched, they go on as they came,
        // without being encoded again.
        let masks_something = record
            .fields()
            .any(|(key, value)| self.is_named(key) || self.holds_secret(value));
        if !masks_something {
            return Verdict::Keep;
        }
        for (key, value) in record.fields_mut() {
            if self.is_named(key) {
                *value = Value::from(self.mask.as_str());
            } else {
                self.scrub(value);
            }
        }
        Verdict::Keep
    }
}

impl Redact {
    /// Whether `key` names a field whose value is replaced whole.
    fn is_named(&self, key: &Value) -> bool {
        key.as_str()
            .is_some_and(|k| self.fields.iter().any(|f| f == k))
    }

    /// Whether `value`, or a value nested in it, holds something to mask.
    fn holds_secret(&self, value: &Value) -> bool {
        match value {
            Value::String(text) => text
                .as_str()
                .is_some_and(|t| mask::mask(t, self.patterns, &self.mask).is_some()),
            Value::Map(entries) => entries.iter().any(|(_, v)| self.holds_secret(v)),
            Value::Array(items) => items.iter().any(|v| self.holds_secret(v)),
            _ => false,
        }
    }

    fn scrub(&self, value: &mut Value) {
        match value {
            Value::String(text) => {
                if let Some(masked) = text
                    .as_str()
                    .and_then(|t| mask::mask(t, self.patterns, &self.mask))
                {
                    *value = Value::from(masked);
                }
            }
            Value::Map(entries) => entries.iter_mut().for_each(|(_, v)| self.scrub(v)),
            Value::Array(items) => items.iter_mut().for_each(|v| self.scrub(v)),
            _ => {}
        }
    }
}

rustsink_sdk::export_filter!(Redact);
