//! The plugin's parameters and persisted fields. The `#[id]` strings are stable: hosts store
//! automation and presets under them.

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use nice_plug::prelude::*;
use timbreswap_engine::model_file::Precision;
use timbreswap_engine::neural::{PhaseMode, MAX_TRANSPOSE};
use timbreswap_engine::processor::SwapMode;
use timbreswap_engine::{LatencyMode, Slot, TimbreDescriptor};

use crate::persisted::Persisted;
use crate::saved_clip::SavedClip;

/// Which timbre-transfer algorithm runs.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Cepstral envelope swap (DSP): the input's fine structure with the reference's average
    /// envelope.
    #[id = "classic"]
    #[name = "Classic"]
    Classic,
    /// The learned three-factor model: the input's pitch and expression decoded with the
    /// reference's timbre latent. Plays Classic while no model or reference is loaded.
    #[id = "neural"]
    #[name = "Neural"]
    Neural,
    /// The reference clip's own sound: your notes and dynamics re-played with the clip's
    /// partials and noise at the same point of a note. Plays Classic for a preset (no clip).
    #[id = "exemplar"]
    #[name = "Exemplar"]
    Exemplar,
}

impl Mode {
    /// The engine's mode.
    pub fn engine(self) -> SwapMode {
        match self {
            Mode::Classic => SwapMode::Classic,
            Mode::Neural => SwapMode::Neural,
            Mode::Exemplar => SwapMode::Exemplar,
        }
    }
}

/// Where the neural mode's output phase comes from.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The input's own phase (the default: steadiest pitch and most faithful transients).
    #[id = "input"]
    #[name = "Input"]
    Input,
    /// Rebuilt from the decoded magnitudes by phase-gradient heap integration (follows
    /// Transpose; less stable pitch with the shipped model).
    #[id = "reconstruct"]
    #[name = "Reconstruct"]
    Reconstruct,
}

impl Phase {
    /// The engine's phase mode.
    pub fn engine(self) -> PhaseMode {
        match self {
            Phase::Input => PhaseMode::Input,
            Phase::Reconstruct => PhaseMode::Reconstruct,
        }
    }
}

/// How much latency the plugin runs with. A change takes effect when the host restarts the
/// plugin (it is asked to at once), which reports the new latency.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latency {
    /// The whole analysis frame: 22.7 ms at 48 kHz with 128-sample blocks.
    #[id = "normal"]
    #[name = "Normal"]
    Normal,
    /// Frames twice as often, each resynthesised over its last few milliseconds with the
    /// latest processed frame's timbre: 9.2 ms at 48 kHz with blocks of up to 64 samples.
    /// Exemplar plays the reference's partials and noise in those grains; Classic and Neural
    /// keep the input's phase and carry their timbre change as a smooth spectral gain
    /// (docs/quality.md, "Low latency").
    #[id = "low"]
    #[name = "Low"]
    Low,
}

impl Latency {
    /// The engine's latency mode.
    pub fn engine(self) -> LatencyMode {
        match self {
            Latency::Normal => LatencyMode::Normal,
            Latency::Low => LatencyMode::Low,
        }
    }
}

