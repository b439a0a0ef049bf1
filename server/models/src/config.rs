//! `[models]`: which provider plays each role, with its defaults and checks. The server's
//! configuration holds this section; `Providers::load` turns it into providers.

use std::path::PathBuf;

use reelforge_core::error::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Where `scripts/setup.sh` installs the offline models.
    pub dir: PathBuf,
    /// Text embedder, as `provider:model`: a local one (`local:all-minilm-l6-v2`, English;
    /// `local:use-multilingual-v3`, 16 languages with Chinese, one space across them), or
    /// `bedrock:amazon.titan-embed-text-v2:0` / `bedrock:amazon.nova-2-multimodal-embeddings-v1:0`.
    pub text_embedder: String,
    /// Video analyser: "" for the offline signal analyser, or a Nova model through
    /// Converse, e.g. `bedrock:us.amazon.nova-lite-v1:0`.
    pub analyzer: String,
    /// Reranker: "" for the local one (the text embedder's cosine blended with lexical
    /// overlap), or `bedrock:cohere.rerank-v3-5:0`.
    pub reranker: String,
    /// Video clip embedder for Points + clips: "" (clips are matched by their captions) or
    /// `bedrock:amazon.nova-2-multimodal-embeddings-v1:0` (picture and sound).
    pub video_embedder: String,
    /// How Bedrock providers are reached (region, endpoint, retries, timeouts).
    pub bedrock: crate::bedrock::BedrockConfig,
    /// Threads for local model inference (one was fastest on 2 cores).
    pub threads: usize,
    /// Speech-to-text, as `provider:model`, or "none" to skip speech.
    pub transcriber: String,
    /// Audio whose loudest half second is quieter than this (dBFS) is not transcribed.
    pub speech_gate_db: f32,
    /// Sound tagger: `local:yamnet` (AudioSet's 521 classes: events in descriptions and
    /// search, crowd and music cues, and the voice detector that gates speech) or "none".
    pub sound_tagger: String,
    /// Scene tagger: `local:efficientnet-lite0` (ImageNet's 1000 classes: "what" words in
    /// descriptions and search) or "none".
    pub scene_tagger: String,
    /// On-screen text reader: `local:pp-ocrv6` (Chinese and English: `ocr_text` search
    /// documents, lines in descriptions and in Nova's prompt) or "none".
    pub text_reader: String,
    /// Image-text embedder for thumbnails: "" (none) or `clip:<model directory>` for
    /// CLIP weights you bring (Hugging Face layout). No registry package ships one.
    pub image_embedder: String,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            dir: PathBuf::from("models"),
            text_embedder: crate::MuseEmbedder::NAME.into(),
            reranker: String::new(),
            analyzer: String::new(),
            video_embedder: String::new(),
            bedrock: crate::bedrock::BedrockConfig::default(),
            threads: 1,
            transcriber: crate::WhisperTranscriber::NAME.into(),
            speech_gate_db: crate::whisper::DEFAULT_GATE_DB,
            image_embedder: String::new(),
            sound_tagger: crate::sound::YamnetTagger::NAME.into(),
            scene_tagger: crate::vision::EfficientNetTagger::NAME.into(),
            text_reader: crate::vision::PpOcrReader::NAME.into(),
        }
    }
}

/// The offline text embedders, by the name `models.text_embedder` takes.
pub const LOCAL_TEXT_EMBEDDERS: [&str; 2] =
    [crate::MiniLmEmbedder::NAME, crate::MuseEmbedder::NAME];

/// Parses a `REELFORGE_<name>` value.
pub fn parse_env<T: std::str::FromStr>(name: &str, value: &str) -> Result<T> {
    value
        .parse()
        .map_err(|_| Error::invalid(format!("REELFORGE_{name}={value:?} is not valid")))
}

