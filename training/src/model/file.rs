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
pub use timbreswap_engine::model_config::FORMAT_NAME;
use timbreswap_engine::model_file::INT8_SCALES_SUFFIX;
pub use timbreswap_engine::model_file::{
    MapInstrument, ModelFileError, Precision, TimbreMap, MAX_FILE_BYTES,
};

use super::{Config, ThreeFactor, FORMAT_VERSION};

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

fn candle_err(e: candle_core::Error) -> ModelFileError {
    ModelFileError::Weights(e.to_string())
}

/// Writes `weights` (every model tensor, `features.*` included), `cfg`, `map` and `training`
/// to `path` (through a temporary file, so a crash never leaves half a model). The same
/// arguments always write the same bytes.
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
    let bytes = safetensors::serialize(tensors, Some(metadata))
        .map_err(|e| ModelFileError::Safetensors(e.to_string()))?;
    // Sorted header keys: the same weights always give the same bytes (and model id).
    write_through_temporary(path, &with_sorted_header(&bytes)?)
}

/// Writes `bytes` to `path` through a temporary file beside it, so a crash never leaves half a
/// model where a model was.
fn write_through_temporary(path: &Path, bytes: &[u8]) -> Result<(), ModelFileError> {
    let tmp = path.with_extension("safetensors.partial");
    std::fs::write(&tmp, bytes).map_err(io_error(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_error(path))
}

/// Turns an I/O error on `path` into a [`ModelFileError::Io`].
fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ModelFileError {
    let path = path.display().to_string();
    move |source| ModelFileError::Io { path, source }
}

/// A safetensors file's bytes with its JSON header's keys sorted (the metadata comes out of a
/// hash map in any order), so converting the same file twice writes the same bytes and the
/// engine's model id (a hash of the file) is stable. The header stays padded to 8 bytes with
/// spaces, as the format asks; the tensor data is untouched.
fn with_sorted_header(bytes: &[u8]) -> Result<Vec<u8>, ModelFileError> {
    let bad = |what: &str| ModelFileError::Safetensors(format!("serialised file: {what}"));
    let len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
        .ok_or_else(|| bad("no header length"))?;
    let header = bytes.get(8..8 + len).ok_or_else(|| bad("short header"))?;
    // serde_json's maps are sorted (no `preserve_order`), so this writes the keys in order.
    let value: serde_json::Value =
        serde_json::from_slice(header).map_err(|e| bad(&e.to_string()))?;
    let mut sorted = serde_json::to_vec(&value).map_err(|e| bad(&e.to_string()))?;
    while sorted.len() % 8 != 0 {
        sorted.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + sorted.len() + bytes.len() - 8 - len);
    out.extend_from_slice(&(sorted.len() as u64).to_le_bytes());
    out.extend_from_slice(&sorted);
    out.extend_from_slice(&bytes[8 + len..]);
    Ok(out)
}

/// `v` as JSON text (config-like values always serialise).
fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Names of every weight tensor a model of `cfg` registers with candle (`features.*`
/// included); the engine's [`Config::weight_shapes`] must list the same.
pub fn weight_names(cfg: &Config) -> Result<std::collections::BTreeSet<String>, ModelFileError> {
    Ok(registered_weights(cfg)?.into_keys().collect())
}

/// Every weight tensor a model of `cfg` registers with candle, with its shape.
pub fn registered_weights(
    cfg: &Config,
) -> Result<std::collections::BTreeMap<String, Vec<usize>>, ModelFileError> {
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
    Ok(data
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().dims().to_vec()))
        .collect())
}

/// Reads and checks the model file at `path` (the engine's checks, then the candle model).
pub fn load(path: &Path) -> Result<ModelFile, ModelFileError> {
    from_checked(timbreswap_engine::model_file::load(path)?)
}

/// Reads and checks a model file held in memory.
pub fn load_bytes(data: &[u8]) -> Result<ModelFile, ModelFileError> {
    from_checked(timbreswap_engine::model_file::parse(data)?)
}

/// The candle model of a file the engine has checked.
fn from_checked(
    file: timbreswap_engine::model_file::ModelFile,
) -> Result<ModelFile, ModelFileError> {
    let dev = Device::Cpu;
    let mut tensors = HashMap::new();
    for (name, t) in file.weights {
        let tensor = Tensor::from_vec(t.data, t.shape, &dev).map_err(candle_err)?;
        tensors.insert(name, tensor);
    }
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
    let model = ThreeFactor::new(&file.config, vb).map_err(candle_err)?;
    Ok(ModelFile {
        model,
        map: file.map,
        training: file.training,
    })
}

