//! The credential keys of `sink s3`: explicit IRSA, and the roles assumed on top of the
//! base credentials, hop by hop.

use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, http_url, invalid, keys, missing, parse};

/// The most hops after `role_arn` (`role_arn.2` ... `role_arn.9`).
const LAST_HOP: usize = 9;

/// Where the credentials of `sink s3` come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsConfig {
    /// Explicit IRSA; None: the AWS default chain gives the base credentials.
    pub web_identity: Option<WebIdentity>,
    /// The shared-config profile the default chain reads (`profile`); None: its own choice
    /// (`AWS_PROFILE`, else `default`).
    pub profile: Option<String>,
    /// Roles assumed in order, each with the credentials of the one before.
    pub roles: Vec<RoleHop>,
    /// The session name of every role session (`role_session_name`).
    pub session_name: String,
    /// How long a role session lasts (`role_session_duration`).
    pub session_duration: Duration,
    /// An STS endpoint instead of the region's (`sts_endpoint`).
    pub sts_endpoint: Option<String>,
    /// The region of STS; None: the bucket's region (`sts_region`).
    pub sts_region: Option<String>,
}

/// `AssumeRoleWithWebIdentity` with a token file, as EKS IRSA sets it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebIdentity {
    /// The token file, read again at every refresh (`web_identity_token_file`).
    pub token_file: PathBuf,
    /// The role (`web_identity_role_arn`).
    pub role_arn: String,
}

/// One `AssumeRole` of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleHop {
    /// The role (`role_arn`, `role_arn.N`).
    pub arn: String,
    /// The external id its trust policy asks for (`external_id`, `external_id.N`).
    pub external_id: Option<String>,
}

impl CredentialsConfig {
    /// The role whose credentials sign S3 requests, if any.
    pub fn final_role(&self) -> Option<&str> {
        self.roles
            .last()
            .map(|hop| hop.arn.as_str())
            .or(self.web_identity.as_ref().map(|w| w.role_arn.as_str()))
    }
}

/// The key of hop `n` (1 is the unnumbered key).
fn numbered(base: &'static str, n: usize) -> String {
    if n == 1 {
        base.to_owned()
    } else {
        format!("{base}.{n}")
    }
}

