//! The component contract across its versions: components built by the SDK of contract
//! 0.1 loading beside ones of 0.2, and what 0.2 gives filters: the tag, an outcome per
//! record with `on_error` deciding for a failed record alone, and the time and metadata a
//! filter sets.

use std::path::Path;
use std::process::Command;

use rustsink::event::EventTime;
use rustsink::event::chunk::{ChunkWriter, EventFormat, TimeForm};
use rustsink_cli::harness::{HostVersion, OutputSection, take_log_lines};
use serde_json::Value as Json;

use crate::support::*;

/// A chunk of records `{"log": text, "n": n}`, plus `extra` fields, at 2024-05-01 10:00.
fn chunk_of(records: &[(&str, u64)], extra: &[(&str, rmpv::Value)]) -> Vec<u8> {
    let mut chunk = ChunkWriter::new();
    for (text, n) in records {
        let mut body = record(text, *n);
        if let rmpv::Value::Map(fields) = &mut body {
            fields.extend(
                extra
                    .iter()
                    .map(|(k, v)| (rmpv::Value::from(*k), v.clone())),
            );
        }
        chunk.push(
            EventFormat::V2,
            TimeForm::EventTime,
            EventTime::new(1_714_557_600, 0),
            None,
            body,
        );
    }
    chunk.finish()
}

/// The log lines since the last call.
fn log_lines() -> Vec<String> {
    take_log_lines()
        .into_iter()
        .map(|line| line.message)
        .collect()
}

fn path_of(component: &Path) -> String {
    component.display().to_string()
}

#[test]
fn components_of_contract_0_1_and_0_2_run_side_by_side_in_one_configuration() {
    in_own_process(
        "contract::components_of_contract_0_1_and_0_2_run_side_by_side_in_one_configuration",
        || {
            let built = components();
            assert!(described(&built.hostile_0_1).contains("built for rustsink:plugin@0.1.0"));
            assert!(described(&built.hostile_sink_0_1).contains("built for rustsink:plugin@0.1.0"));
            assert!(described(&built.stamp).contains("built for rustsink:plugin@0.2.0"));

            let dir = tempfile::tempdir().unwrap();
            let objects = dir.path().join("objects");
            let mut fluent_bit = load(HostVersion::V5);
            // A 0.1 filter, then a 0.2 filter, then the object engine.
            let to_objects = fluent_bit
                .add_output(&dir_output(
                    &objects,
                    &[
                        ("filter.1", &path_of(&built.hostile_0_1)),
                        ("filter.1.behaviour", "inflate"),
                        ("filter.2", &path_of(&built.stamp)),
                    ],
                ))
                .unwrap();
            // A 0.2 filter, then a 0.1 filter, then a 0.1 sink.
            let to_sink = fluent_bit
                .add_output(&OutputSection::new(
                    [
                        ("Name", "rustsink"),
                        ("Match", "*"),
                        ("sink", &path_of(&built.hostile_sink_0_1)),
                        ("sink.behaviour", "broken"),
                        (
                            "store_dir",
                            &dir.path().join("sink-store").display().to_string(),
                        ),
                        ("filter.1", &path_of(&built.stamp)),
                        ("filter.2", &path_of(&built.hostile_0_1)),
                        ("filter.2.behaviour", "inflate"),
                    ]
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>(),
                ))
                .unwrap();
            let chunk = chunk_of(&[("line 0", 0), ("poison", 1), ("line 2", 2)], &[]);
            log_lines();
            assert_eq!(fluent_bit.flusher(to_objects).flush(&chunk, "t"), FLB_OK);
            assert_eq!(fluent_bit.flusher(to_sink).flush(&chunk, "t"), FLB_ERROR);
            let lines = log_lines();
            fluent_bit.shutdown().unwrap();

            let written = json_lines(&objects, "t");
            let numbers: Vec<u64> = written.iter().map(|l| l["n"].as_u64().unwrap()).collect();
            assert_eq!(numbers, [0, 1, 2]);
            assert!(written.iter().all(|line| line["tag"] == "t"), "{written:?}");
            assert_eq!(
                written[1]["inflated"].as_str().map(str::len),
                Some("poison".len() * 100)
            );
            // The 0.1 sink got the batch both filters made, and answered as it does to
            // poison: a fatal error, which Fluent Bit is told.
            assert!(
                lines
                    .iter()
                    .any(|line| line.contains("this batch can never be taken")),
                "{lines:#?}"
            );
        },
    );
}

