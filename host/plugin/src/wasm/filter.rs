//! Filter components: loaded and checked once, then called batch by batch in a
//! [sandbox](super::sandbox). A trap, a missed deadline or the memory cap ends the
//! instance's store; the next call starts a fresh one.

use std::path::Path;
use std::sync::Arc;

use wasmtime::Store;
use wasmtime::error::{Context, Result};

use super::bindings::rustsink::plugin::types::Description;
use super::bindings::{Filter, FilterPre};
use super::sandbox::{ComponentFailure, HostState, Sandbox, World};
use crate::config::ComponentLimits;
use crate::log::Logger;

/// A loaded, checked filter component, ready to instantiate.
pub struct FilterComponent {
    sandbox: Sandbox,
    pre: FilterPre<HostState>,
    /// Entered for every call: wasi's waits (on pollables that are always ready) run on
    /// it instead of on a runtime of wasi's own, whose threads would outlive the plugin.
    /// A current-thread runtime starts no thread.
    waits: tokio::runtime::Runtime,
}

impl std::fmt::Debug for FilterComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterComponent")
            .field("sandbox", &self.sandbox)
            .finish_non_exhaustive()
    }
}

impl FilterComponent {
    /// Loads the component at `path`, checks that it is a filter of this host's contract,
    /// and asks it for its description. [`FilterComponent::configure`] gives it its
    /// options.
    ///
    /// # Errors
    ///
    /// A file that is not a filter component of this contract, or one that fails to
    /// describe itself.
    pub fn load(
        path: &Path,
        cache_dir: &Path,
        limits: ComponentLimits,
        log: &Logger,
    ) -> Result<FilterComponent> {
        let (component, linker) = Sandbox::load(path, cache_dir, World::Filter)?;
        let instance_pre = linker.instantiate_pre(&component).with_context(|| {
            format!(
                "{} is not a filter component of {} (world 'filter')",
                path.display(),
                super::CONTRACT
            )
        })?;
        let mut loaded = FilterComponent {
            sandbox: Sandbox::new(path, limits, log)?,
            pre: FilterPre::new(instance_pre)?,
            waits: tokio::runtime::Builder::new_current_thread()
                .build()
                .context("starting the runtime of a filter's waits")?,
        };
        let _entered = loaded.waits.enter();
        let (mut store, filter) = loaded.instantiate()?;
        let description = filter
            .call_describe(&mut store)
            .map_err(|e| loaded.sandbox.failure(e))
            .with_context(|| format!("asking {} for its description", path.display()))?;
        loaded.sandbox.described(description);
        Ok(loaded)
    }

    /// Reads the options the component declares through `option` (which answers an
    /// option name with the value set for it), defaults applied.
    ///
    /// # Errors
    ///
    /// A required option that is not set; the message names the component and the option.
    pub fn configure(&mut self, option: &dyn Fn(&str) -> Option<String>) -> Result<()> {
        self.sandbox.configure(option)
    }

    /// The component's name, as it describes itself.
    pub fn name(&self) -> &str {
        &self.sandbox.name
    }

    /// What the component says of itself.
    pub fn description(&self) -> &Description {
        &self.sandbox.description
    }

    /// Starts a configured instance.
    ///
    /// # Errors
    ///
    /// When the component refuses its options, or fails while starting.
    pub fn start(self: &Arc<Self>) -> Result<FilterInstance, ComponentFailure> {
        let _entered = self.waits.enter();
        let (mut store, filter) = self.instantiate().map_err(|e| self.sandbox.failure(e))?;
        self.sandbox.limit(&mut store);
        let result = filter.call_init(&mut store, &self.sandbox.options);
        self.sandbox.forward_output(&mut store);
        match result {
            Ok(Ok(())) => Ok(FilterInstance {
                component: Arc::clone(self),
                running: Some((store, filter)),
            }),
            Ok(Err(error)) => Err(error.into()),
            Err(error) => Err(self.sandbox.failure(error)),
        }
    }

    fn instantiate(&self) -> Result<(Store<HostState>, Filter)> {
        let mut store = self.sandbox.store();
        let filter = self
            .pre
            .instantiate(&mut store)
            .with_context(|| format!("instantiating {}", self.sandbox.path.display()))?;
        Ok((store, filter))
    }
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
    pub fn process(&mut self, batch: &[u8]) -> Result<Vec<u8>, ComponentFailure> {
        let component = Arc::clone(&self.component);
        if self.running.is_none() {
            let fresh = component.start()?;
            self.running = fresh.running;
        }
        let (store, filter) = self.running.as_mut().expect("started above");
        let sandbox = &component.sandbox;
        let _entered = component.waits.enter();
        sandbox.limit(store);
        let result = filter.call_process(&mut *store, batch);
        sandbox.forward_output(store);
        match result {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(error)) => Err(error.into()),
            Err(error) => {
                // The store is poisoned: start over on the next batch.
                self.running = None;
                Err(sandbox.failure(error))
            }
        }
    }
}
