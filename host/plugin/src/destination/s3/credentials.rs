//! The credentials that sign S3 requests.
//!
//! The base credentials come from explicit IRSA (`web_identity_*`) or from the AWS default
//! chain; each `role_arn` hop is then assumed with the credentials of the one before. The
//! result is cached and renewed shortly before it expires, and at once when S3 refuses it
//! ([`SessionCredentials::renew_after_refusal`]): the SDK's own cache would keep sending
//! refused credentials until their expiry time.
//!
//! The chain is walked here rather than by nesting aws-config's providers so that every
//! hop's failure names its role and the identity that asked, and so that the identity in
//! use (the assumed-role ARN) can be named in AccessDenied lines.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::future;
use aws_sdk_s3::config::{Credentials, ProvideCredentials, Region, SharedHttpClient};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::config::retry::RetryConfig;
use aws_sdk_sts::config::timeout::TimeoutConfig;
use aws_sdk_sts::config::{IdentityCache, SharedCredentialsProvider};
use aws_sdk_sts::types::AssumedRoleUser;

use super::error::chain;
use crate::config::{CredentialsConfig, RoleHop, WebIdentity, web_identity_from_environment};
use crate::metrics::Metrics;

/// Credentials are renewed when this little of their life is left (or half their life,
/// for short-lived ones).
const RENEW_BEFORE: Duration = Duration::from_secs(300);
/// After a failed renewal, the next is tried this much later (the valid credentials serve
/// meanwhile).
const RENEW_RETRY: Duration = Duration::from_secs(15);
/// Credentials without an expiry time are fetched again this often.
const UNDATED_LIFETIME: Duration = Duration::from_secs(900);
/// A refusal renews credentials only when they are older than this, so that the refusals
/// of several requests signed with one set renew it once.
const MIN_AGE_TO_RENEW: Duration = Duration::from_secs(5);
/// AWS limits a session assumed with a role session's credentials to one hour.
const CHAINED_SESSION_LIMIT: Duration = Duration::from_secs(3600);

/// The credentials of `sink s3`, cached, renewed, and able to say whose they are.
#[derive(Debug, Clone)]
pub struct SessionCredentials {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    base: Base,
    config: CredentialsConfig,
    sts: aws_sdk_sts::Client,
    /// "STS at <endpoint>" or "STS in <region>", for error lines.
    sts_name: String,
    current: tokio::sync::Mutex<Option<Current>>,
    identity: Mutex<String>,
    metrics: Metrics,
}

#[derive(Debug)]
enum Base {
    DefaultChain(Box<DefaultCredentialsChain>),
    WebIdentity(WebIdentity),
}

#[derive(Debug)]
struct Current {
    credentials: Credentials,
    fetched: SystemTime,
    /// When a renewal last failed while these were still valid.
    renewal_failed: Option<SystemTime>,
}

impl Current {
    /// Whether they may still sign requests: not expired (and not refused).
    fn is_valid(&self, now: SystemTime) -> bool {
        self.credentials.expiry().is_none_or(|expiry| now < expiry)
    }

    fn is_fresh(&self, now: SystemTime) -> bool {
        match self.credentials.expiry() {
            Some(expiry) => {
                let lifetime = expiry.duration_since(self.fetched).unwrap_or_default();
                let margin = RENEW_BEFORE.min(lifetime / 2);
                now + margin < expiry
            }
            None => now.duration_since(self.fetched).unwrap_or_default() < UNDATED_LIFETIME,
        }
    }
}

