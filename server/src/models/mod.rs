//! Model providers behind traits, chosen by config: the offline embedded default here,
//! AWS Bedrock later, each implementing the same trait and passing the same
//! `conformance` suite.

pub mod conformance;
mod minilm;

use std::path::Path;

pub use minilm::MiniLmEmbedder;

use crate::analysis::BoxFuture;
use crate::error::{Error, Result};

/// Why a text is embedded: some providers embed queries and documents differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedPurpose {
    Index,
    Query,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TextEmbedding {
    /// L2-normalised.
    pub vector: Vec<f32>,
    /// The text was longer than the model reads; only its start was embedded.
    pub truncated: bool,
}

/// Turns texts into vectors whose cosine similarity reflects meaning.
pub trait TextEmbedder: Send + Sync {
    /// Stable name recorded with stored vectors, e.g. "local:all-minilm-l6-v2".
    fn name(&self) -> &str;
    fn dimensions(&self) -> usize;
    /// One embedding per text, in order. An empty text is `InvalidInput`.
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        purpose: EmbedPurpose,
    ) -> BoxFuture<'a, Result<Vec<TextEmbedding>>>;
}

/// Rejects empty texts with the index of the first one.
pub(crate) fn check_texts(texts: &[String]) -> Result<()> {
    match texts.iter().position(|t| t.trim().is_empty()) {
        Some(i) => Err(Error::invalid(format!(
            "text {i} is empty: there is nothing to embed"
        ))),
        None => Ok(()),
    }
}

/// The one MiniLM instance shared by every unit test in this crate.
#[cfg(test)]
pub(crate) fn minilm_tests_shared() -> &'static MiniLmEmbedder {
    minilm::tests::shared()
}

/// The offline default text embedder from the models directory `scripts/setup.sh` fills.
pub fn load_default_text_embedder(models_dir: &Path, threads: usize) -> Result<MiniLmEmbedder> {
    MiniLmEmbedder::load(&models_dir.join(MiniLmEmbedder::DIR_NAME), threads)
}
