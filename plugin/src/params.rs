//! The plugin's parameters and persisted fields. The `#[id]` strings are stable: hosts store
//! automation and presets under them.

use std::sync::{Arc, RwLock};

use nice_plug::prelude::*;
use timbreswap_engine::{Slot, TimbreDescriptor};

/// Which timbre-transfer algorithm runs.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Cepstral envelope swap (DSP): the input's fine structure with the reference's average
    /// envelope.
    #[id = "classic"]
    #[name = "Classic"]
    Classic,
    /// The learned three-factor model. Not available in this release: selecting it keeps
    /// Classic running and says so in the editor.
    #[id = "neural"]
    #[name = "Neural"]
    Neural,
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
    /// Classic (DSP) or Neural (learned model).
    #[id = "mode"]
    pub mode: EnumParam<Mode>,
    /// Timbre descriptor of reference A, saved with the project so it sounds the same without
    /// the original file.
    #[persist = "timbre-a"]
    pub timbre_a: Arc<RwLock<Option<TimbreDescriptor>>>,
    /// Timbre descriptor of reference B.
    #[persist = "timbre-b"]
    pub timbre_b: Arc<RwLock<Option<TimbreDescriptor>>>,
}

/// Smoothing time of the continuous parameters, in milliseconds.
const SMOOTHING_MS: f32 = 20.0;

impl Default for TimbreswapParams {
    fn default() -> Self {
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
            mode: EnumParam::new("Mode", Mode::Classic),
            timbre_a: Arc::new(RwLock::new(None)),
            timbre_b: Arc::new(RwLock::new(None)),
        }
    }
}

impl TimbreswapParams {
    /// The persisted descriptor of `slot`.
    pub fn timbre(&self, slot: Slot) -> &Arc<RwLock<Option<TimbreDescriptor>>> {
        match slot {
            Slot::A => &self.timbre_a,
            Slot::B => &self.timbre_b,
        }
    }
}
