//! Log-spectral distance between a transfer's output and the oracle (the source's score
//! rendered as B): the protocol's "distance to the oracle" column, a direct measure of the
//! swap (Cífka et al. report the same quantity on their synthetic set).

use realfft::RealFftPlanner;

/// FFT size of the distance's spectra, samples (32 ms at the model rate, 32 kHz).
pub const LSD_FFT: usize = 1024;

/// Power floor of the distance's spectra, dB below the oracle's strongest bin over the voiced
/// frames: quieter bins count as the floor (so noise below it weighs nothing).
pub const LSD_FLOOR_DB: f64 = 80.0;

/// Hann-windowed power spectra (`LSD_FFT / 2 + 1` bins) of the frames centred on `f * hop`
/// for each `f` in `frames` (zeros outside the clip).
fn power_spectra(x: &[f32], frames: &[usize], hop: usize) -> Vec<Vec<f64>> {
    let n = LSD_FFT;
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
    let window: Vec<f64> = (0..n)
        .map(|i| 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / n as f64).cos())
        .collect();
    let mut buf = fft.make_input_vec();
    let mut spec = fft.make_output_vec();
    frames
        .iter()
        .map(|&f| {
            for (i, b) in buf.iter_mut().enumerate() {
                let j = (f * hop + i) as isize - (n / 2) as isize;
                let v = if j >= 0 && (j as usize) < x.len() {
                    f64::from(x[j as usize])
                } else {
                    0.0
                };
                *b = v * window[i];
            }
            fft.process(&mut buf, &mut spec)
                .expect("buffer sizes from the plan");
            spec.iter().map(|c| c.norm_sqr()).collect()
        })
        .collect()
}

/// Log-spectral distance in dB between `output` and `oracle` over the frames `voiced` marks
/// (frame `f` centred on sample `f * hop`): the output is scaled to the oracle's energy over
/// those frames (level-matched), both power spectra are floored [`LSD_FLOOR_DB`] below the
/// oracle's strongest bin, and the distance is the mean over frames of the RMS over bins of
/// the dB difference. `None` when no frame is voiced or either signal is silent there.
pub fn log_spectral_distance(
    output: &[f32],
    oracle: &[f32],
    voiced: &[bool],
    hop: usize,
) -> Option<f64> {
    let frames: Vec<usize> = voiced
        .iter()
        .enumerate()
        .filter_map(|(f, v)| v.then_some(f))
        .collect();
    if frames.is_empty() {
        return None;
    }
    let out = power_spectra(output, &frames, hop);
    let ora = power_spectra(oracle, &frames, hop);
    let energy = |s: &[Vec<f64>]| s.iter().flatten().sum::<f64>();
    let (eo, er) = (energy(&out), energy(&ora));
    if !(eo > 0.0 && er > 0.0) {
        return None;
    }
    let gain = er / eo;
    let peak = ora.iter().flatten().copied().fold(0.0f64, f64::max);
    let floor = peak * 10f64.powf(-LSD_FLOOR_DB / 10.0);
    let db = |p: f64| 10.0 * p.max(floor).log10();
    let total: f64 = out
        .iter()
        .zip(&ora)
        .map(|(o, r)| {
            let ms = o
                .iter()
                .zip(r)
                .map(|(a, b)| (db(a * gain) - db(*b)).powi(2))
                .sum::<f64>()
                / o.len() as f64;
            ms.sqrt()
        })
        .sum();
    Some(total / frames.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn a_scaled_copy_is_at_distance_zero() {
        let mut rng = SplitMix64::new(1);
        let x: Vec<f32> = (0..16_000).map(|_| rng.next_f32() - 0.5).collect();
        let y: Vec<f32> = x.iter().map(|v| v * 0.01).collect();
        let voiced = vec![true; 16_000 / 160 + 1];
        let d = log_spectral_distance(&y, &x, &voiced, 160).unwrap();
        // Only the f32 rounding of the scaled copy separates them.
        assert!(d < 1e-4, "{d}");
        assert_eq!(log_spectral_distance(&y, &x, &[false; 101], 160), None);
        assert_eq!(
            log_spectral_distance(&vec![0.0; 16_000], &x, &voiced, 160),
            None
        );
    }

    /// Against a direct evaluation: a naive DFT, the same window, gain, floor and averaging.
    #[test]
    fn matches_a_naive_dft() {
        let (n, hop) = (LSD_FFT, 256usize);
        let mut rng = SplitMix64::new(2);
        let x: Vec<f32> = (0..4096)
            .map(|i| (i as f32 * 0.05).sin() + 0.1 * (rng.next_f32() - 0.5))
            .collect();
        let y: Vec<f32> = (0..4096)
            .map(|i| 0.5 * (i as f32 * 0.11).sin() + 0.2 * (rng.next_f32() - 0.5))
            .collect();
        let voiced: Vec<bool> = (0..=4096 / hop).map(|f| f % 3 != 1).collect();
        let naive = |s: &[f32], f: usize| -> Vec<f64> {
            (0..=n / 2)
                .map(|k| {
                    let (mut re, mut im) = (0.0f64, 0.0f64);
                    for i in 0..n {
                        let j = (f * hop + i) as isize - (n / 2) as isize;
                        let v = if j >= 0 && (j as usize) < s.len() {
                            s[j as usize] as f64
                        } else {
                            0.0
                        };
                        let w = 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / n as f64).cos();
                        let a = -std::f64::consts::TAU * (k * i) as f64 / n as f64;
                        re += v * w * a.cos();
                        im += v * w * a.sin();
                    }
                    re * re + im * im
                })
                .collect()
        };
        let frames: Vec<usize> = (0..voiced.len()).filter(|&f| voiced[f]).collect();
        let so: Vec<Vec<f64>> = frames.iter().map(|&f| naive(&y, f)).collect();
        let sr: Vec<Vec<f64>> = frames.iter().map(|&f| naive(&x, f)).collect();
        let gain = sr.iter().flatten().sum::<f64>() / so.iter().flatten().sum::<f64>();
        let floor = sr.iter().flatten().copied().fold(0.0, f64::max) * 1e-8;
        let expected = so
            .iter()
            .zip(&sr)
            .map(|(o, r)| {
                (o.iter()
                    .zip(r)
                    .map(|(a, b)| {
                        (10.0 * (a * gain).max(floor).log10() - 10.0 * b.max(floor).log10()).powi(2)
                    })
                    .sum::<f64>()
                    / o.len() as f64)
                    .sqrt()
            })
            .sum::<f64>()
            / frames.len() as f64;
        let got = log_spectral_distance(&y, &x, &voiced, hop).unwrap();
        assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
        assert!(got > 3.0, "different signals are far apart: {got}");
    }
}
