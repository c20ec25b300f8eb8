//! The journal: an append-only file of CRC-framed records that says which objects exist,
//! how much of each is committed, and which are sealed, delivered or quarantined.
//!
//! Layout: the 8 bytes `RSJOURNL`, a little-endian u32 format version, then frames of
//! `u32 length | u32 CRC-32 of the payload | payload (one JSON record)`.
//!
//! A frame that is cut short or fails its CRC is damage. When intact frames follow it (a
//! flipped byte, a bad sector), the bytes up to the next intact frame are skipped and the
//! records after them are read: they were synced and relied on. When nothing intact
//! follows, it is a write torn by a crash. Either way [`Journal::open`] saves the damaged
//! bytes to `journal.torn-<unix time>` and reports them; nothing the journal describes is
//! deleted because of it.
//!
//! The journal is compacted by folding its records into the live state ([`fold`]) and
//! writing that state as a new journal, which replaces the old one with a rename.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::destination::UploadProgress;
use crate::object::ObjectFormat;
use crate::object::codec::Codec;
use crate::object::writer::Committed;

const MAGIC: &[u8; 8] = b"RSJOURNL";
/// The format version this build writes.
pub const VERSION: u32 = 3;
/// The versions this build reads: version 1 has no key series, no tokens and no clean-stop
/// record, which its records simply lack; versions 1 and 2 say whether an object is gzip
/// where version 3 names its codec.
const READS: std::ops::RangeInclusive<u32> = 1..=VERSION;
const HEADER_LEN: u64 = 12;
/// A frame longer than this is damage, not a record.
const MAX_FRAME: u32 = 16 << 20;

/// A chunk that was accepted, to recognise it if Fluent Bit sends it again after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChunkId {
    /// The tag.
    pub tag: String,
    /// The chunk's length.
    pub len: u64,
    /// CRC-32 of the chunk.
    pub crc: u32,
}

impl ChunkId {
    /// The id of a chunk.
    pub fn of(tag: &str, chunk: &[u8]) -> ChunkId {
        ChunkId {
            tag: tag.to_owned(),
            len: chunk.len() as u64,
            crc: crc32fast::hash(chunk),
        }
    }
}

/// What an object was opened as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opened {
    /// The object's id, also its `$INDEX`.
    pub id: u64,
    /// The key, fixed at open.
    pub key: String,
    /// The records' tag.
    pub tag: String,
    /// The window start, in Unix seconds (the open time when windows are off).
    pub window_start: i64,
    /// When the object opened, in Unix seconds.
    pub opened_at: i64,
    /// How the file is stored. (Versions 1 and 2 wrote `"gzip": true` or `false`.)
    #[serde(alias = "gzip", deserialize_with = "codec_or_gzip_flag")]
    pub codec: Codec,
    /// Whether its lines are values of `log_key` fields, which need not be JSON.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raw_lines: bool,
    /// What it is delivered as: Parquet objects are written from their lines on delivery.
    #[serde(default, skip_serializing_if = "ObjectFormat::is_json_lines")]
    pub format: ObjectFormat,
    /// The key with `$INDEX` and `$UUID` left as they are: keys of one series differ only
    /// in those, and `$INDEX` counts within its series.
    #[serde(default)]
    pub series: String,
    /// The `$INDEX` in the key (version 1: the id).
    #[serde(default)]
    pub index: Option<u64>,
    /// Drawn at open; a destination stores it with the object, so that an object found at
    /// its key is told apart from another one (a delivery before a crash, or someone else's).
    #[serde(default)]
    pub token: String,
}

/// An object's codec as version 3 names it, or as versions 1 and 2 flag gzip.
fn codec_or_gzip_flag<'de, D: serde::Deserializer<'de>>(from: D) -> Result<Codec, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Named(Codec),
        GzipFlag(bool),
    }
    Ok(match Written::deserialize(from)? {
        Written::Named(codec) => codec,
        Written::GzipFlag(true) => Codec::Gzip,
        Written::GzipFlag(false) => Codec::None,
    })
}

