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

/// The latency an engine is built for: how often its frames start, and which part of each
/// frame its output grain covers. Every frame processor sees frames of the engine's
/// [`StftConfig`] either way (the framing the model was trained at).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LatencyMode {
    /// Frames one hop apart, each resynthesised over its whole frame: the latency holds the
    /// whole analysis frame (22.7 ms at 48 kHz with 128-sample blocks).
    #[default]
    Normal,
    /// Frames half a hop apart, each resynthesised over its last hop only
    /// ([`crate::stft::asymmetric_windows`]). Every other frame (those one hop apart) is
    /// processed as in `Normal`; each frame's output is its own spectrum, taken with the
    /// asymmetric analysis window, times the ratio of output to input spectrum of the latest
    /// processed frame. 9.2 ms at 48 kHz with blocks of up to 64 samples. Needs an even hop.
    Low,
}

impl LatencyMode {
    /// Samples between frames, for `cfg`.
    pub fn frame_hop(self, cfg: &StftConfig) -> usize {
        match self {
            LatencyMode::Normal => cfg.hop,
            LatencyMode::Low => cfg.hop / 2,
        }
    }

    /// Samples at the end of a frame that its grain covers (the rest of the grain is silent),
    /// for `cfg`.
    pub fn grain_span(self, cfg: &StftConfig) -> usize {
        match self {
            LatencyMode::Normal => cfg.n_fft,
            LatencyMode::Low => 2 * self.frame_hop(cfg),
        }
    }

    /// The analysis and synthesis windows (the synthesis one without the inverse FFT's
    /// `1 / n`) whose product shapes each frame's output grain, for `cfg`: the Hann window and
    /// its least-squares synthesis window, or the asymmetric pair over the grain's span.
    pub fn grain_windows(self, cfg: &StftConfig) -> (Vec<f32>, Vec<f32>) {
        match self {
            LatencyMode::Normal => {
                let analysis = crate::stft::hann(cfg.n_fft);
                let synthesis = crate::stft::synthesis_window(&analysis, cfg.hop);
                (analysis, synthesis)
            }
            LatencyMode::Low => crate::stft::asymmetric_windows(cfg.n_fft, self.frame_hop(cfg)),
        }
    }

    /// Whether `cfg` can run in this mode (an even hop, for `Low`).
    pub fn fits(self, cfg: &StftConfig) -> bool {
        match self {
            LatencyMode::Normal => true,
            LatencyMode::Low => cfg.hop.is_multiple_of(2),
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
