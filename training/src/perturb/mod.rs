//! Training-only random perturbations of the model's input audio (DESIGN.md, Model; Tanaka et
//! al.): a random pitch shift of the timbre- and variation-encoder input, and a random timbre
//! distortion of the pitch-encoder input.
//!
//! - [`pitch_shift`] / [`random_pitch_shift`] / [`random_semitones`]: duration-preserving pitch shift (WSOLA time
//!   stretch, then band-limited resampling back to the original length); the random one draws a
//!   whole number of semitones uniformly in `-7..=7` (0 included).
//! - [`Effect`]: ten timbre effects ([`EffectKind::ALL`]) that change the spectral envelope,
//!   the noise content, the temporal envelope or the room, but keep the note: linear
//!   time-invariant ones keep a periodic signal periodic, the nonlinear ones only add harmonics
//!   of the same period (or, for the bit crusher, low-level aliases), and the time-varying ones
//!   detune by at most [`MAX_CHORUS_DETUNE_CENTS`].
//! - [`random_distortion`] draws [`DISTORTION_EFFECTS`] effects of distinct kinds with random
//!   parameters; [`distort`] draws and applies them.
//! - [`Body`]: a random instrument body (a short decaying noise impulse response) that gives
//!   every partial its own random level; outside the ten-effect pool, switched on by the
//!   training config's `body_filter`.
//!
//! Everything is a pure function of its inputs and the [`SplitMix64`] state: the same seed
//! gives the same numbers. Levels are in dB, frequencies in Hz, times in milliseconds or
//! seconds as named; samples are mono `f32` at `sample_rate` Hz. The nonlinear effects
//! (distortion, bit crush, compressor) work relative to the clip's peak, so what they do does
//! not depend on the clip's level. Every effect runs on the whole clip at once (offline).

mod body;
mod distortion;
mod dynamics;
mod filters;
mod modulation;
mod pitch_shift;
#[cfg(test)]
pub(crate) mod probes;
mod reverb;

pub use body::{Body, BODY_DECAY_MS};
pub use pitch_shift::{pitch_shift, random_pitch_shift, random_semitones, MAX_SHIFT_SEMITONES};

use crate::rng::SplitMix64;

/// Effects applied by [`distort`] (the paper's "2 of N").
pub const DISTORTION_EFFECTS: usize = 2;

/// Most detuning the chorus may cause in its delayed voices, in cents (peak, from the delay
/// modulation); [`Effect::random`] limits the chorus depth to it.
pub const MAX_CHORUS_DETUNE_CENTS: f64 = 20.0;

/// The kind of an [`Effect`], without parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EffectKind {
    /// Biquad low-pass.
    LowPass,
    /// Biquad high-pass.
    HighPass,
    /// Resonant 4-pole ladder low-pass.
    Ladder,
    /// Random peaking EQ.
    Eq,
    /// Waveshaping distortion.
    Distortion,
    /// Bit crusher.
    BitCrush,
    /// Chorus.
    Chorus,
    /// Phaser.
    Phaser,
    /// Reverb.
    Reverb,
    /// Compressor.
    Compressor,
}

impl EffectKind {
    /// All kinds, the pool [`random_distortion`] draws from.
    pub const ALL: [EffectKind; 10] = [
        EffectKind::LowPass,
        EffectKind::HighPass,
        EffectKind::Ladder,
        EffectKind::Eq,
        EffectKind::Distortion,
        EffectKind::BitCrush,
        EffectKind::Chorus,
        EffectKind::Phaser,
        EffectKind::Reverb,
        EffectKind::Compressor,
    ];
}

/// One band of [`Effect::Eq`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EqBand {
    /// Centre frequency, Hz.
    pub freq_hz: f64,
    /// Gain at the centre, dB.
    pub gain_db: f64,
    /// Quality factor (bandwidth).
    pub q: f64,
}

