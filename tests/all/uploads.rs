//! `sink s3` when uploads are slow, when the server goes away in the middle of one, and
//! when the process is killed in the middle of one: a TCP proxy in front of moto holds,
//! cuts and refuses connections (moto answers one request per connection, so each
//! connection's first line is the request).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::s3::{
    Bucket, Moto, free_port, run_command, s3_conf, s3_destination, succeeded, write_log,
};
use crate::support::in_own_process;

/// A proxy that forwards to a port, and that a test can make hold some requests, or go
/// down (cut every connection and refuse new ones) and come back.
struct Proxy {
    port: u16,
    state: Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    /// Requests whose first line contains this wait until it is cleared.
    hold: Mutex<Option<String>>,
    /// Requests whose first line contains this are cut.
    refuse: Mutex<Option<String>>,
    down: Mutex<bool>,
    /// Whether `If-None-Match` headers are taken out, as a server that ignores them would.
    strip_conditions: Mutex<bool>,
    /// The first line of every request seen.
    requests: Mutex<Vec<String>>,
    /// Both ends of every forwarded connection, to cut them.
    open: Mutex<Vec<TcpStream>>,
}

impl Proxy {
    fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(ProxyState::default());
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let state = Arc::clone(&shared);
                std::thread::spawn(move || forward(client, target, &state));
            }
        });
        Proxy { port, state }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn hold(&self, pattern: Option<&str>) {
        *self.state.hold.lock().unwrap() = pattern.map(str::to_owned);
    }

    fn refuse(&self, pattern: Option<&str>) {
        *self.state.refuse.lock().unwrap() = pattern.map(str::to_owned);
    }

    fn set_down(&self, down: bool) {
        *self.state.down.lock().unwrap() = down;
        if down {
            for stream in self.state.open.lock().unwrap().drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    fn strip_conditions(&self) {
        *self.state.strip_conditions.lock().unwrap() = true;
    }

    fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }

    fn count(&self, pattern: &str) -> usize {
        self.requests()
            .iter()
            .filter(|line| line.contains(pattern))
            .count()
    }

    /// Waits until a request containing `pattern` has been seen.
    fn wait_for(&self, pattern: &str, limit: Duration) {
        let start = Instant::now();
        while self.count(pattern) == 0 {
            assert!(
                start.elapsed() < limit,
                "no request with '{pattern}': {:?}",
                self.requests()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `head` (a request's header and what came with it) without the header lines that start
/// with `name` (lowercase, with its colon).
fn strip_header(head: &[u8], name: &[u8]) -> Vec<u8> {
    let end = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut out = Vec::with_capacity(head.len());
    for line in head[..end].split_inclusive(|&b| b == b'\n') {
        if !line.to_ascii_lowercase().starts_with(name) {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(&head[end..]);
    out
}

fn forward(mut client: TcpStream, target: u16, state: &ProxyState) {
    let is_down = || *state.down.lock().unwrap();
    if is_down() {
        return;
    }
    let mut head = Vec::new();
    let mut buffer = [0u8; 16 << 10];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    if *state.strip_conditions.lock().unwrap() {
        head = strip_header(&head, b"if-none-match:");
    }
    state.requests.lock().unwrap().push(line.clone());
    let refused = state
        .refuse
        .lock()
        .unwrap()
        .as_ref()
        .is_some_and(|p| line.contains(p.as_str()));
    if refused {
        return;
    }
    while state
        .hold
        .lock()
        .unwrap()
        .as_ref()
        .is_some_and(|pattern| line.contains(pattern.as_str()))
    {
        if is_down() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)) else {
        return;
    };
    {
        let mut open = state.open.lock().unwrap();
        if is_down() {
            return;
        }
        open.push(client.try_clone().unwrap());
        open.push(server.try_clone().unwrap());
    }
    if server.write_all(&head).is_err() {
        return;
    }
    let (mut client_in, mut server_out) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let upstream = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_in, &mut server_out);
        let _ = server_out.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.join();
}

fn conf(dir: &Path, proxy: &Proxy, extra: &str) -> std::path::PathBuf {
    s3_conf(
        dir,
        &proxy.endpoint(),
        &format!("    s3_key_format objects/$INDEX.jsonl.gz\n{extra}"),
    )
}

#[test]
fn a_slow_upload_does_not_hold_back_the_others() {
    let moto = Moto::start_on(free_port());
    let bucket = Bucket::create(&moto.endpoint());
    let proxy = Proxy::start(moto.port());
    let dir = tempfile::tempdir().unwrap();
    // Objects of 64 KiB: a dozen of them, uploaded 4 at a time by default.
    let conf = conf(dir.path(), &proxy, "    total_file_size 64K\n");
    let input = dir.path().join("app.log");
    write_log(&input, 20_000);
    proxy.hold(Some("/objects/0.jsonl.gz"));
    let child = run_command(&conf, &input).spawn().unwrap();

    proxy.wait_for("/objects/0.jsonl.gz", Duration::from_secs(60));
    let start = Instant::now();
    loop {
        let keys = bucket.keys();
        if keys.len() >= 3 {
            assert!(!keys.contains(&"objects/0.jsonl.gz".to_owned()));
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the others wait for the held one: {keys:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    proxy.hold(None);
    succeeded(&child.wait_with_output().unwrap());
    assert_eq!(bucket.numbers(), (0..20_000).collect::<Vec<_>>());
    assert!(bucket.keys().contains(&"objects/0.jsonl.gz".to_owned()));
}

/// About 8 MiB after gzip: a multipart upload of two 5 MiB parts.
const LARGE: u64 = 170_000;

/// moto behind a proxy, and a configuration and input that make one multipart object.
struct Multipart {
    _moto: Moto,
    bucket: Bucket,
    proxy: Proxy,
    dir: tempfile::TempDir,
    conf: std::path::PathBuf,
    input: std::path::PathBuf,
}

impl Multipart {
    fn new(extra: &str) -> Multipart {
        let moto = Moto::start_on(free_port());
        let bucket = Bucket::create(&moto.endpoint());
        let proxy = Proxy::start(moto.port());
        let dir = tempfile::tempdir().unwrap();
        let conf = conf(dir.path(), &proxy, extra);
        let input = dir.path().join("app.log");
        write_log(&input, LARGE);
        Multipart {
            _moto: moto,
            bucket,
            proxy,
            dir,
            conf,
            input,
        }
    }

    fn run(&self) -> Command {
        run_command(&self.conf, &self.input)
    }

    /// Every line arrived once, in one object, by one upload that sent part 1 once.
    fn assert_delivered_by_one_upload(&self) {
        assert_eq!(self.bucket.numbers(), (0..LARGE).collect::<Vec<_>>());
        assert_eq!(self.bucket.keys(), ["objects/0.jsonl.gz"]);
        assert_eq!(self.bucket.open_uploads(), 0);
        let requests = self.proxy.requests();
        assert_eq!(self.proxy.count("?uploads"), 1, "{requests:?}");
        assert_eq!(self.proxy.count("partNumber=1&"), 1, "{requests:?}");
    }
}

#[test]
fn the_server_going_away_mid_upload_loses_and_repeats_nothing() {
    let scene = Multipart::new("");
    scene.proxy.hold(Some("partNumber=2"));
    let child = scene.run().stderr(Stdio::piped()).spawn().unwrap();

    // Part 2 is on its way: the server goes away for a while, then comes back. Longer
    // than the SDK's own quick retries of one attempt (three, with backoff up to about 3 s
    // in all), so that the attempt fails as a whole even on a loaded machine.
    scene
        .proxy
        .wait_for("partNumber=2", Duration::from_secs(120));
    scene.proxy.set_down(true);
    scene.proxy.hold(None);
    std::thread::sleep(Duration::from_secs(8));
    scene.proxy.set_down(false);

    let log = succeeded(&child.wait_with_output().unwrap());
    assert!(log.contains("failed (attempt 1 of"), "{log}");
    scene.assert_delivered_by_one_upload();
}

#[test]
fn a_kill_in_the_middle_of_a_multipart_upload_resumes_after_the_restart() {
    let scene = Multipart::new("");
    scene.proxy.hold(Some("partNumber=2"));
    let mut child = scene.run().spawn().unwrap();
    scene
        .proxy
        .wait_for("partNumber=2", Duration::from_secs(120));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    scene.proxy.hold(None);

    // The next start finds the sealed object and its recorded part in the journal.
    let empty = scene.dir.path().join("empty.log");
    std::fs::write(&empty, "").unwrap();
    let log = succeeded(&run_command(&scene.conf, &empty).output().unwrap());
    assert!(log.contains("from before the restart"), "{log}");
    scene.assert_delivered_by_one_upload();
}

#[test]
fn a_quarantined_multipart_object_leaves_no_upload_behind() {
    let scene = Multipart::new("    upload_retry_limit 2\n");
    scene.proxy.refuse(Some("partNumber=2"));
    let log = succeeded(&scene.run().output().unwrap());
    assert!(log.contains("after 2 attempts"), "{log}");
    let requests = scene.proxy.requests();
    assert_eq!(
        scene.proxy.count("x-id=AbortMultipartUpload"),
        1,
        "{requests:?}"
    );
    assert_eq!(scene.bucket.open_uploads(), 0);
    assert!(scene.bucket.keys().is_empty());
    let quarantined = scene.dir.path().join("store/rustsink.0/quarantine/0");
    assert!(quarantined.exists(), "{log}");
}

/// A server that ignores `If-None-Match` (played by the proxy taking the header out) lets
/// a second agent write over an object, unless `s3_check_existing` asks first.
#[test]
fn s3_check_existing_keeps_a_server_that_ignores_if_none_match_from_overwriting() {
    let moto = Moto::start_on(free_port());
    let proxy = Proxy::start(moto.port());
    proxy.strip_conditions();
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("app.log");
    let lines = 2_000;
    write_log(&input, lines);
    for (check, objects) in [("off", 1), ("on", 2)] {
        let bucket_name = format!("logs-check-{check}");
        Bucket::open(&moto.endpoint(), &bucket_name, ("test", "test")).create_named();
        // No time in the key: the two runs take the same key even across the end of an hour.
        let keys = format!(
            "    s3_key_format dev/app_$INDEX.gz\n    time_window off\n    \
             s3_check_existing {check}\n"
        );
        for run in ["first", "fresh"] {
            let dir = work.path().join(format!("{check}-{run}"));
            std::fs::create_dir_all(&dir).unwrap();
            let conf = s3_conf(&dir, &proxy.endpoint(), &keys);
            let text = std::fs::read_to_string(&conf).unwrap();
            std::fs::write(
                &conf,
                text.replace("bucket logs\n", &format!("bucket {bucket_name}\n")),
            )
            .unwrap();
            succeeded(&run_command(&conf, &input).output().unwrap());
        }
        let bucket = Bucket::open(&moto.endpoint(), &bucket_name, ("test", "test"));
        assert_eq!(bucket.keys().len(), objects, "s3_check_existing {check}");
        let expected: Vec<u64> = match check {
            // The second run's object replaced the first's.
            "off" => (0..lines).collect(),
            _ => (0..lines).flat_map(|n| [n, n]).collect(),
        };
        assert_eq!(bucket.numbers(), expected, "s3_check_existing {check}");
    }
}

/// The same server: with `s3_check_existing`, an upload whose parts were stored earlier
/// (ahead of its object's seal, or before a failure) looks at the key again before it is
/// completed. Another writer took the key meanwhile: nothing is written over its object,
/// and the upload is aborted.
#[test]
fn s3_check_existing_looks_again_before_completing_an_upload_begun_earlier() {
    use rustsink::config::{Codec, ObjectFormat};
    use rustsink::destination::{DeliveryError, Destination, SealedObject, UploadProgress};

    in_own_process(
        "uploads::s3_check_existing_looks_again_before_completing_an_upload_begun_earlier",
        || {
            let moto = Moto::start_on(free_port());
            let proxy = Proxy::start(moto.port());
            proxy.strip_conditions();
            let bucket = Bucket::open(&moto.endpoint(), "logs-later", ("test", "test"));
            bucket.create_named();
            let dir = tempfile::tempdir().unwrap();
            let data: Vec<u8> = (0..(6u32 << 20)).map(|i| (i % 251) as u8).collect();
            let path = dir.path().join("object");
            std::fs::write(&path, &data).unwrap();
            let check = [("s3_check_existing", "on")];
            let destination = s3_destination(&proxy.endpoint(), "logs-later", &check);
            let (upload_id, parts) = bucket.begin_upload("dev/taken", &[&data[..5 << 20]]);
            let mut progress = Some(UploadProgress {
                upload_id,
                part_size: 5 << 20,
                parts,
            });
            bucket.put("dev/taken", b"another writer's object");
            let object = SealedObject {
                id: 1,
                key: "dev/taken".into(),
                token: "ours".into(),
                tag: "t".into(),
                window_start: 0,
                path,
                codec: Codec::None,
                format: ObjectFormat::JsonLines,
                len: data.len() as u64,
                progress: None,
            };
            let answer = destination.put(&object, &mut progress);
            assert!(
                matches!(answer, Err(DeliveryError::KeyTaken { .. })),
                "{answer:?}"
            );
            assert_eq!(bucket.get("dev/taken"), b"another writer's object");
            assert_eq!(progress, None);
            assert_eq!(bucket.open_uploads(), 0, "the upload was aborted");
        },
    );
}
