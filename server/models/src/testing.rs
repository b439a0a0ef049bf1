//! Test helpers other crates' tests share (the `testing` feature): the offline models
//! loaded once per process from the models directory `scripts/setup.sh` fills, and a
//! tiny random-weight CLIP for exercising the image-text loading path.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use reelforge_core::error::{Error, Result};

use candle_transformers::models::clip::ClipModel;

use crate::clip::{clip_config, HfClipConfig};
use crate::sound::YamnetTagger;
use crate::vision::{EfficientNetTagger, PpOcrReader};
use crate::{MiniLmEmbedder, MuseEmbedder, WhisperTranscriber};

/// The repository's `models/` directory.
pub fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// A file under the repository's `assets/` (what `scripts/setup.sh` fetches).
pub fn asset(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets")
        .join(path)
}

/// The English offline text embedder (MiniLM), loaded once per process.
pub fn text_embedder() -> &'static MiniLmEmbedder {
    static MODEL: OnceLock<MiniLmEmbedder> = OnceLock::new();
    MODEL.get_or_init(|| {
        MiniLmEmbedder::load(&models_dir().join(MiniLmEmbedder::DIR_NAME), 1)
            .unwrap_or_else(|e| panic!("{e} (run scripts/setup.sh)"))
    })
}

/// The multilingual offline text embedder (USE multilingual v3), loaded once per process.
pub fn multilingual_text_embedder() -> &'static MuseEmbedder {
    static MODEL: OnceLock<MuseEmbedder> = OnceLock::new();
    MODEL.get_or_init(|| {
        MuseEmbedder::load(&models_dir().join(MuseEmbedder::DIR_NAME), 1)
            .unwrap_or_else(|e| panic!("{e} (run scripts/setup.sh)"))
    })
}

/// The offline sound tagger (YAMNet), loaded once per process.
pub fn sound_tagger() -> &'static YamnetTagger {
    static MODEL: OnceLock<YamnetTagger> = OnceLock::new();
    MODEL.get_or_init(|| {
        YamnetTagger::load(&models_dir(), &YamnetTagger::dir_in(&models_dir()), 1)
            .unwrap_or_else(|e| panic!("{e} (run scripts/setup.sh)"))
    })
}

/// The offline scene tagger (EfficientNet-Lite0), loaded once per process.
pub fn scene_tagger() -> &'static EfficientNetTagger {
    static MODEL: OnceLock<EfficientNetTagger> = OnceLock::new();
    MODEL.get_or_init(|| {
        EfficientNetTagger::load(&EfficientNetTagger::dir_in(&models_dir()), 1)
            .unwrap_or_else(|e| panic!("{e} (run scripts/setup.sh)"))
    })
}

/// The offline text reader (PP-OCRv6), loaded once per process.
pub fn text_reader() -> &'static PpOcrReader {
    static MODEL: OnceLock<PpOcrReader> = OnceLock::new();
    MODEL.get_or_init(|| {
        PpOcrReader::load(&models_dir(), &PpOcrReader::dir_in(&models_dir()), 1)
            .unwrap_or_else(|e| panic!("{e} (run scripts/setup.sh)"))
    })
}

/// The offline speech model (English), loaded once per process.
pub fn transcriber() -> &'static WhisperTranscriber {
    static MODEL: OnceLock<WhisperTranscriber> = OnceLock::new();
    MODEL.get_or_init(|| whisper(WhisperTranscriber::TINY_EN))
}

/// The multilingual offline speech model, loaded once per process.
pub fn multilingual_transcriber() -> &'static WhisperTranscriber {
    static MODEL: OnceLock<WhisperTranscriber> = OnceLock::new();
    MODEL.get_or_init(|| whisper(WhisperTranscriber::BASE))
}

fn whisper(name: &str) -> WhisperTranscriber {
    crate::load_whisper(&models_dir(), name, 1, crate::whisper::DEFAULT_GATE_DB)
        .unwrap_or_else(|e| panic!("{e} (run scripts/setup.sh)"))
}

/// Writes a tiny CLIP with random weights in the layout users' models have (config,
/// word-level tokenizer, safetensors), for exercising the loading path end to end where
/// no real CLIP weights can be installed. Its vectors mean nothing.
pub fn write_random_tiny_clip(dir: &Path) -> Result<()> {
    use candle_nn::{Init, VarMap};
    const WORDS: [&str; 8] = ["a", "red", "car", "blue", "boat", "on", "the", "sea"];
    let internal = |e: &dyn std::fmt::Display| Error::internal(format!("tiny CLIP: {e}"));
    std::fs::create_dir_all(dir)?;
    let config = serde_json::json!({
        "projection_dim": 16,
        "text_config": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4,
                        "num_hidden_layers": 2, "max_position_embeddings": 16,
                        "vocab_size": WORDS.len() + 3},
        "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4,
                          "num_hidden_layers": 2, "image_size": 32, "patch_size": 8}
    });
    std::fs::write(dir.join("config.json"), config.to_string())?;
    // Word-level vocabulary; <|endoftext|> has the highest id, as in CLIP's.
    let mut vocab = serde_json::Map::new();
    vocab.insert("<|unk|>".into(), 0.into());
    vocab.insert("<|startoftext|>".into(), 1.into());
    for (i, w) in WORDS.iter().enumerate() {
        vocab.insert((*w).into(), (i + 2).into());
    }
    let eot = WORDS.len() + 2;
    vocab.insert("<|endoftext|>".into(), eot.into());
    let tokenizer = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|startoftext|>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {
                "<|startoftext|>": {"id": "<|startoftext|>", "ids": [1], "tokens": ["<|startoftext|>"]},
                "<|endoftext|>": {"id": "<|endoftext|>", "ids": [eot], "tokens": ["<|endoftext|>"]}
            }
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<|unk|>"}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string())?;
    let hf: HfClipConfig = serde_json::from_value(config).map_err(|e| internal(&e))?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let randn = Init::Randn {
        mean: 0.0,
        stdev: 1.0,
    };
    vb.pp("vision_model.embeddings")
        .get_with_hints(32, "class_embedding", randn)
        .map_err(|e| internal(&e))?;
    ClipModel::new(vb, &clip_config(&hf).map_err(|e| internal(&e))?).map_err(|e| internal(&e))?;
    varmap
        .save(dir.join("model.safetensors"))
        .map_err(|e| internal(&e))
}
