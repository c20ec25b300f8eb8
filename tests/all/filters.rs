//! Filter components through the harness, as Fluent Bit drives the plugin: real
//! components built for wasm32-wasip2, including ones that misbehave on purpose.

use std::path::Path;
use std::process::Command;

use rustsink::event::EventTime;
use rustsink::event::chunk::{ChunkWriter, EventFormat, TimeForm};
use rustsink_cli::harness::{HostVersion, take_log_lines};

use crate::support::*;

/// A chunk of records `{"log": text, "n": n}`.
fn chunk_of(lines: &[(&str, u64)]) -> Vec<u8> {
    let mut chunk = ChunkWriter::new();
    for (text, n) in lines {
        chunk.push(
            EventFormat::V2,
            TimeForm::EventTime,
            EventTime::new(1_714_557_600, 0),
            None,
            record(text, *n),
        );
    }
    chunk.finish()
}

/// Log lines that contain `needle`.
fn logged(needle: &str) -> Vec<String> {
    take_log_lines()
        .into_iter()
        .map(|line| line.message)
        .filter(|message| message.contains(needle))
        .collect()
}

/// The `n` of every line written under `dir` for tag `t`.
fn written(dir: &std::path::Path) -> Vec<u64> {
    numbers(dir, "t")
}

/// One output with `keys`, one chunk of `lines` flushed (and answered OK), and the
/// directory the objects went to.
fn filtered(keys: &[(&str, &str)], lines: &[(&str, u64)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut fluent_bit = load(HostVersion::V5);
    let output = fluent_bit
        .add_output(&dir_output(dir.path(), keys))
        .unwrap();
    assert_eq!(
        fluent_bit.flusher(output).flush(&chunk_of(lines), "t"),
        FLB_OK
    );
    fluent_bit.shutdown().unwrap();
    dir
}

#[test]
fn grep_keeps_the_matching_records_and_only_those() {
    let grep = components().grep.display().to_string();
    let keys = [
        ("filter.1", grep.as_str()),
        ("filter.1.key", "log"),
        ("filter.1.regex", "^ERROR"),
    ];
    let lines = [
        ("ERROR disk full", 0),
        ("INFO all good", 1),
        ("ERROR again", 2),
        ("error lower case", 3),
    ];
    assert_eq!(written(filtered(&keys, &lines).path()), [0, 2]);
}

#[test]
fn filters_run_where_address_space_is_limited() {
    in_own_process(
        "filters::filters_run_where_address_space_is_limited",
        || {
            // Built before the limit, which cargo would not live with.
            let grep = components().grep.display().to_string();
            // Too little for the pool's reservation, or for one 4 GiB memory reservation.
            let limit = libc::rlimit {
                rlim_cur: 3 << 30,
                rlim_max: 3 << 30,
            };
            // SAFETY: setrlimit reads the struct; this process runs only this test.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0);
            let keys = [
                ("filter.1", grep.as_str()),
                ("filter.1.key", "log"),
                ("filter.1.regex", "^ERROR"),
            ];
            let lines = [("ERROR disk full", 0), ("INFO all good", 1)];
            assert_eq!(written(filtered(&keys, &lines).path()), [0]);
        },
    );
}

#[test]
fn grep_drop_mode_passes_the_others() {
    let grep = components().grep.display().to_string();
    let keys = [
        ("filter.1", grep.as_str()),
        ("filter.1.key", "log"),
        ("filter.1.regex", "health"),
        ("filter.1.mode", "drop"),
    ];
    let lines = [("GET /health", 0), ("GET /orders", 1), ("GET /healthz", 2)];
    assert_eq!(written(filtered(&keys, &lines).path()), [1]);
}

#[test]
fn redact_masks_named_fields_emails_and_cards_then_grep_sees_the_result() {
    let components = components();
    let (redact, grep) = (
        components.redact.display().to_string(),
        components.grep.display().to_string(),
    );
    let keys = [
        ("filter.1", redact.as_str()),
        ("filter.1.fields", "n"),
        ("filter.1.mask", "[x]"),
        ("filter.2", grep.as_str()),
        ("filter.2.key", "log"),
        ("filter.2.regex", "\\[x\\]"),
    ];
    let lines = [
        ("login jane@example.com ok", 0),
        ("paid 4111-1111-1111-1111 today", 1),
        ("order 4111111111111112 shipped", 2),
    ];
    let dir = filtered(&keys, &lines);
    let written: Vec<(String, String)> = json_lines(dir.path(), "t")
        .iter()
        .map(|line| {
            (
                line["log"].as_str().unwrap().to_owned(),
                line["n"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        written,
        [
            ("login [x] ok".to_owned(), "\"[x]\"".to_owned()),
            ("paid [x] today".to_owned(), "\"[x]\"".to_owned()),
        ],
        "the order id fails the Luhn check, so grep (filter.2) drops it"
    );
}

#[test]
fn parse_json_turns_a_json_log_into_fields_and_keeps_what_it_cannot_parse() {
    let parse_json = components().parse_json.display().to_string();
    let lines = [
        (
            r#"{"level":"warn","msg":"slow","ms":1200,"ctx":{"id":"a1"}}"#,
            0,
        ),
        ("plain text", 1),
        ("[1, 2]", 2),
    ];
    let dir = filtered(&[("filter.1", parse_json.as_str())], &lines);
    let written: Vec<serde_json::Value> = json_lines(dir.path(), "t")
        .into_iter()
        .map(|mut line| {
            line.as_object_mut().unwrap().remove("date");
            line
        })
        .collect();
    assert_eq!(
        written,
        [
            serde_json::json!({"n": 0, "level": "warn", "msg": "slow", "ms": 1200, "ctx": {"id": "a1"}}),
            serde_json::json!({"log": "plain text", "n": 1}),
            serde_json::json!({"log": "[1, 2]", "n": 2}),
        ]
    );
}

#[test]
fn bad_options_fail_the_start_naming_component_option_and_value() {
    in_own_process(
        "filters::bad_options_fail_the_start_naming_component_option_and_value",
        bad_options_of_each_component,
    );
}

fn bad_options_of_each_component() {
    let dir = tempfile::tempdir().unwrap();
    let components = components();
    let grep = components.grep.display().to_string();
    let hostile = components.hostile.display().to_string();
    let redact = components.redact.display().to_string();
    let parse_json = components.parse_json.display().to_string();
    // The keys, and what the error line must say.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case<'_>; 5] = [
        (
            &[
                ("filter.1", &grep),
                ("filter.1.key", "log"),
                ("filter.1.regex", "("),
            ],
            &["filter.1", "grep", "option 'regex'", "'('"],
        ),
        (
            &[("filter.1", &grep), ("filter.1.regex", "x")],
            &["filter.1", "component 'grep' needs option 'key'"],
        ),
        (
            &[("filter.1", &hostile)],
            &["filter.1", "component 'hostile' needs option 'behaviour'"],
        ),
        (
            &[("filter.1", &redact), ("filter.1.patterns", "email,phone")],
            &["filter.1", "redact", "option 'patterns'", "'phone'"],
        ),
        (
            &[
                ("filter.1", &parse_json),
                ("filter.1.keep_original", "maybe"),
            ],
            &[
                "filter.1",
                "parse-json",
                "option 'keep_original'",
                "'maybe'",
            ],
        ),
    ];
    let mut fluent_bit = load(HostVersion::V5);
    for (keys, expected) in cases {
        let started = fluent_bit.add_output(&dir_output(dir.path(), keys));
        assert!(started.is_err(), "{keys:?}");
        let lines = logged("filter.1");
        let line = lines.last().unwrap_or_else(|| panic!("{keys:?}: no line"));
        for part in expected {
            assert!(line.contains(part), "{keys:?}: {line}");
        }
    }
    fluent_bit.shutdown().unwrap();
}

#[test]
fn a_core_module_or_another_file_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    // The smallest core module: the magic and version 1, no sections.
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "not a component\n").unwrap();
    for (file, expected) in [
        (
            &core,
            "is a core WebAssembly module, not a component: build a component for wasm32-wasip2",
        ),
        (&text, "is not WebAssembly"),
    ] {
        let stderr = describe_refused(file);
        assert!(stderr.contains(expected), "{stderr}");
    }
}

#[test]
fn a_component_for_another_contract_version_is_refused_with_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let future = components().future.display().to_string();
    let mut fluent_bit = load(HostVersion::V5);
    let started = fluent_bit.add_output(&dir_output(dir.path(), &[("filter.1", &future)]));
    assert!(started.is_err());
    let lines = logged("future.wasm");
    let line = lines.last().expect("an error line");
    assert!(line.contains("built for rustsink:plugin@0.3.0"), "{line}");
    assert!(
        line.contains("this rustsink loads rustsink:plugin@0.1.0 to 0.2.0"),
        "{line}"
    );
    assert!(
        line.contains("rebuild it with a rustsink-sdk for 0.2.0"),
        "{line}"
    );
    fluent_bit.shutdown().unwrap();
}

