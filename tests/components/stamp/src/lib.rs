//! A filter that uses what contract 0.2 gives filters, for each record:
//! - writes the batch's tag into the field `tag`;
//! - copies the metadata `stamped_by` that a filter before it set into the field
//!   `stamped_by`, then sets that metadata to its own `name` option;
//! - moves the record's time to the seconds of its field `at`, when it has one;
//! - fails the record (`Verdict::Fail`) when `at` is not a number.

use rustsink_sdk::{
    Description, Error, Filter, OptionSpec, Options, Record, Timestamp, Value, Verdict,
};

struct Stamp {
    name: String,
}

impl Filter for Stamp {
    fn describe() -> Description {
        Description {
            name: "stamp".into(),
            summary: "stamps records with their tag, metadata and a time of their own".into(),
            options: vec![OptionSpec::with_default(
                "name",
                "what it writes into the metadata `stamped_by`",
                "stamp",
            )],
        }
    }

    fn new(options: &Options) -> Result<Self, Error> {
        Ok(Stamp {
            name: options.require("name")?.to_owned(),
        })
    }

    fn process(&mut self, record: &mut Record) -> Verdict {
        let tag = record.tag().to_owned();
        record.set("tag", tag);
        let before = record
            .metadata()
            .as_map()
            .and_then(|map| map.iter().find(|(k, _)| k.as_str() == Some("stamped_by")))
            .map(|(_, v)| v.clone());
        if let Some(before) = before {
            record.set("stamped_by", before);
        }
        let mut metadata = match record.metadata() {
            Value::Map(map) => map.clone(),
            _ => Vec::new(),
        };
        metadata.retain(|(k, _)| k.as_str() != Some("stamped_by"));
        metadata.push(("stamped_by".into(), self.name.as_str().into()));
        *record.metadata_mut() = Value::Map(metadata);
        match record.get("at") {
            None => {}
            Some(at) => match at.as_u64().and_then(|at| u32::try_from(at).ok()) {
                Some(seconds) => record.set_time(Timestamp {
                    seconds,
                    nanoseconds: 0,
                }),
                None => return Verdict::Fail(format!("field 'at' is no time: {at}")),
            },
        }
        Verdict::Keep
    }
}

rustsink_sdk::export_filter!(Stamp);
