//! Damage to `store_dir` between two runs, done for real: the journal deleted, cut below
//! its header or with bytes flipped in its middle, and object files with flipped bytes.
//! Nothing acknowledged is lost, and no object already delivered is written over.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustsink::event::chunk::EventFormat;
use rustsink_cli::harness::{HostVersion, take_log_lines};

use crate::support::*;

const CHILD: &str = "RUSTSINK_DAMAGE_CHILD_DIR";
/// The child's `compression`.
const CHILD_COMPRESSION: &str = "RUSTSINK_DAMAGE_COMPRESSION";
const TAGS: [&str; 2] = ["a", "b"];
const CHUNKS: u64 = 20;
const PER_CHUNK: u64 = 190;
/// Records per tag: the chunks, then small ones of [`PER_TAIL`] records, the last of which
/// stay in the object left open, with a block from each.
const RECORDS: u64 = CHUNKS * PER_CHUNK + 300;
/// Few enough that the object left open holds several blocks (whole ones before the damage).
const PER_TAIL: u64 = 30;

/// The keys of the instance: small objects, cut by size (or at exit). zstd frames of
/// these records are smaller than gzip's blocks, so its objects are too.
fn keys(compression: &str) -> [(&str, &str); 5] {
    [
        ("Alias", "dmg"),
        (
            "total_file_size",
            if compression == "zstd" { "2K" } else { "4K" },
        ),
        ("time_window", "off"),
        ("shutdown_timeout", "30s"),
        ("compression", compression),
    ]
}

/// In a child process: feeds every chunk, says so, and waits to be killed.
fn feed_and_wait(dir: &Path) {
    let compression = std::env::var(CHILD_COMPRESSION).unwrap_or_else(|_| "gzip".into());
    let mut fluent_bit = load(HostVersion::V5);
    let out = fluent_bit
        .add_output(&dir_output(dir, &keys(&compression)))
        .unwrap();
    for tag in TAGS {
        for chunk in 0..CHUNKS {
            let bytes = numbered_chunk(EventFormat::V2, chunk * PER_CHUNK, PER_CHUNK);
            assert_eq!(fluent_bit.flusher(out).flush(&bytes, tag), FLB_OK);
        }
        for first in (CHUNKS * PER_CHUNK..RECORDS).step_by(PER_TAIL as usize) {
            let tail = numbered_chunk(EventFormat::V2, first, PER_TAIL);
            assert_eq!(fluent_bit.flusher(out).flush(&tail, tag), FLB_OK);
        }
    }
    println!("fed");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Every file under `dir` but the store, with its bytes.
fn delivered(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut folders = vec![dir.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n == ".store") {
                continue;
            }
            if path.is_dir() {
                folders.push(path);
            } else {
                files.insert(path.clone(), fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Runs the child until some objects are delivered and others are open, then kills it with
/// `kill -9`; returns what was delivered by then.
fn store_with_delivered_and_open_objects(
    dir: &Path,
    test: &str,
    compression: &str,
) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, dir)
        .env(CHILD_COMPRESSION, compression)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|line| line.is_ok_and(|line| line.contains("fed"))),
        "the child did not feed"
    );
    let start = Instant::now();
    while delivered(dir).len() < 6 {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("nothing delivered");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let the delivery thread settle, so that the objects still in the store are the open ones.
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    delivered(dir)
}

/// Starts and stops the instance on `dir`; returns its log lines at warn level and above.
fn restart(dir: &Path, compression: &str) -> Vec<String> {
    let mut fluent_bit = load(HostVersion::V5);
    take_log_lines();
    fluent_bit
        .add_output(&dir_output(dir, &keys(compression)))
        .unwrap();
    fluent_bit.shutdown().unwrap();
    take_log_lines()
        .into_iter()
        .filter(|line| line.level <= 2)
        .map(|line| line.message)
        .collect()
}

/// Every record of every tag is delivered at least once, and what was delivered before the
/// damage is unchanged.
fn assert_nothing_lost_or_overwritten(dir: &Path, before: &BTreeMap<PathBuf, Vec<u8>>) {
    let after = delivered(dir);
    for (path, bytes) in before {
        assert_eq!(
            after.get(path),
            Some(bytes),
            "{} was written over",
            path.display()
        );
    }
    for tag in TAGS {
        let mut seen = numbers(dir, tag);
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, (0..RECORDS).collect::<Vec<_>>(), "tag {tag}");
    }
}

