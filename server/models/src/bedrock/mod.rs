//! Amazon Bedrock providers through `aws-sdk-bedrockruntime`: Titan Text Embeddings v2 and
//! Nova Multimodal Embeddings (text) as `TextEmbedder`s, Cohere Rerank 3.5 as a
//! `Reranker`. Credentials and region come from the standard AWS chain (environment,
//! profile, SSO, instance role); the endpoint can be overridden (`models.bedrock.endpoint_url`
//! or `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`), which is how the tests point the real SDK at a
//! local server that speaks Bedrock's wire format. Retries are the SDK's standard mode
//! (throttling, 5xx and transient errors back off; `ModelTimeoutException` is treated as
//! transient too); each provider (role) has its own limit of calls in flight
//! (`concurrency`, or `concurrency_per_role`), so a search's query embedding never waits
//! behind minutes-long Nova video calls; timeouts are configurable.
//!
//! Video too large to send inline, and the asynchronous segmented embeddings of whole
//! videos, go through an S3 staging location (`models.bedrock.s3_uri`, see `staging`).

mod cohere;
pub mod data_automation;
mod embed;
pub mod nova;
pub mod staging;
pub mod telemetry;
pub mod video_embed;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::converse::ConverseError;
use aws_sdk_bedrockruntime::operation::invoke_model::InvokeModelError;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

pub use cohere::CohereReranker;
pub use data_automation::DataAutomation;
pub use embed::{BedrockEmbedder, EmbedModel, MAX_CHARS};
pub use nova::NovaAnalyzer;
pub use staging::Staging;
pub use video_embed::NovaVideoEmbedder;

use reelforge_core::error::{Error, Result};

pub const TITAN_TEXT_V2: &str = "amazon.titan-embed-text-v2:0";
pub const NOVA_EMBEDDINGS: &str = "amazon.nova-2-multimodal-embeddings-v1:0";
pub const COHERE_RERANK: &str = "cohere.rerank-v3-5:0";
/// The largest base64 payload Bedrock takes inline in one request (characters).
pub const INLINE_BASE64_MAX_CHARS: u64 = 25_000_000;
/// Room kept in a request for what travels beside the video (prompt, tool schema, JSON).
const INLINE_REQUEST_ROOM_CHARS: u64 = 100_000;
/// The largest video sent inline: base64 of it (4 characters per 3 bytes, padded) plus
/// the rest of the request stays within `INLINE_BASE64_MAX_CHARS` (18 MiB would be
/// 25,165,824 characters, over the limit).
pub const INLINE_VIDEO_MAX_BYTES: u64 =
    (INLINE_BASE64_MAX_CHARS - INLINE_REQUEST_ROOM_CHARS) / 4 * 3;

