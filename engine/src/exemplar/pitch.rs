//! Pitch: YIN on the newest samples, and a harmonic sum that refines a rough guess.

use super::{LANES, MIDDLE_C_HZ};

/// Half-width of the search around the pitch ruler's estimate, in cents.
pub const REFINE_RANGE_CENTS: f32 = 150.0;
/// Step of that search, in cents (refined by a parabola through the best step).
pub const REFINE_STEP_CENTS: f32 = 5.0;
/// Highest partial frequency the refinement sums, in Hz.
pub const REFINE_MAX_HZ: f32 = 8_000.0;
/// Most partials the refinement sums.
pub const REFINE_MAX_PARTIALS: usize = 40;

/// The pitch near `guess` (semitones from middle C) whose partials collect the most of the
/// magnitude spectrum `mag` (linear, bins `bin_hz` apart): a harmonic sum over a grid of
/// [`REFINE_STEP_CENTS`] within [`REFINE_RANGE_CENTS`], refined by a parabola. Returns
/// semitones from middle C. Realtime-safe.
pub fn refine_pitch(mag: &[f32], bin_hz: f32, guess: f32) -> f32 {
    let guess = if guess.is_finite() {
        guess.clamp(-60.0, 60.0)
    } else {
        0.0
    };
    let last = mag.len().saturating_sub(1) as f32;
    let at = |pos: f32| -> f32 {
        if pos >= last || pos < 0.0 {
            return 0.0;
        }
        let i = pos as usize;
        let w = pos - i as f32;
        mag[i] + (mag[i + 1] - mag[i]) * w
    };
    let score = |semitones: f32| -> f32 {
        let f0 = MIDDLE_C_HZ * 2f32.powf(semitones / 12.0);
        let partials = ((REFINE_MAX_HZ / f0) as usize).clamp(1, REFINE_MAX_PARTIALS);
        (1..=partials).map(|h| at(h as f32 * f0 / bin_hz)).sum()
    };
    let steps = (REFINE_RANGE_CENTS / REFINE_STEP_CENTS) as i32;
    let step = REFINE_STEP_CENTS / 100.0;
    let (mut best, mut best_score) = (0i32, f32::NEG_INFINITY);
    for i in -steps..=steps {
        let s = score(guess + i as f32 * step);
        if s > best_score {
            best_score = s;
            best = i;
        }
    }
    let centre = guess + best as f32 * step;
    let (l, r) = (score(centre - step), score(centre + step));
    let denom = l - 2.0 * best_score + r;
    let offset = if denom < 0.0 {
        (0.5 * (l - r) / denom).clamp(-0.5, 0.5)
    } else {
        0.0
    };
    centre + offset * step
}

/// `sum (a_i - b_i)^2` over the shorter of the two, in eight independent sums (so the
/// compiler can use vector registers; a single running sum would be one long dependency chain).
/// Realtime-safe.
fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            let e = x[l] - y[l];
            lanes[l] += e * e;
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| (x - y) * (x - y)).sum();
    lanes.iter().sum::<f32>() + tail
}

/// Largest lag YIN searches, in samples at the model rate (50 Hz at 32 kHz).
pub const YIN_MAX_LAG: usize = 640;
/// Smallest lag, in samples (2 kHz at 32 kHz).
pub const YIN_MIN_LAG: usize = 16;
/// Samples summed per lag.
pub const YIN_WINDOW: usize = 512;
/// Above this aperiodicity YIN's answer is not used (the pitch ruler's is).
pub const YIN_TRUST: f32 = 0.3;
/// YIN's absolute threshold on the cumulative-mean-normalised difference.
pub const YIN_THRESHOLD: f32 = 0.15;

