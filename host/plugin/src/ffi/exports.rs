//! The functions Fluent Bit calls. Nothing else is exported from `librustsink.so`.
//!
//! Each one catches panics (no panic may cross into C), calls safe code, and returns only
//! the values Fluent Bit understands. Flush may run on a 24 KiB coroutine stack with no
//! guard page, so it only copies the chunk and its tag, hands them to the instance's own
//! thread and waits for the answer.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::addr_of_mut;
use std::sync::Arc;

use super::bindings::{
    FLB_ERROR, FLB_OK, FLB_PROXY_GOLANG, FLB_PROXY_OUTPUT_PLUGIN, FLB_RETRY,
    flb_plugin_exit_ctx_fn, flb_plugin_exit_fn, flb_plugin_flush_ctx_fn, flb_plugin_flush_fn,
    flb_plugin_init_fn, flb_plugin_proxy_def, flb_plugin_register_fn, flb_plugin_unregister_fn,
    flbgo_output_plugin,
};
use super::host_api::HostApi;
use super::registry;
use crate::config::{Config, keys};
use crate::event::tag_text;
use crate::log::{Level, PLUGIN_NAME, write_stderr_line};
use crate::pipeline::{FlushStatus, Instance};

/// Kept by pointer by Fluent Bit (up to 2.1.x for the name, always for the description).
static NAME: &CStr = c"rustsink";
static DESCRIPTION: &CStr = c"WebAssembly filters and sinks, and time-windowed gzip objects for S3";

// The exports must have exactly the signatures the header declares.
const _: flb_plugin_register_fn = Some(FLBPluginRegister);
const _: flb_plugin_init_fn = Some(FLBPluginInit);
const _: flb_plugin_flush_ctx_fn = Some(FLBPluginFlushCtx);
const _: flb_plugin_flush_fn = Some(FLBPluginFlush);
const _: flb_plugin_exit_ctx_fn = Some(FLBPluginExitCtx);
const _: flb_plugin_exit_fn = Some(FLBPluginExit);
const _: flb_plugin_unregister_fn = Some(FLBPluginUnregister);

/// Runs `body`, turning a panic into `on_panic` and one error line.
fn guard(export: &str, on_panic: c_int, body: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        write_stderr_line(
            Level::Error,
            &format!("[output:{PLUGIN_NAME}] internal error in {export}; returning {on_panic}"),
        );
        on_panic
    })
}

fn return_code(status: FlushStatus) -> c_int {
    let code = match status {
        FlushStatus::Ok => FLB_OK,
        FlushStatus::Retry => FLB_RETRY,
        FlushStatus::Error => FLB_ERROR,
    };
    code as c_int
}

/// Fills in the plugin definition: an output plugin of the proxy kind Fluent Bit knows.
///
/// # Safety
///
/// `def` must point to at least 32 writable bytes (Fluent Bit's definition block).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn FLBPluginRegister(def: *mut flb_plugin_proxy_def) -> c_int {
    guard("FLBPluginRegister", -1, || {
        if def.is_null() {
            return -1;
        }
        // SAFETY: `def` points to a block of FLB_PROXY_DEF_SIZE bytes, which is exactly
        // `flb_plugin_proxy_def`; only its five fields are written, through raw pointers
        // because the block is uninitialised. Newer hosts' trailing fields are left alone.
        unsafe {
            addr_of_mut!((*def).type_).write(FLB_PROXY_OUTPUT_PLUGIN as c_int);
            addr_of_mut!((*def).proxy).write(FLB_PROXY_GOLANG as c_int);
            addr_of_mut!((*def).flags).write(0);
            addr_of_mut!((*def).name).write(NAME.as_ptr().cast_mut());
            addr_of_mut!((*def).description).write(DESCRIPTION.as_ptr().cast_mut());
        }
        registry::reset_names();
        0
    })
}

