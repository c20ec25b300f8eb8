//! The keys of `sink s3`: the bucket, where it is, and how objects are uploaded.

use aws_sdk_s3::types::{ObjectCannedAcl, StorageClass};

use super::credentials::{self, CredentialsConfig};
use super::{ConfigError, http_url, invalid, keys, missing, parse};

/// Server-side encryption of uploaded objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    /// SSE-S3 (`AES256`).
    Aes256,
    /// SSE-KMS (`aws:kms`), with a key id or the account's default key.
    Kms {
        /// The key id or ARN (`sse_kms_key_id`).
        key_id: Option<String>,
    },
}

/// The checksum sent with every upload (`checksum_algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// CRC-32.
    Crc32,
    /// CRC-32C.
    Crc32c,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

/// A validated `sink s3` configuration. Values S3 defines (the storage class, the ACL) are
/// kept in S3's spelling; the uploader turns them into the SDK's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// The region; None: from the environment.
    pub region: Option<String>,
    /// Where credentials come from.
    pub credentials: CredentialsConfig,
    /// An S3-compatible server's URL.
    pub endpoint: Option<String>,
    /// Whether the bucket goes in the path.
    pub path_style: bool,
    /// The multipart part size, and the size from which multipart is used.
    pub upload_chunk_size: u64,
    /// The Content-Type of objects.
    pub content_type: String,
    /// The storage class, as S3 spells it; None: the bucket's.
    pub storage_class: Option<String>,
    /// Server-side encryption; None: the bucket's default.
    pub encryption: Option<Encryption>,
    /// A canned ACL, as S3 spells it.
    pub canned_acl: Option<String>,
    /// Tags, URL-encoded `k=v&k2=v2`.
    pub object_tags: Option<String>,
    /// A checksum for every upload; None: only what requests require.
    pub checksum: Option<Checksum>,
    /// Whether to ask if a key is taken before uploading, for servers that ignore
    /// `If-None-Match`.
    pub check_existing: bool,
    /// Whether uploads carry Content-MD5.
    pub send_content_md5: bool,
    /// PEM certificates trusted besides the system's (`tls_ca_file`), read at start.
    pub ca_certificates: Option<Vec<u8>>,
}

/// S3's smallest part (all but the last) of a multipart upload.
const MIN_PART: u64 = 5 << 20;
/// S3's largest part.
const MAX_PART: u64 = 5 << 30;

