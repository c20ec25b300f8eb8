//! The delivery thread: hands sealed objects to the destination, retries with backoff and
//! jitter, and quarantines what keeps failing.
//!
//! An object's file is removed only after its `Delivered` record is in the journal, so a
//! crash at any point leaves the object to be delivered again on the next start, at the
//! same key with the same bytes. A destination never writes over another object: when an
//! object's key is taken, the object gets the next key of its series, recorded in the
//! journal, and is delivered there at once.
//!
//! While an object is open, the engine shows this thread its committed bytes whenever they
//! hold another whole part; a destination that uploads in parts stores those parts then
//! (when no sealed object waits), so that sealing leaves little to send. What is stored
//! ahead is recorded in the journal like any upload's progress; a failure there only leaves
//! the part to the delivery of the sealed object.
//!
//! An object that fails `upload_retry_limit` times in a row moves to quarantine (or is
//! deleted, with `retry_exhausted_action delete`). Quarantined objects are handed to this
//! thread again at every start and every half hour, and leave quarantine once delivered.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::keys::Keys;
use super::lock_journal;
use crate::config::RetryExhaustedAction;
use crate::destination::{DeliveryError, Destination, ProgressLog, SealedObject, UploadProgress};
use crate::log::Logger;
use crate::metrics::Metrics;
use crate::object::ObjectFormat;
use crate::object::parquet::{self, ParquetWriter};
use crate::store::Store;
use crate::store::journal::{Journal, Record};

/// The first retry waits about this long; each next one twice as long.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// No retry waits longer than this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often objects in quarantine are tried again (and at every start).
pub const QUARANTINE_RETRY: Duration = Duration::from_secs(1800);
/// An object whose key was taken this many times in a row is quarantined: something other
/// than an ordinary collision is going on.
const MAX_REKEYS: u32 = 1000;
/// A failure with the cause of one logged less than this long ago is logged at debug
/// level: one line per cause, not one per object and attempt.
const QUIET_REPEATS_FOR: Duration = Duration::from_secs(600);

enum Message {
    Deliver(SealedObject),
    /// An open object's committed bytes, to store ahead.
    Ahead(SealedObject),
    Finish {
        deadline: Instant,
    },
    Attempted(Box<Attempt>),
    /// An attempt to store parts ahead ended: the object's progress, and why it stops if
    /// it does.
    StoredAhead {
        id: u64,
        progress: Option<UploadProgress>,
        failure: Option<DeliveryError>,
    },
}

/// The outcome of one attempt, sent back by the thread that made it.
struct Attempt {
    pending: Pending,
    /// The bytes the destination stored (a Parquet object's Parquet file), or why not.
    result: Result<u64, DeliveryError>,
}

/// The handle of a running delivery thread.
#[derive(Debug)]
pub struct Delivery {
    sender: Sender<Message>,
    thread: Option<JoinHandle<()>>,
    /// The destination's [`ahead_part_size`](Destination::ahead_part_size).
    ahead_part_size: Option<u64>,
    /// For quarantine rounds.
    store: Store,
    log: Logger,
}

/// What the delivery thread works with.
#[derive(Debug)]
pub struct DeliveryContext {
    /// Where objects go.
    pub destination: Arc<dyn Destination>,
    /// The journal, shared with the engine.
    pub journal: Arc<Mutex<Journal>>,
    /// The store folder, for quarantine.
    pub store: Store,
    /// Gives an object another key when its own is taken.
    pub keys: Arc<Keys>,
    /// The instance's log.
    pub log: Logger,
    /// The instance's metrics.
    pub metrics: Metrics,
    /// Attempts per object before it is quarantined.
    pub retry_limit: u32,
    /// What happens to an object after its last attempt.
    pub exhausted: RetryExhaustedAction,
    /// How many objects are delivered at the same time; at least 1.
    pub concurrency: usize,
    /// Writes Parquet objects' files.
    pub parquet: Arc<ParquetWriter>,
}

