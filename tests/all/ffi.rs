//! The plugin driven through the harness exactly as Fluent Bit 1.9 and 5.x drive it.

use std::collections::BTreeSet;
use std::fs;

use rmpv::Value;
use rustsink::event::EventTime;
use rustsink::event::chunk::{ChunkWriter, EventFormat, TimeForm};
use rustsink_cli::harness::{HostVersion, OutputSection, take_log_lines};

use crate::support::*;

fn error_lines() -> Vec<String> {
    take_log_lines()
        .into_iter()
        .filter(|line| line.level == 1)
        .map(|line| line.message)
        .collect()
}

#[test]
fn registers_as_a_go_proxy_output() {
    let fluent_bit = load(HostVersion::V5);
    assert_eq!(fluent_bit.plugin_name(), "rustsink");
    fluent_bit.shutdown().unwrap();
}

#[test]
fn a_process_plays_one_fluent_bit_version() {
    drop(load(HostVersion::V5));
    let error = rustsink_cli::harness::FluentBit::load(&plugin_path(), HostVersion::V1_9)
        .unwrap_err()
        .to_string();
    assert!(error.contains("play V1_9 in a new process"), "{error}");
}

#[test]
fn fluent_bit_1_9_one_slot_api_v1_events() {
    in_own_process("ffi::fluent_bit_1_9_one_slot_api_v1_events", fluent_bit_1_9);
}

fn fluent_bit_1_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut fluent_bit = load(HostVersion::V1_9);
    take_log_lines();
    let out = fluent_bit
        .add_output(&dir_output(dir.path(), &[("Workers", "2")]))
        .unwrap();
    let code = fluent_bit
        .flusher(out)
        .flush(&numbered_chunk(EventFormat::V1, 0, 50), "app.access");
    assert_eq!(code, FLB_OK);
    fluent_bit.shutdown().unwrap();
    assert_eq!(
        numbers(dir.path(), "app.access"),
        (0..50).collect::<Vec<_>>()
    );
    // 1.9 has no log API: nothing may have gone through log_print.
    assert_eq!(take_log_lines(), vec![]);
}

#[test]
fn fluent_bit_5_logs_through_log_print_naming_the_alias() {
    let dir = tempfile::tempdir().unwrap();
    let mut fluent_bit = load(HostVersion::V5);
    take_log_lines();
    let first = fluent_bit
        .add_output(&dir_output(&dir.path().join("a"), &[]))
        .unwrap();
    let second = fluent_bit
        .add_output(&dir_output(&dir.path().join("b"), &[("Alias", "app-logs")]))
        .unwrap();
    assert_eq!(fluent_bit.output_name(first), "rustsink.0");
    assert_eq!(fluent_bit.output_name(second), "app-logs");
    let messages: Vec<_> = take_log_lines().into_iter().map(|l| l.message).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("[output:rustsink:rustsink.0] started: sink dir")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("[output:rustsink:app-logs] started: sink dir")),
        "{messages:?}"
    );
    fluent_bit.shutdown().unwrap();
}

#[test]
fn the_instance_log_level_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let mut fluent_bit = load(HostVersion::V5);
    take_log_lines();
    let out = fluent_bit
        .add_output(&dir_output(dir.path(), &[("Log_Level", "error")]))
        .unwrap();
    let mut chunk = numbered_chunk(EventFormat::V2, 0, 1);
    chunk.push(0xc1); // never valid msgpack
    assert_eq!(fluent_bit.flusher(out).flush(&chunk, "t"), FLB_ERROR);
    fluent_bit.shutdown().unwrap();
    let lines = take_log_lines();
    assert!(
        lines.iter().all(|line| line.level == 1),
        "only errors at log_level error: {lines:?}"
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
}

#[test]
fn two_instances_keep_their_own_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut fluent_bit = load(HostVersion::V5);
    let iso = fluent_bit
        .add_output(&dir_output(&dir.path().join("iso"), &[]))
        .unwrap();
    let epoch = fluent_bit
        .add_output(&dir_output(
            &dir.path().join("epoch"),
            &[("json_date_key", "ts"), ("JSON_DATE_FORMAT", "epoch")],
        ))
        .unwrap();
    assert_eq!(
        fluent_bit
            .flusher(iso)
            .flush(&numbered_chunk(EventFormat::V2, 0, 3), "t"),
        FLB_OK
    );
    assert_eq!(
        fluent_bit
            .flusher(epoch)
            .flush(&numbered_chunk(EventFormat::V2, 10, 2), "t"),
        FLB_OK
    );
    fluent_bit.shutdown().unwrap();
    let iso_lines = json_lines(&dir.path().join("iso"), "t");
    let epoch_lines = json_lines(&dir.path().join("epoch"), "t");
    assert_eq!(iso_lines.len(), 3);
    assert_eq!(iso_lines[0]["date"], "2024-05-01T10:00:00.000000Z");
    assert_eq!(epoch_lines.len(), 2);
    assert_eq!(epoch_lines[0]["ts"], 1_714_557_610);
    assert!(epoch_lines[0].get("date").is_none());
}

