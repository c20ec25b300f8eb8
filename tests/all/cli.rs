//! The `rustsink` command, run as a person runs it.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::*;

fn rustsink(args: &[&str], cwd: &Path) -> Output {
    Command::new(rustsink_bin())
        .args(args)
        .current_dir(cwd)
        .env("RUSTSINK_PLUGIN", plugin_path())
        .output()
        .expect("running rustsink")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_main_job_writes_every_input_line() {
    let work = tempfile::tempdir().unwrap();
    let root = repo_root();
    let config = root.join("fluent-bit/examples/dir.conf");
    let input = root.join("fluent-bit/examples/app.log");
    for version in ["5", "1.9"] {
        let out = rustsink(
            &[
                "run",
                "--config",
                config.to_str().unwrap(),
                "--input",
                input.to_str().unwrap(),
                "--fluent-bit",
                version,
                "--chunk-records",
                "7",
            ],
            work.path(),
        );
        assert!(out.status.success(), "{version}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(stderr.contains("0 chunk deliveries failed"), "{stderr}");
        // The input's CPU time, which benches/engine.sh takes off the process's.
        let input_cpu = stderr
            .split("the input thread (Fluent Bit's part) used ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|seconds| seconds.parse::<f64>().ok());
        assert!(input_cpu.is_some_and(|s| s >= 0.0), "{stderr}");
        // How long each flush held Fluent Bit's thread, for benches/engine.sh.
        let latency: Vec<f64> = stderr
            .split("each flush held its thread for p50 ")
            .nth(1)
            .unwrap_or_else(|| panic!("no flush latency: {stderr}"))
            .split(" ms")
            .take(3)
            .map(|part| part.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert!(
            latency.len() == 3
                && latency[0] > 0.0
                && latency[0] <= latency[1]
                && latency[1] <= latency[2],
            "{latency:?}: {stderr}"
        );
        // How long the exit took, for what is left to deliver when Fluent Bit stops.
        let exit = stderr
            .split("the exit (sealing and delivering what was open) took ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|seconds| seconds.parse::<f64>().ok());
        assert!(exit.is_some_and(|s| s > 0.0), "{stderr}");
    }
    let expected: Vec<String> = fs::read_to_string(&input)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let written = json_lines(&work.path().join("out"), "tail.0");
    let logs: Vec<_> = written
        .iter()
        .map(|line| line["log"].as_str().unwrap().to_owned())
        .collect();
    // Two runs (5 and 1.9) wrote one object each.
    assert_eq!(logs, [expected.clone(), expected].concat());
    assert!(
        written
            .iter()
            .all(|line| line["date"].as_str().is_some_and(|d| d.ends_with('Z')))
    );
}

#[test]
fn several_workers_flush_at_once_and_every_line_arrives_once() {
    let work = tempfile::tempdir().unwrap();
    let root = repo_root();
    let config = root.join("fluent-bit/examples/dir.conf");
    let input = root.join("fluent-bit/examples/app.log");
    let args = [
        "run",
        "--config",
        config.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--chunk-records",
        "3",
        "--workers",
        "4",
    ];
    let out = rustsink(&args, work.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut expected: Vec<String> = fs::read_to_string(&input)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    // Concurrent flushes may reorder chunks, as Fluent Bit's workers do.
    let mut logs: Vec<String> = json_lines(&work.path().join("out"), "tail.0")
        .iter()
        .map(|line| line["log"].as_str().unwrap().to_owned())
        .collect();
    expected.sort();
    logs.sort();
    assert_eq!(logs, expected);
}

#[test]
fn stdin_lines_go_to_matching_outputs_only() {
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("fluent-bit.conf");
    fs::write(
        &config,
        "[OUTPUT]\n    Name rustsink\n    Match app.*\n    sink dir\n    path app\n    store_dir store\n\n\
         [OUTPUT]\n    Name rustsink\n    Match other\n    sink dir\n    path other\n    store_dir store\n",
    )
    .unwrap();
    let mut child = Command::new(rustsink_bin())
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--tag",
            "app.web",
        ])
        .current_dir(work.path())
        .env("RUSTSINK_PLUGIN", plugin_path())
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"first\r\nsecond\n\xff bytes\nlast without newline")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let logs: Vec<_> = json_lines(&work.path().join("app"), "app.web")
        .iter()
        .map(|l| l["log"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        logs,
        ["first", "second", "\u{fffd} bytes", "last without newline"]
    );
    assert!(objects(&work.path().join("other")).is_empty());
}

#[test]
fn run_reports_a_bad_value_with_its_key_and_section() {
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("bad.conf");
    fs::write(
        &config,
        "[OUTPUT]\n    Name rustsink\n    sink dir\n    path o\n    json_date_format nope\n",
    )
    .unwrap();
    let out = rustsink(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--input",
            "/dev/null",
        ],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("invalid value 'nope' for key 'json_date_format'"),
        "{stderr}"
    );
    assert!(stderr.contains("bad.conf:1"), "{stderr}");
}

#[test]
fn check_validates_and_suggests_keys() {
    let work = tempfile::tempdir().unwrap();
    let good = rustsink(
        &[
            "check",
            "--config",
            repo_root()
                .join("fluent-bit/examples/dir.conf")
                .to_str()
                .unwrap(),
        ],
        work.path(),
    );
    assert!(good.status.success(), "{}", text(&good.stdout));
    assert!(text(&good.stdout).contains(": ok"));

    let config = work.path().join("typo.conf");
    fs::write(
        &config,
        "[OUTPUT]\n    Name rustsink\n    sink dir\n    pth /tmp/x\n",
    )
    .unwrap();
    let bad = rustsink(
        &["check", "--config", config.to_str().unwrap()],
        work.path(),
    );
    assert_eq!(bad.status.code(), Some(1));
    let stdout = text(&bad.stdout);
    assert!(
        stdout.contains("unknown key 'pth' is ignored; did you mean 'path'?"),
        "{stdout}"
    );
    assert!(stdout.contains("error: missing key 'path'"), "{stdout}");
}

#[test]
fn readme_configuration_reference_is_generated_from_the_key_table() {
    let readme = fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = "<!-- keys:start (generated by `rustsink keys`) -->\n";
    let end = "<!-- keys:end -->";
    let from = readme
        .find(start)
        .expect("README has the keys:start marker")
        + start.len();
    let to = readme[from..]
        .find(end)
        .expect("README has the keys:end marker")
        + from;
    let generated = rustsink(&["keys"], &repo_root());
    assert_eq!(
        &readme[from..to],
        text(&generated.stdout),
        "README.md's reference is stale: paste the output of `rustsink keys`"
    );
}

/// Fluent Bit 1.9 has no log interface: lines go to stderr in Fluent Bit's format, at the
/// level FLB_LOG_LEVEL sets (info when unset).
#[test]
fn fluent_bit_1_9_logs_to_stderr_at_flb_log_level() {
    let work = tempfile::tempdir().unwrap();
    let config = repo_root().join("fluent-bit/examples/dir.conf");
    let run = |level: Option<&str>| {
        let mut command = Command::new(rustsink_bin());
        command
            .args([
                "run",
                "--fluent-bit",
                "1.9",
                "--input",
                "/dev/null",
                "--config",
            ])
            .arg(&config)
            .current_dir(work.path())
            .env("RUSTSINK_PLUGIN", plugin_path())
            .env_remove("FLB_LOG_LEVEL");
        if let Some(level) = level {
            command.env("FLB_LOG_LEVEL", level);
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    let default = run(None);
    let started = default
        .lines()
        .find(|line| line.contains("[output:rustsink:rustsink.0] started: sink dir"))
        .unwrap_or_else(|| panic!("no start line at the default level:\n{default}"));
    // [2024/05/01 10:00:00] [ info] [output:rustsink:rustsink.0] started: ...
    let (stamp, rest) = started.split_at(22);
    assert!(
        stamp.starts_with('[') && stamp.ends_with("] ") && stamp.as_bytes()[5] == b'/',
        "{started}"
    );
    assert!(
        rest.starts_with("[ info] [output:rustsink:rustsink.0] "),
        "{started}"
    );

    let quiet = run(Some("error"));
    assert!(
        !quiet.contains("[output:rustsink"),
        "info lines at FLB_LOG_LEVEL=error:\n{quiet}"
    );
}

#[test]
fn the_cross_account_example_checks_and_gets_a_policy_per_role() {
    let work = tempfile::tempdir().unwrap();
    let config = repo_root().join("fluent-bit/examples/s3-cross-account.conf");
    let config = config.to_str().unwrap();
    let checked = rustsink(&["check", "--config", config], work.path());
    assert!(checked.status.success(), "{}", text(&checked.stdout));
    assert!(
        !text(&checked.stdout).contains("warning"),
        "{}",
        text(&checked.stdout)
    );

    let printed = rustsink(&["policy", "--config", config], work.path());
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    let outputs: serde_json::Value = serde_json::from_slice(&printed.stdout).unwrap();
    let grants = outputs[0]["grants"].as_array().unwrap();
    let identities: Vec<&str> = grants
        .iter()
        .map(|g| g["identity"].as_str().unwrap())
        .collect();
    assert_eq!(
        identities,
        [
            "arn:aws:iam::111111111111:role/fluent-bit",
            "arn:aws:iam::222222222222:role/log-shipper",
            "arn:aws:iam::333333333333:role/central-log-writer"
        ]
    );
    let upload = &grants[2]["policy"]["Statement"];
    assert_eq!(upload[0]["Resource"], "arn:aws:s3:::central-logs/team-a/*");
    assert_eq!(
        upload[0]["Action"],
        serde_json::json!([
            "s3:PutObject",
            "s3:GetObject",
            "s3:PutObjectAcl",
            "s3:ListMultipartUploadParts",
            "s3:AbortMultipartUpload"
        ])
    );
    assert_eq!(
        upload[1]["Action"],
        serde_json::json!(["kms:GenerateDataKey", "kms:Decrypt"])
    );
    let shipper_trust = &grants[1]["trust_policy"]["Statement"][0];
    assert_eq!(
        shipper_trust["Principal"]["AWS"],
        "arn:aws:iam::111111111111:role/fluent-bit"
    );
    assert_eq!(
        shipper_trust["Condition"]["StringEquals"]["sts:ExternalId"],
        "team-a-shipper"
    );
}

#[test]
fn check_refuses_a_time_window_that_does_not_divide_a_day() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("fluent-bit.conf");
    for (window, ok) in [("7m", false), ("0", false), ("15m", true), ("off", true)] {
        let out = rustsink_check(
            &conf,
            &format!(
                "[OUTPUT]\n    Name rustsink\n    Match *\n    sink dir\n    path /tmp/x\n    \
                 time_window {window}\n"
            ),
        );
        let stdout = text(&out.stdout);
        assert_eq!(out.status.success(), ok, "{window}: {stdout}");
        if !ok {
            assert!(
                stdout.contains(&format!("invalid value '{window}' for key 'time_window'"))
                    && stdout.contains("divide a day"),
                "{stdout}"
            );
        }
    }
}

#[test]
fn check_warns_that_fluent_bits_tls_keys_never_reach_rustsink() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("fluent-bit.conf");
    let out = rustsink_check(
        &conf,
        "[OUTPUT]\n    Name rustsink\n    Match *\n    sink dir\n    path /tmp/x\n    \
         tls.verify off\n    tls.ca_file /etc/ca.pem\n    tls_ca_fil /etc/ca.pem\n",
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for key in ["tls.verify", "tls.ca_file"] {
        assert!(
            stdout.contains(&format!(
                "Fluent Bit keeps '{key}' to itself and rustsink never sees it; a private CA \
                 goes in 'tls_ca_file'"
            )),
            "{key}: {stdout}"
        );
    }
    assert!(
        stdout.contains("unknown key 'tls_ca_fil' is ignored; did you mean 'tls_ca_file'?"),
        "{stdout}"
    );
}

/// The entries of a component cache and their inodes: a rewritten entry gets a new one.
fn cache_entries(cache: &Path) -> Vec<(String, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut entries: Vec<(String, u64)> = fs::read_dir(cache)
        .map(|dir| {
            dir.map(|entry| entry.unwrap())
                .map(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    (name, entry.metadata().unwrap().ino())
                })
                .filter(|(name, _)| name != "key")
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    entries
}

#[test]
fn check_precompiles_components_into_the_store_and_fluent_bit_starts_from_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let conf = dir.path().join("fluent-bit.conf");
    let text_of = |store: &Path| {
        format!(
            "[OUTPUT]\n    Name rustsink\n    Match *\n    sink dir\n    path {}\n    \
             store_dir {}\n    filter.1 {}\n    filter.1.key log\n    filter.1.regex x\n",
            dir.path().join("out").display(),
            store.display(),
            components().grep.display()
        )
    };
    // A store_dir that is not there yet is not created: Fluent Bit may run as another
    // user, whose store_dir it would then refuse.
    let out = rustsink_check(&conf, &text_of(&store));
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(!store.exists());
    // With --precompile it is, as this user's, and the component is compiled into it.
    let out = Command::new(rustsink_bin())
        .args(["check", "--precompile", "--config"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stdout));
    let cache = store.join("components");
    let entries = cache_entries(&cache);
    assert_eq!(entries.len(), 1, "{entries:?}");

    // The plugin loads the component from that entry: nothing is compiled or written again.
    let mut fluent_bit = load(rustsink_cli::harness::HostVersion::V5);
    let section = rustsink_cli::harness::OutputSection::new([
        ("Name", "rustsink"),
        ("Match", "*"),
        ("sink", "dir"),
        ("path", &dir.path().join("out").display().to_string()),
        ("store_dir", &store.display().to_string()),
        ("filter.1", &components().grep.display().to_string()),
        ("filter.1.key", "log"),
        ("filter.1.regex", "x"),
    ]);
    fluent_bit.add_output(&section).unwrap();
    fluent_bit.shutdown().unwrap();
    assert_eq!(cache_entries(&cache), entries);

    // A store_dir of another user's is left alone: check compiles elsewhere.
    let foreign = dir.path().join("foreign");
    fs::create_dir(&foreign).unwrap();
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    let out = rustsink_check(&conf, &text_of(&foreign));
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(!foreign.join("components").exists());
}
