//! Turning a failed S3 request into a line a person can act on.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::config::S3Config;
use crate::destination::DeliveryError;

/// S3 error codes that say the credentials were refused; new ones may be accepted. A
/// refused AccessDenied is among them: a role's policy may have changed since its session
/// began.
const REFUSED_CREDENTIALS: &[&str] = &[
    "ExpiredToken",
    "ExpiredTokenException",
    "TokenRefreshRequired",
    "InvalidAccessKeyId",
    "InvalidToken",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "AccessDenied",
];

/// Describes `error` of `action` on `key`, made with the credentials of `identity`. Every
/// failure is retryable: access, a missing bucket or a wrong region can be fixed while the
/// object waits in `store_dir`.
pub fn request_error<E>(
    action: &'static str,
    config: &S3Config,
    key: &str,
    identity: &str,
    error: SdkError<E>,
) -> DeliveryError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let target = format!("{action} of s3://{}/{key}", config.bucket);
    let status = error.raw_response().map(|r| r.status().as_u16());
    let code = error.code().unwrap_or_default().to_owned();
    let message = error.message().unwrap_or_default().to_owned();
    let where_to = config
        .endpoint
        .clone()
        .unwrap_or_else(|| "AWS S3".to_owned());
    // A bare 403 (HEAD has no body) is treated as a refusal too.
    let credentials_refused =
        REFUSED_CREDENTIALS.contains(&code.as_str()) || (code.is_empty() && status == Some(403));
    let detail = match &error {
        _ if let Some(cause) = credentials_failure(&error) => {
            format!("no credentials to sign with: {cause}")
        }
        SdkError::ConstructionFailure(_) => {
            format!("the request could not be made: {}", chain(&error))
        }
        SdkError::TimeoutError(_) => format!("no answer from {where_to} in time"),
        SdkError::DispatchFailure(_) => format!("cannot reach {where_to}: {}", chain(&error)),
        _ => explain(&code, &message, status, config, identity),
    };
    DeliveryError::Request {
        action: target,
        detail,
        credentials_refused,
    }
}

/// What an S3 error code means for the person reading the log.
fn explain(
    code: &str,
    message: &str,
    status: Option<u16>,
    config: &S3Config,
    identity: &str,
) -> String {
    let said = match (code, message) {
        ("", "") => format!("HTTP {}", status.unwrap_or_default()),
        (code, "") => code.to_owned(),
        (code, message) => format!("{code}: {message}"),
    };
    let advice = match code {
        "AccessDenied" | "AllAccessDisabled" => format!(
            "{identity} may not do this on bucket '{}': allow it in the IAM policy of that \
             identity (and in the bucket policy, for a bucket in another account); \
             `rustsink policy` prints the policy this configuration needs",
            config.bucket
        ),
        "NoSuchBucket" => format!(
            "bucket '{}' does not exist (check `bucket`, and `endpoint` for an S3-compatible \
             server)",
            config.bucket
        ),
        "PermanentRedirect"
        | "AuthorizationHeaderMalformed"
        | "IllegalLocationConstraintException" => {
            format!(
                "bucket '{}' is in another region than '{}': set `region` to the bucket's",
                config.bucket,
                config.region.as_deref().unwrap_or("the default")
            )
        }
        "ExpiredToken"
        | "TokenRefreshRequired"
        | "InvalidAccessKeyId"
        | "InvalidToken"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch" => {
            format!("the credentials of {identity} were refused: expired, rotated or wrong")
        }
        "SlowDown" | "ServiceUnavailable" | "RequestTimeout" | "InternalError" => {
            "S3 asks to slow down or failed for a moment".to_owned()
        }
        "NoSuchUpload" => "S3 no longer knows this multipart upload; it starts over".to_owned(),
        _ => String::new(),
    };
    if advice.is_empty() {
        said
    } else {
        format!("{said} ({advice})")
    }
}

/// What went wrong getting credentials, when that is why `error` happened: the SDK
/// reports it as a failure to dispatch, which is not about the endpoint.
fn credentials_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source = error.source();
    while let Some(cause) = source {
        if cause.downcast_ref::<CredentialsError>().is_some() {
            return Some(cause.source().map_or_else(|| cause.to_string(), chain));
        }
        source = cause.source();
    }
    None
}

/// An error and its sources, joined.
pub(super) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, SinkConfig};

    fn config() -> S3Config {
        let pairs = [("bucket", "logs"), ("region", "eu-west-1")];
        let config = Config::from_pairs(&pairs).unwrap();
        match config.sink {
            SinkConfig::S3(s3) => *s3,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_cause_has_its_own_advice() {
        let config = config();
        let identity = "arn:aws:sts::1:assumed-role/writer/agent";
        let line = |code, message| explain(code, message, Some(403), &config, identity);
        let wrong_region = line("PermanentRedirect", "");
        assert!(
            wrong_region.contains("set `region` to the bucket's"),
            "{wrong_region}"
        );
        assert!(wrong_region.contains("eu-west-1"), "{wrong_region}");
        let denied = line("AccessDenied", "Access Denied");
        assert!(
            denied.starts_with("AccessDenied: Access Denied ("),
            "{denied}"
        );
        assert!(denied.contains(identity), "{denied}");
        assert!(denied.contains("rustsink policy"), "{denied}");
        assert!(line("NoSuchBucket", "").contains("'logs' does not exist"));
        assert!(line("ExpiredToken", "").contains("were refused"));
        assert!(line("SlowDown", "").contains("slow down"));
        assert_eq!(explain("", "", Some(500), &config, identity), "HTTP 500");
    }
}
