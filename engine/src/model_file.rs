//! Reading the model file: one `.safetensors` with the weights, the config and the timbre map,
//! as the training crate exports it.
//!
//! Metadata (all strings): `format` = [`FORMAT_NAME`], `format_version`, `config` (the
//! [`ModelConfig`] as JSON), `layers` (every stack's prefix and shape, JSON, informative),
//! `instruments` (the map's instruments, JSON) and `training` (free-form JSON).
//! Tensors, `f32`, `f16` or `i8` (a file converted with `timbreswap convert-model` stores its
//! weight matrices as `f16`, or as `i8` with one f32 scale per row in a tensor named after the
//! matrix plus [`INT8_SCALES_SUFFIX`] ([`crate::int8`]); the network then reads them with the
//! narrowed kernels): the weights listed by [`ModelConfig::weight_shapes`], plus `map.z_t`
//! `[instruments, z_t]` (the timbre latent of every training instrument), `map.pca_mean`
//! `[z_t]` and `map.pca_basis` `[2, z_t]` (the 2-D PCA of the timbre space).
//!
//! [`parse`] checks every name, dtype, shape and value against the config and refuses a bad
//! file with a [`ModelFileError`], never a panic. Everything here allocates: call it off the
//! audio thread.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::int8::Int8Rows;
use crate::model_config::{ModelConfig, FORMAT_NAME, FORMAT_VERSION};

/// Largest absolute value a weight (or normalisation statistic) may have.
pub const MAX_WEIGHT: f32 = 1e4;

/// What follows an int8 matrix's name in the name of its row scales (`[rows]`, f32).
pub const INT8_SCALES_SUFFIX: &str = "_scales";

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
    /// Dimensions of the timbre latent.
    pub fn dims(&self) -> usize {
        self.pca_mean.len()
    }

    /// The timbre latent of instrument `index`, if there is one.
    pub fn instrument_z_t(&self, index: usize) -> Option<&[f32]> {
        let d = self.dims();
        self.z_t.get(index * d..(index + 1) * d)
    }

    /// 2-D map position of a timbre latent (`dims()` values).
    pub fn project(&self, z_t: &[f32]) -> [f32; 2] {
        let dim = self.dims();
        let mut out = [0.0f32; 2];
        for (axis, o) in out.iter_mut().enumerate() {
            *o = z_t
                .iter()
                .zip(&self.pca_mean)
                .zip(&self.pca_basis[axis * dim..(axis + 1) * dim])
                .map(|((z, m), b)| (z - m) * b)
                .sum();
        }
        out
    }
}

/// How a model's weight matrices are stored, and read by the network's per-frame product
/// (biases, normalisation statistics and the timbre map are always f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 4 bytes per weight.
    F32,
    /// IEEE binary16, 2 bytes per weight ([`crate::half`]).
    F16,
    /// 1 byte per weight and one f32 scale per row ([`crate::int8`]).
    Int8,
    /// The matrices of [`MIXED_INT8_STACKS`] as int8, every other matrix as f16: how the
    /// built-in model ships. A third of a frame's weights, in the stack whose int8 rounding
    /// the decoded output hears least (docs/quality.md, "Mixed weights"). A file whose
    /// matrices are stored in more than one type reads as `Mixed`.
    Mixed,
}

/// The stacks (weight-name prefixes) whose matrices [`Precision::Mixed`] stores as int8: the
/// variation encoder. Alone in int8 (the rest f16) it moves the built-in model's decoded
/// log-magnitude of the voice example by 0.012 dB on average against f32, where the pitch
/// encoder moves it 0.051 dB, the decoder 0.055 dB and the whole model in int8 0.091 dB (f16
/// everywhere: 0.0015 dB; `engine/tests/narrowed_weights.rs`).
pub const MIXED_INT8_STACKS: &[&str] = &["variation."];

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Int8 => "int8",
            Precision::Mixed => "mixed",
        })
    }
}

/// One weight tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// The values (`shape` product of them).
    pub data: Vec<f32>,
    /// The values' f16 bit patterns when the file stored the tensor as f16 (`data` holds the
    /// same values widened exactly); `None` for f32 tensors.
    pub half: Option<Vec<u16>>,
    /// The rows' int8 values and scales when the file stored the matrix as int8 (`data`
    /// holds the values they stand for); `None` otherwise.
    pub int8: Option<Int8Rows>,
}