/// A timbre effect with its parameters. The ranges given are those [`Effect::random`] draws
/// from ("log" marks a log-uniform draw); [`Effect::apply`] accepts any values, clamping
/// frequencies to `[10 Hz, 0.45 * sample_rate]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// 12 dB/octave biquad low-pass.
    LowPass {
        /// Cut-off, Hz: 400-4000 (log).
        cutoff_hz: f64,
        /// Quality factor: 0.5-2.
        q: f64,
    },
    /// 12 dB/octave biquad high-pass.
    HighPass {
        /// Cut-off, Hz: 150-1500 (log).
        cutoff_hz: f64,
        /// Quality factor: 0.5-2.
        q: f64,
    },
    /// Resonant 4-pole (24 dB/octave) ladder low-pass, linear zero-delay-feedback model, with
    /// its pass-band gain restored to 1.
    Ladder {
        /// Cut-off, Hz: 300-4000 (log).
        cutoff_hz: f64,
        /// Resonance, 0-1 (1 self-oscillates): 0.2-0.7, at most +10 dB at the cut-off.
        resonance: f64,
    },
    /// Peaking EQ bands in series.
    Eq {
        /// 2-4 bands; centre 150-6000 Hz (log), gain +-(3-12) dB, Q 0.7-4 (log).
        bands: Vec<EqBand>,
    },
    /// Tanh waveshaper: `peak * tanh(g x / peak) / tanh(g)` with `g` the drive, so the clip's
    /// peak stays where it was.
    Distortion {
        /// Drive at the clip's peak, dB: 10-30.
        drive_db: f64,
    },
    /// Bit crusher: sample-and-hold, then rounding to a grid of `2^(bits - 1)` steps per peak.
    BitCrush {
        /// Resolution relative to the clip's peak, bits: 4-7.
        bits: u32,
        /// Sample-and-hold factor (1 keeps the rate): 1-4.
        downsample: u32,
    },
    /// Chorus: delayed copies with sine-modulated delays, mixed with the dry signal.
    Chorus {
        /// Delayed voices: 1-3 (their modulation phases are spread evenly).
        voices: u32,
        /// Mean delay, ms: 7-20.
        delay_ms: f64,
        /// Modulation depth (peak delay deviation), ms: 0.3 up to 3 and to the depth that
        /// detunes by [`MAX_CHORUS_DETUNE_CENTS`] at `rate_hz`.
        depth_ms: f64,
        /// Modulation rate, Hz: 0.2-1.5.
        rate_hz: f64,
        /// Wet share of the output: 0.3-0.6.
        mix: f64,
    },
    /// Phaser: first-order all-passes with a swept break frequency, with feedback, mixed
    /// half and half with the dry signal.
    Phaser {
        /// All-pass stages: 4, 6 or 8.
        stages: u32,
        /// Lowest break frequency of the sweep, Hz: 200-500 (log).
        min_hz: f64,
        /// Highest break frequency of the sweep, Hz: 2000-6000 (log).
        max_hz: f64,
        /// Sweep rate, Hz: 0.2-1.5.
        rate_hz: f64,
        /// Feedback from the last stage to the input: 0-0.6.
        feedback: f64,
    },
    /// Reverb: 8-line feedback delay network (Hadamard mixing, damped loops); the wet signal
    /// is scaled to the dry signal's RMS before mixing.
    Reverb {
        /// Decay time to -60 dB at low frequencies, s: 0.4-2.5.
        rt60_s: f64,
        /// High-frequency damping in the loops, 0-1: 0-0.5.
        damping: f64,
        /// Wet share of the output: 0.2-0.5.
        mix: f64,
    },
    /// Feed-forward peak compressor; the output is scaled back to the input's peak.
    Compressor {
        /// Threshold relative to the clip's peak, dB: -30 to -10.
        threshold_db: f64,
        /// Ratio: 2-10 (log).
        ratio: f64,
        /// Attack time constant, ms: 1-30 (log).
        attack_ms: f64,
        /// Release time constant, ms: 30-300 (log).
        release_ms: f64,
    },
}

/// Log-uniform draw in `[lo, hi)`.
fn log_range(rng: &mut SplitMix64, lo: f64, hi: f64) -> f64 {
    rng.range(lo.ln(), hi.ln()).exp()
}

impl Effect {
    /// This effect's kind.
    pub fn kind(&self) -> EffectKind {
        match self {
            Effect::LowPass { .. } => EffectKind::LowPass,
            Effect::HighPass { .. } => EffectKind::HighPass,
            Effect::Ladder { .. } => EffectKind::Ladder,
            Effect::Eq { .. } => EffectKind::Eq,
            Effect::Distortion { .. } => EffectKind::Distortion,
            Effect::BitCrush { .. } => EffectKind::BitCrush,
            Effect::Chorus { .. } => EffectKind::Chorus,
            Effect::Phaser { .. } => EffectKind::Phaser,
            Effect::Reverb { .. } => EffectKind::Reverb,
            Effect::Compressor { .. } => EffectKind::Compressor,
        }
    }