/// Reads the credential keys. `lookup` answers any key, numbered ones included; `value`
/// applies defaults.
pub(super) fn parse(
    lookup: &dyn Fn(&str) -> Option<String>,
    value: &dyn Fn(&'static str) -> Option<String>,
    region: Option<&str>,
) -> Result<CredentialsConfig, ConfigError> {
    let given = |key: &str| {
        lookup(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let web_identity = match (
        given(keys::WEB_IDENTITY_TOKEN_FILE),
        given(keys::WEB_IDENTITY_ROLE_ARN),
    ) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(missing(
                keys::WEB_IDENTITY_ROLE_ARN,
                "'web_identity_token_file' needs the role its token is exchanged for",
            ));
        }
        (None, Some(_)) => {
            return Err(missing(
                keys::WEB_IDENTITY_TOKEN_FILE,
                "'web_identity_role_arn' needs the token file (on EKS, the value of \
                         AWS_WEB_IDENTITY_TOKEN_FILE)",
            ));
        }
        (Some(token_file), Some(role_arn)) => Some(WebIdentity {
            token_file: PathBuf::from(token_file),
            role_arn: role_arn_of(keys::WEB_IDENTITY_ROLE_ARN, role_arn)?,
        }),
    };

    let profile = given(keys::PROFILE);
    if profile.is_some() && web_identity.is_some() {
        return Err(invalid(
            keys::PROFILE,
            profile.as_deref().unwrap_or_default(),
            "no profile when 'web_identity_token_file' gives the base credentials: the two \
             name different sources",
        ));
    }

    let mut roles = Vec::new();
    let mut gap = None;
    for n in 1..=LAST_HOP {
        let arn_key = numbered(keys::ROLE_ARN, n);
        let id_key = numbered(keys::EXTERNAL_ID, n);
        let (arn, external_id) = (given(&arn_key), given(&id_key));
        match (arn, &gap) {
            (Some(_), Some(absent)) => {
                return Err(missing(
                    keys::ROLE_ARN,
                    format!(
                        "'{arn_key}' is set but '{absent}' is not: the hops of a chain are \
                         numbered without gaps (role_arn, role_arn.2, role_arn.3, ...)"
                    ),
                ));
            }
            (Some(arn), None) => roles.push(RoleHop {
                arn: role_arn_of(keys::ROLE_ARN, arn)?,
                external_id: external_id
                    .map(|id| external_id_of(&id_key, id))
                    .transpose()?,
            }),
            (None, _) if external_id.is_some() => {
                return Err(missing(
                    keys::ROLE_ARN,
                    format!("'{id_key}' is set but '{arn_key}' is not"),
                ));
            }
            (None, _) => {
                gap.get_or_insert(arn_key);
            }
        }
    }

    let session_name = match given(keys::ROLE_SESSION_NAME) {
        Some(name) => {
            let valid = (2..=64).contains(&name.len())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
            if !valid {
                return Err(invalid(
                    keys::ROLE_SESSION_NAME,
                    &name,
                    "2 to 64 characters of letters, digits and _+=,.@-",
                ));
            }
            name
        }
        None => default_session_name(&crate::store::hostname()),
    };
    let duration_text = value(keys::ROLE_SESSION_DURATION).unwrap_or_default();
    let session_duration = parse::duration(&duration_text)
        .ok()
        .filter(|d| (Duration::from_secs(900)..=Duration::from_secs(12 * 3600)).contains(d))
        .ok_or_else(|| {
            invalid(
                keys::ROLE_SESSION_DURATION,
                &duration_text,
                "a duration from 15m to 12h (and at most the role's maximum session duration)",
            )
        })?;
    let sts_endpoint = http_url(keys::STS_ENDPOINT, given(keys::STS_ENDPOINT))?;
    if (sts_endpoint.is_some() || given(keys::STS_REGION).is_some())
        && web_identity.is_none()
        && roles.is_empty()
        && web_identity_from_environment().is_none()
    {
        return Err(missing(
            keys::ROLE_ARN,
            "'sts_endpoint' and 'sts_region' are used only to assume a role \
                     ('role_arn', 'web_identity_role_arn', or IRSA from AWS_ROLE_ARN and \
                     AWS_WEB_IDENTITY_TOKEN_FILE)",
        ));
    }
    Ok(CredentialsConfig {
        web_identity,
        profile,
        roles,
        session_name,
        session_duration,
        sts_endpoint,
        sts_region: given(keys::STS_REGION).or(region.map(str::to_owned)),
    })
}

/// `rustsink-<hostname>`, cut to STS's 64 characters and its character set, so that
/// CloudTrail shows which agent acted.
fn default_session_name(hostname: &str) -> String {
    let mut name: String = format!("rustsink-{hostname}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(64);
    name
}

fn role_arn_of(key: &'static str, arn: String) -> Result<String, ConfigError> {
    let mut parts = arn.splitn(6, ':');
    let well_formed = parts.next() == Some("arn")
        && parts.next().is_some_and(|p| p.starts_with("aws"))
        && parts.next() == Some("iam")
        && parts.next() == Some("")
        && parts
            .next()
            .is_some_and(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
        && parts
            .next()
            .is_some_and(|r| r.starts_with("role/") && r.len() > 5);
    if well_formed {
        Ok(arn)
    } else {
        Err(invalid(
            key,
            &arn,
            "a role ARN like arn:aws:iam::123456789012:role/log-writer",
        ))
    }
}

fn external_id_of(key: &str, id: String) -> Result<String, ConfigError> {
    let valid = (2..=1224).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
    if valid {
        Ok(id)
    } else {
        Err(invalid(
            key.to_owned(),
            &id,
            "2 to 1224 characters of letters, digits and _+=,.@:/-",
        ))
    }
}

/// IRSA as EKS sets it up in the environment (`AWS_WEB_IDENTITY_TOKEN_FILE` and
/// `AWS_ROLE_ARN`), unless a static key in the environment comes first in the AWS default
/// chain. rustsink takes it itself rather than leaving it to the default chain, so that
/// `sts_endpoint`, `sts_region` and `role_session_name` apply to it as to every other hop.
pub fn web_identity_from_environment() -> Option<WebIdentity> {
    let set = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
    };
    if set("AWS_ACCESS_KEY_ID").is_some() {
        return None;
    }
    Some(WebIdentity {
        token_file: set("AWS_WEB_IDENTITY_TOKEN_FILE")?.into(),
        role_arn: set("AWS_ROLE_ARN")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(pairs: &[(&str, &str)]) -> Result<CredentialsConfig, ConfigError> {
        let mut all = vec![("sink", "s3"), ("bucket", "logs")];
        all.extend_from_slice(pairs);
        let config = super::super::Config::from_pairs(&all)?;
        match config.sink {
            super::super::SinkConfig::S3(s3) => Ok(s3.credentials),
            other => panic!("{other:?}"),
        }
    }

    const A: &str = "arn:aws:iam::111111111111:role/hop";
    const B: &str = "arn:aws:iam::222222222222:role/writer";

    #[test]
    fn no_keys_mean_the_default_chain() {
        let config = credentials(&[]).unwrap();
        assert_eq!(config.web_identity, None);
        assert_eq!(config.profile, None);
        assert_eq!(
            credentials(&[("profile", " logs ")])
                .unwrap()
                .profile
                .as_deref(),
            Some("logs")
        );
        assert!(config.roles.is_empty());
        assert_eq!(config.session_duration, Duration::from_secs(3600));
        assert!(config.session_name.starts_with("rustsink-"));
        assert_eq!(config.final_role(), None);
    }

    #[test]
    fn a_chain_of_web_identity_and_two_roles() {
        let config = credentials(&[
            ("web_identity_token_file", "/var/run/token"),
            ("web_identity_role_arn", A),
            ("role_arn", A),
            ("external_id", "first-id"),
            ("role_arn.2", B),
            ("external_id.2", "second-id"),
            ("role_session_name", "agent-7"),
            ("role_session_duration", "2h"),
            ("sts_endpoint", "http://127.0.0.1:5000"),
            ("region", "eu-west-1"),
        ])
        .unwrap();
        assert_eq!(
            config.web_identity.as_ref().unwrap().token_file,
            PathBuf::from("/var/run/token")
        );
        assert_eq!(config.roles.len(), 2);
        assert_eq!(config.roles[1].arn, B);
        assert_eq!(config.roles[1].external_id.as_deref(), Some("second-id"));
        assert_eq!(config.session_name, "agent-7");
        assert_eq!(config.session_duration, Duration::from_secs(7200));
        assert_eq!(config.sts_region.as_deref(), Some("eu-west-1"));
        assert_eq!(config.final_role(), Some(B));
    }

    #[test]
    fn the_default_session_name_fits_sts_rules() {
        assert_eq!(default_session_name("ip-10-0-0-1"), "rustsink-ip-10-0-0-1");
        assert_eq!(default_session_name("a b/c"), "rustsink-a-b-c");
        assert_eq!(default_session_name(&"h".repeat(100)).len(), 64);
    }

    #[test]
    fn bad_credential_keys_name_the_key_and_the_value() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case<'_>] = &[
            (&[("role_arn", "writer")], "role_arn", "writer"),
            (
                &[("role_arn", "arn:aws:iam::12345:role/x")],
                "role_arn",
                "12345",
            ),
            (
                &[("role_arn", A), ("external_id", "a b")],
                "external_id",
                "a b",
            ),
            (
                &[("role_arn", A), ("role_arn.2", B), ("external_id.2", "x")],
                "external_id.2",
                "'x'",
            ),
            (
                &[("role_arn", A), ("role_arn.3", B)],
                "role_arn",
                "role_arn.2",
            ),
            (
                &[("role_arn", A), ("external_id.2", "xy")],
                "role_arn",
                "role_arn.2",
            ),
            (
                &[
                    ("profile", "logs"),
                    ("web_identity_token_file", "/t"),
                    ("web_identity_role_arn", A),
                ],
                "profile",
                "'logs'",
            ),
            (
                &[("role_arn", A), ("role_session_name", "has space")],
                "role_session_name",
                "has space",
            ),
            (
                &[("role_arn", A), ("role_session_duration", "5m")],
                "role_session_duration",
                "15m to 12h",
            ),
            (
                &[("role_arn", A), ("sts_endpoint", "sts.local")],
                "sts_endpoint",
                "sts.local",
            ),
            (&[("sts_endpoint", "http://x")], "role_arn", "sts_endpoint"),
            (
                &[("web_identity_token_file", "/t")],
                "web_identity_role_arn",
                "token",
            ),
            (
                &[("web_identity_role_arn", A)],
                "web_identity_token_file",
                "AWS_WEB_IDENTITY_TOKEN_FILE",
            ),
        ];
        for (pairs, key, mentioned) in cases {
            let error = credentials(pairs).unwrap_err().to_string();
            assert!(error.contains(&format!("'{key}'")), "{pairs:?}: {error}");
            assert!(error.contains(mentioned), "{pairs:?}: {error}");
        }
    }
}