impl SessionCredentials {
    /// Prepares the chain of `config`; STS in `region` unless the configuration names
    /// another. Nothing is fetched until the first request.
    pub async fn new(
        config: &CredentialsConfig,
        region: Region,
        http: Option<SharedHttpClient>,
        metrics: Metrics,
    ) -> SessionCredentials {
        let sts_region = config
            .sts_region
            .clone()
            .map(Region::new)
            .unwrap_or(region.clone());
        let sts_name = match &config.sts_endpoint {
            Some(endpoint) => format!("STS at {endpoint}"),
            None => format!("STS in {sts_region}"),
        };
        let mut sts_config = aws_sdk_sts::Config::builder();
        sts_config.set_endpoint_url(config.sts_endpoint.clone());
        sts_config.set_http_client(http);
        let sts_config = sts_config
            .behavior_version(BehaviorVersion::latest())
            .region(sts_region)
            // Each call brings the credentials of the hop before; none is cached here.
            .identity_cache(IdentityCache::no_cache())
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .build(),
            )
            .build();
        // A profile names the base credentials; else IRSA's environment, if set, does.
        let web_identity = match &config.profile {
            Some(_) => None,
            None => config
                .web_identity
                .clone()
                .or_else(web_identity_from_environment),
        };
        let base = match web_identity {
            Some(web_identity) => Base::WebIdentity(web_identity),
            None => {
                let mut chain = DefaultCredentialsChain::builder().region(region);
                if let Some(profile) = &config.profile {
                    chain = chain.profile_name(profile);
                }
                Base::DefaultChain(Box::new(chain.build().await))
            }
        };
        SessionCredentials {
            inner: Arc::new(Inner {
                base,
                config: config.clone(),
                sts: aws_sdk_sts::Client::from_conf(sts_config),
                sts_name,
                current: tokio::sync::Mutex::new(None),
                identity: Mutex::new("(credentials not loaded yet)".to_owned()),
                metrics,
            }),
        }
    }

    /// Whose credentials sign requests: the assumed-role ARN, or the access key and where
    /// it came from.
    pub fn identity(&self) -> String {
        self.inner
            .identity
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// After S3 refused the credentials: drops them so that the next request fetches new
    /// ones, unless they were fetched just now. Returns whether they were dropped (and a
    /// retry may succeed).
    pub async fn renew_after_refusal(&self) -> bool {
        let mut current = self.inner.current.lock().await;
        let stale = current.as_ref().is_some_and(|c| {
            SystemTime::now()
                .duration_since(c.fetched)
                .is_ok_and(|age| age >= MIN_AGE_TO_RENEW)
        });
        if stale {
            *current = None;
        }
        stale
    }

    async fn cached(&self) -> Result<Credentials, CredentialsError> {
        let mut current = self.inner.current.lock().await;
        let now = SystemTime::now();
        if let Some(fresh) = current.as_ref().filter(|c| c.is_fresh(now)) {
            return Ok(fresh.credentials.clone());
        }
        // After a failed renewal, valid credentials serve until the next try is due.
        if let Some(kept) = current.as_ref().filter(|c| {
            c.is_valid(now)
                && c.renewal_failed
                    .is_some_and(|at| now.duration_since(at).unwrap_or_default() < RENEW_RETRY)
        }) {
            return Ok(kept.credentials.clone());
        }
        let loaded = self.inner.load().await;
        self.inner.metrics.credentials_renewed(loaded.is_ok());
        let (credentials, identity) = match loaded {
            Ok(loaded) => loaded,
            Err(error) => {
                // Credentials that are still valid are kept until they expire, whatever
                // the renewal did; only then does its failure stop uploads.
                return match current.as_mut().filter(|c| c.is_valid(now)) {
                    Some(kept) => {
                        kept.renewal_failed = Some(now);
                        Ok(kept.credentials.clone())
                    }
                    None => Err(error),
                };
            }
        };
        *self
            .inner
            .identity
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = identity;
        *current = Some(Current {
            credentials: credentials.clone(),
            fetched: now,
            renewal_failed: None,
        });
        Ok(credentials)
    }
}

impl ProvideCredentials for SessionCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.cached())
    }
}

impl Inner {
    /// Walks the chain: the base, then every role.
    async fn load(&self) -> Result<(Credentials, String), CredentialsError> {
        let (mut credentials, mut identity) = match &self.base {
            Base::DefaultChain(default_chain) => {
                let credentials = default_chain.provide_credentials().await.map_err(|e| {
                    failure(format!(
                        "no AWS credentials: the default chain (environment, profile, web \
                         identity, ECS task role, instance profile) found none: {}",
                        chain(&e)
                    ))
                })?;
                let identity = format!(
                    "access key {} from the AWS default chain",
                    credentials.access_key_id()
                );
                (credentials, identity)
            }
            Base::WebIdentity(web_identity) => self.web_identity(web_identity).await?,
        };
        for (index, hop) in self.config.roles.iter().enumerate() {
            // A role session's credentials can assume a role for at most an hour.
            let chained = index > 0 || matches!(self.base, Base::WebIdentity(_));
            let duration = if chained {
                self.config.session_duration.min(CHAINED_SESSION_LIMIT)
            } else {
                self.config.session_duration
            };
            (credentials, identity) = self.assume(hop, duration, credentials, &identity).await?;
        }
        Ok((credentials, identity))
    }

