//! Sink components (`sink <file>.wasm`): each batch is handed to the component, whose
//! answer decides what Fluent Bit does with the chunk.
//!
//! A sink runs in the same [sandbox](super::sandbox) as a filter, plus the outbound HTTP
//! that `sink.allowed_hosts` grants (see `http.rs`). wasi-http needs an async
//! runtime: each sink instance owns a one-thread tokio runtime, entered for every call,
//! and shut down with the instance, so that no thread outlives the plugin.
//!
//! The sink world is the same in every [contract version](super::contract): sinks of
//! each are called through the newest bindings, which check the exports they call.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;
use wasmtime::error::{Context, Result};

use super::contract::Version;
use super::contract::latest::Description;
use super::contract::latest::sink::{Sink, SinkPre};
use super::http::HttpGrant;
use super::sandbox::{ComponentFailure, HostState, Sandbox, World};
use crate::config::{AllowedHost, ComponentLimits, ComponentSinkConfig};
use crate::log::Logger;

/// A loaded, checked sink component, ready to instantiate.
pub struct SinkComponent {
    sandbox: Sandbox,
    version: Version,
    pre: SinkPre<HostState>,
}

impl std::fmt::Debug for SinkComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkComponent")
            .field("sandbox", &self.sandbox)
            .finish_non_exhaustive()
    }
}

impl SinkComponent {
    /// Loads the component at `path`, checks that it is a sink of a contract version
    /// this host loads,
    /// and asks it for its description. Its HTTP requests may go to `allowed_hosts`.
    ///
    /// # Errors
    ///
    /// A file that is not a sink component of a version this host loads, or one that
    /// fails to describe itself.
    pub fn load(
        path: &Path,
        cache_dir: &Path,
        limits: ComponentLimits,
        allowed_hosts: &[AllowedHost],
        log: &Logger,
    ) -> Result<SinkComponent> {
        let (component, version, linker) = Sandbox::load(path, cache_dir, World::Sink)?;
        let not_a_sink = || {
            format!(
                "{} is not a sink component of {version} (world 'sink'): was the contract \
                 changed without a new version number?",
                path.display()
            )
        };
        let instance_pre = linker
            .instantiate_pre(&component)
            .with_context(not_a_sink)?;
        let timeout = limits.timeout;
        let mut loaded = SinkComponent {
            sandbox: Sandbox::new(path, limits, log)?,
            version,
            pre: SinkPre::new(instance_pre).with_context(not_a_sink)?,
        };
        // Describing needs no HTTP (the grant comes after): a runtime without threads.
        let waits = tokio::runtime::Builder::new_current_thread()
            .build()
            .context("starting a runtime to describe the sink")?;
        let _entered = waits.enter();
        let (mut store, sink) = loaded.instantiate()?;
        let description = sink
            .call_describe(&mut store)
            .map_err(|e| loaded.sandbox.failure(e, None))
            .with_context(|| format!("asking {} for its description", path.display()))?;
        loaded.sandbox.described(description);
        loaded.sandbox.http = Some(HttpGrant::new(
            allowed_hosts,
            timeout,
            log,
            &loaded.sandbox.name,
        ));
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

    /// Starts a configured instance, with its runtime.
    ///
    /// # Errors
    ///
    /// When the component refuses its options, fails while starting, or the runtime's
    /// thread cannot start.
    pub fn start(self: &Arc<Self>) -> Result<SinkInstance, ComponentFailure> {
        let cannot = |what: &str, e: &dyn std::fmt::Display| {
            ComponentFailure::Trap(format!("cannot start {what}: {e}"))
        };
        let runtime = runtime().map_err(|e| cannot("the HTTP runtime", &e))?;
        let mut instance = SinkInstance {
            component: Arc::clone(self),
            running: None,
            runtime: Some(runtime),
        };
        instance.running = Some(instance.fresh()?);
        Ok(instance)
    }

    fn instantiate(&self) -> Result<(Store<HostState>, Sink)> {
        let mut store = self.sandbox.store();
        let sink = self
            .pre
            .instantiate(&mut store)
            .with_context(|| format!("instantiating {}", self.sandbox.path.display()))?;
        Ok((store, sink))
    }
}

/// Loads, configures and starts the sink component of an output; `lookup` answers its
/// `[OUTPUT]` keys, for the options the component declares (`sink.<option>`).
///
/// # Errors
///
/// A component that cannot be loaded, is not a sink, lacks a required option or refuses
/// its options; the message names the key, the component and the cause.
pub fn start_sink(
    sink: &ComponentSinkConfig,
    lookup: &dyn Fn(&str) -> Option<String>,
    cache_dir: &Path,
    log: &Logger,
) -> std::result::Result<SinkInstance, super::StartError> {
    let option = |name: &str| lookup(&format!("sink.{name}"));
    let component = SinkComponent::load(
        &sink.path,
        cache_dir,
        sink.limits.clone(),
        &sink.allowed_hosts,
        log,
    )
    .and_then(|mut component| component.configure(&option).map(|()| component))
    .map_err(|error| {
        super::StartError::new(format_args!("'sink' ({}): {error:#}", sink.path.display()))
    })?;
    let component = Arc::new(component);
    warn_of_refused_urls(&component, log);
    component.start().map_err(|failure| {
        super::StartError::new(format_args!(
            "'sink' ({}): component '{}' refused its options: {failure}",
            sink.path.display(),
            component.name()
        ))
    })
}

/// Warns of each option of the sink that is a URL whose host `sink.allowed_hosts` does not
/// allow: a configuration mistake that would make every request fail.
fn warn_of_refused_urls(component: &SinkComponent, log: &Logger) {
    let Some(grant) = &component.sandbox.http else {
        return;
    };
    for (name, value) in &component.sandbox.options {
        if let Some(reason) = grant.refusal_of(value) {
            log.warn(format_args!(
                "sink.{name} is {value}, but {reason}: every request to it will be refused, \
                 and Fluent Bit keeps the chunks and retries them until sink.allowed_hosts \
                 allows it"
            ));
        }
    }
}

/// The runtime wasi-http's requests run on.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("rustsink:sink-http")
        .enable_all()
        .build()
        .context("starting the sink's HTTP runtime")
}

