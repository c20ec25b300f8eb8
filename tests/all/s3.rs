//! `sink s3` against a real S3 server (moto in server mode, started by the tests), through
//! the `rustsink run` command with credentials from the environment.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use rustsink::config::{Config, SinkConfig};
use rustsink::destination::s3::S3Destination;
use rustsink::destination::{Destination, PartDone, SealedObject, UploadProgress};
use serde_json::json;

use crate::support::*;

const BUCKET: &str = "logs";

/// A moto server on a port of its own, stopped when dropped.
pub(crate) struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    pub(crate) fn start_on(port: u16) -> Moto {
        Moto::start_with(port, &[])
    }

    /// Moto serving HTTPS with a certificate and its key (PEM files).
    pub(crate) fn start_https(port: u16, certificate: &Path, key: &Path) -> Moto {
        let (certificate, key) = (certificate.to_str().unwrap(), key.to_str().unwrap());
        Moto::start_with(port, &["--ssl-cert", certificate, "--ssl-key", key])
    }

    fn start_with(port: u16, extra: &[&str]) -> Moto {
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto (installed by .ci/setup: pip install 'moto[server]')");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "moto did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, port }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A client of the test's own, to make the bucket and read what arrived.
pub(crate) struct Bucket {
    client: Client,
    runtime: tokio::runtime::Runtime,
    name: String,
}

impl Bucket {
    /// Creates bucket `logs` while moto's authentication is off.
    pub(crate) fn create(endpoint: &str) -> Bucket {
        let bucket = Bucket::open(endpoint, BUCKET, ("test", "test"));
        bucket
            .runtime
            .block_on(bucket.client.create_bucket().bucket(&bucket.name).send())
            .expect("creating the bucket");
        bucket
    }

    /// Creates this client's bucket while moto's authentication is off.
    pub(crate) fn create_named(&self) {
        self.runtime
            .block_on(self.client.create_bucket().bucket(&self.name).send())
            .expect("creating the bucket");
    }

    /// A client of bucket `name`, signing with `key` (id and secret).
    pub(crate) fn open(endpoint: &str, name: &str, key: (&str, &str)) -> Bucket {
        Bucket::with_credentials(
            endpoint,
            name,
            Credentials::new(key.0, key.1, None, None, "tests"),
        )
    }

    /// A client of bucket `name`, signing with a role session (id, secret, token).
    pub(crate) fn open_session(endpoint: &str, name: &str, session: (&str, &str, &str)) -> Bucket {
        let credentials = Credentials::new(
            session.0,
            session.1,
            Some(session.2.to_owned()),
            None,
            "tests",
        );
        Bucket::with_credentials(endpoint, name, credentials)
    }

    fn with_credentials(endpoint: &str, name: &str, credentials: Credentials) -> Bucket {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .credentials_provider(credentials)
            .build();
        Bucket {
            client: Client::from_conf(config),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            name: name.to_owned(),
        }
    }

    pub(crate) fn keys(&self) -> Vec<String> {
        let listed = self
            .runtime
            .block_on(self.client.list_objects_v2().bucket(&self.name).send())
            .unwrap();
        let mut keys: Vec<String> = listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        keys.sort();
        keys
    }

    pub(crate) fn get(&self, key: &str) -> Vec<u8> {
        self.runtime.block_on(async {
            let object = self
                .client
                .get_object()
                .bucket(&self.name)
                .key(key)
                .send()
                .await
                .unwrap();
            object.body.collect().await.unwrap().into_bytes().to_vec()
        })
    }

    /// Every object's key and records, for objects of uncompressed JSON lines.
    pub(crate) fn plain_objects(&self) -> Vec<(String, Vec<serde_json::Value>)> {
        let objects = self.keys().into_iter().map(|key| {
            let text = String::from_utf8(self.get(&key)).unwrap();
            let records = text.lines().map(|line| serde_json::from_str(line).unwrap());
            (key, records.collect())
        });
        objects.collect()
    }

    /// Stores `body` at `key`, as another writer would.
    pub(crate) fn put(&self, key: &str, body: &[u8]) {
        let request = self
            .client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .body(body.to_vec().into());
        self.runtime.block_on(request.send()).unwrap();
    }

