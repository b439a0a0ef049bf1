//! Looking at a slice's pictures, off the decode consumer: the thumbnails the decode pass
//! writes (1 fps, 180p JPEG) go to the scene tagger (every `ingest.picture_every`-th) and
//! the text reader (every `ingest.text_every`-th: text stays on screen for seconds, and
//! reading costs more) on a task of the slice's own. The task waits for each
//! thumbnail to be complete on disk (the next one written, or the decode over), so it
//! never holds the decoder back.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{FutureExt, Shared};
use reelforge_core::error::{Error, Result};
use reelforge_media::images::RgbImage;
use reelforge_models::vision::{SceneTagger, Sight, TextLine, TextReader};

/// The thumbnails in `[start_ms, end_ms)` that are tagged (every `scene_every`-th of the
/// video's, `None`: none) or read (every `text_every`-th), as sights to fill.
fn grid(
    (start_ms, end_ms): (i64, i64),
    fps: f64,
    duration_ms: i64,
    scene_every: Option<u32>,
    text_every: Option<u32>,
) -> Vec<(u64, Sight)> {
    let at = |n: u64| (n as f64 * 1000.0 / fps).round() as i64;
    let until = |n: u64, every: Option<u32>| match every.map(u64::from) {
        Some(every) if n.is_multiple_of(every) => at(n + every).min(duration_ms).max(at(n) + 1),
        _ => 0,
    };
    let first = (start_ms as f64 * fps / 1000.0).ceil() as u64;
    (first..)
        .take_while(|&n| at(n) < end_ms)
        .map(|n| {
            let sight = Sight {
                t_ms: at(n),
                until_ms: until(n, scene_every),
                read_until_ms: until(n, text_every),
                ..Sight::default()
            };
            (n, sight)
        })
        .filter(|(_, s)| s.until_ms > 0 || s.read_until_ms > 0)
        .collect()
}

/// A picture is the same still as the one before it where their bytes differ by less than
/// `STILL_MEAN` on average and at most `STILL_CHANGED` of them by more than `STILL_BYTE`
/// (JPEG noise on a static shot stays under both; a caption written on part of the
/// picture changes more than that share of its bytes).
const STILL_MEAN: f64 = 2.0;
const STILL_BYTE: u8 = 24;
const STILL_CHANGED: f64 = 0.002;

/// Whether `b` is the same still picture as `a` (same size, every 3rd byte compared).
fn still(a: &RgbImage, b: &RgbImage) -> bool {
    if (a.width, a.height) != (b.width, b.height) || a.pixels.is_empty() {
        return false;
    }
    let (mut sum, mut changed, mut n) = (0u64, 0u64, 0u64);
    for (x, y) in a.pixels.iter().zip(&b.pixels).step_by(3) {
        let d = x.abs_diff(*y);
        sum += d as u64;
        changed += u64::from(d > STILL_BYTE);
        n += 1;
    }
    (sum as f64 / n as f64) < STILL_MEAN && (changed as f64 / n as f64) <= STILL_CHANGED
}

/// How often a task looks again for a thumbnail the decoder has not written yet.
const POLL: Duration = Duration::from_millis(20);

/// What a slice's pictures show, being worked out on a task of its own. Empty when
/// looking failed (logged): the slice is described without it.
pub(super) type Seen = Shared<Pin<Box<dyn Future<Output = Arc<Vec<Sight>>> + Send>>>;

/// Sets its flag when dropped: the decoder has exited (or was dropped with its job).
pub(super) struct DecodeEnded(Arc<AtomicBool>);

