//! What filter and sink components share in the configuration (their sandbox limits),
//! and the keys of a sink component (`sink <file>.wasm`, `sink.<option>`).

use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, invalid, parse};

/// How a component instance may run (`filter.N.memory_limit` / `sink.memory_limit`,
/// `filter.N.timeout` / `sink.timeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentLimits {
    /// The most linear memory an instance may have.
    pub memory: usize,
    /// The longest one call may take.
    pub timeout: Duration,
}

/// A host a sink may send HTTP requests to (`sink.allowed_hosts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// The host name or address, lower case; an IPv6 address in brackets.
    pub host: String,
    /// The one port allowed; None: any port.
    pub port: Option<u16>,
}

impl AllowedHost {
    /// Whether a request to `host` on `port` may go out.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.host == normalize_host(host) && self.port.is_none_or(|allowed| allowed == port)
    }
}

impl std::fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// A host name as compared: lower case, without a trailing dot.
fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// A WebAssembly sink component (`sink <file>.wasm`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentSinkConfig {
    /// The component file.
    pub path: PathBuf,
    /// The hosts it may send HTTP requests to; empty: none.
    pub allowed_hosts: Vec<AllowedHost>,
    /// Its sandbox limits.
    pub limits: ComponentLimits,
}

/// Reads `<prefix>.memory_limit` and `<prefix>.timeout`, with the defaults and the
/// upper bound of a timeout given.
pub(super) fn parse_limits(
    prefix: &str,
    given: &dyn Fn(&str) -> Option<String>,
    default_timeout: &str,
    max_timeout: Duration,
) -> Result<ComponentLimits, ConfigError> {
    let memory_key = format!("{prefix}.memory_limit");
    let memory_text = given(&memory_key).unwrap_or_else(|| "64M".to_owned());
    let memory = parse::size(&memory_text)
        .ok()
        .filter(|size| (1 << 20..=4 << 30).contains(size))
        .ok_or_else(|| invalid(memory_key, &memory_text, "a size from 1M to 4G"))?;
    let timeout_key = format!("{prefix}.timeout");
    let timeout_text = given(&timeout_key).unwrap_or_else(|| default_timeout.to_owned());
    let timeout = parse::duration(&timeout_text)
        .ok()
        .filter(|t| (Duration::from_millis(10)..=max_timeout).contains(t))
        .ok_or_else(|| {
            invalid(
                timeout_key,
                &timeout_text,
                format!("a duration from 10ms to {}s", max_timeout.as_secs()),
            )
        })?;
    Ok(ComponentLimits {
        memory: memory as usize,
        timeout,
    })
}

/// Reads the host keys of the sink component at `path`.
pub(super) fn parse_sink(
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<ComponentSinkConfig, ConfigError> {
    let given = |key: &str| {
        lookup(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let limits = parse_limits("sink", &given, "30s", Duration::from_secs(300))?;
    let allowed_hosts = match given("sink.allowed_hosts") {
        None => Vec::new(),
        Some(list) => list
            .split([',', ' '])
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                parse_allowed_host(entry).ok_or_else(|| {
                    invalid(
                        "sink.allowed_hosts",
                        entry,
                        "host names or addresses, each with an optional :port, separated by \
                         commas (such as 'logs.example.com, 10.0.0.5:8080, [::1]:9000')",
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(ComponentSinkConfig {
        path: PathBuf::from(path),
        allowed_hosts,
        limits,
    })
}

fn parse_allowed_host(entry: &str) -> Option<AllowedHost> {
    if entry.contains("://") || entry.contains('/') || entry.contains('@') {
        return None;
    }
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (address, after) = rest.split_once(']')?;
        address.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?.parse().ok()?),
        };
        (format!("[{address}]"), port)
    } else {
        match entry.split_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port.parse().ok()?)),
            None => (entry.to_owned(), None),
        }
    };
    let valid = !host.is_empty()
        && (host.starts_with('[')
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
    valid.then(|| AllowedHost {
        host: normalize_host(&host),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_hosts_parse_and_match() {
        let host = parse_allowed_host("Logs.Example.com").unwrap();
        assert!(host.allows("logs.example.com.", 443));
        assert!(host.allows("LOGS.example.com", 8080));
        assert!(!host.allows("example.com", 443));
        let with_port = parse_allowed_host("127.0.0.1:8080").unwrap();
        assert!(with_port.allows("127.0.0.1", 8080));
        assert!(!with_port.allows("127.0.0.1", 8081));
        let v6 = parse_allowed_host("[::1]:9000").unwrap();
        assert!(v6.allows("[::1]", 9000));
        for bad in ["http://x", "x/y", "a@b", "x:port", "[nope]:1", "", "a b"] {
            assert_eq!(parse_allowed_host(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_bad_allowed_host_names_the_key_and_the_entry() {
        let lookup = |key: &str| (key == "sink.allowed_hosts").then(|| "ok.com, http://x".into());
        let error = parse_sink("s.wasm", &lookup).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid value 'http://x' for key 'sink.allowed_hosts'"),
            "{error}"
        );
    }
}
