//! Pitch: YIN on the newest samples (its difference function through an FFT), and a harmonic
//! sum that refines a rough guess.

use realfft::num_complex::Complex32;

use super::MIDDLE_C_HZ;
use crate::real_fft::{ForwardFft, InverseFft};

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
/// The octave check: YIN's dip is taken at twice its lag when the normalised difference there
/// is under this share of the dip's own.
pub const YIN_OCTAVE_RATIO: f32 = 0.1;
/// The octave check leaves a dip whose normalised difference is under this alone: a tone that
/// repeats that well at the lag is read there (a near-sine, a whistle).
pub const YIN_OCTAVE_FLOOR: f32 = 0.04;

/// Samples YIN reads per estimate: the window and the largest lag before it. Also the length of
/// its FFT: every product the cross-correlation needs stays inside one period of it, so the
/// circular correlation is the linear one (1152 = 2^7 * 9, a fast size).
const YIN_SPAN: usize = YIN_WINDOW + YIN_MAX_LAG;

/// YIN (de Cheveigné and Kawahara 2002) with its difference function computed through an FFT:
/// `d(tau) = E_new + E_old(tau) - 2 r(tau)`, the cross-correlation `r` of the newest window
/// with the samples before it from one forward transform each and one inverse, the energies
/// from running sums. The same function as summing `(x_j - x_(j-tau))^2` for every lag
/// (`YIN_MAX_LAG * YIN_WINDOW` products per estimate) within f32 rounding, at a fraction of the
/// work. Build it off the audio thread; [`estimate`](Self::estimate) and
/// [`estimate_pair`](Self::estimate_pair) are realtime-safe.
pub struct Yin {
    forward: ForwardFft,
    inverse: InverseFft,
    fft_scratch: Box<[Complex32]>,
    /// The buffers of each of two estimates made together ([`Yin::estimate_pair`]); a single
    /// estimate uses the first.
    lanes: [Lane; 2],
}

/// One estimate's buffers.
struct Lane {
    /// The newest window, zero-padded to [`YIN_SPAN`].
    window: Box<[f32]>,
    /// A copy of the span (the forward transform overwrites its input).
    span: Box<[f32]>,
    window_spectrum: Box<[Complex32]>,
    span_spectrum: Box<[Complex32]>,
    /// The cross-correlation by offset into the span.
    correlation: Box<[f32]>,
    /// The difference function by lag, then its cumulative-mean-normalised form.
    d: Box<[f32]>,
}

impl Lane {
    fn new() -> Self {
        let bins = YIN_SPAN / 2 + 1;
        Self {
            window: vec![0.0; YIN_SPAN].into_boxed_slice(),
            span: vec![0.0; YIN_SPAN].into_boxed_slice(),
            window_spectrum: vec![Complex32::default(); bins].into_boxed_slice(),
            span_spectrum: vec![Complex32::default(); bins].into_boxed_slice(),
            correlation: vec![0.0; YIN_SPAN].into_boxed_slice(),
            d: vec![0.0; YIN_MAX_LAG + 1].into_boxed_slice(),
        }
    }
}

impl Default for Yin {
    fn default() -> Self {
        Self::new()
    }
}

impl Yin {
    /// Plans the transforms and allocates the buffers. Allocates.
    pub fn new() -> Self {
        let forward = ForwardFft::new(YIN_SPAN);
        let inverse = InverseFft::new(YIN_SPAN);
        let scratch = forward.scratch_len().max(inverse.scratch_len()).max(1);
        Self {
            forward,
            inverse,
            fft_scratch: vec![Complex32::default(); scratch].into_boxed_slice(),
            lanes: [Lane::new(), Lane::new()],
        }
    }

    /// YIN on the newest `YIN_WINDOW + YIN_MAX_LAG` samples of `history` (oldest first) at
    /// `sample_rate` Hz: semitones from middle C and the aperiodicity (the normalised
    /// difference at the chosen lag, 0 = periodic), or `None` when silent or when `history` is
    /// shorter than that. Realtime-safe.
    pub fn estimate(&mut self, history: &[f32], sample_rate: f32) -> Option<(f32, f32)> {
        if !self.difference(history) {
            return None;
        }
        let [lane, _] = &mut self.lanes;
        normalise([&mut lane.d]);
        Some(pick(&lane.d, sample_rate))
    }