    /// Starts a multipart upload at `key` and stores `parts`, as an earlier attempt would.
    pub(crate) fn begin_upload(&self, key: &str, parts: &[&[u8]]) -> (String, Vec<PartDone>) {
        self.runtime.block_on(async {
            let created = self
                .client
                .create_multipart_upload()
                .bucket(&self.name)
                .key(key)
                .send()
                .await
                .unwrap();
            let upload_id = created.upload_id().unwrap().to_owned();
            let mut done = Vec::new();
            for (index, part) in parts.iter().enumerate() {
                let number = index as u32 + 1;
                let sent = self
                    .client
                    .upload_part()
                    .bucket(&self.name)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number as i32)
                    .body(part.to_vec().into())
                    .send()
                    .await
                    .unwrap();
                done.push(PartDone {
                    number,
                    etag: sent.e_tag().unwrap().to_owned(),
                    checksum: None,
                });
            }
            (upload_id, done)
        })
    }

    fn complete_upload(&self, key: &str, upload_id: &str, parts: &[PartDone]) {
        let parts = parts.iter().map(|part| {
            CompletedPart::builder()
                .part_number(part.number as i32)
                .e_tag(&part.etag)
                .build()
        });
        let upload = CompletedMultipartUpload::builder()
            .set_parts(Some(parts.collect()))
            .build();
        let request = self
            .client
            .complete_multipart_upload()
            .bucket(&self.name)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(upload);
        self.runtime.block_on(request.send()).unwrap();
    }

    /// The key and id of every multipart upload begun and neither completed nor aborted.
    pub(crate) fn uploads(&self) -> Vec<(String, String)> {
        let request = self.client.list_multipart_uploads().bucket(&self.name);
        let listed = self.runtime.block_on(request.send()).unwrap();
        let uploads = listed.uploads().iter();
        let ids = uploads.map(|u| {
            (
                u.key().unwrap().to_owned(),
                u.upload_id().unwrap().to_owned(),
            )
        });
        ids.collect()
    }

    /// Lets requests without a signature in: moto refuses them at a key that holds an
    /// object, and [`Bucket::parts`] sends one.
    pub(crate) fn open_to_anyone(&self) {
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [
                    format!("arn:aws:s3:::{}", self.name),
                    format!("arn:aws:s3:::{}/*", self.name),
                ],
            }],
        });
        let request = self
            .client
            .put_bucket_policy()
            .bucket(&self.name)
            .policy(policy.to_string());
        self.runtime.block_on(request.send()).unwrap();
    }

    /// How many parts an upload holds. Asked without the SDK, which cannot read moto's
    /// answer to ListParts (its root element is `ListPartsResponse`); moto's
    /// authentication is off, and at a key that holds an object the bucket must be
    /// [open to anyone](Bucket::open_to_anyone).
    pub(crate) fn parts(&self, endpoint: &str, key: &str, upload_id: &str) -> usize {
        let address = endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).unwrap();
        write!(
            stream,
            "GET /{}/{key}?uploadId={upload_id} HTTP/1.0\r\nHost: {address}\r\n\r\n",
            self.name
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
            "ListParts of {key}, upload {upload_id}: {answer}"
        );
        answer.matches("<Part>").count()
    }

    /// Multipart uploads begun and neither completed nor aborted.
    pub(crate) fn open_uploads(&self) -> usize {
        let request = self.client.list_multipart_uploads().bucket(&self.name);
        self.runtime
            .block_on(request.send())
            .unwrap()
            .uploads()
            .len()
    }

    /// The `n` of every line of every object, gunzipped.
    pub(crate) fn numbers(&self) -> Vec<u64> {
        let mut numbers = Vec::new();
        for key in self.keys() {
            for line in gunzip(&self.get(&key), &key).lines() {
                let record: serde_json::Value = serde_json::from_str(line).unwrap();
                let log: serde_json::Value =
                    serde_json::from_str(record["log"].as_str().unwrap()).unwrap();
                numbers.push(log["n"].as_u64().unwrap());
            }
        }
        numbers.sort_unstable();
        numbers
    }
}

/// `lines` JSON log lines `{"n": …, "noise": …}` with hard-to-compress noise.
pub(crate) fn write_log(path: &Path, lines: u64) {
    let mut rng = fastrand::Rng::with_seed(lines);
    let mut file = std::io::BufWriter::new(fs::File::create(path).unwrap());
    for n in 0..lines {
        let noise: String = (0..48).map(|_| rng.alphanumeric()).collect();
        writeln!(file, "{{\"n\":{n},\"noise\":\"{noise}\"}}").unwrap();
    }
}

