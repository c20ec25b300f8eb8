//! Decoding the chunk Fluent Bit passes to flush into events.
//!
//! A chunk is msgpack events written back to back, with no outer array. Fluent Bit 1.9
//! writes `[time, body]` (V1); 2.1 and later write `[[time, metadata], body]` (V2); one
//! chunk may mix both (`in_forward` appends packed entries as they came). The time is an
//! EventTime (ext type 0: big-endian u32 seconds, u32 nanoseconds), an integer or a float.
//! Group markers, written by OpenTelemetry inputs as EventTime seconds -1 (start) and -2
//! (end), carry no record and are skipped.
//!
//! A malformed event is reported with the byte it starts at. When it is still one whole
//! msgpack value (a body that is not a map, a time out of range, a record nested too
//! deeply), only that event is skipped and decoding goes on after it. When the bytes stop
//! being msgpack at all, the event's end cannot be found: decoding stops there, and what
//! came before is kept.

pub mod chunk;
pub mod msgpack;

use rmpv::ValueRef;

/// The event time: seconds since the Unix epoch and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventTime {
    /// Seconds since 1970-01-01T00:00:00Z; negative before it.
    pub seconds: i64,
    /// Nanoseconds within the second, below 1,000,000,000.
    pub nanos: u32,
}

impl EventTime {
    /// Builds a time, carrying whole seconds out of `nanos`.
    pub fn new(seconds: i64, nanos: u32) -> EventTime {
        EventTime {
            seconds: seconds.saturating_add(i64::from(nanos / 1_000_000_000)),
            nanos: nanos % 1_000_000_000,
        }
    }
}

/// One decoded event, borrowing from the chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    /// When the event happened.
    pub time: EventTime,
    /// Whether the time was written as an EventTime (not as an integer or a float).
    pub event_time: bool,
    /// The msgpack bytes of a V2 event's metadata map, checked like the body; None for V1.
    pub metadata: Option<&'a [u8]>,
    /// The record: the msgpack bytes of a map, checked to be whole and nested at most
    /// [`msgpack::MAX_DEPTH`] deep. Kept as bytes, so that writing it as JSON builds no
    /// tree of values.
    pub body: &'a [u8],
    /// The whole event, as the chunk holds it.
    pub raw: &'a [u8],
}

impl<'a> Event<'a> {
    /// The record as a value.
    pub fn record(&self) -> ValueRef<'a> {
        let mut body = self.body;
        rmpv::decode::read_value_ref(&mut body)
            .expect("a body that was checked when decoded reads as a value")
    }
}

/// A malformed event of a chunk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed event at byte {offset} of {chunk_len}: {reason}")]
pub struct DecodeError {
    /// Where the malformed event starts.
    pub offset: usize,
    /// The length of the whole chunk.
    pub chunk_len: usize,
    /// What is wrong with it.
    pub reason: String,
    /// Whether the events after it could still be read.
    pub damage: Damage,
}

/// How far a malformed event's damage reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// The event is one whole msgpack value but not a valid event: it alone is skipped.
    Event,
    /// The bytes from the event on are not msgpack values, so no later event can be found:
    /// the rest of the chunk is lost.
    Framing,
}

impl DecodeError {
    /// Whether nothing after this error can be read.
    pub fn ends_chunk(&self) -> bool {
        self.damage == Damage::Framing
    }
}

/// A chunk's tag as text, one to one: bytes that are not UTF-8 are written `%XX`, and so is
/// `%` itself (`%25`), so that two different tags never become one text (and one key).
pub fn tag_text(tag: &[u8]) -> String {
    let mut text = String::with_capacity(tag.len());
    for chunk in tag.utf8_chunks() {
        let valid = chunk.valid();
        if valid.contains('%') {
            text.push_str(&valid.replace('%', "%25"));
        } else {
            text.push_str(valid);
        }
        for byte in chunk.invalid() {
            text.push_str(&format!("%{byte:02X}"));
        }
    }
    text
}

/// The malformed events met while decoding one chunk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Malformed {
    /// How many events were skipped, each on its own.
    pub skipped: usize,
    /// The first of them.
    pub first_skipped: Option<DecodeError>,
    /// Where the chunk stopped being msgpack: nothing after it was read.
    pub unframed: Option<DecodeError>,
}

impl Malformed {
    /// Counts one decoding error.
    pub fn note(&mut self, error: DecodeError) {
        match error.damage {
            Damage::Event => {
                self.skipped += 1;
                self.first_skipped.get_or_insert(error);
            }
            Damage::Framing => self.unframed = Some(error),
        }
    }

    /// Adds what another decoding of the same chunk met.
    pub fn merge(&mut self, other: Malformed) {
        self.skipped += other.skipped;
        if self.first_skipped.is_none() {
            self.first_skipped = other.first_skipped;
        }
        if other.unframed.is_some() {
            self.unframed = other.unframed;
        }
    }