/// One case of a filter failing on the record `poison` among others.
struct Case {
    component: fn(&Components) -> &Path,
    behaviour: &'static str,
    on_error: &'static str,
    /// Fluent Bit's answer.
    answer: i32,
    /// The `n` written, with whether the filter marked it.
    written: &'static [(u64, bool)],
    /// What the log says.
    logged: &'static str,
}

#[test]
fn a_record_a_filter_fails_on_is_handled_by_on_error_alone() {
    in_own_process(
        "contract::a_record_a_filter_fails_on_is_handled_by_on_error_alone",
        || {
            fn newest(c: &Components) -> &Path {
                &c.hostile
            }
            fn oldest(c: &Components) -> &Path {
                &c.hostile_0_1
            }
            let cases = [
                // A panic on one record of three: only that record is left out of the
                // filter (0.2 and 0.1 alike, by running the filter over halves).
                Case {
                    component: newest,
                    behaviour: "trap",
                    on_error: "skip_record",
                    answer: FLB_OK,
                    written: &[(0, true), (1, false), (2, true)],
                    logged: "failed on 1 of 3 records of tag 't' (the first: the component \
                             trapped: wasm trap: wasm `unreachable` instruction executed (it \
                             printed last: panicked at hostile/src/lib.rs:",
                },
                Case {
                    component: newest,
                    behaviour: "trap",
                    on_error: "drop_record",
                    answer: FLB_OK,
                    written: &[(0, true), (2, true)],
                    logged: "failed on 1 of 3 records of tag 't'",
                },
                Case {
                    component: oldest,
                    behaviour: "trap",
                    on_error: "skip_record",
                    answer: FLB_OK,
                    written: &[(0, false), (1, false), (2, false)],
                    logged: "they pass it unchanged (on_error skip_record)",
                },
                Case {
                    component: oldest,
                    behaviour: "trap",
                    on_error: "drop_record",
                    answer: FLB_OK,
                    written: &[(0, false), (2, false)],
                    logged: "they are dropped (on_error drop_record)",
                },
                // A record the filter fails (an outcome of 0.2), under each policy.
                Case {
                    component: newest,
                    behaviour: "fail",
                    on_error: "skip_record",
                    answer: FLB_OK,
                    written: &[(0, true), (1, false), (2, true)],
                    logged: "failed on 1 of 3 records of tag 't' (the first: the component \
                             failed: poison); they pass it unchanged (on_error skip_record)",
                },
                Case {
                    component: newest,
                    behaviour: "fail",
                    on_error: "drop_record",
                    answer: FLB_OK,
                    written: &[(0, true), (2, true)],
                    logged: "they are dropped (on_error drop_record)",
                },
                Case {
                    component: newest,
                    behaviour: "fail",
                    on_error: "skip",
                    answer: FLB_OK,
                    written: &[(0, false), (1, false), (2, false)],
                    logged: "it failed 1 of the 3 records (the first: poison); its 3 records \
                             pass it unchanged (on_error skip)",
                },
                Case {
                    component: newest,
                    behaviour: "fail",
                    on_error: "retry",
                    answer: FLB_RETRY,
                    written: &[],
                    logged: "Fluent Bit keeps the chunk and retries it (on_error retry)",
                },
            ];
            let chunk = chunk_of(&[("line 0", 0), ("poison", 1), ("line 2", 2)], &[]);
            for (index, case) in cases.iter().enumerate() {
                let mut fluent_bit = load(HostVersion::V5);
                let dir = tempfile::tempdir().unwrap();
                let what = format!("{} {} {}", index, case.behaviour, case.on_error);
                let output = fluent_bit
                    .add_output(&dir_output(
                        dir.path(),
                        &[
                            ("filter.1", &path_of((case.component)(components()))),
                            ("filter.1.behaviour", case.behaviour),
                            ("filter.1.on_error", case.on_error),
                            ("filter.1.mark", "yes"),
                        ],
                    ))
                    .unwrap();
                log_lines();
                let answer = fluent_bit.flusher(output).flush(&chunk, "t");
                assert_eq!(answer, case.answer, "{what}");
                fluent_bit.shutdown().unwrap();
                let written: Vec<(u64, bool)> = match case.written.is_empty() {
                    true => Vec::new(),
                    false => json_lines(dir.path(), "t")
                        .iter()
                        .map(|line| (line["n"].as_u64().unwrap(), line["marked"] == "yes"))
                        .collect(),
                };
                assert_eq!(written, case.written, "{what}");
                let lines = log_lines();
                assert!(
                    lines.iter().any(|line| line.contains(case.logged)),
                    "{what}: {lines:#?}"
                );
            }
        },
    );
}

