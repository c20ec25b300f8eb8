//! `.ci/setup`, the set-up of README's two commands: what it takes for libclang.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::support::repo_root;

/// Whether `.ci/setup` finds libclang under the tree at `root`.
fn finds_libclang(root: &Path) -> bool {
    let status = Command::new("bash")
        .arg(repo_root().join(".ci/setup"))
        .arg("--has-libclang")
        .arg(root)
        .status()
        .expect("running .ci/setup");
    match status.code() {
        Some(0) => true,
        Some(1) => false,
        other => panic!(".ci/setup --has-libclang exited with {other:?}"),
    }
}

fn plant(root: &Path, file: &str) {
    let path = root.join(file);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, b"\x7fELF").unwrap();
}

#[test]
fn clangs_cpp_library_is_not_libclang() {
    // What a fresh machine of this project's kind ships: clang's C++ library, the LLVM
    // libraries, and no libclang.
    let root = tempfile::tempdir().unwrap();
    for file in [
        "usr/lib/x86_64-linux-gnu/libclang-cpp.so.14",
        "usr/lib/llvm-14/lib/libclang-cpp.so.14",
        "usr/lib/llvm-14/lib/libclangBasic.a",
        "usr/lib/llvm-14/lib/libLLVM-14.so",
    ] {
        plant(root.path(), file);
    }
    assert!(!finds_libclang(root.path()));
}

#[test]
fn libclang_is_found_under_each_name_bindgen_loads() {
    for file in [
        "usr/lib/llvm-14/lib/libclang.so",
        "usr/lib/llvm-14/lib/libclang.so.1",
        "usr/lib/x86_64-linux-gnu/libclang-14.so.1",
        "usr/lib/aarch64-linux-gnu/libclang-16.so",
    ] {
        let root = tempfile::tempdir().unwrap();
        plant(root.path(), "usr/lib/x86_64-linux-gnu/libclang-cpp.so.14");
        plant(root.path(), file);
        assert!(finds_libclang(root.path()), "{file}");
    }
}
