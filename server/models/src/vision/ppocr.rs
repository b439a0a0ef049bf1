//! `PpOcrReader`: PaddleOCR's PP-OCRv6 small detector and recogniser (Chinese and
//! English, 18,708 characters) as PyPI's `rapidocr` ships them in ONNX, on ONNX Runtime.
//!
//! Detection (DB): the picture (BGR, (x/255 - 0.5) / 0.5, its sides rounded to multiples
//! of 32, the shorter at least `DET_MIN_SIDE`) gives a text probability map; pixels above
//! 0.3, dilated by one, make connected regions; a region whose mean probability is at
//! least 0.5 is a line, its box grown by area * 1.6 / perimeter on every side (DB's
//! "unclip"). Boxes are axis-aligned (RapidOCR fits rotated rectangles; on-screen text in
//! video is level). Recognition (CTC): each line cut out, scaled to 48 rows (at least 320
//! columns wide, padded), greedy CTC decoding over the dictionary the model file carries
//! (`character` in its metadata; a blank before and a space after, as RapidOCR adds).
//! RapidOCR's upside-down classifier is not run: text burnt into video is upright.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ort::session::Session;
use ort::value::Tensor;
use reelforge_core::error::{Error, Result};
use reelforge_core::BoxFuture;
use reelforge_media::images::RgbImage;

use super::{TextLine, TextReader, TEXT_SCORE};
use crate::{EmbedPurpose, InferencePools};

/// The detector reads pictures with a shorter side of at least this many pixels.
const DET_MIN_SIDE: u32 = 192;
/// Probability a text pixel has, and that a line's region has on average.
const PIXEL_THRESHOLD: f32 = 0.3;
const BOX_THRESHOLD: f32 = 0.5;
const UNCLIP_RATIO: f32 = 1.6;
/// Regions thinner than this (in map pixels) are noise.
const MIN_SIDE: f32 = 3.0;
const REC_HEIGHT: u32 = 48;
const REC_MIN_WIDTH: u32 = 320;

pub struct PpOcrReader {
    inner: Arc<Inner>,
    pools: InferencePools,
}

struct Inner {
    det: Mutex<Session>,
    rec: Mutex<Session>,
    /// Index 0 is CTC's blank.
    dictionary: Vec<String>,
}

impl PpOcrReader {
    pub const NAME: &'static str = "local:pp-ocrv6";
    pub const DIR_NAME: &'static str = "pp-ocrv6";

    /// Where the models live under `models_dir`.
    pub fn dir_in(models_dir: &Path) -> PathBuf {
        models_dir.join(Self::DIR_NAME)
    }

    /// Loads `det.onnx` and `rec.onnx` from `dir`, on the ONNX Runtime installed under
    /// `models_dir`.
    pub fn load(models_dir: &Path, dir: &Path, threads: usize) -> Result<PpOcrReader> {
        let det = crate::onnx::session(models_dir, &dir.join("det.onnx"), threads)?;
        let rec_path = dir.join("rec.onnx");
        let rec = crate::onnx::session(models_dir, &rec_path, threads)?;
        let characters = rec
            .metadata()
            .ok()
            .and_then(|m| m.custom("character"))
            .ok_or_else(|| {
                Error::FailedPrecondition(format!(
                    "{}: no `character` dictionary in its metadata (PP-OCRv6 from rapidocr \
                     3.10.0 has one)",
                    rec_path.display()
                ))
            })?;
        let mut dictionary = vec![String::new()];
        dictionary.extend(characters.lines().map(str::to_string));
        dictionary.push(" ".into());
        Ok(PpOcrReader {
            inner: Arc::new(Inner {
                det: Mutex::new(det),
                rec: Mutex::new(rec),
                dictionary,
            }),
            pools: InferencePools::new("ppocr", threads)?,
        })
    }
}

impl TextReader for PpOcrReader {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn read<'a>(&'a self, picture: RgbImage) -> BoxFuture<'a, Result<Vec<TextLine>>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            self.pools
                .run(EmbedPurpose::Index, move || inner.read(&picture))
                .await
        })
    }
}

/// A picture as a (1, 3, h, w) BGR tensor scaled to -1..1, `width` columns wide (the
/// picture's own width or more; the rest zero).
fn bgr_tensor(picture: &RgbImage, width: u32) -> Vec<f32> {
    let (w, h) = (picture.width as usize, picture.height as usize);
    let plane = h * width as usize;
    let mut data = vec![0f32; 3 * plane];
    for y in 0..h {
        for x in 0..w {
            let px = &picture.pixels[(y * w + x) * 3..(y * w + x) * 3 + 3];
            for (c, &v) in [px[2], px[1], px[0]].iter().enumerate() {
                data[c * plane + y * width as usize + x] = (v as f32 / 255.0 - 0.5) / 0.5;
            }
        }
    }
    data
}

