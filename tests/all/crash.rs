//! Crash safety: a process running the plugin is killed with `kill -9` at random moments,
//! again and again, while a numbered input is fed; at the end every record is in exactly
//! one object.
//!
//! The test plays Fluent Bit's storage: it sends chunk `k`, and moves on to `k + 1` only
//! when the plugin answered OK. A chunk whose answer never came (the process died) or was
//! RETRY is sent again, byte for byte, to the restarted process, as Fluent Bit does with
//! its filesystem buffer.

use std::io::{BufRead, BufReader, Write};
use std::ops::Range;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustsink::event::EventTime;
use rustsink::event::chunk::{ChunkWriter, EventFormat, TimeForm};
use rustsink_cli::harness::{HostVersion, OutputSection};

use crate::s3::{Bucket, Moto, free_port, with_moto_credentials};
use crate::support::*;

const CHILD: &str = "RUSTSINK_CRASH_CHILD_DIR";
/// Set in the child of the S3 test: moto's endpoint.
const CHILD_S3: &str = "RUSTSINK_CRASH_S3";
const RECORDS_PER_CHUNK: u64 = 40;
const KILLS: usize = 50;

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    kill_9_at_random_moments(
        "crash::kill_9_at_random_moments_loses_and_duplicates_nothing",
        &[("compression", "gzip")],
        KILLS,
        ".jsonl.gz",
    );
}

/// The same with zstd objects: a frame is what a commit ends with.
#[test]
fn kill_9_at_random_moments_with_zstd_objects_loses_and_duplicates_nothing() {
    kill_9_at_random_moments(
        "crash::kill_9_at_random_moments_with_zstd_objects_loses_and_duplicates_nothing",
        &[("compression", "zstd")],
        20,
        ".jsonl.zst",
    );
}

/// The same with Parquet objects: killed while an object's Parquet file is being written
/// too, which is written again from the object's lines on the next start.
#[test]
fn kill_9_at_random_moments_with_parquet_objects_loses_and_duplicates_nothing() {
    kill_9_at_random_moments(
        "crash::kill_9_at_random_moments_with_parquet_objects_loses_and_duplicates_nothing",
        &[("format", "parquet")],
        20,
        ".parquet",
    );
}

/// The same against S3 (moto), with objects large enough to be uploaded in parts while
/// they are open: a kill also comes while a part is stored ahead, while an upload is
/// completed, and between a part stored and its record in the journal. At the end no
/// upload is left open.
#[test]
fn kill_9_at_random_moments_with_s3_parts_stored_ahead_loses_and_duplicates_nothing() {
    let test =
        "crash::kill_9_at_random_moments_with_s3_parts_stored_ahead_loses_and_duplicates_nothing";
    if let Some(dir) = std::env::var_os(CHILD) {
        return feed_the_plugin(Path::new(&dir), &[]);
    }
    let moto = Moto::start_on(free_port());
    let bucket = Bucket::create(&moto.endpoint());
    let dir = tempfile::tempdir().unwrap();
    let arrived = || bucket.plain_objects();
    let target = Target {
        s3_endpoint: Some(moto.endpoint()),
        kill_after_ms: 100..1500,
    };
    let arrived = kill_and_restart(dir.path(), test, 12, &target, arrived, |_, _| {});
    assert_once(dir.path(), &arrived);
    // A kill between beginning an upload and recording it leaves an upload with no part,
    // which costs nothing; any other is a leak.
    bucket.open_to_anyone();
    let with_parts: Vec<_> = bucket
        .uploads()
        .into_iter()
        .map(|(key, id)| {
            let parts = bucket.parts(&moto.endpoint(), &key, &id);
            (key, parts)
        })
        .filter(|(_, parts)| *parts > 0)
        .collect();
    assert!(
        with_parts.is_empty(),
        "uploads left open with parts: {with_parts:?}\n{}",
        what_happened(dir.path(), &arrived)
    );
}

