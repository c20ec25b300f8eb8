//! `store_dir`: what an instance keeps on disk so that nothing it accepted is lost.
//!
//! Each instance has its own folder, `<store_dir>/<instance name>`:
//!
//! | path | what |
//! |---|---|
//! | `journal` | the [journal] of objects and commits |
//! | `agent-id` | the id that `$AGENT_ID` renders, drawn once |
//! | `objects/<id>` | the file of an object not yet delivered |
//! | `objects/<id>.open` | how object `id` was opened (its key, tag and window), so that it can be delivered even if the journal is lost |
//! | `quarantine/<id>`, `<id>.key` and `<id>.open` | an object whose delivery failed `upload_retry_limit` times in a row, its key, and how it was opened; retried at every start and every half hour |
//! | `quarantine/<id>.damaged` | a damaged object file as it was found, kept after its intact part was salvaged |
//! | `redrive` | left by `rustsink redrive`: the running instance tries the quarantined objects at once |
//! | `journal.torn-<time>` | bytes of the journal that were not whole records, kept for inspection |

pub mod journal;
pub mod limit;
pub mod private;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::destination::SealedObject;
use crate::object::codec::Codec;

/// The files beside object `<id>`, by their ends: how it was opened (and the new version
/// of that file, being written), its Parquet file (and the one being written).
const BESIDE: [&str; 4] = [".open", ".open-new", ".parquet", ".parquet-new"];

/// An instance's store folder, locked against other processes for as long as any clone of
/// it lives.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// Whether the folder held data before this start.
    was_in_use: bool,
    _lock: Arc<fs::File>,
}

