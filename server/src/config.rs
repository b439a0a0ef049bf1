//! Server configuration: defaults, then a TOML file, then `REELFORGE_*` environment
//! variables, then command-line flags (applied by the binary). `Display` prints the
//! effective configuration at start.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the gRPC server listens on; port 0 picks a free port.
    pub listen: String,
    /// Where sled, thumbnails and uploaded sources live.
    pub data_dir: PathBuf,
    /// Directories a client may ingest server-side files from. Empty disables path ingest.
    pub allowed_roots: Vec<PathBuf>,
    pub ffmpeg: String,
    pub ffprobe: String,
    /// Most memory sled may use to cache pages of the store.
    pub store_cache_mb: u64,
    pub ingest: IngestConfig,
    pub models: ModelsConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Where `scripts/setup.sh` installs the offline models.
    pub dir: PathBuf,
    /// Text embedder, as `provider:model`: the local MiniLM, or
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
    pub bedrock: crate::models::bedrock::BedrockConfig,
    /// Threads for local model inference (one was fastest on 2 cores).
    pub threads: usize,
    /// Speech-to-text, as `provider:model`, or "none" to skip speech.
    pub transcriber: String,
    /// Audio whose loudest half second is quieter than this (dBFS) is not transcribed.
    pub speech_gate_db: f32,
    /// Image-text embedder for thumbnails: "" (none) or `clip:<model directory>` for
    /// CLIP weights you bring (Hugging Face layout). No registry package ships one.
    pub image_embedder: String,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            dir: PathBuf::from("models"),
            text_embedder: crate::models::MiniLmEmbedder::NAME.into(),
            reranker: String::new(),
            analyzer: String::new(),
            video_embedder: String::new(),
            bedrock: crate::models::bedrock::BedrockConfig::default(),
            threads: 1,
            transcriber: crate::models::WhisperTranscriber::NAME.into(),
            speech_gate_db: crate::models::whisper::DEFAULT_GATE_DB,
            image_embedder: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Default analysis slice length (what a VLM reads at once).
    pub slice_seconds: f64,
    /// Default matching clip length (visual descriptors are stored per clip).
    pub clip_seconds: f64,
    /// Frames per second sampled (at 64x36) for motion and scene-cut signals.
    pub analysis_fps: f64,
    /// Frames per second stored as JPEG thumbnails.
    pub thumbnail_fps: f64,
    /// Thumbnail height in pixels.
    pub thumbnail_height: u32,
    /// Colour-histogram distance between consecutive analysis frames that counts as a cut.
    pub scene_cut_threshold: f32,
    /// Ingest jobs that may run at once; more wait in a queue.
    pub max_concurrent_jobs: usize,
    /// Largest accepted upload.
    pub max_upload_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:50051".into(),
            data_dir: PathBuf::from(".reelforge"),
            allowed_roots: Vec::new(),
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            store_cache_mb: 64,
            ingest: IngestConfig::default(),
            models: ModelsConfig::default(),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            slice_seconds: 30.0,
            clip_seconds: 2.0,
            analysis_fps: 10.0,
            thumbnail_fps: 1.0,
            thumbnail_height: 180,
            scene_cut_threshold: 0.35,
            max_concurrent_jobs: 2,
            max_upload_bytes: 8 << 30,
        }
    }
}

/// Limits on per-request slice and clip lengths.
pub const SLICE_SECONDS_RANGE: (f64, f64) = (1.0, 600.0);
pub const CLIP_SECONDS_RANGE: (f64, f64) = (0.5, 30.0);

