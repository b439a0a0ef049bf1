//! Model providers behind traits, chosen by config: the offline embedded default here,
//! AWS Bedrock later, each implementing the same trait and passing the same
//! `conformance` suite.

pub mod bedrock;
pub mod clip;
pub mod conformance;
mod minilm;
mod rerank;
pub mod whisper;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use clip::{ClipEmbedder, ImageTextEmbedder, RgbImage};
pub use minilm::MiniLmEmbedder;
pub use rerank::{lexical_overlap, EmbeddingReranker};
pub use whisper::WhisperTranscriber;

use crate::analysis::BoxFuture;
use crate::error::{Error, Result};

/// Why a text is embedded: some providers embed queries and documents differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedPurpose {
    Index,
    Query,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TextEmbedding {
    /// L2-normalised.
    pub vector: Vec<f32>,
    /// The text was longer than the model reads; only its start was embedded.
    pub truncated: bool,
}

/// Turns texts into vectors whose cosine similarity reflects meaning.
pub trait TextEmbedder: Send + Sync {
    /// Stable name recorded with stored vectors, e.g. "local:all-minilm-l6-v2".
    fn name(&self) -> &str;
    fn dimensions(&self) -> usize;
    /// One embedding per text, in order. An empty text is `InvalidInput`.
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        purpose: EmbedPurpose,
    ) -> BoxFuture<'a, Result<Vec<TextEmbedding>>>;
}

/// Embeds spans of video (picture and sound) into a space shared with text, so a
/// highlight point's words find the clips that show it (Nova Multimodal Embeddings).
pub trait VideoEmbedder: Send + Sync {
    fn name(&self) -> &str;
    fn dimensions(&self) -> usize;
    /// The longest span one embedding covers.
    fn max_span_ms(&self) -> i64;
    /// One L2-normalised vector per `(start_ms, end_ms)` span of the video at `source`
    /// (`duration_ms` long), in order. A span longer than `max_span_ms` is `InvalidInput`.
    fn embed_spans<'a>(
        &'a self,
        source: &'a Path,
        duration_ms: i64,
        spans: &'a [(i64, i64)],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>>>;
    /// Texts that look for video, in the same space; an empty text is `InvalidInput`.
    fn embed_queries<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<TextEmbedding>>>;
}

/// 16 kHz mono audio to transcribe, on a video's timeline.
#[derive(Debug, Clone)]
pub struct SpeechAudio {
    /// Where `samples[0]` is in the video.
    pub start_ms: i64,
    /// 16 kHz mono, -1..1.
    pub samples: Vec<f32>,
    /// No audio follows. When false, speech running into the end may be left unsettled
    /// (see `Transcription::settled_ms`) for the caller to send again with what follows.
    pub is_final: bool,
}

/// Speech in a video: what was said and when, on the video's timeline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TranscriptSegment {
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
    /// The model's mean token log-probability for the window (confidence).
    pub avg_logprob: f32,
    /// The model's probability that the window held no speech.
    pub no_speech_prob: f32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transcription {
    pub segments: Vec<TranscriptSegment>,
    /// Audio before this time is fully transcribed; the caller passes the rest again,
    /// followed by the next audio. Equals the audio's end when `is_final`.
    pub settled_ms: i64,
    /// Audio skipped by the loudness gate, and audio the model read.
    pub skipped_silent_ms: i64,
    pub decoded_ms: i64,
}

/// Turns speech into timed text.
pub trait Transcriber: Send + Sync {
    /// Stable name recorded with transcripts, e.g. "local:whisper-tiny-en".
    fn name(&self) -> &str;
    fn transcribe<'a>(&'a self, audio: SpeechAudio) -> BoxFuture<'a, Result<Transcription>>;
}

/// A candidate for reranking: its text and the score first-stage retrieval gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct RerankCandidate {
    pub text: String,
    /// Any scale (BM25, fused rank score); the reranker normalises over the candidates.
    pub first_stage_score: f32,
    /// The candidate's stored vector by the configured text embedder, when there is one:
    /// an embedding reranker uses it instead of embedding the text again.
    pub vector: Option<Vec<f32>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RerankScore {
    /// Index into the candidates.
    pub index: usize,
    /// Higher is more relevant; comparable within one call only.
    pub score: f32,
}

/// Orders candidates by relevance to a query.
pub trait Reranker: Send + Sync {
    fn name(&self) -> &str;
    /// Scores for every candidate, most relevant first. An empty query is `InvalidInput`.
    fn rerank<'a>(
        &'a self,
        query: &'a str,
        candidates: &'a [RerankCandidate],
    ) -> BoxFuture<'a, Result<Vec<RerankScore>>>;
}

/// Rejects empty texts with the index of the first one.
pub(crate) fn check_texts(texts: &[String]) -> Result<()> {
    match texts.iter().position(|t| t.trim().is_empty()) {
        Some(i) => Err(Error::invalid(format!(
            "text {i} is empty: there is nothing to embed"
        ))),
        None => Ok(()),
    }
}

/// The one MiniLM instance shared by every unit test in this crate.
#[cfg(test)]
pub(crate) fn minilm_tests_shared() -> &'static MiniLmEmbedder {
    minilm::tests::shared()
}

/// The one Whisper instance shared by every unit test in this crate.
#[cfg(test)]
pub(crate) fn whisper_tests_shared() -> &'static WhisperTranscriber {
    static MODEL: std::sync::OnceLock<WhisperTranscriber> = std::sync::OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../models")
            .join(WhisperTranscriber::DIR_NAME);
        WhisperTranscriber::load(&dir, 1, whisper::DEFAULT_GATE_DB)
            .expect("the offline speech model is installed (scripts/setup.sh)")
    })
}

/// The configured speech model, or `None` when `models.transcriber` is "none".
pub fn load_transcriber(
    models: &crate::config::ModelsConfig,
) -> Result<Option<WhisperTranscriber>> {
    if models.transcriber == "none" {
        return Ok(None);
    }
    load_default_transcriber(&models.dir, models.threads, models.speech_gate_db).map(Some)
}

/// The configured image-text embedder, or `None` when `models.image_embedder` is empty.
pub fn load_image_embedder(models: &crate::config::ModelsConfig) -> Result<Option<ClipEmbedder>> {
    match models.image_embedder.strip_prefix("clip:") {
        Some(dir) => ClipEmbedder::load(Path::new(dir), models.threads).map(Some),
        None => Ok(None),
    }
}

/// The offline default speech model from the models directory.
pub fn load_default_transcriber(
    models_dir: &Path,
    threads: usize,
    gate_db: f32,
) -> Result<WhisperTranscriber> {
    WhisperTranscriber::load(
        &models_dir.join(WhisperTranscriber::DIR_NAME),
        threads,
        gate_db,
    )
}

/// The offline default reranker: the text embedder's cosine blended with lexical overlap.
pub fn default_reranker(embedder: Arc<dyn TextEmbedder>) -> EmbeddingReranker {
    EmbeddingReranker::new(embedder)
}

/// The offline default text embedder from the models directory `scripts/setup.sh` fills.
pub fn load_default_text_embedder(models_dir: &Path, threads: usize) -> Result<MiniLmEmbedder> {
    MiniLmEmbedder::load(&models_dir.join(MiniLmEmbedder::DIR_NAME), threads)
}