/// A checked model file.
#[derive(Debug, Clone)]
pub struct ModelFile {
    /// The model's configuration.
    pub config: ModelConfig,
    /// Every weight of [`ModelConfig::weight_shapes`], by name, with exactly that shape; all
    /// values finite.
    pub weights: BTreeMap<String, WeightTensor>,
    /// The timbre map.
    pub map: TimbreMap,
    /// The `training` metadata (`Null` when absent or not JSON).
    pub training: serde_json::Value,
    /// Identity of the file's contents: 16 hex digits of a 64-bit FNV-1a hash of its bytes.
    /// Timbre latents computed with one model are only used with the same model.
    pub id: String,
}

impl ModelFile {
    /// The weight called `name`'s values (present in every checked file for every name of
    /// [`ModelConfig::weight_shapes`]).
    pub fn weight(&self, name: &str) -> Option<&[f32]> {
        self.weights.get(name).map(|t| t.data.as_slice())
    }

    /// Whether a weight tensor is one of the model's matrices (2-D, named `*.weight`): what
    /// an f16 file stores as f16.
    pub fn is_matrix(name: &str, tensor: &WeightTensor) -> bool {
        tensor.shape.len() == 2 && name.ends_with(".weight")
    }

    /// How the file's matrices are stored: [`Precision::Mixed`] where they are not all stored
    /// alike (as a file converted to mixed, or one narrowed in part by hand).
    pub fn precision(&self) -> Precision {
        let (mut half, mut int8, mut wide) = (0, 0, 0);
        for (_, t) in self.weights.iter().filter(|(n, t)| Self::is_matrix(n, t)) {
            match (&t.half, &t.int8) {
                (Some(_), _) => half += 1,
                (_, Some(_)) => int8 += 1,
                _ => wide += 1,
            }
        }
        match (half, int8, wide) {
            (0, 0, _) => Precision::F32,
            (_, 0, 0) => Precision::F16,
            (0, _, 0) => Precision::Int8,
            _ => Precision::Mixed,
        }
    }

    /// This file with its matrices as `precision` reads them: [`Self::with_half_matrices`],
    /// [`Self::with_int8_matrices`], [`Self::with_mixed_matrices`], or (f32) the values as
    /// they are with the narrowed copies dropped. The file itself when it already has that
    /// precision.
    pub fn with_precision(&self, precision: Precision) -> Self {
        if self.precision() == precision {
            return self.clone();
        }
        match precision {
            Precision::F16 => self.with_half_matrices(),
            Precision::Int8 => self.with_int8_matrices(),
            Precision::Mixed => self.with_mixed_matrices(),
            Precision::F32 => {
                let mut out = self.clone();
                for tensor in out.weights.values_mut() {
                    tensor.half = None;
                    tensor.int8 = None;
                }
                out.id = format!("{}-f32", self.id);
                out
            }
        }
    }

    /// This file as its f16 conversion reads ([`crate::half`]): every matrix rounded to f16
    /// (to nearest, ties to even; `half` set, `data` the rounded values), everything else as
    /// it is. The `id` gets a suffix, so latents measured with one are not used with the other.
    pub fn with_half_matrices(&self) -> Self {
        self.with_matrices_as(|_| Precision::F16, "f16")
    }

    /// This file as its int8 conversion reads ([`crate::int8`]): every matrix quantised row
    /// by row (`int8` set, `data` the values it stands for, `half` cleared), everything else as
    /// it is. The `id` gets a suffix, so latents measured with one are not used with the other.
    pub fn with_int8_matrices(&self) -> Self {
        self.with_matrices_as(|_| Precision::Int8, "int8")
    }

    /// This file as its mixed conversion reads ([`Precision::Mixed`]): the matrices of
    /// [`MIXED_INT8_STACKS`] as [`Self::with_int8_matrices`] makes them, every other matrix as
    /// [`Self::with_half_matrices`] does. The `id` gets a suffix.
    pub fn with_mixed_matrices(&self) -> Self {
        let int8 = |name: &str| MIXED_INT8_STACKS.iter().any(|s| name.starts_with(s));
        self.with_matrices_as(
            |name| {
                if int8(name) {
                    Precision::Int8
                } else {
                    Precision::F16
                }
            },
            "mixed",
        )
    }

