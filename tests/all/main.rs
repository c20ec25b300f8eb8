//! End-to-end tests: the built `librustsink.so` and `rustsink` command, driven the way
//! Fluent Bit drives them.

mod cli;
mod codecs;
mod contract;
mod crash;
mod credentials;
mod damage;
mod deploy;
mod ffi;
mod filters;
mod hardening;
mod metrics;
mod objects;
mod parquet;
mod process;
mod quarantine;
mod release;
mod s3;
mod setup;
mod sinks;
mod support;
mod uploads;
