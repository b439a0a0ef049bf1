//! The engine's configuration: where its data lives, the media tools, ingest settings
//! and the models (`reelforge_models::ModelsConfig`). Each section owns its defaults and
//! checks; the server's configuration wraps this one with what only the server needs
//! (its address) and loads it from a file, `REELFORGE_*` variables and flags.

use std::path::PathBuf;

use reelforge_core::error::{Error, Result};
use reelforge_models::analysis::Language;
use reelforge_models::config::{parse_env, ModelsConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Where sled, thumbnails and uploaded sources live.
    pub data_dir: PathBuf,
    /// Directories a client may ingest server-side files from. Empty disables path ingest.
    pub allowed_roots: Vec<PathBuf>,
    pub ffmpeg: String,
    pub ffprobe: String,
    /// Most memory sled may use to cache pages of the store.
    pub store_cache_mb: u64,
    /// Nice value (0-19) of background work: ffmpeg (ingest, renders) and the model pools
    /// that serve ingest, so searches get the CPU first. 0 runs everything alike.
    pub background_nice: i32,
    pub ingest: IngestConfig,
    pub highlights: HighlightsConfig,
    pub watch: WatchConfig,
    pub models: ModelsConfig,
    /// `[search]`: which backend holds the search index.
    pub search: SearchConfig,
    /// Per-tenant settings (`[tenants.acme]`); the default tenant uses the top level's.
    pub tenants: std::collections::BTreeMap<String, TenantConfig>,
}

/// `[search]`: the search index's backend. `embedded` keeps it in the store (sled on
/// disk, served from memory); `milvus` keeps it in a Milvus server (`[search.milvus]`),
/// which several reelforge servers may share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    pub backend: String,
    pub milvus: reelforge_milvus::MilvusConfig,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            backend: "embedded".into(),
            milvus: Default::default(),
        }
    }
}

impl SearchConfig {
    pub fn validate(&self) -> Result<()> {
        match self.backend.as_str() {
            "embedded" => Ok(()),
            "milvus" => self.milvus.validate(),
            other => Err(Error::invalid(format!(
                "search.backend must be \"embedded\" or \"milvus\", got {other:?}"
            ))),
        }
    }
}

/// `[tenants.NAME]`: what one tenant's keys may do beyond its own videos, and its limits
/// (0: none). `[tenants.default]` sets the default tenant's limits (its folders are the
/// top level's `allowed_roots`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TenantConfig {
    /// Directories the tenant's keys may ingest server-side files (and take music) from;
    /// without any, the tenant uploads only.
    pub allowed_roots: Vec<PathBuf>,
    /// Bytes of uploaded sources and highlight outputs the tenant may keep.
    pub storage_bytes: u64,
    /// Bedrock tokens (in and out) the tenant may spend a day (UTC).
    pub bedrock_tokens_per_day: u64,
    /// Bytes the tenant's Bedrock calls may send a day (UTC).
    pub bedrock_bytes_per_day: u64,
    /// Ingest, Data Automation and highlight jobs of the tenant running at once.
    pub max_concurrent_jobs: usize,
}

impl EngineConfig {
    /// The directories `tenant`'s server-side paths must be inside: the top level's
    /// `allowed_roots` for the default tenant, `[tenants.NAME]`'s for the others.
    pub fn roots_for(&self, tenant: &str) -> &[PathBuf] {
        if tenant == crate::DEFAULT_TENANT {
            &self.allowed_roots
        } else {
            self.tenants
                .get(tenant)
                .map_or(&[][..], |t| t.allowed_roots.as_slice())
        }
    }
}

