//! Time-varying effects: chorus (modulated delays) and phaser (swept all-passes). Both move
//! notches and peaks through the spectrum over time; neither moves the note (the chorus
//! detunes its delayed voices by at most [`MAX_CHORUS_DETUNE_CENTS`] around the dry pitch).

use std::f64::consts::PI;

use super::{clamp_hz, MAX_CHORUS_DETUNE_CENTS};

/// Largest chorus depth, ms, whose sine delay modulation at `rate_hz` detunes by at most
/// [`MAX_CHORUS_DETUNE_CENTS`]: a delay `D + A sin(2 pi r t)` scales the frequency by
/// `1 - 2 pi r A cos(...)`.
pub(super) fn max_chorus_depth_ms(rate_hz: f64) -> f64 {
    let ratio = 2f64.powf(MAX_CHORUS_DETUNE_CENTS / 1200.0) - 1.0;
    1000.0 * ratio / (2.0 * PI * rate_hz.max(1e-3))
}

/// Chorus: `voices` copies delayed by `delay_ms + depth_ms * sin(2 pi rate t + 2 pi v /
/// voices)` (linear interpolation; silence before the clip), averaged and mixed with the dry
/// signal: `(1 - mix) dry + mix wet`.
pub(super) fn chorus(
    samples: &mut [f32],
    sample_rate: f64,
    voices: u32,
    delay_ms: f64,
    depth_ms: f64,
    rate_hz: f64,
    mix: f64,
) {
    let voices = voices.max(1);
    let dry = samples.to_vec();
    let base = delay_ms.max(0.0) * 1e-3 * sample_rate;
    // The delay never goes below one sample.
    let depth = (depth_ms.abs() * 1e-3 * sample_rate).min((base - 1.0).max(0.0));
    let w = 2.0 * PI * rate_hz / sample_rate;
    let at = |pos: f64| -> f64 {
        if pos < 0.0 {
            return 0.0;
        }
        let i = pos.floor() as usize;
        let frac = pos - i as f64;
        let a = dry.get(i).copied().unwrap_or(0.0) as f64;
        let b = dry.get(i + 1).copied().unwrap_or(0.0) as f64;
        a + (b - a) * frac
    };
    for (n, y) in samples.iter_mut().enumerate() {
        let mut wet = 0.0;
        for v in 0..voices {
            let phase = 2.0 * PI * v as f64 / voices as f64;
            let delay = base + depth * (w * n as f64 + phase).sin();
            wet += at(n as f64 - delay);
        }
        wet /= voices as f64;
        *y = ((1.0 - mix) * dry[n] as f64 + mix * wet) as f32;
    }
}

/// Phaser: `stages` first-order all-passes whose common break frequency sweeps
/// logarithmically between `min_hz` and `max_hz` at `rate_hz` (raised cosine, starting at
/// `min_hz`); the last stage feeds back to the input (`feedback`, clamped to +-0.9); output
/// `(dry + all-passed) / 2`, which puts `stages / 2` moving notches in the spectrum.
pub(super) fn phaser(
    samples: &mut [f32],
    sample_rate: f64,
    stages: u32,
    min_hz: f64,
    max_hz: f64,
    rate_hz: f64,
    feedback: f64,
) {
    let stages = stages.clamp(1, 32) as usize;
    let (lo, hi) = (clamp_hz(min_hz, sample_rate), clamp_hz(max_hz, sample_rate));
    let feedback = feedback.clamp(-0.9, 0.9);
    let w = 2.0 * PI * rate_hz / sample_rate;
    // Per stage: previous input and previous output.
    let mut state = vec![(0.0f64, 0.0f64); stages];
    let mut last = 0.0f64;
    for (n, y) in samples.iter_mut().enumerate() {
        let sweep = 0.5 - 0.5 * (w * n as f64).cos();
        let f = lo * (hi / lo).powf(sweep);
        let t = (PI * f / sample_rate).tan();
        let a = (t - 1.0) / (t + 1.0);
        let dry = *y as f64;
        let mut s = dry + feedback * last;
        for (x1, y1) in state.iter_mut() {
            let out = a * s + *x1 - a * *y1;
            *x1 = s;
            *y1 = out;
            s = out;
        }
        last = s;
        *y = (0.5 * (dry + s)) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::super::probes::*;
    use super::super::Effect;

    /// The chorus makes the steady tone's harmonic amplitudes fluctuate over time (mean
    /// coefficient of variation from under 0.01 to over 0.1) and keeps the note.
    #[test]
    fn chorus_modulates_the_harmonics_and_keeps_the_note() {
        let dry = harmonic_tone(F0, 20, 2.0, RATE);
        let rate_hz = 1.0;
        let effect = Effect::Chorus {
            voices: 2,
            delay_ms: 12.0,
            depth_ms: super::max_chorus_depth_ms(rate_hz),
            rate_hz,
            mix: 0.5,
        };
        let wet = apply(&effect, &dry);
        let (m_dry, m_wet) = (
            harmonic_modulation(&dry[1000..], RATE, F0),
            harmonic_modulation(&wet[1000..], RATE, F0),
        );
        let f0 = estimate_f0(&wet[8000..], RATE);
        let off = cents(f0, F0);
        eprintln!(
            "chorus: harmonic modulation {m_dry:.4} -> {m_wet:.3}, F0 {off:+.2} cents \
             (depth {:.2} ms at {rate_hz} Hz)",
            super::max_chorus_depth_ms(rate_hz)
        );
        assert!(m_dry < 0.01);
        assert!(m_wet > 0.1);
        assert!(off.abs() < 20.0);
    }

    /// The phaser's sweeping notches make the harmonic amplitudes fluctuate over time (mean
    /// coefficient of variation over 0.2) and keep the note.
    #[test]
    fn phaser_modulates_the_harmonics_and_keeps_the_note() {
        let dry = harmonic_tone(F0, 20, 2.0, RATE);
        let effect = Effect::Phaser {
            stages: 6,
            min_hz: 300.0,
            max_hz: 4000.0,
            rate_hz: 0.7,
            feedback: 0.3,
        };
        let wet = apply(&effect, &dry);
        let (m_dry, m_wet) = (
            harmonic_modulation(&dry[1000..], RATE, F0),
            harmonic_modulation(&wet[1000..], RATE, F0),
        );
        let f0 = estimate_f0(&wet[8000..], RATE);
        let off = cents(f0, F0);
        eprintln!("phaser: harmonic modulation {m_dry:.4} -> {m_wet:.3}, F0 {off:+.2} cents");
        assert!(m_dry < 0.01);
        assert!(m_wet > 0.2);
        assert!(off.abs() < 20.0);
    }
}