    async fn web_identity(
        &self,
        web_identity: &WebIdentity,
    ) -> Result<(Credentials, String), CredentialsError> {
        // Read at every renewal: the kubelet rotates projected tokens.
        let token = tokio::fs::read_to_string(&web_identity.token_file)
            .await
            .map_err(|e| {
                failure(format!(
                    "cannot read the web identity token file {} (web_identity_token_file): {e}",
                    web_identity.token_file.display()
                ))
            })?;
        let output = self
            .sts
            .assume_role_with_web_identity()
            .role_arn(&web_identity.role_arn)
            .role_session_name(&self.config.session_name)
            .web_identity_token(token.trim())
            .duration_seconds(self.config.session_duration.as_secs() as i32)
            .send()
            .await
            .map_err(|e| {
                self.refused(
                    "AssumeRoleWithWebIdentity",
                    &web_identity.role_arn,
                    "the web identity token",
                    e,
                )
            })?;
        session(
            output.credentials,
            output.assumed_role_user,
            &web_identity.role_arn,
        )
    }

    async fn assume(
        &self,
        hop: &RoleHop,
        duration: Duration,
        with: Credentials,
        identity: &str,
    ) -> Result<(Credentials, String), CredentialsError> {
        let output = self
            .sts
            .assume_role()
            .role_arn(&hop.arn)
            .role_session_name(&self.config.session_name)
            .set_external_id(hop.external_id.clone())
            .duration_seconds(duration.as_secs() as i32)
            .customize()
            .config_override(
                aws_sdk_sts::Config::builder()
                    .credentials_provider(SharedCredentialsProvider::new(with)),
            )
            .send()
            .await
            .map_err(|e| self.refused("AssumeRole", &hop.arn, identity, e))?;
        session(output.credentials, output.assumed_role_user, &hop.arn)
    }

    /// The line for an STS call that failed, with what to check.
    fn refused<E>(
        &self,
        action: &str,
        role: &str,
        asker: &str,
        error: SdkError<E>,
    ) -> CredentialsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = error.raw_response().map(|r| r.status().as_u16());
        let code = match (error.code(), status) {
            (Some(code), _) => code.to_owned(),
            // Some servers answer a denial with a body the SDK cannot read.
            (None, Some(403)) => "AccessDenied".to_owned(),
            (None, Some(status)) => format!("HTTP {status}"),
            (None, None) => {
                return failure(format!(
                    "{action} of {role} failed: cannot reach {}: {}",
                    self.sts_name,
                    chain(&error)
                ));
            }
        };
        let message = match error.message() {
            Some(text) if !text.is_empty() => format!(": {text}"),
            _ => String::new(),
        };
        let advice = match code.as_str() {
            "AccessDenied" => format!(
                " (check that the trust policy of {role} allows this caller, with the \
                 external id if it asks for one, and that the caller's IAM policy allows \
                 sts:{action} on {role})"
            ),
            "InvalidIdentityToken" | "ExpiredTokenException" | "IDPRejectedClaim" => {
                " (check the token file and the role's OIDC provider)".to_owned()
            }
            "ValidationError" if message.contains("DurationSeconds") => {
                " (lower role_session_duration to the role's maximum session duration, \
                 at most 1h for chained roles)"
                    .to_owned()
            }
            _ => String::new(),
        };
        failure(format!(
            "{} refused {action} of {role} for {asker}: {code}{message}{advice}",
            self.sts_name
        ))
    }
}

/// Credentials and identity out of an STS answer.
fn session(
    credentials: Option<aws_sdk_sts::types::Credentials>,
    user: Option<AssumedRoleUser>,
    role: &str,
) -> Result<(Credentials, String), CredentialsError> {
    let credentials = credentials
        .ok_or_else(|| failure(format!("STS answered for {role} without credentials")))?;
    let expiry = SystemTime::try_from(credentials.expiration).ok();
    let mut built = Credentials::builder()
        .access_key_id(credentials.access_key_id)
        .secret_access_key(credentials.secret_access_key)
        .session_token(credentials.session_token)
        .provider_name("rustsink");
    built.set_expiry(expiry);
    let identity = user.map_or_else(|| role.to_owned(), |user| user.arn);
    Ok((built.build(), identity))
}

fn failure(text: String) -> CredentialsError {
    CredentialsError::provider_error(text)
}