    /// An effect of `kind` with parameters drawn from the ranges documented on [`Effect`]:
    /// wide enough to change the timbre audibly, narrow enough to keep the note.
    pub fn random(kind: EffectKind, rng: &mut SplitMix64) -> Effect {
        match kind {
            EffectKind::LowPass => Effect::LowPass {
                cutoff_hz: log_range(rng, 400.0, 4000.0),
                q: rng.range(0.5, 2.0),
            },
            EffectKind::HighPass => Effect::HighPass {
                cutoff_hz: log_range(rng, 150.0, 1500.0),
                q: rng.range(0.5, 2.0),
            },
            EffectKind::Ladder => Effect::Ladder {
                cutoff_hz: log_range(rng, 300.0, 4000.0),
                resonance: rng.range(0.2, 0.7),
            },
            EffectKind::Eq => {
                let n = rng.int(2, 4);
                let bands = (0..n)
                    .map(|_| {
                        let freq_hz = log_range(rng, 150.0, 6000.0);
                        let magnitude = rng.range(3.0, 12.0);
                        let gain_db = if rng.unit() < 0.5 {
                            -magnitude
                        } else {
                            magnitude
                        };
                        let q = log_range(rng, 0.7, 4.0);
                        EqBand {
                            freq_hz,
                            gain_db,
                            q,
                        }
                    })
                    .collect();
                Effect::Eq { bands }
            }
            EffectKind::Distortion => Effect::Distortion {
                drive_db: rng.range(10.0, 30.0),
            },
            EffectKind::BitCrush => Effect::BitCrush {
                bits: rng.int(4, 7) as u32,
                downsample: rng.int(1, 4) as u32,
            },
            EffectKind::Chorus => {
                let voices = rng.int(1, 3) as u32;
                let delay_ms = rng.range(7.0, 20.0);
                let rate_hz = rng.range(0.2, 1.5);
                let depth_ms = rng.range(0.3, modulation::max_chorus_depth_ms(rate_hz).min(3.0));
                let mix = rng.range(0.3, 0.6);
                Effect::Chorus {
                    voices,
                    delay_ms,
                    depth_ms,
                    rate_hz,
                    mix,
                }
            }
            EffectKind::Phaser => Effect::Phaser {
                stages: 2 * rng.int(2, 4) as u32,
                min_hz: log_range(rng, 200.0, 500.0),
                max_hz: log_range(rng, 2000.0, 6000.0),
                rate_hz: rng.range(0.2, 1.5),
                feedback: rng.range(0.0, 0.6),
            },
            EffectKind::Reverb => Effect::Reverb {
                rt60_s: rng.range(0.4, 2.5),
                damping: rng.range(0.0, 0.5),
                mix: rng.range(0.2, 0.5),
            },
            EffectKind::Compressor => Effect::Compressor {
                threshold_db: rng.range(-30.0, -10.0),
                ratio: log_range(rng, 2.0, 10.0),
                attack_ms: log_range(rng, 1.0, 30.0),
                release_ms: log_range(rng, 30.0, 300.0),
            },
        }
    }

    /// Applies the effect in place to a mono clip at `sample_rate` Hz. The length is kept;
    /// reverb and chorus tails past the end are cut.
    pub fn apply(&self, samples: &mut [f32], sample_rate: u32) {
        let sr = sample_rate as f64;
        match *self {
            Effect::LowPass { cutoff_hz, q } => filters::low_pass(samples, sr, cutoff_hz, q),
            Effect::HighPass { cutoff_hz, q } => filters::high_pass(samples, sr, cutoff_hz, q),
            Effect::Ladder {
                cutoff_hz,
                resonance,
            } => filters::ladder(samples, sr, cutoff_hz, resonance),
            Effect::Eq { ref bands } => filters::eq(samples, sr, bands),
            Effect::Distortion { drive_db } => distortion::waveshape(samples, drive_db),
            Effect::BitCrush { bits, downsample } => {
                distortion::bit_crush(samples, bits, downsample)
            }
            Effect::Chorus {
                voices,
                delay_ms,
                depth_ms,
                rate_hz,
                mix,
            } => modulation::chorus(samples, sr, voices, delay_ms, depth_ms, rate_hz, mix),
            Effect::Phaser {
                stages,
                min_hz,
                max_hz,
                rate_hz,
                feedback,
            } => modulation::phaser(samples, sr, stages, min_hz, max_hz, rate_hz, feedback),
            Effect::Reverb {
                rt60_s,
                damping,
                mix,
            } => reverb::reverb(samples, sr, rt60_s, damping, mix),
            Effect::Compressor {
                threshold_db,
                ratio,
                attack_ms,
                release_ms,
            } => dynamics::compress(samples, sr, threshold_db, ratio, attack_ms, release_ms),
        }
    }
}

