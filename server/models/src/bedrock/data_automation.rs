//! Bedrock Data Automation through `aws-sdk-bedrockdataautomationruntime`: a stored
//! video is put in the S3 staging location, `InvokeDataAutomationAsync` runs the
//! configured project on it (standard output), `GetDataAutomationStatus` is polled, and
//! the result is found the way the service lays it out: the status names
//! `job_metadata.json`, whose `output_metadata[].segment_metadata[].standard_output_path`
//! names the `result.json` that the BDA import (`search::bda`) reads. What was staged
//! and written is removed afterwards.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_bedrockdataautomationruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockdataautomationruntime::types::{
    AutomationJobStatus, DataAutomationConfiguration, DataAutomationStage, InputConfiguration,
    OutputConfiguration,
};
use serde_json::Value;

use super::{BedrockConfig, Staging};
use reelforge_core::error::{Error, Result};

#[derive(Clone)]
pub struct DataAutomation {
    client: aws_sdk_bedrockdataautomationruntime::Client,
    staging: Staging,
    project_arn: String,
    profile_arn: String,
    poll: Duration,
    timeout: Duration,
}

impl DataAutomation {
    /// `None` when no project is configured.
    pub fn new(
        shared: &aws_config::SdkConfig,
        config: &BedrockConfig,
        staging: Option<&Staging>,
    ) -> Result<Option<DataAutomation>> {
        if config.data_automation_project_arn.is_empty() {
            return Ok(None);
        }
        let staging = staging.ok_or_else(|| {
            Error::invalid(
                "models.bedrock.data_automation_project_arn needs models.bedrock.s3_uri: \
                 Data Automation reads video from S3 and writes its results there",
            )
        })?;
        if config.data_automation_profile_arn.is_empty() {
            return Err(Error::invalid(
                "models.bedrock.data_automation_profile_arn is required with a project, e.g. \
                 arn:aws:bedrock:us-east-1:<account>:data-automation-profile/us.data-automation-v1",
            ));
        }
        let mut builder = aws_sdk_bedrockdataautomationruntime::config::Builder::from(shared);
        if !config.data_automation_endpoint_url.is_empty() {
            builder = builder.endpoint_url(config.data_automation_endpoint_url.clone());
        }
        Ok(Some(DataAutomation {
            client: aws_sdk_bedrockdataautomationruntime::Client::from_conf(builder.build()),
            staging: staging.clone(),
            project_arn: config.data_automation_project_arn.clone(),
            profile_arn: config.data_automation_profile_arn.clone(),
            poll: Duration::from_secs_f64(config.async_poll_seconds),
            timeout: Duration::from_secs_f64(config.async_timeout_seconds),
        }))
    }

    /// Runs the project on the video at `source`; the standard output's `result.json`.
    /// `progress` hears of each step as it happens.
    pub async fn run(
        &self,
        source: &Path,
        progress: &(dyn Fn(BdaProgress) + Send + Sync),
    ) -> Result<Vec<u8>> {
        let job = uuid::Uuid::new_v4();
        let ext = source
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("mp4")
            .to_ascii_lowercase();
        let input_key = self.staging.key(&format!("bda-input/{job}.{ext}"));
        let output_prefix = self.staging.key(&format!("bda-output/{job}"));
        let input_uri = self
            .staging
            .put_file(source, &input_key, &format!("video/{ext}"))
            .await?;
        progress(BdaProgress::Uploaded {
            uri: input_uri.clone(),
        });
        let outcome = self
            .invoke_and_read(&input_uri, &output_prefix, progress)
            .await;
        self.staging.remove(&input_key).await;
        self.staging.remove_prefix(&output_prefix).await;
        outcome
    }