/// A hostile filter on `poison` records, with the given policy, over three chunks of ten
/// records where the second holds the poison.
fn run_hostile(behaviour: &str, on_error: &str) -> (Vec<u64>, Vec<i32>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let hostile = components().hostile.display().to_string();
    let mut fluent_bit = load(HostVersion::V5);
    let output = fluent_bit
        .add_output(&dir_output(
            dir.path(),
            &[
                ("filter.1", hostile.as_str()),
                ("filter.1.behaviour", behaviour),
                ("filter.1.on_error", on_error),
                ("filter.1.timeout", "200ms"),
                ("filter.1.memory_limit", "16M"),
            ],
        ))
        .unwrap();
    let mut answers = Vec::new();
    for first in [0u64, 10, 20] {
        let lines: Vec<(String, u64)> = (first..first + 10)
            .map(|n| {
                (
                    if n == 15 {
                        "poison".into()
                    } else {
                        format!("line {n}")
                    },
                    n,
                )
            })
            .collect();
        let lines: Vec<(&str, u64)> = lines.iter().map(|(t, n)| (t.as_str(), *n)).collect();
        answers.push(fluent_bit.flusher(output).flush(&chunk_of(&lines), "t"));
    }
    fluent_bit.shutdown().unwrap();
    (written(dir.path()), answers, dir)
}

