//! Filter components: loaded and checked once, then called batch by batch in a sandbox.
//!
//! A component gets no files, network, environment or clock (its clocks stand still at
//! the Unix epoch); its memory is capped and each call has a deadline. Its stdout and
//! stderr go to the plugin's log, line by line, prefixed with its name. A trap, a missed
//! deadline or the memory cap ends its store; the next call starts a fresh instance.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::error::{Context, Result, bail};
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

use super::bindings::rustsink::plugin::host::{self, Level};
use super::bindings::rustsink::plugin::types::{self, Description};
use super::bindings::{Filter, FilterPre};
use super::{CONTRACT, cache, engine};
use crate::config::FilterLimits as Limits;
use crate::log::Logger;

/// The most a component may print between two batches; more is cut.
const OUTPUT_LIMIT: usize = 1 << 20;

/// A loaded, checked filter component, ready to instantiate.
pub struct FilterComponent {
    name: String,
    path: PathBuf,
    description: Description,
    options: Vec<(String, String)>,
    pre: FilterPre<HostState>,
    limits: Limits,
    log: Logger,
}

/// Why a batch did not come through a filter.
#[derive(Debug, thiserror::Error)]
pub enum FilterFailure {
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

impl FilterComponent {
    /// Loads the component at `path`, checks that it speaks this host's contract, and
    /// asks it for its description. [`FilterComponent::configure`] gives it its options.
    ///
    /// # Errors
    ///
    /// A file that is not a filter component of this contract, or one that fails to
    /// describe itself.
    pub fn load(
        path: &Path,
        cache_dir: &Path,
        limits: Limits,
        log: &Logger,
    ) -> Result<FilterComponent> {
        let engine = engine::engine();
        let component = cache::load(engine, path, cache_dir)?;
        check_contract(engine, &component, path)?;
        let mut linker = Linker::<HostState>::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        Filter::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)?;
        let instance_pre = linker.instantiate_pre(&component).with_context(|| {
            format!(
                "{} is not a filter component of {CONTRACT} (world 'filter')",
                path.display()
            )
        })?;
        let pre = FilterPre::new(instance_pre)?;
        let file_name = path.file_stem().map_or_else(
            || "component".to_owned(),
            |stem| stem.to_string_lossy().into_owned(),
        );
        let mut loaded = FilterComponent {
            name: file_name,
            path: path.to_owned(),
            description: Description {
                name: String::new(),
                summary: String::new(),
                options: Vec::new(),
            },
            options: Vec::new(),
            pre,
            limits,
            log: log.clone(),
        };
        let (mut store, filter) = loaded.instantiate()?;
        let description = filter
            .call_describe(&mut store)
            .map_err(|e| loaded.failure(e))
            .with_context(|| format!("asking {} for its description", path.display()))?;
        loaded.name = description.name.clone();
        loaded.description = description;
        Ok(loaded)
    }

    /// Reads the options the component declares through `option` (which answers an
    /// option name with the value set for it), defaults applied.
    ///
    /// # Errors
    ///
    /// A required option that is not set; the message names the component and the option.
    pub fn configure(&mut self, option: &dyn Fn(&str) -> Option<String>) -> Result<()> {
        self.options = read_options(&self.description, option, &self.name)?;
        Ok(())
    }

    /// The component's name, as it describes itself.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the component says of itself.
    pub fn description(&self) -> &Description {
        &self.description
    }

