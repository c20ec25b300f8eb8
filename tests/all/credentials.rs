//! Credentials of `sink s3` against moto with authentication on: every request is signed,
//! its key must exist, IAM policies are evaluated and AssumeRole checks trust policies
//! (with the external id). The IAM set-up is made while authentication is still off, with
//! the policies `rustsink policy` prints.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustsink::config::{Config, SinkConfig};
use rustsink::destination::s3::S3Destination;
use rustsink::destination::s3::policy::DEFAULT_CHAIN_IDENTITY;
use rustsink::destination::{Destination, SealedObject};
use serde_json::{Value, json};

use crate::s3::{Bucket, Moto, free_port, run_command, succeeded, write_log};
use crate::support::*;

const ACCOUNT_A: &str = "123456789012";
const ACCOUNT_B: &str = "222222222222";
const LINES: u64 = 2_000;

/// Runs `steps` with tests/moto/aws_calls.py; the answers in order.
pub(crate) fn aws(endpoint: &str, steps: Value) -> Vec<Value> {
    let mut child = Command::new("python3")
        .arg(repo_root().join("tests/moto/aws_calls.py"))
        .arg(endpoint)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(steps.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{steps}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn iam(call: &str, args: Value) -> Value {
    json!({"service": "iam", "call": call, "args": args})
}

fn in_account(account: &str, mut step: Value) -> Value {
    step["account"] = json!(account);
    step
}

/// Steps that make user `name` with an inline policy; its access key is the answer of the
/// last step.
fn user_with_key(name: &str, policy: &Value) -> Vec<Value> {
    vec![
        iam("create_user", json!({"UserName": name})),
        iam(
            "put_user_policy",
            json!({"UserName": name, "PolicyName": "p", "PolicyDocument": policy.to_string()}),
        ),
        iam("create_access_key", json!({"UserName": name})),
    ]
}

fn role(name: &str, trust: &Value, policy: &Value) -> Vec<Value> {
    vec![
        iam(
            "create_role",
            json!({"RoleName": name, "AssumeRolePolicyDocument": trust.to_string()}),
        ),
        iam(
            "put_role_policy",
            json!({"RoleName": name, "PolicyName": "p", "PolicyDocument": policy.to_string()}),
        ),
    ]
}

fn key_of(answer: &Value) -> (String, String) {
    let key = &answer["AccessKey"];
    (
        key["AccessKeyId"].as_str().unwrap().to_owned(),
        key["SecretAccessKey"].as_str().unwrap().to_owned(),
    )
}

fn trusting(principal: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}
    ]})
}

fn allow_all() -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
}