/// Where a test's children deliver.
struct Target {
    /// moto's endpoint for `sink s3`; else `sink dir` under the test's folder.
    s3_endpoint: Option<String>,
    /// How long after its start each child is killed.
    kill_after_ms: Range<u64>,
}

/// `sink dir`, killed early: its flushes are quick.
const DIR: Target = Target {
    s3_endpoint: None,
    kill_after_ms: 5..400,
};

/// The body of the tests above: in the child, feeds the plugin configured with `keys`; in
/// the test, kills the child `kills` times, and checks that every record arrived once, in
/// objects whose names end in `suffix`.
fn kill_9_at_random_moments(test: &str, keys: &[(&str, &str)], kills: usize, suffix: &str) {
    if let Some(dir) = std::env::var_os(CHILD) {
        return feed_the_plugin(Path::new(&dir), keys);
    }
    let dir = tempfile::tempdir().unwrap();
    let arrived = || objects_in(dir.path());
    let arrived = kill_and_restart(dir.path(), test, kills, &DIR, arrived, |_, _| {});
    assert_once(dir.path(), &arrived);
    let objects = objects(dir.path());
    let other: Vec<_> = objects
        .iter()
        .filter(|path| !path.to_string_lossy().ends_with(suffix))
        .collect();
    assert!(
        other.is_empty(),
        "objects not ending in {suffix}: {other:?}"
    );
}

/// The journal damaged between runs, for real: a flipped byte in its middle, its end cut
/// off, or the whole file deleted. A record may then arrive twice (README's at-least-once
/// rule), but none is lost.
#[test]
fn kill_9_with_the_journal_damaged_between_runs_loses_nothing() {
    if let Some(dir) = std::env::var_os(CHILD) {
        return feed_the_plugin(Path::new(&dir), &[("compression", "gzip")]);
    }
    let dir = tempfile::tempdir().unwrap();
    let test = "crash::kill_9_with_the_journal_damaged_between_runs_loses_nothing";
    let arrived = || objects_in(dir.path());
    kill_and_restart(dir.path(), test, 15, &DIR, arrived, |journal, cycle| {
        let Ok(mut bytes) = std::fs::read(journal) else {
            return;
        };
        match cycle % 3 {
            0 if bytes.len() > 40 => {
                let middle = 12 + (bytes.len() - 12) / 2;
                bytes[middle] ^= 0x5a;
                std::fs::write(journal, bytes).unwrap();
            }
            1 if bytes.len() > 20 => std::fs::write(journal, &bytes[..bytes.len() - 7]).unwrap(),
            _ => std::fs::remove_file(journal).unwrap(),
        }
    });
}

/// Kills a child that runs the plugin `kills` times at random moments, calling `damage`
/// with the journal's path and the cycle after each kill, then runs it once more to a
/// clean shutdown. Checks that every record arrived at `target` (what `arrived` reads
/// there) and that nothing was left behind; returns what arrived.
fn kill_and_restart(
    dir: &Path,
    test: &str,
    kills: usize,
    target: &Target,
    arrived: impl Fn() -> Vec<Object>,
    damage: impl Fn(&Path, usize),
) -> Vec<Object> {
    let mut next_chunk = 0u64;
    let mut random = fastrand::Rng::with_seed(0x5eed);
    let journal = dir.join(".store/crash/journal");
    for cycle in 0..kills {
        let mut child = start_child(dir, test, target, &format!("run-{cycle:02}"));
        let pid = child.id().to_string();
        let delay = Duration::from_millis(random.u64(target.kill_after_ms.clone()));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            Command::new("kill").args(["-9", &pid]).status().unwrap()
        });
        feed(&mut child, &mut next_chunk, None);
        assert!(killer.join().unwrap().success(), "kill -9 failed");
        let status = child.wait().unwrap();
        assert!(!status.success(), "the process ended before it was killed");
        damage(&journal, cycle);
    }
    // A last run that is not killed: it feeds a few more chunks and shuts down cleanly.
    let mut child = start_child(dir, test, target, "run-last");
    let last = next_chunk + 20;
    feed(&mut child, &mut next_chunk, Some(last));
    let status = child.wait().unwrap();
    assert!(status.success(), "the last run failed");

    let undelivered: Vec<_> = std::fs::read_dir(dir.join(".store/crash/objects"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(
        undelivered.is_empty(),
        "objects left undelivered after a clean shutdown: {undelivered:?}"
    );
    let objects = arrived();
    let mut distinct = seen(&objects);
    distinct.dedup();
    let expected: Vec<u64> = (0..last * RECORDS_PER_CHUNK).collect();
    let mut missing = Vec::new();
    let mut at = 0;
    for n in &expected {
        if distinct.get(at) == Some(n) {
            at += 1;
        } else if missing
            .last()
            .is_some_and(|&(_, end): &(u64, u64)| end + 1 == *n)
        {
            missing.last_mut().unwrap().1 = *n;
        } else {
            missing.push((*n, *n));
        }
    }
    assert!(
        missing.is_empty(),
        "records lost: {missing:?}\n{}",
        what_happened(dir, &objects)
    );
    assert_eq!(distinct, expected);
    let leftovers: Vec<_> = walk_all(dir)
        .into_iter()
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left: {leftovers:?}\n{}",
        what_happened(dir, &objects)
    );
    objects
}

