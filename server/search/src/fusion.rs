//! Fusing ranked lists: reciprocal rank fusion, or a weighted sum of min-max normalised
//! scores.

use std::collections::HashMap;

/// How to fuse the lexical and the vector list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// Σ 1 / (k + rank), rank from 1.
    Rrf { k: f32 },
    /// Σ weight × (score − min) / (max − min) per list.
    Weighted { lexical: f32, vector: f32 },
}

impl Fusion {
    /// RRF's usual k.
    pub const RRF_K: f32 = 60.0;
    /// Weighted fusion's default weights: meaning over wording.
    pub const WEIGHTED: Fusion = Fusion::Weighted {
        lexical: 0.3,
        vector: 0.7,
    };
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion::Rrf { k: Fusion::RRF_K }
    }
}

/// Fuses `lists` (each best first, `(id, score)`) into one list, best first; ties go to the
/// lower id so the order is stable. `weights` apply to `Weighted` only, per list.
pub fn fuse(fusion: Fusion, lists: &[&[(u64, f32)]]) -> Vec<(u64, f32)> {
    let mut fused: HashMap<u64, f32> = HashMap::new();
    for (li, list) in lists.iter().enumerate() {
        match fusion {
            Fusion::Rrf { k } => {
                for (rank, &(id, _)) in list.iter().enumerate() {
                    *fused.entry(id).or_insert(0.0) += 1.0 / (k + rank as f32 + 1.0);
                }
            }
            Fusion::Weighted { lexical, vector } => {
                let weight = if li == 0 { lexical } else { vector };
                let (lo, hi) = list
                    .iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &(_, s)| {
                        (lo.min(s), hi.max(s))
                    });
                for &(id, s) in list.iter() {
                    let norm = if hi - lo > 1e-9 {
                        (s - lo) / (hi - lo)
                    } else {
                        1.0
                    };
                    *fused.entry(id).or_insert(0.0) += weight * norm;
                }
            }
        }
    }
    let mut out: Vec<(u64, f32)> = fused.into_iter().collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrf_sums_reciprocal_ranks() {
        let lexical = [(1, 9.0), (2, 5.0), (3, 1.0)];
        let vector = [(3, 0.9), (1, 0.8)];
        let fused = fuse(Fusion::Rrf { k: 60.0 }, &[&lexical, &vector]);
        let score = |id| fused.iter().find(|f| f.0 == id).unwrap().1;
        assert!((score(1) - (1.0 / 61.0 + 1.0 / 62.0)).abs() < 1e-7);
        assert!((score(3) - (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-7);
        assert!((score(2) - 1.0 / 62.0).abs() < 1e-7);
        assert_eq!(fused.iter().map(|f| f.0).collect::<Vec<_>>(), vec![1, 3, 2]);
    }

    #[test]
    fn weighted_normalises_each_list() {
        let lexical = [(1, 10.0), (2, 0.0)];
        let vector = [(2, 0.9), (1, 0.5), (3, 0.1)];
        let fused = fuse(
            Fusion::Weighted {
                lexical: 0.3,
                vector: 0.7,
            },
            &[&lexical, &vector],
        );
        let score = |id| fused.iter().find(|f| f.0 == id).unwrap().1;
        assert!((score(1) - (0.3 + 0.7 * 0.5)).abs() < 1e-6);
        assert!((score(2) - 0.7).abs() < 1e-6);
        assert!((score(3) - 0.0).abs() < 1e-6);
        assert_eq!(fused[0].0, 2);
        // One-item and empty lists.
        let one = fuse(
            Fusion::Weighted {
                lexical: 1.0,
                vector: 1.0,
            },
            &[&[(7, 3.0)], &[]],
        );
        assert_eq!(one, vec![(7, 1.0)]);
        assert!(fuse(Fusion::default(), &[&[], &[]]).is_empty());
    }
}
