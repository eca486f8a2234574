//! Low-latency resynthesis ([`LatencyMode::Low`](crate::LatencyMode::Low)): frames every half
//! hop, each grain covering only its frame's last hop. The frame processor runs on every other
//! frame, as in the normal mode; its output over input, smoothed across frequency, is applied
//! to the asymmetric-window spectra of that frame and the next. Runs wherever the frame
//! processor runs; realtime-safe after construction.

use realfft::num_complex::Complex32;

use crate::cepstrum::Cepstrum;
use crate::config::{LatencyMode, StftConfig};
use crate::processor::frame_scale;
use crate::stft::Stft;

/// Largest per-bin boost the low-latency path carries from a processed frame to the frames
/// after it (linear, +30 dB): a bin the input barely reaches cannot be raised from its window's
/// leakage (which repeats with every grain).
const MAX_HELD_BOOST: f32 = 31.622_776;
/// Largest per-bin cut it carries (linear, -60 dB).
const MAX_HELD_CUT: f32 = 1_000.0;

/// The low-latency resynthesis: each frame's spectrum through the asymmetric analysis window,
/// times the per-bin ratio of output to input of the latest processed frame, through the
/// matching synthesis window (silent but for the frame's last two half-hops).
pub(crate) struct LowLatency {
    stft: Stft,
    /// Smooths the log gain across frequency (a short impulse response: the gain must act
    /// within the grain's short span).
    smoothing: Cepstrum,
    /// Natural-log gain per bin, then its smoothed form.
    log_gain: Vec<f32>,
    smooth_gain: Vec<f32>,
    /// The current frame's asymmetric-window spectrum, then its output.
    spectrum: Vec<Complex32>,
    /// The current frame's unprocessed grain (the input the processed one replaces).
    identity: Vec<f32>,
    /// Output over input magnitude of the latest processed frame per bin, smoothed across
    /// frequency (its cepstrum cut at the STFT's cepstral cut-off, as the timbre envelope is)
    /// and limited to [`MAX_HELD_BOOST`] and [`MAX_HELD_CUT`]. Real: the grains keep the input's
    /// phase.
    gain: Vec<f32>,
    /// Output over input energy of the latest processed frame: each grain's own ratio is
    /// brought to it, so the output level follows the input as the processed frames' did.
    energy_ratio: f32,
    /// Whether `gain` holds a processed frame's ratio (false: the frames play dry).
    pub(crate) held: bool,
}

impl LowLatency {
    /// For frames of `cfg` as [`LatencyMode::Low`] spaces them. Allocates.
    pub(crate) fn new(cfg: &StftConfig) -> Self {
        let (analysis, synthesis) = LatencyMode::Low.grain_windows(cfg);
        let bins = cfg.n_bins();
        Self {
            stft: Stft::with_windows(cfg, analysis, synthesis),
            smoothing: Cepstrum::new(cfg),
            log_gain: vec![0.0; bins],
            smooth_gain: vec![0.0; bins],
            spectrum: vec![Complex32::default(); bins],
            identity: vec![0.0; cfg.n_fft],
            gain: vec![1.0; bins],
            energy_ratio: 1.0,
            held: false,
        }
    }

    /// Keeps the smoothed `|output| / |input|` per bin and the energy ratio if the frame was
    /// `processed`, else forgets them (the frames after it play dry).
    pub(crate) fn hold(&mut self, processed: bool, input: &[Complex32], output: &[Complex32]) {
        self.held = processed;
        if !processed {
            return;
        }
        let (energy_in, energy_out) = input
            .iter()
            .zip(output)
            .fold((0.0f32, 0.0f32), |(i, o), (x, y)| {
                (i + x.norm_sqr(), o + y.norm_sqr())
            });
        let ratio = energy_out / energy_in;
        self.energy_ratio = if ratio.is_finite() { ratio } else { 0.0 };
        let floor = 1e-6 * energy_in.sqrt().max(f32::MIN_POSITIVE);
        for ((l, x), y) in self.log_gain.iter_mut().zip(input).zip(output) {
            let (x_mag, y_mag) = (crate::stft::magnitude(*x), crate::stft::magnitude(*y));
            *l = ((y_mag + floor) / (x_mag + floor)).ln();
        }
        self.smoothing
            .envelope(&self.log_gain, &mut self.smooth_gain);
        let (boost, cut) = (MAX_HELD_BOOST.ln(), MAX_HELD_CUT.ln());
        for (g, l) in self.gain.iter_mut().zip(&self.smooth_gain) {
            let l = if l.is_finite() {
                l.clamp(-cut, boost)
            } else {
                -cut
            };
            *g = l.exp();
        }
    }

