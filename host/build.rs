//! Generates the FFI bindings from the proxy ABI header, and builds the two small shared
//! libraries through which the harness plays the host-side symbols of Fluent Bit 1.9 and
//! Fluent Bit 2.0 and later.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const ABI_HEADER: &str = "../fluent-bit/include/flb_proxy_abi.h";
const HOST_SYMBOLS_C: &str = "src/cli/harness/host_symbols.c";

fn main() -> Result<()> {
    println!("cargo:rerun-if-changed={ABI_HEADER}");
    println!("cargo:rerun-if-changed={HOST_SYMBOLS_C}");
    println!("cargo:rerun-if-env-changed=LIBCLANG_PATH");
    // Dependencies' `#[no_mangle]` functions (the SDK's checksum crate has a C API) would
    // otherwise be exported beside the plugin's FLBPlugin* symbols.
    println!("cargo:rustc-cdylib-link-arg=-Wl,--exclude-libs,ALL");
    let out_dir = PathBuf::from(env::var("OUT_DIR").context("cargo sets OUT_DIR")?);

    generate_bindings(&out_dir)?;
    build_host_symbols(&out_dir, "host_symbols_v1_9.so", &[])?;
    build_host_symbols(&out_dir, "host_symbols_v2.so", &["-DHOST_HAS_LOG_API"])?;
    Ok(())
}

fn generate_bindings(out_dir: &Path) -> Result<()> {
    let bindings = bindgen::Builder::default()
        .header(ABI_HEADER)
        .allowlist_type("flb_.*")
        .allowlist_type("flbgo_.*")
        .allowlist_var("FLB_.*")
        // The exports are defined in Rust; their types are checked through the
        // `flb_plugin_*_fn` typedefs instead.
        .blocklist_function("FLBPlugin.*")
        .derive_debug(true)
        .derive_default(false)
        .layout_tests(true)
        .generate()
        .map_err(|err| anyhow::anyhow!("bindgen failed on {ABI_HEADER}: {err}"))
        .context("install libclang (Debian: libclang-dev) or run `bash .ci/setup`")?;
    bindings
        .write_to_file(out_dir.join("flb_proxy_abi.rs"))
        .context("writing flb_proxy_abi.rs")
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
