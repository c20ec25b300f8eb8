//! The journal: an append-only file of CRC-framed records that says which objects exist,
//! how much of each is committed, and which are sealed, delivered or quarantined.
//!
//! Layout: the 8 bytes `RSJOURNL`, a little-endian u32 format version, then frames of
//! `u32 length | u32 CRC-32 of the payload | payload (one JSON record)`. A frame that is
//! cut short or fails its CRC ends the journal: everything before it is intact (each
//! append is synced before anyone relies on it), and what follows is a torn write, which
//! [`Journal::open`] moves aside to `journal.torn-<unix time>` and reports.
//!
//! The journal is compacted by folding its records into the live state ([`fold`]) and
//! writing that state as a new journal, which replaces the old one with a rename.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::destination::UploadProgress;
use crate::object::writer::Committed;

const MAGIC: &[u8; 8] = b"RSJOURNL";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
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
    /// Whether the file is gzip.
    pub gzip: bool,
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
}

/// Folds records into the live state.
pub fn fold(records: impl IntoIterator<Item = Record>) -> State {
    let mut state = State::default();
    for record in records {
        match record {
            Record::Open(opened) => {
                state.next_index = state.next_index.max(opened.id + 1);
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
        }
    }
    state
}

/// The records that recreate `state`.
pub fn unfold(state: &State) -> Vec<Record> {
    let mut records = vec![Record::NextIndex {
        next: state.next_index,
    }];
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
    records
}

/// A damaged end of the journal, found at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Where the intact records end.
    pub offset: u64,
    /// How many bytes followed.
    pub bytes: u64,
    /// Where those bytes were moved.
    pub saved_to: PathBuf,
}

/// The journal file, open for appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    len: u64,
}

impl Journal {
    /// Opens (or creates) the journal at `path` and reads its records. A torn tail is cut
    /// off, saved next to the journal and returned.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or written, or it is not a journal of a version this
    /// build reads.
    pub fn open(path: &Path) -> io::Result<(Journal, Vec<Record>, Option<TornTail>)> {
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut file) => {
                file.read_to_end(&mut bytes)?;
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        if bytes.len() < HEADER_LEN as usize {
            // New, or torn while its header was written: nothing was ever committed.
            let journal = Journal::create(path, &[])?;
            return Ok((journal, Vec::new(), None));
        }
        if &bytes[..8] != MAGIC {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a rustsink journal", path.display()),
            ));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} has journal format version {version}; this rustsink reads version \
                     {VERSION}. Deliver it with the rustsink release that wrote it, or move \
                     the folder away",
                    path.display()
                ),
            ));
        }
        let (records, intact) = read_frames(&bytes);
        let mut torn = None;
        if intact < bytes.len() as u64 {
            let saved_to = path.with_extension(format!("torn-{}", chrono::Utc::now().timestamp()));
            fs::write(&saved_to, &bytes[intact as usize..])?;
            torn = Some(TornTail {
                offset: intact,
                bytes: bytes.len() as u64 - intact,
                saved_to,
            });
        }
        // Append mode: every write lands at the end, whatever was cut before it.
        let file = OpenOptions::new().append(true).open(path)?;
        file.set_len(intact)?;
        file.sync_all()?;
        let journal = Journal {
            path: path.to_owned(),
            file,
            len: intact,
        };
        Ok((journal, records, torn))
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
        let mut file = File::create(&fresh)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&fresh, path)?;
        sync_parent(path)?;
        let file = OpenOptions::new().append(true).open(path)?;
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

/// The records of a whole journal file, and the length of its intact part.
fn read_frames(bytes: &[u8]) -> (Vec<Record>, u64) {
    let mut records = Vec::new();
    let mut at = HEADER_LEN as usize;
    while let Some(head) = bytes.get(at..at + 8) {
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        let Some(payload) = bytes.get(at + 8..at + 8 + len as usize) else {
            break;
        };
        if len > MAX_FRAME || crc32fast::hash(payload) != crc {
            break;
        }
        let Ok(record) = serde_json::from_slice(payload) else {
            break;
        };
        records.push(record);
        at += 8 + len as usize;
    }
    (records, at.min(bytes.len()) as u64)
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
            gzip: true,
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
        let (mut journal, records, torn) = Journal::open(&path).unwrap();
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
        let (mut journal, records, torn) = Journal::open(&path).unwrap();
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
        let (journal, records, _) = Journal::open(&path).unwrap();
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
        let (mut journal, _, _) = Journal::open(&path).unwrap();
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
        let (mut journal, records, _) = Journal::open(&path).unwrap();
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
        let (mut journal, _, _) = Journal::open(&path).unwrap();
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
        let (journal, records, torn) = Journal::open(&path).unwrap();
        let torn = torn.expect("the damage is reported");
        assert_eq!(torn.offset, intact);
        assert_eq!(torn.bytes, bytes.len() as u64 - intact);
        assert_eq!(fs::read(&torn.saved_to).unwrap(), &bytes[intact as usize..]);
        assert_eq!(records, vec![opened(0), commit(0, 100)]);
        assert_eq!(journal.len(), intact);
        assert_eq!(fs::metadata(&path).unwrap().len(), intact);
    }

    #[test]
    fn another_version_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut bytes = Vec::from(*MAGIC);
        bytes.extend_from_slice(&2u32.to_le_bytes());
        fs::write(&path, bytes).unwrap();
        let error = Journal::open(&path).unwrap_err().to_string();
        assert!(
            error.contains("version 2") && error.contains("reads version 1"),
            "{error}"
        );
    }
}
