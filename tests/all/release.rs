//! The release artifacts that `.ci/release` builds: what they need of the C library, what
//! they export, and the harness's core path run with them, the aarch64 ones under
//! qemu-user.
//!
//! Ignored in a plain `cargo test`, which builds no artifacts; `.ci/release` runs them with
//! `--ignored` and `RUSTSINK_RELEASE` set to the artifacts' folder.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

/// The oldest glibc the artifacts load with: Amazon Linux 2's, under aws-for-fluent-bit's
/// 2.x `stable` line.
const GLIBC_FLOOR: (u32, u32) = (2, 26);

/// Docker's names for the architectures (the artifacts' folders), and what readelf calls
/// each one's machine.
const ARCHES: [(&str, &str); 2] = [
    ("amd64", "Advanced Micro Devices X86-64"),
    ("arm64", "AArch64"),
];

fn release_dir() -> PathBuf {
    let dir = std::env::var_os("RUSTSINK_RELEASE")
        .expect("RUSTSINK_RELEASE names the artifacts' folder (.ci/release sets it)");
    PathBuf::from(dir)
}

fn readelf(args: &[&str], file: &Path) -> String {
    let out = Command::new("readelf")
        .args(["-W"])
        .args(args)
        .arg(file)
        .output()
        .expect("running readelf (binutils)");
    assert!(
        out.status.success(),
        "readelf {args:?} {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every `GLIBC_x.y[.z]` version the file's dynamic symbols ask for, as (major, minor).
fn glibc_versions(file: &Path) -> Vec<(u32, u32)> {
    let symbols = readelf(&["--dyn-syms"], file);
    symbols
        .split("@GLIBC_")
        .skip(1)
        .filter_map(|rest| {
            let version: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let mut parts = version.split('.').map(|n| n.parse::<u32>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .collect()
}

/// The names of the symbols the file defines for others to use.
fn exported_symbols(file: &Path) -> Vec<String> {
    // Num: Value Size Type Bind Vis Ndx Name
    readelf(&["--dyn-syms"], file)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [_, _, _, kind, bind, visibility, section, name, ..] = fields[..] else {
                return None;
            };
            let defined = section != "UND" && section != "Ndx";
            let global = matches!(bind, "GLOBAL" | "WEAK");
            let visible = matches!(visibility, "DEFAULT" | "PROTECTED");
            (defined && global && visible && kind != "SECTION")
                .then(|| name.split('@').next().unwrap().to_owned())
        })
        .collect()
}

#[test]
#[ignore = "needs the artifacts of .ci/release"]
fn release_artifacts_need_glibc_2_26_at_most() {
    for (arch, machine) in ARCHES {
        for name in ["librustsink.so", "rustsink"] {
            let file = release_dir().join(arch).join(name);
            let header = readelf(&["--file-header"], &file);
            assert!(
                header
                    .lines()
                    .any(|line| line.contains("Machine:") && line.contains(machine)),
                "{} is not built for {machine}:\n{header}",
                file.display()
            );
            let versions = glibc_versions(&file);
            // Every Rust program takes something from glibc; none found means the parsing
            // failed, not that the file is free of it.
            assert!(
                !versions.is_empty(),
                "{}: no GLIBC_ versions",
                file.display()
            );
            let highest = versions.iter().max().unwrap();
            assert!(
                *highest <= GLIBC_FLOOR,
                "{} needs GLIBC_{}.{}; the floor is {}.{}",
                file.display(),
                highest.0,
                highest.1,
                GLIBC_FLOOR.0,
                GLIBC_FLOOR.1
            );
            let sections = readelf(&["--section-headers"], &file);
            assert!(
                !sections.contains(".debug_info") && !sections.contains(" .symtab"),
                "{} is not stripped",
                file.display()
            );
        }
    }
}

#[test]
#[ignore = "needs the artifacts of .ci/release"]
fn release_libraries_export_the_plugin_functions_only() {
    for (arch, _) in ARCHES {
        let library = release_dir().join(arch).join("librustsink.so");
        let exported = exported_symbols(&library);
        let foreign: Vec<_> = exported
            .iter()
            .filter(|name| !name.starts_with("FLBPlugin"))
            .collect();
        assert!(
            foreign.is_empty(),
            "{} exports {foreign:?}",
            library.display()
        );
        for needed in [
            "FLBPluginRegister",
            "FLBPluginInit",
            "FLBPluginFlush",
            "FLBPluginFlushCtx",
            "FLBPluginExit",
            "FLBPluginExitCtx",
            "FLBPluginUnregister",
        ] {
            assert!(
                exported.iter().any(|name| name == needed),
                "{} does not export {needed}: {exported:?}",
                library.display()
            );
        }
    }
}

/// Runs the release command of `arch` (under qemu-user for arm64) with its own library:
/// two instances of a gzip `sink dir` output, each flush on the harness's 24 KiB stack,
/// then reads every object back.
fn harness_core_path(arch: &str) {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let lines: Vec<String> = (0..5000)
        .map(|n| format!("line {n} of the {arch} run: {}", "x".repeat(n % 200)))
        .collect();
    fs::write(dir.join("app.log"), lines.join("\n") + "\n").unwrap();
    let mut config = String::from("[SERVICE]\n    Flush 1\n");
    for output in ["one", "two"] {
        config.push_str(&format!(
            "[OUTPUT]\n    Name rustsink\n    Match *\n    sink dir\n    path {output}\n    \
             store_dir store-{output}\n    compression gzip\n"
        ));
    }
    fs::write(dir.join("fluent-bit.conf"), config).unwrap();

    let artifacts = release_dir().join(arch);
    let mut command = match arch {
        "amd64" => Command::new(artifacts.join("rustsink")),
        _ => {
            let mut qemu = Command::new("qemu-aarch64");
            qemu.args(["-L", "/usr/aarch64-linux-gnu"])
                .arg(artifacts.join("rustsink"));
            qemu
        }
    };
    let out = command
        .args(["run", "--config", "fluent-bit.conf", "--input", "app.log"])
        .args(["--chunk-records", "300", "--plugin"])
        .arg(artifacts.join("librustsink.so"))
        .current_dir(dir)
        .output()
        .expect("running the release command");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{arch}: {stderr}");
    assert!(
        stderr.contains("0 chunk deliveries failed"),
        "{arch}: {stderr}"
    );

    for output in ["one", "two"] {
        let objects = objects(&dir.join(output));
        assert!(!objects.is_empty(), "{arch}: no object under {output}");
        assert!(
            objects
                .iter()
                .all(|path| path.extension().is_some_and(|ext| ext == "gz")),
            "{arch}: {objects:?}"
        );
        let logs: Vec<String> = json_lines(&dir.join(output), "tail.0")
            .iter()
            .map(|line| line["log"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(logs, lines, "{arch}: the records under {output}");
    }
}

#[test]
#[ignore = "needs the artifacts of .ci/release"]
fn release_command_and_library_run_the_core_path_on_x86_64() {
    harness_core_path("amd64");
}

#[test]
#[ignore = "needs the artifacts of .ci/release, qemu-user and libc6-arm64-cross"]
fn release_command_and_library_run_the_core_path_on_aarch64_under_qemu() {
    harness_core_path("arm64");
}

#[test]
#[ignore = "needs the artifacts of .ci/release"]
fn every_file_the_dockerfile_copies_exists() {
    let dockerfile = repo_root().join("fluent-bit/deploy/Dockerfile");
    let text = fs::read_to_string(&dockerfile).unwrap();
    let sources: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("COPY "))
        .map(|rest| rest.split_whitespace().next().unwrap())
        .collect();
    assert!(sources.len() >= 5, "{sources:?}");
    for (arch, _) in ARCHES {
        for source in &sources {
            let path = repo_root().join(source.replace("${TARGETARCH}", arch));
            let present = if source.ends_with('/') {
                fs::read_dir(&path).is_ok_and(|mut entries| entries.next().is_some())
            } else {
                path.is_file()
            };
            assert!(present, "{}: COPY {source} finds nothing", path.display());
        }
    }
    // The release folder the copies come from is the one these tests checked.
    assert_eq!(
        fs::canonicalize(release_dir()).unwrap(),
        fs::canonicalize(repo_root().join("out/release")).unwrap()
    );
}

#[test]
#[ignore = "needs the artifacts of .ci/release"]
fn the_release_command_checks_the_recipes_with_the_release_components() {
    crate::deploy::recipes_pass_check(
        &release_dir().join("amd64/rustsink"),
        &release_dir().join("components"),
    );
}

/// What `cargo tree` says the plugin crate links, by crate name.
fn plugin_dependencies() -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            "rustsink",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(repo_root())
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn the_plugin_crate_links_none_of_the_command() {
    let dependencies = plugin_dependencies();
    // What the plugin does need is there: the check reads the right tree.
    for needed in ["wasmtime", "aws-sdk-s3", "flate2"] {
        assert!(dependencies.iter().any(|d| d == needed), "{dependencies:?}");
    }
    for command_only in ["clap", "libloading", "rustsink-cli"] {
        assert!(
            !dependencies.iter().any(|d| d == command_only),
            "librustsink.so links {command_only}"
        );
    }
}