/// Four workers flush at once, on 24 KiB stacks, each chunk from pages of its own that
/// are unmapped as soon as its flush returns: Fluent Bit may free a chunk then, and a read
/// of it after the return ends the test process. The chunks go through the engine alone,
/// or first through a filter.
#[test]
fn concurrent_flushes_on_24_kib_stacks_deliver_everything_once() {
    let grep = components().grep.display().to_string();
    for filter in [None, Some(grep.as_str())] {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = vec![("Workers", "4")];
        if let Some(grep) = filter {
            keys.extend([
                ("filter.1", grep),
                ("filter.1.key", "log"),
                ("filter.1.regex", "^line$"),
            ]);
        }
        let mut fluent_bit = load(HostVersion::V5);
        let out = fluent_bit
            .add_output(&dir_output(dir.path(), &keys))
            .unwrap();
        let flusher = fluent_bit.flusher(out);
        std::thread::scope(|scope| {
            for worker in 0..4u64 {
                scope.spawn(move || {
                    for round in 0..10u64 {
                        let first = (worker * 10 + round) * 1_000;
                        let chunk = numbered_chunk(EventFormat::V2, first, 1_000);
                        let pages = Pages::holding(&chunk);
                        assert_eq!(flusher.flush(pages.bytes(), "busy"), FLB_OK);
                        drop(pages);
                    }
                });
            }
        });
        fluent_bit.shutdown().unwrap();
        let mut seen = numbers(dir.path(), "busy");
        seen.sort_unstable();
        assert_eq!(seen, (0..40_000).collect::<Vec<_>>(), "filter: {filter:?}");
    }
}

/// A copy of some bytes in anonymous pages of their own, unmapped when dropped.
struct Pages {
    start: *mut libc::c_void,
    mapped: usize,
    len: usize,
}