/// Reads the `sink s3` keys through `value` (which applies defaults).
pub(super) fn parse(
    lookup: &dyn Fn(&str) -> Option<String>,
    value: &dyn Fn(&'static str) -> Option<String>,
) -> Result<S3Config, ConfigError> {
    let given = |key: &'static str| {
        value(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let bucket = given(keys::BUCKET).ok_or(missing(
        keys::BUCKET,
        "'sink s3' uploads to the bucket that 'bucket' names",
    ))?;
    if bucket.contains('/') || bucket.contains(char::is_whitespace) {
        return Err(invalid(
            keys::BUCKET,
            &bucket,
            "a bucket name, without 's3://', '/' or spaces (the key prefix goes in s3_key_format)",
        ));
    }
    let endpoint = http_url(keys::ENDPOINT, given(keys::ENDPOINT))?;
    let path_style = match given(keys::S3_PATH_STYLE) {
        Some(text) => parse::boolean(&text)
            .map_err(|expected| invalid(keys::S3_PATH_STYLE, &text, expected))?,
        None => endpoint.is_some(),
    };
    let chunk_text = value(keys::UPLOAD_CHUNK_SIZE).unwrap_or_default();
    let upload_chunk_size = parse::size(&chunk_text)
        .ok()
        .filter(|size| (MIN_PART..=MAX_PART).contains(size))
        .ok_or_else(|| invalid(keys::UPLOAD_CHUNK_SIZE, &chunk_text, "a size from 5M to 5G"))?;
    let storage_class = given(keys::STORAGE_CLASS)
        .map(|text| one_of(keys::STORAGE_CLASS, &text, StorageClass::values()).map(str::to_owned))
        .transpose()?;
    let canned_acl = given(keys::CANNED_ACL)
        .map(|text| one_of(keys::CANNED_ACL, &text, ObjectCannedAcl::values()).map(str::to_owned))
        .transpose()?;
    let kms_key = given(keys::SSE_KMS_KEY_ID);
    let encryption = match given(keys::SERVER_SIDE_ENCRYPTION) {
        None if kms_key.is_some() => {
            return Err(missing(
                keys::SERVER_SIDE_ENCRYPTION,
                "'sse_kms_key_id' is used only with 'server_side_encryption aws:kms'",
            ));
        }
        None => None,
        Some(text) if text.eq_ignore_ascii_case("aes256") => Some(Encryption::Aes256),
        Some(text) if text.eq_ignore_ascii_case("aws:kms") => {
            Some(Encryption::Kms { key_id: kms_key })
        }
        Some(text) => {
            return Err(invalid(
                keys::SERVER_SIDE_ENCRYPTION,
                &text,
                "AES256 or aws:kms",
            ));
        }
    };
    let object_tags = given(keys::OBJECT_TAGS);
    if let Some(tags) = &object_tags
        && tags
            .split('&')
            .any(|pair| pair.split_once('=').is_none_or(|(k, _)| k.is_empty()))
    {
        return Err(invalid(
            keys::OBJECT_TAGS,
            tags,
            "key=value pairs separated by '&'",
        ));
    }
    let checksum_text = value(keys::CHECKSUM_ALGORITHM).unwrap_or_default();
    let checksum = match checksum_text.trim().to_ascii_lowercase().as_str() {
        "none" | "off" | "" => None,
        "crc32" => Some(Checksum::Crc32),
        "crc32c" => Some(Checksum::Crc32c),
        "sha1" => Some(Checksum::Sha1),
        "sha256" => Some(Checksum::Sha256),
        _ => {
            return Err(invalid(
                keys::CHECKSUM_ALGORITHM,
                &checksum_text,
                "crc32, crc32c, sha1, sha256 or none",
            ));
        }
    };
    let region = given(keys::REGION);
    let credentials = credentials::parse(lookup, value, region.as_deref())?;
    let check_text = value(keys::S3_CHECK_EXISTING).unwrap_or_default();
    let check_existing = parse::boolean(&check_text)
        .map_err(|expected| invalid(keys::S3_CHECK_EXISTING, &check_text, expected))?;
    let ca_certificates = given(keys::TLS_CA_FILE)
        .map(|path| read_certificates(&path))
        .transpose()?;
    let md5_text = value(keys::SEND_CONTENT_MD5).unwrap_or_default();
    let send_content_md5 = parse::boolean(&md5_text)
        .map_err(|expected| invalid(keys::SEND_CONTENT_MD5, &md5_text, expected))?;
    Ok(S3Config {
        bucket,
        region,
        credentials,
        endpoint,
        path_style,
        upload_chunk_size,
        content_type: value(keys::CONTENT_TYPE).unwrap_or_default(),
        storage_class,
        encryption,
        canned_acl,
        object_tags,
        checksum,
        check_existing,
        send_content_md5,
        ca_certificates,
    })
}

/// The PEM file of `tls_ca_file`, checked to hold a certificate.
fn read_certificates(path: &str) -> Result<Vec<u8>, ConfigError> {
    let pem = std::fs::read(path).map_err(|error| {
        invalid(
            keys::TLS_CA_FILE,
            path,
            format!("a readable file ({error})"),
        )
    })?;
    if !pem
        .windows(27)
        .any(|window| window == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(invalid(
            keys::TLS_CA_FILE,
            path,
            "a PEM file of certificates (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(pem)
}

/// `text` if it is one of `allowed` (ignoring case), in the spelling S3 uses.
fn one_of(
    key: &'static str,
    text: &str,
    allowed: &[&'static str],
) -> Result<&'static str, ConfigError> {
    allowed
        .iter()
        .find(|name| name.eq_ignore_ascii_case(text))
        .copied()
        .ok_or_else(|| invalid(key, text, format!("one of {}", allowed.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(pairs: &[(&str, &str)]) -> Result<S3Config, ConfigError> {
        let mut all = vec![("sink", "s3")];
        all.extend_from_slice(pairs);
        let config = super::super::Config::from_pairs(&all)?;
        match config.sink {
            super::super::SinkConfig::S3(s3) => Ok(*s3),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_and_path_style_follow_the_endpoint() {
        let config = s3(&[("bucket", "logs")]).unwrap();
        assert_eq!(config.upload_chunk_size, 8 << 20);
        assert!(!config.path_style);
        assert_eq!(config.checksum, None);
        let local = s3(&[("bucket", "logs"), ("endpoint", "http://127.0.0.1:9000")]).unwrap();
        assert!(local.path_style);
        let virtual_hosted = s3(&[
            ("bucket", "logs"),
            ("endpoint", "http://127.0.0.1:9000"),
            ("s3_path_style", "off"),
        ])
        .unwrap();
        assert!(!virtual_hosted.path_style);
    }

    #[test]
    fn s3_spellings_are_taken_in_any_case() {
        let config = s3(&[
            ("bucket", "logs"),
            ("storage_class", "standard_ia"),
            ("canned_acl", "Bucket-Owner-Full-Control"),
            ("server_side_encryption", "aws:kms"),
            ("sse_kms_key_id", "alias/logs"),
            ("checksum_algorithm", "CRC32C"),
        ])
        .unwrap();
        assert_eq!(config.storage_class.as_deref(), Some("STANDARD_IA"));
        assert_eq!(
            config.canned_acl.as_deref(),
            Some("bucket-owner-full-control")
        );
        assert_eq!(
            config.encryption,
            Some(Encryption::Kms {
                key_id: Some("alias/logs".into())
            })
        );
        assert_eq!(config.checksum, Some(Checksum::Crc32c));
    }

    #[test]
    fn bad_values_name_the_key_and_the_value() {
        // The keys given, the key the error names, and a word it must contain.
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case<'_>] = &[
            (&[], "bucket", "missing"),
            (&[("bucket", "s3://logs/app")], "bucket", "s3://logs/app"),
            (
                &[("bucket", "b"), ("endpoint", "minio:9000")],
                "endpoint",
                "minio:9000",
            ),
            (
                &[("bucket", "b"), ("upload_chunk_size", "1M")],
                "upload_chunk_size",
                "1M",
            ),
            (
                &[("bucket", "b"), ("storage_class", "COLD")],
                "storage_class",
                "STANDARD_IA",
            ),
            (
                &[("bucket", "b"), ("canned_acl", "open")],
                "canned_acl",
                "private",
            ),
            (
                &[("bucket", "b"), ("server_side_encryption", "des")],
                "server_side_encryption",
                "aws:kms",
            ),
            (
                &[("bucket", "b"), ("sse_kms_key_id", "k")],
                "server_side_encryption",
                "sse_kms_key_id",
            ),
            (
                &[("bucket", "b"), ("object_tags", "team")],
                "object_tags",
                "team",
            ),
            (
                &[("bucket", "b"), ("checksum_algorithm", "md5")],
                "checksum_algorithm",
                "md5",
            ),
        ];
        for (pairs, key, mentioned) in cases {
            let error = s3(pairs).unwrap_err().to_string();
            assert!(error.contains(&format!("'{key}'")), "{pairs:?}: {error}");
            assert!(error.contains(mentioned), "{pairs:?}: {error}");
        }
    }
}
