//! Analysis/synthesis windows and the forward/inverse real FFT of one frame.

use std::f64::consts::PI;

use realfft::num_complex::Complex32;

use crate::config::StftConfig;
use crate::real_fft::{ForwardFft, InverseFft};

/// `|c|`: the square root of `re² + im²` where that is a normal finite `f32` (a fifth of
/// libm's `hypotf` here), `hypotf` where the squares would overflow or underflow. Any thread;
/// realtime-safe.
#[inline]
pub fn magnitude(c: Complex32) -> f32 {
    let squared = c.re * c.re + c.im * c.im;
    if squared.is_finite() && squared >= f32::MIN_POSITIVE {
        squared.sqrt()
    } else if c.re == 0.0 && c.im == 0.0 {
        0.0
    } else {
        c.norm()
    }
}

/// [`magnitude`] of every bin of `spectrum` into `out` (the shorter of the two): the same
/// values, computed several at a time where every square is a normal finite `f32` or an exact
/// zero from a zero bin (one pass per bin otherwise). Any thread; realtime-safe.
pub fn magnitudes(spectrum: &[Complex32], out: &mut [f32]) {
    let mut all_normal = true;
    for (m, c) in out.iter_mut().zip(spectrum) {
        let squared = c.re * c.re + c.im * c.im;
        // A bin that is exactly zero (silence, or a band-limited 16-bit file's top bins) has
        // the magnitude 0 that `sqrt` gives.
        all_normal &= (squared.is_finite() & (squared >= f32::MIN_POSITIVE))
            | ((c.re == 0.0) & (c.im == 0.0));
        *m = squared.sqrt();
    }
    if !all_normal {
        for (m, c) in out.iter_mut().zip(spectrum) {
            *m = magnitude(*c);
        }
    }
}

/// Periodic Hann window of length `n`.
pub fn hann(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos()) as f32)
        .collect()
}

/// Least-squares synthesis window for `analysis` at `hop`: `w[n] / sum_k w[n + k*hop]^2`.
///
/// With it, overlap-adding `frame * analysis * synthesis` over all frames reconstructs the
/// input exactly for any hop up to half the window (Griffin & Lim's least-squares ISTFT).
pub fn synthesis_window(analysis: &[f32], hop: usize) -> Vec<f32> {
    let n = analysis.len();
    (0..n)
        .map(|i| {
            let mut norm = 0.0f64;
            // All shifts of the window that overlap position i.
            let mut j = i % hop;
            while j < n {
                norm += (analysis[j] as f64).powi(2);
                j += hop;
            }
            (analysis[i] as f64 / norm.max(1e-12)) as f32
        })
        .collect()
}

/// The low-latency window pair for `n`-sample frames whose grains are overlap-added every `m`
/// samples (asymmetric windows after Mauler & Martin 2007): the analysis window rises as the
/// square root of a Hann window over its first `n - m` samples and falls as the square root of
/// a Hann window over its last `m`; the synthesis window is silent before the last `2 m`
/// samples, where analysis x synthesis is a Hann window of `2 m` samples (so the grains
/// overlap-add to one at hop `m`, and a grain can play `n - 2 m` samples earlier than a
/// whole-frame grain). Neither window exceeds one by more than rounding, and the analysis
/// window is positive wherever the synthesis window is not zero. Returns `(analysis,
/// synthesis)`; the synthesis window excludes the inverse FFT's `1 / n`. `m` is clamped to
/// `1..=n / 2`.
pub fn asymmetric_windows(n: usize, m: usize) -> (Vec<f32>, Vec<f32>) {
    let m = m.clamp(1, n / 2);
    let hann_at = |j: usize, len: usize| 0.5 - 0.5 * (2.0 * PI * j as f64 / len as f64).cos();
    let analysis: Vec<f64> = (0..n)
        .map(|i| {
            if i < n - m {
                hann_at(i, 2 * (n - m)).sqrt()
            } else {
                hann_at(i + 2 * m - n, 2 * m).sqrt()
            }
        })
        .collect();
    let synthesis = (0..n)
        .map(|i| match i.checked_sub(n - 2 * m) {
            Some(j) if analysis[i] > 0.0 => (hann_at(j, 2 * m) / analysis[i]) as f32,
            _ => 0.0,
        })
        .collect();
    (analysis.into_iter().map(|a| a as f32).collect(), synthesis)
}

/// FFT plans and scratch for frames of one [`StftConfig`]. Allocates in `new`, never after.
pub struct Stft {
    /// Analysis window (periodic Hann), length `n_fft`.
    pub analysis: Vec<f32>,
    /// Least-squares synthesis window, length `n_fft`, including the `1 / n_fft` of the
    /// unnormalised inverse FFT.
    pub synthesis: Vec<f32>,
    forward: ForwardFft,
    inverse: InverseFft,
    scratch_fwd: Vec<Complex32>,
    scratch_inv: Vec<Complex32>,
    time: Vec<f32>,
}