/// What [`convert`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    /// Weight matrices written.
    pub matrices: usize,
    /// Of those, the ones stored as f16 and as int8 (the rest f32).
    pub narrowed: (usize, usize),
    /// Tensors kept as f32 (biases, normalisation statistics, the timbre map).
    pub kept: usize,
    /// Largest change of a matrix entry relative to its matrix's largest magnitude,
    /// `|stored(w) - w| / max|W|`.
    pub worst_relative_change: f32,
    /// File sizes before and after, in bytes.
    pub bytes: (u64, u64),
}

/// Writes a copy of the model file `input` to `output` with every weight matrix (a 2-D tensor
/// named `*.weight`) stored as `precision`: f16 rounded to nearest, int8 with one f32 scale
/// per row ([`timbreswap_engine::int8`], the scales in a tensor named after the matrix plus
/// [`INT8_SCALES_SUFFIX`]), mixed (the matrices of
/// [`timbreswap_engine::model_file::MIXED_INT8_STACKS`] int8, the others f16), or f32 (the
/// values a narrowed file stands for). Biases,
/// normalisation statistics and the timbre map stay f32; the metadata is copied (plus
/// `weights` = the precision). The engine reads f16 and int8 matrices with its narrowed
/// kernels. The input is checked as every model file is, and so is the output before it is
/// written; the same input always writes the same bytes.
pub fn convert(
    input: &Path,
    output: &Path,
    precision: Precision,
) -> Result<Conversion, ModelFileError> {
    // Checks the whole file (names, shapes, values) before anything is written.
    let data = std::fs::read(input).map_err(io_error(input))?;
    let checked = timbreswap_engine::model_file::parse(&data)?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&data)
        .map_err(|e| ModelFileError::Safetensors(e.to_string()))?;
    let mut metadata = header.metadata().clone().unwrap_or_default();
    metadata.insert("weights".into(), precision.to_string());
    let converted = checked.with_precision(precision);
    let mut buffers: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let (mut matrices, mut narrowed, mut kept, mut worst) = (0, (0, 0), 0, 0.0f32);
    let f32_bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|v| v.to_le_bytes()).collect() };
    for ((name, tensor), original) in converted.weights.iter().zip(checked.weights.values()) {
        if !timbreswap_engine::model_file::ModelFile::is_matrix(name, tensor) {
            kept += 1;
            buffers.push((
                name.clone(),
                safetensors::Dtype::F32,
                tensor.shape.clone(),
                f32_bytes(&tensor.data),
            ));
            continue;
        }
        let max = original.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (stored, v) in tensor.data.iter().zip(&original.data) {
            if max > 0.0 {
                worst = worst.max((stored - v).abs() / max);
            }
        }
        matrices += 1;
        let (dtype, bytes) = match (&tensor.half, &tensor.int8) {
            (Some(bits), _) => {
                narrowed.0 += 1;
                (
                    safetensors::Dtype::F16,
                    bits.iter().flat_map(|h| h.to_le_bytes()).collect(),
                )
            }
            (_, Some(rows)) => {
                narrowed.1 += 1;
                buffers.push((
                    format!("{name}{INT8_SCALES_SUFFIX}"),
                    safetensors::Dtype::F32,
                    vec![tensor.shape[0]],
                    f32_bytes(&rows.scales),
                ));
                (
                    safetensors::Dtype::I8,
                    rows.values.iter().map(|v| *v as u8).collect(),
                )
            }
            (None, None) => (safetensors::Dtype::F32, f32_bytes(&tensor.data)),
        };
        buffers.push((name.clone(), dtype, tensor.shape.clone(), bytes));
    }
    // The timbre map's tensors (checked above, not among the weights) are copied as they are.
    let file = safetensors::SafeTensors::deserialize(&data)
        .map_err(|e| ModelFileError::Safetensors(e.to_string()))?;
    for (name, view) in file.tensors() {
        let is_weight = checked.weights.contains_key(&name)
            || name
                .strip_suffix(INT8_SCALES_SUFFIX)
                .is_some_and(|m| checked.weights.contains_key(m));
        if !is_weight {
            buffers.push((
                name,
                view.dtype(),
                view.shape().to_vec(),
                view.data().to_vec(),
            ));
            kept += 1;
        }
    }
    let views = buffers
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|e| ModelFileError::Safetensors(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bytes = safetensors::serialize(views, Some(metadata))
        .map_err(|e| ModelFileError::Safetensors(e.to_string()))?;
    let bytes = with_sorted_header(&bytes)?;
    timbreswap_engine::model_file::parse(&bytes)?;
    write_through_temporary(output, &bytes)?;
    Ok(Conversion {
        matrices,
        narrowed,
        kept,
        worst_relative_change: worst,
        bytes: (data.len() as u64, bytes.len() as u64),
    })
}
