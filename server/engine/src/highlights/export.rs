//! A reel's timeline for editors: CMX3600 EDL, OpenTimelineIO JSON, FCPXML and Final Cut
//! Pro 7 XML (`fcp`), and reelforge's own JSON (what `reelforge eval --pred` reads).

mod fcp;

use serde::Serialize;
use serde_json::json;

use super::segments::Segment;
use crate::store::VideoRecord;
use reelforge_core::{Error, Result};
use reelforge_media::probe::StreamRecord;

pub use fcp::{fcpxml, xmeml};

/// The timeline files an editor opens; a highlight writes every one unless the request
/// names some (`timeline.json`, reelforge's own, is always written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimelineFormat {
    /// CMX 3600 EDL: every editor, one video track, no media links.
    Edl,
    /// OpenTimelineIO JSON.
    Otio,
    /// FCPXML 1.9: Final Cut Pro, DaVinci Resolve.
    Fcpxml,
    /// Final Cut Pro 7 XML: Premiere Pro, DaVinci Resolve.
    Xmeml,
}

impl TimelineFormat {
    pub const ALL: [TimelineFormat; 4] = [
        TimelineFormat::Edl,
        TimelineFormat::Otio,
        TimelineFormat::Fcpxml,
        TimelineFormat::Xmeml,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TimelineFormat::Edl => "edl",
            TimelineFormat::Otio => "otio",
            TimelineFormat::Fcpxml => "fcpxml",
            TimelineFormat::Xmeml => "xmeml",
        }
    }

    pub fn parse(name: &str) -> Result<TimelineFormat> {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "timeline format {name:?} is not one of {}",
                    Self::ALL.map(Self::name).join(", ")
                ))
            })
    }

    /// The highlight's file.
    pub fn file_name(self) -> &'static str {
        match self {
            TimelineFormat::Edl => "timeline.edl",
            TimelineFormat::Otio => "timeline.otio",
            TimelineFormat::Fcpxml => "timeline.fcpxml",
            TimelineFormat::Xmeml => "timeline.xml",
        }
    }

    /// The file's bytes.
    pub fn write(self, t: &Timeline) -> Result<Vec<u8>> {
        Ok(match self {
            TimelineFormat::Edl => edl(t).into_bytes(),
            TimelineFormat::Otio => serde_json::to_vec_pretty(&otio(t))?,
            TimelineFormat::Fcpxml => fcpxml(t).into_bytes(),
            TimelineFormat::Xmeml => xmeml(t).into_bytes(),
        })
    }
}

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
    /// The source's picture size and length (FCPXML formats and assets, xmeml files).
    pub width: i32,
    pub height: i32,
    pub source_duration_ms: i64,
}

