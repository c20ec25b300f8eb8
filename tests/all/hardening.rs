//! What a local user could try against rustsink's files: read them, plant a store for it,
//! or steer it out of its store with an Alias.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use rustsink::event::chunk::EventFormat;
use rustsink_cli::harness::{HostVersion, take_log_lines};

use crate::support::*;

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

#[test]
fn store_files_are_private_and_delivered_objects_are_0640() {
    let dir = tempfile::tempdir().unwrap();
    // The objects stay in the store.
    let blocker = block_deliveries(dir.path());
    let keys = [("Alias", "modes"), ("shutdown_timeout", "1s")];
    let mut fluent_bit = load(HostVersion::V5);
    let out = fluent_bit
        .add_output(&dir_output(dir.path(), &keys))
        .unwrap();
    let chunk = numbered_chunk(EventFormat::V2, 0, 5);
    assert_eq!(fluent_bit.flusher(out).flush(&chunk, "t"), FLB_OK);
    fluent_bit.shutdown().unwrap();

    let store = dir.path().join(".store");
    let instance = store.join("modes");
    for folder in [
        &store,
        &instance,
        &instance.join("objects"),
        &instance.join("quarantine"),
    ] {
        assert_eq!(mode(folder), 0o700, "{}", folder.display());
    }
    let mut files = 0;
    for folder in [&instance, &instance.join("objects")] {
        for entry in fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                files += 1;
                assert_eq!(mode(&path), 0o600, "{}", path.display());
            }
        }
    }
    assert!(
        files >= 5,
        "journal, lock, agent id, an object and its open file"
    );

    // Delivered: objects 0640 (or as file_mode says), folders 0750.
    fs::remove_file(&blocker).unwrap();
    for (file_mode, expected) in [(None, 0o640), (Some("0600"), 0o600)] {
        let mut keys = keys.to_vec();
        if let Some(file_mode) = file_mode {
            keys.push(("file_mode", file_mode));
            let chunk = numbered_chunk(EventFormat::V2, 5, 5);
            let mut fluent_bit = load(HostVersion::V5);
            let out = fluent_bit
                .add_output(&dir_output(dir.path(), &keys))
                .unwrap();
            assert_eq!(fluent_bit.flusher(out).flush(&chunk, "u"), FLB_OK);
            fluent_bit.shutdown().unwrap();
        } else {
            let mut fluent_bit = load(HostVersion::V5);
            fluent_bit
                .add_output(&dir_output(dir.path(), &keys))
                .unwrap();
            fluent_bit.shutdown().unwrap();
        }
        let tag = if file_mode.is_some() { "u" } else { "t" };
        let delivered = objects(&dir.path().join("rustsink").join(tag));
        assert_eq!(delivered.len(), 1, "{tag}");
        assert_eq!(mode(&delivered[0]), expected, "{}", delivered[0].display());
        assert_eq!(mode(delivered[0].parent().unwrap()), 0o750);
    }
}

#[test]
fn an_alias_cannot_leave_store_dir() {
    in_own_process("hardening::an_alias_cannot_leave_store_dir", || {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        for alias in ["..", "."] {
            let mut fluent_bit = load(HostVersion::V5);
            take_log_lines();
            let keys = [("Alias", alias), ("store_dir", store.to_str().unwrap())];
            assert!(
                fluent_bit
                    .add_output(&dir_output(dir.path(), &keys))
                    .is_err()
            );
            let lines: Vec<String> = take_log_lines().into_iter().map(|l| l.message).collect();
            assert!(
                lines.iter().any(|line| line.contains(&format!(
                    "the instance name '{alias}' (its Alias) cannot name a folder inside store_dir"
                ))),
                "{lines:#?}"
            );
            fluent_bit.shutdown().unwrap();
        }
        // Nothing was written next to store_dir.
        let beside: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(!dir.path().join("journal").exists(), "{beside:?}");
        assert!(!dir.path().join("objects").exists(), "{beside:?}");
    });
}

#[test]
fn a_store_others_may_write_or_that_belongs_to_another_user_is_refused() {
    in_own_process(
        "hardening::a_store_others_may_write_or_that_belongs_to_another_user_is_refused",
        || {
            let dir = tempfile::tempdir().unwrap();
            let store = dir.path().join("planted");
            fs::create_dir(&store).unwrap();
            fs::set_permissions(&store, fs::Permissions::from_mode(0o777)).unwrap();
            let keys = [("store_dir", store.to_str().unwrap())];
            let mut fluent_bit = load(HostVersion::V5);
            take_log_lines();
            assert!(
                fluent_bit
                    .add_output(&dir_output(dir.path(), &keys))
                    .is_err()
            );
            let lines: Vec<String> = take_log_lines().into_iter().map(|l| l.message).collect();
            assert!(
                lines
                    .iter()
                    .any(|line| line.contains("may be written by others (mode 0777)")),
                "{lines:#?}"
            );
            fs::set_permissions(&store, fs::Permissions::from_mode(0o700)).unwrap();
            // Another owner: only root can hand a folder to another user.
            if rustix::process::geteuid().is_root() {
                rustix::fs::chown(&store, Some(rustix::process::Uid::from_raw(54321)), None)
                    .unwrap();
                take_log_lines();
                assert!(
                    fluent_bit
                        .add_output(&dir_output(dir.path(), &keys))
                        .is_err()
                );
                let lines: Vec<String> = take_log_lines().into_iter().map(|l| l.message).collect();
                assert!(
                    lines
                        .iter()
                        .any(|line| line.contains("belongs to uid 54321")),
                    "{lines:#?}"
                );
            } else {
                eprintln!("not root: the foreign-owned store_dir case is skipped");
            }
            fluent_bit.shutdown().unwrap();
        },
    );
}

