//! Cepstral split of a log-magnitude spectrum into envelope (low quefrency: timbre) and fine
//! structure (high quefrency: pitch).

use realfft::num_complex::Complex32;

use crate::config::StftConfig;
use crate::real_fft::{ForwardFft, InverseFft};

/// Liftering in the real-cepstrum domain. Allocates in `new`, never after.
pub struct Cepstrum {
    /// Coefficients with quefrency below this (and their mirror images) are the envelope.
    cutoff: usize,
    to_cepstrum: InverseFft,
    to_spectrum: ForwardFft,
    spec: Vec<Complex32>,
    cep: Vec<f32>,
    scratch_inv: Vec<Complex32>,
    scratch_fwd: Vec<Complex32>,
}

impl Cepstrum {
    /// Plans the transforms for `cfg`. Not realtime-safe (allocates).
    pub fn new(cfg: &StftConfig) -> Self {
        let to_cepstrum = InverseFft::new(cfg.n_fft);
        let to_spectrum = ForwardFft::new(cfg.n_fft);
        Self {
            cutoff: cfg.cepstral_cutoff,
            spec: vec![Complex32::default(); cfg.n_bins()],
            cep: vec![0.0; cfg.n_fft],
            scratch_inv: to_cepstrum.make_scratch(),
            scratch_fwd: to_spectrum.make_scratch(),
            to_cepstrum,
            to_spectrum,
        }
    }

    /// Writes the cepstrally smoothed version of `log_mag` (natural-log magnitudes, one per
    /// bin) into `envelope`. The fine structure is `log_mag - envelope`. Realtime-safe.
    pub fn envelope(&mut self, log_mag: &[f32], envelope: &mut [f32]) {
        for (s, l) in self.spec.iter_mut().zip(log_mag) {
            *s = Complex32::new(*l, 0.0);
        }
        self.to_cepstrum
            .process(&mut self.spec, &mut self.cep, &mut self.scratch_inv);
        let n = self.cep.len();
        let scale = 1.0 / n as f32;
        for (q, c) in self.cep.iter_mut().enumerate() {
            let keep = q < self.cutoff || q > n - self.cutoff;
            *c = if keep { *c * scale } else { 0.0 };
        }
        self.to_spectrum
            .process(&mut self.cep, &mut self.spec, &mut self.scratch_fwd);
        for (e, s) in envelope.iter_mut().zip(&self.spec) {
            *e = s.re;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log spectrum made of a slow envelope plus a fast harmonic ripple splits into exactly
    /// those two parts when the cut-off sits between their quefrencies.
    #[test]
    fn separates_slow_envelope_from_harmonic_ripple() {
        let cfg = StftConfig::default();
        let n = cfg.n_fft;
        let bins = cfg.n_bins();
        // Envelope: cosine series with quefrencies 0..=5; ripple: quefrency 64 (a 500 Hz pitch).
        let env: Vec<f32> = (0..bins)
            .map(|k| {
                let w = 2.0 * std::f32::consts::PI * k as f32 / n as f32;
                -2.0 + 1.5 * (w).cos() + 0.7 * (3.0 * w).cos() + 0.2 * (5.0 * w).cos()
            })
            .collect();
        let ripple: Vec<f32> = (0..bins)
            .map(|k| 0.8 * (2.0 * std::f32::consts::PI * 64.0 * k as f32 / n as f32).cos())
            .collect();
        let log_mag: Vec<f32> = env.iter().zip(&ripple).map(|(a, b)| a + b).collect();
        let mut c = Cepstrum::new(&cfg);
        let mut out = vec![0.0; bins];
        c.envelope(&log_mag, &mut out);
        for k in 0..bins {
            assert!(
                (out[k] - env[k]).abs() < 1e-4,
                "bin {k}: {} vs {}",
                out[k],
                env[k]
            );
        }
    }
}