/// `[watch]`: folders and S3 prefixes whose new videos are ingested as they arrive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WatchConfig {
    /// Folders on this server (inside `allowed_roots`, watched with their subfolders) and
    /// `s3://bucket/prefix/` locations (listed every `poll_seconds`, through the
    /// `[models.bedrock]` S3 settings).
    pub sources: Vec<String>,
    /// A file is taken once its size and modification time have held this long (a copy
    /// still being written is not).
    pub stable_seconds: f64,
    /// S3: how often a prefix is listed. Folders: how often they are rescanned, besides
    /// their change events (which a network file system may not deliver).
    pub poll_seconds: f64,
    /// A deleted file or object deletes its video too (unless another watched file has
    /// the same content). Off: deletions are not propagated.
    pub propagate_deletes: bool,
    /// File name extensions taken (lowercase, without the dot).
    pub extensions: Vec<String>,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            sources: Vec::new(),
            stable_seconds: 5.0,
            poll_seconds: 60.0,
            propagate_deletes: false,
            extensions: [
                "mp4", "mov", "mkv", "webm", "avi", "m4v", "mpg", "mpeg", "ts", "flv", "wmv", "3gp",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// `[highlights]`: how long finished highlights (their reels and timelines) are kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HighlightsConfig {
    /// Finished highlights older than this are removed (0 keeps them).
    pub max_age_days: f64,
    /// The oldest finished highlights are removed while all of them together take more
    /// bytes than this (0: no limit).
    pub max_bytes: u64,
    /// The language the analyser describes highlights in ("en" or "zh"), unless a request
    /// names one; the Nova prompt is written in it.
    pub language: Language,
}

impl Default for HighlightsConfig {
    fn default() -> Self {
        HighlightsConfig {
            max_age_days: 30.0,
            max_bytes: 20 << 30,
            language: Language::English,
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
    /// Every this many thumbnails, one goes to the scene tagger (1: each).
    pub picture_every: u32,
    /// Every this many thumbnails, one goes to the text reader: 2 at 1 fps reads a
    /// picture every 2 seconds (on-screen text stays up for seconds).
    pub text_every: u32,
    /// Colour-histogram distance between consecutive analysis frames that counts as a cut.
    pub scene_cut_threshold: f32,
    /// Ingest jobs that may run at once; more wait in a queue.
    pub max_concurrent_jobs: usize,
    /// Slices of one ingest the analyser reads at once (a remote model's calls overlap the
    /// decode and each other; the provider's own limit bounds them too).
    pub analysis_concurrency: usize,
    /// Largest accepted upload.
    pub max_upload_bytes: u64,
    /// The language spoken in ingested videos, as the speech model's code ("zh", "en"),
    /// unless a request names one; "" or "auto": the model tells, per 30 s window.
    pub language: String,
    /// The language the analyser describes slices in ("en" or "zh"): the stored, searchable
    /// descriptions, and the prompt a Nova analyser is sent.
    pub description_language: Language,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            data_dir: PathBuf::from(".reelforge"),
            allowed_roots: Vec::new(),
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            store_cache_mb: 64,
            background_nice: 10,
            ingest: IngestConfig::default(),
            highlights: HighlightsConfig::default(),
            watch: WatchConfig::default(),
            models: ModelsConfig::default(),
            search: SearchConfig::default(),
            tenants: Default::default(),
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
            picture_every: 1,
            text_every: 2,
            scene_cut_threshold: 0.35,
            max_concurrent_jobs: 2,
            analysis_concurrency: 4,
            max_upload_bytes: 8 << 30,
            language: String::new(),
            description_language: Language::English,
        }
    }
}

/// Limits on per-request slice and clip lengths.
pub const SLICE_SECONDS_RANGE: (f64, f64) = (1.0, 600.0);
pub const CLIP_SECONDS_RANGE: (f64, f64) = (0.5, 30.0);