impl ModelsConfig {
    /// Applies `REELFORGE_<name>` if it is one of this section's; returns whether it was.
    pub fn apply_env(&mut self, name: &str, value: &str) -> Result<bool> {
        match name {
            "MODELS_DIR" => self.dir = value.into(),
            "TEXT_EMBEDDER" => self.text_embedder = value.into(),
            "RERANKER" => self.reranker = value.into(),
            "ANALYZER" => self.analyzer = value.into(),
            "VIDEO_EMBEDDER" => self.video_embedder = value.into(),
            "BEDROCK_S3_URI" => self.bedrock.s3_uri = value.into(),
            "BEDROCK_S3_BUCKET_OWNER" => self.bedrock.s3_bucket_owner = value.into(),
            "BEDROCK_S3_ENDPOINT_URL" => self.bedrock.s3_endpoint_url = value.into(),
            "BEDROCK_S3_FORCE_PATH_STYLE" => {
                self.bedrock.s3_force_path_style = parse_env(name, value)?
            }
            "BEDROCK_INLINE_VIDEO_LIMIT_BYTES" => {
                self.bedrock.inline_video_limit_bytes = parse_env(name, value)?
            }
            "BEDROCK_ASYNC_EMBEDDING_MIN_CLIPS" => {
                self.bedrock.async_embedding_min_clips = parse_env(name, value)?
            }
            "BEDROCK_DATA_AUTOMATION_PROJECT_ARN" => {
                self.bedrock.data_automation_project_arn = value.into()
            }
            "BEDROCK_DATA_AUTOMATION_PROFILE_ARN" => {
                self.bedrock.data_automation_profile_arn = value.into()
            }
            "BEDROCK_DATA_AUTOMATION_ENDPOINT_URL" => {
                self.bedrock.data_automation_endpoint_url = value.into()
            }
            "BEDROCK_ASYNC_POLL_SECONDS" => {
                self.bedrock.async_poll_seconds = parse_env(name, value)?
            }
            "BEDROCK_REGION" => self.bedrock.region = value.into(),
            "BEDROCK_ENDPOINT_URL" => self.bedrock.endpoint_url = value.into(),
            "BEDROCK_MAX_ATTEMPTS" => self.bedrock.max_attempts = parse_env(name, value)?,
            "BEDROCK_CONCURRENCY" => self.bedrock.concurrency = parse_env(name, value)?,
            "BEDROCK_EMBEDDING_DIMENSIONS" => {
                self.bedrock.embedding_dimensions = parse_env(name, value)?
            }
            "MODEL_THREADS" => self.threads = parse_env(name, value)?,
            "TRANSCRIBER" => self.transcriber = value.into(),
            "SPEECH_GATE_DB" => self.speech_gate_db = parse_env(name, value)?,
            "IMAGE_EMBEDDER" => self.image_embedder = value.into(),
            "SOUND_TAGGER" => self.sound_tagger = value.into(),
            "SCENE_TAGGER" => self.scene_tagger = value.into(),
            "TEXT_READER" => self.text_reader = value.into(),
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub fn validate(&self) -> Result<()> {
        use crate::bedrock::{self, EmbedModel};
        let embedder = self.text_embedder.as_str();
        let bedrock_embedder = bedrock::model_of(embedder).and_then(EmbedModel::from_id);
        if !LOCAL_TEXT_EMBEDDERS.contains(&embedder) && bedrock_embedder.is_none() {
            return Err(Error::invalid(format!(
                "models.text_embedder {embedder:?} is not available (available: {}, bedrock:{}, bedrock:{})",
                LOCAL_TEXT_EMBEDDERS.join(", "),
                bedrock::TITAN_TEXT_V2,
                bedrock::NOVA_EMBEDDINGS
            )));
        }
        if let Some(model) = bedrock_embedder {
            let d = self.bedrock.embedding_dimensions;
            if !model.dimensions().contains(&d) {
                return Err(Error::invalid(format!(
                    "models.bedrock.embedding_dimensions must be one of {:?} for {embedder}, got {d}",
                    model.dimensions()
                )));
            }
        }
        let reranker = self.reranker.as_str();
        if !(reranker.is_empty()
            || reranker == "local"
            || bedrock::model_of(reranker) == Some(bedrock::COHERE_RERANK))
        {
            return Err(Error::invalid(format!(
                "models.reranker {reranker:?} is not available: use \"\" for the local one or \"bedrock:{}\"",
                bedrock::COHERE_RERANK
            )));
        }
        let analyzer = self.analyzer.as_str();
        let video_model = bedrock::model_of(analyzer).map(bedrock::nova::takes_video);
        match video_model {
            _ if analyzer.is_empty() || analyzer == "local" => {}
            Some(Ok(true)) => {}
            Some(Err(unknown)) => tracing::warn!("models.analyzer: {unknown}"),
            Some(Ok(false)) => {
                return Err(Error::invalid(format!(
                    "models.analyzer {analyzer:?} does not take video: use a Nova model that does \
                     (bedrock:us.amazon.nova-lite-v1:0, -pro-, -premier-, nova-2-lite), not Nova \
                     Micro (text only) or another model"
                )))
            }
            None => {
                return Err(Error::invalid(format!(
                    "models.analyzer {analyzer:?} is not available: use \"\" for the offline signal analyser or \"bedrock:<Nova model id>\" (e.g. bedrock:us.amazon.nova-lite-v1:0)"
                )))
            }
        }
        let video = self.video_embedder.as_str();
        if !(video.is_empty() || bedrock::model_of(video) == Some(bedrock::NOVA_EMBEDDINGS)) {
            return Err(Error::invalid(format!(
                "models.video_embedder {video:?} is not available: use \"\" to match clips by their captions or \"bedrock:{}\"",
                bedrock::NOVA_EMBEDDINGS
            )));
        }
        if !video.is_empty()
            && !EmbedModel::Nova
                .dimensions()
                .contains(&self.bedrock.embedding_dimensions)
        {
            return Err(Error::invalid(format!(
                "models.bedrock.embedding_dimensions must be one of {:?} for {video}, got {}",
                EmbedModel::Nova.dimensions(),
                self.bedrock.embedding_dimensions
            )));
        }
        self.bedrock.validate()?;
        if self.transcriber != "none"
            && !crate::whisper::MODELS.contains(&self.transcriber.as_str())
        {
            return Err(Error::invalid(format!(
                "models.transcriber {:?} is not available (available: {}, none)",
                self.transcriber,
                crate::whisper::MODELS.join(", ")
            )));
        }
        let image = self.image_embedder.as_str();
        if !(image.is_empty() || image == "none" || image.starts_with("clip:")) {
            return Err(Error::invalid(format!(
                "models.image_embedder {image:?} is not available: use \"\" for none, or \
                 \"clip:<directory>\" for CLIP weights in Hugging Face layout"
            )));
        }
        for (key, value, available) in [
            (
                "models.sound_tagger",
                &self.sound_tagger,
                crate::sound::YamnetTagger::NAME,
            ),
            (
                "models.scene_tagger",
                &self.scene_tagger,
                crate::vision::EfficientNetTagger::NAME,
            ),
            (
                "models.text_reader",
                &self.text_reader,
                crate::vision::PpOcrReader::NAME,
            ),
        ] {
            if !(value == "none" || value == available) {
                return Err(Error::invalid(format!(
                    "{key} {value:?} is not available (available: {available}, none)"
                )));
            }
        }
        if !(-120.0..=0.0).contains(&self.speech_gate_db) {
            return Err(Error::invalid(
                "models.speech_gate_db is a level in dBFS: between -120 and 0",
            ));
        }
        if !(1..=64).contains(&self.threads) {
            return Err(Error::invalid("models.threads must be in 1..=64"));
        }
        Ok(())
    }
}
