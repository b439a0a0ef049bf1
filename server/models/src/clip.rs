//! Image-text embeddings with CLIP on candle, for users who bring their own weights (no
//! registry package ships CLIP or SigLIP). A model directory holds the Hugging Face
//! layout: `config.json` (`text_config`, `vision_config`, `projection_dim`),
//! `tokenizer.json` and `model.safetensors`. Texts and images land in one space, so a
//! text query finds frames, and frames find frames.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::clip::{
    self, text_model::Activation, text_model::ClipTextConfig, vision_model::ClipVisionConfig,
    ClipConfig, ClipModel,
};
use serde::Deserialize;
use tokenizers::Tokenizer;

use super::{check_texts, TextEmbedding};
use reelforge_core::error::{Error, Result};
use reelforge_core::BoxFuture;
use reelforge_media::images::RgbImage;

/// Embeds images and texts into one space (CLIP weights you bring; Bedrock's Nova
/// Multimodal Embeddings embeds video spans instead, see `VideoEmbedder`).
pub trait ImageTextEmbedder: Send + Sync {
    fn name(&self) -> &str;
    fn dimensions(&self) -> usize;
    /// The square side images are best handed over at (others are resized).
    fn image_size(&self) -> u32;
    /// L2-normalised, one per text; an empty text is `InvalidInput`.
    fn embed_texts<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<TextEmbedding>>>;
    /// L2-normalised, one per image.
    fn embed_images<'a>(&'a self, images: &'a [RgbImage]) -> BoxFuture<'a, Result<Vec<Vec<f32>>>>;
}

/// The parts of a Hugging Face `CLIPConfig` the model needs.
#[derive(Debug, Deserialize)]
pub(crate) struct HfClipConfig {
    text_config: HfTower,
    vision_config: HfTower,
    projection_dim: usize,
    #[serde(default = "default_logit_scale")]
    logit_scale_init_value: f32,
}

fn default_logit_scale() -> f32 {
    2.6592
}

#[derive(Debug, Deserialize)]
struct HfTower {
    hidden_size: usize,
    intermediate_size: usize,
    num_attention_heads: usize,
    num_hidden_layers: usize,
    #[serde(default)]
    max_position_embeddings: Option<usize>,
    #[serde(default)]
    vocab_size: Option<usize>,
    #[serde(default)]
    image_size: Option<usize>,
    #[serde(default)]
    patch_size: Option<usize>,
    #[serde(default = "default_channels")]
    num_channels: usize,
    #[serde(default = "default_act")]
    hidden_act: String,
}

fn default_channels() -> usize {
    3
}

fn default_act() -> String {
    "quick_gelu".into()
}

/// OpenAI CLIP's pixel normalisation.
const MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];
/// Images per forward pass.
const IMAGE_BATCH: usize = 16;

pub struct ClipEmbedder {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    model: ClipModel,
    tokenizer: Tokenizer,
    max_tokens: usize,
    image_size: usize,
    dimensions: usize,
    pool: rayon::ThreadPool,
}

fn provider_error(name: &str, e: impl std::fmt::Display) -> Error {
    Error::Provider {
        provider: name.into(),
        message: e.to_string(),
        retryable: false,
    }
}