impl Drop for DecodeEnded {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// The picture models and where the thumbnails of this decode are written.
#[derive(Clone)]
pub(super) struct Seers {
    pub scene: Option<Arc<dyn SceneTagger>>,
    pub text: Option<Arc<dyn TextReader>>,
    pub dir: PathBuf,
    pub thumbnail_fps: f64,
    /// Every this many thumbnails, one is tagged; and one is read.
    pub scene_every: u32,
    pub text_every: u32,
    pub duration_ms: i64,
    /// Set when the decoder has exited: no more thumbnails will come.
    pub decoded: Arc<AtomicBool>,
}

impl Seers {
    /// `None` without a picture model.
    pub fn new(
        scene: Option<Arc<dyn SceneTagger>>,
        text: Option<Arc<dyn TextReader>>,
        dir: &Path,
        thumbnail_fps: f64,
        (scene_every, text_every): (u32, u32),
        duration_ms: i64,
    ) -> Option<Seers> {
        (scene.is_some() || text.is_some()).then(|| Seers {
            scene,
            text,
            dir: dir.to_path_buf(),
            thumbnail_fps,
            scene_every: scene_every.max(1),
            text_every: text_every.max(1),
            duration_ms,
            decoded: Arc::new(AtomicBool::new(false)),
        })
    }

    /// A guard that tells the picture tasks, when dropped, that no more thumbnails will
    /// come.
    pub fn decode_ended(&self) -> DecodeEnded {
        DecodeEnded(self.decoded.clone())
    }

    /// The thumbnails looked at in `[start_ms, end_ms)`, each as a sight to fill: its
    /// number, time, and until when its labels (`until_ms`) and lines (`read_until_ms`)
    /// stand for the video (0: not tagged, not read).
    fn pictures_in(&self, start_ms: i64, end_ms: i64) -> Vec<(u64, Sight)> {
        grid(
            (start_ms, end_ms),
            self.thumbnail_fps,
            self.duration_ms,
            self.scene.as_ref().map(|_| self.scene_every),
            self.text.as_ref().map(|_| self.text_every),
        )
    }

    /// Starts looking at the pictures of the slice `[start_ms, end_ms)` (number `index`).
    pub fn see(&self, start_ms: i64, end_ms: i64, index: u32) -> Seen {
        let seers = self.clone();
        let task = tokio::spawn(async move { seers.look(start_ms, end_ms).await });
        let seen: Pin<Box<dyn Future<Output = Arc<Vec<Sight>>> + Send>> = Box::pin(async move {
            let looked = task
                .await
                .unwrap_or_else(|e| Err(Error::internal(format!("looking at pictures: {e}"))));
            match looked {
                Ok(sights) => Arc::new(sights),
                Err(e) => {
                    tracing::warn!(
                        slice = index,
                        "the picture models failed: {e}; the slice is described without them"
                    );
                    Arc::new(Vec::new())
                }
            }
        });
        seen.shared()
    }

    async fn look(&self, start_ms: i64, end_ms: i64) -> Result<Vec<Sight>> {
        let mut sights = Vec::new();
        let mut pictures = Vec::new();
        for (n, mut sight) in self.pictures_in(start_ms, end_ms) {
            let Some(picture) = self.thumbnail(n).await? else {
                continue;
            };
            (sight.width, sight.height) = (picture.width, picture.height);
            sights.push(sight);
            pictures.push(picture);
        }
        // The reader and the tagger run side by side (each on its own inference pool). A
        // picture that barely differs from the one looked at before it (a still stretch)
        // keeps that one's lines and labels instead of being read and tagged again.
        let read = async {
            let mut lines: Vec<Vec<TextLine>> = Vec::new();
            let Some(reader) = &self.text else {
                return Ok(lines);
            };
            let mut last: Option<(usize, Vec<TextLine>)> = None;
            for (i, (sight, picture)) in sights.iter().zip(&pictures).enumerate() {
                if sight.read_until_ms == 0 {
                    lines.push(Vec::new());
                    continue;
                }
                let read = match &last {
                    Some((j, seen)) if still(&pictures[*j], picture) => seen.clone(),
                    _ => reader.read(picture.clone()).await?,
                };
                last = Some((i, read.clone()));
                lines.push(read);
            }
            Ok::<_, Error>(lines)
        };
        let tagged: Vec<usize> = (0..sights.len())
            .filter(|&i| sights[i].until_ms > 0)
            .collect();
        // Each tagged picture's batch entry: itself, or the still picture before it.
        let mut batch: Vec<usize> = Vec::new();
        let mut entry: Vec<usize> = Vec::new();
        for &i in &tagged {
            match batch.last() {
                Some(&j) if still(&pictures[j], &pictures[i]) => {}
                _ => batch.push(i),
            }
            entry.push(batch.len() - 1);
        }
        let tag = async {
            let batch: Vec<RgbImage> = batch.iter().map(|&i| pictures[i].clone()).collect();
            match &self.scene {
                Some(tagger) if !batch.is_empty() => tagger.tag(batch).await,
                _ => Ok(Vec::new()),
            }
        };
        let (lines, labels) = tokio::try_join!(read, tag)?;
        for (sight, lines) in sights.iter_mut().zip(lines) {
            sight.lines = lines;
        }
        if !labels.is_empty() {
            for (i, e) in tagged.into_iter().zip(entry) {
                sights[i].labels = labels[e].clone();
            }
        }
        Ok(sights)
    }

