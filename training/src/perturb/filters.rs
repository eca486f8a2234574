//! Linear filters: biquad low-pass, high-pass and peaking EQ (Bristow-Johnson's cookbook
//! formulas), and a resonant 4-pole ladder low-pass (zero-delay-feedback, topology-preserving
//! one-poles). All run in `f64` with transposed direct form II state.

use std::f64::consts::PI;

use super::{clamp_hz, EqBand};

/// Normalised biquad coefficients (`a0 = 1`).
#[derive(Debug, Clone, Copy)]
struct Biquad {
    b0: f64,
    b1: f64,
    b2: f64,
    a1: f64,
    a2: f64,
}

impl Biquad {
    /// Normalises by `a0`.
    fn new(b: [f64; 3], a: [f64; 3]) -> Self {
        Self {
            b0: b[0] / a[0],
            b1: b[1] / a[0],
            b2: b[2] / a[0],
            a1: a[1] / a[0],
            a2: a[2] / a[0],
        }
    }

    /// `(cos w0, alpha)` of the cookbook for frequency `hz` and quality `q`.
    fn prewarp(sample_rate: f64, hz: f64, q: f64) -> (f64, f64) {
        let w0 = 2.0 * PI * clamp_hz(hz, sample_rate) / sample_rate;
        (w0.cos(), w0.sin() / (2.0 * q.max(0.1)))
    }

    fn low_pass(sample_rate: f64, hz: f64, q: f64) -> Self {
        let (c, alpha) = Self::prewarp(sample_rate, hz, q);
        Self::new(
            [(1.0 - c) / 2.0, 1.0 - c, (1.0 - c) / 2.0],
            [1.0 + alpha, -2.0 * c, 1.0 - alpha],
        )
    }

    fn high_pass(sample_rate: f64, hz: f64, q: f64) -> Self {
        let (c, alpha) = Self::prewarp(sample_rate, hz, q);
        Self::new(
            [(1.0 + c) / 2.0, -(1.0 + c), (1.0 + c) / 2.0],
            [1.0 + alpha, -2.0 * c, 1.0 - alpha],
        )
    }

    fn peaking(sample_rate: f64, hz: f64, gain_db: f64, q: f64) -> Self {
        let (c, alpha) = Self::prewarp(sample_rate, hz, q);
        let a = 10f64.powf(gain_db / 40.0);
        Self::new(
            [1.0 + alpha * a, -2.0 * c, 1.0 - alpha * a],
            [1.0 + alpha / a, -2.0 * c, 1.0 - alpha / a],
        )
    }

    /// Filters `samples` in place from a zero state.
    fn run(&self, samples: &mut [f32]) {
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for x in samples.iter_mut() {
            let input = *x as f64;
            let y = self.b0 * input + s1;
            s1 = self.b1 * input - self.a1 * y + s2;
            s2 = self.b2 * input - self.a2 * y;
            *x = y as f32;
        }
    }
}

/// 12 dB/octave low-pass at `cutoff_hz` with quality `q`.
pub(super) fn low_pass(samples: &mut [f32], sample_rate: f64, cutoff_hz: f64, q: f64) {
    Biquad::low_pass(sample_rate, cutoff_hz, q).run(samples);
}

/// 12 dB/octave high-pass at `cutoff_hz` with quality `q`.
pub(super) fn high_pass(samples: &mut [f32], sample_rate: f64, cutoff_hz: f64, q: f64) {
    Biquad::high_pass(sample_rate, cutoff_hz, q).run(samples);
}

/// Peaking bands in series.
pub(super) fn eq(samples: &mut [f32], sample_rate: f64, bands: &[EqBand]) {
    for band in bands {
        Biquad::peaking(sample_rate, band.freq_hz, band.gain_db, band.q).run(samples);
    }
}

