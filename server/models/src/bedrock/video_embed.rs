//! Nova Multimodal Embeddings of video clips, for Points + clips on Bedrock: a point's
//! words (`VIDEO_RETRIEVAL`) against each 2-3 s clip's picture and sound
//! (`GENERIC_INDEX`, `AUDIO_VIDEO_COMBINED`).
//!
//! Two ways to the same vectors, one modality per request either way:
//! - `SINGLE_EMBEDDING` through `InvokeModel`, one request per clip (each ≤ 30 s), the clip
//!   cut into an embedding proxy and sent inline (or through S3 when over the inline limit);
//! - for a whole video's clip grid (`async_embedding_min_clips` clips or more, clips of a
//!   whole number of seconds), one asynchronous `SEGMENTED_EMBEDDING` job: the video's
//!   proxy is put in the S3 staging location, `StartAsyncInvoke` asks for segments of the
//!   clip length, `GetAsyncInvoke` is polled, and the `embedding-*.jsonl` the job writes
//!   (`segmentMetadata.segmentStartSeconds/EndSeconds`) is read back and mapped onto the
//!   clips. `SEGMENTED_EMBEDDING` is never sent synchronously: the service refuses it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_bedrockruntime::types::{
    AsyncInvokeOutputDataConfig, AsyncInvokeS3OutputDataConfig, AsyncInvokeStatus,
};
use base64::Engine as _;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::{json, Value};

use super::nova::json_to_document;
use super::staging::location_json;
use super::{sdk_error, vector_of, Bedrock, EmbedModel, Sends, VideoPayload, NOVA_EMBEDDINGS};
use crate::{check_texts, TextEmbedding, VideoEmbedder};
use reelforge_core::error::{Error, Result};
use reelforge_core::vector::l2_normalise;
use reelforge_core::BoxFuture;
use reelforge_media::proxy::{self, ProxySpec};

/// The longest video one embedding reads.
pub const MAX_SPAN_MS: i64 = 30_000;

pub struct NovaVideoEmbedder {
    bedrock: Bedrock,
    dimensions: u32,
    name: String,
    ffmpeg: String,
    work_dir: PathBuf,
}

impl NovaVideoEmbedder {
    pub fn new(bedrock: Bedrock, dimensions: u32, ffmpeg: &str, work_dir: PathBuf) -> Result<Self> {
        if !EmbedModel::Nova.dimensions().contains(&dimensions) {
            return Err(Error::invalid(format!(
                "models.bedrock.embedding_dimensions: {NOVA_EMBEDDINGS} offers {:?}, got {dimensions}",
                EmbedModel::Nova.dimensions()
            )));
        }
        Ok(NovaVideoEmbedder {
            bedrock,
            dimensions,
            name: format!("bedrock:{NOVA_EMBEDDINGS}"),
            ffmpeg: ffmpeg.to_string(),
            work_dir,
        })
    }

    /// A text looking for video.
    pub fn query_body(&self, text: &str) -> Value {
        json!({
            "schemaVersion": "nova-multimodal-embed-v1",
            "taskType": "SINGLE_EMBEDDING",
            "singleEmbeddingParams": {
                "embeddingPurpose": "VIDEO_RETRIEVAL",
                "embeddingDimension": self.dimensions,
                "text": { "truncationMode": "END", "value": text },
            },
        })
    }

    /// One clip, `source` being `{"bytes": base64}` or `{"s3Location": {...}}`.
    pub fn clip_body(&self, source: Value) -> Value {
        json!({
            "schemaVersion": "nova-multimodal-embed-v1",
            "taskType": "SINGLE_EMBEDDING",
            "singleEmbeddingParams": {
                "embeddingPurpose": "GENERIC_INDEX",
                "embeddingDimension": self.dimensions,
                "video": {
                    "format": "mp4",
                    "embeddingMode": "AUDIO_VIDEO_COMBINED",
                    "source": source,
                },
            },
        })
    }

    /// The asynchronous job's input: the video at `uri` in segments of `seconds`.
    pub fn segmented_body(&self, uri: &str, owner: Option<&str>, seconds: u32) -> Value {
        let location = location_json(uri, owner);
        json!({
            "schemaVersion": "nova-multimodal-embed-v1",
            "taskType": "SEGMENTED_EMBEDDING",
            "segmentedEmbeddingParams": {
                "embeddingPurpose": "GENERIC_INDEX",
                "embeddingDimension": self.dimensions,
                "video": {
                    "format": "mp4",
                    "embeddingMode": "AUDIO_VIDEO_COMBINED",
                    "source": { "s3Location": location },
                    "segmentationConfig": { "durationSeconds": seconds },
                },
            },
        })
    }