impl Pages {
    fn holding(bytes: &[u8]) -> Pages {
        let mapped = bytes.len().next_multiple_of(4096).max(4096);
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let start = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(start, libc::MAP_FAILED, "mmap failed");
        // SAFETY: the mapping is writable and at least `bytes.len()` long.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), start.cast(), bytes.len()) };
        Pages {
            start,
            mapped,
            len: bytes.len(),
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping holds `len` initialised bytes until `self` is dropped.
        unsafe { std::slice::from_raw_parts(self.start.cast(), self.len) }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: the mapping is this value's own, and no borrow of it outlives `self`.
        assert_eq!(unsafe { libc::munmap(self.start, self.mapped) }, 0);
    }
}

#[test]
fn every_event_encoding_fluent_bit_writes_is_delivered_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut fluent_bit = load(HostVersion::V5);
    let out = fluent_bit.add_output(&dir_output(dir.path(), &[])).unwrap();
    let time = EventTime::new(1_714_557_600, 250_000_000);
    let mut chunk = ChunkWriter::new();
    chunk
        .push(
            EventFormat::V1,
            TimeForm::EventTime,
            time,
            None,
            record("v1 ext", 1),
        )
        .push(
            EventFormat::V1,
            TimeForm::Integer,
            time,
            None,
            record("v1 int", 2),
        )
        .push(
            EventFormat::V1,
            TimeForm::Float,
            time,
            None,
            record("v1 float", 3),
        )
        .group_start(
            Value::Map(vec![]),
            Value::Map(vec![(Value::from("res"), Value::from("x"))]),
        )
        .push(
            EventFormat::V2,
            TimeForm::EventTime,
            time,
            Some(Value::Map(vec![(Value::from("trace"), Value::from("t1"))])),
            record("v2 ext", 4),
        )
        .push(
            EventFormat::V2,
            TimeForm::Integer,
            time,
            None,
            record("v2 int", 5),
        )
        .push(
            EventFormat::V2,
            TimeForm::Float,
            time,
            None,
            record("v2 float", 6),
        )
        .group_end();
    assert_eq!(
        fluent_bit.flusher(out).flush(&chunk.finish(), "mixed"),
        FLB_OK
    );
    fluent_bit.shutdown().unwrap();
    let written = objects(&dir.path().join("rustsink/mixed"));
    assert_eq!(written.len(), 1, "{written:?}");
    let text = object_text(&written[0]);
    let expected = [
        r#"{"date":"2024-05-01T10:00:00.250000Z","log":"v1 ext","n":1}"#,
        r#"{"date":"2024-05-01T10:00:00.000000Z","log":"v1 int","n":2}"#,
        r#"{"date":"2024-05-01T10:00:00.250000Z","log":"v1 float","n":3}"#,
        r#"{"date":"2024-05-01T10:00:00.250000Z","log":"v2 ext","n":4}"#,
        r#"{"date":"2024-05-01T10:00:00.000000Z","log":"v2 int","n":5}"#,
        r#"{"date":"2024-05-01T10:00:00.250000Z","log":"v2 float","n":6}"#,
    ];
    assert_eq!(text.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn a_malformed_chunk_keeps_its_prefix_logs_once_and_returns_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut fluent_bit = load(HostVersion::V5);
    let out = fluent_bit.add_output(&dir_output(dir.path(), &[])).unwrap();
    take_log_lines();
    let good = numbered_chunk(EventFormat::V2, 0, 5);
    let mut chunk = good.clone();
    chunk.extend_from_slice(&numbered_chunk(EventFormat::V2, 5, 1)[..7]);
    assert_eq!(fluent_bit.flusher(out).flush(&chunk, "app.bad"), FLB_ERROR);
    let errors = error_lines();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let expected = format!("at byte {} of {}", good.len(), chunk.len());
    assert!(
        errors[0].contains("tag 'app.bad'") && errors[0].contains(&expected),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("dropped"), "{}", errors[0]);
    fluent_bit.shutdown().unwrap();
    assert_eq!(numbers(dir.path(), "app.bad"), vec![0, 1, 2, 3, 4]);
}

/// Whole msgpack values that are not valid events.
fn bad_events() -> Vec<(&'static str, Vec<u8>)> {
    let event = |time: Value, body: Value| {
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &Value::Array(vec![time, body])).unwrap();
        bytes
    };
    let body = || Value::Map(vec![(Value::from("log"), Value::from("bad"))]);
    vec![
        (
            "a body that is not a map",
            event(Value::from(1), Value::from("text")),
        ),
        ("a NaN time", event(Value::F64(f64::NAN), body())),
        ("a time of 1e300", event(Value::F64(1e300), body())),
        ("a time of 2^63", event(Value::from(1u64 << 63), body())),
        (
            // Of a day before the others: its window must not become an object.
            "a record nested too deeply",
            event(Value::from(1_714_557_600 - 86_400), nested_too_deeply()),
        ),
    ]
}

/// A record whose maps nest deeper than a record may (256 levels).
fn nested_too_deeply() -> Value {
    let mut deep = Value::Nil;
    for _ in 0..300 {
        deep = Value::Map(vec![(Value::from("k"), deep)]);
    }
    deep
}

#[test]
fn one_bad_event_is_skipped_and_the_rest_of_its_chunk_is_accepted() {
    let grep = components().grep.display().to_string();
    // Without filters, and through a filter that passes every record.
    let filtered: [(&str, &str); 3] = [
        ("filter.1", grep.as_str()),
        ("filter.1.key", "log"),
        ("filter.1.regex", "."),
    ];
    for filters in [&[][..], &filtered[..]] {
        for (what, bad) in bad_events() {
            let dir = tempfile::tempdir().unwrap();
            let mut fluent_bit = load(HostVersion::V5);
            let out = fluent_bit
                .add_output(&dir_output(dir.path(), filters))
                .unwrap();
            take_log_lines();
            // Event 0, the bad one, then events 1 to 100.
            let first = numbered_chunk(EventFormat::V2, 0, 1);
            let mut chunk = first.clone();
            chunk.extend_from_slice(&bad);
            chunk.extend_from_slice(&numbered_chunk(EventFormat::V2, 1, 100));
            let status = fluent_bit.flusher(out).flush(&chunk, "app.bad");
            assert_eq!(status, FLB_OK, "{what}");
            let warnings: Vec<String> = take_log_lines()
                .into_iter()
                .filter(|line| line.level <= 2)
                .map(|line| line.message)
                .collect();
            assert_eq!(warnings.len(), 1, "{what}: {warnings:?}");
            let expected = format!("at byte {} of {}", first.len(), chunk.len());
            assert!(
                warnings[0].contains("tag 'app.bad': 1 malformed events skipped")
                    && warnings[0].contains(&expected)
                    && warnings[0].contains("101 other events were accepted"),
                "{what}: {}",
                warnings[0]
            );
            fluent_bit.shutdown().unwrap();
            assert_eq!(
                numbers(dir.path(), "app.bad"),
                (0..101).collect::<Vec<_>>(),
                "{what}"
            );
            assert_eq!(objects(dir.path()).len(), 1, "{what}");
        }
    }
}

