//! The loader's tasks: loading reference clips, presets and models off the audio thread (on
//! the instance's loader thread, [`crate::jobs`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};

use timbreswap_engine::clip::{decode_file_cut, mono_at, MAX_CLIP_SECONDS};
use timbreswap_engine::exemplar::{ExemplarBank, MAX_BANK_SECONDS};
use timbreswap_engine::model_file::Precision;
use timbreswap_engine::network::Network;
use timbreswap_engine::reference::{analyse_reference_file, at_model_rate, ReferenceAnalysis};
use timbreswap_engine::timbre::TimbreLatent;
use timbreswap_engine::{Slot, StftConfig, TimbreDescriptor};

use crate::model::{latent_for, load_network, measure, preset, ModelChoice, PRESET_SUFFIX};
use crate::params::TimbreswapParams;
use crate::saved_clip::SavedClip;
use crate::shared::{slot_name, ClipBank, Shared};

/// Work the plugin hands to its loader thread ([`crate::jobs`]).
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
    /// Read the model in use (the saved `model-path`) with its matrices in another precision
    /// (`None`: as the file stores them); the references are measured again with it.
    SetWeights {
        /// The precision.
        weights: Option<Precision>,
    },
    /// Hand the persisted state (model file, both timbres) to the running engine: after the
    /// host restored a state while the plugin was active, or after an activation whose saved
    /// references need measuring with this model. References are measured again where their
    /// latents belong to another model.
    ApplyState,
}

/// Runs one task (on the instance's loader thread, [`crate::jobs`]). On failure the previous state keeps
/// playing and the error is shown in the editor.
pub fn run(task: Task, params: &Arc<TimbreswapParams>, shared: &Arc<Shared>) {
    match task {
        Task::LoadReference { slot, path } => {
            let cfg = StftConfig::default();
            let net = shared.network();
            match analyse_reference_file(&path, &cfg, net.as_deref()) {
                Ok(ReferenceAnalysis { clip, z_t, bank }) => {
                    let mut descriptor = clip.descriptor;
                    if let (Some(net), Some(z_t)) = (&net, z_t) {
                        descriptor.latent = Some(TimbreLatent {
                            model_id: net.id().to_string(),
                            z_t,
                        });
                    }
                    let saved = descriptor
                        .source
                        .as_deref()
                        .and_then(|source| SavedClip::new(source, &clip.samples, cfg.sample_rate));
                    let mut note = if clip.truncated {
                        format!(
                            " (only its first {} minutes are used)",
                            MAX_CLIP_SECONDS / 60.0
                        )
                    } else {
                        String::new()
                    };
                    if let Some(db) = bank.as_ref().and_then(|b| b.background_db()) {
                        note.push_str(&format!(
                            "; its room noise ({:.0} dB under its loudest) is taken out of Exemplar",
                            -db
                        ));
                    }
                    install(
                        slot,
                        Some(descriptor),
                        bank.map(Arc::new).zip(saved),
                        &note,
                        params,
                        shared,
                    );
                }
                Err(e) => shared.report_slot_error(slot, format!("Slot {}: {e}", slot_name(slot))),
            }
        }
        Task::LoadPreset { slot, index } => {
            let Some(net) = shared.network() else {
                shared.report_error("No model is loaded, so there are no presets");
                return;
            };
            match preset(&net, index) {
                Some(descriptor) => install(slot, Some(descriptor), None, "", params, shared),
                None => shared.report_slot_error(slot, format!("The model has no preset {index}")),
            }
        }
        Task::ClearReference { slot } => install(slot, None, None, "", params, shared),
        Task::LoadModel { path } => switch_model(
            ModelChoice {
                path: path.map(|p| p.display().to_string()),
                weights: params.model_weights.snapshot(),
            },
            params,
            shared,
        ),
        Task::SetWeights { weights } => switch_model(
            ModelChoice {
                path: params.model_path.snapshot(),
                weights,
            },
            params,
            shared,
        ),
        Task::ApplyState => apply_state(params, shared),
    }
}

/// Loads the model `choice` names and makes it the instance's model ([`use_model`]); on
/// failure the current model keeps playing and the reason is shown.
fn switch_model(choice: ModelChoice, params: &Arc<TimbreswapParams>, shared: &Arc<Shared>) {
    match load_network(&choice) {
        Ok(net) => {
            let message = format!("Model: {}", net.name());
            if use_model(net, choice, params, shared) {
                shared.report_ok(message);
            }
        }
        Err(e) => shared.report_error(format!("{e}; keeping the current model")),
    }
}

