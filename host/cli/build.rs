//! Builds the two small shared libraries through which the harness plays the host-side
//! symbols of Fluent Bit 1.9 and of Fluent Bit 2.0 and later.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const HOST_SYMBOLS_C: &str = "src/harness/host_symbols.c";

fn main() -> Result<()> {
    println!("cargo:rerun-if-changed={HOST_SYMBOLS_C}");
    let out_dir = PathBuf::from(env::var("OUT_DIR").context("cargo sets OUT_DIR")?);
    build_host_symbols(&out_dir, "host_symbols_v1_9.so", &[])?;
    build_host_symbols(&out_dir, "host_symbols_v2.so", &["-DHOST_HAS_LOG_API"])?;
    Ok(())
}

/// Compiles `host_symbols.c` into a shared library with the given defines.
fn build_host_symbols(out_dir: &Path, name: &str, defines: &[&str]) -> Result<()> {
    let compiler = cc::Build::new()
        .cargo_metadata(false)
        .cargo_warnings(false)
        .try_get_compiler()
        .context("finding a C compiler for the harness host symbols")?;
    let output = out_dir.join(name);
    let status = Command::new(compiler.path())
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&output)
        .args(defines)
        .arg(HOST_SYMBOLS_C)
        .status()
        .with_context(|| format!("running {}", compiler.path().display()))?;
    if !status.success() {
        bail!("compiling {HOST_SYMBOLS_C} into {name} failed: {status}");
    }
    Ok(())
}
