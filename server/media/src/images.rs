//! Reading stored thumbnails back as RGB squares (for image embedders), in batches, so
//! memory stays flat however many thumbnails a video has.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncReadExt;
use tokio::process::{ChildStdout, Command};

use crate::process::{self, MediaChild};
use reelforge_core::error::{Error, Result};

/// An 8-bit RGB picture, row-major, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// The JPEG sequence `dir/%06d.jpg` (as the decode pass writes it), each scaled so its
/// shorter side is `side` and centre-cropped to `side x side`.
pub struct ThumbnailReader {
    child: MediaChild,
    stdout: ChildStdout,
    side: u32,
}

impl ThumbnailReader {
    pub fn open(ffmpeg: &str, dir: &Path, side: u32) -> Result<Self> {
        let mut cmd = Command::new(ffmpeg);
        cmd.args([
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-f",
            "image2",
            "-i",
        ])
        .arg(dir.join("%06d.jpg"))
        .args([
            "-vf",
            &format!("scale={side}:{side}:force_original_aspect_ratio=increase,crop={side}:{side}"),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "pipe:1",
        ])
        .stdout(Stdio::piped());
        let mut child = process::spawn(cmd, ffmpeg)?;
        let stdout = child.child.stdout.take().expect("stdout was piped");
        Ok(ThumbnailReader {
            child,
            stdout,
            side,
        })
    }

    /// Up to `n` next images, in order; empty at the end.
    pub async fn next_batch(&mut self, n: usize) -> Result<Vec<RgbImage>> {
        let frame_bytes = (self.side * self.side * 3) as usize;
        let mut images = Vec::with_capacity(n);
        while images.len() < n {
            let mut pixels = vec![0u8; frame_bytes];
            let mut filled = 0;
            while filled < frame_bytes {
                let read = self.stdout.read(&mut pixels[filled..]).await?;
                if read == 0 {
                    break;
                }
                filled += read;
            }
            if filled == 0 {
                break;
            }
            if filled < frame_bytes {
                return Err(Error::internal("ffmpeg ended in the middle of a thumbnail"));
            }
            images.push(RgbImage {
                width: self.side,
                height: self.side,
                pixels,
            });
        }
        Ok(images)
    }

    /// Waits for ffmpeg; its failure becomes an error with its stderr.
    pub async fn finish(self) -> Result<()> {
        drop(self.stdout);
        self.child.finish("reading thumbnails").await
    }
}