impl Stft {
    /// Plans the FFTs of `cfg.n_fft`, with the periodic Hann analysis window and its
    /// least-squares synthesis window at `cfg.hop`. Not realtime-safe (allocates).
    pub fn new(cfg: &StftConfig) -> Self {
        let analysis = hann(cfg.n_fft);
        let synthesis = synthesis_window(&analysis, cfg.hop);
        Self::with_windows(cfg, analysis, synthesis)
    }

    /// [`new`](Self::new) with other windows (`n_fft` samples each; `synthesis` without the
    /// inverse FFT's `1 / n`), such as [`asymmetric_windows`]. Not realtime-safe (allocates).
    pub fn with_windows(cfg: &StftConfig, analysis: Vec<f32>, synthesis: Vec<f32>) -> Self {
        let (forward, inverse) = (ForwardFft::new(cfg.n_fft), InverseFft::new(cfg.n_fft));
        let scale = 1.0 / cfg.n_fft as f32;
        let synthesis = synthesis.into_iter().map(|w| w * scale).collect();
        Self {
            scratch_fwd: forward.make_scratch(),
            scratch_inv: inverse.make_scratch(),
            time: vec![0.0; cfg.n_fft],
            analysis,
            synthesis,
            forward,
            inverse,
        }
    }

    /// Windows `frame` and writes its spectrum (`n_fft / 2 + 1` bins) into `spectrum`.
    /// Realtime-safe.
    pub fn analyse(&mut self, frame: &[f32], spectrum: &mut [Complex32]) {
        for ((t, x), w) in self.time.iter_mut().zip(frame).zip(&self.analysis) {
            *t = x * w;
        }
        // The lengths are fixed at construction, so the transform cannot fail.
        self.forward
            .process(&mut self.time, spectrum, &mut self.scratch_fwd);
    }

    /// Inverse-transforms `spectrum` (consumed as scratch) and writes the synthesis-windowed
    /// grain into `grain`. Realtime-safe.
    pub fn synthesise(&mut self, spectrum: &mut [Complex32], grain: &mut [f32]) {
        // A real signal's DC and Nyquist bins are real; drop any rounding residue so the
        // inverse transform accepts the input.
        spectrum[0].im = 0.0;
        let last = spectrum.len() - 1;
        spectrum[last].im = 0.0;
        self.inverse
            .process(spectrum, &mut self.time, &mut self.scratch_inv);
        for ((g, t), w) in grain.iter_mut().zip(&self.time).zip(&self.synthesis) {
            *g = t * w;
        }
    }