/// Runs grep (keep `^ERROR`) over one chunk with `store` as store_dir, and returns the
/// records that got through.
fn grep_once(store: &Path, out: &Path) -> Vec<u64> {
    let grep = components().grep.display().to_string();
    let keys = [
        ("filter.1", grep.as_str()),
        ("filter.1.key", "log"),
        ("filter.1.regex", "^ERROR"),
        ("store_dir", store.to_str().unwrap()),
    ];
    let _ = fs::remove_dir_all(out.join("rustsink"));
    let mut fluent_bit = load(HostVersion::V5);
    let output = fluent_bit.add_output(&dir_output(out, &keys)).unwrap();
    let mut chunk = rustsink::event::chunk::ChunkWriter::new();
    for (n, text) in ["ERROR one", "fine", "ERROR two"].iter().enumerate() {
        chunk.push(
            EventFormat::V2,
            rustsink::event::chunk::TimeForm::EventTime,
            rustsink::event::EventTime::new(1_714_557_600, 0),
            None,
            record(text, n as u64),
        );
    }
    assert_eq!(
        fluent_bit.flusher(output).flush(&chunk.finish(), "t"),
        FLB_OK
    );
    fluent_bit.shutdown().unwrap();
    let mut seen = numbers(out, "t");
    seen.sort_unstable();
    seen
}

/// The compiled entries in a cache folder.
fn entries(cache: &Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    found.sort();
    found
}

#[test]
fn a_tampered_or_swapped_compile_cache_entry_is_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let cache = store.join("components");
    assert_eq!(grep_once(&store, dir.path()), [0, 2]);
    let grep_entry = entries(&cache).pop().expect("grep was cached");
    assert_eq!(mode(&cache), 0o700);
    assert_eq!(mode(&cache.join("key")), 0o600);
    assert_eq!(mode(&grep_entry), 0o600);

    // Another component's compiled code under grep's name, as a local user who could write
    // there would plant it: parse-json passes every record.
    let other = tempfile::tempdir().unwrap();
    let other_cache = other.path().join("components");
    let parse_json = components().parse_json.display().to_string();
    let keys = [
        ("filter.1", parse_json.as_str()),
        ("store_dir", other.path().to_str().unwrap()),
    ];
    let mut fluent_bit = load(HostVersion::V5);
    fluent_bit
        .add_output(&dir_output(other.path(), &keys))
        .unwrap();
    fluent_bit.shutdown().unwrap();
    let planted = entries(&other_cache).pop().expect("parse-json was cached");
    // With its own cache's MAC, and with a copy of grep's MAC in front of it.
    let grep_bytes = fs::read(&grep_entry).unwrap();
    let planted_bytes = fs::read(&planted).unwrap();
    let mut forged = grep_bytes[..32].to_vec();
    forged.extend_from_slice(&planted_bytes[32..]);
    for (what, bytes) in [("swapped", planted_bytes.clone()), ("forged", forged)] {
        fs::write(&grep_entry, &bytes).unwrap();
        assert_eq!(
            grep_once(&store, dir.path()),
            [0, 2],
            "{what}: grep still filters"
        );
        assert_eq!(
            fs::read(&grep_entry).unwrap(),
            grep_bytes,
            "{what}: compiled again"
        );
    }
    // A flipped byte in the code.
    let mut flipped = grep_bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    fs::write(&grep_entry, &flipped).unwrap();
    assert_eq!(
        grep_once(&store, dir.path()),
        [0, 2],
        "flipped: grep still filters"
    );
    // A key someone else could have written is not trusted: the cache is left alone.
    fs::set_permissions(cache.join("key"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&grep_entry, &planted_bytes).unwrap();
    assert_eq!(
        grep_once(&store, dir.path()),
        [0, 2],
        "untrusted key: grep still filters"
    );
}