/// Reads and validates one instance's configuration and starts its pipeline.
///
/// # Safety
///
/// `plugin` must be the struct Fluent Bit passes to init, with `o_ins` and `context`
/// pointing at the instance being initialised.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn FLBPluginInit(plugin: *mut flbgo_output_plugin) -> c_int {
    guard("FLBPluginInit", FLB_ERROR as c_int, || {
        // SAFETY: forwarded from the caller's guarantee; `host` lives only in this call.
        let host = match unsafe { HostApi::from_init(plugin) } {
            Ok(host) => host,
            Err(reason) => {
                write_stderr_line(Level::Error, &format!("[output:{PLUGIN_NAME}] {reason}"));
                return FLB_ERROR as c_int;
            }
        };
        let name = host.instance_name().unwrap_or_else(registry::fallback_name);
        let log = host.logger(name);
        let started = Config::from_lookup(|key| host.property(key))
            .map(|mut config| {
                // Fluent Bit 1.9's tail reads from the page cache as fast as a core allows:
                // a record thread that gives way lets it run ahead, and Fluent Bit holds the
                // difference in memory for no more throughput (BENCHMARKS.md). There `nice`
                // defaults to 0.
                if host.is_fluent_bit_1_9() && host.property(keys::NICE).is_none() {
                    config.nice = 0;
                }
                config
            })
            .map_err(|error| error.to_string())
            .and_then(|config| {
                Instance::start(config, &|key| host.property(key), log.clone())
                    .map_err(|e| e.to_string())
            });
        match started {
            Ok(instance) => {
                host.set_remote_context(registry::insert(instance));
                FLB_OK as c_int
            }
            Err(message) => {
                registry::skip_name();
                log.error(message);
                FLB_ERROR as c_int
            }
        }
    })
}

/// Copies the borrowed chunk and tag, so nothing of Fluent Bit's memory is kept.
///
/// # Safety
///
/// `data` must point to `len` readable bytes (or be null with `len` 0) and `tag` must be
/// null or a NUL-terminated string, both valid for the call.
unsafe fn copy_chunk(data: *const c_void, len: usize, tag: *const c_char) -> (Vec<u8>, String) {
    let chunk = if data.is_null() || len == 0 {
        Vec::new()
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) }.to_vec()
    };
    let tag = if tag.is_null() {
        String::new()
    } else {
        // SAFETY: guaranteed by the caller.
        tag_text(unsafe { CStr::from_ptr(tag) }.to_bytes())
    };
    (chunk, tag)
}

fn flush_to(instance: Option<Arc<Instance>>, chunk: Vec<u8>, tag: String) -> c_int {
    match instance {
        Some(instance) => return_code(instance.flush(chunk, tag)),
        None => {
            write_stderr_line(
                Level::Error,
                &format!(
                    "[output:{PLUGIN_NAME}] flush for tag '{tag}' reached no running instance; \
                     Fluent Bit keeps the chunk and retries"
                ),
            );
            FLB_RETRY as c_int
        }
    }
}

/// Delivers one chunk for the instance behind `remote_context`.
///
/// # Safety
///
/// `data`/`len` and `tag` must be valid for the call, as Fluent Bit passes them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn FLBPluginFlushCtx(
    remote_context: *mut c_void,
    data: *const c_void,
    len: usize,
    tag: *mut c_char,
) -> c_int {
    guard("FLBPluginFlushCtx", FLB_RETRY as c_int, || {
        // SAFETY: forwarded from the caller's guarantee.
        let (chunk, tag) = unsafe { copy_chunk(data, len, tag) };
        flush_to(registry::get(remote_context), chunk, tag)
    })
}

/// Delivers one chunk on hosts that do not pass a context (none that rustsink supports
/// does, since FlushCtx is exported): it goes to the instance when there is exactly one.
///
/// # Safety
///
/// As for [`FLBPluginFlushCtx`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn FLBPluginFlush(
    data: *const c_void,
    len: usize,
    tag: *const c_char,
) -> c_int {
    guard("FLBPluginFlush", FLB_RETRY as c_int, || {
        // SAFETY: forwarded from the caller's guarantee.
        let (chunk, tag) = unsafe { copy_chunk(data, len, tag) };
        flush_to(registry::only(), chunk, tag)
    })
}

/// Stops the instance behind `remote_context`, once; a stale or repeated handle is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn FLBPluginExitCtx(remote_context: *mut c_void) -> c_int {
    guard("FLBPluginExitCtx", FLB_OK as c_int, || {
        if let Some(instance) = registry::remove(remote_context) {
            instance.shutdown();
        }
        FLB_OK as c_int
    })
}

/// Stops every instance (the exit of hosts that do not pass a context).
#[unsafe(no_mangle)]
pub extern "C" fn FLBPluginExit() -> c_int {
    guard("FLBPluginExit", FLB_OK as c_int, || {
        stop_all();
        FLB_OK as c_int
    })
}

/// Stops every instance and joins every thread rustsink started, so that the library can
/// be unloaded (`dlclose`, as hot reload does) as soon as this returns.
#[unsafe(no_mangle)]
pub extern "C" fn FLBPluginUnregister(_def: *mut flb_plugin_proxy_def) {
    guard("FLBPluginUnregister", 0, || {
        stop_all();
        0
    });
}

fn stop_all() {
    for instance in registry::drain() {
        instance.shutdown();
    }
}
