//! The filters of an instance (`filter.1`, `filter.2`, ...) applied to each chunk in
//! order, with the failure policy of each.
//!
//! A chunk is brought to the one form components see (`[[time, metadata], body]` events,
//! EventTime times) before the first filter. When a filter fails on it (a trap, its
//! timeout, its memory cap, or an error it returns), its `on_error` decides: `retry`
//! hands the whole chunk back to Fluent Bit, `skip` passes the batch on unchanged, `drop`
//! drops it with an error line that counts the records. Nothing is dropped silently.

use std::path::Path;
use std::sync::Arc;

use super::StartError;
use super::filter::{FilterComponent, FilterInstance};
use crate::config::{FilterConfig, OnError};
use crate::event::chunk::ChunkWriter;
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
        match self.run(normalized.batch, normalized.records, tag) {
            Some(batch) => Filtered::Chunk {
                batch,
                malformed: normalized.malformed,
            },
            None => Filtered::Retry,
        }
    }

    /// Runs a normalized batch of `records` events through every filter; None when a
    /// filter failed and its policy is `retry`.
    pub fn run(&mut self, mut batch: Vec<u8>, records: usize, tag: &str) -> Option<Vec<u8>> {
        for stage in &mut self.stages {
            if batch.is_empty() {
                break;
            }
            match stage.instance.process(&batch) {
                Ok(output) => batch = output,
                Err(failure) => {
                    let name = stage.instance.component().name().to_owned();
                    self.metrics.component_failed(&name, &failure);
                    let key = format!("filter.{}", stage.position);
                    match stage.on_error {
                        OnError::Retry => {
                            self.log.warn(format_args!(
                                "{key} ({name}) failed on a chunk of tag '{tag}': {failure}; \
                                 Fluent Bit keeps the chunk and retries it (on_error retry)"
                            ));
                            return None;
                        }
                        OnError::Skip => self.log.warn(format_args!(
                            "{key} ({name}) failed on a chunk of tag '{tag}': {failure}; its \
                             {records} records pass it unchanged (on_error skip)"
                        )),
                        OnError::Drop => {
                            self.log.error(format_args!(
                                "{key} ({name}) failed on a chunk of tag '{tag}': {failure}; \
                                 its {records} records are dropped (on_error drop)"
                            ));
                            batch.clear();
                        }
                    }
                }
            }
        }
        Some(batch)
    }
}

/// A chunk in the components' form.
#[derive(Debug)]
pub struct Normalized {
    /// Its events, `[[time, metadata], body]` with EventTime times.
    pub batch: Vec<u8>,
    /// How many there are.
    pub records: usize,
    /// The events of the chunk that could not be decoded, and are not in the batch.
    pub malformed: Malformed,
}

/// The events of `chunk` in the components' form, how many there are, and which could not
/// be decoded.
pub fn normalize(chunk: &[u8]) -> Normalized {
    let mut writer = ChunkWriter::new();
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
                writer.push_normalized(&event);
            }
            Err(error) => malformed.note(error),
        }
    }
    Normalized {
        records: writer.events(),
        batch: writer.finish(),
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
            records,
            malformed,
        } = normalize(&chunk);
        assert_eq!(records, 2);
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
        assert_eq!(normalized.records, 2);
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
        assert_eq!(normalized.records, 2);
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
