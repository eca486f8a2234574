//! Dynamics: a feed-forward peak compressor working relative to the clip's peak.

use super::peak;

/// Compressor: a peak envelope follower (one-pole, `attack_ms` when rising, `release_ms` when
/// falling) drives a hard-knee gain computer; levels above `threshold_db` (relative to the
/// clip's peak) are reduced by the `ratio`. The output is scaled so its peak equals the
/// input's (make-up gain), so loud parts keep their level and quiet ones come up.
pub(super) fn compress(
    samples: &mut [f32],
    sample_rate: f64,
    threshold_db: f64,
    ratio: f64,
    attack_ms: f64,
    release_ms: f64,
) {
    let p = peak(samples) as f64;
    if p == 0.0 {
        return;
    }
    let coefficient = |ms: f64| (-1.0 / (ms.max(0.01) * 1e-3 * sample_rate)).exp();
    let (attack, release) = (coefficient(attack_ms), coefficient(release_ms));
    let slope = 1.0 - 1.0 / ratio.max(1.0);
    let mut env = 0.0f64;
    let mut out_peak = 0.0f64;
    for x in samples.iter_mut() {
        let level = (*x as f64).abs() / p;
        let c = if level > env { attack } else { release };
        env = c * env + (1.0 - c) * level;
        let over_db = 20.0 * env.max(1e-12).log10() - threshold_db;
        let gain = 10f64.powf(-over_db.max(0.0) * slope / 20.0);
        let y = *x as f64 * gain;
        out_peak = out_peak.max(y.abs());
        *x = y as f32;
    }
    if out_peak > 0.0 {
        let makeup = p / out_peak;
        for x in samples.iter_mut() {
            *x = (*x as f64 * makeup) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::probes::*;
    use super::super::Effect;

    /// A loud half then a half 20 dB quieter: compressing 4:1 above -25 dB shrinks the level
    /// step to under 8 dB (ideal: 5 dB), keeps the peak and the note in both halves.
    #[test]
    fn compressor_narrows_the_level_range_and_keeps_the_note() {
        let mut dry = harmonic_tone(F0, 20, 1.0, RATE);
        let half = dry.len() / 2;
        for x in &mut dry[half..] {
            *x *= 0.1;
        }
        let mut wet = dry.clone();
        Effect::Compressor {
            threshold_db: -25.0,
            ratio: 4.0,
            attack_ms: 5.0,
            release_ms: 50.0,
        }
        .apply(&mut wet, RATE);
        // Steady parts: skip 100 ms after each change.
        let step = |x: &[f32]| rms_db(&x[3200..half]) - rms_db(&x[half + 3200..]);
        let (before, after) = (step(&dry), step(&wet));
        let peak = |x: &[f32]| x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let f_loud = estimate_f0(&wet[3200..half], RATE);
        let f_quiet = estimate_f0(&wet[half + 3200..], RATE);
        let (off_loud, off_quiet) = (cents(f_loud, F0), cents(f_quiet, F0));
        eprintln!(
            "compressor: level step {before:.1} -> {after:.1} dB, F0 {off_loud:+.2} / \
             {off_quiet:+.2} cents"
        );
        assert!((before - 20.0).abs() < 0.1);
        assert!(after < 8.0 && after > 2.0);
        assert!((peak(&wet) - peak(&dry)).abs() < 1e-4);
        assert!(off_loud.abs() < 20.0 && off_quiet.abs() < 20.0);
    }
}
