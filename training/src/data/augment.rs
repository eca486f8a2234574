//! Timbre augmentation that makes new instruments: one random setting (body resonance, EQ,
//! saturation, breath noise) drawn once and applied alike to a pair's target and to its
//! reference clip, so the only way to decode the target right is to read that setting from the
//! reference (the timbre encoder cannot name it from the 36 programs it has seen).
//!
//! Every part keeps the note: the body and the EQ are linear and time-invariant, the
//! saturation only adds harmonics of the same period, and the breath noise is aperiodic and
//! follows the clip's own amplitude envelope (silence stays silent).

use crate::perturb::{Body, Effect, EffectKind};
use crate::rng::SplitMix64;

/// Chance that a setting includes a body resonance.
pub const BODY_SHARE: f64 = 0.5;
/// Chance that a setting includes a random peaking EQ (2-4 bands, ±3-12 dB).
pub const EQ_SHARE: f64 = 0.8;
/// Chance that a setting includes saturation.
pub const SATURATION_SHARE: f64 = 0.25;
/// Chance that a setting includes breath noise.
pub const NOISE_SHARE: f64 = 0.3;
/// Saturation drive range, dB (gentler than the pitch encoder's 10-30 dB distortion).
pub const SATURATION_DRIVE_DB: (f64, f64) = (3.0, 15.0);
/// Breath noise level relative to the clip's amplitude envelope, dB.
pub const NOISE_LEVEL_DB: (f64, f64) = (-35.0, -15.0);
/// Body wet share range (the pitch encoder's body uses 0.6-1).
pub const BODY_MIX: (f64, f64) = (0.3, 0.9);
/// Time constant of the envelope follower that shapes the breath noise, seconds.
const NOISE_ENVELOPE_S: f64 = 0.01;

/// One random instrument colouring; apply it to several clips to give them the same new
/// timbre.
#[derive(Debug, Clone, PartialEq)]
pub struct TimbreAugment {
    /// Body resonance (partial-by-partial levels).
    pub body: Option<Body>,
    /// Peaking EQ ([`Effect::Eq`]).
    pub eq: Option<Effect>,
    /// Saturation drive, dB.
    pub saturation_db: Option<f64>,
    /// Breath noise: (level re the amplitude envelope in dB, noise seed).
    pub noise: Option<(f64, u64)>,
}

impl TimbreAugment {
    /// No change.
    pub fn none() -> Self {
        Self {
            body: None,
            eq: None,
            saturation_db: None,
            noise: None,
        }
    }

    /// A random setting: each part drawn with its `*_SHARE` chance, parameters in the ranges
    /// above. At least one part is present.
    pub fn random(rng: &mut SplitMix64) -> Self {
        loop {
            let body = (rng.unit() < BODY_SHARE).then(|| {
                let mut b = Body::random(rng);
                b.mix = rng.range(BODY_MIX.0, BODY_MIX.1);
                b
            });
            let eq = (rng.unit() < EQ_SHARE).then(|| Effect::random(EffectKind::Eq, rng));
            let saturation_db = (rng.unit() < SATURATION_SHARE)
                .then(|| rng.range(SATURATION_DRIVE_DB.0, SATURATION_DRIVE_DB.1));
            let noise = (rng.unit() < NOISE_SHARE).then(|| {
                (
                    rng.range(NOISE_LEVEL_DB.0, NOISE_LEVEL_DB.1),
                    rng.next_u64(),
                )
            });
            let a = Self {
                body,
                eq,
                saturation_db,
                noise,
            };
            if !a.is_none() {
                return a;
            }
        }
    }

    /// Whether the setting changes nothing.
    pub fn is_none(&self) -> bool {
        self.body.is_none()
            && self.eq.is_none()
            && self.saturation_db.is_none()
            && self.noise.is_none()
    }

