//! Nonlinear distortion: a tanh waveshaper and a bit crusher, both scaled to the clip's peak
//! so that what they do does not depend on its level.

use super::peak;

/// Tanh waveshaper driven `drive_db` at the clip's peak: `y = p tanh(g x / p) / tanh(g)` with
/// `p` the peak and `g = 10^(drive_db / 20)`. Odd-symmetric: it adds odd harmonics of every
/// component and intermodulation, and flattens the peaks; the peak itself is kept.
pub(super) fn waveshape(samples: &mut [f32], drive_db: f64) {
    let p = peak(samples) as f64;
    if p == 0.0 {
        return;
    }
    let g = 10f64.powf(drive_db / 20.0);
    let scale = p / g.tanh();
    for x in samples.iter_mut() {
        *x = (scale * (g * *x as f64 / p).tanh()) as f32;
    }
}

/// Bit crusher: holds every `downsample`-th sample for `downsample` samples (aliasing, a
/// staircase), then rounds to a grid of `p / 2^(bits - 1)` with `p` the clip's peak
/// (quantisation noise about `6 * bits` dB below the peak).
pub(super) fn bit_crush(samples: &mut [f32], bits: u32, downsample: u32) {
    let p = peak(samples) as f64;
    if p == 0.0 {
        return;
    }
    let step = p / 2f64.powi(bits.clamp(1, 24) as i32 - 1);
    let hold = downsample.max(1) as usize;
    for chunk in samples.chunks_mut(hold) {
        let held = ((chunk[0] as f64 / step).round() * step) as f32;
        chunk.fill(held);
    }
}

#[cfg(test)]
mod tests {
    use super::super::probes::*;
    use super::super::Effect;

    /// Driving 20 dB into the waveshaper flattens the peaks (crest factor down by more than
    /// 25 %), adds upper harmonics (centroid up), keeps the peak and the note.
    #[test]
    fn distortion_flattens_peaks_adds_harmonics_and_keeps_the_note() {
        let dry = harmonic_tone(F0, 20, 1.0, RATE);
        let wet = apply(&Effect::Distortion { drive_db: 20.0 }, &dry);
        let (cf_dry, cf_wet) = (crest_factor(&dry), crest_factor(&wet));
        let (c_dry, c_wet) = (
            spectral_centroid(&dry[8000..], RATE),
            spectral_centroid(&wet[8000..], RATE),
        );
        let peak = |x: &[f32]| x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let f0 = estimate_f0(&wet[8000..28000], RATE);
        let off = cents(f0, F0);
        eprintln!(
            "distortion: crest factor {cf_dry:.2} -> {cf_wet:.2}, centroid {c_dry:.0} -> \
             {c_wet:.0} Hz, F0 {off:+.2} cents"
        );
        assert!(cf_wet < 0.75 * cf_dry);
        assert!(c_wet > c_dry + 200.0);
        assert!((peak(&wet) - peak(&dry)).abs() < 1e-4);
        assert!(off.abs() < 20.0);
        // A sine gains odd harmonics: its third harmonic rises from nothing to above -30 dB.
        let sine = harmonic_tone(F0, 1, 1.0, RATE);
        let shaped = apply(&Effect::Distortion { drive_db: 10.0 }, &sine);
        let h = harmonic_tracks(&shaped[8000..], RATE, F0, 3)[5].clone();
        let third_db = 20.0 * (h[2] / h[0]).log10();
        eprintln!("distortion: sine's 3rd harmonic at {third_db:.1} dB re the fundamental");
        assert!(third_db > -30.0);
    }

    /// Four bits with a hold of 4 drops the harmonic-to-noise ratio from above 40 dB to below
    /// 25 dB (quantisation noise and aliases), and keeps the note.
    #[test]
    fn bit_crush_adds_noise_and_keeps_the_note() {
        let dry = harmonic_tone(F0, 20, 1.0, RATE);
        let crushed = apply(
            &Effect::BitCrush {
                bits: 4,
                downsample: 4,
            },
            &dry,
        );
        let hnr_dry = harmonic_to_noise_db(&dry[8000..], RATE, F0);
        let hnr_wet = harmonic_to_noise_db(&crushed[8000..], RATE, F0);
        // The grid alone (no hold): every sample sits on a multiple of peak / 8.
        let grid = apply(
            &Effect::BitCrush {
                bits: 4,
                downsample: 1,
            },
            &dry,
        );
        let step = 0.5 / 8.0;
        assert!(grid
            .iter()
            .all(|&x| ((x / step).round() * step - x).abs() < 1e-6));
        let f0 = estimate_f0(&crushed[8000..28000], RATE);
        let off = cents(f0, F0);
        eprintln!(
            "bit crush: harmonic-to-noise {hnr_dry:.1} -> {hnr_wet:.1} dB, F0 {off:+.2} cents"
        );
        assert!(hnr_dry > 40.0);
        assert!(hnr_wet < 25.0);
        assert!(off.abs() < 20.0);
    }
}
