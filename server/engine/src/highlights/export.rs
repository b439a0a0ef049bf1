//! A reel's timeline for editors: CMX3600 EDL, OpenTimelineIO JSON, and reelforge's own
//! JSON (what `reelforge eval --pred` reads).

use serde::Serialize;
use serde_json::json;

use super::segments::Segment;

/// One event of the cut: a segment, its source and where it sits on the reel.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineClip {
    pub video_id: String,
    pub filename: String,
    pub source_path: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub record_start_ms: i64,
    pub description: String,
    pub score: f32,
    pub priority: u8,
    pub reason: String,
    pub model: String,
    /// Source frame rate (timecodes).
    pub fps: f64,
    pub has_audio: bool,
}

impl TimelineClip {
    pub fn new(
        s: &Segment,
        filename: &str,
        source_path: &str,
        record_start_ms: i64,
        fps: f64,
        has_audio: bool,
    ) -> Self {
        TimelineClip {
            video_id: s.video_id.clone(),
            filename: filename.to_string(),
            source_path: source_path.to_string(),
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            record_start_ms,
            description: s.description.clone(),
            score: s.score,
            priority: s.priority,
            reason: s.reason.clone(),
            model: s.model.clone(),
            fps,
            has_audio,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub highlight_id: String,
    pub strategy: String,
    pub clips: Vec<TimelineClip>,
    pub crossfade_ms: i64,
    pub duration_ms: i64,
    /// The reel's frame rate.
    pub fps: f64,
}

/// Integer timecode rate for a frame rate (29.97 → 30, non-drop-frame).
fn tc_rate(fps: f64) -> i64 {
    (fps.round() as i64).max(1)
}

fn timecode(ms: i64, fps: f64) -> String {
    let rate = tc_rate(fps);
    let frames = (ms as f64 * rate as f64 / 1000.0).round() as i64;
    let (f, s) = (frames % rate, frames / rate);
    format!("{:02}:{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60, f)
}

/// CMX3600: one event per clip, record timeline from 01:00:00:00, reel `AX` with the
/// source named in a `FROM CLIP NAME` comment; a crossfade is written as a dissolve into
/// the event (`D` with its length in frames).
pub fn edl(t: &Timeline) -> String {
    let mut out = format!(
        "TITLE: reelforge {} {}\nFCM: NON-DROP FRAME\n\n",
        t.strategy, t.highlight_id
    );
    const RECORD_ZERO_MS: i64 = 3_600_000;
    for (i, c) in t.clips.iter().enumerate() {
        let n = i + 1;
        let channels = if c.has_audio { "AA/V" } else { "V" };
        let rec_in = RECORD_ZERO_MS + c.record_start_ms;
        let rec_out = rec_in + (c.end_ms - c.start_ms);
        let transition = if i > 0 && t.crossfade_ms > 0 {
            format!(
                "D    {:03}",
                (t.crossfade_ms as f64 * tc_rate(t.fps) as f64 / 1000.0).round() as i64
            )
        } else {
            "C        ".to_string()
        };
        out.push_str(&format!(
            "{n:03}  AX       {channels:<5} {transition} {} {} {} {}\n",
            timecode(c.start_ms, c.fps),
            timecode(c.end_ms, c.fps),
            timecode(rec_in, t.fps),
            timecode(rec_out, t.fps),
        ));
        out.push_str(&format!("* FROM CLIP NAME: {}\n", c.filename));
        if !c.description.is_empty() {
            out.push_str(&format!(
                "* COMMENT: {}\n",
                c.description.replace('\n', " ")
            ));
        }
        out.push('\n');
    }
    out
}

fn rational(ms: i64, rate: f64) -> serde_json::Value {
    json!({
        "OTIO_SCHEMA": "RationalTime.1",
        "rate": rate,
        "value": (ms as f64 * rate / 1000.0).round(),
    })
}

/// OpenTimelineIO (`Timeline.1` → `Stack.1` → one video `Track.1` of `Clip.2` with
/// `ExternalReference.1` media, and `Transition.1` dissolves between clips).
pub fn otio(t: &Timeline) -> serde_json::Value {
    let mut children = Vec::new();
    for (i, c) in t.clips.iter().enumerate() {
        if i > 0 && t.crossfade_ms > 0 {
            let half = t.crossfade_ms / 2;
            children.push(json!({
                "OTIO_SCHEMA": "Transition.1",
                "name": "",
                "metadata": {},
                "transition_type": "SMPTE_Dissolve",
                "in_offset": rational(half, c.fps),
                "out_offset": rational(t.crossfade_ms - half, c.fps),
            }));
        }
        children.push(json!({
            "OTIO_SCHEMA": "Clip.2",
            "name": if c.description.is_empty() { c.filename.clone() } else { c.description.clone() },
            "metadata": {"reelforge": {
                "video_id": c.video_id, "score": c.score, "priority": c.priority,
                "reason": c.reason, "model": c.model,
            }},
            "source_range": {
                "OTIO_SCHEMA": "TimeRange.1",
                "start_time": rational(c.start_ms, c.fps),
                "duration": rational(c.end_ms - c.start_ms, c.fps),
            },
            "effects": [],
            "markers": [],
            "enabled": true,
            "media_references": {"DEFAULT_MEDIA": {
                "OTIO_SCHEMA": "ExternalReference.1",
                "name": c.filename,
                "metadata": {},
                "available_range": null,
                "available_image_bounds": null,
                "target_url": format!("file://{}", c.source_path),
            }},
            "active_media_reference_key": "DEFAULT_MEDIA",
        }));
    }
    json!({
        "OTIO_SCHEMA": "Timeline.1",
        "name": format!("reelforge {} {}", t.strategy, t.highlight_id),
        "metadata": {},
        "global_start_time": null,
        "tracks": {
            "OTIO_SCHEMA": "Stack.1",
            "name": "tracks",
            "metadata": {},
            "source_range": null,
            "effects": [],
            "markers": [],
            "enabled": true,
            "children": [{
                "OTIO_SCHEMA": "Track.1",
                "name": "V1",
                "metadata": {},
                "source_range": null,
                "effects": [],
                "markers": [],
                "enabled": true,
                "kind": "Video",
                "children": children,
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline(crossfade_ms: i64) -> Timeline {
        let clip = |start_ms, end_ms, record_start_ms, d: &str| TimelineClip {
            video_id: "v1".into(),
            filename: "demo.mp4".into(),
            source_path: "/data/demo.mp4".into(),
            start_ms,
            end_ms,
            record_start_ms,
            description: d.into(),
            score: 0.9,
            priority: 1,
            reason: "signals".into(),
            model: "signal-analyzer-v1".into(),
            fps: 25.0,
            has_audio: true,
        };
        Timeline {
            highlight_id: "h1".into(),
            strategy: "sliced".into(),
            clips: vec![
                clip(20_000, 25_000, 0, "bikes"),
                clip(46_000, 50_000, 5_000 - crossfade_ms, "bunny"),
            ],
            crossfade_ms,
            duration_ms: 9_000,
            fps: 25.0,
        }
    }

    #[test]
    fn edl_events_carry_source_and_record_timecodes() {
        let text = edl(&timeline(0));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "TITLE: reelforge sliced h1");
        assert_eq!(lines[1], "FCM: NON-DROP FRAME");
        assert_eq!(
            lines[3],
            "001  AX       AA/V  C         00:00:20:00 00:00:25:00 01:00:00:00 01:00:05:00"
        );
        assert_eq!(lines[4], "* FROM CLIP NAME: demo.mp4");
        assert_eq!(lines[5], "* COMMENT: bikes");
        assert_eq!(
            lines[7],
            "002  AX       AA/V  C         00:00:46:00 00:00:50:00 01:00:05:00 01:00:09:00"
        );
        let dissolve = edl(&timeline(500));
        assert!(
            dissolve.contains(
                "002  AX       AA/V  D    013 00:00:46:00 00:00:50:00 01:00:04:13 01:00:08:13"
            ),
            "{dissolve}"
        );
        assert_eq!(timecode(1_020, 29.97), "00:00:01:01");
    }

    #[test]
    fn otio_has_clips_with_source_ranges_and_dissolves() {
        let v = otio(&timeline(500));
        let track = &v["tracks"]["children"][0];
        assert_eq!(track["kind"], "Video");
        let children = track["children"].as_array().unwrap();
        assert_eq!(children.len(), 3);
        assert_eq!(children[0]["OTIO_SCHEMA"], "Clip.2");
        assert_eq!(children[0]["source_range"]["start_time"]["value"], 500.0);
        assert_eq!(children[0]["source_range"]["duration"]["value"], 125.0);
        assert_eq!(
            children[0]["media_references"]["DEFAULT_MEDIA"]["target_url"],
            "file:///data/demo.mp4"
        );
        assert_eq!(children[1]["OTIO_SCHEMA"], "Transition.1");
        assert_eq!(children[2]["name"], "bunny");
    }
}
