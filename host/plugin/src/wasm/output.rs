//! What a component prints (stdout and stderr), kept for the log without ever failing it.
//!
//! A print that fails makes Rust's `println!` panic, which traps the component: a component
//! that printed a lot would then fail every chunk. So every write succeeds. Of what a
//! component prints during one call, the first [`KEPT_PER_CALL`] bytes are kept and the
//! rest only counted; after the call, at most [`LINES_PER_CALL`] lines go to the log, and
//! one more line says how much was left out.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// The most bytes of one call's output that are kept for the log.
pub const KEPT_PER_CALL: usize = 64 << 10;
/// The most lines of one call's output that are logged.
pub const LINES_PER_CALL: usize = 20;

/// A component's stdout and stderr, shared by every stream the component opens on them.
#[derive(Debug, Clone, Default)]
pub struct ComponentOutput {
    inner: Arc<Mutex<Captured>>,
}

#[derive(Debug, Default)]
struct Captured {
    kept: Vec<u8>,
    dropped: u64,
}

/// One call's output, ready for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Printed {
    /// The lines to log (not empty ones).
    pub lines: Vec<String>,
    /// Lines kept but left out of the log.
    pub lines_left_out: usize,
    /// Bytes not kept at all.
    pub bytes_dropped: u64,
}

impl ComponentOutput {
    fn take(&self, bytes: &[u8]) {
        let mut captured = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let room = KEPT_PER_CALL.saturating_sub(captured.kept.len());
        let kept = bytes.len().min(room);
        captured.kept.extend_from_slice(&bytes[..kept]);
        captured.dropped += (bytes.len() - kept) as u64;
    }

    /// Takes what was printed since the last time.
    pub fn drain(&self) -> Printed {
        let (kept, dropped) = {
            let mut captured = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            (
                std::mem::take(&mut captured.kept),
                std::mem::take(&mut captured.dropped),
            )
        };
        let text = String::from_utf8_lossy(&kept);
        let mut lines: Vec<String> = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(str::to_owned)
            .collect();
        let lines_left_out = lines.len().saturating_sub(LINES_PER_CALL);
        lines.truncate(LINES_PER_CALL);
        Printed {
            lines,
            lines_left_out,
            bytes_dropped: dropped,
        }
    }
}

impl IsTerminal for ComponentOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for ComponentOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl OutputStream for ComponentOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.take(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always ready for more: what does not fit is counted, not refused.
        Ok(KEPT_PER_CALL)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for ComponentOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for ComponentOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.take(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_write_succeeds_and_what_is_left_out_is_counted() {
        let mut output = ComponentOutput::default();
        let line = format!("{}\n", "x".repeat(99));
        for _ in 0..2000 {
            OutputStream::write(&mut output, Bytes::from(line.clone())).unwrap();
        }
        let printed = output.drain();
        assert_eq!(printed.lines.len(), LINES_PER_CALL);
        // The kept bytes end inside a line, which counts as one.
        assert_eq!(
            printed.lines_left_out,
            KEPT_PER_CALL.div_ceil(100) - LINES_PER_CALL
        );
        assert_eq!(printed.bytes_dropped, 2000 * 100 - KEPT_PER_CALL as u64);
        assert_eq!(output.drain(), Printed::default());
    }
}