#[test]
fn an_endless_loop_is_stopped_at_its_timeout_and_skipped() {
    let (written, answers, _dir) = run_hostile("loop", "skip");
    assert_eq!(answers, [FLB_OK, FLB_OK, FLB_OK]);
    assert_eq!(
        written,
        (0..30).collect::<Vec<_>>(),
        "skip passes the batch on unchanged"
    );
    let lines = logged("took longer than its timeout");
    assert!(
        lines.iter().any(|l| l.contains("on_error skip")),
        "{lines:?}"
    );
}

#[test]
fn a_memory_bomb_hits_its_cap_and_the_batch_is_dropped_and_counted() {
    let (written, answers, _dir) = run_hostile("memory", "drop");
    assert_eq!(answers, [FLB_OK, FLB_OK, FLB_OK]);
    let expected: Vec<u64> = (0..10).chain(20..30).collect();
    assert_eq!(written, expected, "the next chunk runs in a fresh instance");
    let lines = logged("memory limit");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("its 10 records are dropped")),
        "{lines:?}"
    );
}

#[test]
fn a_trap_mid_batch_hands_the_chunk_back_to_fluent_bit() {
    let (written, answers, _dir) = run_hostile("trap", "retry");
    assert_eq!(answers, [FLB_OK, FLB_RETRY, FLB_OK]);
    let expected: Vec<u64> = (0..10).chain(20..30).collect();
    assert_eq!(written, expected);
    let lines = logged("trapped");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Fluent Bit keeps the chunk")),
        "{lines:?}"
    );
}

#[test]
fn a_hundred_times_larger_output_passes() {
    let (written, answers, dir) = run_hostile("inflate", "retry");
    assert_eq!(answers, [FLB_OK, FLB_OK, FLB_OK]);
    assert_eq!(written, (0..30).collect::<Vec<_>>());
    let inflated: Vec<_> = json_lines(dir.path(), "t")
        .into_iter()
        .filter_map(|line| line["inflated"].as_str().map(str::len))
        .collect();
    assert_eq!(inflated, ["poison".len() * 100]);
}

