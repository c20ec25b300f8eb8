//! Components compiled once and kept precompiled on disk.
//!
//! Compiling a component takes tens of milliseconds; loading its precompiled form takes
//! a fraction of one. But a precompiled component is native code that runs inside Fluent
//! Bit, so an entry is used only if this cache wrote it:
//!
//! - the folder must be this user's and writable by no one else (it is created 0700);
//! - it holds a key, 32 random bytes in a 0600 file of this user, drawn on first use;
//! - an entry is named by a SHA-256 of the engine's compatibility hash and the
//!   component's bytes, and begins with an HMAC-SHA256, under the key, of that name and
//!   the compiled code. One that was changed, or that was written for another component
//!   or engine, fails the check;
//! - entries are written to a new file (`O_EXCL`, 0600) and renamed into place, and no
//!   file is opened through a symbolic link.
//!
//! When anything is in doubt, the component is compiled again, and the cache is left alone.
#![allow(
    unsafe_code,
    reason = "loading precompiled code is unsafe in wasmtime's API"
)]

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::error::{Context, Result, bail};

use crate::store::private;

/// The length of the key and of an entry's MAC.
const KEY_LEN: usize = 32;

/// Loads the component at `path`, from `cache_dir` when this cache compiled it before.
///
/// # Errors
///
/// When the file cannot be read or is not a valid component. A cache that cannot be used
/// or written only costs a compilation.
pub fn load(engine: &Engine, path: &Path, cache_dir: &Path) -> Result<Component> {
    let bytes = fs::read(path).with_context(|| format!("reading component {}", path.display()))?;
    refuse_what_is_no_component(&bytes, path)?;
    let cache = Cache::open(cache_dir);
    let name = entry_name(engine, &bytes);
    if let Some(component) = cache.as_ref().and_then(|cache| cache.get(engine, &name)) {
        return Ok(component);
    }
    let compiled = engine
        .precompile_component(&bytes)
        .with_context(|| format!("compiling component {}", path.display()))?;
    if let Some(cache) = &cache {
        let _ = cache.put(&name, &compiled);
    }
    // SAFETY: `compiled` was produced just now by this engine's `precompile_component`.
    unsafe { Component::deserialize(engine, &compiled) }
        .with_context(|| format!("loading component {}", path.display()))
}

/// Says what a file is when it is not a component, and what to do about it: the binary
/// header tells a core module (what Fluent Bit's `filter_wasm` takes) from a component.
fn refuse_what_is_no_component(bytes: &[u8], path: &Path) -> Result<()> {
    const MAGIC: &[u8] = b"\0asm";
    const CORE_MODULE: [u8; 4] = [1, 0, 0, 0];
    match bytes.get(..8) {
        Some(header) if header.starts_with(MAGIC) && header[4..] == CORE_MODULE => bail!(
            "{} is a core WebAssembly module, not a component: build a component for \
             wasm32-wasip2 (Rust: `cargo build --target wasm32-wasip2` with rustsink-sdk; other \
             languages: their component tooling, such as componentize-py or jco)",
            path.display()
        ),
        Some(header) if header.starts_with(MAGIC) => Ok(()),
        _ => bail!(
            "{} is not WebAssembly: a component starts with the bytes \\0asm",
            path.display()
        ),
    }
}

/// A cache folder that can be trusted, and its key.
struct Cache {
    dir: PathBuf,
    key: [u8; KEY_LEN],
}

impl Cache {
    /// The cache in `dir`, created if missing; None when the folder or its key cannot be
    /// trusted.
    fn open(dir: &Path) -> Option<Cache> {
        private::create_dir(dir).ok()?;
        private::check_folder(dir).ok()?;
        let key_path = dir.join("key");
        let key = match read_key(&key_path) {
            Ok(key) => key,
            Err(error) if error.kind() == io::ErrorKind::NotFound => new_key(&key_path).ok()?,
            Err(_) => return None,
        };
        Some(Cache {
            dir: dir.to_owned(),
            key,
        })
    }

    /// The component of entry `name`, if it is there and this cache wrote it.
    fn get(&self, engine: &Engine, name: &str) -> Option<Component> {
        let mut data = Vec::new();
        private::options()
            .read(true)
            .open(self.dir.join(name))
            .ok()?
            .read_to_end(&mut data)
            .ok()?;
        if data.len() <= KEY_LEN {
            return None;
        }
        let (tag, compiled) = data.split_at(KEY_LEN);
        self.mac(name, compiled).verify_slice(tag).ok()?;
        // SAFETY: the MAC proves that this cache wrote these bytes, as the output of
        // `precompile_component` for this component (its name) and this engine's
        // compatibility hash; wasmtime checks again that they fit this engine.
        unsafe { Component::deserialize(engine, compiled) }.ok()
    }

    /// Writes entry `name`: the MAC, then the compiled code.
    fn put(&self, name: &str, compiled: &[u8]) -> io::Result<()> {
        let path = self.dir.join(name);
        let temporary = self.dir.join(format!(
            "{name}.{}-{}.tmp",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let written = private::create_new(&temporary).and_then(|mut file| {
            file.write_all(&self.mac(name, compiled).finalize().into_bytes())?;
            file.write_all(compiled)?;
            file.sync_all()
        });
        match written.and_then(|()| fs::rename(&temporary, &path)) {
            Ok(()) => Ok(()),
            Err(error) => {
                let _ = fs::remove_file(&temporary);
                Err(error)
            }
        }
    }

    fn mac(&self, name: &str, compiled: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(name.as_bytes());
        mac.update(compiled);
        mac
    }
}

/// The entry name of `bytes` for this engine.
fn entry_name(engine: &Engine, bytes: &[u8]) -> String {
    let mut hasher = ShaHasher(Sha256::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    hasher.0.update([0]);
    hasher.0.update(bytes);
    let digest = hasher.0.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.cwasm")
}

/// Feeds what a `Hash` writes into SHA-256, so that the engine's compatibility hash (which
/// wasmtime offers only as `Hash`) can be part of an entry's name.
struct ShaHasher(Sha256);

impl std::hash::Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        unreachable!("only the bytes written are used")
    }
}

/// The key at `path`, if it is a private file of this user.
fn read_key(path: &Path) -> io::Result<[u8; KEY_LEN]> {
    let mut file = private::options().read(true).open(path)?;
    let metadata = file.metadata()?;
    let me = rustix::process::geteuid().as_raw();
    if !metadata.is_file() || metadata.uid() != me || metadata.mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is not a private file of this user", path.display()),
        ));
    }
    let mut key = [0; KEY_LEN];
    file.read_exact(&mut key)?;
    Ok(key)
}

/// Draws a key and writes it to a new private file at `path`.
fn new_key(path: &Path) -> io::Result<[u8; KEY_LEN]> {
    let mut key = [0; KEY_LEN];
    key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let mut file = private::create_new(path)?;
    file.write_all(&key)?;
    file.sync_all()?;
    Ok(key)
}
