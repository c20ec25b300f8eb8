//! Objects whose delivery keeps failing: quarantined and tried again (at every start, on a
//! slow schedule, on `rustsink redrive`), never given up with `no_limits`, or deleted when
//! `retry_exhausted_action delete` says so.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rustsink::event::chunk::EventFormat;
use rustsink_cli::harness::{HostVersion, take_log_lines};

use crate::support::*;

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "waited too long for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn files_in(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(folder)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The Fluent Bit configuration file of the instance the harness runs, for the command.
fn conf_file(dir: &Path, keys: &[(&str, &str)]) -> std::path::PathBuf {
    let mut text = format!(
        "[OUTPUT]\n    Name rustsink\n    Match *\n    sink dir\n    path {}\n    store_dir {}\n",
        dir.display(),
        dir.join(".store").display()
    );
    for (key, value) in keys {
        text.push_str(&format!("    {key} {value}\n"));
    }
    let path = dir.join("fluent-bit.conf");
    fs::write(&path, text).unwrap();
    path
}

fn redrive(conf: &Path) -> String {
    let out = Command::new(rustsink_bin())
        .args(["redrive", "--config"])
        .arg(conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn quarantined_objects_are_tried_again_on_redrive_and_at_start() {
    in_own_process(
        "quarantine::quarantined_objects_are_tried_again_on_redrive_and_at_start",
        || {
            let dir = tempfile::tempdir().unwrap();
            let blocker = block_deliveries(dir.path());
            let keys = [
                ("Alias", "q"),
                ("upload_retry_limit", "1"),
                ("upload_timeout", "1s"),
                ("shutdown_timeout", "1s"),
            ];
            let conf = conf_file(dir.path(), &keys);
            let quarantine = dir.path().join(".store/q/quarantine");

            // Quarantined while the way is blocked; a redrive then changes nothing.
            let mut fluent_bit = load(HostVersion::V5);
            let out = fluent_bit
                .add_output(&dir_output(dir.path(), &keys))
                .unwrap();
            let chunk = numbered_chunk(EventFormat::V2, 0, 5);
            assert_eq!(fluent_bit.flusher(out).flush(&chunk, "t"), FLB_OK);
            fluent_bit.shutdown().unwrap();
            assert_eq!(files_in(&quarantine), ["0", "0.key", "0.open"]);

            // The next start tries it again, says so, and it fails again.
            let mut fluent_bit = load(HostVersion::V5);
            take_log_lines();
            let out = fluent_bit
                .add_output(&dir_output(dir.path(), &keys))
                .unwrap();
            let lines: Vec<String> = take_log_lines().into_iter().map(|l| l.message).collect();
            assert!(
                lines.iter().any(|line| line.contains("1 objects (")
                    && line.contains("wait in quarantine")
                    && line.contains("rustsink/t/year=2024/")),
                "{lines:#?}"
            );
            let said = redrive(&conf);
            assert!(
                said.contains("1 objects (") && said.contains("the running instance tries them"),
                "{said}"
            );
            let chunk = numbered_chunk(EventFormat::V2, 5, 5);
            assert_eq!(fluent_bit.flusher(out).flush(&chunk, "t"), FLB_OK);
            wait_for(
                "the second object's quarantine",
                Duration::from_secs(20),
                || files_in(&quarantine).len() == 6,
            );

            // The cause is fixed; a redrive delivers both within a second or two.
            fs::remove_file(&blocker).unwrap();
            redrive(&conf);
            wait_for("the redrive", Duration::from_secs(20), || {
                files_in(&quarantine).is_empty()
            });
            fluent_bit.shutdown().unwrap();
            let mut seen = numbers(dir.path(), "t");
            seen.sort_unstable();
            assert_eq!(seen, (0..10).collect::<Vec<_>>());

            // Quarantined again, Fluent Bit stopped: the next start delivers it.
            let blocker = dir.path().join("rustsink/t/year=2024");
            fs::remove_dir_all(&blocker).unwrap();
            fs::write(&blocker, "in the way").unwrap();
            let mut fluent_bit = load(HostVersion::V5);
            let out = fluent_bit
                .add_output(&dir_output(dir.path(), &keys))
                .unwrap();
            let chunk = numbered_chunk(EventFormat::V2, 10, 5);
            assert_eq!(fluent_bit.flusher(out).flush(&chunk, "t"), FLB_OK);
            fluent_bit.shutdown().unwrap();
            assert_eq!(files_in(&quarantine).len(), 3);
            let said = redrive(&conf);
            assert!(
                said.contains("they are tried again when Fluent Bit starts"),
                "{said}"
            );
            fs::remove_file(&blocker).unwrap();
            let mut fluent_bit = load(HostVersion::V5);
            fluent_bit
                .add_output(&dir_output(dir.path(), &keys))
                .unwrap();
            wait_for("the delivery at start", Duration::from_secs(20), || {
                files_in(&quarantine).is_empty()
            });
            fluent_bit.shutdown().unwrap();
            let mut seen = numbers(dir.path(), "t");
            seen.sort_unstable();
            // The objects of 0..10 went with the folder that the blocker replaced.
            assert_eq!(seen, (10..15).collect::<Vec<_>>());
        },
    );
}

#[test]
fn with_no_limits_an_object_is_never_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = block_deliveries(dir.path());
    let keys = [
        ("Alias", "forever"),
        ("upload_retry_limit", "no_limits"),
        ("upload_timeout", "1s"),
    ];
    let mut fluent_bit = load(HostVersion::V5);
    let out = fluent_bit
        .add_output(&dir_output(dir.path(), &keys))
        .unwrap();
    let chunk = numbered_chunk(EventFormat::V2, 0, 5);
    assert_eq!(fluent_bit.flusher(out).flush(&chunk, "t"), FLB_OK);
    // Past the third attempt (the object closes after 1 s, then 1 s and 2 s of backoff),
    // the way clears.
    std::thread::sleep(Duration::from_millis(5500));
    assert!(files_in(&dir.path().join(".store/forever/quarantine")).is_empty());
    fs::remove_file(&blocker).unwrap();
    wait_for("the delivery", Duration::from_secs(20), || {
        dir.path().join("rustsink").is_dir()
    });
    fluent_bit.shutdown().unwrap();
    assert_eq!(numbers(dir.path(), "t"), (0..5).collect::<Vec<_>>());
}

#[test]
fn retry_exhausted_action_delete_deletes_with_an_error_line() {
    in_own_process(
        "quarantine::retry_exhausted_action_delete_deletes_with_an_error_line",
        || {
            let dir = tempfile::tempdir().unwrap();
            block_deliveries(dir.path());
            let keys = [
                ("Alias", "gone"),
                ("upload_retry_limit", "1"),
                ("retry_exhausted_action", "delete"),
                ("shutdown_timeout", "5s"),
            ];
            let mut fluent_bit = load(HostVersion::V5);
            let out = fluent_bit
                .add_output(&dir_output(dir.path(), &keys))
                .unwrap();
            take_log_lines();
            let chunk = numbered_chunk(EventFormat::V2, 0, 5);
            assert_eq!(fluent_bit.flusher(out).flush(&chunk, "t"), FLB_OK);
            fluent_bit.shutdown().unwrap();
            let errors: Vec<String> = take_log_lines()
                .into_iter()
                .filter(|line| line.level == 1)
                .map(|line| line.message)
                .collect();
            assert_eq!(errors.len(), 1, "{errors:#?}");
            assert!(
                errors[0].contains("rustsink/t/year=2024/")
                    && errors[0].contains("it is deleted, as retry_exhausted_action delete says"),
                "{}",
                errors[0]
            );
            let store = dir.path().join(".store/gone");
            assert!(files_in(&store.join("quarantine")).is_empty());
            assert!(files_in(&store.join("objects")).is_empty());
        },
    );
}
