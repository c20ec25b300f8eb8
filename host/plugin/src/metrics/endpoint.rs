//! The HTTP endpoint of `metrics_listen`: `GET /metrics` answers with [`super::encode`].
//!
//! One thread per address, shared by the outputs that name it and joined when the last of
//! them stops, so that Unregister leaves no thread running in a library about to be
//! unloaded. The thread polls a non-blocking listener: stopping it needs no connection
//! to itself, which a firewall could refuse. Scrapes are served one at a time, each with a
//! short deadline, which is all a Prometheus scraper needs.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the listener is polled for a connection (and for the stop signal).
const POLL: Duration = Duration::from_millis(100);
/// How long a scraper may take to send its request, or to take the answer.
const DEADLINE: Duration = Duration::from_secs(5);
/// The longest request read; a scrape's is a few hundred bytes.
const MAX_REQUEST: usize = 16 * 1024;

struct Running {
    users: usize,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

static RUNNING: LazyLock<Mutex<HashMap<SocketAddr, Running>>> = LazyLock::new(Default::default);

/// An output's use of an endpoint; the endpoint stops when the last one is dropped.
#[derive(Debug)]
pub struct Endpoint {
    address: SocketAddr,
}

impl Endpoint {
    /// Serves the metrics at `address`, or joins the endpoint already there.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound (taken by another process, not this host's), or
    /// the thread cannot start.
    pub fn serve(address: SocketAddr) -> io::Result<Endpoint> {
        let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(endpoint) = running.get_mut(&address) {
            endpoint.users += 1;
            return Ok(Endpoint { address });
        }
        let listener = TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("rustsink:metrics".to_owned())
            .spawn({
                let stop = Arc::clone(&stop);
                move || accept_until(&listener, &stop)
            })?;
        running.insert(
            address,
            Running {
                users: 1,
                stop,
                thread,
            },
        );
        Ok(Endpoint { address })
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let last = {
            let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
            match running.get_mut(&self.address) {
                Some(endpoint) if endpoint.users > 1 => {
                    endpoint.users -= 1;
                    None
                }
                Some(_) => running.remove(&self.address),
                None => None,
            }
        };
        if let Some(endpoint) = last {
            endpoint.stop.store(true, Ordering::Relaxed);
            let _ = endpoint.thread.join();
        }
    }
}

fn accept_until(listener: &TcpListener, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                // A scraper that misbehaves loses its answer; the endpoint goes on.
                let _ = answer(stream);
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            // Out of descriptors, a connection reset before it was taken: try again later.
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

fn answer(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(DEADLINE))?;
    stream.set_write_timeout(Some(DEADLINE))?;
    let mut request = Vec::new();
    let mut buffer = [0; 2048];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < MAX_REQUEST {
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        request.extend_from_slice(&buffer[..read]);
    }
    let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let (method, target) = (words.next(), words.next().unwrap_or_default());
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    let (status, content_type, body) = match (method, path) {
        (Some(b"GET"), b"/metrics") => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            super::encode(),
        ),
        (Some(b"GET"), _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "the metrics are at /metrics\n".to_owned(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".to_owned(),
        ),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