    /// [`estimate`](Self::estimate) of two histories, the same two answers bit for bit: their
    /// running sums (the window's energy, the older window's, the normalisation's) step side
    /// by side, each a chain of additions that would otherwise wait on its own latency.
    /// Realtime-safe.
    pub fn estimate_pair(
        &mut self,
        histories: [&[f32]; 2],
        sample_rate: f32,
    ) -> [Option<(f32, f32)>; 2] {
        let [a, b] = histories;
        let (Some(x), Some(y)) = (newest_span(a), newest_span(b)) else {
            return [self.estimate(a, sample_rate), self.estimate(b, sample_rate)];
        };
        let energy = window_energies([&x[YIN_MAX_LAG..], &y[YIN_MAX_LAG..]]);
        if !(sounds(energy[0], x) && sounds(energy[1], y)) {
            return [self.estimate(a, sample_rate), self.estimate(b, sample_rate)];
        }
        let [first, second] = &mut self.lanes;
        for (lane, span) in [(&mut *first, x), (&mut *second, y)] {
            correlate(
                lane,
                span,
                &self.forward,
                &self.inverse,
                &mut self.fft_scratch,
            );
        }
        differences(
            [x, y],
            energy,
            [&first.correlation, &second.correlation],
            [&mut first.d, &mut second.d],
        );
        normalise([&mut first.d, &mut second.d]);
        [
            Some(pick(&first.d, sample_rate)),
            Some(pick(&second.d, sample_rate)),
        ]
    }

    /// Fills the first lane's `d` with the difference function of the newest [`YIN_SPAN`]
    /// samples of `history`; `false` (and `d` unspecified) when they are silent, not finite
    /// or too few.
    fn difference(&mut self, history: &[f32]) -> bool {
        let Some(x) = newest_span(history) else {
            return false;
        };
        // The window is the newest YIN_WINDOW samples, compared with the samples tau earlier,
        // so the answer is about the newest sound (a note change shows as soon as it fills the
        // window, whatever the lag).
        let energy = window_energies([&x[YIN_MAX_LAG..]]);
        if !sounds(energy[0], x) {
            return false;
        }
        let [lane, _] = &mut self.lanes;
        correlate(lane, x, &self.forward, &self.inverse, &mut self.fft_scratch);
        differences([x], energy, [&lane.correlation], [&mut lane.d]);
        true
    }
}

/// The newest [`YIN_SPAN`] samples of `history`, `None` when it holds fewer.
fn newest_span(history: &[f32]) -> Option<&[f32]> {
    history
        .len()
        .checked_sub(YIN_SPAN)
        .map(|from| &history[from..])
}

/// Whether a span whose newest window holds `energy` is one YIN reads: not silent, every
/// sample finite.
fn sounds(energy: f64, span: &[f32]) -> bool {
    // Every sample looked at (no early exit), which the compiler does many at a time.
    let finite = span.iter().fold(true, |all, v| all & v.is_finite());
    !(energy.is_nan() || energy <= 1e-12) && finite
}

/// Each window's energy (`sum x^2` in f64, in order), the windows side by side.
fn window_energies<const N: usize>(windows: [&[f32]; N]) -> [f64; N] {
    let mut energy = [0.0f64; N];
    for i in 0..YIN_WINDOW {
        for (e, w) in energy.iter_mut().zip(&windows) {
            *e += f64::from(w[i]).powi(2);
        }
    }
    energy
}

/// The cross-correlation of `span`'s newest window with the whole span into
/// `lane.correlation` (offset `k`: `sum_j w_j x_(j+k)`, times [`YIN_SPAN`]).
fn correlate(
    lane: &mut Lane,
    span: &[f32],
    forward: &ForwardFft,
    inverse: &InverseFft,
    scratch: &mut [Complex32],
) {
    lane.window[..YIN_WINDOW].copy_from_slice(&span[YIN_MAX_LAG..]);
    lane.window[YIN_WINDOW..].fill(0.0);
    lane.span.copy_from_slice(span);
    // The lengths are the plans' own, so the transforms cannot fail.
    forward.process(&mut lane.window, &mut lane.window_spectrum, scratch);
    forward.process(&mut lane.span, &mut lane.span_spectrum, scratch);
    // conj(W) * X: the correlation sum_j w_j x_(j+k) at offset k.
    for (s, w) in lane
        .span_spectrum
        .iter_mut()
        .zip(lane.window_spectrum.iter())
    {
        *s *= w.conj();
    }
    // A real signal's spectrum has real DC and Nyquist bins; rounding leaves a trace.
    lane.span_spectrum[0].im = 0.0;
    lane.span_spectrum[YIN_SPAN / 2].im = 0.0;
    inverse.process(&mut lane.span_spectrum, &mut lane.correlation, scratch);
}