/// `[models.bedrock]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BedrockConfig {
    /// "" takes the region from the AWS chain (AWS_REGION, the profile).
    pub region: String,
    /// "" uses Bedrock's endpoint (or AWS_ENDPOINT_URL_BEDROCK_RUNTIME when set).
    pub endpoint_url: String,
    /// Attempts per call, the first included (standard retry mode with backoff).
    pub max_attempts: u32,
    pub connect_timeout_seconds: f64,
    /// Per attempt, for text calls (embeddings, rerank).
    pub read_timeout_seconds: f64,
    /// The whole call, retries included, for text calls.
    pub operation_timeout_seconds: f64,
    /// Per attempt, for calls that send video (Nova through Converse, Nova Multimodal
    /// Embeddings of clips). AWS documents Nova inference calls as taking up to 60
    /// minutes and recommends a read timeout of at least 3600 s ("Complete request
    /// schema", Amazon Nova User Guide).
    pub video_read_timeout_seconds: f64,
    /// The whole video call, retries included: two full attempts.
    pub video_operation_timeout_seconds: f64,
    /// Calls in flight at once, per provider: each role below has a limit of its own.
    pub concurrency: usize,
    /// A role's own limit instead of `concurrency`: `analyzer`, `text_embedder`,
    /// `reranker`, `video_embedder` (`[models.bedrock.concurrency_per_role]`).
    pub concurrency_per_role: BTreeMap<String, usize>,
    /// Embedding size: Titan 256, 512 or 1024; Nova 256, 384, 1024 or 3072.
    pub embedding_dimensions: u32,
    /// Where video goes that is too large to send inline, and where asynchronous
    /// embedding jobs read and write: `s3://bucket/prefix`. "" for none.
    pub s3_uri: String,
    /// The bucket owner's account id, sent with S3 locations ("" to leave it out).
    pub s3_bucket_owner: String,
    /// "" uses S3's endpoint (or AWS_ENDPOINT_URL_S3 when set).
    pub s3_endpoint_url: String,
    /// Path-style S3 addresses (`endpoint/bucket/key`), for S3-compatible endpoints.
    pub s3_force_path_style: bool,
    /// Video payloads up to this size are sent inline; larger ones through `s3_uri`.
    /// Bedrock takes 25,000,000 characters of base64 inline, so at most
    /// `INLINE_VIDEO_MAX_BYTES` (18,675,000 bytes, with room for the rest of the request).
    pub inline_video_limit_bytes: u64,
    /// Clip embeddings of a whole video go through one asynchronous segmented job
    /// (instead of one request per clip) from this many clips on; needs `s3_uri`.
    pub async_embedding_min_clips: usize,
    /// How often an asynchronous job's status is polled.
    pub async_poll_seconds: f64,
    /// An asynchronous job not done after this long is given up.
    pub async_timeout_seconds: f64,
    /// Bedrock Data Automation: the project run on stored videos (`reelforge run-bda`),
    /// "" for none. Needs `s3_uri` and `data_automation_profile_arn`.
    pub data_automation_project_arn: String,
    /// e.g. `arn:aws:bedrock:us-east-1:<account>:data-automation-profile/us.data-automation-v1`.
    pub data_automation_profile_arn: String,
    /// "" uses the service's endpoint (or AWS_ENDPOINT_URL_BEDROCK_DATA_AUTOMATION_RUNTIME).
    pub data_automation_endpoint_url: String,
}

impl Default for BedrockConfig {
    fn default() -> Self {
        BedrockConfig {
            region: String::new(),
            endpoint_url: String::new(),
            max_attempts: 4,
            connect_timeout_seconds: 10.0,
            read_timeout_seconds: 120.0,
            operation_timeout_seconds: 600.0,
            video_read_timeout_seconds: 3600.0,
            video_operation_timeout_seconds: 7200.0,
            concurrency: 4,
            concurrency_per_role: BTreeMap::new(),
            embedding_dimensions: 1024,
            s3_uri: String::new(),
            s3_bucket_owner: String::new(),
            s3_endpoint_url: String::new(),
            s3_force_path_style: false,
            inline_video_limit_bytes: INLINE_VIDEO_MAX_BYTES,
            async_embedding_min_clips: 30,
            async_poll_seconds: 5.0,
            async_timeout_seconds: 3600.0,
            data_automation_project_arn: String::new(),
            data_automation_profile_arn: String::new(),
            data_automation_endpoint_url: String::new(),
        }
    }
}

impl BedrockConfig {
    /// The limit of calls in flight for a provider in `role`.
    pub fn limit_of(&self, role: &str) -> usize {
        self.concurrency_per_role
            .get(role)
            .copied()
            .unwrap_or(self.concurrency)
    }

