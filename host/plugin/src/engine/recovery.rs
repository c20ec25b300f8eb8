//! Starting an engine: reading the journal, finishing what a previous run left open, and
//! queueing everything not yet delivered.
//!
//! Nothing found in the store is deleted because the journal is damaged or lost. Each
//! object's file is checked against what the journal committed (its data's CRC-32 and
//! length) before it is sealed and delivered. A file that fails the check, or that the
//! journal no longer lists because its records were lost, is salvaged: the intact part up
//! to its last whole block is sealed and delivered, under a new key when bytes were lost,
//! and a copy of the damaged file is kept in `quarantine/<id>.damaged`. Every damage is
//! logged at warn level or above, with the file and the bytes concerned.
//!
//! Two kinds of file are removed: an object whose delivery the journal recorded (the
//! crash came before its file was removed), which must not go out again, and, when no
//! intact record can have been lost, an object whose Open record never reached the
//! journal (the crash came before its first commit), which nobody was told OK about.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::delivery::{Delivery, DeliveryContext};
use super::keys::Keys;
use super::windows::Windows;
use super::{Engine, SERIES_KEPT, StartError, unix_now};
use crate::config::{Codec, JsonLines, ObjectConfig};
use crate::destination::{Destination, SealedObject};
use crate::log::Logger;
use crate::metrics::Metrics;
use crate::object::check;
use crate::object::parquet::ParquetWriter;
use crate::object::writer::{Committed, ObjectWriter};
use crate::store::journal::{Damage, Journal, LiveObject, Opened, Record, fold, unfold};
use crate::store::limit::StoreLimit;
use crate::store::{self, Store};

impl Engine {
    /// Opens the instance's store folder, finishes and queues what a previous run left,
    /// and starts the delivery thread.
    ///
    /// # Errors
    ///
    /// When the store folder or the journal cannot be used, or the thread cannot start.
    pub fn start(
        config: ObjectConfig,
        json: JsonLines,
        destination: Box<dyn Destination>,
        log: Logger,
        metrics: Metrics,
    ) -> Result<Engine, StartError> {
        let store_error = |source| StartError::Store {
            dir: config.store_dir.clone(),
            source,
        };
        let store = Store::open(&config.store_dir, log.instance()).map_err(store_error)?;
        let agent_id = store.agent_id().map_err(store_error)?;
        let journal_path = store.journal_path();
        let journal_error = |action| {
            let path = journal_path.clone();
            move |source| StartError::Journal {
                action,
                path,
                source,
            }
        };
        let (mut journal, records, damage) =
            Journal::open(&journal_path, store.was_in_use()).map_err(journal_error("reading"))?;
        if let Some(damage) = &damage {
            report(&log, &journal_path, damage);
        }
        // Objects whose delivery (or end) the journal recorded: a file of one left in the
        // store is not delivered again.
        let ended: HashSet<u64> = records
            .iter()
            .filter_map(|record| match record {
                Record::Delivered { id } | Record::Quarantined { id } => Some(*id),
                _ => None,
            })
            .collect();
        let mut state = fold(records);
        state.forget_series_before(unix_now() - SERIES_KEPT);
        let keys = Arc::new(Keys::new(
            config.key_format.clone(),
            store::hostname(),
            agent_id,
            state.series.clone(),
        ));
        let records_lost = damage.as_ref().is_some_and(Damage::lost_records);
        let mut recovery = Recovery {
            damaged: damage.is_some(),
            store: &store,
            keys: &keys,
            destination: &*destination,
            log: &log,
            records: Vec::new(),
            finished: Vec::new(),
        };
        for object in state.objects.values() {
            recovery.finish(object);
        }
        // Files the journal does not list: objects whose end it recorded just before a
        // crash that came before their file was removed, objects it lost the records of,
        // or objects opened just before a crash that never committed.
        let orphans = store.object_files().unwrap_or_default();
        for id in orphans
            .into_iter()
            .filter(|id| !state.objects.contains_key(id))
        {
            if ended.contains(&id) {
                log.debug(format_args!(
                    "removing {}, an object whose delivery the journal recorded",
                    store.object_path(id).display()
                ));
                let _ = store.remove_object(id);
            } else if records_lost || id < state.next_index {
                recovery.orphan(id);
            } else {
                log.debug(format_args!(
                    "removing {}, an object that was never committed",
                    store.object_path(id).display()
                ));
                let _ = store.remove_object(id);
            }
        }
        store.remove_lone_opened_files();
        let Recovery {
            records, finished, ..
        } = recovery;
        // One rename puts what was found and what was done in place of the old journal.
        let recovered = fold(unfold(&state).into_iter().chain(records));
        journal
            .compact(&recovered)
            .map_err(journal_error("writing"))?;
        if !finished.is_empty() {
            log.info(format_args!(
                "{} objects from before the restart are complete in {}; delivering them to {}",
                finished.len(),
                store.root().display(),
                destination.describe()
            ));
        }
        let journal = Arc::new(Mutex::new(journal));
        let delivery = Delivery::start(DeliveryContext {
            destination: Arc::from(destination),
            journal: Arc::clone(&journal),
            store: store.clone(),
            keys: Arc::clone(&keys),
            log: log.clone(),
            metrics: metrics.clone(),
            retry_limit: config.upload_retry_limit,
            exhausted: config.retry_exhausted_action,
            concurrency: config.upload_concurrency,
            parquet: Arc::new(ParquetWriter::new(config.parquet.clone())),
        })
        .map_err(StartError::Thread)?;
        for object in finished {
            delivery.deliver(object);
        }
        // Shown from here on: the engine has started.
        metrics.watch_store(store.root());
        let quarantine_round = Instant::now();
        Ok(Engine {
            compressor: config.compression.compressor(),
            last_write: Instant::now(),
            next_id: recovered.next_index.max(store.next_free_id()),
            windows: Windows::new(&config),
            limit: StoreLimit::new(config.store_dir_limit_size),
            config,
            json,
            log,
            journal,
            delivery,
            keys,
            open: HashMap::new(),
            closing: Vec::new(),
            accepted_before_crash: recovered.last_accepted,
            quarantine_round,
            started: Instant::now(),
            groups: 0,
            bound_reported: None,
            store,
        }
        .with_quarantine_retried())
    }

