//! Duration-preserving pitch shift: a WSOLA time stretch (waveform-similarity overlap-add,
//! Verhelst & Roelands) by the pitch ratio, then band-limited resampling back to the original
//! length with the engine's resampler. WSOLA copies whole waveform segments, so the local
//! period is kept exactly while the duration changes; the resampling then scales every
//! frequency by the ratio.

use timbreswap_engine::resampler::resample_all;
use timbreswap_engine::stft::hann;

use crate::rng::SplitMix64;

/// Largest shift [`random_pitch_shift`] draws, semitones.
pub const MAX_SHIFT_SEMITONES: i32 = 7;

/// Largest shift [`pitch_shift`] accepts, semitones.
const LIMIT_SEMITONES: f64 = 24.0;
/// WSOLA window length, s (two periods of 50 Hz).
const WINDOW_S: f64 = 0.040;
/// WSOLA search range on each side of the nominal position, s (half a period of 40 Hz).
const TOLERANCE_S: f64 = 0.0125;

/// Shifts the pitch of a mono clip by `semitones` (positive: up) and keeps its length: the
/// output has `samples.len()` samples, time-aligned with the input (to within the WSOLA search
/// range), at about the same level. Content that would land above 0.45 `sample_rate` is
/// removed by the resampler's anti-aliasing. A shift of 0 returns a copy.
///
/// # Panics
/// If `semitones` is not finite or exceeds +-24.
pub fn pitch_shift(samples: &[f32], sample_rate: u32, semitones: f64) -> Vec<f32> {
    assert!(
        semitones.is_finite() && semitones.abs() <= LIMIT_SEMITONES,
        "pitch shift of {semitones} semitones outside +-{LIMIT_SEMITONES}"
    );
    let n = samples.len();
    if semitones == 0.0 || n == 0 {
        return samples.to_vec();
    }
    // The stretched clip, read as if recorded at `from` Hz and resampled to `sample_rate`, is
    // sped up by `from / sample_rate`; using that (whole-Hz) ratio for the stretch too keeps
    // the output length and alignment exact.
    let from = (sample_rate as f64 * 2f64.powf(semitones / 12.0)).round() as u32;
    let ratio = from as f64 / sample_rate as f64;
    // A little extra so that rounding in the resampler never leaves the output short.
    let stretched_len = (n as f64 * ratio).ceil() as usize + 64;
    let stretched = time_stretch(samples, sample_rate, ratio, stretched_len);
    let mut out = resample_all(&stretched, from, sample_rate);
    out.resize(n, 0.0);
    out
}

/// A random shift: a whole number of semitones drawn uniformly in
/// `-MAX_SHIFT_SEMITONES..=MAX_SHIFT_SEMITONES` (15 values, 0 included).
pub fn random_semitones(rng: &mut SplitMix64) -> f64 {
    rng.int(-MAX_SHIFT_SEMITONES, MAX_SHIFT_SEMITONES) as f64
}

/// [`pitch_shift`] by [`random_semitones`]; returns the shifted clip and the shift in
/// semitones.
pub fn random_pitch_shift(
    samples: &[f32],
    sample_rate: u32,
    rng: &mut SplitMix64,
) -> (Vec<f32>, f64) {
    let semitones = random_semitones(rng);
    (pitch_shift(samples, sample_rate, semitones), semitones)
}

/// WSOLA: `out_len` samples of `x` played `ratio` times longer at the same pitch. Hann frames
/// of `2 h` samples are overlap-added every `h` output samples; frame `k` is taken from near
/// input position `k h / ratio`, shifted within the search range to the place whose first half
/// best matches (normalised cross-correlation) the natural continuation of the previous frame.
fn time_stretch(x: &[f32], sample_rate: u32, ratio: f64, out_len: usize) -> Vec<f32> {
    let h = ((WINDOW_S * sample_rate as f64 / 2.0).round() as usize).max(16);
    let w = 2 * h;
    let tol = (TOLERANCE_S * sample_rate as f64).round() as usize;
    let window = hann(w);
    // Output buffer index b = t + h: frame k covers b in [k h, k h + w); every b >= h is covered
    // by two frames whose windows sum to 1.
    let frames = (out_len + h).div_ceil(h) + 1;
    let nominal = |k: usize| (k as f64 * h as f64 / ratio).round() as usize;
    // Input padded with zeros so that every candidate frame lies inside: xp[j + pad] = x[j].
    let pad = h + tol;
    let padded_len = (pad - h + nominal(frames - 1) + tol + w + 1).max(pad + x.len());
    let mut xp = vec![0.0f32; padded_len];
    xp[pad..pad + x.len()].copy_from_slice(x);
    // Prefix sums of squares for the candidates' energies.
    let mut energy = Vec::with_capacity(padded_len + 1);
    energy.push(0.0f64);
    let mut acc = 0.0f64;
    for &v in &xp {
        acc += (v as f64) * (v as f64);
        energy.push(acc);
    }
    let floor = 1e-9 * h as f64;

    let mut out = vec![0.0f32; frames * h + w];
    let mut prev = pad - h;
    for k in 0..frames {
        // Start, in padded coordinates, of the frame whose centre is at input k h / ratio.
        let nom = pad - h + nominal(k);
        let start = if k == 0 {
            nom
        } else {
            let reference = &xp[prev + h..prev + w];
            let score = |c: usize| {
                let e = energy[c + h] - energy[c];
                dot(reference, &xp[c..c + h]) / (e + floor).sqrt()
            };
            let mut best = nom;
            let mut best_score = score(nom);
            for c in nom - tol..=nom + tol {
                let s = score(c);
                if s > best_score {
                    best = c;
                    best_score = s;
                }
            }
            best
        };
        for ((o, &v), &wi) in out[k * h..k * h + w]
            .iter_mut()
            .zip(&xp[start..start + w])
            .zip(&window)
        {
            *o += v * wi;
        }
        prev = start;
    }
    out.drain(..h);
    out.truncate(out_len);
    out
}

