//! The keys of an instance's objects: `s3_key_format` rendered for each object, with
//! `$INDEX` counted per series.
//!
//! A series is the set of keys that differ only in `$INDEX` and `$UUID`: with the fluentd
//! layout `logs/%Y%m%d%H_$INDEX.gz`, one hour's objects. Each series counts from 0, as
//! fluentd does, and the counters are kept in the journal. Counters alone cannot promise
//! that a key is free (a journal lost to damage, another agent with the same layout, a
//! fresh `store_dir`): the destination refuses to overwrite, and a taken key sends its
//! object to the next index of the series ([`Keys::next`] again).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

use crate::object::key::{KeyContext, KeyTemplate};
use crate::store::journal::SeriesState;

/// A key given to an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// The key.
    pub key: String,
    /// Its series.
    pub series: String,
    /// Its `$INDEX`.
    pub index: u64,
}

/// Renders keys and counts series; shared by the engine (new objects) and the delivery
/// thread (objects whose key was taken).
#[derive(Debug)]
pub struct Keys {
    template: KeyTemplate,
    hostname: String,
    agent_id: String,
    series: Mutex<BTreeMap<String, SeriesState>>,
}

impl Keys {
    /// Keys from `template`, with the series counters the journal holds.
    pub fn new(
        template: KeyTemplate,
        hostname: String,
        agent_id: String,
        series: BTreeMap<String, SeriesState>,
    ) -> Keys {
        Keys {
            template,
            hostname,
            agent_id,
            series: Mutex::new(series),
        }
    }

    /// The agent id that `$AGENT_ID` renders.
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// Notes that `index` of `series` is taken (by an object found in the store), so that
    /// the series goes on after it.
    pub fn note(&self, series: &str, index: u64, window_start: i64) {
        if series.is_empty() {
            return;
        }
        let mut counters = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let state = counters.entry(series.to_owned()).or_insert(SeriesState {
            next: 0,
            window_start,
        });
        state.next = state.next.max(index + 1);
    }

    /// The next free key of the series of (`tag`, `window_start`).
    pub fn next(&self, tag: &str, window_start: i64) -> NewKey {
        let uuid = uuid::Uuid::new_v4().simple().to_string();
        let mut context = KeyContext {
            window_start: DateTime::<Utc>::from_timestamp(window_start, 0).unwrap_or_default(),
            tag,
            index: 0,
            uuid: &uuid[..8],
            hostname: &self.hostname,
            agent_id: &self.agent_id,
        };
        let series = self.template.series(&context);
        let index = {
            let mut counters = self.series.lock().unwrap_or_else(PoisonError::into_inner);
            let state = counters.entry(series.clone()).or_insert(SeriesState {
                next: 0,
                window_start,
            });
            let index = state.next;
            state.next += 1;
            index
        };
        context.index = index;
        NewKey {
            key: self.template.render(&context),
            series,
            index,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_series_counts_from_zero_and_goes_on_from_the_journal() {
        let template = KeyTemplate::parse("logs/$TAG/%Y%m%d%H_$INDEX.gz", ".").unwrap();
        let mut known = BTreeMap::new();
        known.insert(
            "logs/b/2024050110_$INDEX.gz".to_owned(),
            SeriesState {
                next: 7,
                window_start: 1_714_557_600,
            },
        );
        let keys = Keys::new(template, "host".into(), "agent".into(), known);
        let ten = 1_714_557_600;
        let eleven = ten + 3600;
        let got: Vec<String> = [("a", ten), ("a", ten), ("a", eleven), ("b", ten)]
            .into_iter()
            .map(|(tag, window)| keys.next(tag, window).key)
            .collect();
        assert_eq!(
            got,
            [
                "logs/a/2024050110_0.gz",
                "logs/a/2024050110_1.gz",
                "logs/a/2024050111_0.gz",
                "logs/b/2024050110_7.gz"
            ]
        );
        let again = keys.next("a", ten);
        assert_eq!(again.series, "logs/a/2024050110_$INDEX.gz");
        assert_eq!(again.index, 2);
    }
}
