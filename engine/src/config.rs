//! Analysis settings shared by the engine, the reference-clip analysis and (later) the model file.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Lowest host sample rate the engine accepts, in Hz.
pub const MIN_HOST_RATE: f64 = 8_000.0;
/// Highest host sample rate the engine accepts, in Hz.
pub const MAX_HOST_RATE: f64 = 384_000.0;

/// STFT and cepstrum settings of the internal (model-rate) signal path.
///
/// One struct so that a model file can later supply its own values; [`StftConfig::default`] is
/// the setting the classic timbre swap ships with: 32 kHz, 16 ms Hann window, 5 ms hop, 257 bins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StftConfig {
    /// Internal (model) sample rate, in Hz.
    pub sample_rate: u32,
    /// FFT size and analysis-window length, in samples at `sample_rate`. Must be even.
    pub n_fft: usize,
    /// Hop between consecutive frames, in samples at `sample_rate`.
    pub hop: usize,
    /// Cepstral lifter cut-off, in quefrency samples: cepstral coefficients with index below it
    /// form the spectral envelope (timbre), the rest the fine structure (pitch).
    pub cepstral_cutoff: usize,
}

impl Default for StftConfig {
    fn default() -> Self {
        Self {
            sample_rate: 32_000,
            n_fft: 512,
            hop: 160,
            cepstral_cutoff: 24,
        }
    }
}

impl StftConfig {
    /// Number of non-negative frequency bins, `n_fft / 2 + 1`.
    pub fn n_bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Frequency of bin `k`, in Hz.
    pub fn bin_hz(&self, k: usize) -> f64 {
        k as f64 * self.sample_rate as f64 / self.n_fft as f64
    }

    /// Checks that the settings describe a usable streaming STFT.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(8_000..=192_000).contains(&self.sample_rate) {
            return Err(ConfigError::SampleRate(self.sample_rate));
        }
        if self.n_fft < 16 || self.n_fft > 16_384 || !self.n_fft.is_multiple_of(2) {
            return Err(ConfigError::FftSize(self.n_fft));
        }
        if self.hop == 0 || self.hop > self.n_fft / 2 {
            return Err(ConfigError::Hop {
                hop: self.hop,
                n_fft: self.n_fft,
            });
        }
        if self.cepstral_cutoff < 2 || self.cepstral_cutoff >= self.n_fft / 2 {
            return Err(ConfigError::CepstralCutoff {
                cutoff: self.cepstral_cutoff,
                n_fft: self.n_fft,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_has_257_bins() {
        let cfg = StftConfig::default();
        cfg.validate().unwrap();
        assert_eq!(cfg.n_bins(), 257);
        // 5 ms hop, 16 ms window at the model rate.
        assert_eq!(cfg.hop as f64 / cfg.sample_rate as f64, 0.005);
        assert_eq!(cfg.n_fft as f64 / cfg.sample_rate as f64, 0.016);
    }

    #[test]
    fn bad_settings_are_refused() {
        let base = StftConfig::default();
        assert!(StftConfig { n_fft: 511, ..base }.validate().is_err());
        assert!(StftConfig { hop: 0, ..base }.validate().is_err());
        assert!(StftConfig { hop: 400, ..base }.validate().is_err());
        assert!(StftConfig {
            cepstral_cutoff: 300,
            ..base
        }
        .validate()
        .is_err());
        assert!(StftConfig {
            sample_rate: 1000,
            ..base
        }
        .validate()
        .is_err());
    }
}
