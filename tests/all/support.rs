//! Shared helpers: where the built artifacts are, chunks, output files.

use std::path::{Path, PathBuf};
use std::process::Command;

use rmpv::Value;
use rustsink::cli::harness::{FluentBit, HostVersion, OutputSection};
use rustsink::event::EventTime;
use rustsink::event::chunk::{ChunkWriter, EventFormat, TimeForm};

pub const FLB_ERROR: i32 = 0;
pub const FLB_OK: i32 = 1;
pub const FLB_RETRY: i32 = 2;

/// The `rustsink` command cargo built for these tests.
pub fn rustsink_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rustsink"))
}

/// The `librustsink.so` built with this test binary (rustc writes it to `deps/`).
pub fn plugin_path() -> PathBuf {
    let bin = rustsink_bin();
    let deps = bin.parent().unwrap().join("deps").join("librustsink.so");
    assert!(deps.exists(), "{} is missing", deps.display());
    deps
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Loads the plugin as the given Fluent Bit version would.
pub fn load(version: HostVersion) -> FluentBit {
    FluentBit::load(&plugin_path(), version).expect("loading librustsink.so")
}

/// A `sink dir` section writing under `dir`, plus extra keys.
pub fn dir_output(dir: &Path, extra: &[(&str, &str)]) -> OutputSection {
    let mut pairs = vec![
        ("Name".to_owned(), "rustsink".to_owned()),
        ("Match".to_owned(), "*".to_owned()),
        ("sink".to_owned(), "dir".to_owned()),
        ("path".to_owned(), dir.display().to_string()),
    ];
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    OutputSection::new(pairs)
}

/// A record `{"log": message, "n": n}`.
pub fn record(message: &str, n: u64) -> Value {
    Value::Map(vec![
        (Value::from("log"), Value::from(message)),
        (Value::from("n"), Value::from(n)),
    ])
}

/// A chunk of `count` records numbered from `first`, in the format of `version`.
pub fn numbered_chunk(format: EventFormat, first: u64, count: u64) -> Vec<u8> {
    let mut chunk = ChunkWriter::new();
    for n in first..first + count {
        chunk.push(
            format,
            TimeForm::EventTime,
            EventTime::new(1_714_557_600 + n as i64, 0),
            None,
            record("line", n),
        );
    }
    chunk.finish()
}

/// The JSON lines of a file, parsed.
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

/// The `n` field of every line of a file, in order.
pub fn numbers(path: &Path) -> Vec<u64> {
    json_lines(path)
        .iter()
        .map(|line| line["n"].as_u64().expect("a number"))
        .collect()
}

/// Whether a command exists on this machine.
pub fn have(command: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Runs a test body in a process of its own: the harness plays one Fluent Bit version per
/// process, and the other tests of this binary play 5.x. `name` is the test's path
/// (`ffi::some_test`); the child runs only that test, with the body.
pub fn in_own_process(name: &str, body: impl FnOnce()) {
    const CHILD: &str = "RUSTSINK_TEST_OWN_PROCESS";
    if std::env::var_os(CHILD).is_some() {
        body();
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, "1")
        .output()
        .expect("re-running the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} in its own process failed:\n{stdout}\n{stderr}"
    );
}
