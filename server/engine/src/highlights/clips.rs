//! Delivering a moment as a playable clip (the design serves clips to users through a
//! CDN): a stored video's range cut to MP4, by stream copy from the keyframe before it
//! when the caller takes that (fast, untouched), else re-encoded (a frame-accurate start,
//! or a smaller picture). The clip is a temporary file removed when its `Clip` is dropped.

use std::path::PathBuf;

use reelforge_core::error::{Error, Result};
use reelforge_media::cut::{self, CutMode};

use super::{media_of, Highlights};

/// The longest clip delivered (a moment, not a copy of the library).
pub const MAX_CLIP_MS: i64 = 10 * 60 * 1000;

/// What a caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipRequest {
    pub start_ms: i64,
    pub end_ms: i64,
    /// Scale down to at most this many lines (re-encodes); `None`: the source's picture.
    pub max_height: Option<u32>,
    /// Start exactly at `start_ms` (re-encodes) instead of the keyframe before it.
    pub exact: bool,
}

/// A cut clip: its file (removed on drop) and what it holds.
pub struct Clip {
    pub path: PathBuf,
    pub video_id: String,
    /// Where it really starts (the keyframe before the asked start, for stream copy).
    pub start_ms: i64,
    pub end_ms: i64,
    pub stream_copy: bool,
    pub bytes: u64,
}

impl Drop for Clip {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Highlights {
    /// Cuts `req` out of stored video `video_id`.
    pub async fn clip(&self, tenant: &str, video_id: &str, req: ClipRequest) -> Result<Clip> {
        let video = self.catalog.owned(tenant, video_id).await?;
        let stream = media_of(&video)?;
        let duration_ms = video.probe.duration_ms;
        let ClipRequest {
            start_ms,
            end_ms,
            max_height,
            exact,
        } = req;
        if start_ms < 0 || start_ms >= duration_ms {
            return Err(Error::invalid(format!(
                "start_ms must be within the video (0 to {duration_ms} ms), got {start_ms}"
            )));
        }
        if end_ms <= start_ms {
            return Err(Error::invalid(format!(
                "end_ms must be after start_ms ({start_ms}), got {end_ms}"
            )));
        }
        if end_ms - start_ms > MAX_CLIP_MS {
            return Err(Error::invalid(format!(
                "a clip lasts at most {} minutes; end_ms - start_ms is {} ms",
                MAX_CLIP_MS / 60_000,
                end_ms - start_ms
            )));
        }
        if let Some(h) = max_height {
            if !(16..=4320).contains(&h) {
                return Err(Error::invalid(format!(
                    "max_height must be 0 (the source's) or 16 to 4320 lines, got {h}"
                )));
            }
        }
        // A height at or above the source's changes nothing: no reason to re-encode.
        let max_height = max_height.filter(|&h| i64::from(h) < i64::from(stream.height));
        let dir = self.root.join(".clips");
        tokio::fs::create_dir_all(&dir).await?;
        let path = dir.join(format!("{}.mp4", uuid::Uuid::new_v4()));
        let mut clip = Clip {
            path,
            video_id: video_id.to_string(),
            start_ms,
            end_ms: end_ms.min(duration_ms),
            stream_copy: false,
            bytes: 0,
        };
        let delivered = cut::cut_for_delivery(
            &self.ffmpeg,
            std::path::Path::new(&video.source_path),
            (clip.start_ms, clip.end_ms),
            &video.probe.keyframes_ms,
            max_height,
            exact,
            &clip.path,
        )
        .await?;
        clip.start_ms = delivered.start_ms;
        clip.stream_copy = delivered.mode == CutMode::StreamCopy;
        clip.bytes = tokio::fs::metadata(&clip.path).await?.len();
        Ok(clip)
    }
}
