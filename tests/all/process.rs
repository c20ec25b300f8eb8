//! The built library as a whole: what it exports, and memory safety under valgrind.

use std::collections::BTreeSet;
use std::process::Command;

use crate::support::*;

#[test]
fn the_library_exports_only_the_plugin_entry_points() {
    let out = Command::new("nm")
        .args(["-D", "--defined-only", "--format=just-symbols"])
        .arg(plugin_path())
        .output()
        .expect("running nm (binutils)");
    assert!(out.status.success());
    // Dependencies with a C interface (the AWS SDK's crc-fast) are linked with their
    // symbols hidden (build.rs): these are the only exports.
    let symbols: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let expected: BTreeSet<String> = [
        "FLBPluginExit",
        "FLBPluginExitCtx",
        "FLBPluginFlush",
        "FLBPluginFlushCtx",
        "FLBPluginInit",
        "FLBPluginRegister",
        "FLBPluginUnregister",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(symbols, expected);
    let name = plugin_path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        !name.starts_with("flb-"),
        "Fluent Bit would load {name} as a native plugin"
    );
}

/// Runs the whole sequence (32-byte definition block, API table of the host's size, flushes
/// on 24 KiB stacks, two instances, exit, unregister, dlclose) under valgrind's memcheck.
#[test]
fn the_fluent_bit_call_sequence_is_clean_under_valgrind() {
    assert!(
        have("valgrind"),
        "valgrind is missing: run `bash .ci/setup`"
    );
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("two.conf");
    std::fs::write(
        &config,
        "[OUTPUT]\n    Name rustsink\n    Match *\n    sink dir\n    path a\n    store_dir store\n    Workers 2\n\n\
         [OUTPUT]\n    Name rustsink\n    Match *\n    Alias second\n    sink dir\n    path b\n    store_dir store\n",
    )
    .unwrap();
    let input = repo_root().join("fluent-bit/examples/app.log");
    for version in ["1.9", "5"] {
        let out = Command::new("valgrind")
            .args([
                "--error-exitcode=99",
                "--leak-check=no",
                "--track-origins=yes",
                "-q",
            ])
            .arg(rustsink_bin())
            .args([
                "run",
                "--chunk-records",
                "5",
                "--fluent-bit",
                version,
                "--config",
            ])
            .arg(&config)
            .arg("--input")
            .arg(&input)
            .arg("--plugin")
            .arg(plugin_path())
            .current_dir(work.path())
            .output()
            .expect("running valgrind");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "Fluent Bit {version} under valgrind:\n{stderr}"
        );
        assert!(
            !stderr.contains("Invalid write") && !stderr.contains("Invalid read"),
            "{stderr}"
        );
    }
    let lines = std::fs::read_to_string(&input).unwrap().lines().count();
    assert_eq!(numbers_or_logs(&work.path().join("a")), lines * 2);
    assert_eq!(numbers_or_logs(&work.path().join("b")), lines * 2);
}

fn numbers_or_logs(path: &std::path::Path) -> usize {
    json_lines(path, "tail.0")
        .iter()
        .filter(|line| line["log"].is_string())
        .count()
}
