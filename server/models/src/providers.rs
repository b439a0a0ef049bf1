//! Choosing and loading the providers `[models]` names: local models from the models
//! directory, Bedrock ones through one SDK client. The one place a role's provider is
//! decided.

use std::path::Path;
use std::sync::Arc;

use reelforge_core::error::{Error, Result};

use crate::analysis::{SignalAnalyzer, VideoAnalyzer};
use crate::bedrock::{self, Bedrock, DataAutomation};
use crate::config::LOCAL_TEXT_EMBEDDERS;
use crate::sound::{SoundTagger, YamnetTagger};
use crate::vision::{EfficientNetTagger, PpOcrReader, SceneTagger, TextReader};
use crate::{
    ClipEmbedder, EmbeddingReranker, ImageTextEmbedder, MiniLmEmbedder, ModelsConfig, MuseEmbedder,
    Reranker, TextEmbedder, Transcriber, VideoEmbedder, WhisperTranscriber,
};

/// The model providers an engine works with, chosen by config.
#[derive(Clone)]
pub struct Providers {
    pub analyzer: Arc<dyn VideoAnalyzer>,
    pub text_embedder: Arc<dyn TextEmbedder>,
    /// `None`: speech is not transcribed.
    pub transcriber: Option<Arc<dyn Transcriber>>,
    pub reranker: Arc<dyn Reranker>,
    /// `None`: thumbnails are not embedded (no CLIP weights configured).
    pub image_embedder: Option<Arc<dyn ImageTextEmbedder>>,
    /// `None`: Points + clips matches clips by their captions.
    pub video_embedder: Option<Arc<dyn VideoEmbedder>>,
    /// `None`: no Bedrock Data Automation project is configured.
    pub data_automation: Option<DataAutomation>,
    /// `None`: sound is not tagged (`models.sound_tagger = "none"`).
    pub sound_tagger: Option<Arc<dyn SoundTagger>>,
    /// `None`: pictures are not tagged (`models.scene_tagger = "none"`).
    pub scene_tagger: Option<Arc<dyn SceneTagger>>,
    /// `None`: on-screen text is not read (`models.text_reader = "none"`).
    pub text_reader: Option<Arc<dyn TextReader>>,
}

/// Wraps a load failure with what was being loaded and the setting that chose it.
fn loading(what: &str) -> impl FnOnce(Error) -> Error + '_ {
    move |e| Error::FailedPrecondition(format!("cannot load {what}: {e}"))
}

impl Providers {
    /// Each model role and the name of what fills it (`None`: the role is off).
    pub fn roles(&self) -> Vec<(&'static str, Option<String>)> {
        let name = |n: &str| Some(n.to_string());
        vec![
            ("analyzer", name(self.analyzer.name())),
            ("text_embedder", name(self.text_embedder.name())),
            (
                "transcriber",
                self.transcriber.as_ref().and_then(|t| name(t.name())),
            ),
            ("reranker", name(self.reranker.name())),
            (
                "sound_tagger",
                self.sound_tagger.as_ref().and_then(|t| name(t.name())),
            ),
            (
                "scene_tagger",
                self.scene_tagger.as_ref().and_then(|t| name(t.name())),
            ),
            (
                "text_reader",
                self.text_reader.as_ref().and_then(|t| name(t.name())),
            ),
            (
                "image_embedder",
                self.image_embedder.as_ref().and_then(|e| name(e.name())),
            ),
            (
                "video_embedder",
                self.video_embedder.as_ref().and_then(|e| name(e.name())),
            ),
            (
                "data_automation",
                self.data_automation
                    .as_ref()
                    .map(|_| "bedrock-data-automation".to_string()),
            ),
        ]
    }

