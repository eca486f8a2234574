//! The fine fundamental frequency of one frame near a known note: what a pitch latent has to
//! hold, to the cent, to put the partials back where they were. The eval's "sounding F0 only"
//! row ([`crate::eval::SoundingF0`]) scores a latent that holds this and nothing else.
//!
//! Method: the normalised cross-correlation of a window around the frame centre with its copy
//! `τ` samples later, maximised over lags within [`SEARCH_SEMITONES`] of a whole number of
//! nominal periods, then again over quarter-sample lags on the signal upsampled by
//! [`UPSAMPLE`] and refined by a parabola through the best lag and its two neighbours. Short periods
//! are measured over several periods at once (a lag of about [`MIN_LAG`] samples), so the
//! parabola's sub-sample error costs that many times fewer cents. Knowing the note avoids
//! octave errors; the window is at least two periods long.

/// Widest deviation from the nominal note that is searched, in semitones (vibrato, a sample's
/// own tuning, and a pitch-bent note labelled with the nearest semitone all fit).
pub const SEARCH_SEMITONES: f64 = 1.0;
/// Target lag, in samples: a period shorter than this is measured over several periods.
pub const MIN_LAG: f64 = 256.0;
/// Most periods measured at once. Keeps the lag range of a whole number `m` of periods
/// (`m · P · 2^(±SEARCH_SEMITONES / 12)`) clear of `(m ± 1/2) · P`, where a tone whose second
/// partial dominates correlates too (at 4 periods they are 204 cents away, the range is 100).
pub const MAX_PERIODS: usize = 4;
/// Shortest window the correlation is summed over, in samples (16 ms at 32 kHz).
pub const MIN_WINDOW: usize = 512;

/// F0 in Hz of the frame of `samples` (at `sample_rate` Hz) centred on sample `centre`,
/// searched within [`SEARCH_SEMITONES`] of `nominal_hz`. Samples outside the clip count as
/// silence. `None` when the window or every lagged copy is silent, or `nominal_hz` is not a
/// usable frequency (not finite, not positive, or a period under 2 samples).
pub fn f0_near(samples: &[f32], sample_rate: u32, centre: usize, nominal_hz: f64) -> Option<f64> {
    let sr = sample_rate as f64;
    if !(nominal_hz.is_finite() && nominal_hz > 0.0) {
        return None;
    }
    let period = sr / nominal_hz;
    if !(2.0..=samples.len().max(2) as f64).contains(&period) {
        return None;
    }
    let periods = ((MIN_LAG / period).ceil() as usize).clamp(1, MAX_PERIODS);
    let span = 2f64.powf(SEARCH_SEMITONES / 12.0);
    let target = periods as f64 * period;
    // Lags lo..=hi are candidates; lo - 1 and hi + 1 are there for the parabola.
    let lo = ((target / span).floor() as usize).max(2);
    let hi = (target * span).ceil() as usize;
    let window = MIN_WINDOW.max(2 * period.ceil() as usize);
    // Window start so that the window and its lagged copy straddle the centre; the buffer has
    // `MARGIN` samples more on each side for the interpolation filter.
    let start = centre as isize - ((window + target as usize) / 2) as isize - MARGIN as isize;
    let len = window + hi + 2 + 2 * MARGIN;
    let mut x = vec![0.0f32; len];
    for (i, v) in x.iter_mut().enumerate() {
        let s = start + i as isize;
        if s >= 0 && (s as usize) < samples.len() {
            *v = samples[s as usize];
        }
    }
    // Whole-sample search.
    let coarse = &x[MARGIN..];
    // A lag whose copy is silent (the sound ended or has not begun) is no candidate.
    let mut best: Option<(usize, f64)> = None;
    for lag in lo..=hi {
        if let Some(r) = dissimilarity(&coarse[..window], &coarse[lag..lag + window]) {
            if best.is_none_or(|(_, b)| r < b) {
                best = Some((lag, r));
            }
        }
    }
    let (lag, _) = best?;
    // Refinement on the signal upsampled by `UPSAMPLE`, lags within a sample of `lag`.
    let fine = upsample(&x);
    let fine = &fine[UPSAMPLE * MARGIN..];
    let fine_window = UPSAMPLE * window;
    let first = UPSAMPLE * (lag - 1);
    let values: Vec<f64> = (first..=UPSAMPLE * (lag + 1))
        .map(|l| dissimilarity(&fine[..fine_window], &fine[l..l + fine_window]).unwrap_or(1.0))
        .collect();
    let i = (1..values.len() - 1)
        .min_by(|&a, &b| values[a].total_cmp(&values[b]))
        .unwrap_or(UPSAMPLE);
    let (rm, r0, rp) = (values[i - 1], values[i], values[i + 1]);
    let curvature = rm - 2.0 * r0 + rp;
    let offset = if curvature > 0.0 {
        (0.5 * (rm - rp) / curvature).clamp(-0.5, 0.5)
    } else {
        0.0
    };
    let fine_lag = (first + i) as f64 + offset;
    Some(periods as f64 * sr * UPSAMPLE as f64 / fine_lag)
}

