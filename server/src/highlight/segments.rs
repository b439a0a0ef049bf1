//! Highlight segments and what happens to them after a model proposes them: reading a
//! model's answer (JSON inside prose or code fences, times as seconds or clock strings),
//! checking it against the video's duration, merging the redundant candidates that
//! slicing produces, resolving overlaps by priority, and fitting a target length.

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

/// Parses a time as a model writes it: seconds (`12`, `12.5`, `"12.5s"`), or a clock
/// (`"1:02"`, `"01:02.5"`, `"1:02:03.25"`). Returns milliseconds.
pub fn parse_time(value: &serde_json::Value) -> Result<i64, String> {
    match value {
        serde_json::Value::Number(n) => {
            let s = n.as_f64().ok_or("not a number")?;
            seconds_to_ms(s)
        }
        serde_json::Value::String(text) => parse_time_str(text),
        other => Err(format!("{other} is not a time")),
    }
}

pub fn parse_time_str(text: &str) -> Result<i64, String> {
    let t = text.trim().trim_end_matches(['s', 'S']).trim();
    if t.is_empty() {
        return Err("empty time".into());
    }
    if !t.contains(':') {
        let s: f64 = t.parse().map_err(|_| format!("{text:?} is not a time"))?;
        return seconds_to_ms(s);
    }
    let parts: Vec<&str> = t.split(':').collect();
    if parts.len() > 3 {
        return Err(format!("{text:?} has too many ':'"));
    }
    let mut seconds = 0.0;
    for (i, p) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let v: f64 = p
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a time"))?;
        if v < 0.0 || (!last && v.fract() != 0.0) || (i > 0 && v >= 60.0) {
            return Err(format!("{text:?} is not a valid clock time"));
        }
        seconds = seconds * 60.0 + v;
    }
    seconds_to_ms(seconds)
}

fn seconds_to_ms(s: f64) -> Result<i64, String> {
    if !s.is_finite() {
        return Err("time is not finite".into());
    }
    if s < 0.0 {
        return Err(format!("time {s} s is negative"));
    }
    Ok((s * 1000.0).round() as i64)
}

/// A model's answer that could not all be used.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Position in the model's list.
    pub index: usize,
    pub reason: String,
}

/// Reads highlight segments out of a model's text answer. The JSON may sit inside prose
/// or a ```json fence; it may be a list or an object holding one (`highlights`,
/// `segments`); each item names its times `start`/`end`, `start_time`/`end_time`,
/// `start_s`/`end_s` or `timestamp: "0:12-0:18"`. Times past the end are clamped to the
/// duration; items that start past the end, are reversed, empty or unreadable are
/// rejected with a reason. `offset_ms` maps slice-relative times to the video's timeline
/// (0 for a whole-video answer); `duration_ms` bounds what the model saw.
pub fn parse_model_segments(
    text: &str,
    video_id: &str,
    model: &str,
    offset_ms: i64,
    duration_ms: i64,
) -> Result<(Vec<Segment>, Vec<Rejected>), String> {
    let json = extract_json(text).ok_or("the answer holds no JSON list or object")?;
    let items = match &json {
        serde_json::Value::Array(a) => a.clone(),
        serde_json::Value::Object(o) => ["highlights", "segments", "clips", "results"]
            .iter()
            .find_map(|k| o.get(*k).and_then(|v| v.as_array()).cloned())
            .or_else(|| o.contains_key("start").then(|| vec![json.clone()]))
            .ok_or("the JSON object has no `highlights` list")?,
        _ => return Err("the JSON is neither a list nor an object".into()),
    };
    let (mut out, mut rejected) = (Vec::new(), Vec::new());
    for (index, item) in items.iter().enumerate() {
        match item_segment(item, duration_ms) {
            Ok((start, end, score, priority, description)) => out.push(Segment {
                video_id: video_id.to_string(),
                start_ms: offset_ms + start,
                end_ms: offset_ms + end,
                score,
                priority,
                description,
                reason: String::new(),
                model: model.to_string(),
            }),
            Err(reason) => rejected.push(Rejected { index, reason }),
        }
    }
    Ok((out, rejected))
}

type Fields = (i64, i64, f32, u8, String);