/// A running instance of a sink.
pub struct SinkInstance {
    component: Arc<SinkComponent>,
    running: Option<(Store<HostState>, Sink)>,
    /// Taken at drop, after the store, so that the store's requests end first.
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for SinkInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkInstance")
            .field("component", &self.component)
            .field("running", &self.running.is_some())
            .finish_non_exhaustive()
    }
}

impl SinkInstance {
    /// The component this is an instance of.
    pub fn component(&self) -> &SinkComponent {
        &self.component
    }

    /// Hands one batch of `tag` to the sink. After a trap, a timeout or the memory cap,
    /// the instance is dropped and the next call starts a new one.
    ///
    /// # Errors
    ///
    /// Why the batch was not delivered.
    pub fn deliver(&mut self, tag: &str, batch: &[u8]) -> Result<(), ComponentFailure> {
        if self.running.is_none() {
            self.running = Some(self.fresh()?);
        }
        let sandbox = &self.component.sandbox;
        let runtime = self.runtime.as_ref().expect("present until drop");
        let _entered = runtime.enter();
        let (store, sink) = self.running.as_mut().expect("started above");
        sandbox.limit(store);
        let grant = sandbox.http.as_ref();
        grant.map(|grant| grant.take_refused());
        let result = sink.call_deliver(&mut *store, tag, batch);
        let printed = sandbox.forward_output(store);
        let refused = grant.is_some_and(|grant| grant.take_refused());
        match result {
            Ok(Ok(())) => Ok(()),
            // A request that sink.allowed_hosts refused is a configuration to fix, not
            // data to drop, whatever the component makes of it.
            Ok(Err(error)) if refused => Err(ComponentFailure::Failed {
                message: format!(
                    "{} (a request was refused: sink.allowed_hosts does not allow its host)",
                    error.message
                ),
                retryable: true,
            }),
            Ok(Err(error)) => Err(error.into()),
            Err(error) => {
                self.running = None;
                Err(sandbox.failure(error, printed))
            }
        }
    }

    /// A new, initialised store.
    fn fresh(&self) -> Result<(Store<HostState>, Sink), ComponentFailure> {
        let sandbox = &self.component.sandbox;
        let runtime = self.runtime.as_ref().expect("present until drop");
        let _entered = runtime.enter();
        let (mut store, sink) = self
            .component
            .instantiate()
            .map_err(|e| sandbox.failure(e, None))?;
        sandbox.limit(&mut store);
        let result = sink.call_init(&mut store, &sandbox.options);
        let printed = sandbox.forward_output(&mut store);
        match result {
            Ok(Ok(())) => Ok((store, sink)),
            Ok(Err(error)) => Err(error.into()),
            Err(error) => Err(sandbox.failure(error, printed)),
        }
    }
}

impl Drop for SinkInstance {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            {
                let _entered = runtime.enter();
                self.running = None;
            }
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}