    /// Hands every quarantined object to the delivery thread again, and says how many wait.
    fn with_quarantine_retried(mut self) -> Engine {
        self.retry_quarantine();
        self
    }
}

/// Logs what is wrong with the journal.
fn report(log: &Logger, path: &Path, damage: &Damage) {
    match damage {
        Damage::Lost { len: 0 } => log.error(format_args!(
            "the journal {} is missing from a store folder in use: it was deleted. Every object \
             file in the folder is checked and delivered; none is deleted",
            path.display()
        )),
        Damage::Lost { len } => log.error(format_args!(
            "the journal {} is cut to {len} bytes, shorter than its header: its records are \
             lost. Every object file in the folder is checked and delivered; none is deleted",
            path.display()
        )),
        Damage::Frames {
            ranges, saved_to, ..
        } if !damage.lost_records() => {
            let (offset, bytes) = ranges[0];
            log.warn(format_args!(
                "the journal {} ends with {bytes} bytes at byte {offset} that are not a whole \
                 record: a write torn by a crash (its chunks were never answered OK) or damage \
                 to the disk. The records before are kept; the bytes are saved in {}",
                path.display(),
                saved_to.display()
            ));
        }
        Damage::Frames {
            ranges, saved_to, ..
        } => {
            let described: Vec<String> = ranges
                .iter()
                .map(|(offset, bytes)| format!("{bytes} bytes at byte {offset}"))
                .collect();
            log.error(format_args!(
                "the journal {} is damaged: {}. The intact records around the damage are kept, \
                 the damaged bytes are saved in {}, and every object file the journal no \
                 longer lists is checked and delivered; none is deleted",
                path.display(),
                described.join(", "),
                saved_to.display()
            ));
        }
    }
}

/// What recovery works with, and what it found.
struct Recovery<'a> {
    /// Whether the journal was damaged at all, a torn end included: what it lacks is then
    /// no proof that nothing was committed.
    damaged: bool,
    store: &'a Store,
    keys: &'a Keys,
    destination: &'a dyn Destination,
    log: &'a Logger,
    /// What was done, for the journal.
    records: Vec<Record>,
    /// Objects ready to deliver.
    finished: Vec<SealedObject>,
}

