//! The delivery thread: hands sealed objects to the destination, retries with backoff and
//! jitter, and quarantines what keeps failing.
//!
//! An object's file is removed only after its `Delivered` record is in the journal, so a
//! crash at any point leaves the object to be delivered again on the next start, at the
//! same key with the same bytes.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::destination::{DeliveryError, Destination, ProgressLog, SealedObject, UploadProgress};
use crate::log::Logger;
use crate::store::Store;
use crate::store::journal::{Journal, Record};

/// The first retry waits about this long; each next one twice as long.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// No retry waits longer than this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A failure with the cause of one logged less than this long ago is logged at debug
/// level: one line per cause, not one per object and attempt.
const QUIET_REPEATS_FOR: Duration = Duration::from_secs(600);

enum Message {
    Deliver(SealedObject),
    Finish { deadline: Instant },
}

/// The handle of a running delivery thread.
#[derive(Debug)]
pub struct Delivery {
    sender: Sender<Message>,
    thread: Option<JoinHandle<()>>,
}

/// What the delivery thread works with.
#[derive(Debug)]
pub struct DeliveryContext {
    /// Where objects go.
    pub destination: Box<dyn Destination>,
    /// The journal, shared with the engine.
    pub journal: Arc<Mutex<Journal>>,
    /// The store folder, for quarantine.
    pub store: Store,
    /// The instance's log.
    pub log: Logger,
    /// Attempts per object.
    pub retry_limit: u32,
}

impl Delivery {
    /// Starts the thread.
    ///
    /// # Errors
    ///
    /// When the thread cannot be started.
    pub fn start(context: DeliveryContext) -> std::io::Result<Delivery> {
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("rustsink:{}:deliver", context.log.instance()))
            .spawn(move || Deliverer::new(context).run(receiver))?;
        Ok(Delivery {
            sender,
            thread: Some(thread),
        })
    }

    /// Queues a sealed object.
    pub fn deliver(&self, object: SealedObject) {
        // The thread ends only after `finish`, which takes `self`.
        let _ = self.sender.send(Message::Deliver(object));
    }

    /// Delivers what is queued, giving up at `deadline`, and joins the thread. What is not
    /// delivered stays in the journal for the next start.
    pub fn finish(mut self, deadline: Instant) {
        let _ = self.sender.send(Message::Finish { deadline });
        if let Some(thread) = self.thread.take() {
            // A panic was already caught and logged inside the thread.
            let _ = thread.join();
        }
    }
}

struct Pending {
    object: SealedObject,
    attempts: u32,
    next_at: Instant,
}

struct Deliverer {
    context: DeliveryContext,
    queue: Vec<Pending>,
    /// When each cause of failure was last logged as a warning.
    reported: HashMap<String, Instant>,
}

impl Deliverer {
    fn new(context: DeliveryContext) -> Self {
        Deliverer {
            context,
            queue: Vec::new(),
            reported: HashMap::new(),
        }
    }

    fn run(mut self, messages: Receiver<Message>) {
        let mut deadline = None;
        loop {
            let now = Instant::now();
            let wake = self.queue.iter().map(|p| p.next_at).min();
            let message = match (wake, deadline) {
                (_, Some(deadline)) if self.queue.is_empty() || now >= deadline => return,
                (Some(wake), Some(deadline)) => {
                    messages.recv_timeout(wake.min(deadline).saturating_duration_since(now))
                }
                (Some(wake), None) => messages.recv_timeout(wake.saturating_duration_since(now)),
                (None, _) => messages.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match message {
                Ok(Message::Deliver(object)) => self.queue.push(Pending {
                    object,
                    attempts: 0,
                    next_at: Instant::now(),
                }),
                Ok(Message::Finish { deadline: at }) => deadline = Some(at),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    deadline.get_or_insert_with(Instant::now);
                }
            }
            self.attempt_due();
        }
    }

