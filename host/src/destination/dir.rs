//! `sink dir`: objects land under a local directory at their key.
//!
//! An object is copied to a temporary name beside its final place (`.<name>.tmp`), synced,
//! and renamed, then the directory is synced: a reader sees the whole object or none. A
//! crash leaves at most the temporary file, which the delivery of the same object after the
//! restart overwrites and renames.

use std::fs::{self, File};
use std::io;
use std::path::{Component, Path, PathBuf};

use super::{DeliveryError, Destination, ProgressLog, SealedObject};

/// Writes objects under a directory.
#[derive(Debug)]
pub struct DirDestination {
    root: PathBuf,
}

impl DirDestination {
    /// Uses `root`, creating it if needed.
    ///
    /// # Errors
    ///
    /// When the directory cannot be created.
    pub fn open(root: &Path) -> Result<DirDestination, DeliveryError> {
        fs::create_dir_all(root).map_err(io_error("creating the directory", root))?;
        Ok(DirDestination {
            root: root.to_owned(),
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
    /// A local copy is quick to redo, so it is done whole, without progress.
    fn put(&self, object: &SealedObject, _: &mut dyn ProgressLog) -> Result<(), DeliveryError> {
        let target = self.path_of(&object.key)?;
        let folder = target.parent().unwrap_or(&self.root);
        fs::create_dir_all(folder).map_err(io_error("creating the directory", folder))?;
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        let temporary = folder.join(format!(".{name}.tmp"));
        let written = fs::copy(&object.path, &temporary)
            .and_then(|_| File::open(&temporary)?.sync_all())
            .map_err(io_error("writing", &temporary))
            .and_then(|()| {
                fs::rename(&temporary, &target).map_err(io_error("renaming to", &target))
            });
        if let Err(error) = written {
            // Nothing may stay half-written under the root.
            let _ = fs::remove_file(&temporary);
            return Err(error);
        }
        File::open(folder)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error("syncing the directory", folder))
    }

    fn exists(&self, key: &str) -> Result<bool, DeliveryError> {
        let path = self.path_of(key)?;
        path.try_exists().map_err(io_error("looking for", &path))
    }

    fn describe(&self) -> String {
        format!("directory {}", self.root.display())
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

    #[test]
    fn objects_land_at_their_key_and_replace_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let destination = DirDestination::open(&dir.path().join("out")).unwrap();
        let source = dir.path().join("object");
        fs::write(&source, b"first").unwrap();
        let object = SealedObject {
            id: 1,
            key: "/logs/year=2024/a.gz".into(),
            path: source.clone(),
            len: 5,
            progress: None,
        };
        assert!(!destination.exists(&object.key).unwrap());
        destination.put(&object, &mut None).unwrap();
        destination.put(&object, &mut None).unwrap();
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
    fn keys_that_leave_the_root_are_refused_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let destination = DirDestination::open(dir.path()).unwrap();
        for key in ["../x.gz", "a/../../x.gz", "a//b.gz", "a/"] {
            let error = destination.path_of(key).unwrap_err();
            assert!(!error.is_retryable(), "{key}: {error}");
            assert!(error.to_string().contains(key), "{error}");
        }
    }
}
