//! The configuration of one `[OUTPUT] Name rustsink` instance.
//!
//! [`Config::from_lookup`] reads every key of [`keys::ALL`] once, at init, and either
//! yields a validated [`Config`] or a [`ConfigError`] that names the key and the value.

mod component;
mod credentials;
mod filter;
pub mod keys;
pub mod parse;
mod s3;

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::object::ObjectFormat;
pub use crate::object::codec::{Codec, Compression};
use crate::object::key::KeyTemplate;
pub use crate::object::parquet::{Columns, PageCompression, ParquetOptions};
pub use component::{AllowedHost, ComponentLimits, ComponentSinkConfig};
pub use credentials::{CredentialsConfig, RoleHop, WebIdentity, web_identity_from_environment};
pub use filter::{FilterConfig, MAX_FILTERS, OnError};
pub use s3::{Checksum, Encryption, S3Config};

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key has a value of the wrong form.
    #[error("invalid value '{value}' for key '{key}': expected {expected}")]
    Invalid {
        /// The key, as documented.
        key: Cow<'static, str>,
        /// The value as given.
        value: String,
        /// What the key accepts.
        expected: String,
    },
    /// A key that the rest of the configuration requires is not set.
    #[error("missing key '{key}': {reason}")]
    Missing {
        /// The key, as documented.
        key: Cow<'static, str>,
        /// Why it is needed.
        reason: Cow<'static, str>,
    },
}

/// Where an instance delivers its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkConfig {
    /// Uploads to S3 (`sink s3`).
    S3(Box<S3Config>),
    /// JSON lines under a local directory (`sink dir`).
    Dir {
        /// The directory (`path`).
        path: PathBuf,
        /// The mode of delivered objects (`file_mode`).
        file_mode: u32,
    },
    /// A WebAssembly sink component (`sink <path>.wasm`).
    Component(ComponentSinkConfig),
}

impl SinkConfig {
    /// The sink's kind, as log lines name it: `s3`, `dir` or `component`.
    pub fn name(&self) -> &'static str {
        match self {
            SinkConfig::S3(_) => "s3",
            SinkConfig::Dir { .. } => "dir",
            SinkConfig::Component(_) => "component",
        }
    }
}

/// How the event time is written into each JSON line (`json_date_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateFormat {
    /// `2024-05-01T10:00:00.123456Z`.
    Iso8601,
    /// `2024-05-01 10:00:00.123456`.
    JavaSqlTimestamp,
    /// Seconds with a fraction, as a JSON number.
    Double,
    /// Whole seconds.
    Epoch,
    /// Milliseconds.
    EpochMs,
}

/// The JSON lines encoding of records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonLines {
    /// The key of the event time (`json_date_key`); None leaves it out.
    pub date_key: Option<String>,
    /// The format of the event time (`json_date_format`).
    pub date_format: DateFormat,
    /// The one field each line holds (`log_key`); None: the whole record.
    pub log_key: Option<String>,
}

/// How records are cut into objects, named, journalled and delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectConfig {
    /// The event-time window of an object; None: arrival time decides.
    pub time_window: Option<Duration>,
    /// How long after its window ends an object stays open.
    pub window_wait: Duration,
    /// The longest an object stays open.
    pub upload_timeout: Duration,
    /// The stored (compressed) size at which an object is cut.
    pub total_file_size: u64,
    /// What objects hold.
    pub format: ObjectFormat,
    /// How objects are stored until they are delivered: the compression of JSON lines
    /// objects, and zstd for Parquet ones.
    pub compression: Compression,
    /// How Parquet objects are written (also for those the journal holds when `format` is
    /// `json_lines` now).
    pub parquet: ParquetOptions,
    /// How many objects are compressed at once; at least 1.
    pub compression_threads: usize,
    /// The most objects open at once; at least 1.
    pub max_open_objects: usize,
    /// The key template.
    pub key_format: KeyTemplate,
    /// The store folder of all instances; each instance uses a folder inside it.
    pub store_dir: PathBuf,
    /// The most bytes the instance's store folder may hold; None: no limit.
    pub store_dir_limit_size: Option<u64>,
    /// Delivery attempts per object before it is quarantined; at least 1 (`u32::MAX`:
    /// `no_limits`).
    pub upload_retry_limit: u32,
    /// What happens to an object after its last attempt.
    pub retry_exhausted_action: RetryExhaustedAction,
    /// How many objects are delivered at the same time; at least 1.
    pub upload_concurrency: usize,
    /// How long exit may spend delivering.
    pub shutdown_timeout: Duration,
}