    /// Loads the local models and connects the Bedrock ones `config` names. `ffmpeg`
    /// cuts the proxies remote models are sent; `staging` holds them while in flight.
    pub async fn load(config: &ModelsConfig, ffmpeg: &str, staging: &Path) -> Result<Providers> {
        let started = std::time::Instant::now();
        let uses_bedrock = [
            &config.text_embedder,
            &config.reranker,
            &config.analyzer,
            &config.video_embedder,
        ]
        .iter()
        .any(|s| bedrock::model_of(s).is_some())
            || !config.bedrock.data_automation_project_arn.is_empty();
        let bedrock = match uses_bedrock {
            true => Some(Bedrock::connect(&config.bedrock).await.map_err(|e| {
                Error::FailedPrecondition(format!(
                    "cannot set up the Bedrock client (models.bedrock): {e}"
                ))
            })?),
            false => None,
        };
        let text_embedder: Arc<dyn TextEmbedder> = match (
            bedrock::model_of(&config.text_embedder).and_then(bedrock::EmbedModel::from_id),
            &bedrock,
        ) {
            (Some(model), Some(bedrock)) => Arc::new(bedrock::BedrockEmbedder::new(
                bedrock.for_role("text_embedder"),
                model,
                config.bedrock.embedding_dimensions,
            )?),
            _ => load_text_embedder(&config.dir, &config.text_embedder, config.threads)
                .map_err(loading("the offline text embedding model"))?,
        };
        tracing::info!(
            "text embedder {} ({} dims) ready in {} ms",
            text_embedder.name(),
            text_embedder.dimensions(),
            started.elapsed().as_millis()
        );
        let started = std::time::Instant::now();
        let transcriber = load_transcriber(config)
            .map_err(loading("the offline speech model"))?
            .map(|t| Arc::new(t) as Arc<dyn Transcriber>);
        match &transcriber {
            Some(t) => tracing::info!(
                "loaded {} in {} ms",
                t.name(),
                started.elapsed().as_millis()
            ),
            None => tracing::info!("speech is not transcribed (models.transcriber = \"none\")"),
        }
        let started = std::time::Instant::now();
        let sound_tagger = load_sound_tagger(config)
            .map_err(loading("the sound event model (models.sound_tagger)"))?;
        match &sound_tagger {
            Some(t) => tracing::info!(
                "loaded {} ({} classes) in {} ms",
                t.name(),
                t.classes().len(),
                started.elapsed().as_millis()
            ),
            None => tracing::info!("sound is not tagged (models.sound_tagger = \"none\")"),
        }
        let started = std::time::Instant::now();
        let scene_tagger =
            load_scene_tagger(config).map_err(loading("the scene tagger (models.scene_tagger)"))?;
        let text_reader =
            load_text_reader(config).map_err(loading("the text reader (models.text_reader)"))?;
        tracing::info!(
            scene_tagger = scene_tagger.as_ref().map_or("none", |t| t.name()),
            text_reader = text_reader.as_ref().map_or("none", |t| t.name()),
            "loaded the picture models in {} ms",
            started.elapsed().as_millis()
        );
        let image_embedder = load_image_embedder(config)
            .map_err(loading("the image embedder (models.image_embedder)"))?
            .map(|e| Arc::new(e) as Arc<dyn ImageTextEmbedder>);
        if let Some(e) = &image_embedder {
            tracing::info!(
                "thumbnails are embedded by {} ({} dims)",
                e.name(),
                e.dimensions()
            );
        }
        let video_embedder = match (&bedrock, bedrock::model_of(&config.video_embedder)) {
            (Some(b), Some(_)) => Some(Arc::new(bedrock::NovaVideoEmbedder::new(
                b.for_role("video_embedder"),
                config.bedrock.embedding_dimensions,
                ffmpeg,
                staging.join("clips"),
            )?) as Arc<dyn VideoEmbedder>),
            _ => None,
        };
        Ok(Providers {
            image_embedder,
            video_embedder,
            data_automation: bedrock.as_ref().and_then(|b| b.data_automation().cloned()),
            analyzer: match (&bedrock, bedrock::model_of(&config.analyzer)) {
                (Some(b), Some(model)) => Arc::new(bedrock::NovaAnalyzer::new(
                    b.for_role("analyzer"),
                    model,
                    ffmpeg,
                    staging.join("proxies"),
                )),
                _ => Arc::new(SignalAnalyzer),
            },
            reranker: match &bedrock {
                Some(b) if bedrock::model_of(&config.reranker).is_some() => {
                    Arc::new(bedrock::CohereReranker::new(b.for_role("reranker")))
                }
                _ => Arc::new(default_reranker(text_embedder.clone())),
            },
            text_embedder,
            transcriber,
            sound_tagger,
            scene_tagger,
            text_reader,
        })
    }
}