impl Store {
    /// Opens (and creates) the folder of `instance` under `store_dir` and locks it, so that
    /// two processes (or two instances with one name) never write one journal.
    ///
    /// # Errors
    ///
    /// When a folder cannot be created, or another process holds the folder.
    pub fn open(store_dir: &Path, instance: &str) -> io::Result<Store> {
        let name = folder_name(instance);
        if matches!(name.as_str(), "" | "." | "..") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the instance name '{instance}' (its Alias) cannot name a folder inside \
                     store_dir; give the output another Alias"
                ),
            ));
        }
        let root = Store::folder(store_dir, instance);
        let was_in_use = root.join("agent-id").exists();
        for folder in [store_dir, &root] {
            private::create_dir(folder).map_err(|e| with_path(e, "creating the folder", folder))?;
            private::check_folder(folder)?;
        }
        for folder in [root.join("objects"), root.join("quarantine")] {
            private::create_dir(&folder)
                .map_err(|e| with_path(e, "creating the folder", &folder))?;
            private::check_folder(&folder)?;
        }
        let lock_path = root.join("lock");
        let lock = private::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| with_path(e, "opening", &lock_path))?;
        if let Err(error) = lock.try_lock() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "{} is in use by another rustsink ({error}); give each Fluent Bit process \
                     its own store_dir, or each [OUTPUT] its own Alias",
                    root.display()
                ),
            ));
        }
        Ok(Store {
            root,
            was_in_use,
            _lock: Arc::new(lock),
        })
    }

    /// The folder of `instance` under `store_dir`.
    pub fn folder(store_dir: &Path, instance: &str) -> PathBuf {
        store_dir.join(folder_name(instance))
    }

    /// Asks for the objects in quarantine in `folder` to be tried again: the instance that
    /// holds the folder does it within a second, and any instance does it at its start.
    ///
    /// # Errors
    ///
    /// When the folder cannot be read or written.
    pub fn request_redrive(folder: &Path) -> io::Result<Redrive> {
        let quarantined = count_objects(&folder.join("quarantine"))?;
        let mut redrive = Redrive {
            objects: quarantined.objects,
            bytes: quarantined.bytes,
            running: false,
        };
        let lock = private::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(folder.join("lock"))?;
        redrive.running = lock.try_lock().is_err();
        drop(lock);
        if redrive.objects > 0 {
            private::write(&folder.join(REDRIVE), b"")?;
        }
        Ok(redrive)
    }

    /// What waits in the store folder `folder`, to be delivered and in quarantine; a part
    /// that cannot be read counts as empty.
    pub fn backlog(folder: &Path) -> Backlog {
        let usage = |name: &str| count_objects(&folder.join(name)).unwrap_or_default();
        Backlog {
            waiting: usage("objects"),
            quarantined: usage("quarantine"),
        }
    }

    /// Whether `rustsink redrive` asked for the quarantined objects to be tried again; the
    /// request is taken.
    pub fn take_redrive_request(&self) -> bool {
        fs::remove_file(self.root.join(REDRIVE)).is_ok()
    }

    /// Whether the folder held data before this start: a missing journal is then damage.
    pub fn was_in_use(&self) -> bool {
        self.was_in_use
    }

    /// The file beside object `id` that says how it was opened.
    pub fn opened_path(&self, id: u64) -> PathBuf {
        self.root.join("objects").join(format!("{id}.open"))
    }

    /// Writes, and syncs, how object `id` was opened: whole or not at all (a new file
    /// renamed into place), since a crash may come at any moment.
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub fn write_opened(&self, opened: &journal::Opened) -> io::Result<()> {
        write_opened_at(&self.opened_path(opened.id), opened)
    }

    /// How object `id` was opened, if its file beside it is there and whole.
    pub fn read_opened(&self, id: u64) -> Option<journal::Opened> {
        read_opened_at(&self.opened_path(id))
    }

    /// Gives the object whose file is `path` (in `objects/` or in quarantine) the key
    /// `key`, `$INDEX` `index`, in the file beside it that says how it was opened, and in
    /// quarantine in its key file too. A live object's journal has the key first.
    ///
    /// # Errors
    ///
    /// When the files cannot be written.
    pub fn rekey(&self, path: &Path, key: &str, index: u64) -> io::Result<()> {
        if self.is_quarantined(path) {
            private::write(&path.with_extension("key"), key.as_bytes())?;
        }
        let opened_path = path.with_extension("open");
        let Some(mut opened) = read_opened_at(&opened_path) else {
            return Ok(());
        };
        opened.key = key.to_owned();
        opened.index = Some(index);
        write_opened_at(&opened_path, &opened)
    }

    /// Removes object `id`'s file and the files beside it.
    ///
    /// # Errors
    ///
    /// When the object's file exists but cannot be removed.
    pub fn remove_object(&self, id: u64) -> io::Result<()> {
        // The object first: a file beside no object is nothing, an object file without the
        // file beside it is one whose key is unknown.
        match fs::remove_file(self.object_path(id)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        remove_beside(&self.object_path(id));
        Ok(())
    }

    /// Removes the files beside objects that are gone (a crash came between the removal of
    /// an object and of the files beside it): how it was opened, its Parquet file.
    pub fn remove_lone_opened_files(&self) {
        let objects = self.root.join("objects");
        for entry in fs::read_dir(&objects).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| BESIDE.iter().find_map(|suffix| n.strip_suffix(suffix)))
            else {
                continue;
            };
            if !objects.join(id).exists() {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// One more than the highest object id with a file in `objects/` or `quarantine/`: no
    /// new object may take an id below it, whatever the journal says.
    pub fn next_free_id(&self) -> u64 {
        ["objects", "quarantine"]
            .iter()
            .flat_map(|folder| fs::read_dir(self.root.join(folder)).into_iter().flatten())
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name();
                let name = name.to_str()?;
                name.split('.').next()?.parse::<u64>().ok()
            })
            .map(|id| id + 1)
            .max()
            .unwrap_or(0)
    }

    /// The instance's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The journal file.
    pub fn journal_path(&self) -> PathBuf {
        self.root.join("journal")
    }

    /// The file of object `id`.
    pub fn object_path(&self, id: u64) -> PathBuf {
        self.root.join("objects").join(id.to_string())
    }

    /// The ids of the object files on disk.
    ///
    /// # Errors
    ///
    /// When the folder cannot be listed.
    pub fn object_files(&self) -> io::Result<Vec<u64>> {
        let folder = self.root.join("objects");
        let mut ids = Vec::new();
        for entry in fs::read_dir(&folder).map_err(|e| with_path(e, "listing", &folder))? {
            if let Some(id) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Moves object `id` to quarantine, with its key in a file beside it (and the file
    /// that says how it was opened), and returns where it went.
    ///
    /// # Errors
    ///
    /// When the move or the key file fails.
    pub fn quarantine(&self, id: u64, key: &str) -> io::Result<PathBuf> {
        let target = self.quarantined_path(id);
        if target.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is taken", target.display()),
            ));
        }
        private::write(&target.with_extension("key"), key.as_bytes())?;
        // A Parquet file is written again from the object when it is tried again.
        remove_written_from(&self.object_path(id));
        fs::rename(self.object_path(id), &target)?;
        let _ = fs::rename(self.opened_path(id), target.with_extension("open"));
        journal::sync_parent(&target)?;
        Ok(target)
    }

    /// Moves the file of object `id`, which cannot be delivered as it is, to
    /// `quarantine/<id>.damaged`, where nothing tries it again; returns where it went.
    ///
    /// # Errors
    ///
    /// When the move fails.
    pub fn keep_damaged(&self, id: u64) -> io::Result<PathBuf> {
        let target = self.root.join("quarantine").join(format!("{id}.damaged"));
        if target.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is taken", target.display()),
            ));
        }
        fs::rename(self.object_path(id), &target)?;
        remove_written_from(&self.object_path(id));
        let _ = fs::remove_file(self.opened_path(id));
        journal::sync_parent(&target)?;
        Ok(target)
    }

    /// The file of quarantined object `id`.
    pub fn quarantined_path(&self, id: u64) -> PathBuf {
        self.root.join("quarantine").join(id.to_string())
    }

    /// Whether `path` is a file in quarantine.
    pub fn is_quarantined(&self, path: &Path) -> bool {
        path.parent() == Some(&self.root.join("quarantine"))
    }

    /// The objects in quarantine, sealed and ready to be tried again, oldest first.
    pub fn quarantined(&self) -> Vec<SealedObject> {
        let folder = self.root.join("quarantine");
        let mut ids: Vec<u64> = fs::read_dir(&folder)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
            .collect();
        ids.sort_unstable();
        ids.into_iter()
            .filter_map(|id| {
                let path = self.quarantined_path(id);
                let len = fs::metadata(&path).ok()?.len();
                let opened = fs::read(path.with_extension("open"))
                    .ok()
                    .and_then(|bytes| serde_json::from_slice::<journal::Opened>(&bytes).ok());
                let key = fs::read_to_string(path.with_extension("key")).ok();
                let opened = match (opened, key) {
                    (Some(mut opened), key) => {
                        // The key file is what an operator sees, and may have edited.
                        if let Some(key) = key.filter(|k| !k.trim().is_empty()) {
                            opened.key = key.trim().to_owned();
                        }
                        opened
                    }
                    // Quarantined by an earlier release: the key alone.
                    (None, Some(key)) => journal::Opened {
                        id,
                        key: key.trim().to_owned(),
                        tag: String::new(),
                        window_start: 0,
                        opened_at: 0,
                        codec: Codec::of_file(&path),
                        raw_lines: false,
                        format: crate::object::ObjectFormat::JsonLines,
                        series: String::new(),
                        index: None,
                        token: String::new(),
                    },
                    (None, None) => return None,
                };
                Some(SealedObject::new(&opened, path, len, None))
            })
            .collect()
    }

    /// Removes quarantined object `id` and the files beside it.
    ///
    /// # Errors
    ///
    /// When the object's file cannot be removed.
    pub fn remove_quarantined(&self, id: u64) -> io::Result<()> {
        let path = self.quarantined_path(id);
        let _ = fs::remove_file(path.with_extension("key"));
        remove_beside(&path);
        fs::remove_file(path)
    }

    /// The agent id: read from `agent-id`, or drawn and saved on first use.
    ///
    /// # Errors
    ///
    /// When the file can be neither read nor written.
    pub fn agent_id(&self) -> io::Result<String> {
        let path = self.root.join("agent-id");
        match fs::read_to_string(&path) {
            Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(with_path(error, "reading", &path)),
        }
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let fresh = path.with_extension("new");
        private::write(&fresh, id.as_bytes()).map_err(|e| with_path(e, "writing", &fresh))?;
        fs::File::open(&fresh)?.sync_all()?;
        fs::rename(&fresh, &path)?;
        journal::sync_parent(&path)?;
        Ok(id)
    }

    /// Bytes used by the journal and the object files (quarantine is not counted: it is
    /// what an operator has to look at, and must not stop new data).
    pub fn used_bytes(&self) -> u64 {
        let objects = fs::read_dir(self.root.join("objects"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.metadata().ok())
            .map(|metadata| metadata.len())
            .sum::<u64>();
        let journal = fs::metadata(self.journal_path()).map_or(0, |m| m.len());
        objects + journal
    }
}

