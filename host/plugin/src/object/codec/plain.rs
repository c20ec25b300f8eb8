//! Plain objects: the JSON lines as they are. Every line end is a point where a commit may
//! end, and a seal appends nothing.

use super::{Format, Piece};
use crate::object::writer::Committed;

/// The plain layout.
#[derive(Debug)]
pub struct Plain;

impl Format for Plain {
    fn header(&self) -> &'static [u8] {
        &[]
    }

    fn extension(&self) -> &'static str {
        ""
    }

    fn compresses(&self) -> bool {
        false
    }

    fn trailer(&self, _committed: &Committed) -> Vec<u8> {
        Vec::new()
    }

    fn scan(&self, stored: &[u8], visit: &mut dyn FnMut(Piece<'_>) -> bool) -> Result<(), String> {
        let mut start = 0;
        for line in stored.split_inclusive(|&byte| byte == b'\n') {
            start += line.len();
            if !visit(Piece::Data(line)) || (line.ends_with(b"\n") && !visit(Piece::End(start))) {
                break;
            }
        }
        Ok(())
    }

    fn reader<'a>(
        &self,
        stored: Box<dyn std::io::Read + 'a>,
    ) -> std::io::Result<Box<dyn std::io::Read + 'a>> {
        Ok(stored)
    }
}
