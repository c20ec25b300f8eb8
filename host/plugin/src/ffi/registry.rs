//! The live instances, found by the handle Fluent Bit keeps in `remote_context`.
//!
//! The handle is a number, never a pointer rustsink dereferences: Fluent Bit 1.9 (AWS's
//! build) passes the last instance's context to every `FLBPluginExitCtx` call, and may pass
//! it more than once, so a handle may be stale or repeated. Looking it up here makes exit
//! idempotent and a wrong handle harmless.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::ptr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::pipeline::Instance;

struct Registry {
    next_handle: usize,
    /// How many instances this load of the plugin has initialised: the fallback name.
    initialised: usize,
    live: BTreeMap<usize, Arc<Instance>>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next_handle: 1,
    initialised: 0,
    live: BTreeMap::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    // A panic while the lock was held leaves plain data behind, still consistent.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts a new load of the plugin (Register, also after a hot reload).
pub(crate) fn reset_names() {
    registry().initialised = 0;
}

/// The name Fluent Bit gives the next instance (`rustsink.N`), for hosts that do not say.
pub(crate) fn fallback_name() -> String {
    format!("{}.{}", crate::log::PLUGIN_NAME, registry().initialised)
}

/// Keeps an instance and returns its handle for `remote_context`.
pub(crate) fn insert(instance: Arc<Instance>) -> *mut c_void {
    let mut registry = registry();
    let handle = registry.next_handle;
    registry.next_handle += 1;
    registry.initialised += 1;
    registry.live.insert(handle, instance);
    ptr::without_provenance_mut(handle)
}

/// Counts an instance whose init failed, so the next one still gets Fluent Bit's number.
pub(crate) fn skip_name() {
    registry().initialised += 1;
}

/// The instance behind a handle, if it is live.
pub(crate) fn get(handle: *mut c_void) -> Option<Arc<Instance>> {
    registry().live.get(&handle.addr()).cloned()
}

/// The only live instance, for the context-free `FLBPluginFlush`.
pub(crate) fn only() -> Option<Arc<Instance>> {
    let registry = registry();
    let mut live = registry.live.values();
    match (live.next(), live.next()) {
        (Some(instance), None) => Some(Arc::clone(instance)),
        _ => None,
    }
}

/// Takes the instance behind a handle out of the registry; None if it already left.
pub(crate) fn remove(handle: *mut c_void) -> Option<Arc<Instance>> {
    registry().live.remove(&handle.addr())
}

/// Takes every live instance out of the registry.
pub(crate) fn drain() -> Vec<Arc<Instance>> {
    std::mem::take(&mut registry().live).into_values().collect()
}
