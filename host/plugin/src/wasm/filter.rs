//! Filter components: loaded and checked once, then called batch by batch in a
//! [sandbox](super::sandbox). A trap, a missed deadline or the memory cap ends the
//! instance's store; the next call starts a fresh one.
//!
//! Filters of every [contract version](super::contract) load; each is called in its
//! version's way, and answers in one of the forms of [`Answer`].

use std::path::Path;
use std::sync::Arc;

use wasmtime::Store;
use wasmtime::error::{Context, Result};

use super::contract::latest::{Description, Error, Processed};
use super::contract::{Version, latest, v0_1};
use super::sandbox::{ComponentFailure, HostState, Sandbox, World};
use crate::config::ComponentLimits;
use crate::log::Logger;

/// A loaded, checked filter component, ready to instantiate.
pub struct FilterComponent {
    sandbox: Sandbox,
    version: Version,
    pre: FilterPre,
    /// Entered for every call: wasi's waits (on pollables that are always ready) run on
    /// it instead of on a runtime of wasi's own, whose threads would outlive the plugin.
    /// A current-thread runtime starts no thread.
    waits: tokio::runtime::Runtime,
}

impl std::fmt::Debug for FilterComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterComponent")
            .field("sandbox", &self.sandbox)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl FilterComponent {
    /// Loads the component at `path`, checks that it is a filter of a contract version
    /// this host loads, and asks it for its description. [`FilterComponent::configure`]
    /// gives it its options.
    ///
    /// # Errors
    ///
    /// A file that is not a filter component of a version this host loads, or one that
    /// fails to describe itself.
    pub fn load(
        path: &Path,
        cache_dir: &Path,
        limits: ComponentLimits,
        log: &Logger,
    ) -> Result<FilterComponent> {
        let (component, version, linker) = Sandbox::load(path, cache_dir, World::Filter)?;
        let not_a_filter = || {
            format!(
                "{} is not a filter component of {version} (world 'filter'): was the \
                 contract changed without a new version number?",
                path.display()
            )
        };
        let instance_pre = linker
            .instantiate_pre(&component)
            .with_context(not_a_filter)?;
        let pre = match version {
            Version::V0_1 => v0_1::FilterPre::new(instance_pre).map(FilterPre::V0_1),
            Version::V0_2 => latest::FilterPre::new(instance_pre).map(FilterPre::V0_2),
        };
        let mut loaded = FilterComponent {
            sandbox: Sandbox::new(path, limits, log)?,
            version,
            pre: pre.with_context(not_a_filter)?,
            waits: tokio::runtime::Builder::new_current_thread()
                .build()
                .context("starting the runtime of a filter's waits")?,
        };
        let _entered = loaded.waits.enter();
        let (mut store, filter) = loaded.instantiate()?;
        let description = filter
            .describe(&mut store)
            .map_err(|e| loaded.sandbox.failure(e, None))
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

    /// The contract version it was built for.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The deadline of each call.
    pub fn timeout(&self) -> std::time::Duration {
        self.sandbox.limits.timeout
    }

    /// Starts a configured instance.
    ///
    /// # Errors
    ///
    /// When the component refuses its options, or fails while starting.
    pub fn start(self: &Arc<Self>) -> Result<FilterInstance, ComponentFailure> {
        let _entered = self.waits.enter();
        let (mut store, filter) = self
            .instantiate()
            .map_err(|e| self.sandbox.failure(e, None))?;
        self.sandbox.limit(&mut store);
        let result = filter.init(&mut store, &self.sandbox.options);
        let printed = self.sandbox.forward_output(&mut store);
        match result {
            Ok(Ok(())) => Ok(FilterInstance {
                component: Arc::clone(self),
                running: Some((store, filter)),
            }),
            Ok(Err(error)) => Err(error.into()),
            Err(error) => Err(self.sandbox.failure(error, printed)),
        }
    }

    fn instantiate(&self) -> Result<(Store<HostState>, Filter)> {
        let mut store = self.sandbox.store();
        let filter = match &self.pre {
            FilterPre::V0_1(pre) => pre.instantiate(&mut store).map(Filter::V0_1),
            FilterPre::V0_2(pre) => pre.instantiate(&mut store).map(Filter::V0_2),
        }
        .with_context(|| format!("instantiating {}", self.sandbox.path.display()))?;
        Ok((store, filter))
    }
}

/// What a filter made of a batch.
#[derive(Debug)]
pub enum Answer {
    /// The events that replace the whole batch (contract 0.1).
    Batch(Vec<u8>),
    /// An outcome per event, and the events that replace some (contract 0.2 on).
    Outcomes(Processed),
}

/// A filter ready to instantiate, of its contract version.
enum FilterPre {
    V0_1(v0_1::FilterPre<HostState>),
    V0_2(latest::FilterPre<HostState>),
}

/// An instance's exports, of its contract version.
enum Filter {
    V0_1(v0_1::Filter),
    V0_2(latest::Filter),
}

impl Filter {
    fn describe(&self, store: &mut Store<HostState>) -> Result<Description> {
        match self {
            Filter::V0_1(filter) => filter.call_describe(store).map(Description::from),
            Filter::V0_2(filter) => filter.call_describe(store),
        }
    }

    fn init(
        &self,
        store: &mut Store<HostState>,
        options: &[(String, String)],
    ) -> Result<Result<(), Error>> {
        match self {
            Filter::V0_1(filter) => Ok(filter.call_init(store, options)?.map_err(Error::from)),
            Filter::V0_2(filter) => filter.call_init(store, options),
        }
    }

    fn process(
        &self,
        store: &mut Store<HostState>,
        tag: &str,
        batch: &[u8],
    ) -> Result<Result<Answer, Error>> {
        match self {
            Filter::V0_1(filter) => Ok(filter
                .call_process(store, batch)?
                .map(Answer::Batch)
                .map_err(Error::from)),
            Filter::V0_2(filter) => Ok(filter
                .call_process(store, tag, batch)?
                .map(Answer::Outcomes)),
        }
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

    /// Runs one batch of `tag` through the filter. After a trap, a timeout or the memory
    /// cap, the instance is dropped and the next call starts a new one.
    ///
    /// # Errors
    ///
    /// Why the batch did not come through.
    pub fn process(&mut self, tag: &str, batch: &[u8]) -> Result<Answer, ComponentFailure> {
        let component = Arc::clone(&self.component);
        if self.running.is_none() {
            let fresh = component.start()?;
            self.running = fresh.running;
        }
        let (store, filter) = self.running.as_mut().expect("started above");
        let sandbox = &component.sandbox;
        let _entered = component.waits.enter();
        sandbox.limit(store);
        let result = filter.process(&mut *store, tag, batch);
        let printed = sandbox.forward_output(store);
        match result {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(error)) => Err(error.into()),
            Err(error) => {
                // The store is poisoned: start over on the next batch.
                self.running = None;
                Err(sandbox.failure(error, printed))
            }
        }
    }
}
