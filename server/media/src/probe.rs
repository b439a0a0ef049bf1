//! ffprobe: container facts, plus one pass over the video packets that yields keyframe
//! times (for stream-copy slicing) and where the video data really ends (a header can
//! claim more than the file holds).

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::process;
use reelforge_core::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StreamRecord {
    pub index: i32,
    pub kind: String,
    pub codec: String,
    pub width: i32,
    pub height: i32,
    pub fps: f64,
    pub sample_rate: i32,
    pub channels: i32,
    pub language: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProbeRecord {
    pub duration_ms: i64,
    pub format_name: String,
    pub size_bytes: i64,
    pub bit_rate: i64,
    pub streams: Vec<StreamRecord>,
    /// Presentation times of the first video stream's keyframes.
    pub keyframes_ms: Vec<i64>,
    /// End of the last video packet actually present in the file.
    pub video_data_end_ms: i64,
}

impl ProbeRecord {
    pub fn video(&self) -> Option<&StreamRecord> {
        self.streams.iter().find(|s| s.kind == "video")
    }
    pub fn has_audio(&self) -> bool {
        self.streams.iter().any(|s| s.kind == "audio")
    }
}

#[derive(Deserialize)]
struct FfprobeOutput {
    #[serde(default)]
    streams: Vec<FfprobeStream>,
    format: Option<FfprobeFormat>,
}

#[derive(Deserialize)]
struct FfprobeStream {
    index: i32,
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<i32>,
    height: Option<i32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    sample_rate: Option<String>,
    channels: Option<i32>,
    duration: Option<String>,
    #[serde(default)]
    tags: std::collections::HashMap<String, String>,
    #[serde(default)]
    disposition: std::collections::HashMap<String, i32>,
}

#[derive(Deserialize)]
struct FfprobeFormat {
    format_name: Option<String>,
    duration: Option<String>,
    size: Option<String>,
    bit_rate: Option<String>,
}

fn parse_rate(rate: Option<&str>) -> f64 {
    let Some(rate) = rate else { return 0.0 };
    match rate.split_once('/') {
        Some((n, d)) => {
            let (n, d): (f64, f64) = (n.parse().unwrap_or(0.0), d.parse().unwrap_or(0.0));
            if d > 0.0 {
                n / d
            } else {
                0.0
            }
        }
        None => rate.parse().unwrap_or(0.0),
    }
}

fn seconds_to_ms(s: Option<&str>) -> Option<i64> {
    s.and_then(|s| s.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| (v * 1000.0).round() as i64)
}

/// Reads what `ffprobe -show_format -show_streams -of json` printed (outside input: the
/// fuzz tests feed it mutated output).
pub fn parse_ffprobe_json(json: &[u8]) -> Result<ProbeRecord> {
    parse_ffprobe(json).map(|(record, _)| record)
}

/// Parses `ffprobe -show_format -show_streams -of json`.
fn parse_ffprobe(json: &[u8]) -> Result<(ProbeRecord, Option<i64>)> {
    let out: FfprobeOutput = serde_json::from_slice(json)
        .map_err(|e| Error::internal(format!("unreadable ffprobe output: {e}")))?;
    let format = out
        .format
        .ok_or_else(|| Error::invalid("ffprobe found no container format"))?;
    let mut streams = Vec::new();
    let mut video_duration = None;
    for s in out.streams {
        let kind = s.codec_type.unwrap_or_default();
        // Cover art is stored as a one-frame "video" stream; it is not the video.
        let attached_pic = s.disposition.get("attached_pic").copied().unwrap_or(0) == 1;
        if kind == "video" && attached_pic {
            continue;
        }
        if kind == "video" && video_duration.is_none() {
            video_duration = seconds_to_ms(s.duration.as_deref());
        }
        let fps = match parse_rate(s.avg_frame_rate.as_deref()) {
            f if f > 0.0 => f,
            _ => parse_rate(s.r_frame_rate.as_deref()),
        };
        streams.push(StreamRecord {
            index: s.index,
            kind,
            codec: s.codec_name.unwrap_or_default(),
            width: s.width.unwrap_or(0),
            height: s.height.unwrap_or(0),
            fps,
            sample_rate: s.sample_rate.and_then(|r| r.parse().ok()).unwrap_or(0),
            channels: s.channels.unwrap_or(0),
            language: s.tags.get("language").cloned().unwrap_or_default(),
        });
    }
    let duration_ms = seconds_to_ms(format.duration.as_deref())
        .or(video_duration)
        .unwrap_or(0);
    let record = ProbeRecord {
        duration_ms,
        format_name: format.format_name.unwrap_or_default(),
        size_bytes: format.size.and_then(|s| s.parse().ok()).unwrap_or(0),
        bit_rate: format.bit_rate.and_then(|s| s.parse().ok()).unwrap_or(0),
        streams,
        keyframes_ms: Vec::new(),
        video_data_end_ms: 0,
    };
    Ok((record, video_duration))
}

/// Accumulates `-show_entries packet=pts_time,duration_time,flags -of csv=p=0` lines one
/// at a time, so a long video's packet list is never held in memory.
#[derive(Default)]
struct PacketScan {
    keyframes: Vec<i64>,
    end_ms: i64,
}

impl PacketScan {
    fn line(&mut self, line: &str) {
        let mut fields = line.split(',');
        let pts = fields.next().and_then(|v| v.parse::<f64>().ok());
        let duration = fields
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        let flags = fields.next().unwrap_or("");
        let Some(pts) = pts.filter(|p| p.is_finite()) else {
            return;
        };
        self.end_ms = self.end_ms.max(((pts + duration) * 1000.0).round() as i64);
        if flags.starts_with('K') {
            self.keyframes.push(((pts * 1000.0).round() as i64).max(0));
        }
    }

    fn finish(mut self) -> (Vec<i64>, i64) {
        self.keyframes.sort_unstable();
        self.keyframes.dedup();
        (self.keyframes, self.end_ms)
    }
}

/// Probes `path`. Files ffprobe cannot read, files without video, and files whose video
/// data ends far before the duration their header claims are `InvalidInput`.
pub async fn probe(ffprobe: &str, path: &Path) -> Result<ProbeRecord> {
    let mut cmd = Command::new(ffprobe);
    cmd.args([
        "-v",
        "error",
        "-show_format",
        "-show_streams",
        "-of",
        "json",
    ])
    .arg(path);
    let json = process::output(cmd, ffprobe, "probe")
        .await
        .map_err(|e| not_a_video(path, e))?;
    let (mut record, _) = parse_ffprobe(&json)?;
    let Some(video) = record.video() else {
        return Err(Error::invalid(format!(
            "{} has no video stream (found: {})",
            display_name(path),
            describe_streams(&record)
        )));
    };
    if video.width <= 0 || video.height <= 0 {
        return Err(Error::invalid(format!(
            "{}: the video stream has no frame size; the file is damaged",
            display_name(path)
        )));
    }
    if record.duration_ms <= 0 {
        return Err(Error::invalid(format!(
            "{}: the container reports no duration; remux it (ffmpeg -i in -c copy out.mp4)",
            display_name(path)
        )));
    }

    let mut cmd = Command::new(ffprobe);
    cmd.args([
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "packet=pts_time,duration_time,flags",
        "-of",
        "csv=p=0",
    ])
    .arg(path);
    let (keyframes, data_end) = scan_packets(cmd, ffprobe)
        .await
        .map_err(|e| not_a_video(path, e))?;
    record.keyframes_ms = keyframes;
    record.video_data_end_ms = data_end;
    check_data_covers_duration(path, &record)?;
    Ok(record)
}

async fn scan_packets(mut cmd: Command, ffprobe: &str) -> Result<(Vec<i64>, i64)> {
    use tokio::io::AsyncBufReadExt;
    cmd.stdout(std::process::Stdio::piped());
    let mut child = process::spawn(cmd, ffprobe)?;
    let stdout = child.child.stdout.take().expect("stdout was piped");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut scan = PacketScan::default();
    while let Some(line) = lines.next_line().await? {
        scan.line(&line);
    }
    child.finish("scan video packets").await?;
    Ok(scan.finish())
}

/// A header may promise more than the file holds (a truncated or doctored file).
fn check_data_covers_duration(path: &Path, record: &ProbeRecord) -> Result<()> {
    let claimed = record.duration_ms;
    let present = record.video_data_end_ms;
    let missing = claimed - present;
    if present == 0 || (missing > 2_000 && (present as f64) < 0.9 * claimed as f64) {
        return Err(Error::invalid(format!(
            "{}: the header claims {:.1} s but video data ends at {:.1} s; the file is \
             truncated or damaged (re-export or re-download it)",
            display_name(path),
            claimed as f64 / 1000.0,
            present as f64 / 1000.0
        )));
    }
    Ok(())
}

fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn describe_streams(record: &ProbeRecord) -> String {
    if record.streams.is_empty() {
        return "no streams".into();
    }
    record
        .streams
        .iter()
        .map(|s| format!("{} {}", s.kind, s.codec))
        .collect::<Vec<_>>()
        .join(", ")
}

fn not_a_video(path: &Path, e: Error) -> Error {
    match e {
        Error::Media { stderr_tail, .. } => Error::Media {
            message: format!(
                "{} is not a video ffprobe can read (truncated, damaged or not a media file)",
                display_name(path)
            ),
            stderr_tail,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_streams_and_skips_cover_art() {
        let json = br#"{"streams":[
            {"index":0,"codec_type":"video","codec_name":"h264","width":640,"height":360,
             "avg_frame_rate":"30000/1001","duration":"10.0"},
            {"index":1,"codec_type":"audio","codec_name":"aac","sample_rate":"48000","channels":2,
             "tags":{"language":"eng"}},
            {"index":2,"codec_type":"video","codec_name":"mjpeg","width":100,"height":100,
             "disposition":{"attached_pic":1}}],
            "format":{"format_name":"mov,mp4","duration":"10.010","size":"1000","bit_rate":"800"}}"#;
        let (record, _) = parse_ffprobe(json).unwrap();
        assert_eq!(record.duration_ms, 10_010);
        assert_eq!(record.streams.len(), 2);
        assert!((record.streams[0].fps - 29.97).abs() < 0.01);
        assert_eq!(record.streams[1].language, "eng");
        assert!(record.has_audio());
    }

    #[test]
    fn packets_give_keyframes_and_data_end() {
        let mut scan = PacketScan::default();
        for line in [
            "0.000000,0.040000,K__",
            "0.040000,0.040000,___",
            "2.000000,0.040000,K__",
            "N/A,N/A,___",
        ] {
            scan.line(line);
        }
        let (keys, end) = scan.finish();
        assert_eq!(keys, vec![0, 2000]);
        assert_eq!(end, 2040);
    }

    #[test]
    fn header_longer_than_data_is_rejected() {
        let mut record = ProbeRecord {
            duration_ms: 60_000,
            format_name: "mov".into(),
            size_bytes: 1,
            bit_rate: 1,
            streams: vec![],
            keyframes_ms: vec![],
            video_data_end_ms: 20_000,
        };
        let err = check_data_covers_duration(Path::new("x.mp4"), &record).unwrap_err();
        assert!(err.to_string().contains("claims 60.0 s"), "{err}");
        record.video_data_end_ms = 59_500;
        check_data_covers_duration(Path::new("x.mp4"), &record).unwrap();
    }
}