#[test]
fn a_deleted_cut_or_flipped_journal_loses_and_overwrites_nothing() {
    if let Some(dir) = std::env::var_os(CHILD) {
        return feed_and_wait(Path::new(&dir));
    }
    let test = "damage::a_deleted_cut_or_flipped_journal_loses_and_overwrites_nothing";
    // A process of its own: the log lines it reads are its own.
    in_own_process(test, || journal_damage(test));
}

fn journal_damage(test: &str) {
    for damage in ["delete", "cut below the header", "flip in the middle"] {
        let dir = tempfile::tempdir().unwrap();
        let before = store_with_delivered_and_open_objects(dir.path(), test, "gzip");
        let journal = dir.path().join(".store/dmg/journal");
        match damage {
            "delete" => fs::remove_file(&journal).unwrap(),
            "cut below the header" => {
                fs::OpenOptions::new()
                    .write(true)
                    .open(&journal)
                    .unwrap()
                    .set_len(5)
                    .unwrap();
            }
            _ => {
                let mut bytes = fs::read(&journal).unwrap();
                let middle = bytes.len() / 2;
                for byte in &mut bytes[middle..middle + 8] {
                    *byte ^= 0xa5;
                }
                fs::write(&journal, bytes).unwrap();
            }
        }
        let warnings = restart(dir.path(), "gzip");
        assert!(
            warnings
                .iter()
                .any(|line| line.contains("the journal") && line.contains(".store/dmg/journal")),
            "{damage}: the damage is not reported: {warnings:#?}"
        );
        assert_nothing_lost_or_overwritten(dir.path(), &before);
        let left: Vec<_> = fs::read_dir(dir.path().join(".store/dmg/objects"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{damage}: left in the store: {left:?}");
    }
}

#[test]
fn a_damaged_object_file_is_salvaged_up_to_the_damage_and_kept() {
    if let Some(dir) = std::env::var_os(CHILD) {
        return feed_and_wait(Path::new(&dir));
    }
    let test = "damage::a_damaged_object_file_is_salvaged_up_to_the_damage_and_kept";
    in_own_process(test, || object_damage(test, "gzip"));
}

/// The same with zstd objects, whose frames carry checksums of their own.
#[test]
fn a_damaged_zstd_object_file_is_salvaged_up_to_the_damage_and_kept() {
    if let Some(dir) = std::env::var_os(CHILD) {
        return feed_and_wait(Path::new(&dir));
    }
    let test = "damage::a_damaged_zstd_object_file_is_salvaged_up_to_the_damage_and_kept";
    in_own_process(test, || object_damage(test, "zstd"));
}

fn object_damage(test: &str, compression: &str) {
    let dir = tempfile::tempdir().unwrap();
    let before = store_with_delivered_and_open_objects(dir.path(), test, compression);
    // Flip bytes in the middle of the largest object left in the store.
    let objects = dir.path().join(".store/dmg/objects");
    let (damaged, len) = fs::read_dir(&objects)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none())
        .map(|p| {
            let len = fs::metadata(&p).unwrap().len();
            (p, len)
        })
        .max_by_key(|(_, len)| *len)
        .unwrap_or_else(|| {
            let names: Vec<_> = fs::read_dir(&objects)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            panic!("no object left open in {}: {names:?}", objects.display())
        });
    let mut bytes = fs::read(&damaged).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 16].fill(0x5a);
    fs::write(&damaged, &bytes).unwrap();
    // What a crash during a delivery of the object leaves at its key: a temporary file,
    // named by its token. The salvaged object goes to another key, with another token.
    let opened: serde_json::Value =
        serde_json::from_slice(&fs::read(damaged.with_extension("open")).unwrap()).unwrap();
    let at_key = dir
        .path()
        .join(opened["key"].as_str().unwrap().trim_start_matches('/'));
    let temporary = at_key.with_file_name(format!(
        ".{}.{}.tmp",
        at_key.file_name().unwrap().to_string_lossy(),
        opened["token"].as_str().unwrap()
    ));
    fs::create_dir_all(temporary.parent().unwrap()).unwrap();
    fs::write(&temporary, &bytes[..middle]).unwrap();

    let warnings = restart(dir.path(), compression);
    assert!(
        !temporary.exists(),
        "the temporary file of the object's earlier delivery stays: {}",
        temporary.display()
    );
    let id = damaged.file_name().unwrap().to_string_lossy().into_owned();
    let report = warnings
        .iter()
        .find(|line| line.contains(&format!("objects/{id}")) && line.contains("is damaged"))
        .unwrap_or_else(|| panic!("no report of {id} ({len} bytes): {warnings:#?}"));
    assert!(
        report.contains("are intact") && report.contains(&format!("quarantine/{id}.damaged")),
        "{report}"
    );
    let kept = dir
        .path()
        .join(format!(".store/dmg/quarantine/{id}.damaged"));
    assert_eq!(fs::read(&kept).unwrap(), bytes, "the file as found is kept");
    // Everything else arrives, and every object delivered reads back whole.
    let after = delivered(dir.path());
    for (path, bytes) in &before {
        assert_eq!(
            after.get(path),
            Some(bytes),
            "{} was written over",
            path.display()
        );
    }
    for path in after.keys() {
        object_text(path);
    }
}

