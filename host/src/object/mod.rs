//! Turning events into the bytes of an object.

pub mod deflate;
pub mod encode;
pub mod key;
pub mod writer;
