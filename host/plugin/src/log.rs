//! Logging for one plugin instance, in Fluent Bit's words.
//!
//! Every line names its instance the way Fluent Bit's own outputs do
//! (`[output:rustsink:rustsink.0] ...`). On Fluent Bit 2.0 and later a line goes through the
//! host's `log_print`, so it honours `Log_File` and the instance's `log_level`; on 1.9,
//! which has no log API, it is written to stderr in Fluent Bit's format, at the level that
//! `FLB_LOG_LEVEL` sets (default `info`).

use std::fmt;
use std::io::Write;
use std::str::FromStr;
use std::sync::Arc;

/// The plugin name as it appears in `[OUTPUT] Name` and in log lines.
pub const PLUGIN_NAME: &str = "rustsink";

/// The environment variable that sets the log level where the host has no log API.
pub const LOG_LEVEL_ENV: &str = "FLB_LOG_LEVEL";

/// A log severity, numbered as Fluent Bit numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed; data may be held back.
    Error = 1,
    /// Something is wrong but rustsink carries on.
    Warn = 2,
    /// Lifecycle events.
    Info = 3,
    /// Detail for troubleshooting.
    Debug = 4,
    /// Per-chunk detail.
    Trace = 5,
}

impl Level {
    /// Every level, most severe first.
    pub const ALL: [Level; 5] = [
        Level::Error,
        Level::Warn,
        Level::Info,
        Level::Debug,
        Level::Trace,
    ];

    /// The label Fluent Bit prints between brackets, padded to five characters.
    pub fn label(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => " warn",
            Level::Info => " info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }
}

/// The most verbose level an instance logs, or none at all (`off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threshold(pub Option<Level>);

impl Threshold {
    /// Fluent Bit's default, `info`.
    pub const DEFAULT: Threshold = Threshold(Some(Level::Info));

    /// Whether a line at `level` is written.
    pub fn admits(self, level: Level) -> bool {
        self.0.is_some_and(|max| level <= max)
    }

    /// The threshold from `FLB_LOG_LEVEL`, or `info` when it is unset or unknown.
    pub fn from_env() -> Threshold {
        std::env::var(LOG_LEVEL_ENV)
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(Threshold::DEFAULT)
    }
}

impl FromStr for Threshold {
    type Err = ();

    fn from_str(value: &str) -> Result<Self, ()> {
        let level = match value.trim().to_ascii_lowercase().as_str() {
            "off" => None,
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            "trace" => Some(Level::Trace),
            _ => return Err(()),
        };
        Ok(Threshold(level))
    }
}

/// Writes one finished line (already prefixed with the instance) at a level.
pub type LineWriter = dyn Fn(Level, &str) + Send + Sync;

/// A cheap, cloneable logger for one instance.
#[derive(Clone)]
pub struct Logger {
    inner: Arc<Inner>,
}

struct Inner {
    instance: String,
    threshold: Threshold,
    /// None: stderr in Fluent Bit's format.
    writer: Option<Box<LineWriter>>,
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logger")
            .field("instance", &self.inner.instance)
            .field("threshold", &self.inner.threshold)
            .field("host_writer", &self.inner.writer.is_some())
            .finish()
    }
}

impl Logger {
    /// A logger that writes Fluent Bit-style lines to stderr.
    pub fn stderr(instance: impl Into<String>, threshold: Threshold) -> Logger {
        Logger {
            inner: Arc::new(Inner {
                instance: instance.into(),
                threshold,
                writer: None,
            }),
        }
    }

    /// A logger that hands each line to `writer` (the host's `log_print`).
    pub fn with_writer(
        instance: impl Into<String>,
        threshold: Threshold,
        writer: Box<LineWriter>,
    ) -> Logger {
        Logger {
            inner: Arc::new(Inner {
                instance: instance.into(),
                threshold,
                writer: Some(writer),
            }),
        }
    }

    /// The instance name in every line: its alias, or `rustsink.N`.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Whether a line at `level` would be written.
    pub fn enabled(&self, level: Level) -> bool {
        self.inner.threshold.admits(level)
    }

    /// Writes one line at `level`.
    pub fn log(&self, level: Level, message: fmt::Arguments<'_>) {
        if !self.enabled(level) {
            return;
        }
        let line = format!("[output:{PLUGIN_NAME}:{}] {message}", self.inner.instance);
        match &self.inner.writer {
            Some(writer) => writer(level, &line),
            None => write_stderr_line(level, &line),
        }
    }

    /// Writes an error line.
    pub fn error(&self, message: impl fmt::Display) {
        self.log(Level::Error, format_args!("{message}"));
    }

    /// Writes a warning line.
    pub fn warn(&self, message: impl fmt::Display) {
        self.log(Level::Warn, format_args!("{message}"));
    }

    /// Writes an info line.
    pub fn info(&self, message: impl fmt::Display) {
        self.log(Level::Info, format_args!("{message}"));
    }

    /// Writes a debug line.
    pub fn debug(&self, message: impl fmt::Display) {
        self.log(Level::Debug, format_args!("{message}"));
    }
}

/// Writes `[YYYY/MM/DD HH:MM:SS] [level] line` to stderr, as Fluent Bit does.
pub fn write_stderr_line(level: Level, line: &str) {
    let format = time::macros::format_description!("[year]/[month]/[day] [hour]:[minute]:[second]");
    let now = time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default();
    // One write call per line, so lines from several threads do not interleave.
    let text = format!("[{now}] [{}] {line}\n", level.label());
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn threshold_parses_fluent_bit_level_names() {
        for (text, expected) in [
            ("off", None),
            ("error", Some(Level::Error)),
            ("WARN", Some(Level::Warn)),
            ("warning", Some(Level::Warn)),
            (" info ", Some(Level::Info)),
            ("debug", Some(Level::Debug)),
            ("trace", Some(Level::Trace)),
        ] {
            assert_eq!(text.parse::<Threshold>(), Ok(Threshold(expected)), "{text}");
        }
        assert!("loud".parse::<Threshold>().is_err());
    }

    #[test]
    fn lines_name_the_instance_and_respect_the_threshold() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let logger = Logger::with_writer(
            "app-logs",
            Threshold(Some(Level::Warn)),
            Box::new(move |level, line| sink.lock().unwrap().push((level, line.to_owned()))),
        );
        logger.info("not shown");
        logger.warn(format_args!("disk {}% full", 93));
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(
                Level::Warn,
                "[output:rustsink:app-logs] disk 93% full".to_owned()
            )]
        );
    }
}