    /// Whether every event decoded.
    pub fn is_empty(&self) -> bool {
        self.skipped == 0 && self.unframed.is_none()
    }
}

impl EventTime {
    /// Whether the time fits an EventTime (unsigned 32-bit seconds) other than the two
    /// group-marker patterns, as components receive times.
    pub fn fits_event_time(&self) -> bool {
        (0..=0xFFFF_FFFD).contains(&self.seconds)
    }
}

/// The EventTime seconds of a group-start marker.
pub const GROUP_START: i64 = -1;
/// The EventTime seconds of a group-end marker.
pub const GROUP_END: i64 = -2;

/// Iterates over the events of a chunk; see [`events`].
#[derive(Debug)]
pub struct Events<'a> {
    chunk: &'a [u8],
    position: usize,
    /// Where the event last returned starts.
    last_start: usize,
    failed: bool,
    group_markers: usize,
}

/// Decodes the events of a chunk, in order. A [`Damage::Event`] error is followed by the
/// events after it; after a [`Damage::Framing`] error the iterator ends.
pub fn events(chunk: &[u8]) -> Events<'_> {
    Events {
        chunk,
        position: 0,
        last_start: 0,
        failed: false,
        group_markers: 0,
    }
}

impl Events<'_> {
    /// How many group markers were skipped so far.
    pub fn group_markers(&self) -> usize {
        self.group_markers
    }

    /// A malformed-event error for the event last returned, which decoded but cannot go
    /// on for `reason`.
    pub fn refuse_last(&self, reason: String) -> DecodeError {
        DecodeError {
            offset: self.last_start,
            chunk_len: self.chunk.len(),
            reason,
            damage: Damage::Event,
        }
    }
}

/// What comes before an event's body.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Header<'a> {
    /// When the event happened.
    pub time: EventTime,
    /// Whether the time was written as an EventTime (not as an integer or a float).
    pub event_time: bool,
    /// The msgpack bytes of a V2 event's metadata map, checked like a body; None for V1.
    pub metadata: Option<&'a [u8]>,
}

/// A body that the reader given to [`Events::next_with`] could not read: it is not one
/// whole map nested at most [`msgpack::MAX_DEPTH`] deep. Which of these, the decoding
/// finds out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable;

impl<'a> Events<'a> {
    /// The next event, with its body read by `read_body` rather than checked first and read
    /// after: one walk over each record instead of two. `read_body` must move past exactly
    /// the body, and refuse one that [`Event::body`] would not be (not a map, not whole, or
    /// nested too deeply); errors are then what [`Iterator::next`] gives.
    #[inline]
    pub fn next_with<T>(
        &mut self,
        mut read_body: impl FnMut(&Header<'a>, &mut &'a [u8]) -> Result<T, Unreadable>,
    ) -> Option<Result<(Header<'a>, T), DecodeError>> {
        while !self.failed && self.position < self.chunk.len() {
            let start = self.position;
            self.last_start = start;
            let mut rest = &self.chunk[start..];
            let decoded = match decode_header(&mut rest) {
                Ok(Some(header)) => {
                    let body = rest;
                    match read_body(&header, &mut rest) {
                        Ok(read) => Ok(Some((header, read))),
                        Err(Unreadable) => Err(check_body(&mut &body[..])
                            .err()
                            .unwrap_or_else(|| "cannot read the event body".to_owned())),
                    }
                }
                // A group marker's body is checked as a value, not as a record.
                Ok(None) => msgpack::skip_value(&mut rest)
                    .map(|_| None)
                    .map_err(|e| format!("cannot read the event body: {e}")),
                Err(reason) => Err(reason),
            };
            // Only a malformed event is framed apart, to tell whether the events after it
            // can still be found.
            let decoded = decoded.map_err(|reason| {
                rest = &self.chunk[start..];
                match msgpack::frame_value(&mut rest) {
                    Ok(_) => (reason, Damage::Event),
                    Err(framing) => (
                        format!("expected an event array [header, body]: {framing}"),
                        Damage::Framing,
                    ),
                }
            });
            self.position = self.chunk.len() - rest.len();
            match decoded {
                Ok(Some(event)) => return Some(Ok(event)),
                Ok(None) => self.group_markers += 1,
                Err((reason, damage)) => {
                    self.failed = damage == Damage::Framing;
                    return Some(Err(DecodeError {
                        offset: start,
                        chunk_len: self.chunk.len(),
                        reason,
                        damage,
                    }));
                }
            }
        }
        None
    }
}

impl<'a> Iterator for Events<'a> {
    type Item = Result<Event<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (header, body) =
            match self.next_with(|_, rest| check_body(rest).map_err(|_| Unreadable))? {
                Ok(decoded) => decoded,
                Err(error) => return Some(Err(error)),
            };
        Some(Ok(Event {
            time: header.time,
            event_time: header.event_time,
            metadata: header.metadata,
            body,
            raw: &self.chunk[self.last_start..self.position],
        }))
    }
}

