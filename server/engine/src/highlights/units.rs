//! The units that highlight points and library templates are matched against: the
//! video's 2-3 s clip grid (stored at ingest with a visual descriptor each) or its 1 fps
//! thumbnails (with an image-text embedding each), and the cost filters the design puts
//! in front of matching: a loudness/motion pre-filter, near-duplicate dropping and a
//! coarse pass that limits matching to regions a cheaper reading flagged.

use crate::store::VideoRecord;
use reelforge_core::vector::cosine;
use reelforge_models::analysis::{caption_clip, Baseline, Language, SignalWindow};
use reelforge_models::sound::SoundEvent;
use reelforge_models::TranscriptSegment;

/// A clip whose loudest window is no louder than the video's typical level plus this, and
/// whose picture stays still, is dropped by the pre-filter (the default; feedback can tune
/// it per category).
pub const PREFILTER_LOUDNESS_DB: f32 = 3.0;
/// Motion energy below which a picture counts as still (the default, tunable likewise).
pub const STILL_MOTION: f32 = 0.005;

/// The pre-filter's levels: a unit is kept when it moves at least `still_motion` or is
/// louder than the video's typical level by more than `loudness_above_db`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PrefilterLevels {
    pub still_motion: f32,
    pub loudness_above_db: f32,
}

impl Default for PrefilterLevels {
    fn default() -> Self {
        PrefilterLevels {
            still_motion: STILL_MOTION,
            loudness_above_db: PREFILTER_LOUDNESS_DB,
        }
    }
}

impl PrefilterLevels {
    /// Whether a stretch with these peaks passes (`loudness_above_db`: its loudest window
    /// over the video's typical level).
    pub fn passes(&self, max_motion: f32, loudness_above_db: f32) -> bool {
        max_motion >= self.still_motion || loudness_above_db > self.loudness_above_db
    }
}

/// A stretch of a video as the pre-filter sees it: its peak motion, and its loudest
/// window over the video's typical level (`windows`: the whole video's).
pub fn peaks(windows: &[SignalWindow], start_ms: i64, end_ms: i64) -> (f32, f32) {
    let level = typical_level(windows);
    let a = windows.partition_point(|w| w.start_ms < start_ms);
    let b = windows.partition_point(|w| w.start_ms < end_ms);
    let inside = &windows[a..b.max(a)];
    let motion = inside.iter().map(|w| w.motion).fold(0.0, f32::max);
    let loudest = inside
        .iter()
        .map(|w| w.loudness_db)
        .fold(reelforge_media::signals::SILENCE_DB, f32::max);
    (motion, loudest - level.loudness_db)
}

/// What matching runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    /// The clip grid of the video record (`clip_ms`, 2-3 s).
    Clips,
    /// The thumbnails (1 fps by default), each covering the time until the next.
    Frames,
}

impl UnitKind {
    pub fn name(self) -> &'static str {
        match self {
            UnitKind::Clips => "clips",
            UnitKind::Frames => "frames",
        }
    }
}

/// One clip or frame of a video.
#[derive(Debug, Clone)]
pub struct Unit {
    /// Position in the video's clip grid or thumbnail order.
    pub index: u32,
    pub start_ms: i64,
    pub end_ms: i64,
    /// What the clip shows and says, in the analyser's words (see `caption_clip`).
    pub caption: String,
    /// The clip's look: its visual descriptor (clips) or image embedding (frames).
    pub look: Option<Vec<f32>>,
    pub max_motion: f32,
    pub max_loudness_db: f32,
}

/// The video's typical levels: the median of its windows.
pub fn typical_level(windows: &[SignalWindow]) -> Baseline {
    let median = |f: fn(&SignalWindow) -> f32| {
        let mut v: Vec<f32> = windows.iter().map(f).collect();
        if v.is_empty() {
            return 0.0;
        }
        v.sort_by(f32::total_cmp);
        v[v.len() / 2]
    };
    Baseline {
        loudness_db: median(|w| w.loudness_db),
        motion: median(|w| w.motion),
        windows: windows.len() as u32,
    }
}

/// The stored material one video's units are built from.
pub struct UnitSource<'a> {
    pub video: &'a VideoRecord,
    pub windows: &'a [SignalWindow],
    pub cut_points_ms: &'a [i64],
    pub transcript: &'a [TranscriptSegment],
    /// What the sound tagger heard, in time order.
    pub sounds: &'a [SoundEvent],
    /// Clips: (clip index, visual descriptor). Frames: (thumbnail time, image embedding).
    pub looks: Vec<(i64, Option<Vec<f32>>)>,
    /// The language captions are written in.
    pub language: Language,
}

