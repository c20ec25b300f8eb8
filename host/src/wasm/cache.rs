//! Components compiled once and kept precompiled on disk.
//!
//! Compiling a component takes tens of milliseconds; loading its precompiled form takes
//! a fraction of one. A precompiled file is named by the engine's compatibility hash and
//! a hash of the component's bytes, so a new rustsink or a changed component compiles
//! afresh. Files are written under a temporary name and renamed, so a reader never sees
//! a partial one.
#![allow(
    unsafe_code,
    reason = "loading precompiled code is unsafe in wasmtime's API"
)]

use std::hash::{BuildHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::error::{Context, Result};

/// Loads the component at `path`, from `cache_dir` when it was compiled before.
///
/// # Errors
///
/// When the file cannot be read or is not a valid component. A cache that cannot be
/// written only costs a compilation next time.
pub fn load(engine: &Engine, path: &Path, cache_dir: &Path) -> Result<Component> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading component {}", path.display()))?;
    let cached = cache_dir.join(file_name(engine, &bytes));
    if cached.exists() {
        // SAFETY: the file is this process's own output of `precompile_component` (its
        // name carries the engine's compatibility hash and the component's hash), written
        // whole then renamed; wasmtime checks that it fits this engine before use.
        if let Ok(component) = unsafe { Component::deserialize_file(engine, &cached) } {
            return Ok(component);
        }
    }
    let compiled = engine
        .precompile_component(&bytes)
        .with_context(|| format!("compiling component {}", path.display()))?;
    let _ = write_atomically(&cached, &compiled);
    // SAFETY: `compiled` was produced just now by this engine's `precompile_component`.
    unsafe { Component::deserialize(engine, &compiled) }
        .with_context(|| format!("loading component {}", path.display()))
}

fn file_name(engine: &Engine, bytes: &[u8]) -> String {
    // Two independent 64-bit hashes with fixed keys: stable across runs.
    let hash = |seed: u64| {
        let mut hasher = FixedState(seed).build_hasher();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        bytes.hash(&mut hasher);
        hasher.finish()
    };
    format!("{:016x}{:016x}.cwasm", hash(1), hash(2))
}

/// `std`'s SipHash with fixed keys.
struct FixedState(u64);

impl BuildHasher for FixedState {
    type Hasher = std::hash::DefaultHasher;

    fn build_hasher(&self) -> Self::Hasher {
        let mut hasher = std::hash::DefaultHasher::new();
        self.0.hash(&mut hasher);
        hasher
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temporary: PathBuf = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}