    pub fn validate(&self) -> Result<()> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if self.max_attempts == 0 || self.max_attempts > 10 {
            return Err(Error::invalid(
                "models.bedrock.max_attempts must be between 1 and 10",
            ));
        }
        if !positive(self.connect_timeout_seconds)
            || !positive(self.read_timeout_seconds)
            || !positive(self.operation_timeout_seconds)
            || !positive(self.video_read_timeout_seconds)
            || !positive(self.video_operation_timeout_seconds)
        {
            return Err(Error::invalid(
                "models.bedrock timeouts must be positive numbers of seconds",
            ));
        }
        if self.concurrency == 0 || self.concurrency > 256 {
            return Err(Error::invalid(
                "models.bedrock.concurrency must be between 1 and 256",
            ));
        }
        for (role, &limit) in &self.concurrency_per_role {
            if !ROLES.contains(&role.as_str()) {
                return Err(Error::invalid(format!(
                    "models.bedrock.concurrency_per_role has an unknown role {role:?}; roles: {}",
                    ROLES.join(", ")
                )));
            }
            if limit == 0 || limit > 256 {
                return Err(Error::invalid(format!(
                    "models.bedrock.concurrency_per_role.{role} must be between 1 and 256, got {limit}"
                )));
            }
        }
        if self.inline_video_limit_bytes == 0
            || self.inline_video_limit_bytes > INLINE_VIDEO_MAX_BYTES
        {
            return Err(Error::invalid(format!(
                "models.bedrock.inline_video_limit_bytes must be between 1 and {INLINE_VIDEO_MAX_BYTES} \
                 (Bedrock takes 25,000,000 characters of base64 inline), got {}",
                self.inline_video_limit_bytes
            )));
        }
        if !positive(self.async_poll_seconds) || !positive(self.async_timeout_seconds) {
            return Err(Error::invalid(
                "models.bedrock.async_poll_seconds and async_timeout_seconds must be positive",
            ));
        }
        if !self.s3_uri.is_empty() {
            staging::parse_s3_uri(&self.s3_uri)?;
        }
        if !self.data_automation_project_arn.is_empty() {
            if self.s3_uri.is_empty() {
                return Err(Error::invalid(
                    "models.bedrock.data_automation_project_arn needs models.bedrock.s3_uri: \
                     Data Automation reads video from S3 and writes its results there",
                ));
            }
            if !self.data_automation_profile_arn.starts_with("arn:") {
                return Err(Error::invalid(
                    "models.bedrock.data_automation_profile_arn is required with a project, e.g. \
                     arn:aws:bedrock:us-east-1:<account>:data-automation-profile/us.data-automation-v1",
                ));
            }
        }
        Ok(())
    }
}

/// The roles a Bedrock provider plays, each with its own limit of calls in flight.
pub const ROLES: [&str; 4] = ["analyzer", "text_embedder", "reranker", "video_embedder"];

/// A Bedrock runtime client with the concurrency limit of the provider holding it (see
/// `for_role`), and the S3 staging location when one is configured. Clones share the
/// limit; `for_role` makes a client with a limit of its own.
#[derive(Clone)]
pub struct Bedrock {
    client: aws_sdk_bedrockruntime::Client,
    limit: Arc<Semaphore>,
    staging: Option<Staging>,
    data_automation: Option<DataAutomation>,
    config: BedrockConfig,
}

/// The AWS SDK's shared configuration from the standard chain (credentials, region) with
/// `config`'s retries and timeouts: what every client of ours is built from.
async fn sdk_config(config: &BedrockConfig) -> Result<aws_config::SdkConfig> {
    let secs = Duration::from_secs_f64;
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(config.max_attempts)
                .with_initial_backoff(Duration::from_millis(200)),
        )
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(secs(config.connect_timeout_seconds))
                .read_timeout(secs(config.read_timeout_seconds))
                .operation_timeout(secs(config.operation_timeout_seconds))
                .build(),
        );
    if !config.region.is_empty() {
        loader = loader.region(aws_config::Region::new(config.region.clone()));
    }
    let shared = loader.load().await;
    if shared.region().is_none() {
        return Err(Error::invalid(
            "Bedrock needs a region: set models.bedrock.region, AWS_REGION or a profile's region",
        ));
    }
    Ok(shared)
}

/// A client for an S3 location of the caller's (`s3://bucket/prefix`: a watched prefix)
/// with the `[models.bedrock]` S3 settings.
pub async fn s3_location(config: &BedrockConfig, uri: &str) -> Result<Staging> {
    Staging::at(&sdk_config(config).await?, config, uri)
}

