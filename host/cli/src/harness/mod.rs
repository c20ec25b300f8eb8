//! Fluent Bit's side of the proxy ABI, played exactly as Fluent Bit plays it, so that
//! `librustsink.so` can be loaded, configured, fed and unloaded without Fluent Bit.
//!
//! What it reproduces (see `docs/abi.md`):
//!
//! - `dlopen(RTLD_LAZY)` of the plugin, after the host's own exported symbols are in the
//!   global scope: `flb_output_name` on every version, `flb_output_log_check` from 2.0;
//! - `FLBPluginRegister` with a `malloc(32)` definition block;
//! - `FLBPluginInit` once per `[OUTPUT]` with the shared `flbgo_output_plugin`, its
//!   `o_ins`/`context` pointed at the instance being initialised, and an API table of the
//!   host's size (`malloc` of 1 slot for 1.9, 9 slots for 4.x/5.x);
//! - properties answered case-insensitively from the section, without the keys Fluent Bit
//!   core consumes (`Name`, `Match`, `Alias`, `Workers`, `Log_Level`, ...);
//! - `FLBPluginFlushCtx` on a thread with a 24 KiB stack (the coroutine stack size on
//!   x86_64), with the tag in a fresh `malloc` that is freed after the call; any number
//!   of such calls at once;
//! - shutdown: `FLBPluginExitCtx` per instance (on 1.9, always with the last-initialised
//!   instance's context, as AWS's 1.9.10 build does), `FLBPluginUnregister`, `dlclose`.
//!
//! Only one emulated Fluent Bit can exist in a process at a time, as with the real one:
//! [`FluentBit::load`] waits for the previous one to be dropped. And a process plays one
//! version only: once the plugin has found a host symbol, glibc keeps the library that
//! defines it loaded for as long as the plugin is (and a Rust library with thread-local
//! destructors stays loaded), so the symbols of 5.x could not be taken away again to play
//! 1.9. [`FluentBit::load`] refuses a second version; play it in a new process.
#![allow(unsafe_code, reason = "this is Fluent Bit's side of the C boundary")]

mod host_symbols;
mod instance;

use std::ffi::{CString, c_char, c_int, c_void};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use libloading::os::unix::{Library, RTLD_LAZY};

use self::host_symbols::HostSymbols;
pub use self::host_symbols::{LogLine, take_log_lines};
use self::instance::HarnessInstance;
use rustsink::abi::{
    FLB_API_SLOTS_V1_9, FLB_API_SLOTS_V4_0_3, FLB_PROXY_DEF_SIZE, FLB_PROXY_GOLANG,
    FLB_PROXY_OUTPUT_PLUGIN, flb_api, flb_plugin_exit_ctx_fn, flb_plugin_flush_ctx_fn,
    flb_plugin_init_fn, flb_plugin_proxy_context, flb_plugin_proxy_def, flb_plugin_register_fn,
    flb_plugin_unregister_fn, flbgo_output_plugin,
};
use rustsink::event::chunk::EventFormat;

/// The stack Fluent Bit gives a flush coroutine on x86_64 (1.5 x PTHREAD_STACK_MIN).
pub const FLUSH_STACK_SIZE: usize = 24 * 1024;

/// The CPU time the calling thread has used so far, user and system. `rustsink run` tells
/// with it the share of its input thread (reading and packing lines, which Fluent Bit's
/// input does in production) from the plugin's.
pub fn thread_cpu_time() -> Duration {
    // SAFETY: rusage is plain integers and timevals, for which all zeros is a value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage through the pointer, which is valid and
    // exclusive for the call; RUSAGE_THREAD is defined on Linux.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let seconds = |time: libc::timeval| {
        Duration::from_secs(time.tv_sec.max(0) as u64)
            + Duration::from_micros(time.tv_usec.max(0) as u64)
    };
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The Fluent Bit generation being played.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostVersion {
    /// Fluent Bit 1.9.10, as in aws-for-fluent-bit 2.x (the `stable` tag): a one-slot API
    /// table, V1 events, exit always with the last instance's context.
    V1_9,
    /// Fluent Bit 4.x and 5.x: a nine-slot API table, V2 events, exit per instance.
    V5,
}