/// Draws `n_effects` effects of distinct kinds (uniformly among [`EffectKind::ALL`], in random
/// order) with random parameters ([`Effect::random`]).
///
/// # Panics
/// If `n_effects` exceeds the number of kinds (10).
pub fn random_distortion(rng: &mut SplitMix64, n_effects: usize) -> Vec<Effect> {
    let mut kinds = EffectKind::ALL;
    assert!(
        n_effects <= kinds.len(),
        "at most {} distinct effects",
        kinds.len()
    );
    let last = kinds.len() as i32 - 1;
    (0..n_effects)
        .map(|i| {
            // Partial Fisher-Yates shuffle: the first i kinds are the ones drawn so far.
            let j = rng.int(i as i32, last) as usize;
            kinds.swap(i, j);
            Effect::random(kinds[i], rng)
        })
        .collect()
}

/// The pitch encoder's timbre distortion: draws [`DISTORTION_EFFECTS`] effects with
/// [`random_distortion`], applies them in order in place, and returns them.
pub fn distort(samples: &mut [f32], sample_rate: u32, rng: &mut SplitMix64) -> Vec<Effect> {
    let effects = random_distortion(rng, DISTORTION_EFFECTS);
    for effect in &effects {
        effect.apply(samples, sample_rate);
    }
    effects
}

