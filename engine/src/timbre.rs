//! The timbre descriptor of a reference clip: its average cepstral envelope.
//!
//! The descriptor is what the plugin saves in its state, so it is self-describing (sample rate
//! and FFT size it was measured with) and can be mapped onto any other [`StftConfig`] by
//! interpolating along frequency.

use serde::{Deserialize, Serialize};

use crate::cepstrum::Cepstrum;
use crate::config::StftConfig;
use crate::error::TimbreError;
use crate::stft::Stft;
use realfft::num_complex::Complex32;

/// Format version written into every descriptor.
pub const TIMBRE_FORMAT_VERSION: u32 = 1;

/// Frames quieter than this below the loudest frame do not count towards the average, in dB.
pub const ACTIVE_RANGE_DB: f32 = 40.0;

/// Floor added to magnitudes before the logarithm (about -180 dB re full scale).
pub const MAG_FLOOR: f32 = 1e-9;

/// Average spectral envelope of a clip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimbreDescriptor {
    /// Format version ([`TIMBRE_FORMAT_VERSION`]).
    pub version: u32,
    /// What the user loaded (file name), for display.
    pub name: String,
    /// Sample rate of the analysis, in Hz.
    pub sample_rate: u32,
    /// FFT size of the analysis, in samples.
    pub n_fft: usize,
    /// Mean cepstral envelope over the clip's active frames: natural log of magnitude, one
    /// value per bin `0..=n_fft/2`.
    pub envelope: Vec<f32>,
    /// Frames that went into the average.
    pub frames: usize,
    /// Length of the analysed audio, in seconds.
    pub duration_s: f32,
    /// The clip's timbre latent for the neural mode, measured with one model (absent in
    /// states saved before the neural mode, and for models it was not measured with).
    #[serde(default)]
    pub latent: Option<TimbreLatent>,
    /// Where the clip was loaded from, so another model can measure its latent again.
    #[serde(default)]
    pub source: Option<String>,
    /// For a model preset (no clip behind it): the training instrument of the model's timbre
    /// map it was taken from, so another model can look up its own latent for the same
    /// instrument (absent for clips, and in states saved before presets recorded it).
    #[serde(default)]
    pub preset: Option<String>,
    /// What the editor draws for a clip: its waveform overview and level (absent for
    /// presets, and in states saved before the editor showed them).
    #[serde(default)]
    pub overview: Option<ClipOverview>,
}

/// Columns of a [`ClipOverview`].
pub const OVERVIEW_COLUMNS: usize = 160;

/// A clip's waveform thumbnail and level, measured on its mono mix before any level
/// normalisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipOverview {
    /// Lowest and highest sample of each of up to [`OVERVIEW_COLUMNS`] equal stretches of the
    /// clip, in full-scale units (-1..1 for a clip that does not clip).
    pub columns: Vec<[f32; 2]>,
    /// Sample peak, in dBFS (-inf for silence is stored as the floor, -200).
    pub peak_db: f32,
    /// RMS level over the whole clip, in dBFS (floor -200).
    pub rms_db: f32,
}

/// Lowest level a [`ClipOverview`] reports, in dBFS.
pub const OVERVIEW_FLOOR_DB: f32 = -200.0;

impl ClipOverview {
    /// The overview of `samples` (mono; non-finite samples count as 0). Allocates.
    pub fn of(samples: &[f32]) -> Self {
        let finite = |v: &f32| if v.is_finite() { *v } else { 0.0 };
        let n = samples.len();
        let columns = OVERVIEW_COLUMNS.min(n);
        let columns = (0..columns)
            .map(|c| {
                let part =
                    &samples[c * n / columns..((c + 1) * n / columns).max(c * n / columns + 1)];
                part.iter()
                    .map(finite)
                    .fold([f32::INFINITY, f32::NEG_INFINITY], |[lo, hi], v| {
                        [lo.min(v), hi.max(v)]
                    })
            })
            .collect();
        let peak = samples
            .iter()
            .map(finite)
            .fold(0.0f32, |m, v| m.max(v.abs()));
        let energy: f64 = samples.iter().map(|v| (finite(v) as f64).powi(2)).sum();
        let db = |v: f64| {
            if v > 0.0 {
                (20.0 * v.log10()).max(OVERVIEW_FLOOR_DB as f64) as f32
            } else {
                OVERVIEW_FLOOR_DB
            }
        };
        Self {
            columns,
            peak_db: db(peak as f64),
            rms_db: db((energy / n.max(1) as f64).sqrt()),
        }
    }