impl HostVersion {
    /// The events this version writes.
    pub fn event_format(self) -> EventFormat {
        match self {
            HostVersion::V1_9 => EventFormat::V1,
            HostVersion::V5 => EventFormat::V2,
        }
    }

    fn api_slots(self) -> usize {
        match self {
            HostVersion::V1_9 => FLB_API_SLOTS_V1_9 as usize,
            HostVersion::V5 => FLB_API_SLOTS_V4_0_3 as usize,
        }
    }
}

impl std::str::FromStr for HostVersion {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "1.9" | "1.9.10" => Ok(HostVersion::V1_9),
            "4" | "5" | "5.1" | "5.1.1" => Ok(HostVersion::V5),
            _ => Err(format!(
                "unknown Fluent Bit version '{text}': expected 1.9 or 5"
            )),
        }
    }
}

/// One `[OUTPUT]` section: its keys and values as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputSection {
    /// Key/value pairs in order.
    pub properties: Vec<(String, String)>,
}

impl OutputSection {
    /// A section from pairs.
    pub fn new<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        OutputSection {
            properties: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of a key, ignoring case; the last one wins, as in Fluent Bit.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// An initialised output, by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputId(usize);

/// The plugin's exports, resolved as Fluent Bit resolves them.
#[derive(Clone, Copy)]
struct Exports {
    register: flb_plugin_register_fn,
    init: flb_plugin_init_fn,
    flush_ctx: flb_plugin_flush_ctx_fn,
    exit_ctx: flb_plugin_exit_ctx_fn,
    unregister: flb_plugin_unregister_fn,
}

struct Output {
    instance: Box<HarnessInstance>,
    context: *mut flb_plugin_proxy_context,
}

/// Serialises emulated Fluent Bits within one process.
static ONE_PER_PROCESS: Mutex<()> = Mutex::new(());

/// The version this process plays.
static PLAYED: OnceLock<HostVersion> = OnceLock::new();

/// A loaded plugin and the instances Fluent Bit created for it.
pub struct FluentBit {
    version: HostVersion,
    plugin: Option<Library>,
    exports: Exports,
    def: *mut flb_plugin_proxy_def,
    api: *mut flb_api,
    go_plugin: *mut flbgo_output_plugin,
    outputs: Vec<Output>,
    plugin_name: CString,
    shut_down: bool,
    // Dropped last: the plugin may log until it is unloaded.
    _host_symbols: HostSymbols,
    _one_per_process: MutexGuard<'static, ()>,
}

impl std::fmt::Debug for FluentBit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FluentBit")
            .field("version", &self.version)
            .field("outputs", &self.outputs.len())
            .field("shut_down", &self.shut_down)
            .finish()
    }
}

impl FluentBit {
    /// Loads the plugin and registers it, as `fluent-bit -e <path>` does.
    ///
    /// # Errors
    ///
    /// When the library cannot be loaded, lacks a required export, or refuses to register
    /// as a Go-proxy output plugin; when this process already played another version.
    pub fn load(path: &Path, version: HostVersion) -> Result<FluentBit> {
        let guard = ONE_PER_PROCESS
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let played = *PLAYED.get_or_init(|| version);
        if played != version {
            bail!(
                "this process already played Fluent Bit {played:?}, whose exported symbols stay \
                 loaded; play {version:?} in a new process"
            );
        }
        let host_symbols = HostSymbols::load(version)?;
        // SAFETY: loading runs the library's initialisers; librustsink has none that
        // matter, and any plugin Fluent Bit loads is trusted the same way.
        let plugin = unsafe { Library::open(Some(path), RTLD_LAZY) }
            .with_context(|| format!("loading the plugin {}", path.display()))?;
        let exports = Exports::resolve(&plugin)
            .with_context(|| format!("resolving the exports of {}", path.display()))?;

        // SAFETY: plain C allocations, freed in `shutdown`; the definition block is
        // uninitialised apart from `type`, as Fluent Bit leaves it.
        let def =
            unsafe { libc::malloc(FLB_PROXY_DEF_SIZE as usize) }.cast::<flb_plugin_proxy_def>();
        if def.is_null() {
            bail!("out of memory for the definition block");
        }
        // SAFETY: `def` is a fresh 32-byte block.
        unsafe { ptr::addr_of_mut!((*def).type_).write(0) };
        let mut fluent_bit = FluentBit {
            version,
            plugin: Some(plugin),
            exports,
            def,
            api: ptr::null_mut(),
            go_plugin: ptr::null_mut(),
            outputs: Vec::new(),
            plugin_name: CString::default(),
            shut_down: false,
            _host_symbols: host_symbols,
            _one_per_process: guard,
        };
        fluent_bit.register()?;
        Ok(fluent_bit)
    }

