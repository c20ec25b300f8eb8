//! The filters of an instance (`filter.1`, `filter.2`, ...) applied to each chunk in
//! order, with the failure policy of each.
//!
//! A chunk is brought to the one form components see (`[[time, metadata], body]` events,
//! EventTime times) before the first filter. When a filter fails on it (a trap, its
//! timeout, its memory cap, or an error it returns) or on some of its records (a `fail`
//! outcome), its `on_error` decides: `retry` hands the whole chunk back to Fluent Bit,
//! `skip` passes the batch on unchanged, `drop` drops it with an error line that counts
//! the records. `skip_record` and `drop_record` do the same to the records that failed
//! alone; a failure of the whole call is narrowed down to them by running the filter
//! over halves of the batch. Nothing is dropped silently.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::StartError;
use super::contract::latest::Outcome;
use super::filter::{Answer, FilterComponent, FilterInstance};
use super::sandbox::ComponentFailure;
use crate::config::{FilterConfig, OnError};
use crate::event::chunk::ChunkWriter;
use crate::event::msgpack::frame_value;
use crate::event::{Malformed, events};
use crate::log::Logger;
use crate::metrics::Metrics;

/// What became of a chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum Filtered {
    /// The chunk after every filter (possibly empty), and the malformed events of the
    /// original, which no filter saw.
    Chunk {
        /// The filtered events.
        batch: Vec<u8>,
        /// What of the original could not be decoded.
        malformed: Malformed,
    },
    /// A filter failed and its policy is `retry`: Fluent Bit should keep the chunk.
    Retry,
}

/// The running filters of one instance.
#[derive(Debug)]
pub struct Chain {
    stages: Vec<Stage>,
    log: Logger,
    metrics: Metrics,
}

#[derive(Debug)]
struct Stage {
    instance: FilterInstance,
    on_error: OnError,
    position: usize,
}

impl Chain {
    /// Loads and starts the configured filters. `lookup` answers `[OUTPUT]` keys, for the
    /// options each component declares (`filter.N.<option>`); compiled components are
    /// kept in `cache_dir`.
    ///
    /// # Errors
    ///
    /// The first filter that cannot be loaded or refuses its options; the message names
    /// the key, the component and the cause.
    pub fn start(
        filters: &[FilterConfig],
        lookup: &dyn Fn(&str) -> Option<String>,
        cache_dir: &Path,
        log: &Logger,
        metrics: &Metrics,
    ) -> Result<Chain, StartError> {
        let mut stages = Vec::new();
        for filter in filters {
            let key = format!("filter.{}", filter.position);
            let option = |name: &str| lookup(&format!("{key}.{name}"));
            let component =
                FilterComponent::load(&filter.path, cache_dir, filter.limits.clone(), log)
                    .and_then(|mut component| component.configure(&option).map(|()| component))
                    .map_err(|e| {
                        StartError::new(format!("'{key}' ({}): {e:#}", filter.path.display()))
                    })?;
            let component = Arc::new(component);
            let instance = component.start().map_err(|failure| {
                StartError::new(format_args!(
                    "'{key}' ({}): component '{}' refused its options: {failure}",
                    filter.path.display(),
                    component.name()
                ))
            })?;
            log.info(format_args!(
                "{key}: component '{}' ({})",
                component.name(),
                filter.path.display()
            ));
            stages.push(Stage {
                instance,
                on_error: filter.on_error,
                position: filter.position,
            });
        }
        Ok(Chain {
            stages,
            log: log.clone(),
            metrics: metrics.clone(),
        })
    }

    /// The filters, with their positions (`filter.N`), in order.
    pub fn filters(&self) -> impl Iterator<Item = (usize, &FilterComponent)> {
        self.stages
            .iter()
            .map(|stage| (stage.position, stage.instance.component()))
    }

    /// Whether there are filters at all.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Runs `chunk` of `tag` through every filter.
    pub fn apply(&mut self, chunk: &[u8], tag: &str) -> Filtered {
        let normalized = normalize(chunk);
        match self.run(normalized.batch, normalized.ranges, tag) {
            Some(batch) => Filtered::Chunk {
                batch,
                malformed: normalized.malformed,
            },
            None => Filtered::Retry,
        }
    }

