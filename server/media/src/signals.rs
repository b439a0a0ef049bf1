//! Pure signal maths on the small analysis frames and audio windows the decode pass
//! produces: motion energy, colour histograms, scene-cut distance, coarse layout, loudness.

/// Analysis frames are scaled to this size by ffmpeg and sent as planar YUV 4:2:0: enough
/// for motion, colour and cut signals, cheap to move through a pipe. They stay in YUV
/// because swscale's combined downscale + RGB conversion costs more than the decode itself;
/// converting 2,304 pixels here is nearly free.
pub const FRAME_WIDTH: usize = 64;
pub const FRAME_HEIGHT: usize = 36;
pub const FRAME_PIXELS: usize = FRAME_WIDTH * FRAME_HEIGHT;
const CHROMA_WIDTH: usize = FRAME_WIDTH / 2;
const CHROMA_PIXELS: usize = CHROMA_WIDTH * (FRAME_HEIGHT / 2);
/// Bytes of one yuv420p analysis frame.
pub const FRAME_BYTES: usize = FRAME_PIXELS + 2 * CHROMA_PIXELS;

/// One yuv420p analysis frame (limited-range BT.601, as swscale writes by default).
#[derive(Clone, Copy)]
pub struct YuvFrame<'a> {
    pub y: &'a [u8],
    pub u: &'a [u8],
    pub v: &'a [u8],
}

impl<'a> YuvFrame<'a> {
    /// Splits a `FRAME_BYTES` buffer into its planes.
    pub fn from_bytes(bytes: &'a [u8]) -> Self {
        assert_eq!(bytes.len(), FRAME_BYTES, "not one analysis frame");
        let (y, chroma) = bytes.split_at(FRAME_PIXELS);
        let (u, v) = chroma.split_at(CHROMA_PIXELS);
        YuvFrame { y, u, v }
    }

    /// RGB of each pixel, in row order.
    pub fn rgb_pixels(&self) -> impl Iterator<Item = [u8; 3]> + '_ {
        (0..FRAME_PIXELS).map(move |i| {
            let (x, row) = (i % FRAME_WIDTH, i / FRAME_WIDTH);
            let c = (row / 2) * CHROMA_WIDTH + x / 2;
            yuv_to_rgb(self.y[i], self.u[c], self.v[c])
        })
    }
}

/// Limited-range BT.601 YUV to RGB, in 8-bit fixed point.
pub fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = (y as i32 - 16) * 298;
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clamp(c + 409 * e),
        clamp(c - 100 * d - 208 * e),
        clamp(c + 516 * d),
    ]
}

/// 4 levels per RGB channel.
pub const HIST_BINS: usize = 64;
/// 4x4 grid of mean luma.
pub const LAYOUT_CELLS: usize = 16;

/// Loudness floor: digital silence and missing audio read as this.
pub const SILENCE_DB: f32 = -90.0;

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
pub fn colour_histogram(frame: &YuvFrame<'_>) -> [f32; HIST_BINS] {
    let mut counts = [0u32; HIST_BINS];
    for p in frame.rgb_pixels() {
        let bin = ((p[0] >> 6) as usize) << 4 | ((p[1] >> 6) as usize) << 2 | (p[2] >> 6) as usize;
        counts[bin] += 1;
    }
    counts.map(|c| c as f32 / FRAME_PIXELS as f32)
}

/// Half the L1 distance between two normalised histograms: 0 same colours, 1 disjoint.
pub fn histogram_distance(a: &[f32; HIST_BINS], b: &[f32; HIST_BINS]) -> f32 {
    0.5 * a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>()
}

/// Mean luma (0..1, from limited-range Y) of each cell of a 4x4 grid over the frame.
pub fn layout_grid(luma: &[u8]) -> [f32; LAYOUT_CELLS] {
    let mut sums = [0u32; LAYOUT_CELLS];
    for (i, &v) in luma.iter().enumerate() {
        let (x, y) = (i % FRAME_WIDTH, i / FRAME_WIDTH);
        let cell = (y * 4 / FRAME_HEIGHT) * 4 + x * 4 / FRAME_WIDTH;
        sums[cell] += v as u32;
    }
    let per_cell = (FRAME_PIXELS / LAYOUT_CELLS) as f32;
    sums.map(|s| ((s as f32 / per_cell - 16.0) / 219.0).clamp(0.0, 1.0))
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

    /// A solid frame in yuv420p bytes (BT.601 limited range).
    fn solid(y: u8, u: u8, v: u8) -> Vec<u8> {
        let mut bytes = vec![y; FRAME_PIXELS];
        bytes.extend(std::iter::repeat_n(u, CHROMA_PIXELS));
        bytes.extend(std::iter::repeat_n(v, CHROMA_PIXELS));
        bytes
    }

    #[test]
    fn converts_reference_colours() {
        assert_eq!(yuv_to_rgb(16, 128, 128), [0, 0, 0]);
        assert_eq!(yuv_to_rgb(235, 128, 128), [255, 255, 255]);
        let red = yuv_to_rgb(81, 90, 240);
        assert!(red[0] > 250 && red[1] < 5 && red[2] < 5, "{red:?}");
    }

    #[test]
    fn motion_is_zero_for_identical_and_one_for_inverted_frames() {
        let black = [0u8; FRAME_PIXELS];
        let white = [255u8; FRAME_PIXELS];
        assert_eq!(motion_energy(&black, &black), 0.0);
        assert!((motion_energy(&black, &white) - 1.0).abs() < 0.01);
    }

    #[test]
    fn histogram_distance_separates_colours() {
        let (red, blue) = (solid(81, 90, 240), solid(41, 240, 110));
        let red = colour_histogram(&YuvFrame::from_bytes(&red));
        let blue = colour_histogram(&YuvFrame::from_bytes(&blue));
        assert!((red.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(histogram_distance(&red, &red), 0.0);
        assert!((histogram_distance(&red, &blue) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn layout_sees_a_bright_left_half() {
        let mut luma = [16u8; FRAME_PIXELS];
        for y in 0..FRAME_HEIGHT {
            for x in 0..FRAME_WIDTH / 2 {
                luma[y * FRAME_WIDTH + x] = 235;
            }
        }
        let grid = layout_grid(&luma);
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
