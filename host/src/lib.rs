//! rustsink: a Fluent Bit output plugin.
//!
//! Fluent Bit loads `librustsink.so` through its proxy-plugin ABI (the one Go plugins
//! use) and hands it chunks of msgpack events. Data flows one way through these modules:
//!
//! ```text
//! ffi        the exported FLBPlugin* functions: catch panics, copy the chunk, hand off
//!  -> pipeline   one worker thread per [OUTPUT] instance; maps results to return codes
//!      -> event      decodes the chunk (V1 and V2 events, timestamps, group markers)
//!      -> sink       delivers the events (`sink dir`: JSON lines under `path`)
//! config     the [OUTPUT] keys: one table, parsed and validated once at init
//! log        Fluent Bit's log_print when the host has it, Fluent Bit-style stderr lines
//!            otherwise
//! cli        the `rustsink` command, including the harness that plays Fluent Bit
//! ```
//!
//! All unsafe code lives in `ffi` and in `cli::harness`, which is Fluent Bit's side of the
//! same boundary.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod cli;
pub mod config;
pub mod event;
mod ffi;
pub mod log;
pub mod object;
pub mod pipeline;
pub mod sink;
