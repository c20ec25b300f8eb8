//! One running `[OUTPUT]` instance: its worker thread, the flush hand-off, and the rule
//! that turns what happened to a chunk into Fluent Bit's return code.
//!
//! Flush calls arrive on Fluent Bit's threads (a coroutine on the engine thread, or up to
//! `workers` output threads at once). Each call hands its copy of the chunk to the
//! instance's own thread and waits for the answer, so the work never runs on Fluent Bit's
//! small coroutine stack.
//!
//! The worker takes every flush waiting at that moment as one group, so one pair of syncs
//! serves them all (group commit), and between flushes it closes and seals objects that
//! are due, about once a second. It runs `nice` steps below the Fluent Bit thread that
//! started it, so that where the cores are short Fluent Bit's input runs first.
//!
//! The return code says who holds the data afterwards:
//!
//! - `Ok`: every event is journalled in `store_dir` (synced to disk); rustsink delivers it.
//! - `Retry`: nothing of the chunk was accepted and trying again may work (`store_dir` is
//!   full or at `store_dir_limit_size`, a write failed, the instance is stopping, an
//!   internal error); Fluent Bit keeps the chunk.
//! - `Error`: the chunk stops being msgpack after some byte. The events before that byte
//!   are accepted; the rest can never be decoded, and a retry would accept the first part
//!   twice, so Fluent Bit is told to drop the chunk. The log line says so, with the tag and
//!   the byte offset.
//!
//! A malformed event that is still one whole msgpack value (a body that is not a map, a
//! time out of range) is skipped on its own: the chunk's other events are accepted and the
//! answer is `Ok`, with one warning per chunk that counts the skipped events and names
//! the first one's byte offset.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{Config, SinkConfig};
use crate::destination;
use crate::engine::{AcceptError, Engine};
use crate::event::{DecodeError, Malformed};
use crate::log::Logger;
use crate::metrics::Metrics;
use crate::metrics::endpoint::Endpoint;
use crate::wasm::chain::{Chain, Filtered, normalize};
use crate::wasm::sandbox::ComponentFailure;
use crate::wasm::sink::{SinkInstance, start_sink};

/// How often the worker closes due objects when no flush arrives.
const TICK: Duration = Duration::from_secs(1);
/// A group holds at most this many flushes ...
const GROUP_CHUNKS: usize = 64;
/// ... and at most about this many bytes of chunks.
const GROUP_BYTES: usize = 32 << 20;