impl Recovery<'_> {
    /// Checks an object the journal lists, seals it if it was open, and queues it.
    fn finish(&mut self, object: &LiveObject) {
        let opened = &object.opened;
        let id = opened.id;
        let path = self.store.object_path(id);
        let codec = opened.codec;
        if !path.exists() {
            self.gone(opened, &path);
            return;
        }
        let committed = object.committed.unwrap_or_else(|| Committed::empty(codec));
        if object.sealed.is_none() && committed.raw == 0 {
            let holds_data = std::fs::metadata(&path).is_ok_and(|m| m.len() > committed.len);
            if self.damaged && holds_data {
                // Its commits may be among the damaged records.
                self.salvage(opened, "the journal lost its commits", Some(object));
                return;
            }
            // Opened, but nothing of it was ever committed.
            let _ = self.store.remove_object(id);
            self.records.push(Record::Delivered { id });
            return;
        }
        let checked = check::verify(&path, codec, committed, object.sealed);
        let sealed = match checked {
            Ok(Ok(())) => match object.sealed {
                Some(len) => cut_to(&path, len),
                None => {
                    let end = self.end_of_data(&path, opened, committed);
                    ObjectWriter::reopen(&path, codec, end)
                        .and_then(|mut writer| writer.seal())
                        .inspect(|&len| {
                            if end != committed {
                                self.records.push(Record::Commit { id, state: end });
                            }
                            self.records.push(Record::Sealed { id, len });
                        })
                }
            },
            Ok(Err(reason)) => {
                self.salvage(opened, &reason, Some(object));
                return;
            }
            Err(error) => Err(error),
        };
        match sealed {
            Ok(len) => self.finished.push(SealedObject::new(
                opened,
                path,
                len,
                object.progress.clone(),
            )),
            Err(error) => {
                let moved = self.store.keep_damaged(id);
                self.log.error(format_args!(
                    "object '{}' cannot be finished ({error}); {}",
                    opened.key,
                    where_kept(&moved, &path)
                ));
                if moved.is_ok() {
                    self.records.push(Record::Quarantined { id });
                }
            }
        }
    }

    /// Where an open object's data ends: its last commit, or, when the journal is damaged
    /// and may have lost later commits, the end of the file's intact part past it. (Data
    /// past the last commit that was never answered OK may then be delivered too: at least
    /// once.)
    fn end_of_data(&self, path: &Path, opened: &Opened, committed: Committed) -> Committed {
        if !self.damaged || std::fs::metadata(path).map_or(0, |m| m.len()) <= committed.len {
            return committed;
        }
        match check::intact_prefix(path, opened.codec, opened.raw_lines) {
            Ok(Some(prefix)) if prefix.len > committed.len => prefix,
            _ => committed,
        }
    }

    /// An object the journal lists whose file is gone.
    fn gone(&mut self, opened: &Opened, path: &Path) {
        let id = opened.id;
        if self.destination.exists(&opened.key).unwrap_or(false) {
            self.records.push(Record::Delivered { id });
            return;
        }
        self.log.error(format_args!(
            "object '{}' is in the journal but its file {} is gone and it is not at the \
             destination; its records are lost (the file was removed outside rustsink)",
            opened.key,
            path.display()
        ));
        self.records.push(Record::Quarantined { id });
    }

    /// An object file the journal does not list, although it may have: its records were
    /// lost. How it was opened is in the file beside it.
    fn orphan(&mut self, id: u64) {
        if let Some(opened) = self.store.read_opened(id) {
            self.salvage(&opened, "the journal no longer lists it", None);
            return;
        }
        // Without the file beside it, its tag and key are unknown; what it holds is kept,
        // sealed, in quarantine, under a key of tag `unknown`.
        let path = self.store.object_path(id);
        let codec = Codec::of_file(&path);
        // Its lines are taken to be JSON: without the file beside it, nothing says otherwise.
        let prefix = match check::intact_prefix(&path, codec, false) {
            Ok(Some(prefix)) if prefix.raw > 0 => prefix,
            _ => {
                // Created just before a crash, before anything was written to it.
                log_removed_empty(self.log, &path);
                let _ = self.store.remove_object(id);
                return;
            }
        };
        let key = self.keys.next("unknown", unix_now()).key;
        let sealed = ObjectWriter::reopen(&path, codec, prefix).and_then(|mut w| w.seal());
        let moved = sealed.and_then(|_| self.store.quarantine(id, &key));
        self.log.error(format_args!(
            "{} is an object file that the journal does not list, and the file that says how \
             it was opened is missing: its tag and key are unknown. {}",
            path.display(),
            match &moved {
                Ok(to) => format!(
                    "Its {} bytes of whole lines are kept in {}, sealed, with the key '{key}' \
                     beside it, and delivered from there",
                    prefix.raw,
                    to.display()
                ),
                Err(e) => format!("It stays where it is ({e})"),
            }
        ));
    }

    /// Seals the intact part of a damaged object, `listed` in the journal or not, and
    /// queues it. The object keeps its key and token when nothing was lost; otherwise it
    /// gets a new key, and a copy of the file as found is kept in quarantine.
    fn salvage(&mut self, opened: &Opened, reason: &str, listed: Option<&LiveObject>) {
        let id = opened.id;
        let path = self.store.object_path(id);
        // What an earlier delivery left at the destination (uploaded parts, a temporary
        // file) may hold bytes the salvaged object does not, under a key it may not keep.
        let progress = listed.and_then(|object| object.progress.clone());
        self.destination
            .abandon(&SealedObject::new(opened, path.clone(), 0, progress));
        let listed = listed.is_some();
        let codec = opened.codec;
        let format = codec.format();
        let found_len = std::fs::metadata(&path).map_or(0, |m| m.len());
        let prefix = check::intact_prefix(&path, codec, opened.raw_lines);
        let prefix = match prefix {
            Ok(Some(prefix)) if prefix.raw > 0 => prefix,
            // Opened just before a crash, with nothing written yet.
            Ok(Some(_)) if !listed && found_len <= format.header().len() as u64 => {
                log_removed_empty(self.log, &path);
                let _ = self.store.remove_object(id);
                return;
            }
            result => {
                let why = match result {
                    Err(error) => format!("it cannot be read: {error}"),
                    _ => "nothing in it is intact".to_owned(),
                };
                let moved = self.store.keep_damaged(id);
                self.log.error(format_args!(
                    "object '{}' ({}, {found_len} bytes) is damaged ({reason}) and {why}; {}",
                    opened.key,
                    path.display(),
                    where_kept(&moved, &path)
                ));
                if listed && moved.is_ok() {
                    self.records.push(Record::Quarantined { id });
                }
                return;
            }
        };
        // The bytes the object would have if nothing was lost: its intact part, then the
        // end that sealing writes.
        let seal_len = prefix.len + format.trailer(&prefix).len() as u64;
        // A listed object failed its check: its bytes are not what was committed, however
        // well they read.
        let whole = !listed && (found_len == prefix.len || found_len == seal_len);
        let damaged_copy = self
            .store
            .root()
            .join("quarantine")
            .join(format!("{id}.damaged"));
        if !whole && let Err(error) = std::fs::copy(&path, &damaged_copy) {
            self.log.error(format_args!(
                "object '{}' ({}) is damaged ({reason}) and a copy of it cannot be kept in {} \
                 ({error}); it stays as it is, and is looked at again at the next start",
                opened.key,
                path.display(),
                damaged_copy.display()
            ));
            return;
        }
        let sealed = ObjectWriter::reopen(&path, codec, prefix).and_then(|mut w| w.seal());
        let len = match sealed {
            Ok(len) => len,
            Err(error) => {
                self.log.error(format_args!(
                    "object '{}' ({}) could not be sealed after damage ({reason}): {error}; it \
                     is looked at again at the next start",
                    opened.key,
                    path.display()
                ));
                return;
            }
        };
        let mut salvaged = opened.clone();
        if let Some(index) = opened.index {
            // The store remembers this key when the journal does not.
            self.keys.note(&opened.series, index, opened.window_start);
        }
        if !whole {
            let key = self.keys.next(&opened.tag, opened.window_start);
            salvaged.key = key.key;
            salvaged.series = key.series;
            salvaged.index = Some(key.index);
            salvaged.token = uuid::Uuid::new_v4().simple().to_string();
        }
        if !whole && let Err(error) = self.store.write_opened(&salvaged) {
            self.log.warn(format_args!(
                "writing {} failed: {error}",
                self.store.opened_path(id).display()
            ));
        }
        self.records.extend([
            Record::Open(salvaged.clone()),
            Record::Commit { id, state: prefix },
            Record::Sealed { id, len },
        ]);
        if whole {
            self.log.warn(format_args!(
                "object '{}' ({}): {reason}. Its {} bytes of lines are intact and are delivered \
                 at its key",
                opened.key,
                path.display(),
                prefix.raw
            ));
        } else {
            self.log.error(format_args!(
                "object '{}' ({}, {found_len} bytes) is damaged: {reason}. Its first {} bytes \
                 are intact, holding {} bytes of whole lines, which are delivered as '{}'; what \
                 follows them is lost, and the file as found is kept in {}",
                opened.key,
                path.display(),
                prefix.len,
                prefix.raw,
                salvaged.key,
                damaged_copy.display()
            ));
        }
        self.finished
            .push(SealedObject::new(&salvaged, path, len, None));
    }
}

/// Where a damaged object's file went, for its error line.
fn where_kept(moved: &io::Result<std::path::PathBuf>, path: &Path) -> String {
    match moved {
        Ok(to) => format!("it is kept in {} for inspection", to.display()),
        Err(e) => format!("it stays in {} ({e})", path.display()),
    }
}

fn log_removed_empty(log: &Logger, path: &Path) {
    log.debug(format_args!(
        "removing {}, an object created just before a crash that holds no record",
        path.display()
    ));
}

/// A checked sealed object's file: bytes past the sealed length (never expected) are cut.
fn cut_to(path: &Path, len: u64) -> io::Result<u64> {
    let file = crate::store::private::options().write(true).open(path)?;
    if file.metadata()?.len() > len {
        file.set_len(len)?;
        file.sync_all()?;
    }
    Ok(len)
}
