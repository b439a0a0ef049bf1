//! Whisper's log-mel input: an 80-bin mel filterbank on the Slaney scale with Slaney
//! area normalisation (what `librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)` returns
//! and Whisper was trained on), computed here instead of shipped as a data file.

use candle_transformers::models::whisper::{self as w};

/// Hz to mel, Slaney's formula: linear below 1 kHz, logarithmic above.
fn hz_to_mel(hz: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= MIN_LOG_HZ {
        min_log_mel + (hz / MIN_LOG_HZ).ln() / logstep
    } else {
        hz / F_SP
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        MIN_LOG_HZ * (logstep * (mel - min_log_mel)).exp()
    } else {
        mel * F_SP
    }
}

/// `n_mels x (N_FFT / 2 + 1)` weights, row-major, as candle's `pcm_to_mel` reads them.
pub fn filterbank(n_mels: usize) -> Vec<f32> {
    let n_freqs = w::N_FFT / 2 + 1;
    let sr = w::SAMPLE_RATE as f64;
    let fft_freqs: Vec<f64> = (0..n_freqs)
        .map(|i| i as f64 * (sr / 2.0) / (n_freqs - 1) as f64)
        .collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let mel_points: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut weights = vec![0f32; n_mels * n_freqs];
    for m in 0..n_mels {
        let (left, centre, right) = (mel_points[m], mel_points[m + 1], mel_points[m + 2]);
        let norm = 2.0 / (right - left);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - left) / (centre - left);
            let upper = (right - f) / (right - centre);
            weights[m * n_freqs + k] = (lower.min(upper).max(0.0) * norm) as f32;
        }
    }
    weights
}

/// Log-mel features of exactly one 30 s window (`pcm` is zero-padded or cut to 30 s):
/// `n_mels x N_FRAMES`, row-major.
pub fn window_features(pcm: &[f32], filters: &[f32], config: &w::Config) -> Vec<f32> {
    let mut padded = pcm[..pcm.len().min(w::N_SAMPLES)].to_vec();
    padded.resize(w::N_SAMPLES, 0.0);
    let mel = w::audio::pcm_to_mel(config, &padded, filters);
    // pcm_to_mel pads further; keep the first N_FRAMES of each bin.
    let n_len = mel.len() / config.num_mel_bins;
    let mut out = Vec::with_capacity(config.num_mel_bins * w::N_FRAMES);
    for row in mel.chunks_exact(n_len) {
        out.extend_from_slice(&row[..w::N_FRAMES]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaney_scale_matches_librosa() {
        // librosa.hz_to_mel(1000.0) == 15.0, hz_to_mel(8000.0) == 45.245640471924965
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-9);
        assert!((hz_to_mel(8000.0) - 45.245_640_471_924_965).abs() < 1e-9);
        assert!((mel_to_hz(hz_to_mel(3210.0)) - 3210.0).abs() < 1e-6);
    }

    #[test]
    fn filterbank_matches_librosa_at_known_points() {
        let f = filterbank(80);
        assert_eq!(f.len(), 80 * 201);
        // Values of librosa.filters.mel(sr=16000, n_fft=400, n_mels=80) at [0, 1] and [79, 200].
        assert!((f[1] - 0.024_862_594).abs() < 1e-6, "{}", f[1]);
        assert!((f[79 * 201 + 200] - 0.0).abs() < 1e-9);
        // Every filter has some weight; Slaney normalisation makes high filters smaller.
        for m in 0..80 {
            assert!(f[m * 201..(m + 1) * 201].iter().any(|&x| x > 0.0), "{m}");
        }
    }
}
