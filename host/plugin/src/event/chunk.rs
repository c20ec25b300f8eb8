//! Writing chunks the way Fluent Bit writes them (for the harness, the command and tests),
//! and in the one form components see.

use rmpv::Value;

use super::{Event, EventTime, GROUP_END, GROUP_START};

/// The event layout of a Fluent Bit generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFormat {
    /// `[time, body]`: Fluent Bit 1.9 and 2.0.
    V1,
    /// `[[time, metadata], body]`: Fluent Bit 2.1 and later.
    V2,
}

/// How the time of an event is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeForm {
    /// Ext type 0, 8 bytes: what Fluent Bit writes.
    EventTime,
    /// Whole seconds as a positive integer.
    Integer,
    /// Seconds as a float64.
    Float,
}

/// Appends events to a chunk buffer.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    buffer: Vec<u8>,
    events: usize,
}

impl Default for ChunkWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkWriter {
    /// An empty chunk.
    pub fn new() -> ChunkWriter {
        ChunkWriter {
            buffer: Vec::new(),
            events: 0,
        }
    }

    /// Appends one event. `metadata` is written only in the V2 format (an empty map when
    /// None).
    pub fn push(
        &mut self,
        format: EventFormat,
        time_form: TimeForm,
        time: EventTime,
        metadata: Option<Value>,
        body: Value,
    ) -> &mut Self {
        let time = encode_time(time_form, time);
        let header = match format {
            EventFormat::V1 => time,
            EventFormat::V2 => Value::Array(vec![time, metadata.unwrap_or(Value::Map(vec![]))]),
        };
        self.write(Value::Array(vec![header, body]));
        self.events += 1;
        self
    }

    /// Appends a decoded event in the form components see: V2, with an EventTime (which
    /// its time must fit) and its metadata (an empty map for V1). An event already in that
    /// form is copied as it is; no record is decoded.
    pub fn push_normalized(&mut self, event: &Event<'_>) -> &mut Self {
        debug_assert!(event.time.fits_event_time());
        self.events += 1;
        if event.event_time && event.metadata.is_some() {
            self.buffer.extend_from_slice(event.raw);
            return self;
        }
        // fixarray 2 [fixarray 2 [EventTime, metadata], body]
        self.buffer.extend_from_slice(&[0x92, 0x92, 0xd7, 0x00]);
        self.buffer
            .extend_from_slice(&(event.time.seconds as u32).to_be_bytes());
        self.buffer
            .extend_from_slice(&event.time.nanos.to_be_bytes());
        const EMPTY_MAP: &[u8] = &[0x80];
        self.buffer
            .extend_from_slice(event.metadata.unwrap_or(EMPTY_MAP));
        self.buffer.extend_from_slice(event.body);
        self
    }

    /// Appends a group-start marker (V2 only, as Fluent Bit 3.1+ writes it).
    pub fn group_start(&mut self, group_metadata: Value, group_attributes: Value) -> &mut Self {
        self.marker(GROUP_START, group_metadata, group_attributes)
    }

    /// Appends a group-end marker.
    pub fn group_end(&mut self) -> &mut Self {
        self.marker(GROUP_END, Value::Map(vec![]), Value::Map(vec![]))
    }

    fn marker(&mut self, seconds: i64, metadata: Value, body: Value) -> &mut Self {
        // Markers carry the seconds as an unsigned 32-bit pattern (-1 is 0xFFFFFFFF).
        let mut data = (seconds as i32).to_be_bytes().to_vec();
        data.extend_from_slice(&0u32.to_be_bytes());
        let header = Value::Array(vec![Value::Ext(0, data), metadata]);
        self.write(Value::Array(vec![header, body]));
        self
    }

    /// Appends raw bytes, e.g. a malformed tail.
    pub fn push_raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buffer.extend_from_slice(bytes);
        self
    }

    fn write(&mut self, value: Value) {
        rmpv::encode::write_value(&mut self.buffer, &value)
            .expect("writing msgpack to a Vec cannot fail");
    }

    /// How many record events (not markers) were appended.
    pub fn events(&self) -> usize {
        self.events
    }

    /// The bytes written so far.
    pub fn len(&self) -> usize {
        self.buffer.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buffer.is_empty()
    }

    /// The chunk.
    pub fn finish(self) -> Vec<u8> {
        self.buffer
    }
}

fn encode_time(form: TimeForm, time: EventTime) -> Value {
    match form {
        TimeForm::EventTime => {
            let mut data = (time.seconds as u32).to_be_bytes().to_vec();
            data.extend_from_slice(&time.nanos.to_be_bytes());
            Value::Ext(0, data)
        }
        TimeForm::Integer => Value::from(time.seconds),
        TimeForm::Float => Value::F64(time.seconds as f64 + f64::from(time.nanos) / 1e9),
    }
}