fn item_segment(item: &serde_json::Value, duration_ms: i64) -> Result<Fields, String> {
    let o = item.as_object().ok_or("not an object")?;
    let get = |names: &[&str]| names.iter().find_map(|n| o.get(*n));
    let (start, end) = match (
        get(&["start", "start_time", "start_s", "start_sec", "begin"]),
        get(&["end", "end_time", "end_s", "end_sec", "stop"]),
    ) {
        (Some(s), Some(e)) => (parse_time(s)?, parse_time(e)?),
        _ => match get(&["timestamp", "time", "range"]).and_then(|v| v.as_str()) {
            Some(range) => {
                let (a, b) = range
                    .split_once(" - ")
                    .or_else(|| range.split_once('-'))
                    .or_else(|| range.split_once('–'))
                    .ok_or_else(|| format!("timestamp {range:?} is not START-END"))?;
                (parse_time_str(a)?, parse_time_str(b)?)
            }
            None => return Err("no start/end times".into()),
        },
    };
    if end <= start {
        return Err(format!(
            "end {:.1} s is not after start {:.1} s",
            end as f64 / 1000.0,
            start as f64 / 1000.0
        ));
    }
    if start >= duration_ms {
        return Err(format!(
            "starts at {:.1} s, past the end ({:.1} s)",
            start as f64 / 1000.0,
            duration_ms as f64 / 1000.0
        ));
    }
    let end = end.min(duration_ms);
    let score = get(&["score", "intensity", "confidence", "highlight_score"])
        .and_then(|v| v.as_f64())
        .map_or(0.5, |s| if s > 1.0 { s / 10.0 } else { s })
        .clamp(0.0, 1.0) as f32;
    let priority = get(&["priority"])
        .and_then(|v| v.as_u64())
        .map_or(2, |p| p.clamp(1, 3) as u8);
    let description = get(&["description", "desc", "summary", "reason", "label"])
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    Ok((start, end, score, priority, description))
}