    /// Checks a loaded overview (a saved state): bounded, finite values.
    pub fn validate(&self) -> Result<(), TimbreError> {
        if self.columns.len() > OVERVIEW_COLUMNS {
            return Err(TimbreError::Malformed(format!(
                "a waveform overview of {} columns",
                self.columns.len()
            )));
        }
        let ok = |v: f32| v.is_finite() && v.abs() <= 1e6;
        if !self.columns.iter().flatten().all(|v| ok(*v)) || !ok(self.peak_db) || !ok(self.rms_db) {
            return Err(TimbreError::NonFinite);
        }
        Ok(())
    }
}

/// A timbre latent `z_t` and the model it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimbreLatent {
    /// [`crate::network::Network::id`] of the model that measured it.
    pub model_id: String,
    /// The posterior mean of `z_t`.
    pub z_t: Vec<f32>,
}

impl TimbreDescriptor {
    /// Checks the descriptor can be used (e.g. after loading it from a saved state).
    pub fn validate(&self) -> Result<(), TimbreError> {
        if self.version != TIMBRE_FORMAT_VERSION {
            return Err(TimbreError::Version {
                found: self.version,
                supported: TIMBRE_FORMAT_VERSION,
            });
        }
        if !(8_000..=384_000).contains(&self.sample_rate) {
            return Err(TimbreError::Malformed(format!(
                "sample rate {} Hz",
                self.sample_rate
            )));
        }
        if self.n_fft < 16 || self.n_fft > 65_536 || self.envelope.len() != self.n_fft / 2 + 1 {
            return Err(TimbreError::Malformed(format!(
                "{} envelope values for an FFT size of {}",
                self.envelope.len(),
                self.n_fft
            )));
        }
        if self
            .envelope
            .iter()
            .any(|v| !v.is_finite() || v.abs() > 1e4)
        {
            return Err(TimbreError::NonFinite);
        }
        if let Some(overview) = &self.overview {
            overview.validate()?;
        }
        if let Some(latent) = &self.latent {
            if latent.z_t.is_empty() || latent.z_t.len() > 4096 {
                return Err(TimbreError::Malformed(format!(
                    "a timbre latent of {} values",
                    latent.z_t.len()
                )));
            }
            if latent.z_t.iter().any(|v| !v.is_finite() || v.abs() > 1e4) {
                return Err(TimbreError::NonFinite);
            }
        }
        Ok(())
    }

    /// The envelope on the bins of `cfg` (linear interpolation along frequency, held constant
    /// beyond the descriptor's Nyquist frequency). Allocates; call off the audio thread.
    pub fn envelope_for(&self, cfg: &StftConfig) -> Vec<f32> {
        if self.sample_rate == cfg.sample_rate && self.n_fft == cfg.n_fft {
            return self.envelope.clone();
        }
        let src_hz_per_bin = self.sample_rate as f64 / self.n_fft as f64;
        let last = self.envelope.len() - 1;
        (0..cfg.n_bins())
            .map(|k| {
                let pos = cfg.bin_hz(k) / src_hz_per_bin;
                let i = pos.floor() as usize;
                if i >= last {
                    self.envelope[last]
                } else {
                    let t = (pos - i as f64) as f32;
                    self.envelope[i] * (1.0 - t) + self.envelope[i + 1] * t
                }
            })
            .collect()
    }
}

/// Peak level a clip is scaled to before its timbre is analysed (-6 dBFS).
pub const ANALYSIS_PEAK: f32 = 0.5;

