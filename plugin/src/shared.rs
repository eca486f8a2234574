//! State shared between the plugin (main/audio thread), its background tasks and the editor.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use timbreswap_engine::exemplar::ExemplarBank;
use timbreswap_engine::network::Network;
use timbreswap_engine::{EngineControl, EngineStats, Slot, TimbreDescriptor};

use crate::meter::LevelMeter;
use crate::model::ModelChoice;

/// What the editor shows about the instance. Only touched off the audio thread.
#[derive(Debug, Default, Clone)]
pub struct Status {
    /// The last thing that went wrong, in words; cleared by the next success.
    pub last_error: Option<String>,
    /// The last thing that went right (e.g. "Loaded A: trumpet.wav").
    pub message: String,
}

/// A slot's clip analysed for Exemplar mode, with the file it came from.
#[derive(Debug, Clone)]
pub struct ClipBank {
    /// The file (the descriptor's `source`).
    pub source: String,
    /// The analysis.
    pub bank: Arc<ExemplarBank>,
}

/// Shared between the plugin, its background tasks and the editor.
#[derive(Default)]
pub struct Shared {
    /// Engine statistics (dropouts, worker load). Written by the audio thread and the worker.
    pub stats: Arc<EngineStats>,
    /// Reported latency, in samples.
    pub latency: AtomicU32,
    /// The host block or burst of calls, in samples, that outgrew the latency of the current
    /// activation (a restart was requested); 0 when none did. Written by the audio thread, cleared in
    /// `activate`.
    pub outgrown_block: AtomicU32,
    /// Host sample rate of the current activation, in Hz (0 while inactive).
    pub sample_rate: AtomicU32,
    /// Control handle of the running engine (`None` while inactive). Locked only off the audio
    /// thread.
    pub control: Mutex<Option<EngineControl>>,
    /// Status line contents.
    pub status: Mutex<Status>,
    /// The neural model in use (`None` until the first activation loads it).
    pub model: RwLock<Option<Arc<Network>>>,
    /// The `model-path` and `model-weights` values of the model last handed to an engine, so
    /// a restored state, or a model chosen while no engine ran, that names another file or
    /// precision is noticed and handed over.
    pub model_choice: Mutex<ModelChoice>,
    /// Last timbres known to be valid, per slot (A, B): kept so a broken saved state cannot
    /// replace a working timbre.
    pub last_good: Mutex<[Option<TimbreDescriptor>; 2]>,
    /// The last failed load of each slot (A, B), in words, shown in that slot's card; cleared
    /// when the slot takes a timbre. Only touched off the audio thread.
    pub slot_errors: Mutex<[Option<String>; 2]>,
    /// The clips of slots A and B analysed for Exemplar mode, kept so that a new activation
    /// hands them to its engine without reading the files again. Only touched off the audio
    /// thread.
    pub exemplars: Mutex<[Option<ClipBank>; 2]>,
    /// Level of the host's input, before the plugin (written by the audio thread).
    pub input_meter: LevelMeter,
    /// Level of the plugin's output (written by the audio thread).
    pub output_meter: LevelMeter,
}

impl Shared {
    /// A failed load of `slot`: shown in its card and as the last error. Any thread but the
    /// audio thread.
    pub fn report_slot_error(&self, slot: Slot, message: impl Into<String>) {
        let message = message.into();
        self.slot_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)[slot as usize] = Some(message.clone());
        self.report_error(message);
    }

    /// The last failed load of `slot`, if it has not loaded since. Any thread but the audio
    /// thread.
    pub fn slot_error(&self, slot: Slot) -> Option<String> {
        self.slot_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)[slot as usize]
            .clone()
    }

    /// `slot` took a timbre: its error is over. Any thread but the audio thread.
    pub fn clear_slot_error(&self, slot: Slot) {
        self.slot_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)[slot as usize] = None;
    }

    /// The analysed clip of `slot` if it is the one `descriptor` was loaded from. Not
    /// realtime-safe.
    pub fn exemplar_for(
        &self,
        slot: Slot,
        descriptor: Option<&TimbreDescriptor>,
    ) -> Option<Arc<ExemplarBank>> {
        let source = descriptor?.source.as_deref()?;
        self.exemplars
            .lock()
            .unwrap_or_else(PoisonError::into_inner)[slot as usize]
            .as_ref()
            .filter(|c| c.source == source)
            .map(|c| c.bank.clone())
    }

    /// Keeps `clip` as the analysed clip of `slot` (`None` forgets it). Not realtime-safe.
    pub fn keep_exemplar(&self, slot: Slot, clip: Option<ClipBank>) {
        self.exemplars
            .lock()
            .unwrap_or_else(PoisonError::into_inner)[slot as usize] = clip;
    }

    /// Records an error for the editor (and the log). Not realtime-safe.
    pub fn report_error(&self, message: impl Into<String>) {
        let message = message.into();
        nice_plug::nice_log!("{message}");
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last_error = Some(message);
    }

    /// Records a success for the editor. Not realtime-safe.
    pub fn report_ok(&self, message: impl Into<String>) {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        status.message = message.into();
        status.last_error = None;
    }

    /// A copy of the status line. Not realtime-safe.
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The neural model in use, if loaded. Not realtime-safe.
    pub fn network(&self) -> Option<Arc<Network>> {
        self.model
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Latency in milliseconds (0 while inactive).
    pub fn latency_ms(&self) -> f32 {
        let rate = self.sample_rate.load(Ordering::Relaxed);
        if rate == 0 {
            0.0
        } else {
            self.latency.load(Ordering::Relaxed) as f32 * 1000.0 / rate as f32
        }
    }
}

/// Display letter of a slot.
pub fn slot_name(slot: Slot) -> &'static str {
    match slot {
        Slot::A => "A",
        Slot::B => "B",
    }
}