/// One journal record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Record {
    /// An object was created.
    Open(Opened),
    /// An object's data is durable up to this state.
    Commit {
        /// The object.
        id: u64,
        /// The committed state.
        #[serde(flatten)]
        state: Committed,
    },
    /// The chunks of the last group commit.
    Accepted {
        /// Their ids.
        chunks: Vec<ChunkId>,
    },
    /// An object is complete and its file has this length.
    Sealed {
        /// The object.
        id: u64,
        /// The final length.
        len: u64,
    },
    /// How far the upload of a sealed object has come (None: it starts over).
    Progress {
        /// The object.
        id: u64,
        /// The progress.
        progress: Option<UploadProgress>,
    },
    /// An object is at its destination and its file is gone.
    Delivered {
        /// The object.
        id: u64,
    },
    /// An object's file moved to quarantine.
    Quarantined {
        /// The object.
        id: u64,
    },
    /// The next `$INDEX`, written by compaction.
    NextIndex {
        /// The index.
        next: u64,
    },
    /// The instance stopped cleanly: every chunk it accepted was answered, so none comes
    /// again as a replay.
    Stopped,
    /// An object's key was taken at the destination by another object: it goes to this key.
    Rekeyed {
        /// The object.
        id: u64,
        /// The new key.
        key: String,
        /// Its `$INDEX`.
        index: u64,
    },
    /// The next `$INDEX` of a key series, written by compaction.
    Series {
        /// The series (see [`Opened::series`]).
        series: String,
        /// Its next index.
        next: u64,
        /// The window start of its objects, to forget old series.
        window_start: i64,
    },
}

/// An object the journal knows and that is not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveObject {
    /// How it was opened.
    pub opened: Opened,
    /// The last commit (the header only, when none).
    pub committed: Option<Committed>,
    /// The final length, once sealed.
    pub sealed: Option<u64>,
    /// How far its upload in parts has come.
    pub progress: Option<UploadProgress>,
}

/// The live state a journal describes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Objects not yet delivered or quarantined, by id.
    pub objects: BTreeMap<u64, LiveObject>,
    /// The next free `$INDEX`.
    pub next_index: u64,
    /// The chunks of the last group commit, unless the instance stopped cleanly after it.
    pub last_accepted: Vec<ChunkId>,
    /// The next `$INDEX` of each key series, and the window start of its objects.
    pub series: BTreeMap<String, SeriesState>,
}

/// Where a key series stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesState {
    /// The next free `$INDEX`.
    pub next: u64,
    /// The window start of its objects.
    pub window_start: i64,
}

impl State {
    fn note_series(&mut self, series: &str, index: u64, window_start: i64) {
        if series.is_empty() {
            return;
        }
        let entry = self.series.entry(series.to_owned()).or_insert(SeriesState {
            next: 0,
            window_start,
        });
        entry.next = entry.next.max(index.saturating_add(1));
    }

    /// Forgets the series whose windows started before `before`, so that the journal does
    /// not grow with every window ever written. A late object of such a window starts its
    /// series again, and the destination's check moves it past the keys already taken.
    /// The series of a live object is kept: no new object may take the key of one that
    /// waits for its delivery, which would then race it to the destination.
    pub fn forget_series_before(&mut self, before: i64) {
        let live: HashSet<&str> = (self.objects.values())
            .map(|object| object.opened.series.as_str())
            .collect();
        self.series
            .retain(|series, state| state.window_start >= before || live.contains(series.as_str()));
    }
}

