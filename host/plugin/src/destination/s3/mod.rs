//! `sink s3`: objects are uploaded to a bucket at their key, in one request when they are
//! small and in parts (multipart upload) when they are larger than `upload_chunk_size`.
//!
//! Nothing is written over an object: PutObject and CompleteMultipartUpload carry
//! `If-None-Match: *`, and every object carries its token in the metadata
//! `x-amz-meta-rustsink-token`. When S3 answers 412 (the key holds an object), the object
//! there is this one if it has this token (delivered before a crash lost the record of it);
//! otherwise the key is taken. For servers that ignore the header, `s3_check_existing`
//! asks with HeadObject first.
//!
//! An object larger than a part is uploaded while it is still open: each part of its
//! committed bytes (which never change) that more data follows is stored as soon as it is
//! committed, so that sealing leaves only the last part and the completion to send.
//!
//! A multipart upload records its id and every stored part through the
//! [`ProgressLog`], which the delivery thread keeps in the journal: an attempt after a
//! failure or a restart uploads only the parts still missing. If it was completed just
//! before a crash, the object at the key is recognised by its token. If S3 no longer knows
//! the upload (it was aborted, or expired under a lifecycle rule), the upload starts over;
//! that is asked with ListParts after a failure, since S3-compatible servers do not all
//! answer a request for an unknown upload with `NoSuchUpload`.

mod credentials;
mod error;
pub mod policy;

use std::path::Path;

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::IdentityCache;
use aws_sdk_s3::config::SharedHttpClient;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::head_object::{HeadObjectError, HeadObjectOutput};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectCannedAcl,
    ServerSideEncryption, StorageClass,
};

use super::{DeliveryError, Destination, PartDone, ProgressLog, SealedObject, UploadProgress};
use crate::config::{Checksum, Encryption, S3Config};
use crate::metrics::Metrics;
use credentials::SessionCredentials;
use error::request_error;

/// The metadata (`x-amz-meta-` name) that holds an object's token.
const TOKEN_METADATA: &str = "rustsink-token";

/// Sets what every new object carries. PutObject and CreateMultipartUpload have the same
/// setters on builders of different types, hence a macro.
macro_rules! with_object_options {
    ($request:expr, $config:expr, $token:expr) => {{
        let config: &S3Config = $config;
        let (encryption, kms_key_id) = encryption_headers(config.encryption.as_ref());
        $request
            .content_type(&config.content_type)
            .set_storage_class(config.storage_class.as_deref().map(StorageClass::from))
            .set_acl(config.canned_acl.as_deref().map(ObjectCannedAcl::from))
            .set_tagging(config.object_tags.clone())
            .set_checksum_algorithm(config.checksum.map(algorithm))
            .set_server_side_encryption(encryption)
            .set_ssekms_key_id(kms_key_id)
            .metadata(TOKEN_METADATA, $token)
    }};
}

/// Uploads objects to a bucket.
#[derive(Debug)]
pub struct S3Destination {
    config: S3Config,
    client: Client,
    credentials: SessionCredentials,
    runtime: tokio::runtime::Runtime,
}

