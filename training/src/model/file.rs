//! The model file: one `.safetensors` with the weights, the config and the timbre map.
//!
//! Metadata (all strings): `format` = [`FORMAT_NAME`], `format_version`, `config` (the
//! [`Config`] as JSON), `layers` (every stack's prefix and shape, JSON), `instruments` (the
//! map's instruments, JSON) and `training` (free-form JSON: data, steps, wall time).
//! Tensors: the model's weights (names from [`ThreeFactor::new`]), plus `map.z_t`
//! `[instruments, z_t]` (the timbre latent of every training instrument), `map.pca_mean`
//! `[z_t]` and `map.pca_basis` `[2, z_t]` (the 2-D PCA of the timbre space, for the editor).
//!
//! Loading checks everything and refuses a bad file with a [`ModelFileError`], never a panic.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::{Config, ThreeFactor, FORMAT_VERSION};

/// Value of the `format` metadata key.
pub const FORMAT_NAME: &str = "timbreswap-three-factor";

/// Largest model file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// An instrument of the timbre map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapInstrument {
    /// General MIDI program, 0-based.
    pub program: u8,
    /// Instrument name.
    pub name: String,
    /// Instrument family.
    pub family: String,
}

/// The timbre space of the training instruments and its 2-D projection.
#[derive(Debug, Clone, PartialEq)]
pub struct TimbreMap {
    /// The instruments, in row order of `z_t`.
    pub instruments: Vec<MapInstrument>,
    /// Mean timbre latent of each instrument's training notes, row-major
    /// `instruments x z_t`.
    pub z_t: Vec<f32>,
    /// Mean subtracted before projecting, `z_t` values.
    pub pca_mean: Vec<f32>,
    /// The two principal axes, row-major `2 x z_t`.
    pub pca_basis: Vec<f32>,
}

impl TimbreMap {
    /// 2-D map position of a timbre latent.
    pub fn project(&self, z_t: &[f32]) -> [f32; 2] {
        let dim = self.pca_mean.len();
        let mut out = [0.0f32; 2];
        for (axis, o) in out.iter_mut().enumerate() {
            *o = (0..dim)
                .map(|i| (z_t[i] - self.pca_mean[i]) * self.pca_basis[axis * dim + i])
                .sum();
        }
        out
    }
}

/// A loaded model file.
#[derive(Debug, Clone)]
pub struct ModelFile {
    /// The model, ready to run.
    pub model: ThreeFactor,
    /// The timbre map.
    pub map: TimbreMap,
    /// The `training` metadata.
    pub training: serde_json::Value,
}

/// Why a model file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Larger than [`MAX_FILE_BYTES`].
    #[error("{bytes} bytes is larger than the {MAX_FILE_BYTES}-byte limit for a model file")]
    TooLarge {
        /// Size of the file.
        bytes: u64,
    },
    /// Not a safetensors file, or a damaged one.
    #[error("not a valid safetensors file: {0}")]
    Safetensors(String),
    /// A safetensors file without Timbreswap's metadata.
    #[error("not a Timbreswap model: metadata key `{0}` is missing")]
    MissingMetadata(&'static str),
    /// Another format name.
    #[error("not a Timbreswap three-factor model (format `{0}`)")]
    WrongFormat(String),
    /// A version this build does not read.
    #[error("model format version {found}; this build reads version {FORMAT_VERSION}")]
    Version {
        /// The file's version string.
        found: String,
    },
    /// The config is not valid JSON or not a usable config.
    #[error("model config: {0}")]
    Config(String),
    /// Weights are missing, of the wrong shape or type, or not finite.
    #[error("model weights: {0}")]
    Weights(String),
    /// The timbre map is malformed.
    #[error("timbre map: {0}")]
    Map(String),
}

fn candle_err(e: candle_core::Error) -> ModelFileError {
    ModelFileError::Weights(e.to_string())
}

