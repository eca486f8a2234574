//! Background tasks: loading reference clips, presets and models off the audio thread.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};

use timbreswap_engine::clip::{decode_file_cut, load_reference_clip, mono_at, MAX_CLIP_SECONDS};
use timbreswap_engine::network::Network;
use timbreswap_engine::{Slot, StftConfig, TimbreDescriptor};

use crate::model::{latent_for, load_network, measure, preset, PRESET_SUFFIX};
use crate::params::TimbreswapParams;
use crate::shared::{slot_name, Shared};

/// Work the plugin hands to nice-plug's background thread.
#[derive(Debug, Clone)]
pub enum Task {
    /// Decode and analyse a clip, then use it as the timbre of `slot`.
    LoadReference {
        /// Target slot.
        slot: Slot,
        /// The audio file.
        path: PathBuf,
    },
    /// Use training instrument `index` of the model's timbre map as the timbre of `slot`.
    LoadPreset {
        /// Target slot.
        slot: Slot,
        /// Row of the model's timbre map.
        index: usize,
    },
    /// Empty a slot.
    ClearReference {
        /// Target slot.
        slot: Slot,
    },
    /// Switch to the model file at `path` (`None`: the built-in default model); the loaded
    /// references are measured again with it.
    LoadModel {
        /// The `.safetensors` file.
        path: Option<PathBuf>,
    },
    /// Measure the references again with the current model (after a saved state from another
    /// model was restored).
    RefreshLatents,
}

/// Runs one task (on nice-plug's background thread). On failure the previous state keeps
/// playing and the error is shown in the editor.
pub fn run(task: Task, params: &TimbreswapParams, shared: &Shared) {
    match task {
        Task::LoadReference { slot, path } => {
            match load_reference_clip(&path, &StftConfig::default()) {
                Ok(clip) => {
                    let mut descriptor = clip.descriptor;
                    if let Some(net) = shared.network() {
                        descriptor.latent = Some(measure(&net, &at_rate(&clip.samples, &net)));
                    }
                    let note = if clip.truncated {
                        format!(
                            " (only its first {} minutes are used)",
                            MAX_CLIP_SECONDS / 60.0
                        )
                    } else {
                        String::new()
                    };
                    install(slot, Some(descriptor), &note, params, shared);
                }
                Err(e) => shared.report_error(format!("Slot {}: {e}", slot_name(slot))),
            }
        }
        Task::LoadPreset { slot, index } => {
            let Some(net) = shared.network() else {
                shared.report_error("No model is loaded, so there are no presets");
                return;
            };
            match preset(&net, index) {
                Some(descriptor) => install(slot, Some(descriptor), "", params, shared),
                None => shared.report_error(format!("The model has no preset {index}")),
            }
        }
        Task::ClearReference { slot } => install(slot, None, "", params, shared),
        Task::LoadModel { path } => match load_network(path.as_deref()) {
            Ok(net) => {
                let message = format!("Model: {}", net.name());
                if use_model(net, params, shared) {
                    *params
                        .model_path
                        .write()
                        .unwrap_or_else(PoisonError::into_inner) =
                        path.map(|p| p.display().to_string());
                    shared.report_ok(message);
                }
            }
            Err(e) => shared.report_error(format!("{e}; keeping the current model")),
        },
        Task::RefreshLatents => {
            if let Some(net) = shared.network() {
                use_model(net, params, shared);
            }
        }
    }
}

/// `samples` (at the engine's rate) at the model's rate.
fn at_rate(samples: &[f32], net: &Network) -> Vec<f32> {
    let engine_rate = StftConfig::default().sample_rate;
    let model_rate = net.stft().sample_rate;
    if engine_rate == model_rate {
        samples.to_vec()
    } else {
        timbreswap_engine::resampler::resample_all(samples, engine_rate, model_rate)
    }
}

/// The latent of a slot's descriptor for `net`: kept if measured with it, else measured again
/// from the clip's file or the preset it came from; `None` (with a message) if neither exists.
fn remeasure(
    slot: Slot,
    descriptor: &TimbreDescriptor,
    net: &Network,
    shared: &Shared,
) -> Option<Vec<f32>> {
    if let Some(z) = latent_for(descriptor, net) {
        return Some(z.to_vec());
    }
    if let Some(source) = &descriptor.source {
        let path = Path::new(source);
        match decode_file_cut(path, MAX_CLIP_SECONDS) {
            Ok(audio) => {
                return Some(measure(net, &mono_at(&audio, net.stft().sample_rate)).z_t);
            }
            Err(e) => shared.report_error(format!(
                "Slot {}: cannot measure {} with this model ({e}); Neural plays it as Classic",
                slot_name(slot),
                descriptor.name
            )),
        }
    } else {
        // States saved before presets recorded their instrument only have the display name.
        let instrument = descriptor
            .preset
            .as_deref()
            .or_else(|| descriptor.name.strip_suffix(PRESET_SUFFIX));
        let latent = instrument
            .and_then(|n| net.map().instruments.iter().position(|i| i.name == n))
            .and_then(|index| net.map().instrument_z_t(index));
        if let Some(z) = latent {
            return Some(z.to_vec());
        }
        shared.report_error(match instrument {
            Some(name) => format!(
                "Slot {}: the model {} has no instrument {name}; Neural plays it as Classic",
                slot_name(slot),
                net.name()
            ),
            None => format!(
                "Slot {}: {} was saved without its file, so this model cannot measure it; \
                 Neural plays it as Classic (load the clip again)",
                slot_name(slot),
                descriptor.name
            ),
        });
    }
    None
}