impl Bedrock {
    pub async fn connect(config: &BedrockConfig) -> Result<Bedrock> {
        config.validate()?;
        let shared = sdk_config(config).await?;
        let mut client_config = aws_sdk_bedrockruntime::config::Builder::from(&shared)
            .retry_classifier(ModelTimeoutIsTransient)
            .interceptor(telemetry::CountCalls);
        if !config.endpoint_url.is_empty() {
            client_config = client_config.endpoint_url(config.endpoint_url.clone());
        }
        let staging = match config.s3_uri.is_empty() {
            true => None,
            false => Some(Staging::new(&shared, config)?),
        };
        let data_automation = DataAutomation::new(&shared, config, staging.as_ref())?;
        Ok(Bedrock {
            client: aws_sdk_bedrockruntime::Client::from_conf(client_config.build()),
            limit: Arc::new(Semaphore::new(config.concurrency)),
            staging,
            data_automation,
            config: config.clone(),
        })
    }

    /// The video at `path` (`size` bytes) as a request carries it: inline within
    /// `inline_video_limit_bytes`, else put in the staging location under `folder/`
    /// (`what` names it in the error when there is none). `release` it after the call.
    pub async fn video_payload(
        &self,
        path: &std::path::Path,
        size: u64,
        what: &str,
        folder: &str,
    ) -> Result<VideoPayload> {
        let limit = self.config.inline_video_limit_bytes;
        if size <= limit {
            return Ok(VideoPayload::Inline(tokio::fs::read(path).await?));
        }
        let staging = self.staging(&format!(
            "{what} is {:.1} MB, over the {:.1} MB sent inline \
             (models.bedrock.inline_video_limit_bytes)",
            size as f64 / 1e6,
            limit as f64 / 1e6
        ))?;
        let key = staging.key(&format!("{folder}/{}.mp4", uuid::Uuid::new_v4()));
        let uri = staging.put_file(path, &key, "video/mp4").await?;
        Ok(VideoPayload::Staged {
            uri,
            key,
            owner: staging.owner().map(str::to_string),
        })
    }

    /// Removes what `video_payload` staged (its `staged_key`).
    pub async fn release(&self, staged_key: Option<String>) {
        if let (Some(key), Some(staging)) = (staged_key, &self.staging) {
            staging.remove(&key).await;
        }
    }

    /// This client (the same connection pool, staging and settings) with a limit of calls
    /// in flight of its own: `concurrency_per_role[role]`, else `concurrency`. Each
    /// provider takes one, so one role's slow calls never hold up another's.
    pub fn for_role(&self, role: &str) -> Bedrock {
        debug_assert!(ROLES.contains(&role), "unknown Bedrock role {role}");
        let limit = self.config.limit_of(role);
        Bedrock {
            limit: Arc::new(Semaphore::new(limit)),
            ..self.clone()
        }
    }

    /// Per-call settings for a call that sends video: the documented long read timeout.
    pub fn video_call(&self) -> aws_sdk_bedrockruntime::config::Builder {
        let secs = Duration::from_secs_f64;
        aws_sdk_bedrockruntime::config::Builder::default().timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(secs(self.config.connect_timeout_seconds))
                .read_timeout(secs(self.config.video_read_timeout_seconds))
                .operation_timeout(secs(self.config.video_operation_timeout_seconds))
                .build(),
        )
    }

    /// Calls that could start now without waiting (tests, metrics).
    pub fn available_permits(&self) -> usize {
        self.limit.available_permits()
    }

    /// Bedrock Data Automation, when a project is configured.
    pub fn data_automation(&self) -> Option<&DataAutomation> {
        self.data_automation.as_ref()
    }

    pub fn config(&self) -> &BedrockConfig {
        &self.config
    }

    /// The S3 staging location, or an error naming the setting when none is configured.
    pub fn staging(&self, why: &str) -> Result<&Staging> {
        self.staging.as_ref().ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "{why}: set models.bedrock.s3_uri (s3://bucket/prefix) to a location Bedrock can read"
            ))
        })
    }

    /// A place among the calls in flight.
    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.limit
            .acquire()
            .await
            .map_err(|_| Error::Unavailable("the Bedrock client is closed".into()))
    }

    /// `InvokeModel` with a JSON body; the JSON answer. A body that `Sends::Video` gets
    /// the video timeouts.
    pub async fn invoke_json(
        &self,
        model_id: &str,
        body: &serde_json::Value,
        sends: Sends,
    ) -> Result<serde_json::Value> {
        let _permit = self.permit().await?;
        let call = self
            .client
            .invoke_model()
            .model_id(model_id)
            .content_type("application/json")
            .accept("application/json")
            .body(Blob::new(serde_json::to_vec(body)?));
        let out = match sends {
            Sends::Text => call.send().await,
            Sends::Video => {
                call.customize()
                    .config_override(self.video_call())
                    .send()
                    .await
            }
        }
        .map_err(|e| sdk_error(model_id, e))?;
        serde_json::from_slice(out.body().as_ref()).map_err(|e| {
            Error::Unavailable(format!("{model_id} answered with JSON we cannot read: {e}"))
        })
    }
}