impl EngineConfig {
    /// Applies `REELFORGE_<name>` if it is one of the engine's; returns whether it was.
    pub fn apply_env(&mut self, name: &str, value: &str) -> Result<bool> {
        match name {
            "DATA_DIR" => self.data_dir = value.into(),
            "ALLOWED_ROOTS" => {
                self.allowed_roots = std::env::split_paths(value).collect();
            }
            "FFMPEG" => self.ffmpeg = value.into(),
            "FFPROBE" => self.ffprobe = value.into(),
            "STORE_CACHE_MB" => self.store_cache_mb = parse_env(name, value)?,
            "SEARCH_BACKEND" => self.search.backend = value.into(),
            name if name.starts_with("SEARCH_MILVUS_") => {
                return self
                    .search
                    .milvus
                    .apply_env(&name["SEARCH_MILVUS_".len()..], value)
            }
            "BACKGROUND_NICE" => self.background_nice = parse_env(name, value)?,
            "SLICE_SECONDS" => self.ingest.slice_seconds = parse_env(name, value)?,
            "CLIP_SECONDS" => self.ingest.clip_seconds = parse_env(name, value)?,
            "ANALYSIS_FPS" => self.ingest.analysis_fps = parse_env(name, value)?,
            "THUMBNAIL_FPS" => self.ingest.thumbnail_fps = parse_env(name, value)?,
            "PICTURE_EVERY" => self.ingest.picture_every = parse_env(name, value)?,
            "TEXT_EVERY" => self.ingest.text_every = parse_env(name, value)?,
            "MAX_CONCURRENT_JOBS" => self.ingest.max_concurrent_jobs = parse_env(name, value)?,
            "ANALYSIS_CONCURRENCY" => self.ingest.analysis_concurrency = parse_env(name, value)?,
            "MAX_UPLOAD_BYTES" => self.ingest.max_upload_bytes = parse_env(name, value)?,
            "INGEST_LANGUAGE" => self.ingest.language = value.into(),
            "INGEST_DESCRIPTION_LANGUAGE" => {
                self.ingest.description_language =
                    Language::parse(value, "REELFORGE_INGEST_DESCRIPTION_LANGUAGE")?
            }
            "HIGHLIGHTS_LANGUAGE" => {
                self.highlights.language = Language::parse(value, "REELFORGE_HIGHLIGHTS_LANGUAGE")?
            }
            "HIGHLIGHTS_MAX_AGE_DAYS" => self.highlights.max_age_days = parse_env(name, value)?,
            "HIGHLIGHTS_MAX_BYTES" => self.highlights.max_bytes = parse_env(name, value)?,
            "WATCH_SOURCES" => {
                self.watch.sources = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
            "WATCH_STABLE_SECONDS" => self.watch.stable_seconds = parse_env(name, value)?,
            "WATCH_POLL_SECONDS" => self.watch.poll_seconds = parse_env(name, value)?,
            "WATCH_PROPAGATE_DELETES" => self.watch.propagate_deletes = parse_env(name, value)?,
            _ => return self.models.apply_env(name, value),
        }
        Ok(true)
    }

    pub fn validate(&self) -> Result<()> {
        if self.store_cache_mb == 0 {
            return Err(Error::invalid("store_cache_mb must be at least 1"));
        }
        if !(0..=19).contains(&self.background_nice) {
            return Err(Error::invalid(format!(
                "background_nice is a nice value, 0 (as searches) to 19 (lowest); got {}",
                self.background_nice
            )));
        }
        for name in self.tenants.keys() {
            crate::check_tenant(name)
                .map_err(|e| Error::invalid(format!("[tenants.{name}]: {e}")))?;
            if name == crate::DEFAULT_TENANT && !self.tenants[name].allowed_roots.is_empty() {
                return Err(Error::invalid(
                    "[tenants.default] allowed_roots: the default tenant's folders are the top-level allowed_roots",
                ));
            }
        }
        self.models.validate()?;
        self.search.validate()?;
        let h = &self.highlights;
        if !(h.max_age_days.is_finite() && h.max_age_days >= 0.0) {
            return Err(Error::invalid(format!(
                "highlights.max_age_days must be 0 (keep) or a positive number of days, got {}",
                h.max_age_days
            )));
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
        if !(1..=32).contains(&i.analysis_concurrency) {
            return Err(Error::invalid(format!(
                "ingest.analysis_concurrency must be between 1 and 32, got {}",
                i.analysis_concurrency
            )));
        }
        if !(16..=2160).contains(&i.thumbnail_height) {
            return Err(Error::invalid(
                "ingest.thumbnail_height must be in 16..=2160",
            ));
        }
        if !(1..=600).contains(&i.picture_every) || !(1..=600).contains(&i.text_every) {
            return Err(Error::invalid(
                "ingest.picture_every and ingest.text_every must be in 1..=600 (thumbnails \
                 per picture the scene tagger and the text reader look at)",
            ));
        }
        let w = &self.watch;
        if !(0.0..=3600.0).contains(&w.stable_seconds)
            || !(0.1..=86_400.0).contains(&w.poll_seconds)
        {
            return Err(Error::invalid(format!(
                "watch.stable_seconds must be within 0..3600 and watch.poll_seconds within 0.1..86400, got {} and {}",
                w.stable_seconds, w.poll_seconds
            )));
        }
        // Folders are checked against allowed_roots when watching starts (`watch`).
        for source in w.sources.iter().filter(|s| s.starts_with("s3://")) {
            reelforge_models::bedrock::staging::parse_s3_uri(source)
                .map_err(|e| Error::invalid(format!("watch.sources: {e}")))?;
        }
        Ok(())
    }
}
