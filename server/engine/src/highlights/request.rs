//! A highlight request as the caller states it (`None`: the default) and the one place it
//! is checked and given its defaults: `HighlightRequest::validate` for what every
//! strategy shares (the reel's shape, rendering, music), and each strategy's own
//! `Strategy::options` for its options. The checked result, `HighlightPlan`, is what the
//! caller is shown as the effective request and what runs.

use std::path::PathBuf;

use reelforge_core::error::{Error, Result};
use reelforge_core::segments::Fit;
use reelforge_models::analysis::Language;

use super::export::TimelineFormat;
use super::music::MusicOptions;
use super::render::{RenderOptions, Subtitles};
use super::strategy::{self, Strategy};
use super::units::UnitKind;
use crate::ingest::paths::resolve_inside_roots;

/// The music's default gain under the original audio.
pub const DEFAULT_MUSIC_VOLUME: f32 = 0.3;

/// Options only some strategies read; each strategy checks and defaults its own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StrategyOptions {
    /// Sliced: slice length.
    pub slice_seconds: Option<f64>,
    /// Sliced: slices analysed at once.
    pub concurrency: Option<u32>,
    /// Script: what should happen, in order (the text as written, then its events).
    pub script: Option<String>,
    pub events: Vec<String>,
    /// Script: the videos to draw from (empty: the whole library).
    pub video_ids: Vec<String>,
    /// Points, Template: what is matched.
    pub match_unit: Option<UnitKind>,
    /// Points, Template: the similarity a clip needs.
    pub similarity_threshold: Option<f32>,
    /// Points: the transcript's lines are points too.
    pub transcript_points: Option<bool>,
    /// Points, Template: drop still, quiet clips before matching.
    pub prefilter: Option<bool>,
    /// Points, Template: the pre-filter's levels (motion energy; dB over the video's
    /// typical loudness).
    pub prefilter_motion: Option<f32>,
    pub prefilter_loudness_db: Option<f32>,
    /// Points, Template: drop clips this similar to the previous kept one (0: off).
    pub dedup_similarity: Option<f32>,
    /// Points, Template: match only around what a whole-video reading flagged.
    pub coarse: Option<bool>,
    /// Points, Template: the category whose tuned thresholds apply (ratings, `tune`);
    /// Template: also the library category (`None`: every entry).
    pub category: Option<String>,
    /// Direct, Sliced: read every slice afresh instead of reusing what ingest stored.
    pub fresh: Option<bool>,
}

/// A highlight request as the caller states it.
#[derive(Debug, Clone, Default)]
pub struct HighlightRequest {
    /// The video (every strategy but Script, which uses `options.video_ids`).
    pub video_id: String,
    /// A registered strategy's name (`strategy::names()`).
    pub strategy: String,
    pub options: StrategyOptions,
    /// Reel length to aim for (`None`: every chosen segment).
    pub target_seconds: Option<f64>,
    pub min_segment_seconds: Option<f64>,
    pub max_segment_seconds: Option<f64>,
    pub padding_seconds: Option<f64>,
    /// Best segments first instead of time order.
    pub order_by_score: bool,
    /// Render the reel (`None`: yes).
    pub render: Option<bool>,
    pub crossfade_seconds: Option<f64>,
    pub subtitles: Subtitles,
    /// A folder of tracks inside the server's allowed roots.
    pub music_dir: Option<String>,
    pub music_volume: Option<f32>,
    /// The timeline files to write (empty: every format).
    pub timeline_formats: Vec<TimelineFormat>,
    /// The language the analyser describes segments in, as a code ("en", "zh"); `None`:
    /// `highlights.language`.
    pub language: Option<String>,
}

/// A checked request with every default filled in.
#[derive(Clone)]
pub struct HighlightPlan {
    /// Whose videos it reads and whose highlight it is (`Highlights::plan` sets it).
    pub tenant: String,
    /// The API key asking (recorded on the highlight).
    pub key_id: Option<String>,
    pub video_id: String,
    pub strategy: &'static dyn Strategy,
    /// The strategy's effective options.
    pub options: StrategyOptions,
    pub fit: Fit,
    /// `None`: choose segments only, render nothing.
    pub render: Option<RenderOptions>,
    /// The timeline files written, each once, in `TimelineFormat::ALL`'s order.
    pub timelines: Vec<TimelineFormat>,
    /// The language segments are described in.
    pub language: Language,
}

impl std::fmt::Debug for HighlightPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HighlightPlan")
            .field("video_id", &self.video_id)
            .field("strategy", &self.strategy.name())
            .field("options", &self.options)
            .field("fit", &self.fit)
            .field("render", &self.render)
            .field("timelines", &self.timelines)
            .field("language", &self.language)
            .finish()
    }
}

/// The longest time any highlight option may give: ten days.
const MAX_SECONDS: f64 = 864_000.0;

/// Seconds as a caller gives them: finite, not negative, at most ten days (larger values
/// overflowed the reel's arithmetic: found by the hostile-clients test).
fn seconds(value: Option<f64>, field: &str) -> Result<Option<f64>> {
    match value {
        Some(s) if !s.is_finite() || !(0.0..=MAX_SECONDS).contains(&s) => {
            Err(Error::invalid(format!(
                "{field} must be a number of seconds from 0 to {MAX_SECONDS} (ten days), got {s}"
            )))
        }
        other => Ok(other),
    }
}

