//! Test signals and measurements for the perturbation tests, written independently of the code
//! under test: a harmonic tone, a radix-2 FFT, spectral centroid, harmonic-to-noise ratio,
//! crest factor, harmonic-amplitude modulation and an F0 estimator (YIN, refined by a
//! harmonic sum).

use std::f64::consts::PI;

use super::Effect;

/// Test sample rate, Hz (the model rate).
pub const RATE: u32 = 32_000;
/// Test fundamental, Hz.
pub const F0: f64 = 220.0;

/// `partials` harmonics of `f0` with amplitudes `1/k` and sine phase (a band-limited
/// sawtooth), `seconds` long, scaled to a peak of 0.5.
pub fn harmonic_tone(f0: f64, partials: usize, seconds: f64, rate: u32) -> Vec<f32> {
    let n = (seconds * rate as f64).round() as usize;
    let raw: Vec<f64> = (0..n)
        .map(|i| {
            let t = i as f64 / rate as f64;
            (1..=partials)
                .map(|k| (2.0 * PI * k as f64 * f0 * t).sin() / k as f64)
                .sum()
        })
        .collect();
    let peak = raw.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    raw.iter().map(|x| (0.5 * x / peak) as f32).collect()
}

/// Cents from `reference` to `f`.
pub fn cents(f: f64, reference: f64) -> f64 {
    1200.0 * (f / reference).log2()
}

/// RMS level, dB re 1.
pub fn rms_db(x: &[f32]) -> f64 {
    let p = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / x.len().max(1) as f64;
    10.0 * p.max(1e-30).log10()
}

/// Peak over RMS (linear).
pub fn crest_factor(x: &[f32]) -> f64 {
    let peak = x.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
    peak / 10f64.powf(rms_db(x) / 20.0)
}

/// In-place iterative radix-2 FFT of `(re, im)`; the length must be a power of two.
fn fft(re: &mut [f64], im: &mut [f64]) {
    let n = re.len();
    assert!(n.is_power_of_two());
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let step = -2.0 * PI / len as f64;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (s, c) = (step * k as f64).sin_cos();
                let (a, b) = (start + k, start + k + len / 2);
                let tr = re[b] * c - im[b] * s;
                let ti = re[b] * s + im[b] * c;
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
        len <<= 1;
    }
}

/// Power spectrum (bins 0..=n/2) of the Hann-windowed first `n` samples (`n` a power of two).
pub fn power_spectrum(x: &[f32], n: usize) -> Vec<f64> {
    let mut re: Vec<f64> = (0..n)
        .map(|i| x[i] as f64 * (0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos()))
        .collect();
    let mut im = vec![0.0; n];
    fft(&mut re, &mut im);
    (0..=n / 2).map(|k| re[k] * re[k] + im[k] * im[k]).collect()
}

/// Amplitude-weighted spectral centroid of the first 16384 samples, Hz.
pub fn spectral_centroid(x: &[f32], rate: u32) -> f64 {
    let n = 16_384;
    let p = power_spectrum(x, n);
    let (mut num, mut den) = (0.0, 0.0);
    for (k, &pk) in p.iter().enumerate() {
        let a = pk.sqrt();
        num += a * k as f64 * rate as f64 / n as f64;
        den += a;
    }
    num / den.max(1e-30)
}

/// Power within +-4 bins of the harmonics of `f0` over the power elsewhere above `f0 / 2`,
/// dB, on the first 16384 samples.
pub fn harmonic_to_noise_db(x: &[f32], rate: u32, f0: f64) -> f64 {
    let n = 16_384;
    let p = power_spectrum(x, n);
    let bin_hz = rate as f64 / n as f64;
    let (mut harmonic, mut noise) = (0.0, 0.0);
    for (k, &pk) in p.iter().enumerate() {
        let f = k as f64 * bin_hz;
        if f < f0 / 2.0 {
            continue;
        }
        let nearest = (f / f0).round() * f0;
        if (f - nearest).abs() <= 4.0 * bin_hz {
            harmonic += pk;
        } else {
            noise += pk;
        }
    }
    10.0 * (harmonic / noise.max(1e-30)).log10()
}

/// Amplitude of frequency `f` in `x` (Hann-windowed single-bin DFT).
fn tone_amplitude(x: &[f32], rate: u32, f: f64) -> f64 {
    let n = x.len();
    let (mut re, mut im) = (0.0, 0.0);
    for (i, &v) in x.iter().enumerate() {
        let w = 0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos();
        let phase = 2.0 * PI * f * i as f64 / rate as f64;
        re += w * v as f64 * phase.cos();
        im -= w * v as f64 * phase.sin();
    }
    (re * re + im * im).sqrt() * 4.0 / n as f64
}

/// Amplitudes of harmonics `1..=count` of `f0`, over frames of 1024 samples with a hop of 512:
/// `result[frame][harmonic - 1]`.
pub fn harmonic_tracks(x: &[f32], rate: u32, f0: f64, count: usize) -> Vec<Vec<f64>> {
    let (len, hop) = (1024, 512);
    (0..=(x.len().saturating_sub(len)) / hop)
        .map(|f| {
            let frame = &x[f * hop..f * hop + len];
            (1..=count)
                .map(|k| tone_amplitude(frame, rate, k as f64 * f0))
                .collect()
        })
        .collect()
}

/// Temporal modulation of the harmonic amplitudes: the coefficient of variation over frames
/// (standard deviation over mean) of each of the first 10 harmonics, averaged.
pub fn harmonic_modulation(x: &[f32], rate: u32, f0: f64) -> f64 {
    let tracks = harmonic_tracks(x, rate, f0, 10);
    let frames = tracks.len() as f64;
    let mut sum = 0.0;
    for h in 0..10 {
        let mean = tracks.iter().map(|t| t[h]).sum::<f64>() / frames;
        let var = tracks.iter().map(|t| (t[h] - mean).powi(2)).sum::<f64>() / frames;
        sum += var.sqrt() / mean.max(1e-12);
    }
    sum / 10.0
}