impl ClipEmbedder {
    /// Loads a CLIP model directory (see the module docs).
    pub fn load(dir: &Path, threads: usize) -> Result<Self> {
        let name = format!(
            "clip:{}",
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("clip")
        );
        let read = |file: &str| {
            std::fs::read_to_string(dir.join(file)).map_err(|e| {
                Error::FailedPrecondition(format!(
                    "{}: {e} (a CLIP model directory holds config.json, tokenizer.json and \
                     model.safetensors)",
                    dir.join(file).display()
                ))
            })
        };
        let hf: HfClipConfig = serde_json::from_str(&read("config.json")?)
            .map_err(|e| Error::invalid(format!("{}: {e}", dir.join("config.json").display())))?;
        let config = clip_config(&hf)
            .map_err(|e| Error::invalid(format!("{}: {e}", dir.join("config.json").display())))?;
        let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| provider_error(&name, format!("tokenizer.json: {e}")))?;
        let weights = dir.join("model.safetensors");
        if !weights.exists() {
            return Err(Error::FailedPrecondition(format!(
                "{} is missing",
                weights.display()
            )));
        }
        // SAFETY: the weights are memory-mapped read-only; the user's model directory must
        // not change while the server runs.
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &Device::Cpu) }
                .map_err(|e| provider_error(&name, e))?;
        // candle draws a random class embedding when the weights lack one, which would
        // make vectors differ from run to run: refuse such weights instead.
        let class = "vision_model.embeddings.class_embedding";
        if !vb.contains_tensor(class) {
            return Err(Error::invalid(format!(
                "{}: the weights have no {class}",
                dir.display()
            )));
        }
        let model = ClipModel::new(vb, &config).map_err(|e| provider_error(&name, e))?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("clip-{i}"))
            .build()
            .map_err(|e| provider_error(&name, e))?;
        Ok(ClipEmbedder {
            inner: Arc::new(Inner {
                name,
                model,
                tokenizer,
                max_tokens: config.text_config.max_position_embeddings,
                image_size: config.vision_config.image_size,
                dimensions: hf.projection_dim,
                pool,
            }),
        })
    }
}

pub(crate) fn clip_config(hf: &HfClipConfig) -> std::result::Result<ClipConfig, String> {
    for (tower, c) in [("text", &hf.text_config), ("vision", &hf.vision_config)] {
        if c.hidden_act != "quick_gelu" {
            return Err(format!(
                "{tower}_config.hidden_act {:?} is not supported (quick_gelu is)",
                c.hidden_act
            ));
        }
        if c.num_attention_heads == 0 || c.hidden_size % c.num_attention_heads != 0 {
            return Err(format!(
                "{tower}_config: hidden_size must be a multiple of num_attention_heads"
            ));
        }
    }
    let t = &hf.text_config;
    let v = &hf.vision_config;
    let image_size = v.image_size.ok_or("vision_config.image_size is missing")?;
    let patch_size = v.patch_size.ok_or("vision_config.patch_size is missing")?;
    if patch_size == 0 || image_size % patch_size != 0 {
        return Err("vision_config.image_size must be a multiple of patch_size".into());
    }
    Ok(ClipConfig {
        text_config: ClipTextConfig {
            vocab_size: t.vocab_size.ok_or("text_config.vocab_size is missing")?,
            embed_dim: t.hidden_size,
            activation: Activation::QuickGelu,
            intermediate_size: t.intermediate_size,
            max_position_embeddings: t.max_position_embeddings.unwrap_or(77),
            pad_with: None,
            num_hidden_layers: t.num_hidden_layers,
            num_attention_heads: t.num_attention_heads,
            projection_dim: hf.projection_dim,
        },
        vision_config: ClipVisionConfig {
            embed_dim: v.hidden_size,
            activation: Activation::QuickGelu,
            intermediate_size: v.intermediate_size,
            num_hidden_layers: v.num_hidden_layers,
            num_attention_heads: v.num_attention_heads,
            projection_dim: hf.projection_dim,
            num_channels: v.num_channels,
            image_size,
            patch_size,
        },
        logit_scale_init_value: hf.logit_scale_init_value,
        image_size,
    })
}

impl Inner {
    fn err(&self, e: impl std::fmt::Display) -> Error {
        provider_error(&self.name, e)
    }