/// Measures the descriptor of `samples` (mono, at `cfg.sample_rate`; non-finite samples count
/// as silence) at [`ANALYSIS_PEAK`]. Returns `None` when no frame is louder than the floor
/// (judged on the clip as it is). Not realtime-safe (allocates).
pub fn analyse(samples: &[f32], cfg: &StftConfig, name: &str) -> Option<TimbreDescriptor> {
    let n = cfg.n_fft;
    let bins = cfg.n_bins();
    let mut stft = Stft::new(cfg);
    let mut cep = Cepstrum::new(cfg);
    let mut spec = vec![Complex32::default(); bins];
    let mut frame = vec![0.0f32; n];
    // The clip is analysed at a fixed peak (ANALYSIS_PEAK), so its absolute level (a quiet
    // take, a clip far past full scale) changes neither the descriptor nor the output.
    let peak = crate::clip::finite_peak(samples);
    let gain = if peak > 0.0 {
        ANALYSIS_PEAK / peak
    } else {
        1.0
    };
    // Pad by half a window on both sides so the clip's edges are analysed too.
    let pad = n / 2;
    let total = samples.len() + 2 * pad;
    // Each frame's level (dB) and log-magnitudes (`bins` values, one block for all frames).
    let frames = total.checked_sub(n).map_or(0, |rest| rest / cfg.hop + 1);
    let mut levels: Vec<f32> = Vec::with_capacity(frames);
    let mut log_mags = vec![0.0f32; frames * bins];
    let mut start = 0;
    while start + n <= total {
        // Frame index i holds sample start + i - pad: zero before the clip's first sample and
        // past its last, the scaled sample (zero where not finite) between.
        let skip = pad.saturating_sub(start);
        let from = start.saturating_sub(pad);
        let take = (n - skip).min(samples.len().saturating_sub(from));
        frame[..skip].fill(0.0);
        for (f, &x) in frame[skip..skip + take].iter_mut().zip(&samples[from..]) {
            *f = if x.is_finite() { x * gain } else { 0.0 };
        }
        frame[skip + take..].fill(0.0);
        stft.analyse(&frame, &mut spec);
        let log_mag = &mut log_mags[levels.len() * bins..(levels.len() + 1) * bins];
        crate::stft::magnitudes(&spec, log_mag);
        // The energy is summed in the logarithms' loop, where its chain of additions costs
        // no time of its own.
        let mut energy = 0.0f32;
        for (l, c) in log_mag.iter_mut().zip(&spec) {
            energy += c.norm_sqr();
            *l = (*l + MAG_FLOOR).ln();
        }
        levels.push(10.0 * (energy + 1e-30).log10());
        start += cfg.hop;
    }
    let loudest = levels.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // Absolute floor: a full-scale sine gives about 10*log10((n/4)^2) dB; stay ~100 dB below.
    let floor = 20.0 * (n as f32 / 4.0).log10() - 100.0;
    // The floor applies to the clip as it is, before the normalisation.
    if !loudest.is_finite() || loudest - 20.0 * gain.log10() < floor {
        return None;
    }
    // The mean envelope of the active frames. Cepstral liftering is linear, so it is the
    // envelope of their mean log-magnitudes: one cepstrum instead of one per frame.
    let mut sum = vec![0.0f64; bins];
    let mut count = 0usize;
    for (level, l) in levels.iter().zip(log_mags.chunks_exact(bins)) {
        if *level >= loudest - ACTIVE_RANGE_DB {
            for (s, v) in sum.iter_mut().zip(l) {
                *s += *v as f64;
            }
            count += 1;
        }
    }
    let mean: Vec<f32> = sum.iter().map(|s| (*s / count as f64) as f32).collect();
    let mut envelope = vec![0.0f32; bins];
    cep.envelope(&mean, &mut envelope);
    Some(TimbreDescriptor {
        version: TIMBRE_FORMAT_VERSION,
        name: name.to_string(),
        sample_rate: cfg.sample_rate,
        n_fft: cfg.n_fft,
        envelope,
        frames: count,
        duration_s: samples.len() as f32 / cfg.sample_rate as f32,
        latent: None,
        source: None,
        preset: None,
        overview: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sine of amplitude 0.5 reads -6.02 dBFS peak and -9.03 dBFS RMS, its columns span
    /// about ±0.5; silence reads the floor; a short clip gets one column per sample; a saved
    /// overview with a NaN or too many columns is refused.
    #[test]
    fn the_overview_reads_peak_rms_and_columns() {
        let sine: Vec<f32> = (0..48_000)
            .map(|n| 0.5 * (std::f32::consts::TAU * 440.0 * n as f32 / 48_000.0).sin())
            .collect();
        let o = ClipOverview::of(&sine);
        assert_eq!(o.columns.len(), OVERVIEW_COLUMNS);
        assert!((o.peak_db + 6.02).abs() < 0.01, "{}", o.peak_db);
        assert!((o.rms_db + 9.03).abs() < 0.01, "{}", o.rms_db);
        assert!(o
            .columns
            .iter()
            .all(|[lo, hi]| (*lo + 0.5).abs() < 0.01 && (*hi - 0.5).abs() < 0.01));
        assert!(o.validate().is_ok());
        let silent = ClipOverview::of(&[0.0; 1000]);
        assert_eq!(
            (silent.peak_db, silent.rms_db),
            (OVERVIEW_FLOOR_DB, OVERVIEW_FLOOR_DB)
        );
        let short = ClipOverview::of(&[0.1, -0.2, f32::NAN]);
        assert_eq!(short.columns, vec![[0.1, 0.1], [-0.2, -0.2], [0.0, 0.0]]);
        let mut bad = o.clone();
        bad.columns[3][1] = f32::NAN;
        assert!(bad.validate().is_err());
        let mut long = o;
        long.columns.push([0.0, 0.0]);
        assert!(long.validate().is_err());
    }

    fn harmonic(f0: f32, rate: u32, seconds: f32, tilt: f32) -> Vec<f32> {
        let len = (rate as f32 * seconds) as usize;
        (0..len)
            .map(|n| {
                let t = n as f32 / rate as f32;
                (1..200)
                    .filter(|h| *h as f32 * f0 < 15_000.0)
                    .map(|h| {
                        (2.0 * std::f32::consts::PI * f0 * h as f32 * t).sin()
                            * (h as f32).powf(-tilt)
                    })
                    .sum::<f32>()
                    * 0.1
            })
            .collect()
    }

    /// Two notes of the same "instrument" (spectral tilt) at different pitches give nearly the
    /// same envelope; a different tilt gives a clearly different one.
    #[test]
    fn envelope_tracks_timbre_not_pitch() {
        let cfg = StftConfig::default();
        let a1 = analyse(&harmonic(220.0, 32_000, 0.5, 1.0), &cfg, "a1").unwrap();
        let a2 = analyse(&harmonic(330.0, 32_000, 0.5, 1.0), &cfg, "a2").unwrap();
        let b = analyse(&harmonic(220.0, 32_000, 0.5, 3.0), &cfg, "b").unwrap();
        a1.validate().unwrap();
        // Compare shapes (mean removed) over 625 Hz - 6 kHz.
        let band = |d: &TimbreDescriptor| {
            let v: Vec<f32> = (10..96).map(|k| d.envelope[k]).collect();
            let m = v.iter().sum::<f32>() / v.len() as f32;
            v.into_iter().map(|x| x - m).collect::<Vec<_>>()
        };
        let dist = |x: &[f32], y: &[f32]| {
            (x.iter().zip(y).map(|(a, b)| (a - b).powi(2)).sum::<f32>() / x.len() as f32).sqrt()
        };
        let same = dist(&band(&a1), &band(&a2));
        let other = dist(&band(&a1), &band(&b));
        assert!(other > 3.0 * same, "same {same}, other {other}");
    }

    /// The descriptor's envelope is the mean of its active frames' own cepstral envelopes (the
    /// definition, computed here frame by frame in f64), to f32 rounding.
    #[test]
    fn the_envelope_is_the_mean_of_the_active_frames_envelopes() {
        let cfg = StftConfig::default();
        let mut rng = crate::test_rng::XorShift::new(3);
        // A note with a rest and a quiet tail, so some frames fall outside the active range.
        let samples: Vec<f32> = (0..24_000)
            .map(|i| {
                let t = i as f32 / cfg.sample_rate as f32;
                let level = match i {
                    0..=9_999 => 1.0,
                    10_000..=13_999 => 0.0,
                    14_000..=19_999 => 0.3,
                    _ => 1e-4,
                };
                level * ((std::f32::consts::TAU * 220.0 * t).sin() + 0.1 * rng.next_centred())
            })
            .collect();
        let got = analyse(&samples, &cfg, "note").unwrap();
        let (n, bins) = (cfg.n_fft, cfg.n_bins());
        let gain = ANALYSIS_PEAK / samples.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let (mut stft, mut cep) = (Stft::new(&cfg), Cepstrum::new(&cfg));
        let mut spec = vec![Complex32::default(); bins];
        let (mut frame, mut mag, mut env) =
            (vec![0.0f32; n], vec![0.0f32; bins], vec![0.0f32; bins]);
        let mut frames: Vec<(f32, Vec<f32>)> = Vec::new();
        for f in 0..=(samples.len() / cfg.hop) {
            crate::features::centred_frame(&samples, f * cfg.hop, &mut frame);
            frame.iter_mut().for_each(|v| *v *= gain);
            stft.analyse(&frame, &mut spec);
            let energy: f32 = spec.iter().map(|c| c.norm_sqr()).sum();
            for (m, c) in mag.iter_mut().zip(&spec) {
                *m = (c.norm() + MAG_FLOOR).ln();
            }
            cep.envelope(&mag, &mut env);
            frames.push((10.0 * (energy + 1e-30).log10(), env.clone()));
        }
        let loudest = frames.iter().map(|f| f.0).fold(f32::NEG_INFINITY, f32::max);
        let active: Vec<&Vec<f32>> = frames
            .iter()
            .filter(|f| f.0 >= loudest - ACTIVE_RANGE_DB)
            .map(|f| &f.1)
            .collect();
        assert_eq!(got.frames, active.len());
        assert!(
            active.len() < frames.len() * 3 / 4,
            "some frames are not active"
        );
        for k in 0..bins {
            let want = active.iter().map(|e| f64::from(e[k])).sum::<f64>() / active.len() as f64;
            let diff = (f64::from(got.envelope[k]) - want).abs();
            assert!(
                diff < 1e-4 * want.abs().max(1.0),
                "bin {k}: {} against {want}",
                got.envelope[k]
            );
        }
    }

    #[test]
    fn silence_gives_none_and_bad_descriptors_are_refused() {
        let cfg = StftConfig::default();
        assert!(analyse(&vec![0.0; 32_000], &cfg, "silence").is_none());
        let mut d = analyse(&harmonic(220.0, 32_000, 0.3, 1.0), &cfg, "x").unwrap();
        d.envelope[3] = f32::NAN;
        assert_eq!(d.validate(), Err(TimbreError::NonFinite));
        d.envelope.pop();
        assert!(matches!(d.validate(), Err(TimbreError::Malformed(_))));
    }

    #[test]
    fn envelope_maps_to_other_configs_by_frequency() {
        let cfg = StftConfig::default();
        let d = analyse(&harmonic(220.0, 32_000, 0.3, 1.0), &cfg, "x").unwrap();
        let other = StftConfig {
            sample_rate: 48_000,
            n_fft: 768,
            hop: 240,
            cepstral_cutoff: 36,
        };
        let e = d.envelope_for(&other);
        assert_eq!(e.len(), other.n_bins());
        // Bin k of the 768-point grid at 48 kHz is at the same frequency as bin k of the
        // 512-point grid at 32 kHz (both 62.5 Hz per bin).
        for (mapped, original) in e.iter().zip(&d.envelope) {
            assert!((mapped - original).abs() < 1e-6);
        }
        assert_eq!(e[300], d.envelope[256]);
    }
}