#[test]
fn bad_config_fails_init_with_one_line_naming_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[("sink", "kafka")], "invalid value 'kafka' for key 'sink'"),
        (&[("sink", "dir")], "missing key 'path'"),
        (
            &[
                ("sink", "dir"),
                ("path", "/x"),
                ("json_date_format", "rfc822"),
            ],
            "invalid value 'rfc822' for key 'json_date_format'",
        ),
        (&[], "missing key 'bucket'"),
        (
            &[("sink", "dir"), ("path", "/x"), ("time_window", "0")],
            "invalid value '0' for key 'time_window'",
        ),
        (
            &[("sink", "dir"), ("path", "/x"), ("time_window", "7m")],
            "invalid value '7m' for key 'time_window': expected whole seconds that divide a day",
        ),
        (
            &[("sink", "dir"), ("path", "/x"), ("nice", "20")],
            "invalid value '20' for key 'nice': expected a whole number from 0 to 19",
        ),
    ];
    for (pairs, expected) in cases {
        let mut fluent_bit = load(HostVersion::V5);
        take_log_lines();
        let mut section = vec![("Name", "rustsink"), ("Match", "*")];
        section.extend_from_slice(pairs);
        let error = fluent_bit
            .add_output(&OutputSection::new(section))
            .unwrap_err();
        assert!(
            error.to_string().contains("FLBPluginInit failed"),
            "{error}"
        );
        let errors = error_lines();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("[output:rustsink:rustsink.0] ") && errors[0].contains(expected),
            "{} does not say {expected}",
            errors[0]
        );
        fluent_bit.shutdown().unwrap();
    }
    // A path that cannot be a directory fails init too, naming it.
    let file = dir.path().join("a-file");
    fs::write(&file, "").unwrap();
    let mut fluent_bit = load(HostVersion::V5);
    take_log_lines();
    assert!(fluent_bit.add_output(&dir_output(&file, &[])).is_err());
    let errors = error_lines();
    assert!(errors[0].contains("a-file"), "{errors:?}");
    fluent_bit.shutdown().unwrap();
}

/// The nice value of a thread, from its `stat` (field 19).
fn nice_of(stat: &std::path::Path) -> i32 {
    let stat = fs::read_to_string(stat).unwrap();
    let after_name = stat.rsplit(')').next().unwrap();
    after_name
        .split_whitespace()
        .nth(16)
        .unwrap()
        .parse()
        .unwrap()
}

/// The record thread runs `nice` steps below the Fluent Bit thread that started its
/// instance (10 by default, 0 by default with a filter or on Fluent Bit 1.9, at most 19);
/// `nice 0` keeps that thread's priority, and the delivery thread always keeps it.
#[test]
fn the_record_thread_runs_nice_steps_below_fluent_bit() {
    let started_at = nice_of("/proc/thread-self/stat".as_ref());
    let dir = tempfile::tempdir().unwrap();
    let mut fluent_bit = load(HostVersion::V5);
    let grep = components().grep.display().to_string();
    let filter = [
        ("filter.1", grep.as_str()),
        ("filter.1.key", "log"),
        ("filter.1.regex", "^line$"),
    ];
    for (alias, nice, filtered, expected) in [
        ("n-def", None, false, 10),
        ("n-0", Some("0"), false, 0),
        ("n-3", Some("3"), false, 3),
        ("n-19", Some("19"), false, 19),
        // A component's timeout counts wall-clock time: only a given `nice` lowers it.
        ("n-flt", None, true, 0),
        ("n-fl5", Some("5"), true, 5),
    ] {
        let mut keys = vec![("Alias", alias)];
        keys.extend(nice.map(|nice| ("nice", nice)));
        if filtered {
            keys.extend(filter);
        }
        let out = fluent_bit
            .add_output(&dir_output(&dir.path().join(alias), &keys))
            .unwrap();
        let chunk = numbered_chunk(EventFormat::V2, 0, 10);
        assert_eq!(fluent_bit.flusher(out).flush(&chunk, "t"), FLB_OK);
        let threads: Vec<(String, i32)> = threads()
            .into_iter()
            .filter(|(name, _)| name.starts_with(&format!("rustsink:{alias}")))
            .map(|(name, task)| (name, nice_of(&task.join("stat"))))
            .collect();
        let record_thread = format!("rustsink:{alias}");
        let mut delivery_thread = format!("rustsink:{alias}:deliver");
        delivery_thread.truncate(15);
        let expected = (started_at + expected).min(19);
        assert!(
            threads.contains(&(record_thread, expected)),
            "{alias}: {threads:?}"
        );
        assert!(
            threads.contains(&(delivery_thread, started_at)),
            "{alias}: {threads:?}"
        );
    }
    fluent_bit.shutdown().unwrap();
}