impl Delivery {
    /// Starts the thread.
    ///
    /// # Errors
    ///
    /// When the thread cannot be started.
    pub fn start(context: DeliveryContext) -> std::io::Result<Delivery> {
        let (sender, receiver) = mpsc::channel();
        let results = sender.clone();
        let (store, log) = (context.store.clone(), context.log.clone());
        let ahead_part_size = context.destination.ahead_part_size();
        let thread = std::thread::Builder::new()
            .name(format!("rustsink:{}:deliver", context.log.instance()))
            .spawn(move || Deliverer::new(context, results).run(receiver))?;
        Ok(Delivery {
            sender,
            thread: Some(thread),
            ahead_part_size,
            store,
            log,
        })
    }

    /// Queues a sealed object.
    pub fn deliver(&self, object: SealedObject) {
        // The thread ends only after `finish` or drop, which take `self`.
        let _ = self.sender.send(Message::Deliver(object));
    }

    /// The size of the parts the destination stores of open objects; None: it stores none.
    pub fn ahead_part_size(&self) -> Option<u64> {
        self.ahead_part_size
    }

    /// Shows an open object's committed bytes (`object.len`), to store ahead what the
    /// destination can before it is sealed.
    pub fn store_ahead(&self, object: SealedObject) {
        let _ = self.sender.send(Message::Ahead(object));
    }

    /// Queues every object in quarantine again (those queued already stay as they are),
    /// with a line that says how many wait there.
    pub fn retry_quarantine(&self) {
        let quarantined = self.store.quarantined();
        let Some(oldest) = quarantined.first() else {
            return;
        };
        let bytes: u64 = quarantined.iter().map(|object| object.len).sum();
        self.log.warn(format_args!(
            "{} objects ({bytes} bytes) wait in quarantine in {}, the oldest '{}'; they are \
             tried again now and every {} minutes",
            quarantined.len(),
            self.store.root().join("quarantine").display(),
            oldest.key,
            QUARANTINE_RETRY.as_secs() / 60
        ));
        for object in quarantined {
            self.deliver(object);
        }
    }

    /// Delivers what is queued, giving up at `deadline` (attempts under way are waited
    /// for), and joins the thread. What is not delivered stays in the journal for the next
    /// start.
    pub fn finish(mut self, deadline: Instant) {
        self.stop(deadline);
    }

    fn stop(&mut self, deadline: Instant) {
        if let Some(thread) = self.thread.take() {
            let _ = self.sender.send(Message::Finish { deadline });
            // A panic was already caught and logged inside the thread.
            let _ = thread.join();
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        // Attempt threads run code of this library: they must end before it can be unloaded.
        self.stop(Instant::now());
    }
}

struct Pending {
    object: SealedObject,
    attempts: u32,
    /// How many keys were taken in a row.
    rekeys: u32,
    next_at: Instant,
}

struct Deliverer {
    context: DeliveryContext,
    /// Where attempt threads send their outcome.
    results: Sender<Message>,
    queue: Vec<Pending>,
    /// Attempts under way, each on a thread of its own.
    in_flight: usize,
    /// When each cause of failure was last logged as a warning.
    reported: HashMap<String, Instant>,
    /// The objects queued or being delivered, so that one handed over twice (from
    /// quarantine) is delivered once.
    known: HashSet<u64>,
    /// Open objects whose parts are stored ahead, by id.
    ahead: HashMap<u64, Ahead>,
}

/// An open object whose parts are stored ahead of its sealing.
struct Ahead {
    /// Its committed bytes as last shown, with the progress of its upload so far.
    object: SealedObject,
    /// Whether an attempt is under way.
    busy: bool,
    /// Whether to stop: an attempt failed, or the destination stored nothing.
    stopped: bool,
    /// The object, sealed while an attempt was under way: queued when it ends.
    sealed: Option<SealedObject>,
}

impl Ahead {
    /// Whether its committed bytes hold a whole part that is not stored yet.
    fn has_work(&self, part_size: u64) -> bool {
        let stored = self
            .object
            .progress
            .as_ref()
            .map_or(0, |p| p.parts.len() as u64);
        !self.busy
            && !self.stopped
            && self.sealed.is_none()
            && self.object.len.saturating_sub(1) / part_size > stored
    }
}

impl Deliverer {
    fn new(context: DeliveryContext, results: Sender<Message>) -> Self {
        Deliverer {
            context,
            results,
            queue: Vec::new(),
            in_flight: 0,
            reported: HashMap::new(),
            known: HashSet::new(),
            ahead: HashMap::new(),
        }
    }

