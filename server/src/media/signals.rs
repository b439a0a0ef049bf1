//! Pure signal maths on the small analysis frames and audio windows the decode pass
//! produces: motion energy, colour histograms, scene-cut distance, coarse layout, loudness.

/// Analysis frames are scaled to this size (RGB24) by ffmpeg: enough for motion, colour
/// and cut signals, cheap to move through a pipe.
pub const FRAME_WIDTH: usize = 64;
pub const FRAME_HEIGHT: usize = 36;
pub const FRAME_PIXELS: usize = FRAME_WIDTH * FRAME_HEIGHT;
pub const FRAME_BYTES: usize = FRAME_PIXELS * 3;

/// 4 levels per RGB channel.
pub const HIST_BINS: usize = 64;
/// 4x4 grid of mean luma.
pub const LAYOUT_CELLS: usize = 16;

/// Loudness floor: digital silence and missing audio read as this.
pub const SILENCE_DB: f32 = -90.0;

/// BT.601 luma of each pixel, 0..255.
pub fn luma(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks_exact(3)
        .map(|p| ((77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32) >> 8) as u8)
        .collect()
}

/// Mean absolute luma change between two frames, 0..1.
pub fn motion_energy(prev: &[u8], cur: &[u8]) -> f32 {
    debug_assert_eq!(prev.len(), cur.len());
    if cur.is_empty() {
        return 0.0;
    }
    let sum: u64 = prev
        .iter()
        .zip(cur)
        .map(|(a, b)| a.abs_diff(*b) as u64)
        .sum();
    sum as f32 / (cur.len() as f32 * 255.0)
}

/// Normalised 4x4x4 RGB histogram (sums to 1).
pub fn colour_histogram(rgb: &[u8]) -> [f32; HIST_BINS] {
    let mut counts = [0u32; HIST_BINS];
    for p in rgb.chunks_exact(3) {
        let bin = ((p[0] >> 6) as usize) << 4 | ((p[1] >> 6) as usize) << 2 | (p[2] >> 6) as usize;
        counts[bin] += 1;
    }
    let total = (rgb.len() / 3).max(1) as f32;
    counts.map(|c| c as f32 / total)
}

/// Half the L1 distance between two normalised histograms: 0 same colours, 1 disjoint.
pub fn histogram_distance(a: &[f32; HIST_BINS], b: &[f32; HIST_BINS]) -> f32 {
    0.5 * a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>()
}

/// Mean luma (0..1) of each cell of a 4x4 grid over the frame.
pub fn layout_grid(luma: &[u8]) -> [f32; LAYOUT_CELLS] {
    let mut sums = [0u32; LAYOUT_CELLS];
    for (i, &v) in luma.iter().enumerate() {
        let (x, y) = (i % FRAME_WIDTH, i / FRAME_WIDTH);
        let cell = (y * 4 / FRAME_HEIGHT) * 4 + x * 4 / FRAME_WIDTH;
        sums[cell] += v as u32;
    }
    let per_cell = (FRAME_PIXELS / LAYOUT_CELLS) as f32 * 255.0;
    sums.map(|s| s as f32 / per_cell)
}

/// RMS level of signed 16-bit samples in dBFS, floored at `SILENCE_DB`.
pub fn rms_dbfs(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return SILENCE_DB;
    }
    let sum_sq: f64 = samples.iter().map(|&s| (s as f64) * (s as f64)).sum();
    let rms = (sum_sq / samples.len() as f64).sqrt() / 32768.0;
    if rms <= 0.0 {
        return SILENCE_DB;
    }
    (20.0 * rms.log10()).max(SILENCE_DB as f64) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(r: u8, g: u8, b: u8) -> Vec<u8> {
        [r, g, b].repeat(FRAME_PIXELS)
    }

    #[test]
    fn motion_is_zero_for_identical_and_one_for_inverted_frames() {
        let black = luma(&solid(0, 0, 0));
        let white = luma(&solid(255, 255, 255));
        assert_eq!(motion_energy(&black, &black), 0.0);
        assert!((motion_energy(&black, &white) - 1.0).abs() < 0.01);
    }

    #[test]
    fn histogram_distance_separates_colours() {
        let red = colour_histogram(&solid(250, 10, 10));
        let blue = colour_histogram(&solid(10, 10, 250));
        assert!((red.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(histogram_distance(&red, &red), 0.0);
        assert!((histogram_distance(&red, &blue) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn layout_sees_a_bright_left_half() {
        let mut rgb = solid(0, 0, 0);
        for y in 0..FRAME_HEIGHT {
            for x in 0..FRAME_WIDTH / 2 {
                let i = (y * FRAME_WIDTH + x) * 3;
                rgb[i..i + 3].copy_from_slice(&[255, 255, 255]);
            }
        }
        let grid = layout_grid(&luma(&rgb));
        assert!(grid[0] > 0.95 && grid[1] > 0.95);
        assert!(grid[2] < 0.05 && grid[3] < 0.05);
    }

    #[test]
    fn loudness_of_full_scale_square_wave_is_zero_db() {
        let square: Vec<i16> = (0..1600)
            .map(|i| if i % 2 == 0 { 32767 } else { -32767 })
            .collect();
        assert!(rms_dbfs(&square).abs() < 0.01);
        assert_eq!(rms_dbfs(&[0; 100]), SILENCE_DB);
        let quiet: Vec<i16> = square.iter().map(|s| s / 100).collect();
        assert!((rms_dbfs(&quiet) + 40.0).abs() < 0.1);
    }
}
