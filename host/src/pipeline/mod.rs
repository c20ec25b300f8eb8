//! One running `[OUTPUT]` instance: its worker thread, the flush hand-off, and the rule
//! that turns what happened to a chunk into Fluent Bit's return code.
//!
//! Flush calls arrive on Fluent Bit's threads (a coroutine on the engine thread, or up to
//! `workers` output threads at once). Each call hands its copy of the chunk to the
//! instance's own thread and waits for the answer, so the work never runs on Fluent Bit's
//! small coroutine stack.
//!
//! The return code says who holds the data afterwards:
//!
//! - `Ok`: every event is delivered (synced to disk for `sink dir`).
//! - `Retry`: nothing of the chunk was delivered and trying again may work (a write
//!   failed, the instance is stopping, an internal error); Fluent Bit keeps the chunk.
//! - `Error`: the chunk is malformed after some byte. The events before that byte are
//!   delivered; the rest can never be decoded, and a retry would deliver the first part
//!   twice, so Fluent Bit is told to drop the chunk. The log line says so, with the tag and
//!   the byte offset.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;

use crate::config::{Config, JsonLines, SinkConfig};
use crate::event::events;
use crate::log::Logger;
use crate::object::encode::write_json_line;
use crate::sink::DeliveryError;
use crate::sink::dir::DirSink;

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
    /// The configured sink is not part of this build.
    #[error("sink '{sink}' is not available in this version of rustsink; use 'sink dir'")]
    Unavailable {
        /// The sink as configured.
        sink: String,
    },
    /// The sink could not be opened.
    #[error("cannot start the sink: {0}")]
    Sink(#[from] DeliveryError),
    /// The worker thread could not be started.
    #[error("cannot start the worker thread: {0}")]
    Thread(#[source] std::io::Error),
}

struct Job {
    chunk: Vec<u8>,
    tag: String,
    reply: SyncSender<FlushStatus>,
}

/// A running instance.
#[derive(Debug)]
pub struct Instance {
    log: Logger,
    /// None once the instance is stopping.
    jobs: RwLock<Option<Sender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Instance {
    /// Opens the sink and starts the worker thread.
    ///
    /// # Errors
    ///
    /// When the sink is not available or cannot be opened, or the thread cannot start.
    pub fn start(config: Config, log: Logger) -> Result<Arc<Instance>, StartError> {
        let sink = match &config.sink {
            SinkConfig::Dir { path } => DirSink::open(path)?,
            SinkConfig::S3 => {
                return Err(StartError::Unavailable { sink: "s3".into() });
            }
            SinkConfig::Component { path } => {
                return Err(StartError::Unavailable {
                    sink: path.display().to_string(),
                });
            }
        };
        let (sender, receiver) = mpsc::channel();
        let worker = Worker {
            sink,
            json: config.json,
            log: log.clone(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("rustsink:{}", log.instance()))
            .spawn(move || worker.run(receiver))
            .map_err(StartError::Thread)?;
        log.info(format_args!("started: {}", describe(&config.sink)));
        Ok(Arc::new(Instance {
            log,
            jobs: RwLock::new(Some(sender)),
            worker: Mutex::new(Some(handle)),
        }))
    }

    /// Delivers one chunk and says what Fluent Bit should do with it. Blocks until the
    /// worker has answered.
    pub fn flush(&self, chunk: Vec<u8>, tag: String) -> FlushStatus {
        let (reply, answer) = mpsc::sync_channel(1);
        let sent = {
            let jobs = self.jobs.read().unwrap_or_else(PoisonError::into_inner);
            jobs.as_ref()
                .is_some_and(|jobs| jobs.send(Job { chunk, tag, reply }).is_ok())
        };
        if !sent {
            self.log
                .warn("flush after shutdown began; Fluent Bit keeps the chunk and retries");
            return FlushStatus::Retry;
        }
        answer.recv().unwrap_or(FlushStatus::Retry)
    }

    /// Lets the worker finish the chunks it was handed, then joins it. Idempotent.
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
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn describe(sink: &SinkConfig) -> String {
    match sink {
        SinkConfig::Dir { path } => format!("sink dir, path {}", path.display()),
        SinkConfig::S3 => "sink s3".into(),
        SinkConfig::Component { path } => format!("sink component {}", path.display()),
    }
}

struct Worker {
    sink: DirSink,
    json: JsonLines,
    log: Logger,
}

impl Worker {
    fn run(self, jobs: Receiver<Job>) {
        for job in jobs {
            let status = catch_unwind(AssertUnwindSafe(|| self.deliver(&job.chunk, &job.tag)))
                .unwrap_or_else(|_| {
                    self.log.error(format_args!(
                        "internal error while delivering a chunk of tag '{}'; Fluent Bit keeps \
                         the chunk and retries",
                        job.tag
                    ));
                    FlushStatus::Retry
                });
            // The flush call may have given up waiting only if Fluent Bit is gone.
            let _ = job.reply.send(status);
        }
    }

    fn deliver(&self, chunk: &[u8], tag: &str) -> FlushStatus {
        let mut lines = Vec::with_capacity(chunk.len() * 2);
        let mut delivered = 0usize;
        let mut malformed = None;
        for item in events(chunk) {
            match item {
                Ok(event) => {
                    write_json_line(&mut lines, &event, &self.json);
                    delivered += 1;
                }
                Err(error) => malformed = Some(error),
            }
        }
        if !lines.is_empty()
            && let Err(error) = self.sink.append(tag, &lines)
        {
            let next = if error.is_retryable() {
                "Fluent Bit keeps the chunk and retries"
            } else {
                "the chunk is dropped"
            };
            self.log.error(format_args!(
                "delivering {delivered} records of tag '{tag}' failed: {error}; {next}"
            ));
            return if error.is_retryable() {
                FlushStatus::Retry
            } else {
                FlushStatus::Error
            };
        }
        match malformed {
            None => FlushStatus::Ok,
            Some(error) => {
                self.log.error(format_args!(
                    "tag '{tag}': {error}; the {delivered} events before it were delivered, the \
                     {} bytes from there on cannot be decoded and are dropped",
                    error.chunk_len - error.offset
                ));
                FlushStatus::Error
            }
        }
    }
}
