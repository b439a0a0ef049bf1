//! Cutting a time range out of a video: by stream copy when the range starts on a
//! keyframe (fast, lossless), otherwise by re-encoding so the cut is frame-accurate.

use std::path::Path;

use tokio::process::Command;

use crate::process;
use reelforge_core::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutMode {
    StreamCopy,
    Reencode,
}

/// A keyframe this close to the start (in ms) counts as "on" it.
const KEYFRAME_TOLERANCE_MS: i64 = 20;

/// Whether `[start_ms, ..)` can be cut by stream copy given the source's keyframes.
pub fn cut_mode(start_ms: i64, keyframes_ms: &[i64]) -> CutMode {
    let on_keyframe = keyframes_ms
        .iter()
        .any(|&k| (k - start_ms).abs() <= KEYFRAME_TOLERANCE_MS);
    if on_keyframe {
        CutMode::StreamCopy
    } else {
        CutMode::Reencode
    }
}

/// Writes `[start_ms, end_ms)` of `source` to `out` (an .mp4 path).
pub async fn cut(
    ffmpeg: &str,
    source: &Path,
    start_ms: i64,
    end_ms: i64,
    keyframes_ms: &[i64],
    out: &Path,
) -> Result<CutMode> {
    let mode = cut_mode(start_ms, keyframes_ms);
    run_cut(ffmpeg, source, (start_ms, end_ms), mode, None, out).await?;
    Ok(mode)
}

/// A moment cut to be delivered: where it really starts and how it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub start_ms: i64,
    pub end_ms: i64,
    pub mode: CutMode,
}

/// Cuts `[start_ms, end_ms)` of `source` for delivery: by stream copy from the keyframe
/// at or before `start_ms` (the moment plays from a little earlier, untouched and fast)
/// unless `exact` asks for a frame-accurate start or `max_height` for a smaller picture,
/// which re-encode (scaled to at most `max_height` lines, aspect kept).
pub async fn cut_for_delivery(
    ffmpeg: &str,
    source: &Path,
    (start_ms, end_ms): (i64, i64),
    keyframes_ms: &[i64],
    max_height: Option<u32>,
    exact: bool,
    out: &Path,
) -> Result<Delivered> {
    let keyframe = keyframes_ms
        .iter()
        .copied()
        .filter(|&k| k <= start_ms + KEYFRAME_TOLERANCE_MS)
        .max()
        .unwrap_or(0);
    let (start_ms, mode) = match (exact, max_height) {
        (false, None) => (keyframe.min(start_ms), CutMode::StreamCopy),
        _ => (start_ms, CutMode::Reencode),
    };
    run_cut(ffmpeg, source, (start_ms, end_ms), mode, max_height, out).await?;
    Ok(Delivered {
        start_ms,
        end_ms,
        mode,
    })
}

async fn run_cut(
    ffmpeg: &str,
    source: &Path,
    (start_ms, end_ms): (i64, i64),
    mode: CutMode,
    max_height: Option<u32>,
    out: &Path,
) -> Result<()> {
    if start_ms < 0 || end_ms <= start_ms {
        return Err(Error::invalid(format!(
            "cut range {start_ms}..{end_ms} ms is empty or negative"
        )));
    }
    let seconds = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-hide_banner", "-nostdin", "-v", "error", "-y"])
        .args(["-ss", &seconds(start_ms), "-i"])
        .arg(source)
        .args(["-t", &seconds(end_ms - start_ms)]);
    match mode {
        CutMode::StreamCopy => {
            cmd.args(["-map", "0:v:0", "-map", "0:a:0?", "-c", "copy"])
                .args(["-avoid_negative_ts", "make_zero"]);
        }
        CutMode::Reencode => {
            cmd.args(["-map", "0:v:0", "-map", "0:a:0?"]);
            if let Some(h) = max_height {
                // Never upscaled; even width and height for x264.
                cmd.args(["-vf", &format!("scale=-2:'trunc(min({h},ih)/2)*2'")]);
            }
            cmd.args(["-c:v", "libx264", "-preset", "veryfast", "-crf", "20"])
                .args(["-c:a", "aac", "-b:a", "128k"]);
        }
    }
    cmd.args(["-movflags", "+faststart"]).arg(out);
    process::output(cmd, ffmpeg, "cut").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_copy_only_on_keyframes() {
        let keys = [0, 2000, 4000];
        assert_eq!(cut_mode(2000, &keys), CutMode::StreamCopy);
        assert_eq!(cut_mode(2010, &keys), CutMode::StreamCopy);
        assert_eq!(cut_mode(2500, &keys), CutMode::Reencode);
    }
}