/// Objects open when the process was killed are finished with the codec they began with,
/// whatever `compression` the restart has: README's promise for a changed configuration.
#[test]
fn open_objects_are_finished_with_their_own_codec_after_a_restart_with_another() {
    if let Some(dir) = std::env::var_os(CHILD) {
        return feed_and_wait(Path::new(&dir));
    }
    let test =
        "damage::open_objects_are_finished_with_their_own_codec_after_a_restart_with_another";
    in_own_process(test, || {
        let dir = tempfile::tempdir().unwrap();
        let before = store_with_delivered_and_open_objects(dir.path(), test, "zstd");
        let open = fs::read_dir(dir.path().join(".store/dmg/objects"))
            .unwrap()
            .filter(|entry| entry.as_ref().unwrap().path().extension().is_none())
            .count();
        assert!(open > 0, "no object was open at the kill");
        let warnings = restart(dir.path(), "gzip");
        assert!(warnings.is_empty(), "{warnings:#?}");
        assert_nothing_lost_or_overwritten(dir.path(), &before);
        for (path, bytes) in delivered(dir.path()) {
            let name = path.to_string_lossy();
            assert!(name.ends_with(".jsonl.zst"), "{name}");
            assert!(
                bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
                "{name} is no zstd"
            );
        }
    });
}

/// What a kill -9 between the journal's record of a delivery and the removal of the
/// object's file leaves: the file, which the journal no longer lists. The object had gone
/// to another key than the one it opened with (that key was taken), so delivering the
/// file again would write its records twice, under a third key.
#[test]
fn an_object_whose_delivery_was_recorded_is_not_delivered_again_from_its_file() {
    in_own_process(
        "damage::an_object_whose_delivery_was_recorded_is_not_delivered_again_from_its_file",
        || {
            let dir = tempfile::tempdir().unwrap();
            let run = |chunks: &[Vec<u8>]| run_to_the_end(dir.path(), "off", chunks);
            // Sealed but not delivered: its file and the file beside it are copied.
            let blocker = block_deliveries(dir.path());
            run(&[numbered_chunk(EventFormat::V2, 0, 50)]);
            let objects = dir.path().join(".store/again/objects");
            let copies = tempfile::tempdir().unwrap();
            for name in ["0", "0.open"] {
                fs::copy(objects.join(name), copies.path().join(name)).unwrap();
            }
            // Its key taken by a file of someone else's: it goes to the next one.
            fs::remove_file(&blocker).unwrap();
            let taken = take_the_key_of(dir.path(), &objects.join("0.open"));
            run(&[]);
            let before = delivered(dir.path());
            assert_eq!(before.len(), 2, "{:?}", before.keys());
            assert!(!objects.join("0").exists());

            // The file is back, as the kill left it.
            for name in ["0", "0.open"] {
                fs::copy(copies.path().join(name), objects.join(name)).unwrap();
            }
            take_log_lines();
            run(&[]);
            let warnings: Vec<_> = take_log_lines()
                .into_iter()
                .filter(|line| line.level <= 2)
                .map(|line| line.message)
                .collect();
            assert!(warnings.is_empty(), "{warnings:#?}");
            assert_eq!(delivered(dir.path()), before, "delivered again");
            let left: Vec<_> = fs::read_dir(&objects)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert!(left.is_empty(), "left in the store: {left:?}");
            fs::remove_file(&taken).unwrap();
            assert_eq!(numbers(dir.path(), "t"), (0..50).collect::<Vec<_>>());
        },
    );
}

