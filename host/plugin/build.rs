//! Generates the FFI bindings from the proxy ABI header.

use std::env;
use std::path::PathBuf;

const ABI_HEADER: &str = "../../fluent-bit/include/flb_proxy_abi.h";

fn main() {
    println!("cargo:rerun-if-changed={ABI_HEADER}");
    println!("cargo:rerun-if-env-changed=LIBCLANG_PATH");
    // Dependencies' `#[no_mangle]` functions (the SDK's checksum crate has a C API) would
    // otherwise be exported beside the plugin's FLBPlugin* symbols.
    println!("cargo:rustc-cdylib-link-arg=-Wl,--exclude-libs,ALL");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

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
        .unwrap_or_else(|err| {
            panic!(
                "bindgen failed on {ABI_HEADER}: {err}\n\
                 install libclang (Debian: libclang-dev) or run `bash .ci/setup`"
            )
        });
    let out = out_dir.join("flb_proxy_abi.rs");
    if let Err(err) = bindings.write_to_file(&out) {
        panic!("writing {}: {err}", out.display());
    }
}
