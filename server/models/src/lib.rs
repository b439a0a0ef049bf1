//! reelforge-models: model providers behind traits, chosen by config (`[models]`,
//! `Providers::load`): the offline embedded default (MiniLM, Whisper, the signal
//! analyser, a local reranker, CLIP weights you bring) and AWS Bedrock (Nova, Titan, Nova
//! Multimodal Embeddings, Cohere Rerank, Data Automation), each implementing the same
//! trait and passing the same `conformance` suite (the `testing` feature).

pub mod analysis;
pub mod bedrock;
pub mod clip;
pub mod config;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
mod minilm;
mod muse;
mod onnx;
mod providers;
mod rerank;
pub mod sound;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod vision;
pub mod whisper;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use clip::{ClipEmbedder, ImageTextEmbedder};
pub use config::{ModelsConfig, LOCAL_TEXT_EMBEDDERS};
pub use minilm::MiniLmEmbedder;
pub use muse::MuseEmbedder;
pub use providers::{
    default_reranker, load_image_embedder, load_scene_tagger, load_sound_tagger,
    load_text_embedder, load_text_reader, load_transcriber, load_whisper, Providers,
};
pub use reelforge_media::images::RgbImage;
pub use rerank::{lexical_overlap, EmbeddingReranker};
pub use whisper::WhisperTranscriber;

use reelforge_core::error::{Error, Result};
use reelforge_core::BoxFuture;

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
    /// Whether concurrent queries are best embedded together in one call (a local model:
    /// a batch costs little more than one text) rather than one call each (a remote API
    /// with its own concurrency).
    fn batch_queries(&self) -> bool {
        false
    }
    /// The cosine at which two short texts in the analyser's vocabulary — a highlight
    /// point and a clip's caption — are taken to say the same thing (Points + clips'
    /// default threshold). Each model spreads its cosines its own way: MiniLM's (and, by
    /// default, a remote model's) partial agreements sit around 0.6, USE multilingual's
    /// lower.
    fn match_threshold(&self) -> f32 {
        0.6
    }
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
    /// (`duration_ms` long), in order; an empty vector for a span the model could not
    /// embed while the rest succeeded (an asynchronous job's failed segment), which callers
    /// treat as unmatched and do not keep. A span longer than `max_span_ms` is
    /// `InvalidInput`.
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
    /// The language spoken (a code from `Transcriber::languages`), or `None` to let the
    /// model tell.
    pub language: Option<String>,
    /// The stretches (on the video's timeline) where a voice detector heard a voice:
    /// audio outside them is not read. `None`: no detector, every audible stretch is read.
    pub voiced: Option<Vec<(i64, i64)>>,
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
    /// The language spoken, as the model's code ("en", "zh", ...); empty in transcripts
    /// stored before languages were recorded.
    #[serde(default)]
    pub language: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transcription {
    pub segments: Vec<TranscriptSegment>,
    /// Audio before this time is fully transcribed; the caller passes the rest again,
    /// followed by the next audio. Equals the audio's end when `is_final`.
    pub settled_ms: i64,
    /// Audio skipped as quiet or without a voice, and audio the model read.
    pub skipped_silent_ms: i64,
    pub decoded_ms: i64,
}

/// Turns speech into timed text.
pub trait Transcriber: Send + Sync {
    /// Stable name recorded with transcripts, e.g. "local:whisper-tiny-en".
    fn name(&self) -> &str;
    /// The languages it transcribes, as the codes `SpeechAudio::language` takes.
    fn languages(&self) -> Vec<String>;
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
    /// Whether a search reranks when the request does not say: a reranker on by default
    /// must beat fusion alone on judged queries (`reelforge-bench quality`).
    fn on_by_default(&self) -> bool {
        true
    }
    /// Scores for every candidate, most relevant first. An empty query is `InvalidInput`.
    fn rerank<'a>(
        &'a self,
        query: &'a str,
        candidates: &'a [RerankCandidate],
    ) -> BoxFuture<'a, Result<Vec<RerankScore>>>;
    /// As `rerank`, with the query's vector by the configured text embedder when the
    /// caller already has it: a reranker that compares embeddings then does not embed the
    /// query a second time. Others ignore it.
    fn rerank_with_vector<'a>(
        &'a self,
        query: &'a str,
        query_vector: Option<&'a [f32]>,
        candidates: &'a [RerankCandidate],
    ) -> BoxFuture<'a, Result<Vec<RerankScore>>> {
        let _ = query_vector;
        self.rerank(query, candidates)
    }
}