    /// Runs a normalized batch of events, each at its range of `batch`, through every
    /// filter; None when a filter failed and its policy is `retry`.
    pub fn run(
        &mut self,
        mut batch: Vec<u8>,
        ranges: Vec<Range<usize>>,
        tag: &str,
    ) -> Option<Vec<u8>> {
        // The first filter takes the events where normalizing put them; each later one,
        // where the filter before it did, found by framing its answer.
        let mut framed = Some((ranges, batch.len()));
        for stage in &mut self.stages {
            if batch.is_empty() {
                break;
            }
            let (ranges, tail) = framed.take().unwrap_or_else(|| frame(&batch));
            batch = stage.apply(batch, &ranges, tail, tag, &self.log, &self.metrics)?;
        }
        Some(batch)
    }
}

/// The most failed calls spent narrowing failures down to their records, per batch and
/// filter: enough to find four bad records among 30,000.
const MAX_FAILED_CALLS: usize = 64;

/// The most time failed calls may take, per batch and filter, in timeouts of the filter:
/// what a filter that runs into its timeout on every record can hold a chunk up for.
const MAX_FAILED_TIMEOUTS: u32 = 4;

impl Stage {
    /// Runs `batch`, whose events are at `ranges` and whose bytes from `tail` on do not
    /// frame as events, through this filter, with its failure policy; None when the chunk
    /// goes back to Fluent Bit.
    fn apply(
        &mut self,
        batch: Vec<u8>,
        ranges: &[Range<usize>],
        tail: usize,
        tag: &str,
        log: &Logger,
        metrics: &Metrics,
    ) -> Option<Vec<u8>> {
        let mut run = Run::new(&mut self.instance, self.on_error, tag, Some(metrics));
        let mut filtered = if self.on_error.is_per_record() {
            let mut out = Vec::new();
            run.narrow(&batch, ranges, &mut out);
            Ok(out)
        } else {
            run.whole(&batch, ranges)
        };
        let failed = run.failed;
        let bound = match failed.not_told_apart {
            0 => String::new(),
            n => format!(
                "; {n} of them were not told apart, as the filter failed {} times on the \
                 batch, in {:.1?}",
                run.failed_calls, run.failed_time
            ),
        };
        // What does not frame as an event goes on as it is, to be counted as malformed
        // where the records are written.
        if let Ok(out) = &mut filtered {
            out.extend_from_slice(&batch[tail..]);
        }
        // Named only for a log line: most batches pass without one.
        let named = || {
            let name = self.instance.component().name();
            format!("filter.{} ({name})", self.position)
        };
        let records = ranges.len();
        match filtered {
            Ok(out) => {
                if let Some(first) = &failed.first {
                    let (filter, count) = (named(), failed.records);
                    match self.on_error {
                        OnError::SkipRecord => log.warn(format_args!(
                            "{filter} failed on {count} of {records} records of tag \
                             '{tag}' (the first: {first}){bound}; they pass it unchanged \
                             (on_error skip_record)"
                        )),
                        _ => log.error(format_args!(
                            "{filter} failed on {count} of {records} records of tag \
                             '{tag}' (the first: {first}){bound}; they are dropped (on_error \
                             drop_record)"
                        )),
                    }
                }
                Some(out)
            }
            Err(failure) => {
                let filter = named();
                match self.on_error {
                    OnError::Skip => {
                        log.warn(format_args!(
                            "{filter} failed on a chunk of tag '{tag}': {failure}; its \
                             {records} records pass it unchanged (on_error skip)"
                        ));
                        Some(batch)
                    }
                    OnError::Drop => {
                        log.error(format_args!(
                            "{filter} failed on a chunk of tag '{tag}': {failure}; its \
                             {records} records are dropped (on_error drop)"
                        ));
                        Some(Vec::new())
                    }
                    // The `_record` policies answer every failure record by record.
                    OnError::Retry | OnError::SkipRecord | OnError::DropRecord => {
                        log.warn(format_args!(
                            "{filter} failed on a chunk of tag '{tag}': {failure}; Fluent \
                             Bit keeps the chunk and retries it (on_error retry)"
                        ));
                        None
                    }
                }
            }
        }
    }
}

