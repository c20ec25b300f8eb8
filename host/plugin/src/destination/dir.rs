//! `sink dir`: objects land under a local directory at their key.
//!
//! An object is put at a temporary name beside its final place (`.<name>.<token>.tmp`),
//! synced, and linked to its name, then the directory is synced: a reader sees the whole
//! object or none. The temporary name is a second link to the store's sealed file where
//! both are on one filesystem, so no byte is written twice; elsewhere it is a copy.
//! Linking, unlike renaming, fails when the name is taken, so an object already there is
//! never replaced. The object's token is kept in the extended attribute
//! `user.rustsink.token`: a file at the key with this token is this object, delivered
//! before a crash lost the record of it; any other file means the key is taken. Where the
//! filesystem keeps no extended attributes, a file with the same bytes counts as this
//! object. A crash leaves at most the temporary file, which the delivery of the same
//! object after the restart writes again, or which [`Destination::abandon`] removes when the
//! object will not be delivered under that key and token again.

use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Mode, OFlags, fsync, linkat, mkdirat, open, openat, unlinkat};
use rustix::io::Errno;
use xattr::FileExt;

use super::{DeliveryError, Destination, ProgressLog, SealedObject};

/// The extended attribute that holds a delivered object's token.
const TOKEN_ATTRIBUTE: &str = "user.rustsink.token";

/// Writes objects under a directory.
#[derive(Debug)]
pub struct DirDestination {
    root: PathBuf,
    file_mode: u32,
}

impl DirDestination {
    /// Uses `root`, creating it if needed; objects get `file_mode`.
    ///
    /// # Errors
    ///
    /// When the directory cannot be created.
    pub fn open(root: &Path, file_mode: u32) -> Result<DirDestination, DeliveryError> {
        create_folders(root).map_err(io_error("creating the directory", root))?;
        Ok(DirDestination {
            root: root.to_owned(),
            file_mode,
        })
    }

    /// The file an object with `key` lands in.
    ///
    /// # Errors
    ///
    /// When the key has a `..` or an empty part, and so names no file under the root.
    pub fn path_of(&self, key: &str) -> Result<PathBuf, DeliveryError> {
        let invalid = |reason| DeliveryError::InvalidKey {
            key: key.to_owned(),
            reason,
        };
        let relative = Path::new(key.trim_start_matches('/'));
        if key.ends_with('/') || key.split('/').skip(1).any(str::is_empty) {
            return Err(invalid("a part between two '/' is empty"));
        }
        if !relative
            .components()
            .all(|part| matches!(part, Component::Normal(_)))
        {
            return Err(invalid(
                "'.' and '..' cannot be parts of a key under a directory",
            ));
        }
        Ok(self.root.join(relative))
    }
}

impl Destination for DirDestination {
    /// A local link or copy is quick to redo, so it is done whole, without progress.
    fn put(&self, object: &SealedObject, _: &mut dyn ProgressLog) -> Result<(), DeliveryError> {
        let target = self.path_of(&object.key)?;
        let folder_path = target.parent().unwrap_or(&self.root).to_owned();
        let folder = self.open_folder(&object.key, Create::Yes)?;
        let name = file_name(&target);
        let temporary = temporary_name(&name, &object.token);
        let temporary_path = folder_path.join(&temporary);
        // A leftover of a crash, or anything planted at the name: unlinking never follows.
        let _ = unlinkat(&folder, temporary.as_str(), AtFlags::empty());
        let written = self
            .write_temporary(&folder, &temporary, object)
            .map_err(io_error("writing", &temporary_path))
            .and_then(|()| {
                match linkat(
                    &folder,
                    temporary.as_str(),
                    &folder,
                    name.as_str(),
                    AtFlags::empty(),
                ) {
                    Ok(()) => Ok(()),
                    Err(Errno::EXIST) => self.found_at_key(&folder, &name, object, &target),
                    Err(error) => Err(io_error("linking to", &target)(error.into())),
                }
            });
        // Nothing may stay half-written under the root.
        let _ = unlinkat(&folder, temporary.as_str(), AtFlags::empty());
        written?;
        fsync(&folder).map_err(|e| io_error("syncing the directory", &folder_path)(e.into()))
    }

    fn exists(&self, key: &str) -> Result<bool, DeliveryError> {
        let path = self.path_of(key)?;
        match fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(io_error("looking for", &path)(error)),
        }
    }

    fn describe(&self) -> String {
        format!("directory {}", self.root.display())
    }

    /// Removes the temporary file a crash during the object's delivery left.
    fn abandon(&self, object: &SealedObject) {
        let Ok(target) = self.path_of(&object.key) else {
            return;
        };
        if let Ok(folder) = self.open_folder(&object.key, Create::No) {
            let temporary = temporary_name(&file_name(&target), &object.token);
            let _ = unlinkat(&folder, temporary.as_str(), AtFlags::empty());
        }
    }
}

