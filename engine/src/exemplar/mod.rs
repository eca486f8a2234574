//! The exemplar swap behind [`SwapMode::Exemplar`](crate::processor::SwapMode::Exemplar): every output
//! frame comes from a frame of the reference clip itself, chosen by the age of the note it
//! belongs to and by pitch, and is played at the input's pitch. By default
//! ([`Shift::Harmonic`]) it is resynthesised: sinusoids on the input's partials at the clip's
//! partial levels (read as an envelope over frequency) plus the clip's noise between partials;
//! where the input has no sure pitch, the clip's spectrum on the input's phase. The other
//! [`Shift`]s are the experiments that led there (`timbreswap eval-transfer --exemplar`).
//!
//! Files: `bank.rs` (the clip's analysis), `meter.rs` (its partials and the noise between
//! them), `background.rs` (the clip's background noise, measured in its pauses and taken out
//! of its notes), `cuts.rs` (where the clip is cut hard: the frames over a cut are not kept),
//! `swap.rs` (the per-frame processor and its
//! synthesis), `pitch.rs` (YIN and the harmonic-sum refinement), `track.rs` (the clip's pitch
//! track: YIN's sure pitches, stray stretches mended), `notes.rs` (note segmentation).
//!
//! - [`ExemplarBank`] is the reference's analysis: log-magnitude frames, their pitch (YIN),
//!   the age of their note, their partial levels and noise on a [`HARMONIC_FFT`]-point
//!   window, and how its notes decay ([`NoteDecay`]). Where the clip carries a steady
//!   background (a room's noise in its pauses), the bank measures it there and takes it out
//!   of the frames it keeps (`background.rs`). Built off the audio thread when a reference
//!   loads.
//! - [`NoteTracker`] finds note starts in a stream of frames (level jumps, a pitch that moves
//!   to another note, sound after silence); the bank and the input use the same one.
//! - [`ExemplarSwap`] is the per-frame processor (YIN on the input; a model's pitch ruler as
//!   the guess where YIN is unsure, if one is given). Realtime-safe after construction.

mod background;
mod bank;
mod cuts;
mod meter;
mod notes;
mod partials;
mod pitch;
mod sinusoids;
mod swap;
mod track;

pub use background::{
    BACKGROUND_UNDER_DB, MAX_BACKGROUND_FRAMES, MAX_BACKGROUND_UNDER_DB, MIN_BACKGROUND_FRAMES,
    NOTE_OVER_BACKGROUND_DB, OVER_SUBTRACTION, PARTIAL_OVER_BACKGROUND, QUIET_QUANTILE,
    QUIET_SPREAD_DB, SUBTRACTION_FLOOR,
};
pub use bank::{
    note_decay, ExemplarBank, NoteDecay, DECAY_MIN_SECONDS, DECAY_READ_SHARE, MAX_BANK_SECONDS,
    MAX_DECAY_DB_PER_S, PEAK_SEARCH_SECONDS,
};
pub use cuts::{
    hard_cuts, CUT_BLOCK_SECONDS, CUT_CONTEXT_SECONDS, CUT_FALL_DB, CUT_FROM_UNDER_CONTEXT_DB,
    CUT_FROM_UNDER_LOUDEST_DB,
};
pub use meter::{HARMONIC_FFT, HARMONIC_MAX_HZ, HARMONIC_PARTIALS};
pub use notes::{
    NoteFrame, NoteTracker, GATE_RANGE_DB, ONSET_RISE_DB, ONSET_SPAN_FRAMES, PEAK_DECAY_DB_PER_S,
    PITCH_CHANGE_FRAMES, PITCH_CHANGE_SEMITONES,
};
pub use partials::{partial_amplitudes, BELOW_FUNDAMENTAL_SLOPE, PARTIAL_NUMBER_SEMITONES};
pub use pitch::{
    refine_pitch, Yin, REFINE_MAX_HZ, REFINE_MAX_PARTIALS, REFINE_RANGE_CENTS, REFINE_STEP_CENTS,
    YIN_MAX_LAG, YIN_MIN_LAG, YIN_THRESHOLD, YIN_TRUST, YIN_WINDOW,
};
pub use sinusoids::{SinusoidKernel, KERNEL_LEAKAGE, KERNEL_OVERSAMPLE, MAX_KERNEL_REACH};
/// The Low latency oscillators make these offsets by recursion; their test reads the formula.
#[cfg(test)]
pub(crate) use swap::schroeder_offset;
pub(crate) use swap::{random_phase, HarmonicFrame};
pub use swap::{
    ExemplarOptions, ExemplarSwap, Shift, ATTACK_SECONDS, MAX_NOISE_BELOW_FUNDAMENTAL,
    MAX_NOTE_DECAY_DB, MAX_PARTIALS, MAX_PARTIAL_GAIN_DB, MAX_SHIFT_SEMITONES,
    MAX_TRANSPOSE_SEMITONES, NOISE_GAIN, SEMITONE_COST_FRAMES,
};
pub(crate) use track::sure_pitches;

/// Floor added to magnitudes before their logarithm (the shipped models' `mag_floor`).
pub const MAG_FLOOR: f32 = 1e-3;
/// Frequency of middle C (MIDI 60), in Hz.
const MIDDLE_C_HZ: f32 = 261.625_58;

/// Test signals shared by the submodules' tests.
#[cfg(test)]
mod test_signal {
    use super::MIDDLE_C_HZ;

    /// Sample rate of the test signals, in Hz.
    pub const SR: f32 = 32_000.0;

    /// A harmonic tone: `partials` partials of amplitude 1/h at `f0` Hz.
    pub fn tone(f0: f32, partials: usize, len: usize) -> Vec<f32> {
        (0..len)
            .map(|n| {
                let t = n as f32 / SR;
                (1..=partials)
                    .filter(|h| *h as f32 * f0 < SR / 2.0)
                    .map(|h| (std::f32::consts::TAU * h as f32 * f0 * t).sin() / h as f32)
                    .sum::<f32>()
                    * 0.1
            })
            .collect()
    }

    /// `hz` in semitones from middle C.
    pub fn semitones(hz: f32) -> f32 {
        12.0 * (hz / MIDDLE_C_HZ).log2()
    }
}
