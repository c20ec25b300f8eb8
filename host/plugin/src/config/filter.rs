//! The `filter.N` keys: which components filter the records, in which order, and how.

use std::path::PathBuf;
use std::time::Duration;

use super::component::{ComponentLimits, parse_limits};
use super::{ConfigError, invalid, missing};

/// The most filters an instance may have (`filter.1` ... `filter.16`).
pub const MAX_FILTERS: usize = 16;

/// What happens to a chunk when a filter fails on it, or on one of its records
/// (`filter.N.on_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// The chunk goes back to Fluent Bit, which retries it.
    Retry,
    /// The batch passes this filter unchanged.
    Skip,
    /// The batch is dropped, with an error line that counts its records.
    Drop,
    /// The records the filter failed on pass it unchanged; the others are filtered.
    SkipRecord,
    /// The records the filter failed on are dropped, with an error line that counts
    /// them; the others are filtered.
    DropRecord,
}

impl OnError {
    /// Whether the policy is for the records that failed alone, not the whole batch.
    pub fn is_per_record(self) -> bool {
        matches!(self, OnError::SkipRecord | OnError::DropRecord)
    }
}

/// One `filter.N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterConfig {
    /// N.
    pub position: usize,
    /// The component file.
    pub path: PathBuf,
    /// The failure policy.
    pub on_error: OnError,
    /// Its sandbox limits.
    pub limits: ComponentLimits,
}

/// Reads `filter.1`, `filter.2`, ... through `lookup`.
pub(super) fn parse(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<FilterConfig>, ConfigError> {
    let given = |key: &str| {
        lookup(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let mut filters = Vec::new();
    let mut gap: Option<String> = None;
    for position in 1..=MAX_FILTERS {
        let key = format!("filter.{position}");
        let Some(path) = given(&key) else {
            gap.get_or_insert(key);
            continue;
        };
        if let Some(absent) = &gap {
            return Err(missing(
                absent.clone(),
                format!(
                    "'{key}' is set but '{absent}' is not: filters are numbered from 1 without gaps"
                ),
            ));
        }
        let on_error_key = format!("{key}.on_error");
        let on_error = match given(&on_error_key).as_deref() {
            None | Some("retry") => OnError::Retry,
            Some("skip") => OnError::Skip,
            Some("drop") => OnError::Drop,
            Some("skip_record") => OnError::SkipRecord,
            Some("drop_record") => OnError::DropRecord,
            Some(other) => {
                return Err(invalid(
                    on_error_key,
                    other,
                    "retry, skip, drop, skip_record or drop_record",
                ));
            }
        };
        let limits = parse_limits(&key, &given, "1s", Duration::from_secs(60))?;
        filters.push(FilterConfig {
            position,
            path: PathBuf::from(path),
            on_error,
            limits,
        });
    }
    Ok(filters)
}