pub(crate) fn s3_conf(dir: &Path, endpoint: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("s3.conf");
    fs::write(
        &path,
        format!(
            "[OUTPUT]\n    Name rustsink\n    Match *\n    bucket {BUCKET}\n    endpoint {endpoint}\n    \
             store_dir {}\n    upload_chunk_size 5M\n    shutdown_timeout 60s\n{extra}",
            dir.join("store").display()
        ),
    )
    .unwrap();
    path
}

/// `rustsink run` with credentials for moto in the environment, and nothing else of AWS.
pub(crate) fn run_command(conf: &Path, input: &Path) -> Command {
    let mut command = Command::new(rustsink_bin());
    command
        .args(["run", "--config"])
        .arg(conf)
        .arg("--input")
        .arg(input)
        .args(["--chunk-records", "5000"])
        .env("RUSTSINK_PLUGIN", plugin_path())
        .env("AWS_REGION", "us-east-1");
    with_moto_credentials(&mut command);
    command
}

/// Gives a child process moto's credentials, and nothing else of AWS to find.
pub(crate) fn with_moto_credentials(command: &mut Command) -> &mut Command {
    command
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
}

pub(crate) fn succeeded(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

#[test]
fn small_and_multipart_objects_land_with_their_headers() {
    let moto = Moto::start_on(free_port());
    let bucket = Bucket::create(&moto.endpoint());
    let dir = tempfile::tempdir().unwrap();
    let extra = "    storage_class STANDARD_IA\n    server_side_encryption AES256\n    \
                 object_tags team=logs&env=test\n    canned_acl public-read\n    \
                 checksum_algorithm crc32\n";
    let conf = s3_conf(dir.path(), &moto.endpoint(), extra);
    // About 8 MiB after gzip: a multipart upload of two parts.
    let (large, small) = (dir.path().join("large.log"), dir.path().join("small.log"));
    write_log(&large, 170_000);
    write_log(&small, 100);
    succeeded(
        &run_command(&conf, &large)
            .args(["--tag", "large"])
            .output()
            .unwrap(),
    );
    succeeded(
        &run_command(&conf, &small)
            .args(["--tag", "small"])
            .output()
            .unwrap(),
    );

    let keys = bucket.keys();
    assert!(
        keys.iter().any(|k| k.starts_with("rustsink/large/")),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.starts_with("rustsink/small/")),
        "{keys:?}"
    );
    let mut expected: Vec<u64> = (0..170_000).chain(0..100).collect();
    expected.sort_unstable();
    assert_eq!(bucket.numbers(), expected, "every line exactly once");
    let heads = bucket.runtime.block_on(async {
        let mut heads = Vec::new();
        for key in &keys {
            let head = bucket
                .client
                .head_object()
                .bucket(BUCKET)
                .key(key)
                .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
                .send()
                .await
                .unwrap();
            let acl = bucket
                .client
                .get_object_acl()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .unwrap();
            let public_read = acl.grants().iter().any(|grant| {
                grant.permission().map(|p| p.as_str()) == Some("READ")
                    && grant
                        .grantee()
                        .and_then(|g| g.uri())
                        .is_some_and(|uri| uri.ends_with("/AllUsers"))
            });
            let tags = bucket
                .client
                .get_object_tagging()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .unwrap();
            heads.push((key.clone(), head, tags.tag_set().len(), public_read));
        }
        heads
    });
    let mut multipart = 0;
    for (key, head, tags, public_read) in heads {
        assert!(public_read, "{key}: canned_acl public-read");
        // S3 keeps the CRC-32 of a whole object, or of its parts (`<crc>-<parts>`).
        assert!(
            head.checksum_crc32().is_some(),
            "{key}: checksum_algorithm crc32"
        );
        assert_eq!(
            head.storage_class().map(|c| c.as_str()),
            Some("STANDARD_IA"),
            "{key}"
        );
        assert_eq!(
            head.server_side_encryption().map(|s| s.as_str()),
            Some("AES256"),
            "{key}"
        );
        assert_eq!(head.content_type(), Some("application/x-ndjson"), "{key}");
        assert_eq!(tags, 2, "{key}");
        // A multipart object's ETag ends in -<parts>.
        if head
            .e_tag()
            .is_some_and(|etag| etag.trim_matches('"').ends_with("-2"))
        {
            multipart += 1;
            assert!(head.content_length().unwrap() > 5 << 20, "{key}");
        }
    }
    assert_eq!(multipart, 1, "the large object is uploaded in two parts");
    let left: Vec<_> = fs::read_dir(dir.path().join("store/rustsink.0/objects"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "nothing is left to deliver: {left:?}");
}

#[test]
fn a_parquet_object_is_uploaded_in_parts_and_reads_back() {
    let moto = Moto::start_on(free_port());
    let bucket = Bucket::create(&moto.endpoint());
    let dir = tempfile::tempdir().unwrap();
    let conf = s3_conf(dir.path(), &moto.endpoint(), "    format parquet\n");
    // About 8 MiB of Parquet: an upload in two parts.
    let log = dir.path().join("app.log");
    write_log(&log, 200_000);
    succeeded(
        &run_command(&conf, &log)
            .args(["--tag", "app"])
            .output()
            .unwrap(),
    );

    let keys = bucket.keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].ends_with(".parquet"), "{keys:?}");
    let head = bucket
        .runtime
        .block_on(
            bucket
                .client
                .head_object()
                .bucket(BUCKET)
                .key(&keys[0])
                .send(),
        )
        .unwrap();
    assert_eq!(head.content_type(), Some("application/vnd.apache.parquet"));
    assert!(
        head.e_tag()
            .is_some_and(|etag| etag.trim_matches('"').ends_with("-2")),
        "two parts: {:?}",
        head.e_tag()
    );
    let object = dir.path().join("object.parquet");
    fs::write(&object, bucket.get(&keys[0])).unwrap();
    // Each record's `log` is a line of the input, `{"n": ..., "noise": ...}`.
    let script = "import json, sys, pyarrow.parquet as pq\n\
                  t = pq.read_table(sys.argv[1])\n\
                  n = sorted(json.loads(line)['n'] for line in t.column('log').to_pylist())\n\
                  print(t.schema.names, len(n), n == list(range(len(n))))";
    assert_eq!(python(script, &[&object]), "['date', 'log'] 200000 True");
}