/// Moves past a record's body, checked to be one whole map nested at most
/// [`msgpack::MAX_DEPTH`] deep, and returns its bytes.
fn check_body<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let body = msgpack::skip_value(rest).map_err(|e| format!("cannot read the event body: {e}"))?;
    expect_map(body, "the event body to be a map")?;
    Ok(body)
}

/// Decodes the header of the event at the front of `rest` and moves past it to the body;
/// Ok(None) for a group marker.
fn decode_header<'a>(rest: &mut &'a [u8]) -> Result<Option<Header<'a>>, String> {
    let len = rmp::decode::read_array_len(rest)
        .map_err(|e| format!("expected an event array [header, body]: {e}"))?;
    if len != 2 {
        return Err(format!(
            "expected an event array of 2 elements, found {len}"
        ));
    }
    // The header is read part by part, not as one value: a V2 header would otherwise
    // cost an allocation per event.
    let mut after_marker = *rest;
    let (time, metadata) = match msgpack::read_item(&mut after_marker) {
        Ok(msgpack::Item::Array(parts)) => {
            *rest = after_marker;
            if parts != 2 {
                return Err(format!(
                    "expected an event header [time, metadata], found an array of {parts}"
                ));
            }
            let time = read_value(rest, "event header")?;
            let metadata = msgpack::skip_value(rest)
                .map_err(|e| format!("cannot read the event metadata: {e}"))?;
            expect_map(metadata, "a metadata map in the event header")?;
            (time, Some(metadata))
        }
        _ => (read_value(rest, "event header")?, None),
    };
    // Only an EventTime can be a group marker: an integer or float -1 is a time.
    let event_time = matches!(time, ValueRef::Ext(0, _));
    let time = decode_time(&time)?;
    if event_time && (time.seconds == GROUP_START || time.seconds == GROUP_END) {
        return Ok(None);
    }
    Ok(Some(Header {
        time,
        event_time,
        metadata,
    }))
}

/// Fails unless `value`, one whole msgpack value, is a map; `expected` says what was.
fn expect_map(value: &[u8], expected: &str) -> Result<(), String> {
    let mut first = value;
    if matches!(msgpack::read_item(&mut first), Ok(msgpack::Item::Map(_))) {
        return Ok(());
    }
    let found = read_value(&mut &value[..], expected)?;
    Err(format!(
        "expected {expected}, found {}",
        type_name(Some(&found))
    ))
}

fn read_value<'a>(rest: &mut &'a [u8], what: &str) -> Result<ValueRef<'a>, String> {
    rmpv::decode::read_value_ref(rest).map_err(|e| format!("cannot read the {what}: {e}"))
}

/// Reads a timestamp in any of the three forms Fluent Bit writes.
fn decode_time(value: &ValueRef<'_>) -> Result<EventTime, String> {
    match value {
        ValueRef::Ext(0, data) if data.len() == 8 => {
            // Seconds are unsigned (good until 2106), except the two group-marker
            // patterns 0xFFFFFFFF and 0xFFFFFFFE, which stand for -1 and -2.
            let raw = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            let nanos = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
            let seconds = match raw {
                u32::MAX => GROUP_START,
                0xFFFF_FFFE => GROUP_END,
                raw => i64::from(raw),
            };
            Ok(EventTime::new(seconds, nanos))
        }
        ValueRef::Integer(integer) => integer
            .as_i64()
            .map(|seconds| EventTime::new(seconds, 0))
            .ok_or_else(|| format!("timestamp {integer} is out of range")),
        ValueRef::F64(seconds) => float_time(*seconds),
        ValueRef::F32(seconds) => float_time(f64::from(*seconds)),
        other => Err(format!(
            "expected a timestamp (EventTime, integer or float), found {}",
            type_name(Some(other))
        )),
    }
}

fn float_time(seconds: f64) -> Result<EventTime, String> {
    if !seconds.is_finite() || seconds.abs() > i64::MAX as f64 {
        return Err(format!("timestamp {seconds:e} is not a finite time"));
    }
    let whole = seconds.floor();
    let nanos = ((seconds - whole) * 1e9).round().min(999_999_999.0) as u32;
    Ok(EventTime::new(whole as i64, nanos))
}

fn type_name(value: Option<&ValueRef<'_>>) -> &'static str {
    match value {
        None => "nothing",
        Some(ValueRef::Nil) => "nil",
        Some(ValueRef::Boolean(_)) => "a boolean",
        Some(ValueRef::Integer(_)) => "an integer",
        Some(ValueRef::F32(_) | ValueRef::F64(_)) => "a float",
        Some(ValueRef::String(_)) => "a string",
        Some(ValueRef::Binary(_)) => "binary data",
        Some(ValueRef::Array(_)) => "an array",
        Some(ValueRef::Map(_)) => "a map",
        Some(ValueRef::Ext(..)) => "an ext value",
    }
}

#[cfg(test)]
pub(crate) mod tests;