    /// Thumbnail `n` once it is complete on disk; `None` when the decode ended without
    /// writing it.
    async fn thumbnail(&self, n: u64) -> Result<Option<RgbImage>> {
        let path = self.dir.join(format!("{n:06}.jpg"));
        let next = self.dir.join(format!("{:06}.jpg", n + 1));
        loop {
            // Set before looking: a decode that ended while we looked is seen next time.
            let decoded = self.decoded.load(Ordering::Acquire);
            if next.exists() || (decoded && path.exists()) {
                break;
            }
            if decoded {
                return Ok(None);
            }
            tokio::time::sleep(POLL).await;
        }
        let bytes = tokio::fs::read(&path).await?;
        RgbImage::from_jpeg(&bytes)
            .map(Some)
            .map_err(|e| Error::internal(format!("thumbnail {}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_tagged_and_read_on_grids_that_run_across_slices() {
        let plan = |span, scene, text| -> Vec<(u64, i64, i64, i64)> {
            grid(span, 1.0, 9_500, scene, text)
                .into_iter()
                .map(|(n, s)| (n, s.t_ms, s.until_ms, s.read_until_ms))
                .collect()
        };
        // Every picture tagged, every other read; the last stands until the video ends.
        assert_eq!(
            plan((0, 3_000), Some(1), Some(2)),
            [
                (0, 0, 1_000, 2_000),
                (1, 1_000, 2_000, 0),
                (2, 2_000, 3_000, 4_000)
            ]
        );
        assert_eq!(
            plan((7_000, 9_500), Some(1), Some(2)),
            [
                (7, 7_000, 8_000, 0),
                (8, 8_000, 9_000, 9_500),
                (9, 9_000, 9_500, 0)
            ]
        );
        // Read only: the next slice continues the grid.
        assert_eq!(
            plan((5_000, 9_000), None, Some(2)),
            [(6, 6_000, 0, 8_000), (8, 8_000, 0, 9_500)]
        );
        assert!(plan((0, 5_000), None, None).is_empty());
        assert!(plan((4_500, 5_000), Some(2), Some(2)).is_empty());
    }

    #[test]
    fn a_still_picture_is_the_same_one_and_a_changed_one_is_not() {
        let grey = |v: u8| RgbImage {
            width: 8,
            height: 8,
            pixels: vec![v; 8 * 8 * 3],
        };
        assert!(still(&grey(100), &grey(101)), "JPEG noise");
        assert!(!still(&grey(100), &grey(110)));
        // A caption's strokes over 1 % of a 320x180 picture move its mean by about 1.5.
        let big = |v: u8| RgbImage {
            width: 320,
            height: 180,
            pixels: vec![v; 320 * 180 * 3],
        };
        let mut caption = big(100);
        for row in 20..38 {
            let start = (row * 320 + 20) * 3;
            for (i, byte) in caption.pixels[start..start + 96 * 3].iter_mut().enumerate() {
                if i % 9 < 2 {
                    *byte = 255;
                }
            }
        }
        assert!(
            !still(&big(100), &caption),
            "a caption written on part of it"
        );
        assert!(still(&big(100), &big(100)));
        assert!(!still(
            &grey(100),
            &RgbImage {
                width: 4,
                ..grey(100)
            }
        ));
    }
}