#[test]
fn objects_wait_in_store_dir_until_the_server_is_up() {
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let conf = s3_conf(dir.path(), &endpoint, "    upload_timeout 1s\n");
    let input = dir.path().join("app.log");
    write_log(&input, 3_000);
    let mut child = run_command(&conf, &input)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let mut buffer = [0u8; 4096];
        // Read until the first refused upload, then hand back what was read.
        while !text.contains("cannot reach") {
            match stderr.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => text.push_str(&String::from_utf8_lossy(&buffer[..n])),
            }
        }
        (text, stderr)
    });
    let (seen, mut stderr) = reader.join().unwrap();
    assert!(seen.contains("cannot reach"), "{seen}");
    assert!(
        seen.contains(&endpoint),
        "the line names the endpoint: {seen}"
    );
    let moto = Moto::start_on(port);
    let bucket = Bucket::create(&moto.endpoint());
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{seen}{rest}");
    assert_eq!(bucket.numbers(), (0..3_000).collect::<Vec<_>>());
}

/// The S3 destination on its own, with test credentials and `upload_chunk_size 5M`, plus
/// `extra` keys. For a test in a process of its own (`in_own_process`): it sets the
/// credentials in the environment.
pub(crate) fn s3_destination(
    endpoint: &str,
    bucket: &str,
    extra: &[(&str, &str)],
) -> S3Destination {
    // SAFETY: the process runs only one test, on one thread, and no other thread reads the
    // environment yet.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
    let mut pairs = vec![
        ("sink", "s3"),
        ("bucket", bucket),
        ("endpoint", endpoint),
        ("region", "us-east-1"),
        ("upload_chunk_size", "5M"),
    ];
    pairs.extend_from_slice(extra);
    let SinkConfig::S3(s3) = Config::from_pairs(&pairs).unwrap().sink else {
        panic!("sink s3")
    };
    S3Destination::open(*s3, rustsink::metrics::Metrics::new("test")).unwrap()
}

