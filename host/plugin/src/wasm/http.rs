//! Outbound HTTP for sink components: requests go out only to the hosts of
//! `sink.allowed_hosts`. Filters may import wasi:http too, and every request they make is
//! refused (`refuse_requests`).
//!
//! The check is made on the authority the request is sent to (the host and port the
//! connection is opened to, from the request's URI), never on a header: the `Host`
//! header is set by the host from that authority, and a component cannot set it.
//! Everything else is answered with `HTTP-request-denied` and a logged reason. Each
//! request's timeouts are capped at the sink's `timeout`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http_body_util::BodyExt;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Method};
use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, HostOutgoingRequest};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::config::AllowedHost;
use crate::log::Logger;

type Sent = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

/// What a component may reach over HTTP.
#[derive(Clone)]
pub(super) struct HttpGrant {
    allowed: Arc<[AllowedHost]>,
    timeout: Duration,
    log: Logger,
    component: String,
    /// Whether a request was refused since [`take_refused`](Self::take_refused), shared by
    /// every clone.
    refused: Arc<AtomicBool>,
    /// Why a request is refused when no host is allowed.
    no_host: &'static str,
}

impl HttpGrant {
    /// Requests to `allowed` only, each bounded by `timeout`.
    pub(super) fn new(
        allowed: &[AllowedHost],
        timeout: Duration,
        log: &Logger,
        component: &str,
    ) -> HttpGrant {
        HttpGrant {
            allowed: allowed.into(),
            timeout,
            log: log.clone(),
            component: component.to_owned(),
            refused: Arc::new(AtomicBool::new(false)),
            no_host: "sink.allowed_hosts is empty: no host is allowed",
        }
    }

    /// Whether a request was refused since the last time this was asked.
    pub(super) fn take_refused(&self) -> bool {
        self.refused.swap(false, Ordering::Relaxed)
    }

    /// Why a request to `url` would be refused, if it would; None when it is not an http
    /// or https URL.
    pub(super) fn refusal_of(&self, url: &str) -> Option<String> {
        let uri: http::Uri = url.parse().ok()?;
        let scheme = uri.scheme_str()?;
        if scheme != "http" && scheme != "https" {
            return None;
        }
        self.refusal(&uri)
    }

    /// No request at all: for filters, which never make requests.
    pub(super) fn none(log: &Logger, component: &str) -> HttpGrant {
        HttpGrant {
            no_host: "filter components make no requests; a sink component can, to the hosts \
                      in sink.allowed_hosts",
            ..HttpGrant::new(&[], Duration::ZERO, log, component)
        }
    }

    /// Why a request to `uri` may not go out, if it may not.
    fn refusal(&self, uri: &http::Uri) -> Option<String> {
        let Some(authority) = uri.authority() else {
            return Some("it names no host".to_owned());
        };
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        if self.allowed.is_empty() {
            return Some(self.no_host.to_owned());
        }
        if self
            .allowed
            .iter()
            .any(|a| a.allows(authority.host(), port))
        {
            return None;
        }
        let listed: Vec<String> = self.allowed.iter().map(ToString::to_string).collect();
        Some(format!(
            "{}:{port} is not in sink.allowed_hosts ({})",
            authority.host(),
            listed.join(", ")
        ))
    }

    /// Caps every timeout the component asked for at the sink's.
    fn capped(&self, options: Option<RequestOptions>) -> RequestOptions {
        let cap =
            |asked: Option<Duration>| Some(asked.map_or(self.timeout, |t| t.min(self.timeout)));
        let options = options.unwrap_or_default();
        RequestOptions {
            connect_timeout: cap(options.connect_timeout),
            first_byte_timeout: cap(options.first_byte_timeout),
            between_bytes_timeout: cap(options.between_bytes_timeout),
        }
    }
}

/// The wasi:http interface [`refuse_requests`] replaces, as `wasmtime-wasi-http` names it.
const OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler@0.2.12";