    fn register(&mut self) -> Result<()> {
        let register = self
            .exports
            .register
            .context("FLBPluginRegister is missing")?;
        // SAFETY: `def` is a live 32-byte block, as Fluent Bit passes it.
        let ret = unsafe { register(self.def) };
        if ret == -1 {
            bail!("FLBPluginRegister refused to register (returned -1)");
        }
        // SAFETY: Register filled the five fields; Fluent Bit reads them the same way.
        let (kind, proxy, name) =
            unsafe { ((*self.def).type_, (*self.def).proxy, (*self.def).name) };
        if proxy != FLB_PROXY_GOLANG as c_int || kind != FLB_PROXY_OUTPUT_PLUGIN as c_int {
            bail!(
                "the plugin registered as type {kind}, proxy {proxy}; expected an output \
                 ({FLB_PROXY_OUTPUT_PLUGIN}) of the Go proxy ({FLB_PROXY_GOLANG})"
            );
        }
        if name.is_null() {
            bail!("the plugin registered without a name");
        }
        // SAFETY: the name is a NUL-terminated string the plugin keeps alive.
        self.plugin_name = unsafe { std::ffi::CStr::from_ptr(name) }.to_owned();

        // The Go proxy's per-library struct, as proxy_go_register builds it.
        // SAFETY: plain C allocations of the host's sizes.
        unsafe {
            self.go_plugin = libc::calloc(1, size_of::<flbgo_output_plugin>()).cast();
            let slots = self.version.api_slots();
            self.api = libc::malloc(slots * size_of::<usize>()).cast();
            if self.go_plugin.is_null() || self.api.is_null() {
                bail!("out of memory for the plugin structs");
            }
            ptr::addr_of_mut!((*self.api).output_get_property).write(Some(instance::get_property));
            if slots == FLB_API_SLOTS_V4_0_3 as usize {
                let log_print = self._host_symbols.log_print();
                let api = &mut *self.api;
                api.input_get_property = None;
                api.output_get_cmt_instance = None;
                api.input_get_cmt_instance = None;
                api.log_print = Some(log_print);
                api.input_log_check = None;
                api.output_log_check = Some(instance::log_check);
                api.custom_get_property = None;
                api.custom_log_check = None;
            }
            let go = &mut *self.go_plugin;
            go.name = self.plugin_name.as_ptr().cast_mut();
            go.api = self.api;
            go.cb_init = self.exports.init;
            go.cb_flush_ctx = self.exports.flush_ctx;
            go.cb_exit_ctx = self.exports.exit_ctx;
        }
        Ok(())
    }

    /// The name the plugin registered.
    pub fn plugin_name(&self) -> String {
        self.plugin_name.to_string_lossy().into_owned()
    }

    /// The version being played.
    pub fn version(&self) -> HostVersion {
        self.version
    }