/// YIN (de Cheveigné and Kawahara 2002) on the newest `YIN_WINDOW + YIN_MAX_LAG` samples of
/// `history` (oldest first) at `sample_rate` Hz: semitones from middle C and the aperiodicity
/// (the normalised difference at the chosen lag, 0 = periodic), or `None` when silent.
/// `scratch` holds at least `YIN_MAX_LAG + 1` values. Realtime-safe.
pub fn yin(history: &[f32], sample_rate: f32, scratch: &mut [f32]) -> Option<(f32, f32)> {
    let need = YIN_WINDOW + YIN_MAX_LAG;
    if history.len() < need || scratch.len() <= YIN_MAX_LAG {
        return None;
    }
    let x = &history[history.len() - need..];
    let d = &mut scratch[..=YIN_MAX_LAG];
    d[0] = 0.0;
    // The window is the newest YIN_WINDOW samples, compared with the samples tau earlier, so
    // the answer is about the newest sound (a note change shows as soon as it fills the
    // window, whatever the lag).
    let newest = &x[YIN_MAX_LAG..];
    let mut energy = 0.0f32;
    for v in newest {
        energy += v * v;
    }
    if energy.is_nan() || energy <= 1e-12 {
        return None;
    }
    for tau in 1..=YIN_MAX_LAG {
        let older = &x[YIN_MAX_LAG - tau..YIN_MAX_LAG - tau + YIN_WINDOW];
        d[tau] = squared_distance(newest, older);
    }
    // Cumulative mean normalisation, in place.
    let mut running = 0.0f32;
    for (tau, v) in d.iter_mut().enumerate().skip(1) {
        running += *v;
        *v = if running > 0.0 {
            *v * tau as f32 / running
        } else {
            1.0
        };
    }
    let mut chosen = None;
    let mut tau = YIN_MIN_LAG;
    while tau < YIN_MAX_LAG {
        if d[tau] < YIN_THRESHOLD {
            while tau + 1 < YIN_MAX_LAG && d[tau + 1] < d[tau] {
                tau += 1;
            }
            chosen = Some(tau);
            break;
        }
        tau += 1;
    }
    let tau = chosen.unwrap_or_else(|| {
        (YIN_MIN_LAG..YIN_MAX_LAG)
            .min_by(|&a, &b| d[a].total_cmp(&d[b]))
            .unwrap_or(YIN_MIN_LAG)
    });
    let (l, m, r) = (d[tau - 1], d[tau], d[(tau + 1).min(YIN_MAX_LAG)]);
    let denom = l - 2.0 * m + r;
    let offset = if denom > 0.0 {
        (0.5 * (l - r) / denom).clamp(-0.5, 0.5)
    } else {
        0.0
    };
    let f0 = sample_rate / (tau as f32 + offset);
    Some((12.0 * (f0 / MIDDLE_C_HZ).log2(), m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StftConfig;
    use crate::exemplar::test_signal::{semitones, tone, SR};
    use crate::stft::Stft;
    use realfft::num_complex::Complex32;

    #[test]
    fn yin_finds_the_fundamental_of_harmonic_tones() {
        let mut scratch = vec![0.0; YIN_MAX_LAG + 1];
        for f0 in [55.0f32, 97.0, 220.0, 440.0, 1234.5] {
            let x = tone(f0, 12, YIN_WINDOW + YIN_MAX_LAG);
            let (p, aperiodicity) = yin(&x, SR, &mut scratch).expect("a tone is not silence");
            let cents = 100.0 * (p - semitones(f0));
            assert!(cents.abs() < 5.0, "{f0} Hz: {cents} cents off");
            assert!(aperiodicity < 0.05, "{f0} Hz: aperiodicity {aperiodicity}");
        }
        let silence = vec![0.0; YIN_WINDOW + YIN_MAX_LAG];
        assert!(yin(&silence, SR, &mut scratch).is_none());
        // Too short a history answers nothing rather than reading past it.
        assert!(yin(&silence[..100], SR, &mut scratch).is_none());
    }

    #[test]
    fn yin_answers_for_the_newest_samples() {
        let mut scratch = vec![0.0; YIN_MAX_LAG + 1];
        // 220 Hz, then 330 Hz for just over one window: the answer is the new note.
        let mut x = tone(220.0, 8, YIN_MAX_LAG);
        x.extend(tone(330.0, 8, YIN_WINDOW + 40));
        let (p, _) = yin(&x, SR, &mut scratch).expect("sound");
        let cents = 100.0 * (p - semitones(330.0));
        assert!(cents.abs() < 10.0, "{cents} cents from 330 Hz");
    }

    #[test]
    fn the_harmonic_sum_refines_a_rough_pitch() {
        let cfg = StftConfig::default();
        let mut stft = Stft::new(&cfg);
        let mut spectrum = vec![Complex32::default(); cfg.n_bins()];
        let bin_hz = cfg.sample_rate as f32 / cfg.n_fft as f32;
        for f0 in [330.0f32, 523.0, 880.0] {
            let x = tone(f0, 10, cfg.n_fft);
            stft.analyse(&x, &mut spectrum);
            let mag: Vec<f32> = spectrum.iter().map(|c| c.norm()).collect();
            let truth = semitones(f0);
            for rough in [truth - 0.8, truth + 0.6] {
                let p = refine_pitch(&mag, bin_hz, rough);
                let cents = 100.0 * (p - truth);
                assert!(
                    cents.abs() < 10.0,
                    "{f0} Hz from {rough}: {cents} cents off"
                );
            }
        }
    }
}