#[test]
fn a_component_that_prints_a_lot_keeps_working_and_its_log_stays_bounded() {
    in_own_process(
        "filters::a_component_that_prints_a_lot_keeps_working_and_its_log_stays_bounded",
        || {
            let hostile = components().hostile.display().to_string();
            let dir = tempfile::tempdir().unwrap();
            let mut fluent_bit = load(HostVersion::V5);
            let keys = [
                ("filter.1", hostile.as_str()),
                ("filter.1.behaviour", "chatty"),
            ];
            let output = fluent_bit
                .add_output(&dir_output(dir.path(), &keys))
                .unwrap();
            take_log_lines();
            // 8 KiB of prints per record: 1.6 MB in each call, 160 MB in all.
            let chunks = 100;
            for first in (0..chunks * 200).step_by(200) {
                let lines: Vec<(&str, u64)> = (first..first + 200).map(|n| ("line", n)).collect();
                assert_eq!(
                    fluent_bit.flusher(output).flush(&chunk_of(&lines), "t"),
                    FLB_OK,
                    "chunk {first}"
                );
            }
            fluent_bit.shutdown().unwrap();
            assert_eq!(written(dir.path()), (0..chunks * 200).collect::<Vec<_>>());
            let printed: Vec<String> = take_log_lines()
                .into_iter()
                .map(|line| line.message)
                .filter(|message| message.contains("[hostile]"))
                .collect();
            // README: at most 20 lines of a call's output, and one that says what was cut.
            let per_call = 20 + 1;
            assert!(
                printed.len() as u64 <= chunks * per_call,
                "{} lines",
                printed.len()
            );
            let bytes: usize = printed.iter().map(String::len).sum();
            assert!(bytes < 4 << 20, "{bytes} bytes of log");
            let cut = printed
                .iter()
                .find(|line| line.contains("printed more than is logged in one call"))
                .expect("what was left out is said");
            assert!(cut.contains("bytes were left out"), "{cut}");
        },
    );
}

#[test]
fn files_environment_clock_and_network_are_not_granted() {
    type Check = fn(&serde_json::Value) -> bool;
    let refused: Check = |got| got.as_str().is_some_and(|t| t.starts_with("refused"));
    let cases: [(&str, Check); 5] = [
        ("files", refused),
        ("env", |got| got.as_str() == Some("[]")),
        ("clock", |got| got.as_u64() == Some(0)),
        ("network", refused),
        // A filter that imports wasi:http loads, and every request is refused.
        ("http", |got| {
            got.as_str() == Some("refused: ErrorCode::HttpRequestDenied")
        }),
    ];
    for (behaviour, check) in cases {
        let (written, answers, dir) = run_hostile(behaviour, "retry");
        assert_eq!(answers, [FLB_OK, FLB_OK, FLB_OK], "{behaviour}");
        assert_eq!(written.len(), 30, "{behaviour}");
        let got: Vec<serde_json::Value> = json_lines(dir.path(), "t")
            .into_iter()
            .filter_map(|line| line.get("got").cloned())
            .collect();
        assert_eq!(got.len(), 1, "{behaviour}: {got:?}");
        assert!(check(&got[0]), "{behaviour}: the component got {}", got[0]);
    }
}

#[test]
fn a_component_that_sleeps_cannot_hold_the_host_and_starts_no_threads() {
    in_own_process(
        "filters::a_component_that_sleeps_cannot_hold_the_host_and_starts_no_threads",
        || {
            let started = std::time::Instant::now();
            let (written, answers, dir) = run_hostile("sleep", "retry");
            // Its clock stands still: the hour-long sleep returns at once, and it slept 0 s.
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
            assert_eq!(answers, [FLB_OK, FLB_OK, FLB_OK]);
            assert_eq!(written.len(), 30);
            let got: Vec<serde_json::Value> = json_lines(dir.path(), "t")
                .into_iter()
                .filter_map(|line| line.get("got").cloned())
                .collect();
            assert_eq!(got, [serde_json::json!(0)]);
            // Waiting ran on no runtime of its own: nothing is left to outlive the plugin.
            assert!(plugin_threads().is_empty(), "{:?}", plugin_threads());
        },
    );
}