/// Writes, and syncs, the file at `path` that says how an object was opened: whole or not
/// at all (a new file renamed into place).
fn write_opened_at(path: &Path, opened: &journal::Opened) -> io::Result<()> {
    let fresh = path.with_extension("open-new");
    let bytes = serde_json::to_vec(opened).map_err(io::Error::other)?;
    let mut file = private::options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&fresh)?;
    io::Write::write_all(&mut file, &bytes)?;
    file.sync_all()?;
    fs::rename(&fresh, path)
}

fn read_opened_at(path: &Path) -> Option<journal::Opened> {
    let bytes = fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Removes the files beside the object file at `path`.
fn remove_beside(path: &Path) {
    for suffix in BESIDE {
        let _ = fs::remove_file(path.with_extension(&suffix[1..]));
    }
}

/// Removes what was written from the object file at `path` to be delivered (a Parquet
/// file), if anything was.
fn remove_written_from(path: &Path) {
    let written = crate::object::parquet::beside(path);
    let _ = fs::remove_file(written.with_extension("parquet-new"));
    let _ = fs::remove_file(written);
}

/// The object files in `dir` (named by their id), and their bytes.
fn count_objects(dir: &Path) -> io::Result<Usage> {
    let mut usage = Usage::default();
    for entry in fs::read_dir(dir).map_err(|e| with_path(e, "listing", dir))? {
        let entry = entry?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.parse::<u64>().is_ok())
        {
            usage.objects += 1;
            usage.bytes += entry.metadata()?.len();
        }
    }
    Ok(usage)
}