fn ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

impl HighlightRequest {
    /// Checks the request and fills in its defaults. `roots`: where server-side folders
    /// (music) may be read; `context` tells strategies which models are configured.
    pub fn validate(
        &self,
        roots: &[PathBuf],
        context: &strategy::Defaults,
    ) -> Result<HighlightPlan> {
        let name = self.strategy.as_str();
        let strategy = strategy::find(name).ok_or_else(|| {
            Error::invalid(format!(
                "strategy {name:?} is not a highlight strategy (one of {})",
                strategy::names().join(", ")
            ))
        })?;
        let options = strategy.options(&self.options, context)?;
        let defaults = Fit::default();
        let target = seconds(self.target_seconds, "target_seconds")?.filter(|t| *t > 0.0);
        let min = seconds(self.min_segment_seconds, "min_segment_seconds")?
            .map_or(defaults.min_segment_ms, ms);
        let max = seconds(self.max_segment_seconds, "max_segment_seconds")?
            .map_or(defaults.max_segment_ms, ms);
        let padding =
            seconds(self.padding_seconds, "padding_seconds")?.map_or(defaults.padding_ms, ms);
        let fit = Fit {
            target_ms: target.map(ms),
            min_segment_ms: min,
            max_segment_ms: max,
            padding_ms: padding,
            time_order: !self.order_by_score,
        };
        let secs = |ms: i64| ms as f64 / 1000.0;
        if fit.min_segment_ms <= 0 || fit.max_segment_ms < fit.min_segment_ms {
            return Err(Error::invalid(format!(
                "segment lengths must satisfy 0 < min_segment_seconds <= max_segment_seconds, got {:.1} and {:.1}",
                secs(fit.min_segment_ms),
                secs(fit.max_segment_ms)
            )));
        }
        let volume = self.music_volume.unwrap_or(DEFAULT_MUSIC_VOLUME);
        if !volume.is_finite() || !(0.0..=1.0).contains(&volume) {
            return Err(Error::invalid(format!(
                "music_volume must be within 0..1 (unset: the default {DEFAULT_MUSIC_VOLUME}), got {volume}"
            )));
        }
        let music = match self.music_dir.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(dir) => Some(MusicOptions {
                dir: resolve_inside_roots(roots, dir).map_err(|e| match e {
                    Error::NotFound(m) => Error::invalid(format!("music_dir: {m}")),
                    other => other,
                })?,
                volume,
            }),
        };
        if music.is_some() && self.render == Some(false) {
            return Err(Error::invalid(
                "music_dir is for rendered reels; drop it or render the reel",
            ));
        }
        let crossfade = match self.crossfade_seconds {
            Some(c) if !c.is_finite() || c < 0.0 => {
                return Err(Error::invalid(
                    "crossfade_seconds must be a non-negative number",
                ))
            }
            c => c.map_or(0, ms),
        };
        let render = self.render.unwrap_or(true).then_some(RenderOptions {
            crossfade_ms: crossfade,
            subtitles: self.subtitles,
            music,
        });
        if let Some(r) = &render {
            if r.crossfade_ms * 2 > fit.min_segment_ms {
                return Err(Error::invalid(format!(
                    "crossfade_seconds must be between 0 and half of min_segment_seconds ({:.1} s)",
                    secs(fit.min_segment_ms) / 2.0
                )));
            }
        }
        let mut timelines = if self.timeline_formats.is_empty() {
            TimelineFormat::ALL.to_vec()
        } else {
            self.timeline_formats.clone()
        };
        timelines.sort();
        timelines.dedup();
        let language = match self.language.as_deref().map(str::trim) {
            Some(code) if !code.is_empty() => Language::parse(code, "language")?,
            _ => context.language,
        };
        Ok(HighlightPlan {
            tenant: crate::DEFAULT_TENANT.to_string(),
            key_id: None,
            video_id: self.video_id.clone(),
            strategy,
            options,
            fit,
            render,
            timelines,
            language,
        })
    }
}

impl HighlightPlan {
    /// Checks what depends on the video: the target fits in it.
    pub fn check_duration(&self, duration_ms: i64) -> Result<()> {
        if let Some(t) = self.fit.target_ms {
            if t > duration_ms {
                return Err(Error::invalid(format!(
                    "target_seconds must be above 0 and at most the video's duration ({:.1} s), got {:.1}",
                    duration_ms as f64 / 1000.0,
                    t as f64 / 1000.0
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_finite_non_negative_and_at_most_ten_days() {
        assert_eq!(seconds(Some(60.0), "t").unwrap(), Some(60.0));
        assert_eq!(seconds(None, "t").unwrap(), None);
        // Regression (hostile clients): f64::MAX seconds overflowed the reel arithmetic.
        for bad in [f64::MAX, 864_001.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = seconds(Some(bad), "target_seconds")
                .unwrap_err()
                .to_string();
            assert!(err.contains("target_seconds"), "{bad}: {err}");
        }
    }
}