#[test]
fn authors_can_describe_a_component_and_run_it_over_a_file() {
    let components = components();
    let described = described(&components.grep);
    assert!(described.starts_with("grep (filter): "), "{described}");
    assert!(
        described.contains("filter.N.regex (required)"),
        "{described}"
    );
    assert!(
        described.contains("filter.N.mode (default 'keep')"),
        "{described}"
    );

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("records.ndjson");
    std::fs::write(
        &input,
        "{\"log\":\"card 4111 1111 1111 1111\",\"n\":1}\nnot json, from a file\n",
    )
    .unwrap();
    let out = std::process::Command::new(rustsink_bin())
        .arg("filter")
        .arg(&components.redact)
        .args(["--option", "mask=[x]", "--input"])
        .arg(&input)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        printed,
        "{\"log\":\"card [x]\",\"n\":1}\n{\"log\":\"not json, from a file\"}\n"
    );

    // The template, as copied, builds into a working filter.
    let out = std::process::Command::new(rustsink_bin())
        .arg("filter")
        .arg(&components.template)
        .args(["--option", "fields=n, log", "--input"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{}\n{}\n");
}

#[test]
fn rustsink_filter_stops_an_endless_loop_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("records.ndjson");
    std::fs::write(&input, "{\"log\":\"poison\"}\n").unwrap();
    let mut child = std::process::Command::new(rustsink_bin())
        .arg("filter")
        .arg(&components().hostile)
        .args(["--option", "behaviour=loop", "--timeout", "1s", "--input"])
        .arg(&input)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A command without deadlines would loop for ever: give it 30 seconds.
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(30) {
            child.kill().unwrap();
            panic!("rustsink filter still ran after 30 s with --timeout 1s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("took longer than its timeout"), "{stderr}");
}

#[test]
fn check_loads_the_filters_and_their_options() {
    let dir = tempfile::tempdir().unwrap();
    let grep = components().grep.display().to_string();
    let conf = dir.path().join("filters.conf");
    let section = |regex: &str| {
        format!(
            "[OUTPUT]\n    Name rustsink\n    sink dir\n    path {0}/out\n    store_dir {0}/store\n    \
             filter.1 {grep}\n    filter.1.key log\n    filter.1.regex {regex}\n",
            dir.path().display()
        )
    };
    let good = rustsink_check(&conf, &section("^ERROR"));
    let stdout = String::from_utf8_lossy(&good.stdout);
    assert!(good.status.success(), "{stdout}");
    assert!(!stdout.contains("unknown key"), "{stdout}");

    let bad = rustsink_check(&conf, &section("(unclosed"));
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("'filter.1'"), "{stdout}");
    assert!(
        stdout.contains("option 'regex': cannot use '(unclosed'"),
        "{stdout}"
    );
}

#[test]
fn check_warns_of_component_options_nothing_takes() {
    let dir = tempfile::tempdir().unwrap();
    let grep = components().grep.display().to_string();
    let redact = components().redact.display().to_string();
    let conf = dir.path().join("filters.conf");
    let text = format!(
        "[OUTPUT]\n    Name rustsink\n    sink dir\n    path {0}/out\n    store_dir {0}/store\n    \
         filter.1 {grep}\n    filter.1.key log\n    filter.1.regex x\n    filter.1.timeout 2s\n    \
         filter.2 {redact}\n    filter.2.maks [x]\n    filter.2.bogus 1\n    \
         filter.3.foo bar\n    sink.timeout 1s\n",
        dir.path().display()
    );
    let out = rustsink_check(&conf, &text);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Warnings, not errors: the plugin ignores these keys and starts.
    assert!(out.status.success(), "{stdout}");
    for expected in [
        "'filter.2.maks' is ignored: component 'redact' has no option 'maks'; did you mean 'mask'?",
        "'filter.2.bogus' is ignored: component 'redact' has no option 'bogus'",
        "'filter.3.foo' is ignored: there is no filter.3",
        "'sink.timeout' is ignored: the sink is not a component",
    ] {
        assert!(stdout.contains(expected), "{expected}\n{stdout}");
    }
    // What the components and the host take is not warned about.
    for taken in ["filter.1.key", "filter.1.regex", "filter.1.timeout"] {
        assert!(!stdout.contains(&format!("'{taken}'")), "{stdout}");
    }
}

/// The Python twin of `grep` (plugins/python/grep) and the Rust one, on the same input in
/// one run: the same records kept, so the same objects, byte for byte once decompressed.
#[test]
fn the_python_and_javascript_greps_write_the_same_objects_as_the_rust_grep() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("app.log");
    let mut lines = String::new();
    for n in 0..3_000 {
        let level = ["ERROR", "INFO", "WARN", "DEBUG"][n % 4];
        lines.push_str(&format!(
            "{level} request {n} took {}ms for \"user-{}\" ünïcode\n",
            n % 97,
            n % 13
        ));
    }
    std::fs::write(&input, lines).unwrap();
    let output = |name: &str, filter: &Path, extra: &str| {
        format!(
            "[OUTPUT]\n    Name rustsink\n    Match *\n    Alias {name}\n    sink dir\n    \
             path {}\n    store_dir {}\n    filter.1 {}\n    filter.1.key log\n    \
             filter.1.regex ^(ERROR|WARN) \n{extra}",
            dir.path().join(name).display(),
            dir.path().join(format!("{name}-store")).display(),
            filter.display()
        )
    };
    let conf = dir.path().join("fluent-bit.conf");
    std::fs::write(
        &conf,
        output("rust", &components().grep, "")
            + &output("python", python_grep(), "    filter.1.timeout 30s\n")
            + &output(
                "javascript",
                javascript_grep(),
                "    filter.1.timeout 30s\n",
            ),
    )
    .unwrap();
    let out = Command::new(rustsink_bin())
        .args(["run", "--config"])
        .arg(&conf)
        .arg("--input")
        .arg(&input)
        .env("RUSTSINK_PLUGIN", plugin_path())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let text = |name: &str| -> String {
        objects(&dir.path().join(name))
            .iter()
            .map(|object| object_text(object))
            .collect()
    };
    let (rust, python, javascript) = (text("rust"), text("python"), text("javascript"));
    assert_eq!(rust.lines().count(), 1_500, "{rust:.300}");
    assert!(
        rust.lines()
            .all(|line| line.contains("\"ERROR ") || line.contains("\"WARN "))
    );
    assert_eq!(python, rust);
    assert_eq!(javascript, rust);
    // The Python and JavaScript greps count what they drop.
    for name in ["python", "javascript"] {
        let line = format!("[output:rustsink:{name}] [grep] counters: dropped=1500");
        assert!(log.contains(&line), "{name}: {log}");
    }
}

