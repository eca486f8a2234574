//! The timbre encoder's harmonic input (a model with
//! [`ModelConfig::timbre_harmonics`](crate::model_config::ModelConfig::timbre_harmonics)): each
//! frame's log-magnitude at the first multiples of its pitch, relative to the strongest of them.
//! The same arithmetic as the training crate's `ThreeFactor::harmonic_levels` (parity tested in
//! `training/tests/harmonics.rs`).

use crate::model_config::{ModelConfig, MIDDLE_C};

/// Lowest level of a harmonic relative to the frame's strongest, in nepers (natural-log
/// magnitude; -9.2 is 80 dB down). Also the level of a harmonic above the top bin.
pub const HARMONIC_FLOOR: f32 = -9.2;

/// The harmonic levels of one frame into `out` (one value per harmonic, `out.len()` of them):
/// `log_mag` (`ln(|X| + floor)`, one value per bin) read at multiples of the pitch that the
/// `ruler` value stands for (semitones from middle C times the config's ruler scale), linearly
/// between bins, minus the strongest of them, floored at [`HARMONIC_FLOOR`], divided by
/// `log_mag_scale` (the model's log-magnitude normalisation). Realtime-safe.
pub fn harmonic_levels(
    cfg: &ModelConfig,
    log_mag_scale: f32,
    log_mag: &[f32],
    ruler: f32,
    out: &mut [f32],
) {
    let bins = log_mag.len();
    if bins < 2 {
        out.fill(HARMONIC_FLOOR / log_mag_scale);
        return;
    }
    let note = ruler / cfg.pitch_ruler_scale + MIDDLE_C;
    // A4 in bins.
    let a4 = (440.0 * cfg.n_fft as f64 / cfg.sample_rate as f64) as f32;
    let fundamental = ((note - 69.0) * (std::f64::consts::LN_2 / 12.0) as f32).exp() * a4;
    let top = (bins - 1) as f32;
    let mut strongest = f32::NEG_INFINITY;
    for (k, o) in out.iter_mut().enumerate() {
        let position = (k + 1) as f32 * fundamental;
        if position.is_nan() || position > top {
            // Above the top bin, or not a number (a ruler that is not one).
            *o = f32::NAN;
            continue;
        }
        let clamped = position.clamp(0.0, top - 1e-3);
        let below = clamped.floor();
        let frac = clamped - below;
        let lo = below as usize;
        let level = log_mag[lo] * (1.0 - frac) + log_mag[lo + 1] * frac;
        strongest = strongest.max(level);
        *o = level;
    }
    for o in out.iter_mut() {
        let relative = if o.is_nan() {
            HARMONIC_FLOOR
        } else {
            (*o - strongest).clamp(HARMONIC_FLOOR, 0.0)
        };
        *o = relative / log_mag_scale;
    }
}
