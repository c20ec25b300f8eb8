//! WebAssembly components: filters applied to each chunk before it reaches the object
//! engine, hosted with wasmtime.
//!
//! - [`engine`]: the process's one wasmtime engine, and the ticker that bounds calls;
//! - [`cache`]: components compiled once and kept precompiled on disk;
//! - [`filter`]: loading, configuring and calling filter components, sandboxed, with
//!   a memory cap and a deadline per call;
//! - [`chain`]: the filters of an instance in order, with the failure policy.
//!
//! The contract is `wit/plugin.wit` (`rustsink:plugin@0.1.0`).

mod bindings;
pub mod cache;
pub mod chain;
pub mod engine;
pub mod filter;

/// The version of the contract this host speaks.
pub const CONTRACT: &str = "rustsink:plugin@0.1.0";
