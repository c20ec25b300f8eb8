//! Batches as the host sends them: msgpack events `[[time, metadata], body]`, back to back.

use std::rc::Rc;

use rmpv::Value;

use crate::bindings::filter::Processed;
use crate::bindings::filter::rustsink::plugin::types::Outcome;
use crate::{Error, Verdict};

/// One record of a batch: its fields, its time and metadata, and the tag of its batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    time: Value,
    metadata: Value,
    fields: Vec<(Value, Value)>,
    tag: Rc<str>,
    /// Whether anything was changed since it was read: a record kept unchanged goes back
    /// to the host as an outcome alone, without being encoded again.
    changed: bool,
}

impl Record {
    /// A new record with no fields, at `time`, without metadata or tag.
    pub fn new(time: Timestamp) -> Record {
        Record {
            time: event_time(time),
            metadata: Value::Map(Vec::new()),
            fields: Vec::new(),
            tag: Rc::from(""),
            changed: true,
        }
    }

    /// A new record with no fields, with this record's time, metadata and tag: the start
    /// of a record derived from this one.
    pub fn derived(&self) -> Record {
        Record {
            time: self.time.clone(),
            metadata: self.metadata.clone(),
            fields: Vec::new(),
            tag: Rc::clone(&self.tag),
            changed: true,
        }
    }

    /// The tag of the record's batch (Fluent Bit's tag); a filter cannot change it.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The value of field `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The value of field `key` if it is a string (UTF-8).
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// The value of field `key` if it is an integer that fits an `i64`.
    pub fn get_i64(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_i64)
    }

    /// The value of field `key` if it is a non-negative integer that fits a `u64`.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    /// The value of field `key` as a float: a float, or an integer (JSON writers, such as
    /// JavaScript's, may write `57.0` as `57`).
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        match self.get(key)? {
            Value::F32(float) => Some(f64::from(*float)),
            Value::F64(float) => Some(*float),
            Value::Integer(integer) => integer.as_f64(),
            _ => None,
        }
    }

    /// The value of field `key` if it is a boolean.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }

    /// The value of field `key` if it is a map, as its (key, value) pairs.
    pub fn get_map(&self, key: &str) -> Option<&[(Value, Value)]> {
        self.get(key).and_then(Value::as_map).map(Vec::as_slice)
    }

    /// The value of field `key` if it is an array.
    pub fn get_array(&self, key: &str) -> Option<&[Value]> {
        self.get(key).and_then(Value::as_array).map(Vec::as_slice)
    }

    /// Sets field `key`, in place if it exists, else at the end. Any value that converts
    /// into a msgpack [`Value`] will do: `&str`, `String`, integers, floats, `bool`, or a
    /// `Value` built by hand for maps and arrays.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.changed = true;
        let value = value.into();
        match self
            .fields
            .iter_mut()
            .find(|(k, _)| k.as_str() == Some(key))
        {
            Some((_, slot)) => *slot = value,
            None => self.fields.push((Value::from(key), value)),
        }
    }

    /// Removes field `key` and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let index = self
            .fields
            .iter()
            .position(|(k, _)| k.as_str() == Some(key))?;
        self.changed = true;
        Some(self.fields.remove(index).1)
    }

    /// Renames field `from` to `to` (replacing a field `to`); false if there is no `from`.
    pub fn rename(&mut self, from: &str, to: &str) -> bool {
        if self.get(from).is_none() {
            return false;
        }
        self.changed = true;
        self.remove(to);
        if let Some((key, _)) = self
            .fields
            .iter_mut()
            .find(|(k, _)| k.as_str() == Some(from))
        {
            *key = Value::from(to);
        }
        true
    }

    /// The fields, in order.
    pub fn fields(&self) -> impl Iterator<Item = (&Value, &Value)> {
        self.fields.iter().map(|(k, v)| (k, v))
    }

    /// The fields, to change in place.
    pub fn fields_mut(&mut self) -> impl Iterator<Item = (&Value, &mut Value)> {
        self.changed = true;
        self.fields.iter_mut().map(|(k, v)| (&*k, v))
    }

    /// The event's metadata map (empty unless the input set some).
    pub fn metadata(&self) -> &Value {
        &self.metadata
    }

    /// The event's metadata, to change: it goes on with the record, to the filters after
    /// this one and to a sink component.
    pub fn metadata_mut(&mut self) -> &mut Value {
        self.changed = true;
        &mut self.metadata
    }

    /// Sets the event time: the time the record is stored under.
    pub fn set_time(&mut self, time: Timestamp) {
        self.changed = true;
        self.time = event_time(time);
    }

    /// The event time (the host always sends an EventTime).
    pub fn time(&self) -> Timestamp {
        match &self.time {
            Value::Ext(0, bytes) if bytes.len() == 8 => Timestamp {
                seconds: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
                nanoseconds: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            },
            _ => Timestamp::default(),
        }
    }
}