/// A key taken at the destination sends an object to the next key of its series, in the
/// journal and in the file beside the object: when the journal is lost, the object is
/// recovered with the key it had.
#[test]
fn a_new_key_is_kept_beside_the_object_for_a_lost_journal() {
    in_own_process(
        "damage::a_new_key_is_kept_beside_the_object_for_a_lost_journal",
        || {
            let dir = tempfile::tempdir().unwrap();
            let blocker = block_deliveries(dir.path());
            run_to_the_end(dir.path(), "off", &[numbered_chunk(EventFormat::V2, 0, 50)]);
            fs::remove_file(&blocker).unwrap();
            let objects = dir.path().join(".store/again/objects");
            let taken = take_the_key_of(dir.path(), &objects.join("0.open"));
            // The delivery to the next key fails, for now: a folder is where its temporary
            // file goes.
            let name = taken
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace("-0.", "-1.");
            let next = taken.with_file_name(&name);
            let opened: serde_json::Value =
                serde_json::from_slice(&fs::read(objects.join("0.open")).unwrap()).unwrap();
            let in_the_way =
                taken.with_file_name(format!(".{name}.{}.tmp", opened["token"].as_str().unwrap()));
            fs::create_dir(&in_the_way).unwrap();
            run_to_the_end(dir.path(), "off", &[]);
            let opened: serde_json::Value =
                serde_json::from_slice(&fs::read(objects.join("0.open")).unwrap()).unwrap();
            assert!(opened["key"].as_str().unwrap().ends_with(&name), "{opened}");

            fs::remove_dir(&in_the_way).unwrap();
            fs::remove_file(dir.path().join(".store/again/journal")).unwrap();
            take_log_lines();
            run_to_the_end(dir.path(), "off", &[]);
            let taken_again: Vec<_> = take_log_lines()
                .into_iter()
                .filter(|line| line.message.contains("already holds another object"))
                .map(|line| line.message)
                .collect();
            assert!(taken_again.is_empty(), "{taken_again:#?}");
            assert!(next.is_file(), "not delivered at {}", next.display());
            fs::remove_file(&taken).unwrap();
            assert_eq!(numbers(dir.path(), "t"), (0..50).collect::<Vec<_>>());
        },
    );
}

/// Starts an instance on `dir` (alias `again`, `time_window` as given), flushes `chunks`
/// of tag `t`, and stops it.
fn run_to_the_end(dir: &Path, time_window: &str, chunks: &[Vec<u8>]) {
    let keys = [
        ("Alias", "again"),
        ("time_window", time_window),
        ("upload_timeout", "1s"),
        ("shutdown_timeout", "1s"),
    ];
    let mut fluent_bit = load(HostVersion::V5);
    let out = fluent_bit.add_output(&dir_output(dir, &keys)).unwrap();
    for chunk in chunks {
        assert_eq!(fluent_bit.flusher(out).flush(chunk, "t"), FLB_OK);
    }
    fluent_bit.shutdown().unwrap();
}

/// Puts a file of someone else's at the key in `opened` (an object's file beside it);
/// returns its path.
fn take_the_key_of(dir: &Path, opened: &Path) -> PathBuf {
    let opened: serde_json::Value = serde_json::from_slice(&fs::read(opened).unwrap()).unwrap();
    let taken = dir.join(opened["key"].as_str().unwrap().trim_start_matches('/'));
    fs::create_dir_all(taken.parent().unwrap()).unwrap();
    fs::write(&taken, b"someone else's\n").unwrap();
    taken
}

/// An object from before a restart that still waits for its delivery keeps its key: a new
/// object of the same series gets the next one, however old their window, rather than
/// racing it to the same key.
#[test]
fn a_new_object_never_takes_the_key_of_one_waiting_for_delivery() {
    in_own_process(
        "damage::a_new_object_never_takes_the_key_of_one_waiting_for_delivery",
        || {
            let dir = tempfile::tempdir().unwrap();
            block_deliveries(dir.path());
            // Records of 2024: a window whose series is long past.
            let window = "1h";
            run_to_the_end(
                dir.path(),
                window,
                &[numbered_chunk(EventFormat::V2, 0, 50)],
            );
            run_to_the_end(
                dir.path(),
                window,
                &[numbered_chunk(EventFormat::V2, 50, 50)],
            );
            let objects = dir.path().join(".store/again/objects");
            let mut keys: Vec<String> = ["0.open", "1.open"]
                .iter()
                .map(|name| {
                    let bytes = fs::read(objects.join(name)).unwrap();
                    let opened: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                    opened["key"].as_str().unwrap().to_owned()
                })
                .collect();
            keys.dedup();
            assert_eq!(keys.len(), 2, "{keys:?}");
        },
    );
}