/// An object that arrived: its name, and its records in order.
type Object = (String, Vec<serde_json::Value>);

/// The objects under `dir` of the tests' tag, Parquet ones read by pyarrow.
fn objects_in(dir: &Path) -> Vec<Object> {
    let objects = objects(&dir.join("rustsink").join("crash")).into_iter();
    let read = objects.map(|path| {
        let records = if path.to_string_lossy().ends_with(".parquet") {
            parquet_rows(std::slice::from_ref(&path))
        } else {
            let text = object_text(&path);
            text.lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect()
        };
        let name = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        (name, records)
    });
    read.collect()
}

/// The `n` of every record of `objects`, sorted.
fn seen(objects: &[Object]) -> Vec<u64> {
    let records = objects.iter().flat_map(|(_, records)| records);
    let mut seen: Vec<u64> = records.map(|r| r["n"].as_u64().unwrap()).collect();
    seen.sort_unstable();
    seen
}

/// Fails if a record arrived twice.
fn assert_once(dir: &Path, objects: &[Object]) {
    let seen = seen(objects);
    let duplicates = seen.windows(2).filter(|pair| pair[0] == pair[1]).count();
    if duplicates > 0 {
        panic!(
            "{duplicates} records written twice\n{}",
            what_happened(dir, objects)
        );
    }
}