    async fn invoke_and_read(
        &self,
        input_uri: &str,
        output_prefix: &str,
        progress: &(dyn Fn(BdaProgress) + Send + Sync),
    ) -> Result<Vec<u8>> {
        let build = |e: aws_sdk_bedrockdataautomationruntime::error::BuildError| {
            Error::internal(format!("building InvokeDataAutomationAsync: {e}"))
        };
        let arn = self
            .client
            .invoke_data_automation_async()
            .client_token(uuid::Uuid::new_v4().to_string())
            .input_configuration(
                InputConfiguration::builder()
                    .s3_uri(input_uri)
                    .build()
                    .map_err(build)?,
            )
            .output_configuration(
                OutputConfiguration::builder()
                    .s3_uri(self.staging.uri(output_prefix))
                    .build()
                    .map_err(build)?,
            )
            .data_automation_configuration(
                DataAutomationConfiguration::builder()
                    .data_automation_project_arn(&self.project_arn)
                    .stage(DataAutomationStage::Live)
                    .build()
                    .map_err(build)?,
            )
            .data_automation_profile_arn(&self.profile_arn)
            .send()
            .await
            .map_err(|e| bda_error("InvokeDataAutomationAsync", e))?
            .invocation_arn;
        progress(BdaProgress::Submitted {
            invocation_arn: arn.clone(),
        });
        let started = Instant::now();
        let deadline = started + self.timeout;
        let metadata_uri = loop {
            let status = self
                .client
                .get_data_automation_status()
                .invocation_arn(&arn)
                .send()
                .await
                .map_err(|e| bda_error("GetDataAutomationStatus", e))?;
            match status.status() {
                Some(AutomationJobStatus::Success) => {
                    break status
                        .output_configuration()
                        .map(|o| o.s3_uri().to_string())
                        .ok_or_else(|| {
                            Error::Unavailable(format!(
                                "Data Automation job {arn} succeeded without an output location"
                            ))
                        })?;
                }
                Some(AutomationJobStatus::ClientError)
                | Some(AutomationJobStatus::ServiceError) => {
                    return Err(Error::Unavailable(format!(
                        "Data Automation job {arn} failed: {}: {}",
                        status.error_type().unwrap_or("error"),
                        status.error_message().unwrap_or("no reason given")
                    )));
                }
                _ if Instant::now() >= deadline => {
                    return Err(Error::Unavailable(format!(
                        "Data Automation job {arn} is not done after {} s (models.bedrock.async_timeout_seconds)",
                        self.timeout.as_secs_f64()
                    )));
                }
                other => {
                    progress(BdaProgress::Waiting {
                        status: other.map_or("unknown".into(), |s| s.as_str().to_string()),
                        elapsed_ms: started.elapsed().as_millis() as i64,
                    });
                    tokio::time::sleep(self.poll).await
                }
            }
        };
        progress(BdaProgress::Reading {
            uri: metadata_uri.clone(),
        });
        let metadata: Value =
            serde_json::from_slice(&self.staging.get_uri(&metadata_uri).await?)
                .map_err(|e| Error::Unavailable(format!("{metadata_uri} is not JSON: {e}")))?;
        let result_uri = metadata["output_metadata"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|asset| asset["segment_metadata"].as_array().into_iter().flatten())
            .find_map(|segment| segment["standard_output_path"].as_str())
            .ok_or_else(|| {
                Error::Unavailable(format!(
                    "{metadata_uri} names no standard_output_path (is standard output on in the project?)"
                ))
            })?
            .to_string();
        self.staging.get_uri(&result_uri).await
    }
}

/// A step of a Data Automation run, as it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum BdaProgress {
    /// The video is in the staging location.
    Uploaded { uri: String },
    /// The job was accepted.
    Submitted { invocation_arn: String },
    /// The job is not done yet (its status, and the time since it was submitted).
    Waiting { status: String, elapsed_ms: i64 },
    /// Done: its output is being read.
    Reading { uri: String },
}

fn bda_error<E>(operation: &str, e: SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    super::sdk_error(&format!("Data Automation {operation}"), e)
}
