//! Sinusoids written straight into a frame's spectrum. A stationary sinusoid seen through the
//! analysis window has the window's transform for a spectrum, moved to the sinusoid's
//! frequency; tabulated once, it is placed at each partial (the forward form of Rodet and
//! Depalle's inverse-FFT additive synthesis). A partial then costs a few dozen bins instead of
//! an oscillator run over every sample of the frame and a transform.

use realfft::num_complex::Complex32;

/// Table points per bin of the window's transform (linear interpolation between them).
pub const KERNEL_OVERSAMPLE: usize = 64;
/// Most bins the kernel reaches on each side of a partial.
pub const MAX_KERNEL_REACH: usize = 64;
/// The kernel reaches as far as the window's transform stays above this share of its peak
/// (-80 dB), at most [`MAX_KERNEL_REACH`] bins: for a window whose transform falls below it
/// within that reach (the STFT's: 15 bins), what it leaves out is below -80 dB.
pub const KERNEL_LEAKAGE: f32 = 1e-4;

/// The transform of a real analysis window of `n` samples, tabulated for adding windowed
/// sinusoids to a spectrum of `n / 2 + 1` bins (`X[k] = sum w[t] x[t] e^(-2 pi i k t / n)`,
/// the unnormalised forward transform of [`crate::stft::Stft::analyse`]).
#[derive(Debug, Clone)]
pub struct SinusoidKernel {
    /// `W(d) = sum w[t] e^(-2 pi i d t / n)` at `d = 0, 1/KERNEL_OVERSAMPLE, ...` bins, up to
    /// `reach` bins and one point past it (`W(-d)` is its conjugate).
    table: Box<[Complex32]>,
    /// Bins the kernel reaches on each side.
    reach: usize,
}

impl SinusoidKernel {
    /// The kernel of `window` (its values over one frame). Allocates; off the audio thread.
    pub fn new(window: &[f32]) -> Self {
        let n = window.len().max(2);
        // The window zero-padded to KERNEL_OVERSAMPLE times its length: its transform samples
        // W at 1 / KERNEL_OVERSAMPLE of a bin.
        let padded_len = n * KERNEL_OVERSAMPLE;
        let fft = realfft::RealFftPlanner::<f32>::new().plan_fft_forward(padded_len);
        let mut padded = fft.make_input_vec();
        padded[..window.len()].copy_from_slice(window);
        let mut spectrum = fft.make_output_vec();
        // The lengths are the plan's own, so the transform cannot fail.
        let _ = fft.process(&mut padded, &mut spectrum);
        let peak = spectrum[0].norm();
        // The furthest bin where the transform still reaches KERNEL_LEAKAGE of its peak.
        let last_loud = spectrum
            .iter()
            .rposition(|w| w.norm() >= KERNEL_LEAKAGE * peak)
            .unwrap_or(0);
        let reach = (last_loud / KERNEL_OVERSAMPLE + 1)
            .min(MAX_KERNEL_REACH)
            .min(n / 2);
        let points = (reach * KERNEL_OVERSAMPLE + 2).min(spectrum.len());
        Self {
            table: spectrum[..points].to_vec().into_boxed_slice(),
            reach,
        }
    }

    /// Bins the kernel reaches on each side of a partial.
    pub fn reach(&self) -> usize {
        self.reach
    }

    /// Adds the windowed frame's transform of `amp * cos(2 pi bin t / n + phase)` (`t` the
    /// frame's sample, from 0; `bin` the frequency in bins) to `spectrum`: the sinusoid's
    /// positive-frequency image, and its mirror where that reaches the spectrum. A frequency
    /// outside `0..=n` bins (or anything not finite) adds nothing. Realtime-safe.
    pub fn add(&self, spectrum: &mut [Complex32], bin: f32, amp: f32, phase: f64) {
        let n = 2 * spectrum.len().saturating_sub(1);
        if !((0.0..=n as f32).contains(&bin) && amp.is_finite() && phase.is_finite()) || n == 0 {
            return;
        }
        // cos = (e^(i..) + e^(-i..)) / 2: the image at +bin with e^(i phase), the one at -bin
        // with e^(-i phase).
        let c = Complex32::new(phase.cos() as f32, phase.sin() as f32) * (0.5 * amp);
        self.place(spectrum, bin, c, 0);
        // The mirror image, centred on -bin, reaches bins 0..=reach - bin; the transform is
        // periodic over n bins, so it also stands at n - bin, reaching down to n - bin - reach
        // (a partial near the Nyquist frequency).
        let c = c.conj();
        let covered = self.place(spectrum, -bin, c, 0);
        self.place(spectrum, n as f32 - bin, c, covered);
    }