/// The units of `kind` covering the video, in time order. Clips come from the clip grid
/// (`looks` by clip index, missing ones `None`); frames from the thumbnails with an
/// image embedding (`looks` as (time, vector)).
pub fn build(kind: UnitKind, src: &UnitSource<'_>) -> Vec<Unit> {
    let duration = src.video.probe.duration_ms;
    let spans: Vec<(i64, i64, Option<Vec<f32>>)> = match kind {
        UnitKind::Clips => {
            let clip_ms = src.video.clip_ms.max(1);
            let count = (duration + clip_ms - 1) / clip_ms;
            let mut looks: Vec<Option<Vec<f32>>> = vec![None; count.max(0) as usize];
            for (owner, v) in &src.looks {
                if let Some(slot) = looks.get_mut(*owner as usize) {
                    *slot = v.clone();
                }
            }
            looks
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    let s = i as i64 * clip_ms;
                    (s, (s + clip_ms).min(duration), v)
                })
                .collect()
        }
        UnitKind::Frames => {
            let times: Vec<i64> = src.looks.iter().map(|(t, _)| *t).collect();
            src.looks
                .iter()
                .enumerate()
                .map(|(i, (t, v))| {
                    let end = times.get(i + 1).copied().unwrap_or(duration).min(duration);
                    (*t, end.max(*t + 1), v.clone())
                })
                .collect()
        }
    };
    let level = typical_level(src.windows);
    spans
        .into_iter()
        .enumerate()
        .map(|(i, (start_ms, end_ms, look))| {
            let a = src.windows.partition_point(|w| w.start_ms < start_ms);
            let b = src.windows.partition_point(|w| w.start_ms < end_ms);
            let windows = &src.windows[a..b];
            let cuts = src
                .cut_points_ms
                .iter()
                .filter(|&&c| c >= start_ms && c < end_ms)
                .count();
            let speech: Vec<&str> = src
                .transcript
                .iter()
                .filter(|t| t.start_ms < end_ms && t.end_ms > start_ms)
                .map(|t| t.text.trim())
                .collect();
            let heard: Vec<&SoundEvent> = src
                .sounds
                .iter()
                .filter(|e| e.start_ms < end_ms && e.end_ms > start_ms)
                .collect();
            Unit {
                index: i as u32,
                start_ms,
                end_ms,
                caption: caption_clip(
                    (start_ms, windows),
                    cuts,
                    &level,
                    &heard,
                    &speech.join(" "),
                    src.language,
                ),
                look,
                max_motion: windows.iter().map(|w| w.motion).fold(0.0, f32::max),
                max_loudness_db: windows
                    .iter()
                    .map(|w| w.loudness_db)
                    .fold(reelforge_media::signals::SILENCE_DB, f32::max),
            }
        })
        .collect()
}

/// Which cost filters run before matching.
#[derive(Debug, Clone, PartialEq)]
pub struct CostOptions {
    /// Drop clips that are still and no louder than the video's typical level.
    pub prefilter: bool,
    /// What "still" and "no louder" mean.
    pub levels: PrefilterLevels,
    /// Drop a clip whose look is at least this similar to the last kept clip's
    /// (frame difference); 0 turns it off.
    pub dedup_similarity: f32,
    /// Match only inside these regions (from a coarse pass), when set.
    pub coarse_regions: Option<Vec<(i64, i64)>>,
}

impl Default for CostOptions {
    fn default() -> Self {
        CostOptions {
            prefilter: false,
            levels: PrefilterLevels::default(),
            dedup_similarity: 0.0,
            coarse_regions: None,
        }
    }
}

/// How many units each filter left, for the caller to see what matching cost.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Funnel {
    pub unit: String,
    pub total: u32,
    pub after_prefilter: u32,
    pub after_dedup: u32,
    pub after_coarse: u32,
}

/// The units to match, and for each dropped near-duplicate the kept unit it repeats
/// (`(dropped, kept)` positions in `units`), so it can share that unit's match.
pub struct Filtered {
    pub kept: Vec<usize>,
    pub duplicates: Vec<(usize, usize)>,
    pub funnel: Funnel,
}

