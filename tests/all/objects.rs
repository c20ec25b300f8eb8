//! The object engine seen from outside: windows, cuts, keys, the store limit and the
//! journal, through the built library and real files.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use rustsink::event::EventTime;
use rustsink::event::chunk::{ChunkWriter, EventFormat, TimeForm};
use rustsink_cli::harness::{HostVersion, take_log_lines};

use crate::support::*;

/// 2024-05-01 10:00:00 UTC.
const TEN_O_CLOCK: i64 = 1_714_557_600;

fn chunk_at(times: &[(i64, u64)]) -> Vec<u8> {
    let mut chunk = ChunkWriter::new();
    for &(seconds, n) in times {
        chunk.push(
            EventFormat::V2,
            TimeForm::EventTime,
            EventTime::new(seconds, 0),
            None,
            record("line", n),
        );
    }
    chunk.finish()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "waited too long for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn numbers_of(path: &Path) -> Vec<u64> {
    object_text(path)
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn late_and_out_of_order_records_land_in_objects_of_their_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut fluent_bit = load(HostVersion::V5);
    let out = fluent_bit
        .add_output(&dir_output(dir.path(), &[("window_wait", "1s")]))
        .unwrap();
    // 10:xx, 11:xx and 10:xx again, out of order in one chunk.
    let first = chunk_at(&[
        (TEN_O_CLOCK + 5, 0),
        (TEN_O_CLOCK + 3600 + 1, 1),
        (TEN_O_CLOCK + 3599, 2),
    ]);
    assert_eq!(fluent_bit.flusher(out).flush(&first, "app"), FLB_OK);
    // Both windows ended long ago: the objects close a second after they opened.
    wait_for("two objects", || objects(dir.path()).len() == 2);
    // A late record for 10:xx goes into a new object of that window.
    let late = chunk_at(&[(TEN_O_CLOCK + 60, 3)]);
    assert_eq!(fluent_bit.flusher(out).flush(&late, "app"), FLB_OK);
    fluent_bit.shutdown().unwrap();

    let hour = |h: &str| {
        objects(
            &dir.path()
                .join(format!("rustsink/app/year=2024/month=05/day=01/hour={h}")),
        )
    };
    let ten = hour("10");
    assert_eq!(ten.len(), 2, "{ten:?}");
    assert_eq!(numbers_of(&ten[0]), vec![0, 2]);
    assert_eq!(numbers_of(&ten[1]), vec![3]);
    assert_ne!(object_index(&ten[0]), object_index(&ten[1]));
    let eleven = hour("11");
    assert_eq!(eleven.len(), 1);
    assert_eq!(numbers_of(&eleven[0]), vec![1]);
}

#[test]
fn objects_are_cut_at_total_file_size_in_compressed_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut fluent_bit = load(HostVersion::V5);
    let out = fluent_bit
        .add_output(&dir_output(
            dir.path(),
            &[("total_file_size", "32K"), ("time_window", "off")],
        ))
        .unwrap();
    // Numbered records with varied text compress to roughly 10 bytes each.
    for part in 0..20 {
        let chunk = numbered_chunk(EventFormat::V2, part * 1000, 1000);
        assert_eq!(fluent_bit.flusher(out).flush(&chunk, "big"), FLB_OK);
    }
    fluent_bit.shutdown().unwrap();
    let written = objects(dir.path());
    assert!(written.len() >= 3, "{written:?}");
    for (at, path) in written.iter().enumerate() {
        let size = fs::metadata(path).unwrap().len();
        assert!(
            size < 32 * 1024 + 64 * 1024,
            "{} is {size} bytes",
            path.display()
        );
        if at + 1 < written.len() {
            assert!(
                size >= 32 * 1024,
                "{} was cut early at {size} bytes",
                path.display()
            );
        }
    }
    assert_eq!(numbers(dir.path(), "big"), (0..20_000).collect::<Vec<_>>());
}

#[test]
fn upload_timeout_delivers_without_waiting_for_exit() {
    let dir = tempfile::tempdir().unwrap();
    let mut fluent_bit = load(HostVersion::V5);
    let out = fluent_bit
        .add_output(&dir_output(
            dir.path(),
            &[("time_window", "off"), ("upload_timeout", "1s")],
        ))
        .unwrap();
    let opened_year = chrono::Utc::now().format("year=%Y").to_string();
    for tag in ["one", "two"] {
        let chunk = numbered_chunk(EventFormat::V1, 0, 3);
        assert_eq!(fluent_bit.flusher(out).flush(&chunk, tag), FLB_OK);
    }
    wait_for("both objects", || objects(dir.path()).len() == 2);
    // With windows off, the key's strftime uses the time the object opened.
    assert!(
        objects(dir.path())
            .iter()
            .all(|p| p.display().to_string().contains(&opened_year)),
        "{:?}",
        objects(dir.path())
    );
    fluent_bit.shutdown().unwrap();
    assert_eq!(numbers(dir.path(), "one"), vec![0, 1, 2]);
}