/// Writes `weights` (every model tensor, `features.*` included), `cfg`, `map` and `training`
/// to `path` (through a temporary file, so a crash never leaves half a model).
pub fn save(
    path: &Path,
    cfg: &Config,
    weights: &HashMap<String, Tensor>,
    map: &TimbreMap,
    training: &serde_json::Value,
) -> Result<(), ModelFileError> {
    let z = cfg.z_t;
    let n = map.instruments.len();
    if map.z_t.len() != n * z || map.pca_mean.len() != z || map.pca_basis.len() != 2 * z {
        return Err(ModelFileError::Map(format!(
            "sizes {} / {} / {} do not match {n} instruments of {z} dims",
            map.z_t.len(),
            map.pca_mean.len(),
            map.pca_basis.len()
        )));
    }
    let dev = Device::Cpu;
    let mut tensors: Vec<(String, Tensor)> = weights
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let t = |v: &[f32], shape: &[usize]| Tensor::from_slice(v, shape, &dev).map_err(candle_err);
    tensors.push(("map.z_t".into(), t(&map.z_t, &[n, z])?));
    tensors.push(("map.pca_mean".into(), t(&map.pca_mean, &[z])?));
    tensors.push(("map.pca_basis".into(), t(&map.pca_basis, &[2, z])?));
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let layers: Vec<serde_json::Value> = cfg
        .layers()
        .iter()
        .map(|(name, s)| {
            serde_json::json!({
                "prefix": name, "input": s.input, "hidden": s.hidden, "output": s.output,
                "kernel": s.kernel, "dilations": s.dilations,
            })
        })
        .collect();
    let metadata: HashMap<String, String> = [
        ("format".to_string(), FORMAT_NAME.to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        ("config".to_string(), to_json(cfg)),
        ("layers".to_string(), to_json(&layers)),
        ("instruments".to_string(), to_json(&map.instruments)),
        ("training".to_string(), training.to_string()),
    ]
    .into_iter()
    .collect();
    let tmp = path.with_extension("safetensors.partial");
    safetensors::serialize_to_file(tensors, Some(metadata), &tmp)
        .map_err(|e| ModelFileError::Safetensors(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|source| ModelFileError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// `v` as JSON text (config-like values always serialise).
fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Names of every weight tensor a model of `cfg` has (`features.*` included).
pub fn weight_names(cfg: &Config) -> Result<std::collections::BTreeSet<String>, ModelFileError> {
    let varmap = candle_nn::VarMap::new();
    super::FeatureStats::identity(cfg.bins())
        .insert_into(&varmap)
        .map_err(candle_err)?;
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    ThreeFactor::new(cfg, vb).map_err(candle_err)?;
    let data = varmap
        .data()
        .lock()
        .map_err(|_| ModelFileError::Weights("weight registry poisoned".into()))?;
    Ok(data.keys().cloned().collect())
}

/// Reads and checks the model file at `path`.
pub fn load(path: &Path) -> Result<ModelFile, ModelFileError> {
    let io = |source| ModelFileError::Io {
        path: path.display().to_string(),
        source,
    };
    let bytes = std::fs::metadata(path).map_err(io)?.len();
    if bytes > MAX_FILE_BYTES {
        return Err(ModelFileError::TooLarge { bytes });
    }
    let data = std::fs::read(path).map_err(io)?;
    load_bytes(&data)
}

/// Reads and checks a model file held in memory.
pub fn load_bytes(data: &[u8]) -> Result<ModelFile, ModelFileError> {
    if data.len() as u64 > MAX_FILE_BYTES {
        return Err(ModelFileError::TooLarge {
            bytes: data.len() as u64,
        });
    }
    // A library bug must not take the caller down with it: everything below is checked, and a
    // panic is still reported as a damaged file.
    match std::panic::catch_unwind(|| load_checked(data)) {
        Ok(r) => r,
        Err(_) => Err(ModelFileError::Safetensors(
            "the file could not be parsed".into(),
        )),
    }
}

fn load_checked(data: &[u8]) -> Result<ModelFile, ModelFileError> {
    let (_, header) = safetensors::SafeTensors::read_metadata(data)
        .map_err(|e| ModelFileError::Safetensors(e.to_string()))?;
    let meta = header
        .metadata()
        .clone()
        .ok_or(ModelFileError::MissingMetadata("format"))?;
    let get = |key: &'static str| meta.get(key).ok_or(ModelFileError::MissingMetadata(key));
    let format = get("format")?;
    if format != FORMAT_NAME {
        return Err(ModelFileError::WrongFormat(format.clone()));
    }
    let version = get("format_version")?;
    if version.trim() != FORMAT_VERSION.to_string() {
        return Err(ModelFileError::Version {
            found: version.clone(),
        });
    }
    let cfg: Config =
        serde_json::from_str(get("config")?).map_err(|e| ModelFileError::Config(e.to_string()))?;
    cfg.validate()
        .map_err(|e| ModelFileError::Config(e.to_string()))?;
    let instruments: Vec<MapInstrument> = serde_json::from_str(get("instruments")?)
        .map_err(|e| ModelFileError::Map(format!("instrument list: {e}")))?;
    let training: serde_json::Value = meta
        .get("training")
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(serde_json::Value::Null);

    let dev = Device::Cpu;
    let tensors = candle_core::safetensors::load_buffer(data, &dev)
        .map_err(|e| ModelFileError::Safetensors(e.to_string()))?;
    for (name, t) in &tensors {
        if t.dtype() != DType::F32 {
            return Err(ModelFileError::Weights(format!(
                "{name} is {:?}, expected f32",
                t.dtype()
            )));
        }
        let finite = t
            .flatten_all()
            .and_then(|f| f.to_vec1::<f32>())
            .map_err(candle_err)?
            .iter()
            .all(|v| v.is_finite());
        if !finite {
            return Err(ModelFileError::Weights(format!(
                "{name} has NaN or Inf values"
            )));
        }
    }
    let expected = weight_names(&cfg)?;
    let missing: Vec<&String> = expected
        .iter()
        .filter(|n| !tensors.contains_key(*n))
        .collect();
    if !missing.is_empty() {
        return Err(ModelFileError::Weights(format!(
            "{} tensors the config needs are missing (first: {})",
            missing.len(),
            missing[0]
        )));
    }
    let unexpected: Vec<&String> = tensors
        .keys()
        .filter(|n| !n.starts_with("map.") && !expected.contains(*n))
        .collect();
    if !unexpected.is_empty() {
        return Err(ModelFileError::Weights(format!(
            "{} tensors do not belong to a model of this config (first: {})",
            unexpected.len(),
            unexpected[0]
        )));
    }
    let map_vec = |name: &str, shape: &[usize]| -> Result<Vec<f32>, ModelFileError> {
        let t = tensors
            .get(name)
            .ok_or_else(|| ModelFileError::Map(format!("tensor {name} is missing")))?;
        if t.dims() != shape {
            return Err(ModelFileError::Map(format!(
                "{name} has shape {:?}, expected {shape:?}",
                t.dims()
            )));
        }
        t.flatten_all()
            .and_then(|f| f.to_vec1::<f32>())
            .map_err(candle_err)
    };
    let z = cfg.z_t;
    let map = TimbreMap {
        z_t: map_vec("map.z_t", &[instruments.len(), z])?,
        pca_mean: map_vec("map.pca_mean", &[z])?,
        pca_basis: map_vec("map.pca_basis", &[2, z])?,
        instruments,
    };
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
    let model = ThreeFactor::new(&cfg, vb).map_err(candle_err)?;
    Ok(ModelFile {
        model,
        map,
        training,
    })
}