/// All parameters and persisted data of one plugin instance.
#[derive(Params)]
pub struct TimbreswapParams {
    /// Wet share, 0..=1, shown in %. 0 % is the input delayed by the reported latency.
    #[id = "mix"]
    pub mix: FloatParam,
    /// Output gain, linear (shown in dB, -24 to +24 dB).
    #[id = "output"]
    pub output: FloatParam,
    /// Morph between reference A (0 %) and reference B (100 %).
    #[id = "morph"]
    pub morph: FloatParam,
    /// Classic (DSP envelope swap), Neural (learned model) or Exemplar (the clip's own
    /// partials and noise at the input's pitch; the default, the mode that moves the sound
    /// furthest towards the reference: docs/quality.md).
    #[id = "mode"]
    pub mode: EnumParam<Mode>,
    /// Neural: how much of the performance's expression (the variation latent) is kept,
    /// 0..=2 (shown in %): 0 % flat, 100 % as played, 200 % exaggerated.
    #[id = "variation"]
    pub variation: FloatParam,
    /// Transposition in semitones (-12..=12). Exemplar: the output plays this far above the
    /// input's pitch (an octave down for a whistled line, up for a low voice). Neural: the
    /// pitch the model hears (with Phase Input the sounding pitch stays the input's).
    #[id = "transpose"]
    pub transpose: FloatParam,
    /// Neural: output phase from the input or reconstructed.
    #[id = "phase"]
    pub phase: EnumParam<Phase>,
    /// Neural: X of the point on the timbre map, normalised map coordinates (-1..=1 spans the
    /// model's training instruments).
    #[id = "timbre-x"]
    pub timbre_x: FloatParam,
    /// Neural: Y of the point on the timbre map (-1..=1).
    #[id = "timbre-y"]
    pub timbre_y: FloatParam,
    /// Neural: how much the map point's timbre replaces the A/B morph, 0..=1 (shown in %).
    #[id = "map-amount"]
    pub map_amount: FloatParam,
    /// Exemplar: how much of a struck reference's note decay the output takes, 0..=1 (shown
    /// in %): 100 % a held note fades as the reference's notes do, 0 % it keeps the input's
    /// level.
    #[id = "decay"]
    pub decay: FloatParam,
    /// Normal or low latency (not automatable: a change restarts the plugin).
    #[id = "latency"]
    pub latency: EnumParam<Latency>,
    /// The neural model file the user chose (`None`: the built-in default model).
    #[persist = "model-path"]
    pub model_path: Persisted<Option<String>>,
    /// The precision the network reads the model's matrices in (`None`: as the file stores
    /// them). Saved as `"f32"`, `"f16"`, `"int8"` or `"mixed"`.
    #[persist = "model-weights"]
    pub model_weights: Persisted<Option<Precision>>,
    /// Timbre descriptor of reference A, saved with the project so it sounds the same without
    /// the original file.
    #[persist = "timbre-a"]
    pub timbre_a: Persisted<Option<TimbreDescriptor>>,
    /// Timbre descriptor of reference B.
    #[persist = "timbre-b"]
    pub timbre_b: Persisted<Option<TimbreDescriptor>>,
    /// The audio of reference A's clip (its first 20 s), for Exemplar mode where the file is
    /// not at hand. `None` for a preset, and in projects saved before clips were kept.
    #[persist = "clip-a"]
    pub clip_a: Persisted<Option<SavedClip>>,
    /// The audio of reference B's clip.
    #[persist = "clip-b"]
    pub clip_b: Persisted<Option<SavedClip>>,
    /// How many persisted fields the host's state restores have set (shared by the six
    /// fields above), plus the changes made while no engine ran
    /// ([`TimbreswapParams::note_unapplied_change`]). The audio thread compares it with the
    /// count it last applied and has the state applied when it moves.
    pub restores: Arc<AtomicU32>,
}