/// The S3 destination on its own, with the upload progress an earlier attempt journalled.
#[test]
fn a_multipart_upload_resumes_from_its_recorded_parts() {
    in_own_process(
        "s3::a_multipart_upload_resumes_from_its_recorded_parts",
        || {
            let moto = Moto::start_on(free_port());
            let bucket = Bucket::create(&moto.endpoint());
            let dir = tempfile::tempdir().unwrap();
            let mut rng = fastrand::Rng::with_seed(5);
            let data: Vec<u8> = (0..(12 << 20)).map(|_| rng.u8(..)).collect();
            let path = dir.path().join("object");
            fs::write(&path, &data).unwrap();
            let destination = s3_destination(&moto.endpoint(), BUCKET, &[]);
            let object = |key: &str| SealedObject {
                id: 1,
                key: key.to_owned(),
                token: format!("token-{key}"),
                tag: "t".into(),
                window_start: 0,
                path: path.clone(),
                codec: rustsink::config::Codec::None,
                format: rustsink::config::ObjectFormat::JsonLines,
                len: data.len() as u64,
                progress: None,
            };
            const PART: usize = 5 << 20;

            // A crash after part 1: the next attempt sends parts 2 and 3 to the same upload.
            let (upload_id, etags) = bucket.begin_upload("resumed", &[&data[..PART]]);
            let mut progress = Some(UploadProgress {
                upload_id,
                part_size: PART as u64,
                parts: etags,
            });
            destination.put(&object("resumed"), &mut progress).unwrap();
            assert_eq!(bucket.get("resumed"), data);
            assert_eq!(
                bucket.open_uploads(),
                0,
                "the recorded upload was completed"
            );

            // S3 forgot the upload: the attempt fails, forgets it, and the next one starts over.
            let mut progress = Some(UploadProgress {
                upload_id: "forgotten".into(),
                part_size: PART as u64,
                parts: Vec::new(),
            });
            let error = destination
                .put(&object("restarted"), &mut progress)
                .unwrap_err();
            assert!(error.is_retryable(), "{error}");
            assert_eq!(progress, None, "{error}");
            destination
                .put(&object("restarted"), &mut progress)
                .unwrap();
            assert_eq!(bucket.get("restarted"), data);

            // Completed just before a crash: the object at the key is recognised.
            let parts: Vec<&[u8]> = data.chunks(PART).collect();
            let (upload_id, etags) = bucket.begin_upload("completed", &parts);
            bucket.complete_upload("completed", &upload_id, &etags);
            let mut progress = Some(UploadProgress {
                upload_id,
                part_size: PART as u64,
                parts: etags,
            });
            destination
                .put(&object("completed"), &mut progress)
                .unwrap();
            assert_eq!(bucket.get("completed"), data);
            assert_eq!(bucket.open_uploads(), 0);

            // Parts stored for a longer file (ahead of a seal, with a smaller
            // upload_chunk_size): the object is sent whole, and their upload aborted.
            let (upload_id, etags) = bucket.begin_upload("shorter", &[&data[..PART]]);
            let mut progress = Some(UploadProgress {
                upload_id,
                part_size: PART as u64,
                parts: etags,
            });
            let short = dir.path().join("short");
            fs::write(&short, &data[..4 << 20]).unwrap();
            let shorter = SealedObject {
                path: short,
                len: 4 << 20,
                ..object("shorter")
            };
            destination.put(&shorter, &mut progress).unwrap();
            assert_eq!(bucket.get("shorter"), &data[..4 << 20]);
            assert_eq!(progress, None);
            assert_eq!(bucket.open_uploads(), 0, "the stale upload was aborted");
        },
    );
}

