//! The neural model of an instance: the built-in default (embedded in the binary) or a file the
//! user chose, and the timbre latents measured with it. Everything here allocates or reads
//! files: main thread or background tasks only.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use timbreswap_engine::kernels::Kernels;
use timbreswap_engine::model_file;
use timbreswap_engine::network::Network;
use timbreswap_engine::timbre::{TimbreDescriptor, TimbreLatent, TIMBRE_FORMAT_VERSION};

/// The default model, trained on FluidR3 GM renders (see `assets/models/default.md`).
pub const DEFAULT_MODEL: &[u8] = include_bytes!("../../assets/models/default.safetensors");

/// Name the default model is shown under.
pub const DEFAULT_NAME: &str = "default (FluidR3 GM)";

/// The default model's network, built once per process and shared by every instance.
pub fn default_network() -> Result<Arc<Network>, String> {
    static DEFAULT: OnceLock<Result<Arc<Network>, String>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            model_file::parse(DEFAULT_MODEL)
                .and_then(|file| Network::new(&file, DEFAULT_NAME, Kernels::best()))
                .map(Arc::new)
                .map_err(|e| format!("the built-in model is damaged: {e}"))
        })
        .clone()
}

/// The network of the model file at `path` (`None`: the default model), checked.
pub fn load_network(path: Option<&Path>) -> Result<Arc<Network>, String> {
    let Some(path) = path else {
        return default_network();
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    model_file::load(path)
        .and_then(|file| Network::new(&file, &name, Kernels::best()))
        .map(Arc::new)
        .map_err(|e| format!("Model {name}: {e}"))
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
        assert!(load_network(Some(Path::new("/nonexistent.safetensors"))).is_err());
    }
}