/// Folds records into the live state.
pub fn fold(records: impl IntoIterator<Item = Record>) -> State {
    let mut state = State::default();
    for record in records {
        match record {
            Record::Open(opened) => {
                state.next_index = state.next_index.max(opened.id + 1);
                let index = opened.index.unwrap_or(opened.id);
                state.note_series(&opened.series, index, opened.window_start);
                state.objects.insert(
                    opened.id,
                    LiveObject {
                        opened,
                        committed: None,
                        sealed: None,
                        progress: None,
                    },
                );
            }
            Record::Commit { id, state: commit } => {
                if let Some(object) = state.objects.get_mut(&id) {
                    object.committed = Some(commit);
                }
            }
            Record::Accepted { chunks } => state.last_accepted = chunks,
            Record::Sealed { id, len } => {
                if let Some(object) = state.objects.get_mut(&id) {
                    object.sealed = Some(len);
                }
            }
            Record::Progress { id, progress } => {
                if let Some(object) = state.objects.get_mut(&id) {
                    object.progress = progress;
                }
            }
            Record::Delivered { id } | Record::Quarantined { id } => {
                state.objects.remove(&id);
            }
            Record::NextIndex { next } => state.next_index = state.next_index.max(next),
            Record::Stopped => state.last_accepted.clear(),
            Record::Rekeyed { id, key, index } => {
                if let Some(object) = state.objects.get_mut(&id) {
                    object.opened.key = key;
                    object.opened.index = Some(index);
                    let (series, window_start) =
                        (object.opened.series.clone(), object.opened.window_start);
                    state.note_series(&series, index, window_start);
                }
            }
            Record::Series {
                series,
                next,
                window_start,
            } => {
                let entry = state
                    .series
                    .entry(series)
                    .or_insert(SeriesState { next, window_start });
                entry.next = entry.next.max(next);
            }
        }
    }
    state
}

/// The records that recreate `state`.
pub fn unfold(state: &State) -> Vec<Record> {
    let mut records = vec![Record::NextIndex {
        next: state.next_index,
    }];
    for (series, at) in &state.series {
        records.push(Record::Series {
            series: series.clone(),
            next: at.next,
            window_start: at.window_start,
        });
    }
    for object in state.objects.values() {
        records.push(Record::Open(object.opened.clone()));
        if let Some(committed) = object.committed {
            records.push(Record::Commit {
                id: object.opened.id,
                state: committed,
            });
        }
        if let Some(len) = object.sealed {
            records.push(Record::Sealed {
                id: object.opened.id,
                len,
            });
        }
        if object.progress.is_some() {
            records.push(Record::Progress {
                id: object.opened.id,
                progress: object.progress.clone(),
            });
        }
    }
    if !state.last_accepted.is_empty() {
        records.push(Record::Accepted {
            chunks: state.last_accepted.clone(),
        });
    }
    // Last, a record whose loss costs nothing: a cut end of a compacted journal takes it
    // rather than an object's commit.
    records.push(Record::NextIndex {
        next: state.next_index,
    });
    records
}

/// Damage found in the journal at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// The file is missing or shorter than its header, in a store folder that was in use:
    /// it was deleted or cut. Every record is lost.
    Lost {
        /// Its length (0 when missing).
        len: u64,
    },
    /// Bytes that are not intact frames.
    Frames {
        /// Each damaged range: where it starts and how many bytes it holds. A last range
        /// that reaches the end is a torn write or damage at the end; the records between
        /// ranges are read.
        ranges: Vec<(u64, u64)>,
        /// The length of the file as found.
        len: u64,
        /// Where the damaged bytes were saved, one range after another.
        saved_to: PathBuf,
    },
}

impl Damage {
    /// Whether intact records may have been lost: anything but a torn last write.
    pub fn lost_records(&self) -> bool {
        match self {
            Damage::Lost { .. } => true,
            Damage::Frames { ranges, len, .. } => {
                ranges.len() > 1 || ranges.iter().any(|(start, bytes)| start + bytes < *len)
            }
        }
    }
}

/// The journal file, open for appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    len: u64,
}