#[test]
fn many_tags_at_once_each_get_their_own_objects() {
    let dir = tempfile::tempdir().unwrap();
    let mut fluent_bit = load(HostVersion::V5);
    let out = fluent_bit
        .add_output(&dir_output(dir.path(), &[("compression_threads", "4")]))
        .unwrap();
    let flusher = fluent_bit.flusher(out);
    std::thread::scope(|scope| {
        for tag in 0..40u64 {
            let flusher = &flusher;
            scope.spawn(move || {
                let chunk = numbered_chunk(EventFormat::V2, tag * 100, 100);
                assert_eq!(flusher.flush(&chunk, &format!("app.{tag}")), FLB_OK);
            });
        }
    });
    fluent_bit.shutdown().unwrap();
    for tag in 0..40u64 {
        assert_eq!(
            numbers(dir.path(), &format!("app.{tag}")),
            (tag * 100..tag * 100 + 100).collect::<Vec<_>>()
        );
    }
}

#[test]
fn at_store_dir_limit_size_flushes_retry_and_the_log_says_so_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut fluent_bit = load(HostVersion::V5);
    let out = fluent_bit
        .add_output(&dir_output(
            dir.path(),
            &[
                ("compression", "none"),
                ("store_dir_limit_size", "40K"),
                ("upload_timeout", "2s"),
            ],
        ))
        .unwrap();
    take_log_lines();
    let chunk = |n: u64| numbered_chunk(EventFormat::V2, n * 500, 500);
    // About 25 KiB of JSON lines each: the second crosses the limit.
    assert_eq!(fluent_bit.flusher(out).flush(&chunk(0), "t"), FLB_OK);
    assert_eq!(fluent_bit.flusher(out).flush(&chunk(1), "t"), FLB_OK);
    for _ in 0..3 {
        assert_eq!(fluent_bit.flusher(out).flush(&chunk(2), "t"), FLB_RETRY);
    }
    // Once the object is delivered, the space is free again.
    wait_for("the retried chunk", || {
        fluent_bit.flusher(out).flush(&chunk(2), "t") == FLB_OK
    });
    let lines: Vec<String> = take_log_lines().into_iter().map(|l| l.message).collect();
    let at_limit = lines
        .iter()
        .filter(|line| line.contains("at store_dir_limit_size"))
        .count();
    assert_eq!(at_limit, 1, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|line| line.contains("below store_dir_limit_size again"))
    );
    fluent_bit.shutdown().unwrap();
    assert_eq!(numbers(dir.path(), "t"), (0..1500).collect::<Vec<_>>());
}

#[test]
fn a_full_destination_keeps_the_objects_until_space_returns() {
    let name = "objects::a_full_destination_keeps_the_objects_until_space_returns";
    in_mount_namespace(name, || {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        let out_text = out.to_str().unwrap();
        mount(&["-t", "tmpfs", "-o", "size=64k", "tmpfs", out_text]);
        let store = dir.path().join("store");
        let mut fluent_bit = load(HostVersion::V5);
        let id = fluent_bit
            .add_output(&dir_output(
                &out,
                &[
                    ("store_dir", store.to_str().unwrap()),
                    ("compression", "none"),
                    ("upload_timeout", "1s"),
                    ("shutdown_timeout", "30s"),
                ],
            ))
            .unwrap();
        take_log_lines();
        // About 200 KiB of JSON lines: more than the destination holds.
        for n in 0..8 {
            let chunk = numbered_chunk(EventFormat::V2, n * 500, 500);
            assert_eq!(fluent_bit.flusher(id).flush(&chunk, "t"), FLB_OK);
        }
        let mut lines = Vec::new();
        wait_for("a delivery that fails for lack of space", || {
            lines.extend(take_log_lines().into_iter().map(|line| line.message));
            lines
                .iter()
                .any(|line| line.contains("No space left on device"))
        });
        let temporary = |path: &String| path.ends_with(".tmp");
        let partial: Vec<_> = walk_files(&out).into_iter().filter(temporary).collect();
        assert!(partial.is_empty(), "a failed copy is removed: {partial:?}");
        assert!(numbers(&out, "t").len() < 4000);
        mount(&["-o", "remount,size=16m", out_text]);
        wait_for("every object delivered once space returned", || {
            numbers(&out, "t").len() == 4000
        });
        fluent_bit.shutdown().unwrap();
        assert_eq!(numbers(&out, "t"), (0..4000).collect::<Vec<_>>());
        assert!(!walk_files(&out).iter().any(temporary), "no temporary file");
    });
}

