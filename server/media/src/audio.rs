//! Whole-file audio as 16 kHz mono samples (what speech models read), for benchmarks and
//! tools; ingest streams audio through the decode pass instead.

use std::path::Path;

use tokio::process::Command;

use crate::decode::AUDIO_RATE;
use crate::process;
use reelforge_core::error::Result;

/// Decodes the first audio stream of `path` to 16 kHz mono in -1..1.
pub async fn read_pcm(ffmpeg: &str, path: &Path) -> Result<Vec<f32>> {
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-ac", "1", "-ar", &AUDIO_RATE.to_string()])
        .args(["-f", "s16le", "pipe:1"]);
    let bytes = process::output(
        cmd,
        ffmpeg,
        &format!("decoding audio of {}", path.display()),
    )
    .await?;
    Ok(bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
        .collect())
}