    /// Creates and initialises an `[OUTPUT]` instance, numbered like Fluent Bit's
    /// (`rustsink.0`, `rustsink.1`, ...).
    ///
    /// # Errors
    ///
    /// When `FLBPluginInit` does not return a positive value; Fluent Bit would exit.
    pub fn add_output(&mut self, section: &OutputSection) -> Result<OutputId> {
        let number = self.outputs.len();
        let instance = Box::new(HarnessInstance::new(&self.plugin_name(), number, section)?);
        // SAFETY: calloc'd like flb_output_new does; freed in shutdown.
        let context: *mut flb_plugin_proxy_context =
            unsafe { libc::calloc(1, size_of::<flb_plugin_proxy_context>()) }.cast();
        if context.is_null() {
            bail!("out of memory for the proxy context");
        }
        let init = self.exports.init.context("FLBPluginInit is missing")?;
        // SAFETY: as proxy_go_init: the shared struct points at this instance for the call.
        let ret = unsafe {
            (*self.go_plugin).o_ins = instance.as_host_pointer();
            (*self.go_plugin).context = context;
            init(self.go_plugin)
        };
        self.outputs.push(Output { instance, context });
        if ret <= 0 {
            bail!(
                "FLBPluginInit failed for {} (returned {ret})",
                self.outputs[number].instance.display_name()
            );
        }
        Ok(OutputId(number))
    }

    /// The instance name Fluent Bit shows for an output (its alias, or `rustsink.N`).
    pub fn output_name(&self, output: OutputId) -> String {
        self.outputs[output.0].instance.display_name()
    }

    /// A handle that flushes to one output from any thread.
    pub fn flusher(&self, output: OutputId) -> Flusher<'_> {
        // SAFETY: the context was calloc'd by add_output and lives until shutdown.
        let remote_context = unsafe { (*self.outputs[output.0].context).remote_context };
        Flusher {
            flush_ctx: self.exports.flush_ctx,
            remote_context: remote_context.addr(),
            _fluent_bit: PhantomData,
        }
    }

    /// Calls `FLBPluginExitCtx` with the context of `context_of`, whatever instance is
    /// exiting: what the 1.9 host does, and a repeat of it.
    pub fn exit_with_context_of(&mut self, context_of: OutputId) -> c_int {
        let exit = self.exports.exit_ctx.expect("resolved at load");
        // SAFETY: the context is live until shutdown.
        unsafe { exit((*self.outputs[context_of.0].context).remote_context) }
    }

    /// Shuts down as Fluent Bit does: exit each instance, unregister, unload.
    ///
    /// # Errors
    ///
    /// When `dlclose` fails.
    pub fn shutdown(mut self) -> Result<()> {
        self.shutdown_inner()
    }

    fn shutdown_inner(&mut self) -> Result<()> {
        if self.shut_down {
            return Ok(());
        }
        self.shut_down = true;
        let last = self.outputs.len().checked_sub(1);
        for index in 0..self.outputs.len() {
            let context_of = match self.version {
                // AWS's 1.9.10 passes the last-initialised instance's context every time.
                HostVersion::V1_9 => last.unwrap_or(index),
                HostVersion::V5 => index,
            };
            self.exit_with_context_of(OutputId(context_of));
        }
        if let Some(unregister) = self.exports.unregister {
            // SAFETY: the definition block is still live, as in flb_plugin_proxy_destroy.
            unsafe { unregister(self.def) };
        }
        // SAFETY: every block was allocated with malloc/calloc above and is freed once;
        // the plugin was told to let go of them (Exit, Unregister).
        unsafe {
            libc::free(self.def.cast());
            libc::free(self.api.cast());
            libc::free(self.go_plugin.cast());
            for output in &self.outputs {
                libc::free(output.context.cast());
            }
        }
        self.def = ptr::null_mut();
        self.api = ptr::null_mut();
        self.go_plugin = ptr::null_mut();
        if let Some(plugin) = self.plugin.take() {
            plugin.close().context("dlclose of the plugin")?;
        }
        Ok(())
    }
}

impl Drop for FluentBit {
    fn drop(&mut self) {
        let _ = self.shutdown_inner();
    }
}

