//! Analysis proxies: a range of a video re-encoded small (at most 480 lines, 1 frame a
//! second, a low bitrate, no audio) before it is sent to a vision-language model. Nova
//! samples video at 1 fps and resizes frames to 672×672, so the proxy loses nothing the
//! model would see and costs far fewer bytes. Embedding proxies (`ProxySpec::EMBEDDING`)
//! keep more frames and a mono audio track, as the embedding reads sound and picture.

use std::path::Path;

use tokio::process::Command;

use crate::process;
use reelforge_core::error::Result;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProxySpec {
    /// Frames are scaled down (never up) to this height.
    pub max_height: u32,
    pub fps: f64,
    pub video_kbps: u32,
    /// 0: no audio; otherwise mono AAC at this bitrate.
    pub audio_kbps: u32,
}

impl ProxySpec {
    /// For video embeddings (sound and picture together).
    pub const EMBEDDING: ProxySpec = ProxySpec {
        max_height: 480,
        fps: 4.0,
        video_kbps: 300,
        audio_kbps: 48,
    };
}

impl Default for ProxySpec {
    fn default() -> Self {
        ProxySpec {
            max_height: 480,
            fps: 1.0,
            video_kbps: 200,
            audio_kbps: 0,
        }
    }
}

/// Writes the proxy of `[start_ms, end_ms)` of `source` to `out` (.mp4); its size.
pub async fn make(
    ffmpeg: &str,
    source: &Path,
    start_ms: i64,
    end_ms: i64,
    spec: ProxySpec,
    out: &Path,
) -> Result<u64> {
    let secs = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
    let filter = format!(
        "scale=-2:'min({},ih)',fps={},format=yuv420p",
        spec.max_height, spec.fps
    );
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-hide_banner", "-nostdin", "-v", "error", "-y"])
        .args(["-ss", &secs(start_ms), "-t", &secs(end_ms - start_ms), "-i"])
        .arg(source)
        .args(["-vf", &filter, "-c:v", "libx264", "-preset", "veryfast"]);
    match spec.audio_kbps {
        0 => cmd.arg("-an"),
        kbps => cmd.args(["-c:a", "aac", "-ac", "1", "-b:a", &format!("{kbps}k")]),
    };
    cmd.args(["-b:v", &format!("{}k", spec.video_kbps)])
        .args(["-maxrate", &format!("{}k", spec.video_kbps * 3 / 2)])
        .args(["-bufsize", &format!("{}k", spec.video_kbps * 3)])
        .args(["-movflags", "+faststart"])
        .arg(out);
    process::output(cmd, ffmpeg, "making an analysis proxy").await?;
    Ok(tokio::fs::metadata(out).await?.len())
}