/// Dot product: eight `f32` partial sums (vectorisable), totalled in `f64`.
fn dot(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut total: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| (x * y) as f64)
        .sum();
    for (xa, xb) in ca.zip(cb) {
        for ((s, x), y) in acc.iter_mut().zip(xa).zip(xb) {
            *s += x * y;
        }
    }
    total += acc.iter().map(|&v| v as f64).sum::<f64>();
    total
}

#[cfg(test)]
mod tests {
    use super::super::probes::*;
    use super::*;

    /// For -7, -3, 0, +4 and +7 semitones: same length, F0 at `220 * 2^(s/12)` within 15 cents,
    /// level within 2 dB, and clean (harmonic-to-noise above 30 dB: no splicing artefacts).
    #[test]
    fn pitch_shift_moves_the_f0_and_keeps_length_and_level() {
        let dry = harmonic_tone(F0, 20, 1.0, RATE);
        let level = rms_db(&dry[4000..28000]);
        for s in [-7.0, -3.0, 0.0, 4.0, 7.0] {
            let wet = pitch_shift(&dry, RATE, s);
            assert_eq!(wet.len(), dry.len());
            assert!(wet.iter().all(|x| x.is_finite()));
            let target = F0 * 2f64.powf(s / 12.0);
            let f0 = estimate_f0(&wet[4000..28000], RATE);
            let off = cents(f0, target);
            let gain = rms_db(&wet[4000..28000]) - level;
            let hnr = harmonic_to_noise_db(&wet[4000..], RATE, target);
            eprintln!(
                "pitch shift {s:+}: F0 {f0:.2} Hz ({off:+.2} cents), level {gain:+.2} dB, \
                 harmonic-to-noise {hnr:.1} dB"
            );
            assert!(off.abs() < 15.0, "{s}: {f0} Hz");
            assert!(hnr > 30.0, "{s}: {hnr} dB");
            assert!(gain.abs() < 2.0, "{s}: {gain} dB");
        }
        assert_eq!(pitch_shift(&dry, RATE, 0.0), dry);
    }

    /// The shift keeps the timing: a tone starting at 0.25 s still starts there (its onset
    /// within 15 ms), and the signal is silent where the input is.
    #[test]
    fn pitch_shift_keeps_timing() {
        let mut dry = harmonic_tone(F0, 20, 1.0, RATE);
        let onset = RATE as usize / 4;
        dry[..onset].fill(0.0);
        for s in [-7.0, 7.0] {
            let wet = pitch_shift(&dry, RATE, s);
            let first = wet.iter().position(|x| x.abs() > 0.05).unwrap();
            let lag_ms = (first as f64 - onset as f64) * 1000.0 / RATE as f64;
            eprintln!("pitch shift {s:+}: onset moved {lag_ms:+.1} ms");
            assert!(lag_ms.abs() < 15.0, "{s}: {lag_ms} ms");
        }
    }

    /// Low and high notes too: 65.4 Hz (C2, 40 partials) and 880 Hz (A5, 8 partials) shifted
    /// by +-7 semitones land within 15 cents, level within 2 dB.
    #[test]
    fn pitch_shift_handles_low_and_high_notes() {
        for (f0, partials) in [(65.406, 40), (880.0, 8)] {
            let dry = harmonic_tone(f0, partials, 1.0, RATE);
            let level = rms_db(&dry[4000..28000]);
            for s in [-7.0, 7.0] {
                let wet = pitch_shift(&dry, RATE, s);
                let target = f0 * 2f64.powf(s / 12.0);
                let got = estimate_f0(&wet[4000..28000], RATE);
                let off = cents(got, target);
                let gain = rms_db(&wet[4000..28000]) - level;
                eprintln!("{f0} Hz shifted {s:+}: {off:+.2} cents, level {gain:+.2} dB");
                assert!(off.abs() < 15.0, "{f0} Hz {s}: {got} Hz");
                assert!(gain.abs() < 2.0, "{f0} Hz {s}: {gain} dB");
            }
        }
    }

    /// Random shifts: whole semitones in -7..=7, all 15 reached, deterministic for a seed,
    /// output the length of the input.
    #[test]
    fn random_pitch_shift_draws_whole_semitones_within_seven() {
        let mut seen = std::collections::BTreeSet::new();
        let mut rng = SplitMix64::new(5);
        for _ in 0..300 {
            let s = random_semitones(&mut rng);
            assert_eq!(s.fract(), 0.0);
            assert!((-7.0..=7.0).contains(&s));
            seen.insert(s as i32);
        }
        assert_eq!(seen.len(), 15, "{seen:?}");
        let dry = harmonic_tone(F0, 5, 0.05, RATE);
        for seed in 0..6 {
            let (wet, s) = random_pitch_shift(&dry, RATE, &mut SplitMix64::new(seed));
            assert_eq!(wet.len(), dry.len());
            assert_eq!(s, random_semitones(&mut SplitMix64::new(seed)));
            let again = random_pitch_shift(&dry, RATE, &mut SplitMix64::new(seed));
            assert_eq!(again, (wet, s));
        }
    }
}
