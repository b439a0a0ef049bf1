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
    if start_ms < 0 || end_ms <= start_ms {
        return Err(Error::invalid(format!(
            "cut range {start_ms}..{end_ms} ms is empty or negative"
        )));
    }
    let mode = cut_mode(start_ms, keyframes_ms);
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
            cmd.args(["-map", "0:v:0", "-map", "0:a:0?"])
                .args(["-c:v", "libx264", "-preset", "veryfast", "-crf", "20"])
                .args(["-c:a", "aac", "-b:a", "128k"]);
        }
    }
    cmd.args(["-movflags", "+faststart"]).arg(out);
    process::output(cmd, ffmpeg, "cut").await?;
    Ok(mode)
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
