//! Contract `rustsink:plugin@0.1.0` (`wit/released/0.1.0`), kept so that components built
//! for it still load. Its filters return a whole batch; its sinks are those of the newest
//! contract under another name.

wasmtime::component::bindgen!({
    path: "../../wit/released/0.1.0",
    world: "filter",
});

// `self::`: rustdoc's builds know this crate as `rustsink` too.
use self::rustsink::plugin::{host, types};
use super::HostState;
use super::latest;

/// The version, as components name it in their imports.
pub const VERSION: &str = "0.1.0";

impl From<types::Description> for latest::Description {
    fn from(description: types::Description) -> latest::Description {
        latest::Description {
            name: description.name,
            summary: description.summary,
            options: description
                .options
                .into_iter()
                .map(|spec| latest::OptionSpec {
                    name: spec.name,
                    description: spec.description,
                    default_value: spec.default_value,
                    required: spec.required,
                })
                .collect(),
        }
    }
}

impl From<types::Error> for latest::Error {
    fn from(error: types::Error) -> latest::Error {
        latest::Error {
            message: error.message,
            retryable: error.retryable,
        }
    }
}

impl From<host::Level> for latest::Level {
    fn from(level: host::Level) -> latest::Level {
        use self::host::Level;
        match level {
            Level::Error => latest::Level::Error,
            Level::Warn => latest::Level::Warn,
            Level::Info => latest::Level::Info,
            Level::Debug => latest::Level::Debug,
            Level::Trace => latest::Level::Trace,
        }
    }
}

impl types::Host for HostState {}

impl host::Host for HostState {
    fn log(&mut self, level: host::Level, message: String) {
        latest::rustsink::plugin::host::Host::log(self, level.into(), message);
    }

    fn count(&mut self, name: String, delta: u64) {
        latest::rustsink::plugin::host::Host::count(self, name, delta);
    }
}