/// The difference function of each span (lags 0..=YIN_MAX_LAG) into its `d`, from its newest
/// window's `energy` and its `correlation`; the spans side by side.
// Lag by lag over every span in step: the loop reads four arrays at the lag and its offset.
#[allow(clippy::needless_range_loop)]
fn differences<const N: usize>(
    spans: [&[f32]; N],
    energy: [f64; N],
    correlation: [&[f32]; N],
    d: [&mut [f32]; N],
) {
    let scale = 1.0 / YIN_SPAN as f64;
    // The older window for lag tau starts at YIN_MAX_LAG - tau; its energy slides one sample
    // per lag (in f64, so the sums of large and small terms keep their precision).
    let mut older = energy;
    let mut d = d;
    for d in &mut d {
        d[0] = 0.0;
    }
    for tau in 1..=YIN_MAX_LAG {
        let start = YIN_MAX_LAG - tau;
        for k in 0..N {
            let x = spans[k];
            older[k] += f64::from(x[start]).powi(2) - f64::from(x[start + YIN_WINDOW]).powi(2);
            let r = f64::from(correlation[k][start]) * scale;
            d[k][tau] = (energy[k] + older[k].max(0.0) - 2.0 * r).max(0.0) as f32;
        }
    }
}

/// YIN's cumulative mean normalisation of each difference function (lags 0..=YIN_MAX_LAG),
/// in place; the functions side by side.
fn normalise<const N: usize>(d: [&mut [f32]; N]) {
    let mut running = [0.0f32; N];
    let mut d = d;
    for tau in 1..=YIN_MAX_LAG {
        for (d, running) in d.iter_mut().zip(&mut running) {
            let v = d[tau];
            *running += v;
            d[tau] = if *running > 0.0 {
                v * tau as f32 / *running
            } else {
                1.0
            };
        }
    }
}

/// YIN's steps after the normalised difference function `d` (lags 0..=YIN_MAX_LAG): the first
/// dip under [`YIN_THRESHOLD`] (else the lowest value), the octave check ([`octave_below`]), a
/// parabola through the dip. Returns semitones from middle C and the normalised difference
/// there.
fn pick(d: &[f32], sample_rate: f32) -> (f32, f32) {
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
    let tau = octave_below(d, tau).unwrap_or(tau);
    let m = d[tau];
    let (offset, _) = dip_vertex(d[tau - 1], m, d[(tau + 1).min(YIN_MAX_LAG)]);
    let f0 = sample_rate / (tau as f32 + offset);
    (12.0 * (f0 / MIDDLE_C_HZ).log2(), m)
}

/// The lowest normalised difference within two lags of `2 * tau` when it is under
/// [`YIN_OCTAVE_RATIO`] of `d[tau]` and `d[tau]` is over [`YIN_OCTAVE_FLOOR`]: a tone whose
/// fundamental is weak beside its second partial (a voice whose first formant lifts the second
/// partial, an oboe's upper notes) repeats almost as well at half its period, which YIN's first
/// dip under the threshold takes, and much better at the period. At half the period the
/// normalised difference is about twice the odd partials' share of the energy, so YIN takes
/// that dip when the share is under 7.5 % and the check moves it when the share is over 2 %
/// (the floor); a tone that repeats at the lag within the floor (a near-sine, a whistle) is
/// left alone. `None` when the check does not move the dip or `2 * tau` is past
/// [`YIN_MAX_LAG`].
fn octave_below(d: &[f32], tau: usize) -> Option<usize> {
    let here = dip_floor(d, tau);
    if here <= YIN_OCTAVE_FLOOR || 2 * tau + 3 > YIN_MAX_LAG {
        return None;
    }
    let double = (2 * tau - 2..=2 * tau + 2).min_by(|&a, &b| d[a].total_cmp(&d[b]))?;
    (dip_floor(d, double) < YIN_OCTAVE_RATIO * here).then_some(double)
}

/// The lowest value of the parabola through `d` at `tau - 1`, `tau` and `tau + 1` (at least
/// 0): a dip's depth between whole lags, which the period's fraction of a sample otherwise
/// hides (at 880 Hz, 0.36 of a sample lifts the true period's difference to a tenth of the half
/// period's).
fn dip_floor(d: &[f32], tau: usize) -> f32 {
    dip_vertex(d[tau - 1], d[tau], d[tau + 1]).1.max(0.0)
}

