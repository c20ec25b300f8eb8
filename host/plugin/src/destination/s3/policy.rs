//! The least-privilege IAM policies a `sink s3` configuration needs, as `rustsink policy`
//! prints them.
//!
//! Every identity of the credential chain gets what it uses and nothing more: the base
//! identity and each intermediate role may assume the next role; the last identity may
//! write objects under the fixed prefix of `s3_key_format`, plus the multipart actions
//! when objects can be larger than `upload_chunk_size`, and KMS data keys with
//! `aws:kms`. Each role also gets the trust policy that lets the identity before it in.

use serde::Serialize;
use serde_json::{Value, json};

use crate::config::{CredentialsConfig, Encryption, ObjectConfig, S3Config};

/// Stands for the identity of the AWS default chain (the ECS task role, IRSA role,
/// instance profile role or user), which only the environment knows.
pub const DEFAULT_CHAIN_IDENTITY: &str =
    "<ARN of the default-chain identity: the task role, instance profile role or user>";
/// Stands for the EKS cluster's OIDC issuer in IRSA trust policies.
pub const OIDC_ISSUER: &str = "<OIDC issuer of the cluster, without https://>";
/// Stands for the Kubernetes service account in IRSA trust policies.
pub const SERVICE_ACCOUNT: &str = "system:serviceaccount:<namespace>:<service account>";

/// What one identity of the chain needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Grant {
    /// The role (or other identity) the policies belong to.
    pub identity: String,
    /// Who may assume the role; absent for the identity of the default chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_policy: Option<Value>,
    /// Its permissions (an identity-based policy).
    pub policy: Value,
}

/// The grants of every identity of the chain, from the base to the one that uploads.
pub fn grants(s3: &S3Config, objects: &ObjectConfig) -> Vec<Grant> {
    let partition = partition(s3.region.as_deref());
    let credentials = &s3.credentials;
    let mut identities: Vec<(String, Option<Value>)> = Vec::new();
    match &credentials.web_identity {
        Some(web_identity) => identities.push((
            web_identity.role_arn.clone(),
            Some(web_identity_trust(&partition, &web_identity.role_arn)),
        )),
        None => identities.push((DEFAULT_CHAIN_IDENTITY.to_owned(), None)),
    }
    for hop in &credentials.roles {
        let before = identities
            .last()
            .map(|(arn, _)| arn.clone())
            .unwrap_or_default();
        let mut statement = json!({
            "Effect": "Allow",
            "Principal": { "AWS": before },
            "Action": "sts:AssumeRole",
        });
        if let Some(id) = &hop.external_id {
            statement["Condition"] = json!({ "StringEquals": { "sts:ExternalId": id } });
        }
        identities.push((hop.arn.clone(), Some(document(vec![statement]))));
    }
    let last = identities.len() - 1;
    identities
        .into_iter()
        .enumerate()
        .map(|(index, (identity, trust_policy))| {
            let policy = if index == last {
                upload_policy(s3, objects, &partition)
            } else {
                assume_next_policy(credentials, index)
            };
            Grant {
                identity,
                trust_policy,
                policy,
            }
        })
        .collect()
}

/// What the uploading identity needs on the bucket (and KMS).
fn upload_policy(s3: &S3Config, objects: &ObjectConfig, partition: &str) -> Value {
    let multipart = objects.total_file_size > s3.upload_chunk_size;
    // GetObject, for HeadObject: when a key turns out to be taken (412), or is looked at
    // after a restart, whether the object there is this one.
    let mut actions = vec!["s3:PutObject", "s3:GetObject"];
    if s3.canned_acl.is_some() {
        actions.push("s3:PutObjectAcl");
    }
    if s3.object_tags.is_some() {
        actions.push("s3:PutObjectTagging");
    }
    if multipart {
        // ListParts decides after a failure whether an upload is gone; Abort cleans up.
        actions.extend(["s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"]);
    }
    let prefix = objects.key_format.fixed_prefix();
    let mut statements = vec![json!({
        "Sid": "WriteLogObjects",
        "Effect": "Allow",
        "Action": actions,
        "Resource": format!("arn:{partition}:s3:::{}/{}*", s3.bucket, escape_wildcards(&prefix)),
    })];
    if let Some(Encryption::Kms { key_id }) = &s3.encryption {
        let mut kms_actions = vec!["kms:GenerateDataKey"];
        if multipart {
            // Parts are encrypted under one data key, which S3 decrypts to add each part.
            kms_actions.push("kms:Decrypt");
        }
        let resource = match key_id {
            Some(arn) if arn.starts_with("arn:") => arn.clone(),
            _ => "*".to_owned(),
        };
        let mut statement = json!({
            "Sid": "EncryptLogObjects",
            "Effect": "Allow",
            "Action": kms_actions,
            "Resource": resource,
        });
        if resource == "*" {
            let region = s3.region.as_deref().unwrap_or("*");
            statement["Condition"] =
                json!({ "StringLike": { "kms:ViaService": format!("s3.{region}.amazonaws.com") } });
        }
        statements.push(statement);
    }
    document(statements)
}