    /// The grain that identity resynthesis of `frame` produces, without any FFT:
    /// `frame * analysis * synthesis * n_fft`. Used for dry substitution. Realtime-safe.
    pub fn identity_grain(&self, frame: &[f32], grain: &mut [f32]) {
        let n = self.analysis.len() as f32;
        for (((g, x), a), s) in grain
            .iter_mut()
            .zip(frame)
            .zip(&self.analysis)
            .zip(&self.synthesis)
        {
            *g = x * a * s * n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast magnitude agrees with libm's `hypotf` (the reference) within two ulps over
    /// magnitudes from denormal to near `f32::MAX`, and is exactly 0 for 0.
    #[test]
    fn magnitude_matches_hypot() {
        assert_eq!(magnitude(Complex32::new(0.0, 0.0)), 0.0);
        let mut rng = crate::test_rng::XorShift::new(9);
        let mut next = || rng.next_centred();
        for exponent in -45..38 {
            for _ in 0..50 {
                let scale = 10f32.powi(exponent);
                let c = Complex32::new(next() * scale, next() * scale);
                let (got, want) = (magnitude(c), c.norm());
                assert!(
                    (got - want).abs() <= 2.0 * f32::EPSILON * want + f32::from_bits(1),
                    "{c}: {got} against {want}"
                );
            }
        }
    }

    /// The bulk form gives [`magnitude`] of every bin, bit for bit, whether or not a bin of
    /// the spectrum needs the `hypotf` fallback (zero, tiny, huge, infinite, NaN).
    #[test]
    fn magnitudes_are_the_magnitude_of_each_bin() {
        let mut rng = crate::test_rng::XorShift::new(5);
        let mut next = || rng.next_centred();
        let plain: Vec<Complex32> = (0..257).map(|_| Complex32::new(next(), next())).collect();
        // Exact zeros among normal bins (no slow pass needed), and with signed zeros.
        let mut zeros = plain.clone();
        zeros[0] = Complex32::new(0.0, 0.0);
        zeros[7] = Complex32::new(-0.0, 0.0);
        zeros[256] = Complex32::new(0.0, -0.0);
        let mut odd = plain.clone();
        odd[3] = Complex32::new(0.0, 0.0);
        odd[100] = Complex32::new(1e-30, -2e-30);
        odd[200] = Complex32::new(3e30, 1e25);
        odd[201] = Complex32::new(f32::INFINITY, 1.0);
        odd[202] = Complex32::new(f32::NAN, 0.0);
        for spectrum in [plain, zeros, odd] {
            let mut got = vec![0.0f32; spectrum.len()];
            magnitudes(&spectrum, &mut got);
            for (g, c) in got.iter().zip(&spectrum) {
                assert_eq!(g.to_bits(), magnitude(*c).to_bits(), "{c}");
            }
        }
    }

    /// `analysis * synthesis` summed at sample `pos` over every frame (starting at multiples
    /// of `hop`) that covers it; `pos` at least one frame in, so every such frame exists.
    fn overlap_add(analysis: &[f32], synthesis: &[f32], hop: usize, pos: usize) -> f64 {
        let n = analysis.len();
        let mut sum = 0.0f64;
        let mut f = (pos + 1 - n).div_ceil(hop) * hop;
        while f <= pos {
            let i = pos - f;
            sum += analysis[i] as f64 * synthesis[i] as f64;
            f += hop;
        }
        sum
    }

    /// Overlap-adding analysis x synthesis windows gives exactly one everywhere (the property
    /// the least-squares window is built for), for COLA and non-COLA hops.
    #[test]
    fn synthesis_window_reconstructs_unity() {
        for &(n, hop) in &[(512usize, 160usize), (512, 128), (768, 240), (64, 7)] {
            let a = hann(n);
            let s = synthesis_window(&a, hop);
            for pos in n..2 * n {
                let sum = overlap_add(&a, &s, hop, pos);
                assert!((sum - 1.0).abs() < 1e-6, "n={n} hop={hop} pos={pos}: {sum}");
            }
        }
    }

    /// The asymmetric pair overlap-adds to one at its hop, is silent before its last `2 m`
    /// samples, stays within [0, 1] (no division by a vanishing window: the synthesis side
    /// falls as the analysis side does), and its analysis window is positive wherever the
    /// synthesis window is not zero. A frame through it, with no change, comes back exactly.
    #[test]
    fn asymmetric_windows_reconstruct_unity() {
        for &(n, m) in &[
            (512usize, 80usize),
            (512, 160),
            (512, 256),
            (64, 8),
            (66, 7),
        ] {
            let (a, s) = asymmetric_windows(n, m);
            assert!(s[..n - 2 * m].iter().all(|v| *v == 0.0), "n={n} m={m}");
            for (i, (a, s)) in a.iter().zip(&s).enumerate() {
                assert!((0.0..=1.0 + 1e-6).contains(a), "n={n} m={m} {i}: {a}");
                assert!((0.0..=1.0 + 1e-6).contains(s), "n={n} m={m} {i}: {s}");
                assert!(*s == 0.0 || *a > 0.0, "n={n} m={m} {i}");
            }
            for pos in n..2 * n {
                let sum = overlap_add(&a, &s, m, pos);
                assert!((sum - 1.0).abs() < 1e-6, "n={n} m={m} pos={pos}: {sum}");
            }
        }
        let cfg = StftConfig::default();
        let (a, s) = asymmetric_windows(cfg.n_fft, cfg.hop / 2);
        let mut stft = Stft::with_windows(&cfg, a.clone(), s.clone());
        let frame: Vec<f32> = (0..cfg.n_fft)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect();
        let mut spec = vec![Complex32::default(); cfg.n_bins()];
        let mut grain = vec![0.0; cfg.n_fft];
        stft.analyse(&frame, &mut spec);
        stft.synthesise(&mut spec, &mut grain);
        for ((g, x), (a, s)) in grain.iter().zip(&frame).zip(a.iter().zip(&s)) {
            assert!((g - x * a * s).abs() < 1e-5);
        }
    }

    /// FFT -> iFFT of a frame equals the FFT-free identity grain.
    #[test]
    fn identity_grain_matches_fft_round_trip() {
        let cfg = StftConfig::default();
        let mut stft = Stft::new(&cfg);
        let frame: Vec<f32> = (0..cfg.n_fft)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect();
        let mut spec = vec![Complex32::default(); cfg.n_bins()];
        let mut a = vec![0.0; cfg.n_fft];
        let mut b = vec![0.0; cfg.n_fft];
        stft.analyse(&frame, &mut spec);
        stft.synthesise(&mut spec, &mut a);
        stft.identity_grain(&frame, &mut b);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5);
        }
    }
}