/// What a request carries, for its timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sends {
    Text,
    Video,
}

/// A video as a request carries it (see `Bedrock::video_payload`).
pub enum VideoPayload {
    Inline(Vec<u8>),
    /// Put in the staging location at `key`; `uri` is its `s3://` address.
    Staged {
        uri: String,
        key: String,
        owner: Option<String>,
    },
}

impl VideoPayload {
    /// The object to remove after the call, if one was staged.
    pub fn staged_key(&self) -> Option<String> {
        match self {
            VideoPayload::Inline(_) => None,
            VideoPayload::Staged { key, .. } => Some(key.clone()),
        }
    }
}

/// Bedrock's `ModelTimeoutException` (the model took too long on this request) is worth
/// another attempt, though the service does not model it as retryable.
#[derive(Debug)]
struct ModelTimeoutIsTransient;

impl ClassifyRetry for ModelTimeoutIsTransient {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(e)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let code = e.as_operation_error().and_then(|err| {
            err.downcast_ref::<InvokeModelError>()
                .and_then(|e| e.code())
                .or_else(|| err.downcast_ref::<ConverseError>().and_then(|e| e.code()))
        });
        match code {
            Some("ModelTimeoutException") => RetryAction::transient_error(),
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "ModelTimeoutIsTransient"
    }
}

/// Maps an SDK failure (after its retries) to our error kinds, naming the model and the
/// service's own error code and message.
fn sdk_error<E>(model_id: &str, e: SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &e {
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("UnknownError").to_string();
            let message = s.err().message().unwrap_or("").to_string();
            let text = format!("Bedrock {model_id}: {code}: {message}");
            match code.as_str() {
                "ValidationException" => Error::invalid(text),
                "AccessDeniedException" | "UnrecognizedClientException" => {
                    Error::PermissionDenied(text)
                }
                "ResourceNotFoundException" => Error::FailedPrecondition(text),
                _ => Error::Unavailable(text),
            }
        }
        SdkError::TimeoutError(_) => Error::Unavailable(format!(
            "Bedrock {model_id}: timed out (models.bedrock timeouts)"
        )),
        other => Error::Unavailable(format!(
            "Bedrock {model_id}: {}",
            aws_sdk_bedrockruntime::error::DisplayErrorContext(other)
        )),
    }
}

/// The embedding in an answer (`raw`), checked to have the `dimensions` asked for.
fn vector_of(raw: &serde_json::Value, dimensions: u32, name: &str) -> Result<Vec<f32>> {
    let vector: Vec<f32> = raw
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_f64())
                .map(|x| x as f32)
                .collect()
        })
        .unwrap_or_default();
    if vector.len() != dimensions as usize {
        return Err(Error::Unavailable(format!(
            "{name} answered with {} dimensions, {dimensions} were asked for",
            vector.len()
        )));
    }
    Ok(vector)
}

/// Splits `provider:model` into the Bedrock model id when the provider is `bedrock`.
pub fn model_of(setting: &str) -> Option<&str> {
    setting.strip_prefix("bedrock:")
}
