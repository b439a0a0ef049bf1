//! Subtitles as timed text: SubRip (`.srt`) and WebVTT (`.vtt`) sidecar files next to a
//! video, and text subtitle streams inside the container (extracted by ffmpeg as SubRip).
//! Errors name the file, the cue and what is wrong with it.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::probe::ProbeRecord;
use crate::process;
use reelforge_core::error::{Error, Result};

/// One subtitle cue on the video's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Cue {
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
}

/// Subtitle codecs ffmpeg can turn into SubRip text.
const TEXT_CODECS: &[&str] = &["subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text"];

/// `HH:MM:SS,mmm` (SRT) or `[HH:]MM:SS.mmm` (VTT).
fn timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    let (clock, millis) = s.rsplit_once([',', '.'])?;
    if millis.len() != 3 || !millis.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let parts: Vec<&str> = clock.split(':').collect();
    let nums: Vec<i64> = parts
        .iter()
        .map(|p| {
            let digits = !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit());
            digits.then(|| p.parse::<i64>().ok()).flatten()
        })
        .collect::<Option<_>>()?;
    let (h, m, sec) = match nums[..] {
        [h, m, s] => (h, m, s),
        [m, s] => (0, m, s),
        _ => return None,
    };
    if m >= 60 || sec >= 60 {
        return None;
    }
    Some(((h * 60 + m) * 60 + sec) * 1000 + millis.parse::<i64>().ok()?)
}

/// Strips markup (`<i>`, `{\an8}`) and joins a cue's lines.
fn clean(lines: &[&str]) -> String {
    let mut out = String::new();
    for line in lines {
        let mut depth_angle = false;
        let mut depth_brace = false;
        for c in line.chars() {
            match c {
                '<' => depth_angle = true,
                '>' if depth_angle => depth_angle = false,
                '{' => depth_brace = true,
                '}' if depth_brace => depth_brace = false,
                _ if depth_angle || depth_brace => {}
                _ => out.push(c),
            }
        }
        out.push(' ');
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses SubRip or WebVTT text. `name` is used in errors.
pub fn parse(text: &str, name: &str) -> Result<Vec<Cue>> {
    let text = text.trim_start_matches('\u{feff}').replace("\r\n", "\n");
    let mut cues = Vec::new();
    let blocks = text.split("\n\n").map(str::trim).filter(|b| !b.is_empty());
    for (n, block) in blocks.enumerate() {
        let lines: Vec<&str> = block.lines().collect();
        let Some(arrow) = lines.iter().position(|l| l.contains("-->")) else {
            // WebVTT header, NOTE and STYLE blocks carry no cue.
            if n == 0 && lines[0].starts_with("WEBVTT")
                || lines[0].starts_with("NOTE")
                || lines[0].starts_with("STYLE")
            {
                continue;
            }
            return Err(Error::invalid(format!(
                "{name}: cue {}: no \"start --> end\" timing line",
                cues.len() + 1
            )));
        };
        let (start, rest) = lines[arrow].split_once("-->").expect("checked");
        // VTT settings follow the end time ("00:01.000 --> 00:02.000 align:start").
        let end = rest.split_whitespace().next().unwrap_or("");
        let cue = cues.len() + 1;
        let start_ms = timestamp(start).ok_or_else(|| {
            Error::invalid(format!(
                "{name}: cue {cue}: start time {:?} is not a timestamp (HH:MM:SS,mmm)",
                start.trim()
            ))
        })?;
        let end_ms = timestamp(end).ok_or_else(|| {
            Error::invalid(format!(
                "{name}: cue {cue}: end time {end:?} is not a timestamp (HH:MM:SS,mmm)"
            ))
        })?;
        if end_ms < start_ms {
            return Err(Error::invalid(format!(
                "{name}: cue {cue}: ends ({}) before it starts ({})",
                end.trim(),
                start.trim()
            )));
        }
        let text = clean(&lines[arrow + 1..]);
        if !text.is_empty() {
            cues.push(Cue {
                start_ms,
                end_ms,
                text,
            });
        }
    }
    cues.sort_by_key(|c| c.start_ms);
    Ok(cues)
}

/// `video.srt`, `video.vtt` and `video.<lang>.srt/.vtt` next to `video.mp4`, sorted.
pub fn sidecars(video: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(stem)) = (video.parent(), video.file_stem().and_then(|s| s.to_str()))
    else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let ext_ok = name.ends_with(".srt") || name.ends_with(".vtt");
            let base = &name[..name.len().saturating_sub(4)];
            ext_ok
                && (base == stem
                    || base
                        .strip_prefix(stem)
                        .and_then(|r| r.strip_prefix('.'))
                        .is_some_and(|lang| !lang.is_empty() && !lang.contains('.')))
                && p.is_file()
        })
        .collect();
    found.sort();
    found
}

