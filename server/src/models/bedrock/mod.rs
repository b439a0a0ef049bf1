//! Amazon Bedrock providers through `aws-sdk-bedrockruntime`: Titan Text Embeddings v2 and
//! Nova Multimodal Embeddings (text) as `TextEmbedder`s, Cohere Rerank 3.5 as a
//! `Reranker`. Credentials and region come from the standard AWS chain (environment,
//! profile, SSO, instance role); the endpoint can be overridden (`models.bedrock.endpoint_url`
//! or `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`), which is how the tests point the real SDK at a
//! local server that speaks Bedrock's wire format. Retries are the SDK's standard mode
//! (throttling, 5xx and transient errors back off; `ModelTimeoutException` is treated as
//! transient too); each provider runs at most
//! `concurrency` calls at once; timeouts are configurable.

mod cohere;
mod embed;
pub mod nova;

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
pub use embed::{BedrockEmbedder, EmbedModel};
pub use nova::NovaAnalyzer;

use crate::error::{Error, Result};

pub const TITAN_TEXT_V2: &str = "amazon.titan-embed-text-v2:0";
pub const NOVA_EMBEDDINGS: &str = "amazon.nova-2-multimodal-embeddings-v1:0";
pub const COHERE_RERANK: &str = "cohere.rerank-v3-5:0";

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
    /// Per attempt; Nova video calls can be slow.
    pub read_timeout_seconds: f64,
    /// The whole call, retries included.
    pub operation_timeout_seconds: f64,
    /// Calls in flight at once, per provider.
    pub concurrency: usize,
    /// Embedding size: Titan 256, 512 or 1024; Nova 256, 384, 1024 or 3072.
    pub embedding_dimensions: u32,
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
            concurrency: 4,
            embedding_dimensions: 1024,
        }
    }
}

impl BedrockConfig {
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
        Ok(())
    }
}

/// A Bedrock runtime client with its concurrency limit.
#[derive(Clone)]
pub struct Bedrock {
    client: aws_sdk_bedrockruntime::Client,
    limit: Arc<Semaphore>,
}

impl Bedrock {
    pub async fn connect(config: &BedrockConfig) -> Result<Bedrock> {
        config.validate()?;
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
        if !config.endpoint_url.is_empty() {
            loader = loader.endpoint_url(config.endpoint_url.clone());
        }
        let shared = loader.load().await;
        if shared.region().is_none() {
            return Err(Error::invalid(
                "Bedrock needs a region: set models.bedrock.region, AWS_REGION or a profile's region",
            ));
        }
        let client_config = aws_sdk_bedrockruntime::config::Builder::from(&shared)
            .retry_classifier(ModelTimeoutIsTransient)
            .build();
        Ok(Bedrock {
            client: aws_sdk_bedrockruntime::Client::from_conf(client_config),
            limit: Arc::new(Semaphore::new(config.concurrency)),
        })
    }

    /// A place among the calls in flight.
    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.limit
            .acquire()
            .await
            .map_err(|_| Error::Unavailable("the Bedrock client is closed".into()))
    }

    /// `InvokeModel` with a JSON body; the JSON answer.
    pub async fn invoke_json(
        &self,
        model_id: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        let _permit = self.permit().await?;
        let out = self
            .client
            .invoke_model()
            .model_id(model_id)
            .content_type("application/json")
            .accept("application/json")
            .body(Blob::new(serde_json::to_vec(body)?))
            .send()
            .await
            .map_err(|e| sdk_error(model_id, e))?;
        serde_json::from_slice(out.body().as_ref()).map_err(|e| {
            Error::Unavailable(format!("{model_id} answered with JSON we cannot read: {e}"))
        })
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

/// Splits `provider:model` into the Bedrock model id when the provider is `bedrock`.
pub fn model_of(setting: &str) -> Option<&str> {
    setting.strip_prefix("bedrock:")
}