    fn attempt_due(&mut self) {
        let now = Instant::now();
        let mut index = 0;
        while index < self.queue.len() {
            if self.queue[index].next_at > now {
                index += 1;
                continue;
            }
            let mut pending = self.queue.swap_remove(index);
            let mut progress = JournalProgress {
                id: pending.object.id,
                progress: pending.object.progress.take(),
                journal: &self.context.journal,
            };
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.context.destination.put(&pending.object, &mut progress)
            }))
            .unwrap_or_else(|_| {
                Err(DeliveryError::Io {
                    action: "delivering (internal error)",
                    path: pending.object.path.clone(),
                    source: std::io::Error::other("panic"),
                })
            });
            pending.object.progress = progress.progress;
            pending.attempts += 1;
            match result {
                Ok(()) => self.delivered(&pending.object),
                Err(error)
                    if error.is_retryable() && pending.attempts < self.context.retry_limit =>
                {
                    let wait = backoff(pending.attempts);
                    self.report_retry(&pending, &error, wait);
                    pending.next_at = Instant::now() + wait;
                    self.queue.push(pending);
                }
                Err(error) => self.quarantine(&pending, &error),
            }
        }
    }

    fn report_retry(&mut self, pending: &Pending, error: &DeliveryError, wait: Duration) {
        let line = format_args!(
            "delivering object '{}' to {} failed (attempt {} of {}): {error}; retrying in \
             {:.1}s",
            pending.object.key,
            self.context.destination.describe(),
            pending.attempts,
            self.context.retry_limit,
            wait.as_secs_f64()
        );
        let now = Instant::now();
        let last = self.reported.entry(error.cause()).or_insert(now);
        if *last == now || now.duration_since(*last) >= QUIET_REPEATS_FOR {
            *last = now;
            self.context.log.warn(format_args!(
                "{line} (further failures with this cause are logged at debug level for {} \
                 minutes)",
                QUIET_REPEATS_FOR.as_secs() / 60
            ));
        } else {
            self.context.log.debug(line);
        }
    }

    fn delivered(&self, object: &SealedObject) {
        let recorded = self.journal_append(&Record::Delivered { id: object.id });
        match recorded {
            Ok(()) => {
                if let Err(error) = std::fs::remove_file(&object.path) {
                    self.context.log.warn(format_args!(
                        "object '{}' is delivered but its file {} could not be removed: {error}",
                        object.key,
                        object.path.display()
                    ));
                }
                self.context.log.debug(format_args!(
                    "delivered object '{}' ({} bytes)",
                    object.key, object.len
                ));
            }
            Err(error) => self.context.log.warn(format_args!(
                "object '{}' is delivered but the journal could not record it ({error}); it is \
                 kept and delivered again, to the same key, on the next start",
                object.key
            )),
        }
    }

    fn quarantine(&self, pending: &Pending, error: &DeliveryError) {
        let object = &pending.object;
        let moved = self
            .context
            .store
            .quarantine(object.id, &object.key)
            .and_then(|path| {
                self.journal_append(&Record::Quarantined { id: object.id })?;
                Ok(path)
            });
        match moved {
            Ok(path) => self.context.log.error(format_args!(
                "object '{}' was not delivered to {} after {} attempts ({error}); it is kept, \
                 complete, in {} with its key in {}. Fix the cause, then copy it to its key by \
                 hand (rustsink does not pick it up again)",
                object.key,
                self.context.destination.describe(),
                pending.attempts,
                path.display(),
                path.with_extension("key").display()
            )),
            Err(move_error) => self.context.log.error(format_args!(
                "object '{}' was not delivered ({error}) and could not be moved to quarantine \
                 ({move_error}); it stays in {} and is delivered again on the next start",
                object.key,
                object.path.display()
            )),
        }
    }

    fn journal_append(&self, record: &Record) -> std::io::Result<()> {
        append_record(&self.context.journal, record)
    }
}

fn append_record(journal: &Mutex<Journal>, record: &Record) -> std::io::Result<()> {
    journal
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .append(std::slice::from_ref(record))
}

/// The progress of one object's upload, kept in the journal.
struct JournalProgress<'a> {
    id: u64,
    progress: Option<UploadProgress>,
    journal: &'a Mutex<Journal>,
}

impl ProgressLog for JournalProgress<'_> {
    fn resume(&self) -> Option<&UploadProgress> {
        self.progress.as_ref()
    }

    fn record(&mut self, progress: Option<UploadProgress>) -> std::io::Result<()> {
        let record = Record::Progress {
            id: self.id,
            progress: progress.clone(),
        };
        append_record(self.journal, &record)?;
        self.progress = progress;
        Ok(())
    }
}

/// The wait after `attempts` failed attempts: doubling from [`FIRST_BACKOFF`] up to
/// [`MAX_BACKOFF`], times a random factor from 0.5 to 1 so that many agents do not retry in
/// step.
fn backoff(attempts: u32) -> Duration {
    let doubled = FIRST_BACKOFF.saturating_mul(1 << attempts.saturating_sub(1).min(16));
    doubled
        .min(MAX_BACKOFF)
        .mul_f64(0.5 + fastrand::f64() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        for attempts in 1..=10 {
            let full = FIRST_BACKOFF * (1 << (attempts - 1));
            let full = full.min(MAX_BACKOFF);
            for _ in 0..50 {
                let wait = backoff(attempts);
                assert!(wait >= full / 2 && wait <= full, "{attempts}: {wait:?}");
            }
        }
        assert!(backoff(1000) <= MAX_BACKOFF);
    }
}