/// Input samples either side of an output sample in [`upsample`]'s filter.
const MARGIN: usize = 16;
/// Upsampling factor of the refinement.
pub const UPSAMPLE: usize = 4;

/// `x` upsampled by [`UPSAMPLE`]: output `UPSAMPLE * i + p` is the band-limited value at
/// `i + p / UPSAMPLE` (Blackman-windowed sinc over `2 * MARGIN` input samples; outside `x`
/// counts as silence). Output `UPSAMPLE * i` is `x[i]` exactly.
fn upsample(x: &[f32]) -> Vec<f32> {
    let taps = 2 * MARGIN;
    let kernel = &*UPSAMPLE_KERNEL;
    let mut padded = vec![0.0f32; x.len() + taps];
    padded[MARGIN - 1..MARGIN - 1 + x.len()].copy_from_slice(x);
    let mut out = vec![0.0f32; x.len() * UPSAMPLE];
    for (i, chunk) in out.chunks_exact_mut(UPSAMPLE).enumerate() {
        let src = &padded[i..i + taps];
        for (o, h) in chunk.iter_mut().zip(kernel) {
            *o = src.iter().zip(h).map(|(a, b)| a * b).sum();
        }
    }
    out
}

/// [`upsample`]'s filter, built once: `UPSAMPLE_KERNEL[p][k]` weighs `x[i + k - MARGIN + 1]`
/// for output phase `p`.
static UPSAMPLE_KERNEL: std::sync::LazyLock<Vec<Vec<f32>>> = std::sync::LazyLock::new(|| {
    (0..UPSAMPLE)
        .map(|p| {
            (0..2 * MARGIN)
                .map(|k| {
                    let t = (k as f64 - (MARGIN - 1) as f64) - p as f64 / UPSAMPLE as f64;
                    let sinc = if t == 0.0 {
                        1.0
                    } else {
                        (std::f64::consts::PI * t).sin() / (std::f64::consts::PI * t)
                    };
                    // Blackman window over |t| < MARGIN.
                    let u = (t / MARGIN as f64 + 1.0) / 2.0;
                    let w = 0.42 - 0.5 * (std::f64::consts::TAU * u).cos()
                        + 0.08 * (2.0 * std::f64::consts::TAU * u).cos();
                    (sinc * w) as f32
                })
                .collect()
        })
        .collect()
});