    /// This file with each matrix stored as `type_of(its name)` says (f32, f16 or int8, from
    /// the values it stands for now), everything else as it is; `suffix` is added to the `id`.
    fn with_matrices_as(&self, type_of: impl Fn(&str) -> Precision, suffix: &str) -> Self {
        let mut out = self.clone();
        for (name, tensor) in &mut out.weights {
            if !Self::is_matrix(name, tensor) {
                continue;
            }
            match type_of(name) {
                Precision::F16 => {
                    let bits: Vec<u16> = tensor
                        .data
                        .iter()
                        .map(|v| crate::half::f16_bits(*v))
                        .collect();
                    tensor.data = bits
                        .iter()
                        .map(|h| crate::half::f32_from_bits(*h))
                        .collect();
                    tensor.half = Some(bits);
                    tensor.int8 = None;
                }
                Precision::Int8 => {
                    let cols = tensor.shape[1];
                    let rows = Int8Rows::quantize(&tensor.data, cols);
                    tensor.data = rows.dequantized(cols);
                    tensor.half = None;
                    tensor.int8 = Some(rows);
                }
                Precision::F32 | Precision::Mixed => {
                    tensor.half = None;
                    tensor.int8 = None;
                }
            }
        }
        out.id = format!("{}-{suffix}", self.id);
        out
    }
}

/// Why a model file could not be read or written.
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
    /// Not a safetensors file, or a damaged (e.g. truncated) one.
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
    /// Weights are missing, unexpected, of the wrong shape or type, or not finite.
    #[error("model weights: {0}")]
    Weights(String),
    /// The timbre map is malformed.
    #[error("timbre map: {0}")]
    Map(String),
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
    parse(&data)
}

/// Checks a model file held in memory.
pub fn parse(data: &[u8]) -> Result<ModelFile, ModelFileError> {
    if data.len() as u64 > MAX_FILE_BYTES {
        return Err(ModelFileError::TooLarge {
            bytes: data.len() as u64,
        });
    }
    // Everything below is checked; a panic in a library is still reported as a damaged file
    // rather than taking the host down.
    match std::panic::catch_unwind(|| parse_checked(data)) {
        Ok(r) => r,
        Err(_) => Err(ModelFileError::Safetensors(
            "the file could not be parsed".into(),
        )),
    }
}