/// The key and token of the one object waiting in an instance's store.
fn waiting_object(instance: &Path) -> (String, String) {
    let objects = instance.join("objects");
    let opened = fs::read_dir(&objects)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "open"))
        .expect("an object waits");
    let opened: serde_json::Value = serde_json::from_slice(&fs::read(opened).unwrap()).unwrap();
    (
        opened["key"].as_str().unwrap().to_owned(),
        opened["token"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn planted_symbolic_links_under_path_are_never_followed() {
    in_own_process(
        "hardening::planted_symbolic_links_under_path_are_never_followed",
        || {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("out");
            let victim_dir = dir.path().join("victim");
            fs::create_dir_all(&victim_dir).unwrap();
            let victim = victim_dir.join("passwd");
            fs::write(&victim, "root:x:0:0").unwrap();
            let store = dir.path().join("store");
            let keys = [
                ("Alias", "links"),
                ("store_dir", store.to_str().unwrap()),
                ("shutdown_timeout", "2s"),
            ];
            // A link where the key's first folder goes: delivery is refused, and nothing
            // lands in the folder it points to.
            fs::create_dir_all(&out).unwrap();
            std::os::unix::fs::symlink(&victim_dir, out.join("rustsink")).unwrap();
            let mut fluent_bit = load(HostVersion::V5);
            let output = fluent_bit.add_output(&dir_output(&out, &keys)).unwrap();
            take_log_lines();
            let chunk = numbered_chunk(EventFormat::V2, 0, 5);
            assert_eq!(fluent_bit.flusher(output).flush(&chunk, "t"), FLB_OK);
            fluent_bit.shutdown().unwrap();
            let lines: Vec<String> = take_log_lines().into_iter().map(|l| l.message).collect();
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("refusing the symbolic link")
                        && l.contains("rustsink follows no link under path")),
                "{lines:#?}"
            );
            let planted: Vec<_> = fs::read_dir(&victim_dir).unwrap().collect();
            assert_eq!(planted.len(), 1, "only the victim's own file is there");

            // The folder link goes; links wait at the object's temporary name and at its key.
            fs::remove_file(out.join("rustsink")).unwrap();
            let (key, token) = waiting_object(&dir.path().join("store/links"));
            let target = out.join(&key);
            fs::create_dir_all(target.parent().unwrap()).unwrap();
            let name = target.file_name().unwrap().to_string_lossy().into_owned();
            let temporary = target.with_file_name(format!(".{name}.{token}.tmp"));
            std::os::unix::fs::symlink(&victim, &temporary).unwrap();
            std::os::unix::fs::symlink(&victim, &target).unwrap();
            let mut fluent_bit = load(HostVersion::V5);
            fluent_bit.add_output(&dir_output(&out, &keys)).unwrap();
            fluent_bit.shutdown().unwrap();
            assert_eq!(fs::read_to_string(&victim).unwrap(), "root:x:0:0");
            assert!(
                fs::symlink_metadata(&target)
                    .unwrap()
                    .file_type()
                    .is_symlink()
            );
            // The object went to the next key of its series, whole.
            let delivered: Vec<_> = objects(&out.join("rustsink/t"))
                .into_iter()
                .filter(|p| !fs::symlink_metadata(p).unwrap().file_type().is_symlink())
                .collect();
            assert_eq!(delivered.len(), 1, "{delivered:?}");
            assert_ne!(delivered[0], target);
            assert_eq!(numbers_of_file(&delivered[0]), (0..5).collect::<Vec<_>>());
        },
    );
}

fn numbers_of_file(path: &Path) -> Vec<u64> {
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
fn planted_symbolic_links_in_store_dir_are_refused() {
    in_own_process(
        "hardening::planted_symbolic_links_in_store_dir_are_refused",
        || {
            let dir = tempfile::tempdir().unwrap();
            let elsewhere = dir.path().join("elsewhere");
            fs::create_dir_all(&elsewhere).unwrap();
            for planted in ["objects", "journal"] {
                let store = dir.path().join(format!("store-{planted}"));
                let instance = store.join("s");
                fs::create_dir_all(&instance).unwrap();
                std::os::unix::fs::symlink(elsewhere.join(planted), instance.join(planted))
                    .unwrap();
                if planted == "journal" {
                    fs::write(elsewhere.join("journal"), "not rustsink's").unwrap();
                } else {
                    fs::create_dir_all(elsewhere.join("objects")).unwrap();
                }
                let keys = [("Alias", "s"), ("store_dir", store.to_str().unwrap())];
                let mut fluent_bit = load(HostVersion::V5);
                take_log_lines();
                assert!(
                    fluent_bit
                        .add_output(&dir_output(dir.path(), &keys))
                        .is_err(),
                    "{planted}"
                );
                let lines: Vec<String> = take_log_lines().into_iter().map(|l| l.message).collect();
                assert!(
                    lines.iter().any(|l| l.contains("symbolic link")),
                    "{planted}: {lines:#?}"
                );
                fluent_bit.shutdown().unwrap();
            }
            assert_eq!(
                fs::read_to_string(elsewhere.join("journal")).unwrap(),
                "not rustsink's"
            );
            assert_eq!(fs::read_dir(elsewhere.join("objects")).unwrap().count(), 0);
        },
    );
}
