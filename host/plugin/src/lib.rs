//! rustsink: a Fluent Bit output plugin.
//!
//! Fluent Bit loads `librustsink.so` through its proxy-plugin ABI (the one Go plugins
//! use) and hands it chunks of msgpack events. Data flows one way through these modules:
//!
//! ```text
//! ffi        the exported FLBPlugin* functions: catch panics, copy the chunk, hand off
//!  -> pipeline   one worker thread per [OUTPUT] instance; maps results to return codes
//!      -> wasm       filter components (wasmtime), applied to each chunk in order
//!      -> engine     groups flushes, windows events into objects, commits, closes
//!          -> event        decodes the chunk (V1 and V2 events, timestamps, group markers)
//!          -> object       JSON lines, gzip with commit points, keys from the template
//!          -> store        store_dir: the journal, object files, agent id, quarantine
//!      -> destination  where sealed objects go (`dir`: files under `path`)
//! metrics    counters and gauges per output, served at `metrics_listen`
//! config     the [OUTPUT] keys: one table, parsed and validated once at init
//! log        Fluent Bit's log_print when the host has it, Fluent Bit-style stderr lines
//!            otherwise
//! ```
//!
//! The `rustsink` command, and the harness that plays Fluent Bit's side of the boundary,
//! are another crate (`host/cli`): this library is the plugin and nothing more.
//!
//! All unsafe code lives in `ffi`, in `wasm::cache`, which loads precompiled components,
//! and in `object::codec::deflate`, which calls zlib's C API.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod config;
pub mod destination;
pub mod engine;
pub mod event;
mod ffi;
pub mod log;
pub mod metrics;
pub mod object;
pub mod pipeline;
pub mod store;
pub mod wasm;

/// The proxy ABI's structs and constants, as generated from
/// `fluent-bit/include/flb_proxy_abi.h`: what the harness needs to play Fluent Bit.
pub use ffi::bindings as abi;