/// The configured speech model, or `None` when `models.transcriber` is "none".
pub fn load_transcriber(models: &ModelsConfig) -> Result<Option<WhisperTranscriber>> {
    if models.transcriber == "none" {
        return Ok(None);
    }
    load_whisper(
        &models.dir,
        &models.transcriber,
        models.threads,
        models.speech_gate_db,
    )
    .map(Some)
}

/// The configured sound tagger, or `None` when `models.sound_tagger` is "none".
pub fn load_sound_tagger(models: &ModelsConfig) -> Result<Option<Arc<dyn SoundTagger>>> {
    match models.sound_tagger.as_str() {
        "none" => Ok(None),
        YamnetTagger::NAME => Ok(Some(Arc::new(YamnetTagger::load(
            &models.dir,
            &YamnetTagger::dir_in(&models.dir),
            models.threads,
        )?))),
        other => Err(Error::invalid(format!(
            "models.sound_tagger {other:?} is not available (available: {}, none)",
            YamnetTagger::NAME
        ))),
    }
}

/// The configured scene tagger, or `None` when `models.scene_tagger` is "none".
pub fn load_scene_tagger(models: &ModelsConfig) -> Result<Option<Arc<dyn SceneTagger>>> {
    match models.scene_tagger.as_str() {
        "none" => Ok(None),
        EfficientNetTagger::NAME => Ok(Some(Arc::new(EfficientNetTagger::load(
            &EfficientNetTagger::dir_in(&models.dir),
            models.threads,
        )?))),
        other => Err(Error::invalid(format!(
            "models.scene_tagger {other:?} is not available (available: {}, none)",
            EfficientNetTagger::NAME
        ))),
    }
}

/// The configured text reader, or `None` when `models.text_reader` is "none".
pub fn load_text_reader(models: &ModelsConfig) -> Result<Option<Arc<dyn TextReader>>> {
    match models.text_reader.as_str() {
        "none" => Ok(None),
        PpOcrReader::NAME => Ok(Some(Arc::new(PpOcrReader::load(
            &models.dir,
            &PpOcrReader::dir_in(&models.dir),
            models.threads,
        )?))),
        other => Err(Error::invalid(format!(
            "models.text_reader {other:?} is not available (available: {}, none)",
            PpOcrReader::NAME
        ))),
    }
}

/// The configured image-text embedder, or `None` when `models.image_embedder` is empty.
pub fn load_image_embedder(models: &ModelsConfig) -> Result<Option<ClipEmbedder>> {
    match models.image_embedder.strip_prefix("clip:") {
        Some(dir) => ClipEmbedder::load(Path::new(dir), models.threads).map(Some),
        None => Ok(None),
    }
}

/// An offline speech model (a name in `whisper::MODELS`) from the models directory.
pub fn load_whisper(
    models_dir: &Path,
    name: &str,
    threads: usize,
    gate_db: f32,
) -> Result<WhisperTranscriber> {
    let dir = WhisperTranscriber::dir_of(models_dir, name).ok_or_else(|| {
        Error::invalid(format!(
            "models.transcriber {name:?} is not available (available: {}, none)",
            crate::whisper::MODELS.join(", ")
        ))
    })?;
    WhisperTranscriber::load(&dir, threads, gate_db)
}

/// The offline default reranker: the text embedder's cosine blended with lexical overlap.
pub fn default_reranker(embedder: Arc<dyn TextEmbedder>) -> EmbeddingReranker {
    EmbeddingReranker::new(embedder)
}

/// An offline text embedder (a name in `LOCAL_TEXT_EMBEDDERS`) from the models directory.
pub fn load_text_embedder(
    models_dir: &Path,
    name: &str,
    threads: usize,
) -> Result<Arc<dyn TextEmbedder>> {
    Ok(match name {
        MiniLmEmbedder::NAME => Arc::new(MiniLmEmbedder::load(
            &models_dir.join(MiniLmEmbedder::DIR_NAME),
            threads,
        )?),
        MuseEmbedder::NAME => Arc::new(MuseEmbedder::load(
            &models_dir.join(MuseEmbedder::DIR_NAME),
            threads,
        )?),
        _ => {
            return Err(Error::invalid(format!(
                "models.text_embedder {name:?} is not available (available: {})",
                LOCAL_TEXT_EMBEDDERS.join(", ")
            )))
        }
    })
}
