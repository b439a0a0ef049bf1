//! Slice planning: a fixed grid whose inner boundaries snap to nearby keyframes, so
//! slices can later be cut by stream copy, and whose too-short tail joins the last slice.

use reelforge_core::error::{Error, Result};

pub use crate::store::PlannedSlice;

/// Upper bound on slices per video, far above any sane request.
pub const MAX_SLICES: i64 = 20_000;

pub fn plan_slices(
    duration_ms: i64,
    slice_ms: i64,
    keyframes_ms: &[i64],
) -> Result<Vec<PlannedSlice>> {
    if duration_ms <= 0 || slice_ms <= 0 {
        return Err(Error::invalid(format!(
            "cannot slice a {duration_ms} ms video into {slice_ms} ms slices"
        )));
    }
    if duration_ms / slice_ms > MAX_SLICES {
        return Err(Error::invalid(format!(
            "slice_seconds {:.3} would cut this {:.0} s video into more than {MAX_SLICES} slices; \
             use a longer slice",
            slice_ms as f64 / 1000.0,
            duration_ms as f64 / 1000.0
        )));
    }
    let tolerance = (slice_ms / 4).min(2_000);
    let min_tail = slice_ms / 4;
    let mut bounds = vec![0i64];
    let mut nominal = slice_ms;
    while nominal < duration_ms {
        let snapped = nearest_keyframe(keyframes_ms, nominal, tolerance).unwrap_or(nominal);
        let last = *bounds.last().expect("bounds start with 0");
        if snapped > last && duration_ms - snapped >= min_tail {
            bounds.push(snapped);
        }
        nominal += slice_ms;
    }
    bounds.push(duration_ms);
    Ok(bounds
        .windows(2)
        .enumerate()
        .map(|(i, w)| PlannedSlice {
            index: i as u32,
            start_ms: w[0],
            end_ms: w[1],
            keyframe_aligned: w[0] == 0 || keyframes_ms.binary_search(&w[0]).is_ok(),
        })
        .collect())
}

fn nearest_keyframe(keyframes_ms: &[i64], target: i64, tolerance: i64) -> Option<i64> {
    keyframes_ms
        .iter()
        .copied()
        .filter(|k| (k - target).abs() <= tolerance)
        .min_by_key(|k| (k - target).abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(s: &[PlannedSlice]) -> Vec<(i64, i64)> {
        s.iter().map(|s| (s.start_ms, s.end_ms)).collect()
    }

    #[test]
    fn snaps_to_keyframes_within_tolerance() {
        let keys = [0, 9_800, 20_900, 31_000];
        let s = plan_slices(40_000, 10_000, &keys).unwrap();
        // 30_000 has no keyframe within 2 s... 31_000 is 1 s away: snapped.
        assert_eq!(
            ranges(&s),
            vec![
                (0, 9_800),
                (9_800, 20_900),
                (20_900, 31_000),
                (31_000, 40_000)
            ]
        );
        assert!(s.iter().all(|s| s.keyframe_aligned));
    }

    #[test]
    fn short_tail_joins_the_last_slice_and_unaligned_is_flagged() {
        let s = plan_slices(61_000, 30_000, &[0]).unwrap();
        assert_eq!(ranges(&s), vec![(0, 30_000), (30_000, 61_000)]);
        assert!(s[0].keyframe_aligned);
        assert!(!s[1].keyframe_aligned);
    }

    #[test]
    fn one_slice_when_the_video_is_shorter_than_a_slice() {
        let s = plan_slices(5_000, 30_000, &[0]).unwrap();
        assert_eq!(ranges(&s), vec![(0, 5_000)]);
    }

    #[test]
    fn absurd_requests_are_rejected() {
        assert!(plan_slices(0, 1_000, &[]).is_err());
        assert!(plan_slices(10_000, 0, &[]).is_err());
        assert!(plan_slices(100_000_000, 1, &[]).is_err());
    }
}
