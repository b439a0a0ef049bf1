//! ONNX Runtime for the offline perception models: the shared library from PyPI's
//! `onnxruntime` wheel (`scripts/setup.sh` puts it under the models directory), loaded
//! once per process through `ort`'s `load-dynamic`, and sessions over it.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::Session;
use reelforge_core::error::{Error, Result};

/// Where setup installs the runtime, under the models directory.
pub const RUNTIME_DIR: &str = "onnxruntime";
/// The library the `ort` crate's API level (1.31) was written against.
pub const LIBRARY: &str = "libonnxruntime.so.1.31.1";

/// The process's runtime: loaded by the first caller (from its models directory), kept
/// for the process (the library cannot be unloaded; `ort` keeps one environment).
static RUNTIME: OnceLock<Mutex<Option<(PathBuf, Environment)>>> = OnceLock::new();

/// The runtime from `models_dir`, loading it the first time. A second models directory
/// in one process uses the first one's library (the same version, by setup).
pub(crate) fn runtime(models_dir: &Path) -> Result<Environment> {
    let cell = RUNTIME.get_or_init(|| Mutex::new(None));
    let mut loaded = cell.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, env)) = loaded.as_ref() {
        return Ok(env.clone());
    }
    let library = models_dir.join(RUNTIME_DIR).join(LIBRARY);
    if !library.is_file() {
        return Err(Error::FailedPrecondition(format!(
            "ONNX Runtime is not installed: {} is missing (run scripts/setup.sh)",
            library.display()
        )));
    }
    let env = ort::init_from(&library)
        .map_err(|e| Error::FailedPrecondition(format!("cannot load {}: {e}", library.display())))?
        .with_name("reelforge")
        .build()
        .map_err(|e| Error::internal(format!("ONNX Runtime environment: {e}")))?;
    *loaded = Some((library, env.clone()));
    Ok(env)
}

/// A session over the model at `path`, inferring on `threads` threads of its own.
pub(crate) fn session(models_dir: &Path, path: &Path, threads: usize) -> Result<Session> {
    let env = runtime(models_dir)?;
    if !path.is_file() {
        return Err(Error::FailedPrecondition(format!(
            "{} is missing (run scripts/setup.sh)",
            path.display()
        )));
    }
    let fail =
        |e: ort::Error| Error::FailedPrecondition(format!("cannot load {}: {e}", path.display()));
    Session::builder(&env)
        .map_err(fail)?
        .with_intra_threads(threads.max(1))
        .map_err(|e| fail(e.into()))?
        .with_inter_threads(1)
        .map_err(|e| fail(e.into()))?
        .commit_from_file(path)
        .map_err(fail)
}

/// The scalar initializers of the ONNX model at `path` (float or 8-bit integer tensors of
/// one element, stored in the model file), by name: what a quantised model's inputs and
/// outputs are scaled by. Reads the protobuf directly (ModelProto.graph = 7,
/// GraphProto.initializer = 5; TensorProto dims = 1, data_type = 2, float_data = 4,
/// int32_data = 5, name = 8, raw_data = 9).
pub(crate) fn scalar_initializers(path: &Path) -> Result<Vec<(String, f32)>> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::FailedPrecondition(format!("cannot read {}: {e}", path.display())))?;
    let bad = || Error::FailedPrecondition(format!("{} is not an ONNX model", path.display()));
    let mut out = Vec::new();
    for (field, graph) in fields(&bytes).ok_or_else(bad)? {
        let Field::Bytes(graph) = graph else { continue };
        if field != 7 {
            continue;
        }
        for (field, tensor) in fields(graph).ok_or_else(bad)? {
            let (5, Field::Bytes(tensor)) = (field, tensor) else {
                continue;
            };
            let (mut name, mut data_type, mut dims) = (None, 0, 0);
            let (mut value, mut int) = (None, None);
            for (field, v) in fields(tensor).ok_or_else(bad)? {
                match (field, v) {
                    (1, _) => dims += 1,
                    (2, Field::Varint(t)) => data_type = t,
                    (8, Field::Bytes(n)) => name = std::str::from_utf8(n).ok(),
                    (9, Field::Bytes(raw)) => value = Some(raw),
                    (4, Field::Bytes(raw)) | (4, Field::Fixed32(raw)) => value = Some(raw),
                    (5, Field::Varint(v)) => int = Some(v as u32),
                    _ => {}
                }
            }
            let scalar = match (data_type, value) {
                (1, Some(raw)) if raw.len() == 4 => {
                    Some(f32::from_le_bytes(raw.try_into().expect("4 bytes")))
                }
                (2, Some(raw)) if raw.len() == 1 => Some(raw[0] as f32),
                (3, Some(raw)) if raw.len() == 1 => Some(raw[0] as i8 as f32),
                (2, None) => int.map(|v| v as u8 as f32),
                (3, None) => int.map(|v| v as i32 as i8 as f32),
                _ => None,
            };
            if let (Some(name), Some(v), 0) = (name, scalar, dims) {
                out.push((name.to_string(), v));
            }
        }
    }
    Ok(out)
}

/// A protobuf field's value, as far as `scalar_initializers` reads them.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed32(&'a [u8]),
}

/// The fields of one protobuf message, in order; `None` when it is not well formed.
fn fields(mut b: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    fn varint(b: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            v |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let value = match key & 7 {
            0 => Field::Varint(varint(&mut b)?),
            1 => {
                let (_, rest) = b.split_at_checked(8)?;
                b = rest;
                continue;
            }
            2 => {
                let len = usize::try_from(varint(&mut b)?).ok()?;
                let (v, rest) = b.split_at_checked(len)?;
                b = rest;
                Field::Bytes(v)
            }
            5 => {
                let (v, rest) = b.split_at_checked(4)?;
                b = rest;
                Field::Fixed32(v)
            }
            _ => return None,
        };
        out.push((key >> 3, value));
    }
    Some(out)
}
