//! Synthetic document vectors with the shape of real text embeddings: a point is a topic
//! centre in a 24-d latent space plus spread, mapped to `dims` by a fixed random matrix,
//! plus a little noise in every dimension, then normalised (real embeddings have a low
//! intrinsic dimension and cluster by topic; uniform random vectors in 384 dimensions
//! have no meaningful neighbours). Deterministic for a seed.

/// The latent dimension.
const LATENT: usize = 24;

pub struct LowRank {
    rng: u64,
    centres: Vec<Vec<f32>>,
    basis: Vec<Vec<f32>>,
}

impl LowRank {
    /// A generator of `dims`-dimensional unit vectors around 512 topic centres.
    pub fn new(dims: usize, seed: u64) -> LowRank {
        let mut g = LowRank {
            rng: seed | 1,
            centres: Vec::new(),
            basis: Vec::new(),
        };
        g.centres = (0..512)
            .map(|_| (0..LATENT).map(|_| g.uniform() - 0.5).collect())
            .collect();
        g.basis = (0..dims)
            .map(|_| (0..LATENT).map(|_| g.uniform() - 0.5).collect())
            .collect();
        g
    }

    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn uniform(&mut self) -> f32 {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) as f32
    }

    /// The next vector.
    pub fn vector(&mut self) -> Vec<f32> {
        let c = (self.next() % self.centres.len() as u64) as usize;
        let z: Vec<f32> = (0..LATENT)
            .map(|i| self.centres[c][i] + 0.6 * (self.uniform() - 0.5))
            .collect();
        let mut v: Vec<f32> = Vec::with_capacity(self.basis.len());
        for r in 0..self.basis.len() {
            let x: f32 = self.basis[r].iter().zip(&z).map(|(a, b)| a * b).sum();
            v.push(x + 0.02 * (self.uniform() - 0.5));
        }
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }
}