/// A subtitle file's bytes as text: by its byte-order mark (UTF-8, UTF-16), else UTF-8,
/// else GB18030 (the encoding of most Chinese .srt files that are not UTF-8; it covers
/// GBK and GB2312); anything that is none of these is refused, naming the file.
pub fn decode(bytes: &[u8], name: &str) -> Result<String> {
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        return encoding
            .decode_without_bom_handling_and_without_replacement(&bytes[bom..])
            .map(|text| text.into_owned())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "subtitles {name}: starts with a {} byte-order mark but is not {0} text",
                    encoding.name()
                ))
            });
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok(text.to_string());
    }
    encoding_rs::GB18030
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|text| text.into_owned())
        .ok_or_else(|| {
            Error::invalid(format!(
                "subtitles {name}: not UTF-8, UTF-16 or GB18030 text; save it as UTF-8"
            ))
        })
}

/// Reads and parses sidecar subtitle files.
pub async fn read_sidecars(paths: &[PathBuf]) -> Result<Vec<Cue>> {
    let mut cues = Vec::new();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = tokio::fs::read(path).await?;
        let text = decode(&bytes, &name)?;
        cues.extend(parse(&text, &format!("subtitles {name}"))?);
    }
    cues.sort_by_key(|c| c.start_ms);
    Ok(cues)
}

/// The first text subtitle stream of a video, if any, as cues.
pub async fn read_stream(ffmpeg: &str, video: &Path, probe: &ProbeRecord) -> Result<Vec<Cue>> {
    let Some(position) = probe
        .streams
        .iter()
        .filter(|s| s.kind == "subtitle")
        .position(|s| TEXT_CODECS.contains(&s.codec.as_str()))
    else {
        return Ok(Vec::new());
    };
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(video)
        .args(["-map", &format!("0:s:{position}"), "-f", "srt", "pipe:1"]);
    let out = process::output(cmd, ffmpeg, "extracting subtitles").await?;
    parse(&String::from_utf8_lossy(&out), "subtitle stream")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtitle_files_decode_from_utf8_utf16_and_gb18030() {
        let srt = "1\n00:00:01,000 --> 00:00:02,000\n今天的足球比赛很精彩\n";
        let (gb, _, unmappable) = encoding_rs::GB18030.encode(srt);
        assert!(!unmappable);
        assert!(std::str::from_utf8(&gb).is_err(), "really not UTF-8");
        assert_eq!(decode(&gb, "a.srt").unwrap(), srt);
        assert_eq!(decode(srt.as_bytes(), "a.srt").unwrap(), srt);
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(srt.as_bytes());
        assert_eq!(decode(&bom, "a.srt").unwrap(), srt);
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend(srt.encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(decode(&utf16, "a.srt").unwrap(), srt);
        let err = decode(&[0x31, 0xFF, 0xFF, 0x0A], "b.srt")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("subtitles b.srt") && err.contains("UTF-8"),
            "{err}"
        );
        assert_eq!(
            parse(&decode(&gb, "a.srt").unwrap(), "a.srt").unwrap()[0].text,
            "今天的足球比赛很精彩"
        );
    }

    #[test]
    fn srt_and_vtt_parse_with_markup_removed() {
        let srt = "1\r\n00:00:01,500 --> 00:00:03,000\r\n<i>Hello</i> there,\r\nfriend.\r\n\r\n2\r\n00:01:02,000 --> 00:01:04,250\r\n{\\an8}Goal!\r\n";
        let cues = parse(srt, "a.srt").unwrap();
        assert_eq!(
            cues,
            vec![
                Cue {
                    start_ms: 1_500,
                    end_ms: 3_000,
                    text: "Hello there, friend.".into()
                },
                Cue {
                    start_ms: 62_000,
                    end_ms: 64_250,
                    text: "Goal!".into()
                },
            ]
        );
        let vtt = "WEBVTT\n\nNOTE made by hand\n\n00:05.000 --> 00:06.500 align:start\nShort form\n\nintro\n01:00:00.000 --> 01:00:01.000\nHour form";
        let cues = parse(vtt, "a.vtt").unwrap();
        assert_eq!(
            cues[0],
            Cue {
                start_ms: 5_000,
                end_ms: 6_500,
                text: "Short form".into()
            }
        );
        assert_eq!(cues[1].start_ms, 3_600_000);
    }

    #[test]
    fn broken_timestamps_are_refused_naming_the_cue_and_field() {
        for (text, expect) in [
            ("1\n00:00:01,000 --> 00:00:0x,000\nHi", "cue 1: end time"),
            (
                "1\n00:00:01,000 --> 00:00:02,000\nA\n\n2\n00:61:00,000 --> 00:62:00,000\nB",
                "cue 2: start time",
            ),
            (
                "1\n00:00:05,000 --> 00:00:02,000\nBackwards",
                "ends (00:00:02,000) before",
            ),
            ("1\njust text\n", "no \"start --> end\""),
        ] {
            let err = parse(text, "subtitles x.srt").unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{err}");
            assert!(err.to_string().contains("subtitles x.srt"), "{err}");
            assert!(
                err.to_string().contains(expect),
                "{err} should say {expect}"
            );
        }
    }

    #[test]
    fn sidecars_are_found_by_stem_and_language() {
        let dir = tempfile::tempdir().unwrap();
        let video = dir.path().join("match.mp4");
        for name in [
            "match.mp4",
            "match.srt",
            "match.en.vtt",
            "match.final.cut.srt",
            "other.srt",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let found: Vec<String> = sidecars(&video)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(found, vec!["match.en.vtt", "match.srt"]);
    }
}