impl TimelineClip {
    /// `s` of `video`, whose picture is `stream` at `fps`, placed at `record_start_ms`.
    pub fn new(
        s: &Segment,
        video: &VideoRecord,
        stream: &StreamRecord,
        fps: f64,
        record_start_ms: i64,
    ) -> Self {
        TimelineClip {
            video_id: s.video_id.clone(),
            filename: video.filename.clone(),
            source_path: video.source_path.clone(),
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            record_start_ms,
            description: s.description.clone(),
            score: s.score,
            priority: s.priority,
            reason: s.reason.clone(),
            model: s.model.clone(),
            fps,
            has_audio: video.probe.has_audio(),
            width: stream.width,
            height: stream.height,
            source_duration_ms: video.probe.duration_ms,
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

#[cfg(test)]
fn timecode(ms: i64, fps: f64) -> String {
    let rate = tc_rate(fps);
    timecode_of_frames(frames(ms, rate), rate)
}

/// Frames at timecode `rate` in `ms`.
fn frames(ms: i64, rate: i64) -> i64 {
    (ms as f64 * rate as f64 / 1000.0).round() as i64
}

fn timecode_of_frames(frames: i64, rate: i64) -> String {
    let (f, s) = (frames % rate, frames / rate);
    format!("{:02}:{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60, f)
}

/// CMX3600 as editors' readers (OpenTimelineIO's adapter, Resolve, Premiere) expect it:
/// one event per clip on a record timeline from 01:00:00:00, reel `AX`, the source named
/// in `FROM CLIP NAME`, every timecode at the reel's rate (an EDL has one rate; each
/// event's source and record durations are the same count of frames). A crossfade is a
/// dissolve event: a zero-length cut line of the outgoing clip at the frame the dissolve
/// starts, then the incoming clip as `D` with the dissolve's length in frames. Record
/// times never overlap: an outgoing clip's event ends where the dissolve starts (the
/// dissolve plays its tail), so the record timeline lasts as long as the rendered reel
/// (to the frame).
pub fn edl(t: &Timeline) -> String {
    let mut out = format!(
        "TITLE: reelforge {} {}\nFCM: NON-DROP FRAME\n\n",
        t.strategy, t.highlight_id
    );
    const RECORD_ZERO_MS: i64 = 3_600_000;
    let rate = tc_rate(t.fps);
    let dissolve_ms = if t.clips.len() > 1 {
        t.crossfade_ms.max(0)
    } else {
        0
    };
    let dissolve = frames(dissolve_ms, rate);
    let tc = |f: i64| timecode_of_frames(f, rate);
    const CUT: &str = "C        ";
    let line = |n: usize, c: &TimelineClip, transition: &str, src: (i64, i64), rec: i64| {
        let channels = if c.has_audio { "AA/V" } else { "V" };
        format!(
            "{n:03}  AX       {channels:<5} {transition} {} {} {} {}\n",
            tc(src.0),
            tc(src.1),
            tc(rec),
            tc(rec + src.1 - src.0),
        )
    };
    let mut record = frames(RECORD_ZERO_MS, rate);
    let mut previous_out = 0;
    for (i, c) in t.clips.iter().enumerate() {
        let n = i + 1;
        // What of the clip its own event plays: all but the tail a following dissolve
        // plays.
        let tail = if i + 1 < t.clips.len() { dissolve } else { 0 };
        let src_in = frames(c.start_ms, rate);
        let src = (src_in, (frames(c.end_ms, rate) - tail).max(src_in));
        if i > 0 && dissolve > 0 {
            let prev = &t.clips[i - 1];
            out.push_str(&line(n, prev, CUT, (previous_out, previous_out), record));
            out.push_str(&line(n, c, &format!("D    {dissolve:03}"), src, record));
            out.push_str(&format!("* FROM CLIP NAME: {}\n", prev.filename));
            out.push_str(&format!("* TO CLIP NAME: {}\n", c.filename));
        } else {
            out.push_str(&line(n, c, CUT, src, record));
            out.push_str(&format!("* FROM CLIP NAME: {}\n", c.filename));
        }
        record += src.1 - src.0;
        previous_out = src.1;
        if !c.description.is_empty() {
            out.push_str(&format!(
                "* COMMENT: {}\n",
                c.description.replace('\n', " ")
            ));
        }
        out.push_str(&format!(
            "* COMMENT: PRIORITY {} SCORE {:.2}{}\n",
            c.priority,
            c.score,
            if c.reason.is_empty() {
                String::new()
            } else {
                format!(" REASON {}", c.reason.replace('\n', " "))
            }
        ));
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
/// `ExternalReference.1` media, and `Transition.1` dissolves between clips). A transition
/// takes no time in OTIO: it blends the outgoing clip's last `in_offset` with media before
/// the incoming clip's range and the incoming clip's first `out_offset` with media after
/// the outgoing one's. The render plays a crossfade of `c` over the outgoing clip's last
/// `c` and the incoming clip's first `c`, so the cut sits mid-dissolve and each clip's
/// range gives up the half of the dissolve its handle supplies: the timeline then lasts
/// exactly as long as the reel.
pub fn otio(t: &Timeline) -> serde_json::Value {
    let mut children = Vec::new();
    let dissolve = if t.clips.len() > 1 {
        t.crossfade_ms.max(0)
    } else {
        0
    };
    let (before_cut, after_cut) = (dissolve / 2, dissolve - dissolve / 2);
    let last = t.clips.len().saturating_sub(1);
    for (i, c) in t.clips.iter().enumerate() {
        if i > 0 && dissolve > 0 {
            children.push(json!({
                "OTIO_SCHEMA": "Transition.1",
                "name": "",
                "metadata": {},
                "transition_type": "SMPTE_Dissolve",
                "in_offset": rational(before_cut, c.fps),
                "out_offset": rational(after_cut, c.fps),
            }));
        }
        let start = c.start_ms + if i > 0 { before_cut } else { 0 };
        let end = c.end_ms - if i < last { after_cut } else { 0 };
        children.push(json!({
            "OTIO_SCHEMA": "Clip.2",
            "name": if c.description.is_empty() { c.filename.clone() } else { c.description.clone() },
            "metadata": {"reelforge": {
                "video_id": c.video_id, "score": c.score, "priority": c.priority,
                "reason": c.reason, "model": c.model,
            }},
            "source_range": {
                "OTIO_SCHEMA": "TimeRange.1",
                "start_time": rational(start, c.fps),
                "duration": rational(end - start, c.fps),
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

/// The demo's two moments (bikes 20-25 s, Big Buck Bunny 46-50 s) as a 25 fps timeline
/// with `crossfade_ms` dissolves, for the exporters' tests.
#[cfg(test)]
pub(crate) fn test_timeline(crossfade_ms: i64, filename: &str, reason: &str) -> Timeline {
    let clip = |start_ms, end_ms, record_start_ms, d: &str| TimelineClip {
        video_id: "v1".into(),
        filename: filename.into(),
        source_path: format!("/data/{filename}"),
        start_ms,
        end_ms,
        record_start_ms,
        description: d.into(),
        score: 0.9,
        priority: 1,
        reason: reason.into(),
        model: "signal-analyzer-v1".into(),
        fps: 25.0,
        has_audio: true,
        width: 640,
        height: 360,
        source_duration_ms: 60_000,
    };
    Timeline {
        highlight_id: "h1".into(),
        strategy: "sliced".into(),
        clips: vec![
            clip(20_000, 25_000, 0, "bikes"),
            clip(46_000, 50_000, 5_000 - crossfade_ms, "bunny"),
        ],
        crossfade_ms,
        duration_ms: 9_000 - crossfade_ms,
        fps: 25.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline(crossfade_ms: i64) -> Timeline {
        test_timeline(crossfade_ms, "demo.mp4", "signals")
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
        assert_eq!(lines[6], "* COMMENT: PRIORITY 1 SCORE 0.90 REASON signals");
        assert_eq!(
            lines[8],
            "002  AX       AA/V  C         00:00:46:00 00:00:50:00 01:00:05:00 01:00:09:00"
        );
        assert_eq!(timecode(1_020, 29.97), "00:00:01:01");
    }

    #[test]
    fn a_dissolve_is_a_cut_line_then_a_d_line_and_records_never_overlap() {
        let text = edl(&timeline(500));
        let lines: Vec<&str> = text.lines().collect();
        // The outgoing clip's event ends where the dissolve (13 frames) starts.
        assert_eq!(
            lines[3],
            "001  AX       AA/V  C         00:00:20:00 00:00:24:12 01:00:00:00 01:00:04:12"
        );
        assert_eq!(
            &lines[8..12],
            [
                "002  AX       AA/V  C         00:00:24:12 00:00:24:12 01:00:04:12 01:00:04:12",
                "002  AX       AA/V  D    013 00:00:46:00 00:00:50:00 01:00:04:12 01:00:08:12",
                "* FROM CLIP NAME: demo.mp4",
                "* TO CLIP NAME: demo.mp4",
            ],
            "{text}"
        );
    }

    #[test]
    fn otio_has_clips_with_source_ranges_and_dissolves() {
        let v = otio(&timeline(500));
        let track = &v["tracks"]["children"][0];
        assert_eq!(track["kind"], "Video");
        let children = track["children"].as_array().unwrap();
        assert_eq!(children.len(), 3);
        assert_eq!(children[0]["OTIO_SCHEMA"], "Clip.2");
        // The cut sits mid-dissolve: each side gives up the half its handle supplies, so
        // the clips add up to the reel (9.0 - 0.5 s).
        let range = |c: &serde_json::Value| {
            let r = &c["source_range"];
            (
                r["start_time"]["value"].clone(),
                r["duration"]["value"].clone(),
            )
        };
        assert_eq!(range(&children[0]), (500.0.into(), 119.0.into()));
        assert_eq!(range(&children[2]), (1156.0.into(), 94.0.into()));
        assert_eq!(children[1]["in_offset"]["value"], 6.0);
        assert_eq!(children[1]["out_offset"]["value"], 6.0);
        assert_eq!(
            children[0]["media_references"]["DEFAULT_MEDIA"]["target_url"],
            "file:///data/demo.mp4"
        );
        assert_eq!(children[1]["OTIO_SCHEMA"], "Transition.1");
        assert_eq!(children[2]["name"], "bunny");
    }
}