#[test]
fn a_missing_bucket_gets_a_line_of_its_own_and_the_data_stays() {
    let moto = Moto::start_on(free_port());
    let _bucket = Bucket::create(&moto.endpoint());
    let dir = tempfile::tempdir().unwrap();
    let conf = s3_conf(dir.path(), &moto.endpoint(), "    upload_retry_limit 1\n");
    let conf_text = fs::read_to_string(&conf)
        .unwrap()
        .replace(&format!("bucket {BUCKET}"), "bucket no-such-logs");
    fs::write(&conf, conf_text).unwrap();
    let input = dir.path().join("app.log");
    write_log(&input, 100);
    let log = succeeded(&run_command(&conf, &input).output().unwrap());
    let line = log
        .lines()
        .find(|line| line.contains("NoSuchBucket"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("bucket 'no-such-logs' does not exist"),
        "{line}"
    );
    assert!(line.contains("quarantine"), "{line}");
    let kept = dir.path().join("store/rustsink.0/quarantine/0");
    assert!(kept.exists(), "{log}");
}

#[test]
fn a_fresh_store_never_overwrites_an_object_in_the_bucket() {
    let moto = Moto::start_on(free_port());
    let bucket = Bucket::create(&moto.endpoint());
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("app.log");
    // About 10 MB of hard-to-compress lines: an object of about 6 MB, uploaded in parts,
    // and one of about 4 MB, uploaded whole.
    let lines = 150_000;
    write_log(&input, lines);
    // No time in the key: the two runs take the same keys even across the end of an hour.
    let keys = "    s3_key_format dev/app_$INDEX.gz\n    total_file_size 6M\n    time_window off\n";
    let mut taken_lines = 0;
    for run in ["first", "fresh"] {
        // A store of its own each time: the second run knows nothing of the first's keys.
        let dir = work.path().join(run);
        fs::create_dir_all(&dir).unwrap();
        let conf = s3_conf(&dir, &moto.endpoint(), keys);
        let stderr = succeeded(&run_command(&conf, &input).output().unwrap());
        taken_lines += stderr.matches("already holds another object").count();
    }
    let objects = bucket.keys();
    assert!(
        taken_lines >= 2,
        "both objects of the second run found their keys taken"
    );
    assert_eq!(objects.len(), 4, "{objects:?}");
    assert_eq!(bucket.open_uploads(), 0, "an upload was left open");
    let expected: Vec<u64> = (0..lines).flat_map(|n| [n, n]).collect();
    assert_eq!(
        bucket.numbers(),
        expected,
        "every line of both runs, none written over"
    );
}

/// A bucket with Object Lock and a default retention takes only uploads that carry
/// Content-MD5 (or a checksum): `send_content_md5` gives them one, in one piece and in parts.
#[test]
fn send_content_md5_uploads_into_a_bucket_with_object_lock() {
    let moto = Moto::start_on(free_port());
    let endpoint = moto.endpoint();
    let lock = json!({
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}
    });
    crate::credentials::aws(
        &endpoint,
        json!([
            {"service": "s3", "call": "create_bucket",
             "args": {"Bucket": BUCKET, "ObjectLockEnabledForBucket": true}},
            {"service": "s3", "call": "put_object_lock_configuration",
             "args": {"Bucket": BUCKET, "ObjectLockConfiguration": lock}},
        ]),
    );
    let bucket = Bucket::open(&endpoint, BUCKET, ("test", "test"));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("app.log");
    write_log(&input, 2_000);
    // About 8 MiB after gzip: uploaded in parts of 5 MiB.
    let large = dir.path().join("large.log");
    write_log(&large, 170_000);

    let without = dir.path().join("without");
    fs::create_dir_all(&without).unwrap();
    let conf = s3_conf(&without, &endpoint, "    upload_retry_limit 1\n");
    let out = run_command(&conf, &input).output().unwrap();
    let log = succeeded(&out);
    assert!(log.contains("Content-MD5"), "{log}");
    assert!(bucket.keys().is_empty());

    // Each run adds its lines to the bucket: 2,000, then 170,000 more.
    for (name, input, total) in [("small", &input, 2_000), ("large", &large, 172_000)] {
        let folder = dir.path().join(name);
        fs::create_dir_all(&folder).unwrap();
        let conf = s3_conf(&folder, &endpoint, "    send_content_md5 on\n");
        let out = run_command(&conf, input).output().unwrap();
        let log = succeeded(&out);
        assert!(
            !log.contains("[error]") && !log.contains("[ warn]"),
            "{log}"
        );
        assert_eq!(bucket.numbers().len(), total, "{name}");
    }
    assert_eq!(bucket.open_uploads(), 0);
}

/// Runs openssl with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is missing: run `bash .ci/setup`");
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "openssl {args:?}: {error}");
}