impl Inner {
    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::internal(format!("{}: {e}", PpOcrReader::NAME))
    }

    fn read(&self, picture: &RgbImage) -> Result<Vec<TextLine>> {
        if picture.width < 8 || picture.height < 8 {
            return Ok(Vec::new());
        }
        let mut lines = Vec::new();
        for [x, y, w, h] in self.detect(picture)? {
            let mut crop = picture.crop(x, y, w, h);
            if crop.height * 2 >= crop.width * 3 {
                crop = rotate_left(&crop);
            }
            let (text, score) = self.recognise(&crop)?;
            if score >= TEXT_SCORE && !text.trim().is_empty() {
                lines.push(TextLine {
                    text: text.trim().to_string(),
                    score,
                    bbox: [x, y, w, h],
                });
            }
        }
        Ok(lines)
    }

    /// The boxes of the lines of text on `picture`, top to bottom, left to right.
    fn detect(&self, picture: &RgbImage) -> Result<Vec<[u32; 4]>> {
        let (src_w, src_h) = (picture.width, picture.height);
        let ratio = (DET_MIN_SIDE as f32 / src_w.min(src_h) as f32).max(1.0);
        let round32 = |n: u32| ((n as f32 * ratio / 32.0).round() as u32).max(1) * 32;
        let (map_w, map_h) = (round32(src_w), round32(src_h));
        let input = picture.resized(map_w, map_h);
        let tensor = Tensor::from_array((
            [1usize, 3, map_h as usize, map_w as usize],
            bgr_tensor(&input, map_w),
        ))
        .map_err(|e| self.err(e))?;
        let probs: Vec<f32> = {
            let mut det = self.det.lock().unwrap_or_else(|e| e.into_inner());
            let outputs = det
                .run(ort::inputs!["x" => tensor])
                .map_err(|e| self.err(e))?;
            let (_, p) = outputs[0]
                .try_extract_tensor::<f32>()
                .map_err(|e| self.err(e))?;
            p.to_vec()
        };
        let (mw, mh) = (map_w as usize, map_h as usize);
        if probs.len() != mw * mh {
            return Err(self.err(format!(
                "the detector's map has {} values, {mw}x{mh} expected",
                probs.len()
            )));
        }
        // Text pixels, dilated by one (a 2x2 kernel).
        let text: Vec<bool> = (0..mh * mw)
            .map(|i| {
                let (y, x) = (i / mw, i % mw);
                [(0, 0), (0, 1), (1, 0), (1, 1)].iter().any(|&(dy, dx)| {
                    y >= dy && x >= dx && probs[(y - dy) * mw + x - dx] > PIXEL_THRESHOLD
                })
            })
            .collect();
        let mut boxes = Vec::new();
        for (x0, y0, x1, y1) in regions(&text, mw, mh) {
            let (w, h) = ((x1 - x0) as f32, (y1 - y0) as f32);
            if w.min(h) < MIN_SIDE {
                continue;
            }
            let mut sum = 0.0;
            for y in y0..=y1 {
                sum += probs[y * mw + x0..=y * mw + x1].iter().sum::<f32>();
            }
            if sum / (((x1 - x0 + 1) * (y1 - y0 + 1)) as f32) < BOX_THRESHOLD {
                continue;
            }
            let grow = w * h * UNCLIP_RATIO / (2.0 * (w + h));
            if (w.min(h) + 2.0 * grow) < MIN_SIDE + 2.0 {
                continue;
            }
            let to_src = |v: f32, map: u32, src: u32| {
                (v / map as f32 * src as f32).round().clamp(0.0, src as f32) as u32
            };
            let left = to_src(x0 as f32 - grow, map_w, src_w);
            let top = to_src(y0 as f32 - grow, map_h, src_h);
            let right = to_src(x1 as f32 + grow, map_w, src_w);
            let bottom = to_src(y1 as f32 + grow, map_h, src_h);
            if right - left > 3 && bottom - top > 3 {
                boxes.push([left, top, right - left, bottom - top]);
            }
        }
        // Reading order: rows (boxes whose tops are within 10 px), then left to right.
        boxes.sort_by_key(|b| (b[1], b[0]));
        for i in 1..boxes.len() {
            let mut j = i;
            while j > 0
                && boxes[j][1].abs_diff(boxes[j - 1][1]) < 10
                && boxes[j][0] < boxes[j - 1][0]
            {
                boxes.swap(j, j - 1);
                j -= 1;
            }
        }
        Ok(boxes)
    }

    /// The text of one cut-out line and the mean probability of its characters.
    fn recognise(&self, line: &RgbImage) -> Result<(String, f32)> {
        let ratio = line.width as f32 / line.height.max(1) as f32;
        let resized_w = ((REC_HEIGHT as f32 * ratio).ceil() as u32).max(1);
        let width = resized_w.max(REC_MIN_WIDTH);
        let input = line.resized(resized_w, REC_HEIGHT);
        let tensor = Tensor::from_array((
            [1usize, 3, REC_HEIGHT as usize, width as usize],
            bgr_tensor(&input, width),
        ))
        .map_err(|e| self.err(e))?;
        let mut rec = self.rec.lock().unwrap_or_else(|e| e.into_inner());
        let outputs = rec
            .run(ort::inputs!["x" => tensor])
            .map_err(|e| self.err(e))?;
        let (shape, probs) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| self.err(e))?;
        let classes = *shape.last().unwrap_or(&0) as usize;
        if classes != self.dictionary.len() {
            return Err(self.err(format!(
                "the recogniser scores {classes} characters, its dictionary has {}",
                self.dictionary.len()
            )));
        }
        let (mut text, mut scores, mut previous) = (String::new(), Vec::new(), 0usize);
        for step in probs.chunks_exact(classes) {
            let (best, p) = step
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, &p)| (i, p))
                .unwrap_or((0, 0.0));
            if best != 0 && best != previous {
                text.push_str(&self.dictionary[best]);
                scores.push(p);
            }
            previous = best;
        }
        let score = if scores.is_empty() {
            0.0
        } else {
            scores.iter().sum::<f32>() / scores.len() as f32
        };
        Ok((text, score))
    }
}

