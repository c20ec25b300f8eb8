//! The configuration of one `[OUTPUT] Name rustsink` instance.
//!
//! [`Config::from_lookup`] reads every key of [`keys::ALL`] once, at init, and either
//! yields a validated [`Config`] or a [`ConfigError`] that names the key and the value.

pub mod keys;
pub mod parse;

use std::path::PathBuf;

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key has a value of the wrong form.
    #[error("invalid value '{value}' for key '{key}': expected {expected}")]
    Invalid {
        /// The key, as documented.
        key: &'static str,
        /// The value as given.
        value: String,
        /// What the key accepts.
        expected: String,
    },
    /// A key that the rest of the configuration requires is not set.
    #[error("missing key '{key}': {reason}")]
    Missing {
        /// The key, as documented.
        key: &'static str,
        /// Why it is needed.
        reason: &'static str,
    },
}

/// Where an instance delivers its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkConfig {
    /// Uploads to S3 (`sink s3`).
    S3,
    /// JSON lines under a local directory (`sink dir`).
    Dir {
        /// The directory (`path`).
        path: PathBuf,
    },
    /// A WebAssembly sink component (`sink <path>.wasm`).
    Component {
        /// The component file.
        path: PathBuf,
    },
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
}

/// A validated instance configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where records go.
    pub sink: SinkConfig,
    /// How records are written as JSON.
    pub json: JsonLines,
}

impl Config {
    /// Reads and validates every key through `lookup`, which answers a key name with the
    /// configured value (Fluent Bit's `output_get_property`).
    ///
    /// # Errors
    ///
    /// The first key whose value is malformed, or a required key that is missing.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let value = |name: &'static str| -> Option<String> {
            lookup(name).or_else(|| keys::find(name)?.default.map(str::to_owned))
        };
        let sink = parse_sink(&value(keys::SINK).unwrap_or_default(), value(keys::PATH))?;
        let date_key = value(keys::JSON_DATE_KEY)
            .filter(|key| parse::boolean(key) != Ok(false) && !key.is_empty());
        let date_format = parse_date_format(&value(keys::JSON_DATE_FORMAT).unwrap_or_default())?;
        Ok(Config {
            sink,
            json: JsonLines {
                date_key,
                date_format,
            },
        })
    }
}

fn invalid(key: &'static str, value: &str, expected: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_owned(),
        expected: expected.into(),
    }
}

fn parse_sink(sink: &str, path: Option<String>) -> Result<SinkConfig, ConfigError> {
    match sink.trim() {
        s if s.eq_ignore_ascii_case("s3") => Ok(SinkConfig::S3),
        s if s.eq_ignore_ascii_case("dir") => match path.filter(|p| !p.trim().is_empty()) {
            Some(path) => Ok(SinkConfig::Dir {
                path: PathBuf::from(path.trim()),
            }),
            None => Err(ConfigError::Missing {
                key: keys::PATH,
                reason: "'sink dir' writes under the directory that 'path' names",
            }),
        },
        s if s.to_ascii_lowercase().ends_with(".wasm") => Ok(SinkConfig::Component {
            path: PathBuf::from(s),
        }),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|key| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_apply_when_keys_are_absent() {
        let config = config(&[]).unwrap();
        assert_eq!(config.sink, SinkConfig::S3);
        assert_eq!(config.json.date_key.as_deref(), Some("date"));
        assert_eq!(config.json.date_format, DateFormat::Iso8601);
    }

    #[test]
    fn sink_dir_needs_path() {
        assert_eq!(
            config(&[("sink", "dir")]),
            Err(ConfigError::Missing {
                key: "path",
                reason: "'sink dir' writes under the directory that 'path' names"
            })
        );
        assert_eq!(
            config(&[("sink", "DIR"), ("path", "/var/log/out")])
                .unwrap()
                .sink,
            SinkConfig::Dir {
                path: "/var/log/out".into()
            }
        );
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
            config(&[("sink", "/plugins/http.wasm")]).unwrap().sink,
            SinkConfig::Component {
                path: "/plugins/http.wasm".into()
            }
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
        let error = config(&[("json_date_format", "rfc2822")]).unwrap_err();
        assert!(error.to_string().contains("'json_date_format'"), "{error}");
        assert!(error.to_string().contains("'rfc2822'"), "{error}");
    }

    #[test]
    fn every_key_has_documentation() {
        for key in keys::ALL {
            assert!(!key.doc.is_empty(), "{} has no doc", key.name);
            assert_eq!(keys::find(&key.name.to_uppercase()).unwrap().name, key.name);
        }
    }
}