/// What happens to an object after `upload_retry_limit` failed attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryExhaustedAction {
    /// It moves to quarantine and is tried again at every start and every half hour.
    Quarantine,
    /// It is deleted, with an error line.
    Delete,
}

/// A validated instance configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where records go.
    pub sink: SinkConfig,
    /// The filter components, in order.
    pub filters: Vec<FilterConfig>,
    /// How records are written as JSON.
    pub json: JsonLines,
    /// How records become objects.
    pub objects: ObjectConfig,
    /// Where the metrics are served (`metrics_listen`); None: nowhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How many steps below Fluent Bit's the record thread runs (`nice`), 0 to 19.
    pub nice: u8,
}

impl Config {
    /// Reads and validates every key through `lookup`, which answers a key name with the
    /// configured value (Fluent Bit's `output_get_property`).
    ///
    /// # Errors
    ///
    /// The first key whose value is malformed, or a required key that is missing.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::read(&lookup)
    }

    /// Reads and validates key-value pairs, as an `[OUTPUT]` section lists them (keys
    /// match without regard to case).
    ///
    /// # Errors
    ///
    /// As [`Config::from_lookup`].
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            pairs
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| (*value).to_owned())
        })
    }

    fn read(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let value = |name: &'static str| -> Option<String> {
            lookup(name).or_else(|| keys::find(name)?.default.map(str::to_owned))
        };
        let sink = parse_sink(&value(keys::SINK).unwrap_or_default(), lookup, &value)?;
        let date_key = value(keys::JSON_DATE_KEY)
            .filter(|key| parse::boolean(key) != Ok(false) && !key.is_empty());
        let mut date_format =
            parse_date_format(&value(keys::JSON_DATE_FORMAT).unwrap_or_default())?;
        let log_key = value(keys::LOG_KEY).filter(|key| !key.is_empty());
        let given = |key: &str| lookup(key).is_some();
        let objects = parse_objects(&value, &given, date_key.as_deref())?;
        if objects.format == ObjectFormat::Parquet {
            if let Some(log_key) = &log_key {
                return Err(invalid(
                    keys::LOG_KEY,
                    log_key,
                    "no log_key with format parquet: log_key writes raw lines, Parquet writes \
                     columns",
                ));
            }
            if let SinkConfig::Component(_) = sink {
                return Err(invalid(
                    keys::FORMAT,
                    "parquet",
                    "json_lines with a sink component, which takes the records themselves",
                ));
            }
            // The stored lines carry the time as RFC 3339, which the time column is read from.
            date_format = DateFormat::Iso8601;
        }
        let mut sink = sink;
        if let SinkConfig::S3(s3) = &mut sink
            && objects.format == ObjectFormat::Parquet
            && !given(keys::CONTENT_TYPE)
        {
            s3.content_type = PARQUET_CONTENT_TYPE.to_owned();
        }
        let metrics_listen = match value(keys::METRICS_LISTEN) {
            Some(text) if !text.trim().is_empty() => Some(text.trim().parse().map_err(|_| {
                invalid(
                    keys::METRICS_LISTEN,
                    &text,
                    "an IP address and port, such as 127.0.0.1:2021 or [::]:2021",
                )
            })?),
            _ => None,
        };
        let filters = filter::parse(lookup)?;
        // Components' timeouts count wall-clock time, which a thread that yields the cores
        // spends waiting for them: with components, only a `nice` given lowers the thread.
        let components = !filters.is_empty() || matches!(sink, SinkConfig::Component(_));
        let nice = if components && lookup(keys::NICE).is_none() {
            0
        } else {
            let text = value(keys::NICE).unwrap_or_default();
            parse::whole(&text, 0..=19).map_err(|expected| invalid(keys::NICE, &text, expected))?
        };
        Ok(Config {
            sink,
            filters,
            json: JsonLines {
                date_key,
                date_format,
                log_key,
            },
            objects,
            metrics_listen,
            nice: nice as u8,
        })
    }
}