    fn vector(&self, raw: &Value) -> Result<Vec<f32>> {
        let mut v = vector_of(raw, self.dimensions, &self.name)?;
        l2_normalise(&mut v);
        Ok(v)
    }

    /// The async job's segment length when `spans` can go through one job (see
    /// `grid_seconds`) and there are enough of them to be worth it.
    fn segment_seconds(&self, duration_ms: i64, spans: &[(i64, i64)]) -> Option<u32> {
        let config = self.bedrock.config();
        if config.s3_uri.is_empty() || spans.len() < config.async_embedding_min_clips {
            return None;
        }
        grid_seconds(duration_ms, spans)
    }

    async fn embed_clip(&self, source: &Path, (start, end): (i64, i64)) -> Result<Vec<f32>> {
        tokio::fs::create_dir_all(&self.work_dir).await?;
        let dir = tempfile::tempdir_in(&self.work_dir)?;
        let clip = dir.path().join("clip.mp4");
        let size = proxy::make(
            &self.ffmpeg,
            source,
            start,
            end,
            ProxySpec::EMBEDDING,
            &clip,
        )
        .await?;
        let what = format!("the clip {start}-{end} ms");
        let payload = self
            .bedrock
            .video_payload(&clip, size, &what, "clips")
            .await?;
        let video_source = match &payload {
            VideoPayload::Inline(bytes) => {
                json!({ "bytes": base64::engine::general_purpose::STANDARD.encode(bytes) })
            }
            VideoPayload::Staged { uri, owner, .. } => {
                json!({ "s3Location": location_json(uri, owner.as_deref()) })
            }
        };
        let answer = self
            .bedrock
            .invoke_json(NOVA_EMBEDDINGS, &self.clip_body(video_source), Sends::Video)
            .await;
        self.bedrock.release(payload.staged_key()).await;
        self.vector(&answer?["embeddings"][0]["embedding"])
    }

    async fn embed_segmented(
        &self,
        source: &Path,
        duration_ms: i64,
        spans: &[(i64, i64)],
        seconds: u32,
    ) -> Result<Vec<Vec<f32>>> {
        let staging = self.bedrock.staging("asynchronous embeddings")?;
        tokio::fs::create_dir_all(&self.work_dir).await?;
        let dir = tempfile::tempdir_in(&self.work_dir)?;
        let whole = dir.path().join("video.mp4");
        proxy::make(
            &self.ffmpeg,
            source,
            0,
            duration_ms,
            ProxySpec::EMBEDDING,
            &whole,
        )
        .await?;
        let job = uuid::Uuid::new_v4();
        let input_key = staging.key(&format!("proxies/{job}.mp4"));
        let output_prefix = staging.key(&format!("embeddings/{job}/"));
        let input_uri = staging.put_file(&whole, &input_key, "video/mp4").await?;
        let outcome = self
            .run_job(&input_uri, &output_prefix, seconds)
            .await
            .and_then(|segments| assign(&segments, spans, &self.name));
        staging.remove(&input_key).await;
        staging.remove_prefix(&output_prefix).await;
        outcome
    }