/// On Fluent Bit 1.9, whose `tail` reads from the page cache, `nice` defaults to 0; a
/// given `nice` still counts.
#[test]
fn on_fluent_bit_1_9_the_record_thread_keeps_its_priority_by_default() {
    in_own_process(
        "ffi::on_fluent_bit_1_9_the_record_thread_keeps_its_priority_by_default",
        || {
            let started_at = nice_of("/proc/thread-self/stat".as_ref());
            let dir = tempfile::tempdir().unwrap();
            let mut fluent_bit = load(HostVersion::V1_9);
            for (alias, nice, expected) in [("o-def", None, 0), ("o-7", Some("7"), 7)] {
                let mut keys = vec![("Alias", alias)];
                keys.extend(nice.map(|nice| ("nice", nice)));
                let out = fluent_bit
                    .add_output(&dir_output(&dir.path().join(alias), &keys))
                    .unwrap();
                let chunk = numbered_chunk(EventFormat::V1, 0, 10);
                assert_eq!(fluent_bit.flusher(out).flush(&chunk, "t"), FLB_OK);
                let record_thread = format!("rustsink:{alias}");
                let found = threads()
                    .into_iter()
                    .find(|(name, _)| *name == record_thread)
                    .map(|(_, task)| nice_of(&task.join("stat")));
                assert_eq!(found, Some((started_at + expected).min(19)), "{alias}");
            }
            fluent_bit.shutdown().unwrap();
        },
    );
}

#[test]
fn a_failing_write_returns_retry_and_the_retry_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let mut fluent_bit = load(HostVersion::V5);
    let out = fluent_bit.add_output(&dir_output(dir.path(), &[])).unwrap();
    // A file where the store keeps its object files: every new object fails to open.
    let objects_folder = dir.path().join(".store/rustsink.0/objects");
    fs::remove_dir(&objects_folder).unwrap();
    fs::write(&objects_folder, "in the way").unwrap();
    let chunk = numbered_chunk(EventFormat::V2, 0, 3);
    assert_eq!(fluent_bit.flusher(out).flush(&chunk, "t"), FLB_RETRY);
    fs::remove_file(&objects_folder).unwrap();
    fs::create_dir(&objects_folder).unwrap();
    assert_eq!(fluent_bit.flusher(out).flush(&chunk, "t"), FLB_OK);
    fluent_bit.shutdown().unwrap();
    assert_eq!(numbers(dir.path(), "t"), vec![0, 1, 2]);
}

#[test]
fn exit_with_the_wrong_context_and_twice_is_harmless() {
    in_own_process(
        "ffi::exit_with_the_wrong_context_and_twice_is_harmless",
        exit_twice_with_the_wrong_context,
    );
}

fn exit_twice_with_the_wrong_context() {
    let dir = tempfile::tempdir().unwrap();
    let mut fluent_bit = load(HostVersion::V1_9);
    let a = fluent_bit
        .add_output(&dir_output(&dir.path().join("a"), &[]))
        .unwrap();
    let b = fluent_bit
        .add_output(&dir_output(&dir.path().join("b"), &[]))
        .unwrap();
    // What AWS's 1.9.10 does when instance a exits: it passes b's context, then again.
    assert_eq!(fluent_bit.exit_with_context_of(b), FLB_OK);
    assert_eq!(fluent_bit.exit_with_context_of(b), FLB_OK);
    // a still works; b has stopped and hands chunks back for a retry.
    assert_eq!(
        fluent_bit
            .flusher(a)
            .flush(&numbered_chunk(EventFormat::V1, 0, 2), "t"),
        FLB_OK
    );
    assert_eq!(
        fluent_bit
            .flusher(b)
            .flush(&numbered_chunk(EventFormat::V1, 0, 2), "t"),
        FLB_RETRY
    );
    // The full shutdown sequence then exits b's context twice more and unregisters.
    fluent_bit.shutdown().unwrap();
    assert_eq!(numbers(&dir.path().join("a"), "t"), vec![0, 1]);
    assert!(objects(&dir.path().join("b")).is_empty());
}

