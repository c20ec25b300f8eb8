//! What the host offers, read safely: properties, the instance name and log level, and
//! `log_print` where the host has it.
//!
//! The `flb_api` table has one slot on Fluent Bit 1.9 and more from 2.0.0; reading a slot
//! the host did not allocate reads past its heap block. So the table's size is never
//! guessed: the host is probed for `flb_output_log_check`, a symbol that exists exactly
//! from 2.0.0, before any slot after the first is read.

use std::ffi::{CStr, CString, c_char, c_int, c_void};

use super::bindings::{
    FLB_SYMBOL_OUTPUT_LOG_CHECK, FLB_SYMBOL_OUTPUT_NAME, flb_log_print_fn, flb_output_instance,
    flb_output_log_check_fn, flb_output_name_fn, flbgo_output_plugin,
};
use crate::log::{Level, Logger, Threshold};

/// The host as seen during one `FLBPluginInit` call.
///
/// It holds the host's instance pointer, which is only known to be valid during that call,
/// so it is neither `Send` nor kept afterwards: everything rustsink needs later (the
/// properties, the name, the log level, `log_print`) is copied out of it.
pub(crate) struct HostApi {
    plugin: *mut flbgo_output_plugin,
    instance: *mut flb_output_instance,
    get_property: unsafe extern "C" fn(*const c_char, *mut flb_output_instance) -> *const c_char,
    /// Present on 2.0.0 and later.
    log_api: Option<LogApi>,
    /// Whether the host is Fluent Bit 1.9: the probe found no `flb_output_log_check`.
    fluent_bit_1_9: bool,
}

#[derive(Clone, Copy)]
struct LogApi {
    print: unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char, ...),
    check: unsafe extern "C" fn(*mut flb_output_instance, c_int) -> c_int,
}

impl HostApi {
    /// Reads the host API from the struct Fluent Bit passes to `FLBPluginInit`.
    ///
    /// # Safety
    ///
    /// `plugin` must be the pointer Fluent Bit passed to the current `FLBPluginInit` call,
    /// and the returned value must not outlive that call.
    ///
    /// # Errors
    ///
    /// A description of what is missing when the struct, its API table or its first slot
    /// is null.
    pub(crate) unsafe fn from_init(
        plugin: *mut flbgo_output_plugin,
    ) -> Result<HostApi, &'static str> {
        if plugin.is_null() {
            return Err("FLBPluginInit was called with a null plugin");
        }
        // SAFETY: the caller guarantees `plugin` is Fluent Bit's live struct; the fields
        // read here exist in every version.
        let (api, instance, context) =
            unsafe { ((*plugin).api, (*plugin).o_ins, (*plugin).context) };
        if api.is_null() || context.is_null() {
            return Err("FLBPluginInit was called without an API table or instance context");
        }
        // SAFETY: slot 0 exists in every version of the table.
        let Some(get_property) = (unsafe { (*api).output_get_property }) else {
            return Err("the host's API table has no output_get_property");
        };
        let fluent_bit_1_9 = host_symbol(FLB_SYMBOL_OUTPUT_LOG_CHECK).is_none();
        let log_api = if !fluent_bit_1_9 {
            // SAFETY: the probe found a 2.0.0+ host, whose table has slots 0 to 6.
            let (print, check): (flb_log_print_fn, flb_output_log_check_fn) =
                unsafe { ((*api).log_print, (*api).output_log_check) };
            print
                .zip(check)
                .map(|(print, check)| LogApi { print, check })
        } else {
            None
        };
        Ok(HostApi {
            plugin,
            instance,
            get_property,
            log_api,
            fluent_bit_1_9,
        })
    }

    /// Whether the host is Fluent Bit 1.9 (it has no `flb_output_log_check`, which 2.0.0
    /// added).
    pub(crate) fn is_fluent_bit_1_9(&self) -> bool {
        self.fluent_bit_1_9
    }

    /// The value of an [OUTPUT] property (case-insensitive key), copied.
    pub(crate) fn property(&self, key: &str) -> Option<String> {
        let key = CString::new(key).ok()?;
        // SAFETY: `get_property` is the host's function and `instance` its live instance
        // (we are inside FLBPluginInit); it returns host-owned memory or null, which is
        // copied before anything else runs.
        unsafe {
            let value = (self.get_property)(key.as_ptr(), self.instance);
            (!value.is_null()).then(|| CStr::from_ptr(value).to_string_lossy().into_owned())
        }
    }

    /// The instance's alias, or its numbered name (`rustsink.0`), if the host tells.
    pub(crate) fn instance_name(&self) -> Option<String> {
        let symbol = host_symbol(FLB_SYMBOL_OUTPUT_NAME)?;
        // SAFETY: `flb_output_name` has had this signature in every version that exports
        // it (1.9.10 to 5.1.1), and `instance` is live during init.
        let name_fn: flb_output_name_fn = unsafe { std::mem::transmute(symbol) };
        // SAFETY: as above; the result is host-owned and copied at once.
        unsafe {
            let name = name_fn?(self.instance);
            (!name.is_null()).then(|| CStr::from_ptr(name).to_string_lossy().into_owned())
        }
    }

    /// A logger for this instance: through `log_print` at the instance's `log_level` on
    /// 2.0.0 and later, to stderr at `FLB_LOG_LEVEL` before.
    pub(crate) fn logger(&self, instance_name: String) -> Logger {
        let Some(log_api) = self.log_api else {
            return Logger::stderr(instance_name, Threshold::from_env());
        };
        // The instance's level is read once here, while the instance pointer is known to
        // be valid; later lines never touch the instance.
        let most_verbose = Level::ALL
            .into_iter()
            .rev()
            // SAFETY: `check` is the host's output_log_check and `instance` is live.
            .find(|level| unsafe { (log_api.check)(self.instance, *level as c_int) } != 0);
        let print = log_api.print;
        Logger::with_writer(
            instance_name,
            Threshold(most_verbose),
            Box::new(move |level, line| {
                let line = CString::new(line.replace('\0', " ")).unwrap_or_default();
                // SAFETY: `print` is the host's log_print, valid for the life of the host;
                // the format is "%s" with one NUL-terminated string argument.
                unsafe {
                    print(
                        level as c_int,
                        c"rustsink".as_ptr(),
                        0,
                        c"%s".as_ptr(),
                        line.as_ptr(),
                    )
                }
            }),
        )
    }

    /// Stores the per-instance handle where Fluent Bit passes it back to flush and exit.
    pub(crate) fn set_remote_context(&self, handle: *mut c_void) {
        // SAFETY: `from_init` checked `context` is non-null; it is the instance's proxy
        // context, whose first field belongs to the plugin.
        unsafe { (*(*self.plugin).context).remote_context = handle }
    }
}

/// Looks a symbol up in the host process (the Fluent Bit binary and what it loaded
/// globally), without loading anything.
fn host_symbol(name: &[u8]) -> Option<*mut c_void> {
    let name = CStr::from_bytes_with_nul(name).ok()?;
    // SAFETY: dlsym with RTLD_DEFAULT only reads the loader's tables.
    let symbol = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!symbol.is_null()).then_some(symbol)
}