impl Exports {
    fn resolve(library: &Library) -> Result<Exports> {
        /// Looks an export up; None when absent, like flb_plugin_proxy_symbol.
        fn symbol<T: Copy>(library: &Library, name: &str) -> Option<T> {
            // SAFETY: each export is read as the function-pointer type the ABI header
            // declares for it.
            unsafe { library.get::<T>(name.as_bytes()).ok().map(|s| *s) }
        }
        let exports = Exports {
            register: symbol(library, "FLBPluginRegister"),
            init: symbol(library, "FLBPluginInit"),
            flush_ctx: symbol(library, "FLBPluginFlushCtx"),
            exit_ctx: symbol(library, "FLBPluginExitCtx"),
            unregister: symbol(library, "FLBPluginUnregister"),
        };
        for (present, name) in [
            (exports.register.is_some(), "FLBPluginRegister"),
            (exports.init.is_some(), "FLBPluginInit"),
            (exports.flush_ctx.is_some(), "FLBPluginFlushCtx"),
            (exports.exit_ctx.is_some(), "FLBPluginExitCtx"),
        ] {
            if !present {
                bail!("{name} is not exported");
            }
        }
        Ok(exports)
    }
}

/// Flushes chunks to one output; `Copy` and `Send`, so any number of threads can flush at
/// once, as Fluent Bit's output workers do.
#[derive(Clone, Copy)]
pub struct Flusher<'a> {
    flush_ctx: flb_plugin_flush_ctx_fn,
    remote_context: usize,
    // Borrows the FluentBit, so the library outlives every flusher.
    _fluent_bit: PhantomData<&'a ()>,
}

impl std::fmt::Debug for Flusher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flusher")
            .field("remote_context", &self.remote_context)
            .finish()
    }
}

impl Flusher<'_> {
    /// Calls `FLBPluginFlushCtx` with the chunk and tag on a fresh thread whose stack is
    /// [`FLUSH_STACK_SIZE`], and returns what it returned. The tag is bytes, as Fluent
    /// Bit's are: usually UTF-8, but not always.
    pub fn flush<Tag: AsRef<[u8]> + ?Sized>(&self, chunk: &[u8], tag: &Tag) -> c_int {
        let flusher = *self;
        let tag = tag.as_ref();
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("flb-flush".into())
                .stack_size(FLUSH_STACK_SIZE)
                .spawn_scoped(scope, move || flusher.flush_here(chunk, tag))
                .expect("spawning a flush thread")
                .join()
                .expect("the flush thread panicked")
        })
    }

    /// Calls `FLBPluginFlushCtx` on the current thread.
    pub fn flush_here(&self, chunk: &[u8], tag: &[u8]) -> c_int {
        let flush = self.flush_ctx.expect("resolved at load");
        // SAFETY: as proxy_go_flush: the tag is copied into a fresh malloc'd,
        // NUL-terminated buffer that is freed after the call; the chunk is borrowed for
        // the call; the context is the one the plugin stored at init.
        unsafe {
            let tag_copy = libc::malloc(tag.len() + 1).cast::<c_char>();
            assert!(!tag_copy.is_null(), "out of memory for the tag");
            ptr::copy_nonoverlapping(tag.as_ptr().cast::<c_char>(), tag_copy, tag.len());
            *tag_copy.add(tag.len()) = 0;
            let ret = flush(
                ptr::without_provenance_mut::<c_void>(self.remote_context),
                chunk.as_ptr().cast(),
                chunk.len(),
                tag_copy,
            );
            libc::free(tag_copy.cast());
            ret
        }
    }
}

/// Where to find `librustsink.so`: `RUSTSINK_PLUGIN`, else beside the running executable
/// (or one directory up, for test binaries under `target/*/deps`).
pub fn default_plugin_path() -> PathBuf {
    if let Some(path) = std::env::var_os("RUSTSINK_PLUGIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().unwrap_or(Path::new("."));
    let beside = dir.join("librustsink.so");
    if beside.exists() {
        return beside;
    }
    dir.parent().unwrap_or(dir).join("librustsink.so")
}