    fn embed_texts(&self, texts: &[String]) -> Result<Vec<TextEmbedding>> {
        check_texts(texts)?;
        // One at a time: CLIP pools at the end-of-text token (the highest id), which
        // padding would confuse; the text tower is small.
        texts
            .iter()
            .map(|text| {
                let encoding = self
                    .tokenizer
                    .encode(text.as_str(), true)
                    .map_err(|e| self.err(e))?;
                let mut ids = encoding.get_ids().to_vec();
                let truncated = ids.len() > self.max_tokens;
                if truncated {
                    // Keep the end-of-text token last.
                    let last = *ids.last().expect("non-empty");
                    ids.truncate(self.max_tokens);
                    *ids.last_mut().expect("non-empty") = last;
                }
                let input = Tensor::new(ids.as_slice(), &Device::Cpu)
                    .and_then(|t| t.unsqueeze(0))
                    .map_err(|e| self.err(e))?;
                let vector = self
                    .model
                    .get_text_features(&input)
                    .and_then(|f| clip::div_l2_norm(&f))
                    .and_then(|f| f.squeeze(0))
                    .and_then(|f| f.to_vec1::<f32>())
                    .map_err(|e| self.err(e))?;
                Ok(TextEmbedding { vector, truncated })
            })
            .collect()
    }

    fn embed_images(&self, images: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        let side = self.image_size;
        let mut out = Vec::with_capacity(images.len());
        for batch in images.chunks(IMAGE_BATCH) {
            let mut data = Vec::with_capacity(batch.len() * 3 * side * side);
            for image in batch {
                data.extend(pixel_values(image, side)?);
            }
            let input = Tensor::from_vec(data, (batch.len(), 3, side, side), &Device::Cpu)
                .map_err(|e| self.err(e))?;
            let features = self
                .model
                .get_image_features(&input)
                .and_then(|f| clip::div_l2_norm(&f))
                .and_then(|f| f.to_vec2::<f32>())
                .map_err(|e| self.err(e))?;
            out.extend(features);
        }
        Ok(out)
    }
}

/// CLIP input for one image: shortest side scaled to `side`, centre crop, bilinear,
/// normalised, channel-major.
fn pixel_values(image: &RgbImage, side: usize) -> Result<Vec<f32>> {
    let (w, h) = (image.width as usize, image.height as usize);
    if w == 0 || h == 0 || image.pixels.len() != w * h * 3 {
        return Err(Error::invalid(format!(
            "an image of {w}x{h} must have {} bytes of RGB, has {}",
            w * h * 3,
            image.pixels.len()
        )));
    }
    let scale = side as f32 / w.min(h) as f32;
    let (sw, sh) = (w as f32 * scale, h as f32 * scale);
    let (ox, oy) = ((sw - side as f32) / 2.0, (sh - side as f32) / 2.0);
    let px = |x: usize, y: usize, c: usize| image.pixels[(y * w + x) * 3 + c] as f32 / 255.0;
    let mut out = vec![0f32; 3 * side * side];
    for y in 0..side {
        let sy = ((y as f32 + oy + 0.5) / scale - 0.5).clamp(0.0, (h - 1) as f32);
        let (y0, fy) = (sy.floor() as usize, sy.fract());
        let y1 = (y0 + 1).min(h - 1);
        for x in 0..side {
            let sx = ((x as f32 + ox + 0.5) / scale - 0.5).clamp(0.0, (w - 1) as f32);
            let (x0, fx) = (sx.floor() as usize, sx.fract());
            let x1 = (x0 + 1).min(w - 1);
            for c in 0..3 {
                let top = px(x0, y0, c) * (1.0 - fx) + px(x1, y0, c) * fx;
                let bottom = px(x0, y1, c) * (1.0 - fx) + px(x1, y1, c) * fx;
                let v = top * (1.0 - fy) + bottom * fy;
                out[c * side * side + y * side + x] = (v - MEAN[c]) / STD[c];
            }
        }
    }
    Ok(out)
}

