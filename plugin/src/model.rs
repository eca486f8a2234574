//! The neural model of an instance: the built-in default (embedded in the binary) or a file the
//! user chose, and the timbre latents measured with it. Everything here allocates or reads
//! files: main thread or background tasks only.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use timbreswap_engine::kernels::Kernels;
use timbreswap_engine::model_file::{self, ModelFile, Precision};
use timbreswap_engine::network::Network;
use timbreswap_engine::timbre::{TimbreDescriptor, TimbreLatent, TIMBRE_FORMAT_VERSION};

/// The default model, trained on FluidR3 GM renders (see `assets/models/default.md`).
pub const DEFAULT_MODEL: &[u8] = include_bytes!("../../assets/models/default.safetensors");

/// Name the default model is shown under.
pub const DEFAULT_NAME: &str = "default (FluidR3 GM)";

/// Which model an instance runs, as saved with the project (`model-path` and
/// `model-weights`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelChoice {
    /// The model file (`None`: the built-in model).
    pub path: Option<String>,
    /// The precision the network reads its matrices in (`None`: as the file stores them; the
    /// built-in model stores mixed: its variation encoder int8, the rest f16). int8 streams
    /// half the bytes of f16 per frame and costs less CPU; its sound differs slightly
    /// (docs/quality.md, "int8 weights").
    pub weights: Option<Precision>,
}

/// How a precision is offered to the user.
pub fn weights_label(weights: Option<Precision>) -> &'static str {
    match weights {
        None => "as stored",
        Some(Precision::F32) => "f32",
        Some(Precision::F16) => "f16",
        Some(Precision::Int8) => "int8",
        Some(Precision::Mixed) => "f16 + int8",
    }
}

/// The default model's network (its matrices as stored, mixed, when `weights` is `None` or
/// names the stored precision), built once per process and precision and shared by every
/// instance.
pub fn default_network_as(weights: Option<Precision>) -> Result<Arc<Network>, String> {
    // The stored precision asked for by name is the stored network, not a second copy.
    let weights = weights.filter(|&w| Some(w) != stored_precision());
    static BUILT: [OnceLock<Result<Arc<Network>, String>>; 5] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    let index = match weights {
        None => 0,
        Some(Precision::F32) => 1,
        Some(Precision::F16) => 2,
        Some(Precision::Int8) => 3,
        Some(Precision::Mixed) => 4,
    };
    BUILT[index]
        .get_or_init(|| {
            model_file::parse(DEFAULT_MODEL)
                .map_err(|e| format!("the built-in model is damaged: {e}"))
                .and_then(|file| network(&file, DEFAULT_NAME, weights))
        })
        .clone()
}

/// The precision the built-in model stores its matrices in (`None` if it cannot be read; its
/// network then reports why). Read once per process.
fn stored_precision() -> Option<Precision> {
    static STORED: OnceLock<Option<Precision>> = OnceLock::new();
    *STORED.get_or_init(|| model_file::parse(DEFAULT_MODEL).ok().map(|f| f.precision()))
}

/// The default model's network as it is stored.
pub fn default_network() -> Result<Arc<Network>, String> {
    default_network_as(None)
}

/// The network of `file` called `name`, its matrices as `weights` (`None`: as stored). The
/// name says the precision where it was changed.
fn network(
    file: &ModelFile,
    name: &str,
    weights: Option<Precision>,
) -> Result<Arc<Network>, String> {
    let (file, name) = match weights {
        Some(p) if p != file.precision() => {
            (file.with_precision(p), format!("{name}, {p} weights"))
        }
        _ => (file.clone(), name.to_string()),
    };
    Network::new(&file, &name, Kernels::best())
        .map(Arc::new)
        .map_err(|e| format!("Model {name}: {e}"))
}

/// The network `choice` names, checked: the model file (or the built-in model) with its
/// matrices in the chosen precision. Reads the file.
pub fn load_network(choice: &ModelChoice) -> Result<Arc<Network>, String> {
    let Some(path) = choice.path.as_deref().map(Path::new) else {
        return default_network_as(choice.weights);
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let file = model_file::load(path).map_err(|e| format!("Model {name}: {e}"))?;
    network(&file, &name, choice.weights)
}

/// The descriptor's latent if it was measured with `net`.
pub fn latent_for<'a>(descriptor: &'a TimbreDescriptor, net: &Network) -> Option<&'a [f32]> {
    descriptor
        .latent
        .as_ref()
        .filter(|l| l.model_id == net.id() && l.z_t.len() == net.config().z_t)
        .map(|l| l.z_t.as_slice())
}