/// The persisted timbre of `slot` if it is valid; otherwise the last good one, which is
/// written back into the field, and the problem is reported. Off the audio thread.
pub fn validated_timbre(
    slot: Slot,
    params: &TimbreswapParams,
    shared: &Shared,
) -> Option<TimbreDescriptor> {
    let index = slot as usize;
    let stored = params.timbre(slot).snapshot();
    let mut last_good = shared
        .last_good
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    match stored.as_ref().map(TimbreDescriptor::validate) {
        Some(Err(e)) => {
            shared.report_error(format!(
                "Saved timbre {} is unusable ({e}); keeping the previous one",
                slot_name(slot)
            ));
            let previous = last_good[index].clone();
            *params.timbre(slot).write() = previous.clone();
            previous
        }
        _ => {
            last_good[index].clone_from(&stored);
            stored
        }
    }
}

/// The model the persisted `model-path` and `model-weights` ask for, and whether it differs
/// from the one in use: the model in use if it was chosen for them, else the file (or the
/// built-in model) loaded now in that precision. A file that cannot be read is reported, and
/// the model in use (else the built-in one) stays. Off the audio thread; may read a file.
pub fn wanted_network(
    params: &TimbreswapParams,
    shared: &Shared,
) -> (Option<Arc<Network>>, ModelChoice, bool) {
    let wanted = params.model_choice();
    let current = shared.network();
    let current_choice = shared
        .model_choice
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if current.is_some() && current_choice == wanted {
        return (current, wanted, false);
    }
    match load_network(&wanted) {
        Ok(net) => (Some(net), wanted, true),
        Err(e) => match current {
            Some(net) => {
                shared.report_error(format!("{e}; keeping the current model"));
                (Some(net), current_choice, false)
            }
            None => {
                shared.report_error(format!("{e}; using the built-in model"));
                match crate::model::default_network() {
                    Ok(net) => (Some(net), ModelChoice::default(), true),
                    Err(e) => {
                        shared.report_error(e);
                        (None, ModelChoice::default(), false)
                    }
                }
            }
        },
    }
}

/// Applies the persisted state to the running engine ([`Task::ApplyState`]): nothing is
/// locked while files are read or references measured; the engine gets the result between
/// two frames.
fn apply_state(params: &Arc<TimbreswapParams>, shared: &Arc<Shared>) {
    let (net, choice, changed) = wanted_network(params, shared);
    let timbres = [
        validated_timbre(Slot::A, params, shared),
        validated_timbre(Slot::B, params, shared),
    ];
    if hand_over(net.as_ref(), changed, &timbres, params, shared) == Handoff::Taken && changed {
        *shared.model.write().unwrap_or_else(PoisonError::into_inner) = net;
        *shared
            .model_choice
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = choice;
    }
}

/// What became of a hand-off to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handoff {
    /// The running engine took it.
    Taken,
    /// No engine runs (inactive, or between `activate`'s reading of the fields and the new
    /// engine's start): the fields carry it to the engine.
    NoEngine,
    /// The engine refused it (reported); it keeps its whole previous state.
    Refused,
}

