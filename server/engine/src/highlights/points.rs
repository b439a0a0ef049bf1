//! Points + clips: a model writes prioritised highlight points (what to look for, not
//! where), each point's text is matched against the video's clips (or 1 fps frames) in a
//! shared embedding space, clips above a similarity threshold are kept, a clip claimed by
//! several points goes to the higher-priority point, and adjacent clips of one point merge
//! into a segment.
//!
//! Offline, the analyser plays the model: its points are its scored signal segments (the
//! whole-video reading) and the transcript's lines; the shared space is the text
//! embedder's, with each clip captioned from its own signals and speech
//! (`analysis::caption_clip`), or the image-text embedder's for frames.

use super::segments::Segment;
use super::units::{Filtered, Unit, UnitKind};
use reelforge_models::TranscriptSegment;

/// Transcript lines the speech model was unsure were speech at all are not points.
const MAX_NO_SPEECH_PROB: f32 = 0.5;

/// One highlight point.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Point {
    pub index: u32,
    /// 1 (must have) .. 3 (nice to have).
    pub priority: u8,
    pub description: String,
    /// The model (or analyser) that wrote the point.
    pub model: String,
    /// "analyser" or "transcript".
    pub source: String,
    /// Where the writer placed it, when it did; matching does not use it.
    pub start_ms: i64,
    pub end_ms: i64,
}

/// The points of one video: the analyser's segments, then (when asked) what is said.
pub fn points_from(
    analysed: &[Segment],
    transcript: &[TranscriptSegment],
    transcriber: &str,
    with_transcript: bool,
) -> Vec<Point> {
    let mut points: Vec<Point> = analysed
        .iter()
        .map(|s| Point {
            index: 0,
            priority: s.priority,
            description: s.description.clone(),
            model: s.model.clone(),
            source: "analyser".into(),
            start_ms: s.start_ms,
            end_ms: s.end_ms,
        })
        .collect();
    if with_transcript {
        points.extend(
            transcript
                .iter()
                .filter(|t| !t.text.trim().is_empty() && t.no_speech_prob <= MAX_NO_SPEECH_PROB)
                .map(|t| Point {
                    index: 0,
                    priority: 3,
                    description: t.text.trim().to_string(),
                    model: transcriber.to_string(),
                    source: "transcript".into(),
                    start_ms: t.start_ms,
                    end_ms: t.end_ms,
                }),
        );
    }
    for (i, p) in points.iter_mut().enumerate() {
        p.index = i as u32;
    }
    points
}

/// How one point fared.
#[derive(Debug, Clone, PartialEq)]
pub struct PointMatch {
    pub point: Point,
    /// Units at or above the threshold for this point, before resolution.
    pub units_above: u32,
    pub best_similarity: f32,
    /// The segments the point kept after resolution.
    pub segments: Vec<Segment>,
}

/// What each point scored against the units left after the cost filters.
pub struct Scores<'a> {
    pub filtered: &'a Filtered,
    /// `similarity[p][k]`: point `p` against the `k`-th kept unit (`filtered.kept[k]`).
    pub similarity: &'a [Vec<f32>],
    pub threshold: f32,
    /// The model whose space the similarities are in.
    pub matcher: &'a str,
}

