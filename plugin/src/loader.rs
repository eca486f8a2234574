//! Background tasks: loading reference clips off the audio thread.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError};

use timbreswap_engine::clip::load_reference;
use timbreswap_engine::{Slot, StftConfig, TimbreDescriptor};

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
    /// Empty a slot.
    ClearReference {
        /// Target slot.
        slot: Slot,
    },
}

/// Runs one task (on nice-plug's background thread). On failure the previous timbre keeps
/// playing and the error is shown in the editor.
pub fn run(task: Task, params: &TimbreswapParams, shared: &Shared) {
    match task {
        Task::LoadReference { slot, path } => match load_reference(&path, &StftConfig::default()) {
            Ok(descriptor) => install(slot, Some(descriptor), params, shared),
            Err(e) => shared.report_error(format!("Slot {}: {e}", slot_name(slot))),
        },
        Task::ClearReference { slot } => install(slot, None, params, shared),
    }
}

/// Hands a timbre to the running engine and records it in the persisted state.
fn install(
    slot: Slot,
    descriptor: Option<TimbreDescriptor>,
    params: &TimbreswapParams,
    shared: &Shared,
) {
    {
        let mut control = shared
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(control) = control.as_mut() {
            if let Err(e) = control.set_timbre(slot, descriptor.as_ref()) {
                shared.report_error(format!("Slot {}: {e}", slot_name(slot)));
                return;
            }
        }
    }
    let message = match &descriptor {
        Some(d) => format!(
            "Loaded {}: {} ({:.1} s)",
            slot_name(slot),
            d.name,
            d.duration_s
        ),
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
