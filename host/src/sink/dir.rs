//! `sink dir`: JSON lines appended to one file per tag under a directory.
//!
//! A write is all or nothing: the lines of a chunk are appended with one write and synced
//! to disk before flush returns FLB_OK; if the write fails, the file is cut back to its
//! previous length so a retry does not leave half a chunk behind. One instance should own
//! each `path`/tag pair.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::DeliveryError;

/// Appends JSON lines to `<path>/<tag>.jsonl`.
#[derive(Debug)]
pub struct DirSink {
    root: PathBuf,
}

impl DirSink {
    /// Opens (and creates, if needed) the directory.
    ///
    /// # Errors
    ///
    /// When the directory cannot be created.
    pub fn open(root: &Path) -> Result<DirSink, DeliveryError> {
        fs::create_dir_all(root).map_err(|source| DeliveryError::Io {
            action: "creating the directory",
            path: root.to_owned(),
            source,
        })?;
        Ok(DirSink {
            root: root.to_owned(),
        })
    }

    /// The file that holds a tag's records.
    pub fn file_for(&self, tag: &str) -> PathBuf {
        self.root.join(format!("{}.jsonl", file_name_for_tag(tag)))
    }

    /// Appends `lines` to the tag's file and syncs it.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened, written or synced; the file then holds none of
    /// `lines`, as far as the filesystem allows.
    pub fn append(&self, tag: &str, lines: &[u8]) -> Result<(), DeliveryError> {
        let path = self.file_for(tag);
        let io = |action| {
            let path = path.clone();
            move |source| DeliveryError::Io {
                action,
                path,
                source,
            }
        };
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io("opening"))?;
        let before = file.metadata().map_err(io("reading the size of"))?.len();
        let written = file.write_all(lines).and_then(|()| file.sync_data());
        if let Err(source) = written {
            cut_back(&file, before);
            return Err(io("appending to")(source));
        }
        Ok(())
    }
}

/// Undoes a partial append; if even that fails, the retry's lines follow the fragment.
fn cut_back(file: &File, length: u64) {
    if file.set_len(length).is_ok() {
        let _ = file.sync_data();
    }
}

/// A tag as a file name: letters, digits, `.`, `-` and `_` stay, anything else becomes
/// `_`; a name that would be hidden or empty is prefixed with `_`.
pub fn file_name_for_tag(tag: &str) -> String {
    let mut name: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with('.') {
        name.insert(0, '_');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_become_safe_file_names() {
        assert_eq!(file_name_for_tag("kube.var.log"), "kube.var.log");
        assert_eq!(file_name_for_tag("app/../../etc"), "app_.._.._etc");
        assert_eq!(file_name_for_tag(".."), "_..");
        assert_eq!(file_name_for_tag(""), "_");
        assert_eq!(
            file_name_for_tag("nginx-firelens-1234"),
            "nginx-firelens-1234"
        );
    }

    #[test]
    fn appends_accumulate_per_tag() {
        let dir = tempfile::tempdir().unwrap();
        let sink = DirSink::open(&dir.path().join("out")).unwrap();
        sink.append("a", b"{\"n\":1}\n").unwrap();
        sink.append("b", b"{\"n\":2}\n").unwrap();
        sink.append("a", b"{\"n\":3}\n").unwrap();
        let a = fs::read_to_string(sink.file_for("a")).unwrap();
        assert_eq!(a, "{\"n\":1}\n{\"n\":3}\n");
        assert_eq!(
            fs::read_to_string(sink.file_for("b")).unwrap(),
            "{\"n\":2}\n"
        );
    }

    #[test]
    fn an_unwritable_directory_is_a_retryable_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let sink = DirSink::open(dir.path()).unwrap();
        // A directory where the tag's file should be makes the open fail.
        fs::create_dir(sink.file_for("blocked")).unwrap();
        let error = sink.append("blocked", b"x\n").unwrap_err();
        assert!(error.is_retryable());
        assert!(error.to_string().contains("blocked.jsonl"), "{error}");
    }
}