/// The media type of Parquet objects (the default `content_type` with `format parquet`).
const PARQUET_CONTENT_TYPE: &str = "application/vnd.apache.parquet";

/// The gzip level when `compression_level` is not set: libdeflate's 5, which on JSON lines
/// compresses about as well as zlib's 6, better than out_s3, for less CPU than zlib's 4
/// (BENCHMARKS.md).
pub const GZIP_LEVEL: i32 = 5;
/// The zstd level when `compression_level` is not set: on frames of about 1 MiB of JSON
/// lines, level 1 compresses as well as 3 for about half its CPU (BENCHMARKS.md).
const ZSTD_LEVEL: i32 = 1;

fn parse_objects(
    value: &dyn Fn(&'static str) -> Option<String>,
    given: &dyn Fn(&str) -> bool,
    time_column: Option<&str>,
) -> Result<ObjectConfig, ConfigError> {
    let text = |key: &'static str| value(key).unwrap_or_default();
    let duration = |key: &'static str| {
        let text = text(key);
        parse::duration(&text).map_err(|expected| invalid(key, &text, expected))
    };
    let size = |key: &'static str| {
        let text = text(key);
        parse::size(&text).map_err(|expected| invalid(key, &text, expected))
    };
    let whole = |key: &'static str, range: std::ops::RangeInclusive<u64>| {
        let text = text(key);
        parse::whole(&text, range).map_err(|expected| invalid(key, &text, expected))
    };

    // Only the words turn windows off: `0` is a duration, and refused below.
    let time_window = match text(keys::TIME_WINDOW).trim().to_ascii_lowercase().as_str() {
        "off" | "false" | "no" => None,
        _ => Some(duration(keys::TIME_WINDOW)?),
    };
    if time_window.is_some_and(|w| w.subsec_nanos() != 0 || !divides_a_day(w.as_secs())) {
        return Err(invalid(
            keys::TIME_WINDOW,
            &text(keys::TIME_WINDOW),
            "whole seconds that divide a day (such as 5m, 10m, 15m, 30m, 1h, 2h, 6h, 24h), so \
             that windows start at the same times every day; or off",
        ));
    }
    let format = match text(keys::FORMAT).trim().to_ascii_lowercase().as_str() {
        "json_lines" => ObjectFormat::JsonLines,
        "parquet" => ObjectFormat::Parquet,
        _ => {
            return Err(invalid(
                keys::FORMAT,
                &text(keys::FORMAT),
                "json_lines or parquet",
            ));
        }
    };
    let parquet = format == ObjectFormat::Parquet;
    // With Parquet, `compression` is the pages' codec, zstd unless it is set.
    let compression_text = match parquet && !given(keys::COMPRESSION) {
        true => "zstd".to_owned(),
        false => text(keys::COMPRESSION),
    };
    let (codec, snappy) = match compression_text.trim().to_ascii_lowercase().as_str() {
        "gzip" => (Codec::Gzip, false),
        "zstd" => (Codec::Zstd, false),
        "none" | "off" => (Codec::None, false),
        "snappy" if parquet => (Codec::None, true),
        _ => {
            return Err(invalid(
                keys::COMPRESSION,
                &compression_text,
                match parquet {
                    true => "zstd, snappy, gzip or none (the page compression of format parquet)",
                    false => "gzip, zstd or none (snappy only with format parquet)",
                },
            ));
        }
    };
    // Each codec's own range and default: the key's default is theirs.
    let (levels, default_level) = match codec {
        Codec::Gzip => (1..=9, GZIP_LEVEL),
        Codec::Zstd => (1..=19, ZSTD_LEVEL),
        Codec::None => (0..=0, 0),
    };
    let level = match value(keys::COMPRESSION_LEVEL) {
        Some(_) if codec != Codec::None => whole(keys::COMPRESSION_LEVEL, levels)? as i32,
        _ => default_level,
    };
    let configured = Compression { codec, level };
    let (compression, page_compression) = match parquet {
        // Parquet objects wait as zstd JSON lines, the cheapest to write and read back.
        true => (
            Compression {
                codec: Codec::Zstd,
                level: ZSTD_LEVEL,
            },
            match codec {
                _ if snappy => PageCompression::Snappy,
                Codec::None => PageCompression::None,
                Codec::Gzip => PageCompression::Gzip(level.unsigned_abs()),
                Codec::Zstd => PageCompression::Zstd(level),
            },
        ),
        false => (configured, PageCompression::Zstd(ZSTD_LEVEL)),
    };
    let schema = match value(keys::PARQUET_SCHEMA).filter(|p| !p.trim().is_empty()) {
        Some(path) => Some(
            Columns::read(std::path::Path::new(path.trim()), time_column)
                .map_err(|error| invalid(keys::PARQUET_SCHEMA, &path, error))?,
        ),
        None => None,
    };
    let row_group_bytes = size(keys::PARQUET_ROW_GROUP_SIZE)?;
    if !(1024 * 1024..=1024 * 1024 * 1024).contains(&row_group_bytes) {
        return Err(invalid(
            keys::PARQUET_ROW_GROUP_SIZE,
            &text(keys::PARQUET_ROW_GROUP_SIZE),
            "a size from 1M to 1G",
        ));
    }
    let parquet_options = ParquetOptions {
        compression: page_compression,
        row_group_bytes: row_group_bytes as usize,
        schema,
        time_column: time_column.map(str::to_owned),
    };
    let key_text = match (given(keys::S3_KEY_FORMAT), parquet) {
        (false, true) => keys::DEFAULT_KEY_FORMAT.replace(".jsonl.gz", ".parquet"),
        (false, false) => keys::DEFAULT_KEY_FORMAT.replace(".gz", codec.format().extension()),
        (true, _) => text(keys::S3_KEY_FORMAT),
    };
    let key_format = KeyTemplate::parse(&key_text, &text(keys::S3_KEY_FORMAT_TAG_DELIMITERS))
        .map_err(|error| invalid(keys::S3_KEY_FORMAT, &key_text, error.to_string()))?;
    if !key_format.is_unique_per_object() {
        return Err(invalid(
            keys::S3_KEY_FORMAT,
            &key_text,
            "a template with $INDEX or $UUID, so that no object overwrites another",
        ));
    }
    let max_open_objects = match whole(keys::MAX_OPEN_OBJECTS, 0..=1_000_000)? as usize {
        0 => default_max_open_objects(),
        bound => bound,
    };
    let compression_threads = match whole(keys::COMPRESSION_THREADS, 0..=256)? as usize {
        // Gzip is most of a flush's work: spread over every core, it shortens the flush.
        0 if compression.codec == Codec::Gzip => {
            std::thread::available_parallelism().map_or(1, usize::from)
        }
        // zstd costs less than encoding the lines: more threads would mostly compete with
        // Fluent Bit's input for the cores (BENCHMARKS.md).
        0 => 1,
        threads => threads,
    };
    let store_dir = text(keys::STORE_DIR);
    if store_dir.trim().is_empty() {
        return Err(invalid(keys::STORE_DIR, &store_dir, "a directory"));
    }
    let total_file_size = size(keys::TOTAL_FILE_SIZE)?;
    if total_file_size == 0 {
        return Err(invalid(
            keys::TOTAL_FILE_SIZE,
            &text(keys::TOTAL_FILE_SIZE),
            "a size above 0, such as 100M",
        ));
    }
    let upload_timeout = duration(keys::UPLOAD_TIMEOUT)?;
    if upload_timeout.is_zero() {
        return Err(invalid(
            keys::UPLOAD_TIMEOUT,
            &text(keys::UPLOAD_TIMEOUT),
            "a duration above 0, such as 10m",
        ));
    }
    // Fluent Bit's words for no limit, as its Retry_Limit takes them.
    let upload_retry_limit = match text(keys::UPLOAD_RETRY_LIMIT)
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "no_limits" | "false" | "off" => u32::MAX,
        _ => whole(keys::UPLOAD_RETRY_LIMIT, 1..=1000).map_err(|_| {
            invalid(
                keys::UPLOAD_RETRY_LIMIT,
                &text(keys::UPLOAD_RETRY_LIMIT),
                "a whole number from 1 to 1000, or no_limits",
            )
        })? as u32,
    };
    let retry_exhausted_action = match text(keys::RETRY_EXHAUSTED_ACTION)
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "quarantine" => RetryExhaustedAction::Quarantine,
        "delete" => RetryExhaustedAction::Delete,
        _ => {
            return Err(invalid(
                keys::RETRY_EXHAUSTED_ACTION,
                &text(keys::RETRY_EXHAUSTED_ACTION),
                "quarantine or delete",
            ));
        }
    };
    Ok(ObjectConfig {
        time_window,
        window_wait: duration(keys::WINDOW_WAIT)?,
        upload_timeout,
        total_file_size,
        format,
        compression,
        parquet: parquet_options,
        compression_threads,
        max_open_objects,
        key_format,
        store_dir: PathBuf::from(store_dir.trim()),
        store_dir_limit_size: Some(size(keys::STORE_DIR_LIMIT_SIZE)?).filter(|&n| n > 0),
        upload_retry_limit,
        retry_exhausted_action,
        upload_concurrency: whole(keys::UPLOAD_CONCURRENCY, 1..=64)? as usize,
        shutdown_timeout: duration(keys::SHUTDOWN_TIMEOUT)?,
    })
}