/// Whether a folder missing on the way to a key is created.
#[derive(Clone, Copy, PartialEq)]
enum Create {
    Yes,
    No,
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// The name an object with `token` is written under before it is linked to `name`.
fn temporary_name(name: &str, token: &str) -> String {
    format!(".{name}.{token}.tmp")
}

impl DirDestination {
    /// The folder of `key`'s object, opened without following a symbolic link under the
    /// root, and with `Create::Yes` created (0750) where missing.
    fn open_folder(&self, key: &str, create: Create) -> Result<OwnedFd, DeliveryError> {
        let relative = Path::new(key.trim_start_matches('/'));
        let parts: Vec<&std::ffi::OsStr> = relative.iter().collect();
        let folders = &parts[..parts.len().saturating_sub(1)];
        let mut at = self.root.clone();
        let mut folder = open(&self.root, DIRECTORY_FLAGS, Mode::empty())
            .map_err(|e| io_error("opening the directory", &self.root)(e.into()))?;
        for part in folders {
            at.push(part);
            if create == Create::Yes {
                match mkdirat(&folder, *part, Mode::from_raw_mode(FOLDER_MODE)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(error) => {
                        return Err(io_error("creating the directory", &at)(error.into()));
                    }
                }
            }
            folder = match openat(
                &folder,
                *part,
                DIRECTORY_FLAGS | OFlags::NOFOLLOW,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(Errno::LOOP | Errno::NOTDIR) if is_link(&at) => {
                    return Err(DeliveryError::Io {
                        action: "refusing the symbolic link",
                        path: at,
                        source: io::Error::other(
                            "rustsink follows no link under path: remove it, or make it a folder",
                        ),
                    });
                }
                Err(error) => return Err(io_error("opening the directory", &at)(error.into())),
            };
        }
        Ok(folder)
    }

    /// Puts the object at the new name `name` of `folder`, with the mode and token of a
    /// delivered object, and syncs it.
    fn write_temporary(
        &self,
        folder: &OwnedFd,
        name: &str,
        object: &SealedObject,
    ) -> io::Result<()> {
        let file = match link_sealed(folder, name, object) {
            Some(file) => file,
            None => self.copy_sealed(folder, name, object)?,
        };
        // The umask may have narrowed a copy's mode, and a link has the store's.
        file.set_permissions(fs::Permissions::from_mode(self.file_mode))?;
        // Best effort: not every filesystem keeps extended attributes.
        let _ = file.set_xattr(TOKEN_ATTRIBUTE, object.token.as_bytes());
        file.sync_all()
    }

    /// Copies the object's sealed file into a new file `name` of `folder`.
    fn copy_sealed(&self, folder: &OwnedFd, name: &str, object: &SealedObject) -> io::Result<File> {
        let flags =
            OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::WRONLY | OFlags::CLOEXEC;
        let mut file = File::from(openat(
            folder,
            name,
            flags,
            Mode::from_raw_mode(self.file_mode),
        )?);
        let copied = io::copy(&mut File::open(&object.path)?, &mut file)?;
        if copied != object.len {
            return Err(io::Error::other(format!(
                "{} holds {copied} bytes, not the {} it was sealed with",
                object.path.display(),
                object.len
            )));
        }
        Ok(file)
    }

    /// After the key's name turned out to be taken: Ok if the file there is this object,
    /// else the key is taken (a symbolic link there is never this object).
    fn found_at_key(
        &self,
        folder: &OwnedFd,
        name: &str,
        object: &SealedObject,
        target: &Path,
    ) -> Result<(), DeliveryError> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file = match openat(folder, name, flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(Errno::LOOP) => {
                return Err(DeliveryError::KeyTaken {
                    key: object.key.clone(),
                });
            }
            Err(error) => return Err(io_error("reading", target)(error.into())),
        };
        let ours = match file.get_xattr(TOKEN_ATTRIBUTE) {
            Ok(Some(token)) => Ok(token == object.token.as_bytes()),
            _ => same_bytes(file, &object.path),
        };
        match ours {
            Ok(true) => Ok(()),
            Ok(false) => Err(DeliveryError::KeyTaken {
                key: object.key.clone(),
            }),
            Err(error) => Err(io_error("reading", target)(error)),
        }
    }
}

/// The object's sealed file (synced when it was sealed) linked at the new name `name` of
/// `folder`, when that is the same filesystem and the file is whole. None otherwise, with
/// nothing left at `name`: the object is then copied, which reports what is wrong.
fn link_sealed(folder: &OwnedFd, name: &str, object: &SealedObject) -> Option<File> {
    // Without AT_SYMLINK_FOLLOW: a link planted in the store is linked itself, and refused
    // below.
    linkat(CWD, &object.path, folder, name, AtFlags::empty()).ok()?;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let linked = openat(folder, name, flags, Mode::empty()).map(File::from);
    match linked {
        Ok(file)
            if file
                .metadata()
                .is_ok_and(|m| m.is_file() && m.len() == object.len) =>
        {
            Some(file)
        }
        _ => {
            let _ = unlinkat(folder, name, AtFlags::empty());
            None
        }
    }
}