    /// Starts a configured instance.
    ///
    /// # Errors
    ///
    /// When the component refuses its options, or fails while starting.
    pub fn start(self: &Arc<Self>) -> Result<FilterInstance, FilterFailure> {
        let (mut store, filter) = self.instantiate().map_err(|e| self.failure(e))?;
        self.limit(&mut store);
        match filter.call_init(&mut store, &self.options) {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                return Err(FilterFailure::Failed {
                    message: error.message,
                    retryable: error.retryable,
                });
            }
            Err(error) => return Err(self.failure(error)),
        }
        self.forward_output(&mut store);
        Ok(FilterInstance {
            component: Arc::clone(self),
            running: Some((store, filter)),
        })
    }

    fn instantiate(&self) -> Result<(Store<HostState>, Filter)> {
        let stdout = MemoryOutputPipe::new(OUTPUT_LIMIT);
        let stderr = MemoryOutputPipe::new(OUTPUT_LIMIT);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(StoppedClock)
            .monotonic_clock(StoppedClock)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.memory)
                .trap_on_grow_failure(true)
                .build(),
            log: self.log.clone(),
            name: self.name.clone(),
            stdout,
            stderr,
            printed: (0, 0),
            counters: BTreeMap::new(),
        };
        let mut store = Store::new(engine::engine(), state);
        store.limiter(|state| &mut state.limits);
        self.limit(&mut store);
        let filter = self
            .pre
            .instantiate(&mut store)
            .with_context(|| format!("instantiating {}", self.path.display()))?;
        Ok((store, filter))
    }

    fn limit(&self, store: &mut Store<HostState>) {
        store.set_epoch_deadline(engine::ticks(self.limits.timeout));
        store.epoch_deadline_trap();
    }

    /// Classifies a failed call.
    fn failure(&self, error: wasmtime::Error) -> FilterFailure {
        if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            FilterFailure::Timeout(self.limits.timeout)
        } else if grew_too_much(&error) {
            FilterFailure::OutOfMemory(self.limits.memory)
        } else {
            let cause = match error.downcast_ref::<Trap>() {
                Some(trap) => trap.to_string(),
                None => error.root_cause().to_string(),
            };
            FilterFailure::Trap(cause)
        }
    }

    /// Logs what the component printed since the last time, line by line. Returns
    /// whether its output pipes are more than half full (they cannot be emptied, and a
    /// full one makes the component's prints fail).
    fn forward_output(&self, store: &mut Store<HostState>) -> bool {
        let state = store.data_mut();
        for (pipe, printed) in [
            (&state.stdout, &mut state.printed.0),
            (&state.stderr, &mut state.printed.1),
        ] {
            let contents = pipe.contents();
            let new = &contents[(*printed).min(contents.len())..];
            if let Some(end) = new.iter().rposition(|&b| b == b'\n') {
                let text = String::from_utf8_lossy(&new[..end]);
                for line in text.lines().filter(|line| !line.trim().is_empty()) {
                    state.log.info(format_args!("[{}] {line}", state.name));
                }
                *printed += end + 1;
            }
        }
        state.printed.0.max(state.printed.1) > OUTPUT_LIMIT / 2
    }
}

impl std::fmt::Debug for FilterComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterComponent")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn grew_too_much(error: &wasmtime::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .to_string()
            .contains("forcing trap when growing memory")
    })
}

/// A running instance of a filter.
pub struct FilterInstance {
    component: Arc<FilterComponent>,
    running: Option<(Store<HostState>, Filter)>,
}

impl std::fmt::Debug for FilterInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterInstance")
            .field("component", &self.component)
            .field("running", &self.running.is_some())
            .finish()
    }
}

impl FilterInstance {
    /// The component this is an instance of.
    pub fn component(&self) -> &FilterComponent {
        &self.component
    }

    /// Runs one batch through the filter. After a trap, a timeout or the memory cap, the
    /// instance is dropped and the next call starts a new one.
    ///
    /// # Errors
    ///
    /// Why the batch did not come through.
    pub fn process(&mut self, batch: &[u8]) -> Result<Vec<u8>, FilterFailure> {
        let component = Arc::clone(&self.component);
        if self.running.is_none() {
            let fresh = component.start()?;
            self.running = fresh.running;
        }
        let (store, filter) = self.running.as_mut().expect("started above");
        component.limit(store);
        let result = filter.call_process(&mut *store, batch);
        if component.forward_output(store) {
            // A chatty component: its next batch goes to a fresh instance, whose output
            // pipes are empty.
            self.running = None;
        }
        match result {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(error)) => Err(FilterFailure::Failed {
                message: error.message,
                retryable: error.retryable,
            }),
            Err(error) => {
                // The store is poisoned: start over on the next batch.
                self.running = None;
                Err(component.failure(error))
            }
        }
    }
}

/// Refuses a component that imports another version of the contract.
fn check_contract(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
    path: &Path,
) -> Result<()> {
    let ours = CONTRACT.split('@').nth(1).unwrap_or_default();
    for (name, _) in component.component_type().imports(engine) {
        if let Some(version) = name
            .strip_prefix("rustsink:plugin/")
            .and_then(|rest| rest.split_once('@'))
            .map(|(_, version)| version)
            && !compatible(version, ours)
        {
            bail!(
                "{} was built for rustsink:plugin@{version}; this rustsink speaks {CONTRACT}: \
                 rebuild it with a rustsink-sdk for {ours}",
                path.display()
            );
        }
    }
    Ok(())
}

/// Semver compatibility of contract versions: same major, or for 0.x the same minor.
fn compatible(theirs: &str, ours: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> {
        v.split('.')
            .map(|p| p.parse().unwrap_or(u64::MAX))
            .collect()
    };
    let (theirs, ours) = (parts(theirs), parts(ours));
    match (theirs.as_slice(), ours.as_slice()) {
        ([0, a, ..], [0, b, ..]) => a == b,
        ([a, ..], [b, ..]) => a == b,
        _ => false,
    }
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
struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    log: Logger,
    name: String,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    /// How much of stdout and stderr has been logged.
    printed: (usize, usize),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_versions_follow_semver() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.3", "0.1.0"));
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(!compatible("1.0.0", "0.1.0"));
        assert!(compatible("1.4.0", "1.0.0"));
    }
}
