//! Reading highlight segments out of a model's answer: JSON inside prose or code fences,
//! a list or an object holding one, times as seconds or clock strings, each item checked
//! against the duration the model saw.

use crate::segments::{priority_of_score, Segment};
use crate::time::{parse_time, parse_time_str};

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
            Ok(s) => out.push(Segment {
                video_id: video_id.to_string(),
                start_ms: offset_ms + s.start_ms,
                end_ms: offset_ms + s.end_ms,
                model: model.to_string(),
                similarity: None,
                ..s
            }),
            Err(reason) => rejected.push(Rejected { index, reason }),
        }
    }
    Ok((out, rejected))
}

/// One item of a model's answer, read and checked: times relative to what the model saw,
/// the model's priority (or the one its score stands for when it gives none) and its
/// reason; no video or model yet.
fn item_segment(item: &serde_json::Value, duration_ms: i64) -> Result<Segment, String> {
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
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.trim().parse().ok()))
        .map_or_else(|| priority_of_score(score), |p| p.clamp(1, 3) as u8);
    let text = |names: &[&str]| {
        get(names).map_or(String::new(), |v| match v {
            serde_json::Value::String(s) => s.trim().to_string(),
            // "reason": ["action", "sound"]
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            _ => String::new(),
        })
    };
    let reason = text(&["reason", "reasons", "dimensions", "why"]);
    let mut description = text(&["description", "desc", "summary", "label"]);
    if description.is_empty() {
        description = reason.clone();
    }
    Ok(Segment {
        video_id: String::new(),
        start_ms: start,
        end_ms: end,
        score,
        priority,
        description,
        reason,
        model: String::new(),
        similarity: None,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_answers_are_read_from_prose_and_fences_and_checked() {
        let answer = r#"Sure! Here are the highlights:
```json
{"highlights": [
  {"start": "0:05", "end": "0:09", "score": 0.9, "description": "a jump", "priority": 3, "reason": "action"},
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
        // The model's priority and reason are kept, even against its score.
        assert_eq!((segs[0].priority, segs[0].reason.as_str()), (3, "action"));
        // Past the end: clamped to the duration; 0..10 scores scaled.
        assert_eq!((segs[1].start_ms, segs[1].end_ms), (50_000, 90_000));
        assert!((segs[1].score - 0.7).abs() < 1e-6);
        assert_eq!(segs[1].priority, 1);
        assert_eq!((segs[2].start_ms, segs[2].end_ms), (60_000, 64_000));
        // No priority given: the one its score (0.5 by default) stands for.
        assert_eq!(segs[2].priority, 3);
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
}
