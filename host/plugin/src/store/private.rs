//! Files and folders that only this user may read: what rustsink keeps holds logs.
//!
//! Folders are created 0700 and files 0600 (the umask may narrow them further, never
//! widen them). A folder rustsink is to use must be its user's and writable by nobody
//! else: another local user who could write in it could plant files there, or replace
//! the ones rustsink wrote.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The mode of folders rustsink creates.
pub const FOLDER_MODE: u32 = 0o700;
/// The mode of files rustsink creates in them.
pub const FILE_MODE: u32 = 0o600;

/// Creates `path` and the folders above it that are missing, each 0700.
///
/// # Errors
///
/// When a folder cannot be created.
pub fn create_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(FOLDER_MODE)
        .create(path)
}

/// Options that create a file 0600 and never follow a symbolic link at its name.
pub fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(FILE_MODE).custom_flags(libc::O_NOFOLLOW);
    options
}

/// Writes `bytes` to a new or emptied 0600 file at `path`.
///
/// # Errors
///
/// When the file cannot be written.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.write_all(bytes)
}

/// Creates a 0600 file at `path` that must not exist yet.
///
/// # Errors
///
/// When something is at `path` already, or it cannot be created.
pub fn create_new(path: &Path) -> io::Result<File> {
    options().read(true).write(true).create_new(true).open(path)
}

/// Checks that `folder` is a folder (not a link to one) of this user, that no one else
/// may write in.
///
/// # Errors
///
/// Why it is not, naming the folder, its owner and mode, and what to do.
pub fn check_folder(folder: &Path) -> io::Result<()> {
    let metadata = fs::symlink_metadata(folder)?;
    let refuse = |why: String| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} {why}; rustsink keeps logs there and must be the only one who can write in \
                 it: make it a folder of uid {} with mode 0700 (chown, chmod), or choose \
                 another store_dir",
                folder.display(),
                rustix::process::geteuid().as_raw()
            ),
        ))
    };
    if metadata.file_type().is_symlink() {
        return refuse("is a symbolic link".to_owned());
    }
    if !metadata.is_dir() {
        return refuse("is not a folder".to_owned());
    }
    let me = rustix::process::geteuid().as_raw();
    if metadata.uid() != me {
        return refuse(format!("belongs to uid {}", metadata.uid()));
    }
    if metadata.mode() & 0o022 != 0 {
        return refuse(format!(
            "may be written by others (mode {:04o})",
            metadata.mode() & 0o7777
        ));
    }
    Ok(())
}
