//! The codecs seen from outside: zstd objects read back with `zstd` and DuckDB, and a store
//! left by the release before the codecs had names (journal format 2) delivered by this one.

use std::fs;
use std::path::Path;
use std::process::Command;

use rustsink::event::chunk::EventFormat;
use rustsink_cli::harness::HostVersion;

use crate::support::*;

#[test]
fn zstd_objects_read_back_with_zstd_and_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let mut fluent_bit = load(HostVersion::V5);
    let keys = [
        ("compression", "zstd"),
        ("total_file_size", "4K"),
        ("time_window", "off"),
    ];
    let out = fluent_bit
        .add_output(&dir_output(dir.path(), &keys))
        .unwrap();
    const CHUNKS: u64 = 30;
    const PER_CHUNK: u64 = 500;
    for chunk in 0..CHUNKS {
        let bytes = numbered_chunk(EventFormat::V2, chunk * PER_CHUNK, PER_CHUNK);
        assert_eq!(fluent_bit.flusher(out).flush(&bytes, "app"), FLB_OK);
    }
    fluent_bit.shutdown().unwrap();

    let objects = objects(&dir.path().join("rustsink/app"));
    assert!(objects.len() > 2, "cut by size: {objects:?}");
    for object in &objects {
        let name = object.file_name().unwrap().to_string_lossy();
        assert!(name.ends_with(".jsonl.zst"), "{name}");
        let test = Command::new("zstd").arg("-t").arg(object).output().unwrap();
        assert!(test.status.success(), "zstd -t {name}");
    }
    // `zstd -d` (object_text reads zstd through it): every record once, in order.
    let records = CHUNKS * PER_CHUNK;
    assert_eq!(numbers(dir.path(), "app"), (0..records).collect::<Vec<_>>());
    // DuckDB reads the objects as they are, as it would from S3.
    let glob = dir.path().join("rustsink/app/**/*.jsonl.zst");
    let row = duckdb(&format!(
        "select count(*), count(distinct n), min(n), max(n), min(log) from read_json_auto('{}')",
        glob.display()
    ));
    assert_eq!(row, format!("{records}|{records}|0|{}|line", records - 1));
}

#[test]
fn a_store_from_the_release_with_journal_format_2_is_delivered() {
    // What that release left when it was killed: in instance 0 an open gzip object, in
    // instance 1 an open plain one, each holding records 0 to 119 of its tag, committed
    // but not sealed.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join(".store");
    copy_tree(&repo_root().join("tests/fixtures/journal-v2"), &store);
    for instance in ["rustsink.0", "rustsink.1"] {
        let journal = fs::read(store.join(instance).join("journal")).unwrap();
        assert_eq!(&journal[8..12], &2u32.to_le_bytes(), "{instance}");
    }

    let mut fluent_bit = load(HostVersion::V5);
    let options = [("time_window", "off")];
    fluent_bit
        .add_output(&dir_output(dir.path(), &options))
        .unwrap();
    let plain = [("time_window", "off"), ("compression", "none")];
    fluent_bit
        .add_output(&dir_output(dir.path(), &plain))
        .unwrap();
    fluent_bit.shutdown().unwrap();

    for (tag, extension) in [("app", ".jsonl.gz"), ("plain", ".jsonl")] {
        let objects = objects(&dir.path().join("rustsink").join(tag));
        assert_eq!(objects.len(), 1, "{tag}: {objects:?}");
        let name = objects[0].file_name().unwrap().to_string_lossy();
        assert!(name.ends_with(&format!("-0{extension}")), "{name}");
        assert_eq!(numbers(dir.path(), tag), (0..120).collect::<Vec<_>>());
    }
    for instance in ["rustsink.0", "rustsink.1"] {
        let journal = fs::read(store.join(instance).join("journal")).unwrap();
        assert_eq!(&journal[8..12], &3u32.to_le_bytes(), "{instance}");
    }
}

/// Copies the files under `from` to `to`, private, as rustsink's own are.
fn copy_tree(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(to).unwrap();
    fs::set_permissions(to, fs::Permissions::from_mode(0o700)).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            fs::copy(&path, &target).unwrap();
            fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}