/// The vertex of the parabola through `(-1, l)`, `(0, m)` and `(1, r)`: its offset (clamped to
/// half a lag either side) and its value; offset 0 and value `m` where the parabola does not
/// open upwards.
fn dip_vertex(l: f32, m: f32, r: f32) -> (f32, f32) {
    let denom = l - 2.0 * m + r;
    if denom > 0.0 {
        let offset = (0.5 * (l - r) / denom).clamp(-0.5, 0.5);
        (offset, m - 0.25 * (l - r) * offset)
    } else {
        (0.0, m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StftConfig;
    use crate::exemplar::test_signal::{semitones, tone, SR};
    use crate::stft::Stft;

    /// The textbook difference function: every lag's sum of squared differences, in f64.
    fn direct_difference(x: &[f32]) -> Vec<f64> {
        let x = &x[x.len() - YIN_SPAN..];
        let newest = &x[YIN_MAX_LAG..];
        (0..=YIN_MAX_LAG)
            .map(|tau| {
                let older = &x[YIN_MAX_LAG - tau..YIN_MAX_LAG - tau + YIN_WINDOW];
                newest
                    .iter()
                    .zip(older)
                    .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
                    .sum()
            })
            .collect()
    }

    /// A reproducible mix of a vibrato tone, a second voice and white noise.
    fn busy_signal(seed: u32, len: usize) -> Vec<f32> {
        let mut rng = crate::test_rng::XorShift::new(seed.wrapping_mul(2_654_435_761).max(1));
        (0..len)
            .map(|n| {
                let noise = rng.next_centred();
                let t = n as f32 / SR;
                let f0 = 180.0 + 40.0 * seed as f32;
                let phase = std::f32::consts::TAU * f0 * (t + 0.002 * (5.0 * t).sin());
                0.5 * phase.sin() + 0.2 * (1.7 * phase).sin() + 0.1 * noise
            })
            .collect()
    }

    /// Spans YIN reads: tones low and high, noisy mixtures, and a span whose older part is
    /// 60 dB louder than its window.
    fn sounding_spans() -> Vec<Vec<f32>> {
        let mut step = tone(220.0, 8, YIN_SPAN);
        for v in &mut step[..YIN_MAX_LAG] {
            *v *= 1000.0;
        }
        vec![
            tone(97.0, 12, YIN_SPAN),
            tone(1234.5, 4, YIN_SPAN + 77),
            busy_signal(1, YIN_SPAN),
            busy_signal(4, YIN_SPAN + 300),
            step,
        ]
    }

    /// The FFT difference function is the direct one: within 1e-5 of the two windows' energy
    /// at every lag, on tones, noisy mixtures and a span whose older part is 60 dB louder than
    /// the window.
    #[test]
    fn the_fft_difference_function_is_the_direct_sum() {
        let mut yin = Yin::new();
        let signals = sounding_spans();
        for (i, x) in signals.iter().enumerate() {
            assert!(yin.difference(x), "signal {i} is sound");
            let d = &yin.lanes[0].d;
            let direct = direct_difference(x);
            let span = &x[x.len() - YIN_SPAN..];
            let energy = |from: usize| -> f64 {
                span[from..from + YIN_WINDOW]
                    .iter()
                    .map(|v| f64::from(*v).powi(2))
                    .sum()
            };
            for (tau, want) in direct.iter().enumerate().skip(1) {
                let got = f64::from(d[tau]);
                // The terms' scale: both windows' energies.
                let scale = energy(YIN_MAX_LAG) + energy(YIN_MAX_LAG - tau);
                assert!(
                    (got - want).abs() <= 1e-5 * scale,
                    "signal {i}, lag {tau}: {got} against {want} (energies {scale})"
                );
            }
        }
    }

    /// Two estimates made together are each one made alone, bit for bit: tones, noisy
    /// mixtures, a quiet and a loud span side by side, and pairs where one side is silent, too
    /// short or not finite (that side answers nothing, the other as alone).
    #[test]
    fn a_pair_of_estimates_is_each_estimate_alone() {
        let mut broken = tone(330.0, 6, YIN_SPAN);
        broken[900] = f32::INFINITY;
        let quiet: Vec<f32> = busy_signal(2, YIN_SPAN + 50)
            .iter()
            .map(|v| v * 1e-3)
            .collect();
        let mut signals = sounding_spans();
        signals.extend([quiet, broken, vec![0.0; YIN_SPAN], tone(440.0, 3, 200)]);
        let mut together = Yin::new();
        let mut alone = Yin::new();
        let mut both_sound = 0;
        for a in &signals {
            for b in &signals {
                let got = together.estimate_pair([a, b], SR);
                let want = [alone.estimate(a, SR), alone.estimate(b, SR)];
                let bits = |e: [Option<(f32, f32)>; 2]| {
                    e.map(|e| e.map(|(p, m)| (p.to_bits(), m.to_bits())))
                };
                assert_eq!(bits(got), bits(want));
                both_sound += usize::from(want.iter().all(Option::is_some));
            }
        }
        assert_eq!(both_sound, 36, "six of the signals sound");
    }

    #[test]
    fn yin_finds_the_fundamental_of_harmonic_tones() {
        let mut yin = Yin::new();
        for f0 in [55.0f32, 97.0, 220.0, 440.0, 1234.5] {
            let x = tone(f0, 12, YIN_WINDOW + YIN_MAX_LAG);
            let (p, aperiodicity) = yin.estimate(&x, SR).expect("a tone is not silence");
            let cents = 100.0 * (p - semitones(f0));
            assert!(cents.abs() < 5.0, "{f0} Hz: {cents} cents off");
            assert!(aperiodicity < 0.05, "{f0} Hz: aperiodicity {aperiodicity}");
        }
        let silence = vec![0.0; YIN_WINDOW + YIN_MAX_LAG];
        assert!(yin.estimate(&silence, SR).is_none());
        // Too short a history answers nothing rather than reading past it.
        let x = tone(220.0, 8, YIN_WINDOW + YIN_MAX_LAG);
        assert!(yin.estimate(&x[..100], SR).is_none());
        // Non-finite samples answer nothing.
        let mut broken = x.clone();
        broken[700] = f32::NAN;
        assert!(yin.estimate(&broken, SR).is_none());
    }

    /// A tone whose fundamental is weak beside its second partial (odd partials 3.8 % of the
    /// energy, the fundamental 14 dB under the second partial), as a voice whose first formant
    /// sits on the second partial sings: it repeats within YIN's threshold at half its period,
    /// and the octave check reads its fundamental. A sine, which repeats perfectly at every
    /// multiple of its period, is still read at its own.
    #[test]
    fn the_octave_check_reads_a_weak_fundamental() {
        let amplitudes = [0.2f32, 1.0, 0.1, 0.5, 0.05, 0.3];
        let odd: f32 = amplitudes.iter().step_by(2).map(|a| a * a).sum();
        let all: f32 = amplitudes.iter().map(|a| a * a).sum();
        assert!(
            (0.02..0.075).contains(&(odd / all)),
            "odd share {}",
            odd / all
        );
        let mut yin = Yin::new();
        for f0 in [110.0f32, 262.0, 523.0, 880.0] {
            let x: Vec<f32> = (0..YIN_SPAN)
                .map(|n| {
                    let t = n as f32 / SR;
                    let partials = amplitudes.iter().enumerate();
                    0.1 * partials
                        .map(|(i, a)| a * (std::f32::consts::TAU * (i + 1) as f32 * f0 * t).sin())
                        .sum::<f32>()
                })
                .collect();
            let (p, _) = yin.estimate(&x, SR).expect("a tone is not silence");
            // Without the check, YIN's first dip under the threshold is half the period.
            let half = (SR / f0 / 2.0).round() as usize;
            let dip = (half - 1..=half + 1)
                .map(|t| yin.lanes[0].d[t])
                .fold(f32::MAX, f32::min);
            assert!(dip < YIN_THRESHOLD, "{f0} Hz: {dip} at half the period");
            let cents = 100.0 * (p - semitones(f0));
            assert!(cents.abs() < 5.0, "{f0} Hz: {cents} cents off");
        }
        for f0 in [262.0f32, 440.0, 1234.5] {
            let x = tone(f0, 1, YIN_SPAN);
            let (p, _) = yin.estimate(&x, SR).expect("a sine is not silence");
            let cents = 100.0 * (p - semitones(f0));
            assert!(cents.abs() < 5.0, "sine at {f0} Hz: {cents} cents off");
        }
    }

    #[test]
    fn yin_answers_for_the_newest_samples() {
        let mut yin = Yin::new();
        // 220 Hz, then 330 Hz for just over one window: the answer is the new note.
        let mut x = tone(220.0, 8, YIN_MAX_LAG);
        x.extend(tone(330.0, 8, YIN_WINDOW + 40));
        let (p, _) = yin.estimate(&x, SR).expect("sound");
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