/// The records a filter failed on, under a `_record` policy.
#[derive(Debug, Default)]
struct Failed {
    records: usize,
    /// The first failure: of a record, or of a part of the batch that held one.
    first: Option<String>,
    /// How many of them were in a part of the batch that failed when the narrowing
    /// down had spent its bound: some of them may not have failed alone.
    not_told_apart: usize,
}

/// Runs `batch` of `tag` through one filter instance and puts its answer together: the
/// events that come out, or why it failed (a record it fails fails the batch).
///
/// # Errors
///
/// Why the filter failed on the batch.
pub fn run_once(
    instance: &mut FilterInstance,
    tag: &str,
    batch: &[u8],
) -> Result<Vec<u8>, ComponentFailure> {
    let (ranges, tail) = frame(batch);
    let mut run = Run::new(instance, OnError::Retry, tag, None);
    let mut out = run.whole(batch, &ranges)?;
    out.extend_from_slice(&batch[tail..]);
    Ok(out)
}

/// One batch going through one filter.
struct Run<'a> {
    instance: &'a mut FilterInstance,
    on_error: OnError,
    tag: &'a str,
    metrics: Option<&'a Metrics>,
    failed: Failed,
    failed_calls: usize,
    /// How long the failed calls took.
    failed_time: Duration,
}

impl<'a> Run<'a> {
    fn new(
        instance: &'a mut FilterInstance,
        on_error: OnError,
        tag: &'a str,
        metrics: Option<&'a Metrics>,
    ) -> Run<'a> {
        Run {
            instance,
            on_error,
            tag,
            metrics,
            failed: Failed::default(),
            failed_calls: 0,
            failed_time: Duration::ZERO,
        }
    }

    /// One call over the events `ranges` of `batch`: what it adds to `out`, or why it
    /// failed. The outcomes are checked before anything is added.
    fn call(
        &mut self,
        batch: &[u8],
        ranges: &[Range<usize>],
        out: &mut Vec<u8>,
    ) -> Result<(), ComponentFailure> {
        let (Some(first), Some(last)) = (ranges.first(), ranges.last()) else {
            return Ok(());
        };
        let part = &batch[first.start..last.end];
        let started = Instant::now();
        let answer = self
            .instance
            .process(self.tag, part)
            .inspect_err(|failure| {
                self.failed_time += started.elapsed();
                self.note_failure(failure);
            })?;
        let outcomes = match answer {
            Answer::Batch(events) if out.is_empty() => {
                // The filter's answer is the output: no copy of it.
                *out = events;
                return Ok(());
            }
            Answer::Batch(events) => {
                out.extend_from_slice(&events);
                return Ok(());
            }
            Answer::Outcomes(processed) => processed,
        };
        let replacements = check(&outcomes.outcomes, &outcomes.events, ranges.len())
            .inspect_err(|failure| self.note_failure(failure))?;
        if !self.on_error.is_per_record() {
            let mut failed = outcomes
                .outcomes
                .iter()
                .filter_map(|outcome| match outcome {
                    Outcome::Fail(message) => Some(message),
                    _ => None,
                });
            if let Some(first) = failed.next() {
                let failure = ComponentFailure::Failed {
                    message: format!(
                        "it failed {} of the {} records (the first: {first})",
                        1 + failed.count(),
                        ranges.len()
                    ),
                    retryable: false,
                };
                self.note_failure(&failure);
                return Err(failure);
            }
        }
        out.reserve(part.len());
        let mut replacements = replacements.into_iter();
        for (outcome, range) in outcomes.outcomes.iter().zip(ranges) {
            match outcome {
                Outcome::Keep => out.extend_from_slice(&batch[range.clone()]),
                Outcome::Drop => {}
                Outcome::Replace(_) => {
                    let events = replacements.next().expect("one per replace, checked");
                    out.extend_from_slice(&outcomes.events[events]);
                }
                Outcome::Fail(message) => {
                    let failure = ComponentFailure::Failed {
                        message: message.clone(),
                        retryable: false,
                    };
                    self.note_failure(&failure);
                    self.failed.first.get_or_insert_with(|| failure.to_string());
                    self.record_failed(&batch[range.clone()], out);
                }
            }
        }
        Ok(())
    }

    /// The whole batch in one call, under a batch policy.
    fn whole(
        &mut self,
        batch: &[u8],
        ranges: &[Range<usize>],
    ) -> Result<Vec<u8>, ComponentFailure> {
        let mut out = Vec::new();
        self.call(batch, ranges, &mut out)?;
        Ok(out)
    }

    /// The events `ranges` of `batch` under a `_record` policy: a failed call is narrowed
    /// down to the records it failed on, by halves.
    fn narrow(&mut self, batch: &[u8], ranges: &[Range<usize>], out: &mut Vec<u8>) {
        if ranges.is_empty() {
            return;
        }
        if self.spent() {
            // Only a part that failed is narrowed down: these did, all together.
            self.failed.not_told_apart += ranges.len();
            for range in ranges {
                self.record_failed(&batch[range.clone()], out);
            }
            return;
        }
        let before = out.len();
        let failure = match self.call(batch, ranges, out) {
            Ok(()) => return,
            Err(failure) => failure,
        };
        out.truncate(before);
        self.failed_calls += 1;
        self.failed.first.get_or_insert_with(|| failure.to_string());
        if let [range] = ranges {
            self.record_failed(&batch[range.clone()], out);
            return;
        }
        let (left, right) = ranges.split_at(ranges.len() / 2);
        self.narrow(batch, left, out);
        self.narrow(batch, right, out);
    }

    /// Whether narrowing down has spent its bound for this batch.
    fn spent(&self) -> bool {
        let time_left = self.instance.component().timeout() * MAX_FAILED_TIMEOUTS;
        self.failed_calls >= MAX_FAILED_CALLS || self.failed_time >= time_left
    }

    /// Applies the `_record` policy to one record the filter failed on.
    fn record_failed(&mut self, event: &[u8], out: &mut Vec<u8>) {
        self.failed.records += 1;
        if self.on_error == OnError::SkipRecord {
            out.extend_from_slice(event);
        }
    }

    fn note_failure(&self, failure: &ComponentFailure) {
        if let Some(metrics) = self.metrics {
            metrics.component_failed(self.instance.component().name(), failure);
        }
    }
}