/// `1 - ρ`, where `ρ = Σ a·b / √(Σ a² · Σ b²)` is the normalised cross-correlation of two
/// equally long slices (eight lanes); `None` when either is silent. Unlike the plain difference
/// function it does not change when one slice is louder than the other, as across an onset.
fn dissimilarity(a: &[f32], b: &[f32]) -> Option<f64> {
    let mut ab = [0.0f32; 8];
    let mut aa = [0.0f32; 8];
    let mut bb = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (xa, xb) in ca.zip(cb) {
        for i in 0..8 {
            ab[i] += xa[i] * xb[i];
            aa[i] += xa[i] * xa[i];
            bb[i] += xb[i] * xb[i];
        }
    }
    let sum = |v: &[f32; 8]| v.iter().map(|&x| x as f64).sum::<f64>();
    let (mut sab, mut saa, mut sbb) = (sum(&ab), sum(&aa), sum(&bb));
    for (&xa, &xb) in ra.iter().zip(rb) {
        let (xa, xb) = (xa as f64, xb as f64);
        sab += xa * xb;
        saa += xa * xa;
        sbb += xb * xb;
    }
    (saa > 0.0 && sbb > 0.0).then(|| 1.0 - sab / (saa * sbb).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::midi_to_hz;

    const SR: u32 = 32_000;

    fn cents(a: f64, b: f64) -> f64 {
        1200.0 * (a / b).log2()
    }

    /// Harmonic tone of instantaneous frequency `f0(t)` Hz, with harmonic `h` (1-based) at
    /// amplitude `amps[h - 1]` and phase `h * 0.7`, partials above 15 kHz left out.
    fn tone(seconds: f64, f0: impl Fn(f64) -> f64, amps: &[f32]) -> Vec<f32> {
        let n = (seconds * SR as f64) as usize;
        let mut phase = 0.0f64;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let f = f0(i as f64 / SR as f64);
            let mut v = 0.0f64;
            for (h, &a) in amps.iter().enumerate() {
                let h = (h + 1) as f64;
                if h * f < 15_000.0 {
                    v += a as f64 * (h * phase + 0.7 * h).sin();
                }
            }
            out.push(v as f32 * 0.1);
            phase += std::f64::consts::TAU * f / SR as f64;
        }
        out
    }

    #[test]
    fn a_steady_tone_reads_within_a_tenth_of_a_cent_across_the_range() {
        let bright = [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.25, 0.2];
        for note in [28.0, 40.0, 52.0, 64.0, 76.0, 88.0, 100.0, 105.0] {
            for detune in [-43.0, -7.5, 0.0, 12.3, 38.0] {
                let f = midi_to_hz(note + detune / 100.0);
                let x = tone(0.3, |_| f, &bright);
                let got = f0_near(&x, SR, x.len() / 2, midi_to_hz(note)).unwrap();
                assert!(
                    cents(got, f).abs() < 0.1,
                    "note {note} {detune:+} cents: {got} Hz against {f} Hz"
                );
            }
        }
    }

    #[test]
    fn the_reading_does_not_depend_on_the_spectrum_or_the_level() {
        // The row it feeds must carry pitch only: the same F0 with another balance of partials
        // (a timbre) reads the same to a fiftieth of a cent, and 40 dB quieter to a thousandth (the
        // f32 rounding of the scaled samples).
        for note in [40.3, 61.17, 88.3, 100.5] {
            let nominal = midi_to_hz(f64::round(note));
            let f = midi_to_hz(note);
            let a = tone(0.3, |_| f, &[1.0, 0.5, 0.33, 0.25, 0.2, 0.16, 0.14, 0.12]);
            let b = tone(0.3, |_| f, &[0.2, 1.0, 0.1, 0.7, 0.05, 0.4, 0.3]);
            let quiet: Vec<f32> = a.iter().map(|v| v * 0.01).collect();
            let read = |x: &[f32]| f0_near(x, SR, x.len() / 2, nominal).unwrap();
            let between = cents(read(&a), read(&b)).abs();
            assert!(
                between < 0.02,
                "note {note}: spectra differ by {between} cents"
            );
            let level = cents(read(&a), read(&quiet)).abs();
            assert!(level < 1e-3, "note {note}: levels differ by {level} cents");
        }
    }

    #[test]
    fn vibrato_is_followed_frame_by_frame() {
        // 40 cents of vibrato at 5 Hz around A4. The estimate is a period averaged over the
        // span the window and its lagged copy cover (`MIN_WINDOW` + 4 periods of 72.7 samples,
        // 25 ms): a plain mean over that span lies 0.95 cents inside the peaks
        // (40 · (2π · 5 Hz · 12.5 ms)² / 6), and the frequency sweep biases the minimum by a
        // few tenths of a cent more, so each frame must read within 1.2 cents of the F0 at its
        // centre, and the frames together must span the vibrato's full 80 cents to 2 %.
        let centre = midi_to_hz(69.0);
        let cents_at = |t: f64| 40.0 * (std::f64::consts::TAU * 5.0 * t).sin();
        let f0 = |t: f64| centre * 2f64.powf(cents_at(t) / 1200.0);
        let x = tone(0.6, f0, &[1.0, 0.6, 0.4, 0.3]);
        let hop = 160;
        let (mut worst, mut low, mut high) = (0.0f64, f64::MAX, f64::MIN);
        for frame in 10..(x.len() / hop - 10) {
            let t = (frame * hop) as f64 / SR as f64;
            let got = cents(f0_near(&x, SR, frame * hop, centre).unwrap(), centre);
            worst = worst.max((got - cents_at(t)).abs());
            low = low.min(got);
            high = high.max(got);
        }
        assert!(worst < 1.2, "worst error {worst} cents");
        assert!(high - low > 78.4, "swing {} cents", high - low);
    }

    #[test]
    fn silence_and_unusable_notes_read_none() {
        let x = vec![0.0f32; 4000];
        assert_eq!(f0_near(&x, SR, 2000, 440.0), None);
        let y = tone(0.1, |_| 440.0, &[1.0]);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 20_000.0] {
            assert_eq!(f0_near(&y, SR, 1600, bad), None, "{bad}");
        }
        // Far outside the clip the window holds nothing.
        assert_eq!(f0_near(&y, SR, 1_000_000, 440.0), None);
    }
}