/// Why a chunk was not taken whole. This, and nothing else, decides Fluent Bit's answer:
/// see [`decide`].
#[derive(Debug, thiserror::Error)]
pub enum ChunkFailure {
    /// `store_dir` cannot take the chunk now (its limit, a failed write). Logged where it
    /// happened, once for the group of chunks it befell.
    #[error("store_dir cannot take it now")]
    Store,
    /// A filter failed and its `on_error` is `retry`. Logged by the filter chain.
    #[error("a filter failed, and its on_error is retry")]
    FilterRetry,
    /// The sink component did not take the chunk.
    #[error("sink '{name}' did not take it: {failure}")]
    Sink {
        /// The component's name.
        name: String,
        /// What it said or did.
        failure: ComponentFailure,
    },
    /// The chunk stops being msgpack at some byte; the events before it were taken.
    #[error(transparent)]
    Unframed(DecodeError),
    /// The instance is stopping.
    #[error("the instance is stopping")]
    Stopping,
    /// A panic inside rustsink, caught.
    #[error("internal error while {0}")]
    Internal(&'static str),
}

impl ChunkFailure {
    /// Whether trying the chunk again may succeed, so that Fluent Bit should keep it.
    pub fn is_retryable(&self) -> bool {
        match self {
            ChunkFailure::Unframed(_) => false,
            ChunkFailure::Sink { failure, .. } => failure.is_retryable(),
            ChunkFailure::Store
            | ChunkFailure::FilterRetry
            | ChunkFailure::Stopping
            | ChunkFailure::Internal(_) => true,
        }
    }
}

/// Fluent Bit's answer for a chunk of `tag` whose `records` good events were taken: the
/// one place it is decided. Logs what was malformed, and each failure that was not
/// logged where it happened.
pub fn decide(
    log: &Logger,
    tag: &str,
    records: usize,
    malformed: &Malformed,
    outcome: Result<(), ChunkFailure>,
) -> FlushStatus {
    if let Some(first) = &malformed.first_skipped {
        log.warn(format_args!(
            "tag '{tag}': {} malformed events skipped, the first {first}; the chunk's {records} \
             other events were accepted",
            malformed.skipped
        ));
    }
    let outcome = match (&malformed.unframed, outcome) {
        (Some(error), Ok(())) => Err(ChunkFailure::Unframed(error.clone())),
        (_, outcome) => outcome,
    };
    let Err(failure) = outcome else {
        return FlushStatus::Ok;
    };
    let retryable = failure.is_retryable();
    match &failure {
        ChunkFailure::Store | ChunkFailure::FilterRetry => {}
        ChunkFailure::Unframed(error) => log.error(format_args!(
            "tag '{tag}': {error}; the {records} events before it were accepted, the {} bytes \
             from there on are not msgpack and are dropped",
            error.chunk_len - error.offset
        )),
        ChunkFailure::Sink { name, failure } if !retryable => log.error(format_args!(
            "sink '{name}' refused a chunk of tag '{tag}' ({records} records) for good: \
             {}; Fluent Bit drops the chunk",
            failure.message()
        )),
        ChunkFailure::Sink { name, failure } => log.warn(format_args!(
            "sink '{name}' did not take a chunk of tag '{tag}' ({records} records): {failure}; \
             Fluent Bit keeps the chunk and retries"
        )),
        ChunkFailure::Stopping => log.warn(format_args!(
            "a flush of tag '{tag}' came after shutdown began; Fluent Bit keeps the chunk and \
             retries"
        )),
        ChunkFailure::Internal(what) => log.error(format_args!(
            "internal error while {what}; Fluent Bit keeps the chunk of tag '{tag}' and retries"
        )),
    }
    if retryable {
        FlushStatus::Retry
    } else {
        FlushStatus::Error
    }
}

/// What a flush tells Fluent Bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushStatus {
    /// The chunk is delivered: rustsink owns it now.
    Ok,
    /// Nothing was delivered; Fluent Bit keeps the chunk and retries later.
    Retry,
    /// The chunk cannot be delivered, ever: Fluent Bit drops it.
    Error,
}