/// What identity `index` of the chain needs to assume the next role.
fn assume_next_policy(credentials: &CredentialsConfig, index: usize) -> Value {
    document(vec![json!({
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Resource": credentials.roles[index].arn,
    })])
}

/// The trust policy of an IRSA role.
fn web_identity_trust(partition: &str, role_arn: &str) -> Value {
    let account = role_arn.split(':').nth(4).unwrap_or_default();
    document(vec![json!({
        "Effect": "Allow",
        "Principal": { "Federated": format!("arn:{partition}:iam::{account}:oidc-provider/{OIDC_ISSUER}") },
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": { "StringEquals": {
            format!("{OIDC_ISSUER}:aud"): "sts.amazonaws.com",
            format!("{OIDC_ISSUER}:sub"): SERVICE_ACCOUNT,
        } },
    })])
}

fn document(statements: Vec<Value>) -> Value {
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The AWS partition of a region.
fn partition(region: Option<&str>) -> String {
    match region {
        Some(r) if r.starts_with("cn-") => "aws-cn",
        Some(r) if r.starts_with("us-gov-") => "aws-us-gov",
        _ => "aws",
    }
    .to_owned()
}

/// `*` and `?` in a prefix would widen a resource pattern; IAM spells them `${*}` and `${?}`.
fn escape_wildcards(prefix: &str) -> String {
    prefix.replace('*', "${*}").replace('?', "${?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, SinkConfig};

    fn grants_of(pairs: &[(&str, &str)]) -> Vec<Grant> {
        let mut all = vec![("bucket", "logs")];
        all.extend_from_slice(pairs);
        let config = Config::from_pairs(&all).unwrap();
        let SinkConfig::S3(s3) = &config.sink else {
            panic!("not s3")
        };
        grants(s3, &config.objects)
    }

    #[test]
    fn small_objects_need_only_put_object_under_the_prefix() {
        let grants = grants_of(&[
            ("s3_key_format", "dev/$TAG/%Y/$UUID.gz"),
            ("total_file_size", "5M"),
        ]);
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].identity, DEFAULT_CHAIN_IDENTITY);
        assert_eq!(grants[0].trust_policy, None);
        assert_eq!(
            grants[0].policy["Statement"],
            json!([{
                "Sid": "WriteLogObjects",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:GetObject"],
                "Resource": "arn:aws:s3:::logs/dev/*",
            }])
        );
    }

    #[test]
    fn multipart_acl_tags_and_kms_add_exactly_their_actions() {
        let key = "arn:aws:kms:eu-west-1:111111111111:key/abc";
        let grants = grants_of(&[
            ("region", "eu-west-1"),
            ("canned_acl", "bucket-owner-full-control"),
            ("object_tags", "team=logs"),
            ("server_side_encryption", "aws:kms"),
            ("sse_kms_key_id", key),
        ]);
        let statements = &grants[0].policy["Statement"];
        assert_eq!(
            statements[0]["Action"],
            json!([
                "s3:PutObject",
                "s3:GetObject",
                "s3:PutObjectAcl",
                "s3:PutObjectTagging",
                "s3:ListMultipartUploadParts",
                "s3:AbortMultipartUpload"
            ])
        );
        assert_eq!(statements[0]["Resource"], "arn:aws:s3:::logs/rustsink/*");
        assert_eq!(
            statements[1]["Action"],
            json!(["kms:GenerateDataKey", "kms:Decrypt"])
        );
        assert_eq!(statements[1]["Resource"], key);
    }

    #[test]
    fn a_chain_grants_each_hop_the_next_and_trusts_the_one_before() {
        let hop = "arn:aws:iam::111111111111:role/hop";
        let writer = "arn:aws:iam::222222222222:role/writer";
        let irsa = "arn:aws:iam::111111111111:role/irsa";
        let grants = grants_of(&[
            ("web_identity_token_file", "/token"),
            ("web_identity_role_arn", irsa),
            ("role_arn", hop),
            ("role_arn.2", writer),
            ("external_id.2", "ext-9"),
            ("region", "cn-north-1"),
        ]);
        let identities: Vec<&str> = grants.iter().map(|g| g.identity.as_str()).collect();
        assert_eq!(identities, [irsa, hop, writer]);
        let irsa_trust = &grants[0].trust_policy.as_ref().unwrap()["Statement"][0];
        assert_eq!(irsa_trust["Action"], "sts:AssumeRoleWithWebIdentity");
        assert_eq!(grants[0].policy["Statement"][0]["Resource"], hop);
        assert_eq!(grants[1].policy["Statement"][0]["Resource"], writer);
        let writer_trust = &grants[2].trust_policy.as_ref().unwrap()["Statement"][0];
        assert_eq!(writer_trust["Principal"]["AWS"], hop);
        assert_eq!(
            writer_trust["Condition"]["StringEquals"]["sts:ExternalId"],
            "ext-9"
        );
        assert_eq!(
            grants[2].policy["Statement"][0]["Resource"],
            "arn:aws-cn:s3:::logs/rustsink/*"
        );
    }

    #[test]
    fn wildcards_in_the_prefix_do_not_widen_the_resource() {
        assert_eq!(escape_wildcards("a*b?/"), "a${*}b${?}/");
    }
}
