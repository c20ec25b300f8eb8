//! The object engine: records in, time-windowed compressed objects out, with nothing lost
//! when the process dies.
//!
//! [`Engine::accept`] takes a group of chunks (every flush waiting at that moment) and:
//!
//! 1. decodes each event and writes it as a JSON line into the buffer of its object slot,
//!    a (tag, window) pair (`windows.rs`);
//! 2. appends each buffer to the slot's open object (opening one, with its key fixed, if
//!    there is none); the data is cut into blocks that its [codec] compresses
//!    independently, so the blocks of one object, and of many, compress at once on
//!    `compression_threads`; an object that reaches `total_file_size` is cut and the rest
//!    goes to a new one;
//! 3. syncs the object files, then appends one journal entry for the whole group (the new
//!    objects, each object's committed state, the chunks' ids) and syncs it.
//!
//! Only then do the flushes return OK: one pair of syncs serves every flush in the group. If
//! anything fails, every object is cut back to its last commit and the flushes return
//! RETRY. Objects close when their window has ended and `window_wait` has passed, after
//! `upload_timeout`, or at a size cut; closing seals the file and hands it to the
//! [delivery] thread. While an object is open, each whole part of its committed bytes is
//! shown to that thread too, for a destination that uploads in parts to send it early.
//!
//! [codec]: crate::object::codec

pub mod delivery;
pub mod keys;
mod parallel;
mod recovery;
mod windows;

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::config::{JsonLines, ObjectConfig};
use crate::destination::SealedObject;
use crate::event::Malformed;
use crate::log::Logger;
use crate::object::ObjectFormat;
use crate::object::codec::BlockCompressor;
use crate::object::writer::{ObjectWriter, SLICE};
use crate::store::Store;
use crate::store::journal::{ChunkId, Journal, Opened, Record};
use crate::store::limit::StoreLimit;
use delivery::Delivery;
use keys::Keys;
use windows::{Lines, Slot, Windows};

/// How long after a start after a crash a chunk of the last group accepted before it is
/// recognised as Fluent Bit sending it again. Fluent Bit sends the chunks it holds within
/// seconds of its start; later, an identical chunk is new data.
const REPLAY_WINDOW: Duration = Duration::from_secs(600);
/// How long the journal keeps counting a key series after its window started.
const SERIES_KEPT: i64 = 3 * 86_400;
/// The journal is compacted when it grows past this size.
const COMPACT_AT: u64 = 4 << 20;
/// After this long without a write, the compressors' memory is given back.
const IDLE_COMPRESSOR: Duration = Duration::from_secs(10);
/// The most data of one object compressed in one step of a group.
const WAVE: usize = 4 << 20;
/// A gzip ratio that real logs reach: how much data is planned per byte of room left
/// before `total_file_size`.
const RAW_PER_STORED_BYTE: u64 = 4;

/// What became of one chunk of an accepted group.
#[derive(Debug, Default)]
pub struct ChunkOutcome {
    /// Events written.
    pub records: usize,
    /// The events that were not written because they are malformed.
    pub malformed: Malformed,
    /// The events written whole because they lack the `log_key` field.
    pub without_log_key: usize,
}

