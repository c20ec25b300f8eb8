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
//! | `quarantine/<id>` and `<id>.key` | an object that could not be delivered, and its key |
//! | `quarantine/<id>.damaged` | a damaged object file as it was found, kept after its intact part was salvaged |
//! | `journal.torn-<time>` | bytes of the journal that were not whole records, kept for inspection |

pub mod journal;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
        let root = store_dir.join(folder_name(instance));
        let was_in_use = root.join("agent-id").exists();
        for folder in [root.join("objects"), root.join("quarantine")] {
            fs::create_dir_all(&folder)
                .map_err(|e| with_path(e, "creating the folder", &folder))?;
        }
        let lock_path = root.join("lock");
        let lock = fs::OpenOptions::new()
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

    /// Whether the folder held data before this start: a missing journal is then damage.
    pub fn was_in_use(&self) -> bool {
        self.was_in_use
    }

    /// The file beside object `id` that says how it was opened.
    pub fn opened_path(&self, id: u64) -> PathBuf {
        self.root.join("objects").join(format!("{id}.open"))
    }

    /// Writes, and syncs, how object `id` was opened.
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub fn write_opened(&self, opened: &journal::Opened) -> io::Result<()> {
        let path = self.opened_path(opened.id);
        let bytes = serde_json::to_vec(opened).map_err(io::Error::other)?;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        io::Write::write_all(&mut file, &bytes)?;
        file.sync_all()
    }

    /// How object `id` was opened, if its file beside it is there and whole.
    pub fn read_opened(&self, id: u64) -> Option<journal::Opened> {
        let bytes = fs::read(self.opened_path(id)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Removes object `id`'s file and the file beside it.
    ///
    /// # Errors
    ///
    /// When the object's file exists but cannot be removed.
    pub fn remove_object(&self, id: u64) -> io::Result<()> {
        let _ = fs::remove_file(self.opened_path(id));
        match fs::remove_file(self.object_path(id)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
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

    /// Moves object `id` to quarantine, with its key in a file beside it, and returns
    /// where it went.
    ///
    /// # Errors
    ///
    /// When the move or the key file fails.
    pub fn quarantine(&self, id: u64, key: &str) -> io::Result<PathBuf> {
        let target = self.root.join("quarantine").join(id.to_string());
        if target.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is taken", target.display()),
            ));
        }
        fs::write(target.with_extension("key"), key)?;
        fs::rename(self.object_path(id), &target)?;
        let _ = fs::remove_file(self.opened_path(id));
        journal::sync_parent(&target)?;
        Ok(target)
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
        fs::write(&fresh, &id).map_err(|e| with_path(e, "writing", &fresh))?;
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
}