/// An event time: seconds since the Unix epoch, and nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    /// Whole seconds.
    pub seconds: u32,
    /// Nanoseconds within the second.
    pub nanoseconds: u32,
}

impl Timestamp {
    /// Seconds with a fraction.
    pub fn as_f64(self) -> f64 {
        f64::from(self.seconds) + f64::from(self.nanoseconds) / 1e9
    }
}

fn event_time(time: Timestamp) -> Value {
    let mut bytes = time.seconds.to_be_bytes().to_vec();
    bytes.extend_from_slice(&time.nanoseconds.to_be_bytes());
    Value::Ext(0, bytes)
}

/// Decodes every event of `events`, of batch `tag`.
pub(crate) fn records(tag: &str, mut events: &[u8]) -> Result<Vec<Record>, Error> {
    let tag: Rc<str> = Rc::from(tag);
    let mut records = Vec::new();
    while !events.is_empty() {
        let event = rmpv::decode::read_value(&mut events)
            .map_err(|e| Error::fatal(format!("the batch is not msgpack: {e}")))?;
        records.push(into_record(event, &tag)?);
    }
    Ok(records)
}

/// Decodes the events of batch `tag`, runs `process` on each record, and answers with an
/// outcome for each: a record kept unchanged is not encoded again.
pub(crate) fn filter(
    tag: &str,
    mut events: &[u8],
    process: &mut dyn FnMut(&mut Record) -> Verdict,
) -> Result<Processed, Error> {
    let tag: Rc<str> = Rc::from(tag);
    let mut outcomes = Vec::new();
    let mut out = Vec::new();
    while !events.is_empty() {
        let event = rmpv::decode::read_value(&mut events)
            .map_err(|e| Error::fatal(format!("the batch is not msgpack: {e}")))?;
        let mut record = match into_record(event, &tag) {
            Ok(record) => record,
            Err(error) => {
                outcomes.push(Outcome::Fail(error.message));
                continue;
            }
        };
        let outcome = match process(&mut record) {
            Verdict::Keep if !record.changed => Outcome::Keep,
            Verdict::Keep => {
                write_record(&mut out, record)?;
                Outcome::Replace(1)
            }
            Verdict::Drop => Outcome::Drop,
            Verdict::Replace(records) => {
                let count = u32::try_from(records.len())
                    .map_err(|_| Error::fatal("a record was replaced by over 4 billion"))?;
                for record in records {
                    write_record(&mut out, record)?;
                }
                Outcome::Replace(count)
            }
            Verdict::Fail(message) => Outcome::Fail(message),
        };
        outcomes.push(outcome);
    }
    Ok(Processed {
        outcomes,
        events: out,
    })
}

pub(crate) fn write_record(out: &mut Vec<u8>, record: Record) -> Result<(), Error> {
    let Record {
        time,
        metadata,
        fields,
        ..
    } = record;
    let event = Value::Array(vec![Value::Array(vec![time, metadata]), Value::Map(fields)]);
    rmpv::encode::write_value(out, &event)
        .map_err(|e| Error::fatal(format!("encoding a record: {e}")))
}

fn into_record(event: Value, tag: &Rc<str>) -> Result<Record, Error> {
    let malformed = || Error::fatal("an event is not [[time, metadata], body]");
    let Value::Array(mut parts) = event else {
        return Err(malformed());
    };
    if parts.len() != 2 {
        return Err(malformed());
    }
    let Value::Map(fields) = parts.pop().ok_or_else(malformed)? else {
        return Err(malformed());
    };
    let Value::Array(mut header) = parts.pop().ok_or_else(malformed)? else {
        return Err(malformed());
    };
    if header.len() != 2 {
        return Err(malformed());
    }
    let metadata = header.pop().ok_or_else(malformed)?;
    let time = header.pop().ok_or_else(malformed)?;
    Ok(Record {
        time,
        metadata,
        fields,
        tag: Rc::clone(tag),
        changed: false,
    })
}