/// A class over a stretch of a video: (start_ms, end_ms, label, best score).
pub(crate) type Stretch = (i64, i64, String, f32);

/// The stretches a tagger's `spans` make (each a time span, in order, with the classes it
/// scored that count): per class, consecutive spans that touch or overlap joined into one
/// stretch with the class's best score. Ordered by start, then score, then class. What
/// the sound tagger's windows (`sound::events`) and the scene tagger's pictures
/// (`vision::scene_spans`) both make.
pub(crate) fn stretches<'a, L>(spans: impl IntoIterator<Item = (i64, i64, L)>) -> Vec<Stretch>
where
    L: IntoIterator<Item = (&'a str, f32)>,
{
    let mut open: Vec<Stretch> = Vec::new();
    let mut done: Vec<Stretch> = Vec::new();
    for (start, end, classes) in spans {
        let classes: Vec<(&str, f32)> = classes.into_iter().collect();
        // Stretches of classes this span does not continue are finished.
        let (continued, ended): (Vec<Stretch>, Vec<Stretch>) = open
            .into_iter()
            .partition(|s| s.1 >= start && classes.iter().any(|(c, _)| *c == s.2));
        done.extend(ended);
        open = continued;
        for (class, score) in classes {
            match open.iter_mut().find(|s| s.2 == class) {
                Some(s) => {
                    s.1 = s.1.max(end);
                    s.3 = s.3.max(score);
                }
                None => open.push((start, end, class.to_string(), score)),
            }
        }
    }
    done.extend(open);
    done.sort_by(|a, b| a.0.cmp(&b.0).then(b.3.total_cmp(&a.3)).then(a.2.cmp(&b.2)));
    done
}

/// Rejects empty texts with the index of the first one.
/// The two rayon pools a local model infers on (one thread each was fastest on 2 cores):
/// one for documents (ingest's batches, at the background priority) and one for queries,
/// so a search never queues behind an ingest batch and gets the CPU first when both run.
#[derive(Clone)]
pub(crate) struct InferencePools {
    documents: Arc<rayon::ThreadPool>,
    queries: Arc<rayon::ThreadPool>,
}

impl InferencePools {
    pub(crate) fn new(model: &'static str, threads: usize) -> Result<InferencePools> {
        let pool = |role: &'static str, background: bool| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads.max(1))
                .thread_name(move |i| format!("{model}-{role}-{i}"))
                .start_handler(move |_| {
                    if background {
                        reelforge_media::process::run_in_background();
                    }
                })
                .build()
                .map(Arc::new)
                .map_err(|e| Error::internal(format!("{model} thread pool: {e}")))
        };
        Ok(InferencePools {
            documents: pool("docs", true)?,
            queries: pool("query", false)?,
        })
    }

    /// Runs `work` on the pool for `purpose`, blocking this thread (callers off the async
    /// runtime).
    pub(crate) fn run_blocking<T: Send>(
        &self,
        purpose: EmbedPurpose,
        work: impl FnOnce() -> T + Send,
    ) -> T {
        match purpose {
            EmbedPurpose::Index => self.documents.install(work),
            EmbedPurpose::Query => self.queries.install(work),
        }
    }

    /// What every local text embedder's `embed` does: the texts checked, then `embed`
    /// run on the pool for `purpose`, off the async runtime.
    pub(crate) async fn embed(
        &self,
        texts: &[String],
        purpose: EmbedPurpose,
        embed: impl FnOnce(Vec<String>) -> Result<Vec<TextEmbedding>> + Send + 'static,
    ) -> Result<Vec<TextEmbedding>> {
        check_texts(texts)?;
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let texts = texts.to_vec();
        self.run(purpose, move || embed(texts)).await
    }

    /// Runs `work` on the pool for `purpose`, off the async runtime.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        purpose: EmbedPurpose,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pools = self.clone();
        tokio::task::spawn_blocking(move || pools.run_blocking(purpose, work))
            .await
            .map_err(|e| Error::internal(format!("inference task: {e}")))?
    }
}

pub(crate) fn check_texts(texts: &[String]) -> Result<()> {
    match texts.iter().position(|t| t.trim().is_empty()) {
        Some(i) => Err(Error::invalid(format!(
            "text {i} is empty: there is nothing to embed"
        ))),
        None => Ok(()),
    }
}