/// The first JSON list or object in `text` that parses: inside a code fence if there is
/// one, else from the first `[` or `{` to its matching close.
pub fn extract_json(text: &str) -> Option<serde_json::Value> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text.trim()) {
        if v.is_array() || v.is_object() {
            return Some(v);
        }
    }
    if let Some(start) = text.find("```") {
        let body = &text[start + 3..];
        let body = body.strip_prefix("json").unwrap_or(body);
        if let Some(end) = body.find("```") {
            if let Ok(v) = serde_json::from_str(body[..end].trim()) {
                return Some(v);
            }
        }
    }
    for (i, c) in text.char_indices() {
        if c != '[' && c != '{' {
            continue;
        }
        let mut de =
            serde_json::Deserializer::from_str(&text[i..]).into_iter::<serde_json::Value>();
        if let Some(Ok(v)) = de.next() {
            if v.is_array() || v.is_object() {
                return Some(v);
            }
        }
    }
    None
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
/// (slicing proposes the same moment twice, or cuts one in two): the merged segment
/// spans both and keeps the better one's description, score and priority.
pub fn merge_close(mut segments: Vec<Segment>, gap_ms: i64) -> Vec<Segment> {
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
            if last.video_id == s.video_id && s.start_ms <= last.end_ms + gap_ms {
                let end = last.end_ms.max(s.end_ms);
                let start = last.start_ms;
                if s.outranks(last) {
                    *last = s;
                }
                last.start_ms = start;
                last.end_ms = end;
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
/// too short, then takes the best segments until the target length is filled, and puts
/// them in the order asked. `duration_ms(video)` bounds padding.
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

/// Intersection over union of two time ranges.
pub fn iou(a: (i64, i64), b: (i64, i64)) -> f64 {
    let inter = (a.1.min(b.1) - a.0.max(b.0)).max(0) as f64;
    let union = (a.1.max(b.1) - a.0.min(b.0)) as f64;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// One ground-truth segment and the prediction that overlaps it best.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TruthMatch {
    pub truth: (i64, i64),
    pub best: Option<(i64, i64)>,
    pub iou: f64,
    pub matched: bool,
}

/// Recall, precision, F1 and mean IoU of predicted segments against ground truth, as the
/// highlight design reports them: each truth segment is matched to its best-overlapping
/// prediction; a match counts at IoU > `threshold` (0.5).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub truths: Vec<TruthMatch>,
    pub predicted: usize,
    pub matched_truths: usize,
    pub matched_predictions: usize,
    pub recall: f64,
    pub precision: f64,
    pub f1: f64,
    /// Mean over truth segments of their best IoU.
    pub mean_iou: f64,
    pub threshold: f64,
}

pub fn evaluate(truth: &[(i64, i64)], predicted: &[(i64, i64)], threshold: f64) -> Evaluation {
    let truths: Vec<TruthMatch> = truth
        .iter()
        .map(|&t| {
            let best = predicted
                .iter()
                .map(|&p| (p, iou(t, p)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let (best, score) = best.map_or((None, 0.0), |(p, s)| (Some(p), s));
            TruthMatch {
                truth: t,
                best,
                iou: score,
                matched: score > threshold,
            }
        })
        .collect();
    let matched_truths = truths.iter().filter(|m| m.matched).count();
    let matched_predictions = predicted
        .iter()
        .filter(|&&p| truth.iter().any(|&t| iou(t, p) > threshold))
        .count();
    let recall = ratio(matched_truths, truth.len());
    let precision = ratio(matched_predictions, predicted.len());
    let f1 = if recall + precision > 0.0 {
        2.0 * recall * precision / (recall + precision)
    } else {
        0.0
    };
    let mean_iou = if truths.is_empty() {
        0.0
    } else {
        truths.iter().map(|m| m.iou).sum::<f64>() / truths.len() as f64
    };
    Evaluation {
        truths,
        predicted: predicted.len(),
        matched_truths,
        matched_predictions,
        recall,
        precision,
        f1,
        mean_iou,
        threshold,
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        }
    }

    #[test]
    fn times_parse_as_seconds_or_clocks() {
        assert_eq!(parse_time(&json!(12)), Ok(12_000));
        assert_eq!(parse_time(&json!(12.25)), Ok(12_250));
        assert_eq!(parse_time(&json!("12.5s")), Ok(12_500));
        assert_eq!(parse_time(&json!("1:02")), Ok(62_000));
        assert_eq!(parse_time(&json!("01:02.5")), Ok(62_500));
        assert_eq!(parse_time(&json!("1:02:03.25")), Ok(3_723_250));
        for bad in [
            json!(-1),
            json!("1:75"),
            json!("x"),
            json!("1:2:3:4"),
            json!(null),
            json!("1.5:10"),
        ] {
            assert!(parse_time(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn model_answers_are_read_from_prose_and_fences_and_checked() {
        let answer = r#"Sure! Here are the highlights:
```json
{"highlights": [
  {"start": "0:05", "end": "0:09", "score": 0.9, "description": "a jump"},
  {"start_time": 20, "end_time": 95, "intensity": 7, "priority": 1},
  {"timestamp": "00:30-00:34", "description": "crowd"},
  {"start": 12, "end": 8},
  {"start": 70, "end": 80},
  "nonsense"
]}
```
Hope this helps."#;
        let (segs, rejected) = parse_model_segments(answer, "v", "nova", 30_000, 60_000).unwrap();
        assert_eq!(segs.len(), 3);
        assert_eq!((segs[0].start_ms, segs[0].end_ms), (35_000, 39_000));
        assert_eq!(segs[0].description, "a jump");
        // Past the end: clamped to the duration; 0..10 scores scaled.
        assert_eq!((segs[1].start_ms, segs[1].end_ms), (50_000, 90_000));
        assert!((segs[1].score - 0.7).abs() < 1e-6);
        assert_eq!(segs[1].priority, 1);
        assert_eq!((segs[2].start_ms, segs[2].end_ms), (60_000, 64_000));
        let reasons: Vec<(usize, &str)> = rejected
            .iter()
            .map(|r| (r.index, r.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].1.contains("not after start"));
        assert!(reasons[1].1.contains("past the end"));
        assert_eq!(reasons[2], (5, "not an object"));

        let bare = "The answer is [{\"start\": 1, \"end\": 2}] as asked.";
        assert_eq!(
            parse_model_segments(bare, "v", "m", 0, 10_000)
                .unwrap()
                .0
                .len(),
            1
        );
        assert!(parse_model_segments("no idea", "v", "m", 0, 10_000).is_err());
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
    fn evaluation_matches_each_truth_to_its_best_prediction() {
        assert!((iou((0, 10), (5, 15)) - 5.0 / 15.0).abs() < 1e-9);
        assert_eq!(iou((0, 10), (10, 20)), 0.0);
        let e = evaluate(
            &[(20_000, 25_000), (46_000, 50_000), (70_000, 72_000)],
            &[(19_000, 25_500), (45_000, 49_000), (5_000, 6_000)],
            0.5,
        );
        assert_eq!(e.matched_truths, 2);
        assert_eq!(e.matched_predictions, 2);
        assert!((e.recall - 2.0 / 3.0).abs() < 1e-9);
        assert!((e.precision - 2.0 / 3.0).abs() < 1e-9);
        assert!((e.truths[0].iou - 5.0 / 6.5).abs() < 1e-9);
        assert!((e.truths[1].iou - 3.0 / 5.0).abs() < 1e-9);
        assert_eq!(e.truths[2].iou, 0.0);
        assert!((e.mean_iou - (5.0 / 6.5 + 0.6) / 3.0).abs() < 1e-9);
    }
}
