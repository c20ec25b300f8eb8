//! Contract `rustsink:plugin@0.2.0` (`wit/plugin.wit`), the newest: filters get the tag
//! and answer with an outcome per event.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "filter",
});

/// The sink world, which shares the filter world's types and host functions.
pub mod sink {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "sink",
        with: {
            "rustsink:plugin/types": super::rustsink::plugin::types,
            "rustsink:plugin/host": super::rustsink::plugin::host,
        },
    });
}

/// The version, as components name it in their imports.
pub const VERSION: &str = "0.2.0";

// `self::`: rustdoc's builds know this crate as `rustsink` too.
pub use self::rustsink::plugin::host::Level;
pub use self::rustsink::plugin::types::{OptionSpec, Outcome};