/// YIN F0 estimate of one frame (`x` holds the frame plus the largest lag), Hz.
fn yin_frame(x: &[f32], window: usize, min_lag: usize, max_lag: usize, rate: u32) -> f64 {
    let d: Vec<f64> = (0..=max_lag)
        .map(|tau| {
            (0..window)
                .map(|j| (x[j] as f64 - x[j + tau] as f64).powi(2))
                .sum()
        })
        .collect();
    // Cumulative mean normalised difference.
    let mut cmnd = vec![1.0; max_lag + 1];
    let mut running = 0.0;
    for tau in 1..=max_lag {
        running += d[tau];
        cmnd[tau] = d[tau] * tau as f64 / running.max(1e-30);
    }
    let threshold = 0.15;
    let mut tau = (min_lag..max_lag)
        .find(|&t| cmnd[t] < threshold)
        .unwrap_or_else(|| {
            (min_lag..max_lag)
                .min_by(|&a, &b| cmnd[a].total_cmp(&cmnd[b]))
                .unwrap()
        });
    while tau + 1 < max_lag && cmnd[tau + 1] < cmnd[tau] {
        tau += 1;
    }
    // Parabolic interpolation of the difference function around the minimum.
    let (a, b, c) = (d[tau - 1], d[tau], d[tau + 1]);
    let denom = a - 2.0 * b + c;
    let shift = if denom.abs() > 1e-30 {
        (0.5 * (a - c) / denom).clamp(-1.0, 1.0)
    } else {
        0.0
    };
    rate as f64 / (tau as f64 + shift)
}

/// Summed amplitudes of harmonics `1..=5` of `f` in the Hann-windowed `x` (a phasor recurrence
/// instead of a sine per sample).
fn harmonic_sum(x: &[f32], rate: u32, f: f64) -> f64 {
    let n = x.len();
    (1..=5)
        .map(|k| {
            let step = -2.0 * PI * k as f64 * f / rate as f64;
            let (ds, dc) = step.sin_cos();
            let (mut c, mut s) = (1.0f64, 0.0f64);
            let (mut re, mut im) = (0.0, 0.0);
            for (i, &v) in x.iter().enumerate() {
                let w = 0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos();
                re += w * v as f64 * c;
                im += w * v as f64 * s;
                (c, s) = (c * dc - s * ds, c * ds + s * dc);
            }
            (re * re + im * im).sqrt()
        })
        .sum()
}

/// F0 of a steady periodic signal, Hz (40-2000 Hz). A YIN estimate (the median over frames of
/// 1024 samples, every 2048) picks the period; it is then refined on the whole of `x` to the
/// frequency, within 60 cents of it, that maximises the summed amplitude of the first five
/// harmonics (2-cent grid, parabolic interpolation). The refinement keeps sample-and-hold
/// staircases, whose difference function ripples with the hold length, from biasing YIN's
/// lag.
pub fn estimate_f0(x: &[f32], rate: u32) -> f64 {
    let window = 1024;
    let min_lag = (rate / 2000) as usize;
    let max_lag = (rate / 40) as usize;
    let mut estimates: Vec<f64> = (0..)
        .map(|f| f * 2048)
        .take_while(|&s| s + window + max_lag < x.len())
        .map(|s| yin_frame(&x[s..], window, min_lag, max_lag, rate))
        .collect();
    assert!(!estimates.is_empty(), "signal too short for an F0 estimate");
    estimates.sort_by(f64::total_cmp);
    let coarse = estimates[estimates.len() / 2];
    let at = |c: f64| coarse * 2f64.powf(c / 1200.0);
    let grid: Vec<f64> = (-30..=30).map(|i| 2.0 * i as f64).collect();
    let scores: Vec<f64> = grid.iter().map(|&c| harmonic_sum(x, rate, at(c))).collect();
    let best = (0..grid.len())
        .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
        .unwrap();
    if best == 0 || best == grid.len() - 1 {
        return at(grid[best]);
    }
    let (a, b, c) = (scores[best - 1], scores[best], scores[best + 1]);
    let denom = a - 2.0 * b + c;
    let shift = if denom.abs() > 1e-30 {
        (0.5 * (a - c) / denom).clamp(-1.0, 1.0)
    } else {
        0.0
    };
    at(grid[best] + 2.0 * shift)
}

/// The probes measure what they claim on known signals.
#[test]
fn probes_measure_known_signals() {
    let tone = harmonic_tone(F0, 20, 1.0, RATE);
    let f0 = estimate_f0(&tone, RATE);
    assert!(cents(f0, F0).abs() < 1.0, "{f0}");
    let sine = harmonic_tone(330.0, 1, 1.0, RATE);
    assert!(cents(estimate_f0(&sine, RATE), 330.0).abs() < 1.0);
    assert!((crest_factor(&sine) - 2f64.sqrt()).abs() < 0.01);
    // A pure tone's centroid is its frequency.
    assert!((spectral_centroid(&harmonic_tone(1000.0, 1, 1.0, RATE), RATE) - 1000.0).abs() < 5.0);
    assert!(harmonic_to_noise_db(&tone, RATE, F0) > 40.0);
    assert!(harmonic_modulation(&tone, RATE, F0) < 0.01);
}

/// `x` with `effect` applied at [`RATE`] (a copy; `x` is kept as the dry reference).
pub fn apply(effect: &Effect, x: &[f32]) -> Vec<f32> {
    let mut y = x.to_vec();
    effect.apply(&mut y, RATE);
    y
}