/// The records that come out of `processed`, the answer for `events` of batch `tag`, as
/// the host puts them together; a failed record is an error that names it.
#[cfg_attr(target_family = "wasm", allow(dead_code))]
pub(crate) fn assemble(
    tag: &str,
    events: &[u8],
    processed: Processed,
) -> Result<Vec<Record>, Error> {
    let inputs = records(tag, events)?;
    if inputs.len() != processed.outcomes.len() {
        return Err(Error::fatal(format!(
            "{} outcomes for {} records",
            processed.outcomes.len(),
            inputs.len()
        )));
    }
    let mut replacements = records(tag, &processed.events)?.into_iter();
    let mut out = Vec::new();
    for (index, (outcome, input)) in processed.outcomes.into_iter().zip(inputs).enumerate() {
        match outcome {
            Outcome::Keep => out.push(input),
            Outcome::Drop => {}
            Outcome::Replace(count) => out.extend(replacements.by_ref().take(count as usize)),
            Outcome::Fail(message) => {
                return Err(Error::fatal(format!("record {}: {message}", index + 1)));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_of(logs: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for log in logs {
            let mut record = Record::new(Timestamp {
                seconds: 7,
                nanoseconds: 5,
            });
            record.set("log", *log);
            write_record(&mut out, record).unwrap();
        }
        out
    }

    #[test]
    fn a_filter_keeps_drops_changes_and_emits_records_with_an_outcome_each() {
        let batch = batch_of(&["one\ntwo", "drop me", "three", "change me"]);
        let processed = filter("app.log", &batch, &mut |record: &mut Record| {
            assert_eq!(record.tag(), "app.log");
            let log = record.get_str("log").unwrap_or_default().to_owned();
            if log == "drop me" {
                return Verdict::Drop;
            }
            if log == "change me" {
                record.set_time(Timestamp {
                    seconds: 9,
                    nanoseconds: 0,
                });
                *record.metadata_mut() = Value::Map(vec![("k".into(), "v".into())]);
                return Verdict::Keep;
            }
            if !log.contains('\n') {
                return Verdict::Keep;
            }
            let lines = log.lines().map(|line| {
                let mut part = record.derived();
                part.set("log", line);
                part
            });
            Verdict::Replace(lines.collect())
        })
        .unwrap();
        assert_eq!(
            processed.outcomes,
            [
                Outcome::Replace(2),
                Outcome::Drop,
                Outcome::Keep,
                Outcome::Replace(1)
            ]
        );
        let records = assemble("app.log", &batch, processed).unwrap();
        let logs: Vec<&str> = records.iter().filter_map(|r| r.get_str("log")).collect();
        assert_eq!(logs, ["one", "two", "three", "change me"]);
        let seven = Timestamp {
            seconds: 7,
            nanoseconds: 5,
        };
        let times: Vec<u32> = records.iter().map(|r| r.time().seconds).collect();
        assert_eq!(times, [7, 7, 7, 9]);
        assert_eq!(records[0].time(), seven);
        assert_eq!(records[3].metadata().as_map().map(Vec::len), Some(1));
    }

    #[test]
    fn a_failed_record_and_an_event_of_another_shape_fail_alone() {
        let mut batch = batch_of(&["fine", "bad"]);
        rmpv::encode::write_value(&mut batch, &Value::from("no event")).unwrap();
        let processed = filter(
            "t",
            &batch,
            &mut |record: &mut Record| match record.get_str("log") {
                Some("bad") => Verdict::Fail("cannot parse 'bad'".into()),
                _ => Verdict::Keep,
            },
        )
        .unwrap();
        assert_eq!(processed.outcomes.len(), 3);
        assert_eq!(processed.outcomes[0], Outcome::Keep);
        assert_eq!(
            processed.outcomes[1],
            Outcome::Fail("cannot parse 'bad'".into())
        );
        assert!(
            matches!(&processed.outcomes[2], Outcome::Fail(why) if why.contains("[[time, metadata], body]")),
            "{:?}",
            processed.outcomes[2]
        );
        assert!(processed.events.is_empty());
    }
}