/// `url` if it is an http(s) URL, for endpoint keys.
fn http_url(key: &'static str, url: Option<String>) -> Result<Option<String>, ConfigError> {
    match url {
        Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => Err(invalid(
            key,
            &url,
            "a URL starting with http:// or https://",
        )),
        url => Ok(url),
    }
}

fn missing(key: impl Into<Cow<'static, str>>, reason: impl Into<Cow<'static, str>>) -> ConfigError {
    ConfigError::Missing {
        key: key.into(),
        reason: reason.into(),
    }
}

fn invalid(
    key: impl Into<Cow<'static, str>>,
    value: &str,
    expected: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.to_owned(),
        expected: expected.into(),
    }
}

fn parse_sink(
    sink: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    value: &dyn Fn(&'static str) -> Option<String>,
) -> Result<SinkConfig, ConfigError> {
    let path = value(keys::PATH);
    match sink.trim() {
        s if s.eq_ignore_ascii_case("s3") => {
            Ok(SinkConfig::S3(Box::new(s3::parse(lookup, value)?)))
        }
        s if s.eq_ignore_ascii_case("dir") => match path.filter(|p| !p.trim().is_empty()) {
            Some(path) => {
                let text = value(keys::FILE_MODE).unwrap_or_default();
                let file_mode = u32::from_str_radix(text.trim(), 8)
                    .ok()
                    .filter(|mode| mode & !0o777 == 0 && mode & 0o600 == 0o600)
                    .ok_or_else(|| {
                        invalid(
                            keys::FILE_MODE,
                            &text,
                            "an octal mode such as 0640 or 0600, readable and writable by its \
                             owner",
                        )
                    })?;
                Ok(SinkConfig::Dir {
                    path: PathBuf::from(path.trim()),
                    file_mode,
                })
            }
            None => Err(missing(
                keys::PATH,
                "'sink dir' writes under the directory that 'path' names",
            )),
        },
        s if s.to_ascii_lowercase().ends_with(".wasm") => {
            Ok(SinkConfig::Component(component::parse_sink(s, lookup)?))
        }
        _ => Err(invalid(
            keys::SINK,
            sink,
            "s3, dir, or the path of a .wasm sink component",
        )),
    }
}

fn parse_date_format(format: &str) -> Result<DateFormat, ConfigError> {
    Ok(match format.trim().to_ascii_lowercase().as_str() {
        "iso8601" => DateFormat::Iso8601,
        "java_sql_timestamp" => DateFormat::JavaSqlTimestamp,
        "double" => DateFormat::Double,
        "epoch" => DateFormat::Epoch,
        "epoch_ms" | "epoch_millis" | "epoch_milliseconds" => DateFormat::EpochMs,
        _ => {
            return Err(invalid(
                keys::JSON_DATE_FORMAT,
                format,
                "iso8601, java_sql_timestamp, double, epoch or epoch_ms",
            ));
        }
    })
}

/// A quarter of the soft descriptor limit, from 8 to 8192: the rest is for Fluent Bit, its
/// inputs and the delivery threads.
fn default_max_open_objects() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1 << 20);
    usize::try_from(limit / 4).unwrap_or(8192).clamp(8, 8192)
}

