//! WebAssembly components, hosted with wasmtime: filters applied to each chunk before
//! it reaches the object engine, and sinks that take the object engine's place.
//!
//! - [`engine`]: the process's one wasmtime engine, and the ticker that bounds calls;
//! - [`cache`]: components compiled once and kept precompiled on disk;
//! - [`contract`]: the versions of the contract (`wit/`) this host loads, one bindings
//!   module each;
//! - [`sandbox`]: what every component runs in: a memory cap, a deadline per call, no
//!   files, network, environment or clock;
//! - [`filter`]: loading, configuring and calling filter components;
//! - [`sink`]: the same for sink components, with the HTTP that `http` grants;
//! - [`chain`]: the filters of an instance in order, with the failure policy;
//! - `output`: what components print, kept for the log within bounds.

pub mod cache;
pub mod chain;
pub mod contract;
pub mod engine;
pub mod filter;
mod http;
mod output;
pub mod sandbox;
pub mod sink;

/// A component that could not be started: the key it is configured under, the file, and
/// the cause, in one message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(String);

impl StartError {
    fn new(text: impl std::fmt::Display) -> StartError {
        StartError(text.to_string())
    }
}