/// 64-bit FNV-1a of `data`, as 16 hex digits.
pub fn content_id(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn parse_checked(data: &[u8]) -> Result<ModelFile, ModelFileError> {
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
    let config: ModelConfig =
        serde_json::from_str(get("config")?).map_err(|e| ModelFileError::Config(e.to_string()))?;
    config
        .validate()
        .map_err(|e| ModelFileError::Config(e.to_string()))?;
    let instruments: Vec<MapInstrument> = serde_json::from_str(get("instruments")?)
        .map_err(|e| ModelFileError::Map(format!("instrument list: {e}")))?;
    let training: serde_json::Value = meta
        .get("training")
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(serde_json::Value::Null);

    let file = safetensors::SafeTensors::deserialize(data)
        .map_err(|e| ModelFileError::Safetensors(e.to_string()))?;
    let mut tensors: BTreeMap<String, WeightTensor> = BTreeMap::new();
    // int8 matrices, their values paired with their scales below.
    let mut int8: BTreeMap<String, Vec<i8>> = BTreeMap::new();
    for (name, view) in file.tensors() {
        if view.dtype() == safetensors::Dtype::I8 {
            if view.shape().len() != 2 || !name.ends_with(".weight") {
                return Err(ModelFileError::Weights(format!(
                    "{name} is I8, which only weight matrices may be"
                )));
            }
            let values: Vec<i8> = view.data().iter().map(|b| *b as i8).collect();
            if values.len() != view.shape().iter().product::<usize>() {
                return Err(ModelFileError::Safetensors(format!(
                    "{name}: data does not match its shape"
                )));
            }
            if values.contains(&i8::MIN) {
                return Err(ModelFileError::Weights(format!(
                    "{name} holds -128, outside the symmetric int8 range"
                )));
            }
            int8.insert(name.clone(), values);
            tensors.insert(
                name,
                WeightTensor {
                    shape: view.shape().to_vec(),
                    data: Vec::new(),
                    half: None,
                    int8: None,
                },
            );
            continue;
        }
        let (values, half): (Vec<f32>, Option<Vec<u16>>) = match view.dtype() {
            safetensors::Dtype::F32 => (
                view.data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                None,
            ),
            safetensors::Dtype::F16 => {
                let bits: Vec<u16> = view
                    .data()
                    .chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]))
                    .collect();
                (
                    bits.iter()
                        .map(|h| crate::half::f32_from_bits(*h))
                        .collect(),
                    Some(bits),
                )
            }
            other => {
                return Err(ModelFileError::Weights(format!(
                    "{name} is {other:?}, expected F32, F16 or I8"
                )))
            }
        };
        if values.len() != view.shape().iter().product::<usize>() {
            return Err(ModelFileError::Safetensors(format!(
                "{name}: data does not match its shape"
            )));
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(ModelFileError::Weights(format!(
                "{name} has NaN or Inf values"
            )));
        }
        // Trained weights and normalisation statistics stay far below this; a larger value is
        // a damaged or hostile file whose activations would overflow.
        if let Some(v) = values.iter().find(|v| v.abs() > MAX_WEIGHT) {
            return Err(ModelFileError::Weights(format!(
                "{name} has a value of {v:e}, beyond the ±{MAX_WEIGHT:e} a trained model uses"
            )));
        }
        tensors.insert(
            name,
            WeightTensor {
                shape: view.shape().to_vec(),
                data: values,
                half,
                int8: None,
            },
        );
    }
    for (name, values) in int8 {
        let scales_name = format!("{name}{INT8_SCALES_SUFFIX}");
        let rows = tensors[&name].shape[0];
        let scales = match tensors.remove(&scales_name) {
            Some(t) if t.half.is_none() && t.shape == [rows] => t.data,
            Some(t) => {
                return Err(ModelFileError::Weights(format!(
                    "{scales_name} has shape {:?}, the I8 matrix {name} needs f32 [{rows}]",
                    t.shape
                )))
            }
            None => {
                return Err(ModelFileError::Weights(format!(
                    "{name} is I8 but {scales_name} is missing"
                )))
            }
        };
        if scales.iter().any(|s| *s < 0.0) {
            return Err(ModelFileError::Weights(format!(
                "{scales_name} has a negative scale"
            )));
        }
        let rows = Int8Rows { values, scales };
        let tensor = tensors.get_mut(&name).expect("inserted above");
        tensor.data = rows.dequantized(tensor.shape[1]);
        // The scales are finite and at most MAX_WEIGHT (checked as every f32 tensor), but
        // their product with 127 need not be.
        if let Some(v) = tensor.data.iter().find(|v| v.abs() > MAX_WEIGHT) {
            return Err(ModelFileError::Weights(format!(
                "{name} has a value of {v:e}, beyond the ±{MAX_WEIGHT:e} a trained model uses"
            )));
        }
        tensor.int8 = Some(rows);
    }

    let expected = config.weight_shapes();
    let missing: Vec<&String> = expected
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !tensors.contains_key(*n))
        .collect();
    if let Some(first) = missing.first() {
        return Err(ModelFileError::Weights(format!(
            "{} tensors the config needs are missing (first: {first})",
            missing.len()
        )));
    }
    let unexpected: Vec<&String> = tensors
        .keys()
        .filter(|n| !n.starts_with("map.") && !expected.iter().any(|(e, _)| e == *n))
        .collect();
    if let Some(first) = unexpected.first() {
        return Err(ModelFileError::Weights(format!(
            "{} tensors do not belong to a model of this config (first: {first})",
            unexpected.len()
        )));
    }
    for (name, shape) in &expected {
        let found = &tensors[name].shape;
        if found != shape {
            return Err(ModelFileError::Weights(format!(
                "{name} has shape {found:?}, the config needs {shape:?}"
            )));
        }
    }
    if let Some(s) = tensors.get("features.scale") {
        if s.data.iter().any(|v| *v <= 0.0) {
            return Err(ModelFileError::Weights(format!(
                "features.scale must be positive, got {:?}",
                s.data
            )));
        }
    }

    let z = config.z_t;
    let mut map_vec = |name: &str, shape: &[usize]| -> Result<Vec<f32>, ModelFileError> {
        let t = tensors
            .remove(name)
            .ok_or_else(|| ModelFileError::Map(format!("tensor {name} is missing")))?;
        if t.shape != shape {
            return Err(ModelFileError::Map(format!(
                "{name} has shape {:?}, expected {shape:?}",
                t.shape
            )));
        }
        Ok(t.data)
    };
    let map = TimbreMap {
        z_t: map_vec("map.z_t", &[instruments.len(), z])?,
        pca_mean: map_vec("map.pca_mean", &[z])?,
        pca_basis: map_vec("map.pca_basis", &[2, z])?,
        instruments,
    };
    if let Some(extra) = tensors.keys().find(|n| n.starts_with("map.")) {
        return Err(ModelFileError::Map(format!("unknown map tensor {extra}")));
    }
    Ok(ModelFile {
        config,
        weights: tensors,
        map,
        training,
        id: content_id(data),
    })
}