/// Replaces `wasi:http/outgoing-handler` in `linker` with one that refuses every request at
/// once, and says so: for filters. A filter's calls run on no runtime that would run
/// wasi-http's request tasks, so its refusal must not be one.
///
/// # Errors
///
/// When the linker has no such interface to replace.
pub(super) fn refuse_requests<T: 'static>(
    linker: &mut Linker<T>,
    grant: impl Fn(&mut T) -> (&mut ResourceTable, &HttpGrant) + Send + Sync + 'static,
) -> wasmtime::Result<()> {
    type Handled = (Result<Resource<HostFutureIncomingResponse>, ErrorCode>,);
    linker.allow_shadowing(true);
    let mut handler = linker.instance(OUTGOING_HANDLER)?;
    handler.func_wrap(
        "handle",
        move |mut store: StoreContextMut<'_, T>,
              (request, options): (
            Resource<HostOutgoingRequest>,
            Option<Resource<RequestOptions>>,
        )|
              -> wasmtime::Result<Handled> {
            let (table, grant) = grant(store.data_mut());
            let request = table.delete(request)?;
            if let Some(options) = options {
                table.delete(options)?;
            }
            grant.refused.store(true, Ordering::Relaxed);
            grant.log.warn(format_args!(
                "[{}] refused a {} request to {}{}: {}",
                grant.component,
                method_name(&request.method),
                request.authority.as_deref().unwrap_or_default(),
                request.path_with_query.as_deref().unwrap_or_default(),
                grant.no_host
            ));
            Ok((Err(ErrorCode::HttpRequestDenied),))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(other) => other,
    }
}

impl std::fmt::Debug for HttpGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpGrant")
            .field("allowed", &self.allowed)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl WasiHttpHooks for HttpGrant {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _errors: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Sent {
        if let Some(reason) = self.refusal(request.uri()) {
            self.refused.store(true, Ordering::Relaxed);
            self.log.warn(format_args!(
                "[{}] refused a {} request to {}: {reason}",
                self.component,
                request.method(),
                request.uri()
            ));
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let options = self.capped(options);
        let timeout = self.timeout;
        Box::new(async move {
            let sent = wasmtime_wasi_http::default_send_request(request, Some(options));
            let (response, io) = tokio::time::timeout(timeout, sent)
                .await
                .map_err(|_| Error::HttpResponseTimeout)??;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Threshold;

    fn grant(allowed: &[AllowedHost]) -> HttpGrant {
        HttpGrant::new(
            allowed,
            Duration::from_secs(1),
            &Logger::stderr("test", Threshold::from_env()),
            "test",
        )
    }

    #[test]
    fn the_authority_decides_not_user_info_or_default_ports() {
        let grant = grant(&[AllowedHost {
            host: "collector".into(),
            port: Some(80),
        }]);
        let refusal = |uri: &str| grant.refusal(&uri.parse().unwrap());
        assert_eq!(refusal("http://collector/logs"), None);
        assert_eq!(refusal("http://COLLECTOR:80/"), None);
        assert_eq!(
            refusal("https://collector/").as_deref(),
            Some("collector:443 is not in sink.allowed_hosts (collector:80)")
        );
        assert_eq!(
            refusal("http://collector@evil.example/").as_deref(),
            Some("evil.example:80 is not in sink.allowed_hosts (collector:80)")
        );
        assert!(refusal("/no-host").is_some());
    }

    #[test]
    fn timeouts_are_capped_at_the_sinks() {
        let capped = grant(&[]).capped(Some(RequestOptions {
            connect_timeout: Some(Duration::from_millis(100)),
            first_byte_timeout: Some(Duration::from_secs(600)),
            between_bytes_timeout: None,
        }));
        assert_eq!(capped.connect_timeout, Some(Duration::from_millis(100)));
        assert_eq!(capped.first_byte_timeout, Some(Duration::from_secs(1)));
        assert_eq!(capped.between_bytes_timeout, Some(Duration::from_secs(1)));
    }
}
