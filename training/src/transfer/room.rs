//! A source as a home recording hands it over: the room's reverb and its noise added to the
//! clean phrase (`timbreswap eval-transfer --source-reverb S --source-noise DB`). The oracle and
//! the references stay clean: the ideal output is still B playing the score.

use crate::perturb::Effect;
use crate::rng::SplitMix64;

/// Wet share of a reverberated source (the wet signal at the dry one's RMS, mixed
/// `(1 - share) dry + share wet`): a direct-to-reverberant ratio of about 9.5 dB, a voice a
/// metre or so from the microphone in a furnished room.
pub const REVERB_SHARE: f64 = 0.25;

/// High-frequency damping of the room's reverb (0-1; furnishing absorbs the highs first).
pub const REVERB_DAMPING: f64 = 0.3;

/// What the room adds to a source.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Room {
    /// Reverb decay time to -60 dB, seconds (`None`: dry), at a wet share of
    /// [`REVERB_SHARE`].
    pub reverb_s: Option<f64>,
    /// Pink noise (equal energy per octave: room tone, fans, traffic) at this many dB under the
    /// source's RMS over its sounding samples (`None`: none).
    pub noise_snr_db: Option<f64>,
}

impl Room {
    /// Whether the room changes anything.
    pub fn is_dry(&self) -> bool {
        self.reverb_s.is_none() && self.noise_snr_db.is_none()
    }

    /// The clip at `path` (its `samples`, mono, `rate` Hz) recorded in the room, its noise
    /// drawn from a seed of the path and `salt` (one per role a clip plays, so that a clip
    /// as a source and as a reference gets different noise). Nothing when the room is dry.
    pub fn apply_to_clip(&self, samples: &mut [f32], rate: u32, path: &std::path::Path, salt: u64) {
        if self.is_dry() {
            return;
        }
        let seed = crate::manifest::fnv1a(path.to_string_lossy().as_bytes()) ^ salt;
        self.apply(samples, rate, seed);
    }

    /// `samples` (mono, `rate` Hz) recorded in the room: reverberated, then the noise added
    /// throughout (in the pauses too), drawn from `seed`.
    pub fn apply(&self, samples: &mut [f32], rate: u32, seed: u64) {
        if let Some(rt60_s) = self.reverb_s {
            Effect::Reverb {
                rt60_s,
                damping: REVERB_DAMPING,
                mix: REVERB_SHARE,
            }
            .apply(samples, rate);
        }
        if let Some(snr_db) = self.noise_snr_db {
            let level = sounding_rms(samples);
            if level > 0.0 {
                let noise = pink_noise(samples.len(), seed);
                let noise_rms = rms(&noise);
                if noise_rms > 0.0 {
                    let gain = (level * 10f64.powf(-snr_db / 20.0) / noise_rms) as f32;
                    for (s, n) in samples.iter_mut().zip(&noise) {
                        *s += gain * n;
                    }
                }
            }
        }
    }
}

/// RMS of `x`.
fn rms(x: &[f32]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

/// RMS over the 20 ms blocks of `x` within 40 dB of its loudest: the level of what sounds,
/// the pauses left out.
fn sounding_rms(x: &[f32]) -> f64 {
    let block = 640;
    let powers: Vec<f64> = x
        .chunks(block)
        .map(|c| c.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / c.len() as f64)
        .collect();
    let loudest = powers.iter().copied().fold(0.0, f64::max);
    let sounding: Vec<f64> = powers
        .into_iter()
        .filter(|p| *p > loudest * 1e-4 && *p > 0.0)
        .collect();
    if sounding.is_empty() {
        0.0
    } else {
        (sounding.iter().sum::<f64>() / sounding.len() as f64).sqrt()
    }
}

/// `len` samples of pink noise (power falling 3 dB per octave from about 10 Hz up), from
/// `seed`: white noise through Paul Kellet's economy filter (three one-pole sections, within
/// 0.5 dB of -3 dB per octave above 10 Hz at 44.1 kHz), unscaled.
fn pink_noise(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed ^ 0x726f_6f6d);
    let (mut b0, mut b1, mut b2) = (0.0f64, 0.0f64, 0.0f64);
    (0..len)
        .map(|_| {
            let white = rng.normal();
            b0 = 0.99765 * b0 + white * 0.0990460;
            b1 = 0.96300 * b1 + white * 0.2965164;
            b2 = 0.57000 * b2 + white * 1.0526913;
            (b0 + b1 + b2 + white * 0.1848) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tone with pauses (0.5 s on, 0.5 s off, twice).
    fn tone_with_pauses(rate: u32) -> Vec<f32> {
        (0..2 * rate as usize)
            .map(|i| {
                let t = i as f32 / rate as f32;
                if t % 1.0 < 0.5 {
                    0.3 * (std::f32::consts::TAU * 440.0 * t).sin()
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// The noise comes in at the asked ratio to the sounding part's level (the pauses do not
    /// lower the reference level), is in the pauses too, and tilts down: an octave-wide band
    /// at 4-8 kHz carries about as much power as one at 500-1000 Hz (pink), within 2 dB.
    #[test]
    fn the_noise_is_pink_and_at_its_ratio() {
        let rate = 32_000;
        let clean = tone_with_pauses(rate);
        let mut noisy = clean.clone();
        Room {
            reverb_s: None,
            noise_snr_db: Some(30.0),
        }
        .apply(&mut noisy, rate, 7);
        let noise: Vec<f32> = noisy.iter().zip(&clean).map(|(a, b)| a - b).collect();
        let snr = 20.0 * (sounding_rms(&clean) / rms(&noise)).log10();
        assert!((snr - 30.0).abs() < 0.01, "{snr} dB");
        let pause = &noisy[(0.6 * rate as f32) as usize..(0.9 * rate as f32) as usize];
        assert!(rms(pause) > 0.0);
        let band = |lo: f64, hi: f64| -> f64 {
            let n = 1 << 15;
            let mut planner = realfft::RealFftPlanner::<f32>::new();
            let fft = planner.plan_fft_forward(n);
            let mut buf = noise[..n].to_vec();
            let mut spec = fft.make_output_vec();
            fft.process(&mut buf, &mut spec).unwrap();
            let hz = rate as f64 / n as f64;
            spec.iter()
                .enumerate()
                .filter(|(k, _)| (lo..hi).contains(&(*k as f64 * hz)))
                .map(|(_, c)| f64::from(c.norm_sqr()))
                .sum()
        };
        let tilt = 10.0 * (band(500.0, 1000.0) / band(4000.0, 8000.0)).log10();
        assert!(tilt.abs() < 2.0, "octave bands {tilt:.2} dB apart");
    }

    /// The reverb leaves a tail in the pauses that the dry tone does not have; a dry room
    /// leaves the clip as it was.
    #[test]
    fn the_reverb_rings_into_the_pauses() {
        let rate = 32_000;
        let clean = tone_with_pauses(rate);
        let mut wet = clean.clone();
        Room {
            reverb_s: Some(0.5),
            noise_snr_db: None,
        }
        .apply(&mut wet, rate, 1);
        let after = (0.55 * rate as f32) as usize..(0.65 * rate as f32) as usize;
        assert!(clean[after.clone()].iter().all(|v| *v == 0.0));
        let tail = 20.0 * (rms(&wet[after]) / sounding_rms(&clean)).log10();
        assert!((-40.0..-10.0).contains(&tail), "tail {tail:.1} dB");
        let mut same = clean.clone();
        Room::default().apply(&mut same, rate, 1);
        assert_eq!(same, clean);
    }
}
