//! A random instrument body: a short, exponentially decaying noise impulse response. Its
//! frequency response has random detail on a scale of tens of hertz, finer than the spacing of
//! a note's partials, so it gives every partial its own random level: the partial-by-partial
//! balance that the cepstral envelope is too smooth to hold, and that the other effects (which
//! change the spectrum smoothly) leave alone. Being linear and time-invariant, it keeps a
//! periodic signal periodic, so the note stays.

use realfft::num_complex::Complex64;

use crate::rng::SplitMix64;

/// Shortest and longest decay time constant [`Body::random`] draws, ms (log-uniform). At
/// `tau` ms the response decorrelates over about `1000 / (pi * tau)` Hz: 32-106 Hz.
pub const BODY_DECAY_MS: (f64, f64) = (3.0, 10.0);

/// Impulse-response length in decay time constants (the tail below -43 dB is cut).
const LENGTH_IN_DECAYS: f64 = 5.0;

/// A random body: the impulse response's decay and the seed of its noise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Body {
    /// Decay time constant of the impulse response's amplitude, ms.
    pub decay_ms: f64,
    /// Wet share of the output, 0-1 (1: the body alone, every partial's level random).
    pub mix: f64,
    /// Seed of the impulse response's Gaussian noise.
    pub seed: u64,
}

impl Body {
    /// A body with decay in [`BODY_DECAY_MS`] (log-uniform) and mix 0.6-1.
    pub fn random(rng: &mut SplitMix64) -> Body {
        let (lo, hi) = BODY_DECAY_MS;
        Body {
            decay_ms: rng.range(lo.ln(), hi.ln()).exp(),
            mix: rng.range(0.6, 1.0),
            seed: rng.next_u64(),
        }
    }

    /// The impulse response at `sample_rate` Hz: Gaussian noise under an `exp(-t / decay)`
    /// envelope, scaled to unit energy (so white noise keeps its power on average).
    pub fn impulse_response(&self, sample_rate: u32) -> Vec<f64> {
        let tau = (self.decay_ms.max(0.1) * 1e-3 * sample_rate as f64).max(1.0);
        let len = (LENGTH_IN_DECAYS * tau).ceil() as usize;
        let mut rng = SplitMix64::new(self.seed);
        let mut h: Vec<f64> = (0..len)
            .map(|n| rng.normal() * (-(n as f64) / tau).exp())
            .collect();
        let energy = h.iter().map(|x| x * x).sum::<f64>().sqrt();
        if energy > 0.0 {
            h.iter_mut().for_each(|x| *x /= energy);
        }
        h
    }