    /// Starts the job, waits for it, and reads its segments, each with its own status
    /// (an error only when the job failed or every segment did).
    async fn run_job(
        &self,
        input_uri: &str,
        output_prefix: &str,
        seconds: u32,
    ) -> Result<Vec<Segment>> {
        let staging = self.bedrock.staging("asynchronous embeddings")?;
        let config = self.bedrock.config();
        let output = AsyncInvokeS3OutputDataConfig::builder()
            .s3_uri(staging.uri(output_prefix))
            .set_bucket_owner(staging.owner().map(str::to_string))
            .build()
            .map_err(|e| Error::internal(format!("building StartAsyncInvoke: {e}")))?;
        let body = self.segmented_body(input_uri, staging.owner(), seconds);
        let arn = {
            let _permit = self.bedrock.permit().await?;
            self.bedrock
                .client
                .start_async_invoke()
                .model_id(NOVA_EMBEDDINGS)
                .model_input(json_to_document(&body))
                .output_data_config(AsyncInvokeOutputDataConfig::S3OutputDataConfig(output))
                .client_request_token(uuid::Uuid::new_v4().to_string())
                .send()
                .await
                .map_err(|e| sdk_error(NOVA_EMBEDDINGS, e))?
                .invocation_arn
        };
        let deadline = Instant::now() + Duration::from_secs_f64(config.async_timeout_seconds);
        loop {
            let status = {
                let _permit = self.bedrock.permit().await?;
                self.bedrock
                    .client
                    .get_async_invoke()
                    .invocation_arn(&arn)
                    .send()
                    .await
                    .map_err(|e| sdk_error(NOVA_EMBEDDINGS, e))?
            };
            match status.status() {
                AsyncInvokeStatus::Completed => break,
                AsyncInvokeStatus::Failed => {
                    return Err(Error::Unavailable(format!(
                        "{} job {arn} failed: {}",
                        self.name,
                        status.failure_message().unwrap_or("no reason given")
                    )))
                }
                _ if Instant::now() >= deadline => {
                    return Err(Error::Unavailable(format!(
                    "{} job {arn} is not done after {} s (models.bedrock.async_timeout_seconds)",
                    self.name, config.async_timeout_seconds
                )))
                }
                _ => tokio::time::sleep(Duration::from_secs_f64(config.async_poll_seconds)).await,
            }
        }
        let keys = staging.list(output_prefix).await?;
        let result = keys
            .iter()
            .filter(|k| {
                let name = k.rsplit('/').next().unwrap_or("");
                name.starts_with("embedding-") && name.ends_with(".jsonl") && name.contains("video")
            })
            .min_by_key(|k| !k.ends_with("embedding-audio-video.jsonl"))
            .ok_or_else(|| {
                Error::Unavailable(format!(
                    "{} job {arn} completed without an embedding-*video*.jsonl under {}",
                    self.name,
                    staging.uri(output_prefix)
                ))
            })?;
        let text = String::from_utf8_lossy(&staging.get(result).await?).into_owned();
        let mut segments = Vec::new();
        let mut failed = Vec::new();
        for (n, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            let v: Value = serde_json::from_str(line).map_err(|e| {
                Error::Unavailable(format!("{} line {} of {result}: {e}", self.name, n + 1))
            })?;
            let meta = &v["segmentMetadata"];
            let (Some(start), Some(end)) = (
                meta["segmentStartSeconds"].as_f64(),
                meta["segmentEndSeconds"].as_f64(),
            ) else {
                return Err(Error::Unavailable(format!(
                    "{} line {} of {result} has no segmentMetadata times",
                    self.name,
                    n + 1
                )));
            };
            // Each line has its own status: a failed segment leaves its clips without a
            // vector (unmatched, made again next time), not the whole job failed.
            match v["status"].as_str() {
                None | Some("SUCCESS") => {
                    segments.push(Segment::Embedded(start, end, self.vector(&v["embedding"])?))
                }
                Some(status) => {
                    let reason = v["failureReason"].as_str().unwrap_or("no reason given");
                    failed.push(format!("{start:.0}-{end:.0} s: {status} ({reason})"));
                    segments.push(Segment::Failed(start, end));
                }
            }
        }
        if !failed.is_empty() {
            tracing::warn!(
                "{}: job {arn}: {} of {} segments failed, their clips have no vector: {}",
                self.name,
                failed.len(),
                segments.len(),
                failed.join("; ")
            );
        }
        if !segments.is_empty() && failed.len() == segments.len() {
            return Err(Error::Unavailable(format!(
                "{} job {arn}: every segment failed: {}",
                self.name,
                failed.join("; ")
            )));
        }
        Ok(segments)
    }
}

impl NovaVideoEmbedder {
    async fn embed_query(&self, text: &str) -> Result<TextEmbedding> {
        let (sent, truncated) = super::embed::cut(text);
        let answer = self
            .bedrock
            .invoke_json(NOVA_EMBEDDINGS, &self.query_body(sent), Sends::Text)
            .await?;
        let vector = self.vector(&answer["embeddings"][0]["embedding"])?;
        Ok(TextEmbedding { vector, truncated })
    }
}

/// The segment length, when `spans` are clips of a grid a segmented job produces: one
/// whole number of seconds (1-30) long, starting on multiples of it, the last one
/// possibly cut short by the video's end.
pub fn grid_seconds(duration_ms: i64, spans: &[(i64, i64)]) -> Option<u32> {
    let length = spans.first().map(|(s, e)| e - s)?;
    let whole = length % 1000 == 0 && (1000..=MAX_SPAN_MS).contains(&length);
    let grid = spans.iter().all(|&(s, e)| {
        s % length == 0 && (e - s == length || (e == duration_ms && e - s < length))
    });
    (whole && grid).then_some((length / 1000) as u32)
}

