//! Every `[OUTPUT]` key rustsink reads, defined once: its name, default and documentation.
//!
//! README.md's configuration reference is generated from this table
//! (`rustsink keys --markdown`), and a test fails when the two differ.

/// `sink`: where records go.
pub const SINK: &str = "sink";
/// `path`: the directory of `sink dir`.
pub const PATH: &str = "path";
/// `json_date_key`: the key the event time is written under.
pub const JSON_DATE_KEY: &str = "json_date_key";
/// `json_date_format`: how the event time is written.
pub const JSON_DATE_FORMAT: &str = "json_date_format";

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The name, as users write it (Fluent Bit matches keys case-insensitively).
    pub name: &'static str,
    /// The default, as users would write it; None when the key is required or optional
    /// without a default.
    pub default: Option<&'static str>,
    /// What the key does and which values it takes.
    pub doc: &'static str,
}

/// All keys, in the order the reference lists them.
pub const ALL: &[Key] = &[
    Key {
        name: SINK,
        default: Some("s3"),
        doc: "Where records go: `dir` writes JSON lines under `path`; `s3` uploads to a bucket \
              (not available in this version: init fails and says so); a path ending in \
              `.wasm` names a sink component (not available in this version either).",
    },
    Key {
        name: PATH,
        default: None,
        doc: "With `sink dir`: the directory that receives one file per tag, `<tag>.jsonl` \
              (characters other than letters, digits, `.`, `-` and `_` become `_`). \
              Created if missing. Required with `sink dir`.",
    },
    Key {
        name: JSON_DATE_KEY,
        default: Some("date"),
        doc: "The key under which each line carries the event time, first in the object, as \
              Fluent Bit's `out_s3` writes it. `off` or `false` leaves the time out.",
    },
    Key {
        name: JSON_DATE_FORMAT,
        default: Some("iso8601"),
        doc: "How the event time is written: `iso8601` (`2024-05-01T10:00:00.123456Z`), \
              `java_sql_timestamp` (`2024-05-01 10:00:00.123456`), `double` (seconds with \
              fraction), `epoch` (whole seconds) or `epoch_ms` (milliseconds).",
    },
];

/// Keys that Fluent Bit core consumes for every output: they never reach the plugin.
const FLUENT_BIT_KEYS: &[&str] = &[
    "name",
    "match",
    "match_regex",
    "alias",
    "retry_limit",
    "workers",
    "log_level",
    "log_suppress_interval",
    "host",
    "port",
];
const FLUENT_BIT_PREFIXES: &[&str] = &["tls", "storage.", "net."];

/// Whether Fluent Bit itself takes `key` (`Match`, `Workers`, `tls.verify`, ...), so that
/// `output_get_property` never returns it.
pub fn consumed_by_fluent_bit(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    FLUENT_BIT_KEYS.contains(&key.as_str())
        || FLUENT_BIT_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Finds a key by name, ignoring case as Fluent Bit does.
pub fn find(name: &str) -> Option<&'static Key> {
    ALL.iter().find(|key| key.name.eq_ignore_ascii_case(name))
}

/// The configuration reference as a Markdown table.
pub fn reference_markdown() -> String {
    let mut table = String::from("| key | default | description |\n|---|---|---|\n");
    for key in ALL {
        let default = key
            .default
            .map_or("(none)".to_owned(), |d| format!("`{d}`"));
        table.push_str(&format!("| `{}` | {default} | {} |\n", key.name, key.doc));
    }
    table
}