/// Measures the latent of `samples` (mono, at the model rate) with `net`.
pub fn measure(net: &Network, samples: &[f32]) -> TimbreLatent {
    TimbreLatent {
        model_id: net.id().to_string(),
        z_t: net.clip_timbre(samples),
    }
}

/// What a preset's display name adds to its instrument's name.
pub const PRESET_SUFFIX: &str = " (model preset)";

/// A descriptor for training instrument `index` of `net`'s timbre map: its latent, and for the
/// classic mode the envelope the model decodes for it. `None` if there is no such instrument.
pub fn preset(net: &Network, index: usize) -> Option<TimbreDescriptor> {
    let map = net.map();
    let instrument = map.instruments.get(index)?;
    let z_t = map.instrument_z_t(index)?.to_vec();
    let stft = net.stft();
    Some(TimbreDescriptor {
        version: TIMBRE_FORMAT_VERSION,
        name: format!("{}{PRESET_SUFFIX}", instrument.name),
        sample_rate: stft.sample_rate,
        n_fft: stft.n_fft,
        envelope: net.envelope_of(&z_t),
        frames: 0,
        duration_s: 0.0,
        latent: Some(TimbreLatent {
            model_id: net.id().to_string(),
            z_t,
        }),
        source: None,
        preset: Some(instrument.name.clone()),
        overview: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_model_loads_and_gives_presets() {
        let net = default_network().unwrap();
        assert_eq!(net.stft(), timbreswap_engine::StftConfig::default());
        let count = net.map().instruments.len();
        assert!(count >= 30, "{count} instruments");
        let p = preset(&net, 0).unwrap();
        p.validate().unwrap();
        assert_eq!(
            latent_for(&p, &net).map(<[f32]>::len),
            Some(net.config().z_t)
        );
        assert!(preset(&net, count).is_none());
        let missing = ModelChoice {
            path: Some("/nonexistent.safetensors".into()),
            weights: None,
        };
        assert!(load_network(&missing).is_err());
    }

    /// The weights setting reads the built-in model's matrices in the chosen precision: each
    /// step from f32 to f16, mixed and int8 keeps fewer bytes (counted by the engine from the
    /// tensors), each precision is built once per process, its latents are kept apart from
    /// the stored model's (another id), and choosing the stored precision is the stored model.
    #[test]
    fn the_weights_setting_picks_the_precision() {
        let stored = default_network().unwrap();
        let with = |weights| {
            load_network(&ModelChoice {
                path: None,
                weights: Some(weights),
            })
            .unwrap()
        };
        let (int8, f32, f16, mixed) = (
            with(Precision::Int8),
            with(Precision::F32),
            with(Precision::F16),
            with(Precision::Mixed),
        );
        assert!(Arc::ptr_eq(
            &mixed,
            &default_network_as(Some(Precision::Mixed)).unwrap()
        ));
        // Mixed is how the built-in model is stored: the same network, not a second copy.
        assert!(Arc::ptr_eq(&mixed, &stored));
        assert!(Arc::ptr_eq(&int8, &with(Precision::Int8)));
        assert_eq!(mixed.id(), stored.id());
        let ids = [int8.id(), f32.id(), f16.id(), stored.id()];
        for (i, a) in ids.iter().enumerate() {
            assert!(ids[i + 1..].iter().all(|b| a != b), "{ids:?}");
        }
        assert!(int8.name().ends_with("int8 weights"), "{}", int8.name());
        assert!(f16.name().ends_with("f16 weights"), "{}", f16.name());
        let bytes = |n: &Network| n.weight_bytes() as f64;
        let (b8, bm, b16, b32) = (bytes(&int8), bytes(&stored), bytes(&f16), bytes(&f32));
        assert!(
            b8 < bm && bm < b16 && b16 < 0.7 * b32,
            "{b8} {bm} {b16} {b32}"
        );
        // The same file through a path gives the same networks as the built-in one.
        let path =
            std::env::temp_dir().join(format!("ts-weights-{}.safetensors", std::process::id()));
        std::fs::write(&path, DEFAULT_MODEL).unwrap();
        let from_file = load_network(&ModelChoice {
            path: Some(path.display().to_string()),
            weights: Some(Precision::Int8),
        })
        .unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(from_file.id(), int8.id());
        assert_eq!(from_file.weight_bytes(), int8.weight_bytes());
    }
}
