//! Testing a component natively, with `cargo test`: records from JSON lines, a filter run
//! over them as rustsink runs it, and what the code logged and counted.
//!
//! ```
//! use rustsink_sdk::testing::{records_from_json_lines, run_filter};
//! use rustsink_sdk::{Description, Error, Filter, Options, Record, Verdict};
//!
//! struct DropDebug;
//!
//! impl Filter for DropDebug {
//!     fn describe() -> Description {
//!         Description { name: "drop-debug".into(), summary: "".into(), options: vec![] }
//!     }
//!     fn new(_: &Options) -> Result<Self, Error> {
//!         Ok(DropDebug)
//!     }
//!     fn process(&mut self, record: &mut Record) -> Verdict {
//!         match record.get_str("level") {
//!             Some("debug") => Verdict::Drop,
//!             _ => Verdict::Keep,
//!         }
//!     }
//! }
//!
//! let records = records_from_json_lines("{\"level\":\"debug\"}\n{\"level\":\"info\",\"n\":2}\n")?;
//! let kept = run_filter::<DropDebug>(&[], records)?;
//! assert_eq!(kept.len(), 1);
//! assert_eq!(kept[0].get_i64("n"), Some(2));
//! # Ok::<(), rustsink_sdk::Error>(())
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;

use rmpv::Value;

use crate::{Error, Filter, Level, Options, Record, Timestamp, Verdict, batch};

/// The records of JSON lines, one JSON object per line (blank lines are skipped), each at
/// time 0 with no metadata, fields in the order of the line.
///
/// # Errors
///
/// A line that is not a JSON object; the message gives its number.
pub fn records_from_json_lines(text: &str) -> Result<Vec<Record>, Error> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            let bad = |why: String| Error::fatal(format!("line {}: {why}", index + 1));
            let json: serde_json::Value =
                serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            let serde_json::Value::Object(fields) = json else {
                return Err(bad("not a JSON object".into()));
            };
            let mut record = Record::new(Timestamp::default());
            for (key, value) in fields {
                record.set(&key, from_json(value));
            }
            Ok(record)
        })
        .collect()
}

/// Builds filter `F` from `options` (defaults of its description applied, as rustsink
/// applies them) and runs `records` through it as one batch of tag `test`, encoded and
/// decoded as rustsink sends it; returns the records that come out.
///
/// # Errors
///
/// A required option that is missing, the filter's own error from [`Filter::new`], or a
/// record it failed ([`Verdict::Fail`]): the message gives its number and the reason.
pub fn run_filter<F: Filter>(
    options: &[(&str, &str)],
    records: Vec<Record>,
) -> Result<Vec<Record>, Error> {
    run_filter_on_tag::<F>("test", options, records)
}

/// [`run_filter`] over a batch of `tag`, for a filter that looks at [`Record::tag`].
///
/// # Errors
///
/// As [`run_filter`].
pub fn run_filter_on_tag<F: Filter>(
    tag: &str,
    options: &[(&str, &str)],
    records: Vec<Record>,
) -> Result<Vec<Record>, Error> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for spec in F::describe().options {
        let value = options
            .iter()
            .find(|(name, _)| *name == spec.name)
            .map(|(_, value)| (*value).to_owned())
            .or(spec.default_value);
        match value {
            Some(value) => pairs.push((spec.name, value)),
            None if spec.required => {
                return Err(Error::fatal(format!("option '{}' is required", spec.name)));
            }
            None => {}
        }
    }
    let mut filter = F::new(&Options::new(pairs))?;
    let mut events = Vec::new();
    for record in records {
        batch::write_record(&mut events, record)?;
    }
    let processed = batch::filter(tag, &events, &mut |record: &mut Record| -> Verdict {
        filter.process(record)
    })?;
    batch::assemble(tag, &events, processed)
}

thread_local! {
    static LOGGED: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
    static COUNTED: RefCell<BTreeMap<String, u64>> = const { RefCell::new(BTreeMap::new()) };
}

/// The lines this thread's code logged (natively), oldest first; taking them clears them.
pub fn logged() -> Vec<(Level, String)> {
    LOGGED.with(|lines| std::mem::take(&mut *lines.borrow_mut()))
}

/// What this thread's code added to counter `name` (natively).
pub fn counted(name: &str) -> u64 {
    COUNTED.with(|counts| counts.borrow().get(name).copied().unwrap_or(0))
}

#[cfg_attr(target_family = "wasm", allow(dead_code))]
pub(crate) fn record_log(level: Level, message: &str) {
    LOGGED.with(|lines| lines.borrow_mut().push((level, message.to_owned())));
}

