//! Highlight segments and what happens to them after they are proposed: merging the
//! redundant candidates that slicing produces, resolving overlaps by priority, and
//! fitting a target length.

use serde::{Deserialize, Serialize};

/// A stretch of one video proposed as a highlight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub video_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// 0..1, higher is better.
    pub score: f32,
    /// 1 (must have) .. 3 (nice to have); 2 when the producer does not say.
    pub priority: u8,
    pub description: String,
    /// Why it was chosen (signals, a matched point, a script event...).
    pub reason: String,
    /// The model or analyser that produced it.
    pub model: String,
    /// Points, Template: the best similarity of its units to what they matched (what the
    /// similarity threshold is compared with; feedback tunes the threshold from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
}

impl Segment {
    pub fn duration_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }

    /// Whether `self` ranks above `other`: lower priority number first, then score.
    fn outranks(&self, other: &Segment) -> bool {
        (self.priority, std::cmp::Reverse(ordered(self.score)))
            < (other.priority, std::cmp::Reverse(ordered(other.score)))
    }
}

/// Higher priority, then higher score, then earlier first.
fn best_first(a: &Segment, b: &Segment) -> std::cmp::Ordering {
    if a.outranks(b) {
        std::cmp::Ordering::Less
    } else if b.outranks(a) {
        std::cmp::Ordering::Greater
    } else {
        a.start_ms.cmp(&b.start_ms)
    }
}

fn ordered(score: f32) -> i64 {
    (score.clamp(-1e6, 1e6) * 1e6) as i64
}

/// The priority a score stands for: 1 (must have) from 0.75, 2 from 0.55, else 3.
pub fn priority_of_score(score: f32) -> u8 {
    if score >= 0.75 {
        1
    } else if score >= 0.55 {
        2
    } else {
        3
    }
}

/// Merges candidates of one video that overlap or lie within `gap_ms` of each other
/// (slicing proposes the same moment twice, or cuts one in two; points claim pieces of one
/// action): the merged segment spans both, keeps the better one's description, score and
/// priority, and the higher similarity (it matches as well as its best piece, so a
/// threshold keeps it exactly when it keeps one of its pieces).
pub fn merge_close(segments: Vec<Segment>, gap_ms: i64) -> Vec<Segment> {
    merge_within(segments, gap_ms, i64::MAX)
}

/// [`merge_close`], joining two only while the joined segment is at most `max_ms` long.
fn merge_within(mut segments: Vec<Segment>, gap_ms: i64, max_ms: i64) -> Vec<Segment> {
    segments.sort_by(|a, b| {
        (a.video_id.as_str(), a.start_ms, a.end_ms).cmp(&(
            b.video_id.as_str(),
            b.start_ms,
            b.end_ms,
        ))
    });
    let mut out: Vec<Segment> = Vec::with_capacity(segments.len());
    for s in segments {
        if let Some(last) = out.last_mut() {
            if last.video_id == s.video_id
                && s.start_ms <= last.end_ms + gap_ms
                && s.end_ms.max(last.end_ms) - last.start_ms <= max_ms
            {
                let end = last.end_ms.max(s.end_ms);
                let start = last.start_ms;
                let similarity = match (last.similarity, s.similarity) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                if s.outranks(last) {
                    *last = s;
                }
                last.start_ms = start;
                last.end_ms = end;
                last.similarity = similarity;
                continue;
            }
        }
        out.push(s);
    }
    out
}

/// Resolves overlaps in favour of the higher-priority (then higher-score) segment: a
/// lower-ranked segment loses the overlapped part, and is dropped when less than
/// `min_ms` of it is left (or when the overlap is in its middle and both sides are short).
pub fn resolve_by_priority(segments: Vec<Segment>, min_ms: i64) -> Vec<Segment> {
    let mut ranked = segments;
    ranked.sort_by(best_first);
    let mut kept: Vec<Segment> = Vec::new();
    for s in ranked {
        // What is left of `s` once every kept segment of its video is taken out.
        let mut pieces = vec![(s.start_ms, s.end_ms)];
        for k in kept.iter().filter(|k| k.video_id == s.video_id) {
            pieces = pieces
                .into_iter()
                .flat_map(|(a, b)| {
                    if k.end_ms <= a || k.start_ms >= b {
                        vec![(a, b)]
                    } else {
                        [(a, k.start_ms), (k.end_ms, b)]
                            .into_iter()
                            .filter(|(x, y)| y > x)
                            .collect()
                    }
                })
                .collect();
        }
        if let Some(&(a, b)) = pieces
            .iter()
            .filter(|(a, b)| b - a >= min_ms)
            .max_by_key(|(a, b)| b - a)
        {
            kept.push(Segment {
                start_ms: a,
                end_ms: b,
                ..s
            });
        }
    }
    kept
}

/// How to fit the chosen segments into a reel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// Total reel length to aim for; `None`: everything chosen.
    pub target_ms: Option<i64>,
    pub min_segment_ms: i64,
    pub max_segment_ms: i64,
    /// Added before and after each segment (within the video).
    pub padding_ms: i64,
    /// Output in time order (else best first).
    pub time_order: bool,
}

impl Default for Fit {
    fn default() -> Self {
        Fit {
            target_ms: None,
            min_segment_ms: 1_000,
            max_segment_ms: 20_000,
            padding_ms: 0,
            time_order: true,
        }
    }
}