impl Config {
    /// Defaults, overlaid by `file` (if given) and then by `REELFORGE_*` variables in `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::invalid(format!("config file {}: {e}", path.display())))?;
                toml::from_str(&text)
                    .map_err(|e| Error::invalid(format!("config file {}: {e}", path.display())))?
            }
            None => Config::default(),
        };
        for (key, value) in env {
            if let Some(name) = key.strip_prefix("REELFORGE_") {
                config.apply_env(name, &value)?;
            }
        }
        config.validate()?;
        Ok(config)
    }

    fn apply_env(&mut self, name: &str, value: &str) -> Result<()> {
        fn parse<T: std::str::FromStr>(name: &str, value: &str) -> Result<T> {
            value
                .parse()
                .map_err(|_| Error::invalid(format!("REELFORGE_{name}={value:?} is not valid")))
        }
        match name {
            "LISTEN" => self.listen = value.into(),
            "DATA_DIR" => self.data_dir = value.into(),
            "ALLOWED_ROOTS" => {
                self.allowed_roots = std::env::split_paths(value).collect();
            }
            "FFMPEG" => self.ffmpeg = value.into(),
            "FFPROBE" => self.ffprobe = value.into(),
            "STORE_CACHE_MB" => self.store_cache_mb = parse(name, value)?,
            "MODELS_DIR" => self.models.dir = value.into(),
            "TEXT_EMBEDDER" => self.models.text_embedder = value.into(),
            "RERANKER" => self.models.reranker = value.into(),
            "ANALYZER" => self.models.analyzer = value.into(),
            "VIDEO_EMBEDDER" => self.models.video_embedder = value.into(),
            "BEDROCK_S3_URI" => self.models.bedrock.s3_uri = value.into(),
            "BEDROCK_S3_BUCKET_OWNER" => self.models.bedrock.s3_bucket_owner = value.into(),
            "BEDROCK_S3_ENDPOINT_URL" => self.models.bedrock.s3_endpoint_url = value.into(),
            "BEDROCK_S3_FORCE_PATH_STYLE" => {
                self.models.bedrock.s3_force_path_style = parse(name, value)?
            }
            "BEDROCK_INLINE_VIDEO_LIMIT_BYTES" => {
                self.models.bedrock.inline_video_limit_bytes = parse(name, value)?
            }
            "BEDROCK_ASYNC_EMBEDDING_MIN_CLIPS" => {
                self.models.bedrock.async_embedding_min_clips = parse(name, value)?
            }
            "BEDROCK_DATA_AUTOMATION_PROJECT_ARN" => {
                self.models.bedrock.data_automation_project_arn = value.into()
            }
            "BEDROCK_DATA_AUTOMATION_PROFILE_ARN" => {
                self.models.bedrock.data_automation_profile_arn = value.into()
            }
            "BEDROCK_DATA_AUTOMATION_ENDPOINT_URL" => {
                self.models.bedrock.data_automation_endpoint_url = value.into()
            }
            "BEDROCK_ASYNC_POLL_SECONDS" => {
                self.models.bedrock.async_poll_seconds = parse(name, value)?
            }
            "BEDROCK_REGION" => self.models.bedrock.region = value.into(),
            "BEDROCK_ENDPOINT_URL" => self.models.bedrock.endpoint_url = value.into(),
            "BEDROCK_MAX_ATTEMPTS" => self.models.bedrock.max_attempts = parse(name, value)?,
            "BEDROCK_CONCURRENCY" => self.models.bedrock.concurrency = parse(name, value)?,
            "BEDROCK_EMBEDDING_DIMENSIONS" => {
                self.models.bedrock.embedding_dimensions = parse(name, value)?
            }
            "MODEL_THREADS" => self.models.threads = parse(name, value)?,
            "TRANSCRIBER" => self.models.transcriber = value.into(),
            "SPEECH_GATE_DB" => self.models.speech_gate_db = parse(name, value)?,
            "IMAGE_EMBEDDER" => self.models.image_embedder = value.into(),
            "SLICE_SECONDS" => self.ingest.slice_seconds = parse(name, value)?,
            "CLIP_SECONDS" => self.ingest.clip_seconds = parse(name, value)?,
            "ANALYSIS_FPS" => self.ingest.analysis_fps = parse(name, value)?,
            "THUMBNAIL_FPS" => self.ingest.thumbnail_fps = parse(name, value)?,
            "MAX_CONCURRENT_JOBS" => self.ingest.max_concurrent_jobs = parse(name, value)?,
            "MAX_UPLOAD_BYTES" => self.ingest.max_upload_bytes = parse(name, value)?,
            // Variables the client or other tools read (REELFORGE_ADDR, ...) are not ours.
            _ => {}
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<()> {
        if self.store_cache_mb == 0 {
            return Err(Error::invalid("store_cache_mb must be at least 1"));
        }
        use crate::models::bedrock::{self, EmbedModel};
        let embedder = self.models.text_embedder.as_str();
        let bedrock_embedder = bedrock::model_of(embedder).and_then(EmbedModel::from_id);
        if embedder != crate::models::MiniLmEmbedder::NAME && bedrock_embedder.is_none() {
            return Err(Error::invalid(format!(
                "models.text_embedder {embedder:?} is not available (available: {}, bedrock:{}, bedrock:{})",
                crate::models::MiniLmEmbedder::NAME,
                bedrock::TITAN_TEXT_V2,
                bedrock::NOVA_EMBEDDINGS
            )));
        }
        if let Some(model) = bedrock_embedder {
            let d = self.models.bedrock.embedding_dimensions;
            if !model.dimensions().contains(&d) {
                return Err(Error::invalid(format!(
                    "models.bedrock.embedding_dimensions must be one of {:?} for {embedder}, got {d}",
                    model.dimensions()
                )));
            }
        }
        let reranker = self.models.reranker.as_str();
        if !(reranker.is_empty()
            || reranker == "local"
            || bedrock::model_of(reranker) == Some(bedrock::COHERE_RERANK))
        {
            return Err(Error::invalid(format!(
                "models.reranker {reranker:?} is not available: use \"\" for the local one or \"bedrock:{}\"",
                bedrock::COHERE_RERANK
            )));
        }
        let analyzer = self.models.analyzer.as_str();
        let nova = bedrock::model_of(analyzer).is_some_and(|m| m.contains("nova"));
        if !(analyzer.is_empty() || analyzer == "local" || nova) {
            return Err(Error::invalid(format!(
                "models.analyzer {analyzer:?} is not available: use \"\" for the offline signal analyser or \"bedrock:<Nova model id>\" (e.g. bedrock:us.amazon.nova-lite-v1:0)"
            )));
        }
        let video = self.models.video_embedder.as_str();
        if !(video.is_empty() || bedrock::model_of(video) == Some(bedrock::NOVA_EMBEDDINGS)) {
            return Err(Error::invalid(format!(
                "models.video_embedder {video:?} is not available: use \"\" to match clips by their captions or \"bedrock:{}\"",
                bedrock::NOVA_EMBEDDINGS
            )));
        }
        if !video.is_empty()
            && !EmbedModel::Nova
                .dimensions()
                .contains(&self.models.bedrock.embedding_dimensions)
        {
            return Err(Error::invalid(format!(
                "models.bedrock.embedding_dimensions must be one of {:?} for {video}, got {}",
                EmbedModel::Nova.dimensions(),
                self.models.bedrock.embedding_dimensions
            )));
        }
        self.models.bedrock.validate()?;
        let transcribers = [crate::models::WhisperTranscriber::NAME, "none"];
        if !transcribers.contains(&self.models.transcriber.as_str()) {
            return Err(Error::invalid(format!(
                "models.transcriber {:?} is not available (available: {})",
                self.models.transcriber,
                transcribers.join(", ")
            )));
        }
        let image = self.models.image_embedder.as_str();
        if !(image.is_empty() || image == "none" || image.starts_with("clip:")) {
            return Err(Error::invalid(format!(
                "models.image_embedder {image:?} is not available: use \"\" for none, or \
                 \"clip:<directory>\" for CLIP weights in Hugging Face layout"
            )));
        }
        if !(-120.0..=0.0).contains(&self.models.speech_gate_db) {
            return Err(Error::invalid(
                "models.speech_gate_db is a level in dBFS: between -120 and 0",
            ));
        }
        if !(1..=64).contains(&self.models.threads) {
            return Err(Error::invalid("models.threads must be in 1..=64"));
        }
        let i = &self.ingest;
        let in_range = |v: f64, (lo, hi): (f64, f64)| v >= lo && v <= hi;
        if !in_range(i.slice_seconds, SLICE_SECONDS_RANGE) {
            return Err(Error::invalid(format!(
                "ingest.slice_seconds must be within {SLICE_SECONDS_RANGE:?}, got {}",
                i.slice_seconds
            )));
        }
        if !in_range(i.clip_seconds, CLIP_SECONDS_RANGE) {
            return Err(Error::invalid(format!(
                "ingest.clip_seconds must be within {CLIP_SECONDS_RANGE:?}, got {}",
                i.clip_seconds
            )));
        }
        if !(1.0..=60.0).contains(&i.analysis_fps) || !(0.1..=10.0).contains(&i.thumbnail_fps) {
            return Err(Error::invalid(
                "ingest.analysis_fps must be in 1..=60 and ingest.thumbnail_fps in 0.1..=10",
            ));
        }
        if i.max_concurrent_jobs == 0 {
            return Err(Error::invalid(
                "ingest.max_concurrent_jobs must be at least 1",
            ));
        }
        if !(16..=2160).contains(&i.thumbnail_height) {
            return Err(Error::invalid(
                "ingest.thumbnail_height must be in 16..=2160",
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = toml::to_string_pretty(self).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("reelforge.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:1\"\n[ingest]\nslice_seconds = 10.0\n",
        )
        .unwrap();
        let env = vec![
            ("REELFORGE_SLICE_SECONDS".to_string(), "20".to_string()),
            ("REELFORGE_ADDR".to_string(), "ignored".to_string()),
        ];
        let config = Config::load(Some(&file), env).unwrap();
        assert_eq!(config.listen, "0.0.0.0:1");
        assert_eq!(config.ingest.slice_seconds, 20.0);
        assert_eq!(config.ingest.clip_seconds, 2.0);
        assert!(config.to_string().contains("slice_seconds = 20.0"));
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "slice_secs = 3\n").unwrap();
        let err = Config::load(Some(&file), vec![]).unwrap_err().to_string();
        assert!(err.contains("slice_secs"), "{err}");
        let env = vec![("REELFORGE_SLICE_SECONDS".to_string(), "0".to_string())];
        let err = Config::load(None, env).unwrap_err().to_string();
        assert!(err.contains("slice_seconds"), "{err}");
    }

    #[test]
    fn bedrock_video_settings_are_checked() {
        let load = |pairs: &[(&str, &str)]| {
            let env: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Config::load(None, env).map_err(|e| e.to_string())
        };
        let err = load(&[("REELFORGE_BEDROCK_INLINE_VIDEO_LIMIT_BYTES", "30000000")]).unwrap_err();
        assert!(
            err.contains("inline_video_limit_bytes") && err.contains("25 MB"),
            "{err}"
        );
        let err = load(&[("REELFORGE_BEDROCK_S3_URI", "bucket/prefix")]).unwrap_err();
        assert!(err.contains("s3://bucket/prefix"), "{err}");
        let err = load(&[(
            "REELFORGE_VIDEO_EMBEDDER",
            "bedrock:amazon.titan-embed-text-v2:0",
        )])
        .unwrap_err();
        assert!(err.contains("models.video_embedder"), "{err}");
        let err = load(&[
            (
                "REELFORGE_VIDEO_EMBEDDER",
                "bedrock:amazon.nova-2-multimodal-embeddings-v1:0",
            ),
            ("REELFORGE_BEDROCK_EMBEDDING_DIMENSIONS", "512"),
        ])
        .unwrap_err();
        assert!(
            err.contains("embedding_dimensions") && err.contains("3072"),
            "{err}"
        );
        let ok = load(&[
            (
                "REELFORGE_VIDEO_EMBEDDER",
                "bedrock:amazon.nova-2-multimodal-embeddings-v1:0",
            ),
            ("REELFORGE_BEDROCK_S3_URI", "s3://reelforge-staging/work"),
        ])
        .unwrap();
        assert_eq!(ok.models.bedrock.s3_uri, "s3://reelforge-staging/work");
    }
}