impl S3Destination {
    /// Builds the client: the region from the configuration or the environment, the
    /// credentials as configured (see `credentials.rs`). Nothing is sent yet.
    ///
    /// # Errors
    ///
    /// When the runtime for the client cannot be started.
    pub fn open(config: S3Config, metrics: Metrics) -> std::io::Result<S3Destination> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rustsink-s3")
            .enable_all()
            .build()?;
        let http = https_client(&config)?;
        let (client, credentials) = runtime.block_on(build_client(&config, http, metrics));
        Ok(S3Destination {
            config,
            client,
            credentials,
            runtime,
        })
    }

    async fn upload(
        &self,
        object: &SealedObject,
        progress: &mut dyn ProgressLog,
    ) -> Result<(), DeliveryError> {
        if self.config.check_existing {
            // Also when parts were stored earlier (ahead, or before a failure): the key may
            // have been taken since.
            if let Some(head) = self.head_if_any(&object.key).await? {
                let found = self.ours_or_taken(object, &head);
                if found.is_err() {
                    self.drop_upload(&object.key, progress).await?;
                }
                return found;
            }
        }
        if object.len <= self.config.upload_chunk_size {
            // Parts stored for a longer file than the one sealed do not fit it.
            self.drop_upload(&object.key, progress).await?;
            self.put_whole(object).await
        } else {
            self.put_in_parts(object, progress).await
        }
    }

    async fn put_whole(&self, object: &SealedObject) -> Result<(), DeliveryError> {
        let body = file_part(&object.path, 0, object.len).await?;
        let request = self
            .client
            .put_object()
            .bucket(&self.config.bucket)
            .key(&object.key)
            .body(body)
            .content_length(object.len as i64)
            .set_content_md5(self.content_md5(&object.path, 0, object.len).await?);
        let sent = with_object_options!(request, &self.config, &object.token)
            .if_none_match("*")
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(error) if precondition_failed(&error) => self.found_at_key(object).await,
            Err(error) => Err(self.failed("PutObject", &object.key, error)),
        }
    }

    /// After a 412: whether the object at the key is this one (Ok) or another.
    async fn found_at_key(&self, object: &SealedObject) -> Result<(), DeliveryError> {
        match self.head(&object.key).await {
            Ok(head) => self.ours_or_taken(object, &head),
            Err(error) => Err(self.failed("HeadObject", &object.key, error)),
        }
    }

    fn ours_or_taken(
        &self,
        object: &SealedObject,
        head: &HeadObjectOutput,
    ) -> Result<(), DeliveryError> {
        let token = head.metadata().and_then(|m| m.get(TOKEN_METADATA));
        if token.is_some_and(|token| *token == object.token) {
            Ok(())
        } else {
            Err(DeliveryError::KeyTaken {
                key: object.key.clone(),
            })
        }
    }

    async fn put_in_parts(
        &self,
        object: &SealedObject,
        progress: &mut dyn ProgressLog,
    ) -> Result<(), DeliveryError> {
        let mut state = self.begin_upload(object, progress).await?;
        let parts = object.len.div_ceil(state.part_size);
        self.upload_parts(object, &mut state, progress, parts)
            .await?;
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(&self.config.bucket)
            .key(&object.key)
            .upload_id(&state.upload_id)
            .multipart_upload(self.completed_parts(&state))
            .if_none_match("*")
            .send()
            .await;
        match completed {
            Ok(_) => Ok(()),
            Err(error) if precondition_failed(&error) => {
                let found = self.found_at_key(object).await;
                if let Err(DeliveryError::KeyTaken { .. }) = &found {
                    // This upload can never complete at this key: its parts go, and the
                    // object starts over at its next key.
                    self.drop_upload(&object.key, progress).await?;
                }
                found
            }
            Err(error) => {
                let error = self.failed("CompleteMultipartUpload", &object.key, error);
                if self.holds(object).await {
                    // Completed before a crash: it is delivered.
                    return Ok(());
                }
                Err(self.forget_if_gone(error, progress, &object.key).await)
            }
        }
    }

    /// Uploads the next part of an open object's committed bytes (which never change) if
    /// more data follows it. The upload is completed by [`put_in_parts`] once the object is
    /// sealed, which then sends only the parts still missing.
    ///
    /// [`put_in_parts`]: Self::put_in_parts
    async fn upload_ahead(
        &self,
        object: &SealedObject,
        progress: &mut dyn ProgressLog,
    ) -> Result<(), DeliveryError> {
        let whole = object.len.saturating_sub(1) / self.config.upload_chunk_size;
        if whole == 0 {
            return Ok(());
        }
        if self.config.check_existing
            && progress.resume().is_none()
            && self.head_if_any(&object.key).await?.is_some()
        {
            // The key holds an object already: the delivery of the sealed object settles
            // whose it is.
            return Ok(());
        }
        let mut state = self.begin_upload(object, progress).await?;
        let next = state.parts.len() as u64 + 1;
        self.upload_parts(object, &mut state, progress, whole.min(next))
            .await
    }

    /// The upload recorded in `progress` when it was begun with today's part size, or a new
    /// one, recorded.
    async fn begin_upload(
        &self,
        object: &SealedObject,
        progress: &mut dyn ProgressLog,
    ) -> Result<UploadProgress, DeliveryError> {
        let part_size = self.config.upload_chunk_size;
        let resumed = progress
            .resume()
            .filter(|p| p.part_size == part_size)
            .cloned();
        if let Some(state) = resumed {
            return Ok(state);
        }
        if let Some(stale) = progress.resume() {
            // Begun with another upload_chunk_size: its parts do not fit; start over.
            self.abort(&object.key, &stale.upload_id).await;
        }
        let state = UploadProgress {
            upload_id: self.create_upload(object).await?,
            part_size,
            parts: Vec::new(),
        };
        record(progress, Some(state.clone()), &object.key)?;
        Ok(state)
    }

    /// Uploads the parts after those in `state` up to part number `last`, recording each.
    async fn upload_parts(
        &self,
        object: &SealedObject,
        state: &mut UploadProgress,
        progress: &mut dyn ProgressLog,
        last: u64,
    ) -> Result<(), DeliveryError> {
        let part_size = state.part_size;
        for number in state.parts.len() as u64 + 1..=last {
            let offset = (number - 1) * part_size;
            let length = part_size.min(object.len - offset);
            let body = file_part(&object.path, offset, length).await?;
            let sent = self
                .client
                .upload_part()
                .bucket(&self.config.bucket)
                .key(&object.key)
                .upload_id(&state.upload_id)
                .part_number(number as i32)
                .content_length(length as i64)
                .body(body)
                .set_content_md5(self.content_md5(&object.path, offset, length).await?)
                .set_checksum_algorithm(self.config.checksum.map(algorithm))
                .send()
                .await;
            let output = match sent {
                Ok(output) => output,
                Err(error) => {
                    let error = self.failed("UploadPart", &object.key, error);
                    return Err(self.forget_if_gone(error, progress, &object.key).await);
                }
            };
            state.parts.push(PartDone {
                number: number as u32,
                etag: output.e_tag().unwrap_or_default().to_owned(),
                checksum: part_checksum(self.config.checksum, &output),
            });
            record(progress, Some(state.clone()), &object.key)?;
        }
        Ok(())
    }

    async fn create_upload(&self, object: &SealedObject) -> Result<String, DeliveryError> {
        let key = &object.key;
        let request = self
            .client
            .create_multipart_upload()
            .bucket(&self.config.bucket)
            .key(key);
        let output = with_object_options!(request, &self.config, &object.token)
            .send()
            .await
            .map_err(|e| self.failed("CreateMultipartUpload", key, e))?;
        output
            .upload_id()
            .map(str::to_owned)
            .ok_or_else(|| DeliveryError::Request {
                action: format!("CreateMultipartUpload of s3://{}/{key}", self.config.bucket),
                detail: "the answer carried no upload id".into(),
                credentials_refused: false,
            })
    }

    fn completed_parts(&self, state: &UploadProgress) -> CompletedMultipartUpload {
        let parts = state.parts.iter().map(|part| {
            let built = CompletedPart::builder()
                .part_number(part.number as i32)
                .e_tag(&part.etag);
            let checksum = part.checksum.clone();
            match self.config.checksum {
                Some(Checksum::Crc32) => built.set_checksum_crc32(checksum),
                Some(Checksum::Crc32c) => built.set_checksum_crc32_c(checksum),
                Some(Checksum::Sha1) => built.set_checksum_sha1(checksum),
                Some(Checksum::Sha256) => built.set_checksum_sha256(checksum),
                None => built,
            }
            .build()
        });
        CompletedMultipartUpload::builder()
            .set_parts(Some(parts.collect()))
            .build()
    }

    /// After a failed request: when S3 no longer knows the recorded upload, forgets it
    /// so that the next attempt starts over. Returns the error to report either way.
    async fn forget_if_gone(
        &self,
        error: DeliveryError,
        progress: &mut dyn ProgressLog,
        key: &str,
    ) -> DeliveryError {
        let Some(upload_id) = progress.resume().map(|p| p.upload_id.clone()) else {
            return error;
        };
        let listed = self
            .client
            .list_parts()
            .bucket(&self.config.bucket)
            .key(key)
            .upload_id(upload_id)
            .max_parts(1)
            .send()
            .await;
        let gone = listed.is_err_and(|e| e.code() == Some("NoSuchUpload"));
        if gone && let Err(record_error) = record(progress, None, key) {
            return record_error;
        }
        error
    }

    /// Whether this object is at its key.
    async fn holds(&self, object: &SealedObject) -> bool {
        let head = self.head(&object.key).await;
        head.is_ok_and(|head| self.ours_or_taken(object, &head).is_ok())
    }

    async fn head(&self, key: &str) -> Result<HeadObjectOutput, SdkError<HeadObjectError>> {
        let request = self
            .client
            .head_object()
            .bucket(&self.config.bucket)
            .key(key);
        request.send().await
    }

    /// What HeadObject says of the object at `key`; None when there is none.
    async fn head_if_any(&self, key: &str) -> Result<Option<HeadObjectOutput>, DeliveryError> {
        match self.head(key).await {
            Ok(head) => Ok(Some(head)),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(error) => Err(self.failed("HeadObject", key, error)),
        }
    }

    /// Aborts the upload recorded in `progress`, if any, and forgets it: the object's next
    /// upload starts over.
    async fn drop_upload(
        &self,
        key: &str,
        progress: &mut dyn ProgressLog,
    ) -> Result<(), DeliveryError> {
        let Some(upload_id) = progress.resume().map(|p| p.upload_id.clone()) else {
            return Ok(());
        };
        self.abort(key, &upload_id).await;
        record(progress, None, key)
    }

    /// Aborts an upload, so that its parts stop costing storage; a failure only leaves
    /// them to the bucket's lifecycle rules.
    async fn abort(&self, key: &str, upload_id: &str) {
        let _ = self
            .client
            .abort_multipart_upload()
            .bucket(&self.config.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
    }

    fn failed<E>(&self, action: &'static str, key: &str, error: SdkError<E>) -> DeliveryError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        request_error(
            action,
            &self.config,
            key,
            &self.credentials.identity(),
            error,
        )
    }
}