#[test]
fn unregister_stops_every_thread_and_the_plugin_reloads() {
    // In a process of its own: other tests' threads would be counted.
    in_own_process(
        "ffi::unregister_stops_every_thread_and_the_plugin_reloads",
        unregister_and_reload,
    );
}

fn unregister_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3u64 {
        let mut fluent_bit = load(HostVersion::V5);
        let out = fluent_bit
            .add_output(&dir_output(dir.path(), &[("Alias", "reload")]))
            .unwrap();
        assert_eq!(
            fluent_bit
                .flusher(out)
                .flush(&numbered_chunk(EventFormat::V2, round * 10, 10), "t"),
            FLB_OK
        );
        assert!(
            plugin_threads().contains("rustsink:reload"),
            "{:?}",
            plugin_threads()
        );
        fluent_bit.shutdown().unwrap();
        assert_eq!(plugin_threads(), BTreeSet::new());
    }
    assert_eq!(numbers(dir.path(), "t"), (0..30).collect::<Vec<_>>());
}

/// The exports called directly with what a confused host could pass: null pointers, a
/// handle that was never issued, an empty chunk. Nothing may crash, and only the
/// documented codes come back.
#[test]
fn hostile_arguments_get_documented_answers() {
    use std::ffi::{c_char, c_int, c_void};
    use std::ptr::{null, null_mut};

    type Register = unsafe extern "C" fn(*mut c_void) -> c_int;
    type Init = unsafe extern "C" fn(*mut c_void) -> c_int;
    type FlushCtx = unsafe extern "C" fn(*mut c_void, *const c_void, usize, *mut c_char) -> c_int;
    type Flush = unsafe extern "C" fn(*const c_void, usize, *const c_char) -> c_int;
    type ExitCtx = extern "C" fn(*mut c_void) -> c_int;

    // Hold the one-per-process harness slot so no other test's instance is live here.
    let mut fluent_bit = load(HostVersion::V5);
    let dir = tempfile::tempdir().unwrap();
    // SAFETY: the exports have these signatures (fluent-bit/include/flb_proxy_abi.h); each
    // call below passes only what the plugin must tolerate.
    unsafe {
        let library = libloading::Library::new(plugin_path()).unwrap();
        let register: libloading::Symbol<Register> = library.get(b"FLBPluginRegister").unwrap();
        let init: libloading::Symbol<Init> = library.get(b"FLBPluginInit").unwrap();
        let flush_ctx: libloading::Symbol<FlushCtx> = library.get(b"FLBPluginFlushCtx").unwrap();
        let flush: libloading::Symbol<Flush> = library.get(b"FLBPluginFlush").unwrap();
        let exit_ctx: libloading::Symbol<ExitCtx> = library.get(b"FLBPluginExitCtx").unwrap();

        assert_eq!(register(null_mut()), -1);
        assert_eq!(init(null_mut()), FLB_ERROR);
        let never_issued = 987_654 as *mut c_void;
        let tag = c"t".as_ptr().cast_mut();
        assert_eq!(flush_ctx(never_issued, null(), 0, tag), FLB_RETRY);
        assert_eq!(flush_ctx(null_mut(), null(), 0, null_mut()), FLB_RETRY);
        // No instance is running: the context-free flush has nowhere to go either.
        assert_eq!(flush(null(), 0, null()), FLB_RETRY);
        assert_eq!(exit_ctx(never_issued), FLB_OK);
        assert_eq!(exit_ctx(null_mut()), FLB_OK);

        // With exactly one instance, the context-free flush reaches it.
        fluent_bit.add_output(&dir_output(dir.path(), &[])).unwrap();
        let chunk = numbered_chunk(EventFormat::V2, 0, 2);
        assert_eq!(
            flush(chunk.as_ptr().cast(), chunk.len(), c"only".as_ptr()),
            FLB_OK
        );
    }
    fluent_bit.shutdown().unwrap();
    assert_eq!(numbers(dir.path(), "only"), vec![0, 1]);
}
