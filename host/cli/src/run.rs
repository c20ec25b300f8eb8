//! `rustsink run`: lines of a file (or stdin) become events the way Fluent Bit's `tail`
//! input makes them (`{"log": "<line>"}` at the time of reading), gathered into chunks,
//! and flushed through `librustsink.so` to every rustsink output whose `Match` takes the
//! tag, with Fluent Bit's retry rule.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use rmpv::Value;

use super::fluent_conf;
use super::harness::{FluentBit, Flusher, HostVersion, default_plugin_path, thread_cpu_time};
use rustsink::abi::{FLB_OK, FLB_RETRY};
use rustsink::event::EventTime;
use rustsink::event::chunk::{ChunkWriter, EventFormat, TimeForm};
use rustsink::log::PLUGIN_NAME;

/// Options of `rustsink run`.
#[derive(Debug, clap::Args)]
pub(super) struct RunArgs {
    /// Fluent Bit configuration file; its [OUTPUT] sections with `Name rustsink` are run.
    #[arg(short, long)]
    config: PathBuf,
    /// Log file to read, one record per line; standard input when absent or `-`.
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// The tag of the records, as `tail` sets it.
    #[arg(short, long, default_value = "tail.0")]
    tag: String,
    /// The Fluent Bit version to play: `1.9` (V1 events, one-slot API) or `5`.
    #[arg(long, default_value = "5")]
    fluent_bit: HostVersion,
    /// The plugin library. Default: $RUSTSINK_PLUGIN, or librustsink.so beside this
    /// program.
    #[arg(long)]
    plugin: Option<PathBuf>,
    /// Records per chunk.
    #[arg(long, default_value_t = 1000)]
    chunk_records: usize,
    /// Chunks flushed at once, as with Fluent Bit's `Workers` setting of an output.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Seconds before the first retry of a chunk; each further retry waits twice as long.
    #[arg(long, default_value_t = 1.0)]
    retry_wait: f64,
}

struct Route<'a> {
    name: String,
    flusher: Flusher<'a>,
    /// None: retry without limit.
    retry_limit: Option<u32>,
}

/// Runs the job; Ok(false) when a chunk could not be delivered to some output.
pub(super) fn run(args: &RunArgs) -> Result<bool> {
    let sections = fluent_conf::read(&args.config)?;
    let outputs: Vec<_> = fluent_conf::outputs_named(&sections, PLUGIN_NAME).collect();
    if outputs.is_empty() {
        bail!(
            "{}: no [OUTPUT] section with Name {PLUGIN_NAME}",
            args.config.display()
        );
    }
    let plugin = args.plugin.clone().unwrap_or_else(default_plugin_path);
    let mut fluent_bit = FluentBit::load(&plugin, args.fluent_bit)?;
    let mut ids = Vec::new();
    for section in &outputs {
        let id = fluent_bit
            .add_output(&section.entries)
            .with_context(|| format!("[OUTPUT] at {}", section.origin))?;
        let pattern = section.entries.get("match").unwrap_or("");
        let retry_limit = parse_retry_limit(section.entries.get("retry_limit"))
            .with_context(|| format!("[OUTPUT] at {}", section.origin))?;
        ids.push((id, tag_matches(pattern, &args.tag), retry_limit));
    }
    let routes: Vec<Route<'_>> = ids
        .iter()
        .filter(|(_, matches, _)| *matches)
        .map(|(id, _, retry_limit)| Route {
            name: fluent_bit.output_name(*id),
            flusher: fluent_bit.flusher(*id),
            retry_limit: *retry_limit,
        })
        .collect();
    if routes.is_empty() {
        eprintln!(
            "rustsink run: no rustsink output matches tag '{}'",
            args.tag
        );
    }

    let input: Box<dyn BufRead + Send> = match &args.input {
        Some(path) if path.as_os_str() != "-" => Box::new(BufReader::new(
            File::open(path).with_context(|| format!("opening {}", path.display()))?,
        )),
        _ => Box::new(BufReader::new(io::stdin())),
    };
    // Chunks are built on their own thread, as Fluent Bit's inputs run beside its outputs.
    let format = fluent_bit.version().event_format();
    let chunk_records = args.chunk_records.max(1);
    let (sender, chunks) = mpsc::sync_channel(4);
    let reader = std::thread::Builder::new()
        .name("rustsink-run-input".into())
        .spawn(move || {
            let read = read_chunks(input, format, chunk_records, &sender);
            read.map(|()| thread_cpu_time())
        })
        .context("starting the input thread")?;
    let chunks = Mutex::new(chunks);
    let totals = Mutex::new(Totals::default());
    std::thread::scope(|scope| {
        for _ in 0..args.workers.max(1) {
            scope.spawn(|| {
                // The lock is held only while waiting for the next chunk.
                while let Ok(chunk) = lock(&chunks).recv() {
                    let delivered = deliver(chunk, &routes, args);
                    lock(&totals).add(delivered);
                }
            });
        }
    });
    let mut totals = totals.into_inner().unwrap_or_else(PoisonError::into_inner);
    let input_cpu = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the input thread panicked"))?
        .context("reading the input")?;
    let outputs_used = routes.len();
    drop(routes);
    let shutting_down = Instant::now();
    fluent_bit.shutdown()?;
    let shutdown = shutting_down.elapsed();
    eprintln!(
        "rustsink run: {} records in {} chunks to {} output(s); {} chunk deliveries failed; \
         the input thread (Fluent Bit's part) used {:.3} s of CPU",
        totals.records,
        totals.chunks,
        outputs_used,
        totals.failed,
        input_cpu.as_secs_f64()
    );
    if let Some(latency) = totals.flush_latency() {
        eprintln!("rustsink run: each flush held its thread for {latency}");
    }
    eprintln!(
        "rustsink run: the exit (sealing and delivering what was open) took {:.3} s",
        shutdown.as_secs_f64()
    );
    Ok(totals.failed == 0)
}