/// The bounding boxes (x0, y0, x1, y1, inclusive) of the 8-connected regions of `on`.
fn regions(on: &[bool], w: usize, h: usize) -> Vec<(usize, usize, usize, usize)> {
    let mut seen = vec![false; on.len()];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..on.len() {
        if !on[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
        while let Some(i) = stack.pop() {
            let (y, x) = (i / w, i % w);
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            for dy in -1isize..=1 {
                for dx in -1isize..=1 {
                    let (ny, nx) = (y as isize + dy, x as isize + dx);
                    if ny < 0 || nx < 0 || ny >= h as isize || nx >= w as isize {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if on[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        out.push((x0, y0, x1, y1));
    }
    out
}

/// `picture` turned a quarter left (as RapidOCR turns tall crops).
fn rotate_left(picture: &RgbImage) -> RgbImage {
    let (w, h) = (picture.width as usize, picture.height as usize);
    let mut pixels = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            // (x, y) goes to (y, w - 1 - x) in an h-wide picture.
            let to = ((w - 1 - x) * h + y) * 3;
            pixels[to..to + 3]
                .copy_from_slice(&picture.pixels[(y * w + x) * 3..(y * w + x) * 3 + 3]);
        }
    }
    RgbImage {
        width: h as u32,
        height: w as u32,
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;
    use crate::testing;
    use reelforge_core::eval::character_error_rate;

    /// The bikes clip's picture at 3 s as a 180p thumbnail, with `captions` (text, font
    /// size, top row) drawn by ffmpeg's drawtext in the CJK font setup installs.
    pub(crate) async fn captioned(captions: &[(&str, u32, u32)]) -> RgbImage {
        let font = testing::asset("fonts/wqy-microhei.ttc");
        let mut filter = String::from("scale=-2:180");
        for (text, size, y) in captions {
            filter.push_str(&format!(
                ",drawtext=fontfile={}:text='{text}':fontsize={size}:fontcolor=white:\
                 borderw=1:bordercolor=black:x=16:y={y}",
                font.display()
            ));
        }
        let out = tokio::process::Command::new("ffmpeg")
            .args(["-v", "error", "-ss", "3", "-i"])
            .arg(testing::asset("samples/bikes.mp4"))
            .args(["-frames:v", "1", "-vf", &filter])
            .args(["-f", "image2pipe", "-c:v", "mjpeg", "pipe:1"])
            .output()
            .await
            .expect("ffmpeg runs");
        RgbImage::from_jpeg(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: {} (run scripts/setup.sh)",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    #[tokio::test]
    async fn reads_english_and_chinese_captions_and_passes_the_conformance_suite() {
        let reader = testing::text_reader();
        let plain = captioned(&[]).await;
        let english = captioned(&[("STAGE 3 FINISH", 22, 20)]).await;
        conformance::text_reader(reader, &english, "STAGE 3 FINISH", (20, 50), &plain).await;
        let chinese = captioned(&[("第三赛段 终点", 22, 140)]).await;
        conformance::text_reader(reader, &chinese, "第三赛段终点", (140, 170), &plain).await;
        // Character error rates over captions of several sizes, for the record.
        let cases = [
            ("LIVE FROM BRUSSELS", 18),
            ("KM 42 TO GO", 16),
            ("冠军 李明", 20),
            ("比赛结束", 14),
            ("Final score 3-1", 20),
        ];
        let mut errors = Vec::new();
        for (text, size) in cases {
            let lines = reader
                .read(captioned(&[(text, size, 60)]).await)
                .await
                .unwrap();
            let read: String = lines
                .iter()
                .map(|l| l.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let cer = character_error_rate(text, &read);
            eprintln!("OCR {text:?} at {size} px -> {read:?} (CER {cer:.3})");
            errors.push(cer);
        }
        assert!(
            errors.iter().sum::<f64>() / errors.len() as f64 <= 0.2,
            "mean CER {errors:?}"
        );
    }
}