/// Runs `cargo` with `args` in `dir`, and fails the test with its output if it fails.
fn cargo(dir: &std::path::Path, args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = std::process::Command::new(cargo)
        .args(args)
        .current_dir(dir)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("running cargo");
    assert!(
        out.status.success(),
        "cargo {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cargo_generate_makes_a_filter_of_the_template_that_tests_builds_and_loads() {
    // cargo-generate from crates.io (`bash .ci/setup`).
    let dir = tempfile::tempdir().unwrap();
    let root = repo_root();
    let sdk = format!("sdk_path={}", root.join("plugins/sdk").display());
    let template = root.join("plugins/template");
    let args = [
        "generate",
        "--path",
        template.to_str().unwrap(),
        "--name",
        "drop-secrets",
        "--define",
        &sdk,
        "--vcs",
        "none",
        "--silent",
    ];
    cargo(dir.path(), &args);
    let project = dir.path().join("drop-secrets");
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"drop-secrets\""), "{manifest}");
    assert!(!project.join("Cargo.toml.liquid").exists());
    assert!(!project.join("cargo-generate.toml").exists());
    // Its native tests pass, and it builds into a component that rustsink loads.
    let target = root.join("target/generated");
    let target = target.to_str().unwrap();
    cargo(&project, &["test", "--quiet", "--target-dir", target]);
    let build = ["build", "--quiet", "--release", "--target", "wasm32-wasip2"];
    cargo(&project, &[&build[..], &["--target-dir", target]].concat());
    let component = root.join("target/generated/wasm32-wasip2/release/drop_secrets.wasm");
    let described = described(&component);
    assert!(
        described.starts_with("remove-fields (filter): "),
        "{described}"
    );
}