    fn run(mut self, messages: Receiver<Message>) {
        let mut deadline: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let past_deadline = deadline.is_some_and(|at| self.queue.is_empty() || now >= at);
            if past_deadline && self.in_flight == 0 {
                self.report_undelivered();
                return;
            }
            // Nothing new starts after the deadline, but attempts under way are awaited.
            let wake = match deadline {
                Some(_) if past_deadline => None,
                _ if self.in_flight >= self.context.concurrency => None,
                _ => self.queue.iter().map(|p| p.next_at).min(),
            };
            let wake = match (wake, deadline) {
                (Some(wake), Some(at)) if !past_deadline => Some(wake.min(at)),
                (wake, _) => wake,
            };
            let message = match wake {
                Some(wake) => messages.recv_timeout(wake.saturating_duration_since(now)),
                None => messages.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match message {
                Ok(Message::Deliver(object)) => self.sealed(object),
                Ok(Message::Ahead(object)) => self.shown(object),
                Ok(Message::Finish { deadline: at }) => deadline = Some(at),
                Ok(Message::Attempted(attempt)) => {
                    self.in_flight -= 1;
                    self.settle(attempt.pending, attempt.result);
                }
                Ok(Message::StoredAhead {
                    id,
                    progress,
                    failure,
                }) => {
                    self.in_flight -= 1;
                    self.stored_ahead(id, progress, failure);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    deadline.get_or_insert_with(Instant::now);
                }
            }
            if deadline.is_none_or(|at| Instant::now() < at) {
                self.start_due();
            }
        }
    }

    /// A sealed object: queued with what was stored of it ahead, once no attempt to store
    /// parts of it is under way.
    fn sealed(&mut self, mut object: SealedObject) {
        if let Some(ahead) = self.ahead.get_mut(&object.id) {
            if ahead.busy {
                ahead.sealed = Some(object);
                return;
            }
            let ahead = self.ahead.remove(&object.id).expect("just found");
            if object.progress.is_none() {
                object.progress = ahead.object.progress;
            }
        }
        self.queue(object);
    }

    /// An open object's committed bytes, shown again.
    fn shown(&mut self, object: SealedObject) {
        match self.ahead.get_mut(&object.id) {
            Some(ahead) => ahead.object.len = object.len,
            None => {
                self.ahead.insert(
                    object.id,
                    Ahead {
                        object,
                        busy: false,
                        stopped: false,
                        sealed: None,
                    },
                );
            }
        }
    }

    fn stored_ahead(
        &mut self,
        id: u64,
        progress: Option<UploadProgress>,
        failure: Option<DeliveryError>,
    ) {
        let Some(ahead) = self.ahead.get_mut(&id) else {
            return;
        };
        ahead.busy = false;
        ahead.stopped = progress.is_none() || failure.is_some();
        ahead.object.progress = progress;
        if let Some(error) = failure {
            self.context.log.debug(format_args!(
                "storing parts of the open object '{}' ahead failed ({error}); they are sent \
                 when it is sealed",
                ahead.object.key
            ));
        }
        if let Some(sealed) = ahead.sealed.take() {
            self.sealed(sealed);
        }
    }

    fn queue(&mut self, object: SealedObject) {
        if self.known.insert(object.id) {
            self.queue.push(Pending {
                object,
                attempts: 0,
                rekeys: 0,
                next_at: Instant::now(),
            });
        }
    }

    /// Starts attempts for due objects, up to the concurrency limit, then attempts to
    /// store parts of open objects ahead with what is left of it.
    fn start_due(&mut self) {
        let now = Instant::now();
        while self.in_flight < self.context.concurrency {
            let Some(index) = self.queue.iter().position(|p| p.next_at <= now) else {
                break;
            };
            let pending = self.queue.swap_remove(index);
            if !self.spawn_attempt(pending) {
                return;
            }
            self.in_flight += 1;
        }
        let Some(part_size) = self.context.destination.ahead_part_size() else {
            return;
        };
        while self.in_flight < self.context.concurrency {
            let Some(ahead) = self.ahead.values_mut().find(|a| a.has_work(part_size)) else {
                return;
            };
            if !spawn_ahead(&self.context, &self.results, ahead) {
                return;
            }
            self.in_flight += 1;
        }
    }

