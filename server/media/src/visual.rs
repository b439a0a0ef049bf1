//! Visual descriptor embedding for clips, with no learned model: the clip's mean colour
//! histogram (Hellinger-mapped), its mean 4x4 luma layout and its motion level, each block
//! weighted and the whole L2-normalised, so cosine similarity compares clips by look.

use reelforge_core::vector::l2_normalise;

use crate::signals::{HIST_BINS, LAYOUT_CELLS};
use crate::FrameSample;

pub const KIND: &str = "visual_descriptor";
pub const DIMENSIONS: usize = HIST_BINS + LAYOUT_CELLS + 2;

const W_COLOUR: f32 = 1.0;
const W_LAYOUT: f32 = 0.6;
const W_MOTION: f32 = 0.4;

/// Accumulates the analysis frames of one clip.
#[derive(Debug, Clone)]
pub struct ClipAccumulator {
    pub start_ms: i64,
    pub end_ms: i64,
    histogram: [f32; HIST_BINS],
    layout: [f32; LAYOUT_CELLS],
    motion_sum: f32,
    motion_max: f32,
    frames: u32,
}

impl ClipAccumulator {
    pub fn new(start_ms: i64, end_ms: i64) -> Self {
        ClipAccumulator {
            start_ms,
            end_ms,
            histogram: [0.0; HIST_BINS],
            layout: [0.0; LAYOUT_CELLS],
            motion_sum: 0.0,
            motion_max: 0.0,
            frames: 0,
        }
    }

    pub fn add(&mut self, f: &FrameSample) {
        for (a, b) in self.histogram.iter_mut().zip(&f.histogram) {
            *a += b;
        }
        for (a, b) in self.layout.iter_mut().zip(&f.layout) {
            *a += b;
        }
        self.motion_sum += f.motion;
        self.motion_max = self.motion_max.max(f.motion);
        self.frames += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// The clip's descriptor, or `None` when no frame fell inside it.
    pub fn finish(&self) -> Option<Vec<f32>> {
        if self.frames == 0 {
            return None;
        }
        let n = self.frames as f32;
        let mut v = Vec::with_capacity(DIMENSIONS);
        v.extend(self.histogram.iter().map(|h| W_COLOUR * (h / n).sqrt()));
        v.extend(self.layout.iter().map(|l| W_LAYOUT * l / n / 2.0));
        // Motion energies are small numbers; scale so fast motion is comparable to colour.
        v.push(W_MOTION * (self.motion_sum / n * 10.0).min(1.0));
        v.push(W_MOTION * (self.motion_max * 10.0).min(1.0));
        l2_normalise(&mut v);
        Some(v)
    }
}

/// A descriptor with its motion block weighed `factor` times more, renormalised: for
/// comparisons where how much happens matters as much as how it looks (a still of an
/// action scene is not the action).
pub fn emphasise_motion(v: &[f32], factor: f32) -> Vec<f32> {
    let mut out = v.to_vec();
    if out.len() == DIMENSIONS {
        for x in &mut out[HIST_BINS + LAYOUT_CELLS..] {
            *x *= factor;
        }
        l2_normalise(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reelforge_core::vector::cosine;

    fn frame(bin: usize, luma: f32, motion: f32) -> FrameSample {
        let mut histogram = [0.0; HIST_BINS];
        histogram[bin] = 1.0;
        FrameSample {
            t_ms: 0,
            motion,
            hist_distance: 0.0,
            histogram,
            layout: [luma; LAYOUT_CELLS],
        }
    }

    #[test]
    fn similar_clips_are_closer_than_different_ones() {
        let clip = |bin, luma, motion| {
            let mut c = ClipAccumulator::new(0, 2000);
            for _ in 0..20 {
                c.add(&frame(bin, luma, motion));
            }
            c.finish().unwrap()
        };
        let red_still = clip(48, 0.3, 0.0);
        let red_still_again = clip(48, 0.32, 0.001);
        let blue_moving = clip(3, 0.2, 0.08);
        assert_eq!(red_still.len(), DIMENSIONS);
        assert!((cosine(&red_still, &red_still) - 1.0).abs() < 1e-5);
        assert!(cosine(&red_still, &red_still_again) > 0.99);
        assert!(cosine(&red_still, &blue_moving) < 0.5);
        assert!(ClipAccumulator::new(0, 1).finish().is_none());
    }
}