impl Destination for S3Destination {
    fn put(
        &self,
        object: &SealedObject,
        progress: &mut dyn ProgressLog,
    ) -> Result<(), DeliveryError> {
        self.runtime.block_on(async {
            match self.upload(object, progress).await {
                Err(DeliveryError::Request {
                    credentials_refused: true,
                    ..
                }) if self.credentials.renew_after_refusal().await => {
                    // Expired or rotated under us: once more with fresh credentials.
                    self.upload(object, progress).await
                }
                outcome => outcome,
            }
        })
    }

    fn ahead_part_size(&self) -> Option<u64> {
        Some(self.config.upload_chunk_size)
    }

    fn put_ahead(
        &self,
        object: &SealedObject,
        progress: &mut dyn ProgressLog,
    ) -> Result<(), DeliveryError> {
        self.runtime.block_on(self.upload_ahead(object, progress))
    }

    fn exists(&self, key: &str) -> Result<bool, DeliveryError> {
        let head = self.runtime.block_on(self.head_if_any(key))?;
        Ok(head.is_some())
    }

    fn abandon(&self, object: &SealedObject) {
        if let Some(upload) = &object.progress {
            self.runtime
                .block_on(self.abort(&object.key, &upload.upload_id));
        }
    }

    fn describe(&self) -> String {
        match &self.config.endpoint {
            Some(endpoint) => format!("bucket {} at {endpoint}", self.config.bucket),
            None => format!("bucket {}", self.config.bucket),
        }
    }
}