/// An endpoint whose certificate a private CA signed: refused until `tls_ca_file` names
/// the CA, and the data waits in the store meanwhile.
#[test]
fn tls_ca_file_trusts_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path();
    fs::write(pki.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    let new_key = ["-newkey", "rsa:2048", "-nodes", "-days", "2"];
    openssl(
        pki,
        &[
            &["req", "-x509"],
            &new_key[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=rustsink test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        pki,
        &[
            &["req"],
            &new_key[..2],
            &[
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    openssl(
        pki,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    let moto = Moto::start_https(
        free_port(),
        &pki.join("server.pem"),
        &pki.join("server.key"),
    );
    let endpoint = format!("https://127.0.0.1:{}", moto.port());
    let ca = pki.join("ca.pem");
    let ca_text = ca.to_str().unwrap();
    let list = json!({"service": "s3", "call": "list_objects_v2", "args": {"Bucket": BUCKET}, "verify": ca_text});
    crate::credentials::aws(
        &endpoint,
        json!([{"service": "s3", "call": "create_bucket", "args": {"Bucket": BUCKET}, "verify": ca_text}]),
    );
    let input = dir.path().join("app.log");
    write_log(&input, 2_000);

    let without = dir.path().join("without");
    fs::create_dir_all(&without).unwrap();
    let conf = s3_conf(&without, &endpoint, "    shutdown_timeout 3s\n");
    let log = succeeded(&run_command(&conf, &input).output().unwrap());
    assert!(log.contains("certificate"), "{log}");
    let listed = crate::credentials::aws(&endpoint, json!([list]));
    assert_eq!(listed[0]["KeyCount"], 0, "{listed:?}");

    let with = dir.path().join("with");
    fs::create_dir_all(&with).unwrap();
    let conf = s3_conf(&with, &endpoint, &format!("    tls_ca_file {ca_text}\n"));
    let log = succeeded(&run_command(&conf, &input).output().unwrap());
    assert!(
        !log.contains("[error]") && !log.contains("[ warn]"),
        "{log}"
    );
    let listed = crate::credentials::aws(&endpoint, json!([list]));
    assert_eq!(listed[0]["KeyCount"], 1, "{listed:?}");
}

/// An object larger than a part is uploaded while it is open: its whole parts are at the
/// server before it is sealed. Killed with `kill -9` then, the next start seals it and
/// completes the same upload with the parts still missing.
#[test]
fn parts_of_an_open_object_are_uploaded_before_it_is_sealed_and_resumed_after_kill_9() {
    let test =
        "s3::parts_of_an_open_object_are_uploaded_before_it_is_sealed_and_resumed_after_kill_9";
    let Some(ahead) = Ahead::killed_with_two_parts_stored(test) else {
        return;
    };
    let (bucket, key) = (&ahead.bucket, &ahead.key);

    // The next start seals it and sends the rest to the same upload, then shuts down.
    ahead.run_to_the_end();
    assert_eq!(
        bucket.open_uploads(),
        0,
        "upload {} was completed",
        ahead.upload_id
    );
    let keys = bucket.keys();
    assert!(keys.contains(key), "{key} in {keys:?}");
    let head = bucket
        .runtime
        .block_on(bucket.client.head_object().bucket(BUCKET).key(key).send())
        .unwrap();
    assert!(
        head.e_tag().unwrap().trim_matches('"').ends_with("-3"),
        "three parts: {:?}",
        head.e_tag()
    );
    let expected: Vec<u64> = (0..27 * AHEAD_RECORDS).collect();
    assert!(ahead.numbers() == expected, "every record exactly once");
}

/// The same, but the open object's file is damaged before the next start: the parts
/// stored ahead may hold bytes the salvaged object does not, so their upload is aborted
/// and the intact part of the object is uploaded afresh.
#[test]
fn the_parts_of_a_damaged_open_object_are_aborted_at_the_next_start() {
    let test = "s3::the_parts_of_a_damaged_open_object_are_aborted_at_the_next_start";
    let Some(ahead) = Ahead::killed_with_two_parts_stored(test) else {
        return;
    };
    let object = ahead.dir.path().join("store/rustsink.0/objects/0");
    let mut bytes = fs::read(&object).unwrap();
    // A byte of the third part, past what was stored ahead.
    bytes[11 << 20] ^= 0x55;
    fs::write(&object, bytes).unwrap();

    ahead.run_to_the_end();
    assert_eq!(
        ahead.bucket.open_uploads(),
        0,
        "upload {} was aborted",
        ahead.upload_id
    );
    let numbers = ahead.numbers();
    assert!(
        numbers.len() > 20 * AHEAD_RECORDS as usize,
        "{}",
        numbers.len()
    );
    let mut unique = numbers.clone();
    unique.dedup();
    assert_eq!(unique.len(), numbers.len(), "no record twice");
}

/// Set in the child process of the tests above: `<store dir> <endpoint> <first> <chunks>`.
const AHEAD_CHILD: &str = "RUSTSINK_AHEAD_CHILD";
/// Records per chunk of those tests, each about 1 KiB as a JSON line.
const AHEAD_RECORDS: u64 = 500;

/// An open object of about 12.5 MiB of JSON lines whose two whole parts of 5 MiB were
/// uploaded ahead, in a store whose process was then killed.
struct Ahead {
    test: String,
    moto: Moto,
    bucket: Bucket,
    dir: tempfile::TempDir,
    key: String,
    upload_id: String,
}

impl Ahead {
    /// Sets it up in the parent; in the child, plays the plugin's host and returns None.
    fn killed_with_two_parts_stored(test: &str) -> Option<Ahead> {
        if let Ok(spec) = std::env::var(AHEAD_CHILD) {
            flush_and_wait(&spec);
            return None;
        }
        let moto = Moto::start_on(free_port());
        let bucket = Bucket::create(&moto.endpoint());
        let dir = tempfile::tempdir().unwrap();
        let mut ahead = Ahead {
            test: test.to_owned(),
            moto,
            bucket,
            dir,
            key: String::new(),
            upload_id: String::new(),
        };
        let mut first = ahead.start(0, 25);
        let deadline = Instant::now() + Duration::from_secs(30);
        let parts = loop {
            let uploads = ahead.bucket.uploads();
            if let [(key, upload_id)] = &uploads[..] {
                let parts = ahead.bucket.parts(&ahead.moto.endpoint(), key, upload_id);
                if parts >= 2 {
                    (ahead.key, ahead.upload_id) = (key.clone(), upload_id.clone());
                    break parts;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the open object's parts were not uploaded: {uploads:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(parts, 2, "only the parts that more data follows");
        assert!(ahead.bucket.keys().is_empty(), "the object is still open");
        let killed = Command::new("kill")
            .args(["-9", &first.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        first.wait().unwrap();
        Some(ahead)
    }

    /// Starts the child, which flushes `chunks` chunks from chunk `first`.
    fn start(&self, first: u64, chunks: u64) -> Child {
        let spec = format!(
            "{} {} {first} {chunks}",
            self.dir.path().join("store").display(),
            self.moto.endpoint()
        );
        let mut child = with_moto_credentials(&mut Command::new(std::env::current_exe().unwrap()))
            .args([&self.test, "--exact", "--nocapture", "--test-threads=1"])
            .env(AHEAD_CHILD, spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut lines = std::io::BufRead::lines(stdout);
        let fed = lines.any(|line| line.unwrap().contains("all OK"));
        assert!(fed, "the child did not flush its chunks");
        // Its last words need a reader.
        std::thread::spawn(move || lines.for_each(drop));
        child
    }

    /// Starts the store again, flushes two more chunks and shuts down.
    fn run_to_the_end(&self) {
        let mut second = self.start(25, 2);
        drop(second.stdin.take());
        assert!(second.wait().unwrap().success());
    }

    /// The `n` of every line in the bucket, sorted.
    fn numbers(&self) -> Vec<u64> {
        let objects = self.bucket.plain_objects();
        let records = objects.iter().flat_map(|(_, records)| records);
        let mut numbers: Vec<u64> = records.map(|r| r["n"].as_u64().unwrap()).collect();
        numbers.sort_unstable();
        numbers
    }
}

/// The child's side of the tests above: flushes its chunks to a `sink s3` output, says so,
/// and shuts down when its standard input ends (unless it is killed first).
fn flush_and_wait(spec: &str) {
    use rustsink::event::EventTime;
    use rustsink::event::chunk::{ChunkWriter, EventFormat, TimeForm};
    use rustsink_cli::harness::{HostVersion, OutputSection};

    let [store, endpoint, first, chunks] = spec.split(' ').collect::<Vec<_>>()[..] else {
        panic!("{AHEAD_CHILD}: {spec}")
    };
    let (first, chunks): (u64, u64) = (first.parse().unwrap(), chunks.parse().unwrap());
    let pairs = [
        ("Name", "rustsink"),
        ("Match", "*"),
        ("sink", "s3"),
        ("bucket", BUCKET),
        ("endpoint", endpoint),
        ("region", "us-east-1"),
        ("store_dir", store),
        ("compression", "none"),
        ("upload_chunk_size", "5M"),
        ("time_window", "1h"),
    ];
    let section = OutputSection::new(pairs);
    let mut fluent_bit = load(HostVersion::V5);
    let out = fluent_bit.add_output(&section).unwrap();
    let padding = "x".repeat(1000);
    // Now, so that the object's window is open.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    for chunk in first..first + chunks {
        let mut writer = ChunkWriter::new();
        for n in chunk * AHEAD_RECORDS..(chunk + 1) * AHEAD_RECORDS {
            let body = rmpv::Value::Map(vec![
                ("n".into(), n.into()),
                ("pad".into(), padding.as_str().into()),
            ]);
            let time = EventTime::new(now.as_secs() as i64, 0);
            writer.push(EventFormat::V2, TimeForm::EventTime, time, None, body);
        }
        assert_eq!(fluent_bit.flusher(out).flush(&writer.finish(), "ahead"), 1);
    }
    println!("all OK");
    std::io::stdin()
        .lock()
        .read_to_end(&mut Vec::new())
        .unwrap();
    fluent_bit.shutdown().unwrap();
}