/// Resolves claims and merges each point's adjacent units into segments. Near-duplicates
/// share the match of the unit they repeat.
pub fn resolve(
    video_id: &str,
    points: &[Point],
    units: &[Unit],
    kind: UnitKind,
    scores: &Scores<'_>,
) -> (Vec<Segment>, Vec<PointMatch>) {
    let Scores {
        filtered,
        similarity,
        threshold,
        matcher,
    } = *scores;
    // The winning (point, similarity) of each unit.
    let mut owner: Vec<Option<(usize, f32)>> = vec![None; units.len()];
    let mut above = vec![0u32; points.len()];
    let mut best = vec![f32::MIN; points.len()];
    for (k, &u) in filtered.kept.iter().enumerate() {
        for (p, sims) in similarity.iter().enumerate() {
            let s = sims[k];
            best[p] = best[p].max(s);
            if s < threshold {
                continue;
            }
            above[p] += 1;
            let wins = match owner[u] {
                None => true,
                Some((q, t)) => (points[p].priority, -s) < (points[q].priority, -t),
            };
            if wins {
                owner[u] = Some((p, s));
            }
        }
    }
    for &(dup, kept) in &filtered.duplicates {
        owner[dup] = owner[kept];
    }
    // Runs of adjacent units with one owner.
    let mut runs: Vec<(usize, usize, usize, f32, f32)> = Vec::new(); // point, first, last, sum, max
    for (u, o) in owner.iter().enumerate() {
        let Some((p, s)) = *o else { continue };
        match runs.last_mut() {
            Some(r) if r.0 == p && r.2 + 1 == u && units[r.2].end_ms >= units[u].start_ms => {
                r.2 = u;
                r.3 += s;
                r.4 = r.4.max(s);
            }
            _ => runs.push((p, u, u, s, s)),
        }
    }
    let mut per_point: Vec<Vec<Segment>> = vec![Vec::new(); points.len()];
    let mut all = Vec::new();
    for (p, first, last, sum, max) in runs {
        let point = &points[p];
        let n = last - first + 1;
        let segment = Segment {
            video_id: video_id.to_string(),
            start_ms: units[first].start_ms,
            end_ms: units[last].end_ms,
            score: (sum / n as f32).clamp(0.0, 1.0),
            priority: point.priority,
            description: point.description.clone(),
            reason: format!(
                "point {} ({}, priority {}): {n} {} at similarity {:.2} or more, best {max:.2}",
                point.index + 1,
                point.source,
                point.priority,
                kind.name(),
                threshold
            ),
            model: format!("{} point, {matcher} match", point.model),
            similarity: Some(max),
        };
        per_point[p].push(segment.clone());
        all.push(segment);
    }
    let matches = points
        .iter()
        .zip(per_point)
        .enumerate()
        .map(|(p, (point, segments))| PointMatch {
            point: point.clone(),
            units_above: above[p],
            best_similarity: if best[p] == f32::MIN { 0.0 } else { best[p] },
            segments,
        })
        .collect();
    (all, matches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::highlights::units::Funnel;

    fn point(i: u32, priority: u8) -> Point {
        Point {
            index: i,
            priority,
            description: format!("point {i}"),
            model: "m".into(),
            source: "analyser".into(),
            start_ms: 0,
            end_ms: 0,
        }
    }

    fn units(n: u32) -> Vec<Unit> {
        (0..n)
            .map(|i| Unit {
                index: i,
                start_ms: i as i64 * 2000,
                end_ms: (i as i64 + 1) * 2000,
                caption: String::new(),
                look: None,
                max_motion: 0.0,
                max_loudness_db: 0.0,
            })
            .collect()
    }

    #[test]
    fn adjacent_clips_merge_and_a_shared_clip_goes_to_the_higher_priority_point() {
        let units = units(8);
        let filtered = Filtered {
            kept: vec![0, 1, 2, 3, 5, 6, 7],
            // Clip 4 repeats clip 3.
            duplicates: vec![(4, 3)],
            funnel: Funnel::default(),
        };
        let points = [point(0, 2), point(1, 1)];
        // Point 0 (priority 2) matches clips 1-3 (and 4 through its duplicate); point 1
        // (priority 1) matches clips 3 and 7 and wins clip 3 though it is less similar.
        let sims = vec![
            vec![0.1, 0.9, 0.8, 0.95, 0.2, 0.1, 0.1],
            vec![0.1, 0.1, 0.1, 0.7, 0.1, 0.1, 0.75],
        ];
        let scores = Scores {
            filtered: &filtered,
            similarity: &sims,
            threshold: 0.6,
            matcher: "t",
        };
        let (segments, matches) = resolve("v", &points, &units, UnitKind::Clips, &scores);
        let spans: Vec<(i64, i64, u8)> = segments
            .iter()
            .map(|s| (s.start_ms, s.end_ms, s.priority))
            .collect();
        assert_eq!(
            spans,
            vec![(2000, 6000, 2), (6000, 10_000, 1), (14_000, 16_000, 1)]
        );
        assert_eq!(matches[0].units_above, 3);
        assert_eq!(matches[1].units_above, 2);
        assert!((matches[0].best_similarity - 0.95).abs() < 1e-6);
        assert!((segments[0].score - 0.85).abs() < 1e-6);
        assert!(segments[1]
            .reason
            .starts_with("point 2 (analyser, priority 1): 2 clips"));
    }

    #[test]
    fn equal_priorities_go_to_the_more_similar_point_and_nothing_below_threshold_counts() {
        let units = units(2);
        let filtered = Filtered {
            kept: vec![0, 1],
            duplicates: vec![],
            funnel: Funnel::default(),
        };
        let points = [point(0, 1), point(1, 1)];
        let sims = vec![vec![0.7, 0.3], vec![0.8, 0.4]];
        let scores = Scores {
            filtered: &filtered,
            similarity: &sims,
            threshold: 0.5,
            matcher: "t",
        };
        let (segments, matches) = resolve("v", &points, &units, UnitKind::Frames, &scores);
        assert_eq!(segments.len(), 1);
        assert_eq!(segments[0].description, "point 1");
        assert!(matches[0].segments.is_empty());
    }

    #[test]
    fn transcript_lines_become_low_priority_points_unless_unsure() {
        let analysed = vec![Segment {
            video_id: "v".into(),
            start_ms: 0,
            end_ms: 1000,
            score: 0.8,
            priority: 1,
            description: "Loud audio".into(),
            reason: String::new(),
            model: "signal".into(),
            similarity: None,
        }];
        let line = |text: &str, p: f32| TranscriptSegment {
            start_ms: 0,
            end_ms: 1000,
            text: text.into(),
            avg_logprob: -0.2,
            no_speech_prob: p,
            language: "en".into(),
        };
        let t = [line(" what a goal ", 0.1), line("hmm", 0.9), line(" ", 0.0)];
        let points = points_from(&analysed, &t, "whisper", true);
        assert_eq!(points.len(), 2);
        assert_eq!(points[1].description, "what a goal");
        assert_eq!((points[1].priority, points[1].index), (3, 1));
        assert_eq!(points[1].source, "transcript");
        assert_eq!(points_from(&analysed, &t, "whisper", false).len(), 1);
    }
}