#[test]
fn failures_are_told_apart_by_halves_within_a_bound() {
    in_own_process(
        "contract::failures_are_told_apart_by_halves_within_a_bound",
        || {
            let hostile = path_of(&components().hostile);
            let mut fluent_bit = load(HostVersion::V5);
            // 1,000 records, three of them poison: each is found, the rest filtered.
            let records: Vec<(String, u64)> = (0..1000)
                .map(|n| match n {
                    7 | 500 | 999 => ("poison".to_owned(), n),
                    _ => (format!("line {n}"), n),
                })
                .collect();
            let records: Vec<(&str, u64)> = records.iter().map(|(t, n)| (t.as_str(), *n)).collect();
            let dir = tempfile::tempdir().unwrap();
            let keys = [
                ("filter.1", hostile.as_str()),
                ("filter.1.behaviour", "trap"),
                ("filter.1.on_error", "skip_record"),
                ("filter.1.mark", "yes"),
            ];
            let output = fluent_bit
                .add_output(&dir_output(dir.path(), &keys))
                .unwrap();
            log_lines();
            let flusher = fluent_bit.flusher(output);
            assert_eq!(flusher.flush(&chunk_of(&records, &[]), "t"), FLB_OK);
            // Forty records that all fail: the halving stops at its bound, and the
            // records it did not tell apart count as failed, none lost.
            let poison: Vec<(&str, u64)> = (1000..1040).map(|n| ("poison", n)).collect();
            assert_eq!(flusher.flush(&chunk_of(&poison, &[]), "t"), FLB_OK);
            // Forty records that all run past the timeout: the halving stops after four
            // timeouts, and drop_record drops them, counted.
            let slow = tempfile::tempdir().unwrap();
            let keys = [
                ("filter.1", hostile.as_str()),
                ("filter.1.behaviour", "loop"),
                ("filter.1.on_error", "drop_record"),
                ("filter.1.timeout", "50ms"),
            ];
            let output = fluent_bit
                .add_output(&dir_output(slow.path(), &keys))
                .unwrap();
            let flusher = fluent_bit.flusher(output);
            let started = std::time::Instant::now();
            assert_eq!(flusher.flush(&chunk_of(&poison, &[]), "t"), FLB_OK);
            let took = started.elapsed();
            let lines = log_lines();
            fluent_bit.shutdown().unwrap();

            assert!(
                took < std::time::Duration::from_secs(2),
                "four timeouts of 50 ms took {took:?}"
            );
            let dropped = lines
                .iter()
                .find(|line| line.contains("they are dropped (on_error drop_record)"))
                .unwrap_or_else(|| panic!("{lines:#?}"));
            assert!(
                dropped.contains("failed on 40 of 40 records")
                    && dropped.contains("took longer than its timeout (50ms)")
                    && dropped
                        .contains("40 of them were not told apart, as the filter failed 4 times"),
                "{dropped}"
            );
            assert!(objects(&slow.path().join("rustsink/t")).is_empty());

            let written = json_lines(dir.path(), "t");
            let numbers: Vec<u64> = written.iter().map(|l| l["n"].as_u64().unwrap()).collect();
            assert_eq!(numbers, (0..1040).collect::<Vec<_>>());
            let unmarked: Vec<u64> = written
                .iter()
                .filter(|line| line["marked"] != "yes")
                .map(|line| line["n"].as_u64().unwrap())
                .collect();
            let expected: Vec<u64> = [7, 500, 999].into_iter().chain(1000..1040).collect();
            assert_eq!(unmarked, expected);
            assert!(
                lines
                    .iter()
                    .any(|line| line.contains("failed on 3 of 1000 records")),
                "{lines:#?}"
            );
            let bounded = lines
                .iter()
                .find(|line| line.contains("failed on 40 of 40 records"))
                .unwrap_or_else(|| panic!("{lines:#?}"));
            assert!(
                bounded.contains("were not told apart, as the filter failed 64 times"),
                "{bounded}"
            );
        },
    );
}

