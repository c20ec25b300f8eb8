//! What every component runs in, filter or sink: a store with a memory cap and a
//! deadline per call, no files, network or environment, clocks that stand still, and its
//! stdout and stderr forwarded to the plugin's log line by line.
//!
//! A `Sandbox` is the loaded, described and configured side of a component that both
//! worlds share; [`super::filter`] and [`super::sink`] add their world's calls.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmtime::component::Resource;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::error::{Context, Result, bail};
use wasmtime::{Store, Trap};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{DynPollable, Pollable};

use super::output::ComponentOutput;
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::contract::latest::rustsink::plugin::host::{self, Level};
use super::contract::latest::rustsink::plugin::types;
use super::contract::latest::{Description, Error};
use super::contract::{self, Version};
use super::engine::TickerGuard;
use super::http::{self, HttpGrant};
use super::{cache, engine};
use crate::config::ComponentLimits;
use crate::log::Logger;

/// The two kinds of component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// Batches in, batches out (`world filter`).
    Filter,
    /// Batches delivered (`world sink`).
    Sink,
}

impl World {
    fn name(self) -> &'static str {
        match self {
            World::Filter => "filter",
            World::Sink => "sink",
        }
    }
}

/// Why a call into a component did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ComponentFailure {
    /// The component trapped (a panic, an unreachable, a bad memory access).
    #[error("the component trapped: {0}")]
    Trap(String),
    /// The call passed its deadline.
    #[error("the component took longer than its timeout ({0:?})")]
    Timeout(Duration),
    /// The component asked for more memory than its cap.
    #[error("the component went over its memory limit ({0} bytes)")]
    OutOfMemory(usize),
    /// The component returned an error.
    #[error("the component failed: {message}")]
    Failed {
        /// Its message.
        message: String,
        /// Whether it says a retry may succeed.
        retryable: bool,
    },
}

