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

impl RgbImage {
    /// Decodes a baseline or progressive JPEG (as the decode pass writes thumbnails).
    pub fn from_jpeg(bytes: &[u8]) -> Result<RgbImage> {
        let mut decoder = jpeg_decoder::Decoder::new(bytes);
        let data = decoder
            .decode()
            .map_err(|e| Error::invalid(format!("not a readable JPEG: {e}")))?;
        let info = decoder
            .info()
            .ok_or_else(|| Error::invalid("not a readable JPEG: no frame header"))?;
        let pixels = match info.pixel_format {
            jpeg_decoder::PixelFormat::RGB24 => data,
            jpeg_decoder::PixelFormat::L8 => data.iter().flat_map(|&l| [l, l, l]).collect(),
            other => {
                return Err(Error::invalid(format!(
                    "JPEG pixel format {other:?} is not supported (RGB or grey only)"
                )))
            }
        };
        Ok(RgbImage {
            width: info.width as u32,
            height: info.height as u32,
            pixels,
        })
    }

    /// The `width x height` region at (`x`, `y`), clipped to the picture.
    pub fn crop(&self, x: u32, y: u32, width: u32, height: u32) -> RgbImage {
        let x = x.min(self.width);
        let y = y.min(self.height);
        let width = width.min(self.width - x);
        let height = height.min(self.height - y);
        let mut pixels = Vec::with_capacity((width * height * 3) as usize);
        for row in y..y + height {
            let start = ((row * self.width + x) * 3) as usize;
            pixels.extend_from_slice(&self.pixels[start..start + (width * 3) as usize]);
        }
        RgbImage {
            width,
            height,
            pixels,
        }
    }

    /// Scaled to `width x height` (bilinear, pixel centres aligned as OpenCV's `resize`).
    pub fn resized(&self, width: u32, height: u32) -> RgbImage {
        let (sw, sh) = (self.width.max(1) as usize, self.height.max(1) as usize);
        let (dw, dh) = (width.max(1) as usize, height.max(1) as usize);
        if self.pixels.is_empty() {
            return RgbImage {
                width: dw as u32,
                height: dh as u32,
                pixels: vec![0; dw * dh * 3],
            };
        }
        // Per destination column: the two source columns and the weight of the second.
        let taps = |dst: usize, src: usize| -> Vec<(usize, usize, f32)> {
            let scale = src as f32 / dst as f32;
            (0..dst)
                .map(|d| {
                    let s = ((d as f32 + 0.5) * scale - 0.5).max(0.0);
                    let i = (s as usize).min(src - 1);
                    (i, (i + 1).min(src - 1), s - i as f32)
                })
                .collect()
        };
        let (cols, rows) = (taps(dw, sw), taps(dh, sh));
        let mut pixels = vec![0u8; dw * dh * 3];
        let px = |x: usize, y: usize, c: usize| self.pixels[(y * sw + x) * 3 + c] as f32;
        for (y, &(y0, y1, fy)) in rows.iter().enumerate() {
            for (x, &(x0, x1, fx)) in cols.iter().enumerate() {
                for c in 0..3 {
                    let top = px(x0, y0, c) * (1.0 - fx) + px(x1, y0, c) * fx;
                    let bottom = px(x0, y1, c) * (1.0 - fx) + px(x1, y1, c) * fx;
                    pixels[(y * dw + x) * 3 + c] =
                        (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
        RgbImage {
            width: dw as u32,
            height: dh as u32,
            pixels,
        }
    }
}