#[test]
fn sink_dir_links_the_store_file_where_both_share_a_filesystem() {
    use std::os::unix::fs::MetadataExt;

    let dir = tempfile::tempdir().unwrap();
    let mut fluent_bit = load(HostVersion::V5);
    let keys = [("Alias", "linked"), ("compression", "zstd")];
    let out = fluent_bit
        .add_output(&dir_output(dir.path(), &keys))
        .unwrap();
    let chunk = numbered_chunk(EventFormat::V2, 0, 200);
    assert_eq!(fluent_bit.flusher(out).flush(&chunk, "t"), FLB_OK);
    // The open object's file, the only one in the store without a name's end.
    let objects = dir.path().join(".store/linked/objects");
    let stored: Vec<_> = fs::read_dir(&objects)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_none())
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let stored_inode = fs::metadata(&stored[0]).unwrap().ino();
    fluent_bit.shutdown().unwrap();

    let delivered = crate::support::objects(dir.path());
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let metadata = fs::metadata(&delivered[0]).unwrap();
    assert_eq!(
        metadata.ino(),
        stored_inode,
        "the delivered object is the store's file, linked, not a copy"
    );
    assert_eq!(metadata.nlink(), 1, "the store let go of its name");
    assert_eq!(metadata.mode() & 0o777, 0o640, "file_mode's default");
    assert_eq!(numbers(dir.path(), "t"), (0..200).collect::<Vec<_>>());
}

/// Every file under `dir`, hidden ones too.
fn walk_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[test]
fn two_agents_on_one_path_never_collide_and_index_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let fluentd_layout = [("s3_key_format", "logs/%Y%m%d%H_$INDEX.gz")];
    for run in 0..3u64 {
        let mut fluent_bit = load(HostVersion::V5);
        // Two agents: same host, same tag, same window, same Alias, their own store_dir.
        for agent in ["a", "b"] {
            let store = dir.path().join(format!(".store-{agent}"));
            let store = store.to_str().unwrap();
            let out = fluent_bit
                .add_output(&dir_output(
                    dir.path(),
                    &[("Alias", "shared"), ("store_dir", store)],
                ))
                .unwrap();
            let chunk = numbered_chunk(EventFormat::V2, run * 10, 10);
            assert_eq!(fluent_bit.flusher(out).flush(&chunk, "app"), FLB_OK);
        }
        // Agent a again, with the fluentd-style key: the index goes on across restarts.
        let store = dir.path().join(".store-fluentd");
        let mut keys = fluentd_layout.to_vec();
        keys.push(("store_dir", store.to_str().unwrap()));
        let out = fluent_bit
            .add_output(&dir_output(dir.path(), &keys))
            .unwrap();
        let chunk = numbered_chunk(EventFormat::V2, run * 10, 10);
        assert_eq!(fluent_bit.flusher(out).flush(&chunk, "app"), FLB_OK);
        fluent_bit.shutdown().unwrap();
    }
    let mut seen = numbers(dir.path(), "app");
    seen.sort_unstable();
    let expected: Vec<u64> = (0..30).flat_map(|n| [n, n]).collect();
    assert_eq!(seen, expected, "each agent's records, each once");
    assert_eq!(objects(&dir.path().join("rustsink/app")).len(), 6);
    let fluentd: Vec<String> = objects(&dir.path().join("logs"))
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        fluentd,
        ["2024050110_0.gz", "2024050110_1.gz", "2024050110_2.gz"]
    );
}