    /// Filters a mono clip at `sample_rate` Hz in place: `(1 - mix) x + mix (h * x)`, the
    /// convolution's tail past the clip's end cut.
    pub fn apply(&self, samples: &mut [f32], sample_rate: u32) {
        if samples.is_empty() {
            return;
        }
        let mut h = self.impulse_response(sample_rate);
        let n = (samples.len() + h.len() - 1).next_power_of_two();
        let mut planner = realfft::RealFftPlanner::<f64>::new();
        let forward = planner.plan_fft_forward(n);
        let inverse = planner.plan_fft_inverse(n);
        let spectrum = |x: &mut Vec<f64>| {
            x.resize(n, 0.0);
            let mut out = forward.make_output_vec();
            // Lengths are the plan's own, so the transform cannot fail.
            forward.process(x, &mut out).expect("sizes match the plan");
            out
        };
        let mut x: Vec<f64> = samples.iter().map(|&s| s as f64).collect();
        let sx = spectrum(&mut x);
        let sh = spectrum(&mut h);
        let mut product: Vec<Complex64> = sx.iter().zip(&sh).map(|(a, b)| a * b).collect();
        let mut wet = inverse.make_output_vec();
        inverse
            .process(&mut product, &mut wet)
            .expect("sizes match the plan");
        let (dry_share, wet_share) = (1.0 - self.mix.clamp(0.0, 1.0), self.mix.clamp(0.0, 1.0));
        for (s, w) in samples.iter_mut().zip(&wet) {
            *s = (dry_share * *s as f64 + wet_share * w / n as f64) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::probes::*;
    use super::*;
    use crate::rng::normals;

    /// Mean level of harmonics `1..=count` of `F0` over the steady part, dB.
    fn partial_levels_db(x: &[f32], count: usize) -> Vec<f64> {
        let tracks = harmonic_tracks(&x[8000..], RATE, F0, count);
        (0..count)
            .map(|k| {
                let mean = tracks.iter().map(|t| t[k]).sum::<f64>() / tracks.len() as f64;
                20.0 * mean.max(1e-12).log10()
            })
            .collect()
    }

    /// A body alone (mix 1) keeps the note, and gives the partials of a tone with a smooth
    /// spectrum independent random levels: the wet response at a partial is a complex Gaussian
    /// of unit power, so its level in dB has a standard deviation of 5.6 dB (Rayleigh), and at
    /// 220 Hz spacing with a 5 ms decay neighbouring partials correlate by only
    /// `1 / sqrt(1 + (pi * 220 * 0.005)^2) = 0.28`. Over 30 partials and 8 bodies the measured
    /// spread must lie between 4 and 8 dB.
    #[test]
    fn body_scrambles_partial_levels_and_keeps_the_note() {
        let dry = harmonic_tone(F0, 30, 1.0, RATE);
        let before = partial_levels_db(&dry, 30);
        let mut spreads = Vec::new();
        for seed in 0..8 {
            let body = Body {
                decay_ms: 5.0,
                mix: 1.0,
                seed,
            };
            let mut wet = dry.clone();
            body.apply(&mut wet, RATE);
            let f0 = estimate_f0(&wet[8000..28000], RATE);
            assert!(cents(f0, F0).abs() < 20.0, "seed {seed}: F0 {f0:.2} Hz");
            let change: Vec<f64> = partial_levels_db(&wet, 30)
                .iter()
                .zip(&before)
                .map(|(a, b)| a - b)
                .collect();
            let mean = change.iter().sum::<f64>() / change.len() as f64;
            let var = change.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / change.len() as f64;
            spreads.push(var.sqrt());
        }
        let spread = spreads.iter().sum::<f64>() / spreads.len() as f64;
        eprintln!("body: partial level spread {spread:.2} dB (per body {spreads:.1?})");
        assert!(spread > 4.0 && spread < 8.0, "{spread}");
    }

    /// The response has unit energy, so white noise keeps its power within a fraction of a dB
    /// on average over bodies; the dry share passes the input unchanged (mix 0 is identity).
    #[test]
    fn body_keeps_the_level_of_noise_and_mix_zero_is_identity() {
        let mut rng = SplitMix64::new(9);
        let noise: Vec<f32> = normals(&mut rng, 32000).iter().map(|g| g * 0.1).collect();
        let mut gains = 0.0;
        for seed in 0..16 {
            let mut wet = noise.clone();
            Body {
                decay_ms: 4.0,
                mix: 1.0,
                seed,
            }
            .apply(&mut wet, RATE);
            gains += rms_db(&wet[2000..]) - rms_db(&noise[2000..]);
        }
        let gain = gains / 16.0;
        assert!(gain.abs() < 0.5, "{gain} dB");
        let mut same = noise.clone();
        Body {
            decay_ms: 4.0,
            mix: 0.0,
            seed: 3,
        }
        .apply(&mut same, RATE);
        let err = same
            .iter()
            .zip(&noise)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 1e-6, "{err}");
    }

    /// Draws are reproducible, in range, and different bodies differ.
    #[test]
    fn random_bodies_are_deterministic_and_in_range() {
        let (mut a, mut b) = (SplitMix64::new(5), SplitMix64::new(5));
        let first: Vec<Body> = (0..50).map(|_| Body::random(&mut a)).collect();
        let again: Vec<Body> = (0..50).map(|_| Body::random(&mut b)).collect();
        assert_eq!(first, again);
        for body in &first {
            assert!((BODY_DECAY_MS.0..=BODY_DECAY_MS.1).contains(&body.decay_ms));
            assert!((0.6..=1.0).contains(&body.mix));
        }
        assert_ne!(
            first[0].impulse_response(RATE),
            first[1].impulse_response(RATE)
        );
    }
}