/// Measures `timbres` (slots A, B) with `net` and hands them to the running engine, with the
/// model itself when `with_model`; then records the latents in the persisted fields that still
/// hold those timbres. The clips for Exemplar mode go with them where their analysis is at
/// hand; the others are analysed afterwards and follow (the state does not wait for them). No
/// lock is held while measuring.
fn hand_over(
    net: Option<&Arc<Network>>,
    with_model: bool,
    timbres: &[Option<TimbreDescriptor>; 2],
    params: &Arc<TimbreswapParams>,
    shared: &Arc<Shared>,
) -> Handoff {
    let exemplars =
        [Slot::A, Slot::B].map(|slot| shared.exemplar_for(slot, timbres[slot as usize].as_ref()));
    let mut latents: [Option<Vec<f32>>; 2] = [None, None];
    if let Some(net) = net {
        for slot in [Slot::A, Slot::B] {
            if let Some(descriptor) = &timbres[slot as usize] {
                latents[slot as usize] = remeasure(slot, descriptor, net, params, shared);
            }
        }
    }
    let handoff = {
        let mut control = shared
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(control) = control.as_mut() {
            // All or nothing: on an error the engine keeps the whole previous state.
            let result = control.set_state(timbreswap_engine::StateUpdate {
                model: with_model.then(|| net.cloned()),
                timbres: [timbres[0].as_ref(), timbres[1].as_ref()],
                latents: [latents[0].as_deref(), latents[1].as_deref()],
                exemplars: exemplars.clone(),
            });
            if let Err(e) = result {
                shared.report_error(format!("Cannot apply the state: {e}"));
                return Handoff::Refused;
            }
            Handoff::Taken
        } else {
            Handoff::NoEngine
        }
    };
    if let Some(net) = net {
        for slot in [Slot::A, Slot::B] {
            let i = slot as usize;
            let mut stored = params.timbre(slot).write();
            if let (Some(d), Some(z_t)) = (stored.as_mut(), &latents[i]) {
                if timbres[i].as_ref() == Some(d) {
                    d.latent = Some(TimbreLatent {
                        model_id: net.id().to_string(),
                        z_t: z_t.clone(),
                    });
                }
            }
        }
    }
    let missing: Vec<(Slot, TimbreDescriptor)> = [Slot::A, Slot::B]
        .into_iter()
        .filter(|slot| exemplars[*slot as usize].is_none())
        .filter_map(|slot| {
            let d = timbres[slot as usize].as_ref()?;
            d.source.is_some().then(|| (slot, d.clone()))
        })
        .collect();
    if handoff == Handoff::Taken {
        // After the hand-over, so the state plays (Classic or Neural) while the files are read.
        for (slot, descriptor) in &missing {
            analyse_for_exemplar(*slot, descriptor, params, shared);
        }
    }
    handoff
}

/// Analyses the clip of `descriptor` (the timbre of `slot` handed to the running engine) and
/// hands it to the engine, unless the slot has taken another clip meanwhile. Off the audio
/// thread; reads the file.
fn analyse_for_exemplar(
    slot: Slot,
    descriptor: &TimbreDescriptor,
    params: &TimbreswapParams,
    shared: &Shared,
) {
    let Some(bank) = exemplar_bank(slot, descriptor, params, shared) else {
        return;
    };
    let mut control = shared
        .control
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let current = params.timbre(slot).snapshot();
    if current.as_ref().and_then(|d| d.source.as_ref()) != descriptor.source.as_ref() {
        return;
    }
    if let Some(Err(e)) = control.as_mut().map(|c| c.set_exemplar(slot, Some(bank))) {
        shared.report_error(format!("Slot {}: {e}", slot_name(slot)));
    }
}

/// The analysed clip of `descriptor` for Exemplar mode: the one kept from its loading, else
/// the clip saved with the project, else the file (read again, and then saved with the
/// project from now on). Whatever is analysed is kept for the next activation. `None` for a
/// preset, and (with a message) for a clip that is neither saved nor readable: Exemplar plays
/// that slot as Classic. Off the audio thread; may read a file.
pub(crate) fn exemplar_bank(
    slot: Slot,
    descriptor: &TimbreDescriptor,
    params: &TimbreswapParams,
    shared: &Shared,
) -> Option<Arc<ExemplarBank>> {
    if let Some(bank) = shared.exemplar_for(slot, Some(descriptor)) {
        return Some(bank);
    }
    let source = descriptor.source.as_ref()?;
    let cfg = StftConfig::default();
    let saved = saved_clip(slot, source, params);
    // The sound the project was made with comes first: no file needed, and the same sound
    // wherever the project opens.
    let from_project = match saved.map(|clip| clip.samples(cfg.sample_rate)) {
        Some(Ok(samples)) => Some(samples),
        Some(Err(e)) => {
            shared.report_error(format!(
                "Slot {}: the clip saved with the project is unusable ({e}); reading {} instead",
                slot_name(slot),
                descriptor.name
            ));
            None
        }
        None => None,
    };
    let samples = match from_project {
        Some(samples) => Ok(samples),
        None => {
            // Only the stretch the analysis reads; saved with the project from now on.
            let read = decode_file_cut(Path::new(source), MAX_BANK_SECONDS as f64)
                .map(|audio| mono_at(&audio, cfg.sample_rate))
                .map_err(|e| e.to_string());
            if let Ok(samples) = &read {
                let still_this_timbre = params.timbre(slot).read().as_ref() == Some(descriptor);
                if still_this_timbre {
                    *params.clip(slot).write() = SavedClip::new(source, samples, cfg.sample_rate);
                }
            }
            read
        }
    };
    let bank = samples.and_then(|samples| {
        ExemplarBank::new(&cfg, &samples).ok_or_else(|| "no sounding frame".to_string())
    });
    match bank {
        Ok(bank) => {
            let bank = Arc::new(bank);
            shared.keep_exemplar(
                slot,
                Some(ClipBank {
                    source: source.clone(),
                    bank: bank.clone(),
                }),
            );
            Some(bank)
        }
        Err(e) => {
            shared.report_error(format!(
                "Slot {}: cannot read {} for Exemplar mode ({e}); Exemplar plays it as Classic",
                slot_name(slot),
                descriptor.name
            ));
            None
        }
    }
}

