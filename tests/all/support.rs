//! Shared helpers: where the built artifacts are, chunks, output files.

use std::path::{Path, PathBuf};
use std::process::Command;

use rmpv::Value;
use rustsink::event::EventTime;
use rustsink::event::chunk::{ChunkWriter, EventFormat, TimeForm};
use rustsink_cli::harness::{FluentBit, HostVersion, OutputSection};

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
        .ancestors()
        .nth(2)
        .unwrap()
        .to_owned()
}

/// Loads the plugin as the given Fluent Bit version would.
pub fn load(version: HostVersion) -> FluentBit {
    FluentBit::load(&plugin_path(), version).expect("loading librustsink.so")
}

/// A `sink dir` section writing objects under `dir`, with its `store_dir` in
/// `dir/.store`, plus extra keys (which may override both).
pub fn dir_output(dir: &Path, extra: &[(&str, &str)]) -> OutputSection {
    let mut pairs = vec![
        ("Name".to_owned(), "rustsink".to_owned()),
        ("Match".to_owned(), "*".to_owned()),
        ("sink".to_owned(), "dir".to_owned()),
        ("path".to_owned(), dir.display().to_string()),
        (
            "store_dir".to_owned(),
            dir.join(".store").display().to_string(),
        ),
    ];
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    OutputSection::new(pairs)
}

/// Puts a file where the default key's first folder goes under `dir`, so that every
/// delivery there fails until the file is removed; returns its path.
pub fn block_deliveries(dir: &Path) -> PathBuf {
    let blocker = dir.join("rustsink");
    std::fs::write(&blocker, "in the way").unwrap();
    blocker
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

/// Every object file under `dir` (skipping hidden folders such as `.store`), sorted by
/// the `$INDEX` that ends the default key's file name.
pub fn objects(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() && !name.starts_with('.') {
                walk(&path, found);
            } else if path.is_file() && !name.starts_with('.') {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, &mut found);
    found.sort_by_key(|path| (object_index(path), path.clone()));
    found
}

/// The `$INDEX` of an object named by the default key (`<host>-<agent>-<index>.jsonl.gz`).
pub fn object_index(path: &Path) -> u64 {
    let name = path.file_name().unwrap().to_string_lossy();
    let stem = name.split('.').next().unwrap();
    stem.rsplit('-').next().unwrap().parse().unwrap_or(u64::MAX)
}

/// The content of an object: gunzipped if it is gzip, through `zstd -d` if it is zstd.
pub fn object_text(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let out = Command::new("zstd")
            .args(["-d", "-c", "-q"])
            .arg(path)
            .output()
            .expect("zstd is missing: run `bash .ci/setup`");
        let error = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "zstd -d {}: {error}", path.display());
        return String::from_utf8(out.stdout).unwrap();
    }
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return String::from_utf8(bytes).unwrap();
    }
    gunzip(&bytes, &path.display())
}

/// The text of a gzip object, read as one member: a reader that stops after the first
/// member reads it whole, or the test fails naming `what`.
pub fn gunzip(bytes: &[u8], what: &dyn std::fmt::Display) -> String {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("gunzip {what}: {e}"));
    text
}