/// Starts the child; its log (the plugin's lines) goes to `.logs/<run>.log` under `dir`.
fn start_child(dir: &Path, test: &str, target: &Target, run: &str) -> Child {
    let logs = dir.join(".logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = std::fs::File::create(logs.join(format!("{run}.log"))).unwrap();
    let mut command = Command::new(std::env::current_exe().unwrap());
    if let Some(endpoint) = &target.s3_endpoint {
        with_moto_credentials(&mut command).env(CHILD_S3, endpoint);
    }
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// For a failure: the first and last record of every object, and the plugin's warnings
/// and errors of every run, in order.
fn what_happened(dir: &Path, objects: &[Object]) -> String {
    let mut text = String::new();
    for (name, records) in objects {
        let n = |record: Option<&serde_json::Value>| record.and_then(|r| r["n"].as_u64());
        let (first, last) = (n(records.first()), n(records.last()));
        text += &format!("{name}: {} records, {first:?} to {last:?}\n", records.len());
    }
    let mut logs: Vec<_> = std::fs::read_dir(dir.join(".logs"))
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    logs.sort_by_key(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok());
    for log in logs {
        let lines = std::fs::read_to_string(&log).unwrap_or_default();
        for line in lines.lines().filter(|l| {
            l.contains("[ warn]")
                || l.contains("[error]")
                || l.contains("[debug]")
                || l.contains("[ info]")
        }) {
            text += &format!("{}: {line}\n", log.file_name().unwrap().to_string_lossy());
        }
    }
    text
}

/// Sends chunks from `next_chunk` on until the child dies, or up to `until` and then asks
/// it to shut down.
fn feed(child: &mut Child, next_chunk: &mut u64, until: Option<u64>) {
    let mut stdin = child.stdin.take().unwrap();
    let mut answers = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        if until == Some(*next_chunk) {
            writeln!(stdin, "end").unwrap();
            drop(stdin);
            // Read on until the child is done, so that its last words find a reader.
            answers.for_each(drop);
            return;
        }
        if writeln!(stdin, "{next_chunk}").is_err() {
            return;
        }
        let answer = loop {
            match answers.next() {
                // libtest may print "test <name> ... " on the same line first.
                Some(Ok(line)) => {
                    if let Some((_, answer)) = line.split_once("answer ") {
                        break answer.to_owned();
                    }
                }
                _ => return,
            }
        };
        let (chunk, status) = answer.split_once(' ').unwrap();
        assert_eq!(chunk, next_chunk.to_string());
        match status.parse::<i32>().unwrap() {
            FLB_OK => *next_chunk += 1,
            FLB_RETRY => std::thread::sleep(Duration::from_millis(20)),
            other => panic!("chunk {chunk} answered {other}"),
        }
    }
}

/// The child's side: runs the plugin with `keys` and flushes the chunks named on stdin.
fn feed_the_plugin(dir: &Path, keys: &[(&str, &str)]) {
    let mut fluent_bit = load(HostVersion::V5);
    let mut options = vec![
        ("Alias", "crash"),
        ("time_window", "10m"),
        ("shutdown_timeout", "2m"),
        ("window_wait", "1s"),
        ("total_file_size", "24K"),
    ];
    options.extend_from_slice(keys);
    let s3 = std::env::var(CHILD_S3).ok();
    let section = match &s3 {
        None => dir_output(dir, &options),
        Some(endpoint) => {
            let store = dir.join(".store").display().to_string();
            OutputSection::new([
                ("Name", "rustsink"),
                ("Match", "*"),
                ("Alias", "crash"),
                ("sink", "s3"),
                ("bucket", "logs"),
                ("endpoint", endpoint.as_str()),
                ("region", "us-east-1"),
                ("store_dir", store.as_str()),
                ("shutdown_timeout", "2m"),
                ("compression", "none"),
                ("total_file_size", "12M"),
                ("upload_chunk_size", "5M"),
                ("time_window", "1h"),
            ])
        }
    };
    let out = fluent_bit.add_output(&section).unwrap();
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        if line == "end" {
            break;
        }
        let chunk: u64 = line.parse().unwrap();
        let first = chunk * RECORDS_PER_CHUNK;
        let bytes = match s3 {
            None => numbered_chunk(EventFormat::V2, first, RECORDS_PER_CHUNK),
            Some(_) => large_chunk(first),
        };
        let status = fluent_bit.flusher(out).flush(&bytes, "crash");
        let mut stdout = stdout.lock();
        writeln!(stdout, "answer {chunk} {status}").unwrap();
        stdout.flush().unwrap();
    }
    fluent_bit.shutdown().unwrap();
}

/// Records `first..` of a chunk, each about 5 KiB as a JSON line, a thousand a second.
fn large_chunk(first: u64) -> Vec<u8> {
    let padding = "x".repeat(5000);
    let mut chunk = ChunkWriter::new();
    for n in first..first + RECORDS_PER_CHUNK {
        let body = rmpv::Value::Map(vec![
            ("n".into(), n.into()),
            ("pad".into(), padding.as_str().into()),
        ]);
        let time = EventTime::new(1_714_557_600 + (n / 1000) as i64, 0);
        chunk.push(EventFormat::V2, TimeForm::EventTime, time, None, body);
    }
    chunk.finish()
}

fn walk_all(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            names.extend(walk_all(&path));
        } else {
            names.push(path.display().to_string());
        }
    }
    names
}
