//! The deployment recipes of `fluent-bit/deploy/`: each configuration passes `rustsink
//! check`, the policies beside them are what `rustsink policy` prints, the ECS task
//! definition fits the RegisterTaskDefinition input model (botocore's), the Kubernetes
//! manifests pass kubernetes-validate, the Dockerfile passes hadolint, and the entrypoint
//! loads rustsink beside the image's own plugins. Each validator is shown a broken copy
//! first, so that a pass means something.
//!
//! The images themselves are not built here (no Docker engine); `release.rs` checks that
//! every file the Dockerfile copies exists once `.ci/release` has run.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::*;

fn deploy() -> PathBuf {
    repo_root().join("fluent-bit/deploy")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A recipe's configuration with the image's component folder pointed at the components
/// built here, written into `dir`.
pub fn localized_config(recipe: &Path, components: &Path, dir: &Path) -> PathBuf {
    let config = fs::read_to_string(recipe).unwrap().replace(
        "/fluent-bit/rustsink/components/",
        &format!("{}/", components.display()),
    );
    let path = dir.join(recipe.file_name().unwrap());
    fs::write(&path, config).unwrap();
    path
}

/// `rustsink check` (of the command `rustsink`) passes every recipe's configuration.
pub fn recipes_pass_check(rustsink: &Path, components: &Path) {
    let work = tempfile::tempdir().unwrap();
    for recipe in ["firelens/extra.conf", "eks/fluent-bit.conf"] {
        let config = localized_config(&deploy().join(recipe), components, work.path());
        let out = Command::new(rustsink)
            .args(["check", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(out.status.success(), "{recipe}: {}", text(&out));
        assert!(text(&out).contains(": ok"), "{recipe}: {}", text(&out));
    }
}

#[test]
fn the_recipes_configurations_pass_check() {
    let components = components().redact.parent().unwrap().to_owned();
    recipes_pass_check(&rustsink_bin(), &components);
}

#[test]
fn the_recipes_policies_are_what_rustsink_policy_prints() {
    let printed = |config: &str| -> Value {
        let out = Command::new(rustsink_bin())
            .args(["policy", "--config"])
            .arg(deploy().join(config))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
        printed[0]["grants"][0].clone()
    };
    let committed = |file: &str| -> Value {
        serde_json::from_str(&fs::read_to_string(deploy().join(file)).unwrap()).unwrap()
    };
    let firelens = printed("firelens/extra.conf");
    assert_eq!(
        firelens["policy"],
        committed("firelens/task-role-policy.json")
    );
    let eks = printed("eks/fluent-bit.conf");
    assert_eq!(eks["policy"], committed("eks/iam-policy.json"));
    assert_eq!(eks["trust_policy"], committed("eks/trust-policy.json"));
    // The role the configuration names is the one the ServiceAccount is annotated with.
    let manifest = fs::read_to_string(deploy().join("eks/daemonset.yaml")).unwrap();
    let role = eks["identity"].as_str().unwrap();
    assert!(
        manifest.contains(&format!("eks.amazonaws.com/role-arn: {role}")),
        "{role}"
    );
}

/// Validates the task definition in `file` against botocore's RegisterTaskDefinition
/// input model; the validator's report.
fn task_definition_report(file: &Path) -> Output {
    const CHECK: &str = r#"
import json, sys, botocore.session
from botocore.validate import ParamValidator
model = botocore.session.get_session().get_service_model("ecs")
shape = model.operation_model("RegisterTaskDefinition").input_shape
report = ParamValidator().validate(json.load(open(sys.argv[1])), shape)
print(report.generate_report())
sys.exit(1 if report.has_errors() else 0)
"#;
    Command::new("python3")
        .args(["-c", CHECK])
        .arg(file)
        .output()
        .expect("running python3 (botocore comes with moto: bash .ci/setup)")
}

#[test]
fn the_task_definition_fits_register_task_definition() {
    let recipe = deploy().join("firelens/task-definition.json");
    let work = tempfile::tempdir().unwrap();
    let mut broken: Value = serde_json::from_str(&fs::read_to_string(&recipe).unwrap()).unwrap();
    broken["containerDefinitions"][0]["firelensConfiguration"]["typo"] = "fluentbit".into();
    let broken_file = work.path().join("broken.json");
    fs::write(&broken_file, broken.to_string()).unwrap();
    let out = task_definition_report(&broken_file);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("typo"), "{}", text(&out));

    let out = task_definition_report(&recipe);
    assert!(out.status.success(), "{}", text(&out));

    // The log router runs the image with extra.conf, and the app logs through it.
    let definition: Value = serde_json::from_str(&fs::read_to_string(&recipe).unwrap()).unwrap();
    let router = &definition["containerDefinitions"][0];
    assert_eq!(
        router["firelensConfiguration"]["options"]["config-file-value"],
        "/fluent-bit/rustsink/extra.conf"
    );
    assert_eq!(
        definition["containerDefinitions"][1]["logConfiguration"]["logDriver"],
        "awsfirelens"
    );
    let extra = fs::read_to_string(deploy().join("firelens/extra.conf")).unwrap();
    let store_mount = router["mountPoints"][0]["containerPath"].as_str().unwrap();
    assert!(
        extra.contains(&format!("store_dir           {store_mount}")),
        "extra.conf's store_dir is not the task's volume {store_mount}"
    );
}

fn kubernetes_validate(file: &Path) -> Output {
    Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict", "--quiet"])
        .arg(file)
        .output()
        .expect("running kubernetes-validate (bash .ci/setup installs it)")
}

#[test]
fn the_kubernetes_manifests_validate_and_carry_the_configuration() {
    let manifest = deploy().join("eks/daemonset.yaml");
    let work = tempfile::tempdir().unwrap();
    let broken = work.path().join("broken.yaml");
    fs::write(
        &broken,
        fs::read_to_string(&manifest).unwrap().replace(
            "terminationGracePeriodSeconds: 45",
            "terminationGracePeriodSeconds: 45\n      hostPID: maybe",
        ),
    )
    .unwrap();
    let out = kubernetes_validate(&broken);
    assert!(!out.status.success(), "{}", text(&out));

    let out = kubernetes_validate(&manifest);
    assert!(out.status.success(), "{}", text(&out));

    // The ConfigMap holds fluent-bit.conf as it is beside the manifest.
    const CONFIG_MAP: &str = r#"
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
print([d for d in docs if d["kind"] == "ConfigMap"][0]["data"]["fluent-bit.conf"], end="")
"#;
    let out = Command::new("python3")
        .args(["-c", CONFIG_MAP])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        fs::read_to_string(deploy().join("eks/fluent-bit.conf")).unwrap()
    );
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let hadolint = |file: &Path| {
        Command::new(python_script("hadolint"))
            .arg(file)
            .output()
            .expect("running hadolint (bash .ci/setup installs it)")
    };
    let work = tempfile::tempdir().unwrap();
    let broken = work.path().join("Dockerfile");
    fs::write(
        &broken,
        "FROM debian\nRUN cd /tmp && apt-get install curl\n",
    )
    .unwrap();
    assert!(!hadolint(&broken).status.success());

    let out = hadolint(&deploy().join("Dockerfile"));
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn the_entrypoint_loads_rustsink_beside_the_images_plugins() {
    // A stand-in for the image's Fluent Bit that prints what it was given.
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    fs::create_dir_all(root.join("bin")).unwrap();
    let fluent_bit = root.join("bin/fluent-bit");
    fs::write(&fluent_bit, "#!/bin/sh\nprintf '%s\\n' \"$@\"\n").unwrap();
    fs::set_permissions(&fluent_bit, fs::Permissions::from_mode(0o755)).unwrap();
    let run = |extra: &[&str]| -> Vec<String> {
        let out = Command::new(deploy().join("entrypoint.sh"))
            .args(extra)
            .env("FLUENT_BIT_ROOT", root)
            .env_remove("FLUENT_BIT_CONFIG")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let at = |path: &str| root.join(path).display().to_string();

    // The 3.x image without AWS's Go plugins: rustsink alone.
    assert_eq!(
        run(&[]),
        [
            "-e",
            &at("rustsink/librustsink.so"),
            "-c",
            &at("etc/fluent-bit.conf")
        ]
    );
    // The 2.x image: AWS's three as well, and arguments passed on.
    for plugin in ["firehose.so", "cloudwatch.so", "kinesis.so"] {
        fs::write(root.join(plugin), "").unwrap();
    }
    let args = run(&["-vv"]);
    for plugin in [
        "firehose.so",
        "cloudwatch.so",
        "kinesis.so",
        "rustsink/librustsink.so",
    ] {
        let loaded = args
            .windows(2)
            .any(|pair| pair[0] == "-e" && pair[1] == at(plugin));
        assert!(loaded, "{plugin}: {args:?}");
    }
    assert!(args.contains(&"-vv".to_owned()), "{args:?}");
    assert_eq!(
        args[args.len() - 2..],
        ["-c".to_owned(), at("etc/fluent-bit.conf")]
    );
}

/// The `[OUTPUT]` sections of `text` (a configuration, or a file that holds some) whose
/// `Name` is rustsink: each as its key-value lines, keys in lower case.
fn rustsink_outputs(text: &str) -> Vec<Vec<(String, String)>> {
    let mut outputs = Vec::new();
    let mut lines = text.lines().map(str::trim).peekable();
    while let Some(line) = lines.next() {
        if line != "[OUTPUT]" {
            continue;
        }
        let mut section = Vec::new();
        while let Some(entry) = lines.next_if(|l| !l.is_empty() && !l.starts_with(['[', '`'])) {
            if let Some((key, value)) = entry.split_once(char::is_whitespace) {
                section.push((key.to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        if section
            .iter()
            .any(|(key, value)| key == "name" && value == "rustsink")
        {
            outputs.push(section);
        }
    }
    outputs
}

#[test]
fn every_example_and_recipe_sets_workers_1() {
    let root = repo_root();
    let mut files = vec![
        root.join("README.md"),
        root.join("fluent-bit/deploy/eks/fluent-bit.conf"),
        root.join("fluent-bit/deploy/eks/daemonset.yaml"),
        root.join("fluent-bit/deploy/firelens/extra.conf"),
    ];
    for entry in fs::read_dir(root.join("fluent-bit/examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "conf") {
            files.push(path);
        }
    }
    let mut outputs = 0;
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for section in rustsink_outputs(&text) {
            outputs += 1;
            assert!(
                section.contains(&("workers".to_owned(), "1".to_owned())),
                "{}: an output without Workers 1: {section:?}",
                file.display()
            );
        }
    }
    // README's three, the three examples, the EKS configuration twice (its file and the
    // manifest's copy) and FireLens's.
    assert!(outputs >= 9, "{outputs} rustsink outputs found");
}