/// Checks a filter's outcomes for `records` events, and returns where in `events` each
/// `replace` outcome's events are.
fn check(
    outcomes: &[Outcome],
    events: &[u8],
    records: usize,
) -> Result<Vec<Range<usize>>, ComponentFailure> {
    let broken = |message: String| ComponentFailure::Failed {
        message,
        retryable: false,
    };
    if outcomes.len() != records {
        return Err(broken(format!(
            "it answered {} outcomes for {records} records: one per record is the contract",
            outcomes.len()
        )));
    }
    let mut rest = events;
    let mut replacements = Vec::new();
    for outcome in outcomes {
        if let Outcome::Replace(count) = outcome {
            let start = events.len() - rest.len();
            for _ in 0..*count {
                frame_value(&mut rest).map_err(|e| {
                    broken(format!(
                        "the events of its replace outcomes are cut short or malformed: {e}"
                    ))
                })?;
            }
            replacements.push(start..events.len() - rest.len());
        }
    }
    if !rest.is_empty() {
        return Err(broken(format!(
            "it returned {} bytes of events beyond what its replace outcomes stand for",
            rest.len()
        )));
    }
    Ok(replacements)
}

/// Where each event of a batch is, and where the tail that does not frame as an event
/// starts (the end of the batch when there is none).
fn frame(batch: &[u8]) -> (Vec<Range<usize>>, usize) {
    let mut ranges = Vec::new();
    let mut rest = batch;
    while !rest.is_empty() {
        let start = batch.len() - rest.len();
        if frame_value(&mut rest).is_err() {
            return (ranges, start);
        }
        ranges.push(start..batch.len() - rest.len());
    }
    (ranges, batch.len())
}

/// A chunk in the components' form.
#[derive(Debug)]
pub struct Normalized {
    /// Its events, `[[time, metadata], body]` with EventTime times.
    pub batch: Vec<u8>,
    /// Where each event is in `batch`, in order.
    pub ranges: Vec<Range<usize>>,
    /// The events of the chunk that could not be decoded, and are not in the batch.
    pub malformed: Malformed,
}

