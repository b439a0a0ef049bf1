//! What the matching strategies share (Points + clips matches a model's prioritised
//! highlight points against a video's clips, Template the highlight library's entries):
//! their options, the default thresholds by space, the units they match (with the cost
//! filters in front), and the clip video embeddings kept with the video.

use reelforge_core::error::{Error, Result};
use reelforge_models::analysis::Language;
use reelforge_models::VideoEmbedder;

use super::request::StrategyOptions;
use super::strategy::Defaults;
use super::units::{self, CostOptions, PrefilterLevels, Unit, UnitKind, UnitSource};
use crate::catalog::{Catalog, VideoMaterial};
use crate::store::EmbeddingKind;

/// Default similarity thresholds, by space: point text vs clip captions is the text
/// embedder's own (`TextEmbedder::match_threshold`); point text vs clip video (video
/// embedder), point text vs frames (image-text embedder, whose cosines run lower), and a
/// library entry's look vs a clip's (visual descriptors, which run high) are here.
pub const FRAME_THRESHOLD: f32 = 0.25;
pub const LOOK_THRESHOLD: f32 = 0.9;
/// Point text vs a clip's video embedding (`models.video_embedder`): cross-modal cosines
/// run lower than text-to-text ones.
pub const VIDEO_THRESHOLD: f32 = 0.3;
/// A library entry's clip video embedding vs a clip's (Template with
/// `models.video_embedder`): the same modality on both sides, so cosines run high; a
/// starting point that feedback tunes per category (`reelforge tune`).
pub const CLIP_VIDEO_THRESHOLD: f32 = 0.75;
/// Template looks weigh motion this much more than the stored descriptor does: a still
/// of a highlight's scene is not the highlight.
pub const MOTION_EMPHASIS: f32 = 4.0;
/// The coarse pass keeps this much around each region the analyser flagged.
pub const COARSE_PAD_MS: i64 = 5_000;

/// What a category's ratings tuned (`feedback::Feedback::tune`), applied as the defaults
/// of highlights in that category; a caller's own values still win.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tuning {
    pub thresholds: Vec<TunedThreshold>,
    pub prefilter: Option<PrefilterLevels>,
    pub tuned_unix_ms: i64,
    /// How many ratings it was tuned from.
    pub ratings: u32,
}

/// A similarity threshold tuned for one strategy matching one kind of unit.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TunedThreshold {
    pub strategy: String,
    pub unit: String,
    pub threshold: f32,
}

impl Tuning {
    pub fn threshold(&self, strategy: &str, unit: UnitKind) -> Option<f32> {
        self.thresholds
            .iter()
            .find(|t| t.strategy == strategy && t.unit == unit.name())
            .map(|t| t.threshold)
    }
}

/// A matching strategy's defaults.
pub struct MatchDefaults {
    /// The strategy's name (tuned thresholds are per strategy).
    pub strategy: &'static str,
    /// Whether the pre-filter is on when the caller does not say.
    pub prefilter: bool,
    /// The untuned threshold of a unit's space, given the models configured.
    pub threshold: fn(UnitKind, &Defaults) -> f32,
}

/// Options of the matching strategies, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchOptions {
    pub unit: UnitKind,
    pub threshold: f32,
    /// The pre-filter's levels (tuned for the category, or the defaults).
    pub levels: PrefilterLevels,
    /// The ratings category (Template: the library category too).
    pub category: Option<String>,
    /// Points + clips: the transcript's lines are points too.
    pub transcript_points: bool,
    /// Drop still, quiet clips before matching.
    pub prefilter: bool,
    /// Drop clips this similar to the previous kept one (0: off).
    pub dedup_similarity: f32,
    /// Match only around what the analyser's whole-video reading flagged.
    pub coarse: bool,
}

