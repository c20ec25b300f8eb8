//! Sink components through the harness: the `http` sink against a real local HTTP
//! server, answering as each test scripts it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustsink::event::EventTime;
use rustsink::event::chunk::{ChunkWriter, EventFormat, TimeForm};
use rustsink_cli::harness::{FluentBit, HostVersion, OutputId, OutputSection, take_log_lines};

use crate::support::*;

/// What the server does with the next request.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Status(u16),
    /// Answers after a pause.
    Slow(Duration, u16),
}

/// A request the server received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// A local HTTP server that records requests and answers from a script (200 when the
/// script is empty).
struct Endpoint {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<VecDeque<Answer>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Endpoint {
    fn start(answers: &[Answer]) -> Endpoint {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(answers.iter().copied().collect::<VecDeque<_>>()));
        let thread = {
            let (server, received, answers) = (server.clone(), received.clone(), answers.clone());
            std::thread::spawn(move || {
                for mut request in server.incoming_requests() {
                    let mut body = String::new();
                    request.as_reader().read_to_string(&mut body).unwrap();
                    received.lock().unwrap().push(Received {
                        path: request.url().to_owned(),
                        headers: request
                            .headers()
                            .iter()
                            .map(|h| (h.field.to_string().to_lowercase(), h.value.to_string()))
                            .collect(),
                        body,
                    });
                    let answer = answers.lock().unwrap().pop_front();
                    let status = match answer.unwrap_or(Answer::Status(200)) {
                        Answer::Status(status) => status,
                        Answer::Slow(pause, status) => {
                            std::thread::sleep(pause);
                            status
                        }
                    };
                    let response = tiny_http::Response::from_string(format!("answer {status}"))
                        .with_status_code(status);
                    let _ = request.respond(response);
                }
            })
        };
        Endpoint {
            port,
            received,
            answers,
            server,
            thread: Some(thread),
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn url(&self, host: &str) -> String {
        format!("http://{host}:{}/ingest?source=fluent-bit", self.port)
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.answers.lock().unwrap().clear();
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An output whose sink is the `http` component, with `store_dir` in `dir`.
fn http_output(dir: &std::path::Path, keys: &[(&str, &str)]) -> OutputSection {
    sink_output(&components().http, dir, keys)
}

/// Fluent Bit with one output whose `http` sink posts to `url` on 127.0.0.1, plus `keys`;
/// and the output's `store_dir`.
fn posting_to(url: &str, keys: &[(&str, &str)]) -> (FluentBit, OutputId, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![("sink.url", url), ("sink.allowed_hosts", "127.0.0.1")];
    all.extend_from_slice(keys);
    let mut fluent_bit = load(HostVersion::V5);
    let output = fluent_bit
        .add_output(&http_output(dir.path(), &all))
        .unwrap();
    (fluent_bit, output, dir)
}

/// An output whose sink is `component`, with `store_dir` in `dir`.
fn sink_output(
    component: &std::path::Path,
    dir: &std::path::Path,
    keys: &[(&str, &str)],
) -> OutputSection {
    let mut pairs = vec![
        ("Name".to_owned(), "rustsink".to_owned()),
        ("Match".to_owned(), "*".to_owned()),
        ("sink".to_owned(), component.display().to_string()),
        ("store_dir".to_owned(), dir.display().to_string()),
    ];
    pairs.extend(keys.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    OutputSection::new(pairs)
}

/// A chunk of records `{"log": "line n", "n": n}` for n in `numbers`, at 10:00:00.25.
fn chunk_of(numbers: std::ops::Range<u64>) -> Vec<u8> {
    let mut chunk = ChunkWriter::new();
    for n in numbers {
        chunk.push(
            EventFormat::V1,
            TimeForm::EventTime,
            EventTime::new(1_714_557_600, 250_000_000),
            None,
            record(&format!("line {n}"), n),
        );
    }
    chunk.finish()
}

/// The `n` of every line of every body received.
fn numbers_received(endpoint: &Endpoint) -> Vec<u64> {
    endpoint
        .received()
        .iter()
        .flat_map(|r| {
            r.body
                .lines()
                .map(|line| {
                    serde_json::from_str::<serde_json::Value>(line).unwrap()["n"]
                        .as_u64()
                        .unwrap()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_http_sink_posts_each_chunk_as_ndjson_after_the_filters() {
    let endpoint = Endpoint::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let grep = components().grep.display().to_string();
    let url = endpoint.url("127.0.0.1");
    let allowed = format!("127.0.0.1:{}", endpoint.port);
    let mut fluent_bit = load(HostVersion::V5);
    let output = fluent_bit
        .add_output(&http_output(
            dir.path(),
            &[
                ("sink.url", &url),
                ("sink.allowed_hosts", &allowed),
                ("sink.headers", "Authorization: Bearer s3cret; X-Team: logs"),
                ("filter.1", &grep),
                ("filter.1.key", "log"),
                ("filter.1.regex", "[02468]$"),
            ],
        ))
        .unwrap();
    let flusher = fluent_bit.flusher(output);
    assert_eq!(flusher.flush(&chunk_of(0..10), "app.web"), FLB_OK);
    assert_eq!(flusher.flush(&chunk_of(10..13), "app.db"), FLB_OK);
    // Every record filtered out: nothing to send, and the chunk is done.
    assert_eq!(flusher.flush(&chunk_of(13..14), "app.db"), FLB_OK);
    fluent_bit.shutdown().unwrap();

    let received = endpoint.received();
    assert_eq!(received.len(), 2, "{received:?}");
    let first = &received[0];
    assert_eq!(first.path, "/ingest?source=fluent-bit");
    let header = |name: &str| {
        first
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("content-type"), Some("application/x-ndjson"));
    assert_eq!(header("authorization"), Some("Bearer s3cret"));
    assert_eq!(header("x-team"), Some("logs"));
    assert_eq!(header("host"), Some(allowed.as_str()));
    assert_eq!(
        first.body.lines().next().unwrap(),
        r#"{"date":1714557600.25,"log":"line 0","n":0}"#
    );
    assert_eq!(numbers_received(&endpoint), [0, 2, 4, 6, 8, 10, 12]);
}

#[test]
fn retryable_statuses_retry_and_others_drop_the_chunk() {
    let endpoint = Endpoint::start(&[
        Answer::Status(429),
        Answer::Status(503),
        Answer::Status(302),
        Answer::Status(200),
        Answer::Status(400),
    ]);
    let (fluent_bit, output, _dir) = posting_to(&endpoint.url("127.0.0.1"), &[]);
    let flusher = fluent_bit.flusher(output);
    let chunk = chunk_of(0..5);
    assert_eq!(flusher.flush(&chunk, "t"), FLB_RETRY, "429");
    assert_eq!(flusher.flush(&chunk, "t"), FLB_RETRY, "503");
    // A redirect means the url needs fixing: the chunk is kept, not dropped.
    assert_eq!(flusher.flush(&chunk, "t"), FLB_RETRY, "302");
    assert_eq!(flusher.flush(&chunk, "t"), FLB_OK, "200");
    assert_eq!(flusher.flush(&chunk_of(5..7), "t"), FLB_ERROR, "400");
    fluent_bit.shutdown().unwrap();
    let bodies: Vec<String> = endpoint.received().into_iter().map(|r| r.body).collect();
    assert_eq!(bodies.len(), 5);
    assert!(
        bodies[..4].iter().all(|body| *body == bodies[0]),
        "a retry sends the same records"
    );
}

#[test]
fn a_slow_server_times_the_request_out_and_the_chunk_is_retried() {
    let endpoint = Endpoint::start(&[Answer::Slow(Duration::from_secs(3), 200)]);
    let (fluent_bit, output, _dir) =
        posting_to(&endpoint.url("127.0.0.1"), &[("sink.timeout", "500ms")]);
    let flusher = fluent_bit.flusher(output);
    let started = Instant::now();
    assert_eq!(flusher.flush(&chunk_of(0..3), "t"), FLB_RETRY);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
    // Once the server is quick again, the same chunk goes through.
    std::thread::sleep(Duration::from_secs(3) - waited);
    assert_eq!(flusher.flush(&chunk_of(0..3), "t"), FLB_OK);
    fluent_bit.shutdown().unwrap();
    assert_eq!(endpoint.received().len(), 2);
}

#[test]
fn a_server_that_is_down_gets_the_chunk_retried() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (fluent_bit, output, _dir) = posting_to(&format!("http://127.0.0.1:{port}/"), &[]);
    assert_eq!(
        fluent_bit.flusher(output).flush(&chunk_of(0..3), "t"),
        FLB_RETRY
    );
    fluent_bit.shutdown().unwrap();
}

#[test]
fn requests_outside_allowed_hosts_are_refused_and_logged() {
    in_own_process(
        "sinks::requests_outside_allowed_hosts_are_refused_and_logged",
        || {
            let endpoint = Endpoint::start(&[]);
            let dir = tempfile::tempdir().unwrap();
            let port = endpoint.port.to_string();
            let allowed_name = format!("127.0.0.1:{port}");
            let refused = [
                // Another name for the same server is another host.
                ("localhost", endpoint.url("localhost")),
                // The allowed host on another port.
                ("port", endpoint.url("127.0.0.1").replace(&port, "1")),
            ];
            let mut fluent_bit = load(HostVersion::V5);
            for (case, url) in &refused {
                let keys = [
                    ("sink.url", url.as_str()),
                    ("sink.allowed_hosts", allowed_name.as_str()),
                ];
                let output = fluent_bit
                    .add_output(&http_output(dir.path(), &keys))
                    .unwrap();
                // A configuration mistake: the chunk is kept for a retry, never dropped.
                let status = fluent_bit.flusher(output).flush(&chunk_of(0..2), "t");
                assert_eq!(status, FLB_RETRY, "{case}");
            }
            fluent_bit.shutdown().unwrap();
            assert!(endpoint.received().is_empty(), "{:?}", endpoint.received());
            let lines: Vec<String> = take_log_lines().into_iter().map(|l| l.message).collect();
            let refusals: Vec<&String> = lines
                .iter()
                .filter(|line| line.contains("[http] refused a POST request to"))
                .collect();
            assert_eq!(refusals.len(), 2, "{lines:#?}");
            assert!(
                refusals[0].contains(&format!(
                    "localhost:{port} is not in sink.allowed_hosts (127.0.0.1:{port})"
                )),
                "{}",
                refusals[0]
            );
            assert!(
                lines.iter().any(|line| line
                    .contains("did not take a chunk of tag 't' (2 records)")
                    && line.contains("a request was refused: sink.allowed_hosts")
                    && line.contains("Fluent Bit keeps the chunk and retries")),
                "{lines:#?}"
            );
            // The start said so already.
            assert!(
                lines.iter().any(|line| line
                    .contains(&format!("sink.url is http://localhost:{port}/"))
                    && line.contains("every request to it will be refused")),
                "{lines:#?}"
            );
        },
    );
}

#[test]
fn sink_options_and_kinds_are_checked_at_start() {
    in_own_process("sinks::sink_options_and_kinds_are_checked_at_start", || {
        let dir = tempfile::tempdir().unwrap();
        let grep = components().grep.display().to_string();
        let mut fluent_bit = load(HostVersion::V5);
        // The http sink needs a url of its form; allowed hosts are host[:port]; a filter
        // is not a sink.
        // The keys, and what the error line must say.
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: [Case; 5] = [
            (&[], &["'sink'", "component 'http' needs option 'url'"]),
            (
                &[("sink.url", "ftp://x/")],
                &[
                    "component 'http' refused its options",
                    "option 'url': 'ftp://x/' does not start with http:// or https://",
                ],
            ),
            (
                &[
                    ("sink.url", "http://x/"),
                    ("sink.allowed_hosts", "http://x"),
                ],
                &["invalid value 'http://x' for key 'sink.allowed_hosts'"],
            ),
            // A Host header could only mislead: the host sets it from the url.
            (
                &[
                    ("sink.url", "http://x/"),
                    ("sink.headers", "Host: 127.0.0.1"),
                ],
                &["option 'headers': cannot set 'host'"],
            ),
            (
                &[("sink", &grep)],
                &["grep.wasm is a filter component; it cannot be used as a sink"],
            ),
        ];
        for (keys, expected) in cases {
            take_log_lines();
            let started = fluent_bit.add_output(&http_output(dir.path(), keys));
            assert!(started.is_err(), "{keys:?}");
            let lines: Vec<String> = take_log_lines().into_iter().map(|l| l.message).collect();
            for part in expected {
                assert!(
                    lines.iter().any(|line| line.contains(part)),
                    "{keys:?}: no line with {part:?} in {lines:#?}"
                );
            }
        }
        fluent_bit.shutdown().unwrap();
    });
}

#[test]
fn a_failing_sink_gets_the_chunk_retried_or_dropped_and_a_fresh_instance() {
    in_own_process(
        "sinks::a_failing_sink_gets_the_chunk_retried_or_dropped_and_a_fresh_instance",
        || {
            let dir = tempfile::tempdir().unwrap();
            let mut poisoned = ChunkWriter::new();
            poisoned.push(
                EventFormat::V2,
                TimeForm::EventTime,
                EventTime::new(1_714_557_600, 0),
                None,
                record("poison", 99),
            );
            let poisoned = poisoned.finish();
            // The behaviour, what Fluent Bit is told, and what the log line says.
            let cases = [
                ("loop", FLB_RETRY, "took longer than its timeout (200ms)"),
                ("memory", FLB_RETRY, "went over its memory limit"),
                ("trap", FLB_RETRY, "the component trapped"),
                (
                    "busy",
                    FLB_RETRY,
                    "busy, try later; Fluent Bit keeps the chunk",
                ),
                (
                    "broken",
                    FLB_ERROR,
                    "this batch can never be taken; Fluent Bit drops",
                ),
            ];
            let mut fluent_bit = load(HostVersion::V5);
            for (behaviour, status, logged) in cases {
                let section = sink_output(
                    &components().hostile_sink,
                    dir.path(),
                    &[
                        ("sink.behaviour", behaviour),
                        ("sink.timeout", "200ms"),
                        ("sink.memory_limit", "16M"),
                    ],
                );
                let output = fluent_bit.add_output(&section).unwrap();
                take_log_lines();
                let flusher = fluent_bit.flusher(output);
                assert_eq!(flusher.flush(&poisoned, "t"), status, "{behaviour}");
                // The next chunk goes to a working instance.
                assert_eq!(flusher.flush(&chunk_of(0..3), "t"), FLB_OK, "{behaviour}");
                let lines: Vec<String> = take_log_lines().into_iter().map(|l| l.message).collect();
                assert!(
                    lines.iter().any(|line| line.contains(logged)),
                    "{behaviour}: {lines:#?}"
                );
                assert!(
                    lines
                        .iter()
                        .any(|line| line.contains("[hostile-sink] took t: 0,1,2")),
                    "{behaviour}: {lines:#?}"
                );
            }
            fluent_bit.shutdown().unwrap();
            // The sinks' runtimes and the epoch ticker end with their outputs.
            assert!(plugin_threads().is_empty(), "{:?}", plugin_threads());
        },
    );
}

#[test]
fn authors_can_describe_a_sink() {
    let described = described(&components().http);
    assert!(described.starts_with("http (sink): "), "{described}");
    assert!(described.contains("sink.url (required)"), "{described}");
    assert!(
        described.contains("sink.date_key (default 'date')"),
        "{described}"
    );
}

#[test]
fn check_loads_the_sink_component_and_its_options() {
    let dir = tempfile::tempdir().unwrap();
    let http = components().http.display().to_string();
    let config = dir.path().join("fluent-bit.conf");
    let check = |keys: &str| {
        let out = rustsink_check(
            &config,
            &format!("[OUTPUT]\n    Name rustsink\n    Match *\n    sink {http}\n{keys}"),
        );
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, printed) =
        check("    sink.url http://collector:8080/\n    sink.allowed_hosts collector\n");
    assert!(ok, "{printed}");
    assert!(printed.contains(": ok"), "{printed}");
    assert!(!printed.contains("warning"), "{printed}");
    let out = rustsink_check(
        &config,
        &format!(
            "[OUTPUT]\n    Name rustsink\n    Match *\n    sink {http}\n    \
             sink.url http://elsewhere:8080/\n    sink.allowed_hosts collector\n"
        ),
    );
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(
        warned.contains(
            "sink.url is http://elsewhere:8080/, but elsewhere:8080 is not in sink.allowed_hosts"
        ),
        "{warned}"
    );
    let (ok, printed) = check("    sink.allowed_hosts collector\n");
    assert!(!ok, "{printed}");
    assert!(
        printed.contains("component 'http' needs option 'url'"),
        "{printed}"
    );
}

#[test]
fn the_http_sink_example_runs_with_rustsink_run() {
    let endpoint = Endpoint::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let components = components();
    let example = std::fs::read_to_string(repo_root().join("fluent-bit/examples/http-sink.conf"))
        .unwrap()
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", endpoint.port))
        .replace(
            "plugins/target/wasm32-wasip2/release/parse_json.wasm",
            &components.parse_json.display().to_string(),
        )
        .replace(
            "plugins/target/wasm32-wasip2/release/redact.wasm",
            &components.redact.display().to_string(),
        )
        .replace(
            "plugins/target/wasm32-wasip2/release/http.wasm",
            &components.http.display().to_string(),
        );
    let config = work.path().join("http-sink.conf");
    std::fs::write(&config, example).unwrap();
    let out = std::process::Command::new(rustsink_bin())
        .args(["run", "--tag", "app.web", "--config"])
        .arg(&config)
        .arg("--input")
        .arg(repo_root().join("fluent-bit/examples/app.log"))
        .current_dir(work.path())
        .env("RUSTSINK_PLUGIN", plugin_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Vec<serde_json::Value> = endpoint
        .received()
        .iter()
        .flat_map(|r| {
            r.body
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let log = std::fs::read_to_string(repo_root().join("fluent-bit/examples/app.log")).unwrap();
    let json_lines = log.lines().filter(|line| line.starts_with('{')).count();
    assert_eq!(records.len(), log.lines().count());
    // JSON lines were parsed into fields (their emails masked); the others kept as they were.
    let parsed: Vec<&serde_json::Value> =
        records.iter().filter(|r| r.get("log").is_none()).collect();
    assert_eq!(parsed.len(), json_lines);
    assert!(parsed.iter().all(|r| r["level"].is_string()), "{parsed:?}");
    assert!(parsed.iter().any(|r| r["user"] == "****"), "{parsed:?}");
    assert!(
        endpoint
            .received()
            .iter()
            .all(|r| !r.body.contains("@example.com")),
        "an email went out"
    );
    let header = &endpoint.received()[0].headers;
    assert!(header.contains(&("x-source".to_owned(), "fluent-bit".to_owned())));
}
