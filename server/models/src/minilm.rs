//! all-MiniLM-L6-v2 (sentence-transformers, 384 dims) on candle's CPU backend: WordPiece
//! tokenisation, BERT forward pass, attention-masked mean pooling, L2 normalisation.
//! Inference runs inside `spawn_blocking`, never on the async runtime, on its own
//! `InferencePools` (documents at the background priority, queries apart).

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::{check_texts, EmbedPurpose, InferencePools, TextEmbedder, TextEmbedding};
use reelforge_core::error::{Error, Result};
use reelforge_core::BoxFuture;

/// Tokens the model reads per text (sentence-transformers' max_seq_length).
const MAX_TOKENS: usize = 256;
/// Texts per forward pass; sorted by length first so padding stays small.
const BATCH: usize = 32;

#[derive(Clone)]
pub struct MiniLmEmbedder {
    inner: Arc<Inner>,
}

struct Inner {
    model: BertModel,
    tokenizer: Tokenizer,
    pools: InferencePools,
    dimensions: usize,
}

fn provider_error(e: impl std::fmt::Display) -> Error {
    Error::Provider {
        provider: MiniLmEmbedder::NAME.into(),
        message: e.to_string(),
        retryable: false,
    }
}

impl MiniLmEmbedder {
    pub const NAME: &'static str = "local:all-minilm-l6-v2";
    /// Directory name under the models dir.
    pub const DIR_NAME: &'static str = "all-minilm-l6-v2";

    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path, threads: usize) -> Result<Self> {
        let missing = |file: &str| {
            Error::FailedPrecondition(format!(
                "{} is missing: run scripts/setup.sh to install the offline models",
                dir.join(file).display()
            ))
        };
        let config_path = dir.join("config.json");
        let config: BertConfig = serde_json::from_str(
            &std::fs::read_to_string(&config_path).map_err(|_| missing("config.json"))?,
        )
        .map_err(provider_error)?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|_| missing("tokenizer.json"))?;
        // The file asks for fixed 128-token padding, which makes short texts 4x slower;
        // pad per batch instead, and read up to MAX_TOKENS.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(provider_error)?;
        let weights = dir.join("model.safetensors");
        if !weights.exists() {
            return Err(missing("model.safetensors"));
        }
        // SAFETY: the weights file is memory-mapped read-only and must not change while
        // loaded; it belongs to the models directory the setup step owns.
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &Device::Cpu) }
                .map_err(provider_error)?;
        let model = BertModel::load(vb, &config).map_err(provider_error)?;
        Ok(MiniLmEmbedder {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                pools: InferencePools::new("minilm", threads)?,
                dimensions: config.hidden_size,
            }),
        })
    }

    /// Embeds synchronously (callers off the async runtime, e.g. benchmarks).
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<TextEmbedding>> {
        check_texts(texts)?;
        let inner = &self.inner;
        inner
            .pools
            .run_blocking(EmbedPurpose::Index, || inner.embed_all(texts))
    }
}

impl Inner {
    fn embed_all(&self, texts: &[String]) -> Result<Vec<TextEmbedding>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(provider_error)?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let mut out: Vec<Option<TextEmbedding>> = vec![None; texts.len()];
        for chunk in order.chunks(BATCH) {
            let batch: Vec<&tokenizers::Encoding> = chunk.iter().map(|&i| &encodings[i]).collect();
            let vectors = self.forward(&batch)?;
            for ((&i, vector), encoding) in chunk.iter().zip(vectors).zip(&batch) {
                out[i] = Some(TextEmbedding {
                    vector,
                    truncated: !encoding.get_overflowing().is_empty(),
                });
            }
        }
        Ok(out
            .into_iter()
            .map(|e| e.expect("every text embedded"))
            .collect())
    }

    /// One padded forward pass; returns pooled, normalised vectors.
    fn forward(&self, batch: &[&tokenizers::Encoding]) -> Result<Vec<Vec<f32>>> {
        let len = batch.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch.len() * len);
        let mut mask = Vec::with_capacity(batch.len() * len);
        for e in batch {
            let n = e.get_ids().len();
            ids.extend(e.get_ids().iter().copied());
            ids.extend(std::iter::repeat_n(0u32, len - n));
            mask.extend(std::iter::repeat_n(1u32, n));
            mask.extend(std::iter::repeat_n(0u32, len - n));
        }
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let shape = (batch.len(), len);
            let ids = Tensor::from_vec(ids, shape, &Device::Cpu)?;
            let mask = Tensor::from_vec(mask, shape, &Device::Cpu)?;
            let token_types = ids.zeros_like()?;
            let hidden = self.model.forward(&ids, &token_types, Some(&mask))?;
            // Mean over real tokens only.
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?;
            let mean = summed.broadcast_div(&counts)?;
            let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
            mean.broadcast_div(&norm)?.to_vec2::<f32>()
        };
        run().map_err(provider_error)
    }
}

impl TextEmbedder for MiniLmEmbedder {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions
    }

    fn batch_queries(&self) -> bool {
        true
    }

    /// MiniLM embeds queries and documents alike; queries run on their own pool.
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        purpose: EmbedPurpose,
    ) -> BoxFuture<'a, Result<Vec<TextEmbedding>>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let pools = inner.pools.clone();
            pools
                .embed(texts, purpose, move |texts| inner.embed_all(&texts))
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;

    #[tokio::test]
    async fn minilm_passes_the_text_embedder_conformance_suite() {
        let model = crate::testing::text_embedder();
        assert_eq!(model.dimensions(), 384);
        conformance::text_embedder(model).await;
    }

    #[test]
    fn missing_model_files_say_how_to_install_them() {
        let err = MiniLmEmbedder::load(Path::new("/nonexistent/models/x"), 1)
            .err()
            .expect("no model there");
        assert!(err.to_string().contains("scripts/setup.sh"), "{err}");
    }
}