impl Journal {
    /// Opens (or creates) the journal at `path` and reads its records. `in_use` says
    /// whether the store folder held data before, so that a missing journal is damage and
    /// not a first start. Damaged bytes are saved next to the journal and reported; the
    /// journal is rewritten with the intact records.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or written, or it is not a journal of a version this
    /// build reads.
    pub fn open(path: &Path, in_use: bool) -> io::Result<(Journal, Vec<Record>, Option<Damage>)> {
        let mut bytes = Vec::new();
        match super::private::options().read(true).open(path) {
            Ok(mut file) => {
                file.read_to_end(&mut bytes)?;
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        if bytes.len() < HEADER_LEN as usize {
            // New, or torn while its header was written (nothing was committed then), or
            // deleted or cut in a folder in use.
            let damage = in_use.then_some(Damage::Lost {
                len: bytes.len() as u64,
            });
            let journal = Journal::create(path, &[])?;
            return Ok((journal, Vec::new(), damage));
        }
        if &bytes[..8] != MAGIC {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is not a rustsink journal (its first bytes are not {:?}); move it away \
                     to start the folder afresh",
                    path.display(),
                    std::str::from_utf8(MAGIC).unwrap_or_default()
                ),
            ));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if !READS.contains(&version) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} has journal format version {version}; this rustsink reads versions \
                     {} to {}. Deliver it with the rustsink release that wrote it, or move \
                     the folder away",
                    path.display(),
                    READS.start(),
                    READS.end()
                ),
            ));
        }
        let (records, ranges) = read_frames(&bytes);
        if ranges.is_empty() && version == VERSION {
            // Append mode: every write lands at the end.
            let file = super::private::options().append(true).open(path)?;
            let journal = Journal {
                path: path.to_owned(),
                file,
                len: bytes.len() as u64,
            };
            return Ok((journal, records, None));
        }
        let mut damage = None;
        if !ranges.is_empty() {
            let saved_to = path.with_extension(format!("torn-{}", chrono::Utc::now().timestamp()));
            let mut saved = Vec::new();
            for &(start, len) in &ranges {
                saved.extend_from_slice(&bytes[start as usize..(start + len) as usize]);
            }
            super::private::write(&saved_to, &saved)?;
            damage = Some(Damage::Frames {
                ranges,
                len: bytes.len() as u64,
                saved_to,
            });
        }
        // The intact records, in this build's version, in place of the old file.
        let journal = Journal::create(path, &records)?;
        Ok((journal, records, damage))
    }

    /// Writes a new journal holding `records` and puts it in place of the file at `path`
    /// with a rename, so that a crash leaves either the old or the new one.
    ///
    /// # Errors
    ///
    /// When a file cannot be written, synced or renamed.
    pub fn create(path: &Path, records: &[Record]) -> io::Result<Journal> {
        let fresh = path.with_extension("new");
        let mut bytes = Vec::from(*MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        for record in records {
            frame(&mut bytes, record);
        }
        let mut file = super::private::options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&fresh)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&fresh, path)?;
        sync_parent(path)?;
        let file = super::private::options().append(true).open(path)?;
        Ok(Journal {
            path: path.to_owned(),
            file,
            len: bytes.len() as u64,
        })
    }

    /// Appends records with one write and syncs them. On failure the journal is cut back,
    /// so it holds all of them or none.
    ///
    /// # Errors
    ///
    /// When the write or the sync fails.
    pub fn append(&mut self, records: &[Record]) -> io::Result<()> {
        let mut bytes = Vec::new();
        for record in records {
            frame(&mut bytes, record);
        }
        let written = self
            .file
            .write_all(&bytes)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(error) => {
                // Best effort: a torn frame left here is found and cut at the next open.
                let _ = self.file.set_len(self.len);
                Err(error)
            }
        }
    }

    /// Replaces the journal with the records of `state`.
    ///
    /// # Errors
    ///
    /// When the new journal cannot be written; the old one is kept then.
    pub fn compact(&mut self, state: &State) -> io::Result<()> {
        *self = Journal::create(&self.path, &unfold(state))?;
        Ok(())
    }

    /// Once the journal has grown past `limit` bytes, replaces it with the state its
    /// records fold into, forgetting the key series of windows before `series_from`.
    /// Returns whether it did.
    ///
    /// # Errors
    ///
    /// When it cannot be read or the new journal cannot be written; the old one is kept.
    pub fn compact_past(&mut self, limit: u64, series_from: i64) -> io::Result<bool> {
        if self.len < limit {
            return Ok(false);
        }
        let mut state = fold(self.records()?);
        state.forget_series_before(series_from);
        self.compact(&state)?;
        Ok(true)
    }

    /// Reads every record back from the file.
    ///
    /// # Errors
    ///
    /// When the file cannot be read.
    pub fn records(&self) -> io::Result<Vec<Record>> {
        let bytes = fs::read(&self.path)?;
        Ok(read_frames(&bytes).0)
    }

    /// The file's length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the journal holds no record.
    pub fn is_empty(&self) -> bool {
        self.len <= HEADER_LEN
    }
}