/// An HTTPS client that also trusts `tls_ca_file`'s certificates; None: the SDK's own.
fn https_client(config: &S3Config) -> std::io::Result<Option<SharedHttpClient>> {
    use aws_smithy_http_client::tls;
    let Some(pem) = &config.ca_certificates else {
        return Ok(None);
    };
    let trust = tls::TrustStore::default().with_pem_certificate(pem.clone());
    let context = tls::TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(std::io::Error::other)?;
    let client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(context)
        .build_https();
    Ok(Some(client))
}

async fn build_client(
    config: &S3Config,
    http: Option<SharedHttpClient>,
    metrics: Metrics,
) -> (Client, SessionCredentials) {
    let region = RegionProviderChain::first_try(config.region.clone().map(Region::new))
        .or_default_provider()
        .or_else(Region::new("us-east-1"))
        .region()
        .await
        .unwrap_or_else(|| Region::new("us-east-1"));
    let credentials =
        SessionCredentials::new(&config.credentials, region.clone(), http.clone(), metrics).await;
    let mut shared = aws_config::defaults(BehaviorVersion::latest());
    if let Some(http) = http {
        shared = shared.http_client(http);
    }
    let shared = shared
        .region(region)
        .credentials_provider(credentials.clone())
        // SessionCredentials caches, and renews on refusal, which the SDK's cache cannot.
        .identity_cache(IdentityCache::no_cache())
        .load()
        .await;
    // Checksums only when asked for or required: S3-compatible servers differ in which
    // of the newer ones they accept.
    let checksums = match config.checksum {
        Some(_) => RequestChecksumCalculation::WhenSupported,
        None => RequestChecksumCalculation::WhenRequired,
    };
    let mut s3 = aws_sdk_s3::config::Builder::from(&shared);
    if let Some(endpoint) = &config.endpoint {
        s3 = s3.endpoint_url(endpoint);
    }
    let s3 = s3
        .force_path_style(config.path_style)
        .request_checksum_calculation(checksums)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        // A few quick tries inside one attempt; the delivery thread's backoff does the rest.
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .operation_attempt_timeout(std::time::Duration::from_secs(300))
                .build(),
        )
        .build();
    (Client::from_conf(s3), credentials)
}