    /// Starts an attempt on a thread of its own; if no thread can be started, logs it and
    /// puts the object back in the queue for a second later.
    fn spawn_attempt(&mut self, pending: Pending) -> bool {
        let destination = Arc::clone(&self.context.destination);
        let journal = Arc::clone(&self.context.journal);
        let parquet = Arc::clone(&self.context.parquet);
        let log = self.context.log.clone();
        let results = self.results.clone();
        // The object waits in a slot that the thread empties; if the thread cannot start,
        // the slot is still full and the object is handed back.
        let slot = Arc::new(Mutex::new(Some(pending)));
        let taken = Arc::clone(&slot);
        let spawned = std::thread::Builder::new()
            .name(format!("rustsink:{}:upload", self.context.log.instance()))
            .spawn(move || {
                let pending = taken.lock().unwrap_or_else(PoisonError::into_inner).take();
                if let Some(mut pending) = pending {
                    let result = attempt(&*destination, &journal, &parquet, &log, &mut pending);
                    let attempt = Box::new(Attempt { pending, result });
                    let _ = results.send(Message::Attempted(attempt));
                }
            });
        let error = match spawned {
            Ok(_) => return true,
            Err(error) => error,
        };
        let pending = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        let pending = pending.expect("a thread that did not start took nothing");
        self.context.log.warn(format_args!(
            "cannot start a thread to deliver object '{}' ({error}); trying again in a second",
            pending.object.key
        ));
        self.queue.push(Pending {
            next_at: Instant::now() + FIRST_BACKOFF,
            ..pending
        });
        false
    }

    /// Acts on the outcome of an attempt: done, again later, or quarantined.
    fn settle(&mut self, mut pending: Pending, result: Result<u64, DeliveryError>) {
        match &result {
            Ok(bytes) => self.context.metrics.delivered(*bytes),
            Err(error) => self.context.metrics.delivery_failed(error),
        }
        match result {
            Ok(bytes) => {
                self.known.remove(&pending.object.id);
                self.delivered(&pending, bytes);
            }
            Err(DeliveryError::KeyTaken { key }) if pending.rekeys < MAX_REKEYS => {
                pending.next_at = match self.rekey(&mut pending.object) {
                    Ok(()) => {
                        self.context.log.warn(format_args!(
                            "the key '{key}' already holds another object at {}; nothing was \
                             written over it, and this object goes to '{}'",
                            self.context.destination.describe(),
                            pending.object.key
                        ));
                        // Finding a key taken is not a failed attempt.
                        pending.attempts -= 1;
                        pending.rekeys += 1;
                        Instant::now()
                    }
                    Err(error) => {
                        self.context.log.warn(format_args!(
                            "the key '{key}' already holds another object, and recording a new \
                             key in the journal failed ({error}); trying again in a second"
                        ));
                        Instant::now() + FIRST_BACKOFF
                    }
                };
                self.queue.push(pending);
            }
            Err(error) if error.is_retryable() && pending.attempts < self.context.retry_limit => {
                let wait = backoff(pending.attempts);
                self.report_retry(&pending, &error, wait);
                pending.next_at = Instant::now() + wait;
                self.queue.push(pending);
            }
            Err(error) => {
                self.known.remove(&pending.object.id);
                self.give_up(&pending, &error);
            }
        }
    }

    /// Gives an object the next key of its series, in the journal first (unless it is in
    /// quarantine), then in the files beside it, which recover the object when the
    /// journal is lost.
    fn rekey(&self, object: &mut SealedObject) -> std::io::Result<()> {
        let new = self.context.keys.next(&object.tag, object.window_start);
        if !self.context.store.is_quarantined(&object.path) {
            self.journal_append(&Record::Rekeyed {
                id: object.id,
                key: new.key.clone(),
                index: new.index,
            })?;
        }
        self.context
            .store
            .rekey(&object.path, &new.key, new.index)?;
        object.key = new.key;
        object.progress = None;
        Ok(())
    }

