//! `http`: a sink that POSTs each batch as NDJSON (one JSON object per line) to an HTTP
//! endpoint.
//!
//! Options (`sink.<option>`):
//! - `url` (required): `http://host[:port]/path` or `https://…`. Its host must be listed
//!   in `sink.allowed_hosts`, or the host refuses every request.
//! - `headers`: extra request headers, `Name: value` pairs separated by `;` (not `Host`,
//!   `Content-Length`, `Connection` or `Transfer-Encoding`, which the host sets).
//! - `date_key` (default `date`): the key of the event time, in seconds with a fraction;
//!   empty leaves it out.
//!
//! What each outcome does with the batch:
//! - 2xx: delivered;
//! - 408, 429 and 5xx, a connection failure or a timeout: retryable (Fluent Bit keeps the
//!   batch and tries again later);
//! - a redirect (3xx), which is not followed: retryable, since it means `url` needs fixing,
//!   and the error names where it points;
//! - a request the host refuses (its host is not in `sink.allowed_hosts`): retryable, the
//!   host decides so;
//! - any other status: fatal (Fluent Bit drops the batch, and the error says why).

use rustsink_sdk::http::{Url, post};
use rustsink_sdk::{Description, Error, OptionSpec, Options, Record, Sink};

/// Headers the host sets itself, and refuses from a component.
const SET_BY_THE_HOST: [&str; 4] = ["host", "content-length", "connection", "transfer-encoding"];

/// The configured endpoint.
struct HttpSink {
    url: Url,
    headers: Vec<(String, String)>,
    date_key: Option<String>,
}

impl Sink for HttpSink {
    fn describe() -> Description {
        Description {
            name: "http".into(),
            summary: "POSTs each batch as NDJSON to an HTTP endpoint".into(),
            options: vec![
                OptionSpec::required("url", "the endpoint, http://host[:port]/path or https://…"),
                OptionSpec::with_default(
                    "headers",
                    "extra request headers, 'Name: value' pairs separated by ';'",
                    "",
                ),
                OptionSpec::with_default(
                    "date_key",
                    "the key of the event time (seconds); empty leaves it out",
                    "date",
                ),
            ],
        }
    }

    fn new(options: &Options) -> Result<Self, Error> {
        let url = options.require("url")?;
        let url = Url::parse(url).map_err(|e| Error::fatal(format!("option 'url': {e}")))?;
        let mut headers = vec![("content-type".to_owned(), "application/x-ndjson".to_owned())];
        for pair in options.get("headers").unwrap_or("").split(';') {
            if pair.trim().is_empty() {
                continue;
            }
            let Some((name, value)) = pair.split_once(':') else {
                return Err(Error::fatal(format!(
                    "option 'headers': cannot use '{}': expected 'Name: value'",
                    pair.trim()
                )));
            };
            let name = name.trim().to_ascii_lowercase();
            if SET_BY_THE_HOST.contains(&name.as_str()) {
                return Err(Error::fatal(format!(
                    "option 'headers': cannot set '{name}': the host sets it from the url and \
                     the body"
                )));
            }
            headers.push((name, value.trim().to_owned()));
        }
        let date_key = options
            .get("date_key")
            .filter(|key| !key.is_empty())
            .map(str::to_owned);
        Ok(HttpSink {
            url,
            headers,
            date_key,
        })
    }

    fn deliver(&mut self, tag: &str, records: Vec<Record>) -> Result<(), Error> {
        let mut body = String::with_capacity(records.len() * 256);
        for record in &records {
            body.push_str(&record.to_json(self.date_key.as_deref()));
            body.push('\n');
        }
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let response = post(&self.url, &headers, body.as_bytes()).map_err(|e| {
            let message = format!(
                "POST of {} records of tag '{tag}' failed: {e}",
                records.len()
            );
            if e.retryable {
                Error::retryable(message)
            } else {
                Error::fatal(message)
            }
        })?;
        match response.status {
            200..=299 => {
                rustsink_sdk::count("http.records", records.len() as u64);
                Ok(())
            }
            status @ 300..=399 => Err(Error::retryable(format!(
                "the endpoint answered {status}, a redirect, to {} records of tag '{tag}'; \
                 redirects are not followed: set sink.url to where it points",
                records.len()
            ))),
            status => {
                let message = format!(
                    "the endpoint answered {status} to {} records of tag '{tag}': {}",
                    records.len(),
                    String::from_utf8_lossy(&response.body).trim()
                );
                if status == 408 || status == 429 || status >= 500 {
                    Err(Error::retryable(message))
                } else {
                    Err(Error::fatal(message))
                }
            }
        }
    }
}

rustsink_sdk::export_sink!(HttpSink);