/// How folders under the root are opened.
const DIRECTORY_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::RDONLY)
    .union(OFlags::CLOEXEC);

fn is_link(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// The mode of folders created under `path`.
const FOLDER_MODE: u32 = 0o750;

fn create_folders(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(FOLDER_MODE)
        .create(path)
}

/// Whether a file holds the same bytes as the file at `b`.
fn same_bytes(mut a: File, b: &Path) -> io::Result<bool> {
    use std::io::Read;
    let mut b = File::open(b)?;
    if a.metadata()?.len() != b.metadata()?.len() {
        return Ok(false);
    }
    let (mut left, mut right) = (vec![0; 64 << 10], vec![0; 64 << 10]);
    loop {
        let n = a.read(&mut left)?;
        if n == 0 {
            return Ok(true);
        }
        b.read_exact(&mut right[..n])?;
        if left[..n] != right[..n] {
            return Ok(false);
        }
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DeliveryError {
    let path = path.to_owned();
    move |source| DeliveryError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sealed object of `len` bytes in the file `path`, with token `t1`.
    fn sealed(path: &Path, key: &str, len: u64) -> SealedObject {
        SealedObject {
            id: 1,
            key: key.into(),
            token: "t1".into(),
            tag: "app".into(),
            window_start: 0,
            path: path.to_owned(),
            codec: crate::object::codec::Codec::Gzip,
            format: crate::object::ObjectFormat::JsonLines,
            len,
            progress: None,
        }
    }

    /// A folder with a destination at `out` (0640) and a sealed file `object` of `bytes`.
    fn store_and_destination(bytes: &[u8]) -> (tempfile::TempDir, DirDestination, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let destination = DirDestination::open(&dir.path().join("out"), 0o640).unwrap();
        let source = dir.path().join("object");
        fs::write(&source, bytes).unwrap();
        (dir, destination, source)
    }

    #[test]
    fn objects_land_at_their_key_and_never_replace_another() {
        let (dir, destination, source) = store_and_destination(b"first");
        let object = sealed(&source, "/logs/year=2024/a.gz", 5);
        assert!(!destination.exists(&object.key).unwrap());
        destination.put(&object, &mut None).unwrap();
        // The same object again (a crash lost the record of its delivery): done.
        destination.put(&object, &mut None).unwrap();
        // Another object at the same key, even with the same bytes: refused, and the first
        // one stays.
        let other = dir.path().join("other");
        fs::write(&other, b"first").unwrap();
        let error = destination
            .put(
                &SealedObject {
                    path: other,
                    token: "t2".into(),
                    ..object.clone()
                },
                &mut None,
            )
            .unwrap_err();
        assert!(matches!(error, DeliveryError::KeyTaken { .. }), "{error}");
        let landed = dir.path().join("out/logs/year=2024/a.gz");
        assert_eq!(fs::read(&landed).unwrap(), b"first");
        assert!(destination.exists(&object.key).unwrap());
        let names: Vec<_> = fs::read_dir(landed.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["a.gz"], "no temporary file stays");
    }

    #[test]
    fn an_object_on_the_same_filesystem_is_linked_not_copied() {
        use std::os::unix::fs::MetadataExt;
        let (dir, destination, source) = store_and_destination(b"sealed bytes");
        fs::set_permissions(&source, fs::Permissions::from_mode(0o600)).unwrap();
        let object = sealed(&source, "a.gz", 12);
        destination.put(&object, &mut None).unwrap();
        let landed = dir.path().join("out/a.gz");
        let (linked, stored) = (
            fs::metadata(&landed).unwrap(),
            fs::metadata(&source).unwrap(),
        );
        assert_eq!(linked.ino(), stored.ino(), "one file, two names");
        assert_eq!(linked.mode() & 0o777, 0o640);
        // The store lets go of its name once the object is delivered.
        fs::remove_file(&source).unwrap();
        assert_eq!(fs::read(&landed).unwrap(), b"sealed bytes");
        // A sealed file shorter than sealed is not linked: the copy reports it.
        fs::write(&source, b"short").unwrap();
        let error = destination
            .put(
                &SealedObject {
                    key: "b.gz".into(),
                    ..object
                },
                &mut None,
            )
            .unwrap_err();
        assert!(
            error.to_string().contains("not the 12 it was sealed with"),
            "{error}"
        );
        assert_eq!(fs::read_dir(dir.path().join("out")).unwrap().count(), 1);
    }

    #[test]
    fn keys_that_leave_the_root_are_refused_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let destination = DirDestination::open(dir.path(), 0o640).unwrap();
        for key in ["../x.gz", "a/../../x.gz", "a//b.gz", "a/"] {
            let error = destination.path_of(key).unwrap_err();
            assert!(!error.is_retryable(), "{key}: {error}");
            assert!(error.to_string().contains(key), "{error}");
        }
    }
}