impl TimbreswapParams {
    /// Records that a persisted field changed while no engine could take the change (between
    /// `activate`'s reading of the fields and the new engine's start, or while inactive): the
    /// next `process` has the state applied, so the change is not lost. Any thread.
    pub fn note_unapplied_change(&self) {
        self.restores
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Smoothing time of the continuous parameters, in milliseconds.
const SMOOTHING_MS: f32 = 20.0;

impl Default for TimbreswapParams {
    fn default() -> Self {
        let restores = Arc::new(AtomicU32::new(0));
        Self {
            mix: FloatParam::new("Mix", 1.0, FloatRange::Linear { min: 0.0, max: 1.0 })
                .with_smoother(SmoothingStyle::Linear(SMOOTHING_MS))
                .with_unit(" %")
                .with_value_to_string(formatters::v2s_f32_percentage(0))
                .with_string_to_value(formatters::s2v_f32_percentage()),
            output: FloatParam::new(
                "Output",
                util::db_to_gain(0.0),
                FloatRange::Skewed {
                    min: util::db_to_gain(-24.0),
                    max: util::db_to_gain(24.0),
                    factor: FloatRange::gain_skew_factor(-24.0, 24.0),
                },
            )
            .with_smoother(SmoothingStyle::Logarithmic(SMOOTHING_MS))
            .with_unit(" dB")
            .with_value_to_string(formatters::v2s_f32_gain_to_db(1))
            .with_string_to_value(formatters::s2v_f32_gain_to_db()),
            morph: FloatParam::new("Morph", 0.0, FloatRange::Linear { min: 0.0, max: 1.0 })
                .with_smoother(SmoothingStyle::Linear(SMOOTHING_MS))
                .with_unit(" %")
                .with_value_to_string(formatters::v2s_f32_percentage(0))
                .with_string_to_value(formatters::s2v_f32_percentage()),
            mode: EnumParam::new("Mode", Mode::Exemplar),
            variation: FloatParam::new("Variation", 1.0, FloatRange::Linear { min: 0.0, max: 2.0 })
                .with_smoother(SmoothingStyle::Linear(SMOOTHING_MS))
                .with_unit(" %")
                .with_value_to_string(formatters::v2s_f32_percentage(0))
                .with_string_to_value(formatters::s2v_f32_percentage()),
            transpose: FloatParam::new(
                "Transpose",
                0.0,
                FloatRange::Linear {
                    min: -MAX_TRANSPOSE,
                    max: MAX_TRANSPOSE,
                },
            )
            .with_smoother(SmoothingStyle::Linear(SMOOTHING_MS))
            .with_step_size(0.01)
            .with_unit(" st")
            .with_value_to_string(formatters::v2s_f32_rounded(2)),
            phase: EnumParam::new("Phase", Phase::Input),
            timbre_x: map_axis("Timbre X"),
            timbre_y: map_axis("Timbre Y"),
            map_amount: FloatParam::new(
                "Map amount",
                0.0,
                FloatRange::Linear { min: 0.0, max: 1.0 },
            )
            .with_smoother(SmoothingStyle::Linear(SMOOTHING_MS))
            .with_unit(" %")
            .with_value_to_string(formatters::v2s_f32_percentage(0))
            .with_string_to_value(formatters::s2v_f32_percentage()),
            decay: FloatParam::new("Decay", 1.0, FloatRange::Linear { min: 0.0, max: 1.0 })
                .with_smoother(SmoothingStyle::Linear(SMOOTHING_MS))
                .with_unit(" %")
                .with_value_to_string(formatters::v2s_f32_percentage(0))
                .with_string_to_value(formatters::s2v_f32_percentage()),
            latency: EnumParam::new("Latency", Latency::Normal).non_automatable(),
            model_path: Persisted::new(None, restores.clone()),
            model_weights: Persisted::new(None, restores.clone()),
            timbre_a: Persisted::new(None, restores.clone()),
            timbre_b: Persisted::new(None, restores.clone()),
            clip_a: Persisted::new(None, restores.clone()),
            clip_b: Persisted::new(None, restores.clone()),
            restores,
        }
    }
}

/// A timbre-map coordinate: -1..=1 across the model's training instruments, smoothed.
fn map_axis(name: &str) -> FloatParam {
    FloatParam::new(
        name,
        0.0,
        FloatRange::Linear {
            min: -1.0,
            max: 1.0,
        },
    )
    .with_smoother(SmoothingStyle::Linear(SMOOTHING_MS))
    .with_value_to_string(formatters::v2s_f32_rounded(2))
}

impl TimbreswapParams {
    /// The model the saved state asks for (file and weights).
    pub fn model_choice(&self) -> crate::model::ModelChoice {
        crate::model::ModelChoice {
            path: self.model_path.snapshot(),
            weights: self.model_weights.snapshot(),
        }
    }

    /// The persisted descriptor of `slot`.
    pub fn timbre(&self, slot: Slot) -> &Persisted<Option<TimbreDescriptor>> {
        match slot {
            Slot::A => &self.timbre_a,
            Slot::B => &self.timbre_b,
        }
    }

    /// The persisted clip audio of `slot`.
    pub fn clip(&self, slot: Slot) -> &Persisted<Option<SavedClip>> {
        match slot {
            Slot::A => &self.clip_a,
            Slot::B => &self.clip_b,
        }
    }
}