/// Reads `input` into chunks of `chunk_records` events and sends them, the last one
/// possibly shorter.
fn read_chunks(
    input: Box<dyn BufRead + Send>,
    format: EventFormat,
    chunk_records: usize,
    chunks: &mpsc::SyncSender<ChunkWriter>,
) -> io::Result<()> {
    let mut chunk = ChunkWriter::new();
    for line in split_lines(input) {
        chunk.push(format, TimeForm::EventTime, now(), None, log_record(line?));
        if chunk.events() >= chunk_records && chunks.send(std::mem::take(&mut chunk)).is_err() {
            return Ok(());
        }
    }
    if !chunk.is_empty() {
        let _ = chunks.send(chunk);
    }
    Ok(())
}

#[derive(Default)]
struct Totals {
    records: usize,
    chunks: usize,
    failed: usize,
    /// How long each flush call held its thread: what a Fluent Bit thread waits.
    flush_times: Vec<Duration>,
}

impl Totals {
    fn add(&mut self, other: Totals) {
        self.records += other.records;
        self.chunks += other.chunks;
        self.failed += other.failed;
        self.flush_times.extend(other.flush_times);
    }

    /// "p50 …, p99 …, max … ms over N flushes", or None before any flush.
    fn flush_latency(&mut self) -> Option<String> {
        self.flush_times.sort_unstable();
        let times = &self.flush_times;
        let at = |quantile: f64| {
            let index = ((times.len() as f64 * quantile).ceil() as usize).clamp(1, times.len());
            times[index - 1].as_secs_f64() * 1000.0
        };
        (!times.is_empty()).then(|| {
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} flushes",
                at(0.5),
                at(0.99),
                at(1.0),
                times.len()
            )
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Flushes one chunk to every route, retrying as Fluent Bit would.
fn deliver(chunk: ChunkWriter, routes: &[Route<'_>], args: &RunArgs) -> Totals {
    let mut totals = Totals {
        records: chunk.events(),
        chunks: 1,
        ..Totals::default()
    };
    let bytes = chunk.finish();
    for route in routes {
        let mut attempt = 0u32;
        loop {
            let start = Instant::now();
            let code = route.flusher.flush(&bytes, &args.tag);
            totals.flush_times.push(start.elapsed());
            if code == FLB_OK as i32 {
                break;
            }
            let retries_left = route.retry_limit.is_none_or(|limit| attempt < limit);
            if code != FLB_RETRY as i32 || !retries_left {
                eprintln!(
                    "rustsink run: {}: a chunk of tag '{}' failed (code {code}) after {attempt} \
                     retries; Fluent Bit would drop it",
                    route.name, args.tag
                );
                totals.failed += 1;
                break;
            }
            let wait = args.retry_wait.max(0.0) * 2f64.powi(attempt.min(16) as i32);
            std::thread::sleep(Duration::from_secs_f64(wait));
            attempt += 1;
        }
    }
    totals
}

/// Fluent Bit's `Retry_Limit`: a number, `no_limits`/`false`/`off` for none, or
/// `no_retries`; 1 when unset.
fn parse_retry_limit(value: Option<&str>) -> Result<Option<u32>> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None => Ok(Some(1)),
        Some("no_limits" | "false" | "off") => Ok(None),
        Some("no_retries") => Ok(Some(0)),
        Some(number) => number
            .parse()
            .map(Some)
            .with_context(|| format!("invalid value '{number}' for key 'Retry_Limit'")),
    }
}

/// Fluent Bit's `Match`: `*` matches any run of characters.
fn tag_matches(pattern: &str, tag: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == tag,
        Some((head, rest)) => {
            let Some(tail) = tag.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|at| tail.is_char_boundary(*at))
                .any(|at| tag_matches(rest, &tail[at..]))
        }
    }
}

fn now() -> EventTime {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    EventTime::new(since.as_secs() as i64, since.subsec_nanos())
}

fn log_record(line: Vec<u8>) -> Value {
    let text = String::from_utf8(line)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned());
    Value::Map(vec![(Value::from("log"), Value::from(text))])
}

/// Lines without their `\n` or `\r\n`, as bytes.
fn split_lines(input: Box<dyn BufRead + Send>) -> impl Iterator<Item = io::Result<Vec<u8>>> {
    input.split(b'\n').map(|line| {
        line.map(|mut line| {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            line
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_patterns_follow_fluent_bit() {
        assert!(tag_matches("*", "tail.0"));
        assert!(tag_matches("tail.*", "tail.0"));
        assert!(tag_matches("*-firelens-*", "app-firelens-1234"));
        assert!(tag_matches("tail.0", "tail.0"));
        assert!(!tag_matches("app.*", "tail.0"));
        assert!(!tag_matches("", "tail.0"));
    }

    #[test]
    fn retry_limit_words() {
        assert_eq!(parse_retry_limit(None).unwrap(), Some(1));
        assert_eq!(parse_retry_limit(Some("no_limits")).unwrap(), None);
        assert_eq!(parse_retry_limit(Some("False")).unwrap(), None);
        assert_eq!(parse_retry_limit(Some("no_retries")).unwrap(), Some(0));
        assert_eq!(parse_retry_limit(Some("5")).unwrap(), Some(5));
        assert!(parse_retry_limit(Some("lots")).is_err());
    }
}