#[test]
fn filters_see_the_tag_and_set_time_and_metadata() {
    let built = components();
    let stamp = path_of(&built.stamp);
    let dir = tempfile::tempdir().unwrap();
    let mut fluent_bit = load(HostVersion::V5);
    let output = fluent_bit
        .add_output(&dir_output(
            dir.path(),
            &[
                ("filter.1", stamp.as_str()),
                ("filter.1.name", "first"),
                ("filter.1.on_error", "skip_record"),
                ("filter.2", stamp.as_str()),
                ("filter.2.name", "second"),
                ("filter.2.on_error", "skip_record"),
            ],
        ))
        .unwrap();
    let flusher = fluent_bit.flusher(output);
    let moved = chunk_of(
        &[("moved", 0)],
        &[("at", rmpv::Value::from(1_700_000_000u64))],
    );
    let unmoved = chunk_of(&[("unmoved", 1)], &[]);
    let bad = chunk_of(&[("bad time", 2)], &[("at", rmpv::Value::from("soon"))]);
    for chunk in [moved, unmoved, bad] {
        assert_eq!(flusher.flush(&chunk, "app.log"), FLB_OK);
    }
    fluent_bit.shutdown().unwrap();

    let mut written = json_lines(dir.path(), "app.log");
    written.sort_by_key(|line| line["n"].as_u64());
    let field = |line: &Json, key: &str| line[key].as_str().unwrap_or("-").to_owned();
    let summary: Vec<[String; 4]> = written
        .iter()
        .map(|line| {
            [
                field(line, "log"),
                field(line, "date"),
                field(line, "tag"),
                field(line, "stamped_by"),
            ]
        })
        .collect();
    let row = |a: &str, b: &str, c: &str, d: &str| [a, b, c, d].map(str::to_owned);
    assert_eq!(
        summary,
        [
            // The second filter saw the metadata the first set, and the time it moved.
            row("moved", "2023-11-14T22:13:20.000000Z", "app.log", "first"),
            row("unmoved", "2024-05-01T10:00:00.000000Z", "app.log", "first"),
            // Both failed it ('at' is no time): it passed both unchanged.
            row("bad time", "2024-05-01T10:00:00.000000Z", "-", "-"),
        ]
    );
}

#[test]
fn rustsink_filter_gives_the_filter_a_tag() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("records.ndjson");
    std::fs::write(&input, "{\"log\":\"one\"}\n").unwrap();
    let out = Command::new(rustsink_bin())
        .arg("filter")
        .arg(&components().stamp)
        .arg("--input")
        .arg(&input)
        .args(["--tag", "kube.app"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: Json = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(line["tag"], "kube.app", "{stdout}");
}

#[test]
fn a_contract_changed_without_a_new_version_number_is_refused_saying_so() {
    let stderr = describe_refused(&components().impostor);
    assert!(
        stderr.contains(
            "is not a filter component of rustsink:plugin@0.2.0 (world 'filter'): was the \
             contract changed without a new version number?"
        ),
        "{stderr}"
    );
}

#[test]
fn a_describe_that_never_returns_is_stopped_at_its_deadline() {
    let started = std::time::Instant::now();
    let stderr = describe_refused(&components().stuck);
    assert!(
        stderr.contains("asking") && stderr.contains("took longer than its timeout (10s)"),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}