/// Why a group of chunks was not accepted; none of it was written.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// `store_dir_limit_size` is reached.
    #[error("store_dir holds {used} bytes, at its limit of {limit} (store_dir_limit_size)")]
    LimitReached {
        /// Bytes in use.
        used: u64,
        /// The limit.
        limit: u64,
    },
    /// Writing to `store_dir` failed.
    #[error("writing to {}: {source}", .store.display())]
    Io {
        /// The instance's store folder.
        store: std::path::PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// Why an engine did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The instance's store folder cannot be used.
    #[error("opening store_dir {}: {source}", .dir.display())]
    Store {
        /// `store_dir`.
        dir: std::path::PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The journal cannot be read or written.
    #[error("{action} the journal {}: {source}", .path.display())]
    Journal {
        /// Reading or writing.
        action: &'static str,
        /// The journal.
        path: std::path::PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The delivery thread cannot start.
    #[error("starting the delivery thread: {0}")]
    Thread(io::Error),
}

#[derive(Debug)]
struct OpenObject {
    opened: Opened,
    writer: ObjectWriter,
    /// Unix second at which the object closes.
    closes_at: i64,
    /// The number of the last group that wrote to it, to close the least recently written
    /// first at `max_open_objects`.
    last_group: u64,
    /// How many whole parts of its committed bytes the delivery thread was shown, to store
    /// them ahead of sealing.
    parts_shown: u64,
}

/// An instance's object engine.
#[derive(Debug)]
pub struct Engine {
    config: ObjectConfig,
    windows: Windows,
    json: JsonLines,
    /// Compresses the blocks of new objects; None for `compression none`.
    compressor: Option<Box<dyn BlockCompressor>>,
    /// When the last group was written, to give idle compressors' memory back.
    last_write: Instant,
    log: Logger,
    store: Store,
    journal: Arc<Mutex<Journal>>,
    delivery: Delivery,
    keys: Arc<Keys>,
    /// The id of the next object (its file's name in the store).
    next_id: u64,
    open: HashMap<Slot, OpenObject>,
    /// Objects that are closed but not yet sealed (a seal failed and is tried again).
    closing: Vec<OpenObject>,
    /// Chunks accepted in the last group before a crash, in case Fluent Bit sends them again
    /// because the crash lost their OK. Forgotten after [`REPLAY_WINDOW`].
    accepted_before_crash: Vec<ChunkId>,
    /// When the engine started.
    started: Instant,
    /// When quarantined objects were last handed to the delivery thread.
    quarantine_round: Instant,
    /// `store_dir_limit_size`, and whether it is reached.
    limit: StoreLimit,
    /// Groups written so far.
    groups: u64,
    /// When the log last said that `max_open_objects` closed objects early.
    bound_reported: Option<Instant>,
}

/// An object and the lines of its slot still to be written.
struct Work<'a> {
    slot: Slot,
    object: OpenObject,
    rest: &'a [u8],
}

impl Engine {
    /// Accepts a group of `(chunk, tag)` pairs, durably. Returns one outcome per chunk, in
    /// order.
    ///
    /// # Errors
    ///
    /// Nothing of the group was accepted: the store is at its limit, or writing failed.
    pub fn accept(&mut self, chunks: &[(&[u8], &str)]) -> Result<Vec<ChunkOutcome>, AcceptError> {
        if let Err(reached) = self.limit.check(&self.store, &self.log) {
            return Err(AcceptError::LimitReached {
                used: reached.used,
                limit: reached.limit,
            });
        }
        let now = unix_now();
        let mut outcomes: Vec<ChunkOutcome> = chunks.iter().map(|_| Default::default()).collect();
        let mut fresh = Vec::with_capacity(chunks.len());
        let mut ids = Vec::with_capacity(chunks.len());
        for (index, &(chunk, tag)) in chunks.iter().enumerate() {
            let id = ChunkId::of(tag, chunk);
            if self.is_replay(&id) {
                self.log.info(format_args!(
                    "a chunk of tag '{tag}' ({} bytes) was the last accepted before a crash, \
                     which lost its OK; it is not written again",
                    chunk.len()
                ));
                continue;
            }
            ids.push(id);
            fresh.push((index, chunk, tag));
        }
        // Several chunks (concurrent flushes) are encoded at once.
        let threads = self.config.compression_threads;
        let (buffers, encoded) = self.windows.encode(fresh, &self.json, threads);
        for (index, outcome) in encoded {
            if outcome.without_log_key > 0
                && let Some(log_key) = &self.json.log_key
            {
                self.log.warn(format_args!(
                    "{} of {} records of tag '{}' have no field '{log_key}' (log_key): they are \
                     written whole, as JSON lines",
                    outcome.without_log_key, outcome.records, chunks[index].1
                ));
            }
            outcomes[index] = outcome;
        }
        if buffers.values().all(HashMap::is_empty) {
            return Ok(outcomes);
        }
        self.write_group(&buffers, ids, now)?;
        self.seal_closing();
        Ok(outcomes)
    }

    /// Whether a chunk is one that was accepted just before a crash and that Fluent Bit sends
    /// again: each such chunk is recognised once, within [`REPLAY_WINDOW`] of the start.
    fn is_replay(&mut self, id: &ChunkId) -> bool {
        if self.accepted_before_crash.is_empty() {
            return false;
        }
        if self.started.elapsed() > REPLAY_WINDOW {
            self.accepted_before_crash.clear();
            return false;
        }
        match self.accepted_before_crash.iter().position(|c| c == id) {
            Some(at) => {
                self.accepted_before_crash.swap_remove(at);
                true
            }
            None => false,
        }
    }

    /// Writes and commits the buffers of a group; on failure, nothing of it stays.
    fn write_group(
        &mut self,
        buffers: &Lines<'_>,
        ids: Vec<ChunkId>,
        now: i64,
    ) -> Result<(), AcceptError> {
        let mut records = Vec::new();
        let mut work = Vec::with_capacity(buffers.len());
        let mut cut = Vec::new();
        let mut failure = None;
        self.groups += 1;
        let slots: Vec<(Slot, &Vec<u8>)> = buffers
            .iter()
            .flat_map(|(tag, windows)| {
                windows
                    .iter()
                    .map(|(window, lines)| ((tag.to_string(), *window), lines))
            })
            .collect();
        self.make_room(&slots);
        for (slot, lines) in slots {
            match self.take_or_open(&slot, now, &mut records) {
                Ok(object) => work.push(Work {
                    slot,
                    object,
                    rest: lines,
                }),
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        while failure.is_none() && work.iter().any(|w| !w.rest.is_empty()) {
            if let Err(error) = self.write_wave(&mut work) {
                failure = Some(error);
                break;
            }
            let limit = self.config.total_file_size;
            for item in &mut work {
                if !item.rest.is_empty() && item.object.writer.stored_len() >= limit {
                    // Full: the rest of the lines go to a new object of the same slot.
                    match self.open_object(&item.slot, now, &mut records) {
                        Ok(fresh) => cut.push(std::mem::replace(&mut item.object, fresh)),
                        Err(error) => {
                            failure = Some(error);
                            break;
                        }
                    }
                }
            }
        }
        if failure.is_none() {
            let mut objects: Vec<&mut OpenObject> = work
                .iter_mut()
                .map(|w| &mut w.object)
                .chain(cut.iter_mut())
                .filter(|object| object.writer.has_pending())
                .collect();
            let errors = Mutex::new(Vec::new());
            parallel::for_each(
                &mut objects,
                self.config.compression_threads,
                |_| 1,
                |object| {
                    if let Err(error) = object.writer.sync() {
                        errors
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(error);
                    }
                },
            );
            failure = errors
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
        }
        self.last_write = Instant::now();
        if failure.is_none() {
            for object in work.iter_mut().map(|w| &mut w.object).chain(cut.iter_mut()) {
                if object.writer.has_pending() {
                    records.push(Record::Commit {
                        id: object.opened.id,
                        state: object.writer.pending(),
                    });
                }
            }
            records.push(Record::Accepted { chunks: ids });
            if let Err(error) = self.lock_journal().append(&records) {
                failure = Some(error);
            }
        }
        let opened: Vec<u64> = records
            .iter()
            .filter_map(|r| match r {
                Record::Open(opened) => Some(opened.id),
                _ => None,
            })
            .collect();
        let objects = work.into_iter().map(|w| (Some(w.slot), w.object));
        let objects = objects.chain(cut.into_iter().map(|object| (None, object)));
        match failure {
            None => {
                for (slot, mut object) in objects {
                    object.writer.commit();
                    object.last_group = self.groups;
                    let full = object.writer.stored_len() >= self.config.total_file_size;
                    match slot {
                        Some(slot) if !full => {
                            self.show_committed(&mut object);
                            self.open.insert(slot, object);
                        }
                        _ => self.closing.push(object),
                    }
                }
                Ok(())
            }
            Some(source) => {
                for (slot, object) in objects {
                    let new = opened.contains(&object.opened.id);
                    self.roll_back(slot, object, new);
                }
                Err(AcceptError::Io {
                    store: self.store.root().to_owned(),
                    source,
                })
            }
        }
    }

    /// Shows the delivery thread an open object's committed bytes when they hold another
    /// whole part, for a destination that stores parts ahead of sealing.
    fn show_committed(&self, object: &mut OpenObject) {
        let Some(part_size) = self.delivery.ahead_part_size() else {
            return;
        };
        if object.opened.format != ObjectFormat::JsonLines {
            // A Parquet object's file is not what is delivered.
            return;
        }
        let committed = object.writer.committed().len;
        let whole = committed.saturating_sub(1) / part_size;
        if whole > object.parts_shown {
            object.parts_shown = whole;
            let path = object.writer.path().to_owned();
            self.delivery
                .store_ahead(SealedObject::new(&object.opened, path, committed, None));
        }
    }

    /// Appends to each object as much of its slot's lines as fits under
    /// `total_file_size`, a bounded amount at a time: the blocks of every object are
    /// compressed at once on `compression_threads`, then appended in order.
    fn write_wave(&self, work: &mut [Work<'_>]) -> io::Result<()> {
        let limit = self.config.total_file_size;
        let mut blocks = Vec::new();
        // How many of the blocks are each item's, in order.
        let mut counts = Vec::with_capacity(work.len());
        for item in work.iter() {
            let room = limit.saturating_sub(item.object.writer.stored_len());
            // Enough data to fill the room at a good gzip ratio, so that little work is
            // thrown away at a cut, and at most WAVE, so that memory stays bounded.
            let budget = usize::try_from(room.saturating_mul(RAW_PER_STORED_BYTE))
                .unwrap_or(usize::MAX)
                .clamp(SLICE, WAVE);
            let before = blocks.len();
            blocks.extend(item.object.writer.next_blocks(item.rest, budget));
            counts.push(blocks.len() - before);
        }
        if let Some(compressor) = &self.compressor {
            let threads = self.config.compression_threads;
            // Each object's blocks in at most `threads` runs of neighbours: a run is
            // compressed in order on one thread, so only its first block needs priming.
            let mut runs = Vec::new();
            let mut rest = blocks.as_mut_slice();
            for &count in &counts {
                let (own, after) = rest.split_at_mut(count);
                if count > 0 {
                    runs.extend(own.chunks_mut(count.div_ceil(threads)));
                }
                rest = after;
            }
            parallel::for_each(
                &mut runs,
                threads,
                |run| run.iter().map(|block| block.raw.len()).sum(),
                |run| run.iter_mut().for_each(|block| compressor.compress(block)),
            );
        }
        let mut blocks = blocks.into_iter();
        for (item, count) in work.iter_mut().zip(counts) {
            let own = blocks.by_ref().take(count);
            let taken = item.object.writer.append_blocks(own, limit)?;
            item.rest = &item.rest[taken..];
        }
        Ok(())
    }

    /// Puts an object back after a failed group: a new one is removed, an older one is
    /// cut back to its last commit (or closed, if even that fails).
    fn roll_back(&mut self, slot: Option<Slot>, mut object: OpenObject, new: bool) {
        if new {
            // Its Open record never reached the journal: nothing refers to the file.
            let _ = self.store.remove_object(object.opened.id);
            return;
        }
        let slot = match (object.writer.rollback(), slot) {
            (Ok(()), Some(slot)) => slot,
            (result, _) => {
                if let Err(error) = result {
                    self.log.error(format_args!(
                        "object '{}' cannot be cut back to its last commit ({error}); it is \
                         closed at that commit",
                        object.opened.key
                    ));
                }
                self.closing.push(object);
                return;
            }
        };
        self.open.insert(slot, object);
    }

    /// Closes the least recently written objects that this group does not write to, so
    /// that the objects it opens stay within `max_open_objects`.
    fn make_room(&mut self, slots: &[(Slot, &Vec<u8>)]) {
        let new = slots
            .iter()
            .filter(|(slot, _)| !self.open.contains_key(slot))
            .count();
        let bound = self.config.max_open_objects;
        let excess = (self.open.len() + new).saturating_sub(bound);
        if excess == 0 {
            return;
        }
        let in_group: std::collections::HashSet<&Slot> = slots.iter().map(|(s, _)| s).collect();
        let mut idle: Vec<(u64, Slot)> = self
            .open
            .iter()
            .filter(|(slot, _)| !in_group.contains(slot))
            .map(|(slot, object)| (object.last_group, slot.clone()))
            .collect();
        idle.sort_unstable();
        let closed = idle.len().min(excess);
        for (_, slot) in idle.into_iter().take(closed) {
            if let Some(object) = self.open.remove(&slot) {
                self.closing.push(object);
            }
        }
        // Sealed now, so that their descriptors are free before new objects open.
        self.seal_closing();
        let quiet = self
            .bound_reported
            .is_some_and(|at| at.elapsed() < Duration::from_secs(600));
        if closed > 0 && !quiet {
            self.bound_reported = Some(Instant::now());
            self.log.info(format_args!(
                "{} objects are open, at max_open_objects ({bound}): the least recently written \
                 are closed early and delivered, and their tags' next records open new objects. \
                 Raise max_open_objects (or the descriptor limit) for fewer, larger objects \
                 (said at most every 10 minutes)",
                self.open.len() + closed
            ));
        }
    }

    /// The open object of a slot, or a new one.
    fn take_or_open(
        &mut self,
        slot: &Slot,
        now: i64,
        records: &mut Vec<Record>,
    ) -> io::Result<OpenObject> {
        match self.open.remove(slot) {
            Some(object) => Ok(object),
            None => self.open_object(slot, now, records),
        }
    }

    /// Creates the file of a new object and adds its Open record to `records`.
    fn open_object(
        &mut self,
        (tag, window): &Slot,
        now: i64,
        records: &mut Vec<Record>,
    ) -> io::Result<OpenObject> {
        let window_start = self.windows.object_start(*window, now);
        let (id, writer) = loop {
            let id = self.next_id;
            self.next_id += 1;
            let codec = self.config.compression.codec;
            match ObjectWriter::create(&self.store.object_path(id), codec) {
                // A file that is there already holds data the journal may not know: it is
                // never replaced.
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                created => break (id, created?),
            }
        };
        let key = self.keys.next(tag, window_start);
        let opened = Opened {
            id,
            key: key.key,
            tag: tag.clone(),
            window_start,
            opened_at: now,
            codec: self.config.compression.codec,
            raw_lines: self.json.log_key.is_some(),
            format: self.config.format,
            series: key.series,
            index: Some(key.index),
            token: uuid::Uuid::new_v4().simple().to_string(),
        };
        if let Err(error) = self.store.write_opened(&opened) {
            let _ = self.store.remove_object(id);
            return Err(error);
        }
        records.push(Record::Open(opened.clone()));
        Ok(OpenObject {
            closes_at: self.windows.closes_at(&opened),
            opened,
            writer,
            last_group: self.groups,
            parts_shown: 0,
        })
    }

    /// Closes the objects that are due, seals what is closed, frees idle compressors and
    /// compacts the journal. Call it about once a second.
    pub fn tick(&mut self) {
        let now = unix_now();
        let due: Vec<Slot> = self
            .open
            .iter()
            .filter(|(_, object)| object.closes_at <= now)
            .map(|(slot, _)| slot.clone())
            .collect();
        for slot in due {
            if let Some(object) = self.open.remove(&slot) {
                self.closing.push(object);
            }
        }
        self.seal_closing();
        if self.quarantine_round.elapsed() >= delivery::QUARANTINE_RETRY
            || self.store.take_redrive_request()
        {
            self.retry_quarantine();
        }
        if let Some(compressor) = &self.compressor
            && self.last_write.elapsed() >= IDLE_COMPRESSOR
        {
            compressor.release();
        }
        self.compact_if_large();
    }

    /// Has the delivery thread try the objects in quarantine again.
    fn retry_quarantine(&mut self) {
        self.quarantine_round = Instant::now();
        self.delivery.retry_quarantine();
    }

    fn compact_if_large(&self) {
        let compacted = self
            .lock_journal()
            .compact_past(COMPACT_AT, unix_now() - SERIES_KEPT);
        if let Err(error) = compacted {
            self.log.warn(format_args!(
                "compacting the journal in {} failed: {error}; it keeps growing until a later \
                 try works",
                self.store.root().display()
            ));
        }
    }

    /// Seals every closed object and queues it for delivery; what fails stays closed and is
    /// tried again at the next tick.
    fn seal_closing(&mut self) {
        let closing = std::mem::take(&mut self.closing);
        for mut object in closing {
            let id = object.opened.id;
            let sealed = object.writer.seal().and_then(|len| {
                self.lock_journal()
                    .append(&[Record::Sealed { id, len }])
                    .map(|()| len)
            });
            match sealed {
                Ok(len) => self.delivery.deliver(SealedObject::new(
                    &object.opened,
                    object.writer.path().to_owned(),
                    len,
                    None,
                )),
                Err(error) => {
                    self.log.warn(format_args!(
                        "closing object '{}' failed: {error}; trying again in a second",
                        object.opened.key
                    ));
                    self.closing.push(object);
                }
            }
        }
    }

    /// Closes every object and delivers until `timeout` has passed; what is not delivered
    /// by then stays in `store_dir` for the next start.
    pub fn shutdown(mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let open: Vec<OpenObject> = self.open.drain().map(|(_, object)| object).collect();
        self.closing.extend(open);
        self.seal_closing();
        let Engine {
            delivery,
            journal,
            log,
            ..
        } = self;
        delivery.finish(deadline);
        // Every flush was answered: a chunk that comes again after this start is new data.
        let stopped = journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .append(&[Record::Stopped]);
        if let Err(error) = stopped {
            log.warn(format_args!(
                "recording the clean stop in the journal failed ({error}); at the next start, a \
                 chunk identical to the last one accepted is taken for a replay and skipped once"
            ));
        }
    }

    fn lock_journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        lock_journal(&self.journal)
    }
}

/// The journal the engine and the delivery thread share. A panic while it was held left it
/// whole: each append is one write.
fn lock_journal(journal: &Mutex<Journal>) -> std::sync::MutexGuard<'_, Journal> {
    journal.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Now, in Unix seconds.
fn unix_now() -> i64 {
    Utc::now().timestamp()
}
