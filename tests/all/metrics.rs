//! The metrics endpoint (`metrics_listen`), scraped over HTTP while the plugin works, and
//! gone after Unregister.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rustsink::event::EventTime;
use rustsink::event::chunk::{ChunkWriter, EventFormat, TimeForm};
use rustsink::store::Store;
use rustsink_cli::harness::{HostVersion, take_log_lines};

use crate::support::*;

/// A port nobody listens on now.
fn free_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// GETs `path` and returns the status line and the body.
fn get(address: SocketAddr, path: &str) -> std::io::Result<(String, String)> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: */*\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    Ok((
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    ))
}

/// The samples of a scrape: `name{labels}` to value.
fn scrape(address: SocketAddr) -> BTreeMap<String, f64> {
    let (status, body) = get(address, "/metrics").expect("scraping the endpoint");
    assert!(status.contains("200"), "{status}\n{body}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The value of a sample, 0 when it is absent.
fn sample(samples: &BTreeMap<String, f64>, name: &str, labels: &str) -> f64 {
    samples
        .get(&format!("{name}{{{labels}}}"))
        .copied()
        .unwrap_or(0.0)
}

/// Scrapes until `done` holds, for up to 20 seconds.
fn scrape_until(
    address: SocketAddr,
    what: &str,
    done: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let start = Instant::now();
    loop {
        let samples = scrape(address);
        if done(&samples) {
            return samples;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what}: {samples:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_endpoint_shows_backlog_quarantine_deliveries_failures_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let listen = address.to_string();
    let hostile = components().hostile.display().to_string();
    let mut fluent_bit = load(HostVersion::V5);
    let output = fluent_bit
        .add_output(&dir_output(
            dir.path(),
            &[
                ("Alias", "metered"),
                ("metrics_listen", listen.as_str()),
                ("upload_timeout", "1s"),
                ("upload_retry_limit", "1"),
                ("filter.1", hostile.as_str()),
                ("filter.1.behaviour", "trap"),
                ("filter.1.on_error", "skip"),
            ],
        ))
        .unwrap();
    // A second output on the same address shares the endpoint.
    let other_dir = tempfile::tempdir().unwrap();
    let other = fluent_bit
        .add_output(&dir_output(
            other_dir.path(),
            &[
                ("Alias", "metered_too"),
                ("metrics_listen", listen.as_str()),
                ("upload_timeout", "1s"),
            ],
        ))
        .unwrap();
    let blocker = block_deliveries(dir.path());

    let flusher = fluent_bit.flusher(output);
    let flushing = Instant::now();
    assert_eq!(
        flusher.flush(&numbered_chunk(EventFormat::V2, 0, 10), "t"),
        FLB_OK
    );
    // The hostile filter traps on a poison record; on_error skip passes the chunk on.
    let poison = {
        let mut chunk = ChunkWriter::new();
        chunk.push(
            EventFormat::V2,
            TimeForm::EventTime,
            EventTime::new(1_714_557_600, 0),
            None,
            record("poison", 10),
        );
        chunk.finish()
    };
    assert_eq!(flusher.flush(&poison, "t"), FLB_OK);
    // Not msgpack at all: Fluent Bit is told to drop it.
    assert_eq!(flusher.flush(&[0xc1, 0xc1, 0xc1], "t"), FLB_ERROR);
    let flushed_in = flushing.elapsed().as_secs_f64();
    assert_eq!(
        fluent_bit
            .flusher(other)
            .flush(&numbered_chunk(EventFormat::V2, 0, 5), "t"),
        FLB_OK
    );

    let m = r#"output="metered""#;
    let samples = scrape_until(address, "the object quarantined", |s| {
        sample(
            s,
            "rustsink_waiting_objects",
            &format!(r#"{m},place="quarantine""#),
        ) == 1.0
    });
    assert_eq!(
        sample(
            &samples,
            "rustsink_flush_answers_total",
            &format!(r#"{m},code="ok""#)
        ),
        2.0
    );
    assert_eq!(
        sample(
            &samples,
            "rustsink_flush_answers_total",
            &format!(r#"{m},code="error""#)
        ),
        1.0
    );
    // Every flush is timed, whatever its answer, and within the time the calls took.
    assert_eq!(sample(&samples, "rustsink_flush_seconds_count", m), 3.0);
    let held = sample(&samples, "rustsink_flush_seconds_sum", m);
    assert!(
        0.0 < held && held <= flushed_in,
        "{held} s of {flushed_in} s"
    );
    // Cumulative buckets, ending with all three.
    let mut buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|(name, count)| {
            let bound = name
                .strip_prefix("rustsink_flush_seconds_bucket{le=\"")?
                .strip_suffix(&format!("\",{m}}}"))?;
            Some((bound.parse().ok()?, *count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(buckets.len() > 20, "{buckets:?}");
    assert!(
        buckets.windows(2).all(|pair| pair[0].1 <= pair[1].1),
        "{buckets:?}"
    );
    assert_eq!(buckets.last(), Some(&(f64::INFINITY, 3.0)));
    assert_eq!(
        sample(
            &samples,
            "rustsink_delivery_failures_total",
            &format!(r#"{m},cause="io""#)
        ),
        1.0,
        "{samples:#?}"
    );
    assert_eq!(
        sample(
            &samples,
            "rustsink_component_failures_total",
            &format!(r#"{m},component="hostile",failure="trap""#)
        ),
        1.0
    );
    assert!(
        sample(
            &samples,
            "rustsink_waiting_bytes",
            &format!(r#"{m},place="quarantine""#)
        ) > 0.0
    );
    assert_eq!(sample(&samples, "rustsink_delivered_objects_total", m), 0.0);
    // The other output's object went through.
    let samples = scrape_until(address, "the other output's delivery", |s| {
        sample(
            s,
            "rustsink_delivered_objects_total",
            r#"output="metered_too""#,
        ) == 1.0
    });
    assert!(
        sample(
            &samples,
            "rustsink_delivered_bytes_total",
            r#"output="metered_too""#
        ) > 0.0
    );

    // Unblocked and redriven, the quarantined object is delivered.
    std::fs::remove_file(&blocker).unwrap();
    Store::request_redrive(&dir.path().join(".store/metered")).unwrap();
    let samples = scrape_until(address, "the redriven object delivered", |s| {
        sample(s, "rustsink_delivered_objects_total", m) == 1.0
    });
    assert_eq!(
        sample(
            &samples,
            "rustsink_waiting_objects",
            &format!(r#"{m},place="quarantine""#)
        ),
        0.0
    );
    assert_eq!(
        sample(
            &samples,
            "rustsink_waiting_objects",
            &format!(r#"{m},place="store""#)
        ),
        0.0
    );
    assert!(sample(&samples, "rustsink_delivered_bytes_total", m) > 0.0);
    assert_eq!(numbers(dir.path(), "t"), (0..11).collect::<Vec<u64>>());

    let (status, _) = get(address, "/").unwrap();
    assert!(status.contains("404"), "{status}");

    // Unregister stops the endpoint: nothing listens there any more.
    fluent_bit.shutdown().unwrap();
    assert!(
        TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_err(),
        "the endpoint still answers after Unregister"
    );
}

#[test]
fn an_address_in_use_fails_the_start_and_names_the_key() {
    in_own_process(
        "metrics::an_address_in_use_fails_the_start_and_names_the_key",
        || {
            let taken = TcpListener::bind("127.0.0.1:0").unwrap();
            let address = taken.local_addr().unwrap().to_string();
            let dir = tempfile::tempdir().unwrap();
            let mut fluent_bit = load(HostVersion::V5);
            let started =
                fluent_bit.add_output(&dir_output(dir.path(), &[("metrics_listen", &address)]));
            assert!(started.is_err(), "the address is taken");
            let lines: Vec<String> = take_log_lines()
                .into_iter()
                .map(|line| line.message)
                .collect();
            assert!(
                lines
                    .iter()
                    .any(|line| line.contains(&format!("metrics_listen '{address}'"))),
                "{lines:#?}"
            );
            fluent_bit.shutdown().unwrap();
        },
    );
}

#[test]
fn a_value_that_is_no_address_and_port_is_refused_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let out = rustsink_check(
        &dir.path().join("fluent-bit.conf"),
        "[OUTPUT]\n    Name rustsink\n    sink dir\n    path out\n    metrics_listen localhost\n",
    );
    let stderr =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("invalid value 'localhost' for key 'metrics_listen'"),
        "{stderr}"
    );
}