/// Whether S3 refused a conditional write because the key holds an object.
fn precondition_failed<E, R>(error: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    error.code() == Some("PreconditionFailed")
}

impl S3Destination {
    /// The Content-MD5 of bytes `offset..offset + length` of an object's file, if
    /// `send_content_md5` asks for it.
    async fn content_md5(
        &self,
        path: &Path,
        offset: u64,
        length: u64,
    ) -> Result<Option<String>, DeliveryError> {
        if !self.config.send_content_md5 {
            return Ok(None);
        }
        let file = path.to_owned();
        let digest = tokio::task::spawn_blocking(move || md5_of(&file, offset, length))
            .await
            .map_err(std::io::Error::other)
            .and_then(|digest| digest);
        digest.map(Some).map_err(|source| DeliveryError::Io {
            action: "reading for its Content-MD5",
            path: path.to_owned(),
            source,
        })
    }
}

/// The base64 MD5 of bytes `offset..offset + length` of the file at `path`.
fn md5_of(path: &Path, offset: u64, length: u64) -> std::io::Result<String> {
    use base64::Engine as _;
    use md5::Digest as _;
    use std::io::{Read, Seek, SeekFrom};

    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut hasher = md5::Md5::new();
    let mut rest = file.take(length);
    let mut buffer = vec![0; 256 << 10];
    let mut read = 0;
    loop {
        let n = rest.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        read += n as u64;
    }
    if read != length {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("{} ends {} bytes early", path.display(), length - read),
        ));
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(hasher.finalize()))
}

/// Bytes `offset..offset + length` of an object's file, streamed.
async fn file_part(path: &Path, offset: u64, length: u64) -> Result<ByteStream, DeliveryError> {
    ByteStream::read_from()
        .path(path)
        .offset(offset)
        .length(Length::Exact(length))
        .build()
        .await
        .map_err(|error| DeliveryError::Io {
            action: "reading",
            path: path.to_owned(),
            source: std::io::Error::other(error),
        })
}

fn encryption_headers(
    encryption: Option<&Encryption>,
) -> (Option<ServerSideEncryption>, Option<String>) {
    match encryption {
        None => (None, None),
        Some(Encryption::Aes256) => (Some(ServerSideEncryption::Aes256), None),
        Some(Encryption::Kms { key_id }) => (Some(ServerSideEncryption::AwsKms), key_id.clone()),
    }
}

/// The SDK's name of a checksum.
fn algorithm(checksum: Checksum) -> ChecksumAlgorithm {
    match checksum {
        Checksum::Crc32 => ChecksumAlgorithm::Crc32,
        Checksum::Crc32c => ChecksumAlgorithm::Crc32C,
        Checksum::Sha1 => ChecksumAlgorithm::Sha1,
        Checksum::Sha256 => ChecksumAlgorithm::Sha256,
    }
}

fn part_checksum(
    checksum: Option<Checksum>,
    output: &aws_sdk_s3::operation::upload_part::UploadPartOutput,
) -> Option<String> {
    match checksum? {
        Checksum::Crc32 => output.checksum_crc32(),
        Checksum::Crc32c => output.checksum_crc32_c(),
        Checksum::Sha1 => output.checksum_sha1(),
        Checksum::Sha256 => output.checksum_sha256(),
    }
    .map(str::to_owned)
}

fn record(
    progress: &mut dyn ProgressLog,
    state: Option<UploadProgress>,
    key: &str,
) -> Result<(), DeliveryError> {
    progress
        .record(state)
        .map_err(|source| DeliveryError::Request {
            action: format!("recording the upload progress of '{key}' in the journal"),
            detail: source.to_string(),
            credentials_refused: false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_md5_is_the_base64_md5_of_the_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        std::fs::write(&path, b"xxThe quick brown fox jumps over the lazy dogyy").unwrap();
        let fox = md5_of(&path, 2, 43).unwrap();
        assert_eq!(fox, "nhB9nTcrtoJr2B01QqQZ1g==");
        assert_eq!(md5_of(&path, 0, 0).unwrap(), "1B2M2Y8AsgTpgAmY7PhCfg==");
        let error = md5_of(&path, 40, 20).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
