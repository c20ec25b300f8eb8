//! The host's exported symbols that the plugin probes, and the harness's log.
//!
//! `host_symbols.c` is built twice by `build.rs` (with and without
//! `flb_output_log_check`) and embedded here. Loading the build for the version being
//! played with `RTLD_GLOBAL` puts its symbols where `dlsym(RTLD_DEFAULT, ...)` finds them,
//! exactly as a Fluent Bit binary linked with exported symbols does; unloading it takes
//! them away again.

use std::ffi::{CStr, c_char, c_int};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::Mutex;

use anyhow::{Context, Result};
use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
use rustix::fs::MemfdFlags;

use super::HostVersion;
use super::instance;
use rustsink::log::Level;

const V1_9: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/host_symbols_v1_9.so"));
const V2: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/host_symbols_v2.so"));

type LogPrint = unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char, ...);
type OutputNameCallback =
    unsafe extern "C" fn(*mut rustsink::abi::flb_output_instance) -> *const c_char;
type LogCheckCallback =
    unsafe extern "C" fn(*mut rustsink::abi::flb_output_instance, c_int) -> c_int;
type LogWriteCallback = unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char);

/// One line the plugin logged through `log_print`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Fluent Bit's level number.
    pub level: i32,
    /// The message, as formatted.
    pub message: String,
}

static LOG: Mutex<Vec<LogLine>> = Mutex::new(Vec::new());

/// Takes the lines logged through `log_print` since the last call.
pub fn take_log_lines() -> Vec<LogLine> {
    std::mem::take(
        &mut LOG
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}

/// The loaded host-symbol library.
pub(super) struct HostSymbols {
    library: Library,
}

impl HostSymbols {
    pub(super) fn load(version: HostVersion) -> Result<HostSymbols> {
        let image = match version {
            HostVersion::V1_9 => V1_9,
            HostVersion::V5 => V2,
        };
        // An anonymous file, so nothing is left on disk. rustix makes the system call
        // itself: glibc has no memfd_create before 2.27, and the release command runs on
        // 2.26.
        let fd = rustix::fs::memfd_create("fluent-bit-host-symbols", MemfdFlags::CLOEXEC)
            .context("memfd_create")?;
        std::fs::File::from(fd.try_clone()?).write_all(image)?;
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        // SAFETY: the image is host_symbols.c built by build.rs; it has no initialisers.
        let library = unsafe { Library::open(Some(&path), RTLD_NOW | RTLD_GLOBAL) }
            .context("loading the harness host symbols")?;
        let symbols = HostSymbols { library };
        symbols.set_callback::<OutputNameCallback>(
            c"rustsink_harness_output_name",
            instance::output_name,
        )?;
        symbols
            .set_callback::<LogCheckCallback>(c"rustsink_harness_log_check", instance::log_check)?;
        symbols.set_callback::<LogWriteCallback>(c"rustsink_harness_log_write", log_write)?;
        Ok(symbols)
    }

    fn set_callback<F>(&self, name: &CStr, callback: F) -> Result<()> {
        // SAFETY: each named variable is a function pointer of type F in host_symbols.c;
        // the library stays loaded while the pointer is used.
        unsafe {
            let slot = self
                .library
                .get::<*mut F>(name.to_bytes())
                .with_context(|| format!("{name:?} in the host symbols"))?;
            (*slot).write(callback);
        }
        Ok(())
    }

    /// The C `log_print` of the library, for the API table.
    pub(super) fn log_print(&self) -> LogPrint {
        // SAFETY: rustsink_harness_log_print has log_print's variadic signature.
        unsafe {
            *self
                .library
                .get::<LogPrint>(b"rustsink_harness_log_print")
                .expect("built into host_symbols.c")
        }
    }
}

/// Records a line and echoes it to stderr as Fluent Bit prints it.
unsafe extern "C" fn log_write(
    level: c_int,
    _file: *const c_char,
    _line: c_int,
    message: *const c_char,
) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: host_symbols.c passes its formatted, NUL-terminated buffer.
        let message = unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned();
        let shown = Level::ALL.into_iter().find(|l| *l as c_int == level);
        if let Some(shown) = shown {
            rustsink::log::write_stderr_line(shown, &message);
        }
        LOG.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(LogLine { level, message });
    });
}