/// Makes `net` the instance's model: measures both slots with it, hands it to the running
/// engine and records the new latents in the saved state. False if the engine refused it.
pub fn use_model(net: Arc<Network>, params: &TimbreswapParams, shared: &Shared) -> bool {
    let mut latents: [Option<Vec<f32>>; 2] = [None, None];
    for slot in [Slot::A, Slot::B] {
        let field = params.timbre(slot);
        let mut stored = field.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(descriptor) = stored.as_mut() {
            let z = remeasure(slot, descriptor, &net, shared);
            descriptor.latent = z
                .clone()
                .map(|z_t| timbreswap_engine::timbre::TimbreLatent {
                    model_id: net.id().to_string(),
                    z_t,
                });
            latents[slot as usize] = z;
        }
    }
    let mut control = shared
        .control
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(control) = control.as_mut() {
        if let Err(e) = control.set_model(
            Some(net.clone()),
            latents[0].as_deref(),
            latents[1].as_deref(),
        ) {
            shared.report_error(format!("Model {}: {e}", net.name()));
            return false;
        }
    }
    *shared.model.write().unwrap_or_else(PoisonError::into_inner) = Some(net);
    true
}

/// Hands a timbre to the running engine (both modes) and records it in the persisted state.
fn install(
    slot: Slot,
    descriptor: Option<TimbreDescriptor>,
    note: &str,
    params: &TimbreswapParams,
    shared: &Shared,
) {
    {
        let net = shared.network();
        let mut control = shared
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(control) = control.as_mut() {
            let latent = match (&descriptor, &net) {
                (Some(d), Some(net)) => latent_for(d, net),
                _ => None,
            };
            let result = control
                .set_timbre(slot, descriptor.as_ref())
                .and_then(|()| control.set_latent(slot, latent));
            if let Err(e) = result {
                shared.report_error(format!("Slot {}: {e}", slot_name(slot)));
                return;
            }
        }
    }
    let message = match &descriptor {
        Some(d) if d.duration_s > 0.0 => format!(
            "Loaded {}: {} ({:.1} s){note}",
            slot_name(slot),
            d.name,
            d.duration_s
        ),
        Some(d) => format!("Loaded {}: {}", slot_name(slot), d.name),
        None => format!("Cleared {}", slot_name(slot)),
    };
    *params
        .timbre(slot)
        .write()
        .unwrap_or_else(PoisonError::into_inner) = descriptor;
    shared.report_ok(message);
}

/// The task executor nice-plug calls with each [`Task`].
pub fn executor(
    params: Arc<TimbreswapParams>,
    shared: Arc<Shared>,
) -> impl Fn(Task) + Send + 'static {
    move |task| run(task, &params, &shared)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::default_network;

    fn last_error(shared: &Shared) -> Option<String> {
        shared.status.lock().unwrap().last_error.clone()
    }

    /// A preset measured with another model is looked up again by the instrument it records,
    /// whatever its display name, and states saved before it recorded one fall back to the
    /// display name; a preset of an instrument the model lacks, and a clip saved without its
    /// file, say so instead of silently playing Classic.
    #[test]
    fn presets_are_looked_up_again_by_their_instrument() {
        let net = default_network().unwrap();
        let index = 3;
        let want = net.map().instrument_z_t(index).unwrap().to_vec();
        let mut descriptor = preset(&net, index).unwrap();
        // As if another model had measured it: its latent no longer fits `net`.
        descriptor.latent.as_mut().unwrap().model_id = "another model".into();
        assert!(latent_for(&descriptor, &net).is_none());

        let shared = Shared::default();
        descriptor.name = "renamed by the user".into();
        assert_eq!(
            remeasure(Slot::A, &descriptor, &net, &shared),
            Some(want.clone())
        );

        let mut legacy = preset(&net, index).unwrap();
        legacy.latent = None;
        legacy.preset = None;
        assert_eq!(remeasure(Slot::A, &legacy, &net, &shared), Some(want));
        assert_eq!(last_error(&shared), None);

        descriptor.preset = Some("an instrument no model has".into());
        assert_eq!(remeasure(Slot::B, &descriptor, &net, &shared), None);
        let message = last_error(&shared).unwrap();
        assert!(message.contains("an instrument no model has"), "{message}");

        legacy.name = "a clip saved without its file".into();
        assert_eq!(remeasure(Slot::B, &legacy, &net, &shared), None);
        let message = last_error(&shared).unwrap();
        assert!(message.contains("without its file"), "{message}");
    }
}
