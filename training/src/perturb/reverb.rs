//! A small reverb: an 8-line feedback delay network (Jot's structure) with a Hadamard feedback
//! matrix, per-line gains set from the decay time, and one-pole damping in the loops.

use super::rms;

/// Line lengths, ms: spread between 31 and 74 ms, no common factors once in samples at the
/// usual rates.
const LINES_MS: [f64; 8] = [31.3, 37.1, 41.9, 47.3, 53.7, 59.3, 67.1, 73.9];

/// In-place fast Walsh-Hadamard transform of 8 values, scaled to be orthonormal.
fn hadamard(v: &mut [f64; 8]) {
    let mut h = 1;
    while h < 8 {
        for i in (0..8).step_by(2 * h) {
            for j in i..i + h {
                let (a, b) = (v[j], v[j + h]);
                v[j] = a + b;
                v[j + h] = a - b;
            }
        }
        h *= 2;
    }
    let scale = 1.0 / 8f64.sqrt();
    for x in v.iter_mut() {
        *x *= scale;
    }
}

/// Reverb: each line's loop gain gives a decay of 60 dB in `rt60_s` seconds (at low
/// frequencies; `damping` in `[0, 0.99]` shortens it towards high ones). The wet signal is
/// scaled to the dry signal's RMS, then mixed: `(1 - mix) dry + mix wet`. The tail past the
/// clip's end is cut.
pub(super) fn reverb(samples: &mut [f32], sample_rate: f64, rt60_s: f64, damping: f64, mix: f64) {
    let dry_rms = rms(samples);
    if dry_rms == 0.0 {
        return;
    }
    let damping = damping.clamp(0.0, 0.99);
    let rt60 = rt60_s.max(0.01);
    let lengths = LINES_MS.map(|ms| ((ms * 1e-3 * sample_rate).round() as usize).max(1));
    let gains = lengths.map(|len| 10f64.powf(-3.0 * len as f64 / (rt60 * sample_rate)));
    let mut lines: Vec<Vec<f64>> = lengths.iter().map(|&len| vec![0.0; len]).collect();
    let mut heads = [0usize; 8];
    let mut lowpass = [0.0f64; 8];
    let signs = [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0];
    let mut wet = Vec::with_capacity(samples.len());
    for &x in samples.iter() {
        let mut v = [0.0f64; 8];
        let mut out = 0.0;
        for i in 0..8 {
            let delayed = lines[i][heads[i]];
            out += signs[i] * delayed;
            lowpass[i] = (1.0 - damping) * delayed + damping * lowpass[i];
            v[i] = gains[i] * lowpass[i];
        }
        hadamard(&mut v);
        for i in 0..8 {
            lines[i][heads[i]] = v[i] + x as f64;
            heads[i] = (heads[i] + 1) % lengths[i];
        }
        wet.push(out);
    }
    let wet_rms = (wet.iter().map(|w| w * w).sum::<f64>() / wet.len() as f64).sqrt();
    let wet_gain = if wet_rms > 0.0 {
        dry_rms / wet_rms
    } else {
        0.0
    };
    for (y, w) in samples.iter_mut().zip(&wet) {
        *y = ((1.0 - mix) * *y as f64 + mix * wet_gain * w) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::super::probes::*;
    use super::super::Effect;

    /// A 0.5 s tone followed by silence gets a tail (dry: none; wet: louder than -30 dB re the
    /// tone in 0.6-1.0 s) that decays at the rate `rt60_s` asks for (within 25 %); the note is
    /// kept.
    #[test]
    fn reverb_adds_a_decaying_tail_and_keeps_the_note() {
        let mut dry = harmonic_tone(F0, 20, 1.2, RATE);
        let stop = RATE as usize / 2;
        dry[stop..].fill(0.0);
        let rt60_s = 1.2;
        let mut wet = dry.clone();
        Effect::Reverb {
            rt60_s,
            damping: 0.0,
            mix: 0.3,
        }
        .apply(&mut wet, RATE);
        let seg = |x: &[f32], a: f64, b: f64| {
            rms_db(&x[(a * RATE as f64) as usize..(b * RATE as f64) as usize])
        };
        let tone_db = seg(&wet, 0.1, 0.5);
        let tail_db = seg(&wet, 0.6, 1.0) - tone_db;
        let dry_tail_db = seg(&dry, 0.6, 1.0) - seg(&dry, 0.1, 0.5);
        // Decay between two 0.1 s windows 0.4 s apart.
        let drop_db = seg(&wet, 0.6, 0.7) - seg(&wet, 1.0, 1.1);
        let measured_rt60 = 60.0 * 0.4 / drop_db;
        let f0 = estimate_f0(&wet[6000..stop], RATE);
        let off = cents(f0, F0);
        eprintln!(
            "reverb: tail {dry_tail_db:.0} -> {tail_db:.1} dB re the tone, RT60 {measured_rt60:.2} s \
             (asked {rt60_s} s), F0 {off:+.2} cents"
        );
        assert!(dry_tail_db < -200.0);
        assert!(tail_db > -30.0);
        assert!((measured_rt60 / rt60_s - 1.0).abs() < 0.25);
        assert!(off.abs() < 20.0);
    }

    /// Damping shortens the high-frequency tail: the tail's centroid drops.
    #[test]
    fn reverb_damping_darkens_the_tail() {
        let mut dry = harmonic_tone(F0, 20, 1.2, RATE);
        let stop = RATE as usize / 2;
        dry[stop..].fill(0.0);
        let tail_centroid = |damping: f64| {
            let mut wet = dry.clone();
            Effect::Reverb {
                rt60_s: 1.2,
                damping,
                mix: 0.3,
            }
            .apply(&mut wet, RATE);
            spectral_centroid(&wet[stop + 3200..], RATE)
        };
        let (bright, dark) = (tail_centroid(0.0), tail_centroid(0.5));
        eprintln!("reverb: tail centroid {bright:.0} Hz (damping 0) -> {dark:.0} Hz (0.5)");
        assert!(dark < 0.7 * bright);
    }
}