/// Why an instance did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The destination could not be opened.
    #[error("cannot open the destination: {0}")]
    Destination(#[from] destination::OpenError),
    /// The object engine could not start (store_dir, journal).
    #[error(transparent)]
    Engine(#[from] crate::engine::StartError),
    /// The worker thread could not be started.
    #[error("cannot start the worker thread: {0}")]
    Thread(#[source] std::io::Error),
    /// A filter component could not be loaded or refused its options.
    #[error(transparent)]
    Filter(crate::wasm::StartError),
    /// The sink component could not be loaded or refused its options.
    #[error(transparent)]
    Sink(crate::wasm::StartError),
    /// The metrics endpoint could not listen at `metrics_listen`.
    #[error("cannot serve the metrics at metrics_listen '{address}': {source}")]
    Metrics {
        /// The address.
        address: std::net::SocketAddr,
        /// Why not.
        source: std::io::Error,
    },
}

/// Where the components of the instances of `store_dir` are kept compiled.
pub fn component_cache_dir(store_dir: &std::path::Path) -> std::path::PathBuf {
    store_dir.join("components")
}

struct Job {
    chunk: Vec<u8>,
    tag: String,
    /// The events of the chunk as Fluent Bit sent it that the filters could not decode.
    malformed: Malformed,
    reply: SyncSender<FlushStatus>,
}

/// A running instance.
#[derive(Debug)]
pub struct Instance {
    log: Logger,
    metrics: Metrics,
    /// The endpoint of `metrics_listen`, until the instance stops.
    endpoint: Mutex<Option<Endpoint>>,
    /// None once the instance is stopping.
    jobs: RwLock<Option<Sender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Instance {
    /// Opens the destination, starts the object engine (which finishes what a previous
    /// run left in `store_dir`) and starts the worker thread.
    ///
    /// # Errors
    ///
    /// When the sink is not available or cannot be opened, a filter cannot be loaded or
    /// refuses its options, `store_dir` cannot be used, or the thread cannot start.
    /// `lookup` answers `[OUTPUT]` keys, for the options filters declare.
    pub fn start(
        config: Config,
        lookup: &dyn Fn(&str) -> Option<String>,
        log: Logger,
    ) -> Result<Arc<Instance>, StartError> {
        let store_dir = config.objects.store_dir.clone();
        let cache_dir = component_cache_dir(&store_dir);
        let metrics = Metrics::new(log.instance());
        let endpoint = config
            .metrics_listen
            .map(|address| {
                Endpoint::serve(address).map_err(|source| StartError::Metrics { address, source })
            })
            .transpose()?;
        let filters = Chain::start(&config.filters, lookup, &cache_dir, &log, &metrics)
            .map_err(StartError::Filter)?;
        let shutdown_timeout = config.objects.shutdown_timeout;
        let (outlet, described) = match &config.sink {
            // The object engine, delivering to the sink's destination.
            sink @ (SinkConfig::Dir { .. } | SinkConfig::S3(_)) => {
                let destination = destination::open(sink, &metrics)?;
                let described = format!("sink {}, {}", sink.name(), destination.describe());
                let engine = Engine::start(
                    config.objects,
                    config.json,
                    destination,
                    log.clone(),
                    metrics.clone(),
                )?;
                (Outlet::Objects(Box::new(engine)), described)
            }
            SinkConfig::Component(sink) => {
                let instance =
                    start_sink(sink, lookup, &cache_dir, &log).map_err(StartError::Sink)?;
                let described = format!(
                    "sink component '{}' ({})",
                    instance.component().name(),
                    sink.path.display()
                );
                (Outlet::Component(Box::new(instance)), described)
            }
        };
        let (sender, receiver) = mpsc::channel();
        let worker = Worker {
            outlet,
            filters,
            shutdown_timeout,
            nice: config.nice,
            log: log.clone(),
            metrics: metrics.clone(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("rustsink:{}", log.instance()))
            .spawn(move || worker.run(receiver))
            .map_err(|error| {
                metrics.forget_store();
                StartError::Thread(error)
            })?;
        log.info(format_args!(
            "started: {}, store_dir {}",
            described,
            store_dir.display()
        ));
        Ok(Arc::new(Instance {
            log,
            metrics,
            endpoint: Mutex::new(endpoint),
            jobs: RwLock::new(Some(sender)),
            worker: Mutex::new(Some(handle)),
        }))
    }

    /// Delivers one chunk and says what Fluent Bit should do with it. Blocks until the
    /// worker has answered.
    pub fn flush(&self, chunk: Vec<u8>, tag: String) -> FlushStatus {
        let called = Instant::now();
        let (reply, answer) = mpsc::sync_channel(1);
        let job = Job {
            chunk,
            tag,
            malformed: Malformed::default(),
            reply,
        };
        let refused = {
            let jobs = self.jobs.read().unwrap_or_else(PoisonError::into_inner);
            match jobs.as_ref() {
                Some(jobs) => jobs.send(job).err().map(|returned| returned.0),
                None => Some(job),
            }
        };
        let status = match refused {
            Some(job) => {
                let none = Malformed::default();
                decide(&self.log, &job.tag, 0, &none, Err(ChunkFailure::Stopping))
            }
            None => answer.recv().unwrap_or(FlushStatus::Retry),
        };
        self.metrics.answered(status, called.elapsed());
        status
    }

    /// Lets the worker finish the chunks it was handed, close every object and deliver
    /// within `shutdown_timeout`, then joins it. Idempotent.
    pub fn shutdown(&self) {
        let sender = self
            .jobs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(sender);
        let handle = self
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                self.log
                    .error("the worker thread ended with an internal error");
            }
            self.log.info("stopped");
        }
        self.metrics.forget_store();
        // The endpoint's thread ends with the last instance that uses it.
        drop(
            self.endpoint
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Where the worker hands chunks after the filters.
enum Outlet {
    /// The object engine, which journals them and delivers objects.
    Objects(Box<Engine>),
    /// A sink component, which takes them as they come.
    Component(Box<SinkInstance>),
}

struct Worker {
    outlet: Outlet,
    filters: Chain,
    shutdown_timeout: Duration,
    /// How many steps below Fluent Bit's the thread runs (`nice`).
    nice: u8,
    log: Logger,
    metrics: Metrics,
}

impl Worker {
    fn run(mut self, jobs: Receiver<Job>) {
        lower_priority(self.nice, &self.log);
        let mut last_tick = Instant::now();
        loop {
            match jobs.recv_timeout(TICK) {
                Ok(first) => {
                    let group = gather(first, &jobs);
                    match self.outlet {
                        Outlet::Objects(_) => self.accept(group),
                        Outlet::Component(_) => self.hand_over(group),
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                let has_engine = matches!(self.outlet, Outlet::Objects(_));
                if has_engine && self.guarded(|engine| engine.tick()).is_none() {
                    self.log
                        .error("internal error while closing objects; trying again in a second");
                }
            }
        }
        let Worker {
            outlet,
            filters,
            shutdown_timeout,
            log,
            ..
        } = self;
        // The filters (and the epoch ticker) end with the worker.
        drop(filters);
        match outlet {
            Outlet::Objects(engine) => {
                if catch_unwind(AssertUnwindSafe(|| engine.shutdown(shutdown_timeout))).is_err() {
                    log.error(
                        "internal error while closing objects at exit; they are delivered on \
                         the next start",
                    );
                }
            }
            Outlet::Component(sink) => drop(sink),
        }
    }

    /// Runs `work` on the object engine, catching a panic (None) instead of ending the
    /// thread. None without an engine.
    fn guarded<T>(&mut self, work: impl FnOnce(&mut Engine) -> T) -> Option<T> {
        let Outlet::Objects(engine) = &mut self.outlet else {
            return None;
        };
        catch_unwind(AssertUnwindSafe(|| work(engine))).ok()
    }

    /// The answer for every job of a group that failed as one.
    fn decide_all(&self, group: &[Job], failure: impl Fn() -> ChunkFailure) -> Vec<FlushStatus> {
        let none = Malformed::default();
        group
            .iter()
            .map(|job| decide(&self.log, &job.tag, 0, &none, Err(failure())))
            .collect()
    }

    fn accept(&mut self, mut group: Vec<Job>) {
        if !self.filters.is_empty() {
            group = self.filter(group);
            if group.is_empty() {
                return;
            }
        }
        let chunks: Vec<(&[u8], &str)> = group
            .iter()
            .map(|job| (job.chunk.as_slice(), job.tag.as_str()))
            .collect();
        let accepted = self.guarded(|engine| engine.accept(&chunks));
        if let Some(Err(error @ AcceptError::Io { .. })) = &accepted {
            self.log.error(format_args!(
                "{error}; Fluent Bit keeps the {} chunks and retries",
                group.len()
            ));
        }
        let statuses: Vec<FlushStatus> = match accepted {
            Some(Ok(outcomes)) => outcomes
                .into_iter()
                .zip(&mut group)
                .map(|(outcome, job)| {
                    // With filters, the engine decoded their output; what the filters could
                    // not decode of Fluent Bit's chunk is in the job.
                    let mut malformed = std::mem::take(&mut job.malformed);
                    malformed.merge(outcome.malformed);
                    decide(&self.log, &job.tag, outcome.records, &malformed, Ok(()))
                })
                .collect(),
            Some(Err(_)) => self.decide_all(&group, || ChunkFailure::Store),
            None => self.decide_all(&group, || ChunkFailure::Internal("accepting chunks")),
        };
        for (job, status) in group.into_iter().zip(statuses) {
            // The flush call stops waiting only if Fluent Bit is gone.
            let _ = job.reply.send(status);
        }
    }
}

impl Worker {
    /// Runs each job's chunk through the filters; answers the jobs a filter hands back
    /// (FLB_RETRY) and returns the others, their chunks filtered.
    fn filter(&mut self, group: Vec<Job>) -> Vec<Job> {
        let mut passed = Vec::with_capacity(group.len());
        for mut job in group {
            let filters = &mut self.filters;
            let outcome = catch_unwind(AssertUnwindSafe(|| filters.apply(&job.chunk, &job.tag)));
            match outcome {
                Ok(Filtered::Chunk { batch, malformed }) => {
                    job.chunk = batch;
                    job.malformed = malformed;
                    passed.push(job);
                }
                Ok(Filtered::Retry) => self.answer(job, Err(ChunkFailure::FilterRetry)),
                Err(_) => self.answer(job, Err(ChunkFailure::Internal("filtering"))),
            }
        }
        passed
    }
}

impl Worker {
    /// Answers a job that ends before the engine or the sink.
    fn answer(&self, job: Job, outcome: Result<(), ChunkFailure>) {
        let status = decide(&self.log, &job.tag, 0, &job.malformed, outcome);
        // The flush call stops waiting only if Fluent Bit is gone.
        let _ = job.reply.send(status);
    }

    /// Hands each chunk to the sink component, after the filters, and answers with what
    /// the sink said.
    fn hand_over(&mut self, group: Vec<Job>) {
        for job in group {
            let outcome = catch_unwind(AssertUnwindSafe(|| self.hand_over_one(&job)));
            let status = outcome.unwrap_or_else(|_| {
                let none = Malformed::default();
                let failure = ChunkFailure::Internal("handing a chunk to the sink");
                decide(&self.log, &job.tag, 0, &none, Err(failure))
            });
            let _ = job.reply.send(status);
        }
    }

    fn hand_over_one(&mut self, job: &Job) -> FlushStatus {
        let Outlet::Component(sink) = &mut self.outlet else {
            return FlushStatus::Retry;
        };
        let normalized = normalize(&job.chunk);
        let records = normalized.ranges.len();
        let malformed = &normalized.malformed;
        let Some(batch) = self
            .filters
            .run(normalized.batch, normalized.ranges, &job.tag)
        else {
            return decide(
                &self.log,
                &job.tag,
                0,
                malformed,
                Err(ChunkFailure::FilterRetry),
            );
        };
        let delivered = match batch.is_empty() {
            true => Ok(()),
            false => sink.deliver(&job.tag, &batch).map_err(|failure| {
                let name = sink.component().name().to_owned();
                self.metrics.component_failed(&name, &failure);
                ChunkFailure::Sink { name, failure }
            }),
        };
        decide(&self.log, &job.tag, records, malformed, delivered)
    }
}

/// Lowers the calling thread's scheduling priority `nice` steps below the one it started
/// with, which a new thread takes from its creator: here, the Fluent Bit thread that
/// started the instance. The threads it spawns later (compression) start at the lower one.
fn lower_priority(nice: u8, log: &Logger) {
    if nice == 0 {
        return;
    }
    // On Linux a priority is a thread's: PRIO_PROCESS with no pid names the calling thread.
    let lowered = rustix::process::getpriority_process(None).and_then(|started| {
        rustix::process::setpriority_process(None, (started + i32::from(nice)).min(19))
    });
    if let Err(error) = lowered {
        log.warn(format_args!(
            "could not lower the record thread's priority by {nice} (nice): {error}; it \
             keeps Fluent Bit's"
        ));
    }
}

/// The first job and every job already waiting behind it, up to the group limits.
fn gather(first: Job, jobs: &Receiver<Job>) -> Vec<Job> {
    let mut bytes = first.chunk.len();
    let mut group = vec![first];
    while group.len() < GROUP_CHUNKS && bytes < GROUP_BYTES {
        match jobs.try_recv() {
            Ok(job) => {
                bytes += job.chunk.len();
                group.push(job);
            }
            Err(_) => break,
        }
    }
    group
}