fn frame(out: &mut Vec<u8>, record: &Record) {
    let payload = serde_json::to_vec(record).expect("records serialize");
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// The records of a whole journal file, and the ranges of bytes (start, length) that are
/// not intact frames.
fn read_frames(bytes: &[u8]) -> (Vec<Record>, Vec<(u64, u64)>) {
    let mut records = Vec::new();
    let mut damaged = Vec::new();
    let mut bad_from = None;
    let mut at = HEADER_LEN as usize;
    while at < bytes.len() {
        match frame_at(bytes, at) {
            Some((record, next)) => {
                if let Some(start) = bad_from.take() {
                    damaged.push((start as u64, (at - start) as u64));
                }
                records.push(record);
                at = next;
            }
            None => {
                // Look for the next intact frame one byte further on.
                bad_from.get_or_insert(at);
                at += 1;
            }
        }
    }
    if let Some(start) = bad_from {
        damaged.push((start as u64, (bytes.len() - start) as u64));
    }
    (records, damaged)
}

/// The record of an intact frame at `at`, and where the next frame starts.
fn frame_at(bytes: &[u8], at: usize) -> Option<(Record, usize)> {
    let head = bytes.get(at..at + 8)?;
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
    if len > MAX_FRAME {
        return None;
    }
    let payload = bytes.get(at + 8..at + 8 + len as usize)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let record = serde_json::from_slice(payload).ok()?;
    Some((record, at + 8 + len as usize))
}

/// Syncs the directory that holds `path`, so a rename or a new file in it is durable.
///
/// # Errors
///
/// When the directory cannot be opened or synced.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => File::open(parent)?.sync_all(),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opened(id: u64) -> Record {
        Record::Open(Opened {
            id,
            key: format!("k/{id}"),
            tag: "app".into(),
            window_start: 3600,
            opened_at: 3700,
            codec: Codec::Gzip,
            raw_lines: false,
            format: ObjectFormat::JsonLines,
            series: "k/$INDEX".into(),
            index: Some(id),
            token: format!("token-{id}"),
        })
    }

    fn commit(id: u64, len: u64) -> Record {
        Record::Commit {
            id,
            state: Committed {
                len,
                crc: 7,
                raw: len * 3,
            },
        }
    }

    #[test]
    fn records_survive_reopen_and_fold_to_the_live_objects() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (mut journal, records, torn) = Journal::open(&path, false).unwrap();
        assert!(records.is_empty() && torn.is_none() && journal.is_empty());
        journal.append(&[opened(0), commit(0, 100)]).unwrap();
        journal
            .append(&[opened(1), commit(1, 50), commit(0, 200)])
            .unwrap();
        journal
            .append(&[Record::Sealed { id: 0, len: 210 }])
            .unwrap();
        journal.append(&[Record::Delivered { id: 0 }]).unwrap();
        drop(journal);
        let (mut journal, records, torn) = Journal::open(&path, false).unwrap();
        assert_eq!(torn, None);
        assert_eq!(records.len(), 7);
        // Appends after a reopen go to the end.
        journal
            .append(&[Record::Sealed { id: 1, len: 60 }])
            .unwrap();
        journal.append(&[Record::Delivered { id: 1 }]).unwrap();
        let state = fold(journal.records().unwrap());
        assert!(state.objects.is_empty());
        assert_eq!(state.next_index, 2);
        let (journal, records, _) = Journal::open(&path, false).unwrap();
        let records = records[..7].to_vec();
        let state = fold(records);
        assert_eq!(state.next_index, 2);
        assert_eq!(state.objects.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert_eq!(state.objects[&1].committed.unwrap().len, 50);
        assert_eq!(journal.records().unwrap().len(), 9);
    }

    #[test]
    fn compaction_keeps_the_state_and_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (mut journal, _, _) = Journal::open(&path, false).unwrap();
        journal
            .append(&[opened(4), commit(4, 10), Record::Delivered { id: 4 }])
            .unwrap();
        journal.append(&[opened(5), commit(5, 10)]).unwrap();
        let progress = UploadProgress {
            upload_id: "upload-5".into(),
            part_size: 5 << 20,
            parts: vec![crate::destination::PartDone {
                number: 1,
                etag: "\"etag-1\"".into(),
                checksum: None,
            }],
        };
        journal
            .append(&[
                Record::Sealed { id: 5, len: 10 },
                Record::Progress {
                    id: 5,
                    progress: Some(progress.clone()),
                },
            ])
            .unwrap();
        let state = fold(journal.records().unwrap());
        assert_eq!(state.objects[&5].progress, Some(progress));
        journal.compact(&state).unwrap();
        drop(journal);
        let (mut journal, records, _) = Journal::open(&path, false).unwrap();
        let again = fold(records);
        assert_eq!(again, state);
        assert_eq!(again.next_index, 6);
        // An aborted upload starts over: its progress is forgotten.
        journal
            .append(&[Record::Progress {
                id: 5,
                progress: None,
            }])
            .unwrap();
        assert_eq!(fold(journal.records().unwrap()).objects[&5].progress, None);
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_cut_saved_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (mut journal, _, _) = Journal::open(&path, false).unwrap();
        journal.append(&[opened(0)]).unwrap();
        journal.append(&[commit(0, 100)]).unwrap();
        let intact = journal.len();
        journal.append(&[commit(0, 300)]).unwrap();
        drop(journal);
        // Flip a byte in the last frame's payload, then add half a frame.
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x55;
        bytes.extend_from_slice(&[9, 0, 0]);
        fs::write(&path, &bytes).unwrap();
        let (journal, records, damage) = Journal::open(&path, true).unwrap();
        let Some(Damage::Frames {
            ranges, saved_to, ..
        }) = damage.clone()
        else {
            panic!("the damage is reported: {damage:?}");
        };
        assert_eq!(ranges, [(intact, bytes.len() as u64 - intact)]);
        assert!(!damage.unwrap().lost_records(), "a torn last write");
        assert_eq!(fs::read(&saved_to).unwrap(), &bytes[intact as usize..]);
        assert_eq!(records, vec![opened(0), commit(0, 100)]);
        assert_eq!(journal.len(), intact);
        assert_eq!(fs::metadata(&path).unwrap().len(), intact);
    }

    #[test]
    fn damage_in_the_middle_skips_only_the_damaged_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (mut journal, _, _) = Journal::open(&path, false).unwrap();
        journal.append(&[opened(0)]).unwrap();
        let start = journal.len();
        journal.append(&[commit(0, 100)]).unwrap();
        let end = journal.len();
        journal.append(&[opened(1), commit(1, 7)]).unwrap();
        drop(journal);
        for damage in ["flip", "length"] {
            let mut bytes = fs::read(&path).unwrap();
            match damage {
                "flip" => bytes[start as usize + 12] ^= 0x01,
                _ => bytes[start as usize] = 0xff,
            }
            let copy = dir.path().join(format!("journal-{damage}"));
            fs::write(&copy, &bytes).unwrap();
            let (_, records, found) = Journal::open(&copy, true).unwrap();
            assert_eq!(records, [opened(0), opened(1), commit(1, 7)], "{damage}");
            let found = found.unwrap();
            assert!(found.lost_records(), "{damage}");
            let Damage::Frames { ranges, .. } = found else {
                panic!("{damage}: {found:?}")
            };
            assert_eq!(ranges, [(start, end - start)], "{damage}");
            // The rewritten journal holds the intact records, and no damage.
            let (_, again, none) = Journal::open(&copy, true).unwrap();
            assert_eq!(again, records);
            assert_eq!(none, None);
        }
    }

    #[test]
    fn a_missing_or_cut_journal_of_a_folder_in_use_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        assert_eq!(Journal::open(&path, false).unwrap().2, None);
        fs::remove_file(&path).unwrap();
        assert_eq!(
            Journal::open(&path, true).unwrap().2,
            Some(Damage::Lost { len: 0 })
        );
        fs::write(&path, b"RSJOU").unwrap();
        assert_eq!(
            Journal::open(&path, true).unwrap().2,
            Some(Damage::Lost { len: 5 })
        );
    }

    #[test]
    fn a_version_1_journal_is_read_and_rewritten_as_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        // What the first release wrote: no series, index or token in an Open record.
        let mut bytes = Vec::from(*MAGIC);
        bytes.extend_from_slice(&1u32.to_le_bytes());
        for payload in [
            r#"{"op":"next_index","next":3}"#,
            r#"{"op":"open","id":3,"key":"k/3","tag":"app","window_start":3600,"opened_at":3700,"gzip":true}"#,
            r#"{"op":"commit","id":3,"len":40,"crc":9,"raw":120}"#,
            r#"{"op":"accepted","chunks":[{"tag":"app","len":10,"crc":5}]}"#,
        ] {
            bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&crc32fast::hash(payload.as_bytes()).to_le_bytes());
            bytes.extend_from_slice(payload.as_bytes());
        }
        fs::write(&path, &bytes).unwrap();
        let (_, records, damage) = Journal::open(&path, true).unwrap();
        assert_eq!(damage, None);
        let state = fold(records);
        assert_eq!(state.next_index, 4);
        let object = &state.objects[&3];
        assert_eq!(object.opened.key, "k/3");
        assert_eq!(object.opened.index, None);
        assert_eq!(object.opened.codec, Codec::Gzip);
        assert_eq!(object.committed.unwrap().raw, 120);
        assert_eq!(state.last_accepted.len(), 1);
        let rewritten = fs::read(&path).unwrap();
        assert_eq!(&rewritten[8..12], &VERSION.to_le_bytes());
    }

    #[test]
    fn rekeying_and_series_survive_compaction_and_old_series_are_forgotten() {
        let mut state = fold([
            opened(0),
            Record::Rekeyed {
                id: 0,
                key: "k/5".into(),
                index: 5,
            },
        ]);
        assert_eq!(state.objects[&0].opened.key, "k/5");
        assert_eq!(state.series["k/$INDEX"].next, 6);
        let again = fold(unfold(&state));
        assert_eq!(again, state);
        // Kept while an object of the series is live, whose key no new object may take.
        state.forget_series_before(3601);
        assert_eq!(state.series["k/$INDEX"].next, 6);
        let mut state = fold(
            unfold(&state)
                .into_iter()
                .chain([Record::Delivered { id: 0 }]),
        );
        state.forget_series_before(3601);
        assert!(state.series.is_empty());
    }

    #[test]
    fn another_version_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut bytes = Vec::from(*MAGIC);
        bytes.extend_from_slice(&9u32.to_le_bytes());
        fs::write(&path, bytes).unwrap();
        let error = Journal::open(&path, true).unwrap_err().to_string();
        assert!(
            error.contains("version 9") && error.contains("reads versions 1 to 3"),
            "{error}"
        );
    }
}