#[test]
fn a_corrupt_journal_tail_is_reported_and_what_is_intact_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    // The destination cannot take the object in the first run.
    let blocked = block_deliveries(dir.path());
    let mut fluent_bit = load(HostVersion::V5);
    let keys = [("shutdown_timeout", "1s"), ("Alias", "torn")];
    let out = fluent_bit
        .add_output(&dir_output(dir.path(), &keys))
        .unwrap();
    let chunk = numbered_chunk(EventFormat::V2, 0, 50);
    assert_eq!(fluent_bit.flusher(out).flush(&chunk, "t"), FLB_OK);
    fluent_bit.shutdown().unwrap();
    // A torn write at the end of the journal.
    let journal = dir.path().join(".store/torn/journal");
    let intact = fs::metadata(&journal).unwrap().len();
    let mut bytes = fs::read(&journal).unwrap();
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, b'{', b'"']);
    fs::write(&journal, &bytes).unwrap();
    fs::remove_file(&blocked).unwrap();

    let mut fluent_bit = load(HostVersion::V5);
    take_log_lines();
    fluent_bit
        .add_output(&dir_output(dir.path(), &keys))
        .unwrap();
    let lines: Vec<String> = take_log_lines().into_iter().map(|l| l.message).collect();
    let report = lines
        .iter()
        .find(|line| line.contains("that are not a whole record"))
        .unwrap_or_else(|| panic!("no report: {lines:#?}"));
    assert!(
        report.contains(&format!("ends with 10 bytes at byte {intact}")),
        "{report}"
    );
    fluent_bit.shutdown().unwrap();
    assert_eq!(numbers(dir.path(), "t"), (0..50).collect::<Vec<_>>());
    let saved: Vec<_> = fs::read_dir(journal.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().contains("journal.torn-"))
        .collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_eq!(fs::read(&saved[0]).unwrap(), &bytes[intact as usize..]);
}