#[cfg_attr(target_family = "wasm", allow(dead_code))]
pub(crate) fn record_count(name: &str, delta: u64) {
    COUNTED.with(|counts| *counts.borrow_mut().entry(name.to_owned()).or_default() += delta);
}

/// A JSON value as msgpack: integers stay integers, other numbers become floats.
fn from_json(value: serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(flag) => Value::Boolean(flag),
        serde_json::Value::Number(number) => match (number.as_u64(), number.as_i64()) {
            (Some(unsigned), _) => Value::from(unsigned),
            (None, Some(signed)) => Value::from(signed),
            _ => Value::F64(number.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(text) => Value::from(text),
        serde_json::Value::Array(items) => Value::Array(items.into_iter().map(from_json).collect()),
        serde_json::Value::Object(fields) => Value::Map(
            fields
                .into_iter()
                .map(|(key, value)| (Value::from(key), from_json(value)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Description;

    struct Tagger;

    impl Filter for Tagger {
        fn describe() -> Description {
            Description {
                name: "tagger".into(),
                summary: "adds a tag and counts".into(),
                options: vec![crate::OptionSpec::with_default("tag", "the tag", "blue")],
            }
        }

        fn new(_: &Options) -> Result<Self, Error> {
            Ok(Tagger)
        }

        fn process(&mut self, record: &mut Record) -> Verdict {
            crate::info!("seen {}", record.get_i64("n").unwrap_or(-1));
            crate::count("seen", 1);
            record.set("tag", "blue");
            Verdict::Keep
        }
    }

    #[test]
    fn a_filter_runs_natively_and_its_logs_and_counts_are_kept() {
        let records =
            records_from_json_lines("{\"n\":1,\"f\":2.5}\n\n{\"n\":-2,\"ok\":true}\n").unwrap();
        assert_eq!(records[0].get_f64("f"), Some(2.5));
        assert_eq!(records[0].get_f64("n"), Some(1.0));
        assert_eq!(records[1].get_bool("ok"), Some(true));
        let out = run_filter::<Tagger>(&[], records).unwrap();
        assert_eq!(out.len(), 2);
        assert!(
            out.iter()
                .all(|record| record.get_str("tag") == Some("blue"))
        );
        assert_eq!(out[1].get_i64("n"), Some(-2));
        assert_eq!(counted("seen"), 2);
        let lines = logged();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].1, "seen -2");
        assert!(logged().is_empty());
    }

    #[test]
    fn typed_getters_read_maps_and_arrays_and_only_their_type() {
        let records =
            records_from_json_lines("{\"m\":{\"a\":1},\"l\":[1,\"x\"],\"s\":\"t\"}\n").unwrap();
        let record = &records[0];
        assert_eq!(record.get_map("m").map(<[_]>::len), Some(1));
        assert_eq!(record.get_array("l").map(<[_]>::len), Some(2));
        assert_eq!(record.get_map("l"), None);
        assert_eq!(record.get_array("s"), None);
        assert_eq!(record.get_str("m"), None);
    }

    struct ByTag;

    impl Filter for ByTag {
        fn describe() -> Description {
            Description {
                name: "by-tag".into(),
                summary: "keeps records of tags starting with kube., fails the others".into(),
                options: vec![],
            }
        }

        fn new(_: &Options) -> Result<Self, Error> {
            Ok(ByTag)
        }

        fn process(&mut self, record: &mut Record) -> Verdict {
            if record.tag().starts_with("kube.") {
                record.set_time(Timestamp {
                    seconds: 60,
                    nanoseconds: 0,
                });
                Verdict::Keep
            } else {
                Verdict::Fail(format!("tag '{}' is not kube.*", record.tag()))
            }
        }
    }

    #[test]
    fn a_filter_sees_the_tag_and_a_failed_record_is_an_error_naming_it() {
        let records = || records_from_json_lines("{\"n\":1}\n{\"n\":2}\n").unwrap();
        let out = run_filter_on_tag::<ByTag>("kube.app", &[], records()).unwrap();
        assert!(out.iter().all(|record| record.time().seconds == 60));
        assert!(out.iter().all(|record| record.tag() == "kube.app"));
        let error = run_filter::<ByTag>(&[], records()).unwrap_err();
        assert_eq!(error.message, "record 1: tag 'test' is not kube.*");
    }

    #[test]
    fn a_line_that_is_no_object_is_named() {
        let error = records_from_json_lines("{}\n[1]\n").unwrap_err();
        assert!(error.message.contains("line 2"), "{}", error.message);
    }
}