/// One line of an asynchronous job's output: a segment's vector, or its failure.
#[derive(Debug, Clone)]
enum Segment {
    /// Start s, end s, vector.
    Embedded(f64, f64, Vec<f32>),
    Failed(f64, f64),
}

impl Segment {
    fn holds(&self, t: f64) -> bool {
        let (Segment::Embedded(start, end, _) | Segment::Failed(start, end)) = self;
        *start <= t && t < *end
    }
}

/// Each span gets the segment that holds its middle (an empty vector where that segment
/// failed).
fn assign(segments: &[Segment], spans: &[(i64, i64)], name: &str) -> Result<Vec<Vec<f32>>> {
    spans
        .iter()
        .map(|&(s, e)| {
            let middle = (s + e) as f64 / 2000.0;
            segments
                .iter()
                .find(|seg| seg.holds(middle))
                .map(|seg| match seg {
                    Segment::Embedded(_, _, v) => v.clone(),
                    Segment::Failed(..) => Vec::new(),
                })
                .ok_or_else(|| {
                    Error::Unavailable(format!(
                        "{name}: the asynchronous job returned no segment for {s}-{e} ms"
                    ))
                })
        })
        .collect()
}

impl VideoEmbedder for NovaVideoEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimensions(&self) -> usize {
        self.dimensions as usize
    }

    fn max_span_ms(&self) -> i64 {
        MAX_SPAN_MS
    }

    fn embed_spans<'a>(
        &'a self,
        source: &'a Path,
        duration_ms: i64,
        spans: &'a [(i64, i64)],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>>> {
        Box::pin(async move {
            if let Some(&(s, e)) = spans.iter().find(|(s, e)| e - s > MAX_SPAN_MS || e <= s) {
                return Err(Error::invalid(format!(
                    "span {s}-{e} ms: a video embedding covers 1 ms to {} s",
                    MAX_SPAN_MS / 1000
                )));
            }
            if spans.is_empty() {
                return Ok(Vec::new());
            }
            if let Some(seconds) = self.segment_seconds(duration_ms, spans) {
                return self
                    .embed_segmented(source, duration_ms, spans, seconds)
                    .await;
            }
            stream::iter(spans.iter().copied())
                .map(|span| self.embed_clip(source, span))
                .buffered(self.bedrock.config().limit_of("video_embedder"))
                .try_collect()
                .await
        })
    }

    fn embed_queries<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<TextEmbedding>>> {
        Box::pin(async move {
            check_texts(texts)?;
            stream::iter(0..texts.len())
                .map(|i| self.embed_query(&texts[i]))
                .buffered(64)
                .try_collect()
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_whole_second_grid_goes_through_a_segmented_job() {
        let grid: Vec<(i64, i64)> = (0..5).map(|i| (i * 2000, i * 2000 + 2000)).collect();
        assert_eq!(grid_seconds(10_000, &grid), Some(2));
        // Filtered (gaps) is fine; a short last clip at the video's end is too.
        assert_eq!(
            grid_seconds(9_500, &[(0, 2000), (6000, 8000), (8000, 9500)]),
            Some(2)
        );
        // 2.5 s clips, clips off the grid, or a short clip before the end are not.
        assert_eq!(grid_seconds(10_000, &[(0, 2500), (2500, 5000)]), None);
        assert_eq!(grid_seconds(10_000, &[(0, 2000), (3000, 5000)]), None);
        assert_eq!(
            grid_seconds(10_000, &[(0, 2000), (2000, 3000), (4000, 6000)]),
            None
        );
        assert_eq!(grid_seconds(100_000, &[(0, 40_000)]), None);
        assert_eq!(grid_seconds(10_000, &[]), None);
    }

    #[test]
    fn spans_take_the_segment_holding_their_middle() {
        let segments = vec![
            Segment::Embedded(0.0, 2.0, vec![1.0]),
            Segment::Failed(2.0, 4.0),
            Segment::Embedded(4.0, 5.5, vec![3.0]),
        ];
        let got = assign(&segments, &[(2000, 4000), (4000, 5500), (0, 2000)], "m").unwrap();
        // A failed segment's span has no vector; the others are kept.
        assert_eq!(got, vec![vec![], vec![3.0], vec![1.0]]);
        let missing = assign(&segments, &[(6000, 8000)], "m").unwrap_err();
        assert!(
            missing.to_string().contains("no segment for 6000-8000 ms"),
            "{missing}"
        );
    }
}