#[test]
fn after_upload_retry_limit_an_object_is_quarantined_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    block_deliveries(dir.path());
    let mut fluent_bit = load(HostVersion::V5);
    let keys = [
        ("Alias", "q"),
        ("upload_retry_limit", "2"),
        ("shutdown_timeout", "20s"),
    ];
    let out = fluent_bit
        .add_output(&dir_output(dir.path(), &keys))
        .unwrap();
    take_log_lines();
    let chunk = numbered_chunk(EventFormat::V2, 0, 7);
    assert_eq!(fluent_bit.flusher(out).flush(&chunk, "t"), FLB_OK);
    fluent_bit.shutdown().unwrap();
    let errors: Vec<String> = take_log_lines()
        .into_iter()
        .filter(|line| line.level == 1)
        .map(|line| line.message)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let quarantine = dir.path().join(".store/q/quarantine");
    let key = fs::read_to_string(quarantine.join("0.key")).unwrap();
    assert!(key.starts_with("rustsink/t/year=2024/"), "{key}");
    assert!(
        errors[0].contains(&key) && errors[0].contains("after 2 attempts"),
        "{}",
        errors[0]
    );
    assert_eq!(
        numbers_of(&quarantine.join("0")),
        (0..7).collect::<Vec<_>>()
    );
    assert!(
        fs::read_dir(dir.path().join(".store/q/objects"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn identical_chunks_in_separate_flushes_are_all_written_even_across_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let chunk = numbered_chunk(EventFormat::V2, 0, 3);
    for flushes in [2, 1] {
        let mut fluent_bit = load(HostVersion::V5);
        let out = fluent_bit.add_output(&dir_output(dir.path(), &[])).unwrap();
        for _ in 0..flushes {
            assert_eq!(fluent_bit.flusher(out).flush(&chunk, "same"), FLB_OK);
        }
        fluent_bit.shutdown().unwrap();
    }
    let mut seen = numbers(dir.path(), "same");
    seen.sort_unstable();
    assert_eq!(
        seen,
        [0, 0, 0, 1, 1, 1, 2, 2, 2],
        "the same lines, three times"
    );
}

#[test]
fn tags_that_differ_only_in_bytes_that_are_not_utf8_get_their_own_objects() {
    let dir = tempfile::tempdir().unwrap();
    let mut fluent_bit = load(HostVersion::V5);
    let out = fluent_bit.add_output(&dir_output(dir.path(), &[])).unwrap();
    let flusher = fluent_bit.flusher(out);
    assert_eq!(
        flusher.flush(&numbered_chunk(EventFormat::V2, 0, 2), b"bad\xff\xfe"),
        FLB_OK
    );
    assert_eq!(
        flusher.flush(&numbered_chunk(EventFormat::V2, 2, 3), b"bad\xff\xfd"),
        FLB_OK
    );
    fluent_bit.shutdown().unwrap();
    assert_eq!(numbers(dir.path(), "bad%FF%FE"), [0, 1]);
    assert_eq!(numbers(dir.path(), "bad%FF%FD"), [2, 3, 4]);
}

#[test]
fn shutdown_names_what_stays_undelivered_and_a_late_delivery_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let blocked = block_deliveries(dir.path());
    let keys = [("Alias", "late"), ("shutdown_timeout", "1s")];
    let mut fluent_bit = load(HostVersion::V5);
    let out = fluent_bit
        .add_output(&dir_output(dir.path(), &keys))
        .unwrap();
    let chunk = numbered_chunk(EventFormat::V2, 0, 20);
    assert_eq!(fluent_bit.flusher(out).flush(&chunk, "t"), FLB_OK);
    take_log_lines();
    fluent_bit.shutdown().unwrap();
    let lines: Vec<String> = take_log_lines().into_iter().map(|l| l.message).collect();
    let stays = lines
        .iter()
        .find(|line| line.contains("were not delivered"))
        .unwrap_or_else(|| panic!("no line says what stays: {lines:#?}"));
    assert!(
        stays.contains("1 objects (")
            && stays.contains(".store/late")
            && stays.contains("The oldest is 'rustsink/t/year=2024/"),
        "{stays}"
    );

    // The next run: the first attempt fails, then the way is cleared.
    let mut fluent_bit = load(HostVersion::V5);
    take_log_lines();
    fluent_bit
        .add_output(&dir_output(dir.path(), &keys))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    fs::remove_file(&blocked).unwrap();
    wait_for("the late delivery", || dir.path().join("rustsink").is_dir());
    fluent_bit.shutdown().unwrap();
    let infos: Vec<String> = take_log_lines()
        .into_iter()
        .filter(|line| line.level == 3)
        .map(|line| line.message)
        .collect();
    assert!(
        infos
            .iter()
            .any(|line| line.contains("delivered object 'rustsink/t/")
                && line.contains("after 2 attempts")),
        "{infos:#?}"
    );
    assert_eq!(numbers(dir.path(), "t"), (0..20).collect::<Vec<_>>());
}

#[test]
fn a_fresh_store_never_overwrites_and_the_fluentd_layout_counts_from_0_each_hour() {
    let dir = tempfile::tempdir().unwrap();
    let eleven = TEN_O_CLOCK + 3600;
    for store in [".store-first", ".store-fresh"] {
        let mut fluent_bit = load(HostVersion::V5);
        let store = dir.path().join(store);
        let keys = [
            ("s3_key_format", "logs/%Y%m%d%H_$INDEX.gz"),
            ("store_dir", store.to_str().unwrap()),
        ];
        let out = fluent_bit
            .add_output(&dir_output(dir.path(), &keys))
            .unwrap();
        let chunk = chunk_at(&[(TEN_O_CLOCK, 1), (TEN_O_CLOCK + 5, 2), (eleven, 3)]);
        assert_eq!(fluent_bit.flusher(out).flush(&chunk, "app"), FLB_OK);
        fluent_bit.shutdown().unwrap();
    }
    let mut landed: Vec<(String, Vec<u64>)> = objects(&dir.path().join("logs"))
        .iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, numbers_of(path))
        })
        .collect();
    landed.sort();
    assert_eq!(
        landed,
        [
            ("2024050110_0.gz".to_owned(), vec![1, 2]),
            ("2024050110_1.gz".to_owned(), vec![1, 2]),
            ("2024050111_0.gz".to_owned(), vec![3]),
            ("2024050111_1.gz".to_owned(), vec![3]),
        ]
    );
}

#[test]
fn at_the_descriptor_limit_many_tags_are_all_accepted() {
    in_own_process(
        "objects::at_the_descriptor_limit_many_tags_are_all_accepted",
        || {
            // As `ulimit -n 256` would leave it: max_open_objects defaults to 64.
            let limit = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            // SAFETY: setrlimit reads the struct given, which lives for the call.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
            let dir = tempfile::tempdir().unwrap();
            let mut fluent_bit = load(HostVersion::V5);
            let out = fluent_bit
                .add_output(&dir_output(dir.path(), &[("shutdown_timeout", "60s")]))
                .unwrap();
            take_log_lines();
            for tag in 0..400u64 {
                let chunk = numbered_chunk(EventFormat::V2, tag * 3, 3);
                let status = fluent_bit.flusher(out).flush(&chunk, &format!("tag{tag}"));
                assert_eq!(status, FLB_OK, "tag{tag}");
            }
            let lines: Vec<String> = take_log_lines().into_iter().map(|l| l.message).collect();
            assert!(
                lines
                    .iter()
                    .any(|line| line.contains("at max_open_objects (64)")),
                "{lines:#?}"
            );
            fluent_bit.shutdown().unwrap();
            for tag in 0..400u64 {
                let expected: Vec<u64> = (tag * 3..tag * 3 + 3).collect();
                assert_eq!(numbers(dir.path(), &format!("tag{tag}")), expected);
            }
        },
    );
}