/// The JSON lines of every object of `tag` under `dir` (default key template), in object
/// order, parsed; the rows of Parquet objects as JSON objects.
pub fn json_lines(dir: &Path, tag: &str) -> Vec<serde_json::Value> {
    let objects = objects(&dir.join("rustsink").join(tag));
    let (parquet, lines): (Vec<_>, Vec<_>) = objects
        .iter()
        .partition(|path| path.to_string_lossy().ends_with(".parquet"));
    assert!(
        parquet.is_empty() || lines.is_empty(),
        "Parquet objects and others under {}",
        dir.display()
    );
    if !parquet.is_empty() {
        return parquet_rows(&objects);
    }
    lines
        .iter()
        .flat_map(|path| {
            object_text(path)
                .lines()
                .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The rows of Parquet files, in order, as JSON objects, read by pyarrow (from PyPI,
/// `bash .ci/setup`) in one process; timestamps as their ISO 8601 text.
pub fn parquet_rows(paths: &[PathBuf]) -> Vec<serde_json::Value> {
    let script = "import json, sys, pyarrow.parquet as pq\n\
                  for path in sys.argv[1:]:\n    \
                  for row in pq.read_table(path).to_pylist():\n        \
                  print(json.dumps(row, default=lambda t: t.isoformat()))";
    python(script, paths)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

/// Runs `script` in Python with `args`, and returns what it printed, trimmed.
pub fn python<S: AsRef<std::ffi::OsStr>>(script: &str, args: &[S]) -> String {
    let out = Command::new("python3")
        .args(["-c", script])
        .args(args)
        .output()
        .expect("running python3");
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python3: {error}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Runs `sql` in DuckDB (from PyPI, `bash .ci/setup`) and returns its one row, as text.
pub fn duckdb(sql: &str) -> String {
    let script = "import duckdb, sys; print(*duckdb.sql(sys.argv[1]).fetchone(), sep='|')";
    python(script, &[sql])
}

/// The `n` field of every line of `tag`'s objects under `dir`, in order.
pub fn numbers(dir: &Path, tag: &str) -> Vec<u64> {
    json_lines(dir, tag)
        .iter()
        .map(|line| line["n"].as_u64().expect("a number"))
        .collect()
}

/// Runs `mount` with `args`, and fails the test if it fails.
pub fn mount(args: &[&str]) {
    let status = Command::new("mount")
        .args(args)
        .status()
        .expect("running mount");
    assert!(status.success(), "mount {args:?} failed");
}

/// Whether a command exists on this machine.
pub fn have(command: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// A command that a PyPI package put in Python's scripts folder (`bash .ci/setup` installs
/// them), found there even when that folder is not on PATH.
pub fn python_script(name: &str) -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .expect("running python3");
    let folder = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let script = Path::new(&folder).join(name);
    if script.exists() {
        script
    } else {
        PathBuf::from(name)
    }
}

/// Runs a test body in a process of its own: the harness plays one Fluent Bit version per
/// process, and the other tests of this binary play 5.x. `name` is the test's path
/// (`ffi::some_test`); the child runs only that test, with the body.
pub fn in_own_process(name: &str, body: impl FnOnce()) {
    run_in_child(name, &[], body);
}

/// Like [`in_own_process`], in a mount namespace of its own where the test is root
/// (`unshare --mount --map-root-user`), so that it may mount a tmpfs; its mounts vanish
/// with the process.
pub fn in_mount_namespace(name: &str, body: impl FnOnce()) {
    run_in_child(name, &["unshare", "--mount", "--map-root-user"], body);
}

fn run_in_child(name: &str, wrapper: &[&str], body: impl FnOnce()) {
    const CHILD: &str = "RUSTSINK_TEST_OWN_PROCESS";
    if std::env::var_os(CHILD).is_some() {
        body();
        return;
    }
    let test_binary = std::env::current_exe().unwrap();
    let mut command = match wrapper {
        [] => Command::new(&test_binary),
        [program, args @ ..] => {
            let mut command = Command::new(program);
            command.args(args).arg(&test_binary);
            command
        }
    };
    let out = command
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, "1")
        .output()
        .unwrap_or_else(|e| panic!("re-running the test binary ({wrapper:?}): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} in its own process failed:\n{stdout}\n{stderr}"
    );
}

/// What `rustsink describe` prints on standard error for `component`; it must fail.
pub fn describe_refused(component: &Path) -> String {
    let out = Command::new(rustsink_bin())
        .arg("describe")
        .arg(component)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    stderr
}

/// What `rustsink describe` prints for `component`; it must succeed.
pub fn described(component: &Path) -> String {
    let out = Command::new(rustsink_bin())
        .arg("describe")
        .arg(component)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    printed
}

/// Writes `text` to `config` and runs `rustsink check` on it.
pub fn rustsink_check(config: &Path, text: &str) -> std::process::Output {
    std::fs::write(config, text).unwrap();
    Command::new(rustsink_bin())
        .args(["check", "--config"])
        .arg(config)
        .output()
        .unwrap()
}

/// The threads of this process that the plugin started, or a runtime inside it.
pub fn plugin_threads() -> std::collections::BTreeSet<String> {
    threads()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name.starts_with("rustsink:") || name.starts_with("tokio"))
        .collect()
}

/// This process's threads: each one's name (cut at 15 bytes, as Linux keeps it) and
/// folder under /proc. Other tests' threads come and go meanwhile; those gone are left out.
pub fn threads() -> Vec<(String, PathBuf)> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| {
            let task = task.ok()?.path();
            let name = std::fs::read_to_string(task.join("comm")).ok()?;
            Some((name.trim().to_owned(), task))
        })
        .collect()
}

/// The components the tests run, built for wasm32-wasip2 (`.ci/setup` adds the target).
#[derive(Debug)]
pub struct Components {
    /// `plugins/grep`.
    pub grep: PathBuf,
    /// `plugins/redact`.
    pub redact: PathBuf,
    /// `plugins/parse-json`.
    pub parse_json: PathBuf,
    /// `plugins/template`: the crate authors copy.
    pub template: PathBuf,
    /// `plugins/http`: the HTTP sink.
    pub http: PathBuf,
    /// `tests/components/hostile`: misbehaves as its `behaviour` option says.
    pub hostile: PathBuf,
    /// `tests/components/hostile-sink`: a sink that misbehaves as its `behaviour` says.
    pub hostile_sink: PathBuf,
    /// `tests/components/future`: built for contract version 0.3.0.
    pub future: PathBuf,
    /// `tests/components/stamp`: uses the tag, and sets time and metadata.
    pub stamp: PathBuf,
    /// `tests/components/impostor`: calls itself 0.2.0 with another contract.
    pub impostor: PathBuf,
    /// `tests/components/stuck`: its `describe` never returns.
    pub stuck: PathBuf,
    /// `tests/fixtures/contract-0.1/hostile.wasm`: the hostile filter as the SDK of
    /// contract 0.1 built it.
    pub hostile_0_1: PathBuf,
    /// `tests/fixtures/contract-0.1/hostile-sink.wasm`: the hostile sink, the same way.
    pub hostile_sink_0_1: PathBuf,
}

/// Builds the components once per test process (cargo makes later builds no-ops).
pub fn components() -> &'static Components {
    static BUILT: std::sync::OnceLock<Components> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let target = repo_root().join("target/components");
        for workspace in ["plugins", "tests/components"] {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let out = Command::new(cargo)
                .args(["build", "--quiet", "--locked", "--release"])
                .args(["--target", "wasm32-wasip2", "--manifest-path"])
                .arg(repo_root().join(workspace).join("Cargo.toml"))
                .arg("--target-dir")
                .arg(&target)
                .env_remove("RUSTFLAGS")
                .output()
                .expect("running cargo");
            assert!(
                out.status.success(),
                "building the components of {workspace}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let wasm = |name: &str| {
            target
                .join("wasm32-wasip2/release")
                .join(format!("{name}.wasm"))
        };
        Components {
            grep: wasm("grep"),
            redact: wasm("redact"),
            parse_json: wasm("parse_json"),
            template: wasm("template"),
            http: wasm("http"),
            hostile: wasm("hostile"),
            hostile_sink: wasm("hostile_sink"),
            future: wasm("future"),
            stamp: wasm("stamp"),
            impostor: wasm("impostor"),
            stuck: wasm("stuck"),
            hostile_0_1: repo_root().join("tests/fixtures/contract-0.1/hostile.wasm"),
            hostile_sink_0_1: repo_root().join("tests/fixtures/contract-0.1/hostile-sink.wasm"),
        }
    })
}

/// `plugins/python/grep` built with componentize-py (from PyPI, `bash .ci/setup`), once per
/// test process, into `target/components/python/`, with the pure-Python msgpack it
/// imports (installed there from PyPI on first use).
pub fn python_grep() -> &'static Path {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let out_dir = repo_root().join("target/components/python");
        let site = out_dir.join("site");
        let run = |command: &mut Command, what: &str| {
            let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(
                out.status.success(),
                "{what}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        if !site.join("msgpack").exists() {
            run(
                Command::new("python3")
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                    ])
                    .args(["--no-binary", "msgpack", "--target"])
                    .arg(&site)
                    .arg("msgpack==1.1.2")
                    .env("MSGPACK_PUREPYTHON", "1"),
                "installing the pure-Python msgpack",
            );
        }
        let wasm = out_dir.join("grep.wasm");
        let source = repo_root().join("plugins/python/grep");
        run(
            Command::new(python_script("componentize-py"))
                .arg("-d")
                .arg(repo_root().join("wit"))
                .args(["-w", "filter", "componentize", "app", "-o"])
                .arg(&wasm)
                .arg("-p")
                .arg(&source)
                .arg("-p")
                .arg(&site)
                .current_dir(&source),
            "componentize-py (run `bash .ci/setup`)",
        );
        wasm
    })
}

/// `plugins/javascript/grep`, built with componentize-js (its tools come from npm, `bash
/// .ci/setup`), once per test process.
pub fn javascript_grep() -> &'static Path {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let wasm = repo_root().join("target/components/javascript/grep.wasm");
        std::fs::create_dir_all(wasm.parent().unwrap()).unwrap();
        let out = Command::new("node")
            .arg("build.mjs")
            .arg(&wasm)
            .arg(repo_root().join("wit"))
            .current_dir(repo_root().join("plugins/javascript/grep"))
            .output()
            .expect("running node");
        assert!(
            out.status.success(),
            "building plugins/javascript/grep (run `bash .ci/setup`): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        wasm
    })
}
