//! Batches as the host sends them: msgpack events `[[time, metadata], body]`, back to back.

use rmpv::Value;

use crate::{Error, Verdict};

/// One record of a batch: its fields, and its time and metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    time: Value,
    metadata: Value,
    fields: Vec<(Value, Value)>,
}

impl Record {
    /// A new record with no fields, at `time`, without metadata.
    pub fn new(time: Timestamp) -> Record {
        let mut bytes = time.seconds.to_be_bytes().to_vec();
        bytes.extend_from_slice(&time.nanoseconds.to_be_bytes());
        Record {
            time: Value::Ext(0, bytes),
            metadata: Value::Map(Vec::new()),
            fields: Vec::new(),
        }
    }

    /// A new record with no fields, with this record's time and metadata: the start of
    /// a record derived from this one.
    pub fn derived(&self) -> Record {
        Record {
            time: self.time.clone(),
            metadata: self.metadata.clone(),
            fields: Vec::new(),
        }
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

    /// Sets field `key`, in place if it exists, else at the end.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
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
        Some(self.fields.remove(index).1)
    }

    /// Renames field `from` to `to` (replacing a field `to`); false if there is no `from`.
    pub fn rename(&mut self, from: &str, to: &str) -> bool {
        if self.get(from).is_none() {
            return false;
        }
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
        self.fields.iter_mut().map(|(k, v)| (&*k, v))
    }

    /// The event's metadata map (empty unless the input set some).
    pub fn metadata(&self) -> &Value {
        &self.metadata
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

/// Decodes every event of `events`.
pub(crate) fn records(mut events: &[u8]) -> Result<Vec<Record>, Error> {
    let mut records = Vec::new();
    while !events.is_empty() {
        let event = rmpv::decode::read_value(&mut events)
            .map_err(|e| Error::fatal(format!("the batch is not msgpack: {e}")))?;
        records.push(into_record(event)?);
    }
    Ok(records)
}

/// Decodes `events`, runs `process` on each record, and encodes the records kept.
pub(crate) fn filter(
    mut events: &[u8],
    process: &mut dyn FnMut(&mut Record) -> Verdict,
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(events.len());
    while !events.is_empty() {
        let event = rmpv::decode::read_value(&mut events)
            .map_err(|e| Error::fatal(format!("the batch is not msgpack: {e}")))?;
        let mut record = into_record(event)?;
        match process(&mut record) {
            Verdict::Keep => write_record(&mut out, record)?,
            Verdict::Drop => {}
            Verdict::Replace(records) => {
                for record in records {
                    write_record(&mut out, record)?;
                }
            }
        }
    }
    Ok(out)
}

pub(crate) fn write_record(out: &mut Vec<u8>, record: Record) -> Result<(), Error> {
    let Record {
        time,
        metadata,
        fields,
    } = record;
    let event = Value::Array(vec![Value::Array(vec![time, metadata]), Value::Map(fields)]);
    rmpv::encode::write_value(out, &event)
        .map_err(|e| Error::fatal(format!("encoding a record: {e}")))
}

fn into_record(event: Value) -> Result<Record, Error> {
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
    })
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
    fn a_filter_keeps_drops_and_emits_records() {
        let batch = batch_of(&["one\ntwo", "drop me", "three"]);
        let out = filter(&batch, &mut |record: &mut Record| {
            let log = record.get_str("log").unwrap_or_default().to_owned();
            if log == "drop me" {
                return Verdict::Drop;
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
        let records = records(&out).unwrap();
        let logs: Vec<&str> = records.iter().filter_map(|r| r.get_str("log")).collect();
        assert_eq!(logs, ["one", "two", "three"]);
        assert!(records.iter().all(|r| r.time()
            == Timestamp {
                seconds: 7,
                nanoseconds: 5
            }));
    }
}