/// A chunk of records `{"log": "<access log line n>", "n": n}`.
fn access_log_chunk(first: u64, count: u64) -> Vec<u8> {
    let mut chunk = ChunkWriter::new();
    for n in first..first + count {
        let line = format!(
            "10.0.0.{} - - \"GET /item/{n} HTTP/1.1\" 200 {}",
            n % 256,
            n * 7
        );
        chunk.push(
            EventFormat::V2,
            TimeForm::EventTime,
            EventTime::new(TEN_O_CLOCK, 0),
            None,
            record(&line, n),
        );
    }
    chunk.finish()
}

#[test]
fn log_key_writes_the_field_alone_and_a_record_without_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut fluent_bit = load(HostVersion::V5);
    let out = fluent_bit
        .add_output(&dir_output(dir.path(), &[("log_key", "log")]))
        .unwrap();
    take_log_lines();
    assert_eq!(
        fluent_bit
            .flusher(out)
            .flush(&access_log_chunk(0, 3), "web"),
        FLB_OK
    );
    let mut other = ChunkWriter::new();
    other.push(
        EventFormat::V2,
        TimeForm::EventTime,
        EventTime::new(TEN_O_CLOCK, 0),
        None,
        rmpv::Value::Map(vec![("msg".into(), "no log field".into())]),
    );
    assert_eq!(
        fluent_bit.flusher(out).flush(&other.finish(), "web"),
        FLB_OK
    );
    fluent_bit.shutdown().unwrap();
    let objects = objects(&dir.path().join("rustsink/web"));
    assert_eq!(objects.len(), 1);
    assert_eq!(
        object_text(&objects[0]),
        "10.0.0.0 - - \"GET /item/0 HTTP/1.1\" 200 0\n\
         10.0.0.1 - - \"GET /item/1 HTTP/1.1\" 200 7\n\
         10.0.0.2 - - \"GET /item/2 HTTP/1.1\" 200 14\n\
         {\"date\":\"2024-05-01T10:00:00.000000Z\",\"msg\":\"no log field\"}\n"
    );
    let warned = take_log_lines().into_iter().any(|line| {
        line.message
            .contains("1 of 1 records of tag 'web' have no field 'log'")
    });
    assert!(warned, "no warning of the record without 'log'");
}

#[test]
fn a_damaged_object_of_log_key_lines_is_salvaged_up_to_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        ("Alias", "raw"),
        ("log_key", "log"),
        ("shutdown_timeout", "1s"),
    ];
    // Three commits, each a block of its own; the deliveries fail, so the sealed object
    // stays in the store.
    let blocker = block_deliveries(dir.path());
    let mut fluent_bit = load(HostVersion::V5);
    let out = fluent_bit
        .add_output(&dir_output(dir.path(), &keys))
        .unwrap();
    for first in [0, 1000, 2000] {
        let chunk = access_log_chunk(first, 1000);
        assert_eq!(fluent_bit.flusher(out).flush(&chunk, "web"), FLB_OK);
    }
    fluent_bit.shutdown().unwrap();
    // Its end cut off, within the last block.
    let object = dir.path().join(".store/raw/objects/0");
    let bytes = fs::read(&object).unwrap();
    fs::write(&object, &bytes[..bytes.len() - 40]).unwrap();
    fs::remove_file(blocker).unwrap();

    let mut fluent_bit = load(HostVersion::V5);
    take_log_lines();
    fluent_bit
        .add_output(&dir_output(dir.path(), &keys))
        .unwrap();
    fluent_bit.shutdown().unwrap();
    let report = take_log_lines()
        .into_iter()
        .map(|line| line.message)
        .find(|message| message.contains("objects/0") && message.contains("is damaged"));
    let report = report.expect("no report of the damaged object");
    assert!(report.contains("are intact"), "{report}");
    // The first two blocks' lines arrive, as they were written: not JSON, and not lost.
    let objects = objects(&dir.path().join("rustsink/web"));
    assert_eq!(objects.len(), 1, "{objects:?}");
    let text = object_text(&objects[0]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2000, "{}", lines.len());
    assert_eq!(
        lines[1999],
        "10.0.0.207 - - \"GET /item/1999 HTTP/1.1\" 200 13993"
    );
}