/// Resonant 4-pole ladder low-pass. Four trapezoidal one-poles in series with negative
/// feedback `k = 4 * resonance` from the last, solved without a unit delay in the loop; the
/// output is multiplied by `1 + k` so that the pass band keeps unit gain. The peak at the
/// cut-off is `(1 + k) / (4 - k)` (+10 dB at resonance 0.7); resonance is clamped to
/// `[0, 0.95]` (1 would self-oscillate).
pub(super) fn ladder(samples: &mut [f32], sample_rate: f64, cutoff_hz: f64, resonance: f64) {
    let k = 4.0 * resonance.clamp(0.0, 0.95);
    let g = (PI * clamp_hz(cutoff_hz, sample_rate) / sample_rate).tan();
    let big_g = g / (1.0 + g);
    let (g2, g3) = (big_g * big_g, big_g * big_g * big_g);
    let g4 = g2 * g2;
    let mut s = [0.0f64; 4];
    for x in samples.iter_mut() {
        // Each stage: y = G * in + s / (1 + g); chain them and solve the feedback loop.
        let carried = s.map(|si| si / (1.0 + g));
        let sigma = g3 * carried[0] + g2 * carried[1] + big_g * carried[2] + carried[3];
        let y4 = (g4 * *x as f64 + sigma) / (1.0 + k * g4);
        let mut stage_in = *x as f64 - k * y4;
        for si in s.iter_mut() {
            let v = (stage_in - *si) * big_g;
            let y = v + *si;
            *si = y + v;
            stage_in = y;
        }
        *x = ((1.0 + k) * stage_in) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::super::probes::*;
    use super::super::Effect;
    use super::*;

    /// The steady part used for measurements (after filter start-up).
    fn steady(x: &[f32]) -> &[f32] {
        &x[8000..]
    }

    fn assert_keeps_note(name: &str, y: &[f32]) -> f64 {
        let f0 = estimate_f0(&y[8000..28000], RATE);
        let off = cents(f0, F0);
        assert!(off.abs() < 20.0, "{name}: F0 {f0:.2} Hz ({off:.1} cents)");
        off
    }

    /// A low-pass at 800 Hz pulls the centroid down (from about 1.2 kHz to under 700 Hz) and
    /// keeps the note.
    #[test]
    fn low_pass_lowers_the_centroid_and_keeps_the_note() {
        let dry = harmonic_tone(F0, 20, 1.0, RATE);
        let wet = apply(
            &Effect::LowPass {
                cutoff_hz: 800.0,
                q: 0.707,
            },
            &dry,
        );
        let (before, after) = (
            spectral_centroid(steady(&dry), RATE),
            spectral_centroid(steady(&wet), RATE),
        );
        let off = assert_keeps_note("low-pass", &wet);
        eprintln!("low-pass: centroid {before:.0} -> {after:.0} Hz, F0 {off:+.2} cents");
        assert!(before > 1100.0 && after < 700.0);
    }

    /// A high-pass at 1.5 kHz pushes the centroid up (by more than 800 Hz), removes the fundamental
    /// (by more than 30 dB), and the period stays (missing fundamental).
    #[test]
    fn high_pass_raises_the_centroid_and_keeps_the_note() {
        let dry = harmonic_tone(F0, 20, 1.0, RATE);
        let wet = apply(
            &Effect::HighPass {
                cutoff_hz: 1500.0,
                q: 0.707,
            },
            &dry,
        );
        let (before, after) = (
            spectral_centroid(steady(&dry), RATE),
            spectral_centroid(steady(&wet), RATE),
        );
        let fund = |x: &[f32]| harmonic_tracks(steady(x), RATE, F0, 1)[5][0];
        let drop_db = 20.0 * (fund(&dry) / fund(&wet)).log10();
        let off = assert_keeps_note("high-pass", &wet);
        eprintln!(
            "high-pass: centroid {before:.0} -> {after:.0} Hz, fundamental -{drop_db:.1} dB, \
             F0 {off:+.2} cents"
        );
        assert!(after > before + 800.0);
        assert!(drop_db > 30.0);
    }

    /// The ladder at 1 kHz lowers the centroid; its resonance lifts the harmonic at the
    /// cut-off (1100 Hz, the 5th) relative to the non-resonant filter by more than 6 dB.
    #[test]
    fn ladder_lowers_the_centroid_resonates_and_keeps_the_note() {
        let dry = harmonic_tone(F0, 20, 1.0, RATE);
        let resonant = apply(
            &Effect::Ladder {
                cutoff_hz: 1100.0,
                resonance: 0.7,
            },
            &dry,
        );
        let flat = apply(
            &Effect::Ladder {
                cutoff_hz: 1100.0,
                resonance: 0.0,
            },
            &dry,
        );
        let (before, after) = (
            spectral_centroid(steady(&dry), RATE),
            spectral_centroid(steady(&resonant), RATE),
        );
        let fifth = |x: &[f32]| harmonic_tracks(steady(x), RATE, F0, 5)[5][4];
        let lift_db = 20.0 * (fifth(&resonant) / fifth(&flat)).log10();
        // Pass band at unit gain: the fundamental is kept within 1.5 dB.
        let fund = |x: &[f32]| harmonic_tracks(steady(x), RATE, F0, 1)[5][0];
        let pass_db = 20.0 * (fund(&resonant) / fund(&dry)).log10();
        let off = assert_keeps_note("ladder", &resonant);
        eprintln!(
            "ladder: centroid {before:.0} -> {after:.0} Hz, resonance lift {lift_db:.1} dB, \
             fundamental {pass_db:+.2} dB, F0 {off:+.2} cents"
        );
        assert!(after < before - 300.0);
        assert!(lift_db > 6.0);
        assert!(pass_db.abs() < 1.5);
    }

    /// Boosting 3-5 kHz and cutting 300 Hz raises the centroid by more than 500 Hz; the
    /// reverse lowers it by more than 300 Hz; the boosted harmonic gains close to its band's
    /// gain.
    #[test]
    fn eq_moves_the_centroid_both_ways_and_keeps_the_note() {
        let dry = harmonic_tone(F0, 20, 1.0, RATE);
        let bands = |sign: f64| Effect::Eq {
            bands: vec![
                EqBand {
                    freq_hz: 3300.0,
                    gain_db: 12.0 * sign,
                    q: 1.0,
                },
                EqBand {
                    freq_hz: 440.0,
                    gain_db: -9.0 * sign,
                    q: 1.4,
                },
            ],
        };
        let up = apply(&bands(1.0), &dry);
        let down = apply(&bands(-1.0), &dry);
        let c = |x: &[f32]| spectral_centroid(steady(x), RATE);
        let (before, c_up, c_down) = (c(&dry), c(&up), c(&down));
        // The 15th harmonic sits on the 3300 Hz band.
        let h15 = |x: &[f32]| harmonic_tracks(steady(x), RATE, F0, 15)[5][14];
        let gain_db = 20.0 * (h15(&up) / h15(&dry)).log10();
        let off_up = assert_keeps_note("eq up", &up);
        let off_down = assert_keeps_note("eq down", &down);
        eprintln!(
            "eq: centroid {before:.0} -> {c_up:.0} (boost) / {c_down:.0} Hz (cut), 3300 Hz \
             harmonic {gain_db:+.1} dB, F0 {off_up:+.2} / {off_down:+.2} cents"
        );
        assert!(c_up > before + 500.0);
        assert!(c_down < before - 300.0);
        assert!((gain_db - 12.0).abs() < 1.5);
    }
}