/// The events of `chunk` in the components' form, where each is, and which could not
/// be decoded.
pub fn normalize(chunk: &[u8]) -> Normalized {
    let mut writer = ChunkWriter::new();
    let mut ranges = Vec::new();
    let mut malformed = Malformed::default();
    let mut decoded = events(chunk);
    while let Some(event) = decoded.next() {
        match event {
            // Components get EventTimes: a time before 1970 or after 2106 cannot be one.
            Ok(event) if !event.time.fits_event_time() => {
                malformed.note(decoded.refuse_last(format!(
                    "time {} s is outside what an EventTime holds (1970 to 2106), as filters \
                     receive times",
                    event.time.seconds
                )))
            }
            Ok(event) => {
                let start = writer.len();
                writer.push_normalized(&event);
                ranges.push(start..writer.len());
            }
            Err(error) => malformed.note(error),
        }
    }
    Normalized {
        batch: writer.finish(),
        ranges,
        malformed,
    }
}

#[cfg(test)]
mod tests {
    use rmpv::Value;

    use super::*;
    use crate::event::EventTime;
    use crate::event::chunk::{EventFormat, TimeForm};

    #[test]
    fn chunks_are_normalized_to_v2_with_event_times_and_keep_a_malformed_tail() {
        let mut writer = ChunkWriter::new();
        let body = || Value::Map(vec![(Value::from("log"), Value::from("x"))]);
        writer.push(
            EventFormat::V1,
            TimeForm::Integer,
            EventTime::new(5, 0),
            None,
            body(),
        );
        writer.push(
            EventFormat::V2,
            TimeForm::Float,
            EventTime::new(6, 500_000_000),
            None,
            body(),
        );
        let mut chunk = writer.finish();
        let good = chunk.len();
        chunk.extend_from_slice(&[0x92, 0xc1]);

        let Normalized {
            batch: normalized,
            ranges,
            malformed,
        } = normalize(&chunk);
        assert_eq!(ranges, frame(&normalized).0, "where each event is");
        assert_eq!(ranges.len(), 2);
        assert_eq!(malformed.unframed.map(|error| error.offset), Some(good));
        let mut expected = ChunkWriter::new();
        expected.push(
            EventFormat::V2,
            TimeForm::EventTime,
            EventTime::new(5, 0),
            Some(Value::Map(vec![])),
            body(),
        );
        expected.push(
            EventFormat::V2,
            TimeForm::EventTime,
            EventTime::new(6, 500_000_000),
            Some(Value::Map(vec![])),
            body(),
        );
        assert_eq!(normalized, expected.finish());
    }

    #[test]
    fn events_already_in_the_components_form_pass_byte_for_byte() {
        // [[EventTime as ext8 (not fixext8), {"k": "v"}], {"log": "x"}]: valid, in the
        // components' form, and written differently than this crate would write it.
        let event: &[u8] = &[
            0x92, 0x92, 0xc7, 0x08, 0x00, 0, 0, 0, 5, 0, 0, 0, 7, 0x81, 0xa1, b'k', 0xa1, b'v',
            0x81, 0xa3, b'l', b'o', b'g', 0xa1, b'x',
        ];
        let chunk = [event, event].concat();
        let normalized = normalize(&chunk);
        assert_eq!(
            normalized.ranges,
            [0..event.len(), event.len()..chunk.len()]
        );
        assert_eq!(normalized.batch, chunk);
    }

    #[test]
    fn times_that_are_no_event_time_are_skipped_and_counted_not_wrapped() {
        let body = || Value::Map(vec![(Value::from("log"), Value::from("x"))]);
        let mut writer = ChunkWriter::new();
        for seconds in [5, -1, -2, -7, 1 << 32, 6] {
            writer.push(
                EventFormat::V1,
                TimeForm::Integer,
                EventTime::new(seconds, 0),
                None,
                body(),
            );
        }
        let normalized = normalize(&writer.finish());
        assert_eq!(normalized.ranges, frame(&normalized.batch).0);
        assert_eq!(normalized.ranges.len(), 2);
        let times: Vec<i64> = events(&normalized.batch)
            .map(|event| event.unwrap().time.seconds)
            .collect();
        assert_eq!(times, [5, 6]);
        assert_eq!(normalized.malformed.skipped, 4);
        let first = normalized.malformed.first_skipped.unwrap();
        assert!(
            first.reason.contains("time -1 s is outside"),
            "{}",
            first.reason
        );
    }
}
