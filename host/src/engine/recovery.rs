//! Starting an engine: reading the journal, finishing what a previous run left open, and
//! queueing everything not yet delivered.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context as _;

use super::Engine;
use super::delivery::{Delivery, DeliveryContext};
use crate::config::{Compression, JsonLines, ObjectConfig};
use crate::destination::{Destination, SealedObject};
use crate::log::Logger;
use crate::object::deflate::Deflater;
use crate::object::writer::{Committed, ObjectWriter};
use crate::store::journal::{Journal, LiveObject, Record, fold, unfold};
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
    ) -> anyhow::Result<Engine> {
        let store = Store::open(&config.store_dir, log.instance())
            .with_context(|| format!("opening store_dir {}", config.store_dir.display()))?;
        let agent_id = store.agent_id().context("reading the agent id")?;
        let journal_path = store.journal_path();
        let (mut journal, records, torn) = Journal::open(&journal_path)
            .with_context(|| format!("reading the journal {}", journal_path.display()))?;
        if let Some(torn) = torn {
            log.error(format_args!(
                "the journal {} is damaged after byte {}: {} bytes there are a write torn by a \
                 crash or damage to the disk. The records before are kept; the damaged bytes \
                 are saved in {}",
                journal_path.display(),
                torn.offset,
                torn.bytes,
                torn.saved_to.display()
            ));
        }
        let state = fold(records);
        let mut finished = Vec::new();
        let mut records = Vec::new();
        for object in state.objects.values() {
            if let Some(sealed) = finish(&store, object, &*destination, &log, &mut records) {
                finished.push(sealed);
            }
        }
        remove_orphans(&store, &state.objects, &log);
        // One rename puts what was found and what was done in place of the old journal.
        let recovered = fold(unfold(&state).into_iter().chain(records));
        journal
            .compact(&recovered)
            .with_context(|| format!("writing the journal {}", journal_path.display()))?;
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
            log: log.clone(),
            retry_limit: config.upload_retry_limit,
            concurrency: config.upload_concurrency,
        })
        .context("starting the delivery thread")?;
        for object in finished {
            delivery.deliver(object);
        }
        let deflater = match config.compression {
            Compression::Gzip { level } => Some(Deflater::new(level)),
            Compression::None => None,
        };
        Ok(Engine {
            deflater,
            last_write: Instant::now(),
            config,
            json,
            log,
            journal,
            delivery,
            hostname: store::hostname(),
            agent_id,
            next_index: state.next_index,
            open: HashMap::new(),
            closing: Vec::new(),
            accepted_before_crash: state.last_accepted,
            started: Instant::now(),
            at_limit: false,
            store,
        })
    }
}

/// Seals an object a previous run left open (or checks one it sealed) and returns it,
/// ready to deliver; records what was done in `records`.
fn finish(
    store: &Store,
    object: &LiveObject,
    destination: &dyn Destination,
    log: &Logger,
    records: &mut Vec<Record>,
) -> Option<SealedObject> {
    let opened = &object.opened;
    let id = opened.id;
    let path = store.object_path(id);
    let compression = if opened.gzip {
        // The level does not matter: nothing more is compressed.
        Compression::Gzip { level: 6 }
    } else {
        Compression::None
    };
    let sealed = match object.sealed {
        Some(len) => check_sealed(&path, len),
        None => {
            let committed = object
                .committed
                .unwrap_or_else(|| Committed::empty(compression));
            if committed.raw == 0 {
                // Opened, but nothing of it was ever committed.
                let _ = std::fs::remove_file(&path);
                records.push(Record::Delivered { id });
                return None;
            }
            ObjectWriter::reopen(&path, compression, committed)
                .and_then(|mut writer| writer.seal())
                .inspect(|&len| records.push(Record::Sealed { id, len }))
        }
    };
    match sealed {
        Ok(len) => Some(SealedObject {
            id,
            key: opened.key.clone(),
            path,
            len,
            progress: object.progress.clone(),
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            if destination.exists(&opened.key).unwrap_or(false) {
                records.push(Record::Delivered { id });
            } else {
                log.error(format_args!(
                    "object '{}' is in the journal but its file {} is gone and it is not at \
                     the destination; its records are lost (the file was removed outside \
                     rustsink)",
                    opened.key,
                    path.display()
                ));
                records.push(Record::Quarantined { id });
            }
            None
        }
        Err(error) => {
            let moved = store.quarantine(id, &opened.key);
            log.error(format_args!(
                "object '{}' cannot be finished ({error}); {}",
                opened.key,
                match &moved {
                    Ok(to) => format!("it is kept in {} for inspection", to.display()),
                    Err(e) => format!("it stays in {} ({e})", path.display()),
                }
            ));
            if moved.is_ok() {
                records.push(Record::Quarantined { id });
            }
            None
        }
    }
}

/// Checks a sealed object's file: bytes past the sealed length (never expected) are cut.
fn check_sealed(path: &std::path::Path, len: u64) -> io::Result<u64> {
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    let actual = file.metadata()?.len();
    if actual < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the file holds {actual} bytes but {len} were sealed"),
        ));
    }
    if actual > len {
        file.set_len(len)?;
        file.sync_all()?;
    }
    Ok(len)
}

/// Removes object files the journal does not know: their Open record never became durable,
/// so nothing in them was acknowledged.
fn remove_orphans(
    store: &Store,
    known: &std::collections::BTreeMap<u64, LiveObject>,
    log: &Logger,
) {
    for id in store.object_files().unwrap_or_default() {
        if !known.contains_key(&id) {
            log.debug(format_args!(
                "removing {}, an object that was never committed",
                store.object_path(id).display()
            ));
            let _ = std::fs::remove_file(store.object_path(id));
        }
    }
}
