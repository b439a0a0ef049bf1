//! The S3 staging location Bedrock reads large video from and writes asynchronous results
//! to (`models.bedrock.s3_uri = "s3://bucket/prefix"`), through `aws-sdk-s3` with the same
//! credentials, region, retries and timeouts as the Bedrock client. Objects this server
//! puts are removed once the call that needed them is done.

use std::path::Path;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;

use super::BedrockConfig;
use reelforge_core::error::{Error, Result};

/// `s3://bucket/prefix` → (bucket, prefix without slashes at either end).
pub fn parse_s3_uri(uri: &str) -> Result<(String, String)> {
    let rest = uri
        .strip_prefix("s3://")
        .ok_or_else(|| Error::invalid(format!("{uri:?} must look like s3://bucket/prefix")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid_bucket {
        return Err(Error::invalid(format!(
            "{bucket:?} is not an S3 bucket name (3-63 lower-case letters, digits, '-' or '.')"
        )));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

/// An S3 location in the JSON of InvokeModel bodies: `{"uri", "bucketOwner"?}`.
pub fn location_json(uri: &str, owner: Option<&str>) -> serde_json::Value {
    let mut location = serde_json::json!({ "uri": uri });
    if let Some(owner) = owner {
        location["bucketOwner"] = serde_json::json!(owner);
    }
    location
}

#[derive(Clone)]
pub struct Staging {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    owner: Option<String>,
}

/// An object a listing found.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Object {
    pub key: String,
    pub size: u64,
    /// The service's entity tag (quotes removed): the same bytes put again keep it.
    pub etag: String,
}

impl Staging {
    pub fn new(shared: &aws_config::SdkConfig, config: &BedrockConfig) -> Result<Staging> {
        Self::at(shared, config, &config.s3_uri)
            .map_err(|e| Error::invalid(format!("models.bedrock.s3_uri: {e}")))
    }

    /// A client for the location `uri` (`s3://bucket/prefix`) with the S3 settings of
    /// `config` (endpoint, path style, bucket owner).
    pub fn at(
        shared: &aws_config::SdkConfig,
        config: &BedrockConfig,
        uri: &str,
    ) -> Result<Staging> {
        let (bucket, prefix) = parse_s3_uri(uri)?;
        let mut builder =
            aws_sdk_s3::config::Builder::from(shared).force_path_style(config.s3_force_path_style);
        if !config.s3_endpoint_url.is_empty() {
            builder = builder.endpoint_url(config.s3_endpoint_url.clone());
        }
        Ok(Staging {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket,
            prefix,
            owner: Some(config.s3_bucket_owner.clone()).filter(|o| !o.is_empty()),
        })
    }

    /// The key of `name` under the configured prefix.
    pub fn key(&self, name: &str) -> String {
        match self.prefix.is_empty() {
            true => name.to_string(),
            false => format!("{}/{name}", self.prefix),
        }
    }

    pub fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// The bucket owner to name in S3 locations, when configured.
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// Puts the file at `key`; its `s3://` URI.
    pub async fn put_file(&self, path: &Path, key: &str, content_type: &str) -> Result<String> {
        let bytes = tokio::fs::read(path).await?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .set_expected_bucket_owner(self.owner.clone())
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| s3_error("putting", &self.uri(key), e))?;
        Ok(self.uri(key))
    }

    pub async fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.get_uri(&self.uri(key)).await
    }

    /// The object at an `s3://bucket/key` URI (in any bucket these credentials read).
    pub async fn get_uri(&self, uri: &str) -> Result<Vec<u8>> {
        let (bucket, key) = uri
            .strip_prefix("s3://")
            .and_then(|r| r.split_once('/'))
            .ok_or_else(|| Error::Unavailable(format!("{uri:?} is not an s3:// object URI")))?;
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_expected_bucket_owner(self.owner.clone().filter(|_| bucket == self.bucket))
            .send()
            .await
            .map_err(|e| s3_error("reading", uri, e))?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| Error::Unavailable(format!("reading {uri}: {e}")))?;
        Ok(body.into_bytes().to_vec())
    }

    /// The keys under `prefix` (every page).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .list_objects(prefix)
            .await?
            .into_iter()
            .map(|o| o.key)
            .collect())
    }

    /// The location's own prefix ("" or "some/prefix/"), for listing all of it.
    pub fn root(&self) -> String {
        match self.prefix.is_empty() {
            true => String::new(),
            false => format!("{}/", self.prefix),
        }
    }

    /// Copies the object at `key` into the file at `path` as it arrives.
    pub async fn download(&self, key: &str, path: &Path) -> Result<u64> {
        use tokio::io::AsyncWriteExt;
        let uri = self.uri(key);
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_expected_bucket_owner(self.owner.clone())
            .send()
            .await
            .map_err(|e| s3_error("reading", &uri, e))?;
        let mut body = out.body;
        let mut file = tokio::fs::File::create(path).await?;
        let mut bytes = 0u64;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| Error::Unavailable(format!("reading {uri}: {e}")))?
        {
            bytes += chunk.len() as u64;
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        Ok(bytes)
    }

    /// The objects under `prefix` with their sizes and entity tags (every page).
    pub async fn list_objects(&self, prefix: &str) -> Result<Vec<S3Object>> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .set_expected_bucket_owner(self.owner.clone())
                .send()
                .await
                .map_err(|e| s3_error("listing", &self.uri(prefix), e))?;
            objects.extend(out.contents().iter().filter_map(|o| {
                Some(S3Object {
                    key: o.key()?.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    etag: o.e_tag().unwrap_or("").trim_matches('"').to_string(),
                })
            }));
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => return Ok(objects),
            }
        }
    }

    /// Removes every object under `prefix` (best effort, like `remove`).
    pub async fn remove_prefix(&self, prefix: &str) {
        if let Ok(keys) = self.list(prefix).await {
            for key in keys {
                self.remove(&key).await;
            }
        }
    }

    /// Removes `key`; a failure is logged, not returned (the object is only litter).
    pub async fn remove(&self, key: &str) {
        let done = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .set_expected_bucket_owner(self.owner.clone())
            .send()
            .await;
        if let Err(e) = done {
            tracing::warn!(
                "could not remove {}: {}",
                self.uri(key),
                DisplayErrorContext(&e)
            );
        }
    }
}

fn s3_error<E>(doing: &str, uri: &str, e: SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &e {
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("UnknownError");
            let text = format!(
                "{doing} {uri}: S3 {code}: {}",
                s.err().message().unwrap_or("")
            );
            match code {
                "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" => {
                    Error::PermissionDenied(text)
                }
                "NoSuchBucket" | "NoSuchKey" => Error::FailedPrecondition(text),
                _ => Error::Unavailable(text),
            }
        }
        other => Error::Unavailable(format!("{doing} {uri}: {}", DisplayErrorContext(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_uris_are_checked() {
        assert_eq!(
            parse_s3_uri("s3://reelforge-staging/work/").unwrap(),
            ("reelforge-staging".into(), "work".into())
        );
        assert_eq!(
            parse_s3_uri("s3://bucket").unwrap(),
            ("bucket".into(), String::new())
        );
        for bad in ["https://bucket/x", "s3://Bucket/x", "s3://ab/x", "s3:///x"] {
            let e = parse_s3_uri(bad).unwrap_err().to_string();
            assert!(
                e.contains("s3://bucket/prefix") || e.contains("bucket name"),
                "{bad}: {e}"
            );
        }
    }
}