    fn report_retry(&mut self, pending: &Pending, error: &DeliveryError, wait: Duration) {
        let limit = match self.context.retry_limit {
            u32::MAX => "no limit".to_owned(),
            limit => format!("of {limit}"),
        };
        let line = format_args!(
            "delivering object '{}' to {} failed (attempt {} {limit}): {error}; retrying in \
             {:.1}s",
            pending.object.key,
            self.context.destination.describe(),
            pending.attempts,
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

    fn delivered(&self, pending: &Pending, bytes: u64) {
        let object = &pending.object;
        if self.context.store.is_quarantined(&object.path) {
            if let Err(error) = self.context.store.remove_quarantined(object.id) {
                self.context.log.warn(format_args!(
                    "object '{}' is delivered but its file {} could not be removed: {error}",
                    object.key,
                    object.path.display()
                ));
            }
            self.context.log.info(format_args!(
                "delivered object '{}' ({bytes} bytes) from quarantine to {}",
                object.key,
                self.context.destination.describe()
            ));
            return;
        }
        // The file goes under the same lock as the record: a compaction between the two
        // would drop the record, and a crash then leave a file no record says is delivered.
        let recorded = lock_journal(&self.context.journal)
            .append(&[Record::Delivered { id: object.id }])
            .map(|()| self.context.store.remove_object(object.id));
        match recorded {
            Ok(removed) => {
                if let Err(error) = removed {
                    self.context.log.warn(format_args!(
                        "object '{}' is delivered but its file {} could not be removed: {error}",
                        object.key,
                        object.path.display()
                    ));
                }
                if pending.attempts > 1 {
                    self.context.log.info(format_args!(
                        "delivered object '{}' ({bytes} bytes) to {} after {} attempts",
                        object.key,
                        self.context.destination.describe(),
                        pending.attempts
                    ));
                } else {
                    self.context.log.debug(format_args!(
                        "delivered object '{}' ({bytes} bytes)",
                        object.key
                    ));
                }
            }
            Err(error) => self.context.log.warn(format_args!(
                "object '{}' is delivered but the journal could not record it ({error}); it is \
                 kept and delivered again, to the same key, on the next start",
                object.key
            )),
        }
    }

    /// After the last attempt: the object moves to quarantine, stays there, or is deleted.
    fn give_up(&self, pending: &Pending, error: &DeliveryError) {
        let object = &pending.object;
        let store = &self.context.store;
        let destination = self.context.destination.describe();
        // Parts of an unfinished upload would cost storage until a lifecycle rule ends them.
        self.context.destination.abandon(object);
        let quarantined = store.is_quarantined(&object.path);
        if self.context.exhausted == RetryExhaustedAction::Delete && error.is_retryable() {
            let removed = match quarantined {
                true => store.remove_quarantined(object.id),
                false => store
                    .remove_object(object.id)
                    .and_then(|()| self.journal_append(&Record::Quarantined { id: object.id })),
            };
            self.context.log.error(format_args!(
                "object '{}' ({} bytes) was not delivered to {destination} after {} attempts \
                 ({error}); {}",
                object.key,
                object.len,
                pending.attempts,
                match removed {
                    Ok(()) => "it is deleted, as retry_exhausted_action delete says".to_owned(),
                    Err(e) => format!("deleting it failed ({e}); it is tried again later"),
                }
            ));
            return;
        }
        if quarantined {
            self.context.log.debug(format_args!(
                "object '{}' in quarantine was not delivered to {destination} after {} attempts \
                 ({error}); it stays there and is tried again in {} minutes",
                object.key,
                pending.attempts,
                QUARANTINE_RETRY.as_secs() / 60
            ));
            return;
        }
        let moved = store.quarantine(object.id, &object.key).and_then(|path| {
            self.journal_append(&Record::Quarantined { id: object.id })?;
            Ok(path)
        });
        match moved {
            Ok(path) => self.context.log.error(format_args!(
                "object '{}' was not delivered to {destination} after {} attempts ({error}); it \
                 is kept, complete, in {} with its key in {}, and tried again at every start \
                 and every {} minutes until it is delivered",
                object.key,
                pending.attempts,
                path.display(),
                path.with_extension("key").display(),
                QUARANTINE_RETRY.as_secs() / 60
            )),
            Err(move_error) => self.context.log.error(format_args!(
                "object '{}' was not delivered ({error}) and could not be moved to quarantine \
                 ({move_error}); it stays in {} and is delivered again on the next start",
                object.key,
                object.path.display()
            )),
        }
    }

    /// Says at the end what stays in `store_dir` for the next start.
    fn report_undelivered(&self) {
        let store = &self.context.store;
        let waiting: Vec<&Pending> = self
            .queue
            .iter()
            .filter(|p| !store.is_quarantined(&p.object.path))
            .collect();
        let Some(oldest) = waiting.iter().min_by_key(|p| p.object.id) else {
            return;
        };
        let bytes: u64 = waiting.iter().map(|p| p.object.len).sum();
        self.context.log.warn(format_args!(
            "{} objects ({bytes} bytes) were not delivered to {} before shutdown_timeout; they \
             stay in {} and are delivered at the next start. The oldest is '{}'",
            waiting.len(),
            self.context.destination.describe(),
            self.context.store.root().display(),
            oldest.object.key
        ));
    }

    fn journal_append(&self, record: &Record) -> std::io::Result<()> {
        append_record(&self.context.journal, record)
    }
}

fn append_record(journal: &Mutex<Journal>, record: &Record) -> std::io::Result<()> {
    lock_journal(journal).append(std::slice::from_ref(record))
}

/// One attempt to deliver an object, on the thread that makes it; a panic in the
/// destination counts as a failed attempt.
fn attempt(
    destination: &dyn Destination,
    journal: &Mutex<Journal>,
    parquet: &ParquetWriter,
    log: &Logger,
    pending: &mut Pending,
) -> Result<u64, DeliveryError> {
    let mut progress = JournalProgress {
        id: pending.object.id,
        progress: pending.object.progress.take(),
        journal,
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let object = deliverable(&pending.object, parquet, log)?;
        destination.put(&object, &mut progress).map(|()| object.len)
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
    result
}

/// Starts an attempt to store parts of an open object ahead, on a thread of its own.
fn spawn_ahead(context: &DeliveryContext, results: &Sender<Message>, ahead: &mut Ahead) -> bool {
    let destination = Arc::clone(&context.destination);
    let journal = Arc::clone(&context.journal);
    let results = results.clone();
    let object = ahead.object.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("rustsink:{}:upload", context.log.instance()))
        .spawn(move || {
            let mut progress = JournalProgress {
                id: object.id,
                progress: object.progress.clone(),
                journal: &journal,
            };
            let stored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                destination.put_ahead(&object, &mut progress)
            }));
            let failure = match stored {
                Ok(result) => result.err(),
                Err(_) => Some(DeliveryError::Io {
                    action: "storing parts ahead (internal error)",
                    path: object.path.clone(),
                    source: std::io::Error::other("panic"),
                }),
            };
            let _ = results.send(Message::StoredAhead {
                id: object.id,
                progress: progress.progress,
                failure,
            });
        });
    ahead.busy = spawned.is_ok();
    ahead.busy
}