    /// Adds `c * W(k - centre)` to the bins `k` of `spectrum` from `from` on that the kernel
    /// reaches from `centre` (in bins; `W` interpolated between table points); returns the bin
    /// after the last one it could write (at least `from`).
    #[inline]
    fn place(&self, spectrum: &mut [Complex32], centre: f32, c: Complex32, from: usize) -> usize {
        let reach = self.reach as f32;
        let top = (centre + reach).floor();
        if top < 0.0 {
            return from;
        }
        let lo = ((centre - reach).ceil().max(0.0) as usize).max(from);
        let end = (top as usize + 1).min(spectrum.len());
        if lo >= end {
            return end.max(from);
        }
        // Bins below the centre read W at their distance conjugated (W(-d) = conj W(d)), the
        // ones from it on at their distance. Along each run the table position moves by
        // KERNEL_OVERSAMPLE points per bin, with the same fraction between two points.
        let (table, step) = (&self.table, KERNEL_OVERSAMPLE);
        let split = (centre.max(0.0).ceil() as usize).clamp(lo, end);
        if lo < split {
            let pos = (centre - lo as f32) * step as f32;
            let (mut i, frac) = (pos as usize, pos.fract());
            for s in &mut spectrum[lo..split] {
                // The first bins may lie just past the reach; the distance only falls.
                if i + 1 < table.len() {
                    let w = table[i] + (table[i + 1] - table[i]) * frac;
                    *s += c * w.conj();
                }
                i = i.saturating_sub(step);
            }
        }
        if split < end {
            let pos = (split as f32 - centre) * step as f32;
            let (mut i, frac) = (pos as usize, pos.fract());
            for s in &mut spectrum[split..end] {
                if i + 1 >= table.len() {
                    break;
                }
                let w = table[i] + (table[i + 1] - table[i]) * frac;
                *s += c * w;
                i += step;
            }
        }
        end.max(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spectrum of a windowed sum of cosines, summed sample by sample in f64 and
    /// transformed by a naive DFT: the reference.
    fn naive(window: &[f32], partials: &[(f32, f32, f64)]) -> Vec<(f64, f64)> {
        let n = window.len();
        let x: Vec<f64> = (0..n)
            .map(|t| {
                let s: f64 = partials
                    .iter()
                    .map(|&(bin, amp, phase)| {
                        amp as f64
                            * (std::f64::consts::TAU * bin as f64 * t as f64 / n as f64 + phase)
                                .cos()
                    })
                    .sum();
                s * window[t] as f64
            })
            .collect();
        (0..=n / 2)
            .map(|k| {
                x.iter().enumerate().fold((0.0, 0.0), |(re, im), (t, v)| {
                    let a = -std::f64::consts::TAU * (k * t) as f64 / n as f64;
                    (re + v * a.cos(), im + v * a.sin())
                })
            })
            .collect()
    }

    /// Partials anywhere (near DC, between bins, near Nyquist) come out as the naive
    /// transform of the windowed sum, within -70 dB of the largest bin, for the STFT's window
    /// and for an asymmetric one (the low-latency analysis window), whose transform is not
    /// real.
    #[test]
    fn partials_match_the_windowed_sum_of_cosines() {
        let cfg = crate::config::StftConfig::default();
        let windows = [
            crate::stft::Stft::new(&cfg).analysis.clone(),
            crate::stft::asymmetric_windows(cfg.n_fft, cfg.hop / 2).0,
        ];
        let partials = [
            (0.4f32, 0.3f32, 0.7f64),
            (3.25, 1.0, -1.2),
            (17.5, 0.5, 2.0),
            (100.0, 0.25, 0.1),
            (200.37, 0.1, 4.0),
            (255.6, 0.05, -3.0),
        ];
        for window in &windows {
            let kernel = SinusoidKernel::new(window);
            let mut got = vec![Complex32::default(); window.len() / 2 + 1];
            for &(bin, amp, phase) in &partials {
                kernel.add(&mut got, bin, amp, phase);
            }
            let want = naive(window, &partials);
            let peak = want
                .iter()
                .map(|(re, im)| re.hypot(*im))
                .fold(0.0, f64::max);
            let worst = got
                .iter()
                .zip(&want)
                .map(|(g, (re, im))| (g.re as f64 - re).hypot(g.im as f64 - im))
                .fold(0.0, f64::max);
            assert!(
                worst < 3e-4 * peak,
                "reach {}: error {worst}, peak {peak}",
                kernel.reach()
            );
        }
        // Nothing non-finite gets in.
        let kernel = SinusoidKernel::new(&windows[0]);
        let mut s = vec![Complex32::default(); 257];
        kernel.add(&mut s, f32::NAN, 1.0, 0.0);
        kernel.add(&mut s, 10.0, f32::INFINITY, 0.0);
        // Nor does a frequency off the spectrum's scale (no overflow working out its bins).
        kernel.add(&mut s, 1e30, 1.0, 0.0);
        kernel.add(&mut s, -3.0, 1.0, 0.0);
        assert!(s.iter().all(|c| *c == Complex32::default()));
    }
}
