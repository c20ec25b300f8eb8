//! Time windows: which object a record goes to, and when an object closes.
//!
//! A record's slot is its (tag, window) pair; the window is the start of the
//! `time_window` its event time falls in, so that the windows of every day start at the same
//! times (or one window for all records when windows are off). The chunks of a group are
//! encoded into JSON lines per slot here, several at once, keeping the order of the chunks.

use std::collections::HashMap;
use std::time::Duration;

use super::{ChunkOutcome, parallel};
use crate::config::{JsonLines, ObjectConfig};
use crate::event::{EventTime, events};
use crate::object::encode::read_line;
use crate::store::journal::Opened;

/// The (tag, window start) an object holds records of.
pub type Slot = (String, i64);

/// The lines of a group per tag, then per window.
pub type Lines<'a> = HashMap<&'a str, HashMap<i64, Vec<u8>>>;

/// The window settings of an instance.
#[derive(Debug, Clone, Copy)]
pub struct Windows {
    /// `time_window`; None: arrival time decides.
    window: Option<i64>,
    /// `window_wait`, in seconds.
    wait: i64,
    /// `upload_timeout`, in seconds.
    timeout: i64,
}

impl Windows {
    /// The windows `config` sets.
    pub fn new(config: &ObjectConfig) -> Windows {
        Windows {
            window: config.time_window.map(secs),
            wait: secs(config.window_wait),
            timeout: secs(config.upload_timeout),
        }
    }

    /// The start of the window `time` falls in; 0 for all times when windows are off.
    pub fn start_of(&self, time: EventTime) -> i64 {
        match self.window {
            Some(window) => time.seconds.div_euclid(window) * window,
            None => 0,
        }
    }

    /// The window start an object of window `window` opened at `now` records (and its key
    /// shows): the window's, or the open time when windows are off.
    pub fn object_start(&self, window: i64, now: i64) -> i64 {
        match self.window {
            Some(_) => window,
            None => now,
        }
    }

    /// When an object closes: `window_wait` after the later of its window's end and its
    /// opening (so a late object gathers late records for a while too), and at most
    /// `upload_timeout` after it opened.
    pub fn closes_at(&self, opened: &Opened) -> i64 {
        let timeout = opened.opened_at.saturating_add(self.timeout);
        match self.window {
            Some(window) => {
                let end = opened.window_start.saturating_add(window);
                timeout.min(end.max(opened.opened_at).saturating_add(self.wait))
            }
            None => timeout,
        }
    }

    /// Encodes `chunks` (index in the group, chunk, tag), on up to `threads` threads, into
    /// lines per slot, in chunk order; returns them and each chunk's outcome, in order.
    pub fn encode<'a>(
        &self,
        chunks: Vec<(usize, &'a [u8], &'a str)>,
        json: &JsonLines,
        threads: usize,
    ) -> (Lines<'a>, Vec<(usize, ChunkOutcome)>) {
        let mut encoded: Vec<Encoded<'a>> = chunks
            .into_iter()
            .map(|(index, chunk, tag)| Encoded {
                index,
                chunk,
                tag,
                windows: HashMap::new(),
                outcome: ChunkOutcome::default(),
            })
            .collect();
        parallel::for_each(
            &mut encoded,
            threads,
            |item| item.chunk.len(),
            |item| self.encode_one(item, json),
        );
        let mut lines: Lines<'a> = HashMap::new();
        let mut outcomes = Vec::with_capacity(encoded.len());
        for item in encoded {
            outcomes.push((item.index, item.outcome));
            let windows = lines.entry(item.tag).or_default();
            for (window, chunk_lines) in item.windows {
                let buffer = windows.entry(window).or_default();
                if buffer.is_empty() {
                    *buffer = chunk_lines;
                } else {
                    buffer.extend_from_slice(&chunk_lines);
                }
            }
        }
        (lines, outcomes)
    }

    /// Decodes a chunk's events and writes each as a JSON line into its window's buffer,
    /// in one walk over each record.
    fn encode_one(&self, item: &mut Encoded<'_>, json: &JsonLines) {
        let mut decoded = events(item.chunk);
        let windows = &mut item.windows;
        let capacity = item.chunk.len().saturating_mul(2);
        while let Some(event) = decoded.next_with(|header, body| {
            let window = self.start_of(header.time);
            let buffer = windows
                .entry(window)
                .or_insert_with(|| Vec::with_capacity(capacity));
            let written = read_line(buffer, header.time, body, json);
            // A window is only opened by a record written to it.
            if written.is_err() && buffer.is_empty() {
                windows.remove(&window);
            }
            written
        }) {
            match event {
                Ok((_, found_log_key)) => {
                    if !found_log_key {
                        item.outcome.without_log_key += 1;
                    }
                    item.outcome.records += 1;
                }
                Err(error) => item.outcome.malformed.note(error),
            }
        }
    }
}

/// A chunk of a group and, once encoded, its JSON lines per window.
struct Encoded<'a> {
    /// Its place in the group.
    index: usize,
    chunk: &'a [u8],
    tag: &'a str,
    windows: HashMap<i64, Vec<u8>>,
    outcome: ChunkOutcome,
}

/// A duration in whole seconds, saturating.
fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}