/// Whether windows of `seconds` tile each UTC day from midnight.
fn divides_a_day(seconds: u64) -> bool {
    seconds > 0 && 86_400 % seconds == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration of `pairs`, with a bucket for the default `sink s3`.
    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|key| {
            pairs
                .iter()
                .chain(&[("bucket", "logs")])
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_apply_when_keys_are_absent() {
        let config = config(&[]).unwrap();
        assert!(matches!(&config.sink, SinkConfig::S3(s3) if s3.bucket == "logs"));
        assert_eq!(config.json.date_key.as_deref(), Some("date"));
        assert_eq!(config.json.date_format, DateFormat::Iso8601);
    }

    #[test]
    fn sink_dir_needs_path() {
        assert_eq!(
            config(&[("sink", "dir")]),
            Err(missing(
                "path",
                "'sink dir' writes under the directory that 'path' names"
            ))
        );
        assert_eq!(
            config(&[("sink", "DIR"), ("path", "/var/log/out")])
                .unwrap()
                .sink,
            SinkConfig::Dir {
                path: "/var/log/out".into(),
                file_mode: 0o640,
            }
        );
        for (mode, ok) in [
            ("0600", true),
            ("644", true),
            ("0400", false),
            ("rw", false),
            ("01777", false),
        ] {
            let parsed = config(&[("sink", "dir"), ("path", "/x"), ("file_mode", mode)]);
            assert_eq!(parsed.is_ok(), ok, "{mode}");
        }
    }

    #[test]
    fn unknown_sink_names_key_and_value() {
        let error = config(&[("sink", "kafka")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid value 'kafka' for key 'sink': expected s3, dir, or the path of a .wasm \
             sink component"
        );
    }

    #[test]
    fn wasm_sink_is_a_component_path() {
        assert_eq!(
            config(&[
                ("sink", "/plugins/http.wasm"),
                ("sink.allowed_hosts", "collector:8080"),
                ("sink.timeout", "5s"),
            ])
            .unwrap()
            .sink,
            SinkConfig::Component(ComponentSinkConfig {
                path: "/plugins/http.wasm".into(),
                allowed_hosts: vec![AllowedHost {
                    host: "collector".into(),
                    port: Some(8080)
                }],
                limits: ComponentLimits {
                    memory: 64 << 20,
                    timeout: Duration::from_secs(5)
                },
            })
        );
    }

    #[test]
    fn nice_defaults_to_10_and_to_0_with_components_unless_given() {
        let nice = |pairs: &[(&str, &str)]| config(pairs).unwrap().nice;
        assert_eq!(nice(&[]), 10);
        assert_eq!(nice(&[("nice", "4")]), 4);
        assert_eq!(nice(&[("sink", "/plugins/http.wasm")]), 0);
        assert_eq!(nice(&[("sink", "/plugins/http.wasm"), ("nice", "10")]), 10);
        assert_eq!(nice(&[("filter.1", "/plugins/grep.wasm")]), 0);
        assert_eq!(
            nice(&[("filter.1", "/plugins/grep.wasm"), ("nice", "7")]),
            7
        );
    }

    #[test]
    fn date_key_can_be_turned_off_and_formats_parse() {
        assert_eq!(
            config(&[("json_date_key", "off")]).unwrap().json.date_key,
            None
        );
        assert_eq!(
            config(&[("json_date_key", "time")])
                .unwrap()
                .json
                .date_key
                .as_deref(),
            Some("time")
        );
        assert_eq!(
            config(&[("json_date_format", "EPOCH_MS")])
                .unwrap()
                .json
                .date_format,
            DateFormat::EpochMs
        );
        assert!(config(&[("format", "JSON_LINES")]).is_ok());
        let error = config(&[("format", "otlp_json")]).unwrap_err().to_string();
        assert!(
            error.contains("'otlp_json' for key 'format'") && error.contains("json_lines"),
            "{error}"
        );
        let error = config(&[("json_date_format", "rfc2822")]).unwrap_err();
        assert!(error.to_string().contains("'json_date_format'"), "{error}");
        assert!(error.to_string().contains("'rfc2822'"), "{error}");
    }

    #[test]
    fn object_defaults_and_bad_values() {
        let objects = config(&[]).unwrap().objects;
        assert_eq!(objects.time_window, Some(Duration::from_secs(3600)));
        assert_eq!(objects.window_wait, Duration::from_secs(600));
        assert_eq!(objects.total_file_size, 100 << 20);
        assert_eq!(
            objects.compression,
            Compression {
                codec: Codec::Gzip,
                level: 5
            }
        );
        assert_eq!(objects.store_dir_limit_size, None);
        assert_eq!(
            objects.compression_threads,
            std::thread::available_parallelism().map_or(1, usize::from)
        );
        for (compression, threads) in [("zstd", "0"), ("none", "0"), ("zstd", "3"), ("gzip", "2")] {
            let objects = config(&[
                ("compression", compression),
                ("compression_threads", threads),
            ])
            .unwrap()
            .objects;
            assert_eq!(
                objects.compression_threads,
                threads.parse::<usize>().unwrap().max(1)
            );
        }
        let parquet = config(&[("format", "parquet"), ("compression", "gzip")]).unwrap();
        assert_eq!(
            parquet.objects.compression_threads, 1,
            "its lines wait as zstd"
        );
        assert_eq!(
            config(&[("time_window", "off")])
                .unwrap()
                .objects
                .time_window,
            None
        );
        for (key, value, expected) in [
            ("time_window", "1500ms", "whole seconds"),
            ("time_window", "0", "divide a day"),
            ("time_window", "7m", "divide a day"),
            ("time_window", "48h", "divide a day"),
            ("total_file_size", "0", "above 0"),
            ("compression", "lz4", "gzip, zstd or none"),
            ("compression_level", "10", "from 1 to 9"),
            ("compression_level", "0", "from 1 to 9"),
            ("upload_retry_limit", "0", "from 1 to 1000, or no_limits"),
            ("retry_exhausted_action", "drop", "quarantine or delete"),
            ("upload_concurrency", "0", "from 1 to 64"),
            ("s3_key_format", "logs/%Y/$TAG.gz", "$INDEX or $UUID"),
            ("s3_key_format", "logs/%Q-$INDEX", "%Q"),
            ("window_wait", "soon", "a duration"),
        ] {
            let error = config(&[(key, value)]).unwrap_err().to_string();
            assert!(
                error.contains(&format!("'{value}' for key '{key}'")) && error.contains(expected),
                "{error}"
            );
        }
    }

    #[test]
    fn parquet_objects_wait_as_zstd_lines_and_compression_names_their_pages() {
        let parquet = config(&[("format", "parquet"), ("json_date_format", "epoch")]).unwrap();
        let objects = &parquet.objects;
        assert_eq!(objects.format, ObjectFormat::Parquet);
        assert_eq!(
            objects.compression,
            Compression {
                codec: Codec::Zstd,
                level: 1
            }
        );
        assert_eq!(objects.parquet.compression, PageCompression::Zstd(1));
        assert_eq!(objects.parquet.time_column.as_deref(), Some("date"));
        assert_eq!(objects.parquet.row_group_bytes, 8 << 20);
        let template = keys::DEFAULT_KEY_FORMAT.replace(".jsonl.gz", ".parquet");
        assert_eq!(
            objects.key_format,
            KeyTemplate::parse(&template, ".").unwrap()
        );
        // The time column is read from RFC 3339 text, whatever json_date_format says.
        assert_eq!(parquet.json.date_format, DateFormat::Iso8601);
        let SinkConfig::S3(s3) = &parquet.sink else {
            panic!("sink s3")
        };
        assert_eq!(s3.content_type, "application/vnd.apache.parquet");

        let pages = |pairs: &[(&str, &str)]| {
            let mut all = vec![("format", "parquet")];
            all.extend_from_slice(pairs);
            config(&all).map(|c| c.objects.parquet.compression)
        };
        assert_eq!(
            pages(&[("compression", "snappy")]),
            Ok(PageCompression::Snappy)
        );
        assert_eq!(pages(&[("compression", "none")]), Ok(PageCompression::None));
        assert_eq!(
            pages(&[("compression", "gzip"), ("compression_level", "9")]),
            Ok(PageCompression::Gzip(9))
        );
        let error = config(&[("compression", "snappy")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("snappy only with format parquet"), "{error}");
        let error = config(&[("format", "parquet"), ("log_key", "log")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("'log_key'") && error.contains("parquet"),
            "{error}"
        );
        let error = config(&[("format", "parquet"), ("parquet.row_group_size", "10K")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("'parquet.row_group_size'") && error.contains("1M to 1G"),
            "{error}"
        );
        let error = config(&[("format", "csv")]).unwrap_err().to_string();
        assert!(error.contains("json_lines or parquet"), "{error}");
    }

    #[test]
    fn zstd_has_its_own_levels_and_key_extension() {
        let objects = config(&[("compression", "zstd")]).unwrap().objects;
        assert_eq!(
            objects.compression,
            Compression {
                codec: Codec::Zstd,
                level: 1
            }
        );
        let template = keys::DEFAULT_KEY_FORMAT.replace(".gz", ".zst");
        assert_eq!(
            objects.key_format,
            KeyTemplate::parse(&template, ".").unwrap()
        );
        let level = |text| {
            config(&[("compression", "zstd"), ("compression_level", text)])
                .map(|config| config.objects.compression.level)
                .map_err(|error| error.to_string())
        };
        assert_eq!(level("19"), Ok(19));
        let error = level("20").unwrap_err();
        assert!(
            error.contains("'20' for key 'compression_level'") && error.contains("from 1 to 19"),
            "{error}"
        );
    }

    #[test]
    fn compression_none_drops_gz_from_the_default_key() {
        let objects = config(&[("compression", "none")]).unwrap().objects;
        assert_eq!(objects.compression, Compression::NONE);
        // A level, meaningless without compression, is not an error.
        let leveled = config(&[("compression", "none"), ("compression_level", "9")]).unwrap();
        assert_eq!(leveled.objects.compression, Compression::NONE);
        let explicit = config(&[("compression", "none"), ("s3_key_format", "a/$INDEX.gz")])
            .unwrap()
            .objects;
        assert_ne!(objects.key_format, explicit.key_format);
        assert_eq!(
            objects.key_format,
            KeyTemplate::parse(keys::DEFAULT_KEY_FORMAT.trim_end_matches(".gz"), ".").unwrap()
        );
    }

    #[test]
    fn every_key_has_documentation() {
        for key in keys::ALL {
            assert!(!key.doc.is_empty(), "{} has no doc", key.name);
            assert_eq!(keys::find(&key.name.to_uppercase()).unwrap().name, key.name);
        }
    }
}