/// The clip saved with the project for `slot`, if it is the one read from `source`.
fn saved_clip(slot: Slot, source: &str, params: &TimbreswapParams) -> Option<SavedClip> {
    params
        .clip(slot)
        .snapshot()
        .filter(|clip| clip.source == source)
}

/// The latent of a slot's descriptor for `net`: kept if measured with it, else measured again
/// from the clip's file (or, where the file is gone, the clip saved with the project: its first
/// 20 s) or the preset it came from; `None` (with a message) if none exists.
fn remeasure(
    slot: Slot,
    descriptor: &TimbreDescriptor,
    net: &Network,
    params: &TimbreswapParams,
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
            Err(e) => {
                let cfg = StftConfig::default();
                let saved = saved_clip(slot, source, params)
                    .and_then(|clip| clip.samples(cfg.sample_rate).ok());
                if let Some(samples) = saved {
                    return Some(measure(net, &at_model_rate(&samples, &cfg, net)).z_t);
                }
                shared.report_error(format!(
                    "Slot {}: cannot measure {} with this model ({e}); Neural plays it as Classic",
                    slot_name(slot),
                    descriptor.name
                ));
            }
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

/// Makes `net` (loaded for `choice`) the instance's model: measures both slots with it, hands
/// it to the running engine, and records the new latents and `choice` in the saved state. With no engine running, the saved state alone carries the choice to the
/// next engine (see [`TimbreswapParams::note_unapplied_change`]). False if the engine refused
/// it.
pub fn use_model(
    net: Arc<Network>,
    choice: ModelChoice,
    params: &Arc<TimbreswapParams>,
    shared: &Arc<Shared>,
) -> bool {
    let timbres = [params.timbre_a.snapshot(), params.timbre_b.snapshot()];
    let handoff = hand_over(Some(&net), true, &timbres, params, shared);
    if handoff == Handoff::Refused {
        return false;
    }
    // The editor shows the new model at once. With no engine running, `shared.model_choice`
    // keeps naming the model the last engine was given, so the next `apply_state` or
    // activation sees the saved choice differ and hands this one over.
    *shared.model.write().unwrap_or_else(PoisonError::into_inner) = Some(net);
    if handoff == Handoff::Taken {
        *shared
            .model_choice
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = choice.clone();
    }
    *params.model_path.write() = choice.path;
    *params.model_weights.write() = choice.weights;
    if handoff == Handoff::NoEngine {
        params.note_unapplied_change();
    }
    true
}

/// Hands a timbre to the running engine (both modes) and records it in the persisted state.
fn install(
    slot: Slot,
    descriptor: Option<TimbreDescriptor>,
    clip: Option<(Arc<ExemplarBank>, SavedClip)>,
    note: &str,
    params: &TimbreswapParams,
    shared: &Shared,
) {
    let handed = {
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
            // Timbre, latent and clip together or not at all.
            let exemplar = clip.as_ref().map(|(bank, _)| bank.clone());
            if let Err(e) = control.set_slot(slot, descriptor.as_ref(), latent, exemplar) {
                shared.report_slot_error(slot, format!("Slot {}: {e}", slot_name(slot)));
                return;
            }
            true
        } else {
            false
        }
    };
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
    let (bank, saved) = clip.unzip();
    shared.keep_exemplar(
        slot,
        bank.zip(saved.as_ref()).map(|(bank, saved)| ClipBank {
            source: saved.source.clone(),
            bank,
        }),
    );
    *params.clip(slot).write() = saved;
    *params.timbre(slot).write() = descriptor;
    shared.clear_slot_error(slot);
    if !handed {
        // Written after `activate` may have read the field: the next `process` applies it.
        params.note_unapplied_change();
    }
    shared.report_ok(message);
}

#[cfg(test)]
mod tests;