    /// The grain of `frame` with the held ratio, brought to the held energy ratio against
    /// the same frame's unprocessed grain (the input it replaces); returns the factor to scale
    /// it back by.
    pub(crate) fn resynthesise(&mut self, frame: &[f32], grain: &mut [f32]) -> f32 {
        self.stft.analyse(frame, &mut self.spectrum);
        let (down, scale_back) = frame_scale(frame);
        for (c, g) in self.spectrum.iter_mut().zip(&self.gain) {
            *c *= g * down;
        }
        self.stft.synthesise(&mut self.spectrum, grain);
        // Energy over the grain's span (the synthesis window is zero before it), of this
        // grain and of the unprocessed one at the same level.
        self.stft.identity_grain(frame, &mut self.identity);
        let energy_in: f32 = self.identity.iter().map(|v| (v * down) * (v * down)).sum();
        let energy_out: f32 = grain.iter().map(|g| g * g).sum();
        let level = (self.energy_ratio * energy_in / energy_out).sqrt();
        let level = if level.is_finite() {
            level.min(MAX_HELD_BOOST)
        } else {
            0.0
        };
        for g in grain.iter_mut() {
            *g *= level;
        }
        scale_back
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(cfg: &StftConfig, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..cfg.n_fft)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                s as f32 / u32::MAX as f32 - 0.5
            })
            .collect()
    }

    /// An output equal to its input passes every later frame through unchanged (the grain is
    /// the frame through the two windows); an output 6 dB up raises the grains by 6 dB; one
    /// 40 dB up in one bin is limited to 30 dB there; a dry frame makes the frames after it
    /// dry.
    #[test]
    fn the_held_gain_is_the_output_over_input() {
        let cfg = StftConfig::default();
        let mut low = LowLatency::new(&cfg);
        let mut stft = Stft::new(&cfg);
        let (processed, next) = (frame(&cfg, 7), frame(&cfg, 9));
        let mut input = vec![Complex32::default(); cfg.n_bins()];
        stft.analyse(&processed, &mut input);
        let identity: Vec<f32> = next
            .iter()
            .zip(&low.stft.analysis)
            .zip(&low.stft.synthesis)
            .map(|((x, a), s)| x * a * s * cfg.n_fft as f32)
            .collect();
        let mut grain = vec![0.0f32; cfg.n_fft];

        low.hold(true, &input, &input);
        assert_eq!(low.resynthesise(&next, &mut grain), 1.0);
        for (g, want) in grain.iter().zip(&identity) {
            assert!((g - want).abs() < 1e-5, "{g} against {want}");
        }

        let louder: Vec<Complex32> = input.iter().map(|c| c * 2.0).collect();
        low.hold(true, &input, &louder);
        low.resynthesise(&next, &mut grain);
        for (g, want) in grain.iter().zip(&identity) {
            assert!((g - 2.0 * want).abs() < 1e-4, "{g} against {}", 2.0 * want);
        }

        let mut spike = input.clone();
        spike[40] *= 100.0;
        low.hold(true, &input, &spike);
        let (boost, cut) = (MAX_HELD_BOOST.ln(), MAX_HELD_CUT.ln());
        assert!(low
            .gain
            .iter()
            .all(|g| g.ln() <= boost + 1e-5 && g.ln() >= -cut - 1e-5));

        low.hold(false, &input, &input);
        assert!(!low.held);
    }
}
