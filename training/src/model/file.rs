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
pub use timbreswap_engine::model_file::{MapInstrument, ModelFileError, TimbreMap, MAX_FILE_BYTES};

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
