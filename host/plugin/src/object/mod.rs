//! Turning events into the bytes of an object, and reading them back after a restart.

pub mod check;
pub mod codec;
pub mod encode;
pub mod key;
pub mod writer;