impl MatchOptions {
    /// Reads and checks the request's matching options, filling in the strategy's
    /// defaults (the category's tuned values first).
    pub fn read(
        o: &StrategyOptions,
        d: &MatchDefaults,
        defaults: &Defaults,
    ) -> Result<MatchOptions> {
        let tuning = defaults.tuning.as_ref();
        let unit = o.match_unit.unwrap_or(UnitKind::Clips);
        let category = match o.category.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(c) => Some(crate::library::check_category(c)?),
        };
        let tuned = tuning.and_then(|t| t.prefilter).unwrap_or_default();
        let levels = PrefilterLevels {
            still_motion: o.prefilter_motion.unwrap_or(tuned.still_motion),
            loudness_above_db: o.prefilter_loudness_db.unwrap_or(tuned.loudness_above_db),
        };
        let motion_ok = (0.0..=1.0).contains(&levels.still_motion);
        let loudness_ok = (0.0..=60.0).contains(&levels.loudness_above_db);
        if !motion_ok || !loudness_ok {
            return Err(Error::invalid(format!(
                "prefilter_motion must be within 0..1 and prefilter_loudness_db within 0..60 dB, got {} and {}",
                levels.still_motion, levels.loudness_above_db
            )));
        }
        let threshold_given = o.similarity_threshold;
        let dedup_similarity = o.dedup_similarity.unwrap_or(0.0);
        if threshold_given.is_some_and(|t| !t.is_finite()) || !dedup_similarity.is_finite() {
            return Err(Error::invalid(
                "similarity_threshold and dedup_similarity must be numbers",
            ));
        }
        if threshold_given.is_some_and(|t| !(-1.0..=1.0).contains(&t)) {
            return Err(Error::invalid(format!(
                "similarity_threshold must be within -1..1, got {}",
                threshold_given.unwrap_or_default()
            )));
        }
        if !(0.0..=1.0).contains(&dedup_similarity) {
            return Err(Error::invalid(format!(
                "dedup_similarity must be within 0..1 (0: off), got {dedup_similarity}"
            )));
        }
        Ok(MatchOptions {
            unit,
            threshold: threshold_given
                .or_else(|| tuning.and_then(|t| t.threshold(d.strategy, unit)))
                .unwrap_or_else(|| (d.threshold)(unit, defaults)),
            levels,
            category,
            transcript_points: o.transcript_points.unwrap_or(true),
            prefilter: o.prefilter.unwrap_or(d.prefilter),
            dedup_similarity,
            coarse: o.coarse.unwrap_or(false),
        })
    }

    /// The options as the caller is shown them.
    pub fn effective(&self) -> StrategyOptions {
        StrategyOptions {
            match_unit: Some(self.unit),
            similarity_threshold: Some(self.threshold),
            transcript_points: Some(self.transcript_points),
            prefilter: Some(self.prefilter),
            prefilter_motion: Some(self.levels.still_motion),
            prefilter_loudness_db: Some(self.levels.loudness_above_db),
            category: self.category.clone(),
            dedup_similarity: Some(self.dedup_similarity),
            coarse: Some(self.coarse),
            ..StrategyOptions::default()
        }
    }

    /// The cost filters these options ask for; `coarse_regions` from a whole-video reading.
    pub fn cost(&self, coarse_regions: Option<Vec<(i64, i64)>>) -> CostOptions {
        CostOptions {
            prefilter: self.prefilter,
            levels: self.levels,
            dedup_similarity: self.dedup_similarity,
            coarse_regions: if self.coarse { coarse_regions } else { None },
        }
    }
}

/// The clips (with their visual descriptors) or frames (with their image embeddings) of
/// a stored video, ready to filter and match; clips captioned in `language`.
pub async fn load_units(
    catalog: &Catalog,
    v: &VideoMaterial,
    kind: UnitKind,
    language: Language,
) -> Result<Vec<Unit>> {
    let id = &v.video.video_id;
    let looks: Vec<(i64, Option<Vec<f32>>)> = match kind {
        UnitKind::Clips => catalog
            .embeddings(id, EmbeddingKind::VisualDescriptor)
            .await?
            .into_iter()
            .map(|(owner, v)| (owner as i64, Some(v)))
            .collect(),
        UnitKind::Frames => {
            let frames = catalog.frames(id).await?;
            let looks: Vec<(i64, Option<Vec<f32>>)> = catalog
                .embeddings(id, EmbeddingKind::FrameImage)
                .await?
                .into_iter()
                .filter_map(|(owner, v)| frames.get(owner as usize).map(|f| (f.t_ms, Some(v))))
                .collect();
            if looks.is_empty() {
                return Err(Error::FailedPrecondition(format!(
                    "video {id} has no frame embeddings (it was ingested without models.image_embedder); ingest it again with one, or match clips"
                )));
            }
            looks
        }
    };
    Ok(units::build(
        kind,
        &UnitSource {
            video: &v.video,
            windows: &v.windows,
            cut_points_ms: &v.cut_points_ms,
            transcript: &v.transcript,
            sounds: &v.sounds,
            looks,
            language,
        },
    ))
}

/// The video embeddings of `clips` (see `Catalog::clip_video_vectors`).
pub async fn clip_video_vectors(
    catalog: &Catalog,
    v: &VideoMaterial,
    embedder: &dyn VideoEmbedder,
    clips: &[&Unit],
) -> Result<Vec<Vec<f32>>> {
    let spans: Vec<(u32, i64, i64)> = clips
        .iter()
        .map(|c| (c.index, c.start_ms, c.end_ms))
        .collect();
    catalog.clip_video_vectors(&v.video, embedder, &spans).await
}