/// The object as its destination gets it. A Parquet object's Parquet file is written from
/// its lines by the first attempt, beside its file, and kept for the next ones: every
/// attempt sends the same bytes.
fn deliverable<'a>(
    object: &'a SealedObject,
    parquet: &ParquetWriter,
    log: &Logger,
) -> Result<Cow<'a, SealedObject>, DeliveryError> {
    if object.format != ObjectFormat::Parquet {
        return Ok(Cow::Borrowed(object));
    }
    let path = parquet::beside(&object.path);
    let len = match std::fs::symlink_metadata(&path) {
        // Damaged files, and anything else in the way, are written again.
        Ok(metadata) if metadata.is_file() && parquet::is_whole(&path) => metadata.len(),
        _ => {
            let converted = parquet.convert(&object.path, object.codec, &path)?;
            if converted.unfit > 0 {
                log.warn(format_args!(
                    "object '{}': {} of its values did not fit their column in parquet.schema \
                     and are written as null; the first: {}",
                    object.key,
                    converted.unfit,
                    converted.first_unfit.as_deref().unwrap_or_default()
                ));
            }
            log.debug(format_args!(
                "object '{}': {} rows written as Parquet, {} bytes from {}",
                object.key, converted.rows, converted.len, object.len
            ));
            converted.len
        }
    };
    Ok(Cow::Owned(SealedObject {
        path,
        len,
        ..object.clone()
    }))
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