/// Pads, trims to the length limits (keeping the middle of a long segment), drops the
/// too short, joins touching pieces of one action, then takes the best segments until the
/// target length is filled, and puts them in the order asked. `duration_ms(video)` bounds
/// padding.
pub fn fit(segments: Vec<Segment>, fit: &Fit, duration_ms: &dyn Fn(&str) -> i64) -> Vec<Segment> {
    let mut shaped: Vec<Segment> = segments
        .into_iter()
        .filter_map(|s| {
            let d = duration_ms(&s.video_id);
            shape_one(s, fit, d)
        })
        .collect();
    // Padding can make neighbours overlap again.
    shaped = resolve_by_priority(shaped, fit.min_segment_ms);
    // Segments that touch (or overlap) are one stretch of the video, whichever candidate
    // (point, slice) claimed each piece: the reel plays it once, as one segment, while it
    // stays within the maximum length.
    shaped = merge_within(shaped, 0, fit.max_segment_ms);
    shaped.sort_by(best_first);
    if let Some(target) = fit.target_ms {
        let mut total = 0;
        let mut chosen = Vec::new();
        for mut s in shaped {
            if total >= target {
                break;
            }
            let room = target - total;
            if s.duration_ms() > room {
                if room < fit.min_segment_ms {
                    continue;
                }
                s.end_ms = s.start_ms + room;
            }
            total += s.duration_ms();
            chosen.push(s);
        }
        shaped = chosen;
    }
    if fit.time_order {
        shaped.sort_by(|a, b| {
            (a.video_id.as_str(), a.start_ms).cmp(&(b.video_id.as_str(), b.start_ms))
        });
    }
    shaped
}

/// One segment padded (within `[0, duration_ms]`), cut to the maximum length around its
/// middle; `None` when shorter than the minimum.
pub fn shape_one(mut s: Segment, fit: &Fit, duration_ms: i64) -> Option<Segment> {
    s.start_ms = (s.start_ms - fit.padding_ms).max(0);
    s.end_ms = (s.end_ms + fit.padding_ms).min(duration_ms);
    if s.duration_ms() > fit.max_segment_ms {
        let cut = s.duration_ms() - fit.max_segment_ms;
        s.start_ms += cut / 2;
        s.end_ms = s.start_ms + fit.max_segment_ms;
    }
    (s.duration_ms() >= fit.min_segment_ms).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start_ms: i64, end_ms: i64, score: f32, priority: u8) -> Segment {
        Segment {
            video_id: "v".into(),
            start_ms,
            end_ms,
            score,
            priority,
            description: format!("{start_ms}"),
            reason: String::new(),
            model: "m".into(),
            similarity: None,
        }
    }

    #[test]
    fn close_candidates_merge_keeping_the_better_description() {
        let merged = merge_close(
            vec![
                seg(0, 4_000, 0.5, 2),
                seg(4_500, 8_000, 0.9, 2),
                seg(20_000, 22_000, 0.4, 2),
            ],
            1_000,
        );
        assert_eq!(merged.len(), 2);
        assert_eq!((merged[0].start_ms, merged[0].end_ms), (0, 8_000));
        assert_eq!(merged[0].description, "4500");
        assert_eq!(merged[0].score, 0.9);
    }

    #[test]
    fn overlaps_go_to_the_higher_priority_segment() {
        let kept = resolve_by_priority(
            vec![
                seg(0, 10_000, 0.9, 2),
                seg(6_000, 12_000, 0.1, 1),
                seg(11_000, 11_500, 0.8, 3),
            ],
            1_000,
        );
        let spans: Vec<(i64, i64, u8)> = kept
            .iter()
            .map(|s| (s.start_ms, s.end_ms, s.priority))
            .collect();
        assert_eq!(spans, vec![(6_000, 12_000, 1), (0, 6_000, 2)]);
    }

    #[test]
    fn fitting_pads_trims_and_fills_the_target_length() {
        let f = Fit {
            target_ms: Some(10_000),
            min_segment_ms: 1_000,
            max_segment_ms: 6_000,
            padding_ms: 500,
            time_order: true,
        };
        let out = fit(
            vec![
                seg(20_000, 40_000, 0.9, 2),
                seg(1_000, 3_000, 0.5, 2),
                seg(50_000, 50_400, 0.99, 2),
            ],
            &f,
            &|_| 60_000,
        );
        let spans: Vec<(i64, i64)> = out.iter().map(|s| (s.start_ms, s.end_ms)).collect();
        // By score: the 0.4 s one padded to 1.4 s, the long one cut to its middle 6 s, then
        // the 3 s padded one cut to the 2.6 s left; output in time order.
        assert_eq!(
            spans,
            vec![(500, 3_100), (27_000, 33_000), (49_500, 50_900)]
        );
        assert_eq!(out.iter().map(Segment::duration_ms).sum::<i64>(), 10_000);
    }

    #[test]
    fn touching_pieces_claimed_by_different_candidates_join_within_the_maximum() {
        let f = Fit {
            max_segment_ms: 8_000,
            ..Fit::default()
        };
        let mut a = seg(20_000, 24_000, 0.6, 2);
        a.description = "riders on a trail".into();
        let mut b = seg(24_000, 26_000, 0.8, 2);
        b.description = "a rider jumps".into();
        // Joining the next 6 s would make 12 s: over the maximum, so it stays apart.
        let c = seg(26_000, 32_000, 0.5, 2);
        let out = fit(vec![a, b, c, seg(40_000, 42_000, 0.5, 2)], &f, &|_| 60_000);
        let spans: Vec<(i64, i64, &str)> = out
            .iter()
            .map(|s| (s.start_ms, s.end_ms, s.description.as_str()))
            .collect();
        assert_eq!(
            spans,
            vec![
                (20_000, 26_000, "a rider jumps"),
                (26_000, 32_000, "26000"),
                (40_000, 42_000, "40000")
            ]
        );
    }
}
