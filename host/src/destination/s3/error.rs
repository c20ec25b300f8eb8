//! Turning a failed S3 request into a line a person can act on.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::config::S3Config;
use crate::destination::DeliveryError;

/// Classifies `error` of `action` on `key`. Every failure is retryable except a request
/// that could not even be built: access, a missing bucket or a wrong region can be fixed
/// while the object waits in `store_dir`.
pub fn request_error<E>(
    action: &'static str,
    config: &S3Config,
    key: &str,
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
    let (detail, retryable) = match &error {
        SdkError::ConstructionFailure(_) => (
            format!("the request could not be built: {}", chain(&error)),
            false,
        ),
        SdkError::TimeoutError(_) => (format!("no answer from {where_to} in time"), true),
        SdkError::DispatchFailure(_) => {
            (format!("cannot reach {where_to}: {}", chain(&error)), true)
        }
        _ => (explain(&code, &message, status, config), true),
    };
    DeliveryError::Request {
        action: target,
        detail,
        retryable,
    }
}

/// What an S3 error code means for the person reading the log.
fn explain(code: &str, message: &str, status: Option<u16>, config: &S3Config) -> String {
    let said = match (code, message) {
        ("", "") => format!("HTTP {}", status.unwrap_or_default()),
        (code, "") => code.to_owned(),
        (code, message) => format!("{code}: {message}"),
    };
    let advice = match code {
        "AccessDenied" | "AllAccessDisabled" => format!(
            "the credentials in use may not do this on bucket '{}': allow it in their IAM \
             policy (and in the bucket policy, for a bucket in another account)",
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
        | "SignatureDoesNotMatch" => {
            "the credentials were refused: expired, rotated or wrong".to_owned()
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

/// An error and its sources, joined.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