/// The grants `rustsink policy` prints for the one output of `conf`.
fn printed_grants(conf: &Path) -> Vec<Value> {
    let out = Command::new(rustsink_bin())
        .args(["policy", "--config"])
        .arg(conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    printed[0]["grants"].as_array().unwrap().clone()
}

/// A trust policy with the default-chain placeholder filled in.
fn trust_for(grant: &Value, principal: &str) -> Value {
    let text = grant["trust_policy"].to_string();
    serde_json::from_str(&text.replace(DEFAULT_CHAIN_IDENTITY, principal)).unwrap()
}

/// Lines of the objects (delivered or not) kept in `store`.
fn lines_kept_in(store: &Path) -> usize {
    objects(store)
        .iter()
        .filter(|path| {
            let folder = path.parent().unwrap().file_name().unwrap();
            (folder == "objects" || folder == "quarantine") && path.extension().is_none()
        })
        .map(|path| {
            let bytes = std::fs::read(path).unwrap();
            gunzip(&bytes, &path.display()).lines().count()
        })
        .sum()
}

fn conf_in(dir: &Path, name: &str, endpoint: &str, extra: &str) -> std::path::PathBuf {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    crate::s3::s3_conf(
        &folder,
        endpoint,
        &format!("    sts_endpoint {endpoint}\n    upload_retry_limit 2\n{extra}"),
    )
}

#[test]
fn a_role_scoped_to_a_prefix_writes_there_and_nowhere_else() {
    let moto = Moto::start_on(free_port());
    let endpoint = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let writer = format!("arn:aws:iam::{ACCOUNT_A}:role/writer");
    let role_keys = format!("    role_arn {writer}\n    external_id ext-4711\n");
    let dev = conf_in(
        dir.path(),
        "dev",
        &endpoint,
        &format!("{role_keys}    s3_key_format dev/$TAG/%Y/$UUID.jsonl.gz\n"),
    );
    let grants = printed_grants(&dev);
    assert_eq!(grants.len(), 2, "{grants:?}");
    assert_eq!(grants[1]["identity"], writer.as_str());
    assert_eq!(
        grants[1]["policy"]["Statement"][0]["Resource"],
        "arn:aws:s3:::logs/dev/*"
    );

    let mut steps =
        vec![json!({"service": "s3", "call": "create_bucket", "args": {"Bucket": "logs"}})];
    steps.extend(user_with_key("admin", &allow_all()));
    steps.extend(user_with_key("agent", &grants[0]["policy"]));
    let agent_arn = format!("arn:aws:iam::{ACCOUNT_A}:user/agent");
    steps.extend(role(
        "writer",
        &trust_for(&grants[1], &agent_arn),
        &grants[1]["policy"],
    ));
    steps.push(json!({"auth_after": 0}));
    let answers = aws(&endpoint, json!(steps));
    let admin = key_of(&answers[3]);
    let agent = key_of(&answers[6]);

    let input = dir.path().join("app.log");
    write_log(&input, LINES);
    // About 8 MiB after gzip: a multipart upload under the printed policy.
    let large = dir.path().join("large.log");
    write_log(&large, 170_000);
    let run_on = |conf: &Path, input: &Path| {
        let out = run_command(conf, input)
            .env("AWS_ACCESS_KEY_ID", &agent.0)
            .env("AWS_SECRET_ACCESS_KEY", &agent.1)
            .output()
            .unwrap();
        succeeded(&out)
    };
    let run = |conf: &Path| run_on(conf, &input);

    // Under dev/: every call the uploader makes is allowed by the printed policy, the
    // multipart ones included.
    let log = run_on(&dev, &large);
    assert!(
        !log.contains("[ warn]") && !log.contains("[error]"),
        "{log}"
    );
    let bucket = Bucket::open(&endpoint, "logs", (&admin.0, &admin.1));
    assert_eq!(bucket.numbers(), (0..170_000).collect::<Vec<_>>());
    assert!(bucket.keys().iter().all(|k| k.starts_with("dev/")));
    assert_eq!(bucket.open_uploads(), 0);

    // Under prod/: denied, with the identity and the action in the line; the data stays.
    let prod = conf_in(
        dir.path(),
        "prod",
        &endpoint,
        &format!("{role_keys}    s3_key_format prod/$TAG/%Y/$UUID.jsonl.gz\n"),
    );
    let log = run(&prod);
    let denied = log
        .lines()
        .find(|line| line.contains("AccessDenied"))
        .unwrap_or_else(|| panic!("no AccessDenied line: {log}"));
    assert!(denied.contains("PutObject of s3://logs/prod/"), "{denied}");
    assert!(
        denied.contains(&format!("arn:aws:sts::{ACCOUNT_A}:assumed-role/writer/")),
        "{denied}"
    );
    assert!(denied.contains("rustsink policy"), "{denied}");
    assert!(bucket.keys().iter().all(|k| k.starts_with("dev/")));
    assert_eq!(
        lines_kept_in(&dir.path().join("prod/store")),
        LINES as usize
    );

    // A wrong external id: STS refuses, and the line says what to check.
    let wrong = conf_in(
        dir.path(),
        "wrong",
        &endpoint,
        &format!("    role_arn {writer}\n    external_id ext-0000\n"),
    );
    let log = run(&wrong);
    let refused = log
        .lines()
        .find(|line| line.contains("refused AssumeRole"))
        .unwrap_or_else(|| panic!("no STS line: {log}"));
    assert!(refused.contains(&writer), "{refused}");
    assert!(refused.contains(&agent.0), "{refused}");
    assert!(refused.contains("external id"), "{refused}");
    assert!(refused.contains("trust policy"), "{refused}");
    assert_eq!(
        lines_kept_in(&dir.path().join("wrong/store")),
        LINES as usize
    );
}

#[test]
fn a_two_hop_chain_reaches_a_bucket_in_another_account() {
    let moto = Moto::start_on(free_port());
    let endpoint = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let hop = format!("arn:aws:iam::{ACCOUNT_A}:role/hop");
    let writer = format!("arn:aws:iam::{ACCOUNT_B}:role/writer");
    let conf = conf_in(
        dir.path(),
        "chain",
        &endpoint,
        &format!("    role_arn {hop}\n    role_arn.2 {writer}\n    external_id.2 ext-b\n"),
    );
    let grants = printed_grants(&conf);
    let identities: Vec<&str> = grants
        .iter()
        .map(|g| g["identity"].as_str().unwrap())
        .collect();
    assert_eq!(identities, [DEFAULT_CHAIN_IDENTITY, &hop, &writer]);

    let agent_arn = format!("arn:aws:iam::{ACCOUNT_A}:user/agent");
    let admin_arn = format!("arn:aws:iam::{ACCOUNT_A}:user/admin");
    let mut steps = vec![in_account(
        ACCOUNT_B,
        json!({"service": "s3", "call": "create_bucket", "args": {"Bucket": "logs"}}),
    )];
    steps.extend(user_with_key("admin", &allow_all()));
    steps.extend(
        role("admin", &trusting(&admin_arn), &allow_all())
            .into_iter()
            .map(|step| in_account(ACCOUNT_B, step)),
    );
    steps.extend(user_with_key("agent", &grants[0]["policy"]));
    // The hop may only assume the writer: nothing of S3.
    steps.extend(role(
        "hop",
        &trust_for(&grants[1], &agent_arn),
        &grants[1]["policy"],
    ));
    steps.extend(
        role("writer", &grants[2]["trust_policy"], &grants[2]["policy"])
            .into_iter()
            .map(|step| in_account(ACCOUNT_B, step)),
    );
    steps.push(json!({"auth_after": 0}));
    let answers = aws(&endpoint, json!(steps));
    let admin = key_of(&answers[3]);
    let agent = key_of(&answers[8]);

    let input = dir.path().join("app.log");
    write_log(&input, LINES);
    let log = succeeded(
        &run_command(&conf, &input)
            .env("AWS_ACCESS_KEY_ID", &agent.0)
            .env("AWS_SECRET_ACCESS_KEY", &agent.1)
            .output()
            .unwrap(),
    );
    assert!(
        !log.contains("[ warn]") && !log.contains("[error]"),
        "{log}"
    );

    // Read through the writer role of account B, as the admin of account A may assume it.
    let session = &aws(
        &endpoint,
        json!([{
            "service": "sts", "call": "assume_role", "key": admin.0, "secret": admin.1,
            "args": {"RoleArn": format!("arn:aws:iam::{ACCOUNT_B}:role/admin"), "RoleSessionName": "check"}
        }]),
    )[0]["Credentials"];
    let bucket = Bucket::open_session(
        &endpoint,
        "logs",
        (
            session["AccessKeyId"].as_str().unwrap(),
            session["SecretAccessKey"].as_str().unwrap(),
            session["SessionToken"].as_str().unwrap(),
        ),
    );
    assert_eq!(bucket.numbers(), (0..LINES).collect::<Vec<_>>());
}

#[test]
fn irsa_from_a_token_file_with_no_other_credentials() {
    let moto = Moto::start_on(free_port());
    let endpoint = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let irsa = format!("arn:aws:iam::{ACCOUNT_A}:role/irsa");
    let token = dir.path().join("token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.test.token\n").unwrap();
    let conf = conf_in(
        dir.path(),
        "irsa",
        &endpoint,
        &format!(
            "    web_identity_token_file {}\n    web_identity_role_arn {irsa}\n    \
             role_session_name pod-7\n",
            token.display()
        ),
    );
    let grants = printed_grants(&conf);
    assert_eq!(grants.len(), 1);
    assert_eq!(
        grants[0]["trust_policy"]["Statement"][0]["Action"],
        "sts:AssumeRoleWithWebIdentity"
    );
    let mut steps =
        vec![json!({"service": "s3", "call": "create_bucket", "args": {"Bucket": "logs"}})];
    steps.extend(user_with_key("admin", &allow_all()));
    steps.extend(role(
        "irsa",
        &grants[0]["trust_policy"],
        &grants[0]["policy"],
    ));
    // AssumeRoleWithWebIdentity is unsigned, which moto cannot check: it goes free, and
    // every request after it is checked.
    steps.push(json!({"auth_after": 1}));
    let answers = aws(&endpoint, json!(steps));
    let admin = key_of(&answers[3]);

    let input = dir.path().join("app.log");
    write_log(&input, LINES);
    let log = succeeded(
        &run_command(&conf, &input)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .output()
            .unwrap(),
    );
    assert!(
        !log.contains("[ warn]") && !log.contains("[error]"),
        "{log}"
    );
    let bucket = Bucket::open(&endpoint, "logs", (&admin.0, &admin.1));
    assert_eq!(bucket.numbers(), (0..LINES).collect::<Vec<_>>());
}

/// An ECS-style credentials endpoint on loopback that serves whatever session the test
/// sets, and counts how often it was asked.
struct CredentialsEndpoint {
    url: String,
    /// The session it serves; null: it answers 500.
    session: Arc<Mutex<Value>>,
    served: Arc<AtomicUsize>,
}

impl CredentialsEndpoint {
    fn start() -> CredentialsEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/credentials", listener.local_addr().unwrap());
        let session = Arc::new(Mutex::new(Value::Null));
        let served = Arc::new(AtomicUsize::new(0));
        let (session_ref, served_ref) = (session.clone(), served.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap() > 2 {
                    line.clear();
                }
                let session = session_ref.lock().unwrap().clone();
                served_ref.fetch_add(1, Ordering::SeqCst);
                let (status, body) = match session {
                    Value::Null => ("500 Internal Server Error", "{}".to_owned()),
                    session => ("200 OK", session.to_string()),
                };
                write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
            }
        });
        CredentialsEndpoint {
            url,
            session,
            served,
        }
    }

    /// Serves `credentials` (an STS answer's) as expiring in `lifetime`.
    fn serve(&self, credentials: &Value, lifetime: Duration) {
        let expiration = chrono::Utc::now() + lifetime;
        *self.session.lock().unwrap() = json!({
            "AccessKeyId": credentials["AccessKeyId"],
            "SecretAccessKey": credentials["SecretAccessKey"],
            "Token": credentials["SessionToken"],
            "Expiration": expiration.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        });
    }

    /// Answers 500 from now on.
    fn fail(&self) {
        *self.session.lock().unwrap() = Value::Null;
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

/// Moto with roles `writer-1` and `writer-2` (PutObject on `logs`), an ECS-style endpoint
/// that serves their sessions, and `sink s3` with credentials from that endpoint alone.
/// Only for a test in a process of its own: it sets the environment.
struct EcsTask {
    moto: Moto,
    admin: (String, String),
    credentials: CredentialsEndpoint,
    destination: S3Destination,
    dir: tempfile::TempDir,
}

impl EcsTask {
    fn start() -> EcsTask {
        let moto = Moto::start_on(free_port());
        let endpoint = moto.endpoint();
        let writer_policy = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::logs/*"}
        ]});
        let trust = trusting(&format!("arn:aws:iam::{ACCOUNT_A}:user/admin"));
        let mut steps =
            vec![json!({"service": "s3", "call": "create_bucket", "args": {"Bucket": "logs"}})];
        steps.extend(user_with_key("admin", &allow_all()));
        steps.extend(role("writer-1", &trust, &writer_policy));
        steps.extend(role("writer-2", &trust, &writer_policy));
        steps.push(json!({"auth_after": 0}));
        let admin = key_of(&aws(&endpoint, json!(steps))[3]);
        let credentials = CredentialsEndpoint::start();
        // SAFETY: the process runs only the test that called this, and no other thread
        // reads the environment yet.
        unsafe {
            std::env::set_var("AWS_CONTAINER_CREDENTIALS_FULL_URI", &credentials.url);
            std::env::remove_var("AWS_ACCESS_KEY_ID");
            std::env::remove_var("AWS_SECRET_ACCESS_KEY");
            std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
            std::env::set_var("AWS_CONFIG_FILE", "/nonexistent");
            std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
        }
        let pairs = [
            ("sink", "s3"),
            ("bucket", "logs"),
            ("endpoint", endpoint.as_str()),
            ("region", "us-east-1"),
        ];
        let config = Config::from_pairs(&pairs).unwrap();
        let SinkConfig::S3(s3) = config.sink else {
            panic!("sink s3")
        };
        EcsTask {
            destination: S3Destination::open(*s3, rustsink::metrics::Metrics::new("test")).unwrap(),
            dir: tempfile::tempdir().unwrap(),
            moto,
            admin,
            credentials,
        }
    }

    /// A session of `role`, as STS gives it.
    fn session_of(&self, role: &str) -> Value {
        aws(
            &self.moto.endpoint(),
            json!([{
                "service": "sts", "call": "assume_role", "key": self.admin.0,
                "secret": self.admin.1,
                "args": {"RoleArn": format!("arn:aws:iam::{ACCOUNT_A}:role/{role}"),
                         "RoleSessionName": "ecs-task"}
            }]),
        )[0]["Credentials"]
            .clone()
    }

    /// Uploads an object named and filled with `key`.
    fn put(&self, key: &str) -> Result<(), rustsink::destination::DeliveryError> {
        let path = self.dir.path().join(key);
        std::fs::write(&path, key).unwrap();
        let object = SealedObject {
            id: 1,
            key: key.to_owned(),
            token: format!("token-{key}"),
            tag: "t".into(),
            window_start: 0,
            path,
            codec: rustsink::config::Codec::None,
            format: rustsink::config::ObjectFormat::JsonLines,
            len: key.len() as u64,
            progress: None,
        };
        self.destination.put(&object, &mut None)
    }

    /// The keys in the bucket.
    fn keys(&self) -> Vec<String> {
        Bucket::open(
            &self.moto.endpoint(),
            "logs",
            (&self.admin.0, &self.admin.1),
        )
        .keys()
    }
}

/// Credentials from a rotating ECS-style endpoint: refused ones are replaced at once, in
/// the same delivery, and ones about to expire are replaced before they are used.
#[test]
fn refused_credentials_are_renewed_at_once_and_expiring_ones_before_they_expire() {
    in_own_process(
        "credentials::refused_credentials_are_renewed_at_once_and_expiring_ones_before_they_expire",
        || {
            let task = EcsTask::start();
            let (credentials, put) = (&task.credentials, |key: &str| task.put(key));
            credentials.serve(&task.session_of("writer-1"), Duration::from_secs(3600));
            put("one").unwrap();
            assert_eq!(credentials.served(), 1);

            // Rotation: the old session is refused from now on, the endpoint has a new one.
            std::thread::sleep(Duration::from_secs(6));
            aws(
                &task.moto.endpoint(),
                json!([{
                    "service": "iam", "call": "put_role_policy", "key": task.admin.0,
                    "secret": task.admin.1,
                    "args": {"RoleName": "writer-1", "PolicyName": "revoked", "PolicyDocument":
                        json!({"Version": "2012-10-17", "Statement": [
                            {"Effect": "Deny", "Action": "*", "Resource": "*"}]}).to_string()}
                }]),
            );
            credentials.serve(&task.session_of("writer-2"), Duration::from_secs(8));
            put("two").expect("renewed within the same delivery");
            assert_eq!(credentials.served(), 2);

            // Half of its 8 s life left: renewed before it is used.
            std::thread::sleep(Duration::from_secs(5));
            credentials.serve(&task.session_of("writer-2"), Duration::from_secs(3600));
            put("three").unwrap();
            assert_eq!(credentials.served(), 3);

            assert_eq!(task.keys(), ["one", "three", "two"]);
            assert_eq!(renewals("ok"), 3.0);
            assert_eq!(renewals("failed"), 0.0);
        },
    );
}

/// What the metrics say of the credential renewals of the EcsTask's destination.
fn renewals(result: &str) -> f64 {
    let text = rustsink::metrics::encode();
    let name = format!(r#"rustsink_credential_renewals_total{{output="test",result="{result}"}} "#);
    text.lines()
        .find_map(|line| line.strip_prefix(&name))
        .map_or(0.0, |value| value.parse().unwrap())
}

/// A renewal that fails before the credentials expire leaves them in use until they do.
#[test]
fn a_failed_early_renewal_keeps_the_valid_credentials_until_they_expire() {
    in_own_process(
        "credentials::a_failed_early_renewal_keeps_the_valid_credentials_until_they_expire",
        || {
            let task = EcsTask::start();
            let (credentials, put) = (&task.credentials, |key: &str| task.put(key));
            credentials.serve(&task.session_of("writer-1"), Duration::from_secs(12));
            put("one").unwrap();
            assert_eq!(credentials.served(), 1);

            // Past half of the 12 s life, the renewal is due, and the endpoint fails.
            std::thread::sleep(Duration::from_secs(7));
            credentials.fail();
            put("two").expect("the valid credentials still serve");
            let tried = credentials.served();
            assert!(tried >= 2, "the renewal was tried");
            put("three").expect("and go on serving");

            // Once they expire, the failure shows.
            std::thread::sleep(Duration::from_secs(6));
            let error = put("four").unwrap_err().to_string();
            assert!(error.contains("credentials"), "{error}");

            assert_eq!(task.keys(), ["one", "three", "two"]);
            assert_eq!(renewals("ok"), 1.0);
            assert!(renewals("failed") >= 2.0, "{}", rustsink::metrics::encode());
        },
    );
}

#[test]
fn irsa_from_the_environment_uses_sts_endpoint_and_role_session_name() {
    let moto = Moto::start_on(free_port());
    let endpoint = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let irsa = format!("arn:aws:iam::{ACCOUNT_A}:role/irsa");
    let token = dir.path().join("token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.test.token\n").unwrap();
    // Only sts_endpoint (in conf_in) points at the local STS: without it, the token would
    // be sent to AWS's STS, which this machine cannot reach.
    let conf = conf_in(
        dir.path(),
        "irsa",
        &endpoint,
        "    role_session_name pod-9\n",
    );
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
         "Resource": "arn:aws:s3:::logs/*"}
    ]});
    let trust = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": format!("arn:aws:iam::{ACCOUNT_A}:oidc-provider/oidc.eks")},
        "Action": "sts:AssumeRoleWithWebIdentity"
    }]});
    let mut steps =
        vec![json!({"service": "s3", "call": "create_bucket", "args": {"Bucket": "logs"}})];
    steps.extend(user_with_key("admin", &allow_all()));
    steps.extend(role("irsa", &trust, &policy));
    steps.push(json!({"auth_after": 1}));
    let answers = aws(&endpoint, json!(steps));
    let admin = key_of(&answers[3]);

    let input = dir.path().join("app.log");
    write_log(&input, LINES);
    let log = succeeded(
        &run_command(&conf, &input)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token)
            .env("AWS_ROLE_ARN", &irsa)
            .output()
            .unwrap(),
    );
    assert!(
        !log.contains("[ warn]") && !log.contains("[error]"),
        "{log}"
    );
    let bucket = Bucket::open(&endpoint, "logs", (&admin.0, &admin.1));
    assert_eq!(bucket.numbers(), (0..LINES).collect::<Vec<_>>());
}

#[test]
fn a_profile_of_the_shared_credentials_file_gives_the_base_credentials() {
    let moto = Moto::start_on(free_port());
    let endpoint = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let mut steps =
        vec![json!({"service": "s3", "call": "create_bucket", "args": {"Bucket": "logs"}})];
    steps.extend(user_with_key("admin", &allow_all()));
    steps.extend(user_with_key("agent", &allow_all()));
    steps.push(json!({"auth_after": 0}));
    let answers = aws(&endpoint, json!(steps));
    let admin = key_of(&answers[3]);
    let agent = key_of(&answers[6]);
    // The default profile holds a key moto does not know; profile `logs` the agent's.
    let shared = dir.path().join("credentials");
    std::fs::write(
        &shared,
        format!(
            "[default]\naws_access_key_id = AKIAUNKNOWNUNKNOWN00\naws_secret_access_key = x\n\
             [logs]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            agent.0, agent.1
        ),
    )
    .unwrap();
    let input = dir.path().join("app.log");
    write_log(&input, LINES);
    let run = |conf: &Path| {
        let out = run_command(conf, &input)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_SHARED_CREDENTIALS_FILE", &shared)
            .output()
            .unwrap();
        succeeded(&out)
    };

    // No role to assume: only the base credentials sign.
    let conf = |name: &str, extra: &str| {
        let folder = dir.path().join(name);
        std::fs::create_dir_all(&folder).unwrap();
        crate::s3::s3_conf(
            &folder,
            &endpoint,
            &format!("    upload_retry_limit 2\n{extra}"),
        )
    };
    let default = conf("default", "");
    let log = run(&default);
    assert!(log.contains("AKIAUNKNOWNUNKNOWN00"), "{log}");
    let bucket = Bucket::open(&endpoint, "logs", (&admin.0, &admin.1));
    assert!(bucket.keys().is_empty());
    assert_eq!(
        lines_kept_in(&dir.path().join("default/store")),
        LINES as usize
    );

    let profile = conf("profile", "    profile logs\n");
    let log = run(&profile);
    assert!(!log.contains("[error]"), "{log}");
    assert_eq!(bucket.numbers(), (0..LINES).collect::<Vec<_>>());
}