impl ComponentFailure {
    /// Whether trying again may succeed: all but an error the component says is final.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            ComponentFailure::Failed {
                retryable: false,
                ..
            }
        )
    }

    /// What went wrong, without the words around it.
    pub fn message(&self) -> String {
        match self {
            ComponentFailure::Failed { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

impl From<Error> for ComponentFailure {
    fn from(error: Error) -> ComponentFailure {
        ComponentFailure::Failed {
            message: error.message,
            retryable: error.retryable,
        }
    }
}

/// A loaded component of either world, with its description and options.
pub(super) struct Sandbox {
    pub(super) name: String,
    pub(super) path: PathBuf,
    pub(super) description: Description,
    pub(super) options: Vec<(String, String)>,
    pub(super) limits: ComponentLimits,
    pub(super) log: Logger,
    /// The outbound HTTP a sink is granted; None for filters.
    pub(super) http: Option<HttpGrant>,
    /// Keeps the epoch ticking for as long as the component lives: without it no call's
    /// deadline would ever come, in the plugin and in the command alike.
    _ticker: TickerGuard,
}

impl Sandbox {
    /// Loads the component at `path` (compiled once, cached in `cache_dir`), checks that
    /// it is of `world` and of a contract version this host loads, and returns it with
    /// its version and a linker for `world`.
    pub(super) fn load(
        path: &Path,
        cache_dir: &Path,
        world: World,
    ) -> Result<(Component, Version, Linker<HostState>)> {
        let engine = engine::engine();
        let component = cache::load(engine, path, cache_dir)?;
        let version = Version::of(engine, &component, path)?;
        if let Some(other) = world_of(engine, &component)
            && other != world
        {
            bail!(
                "{} is a {} component; it cannot be used as a {}",
                path.display(),
                other.name(),
                world.name()
            );
        }
        let mut linker = Linker::<HostState>::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        // Our monotonic clock replaces wasi's, whose waits would block the host thread
        // (past the call's deadline) on a runtime of wasi's own.
        linker.allow_shadowing(true);
        monotonic_clock::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
        linker.allow_shadowing(false);
        contract::add_to_linker(&mut linker)?;
        // Filters get wasi:http too, so that one built with tools that import it (as
        // componentize-js does) loads; every request it makes is refused.
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
        if world == World::Filter {
            http::refuse_requests(&mut linker, |state: &mut HostState| {
                (&mut state.table, &state.grant)
            })?;
        }
        Ok((component, version, linker))
    }

    /// A sandbox for the component at `path`, named after its file until it describes
    /// itself.
    pub(super) fn new(path: &Path, limits: ComponentLimits, log: &Logger) -> Result<Sandbox> {
        let ticker = TickerGuard::acquire().context("starting the wasm ticker thread")?;
        Ok(Sandbox {
            name: path.file_stem().map_or_else(
                || "component".to_owned(),
                |stem| stem.to_string_lossy().into_owned(),
            ),
            path: path.to_owned(),
            description: Description {
                name: String::new(),
                summary: String::new(),
                options: Vec::new(),
            },
            options: Vec::new(),
            limits,
            log: log.clone(),
            http: None,
            _ticker: ticker,
        })
    }

    /// Takes the component's description; its name is used in log lines from then on.
    pub(super) fn described(&mut self, description: Description) {
        self.name = description.name.clone();
        self.description = description;
    }

    /// Reads the options the component declares through `option` (which answers an
    /// option name with the value set for it), defaults applied.
    pub(super) fn configure(&mut self, option: &dyn Fn(&str) -> Option<String>) -> Result<()> {
        self.options = read_options(&self.description, option, &self.name)?;
        Ok(())
    }

    /// A fresh store, limits set.
    pub(super) fn store(&self) -> Store<HostState> {
        let output = ComponentOutput::default();
        let wasi = WasiCtxBuilder::new()
            .stdout(output.clone())
            .stderr(output.clone())
            .wall_clock(StoppedClock)
            .monotonic_clock(StoppedClock)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            grant: self
                .http
                .clone()
                .unwrap_or_else(|| HttpGrant::none(&self.log, &self.name)),
            limits: MemoryCap {
                bytes: self.limits.memory,
            },
            log: self.log.clone(),
            name: self.name.clone(),
            output,
            counters: BTreeMap::new(),
        };
        let mut store = Store::new(engine::engine(), state);
        store.limiter(|state| &mut state.limits);
        self.limit(&mut store);
        store
    }

    /// Gives the next call a full deadline.
    pub(super) fn limit(&self, store: &mut Store<HostState>) {
        store.set_epoch_deadline(engine::ticks(self.limits.timeout));
        store.epoch_deadline_trap();
    }

    /// Classifies a failed call; a trap's message carries `printed`, the last line the
    /// component printed before it ([`Sandbox::forward_output`]).
    pub(super) fn failure(
        &self,
        error: wasmtime::Error,
        printed: Option<String>,
    ) -> ComponentFailure {
        if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            ComponentFailure::Timeout(self.limits.timeout)
        } else if error.downcast_ref::<MemoryCapReached>().is_some() {
            ComponentFailure::OutOfMemory(self.limits.memory)
        } else {
            let cause = match error.downcast_ref::<Trap>() {
                Some(trap) => trap.to_string(),
                None => error.root_cause().to_string(),
            };
            match printed {
                Some(line) => ComponentFailure::Trap(format!("{cause} (it printed last: {line})")),
                None => ComponentFailure::Trap(cause),
            }
        }
    }

    /// Logs what the component printed during the last call, within the bounds of
    /// [`super::output`], and one line for what was left out; returns the last line, which
    /// names the cause of a trap more often than the trap does (a panic's message).
    pub(super) fn forward_output(&self, store: &mut Store<HostState>) -> Option<String> {
        let state = store.data_mut();
        let printed = state.output.drain();
        for line in &printed.lines {
            state.log.info(format_args!("[{}] {line}", state.name));
        }
        if printed.lines_left_out > 0 || printed.bytes_dropped > 0 {
            state.log.warn(format_args!(
                "[{}] printed more than is logged in one call: {} more lines and {} bytes \
                 were left out",
                state.name, printed.lines_left_out, printed.bytes_dropped
            ));
        }
        // A hint such as Rust's "note: run with `RUST_BACKTRACE=1`" is not the cause.
        printed
            .lines
            .into_iter()
            .rev()
            .find(|line| !line.trim().is_empty() && !line.starts_with("note: "))
    }
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// The memory cap of a component's store: a growth past it traps with
/// [`MemoryCapReached`], which a failed call is then recognised by.
#[derive(Debug)]
struct MemoryCap {
    bytes: usize,
}

/// A component asked for more memory than its cap.
#[derive(Debug, thiserror::Error)]
#[error("a memory of {desired} bytes is over the cap of {cap} bytes")]
struct MemoryCapReached {
    desired: usize,
    cap: usize,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        if desired > self.bytes {
            return Err(wasmtime::Error::new(MemoryCapReached {
                desired,
                cap: self.bytes,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        Ok(true)
    }
}

/// The world a component exports, by the function only that world has.
fn world_of(engine: &wasmtime::Engine, component: &Component) -> Option<World> {
    let mut world = None;
    for (name, _) in component.component_type().exports(engine) {
        match name {
            "process" => world = Some(World::Filter),
            "deliver" => world = Some(World::Sink),
            _ => {}
        }
    }
    world
}

/// Which world the component at `path` is, of which contract version, and its
/// description, for `rustsink describe`.
///
/// # Errors
///
/// A file that is not a component of this contract, or one that fails to describe itself.
pub fn describe(
    path: &Path,
    cache_dir: &Path,
    log: &Logger,
) -> Result<(World, Version, Description)> {
    let engine = engine::engine();
    let component = cache::load(engine, path, cache_dir)?;
    let world = world_of(engine, &component).with_context(|| {
        format!(
            "{} is neither a filter nor a sink component of {}",
            path.display(),
            contract::supported_range()
        )
    })?;
    let limits = ComponentLimits {
        memory: 64 << 20,
        timeout: Duration::from_secs(10),
    };
    let (version, description) = match world {
        World::Filter => {
            let filter = super::filter::FilterComponent::load(path, cache_dir, limits, log)?;
            (filter.version(), filter.description().clone())
        }
        World::Sink => {
            let sink = super::sink::SinkComponent::load(path, cache_dir, limits, &[], log)?;
            (sink.version(), sink.description().clone())
        }
    };
    Ok((world, version, description))
}

/// The declared options, from `option` or their defaults.
fn read_options(
    description: &Description,
    option: &dyn Fn(&str) -> Option<String>,
    component: &str,
) -> Result<Vec<(String, String)>> {
    let mut options = Vec::new();
    for spec in &description.options {
        match option(&spec.name).or_else(|| spec.default_value.clone()) {
            Some(value) => options.push((spec.name.clone(), value)),
            None if spec.required => bail!(
                "component '{component}' needs option '{}' ({})",
                spec.name,
                spec.description
            ),
            None => {}
        }
    }
    Ok(options)
}

/// What a component's store holds.
pub(super) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    grant: HttpGrant,
    limits: MemoryCap,
    log: Logger,
    name: String,
    /// What the component printed, on stdout or stderr.
    output: ComponentOutput,
    counters: BTreeMap<String, u64>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.grant,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

impl types::Host for HostState {}

impl host::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let line = format_args!("[{}] {message}", self.name);
        match level {
            Level::Error => self.log.error(line),
            Level::Warn => self.log.warn(line),
            Level::Info => self.log.info(line),
            Level::Debug | Level::Trace => self.log.debug(line),
        }
    }

    fn count(&mut self, name: String, delta: u64) {
        *self.counters.entry(name).or_default() += delta;
    }
}

/// `wasi:clocks/monotonic-clock` as components see it: it stands still at 0, so every
/// wait on it is over at once, and a component cannot hold the host's thread by sleeping.
impl monotonic_clock::Host for HostState {
    fn now(&mut self) -> Result<monotonic_clock::Instant> {
        Ok(0)
    }

    fn resolution(&mut self) -> Result<monotonic_clock::Duration> {
        Ok(1_000_000_000)
    }

    fn subscribe_instant(
        &mut self,
        _when: monotonic_clock::Instant,
    ) -> Result<Resource<DynPollable>> {
        self.ready_now()
    }

    fn subscribe_duration(
        &mut self,
        _duration: monotonic_clock::Duration,
    ) -> Result<Resource<DynPollable>> {
        self.ready_now()
    }
}

impl HostState {
    /// A pollable that is ready.
    fn ready_now(&mut self) -> Result<Resource<DynPollable>> {
        let ready = self.table.push(Ready)?;
        wasmtime_wasi::p2::subscribe(&mut self.table, ready)
    }
}

/// A wait that is already over.
struct Ready;

impl Pollable for Ready {
    fn ready<'a, 'b>(&'a mut self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(std::future::ready(()))
    }
}

/// A clock that stands still at the Unix epoch: components are not granted time.
struct StoppedClock;

impl HostWallClock for StoppedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for StoppedClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}

impl Drop for HostState {
    fn drop(&mut self) {
        if !self.counters.is_empty() {
            let counters: Vec<String> = self
                .counters
                .iter()
                .map(|(name, n)| format!("{name}={n}"))
                .collect();
            self.log.info(format_args!(
                "[{}] counters: {}",
                self.name,
                counters.join(", ")
            ));
        }
    }
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState")
            .field("name", &self.name)
            .finish()
    }
}
