//! A blocking HTTP client for sinks, over `wasi:http` (feature `http`).
//!
//! The host sends a sink's requests only to the hosts of `sink.allowed_hosts`; any
//! other request fails with an error that is not [`retryable`](SendError::retryable).
//! The host sets `Host`, `Content-Length`, `Connection` and `Transfer-Encoding` itself;
//! setting them fails the same way.
//!
//! ```no_run
//! use rustsink_sdk::http::{Url, post};
//!
//! let url = Url::parse("http://collector:8080/logs").unwrap();
//! let response = post(&url, &[("content-type", "application/x-ndjson")], b"{}\n");
//! ```

use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

/// The most of a response body that is read; the rest is left unread.
const BODY_LIMIT: usize = 64 << 10;
/// The most bytes one blocking write may take (a limit of wasi:io streams).
const WRITE_CHUNK: usize = 4096;

/// An `http://` or `https://` URL, split the way a request needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Whether it is `https`.
    pub https: bool,
    /// `host` or `host:port`.
    pub authority: String,
    /// The path and query, starting with `/`.
    pub path_and_query: String,
}

impl Url {
    /// Splits `text`.
    ///
    /// # Errors
    ///
    /// A scheme other than `http` or `https`, or no host; the message says which.
    pub fn parse(text: &str) -> Result<Url, String> {
        let (https, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("'{text}' does not start with http:// or https://"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at(at),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("'{text}' has no host"));
        }
        let path_and_query = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        Ok(Url {
            https,
            authority: authority.to_owned(),
            path_and_query,
        })
    }
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The start of the body (at most 64 KiB).
    pub body: Vec<u8>,
}

/// Why no response came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// What went wrong.
    pub message: String,
    /// Whether the same request may succeed later (a connection failure, a timeout), or
    /// never will (the host refused it: its host is not in `sink.allowed_hosts`, or it
    /// sets a header the host controls).
    pub retryable: bool,
}

impl SendError {
    fn new(message: impl Into<String>) -> SendError {
        SendError {
            message: message.into(),
            retryable: true,
        }
    }

    fn refused(message: impl Into<String>) -> SendError {
        SendError {
            message: message.into(),
            retryable: false,
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ErrorCode> for SendError {
    fn from(code: ErrorCode) -> SendError {
        SendError {
            retryable: !matches!(code, ErrorCode::HttpRequestDenied),
            message: format!("{code:?}"),
        }
    }
}

/// POSTs `body` to `url` with `headers`, and waits for the response.
///
/// # Errors
///
/// When the request cannot be sent or no response comes back.
pub fn post(url: &Url, headers: &[(&str, &str)], body: &[u8]) -> Result<Response, SendError> {
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value.as_bytes())
            .map_err(|e| SendError::refused(format!("header '{name}': {e:?}")))?;
    }
    let request = OutgoingRequest::new(fields);
    let refused = |what: &str| SendError::refused(format!("the host refused the {what}"));
    request
        .set_method(&Method::Post)
        .map_err(|()| refused("method"))?;
    let scheme = if url.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| refused("scheme"))?;
    request
        .set_authority(Some(&url.authority))
        .map_err(|()| SendError::refused(format!("'{}' is not a valid host", url.authority)))?;
    request
        .set_path_with_query(Some(&url.path_and_query))
        .map_err(|()| {
            SendError::refused(format!("'{}' is not a valid path", url.path_and_query))
        })?;
    let outgoing = request.body().map_err(|()| refused("body"))?;
    let pending = outgoing_handler::handle(request, None)?;
    let sent = (|| {
        let stream = outgoing.write().map_err(|()| refused("body stream"))?;
        for chunk in body.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| SendError::new(format!("sending the body: {e:?}")))?;
        }
        drop(stream);
        OutgoingBody::finish(outgoing, None).map_err(SendError::from)
    })();
    pending.subscribe().block();
    // A request that failed (or was refused) closes its body: its own error says why.
    let response = match (pending.get(), sent) {
        (Some(Ok(Err(code))), _) => return Err(code.into()),
        (_, Err(body_error)) => return Err(body_error),
        (Some(Ok(Ok(response))), Ok(())) => response,
        (Some(Err(())) | None, Ok(())) => return Err(SendError::new("the response was lost")),
    };
    let status = response.status();
    let mut body = Vec::new();
    if let Ok(incoming) = response.consume()
        && let Ok(stream) = incoming.stream()
    {
        while body.len() < BODY_LIMIT {
            match stream.blocking_read((BODY_LIMIT - body.len()) as u64) {
                Ok(bytes) => body.extend_from_slice(&bytes),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(SendError::new(format!(
                        "reading the response: {}",
                        e.to_debug_string()
                    )));
                }
            }
        }
    }
    Ok(Response { status, body })
}