/// A number of objects and their bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Objects.
    pub objects: u64,
    /// Their bytes, as stored.
    pub bytes: u64,
}

/// What waits in a store folder.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// Objects to be delivered (open, sealed, or between attempts).
    pub waiting: Usage,
    /// Objects in quarantine.
    pub quarantined: Usage,
}

/// The file that asks the running instance to try its quarantined objects again.
const REDRIVE: &str = "redrive";

/// What `rustsink redrive` found in a store folder.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Redrive {
    /// Objects in quarantine.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Whether a running instance holds the folder.
    pub running: bool,
}

/// The host name, for `$HOSTNAME`.
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// A folder name for an instance name: characters other than letters, digits, `.`, `-`
/// and `_` become `_`.
fn folder_name(instance: &str) -> String {
    instance
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn with_path(error: io::Error, action: &str, path: &Path) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("{action} {}: {error}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_id_is_drawn_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "out/1").unwrap();
        assert!(store.root().ends_with("out_1"));
        let id = store.agent_id().unwrap();
        assert_eq!(id.len(), 12);
        drop(store);
        let held = Store::open(dir.path(), "out/1").unwrap();
        let error = Store::open(dir.path(), "out/1").unwrap_err().to_string();
        assert!(error.contains("in use by another rustsink"), "{error}");
        assert_eq!(held.agent_id().unwrap(), id);
        drop(held);
        let other = Store::open(dir.path(), "out.2").unwrap();
        assert_ne!(other.agent_id().unwrap(), id);
    }

    #[test]
    fn quarantine_keeps_the_file_and_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "q").unwrap();
        fs::write(store.object_path(3), b"data").unwrap();
        assert_eq!(store.object_files().unwrap(), vec![3]);
        let moved = store.quarantine(3, "logs/a.gz").unwrap();
        assert_eq!(fs::read(&moved).unwrap(), b"data");
        assert_eq!(
            fs::read_to_string(moved.with_extension("key")).unwrap(),
            "logs/a.gz"
        );
        assert!(store.object_files().unwrap().is_empty());
    }

    /// A new key goes into the file beside the object, in `objects/` and in quarantine,
    /// where the key file has it too.
    #[test]
    fn a_new_key_is_written_beside_the_object_wherever_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "k").unwrap();
        let opened = |id| journal::Opened {
            id,
            key: format!("k/{id}-0"),
            tag: "app".into(),
            window_start: 0,
            opened_at: 0,
            codec: Codec::Gzip,
            raw_lines: false,
            format: crate::object::ObjectFormat::JsonLines,
            series: "k/$INDEX".into(),
            index: Some(0),
            token: format!("token-{id}"),
        };
        for id in [1, 2] {
            fs::write(store.object_path(id), b"data").unwrap();
            store.write_opened(&opened(id)).unwrap();
        }
        let quarantined = store.quarantine(2, "k/2-0").unwrap();
        store.rekey(&store.object_path(1), "k/1-4", 4).unwrap();
        store.rekey(&quarantined, "k/2-5", 5).unwrap();

        let live = store.read_opened(1).unwrap();
        assert_eq!((live.key.as_str(), live.index), ("k/1-4", Some(4)));
        assert_eq!(live.token, "token-1");
        let waiting = &store.quarantined()[0];
        assert_eq!(waiting.key, "k/2-5");
        let beside = fs::read(quarantined.with_extension("open")).unwrap();
        let beside: journal::Opened = serde_json::from_slice(&beside).unwrap();
        assert_eq!((beside.key.as_str(), beside.index), ("k/2-5", Some(5)));
        assert_eq!(
            fs::read_to_string(quarantined.with_extension("key")).unwrap(),
            "k/2-5"
        );
    }

    /// What a crash leaves beside an object, a new key's file half-written among it, goes
    /// with the object.
    #[test]
    fn an_object_goes_with_every_file_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "r").unwrap();
        let object = store.object_path(7);
        fs::write(&object, b"data").unwrap();
        for extension in ["open", "open-new", "parquet", "parquet-new"] {
            fs::write(object.with_extension(extension), b"beside").unwrap();
        }
        fs::write(store.object_path(8), b"another").unwrap();
        store.remove_object(7).unwrap();
        let left: Vec<_> = fs::read_dir(object.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(left, ["8"]);
    }
}
