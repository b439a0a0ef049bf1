//! Text embeddings on Bedrock: Titan Text Embeddings v2 (`inputText`, `dimensions`,
//! `normalize`) and Nova Multimodal Embeddings (`SINGLE_EMBEDDING` of one text, with
//! `GENERIC_INDEX` when indexing and `TEXT_RETRIEVAL` for queries). One request per text,
//! as both models take one input per call; calls run concurrently up to the client's limit.

use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::json;

use super::{vector_of, Bedrock, NOVA_EMBEDDINGS, TITAN_TEXT_V2};
use crate::{check_texts, EmbedPurpose, TextEmbedder, TextEmbedding};
use reelforge_core::error::{Error, Result};
use reelforge_core::vector::l2_normalise;
use reelforge_core::BoxFuture;

/// Characters sent at most: both models read 8,192 tokens, and at three characters a token
/// (a cautious rate for English) this stays inside; longer texts are cut and flagged.
pub const MAX_CHARS: usize = 24_000;

/// The part of `text` that is sent, and whether that is not all of it.
pub(super) fn cut(text: &str) -> (&str, bool) {
    match text.char_indices().nth(MAX_CHARS) {
        Some((at, _)) => (&text[..at], true),
        None => (text, false),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedModel {
    Titan,
    Nova,
}

impl EmbedModel {
    pub fn from_id(id: &str) -> Option<EmbedModel> {
        match id {
            TITAN_TEXT_V2 => Some(EmbedModel::Titan),
            NOVA_EMBEDDINGS => Some(EmbedModel::Nova),
            _ => None,
        }
    }

    fn id(self) -> &'static str {
        match self {
            EmbedModel::Titan => TITAN_TEXT_V2,
            EmbedModel::Nova => NOVA_EMBEDDINGS,
        }
    }

    /// The sizes the model offers.
    pub fn dimensions(self) -> &'static [u32] {
        match self {
            EmbedModel::Titan => &[256, 512, 1024],
            EmbedModel::Nova => &[256, 384, 1024, 3072],
        }
    }
}

pub struct BedrockEmbedder {
    bedrock: Bedrock,
    model: EmbedModel,
    dimensions: u32,
    name: String,
}

impl BedrockEmbedder {
    pub fn new(bedrock: Bedrock, model: EmbedModel, dimensions: u32) -> Result<Self> {
        if !model.dimensions().contains(&dimensions) {
            return Err(Error::invalid(format!(
                "models.bedrock.embedding_dimensions: {} offers {:?}, got {dimensions}",
                model.id(),
                model.dimensions()
            )));
        }
        Ok(BedrockEmbedder {
            bedrock,
            model,
            dimensions,
            name: format!("bedrock:{}", model.id()),
        })
    }

    /// The request body for one text.
    pub fn body(&self, text: &str, purpose: EmbedPurpose) -> serde_json::Value {
        match self.model {
            EmbedModel::Titan => json!({
                "inputText": text,
                "dimensions": self.dimensions,
                "normalize": true,
            }),
            EmbedModel::Nova => json!({
                "schemaVersion": "nova-multimodal-embed-v1",
                "taskType": "SINGLE_EMBEDDING",
                "singleEmbeddingParams": {
                    "embeddingPurpose": match purpose {
                        EmbedPurpose::Index => "GENERIC_INDEX",
                        EmbedPurpose::Query => "TEXT_RETRIEVAL",
                    },
                    "embeddingDimension": self.dimensions,
                    "text": { "truncationMode": "END", "value": text },
                },
            }),
        }
    }

    /// The vector in an answer.
    fn vector(&self, answer: &serde_json::Value) -> Result<Vec<f32>> {
        let raw = match self.model {
            EmbedModel::Titan => &answer["embedding"],
            EmbedModel::Nova => &answer["embeddings"][0]["embedding"],
        };
        vector_of(raw, self.dimensions, &self.name)
    }

    async fn embed_one(&self, text: &str, purpose: EmbedPurpose) -> Result<TextEmbedding> {
        let (sent, truncated) = cut(text);
        let answer = self
            .bedrock
            .invoke_json(
                self.model.id(),
                &self.body(sent, purpose),
                super::Sends::Text,
            )
            .await?;
        let mut vector = self.vector(&answer)?;
        // Titan normalises when asked; Nova's vectors are normalised here for cosine.
        l2_normalise(&mut vector);
        Ok(TextEmbedding { vector, truncated })
    }
}

impl TextEmbedder for BedrockEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimensions(&self) -> usize {
        self.dimensions as usize
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        purpose: EmbedPurpose,
    ) -> BoxFuture<'a, Result<Vec<TextEmbedding>>> {
        Box::pin(async move {
            check_texts(texts)?;
            // In order; the client's semaphore bounds what is in flight.
            stream::iter(0..texts.len())
                .map(|i| self.embed_one(&texts[i], purpose))
                .buffered(64)
                .try_collect()
                .await
        })
    }
}