impl ImageTextEmbedder for ClipEmbedder {
    fn name(&self) -> &str {
        &self.inner.name
    }
    fn dimensions(&self) -> usize {
        self.inner.dimensions
    }
    fn image_size(&self) -> u32 {
        self.inner.image_size as u32
    }
    fn embed_texts<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<TextEmbedding>>> {
        let (inner, texts) = (self.inner.clone(), texts.to_vec());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || inner.pool.install(|| inner.embed_texts(&texts)))
                .await
                .map_err(|e| Error::internal(format!("embedding task failed: {e}")))?
        })
    }
    fn embed_images<'a>(&'a self, images: &'a [RgbImage]) -> BoxFuture<'a, Result<Vec<Vec<f32>>>> {
        let (inner, images) = (self.inner.clone(), images.to_vec());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || inner.pool.install(|| inner.embed_images(&images)))
                .await
                .map_err(|e| Error::internal(format!("embedding task failed: {e}")))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reelforge_core::vector::cosine;

    fn image(seed: u8, w: u32, h: u32) -> RgbImage {
        let pixels = (0..w * h * 3)
            .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed))
            .collect();
        RgbImage {
            width: w,
            height: h,
            pixels,
        }
    }

    #[tokio::test]
    async fn a_users_clip_directory_loads_and_embeds_texts_and_images_deterministically() {
        let dir = tempfile::tempdir().unwrap();
        crate::testing::write_random_tiny_clip(dir.path()).unwrap();
        let clip = ClipEmbedder::load(dir.path(), 1).unwrap();
        assert_eq!(clip.dimensions(), 16);
        assert_eq!(clip.image_size(), 32);
        let name = clip.name().to_string();
        assert!(name.starts_with("clip:"), "{name}");

        let texts = vec![
            "a red car".to_string(),
            "a blue boat on the sea".to_string(),
        ];
        let a = clip.embed_texts(&texts).await.unwrap();
        let b = clip.embed_texts(&texts).await.unwrap();
        assert_eq!(a, b, "identical texts give identical vectors");
        for e in &a {
            assert_eq!(e.vector.len(), 16);
            let norm: f32 = e.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        }
        assert!(
            cosine(&a[0].vector, &a[1].vector) < 0.9999,
            "different texts differ"
        );

        // Any size goes in; it is resized and cropped to the model's square.
        let images = vec![image(3, 64, 48), image(7, 20, 30)];
        let x = clip.embed_images(&images).await.unwrap();
        let y = clip.embed_images(&images).await.unwrap();
        assert_eq!(x, y, "identical images give identical vectors");
        assert_eq!(x.len(), 2);
        assert_eq!(x[0].len(), 16);
        assert!(cosine(&x[0], &x[1]) < 0.9999);
        // Batching does not change a vector.
        let single = clip.embed_images(&images[1..]).await.unwrap();
        assert!(cosine(&single[0], &x[1]) > 0.9999);

        // Texts and images share the space: both are 16-d unit vectors comparable by cosine.
        let s = cosine(&a[0].vector, &x[0]);
        assert!((-1.0..=1.0).contains(&s));

        let long = vec!["a red car on the sea ".repeat(10)];
        assert!(clip.embed_texts(&long).await.unwrap()[0].truncated);
        assert!(clip.embed_texts(&[" ".to_string()]).await.is_err());
        let broken = RgbImage {
            width: 4,
            height: 4,
            pixels: vec![0; 5],
        };
        let err = clip.embed_images(&[broken]).await.unwrap_err();
        assert!(err.to_string().contains("bytes of RGB"), "{err}");
    }

    #[test]
    fn incomplete_or_unsupported_directories_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let err = ClipEmbedder::load(dir.path(), 1).err().unwrap();
        assert!(err.to_string().contains("config.json"), "{err}");
        crate::testing::write_random_tiny_clip(dir.path()).unwrap();
        let config = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            config.replace(
                "\"patch_size\":8",
                "\"patch_size\":8,\"hidden_act\":\"gelu\"",
            ),
        )
        .unwrap();
        let err = ClipEmbedder::load(dir.path(), 1).err().unwrap();
        assert!(err.to_string().contains("quick_gelu"), "{err}");
    }
}