    /// A short description for manifests and logs.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(b) = &self.body {
            parts.push(format!("body {:.1} ms x{:.2}", b.decay_ms, b.mix));
        }
        if let Some(Effect::Eq { bands }) = &self.eq {
            let b: Vec<String> = bands
                .iter()
                .map(|b| format!("{:.0} Hz {:+.1} dB", b.freq_hz, b.gain_db))
                .collect();
            parts.push(format!("eq [{}]", b.join(", ")));
        }
        if let Some(d) = self.saturation_db {
            parts.push(format!("saturation {d:.1} dB"));
        }
        if let Some((l, _)) = self.noise {
            parts.push(format!("breath {l:.1} dB"));
        }
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join("; ")
        }
    }

    /// Applies the setting in place to a mono clip at `sample_rate` Hz (length kept). The same
    /// setting applied to two clips colours them alike: the filters and the drive are the
    /// same, and the noise is the same sequence shaped by each clip's own envelope.
    pub fn apply(&self, samples: &mut [f32], sample_rate: u32) {
        if let Some(b) = &self.body {
            b.apply(samples, sample_rate);
        }
        if let Some(eq) = &self.eq {
            eq.apply(samples, sample_rate);
        }
        if let Some(drive_db) = self.saturation_db {
            Effect::Distortion { drive_db }.apply(samples, sample_rate);
        }
        if let Some((level_db, seed)) = self.noise {
            let gain = 10f64.powf(level_db / 20.0);
            let a = (-1.0 / (NOISE_ENVELOPE_S * f64::from(sample_rate))).exp();
            let mut env = 0.0f64;
            let mut rng = SplitMix64::new(seed);
            for s in samples.iter_mut() {
                let x = f64::from(*s);
                env = a * env + (1.0 - a) * x.abs();
                // sqrt(3) * uniform(-1, 1) has unit variance; the envelope of |x| of a sine is
                // 2/pi of its peak, so the level is relative to the clip's mean amplitude.
                let n = (rng.unit() * 2.0 - 1.0) * 3f64.sqrt();
                *s = (x + gain * env * n) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perturb::probes::{estimate_f0, harmonic_tone, power_spectrum};

    /// Band powers (dB) of `x` in `edges.len() - 1` bands (edges in Hz).
    fn band_db(x: &[f32], rate: u32, edges: &[f64]) -> Vec<f64> {
        // Half a second after the filters' start-up.
        let n = 16_384;
        let p = power_spectrum(&x[4096..], n);
        let hz = |k: usize| k as f64 * f64::from(rate) / n as f64;
        edges
            .windows(2)
            .map(|e| {
                let s: f64 = (0..p.len())
                    .filter(|&k| hz(k) >= e[0] && hz(k) < e[1])
                    .map(|k| p[k])
                    .sum();
                10.0 * (s + 1e-30).log10()
            })
            .collect()
    }

    #[test]
    fn one_setting_colours_two_clips_alike_and_keeps_their_notes() {
        let rate = 32_000;
        let mut rng = SplitMix64::new(7);
        // A setting whose parts are all linear (body and EQ), so its colouring is a gain curve.
        let aug = loop {
            let a = TimbreAugment::random(&mut rng);
            if a.body.is_some() && a.eq.is_some() && a.saturation_db.is_none() && a.noise.is_none()
            {
                break a;
            }
        };
        // Two different white noises: the gain curve the setting draws on each must agree.
        let noise = |seed| {
            let mut r = SplitMix64::new(seed);
            (0..rate as usize * 2)
                .map(|_| r.next_f32() - 0.5)
                .collect::<Vec<f32>>()
        };
        let edges = [200.0, 400.0, 800.0, 1600.0, 3200.0, 6400.0, 12800.0];
        let mut gains = Vec::new();
        for seed in [1, 2] {
            let dry = noise(seed);
            let mut wet = dry.clone();
            aug.apply(&mut wet, rate);
            let (d, w) = (band_db(&dry, rate, &edges), band_db(&wet, rate, &edges));
            gains.push(w.iter().zip(&d).map(|(w, d)| w - d).collect::<Vec<f64>>());
        }
        for (g1, g2) in gains[0].iter().zip(&gains[1]) {
            assert!((g1 - g2).abs() < 1.5, "{:?}", gains);
        }
        // ...and it is a real colouring: the bands move apart by more than 3 dB.
        let spread = gains[0].iter().cloned().fold(f64::MIN, f64::max)
            - gains[0].iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread > 3.0, "{} {:?}", aug.describe(), gains[0]);
        // The notes are kept.
        let cents = |f: f64, r: f64| 1200.0 * (f / r).log2();
        for f0 in [220.0, 330.0] {
            let mut tone = harmonic_tone(f0, 20, 1.0, rate);
            aug.apply(&mut tone, rate);
            assert!(cents(estimate_f0(&tone, rate), f0).abs() < 20.0);
        }
    }

    #[test]
    fn silence_stays_silent_and_random_settings_are_never_empty() {
        let mut rng = SplitMix64::new(3);
        for _ in 0..50 {
            let aug = TimbreAugment::random(&mut rng);
            assert!(!aug.is_none());
            let mut zeros = vec![0.0f32; 4000];
            aug.apply(&mut zeros, 32_000);
            assert!(zeros.iter().all(|&x| x == 0.0), "{}", aug.describe());
        }
    }
}