/// Runs the cost filters over `units` (time order).
pub fn filter(
    kind: UnitKind,
    units: &[Unit],
    windows: &[SignalWindow],
    o: &CostOptions,
) -> Filtered {
    let level = typical_level(windows);
    let mut funnel = Funnel {
        unit: kind.name().to_string(),
        total: units.len() as u32,
        ..Funnel::default()
    };
    let passes: Vec<usize> = (0..units.len())
        .filter(|&i| {
            let u = &units[i];
            !o.prefilter
                || o.levels
                    .passes(u.max_motion, u.max_loudness_db - level.loudness_db)
        })
        .collect();
    funnel.after_prefilter = passes.len() as u32;
    let mut kept: Vec<usize> = Vec::with_capacity(passes.len());
    let mut duplicates = Vec::new();
    // End of the previous clip that passed: a near-duplicate must follow on directly.
    let mut previous_end = i64::MIN;
    for i in passes {
        let last = kept.last().copied();
        let follows = previous_end >= units[i].start_ms;
        previous_end = units[i].end_ms;
        let repeats = match (last, o.dedup_similarity > 0.0) {
            (Some(k), true) if follows => match (&units[k].look, &units[i].look) {
                (Some(a), Some(b)) => cosine(a, b) >= o.dedup_similarity,
                _ => false,
            },
            _ => false,
        };
        if repeats {
            duplicates.push((i, last.expect("checked")));
        } else {
            kept.push(i);
        }
    }
    funnel.after_dedup = kept.len() as u32;
    if let Some(regions) = &o.coarse_regions {
        let inside = |u: &Unit| regions.iter().any(|&(s, e)| u.start_ms < e && u.end_ms > s);
        kept.retain(|&i| inside(&units[i]));
        duplicates.retain(|&(d, _)| inside(&units[d]));
    }
    funnel.after_coarse = kept.len() as u32;
    Filtered {
        kept,
        duplicates,
        funnel,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(i: u32, motion: f32, loud: f32, look: [f32; 2]) -> Unit {
        Unit {
            index: i,
            start_ms: i as i64 * 2000,
            end_ms: (i as i64 + 1) * 2000,
            caption: String::new(),
            look: Some(look.to_vec()),
            max_motion: motion,
            max_loudness_db: loud,
        }
    }

    fn windows() -> Vec<SignalWindow> {
        (0..40)
            .map(|i| SignalWindow {
                start_ms: i * 500,
                loudness_db: -40.0,
                motion: 0.0,
                scene_cut: false,
            })
            .collect()
    }

    #[test]
    fn prefilter_drops_still_quiet_clips_and_keeps_loud_or_moving_ones() {
        let units = vec![
            unit(0, 0.0, -40.0, [1.0, 0.0]),
            unit(1, 0.02, -40.0, [0.0, 1.0]),
            unit(2, 0.0, -20.0, [1.0, 0.0]),
        ];
        let o = CostOptions {
            prefilter: true,
            ..CostOptions::default()
        };
        let f = filter(UnitKind::Clips, &units, &windows(), &o);
        assert_eq!(f.kept, vec![1, 2]);
        assert_eq!((f.funnel.total, f.funnel.after_prefilter), (3, 2));
    }

    #[test]
    fn near_duplicates_of_the_previous_kept_clip_are_dropped_and_point_to_it() {
        let units = vec![
            unit(0, 0.0, -40.0, [1.0, 0.0]),
            unit(1, 0.0, -40.0, [0.999, 0.01]),
            unit(2, 0.0, -40.0, [0.998, 0.02]),
            unit(3, 0.0, -40.0, [0.0, 1.0]),
        ];
        let o = CostOptions {
            dedup_similarity: 0.99,
            ..CostOptions::default()
        };
        let f = filter(UnitKind::Clips, &units, &windows(), &o);
        assert_eq!(f.kept, vec![0, 3]);
        assert_eq!(f.duplicates, vec![(1, 0), (2, 0)]);
        assert_eq!(f.funnel.after_dedup, 2);
    }

    #[test]
    fn the_coarse_pass_keeps_only_clips_touching_its_regions() {
        let units: Vec<Unit> = (0..5).map(|i| unit(i, 0.1, -20.0, [1.0, 0.0])).collect();
        let o = CostOptions {
            coarse_regions: Some(vec![(3_000, 5_000)]),
            ..CostOptions::default()
        };
        let f = filter(UnitKind::Clips, &units, &windows(), &o);
        assert_eq!(f.kept, vec![1, 2]);
        assert_eq!(f.funnel.after_coarse, 2);
    }
}