/// Largest absolute sample value (0 for an empty clip).
fn peak(samples: &[f32]) -> f32 {
    samples.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

/// Root mean square (0 for an empty clip).
fn rms(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

/// Clamps a frequency to what the filters handle at `sample_rate`: `[10 Hz, 0.45 * rate]`.
fn clamp_hz(hz: f64, sample_rate: f64) -> f64 {
    hz.clamp(10.0, 0.45 * sample_rate)
}

#[cfg(test)]
mod tests {
    use super::probes::*;
    use super::*;

    /// Checks that `effect` lies in the ranges documented on [`Effect`].
    fn assert_in_range(effect: &Effect) {
        let within = |x: f64, lo: f64, hi: f64| assert!((lo..=hi).contains(&x), "{effect:?}");
        match *effect {
            Effect::LowPass { cutoff_hz, q } => {
                within(cutoff_hz, 400.0, 4000.0);
                within(q, 0.5, 2.0);
            }
            Effect::HighPass { cutoff_hz, q } => {
                within(cutoff_hz, 150.0, 1500.0);
                within(q, 0.5, 2.0);
            }
            Effect::Ladder {
                cutoff_hz,
                resonance,
            } => {
                within(cutoff_hz, 300.0, 4000.0);
                within(resonance, 0.2, 0.7);
            }
            Effect::Eq { ref bands } => {
                within(bands.len() as f64, 2.0, 4.0);
                for b in bands {
                    within(b.freq_hz, 150.0, 6000.0);
                    within(b.gain_db.abs(), 3.0, 12.0);
                    within(b.q, 0.7, 4.0);
                }
            }
            Effect::Distortion { drive_db } => within(drive_db, 10.0, 30.0),
            Effect::BitCrush { bits, downsample } => {
                within(bits as f64, 4.0, 7.0);
                within(downsample as f64, 1.0, 4.0);
            }
            Effect::Chorus {
                voices,
                delay_ms,
                depth_ms,
                rate_hz,
                mix,
            } => {
                within(voices as f64, 1.0, 3.0);
                within(delay_ms, 7.0, 20.0);
                within(depth_ms, 0.3, 3.0);
                within(rate_hz, 0.2, 1.5);
                within(mix, 0.3, 0.6);
                // Peak detune of a sine-modulated delay: 2 pi rate depth (relative).
                let detune = 2.0 * std::f64::consts::PI * rate_hz * depth_ms / 1000.0;
                within(1200.0 * (1.0 + detune).log2(), 0.0, MAX_CHORUS_DETUNE_CENTS);
            }
            Effect::Phaser {
                stages,
                min_hz,
                max_hz,
                rate_hz,
                feedback,
            } => {
                assert!([4, 6, 8].contains(&stages), "{effect:?}");
                within(min_hz, 200.0, 500.0);
                within(max_hz, 2000.0, 6000.0);
                within(rate_hz, 0.2, 1.5);
                within(feedback, 0.0, 0.6);
            }
            Effect::Reverb {
                rt60_s,
                damping,
                mix,
            } => {
                within(rt60_s, 0.4, 2.5);
                within(damping, 0.0, 0.5);
                within(mix, 0.2, 0.5);
            }
            Effect::Compressor {
                threshold_db,
                ratio,
                attack_ms,
                release_ms,
            } => {
                within(threshold_db, -30.0, -10.0);
                within(ratio, 2.0, 10.0);
                within(attack_ms, 1.0, 30.0);
                within(release_ms, 30.0, 300.0);
            }
        }
    }

    /// Same seed, same draw; two distinct kinds; parameters in range; all ten kinds reachable.
    #[test]
    fn random_distortion_is_deterministic_distinct_in_range_and_covers_all_kinds() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..400u64 {
            let a = random_distortion(&mut SplitMix64::new(seed), DISTORTION_EFFECTS);
            let b = random_distortion(&mut SplitMix64::new(seed), DISTORTION_EFFECTS);
            assert_eq!(a, b, "seed {seed}");
            assert_eq!(a.len(), 2);
            assert_ne!(a[0].kind(), a[1].kind(), "seed {seed}");
            for effect in &a {
                assert_in_range(effect);
                seen.insert(effect.kind());
            }
        }
        assert_eq!(seen.len(), EffectKind::ALL.len(), "{seen:?}");
        // All ten at once: a permutation.
        let all = random_distortion(&mut SplitMix64::new(7), 10);
        let kinds: std::collections::BTreeSet<_> = all.iter().map(Effect::kind).collect();
        assert_eq!(kinds.len(), 10);
    }

    /// Many random draws of every kind keep the note (within 20 cents), the length, and finite
    /// samples.
    #[test]
    fn random_effects_of_every_kind_keep_the_note() {
        let dry = harmonic_tone(F0, 20, 1.0, RATE);
        let mut rng = SplitMix64::new(11);
        let mut worst = 0.0f64;
        for kind in EffectKind::ALL {
            for _ in 0..4 {
                let effect = Effect::random(kind, &mut rng);
                let mut wet = dry.clone();
                effect.apply(&mut wet, RATE);
                assert_eq!(wet.len(), dry.len());
                assert!(wet.iter().all(|x| x.is_finite()), "{effect:?}");
                let f0 = estimate_f0(&wet[8000..28000], RATE);
                let off = cents(f0, F0).abs();
                worst = worst.max(off);
                assert!(off < 20.0, "{effect:?}: F0 {f0:.2} Hz");
            }
        }
        eprintln!("random effects: worst F0 error {worst:.2} cents");
    }

    /// `distort` applies two effects and keeps the note, for many seeds.
    #[test]
    fn distort_applies_two_effects_and_keeps_the_note() {
        let dry = harmonic_tone(F0, 20, 1.0, RATE);
        let mut worst = 0.0f64;
        for seed in 0..24u64 {
            let mut wet = dry.clone();
            let effects = distort(&mut wet, RATE, &mut SplitMix64::new(seed));
            assert_eq!(effects.len(), 2);
            let mut again = dry.clone();
            assert_eq!(
                distort(&mut again, RATE, &mut SplitMix64::new(seed)),
                effects
            );
            assert_eq!(again, wet, "deterministic");
            assert!(wet.iter().all(|x| x.is_finite()));
            assert_ne!(wet, dry);
            let f0 = estimate_f0(&wet[8000..28000], RATE);
            let off = cents(f0, F0).abs();
            worst = worst.max(off);
            assert!(off < 20.0, "seed {seed} {effects:?}: F0 {f0:.2} Hz");
        }
        eprintln!("distort: worst F0 error {worst:.2} cents");
    }

    /// Silence and empty clips stay silent and finite.
    #[test]
    fn effects_handle_silence_and_empty_clips() {
        let mut rng = SplitMix64::new(3);
        for kind in EffectKind::ALL {
            let effect = Effect::random(kind, &mut rng);
            let mut silent = vec![0.0f32; 4000];
            effect.apply(&mut silent, RATE);
            assert!(silent.iter().all(|&x| x == 0.0), "{effect:?}");
            let mut empty: Vec<f32> = Vec::new();
            effect.apply(&mut empty, RATE);
        }
    }
}
