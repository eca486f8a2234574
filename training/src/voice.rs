//! A sung-vowel source that no SoundFont renders: formant synthesis of a [`Score`], so the
//! swap can be measured on a voice-like input the project never saw (`timbreswap
//! eval-transfer --voice-sources`).
//!
//! The voice is a source-filter model. The source is a Rosenberg glottal pulse (opening 40 %
//! of the period, closing 16 %) whose flow derivative is radiated, with jitter (0.4 % of the
//! period, drawn per period) and shimmer (0.5 dB per period), plus aspiration noise gated by
//! the glottal flow. The filter is a cascade of four two-pole formant resonators (Klatt's
//! digital resonator) set to a vowel per note (a, e, i, o, u: the classic adult male formant
//! frequencies, raised up to 17 % for phrases in a higher register) and gliding to the next
//! vowel over about 40 ms. Pitch follows the score's notes and bends (its vibrato and glides
//! included); loudness follows velocity and expression (CC 11), with a 40 ms attack and a
//! 60 ms release.

use crate::dataset::Score;
use crate::rng::SplitMix64;

/// A vowel: its first four formants as (frequency Hz, bandwidth Hz), adult male.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vowel {
    /// Name, for reports.
    pub name: &'static str,
    /// Formant frequencies and bandwidths, in Hz.
    pub formants: [(f32, f32); 4],
}

/// The five vowels the voice sings (formant frequencies after Peterson and Barney's adult male
/// averages; bandwidths widening with frequency).
pub const VOWELS: [Vowel; 5] = [
    Vowel {
        name: "a",
        formants: [
            (730.0, 80.0),
            (1090.0, 90.0),
            (2440.0, 120.0),
            (3400.0, 150.0),
        ],
    },
    Vowel {
        name: "e",
        formants: [
            (530.0, 60.0),
            (1840.0, 100.0),
            (2480.0, 120.0),
            (3500.0, 150.0),
        ],
    },
    Vowel {
        name: "i",
        formants: [
            (270.0, 60.0),
            (2290.0, 100.0),
            (3010.0, 120.0),
            (3700.0, 150.0),
        ],
    },
    Vowel {
        name: "o",
        formants: [
            (570.0, 70.0),
            (840.0, 80.0),
            (2410.0, 120.0),
            (3400.0, 150.0),
        ],
    },
    Vowel {
        name: "u",
        formants: [
            (300.0, 60.0),
            (870.0, 80.0),
            (2240.0, 120.0),
            (3300.0, 150.0),
        ],
    },
];

/// Lowest and highest MIDI notes the voice sings (G2 to A5: bass to soprano).
pub const VOICE_RANGE: (u8, u8) = (43, 81);

/// Peak level of a rendered phrase (linear; the dataset's renders peak near it).
pub const VOICE_PEAK: f32 = 0.5;

/// Glottal opening and closing phases, as shares of the period (Rosenberg's pulse).
const OPENING: f32 = 0.4;
const CLOSING: f32 = 0.16;
/// Jitter (standard deviation of each period's length) and shimmer (of its level, dB).
const JITTER: f64 = 0.004;
const SHIMMER_DB: f64 = 0.5;
/// Aspiration noise relative to the voiced source.
const BREATH: f32 = 0.08;
/// Attack and release times, in seconds.
const ATTACK_S: f32 = 0.04;
const RELEASE_S: f32 = 0.06;
/// Time constant of the glide from one vowel's formants to the next, in seconds.
const VOWEL_GLIDE_S: f32 = 0.02;
/// Samples between formant coefficient updates.
const BLOCK: usize = 32;

/// Sings `score` at `rate` Hz, a vowel per note drawn with `seed`. Mono, peak [`VOICE_PEAK`]
/// (silence stays silence). Allocates.
pub fn sing(score: &Score, rate: u32, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed ^ 0x766f_6963_6500);
    let vowels: Vec<Vowel> = (0..score.notes.len())
        .map(|_| VOWELS[rng.int(0, VOWELS.len() as i32 - 1) as usize])
        .collect();
    sing_vowels(score, rate, seed, &vowels)
}

/// [`sing`] with the vowel of note `i` given as `vowels[i % vowels.len()]` (at least one).
pub fn sing_vowels(score: &Score, rate: u32, seed: u64, vowels: &[Vowel]) -> Vec<f32> {
    assert!(!vowels.is_empty(), "at least one vowel");
    let sr = rate as f32;
    let mut rng = SplitMix64::new(seed);
    // A higher register sings with a shorter vocal tract (up to a female voice's 17 %).
    let mean_key = if score.notes.is_empty() {
        60.0
    } else {
        score.notes.iter().map(|n| n.key as f32).sum::<f32>() / score.notes.len() as f32
    };
    let tract = 1.0 + 0.17 * ((mean_key - 52.0) / 20.0).clamp(0.0, 1.0);
    // Expression (CC 11) steps, sorted by time.
    let expression: Vec<(usize, f32)> = score
        .events
        .iter()
        .filter(|e| e.command == 0xB0 && e.data1 == 11)
        .map(|e| (e.at, e.data2 as f32 / 127.0))
        .collect();

    let mut out = vec![0.0f32; score.length];
    let mut resonators = [Resonator::default(); 4];
    let mut formants = vowels[0].formants.map(|(f, b)| (f * tract, b));
    let glide = 1.0 - (-(BLOCK as f32) / (VOWEL_GLIDE_S * sr)).exp();
    let (attack, release) = (1.0 / (ATTACK_S * sr), (-1.0 / (RELEASE_S * sr)).exp());
    let (mut phase, mut period_scale, mut period_gain) = (0.0f32, 1.0f32, 1.0f32);
    let (mut flow_before, mut envelope) = (0.0f32, 0.0f32);
    let (mut bend_at, mut expression_at) = (0usize, 0usize);
    let (mut bend, mut level) = (0.0f64, 1.0f32);
    let (mut current, mut next): (Option<usize>, usize) = (None, 0);
    for (n, y) in out.iter_mut().enumerate() {
        // The note sounding or last sounded (monophonic), its bend and expression.
        while next < score.notes.len() && score.notes[next].on <= n {
            current = Some(next);
            next += 1;
        }
        while bend_at < score.bends.len() && score.bends[bend_at].0 <= n {
            bend = score.bends[bend_at].1;
            bend_at += 1;
        }
        while expression_at < expression.len() && expression[expression_at].0 <= n {
            level = expression[expression_at].1;
            expression_at += 1;
        }
        let Some(i) = current else {
            continue;
        };
        let note = score.notes[i];
        let sounding = n < note.off;
        let velocity = (note.velocity as f32 / 127.0).powf(1.5);
        envelope = if sounding {
            (envelope + attack).min(1.0)
        } else {
            envelope * release
        };
        if n % BLOCK == 0 {
            let target = vowels[i % vowels.len()].formants;
            for (k, (f, b)) in formants.iter_mut().enumerate() {
                *f += glide * (target[k].0 * tract - *f);
                *b += glide * (target[k].1 - *b);
                resonators[k].tune(*f, *b, sr);
            }
        }
        let f0 = crate::transfer::midi_to_hz(note.key as f64 + bend) as f32;
        phase += f0 * period_scale / sr;
        if phase >= 1.0 {
            phase -= 1.0;
            period_scale = (1.0 + JITTER * rng.normal()) as f32;
            period_gain = 10f32.powf((SHIMMER_DB * rng.normal()) as f32 / 20.0);
        }
        let flow = rosenberg(phase);
        // The radiated source: the flow's derivative, scaled so the level does not grow with
        // the pitch; plus aspiration while the glottis is open.
        let voiced = (flow - flow_before) * sr / f0.max(1.0) * 0.25;
        flow_before = flow;
        let noise = BREATH * flow * (2.0 * rng.unit() as f32 - 1.0);
        let mut x = (voiced + noise) * envelope * velocity * level * period_gain;
        for r in &mut resonators {
            x = r.run(x);
        }
        *y = x;
    }
    let peak = out.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if peak > 0.0 {
        let gain = VOICE_PEAK / peak;
        out.iter_mut().for_each(|v| *v *= gain);
    }
    out
}

/// Rosenberg's glottal flow at `phase` (0-1) of a period: a raised-cosine opening, a
/// quarter-cosine closing, then closed.
fn rosenberg(phase: f32) -> f32 {
    use std::f32::consts::PI;
    if phase < OPENING {
        0.5 * (1.0 - (PI * phase / OPENING).cos())
    } else if phase < OPENING + CLOSING {
        (0.5 * PI * (phase - OPENING) / CLOSING).cos()
    } else {
        0.0
    }
}

/// Klatt's two-pole digital resonator, unit gain at DC.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Resonator {
    a: f32,
    b: f32,
    c: f32,
    y1: f32,
    y2: f32,
}

impl Resonator {
    /// Centre `hz` and bandwidth `bandwidth` Hz at `sr` Hz.
    pub(crate) fn tune(&mut self, hz: f32, bandwidth: f32, sr: f32) {
        use std::f32::consts::PI;
        let r = (-PI * bandwidth / sr).exp();
        self.c = -r * r;
        self.b = 2.0 * r * (2.0 * PI * hz.min(0.45 * sr) / sr).cos();
        self.a = 1.0 - self.b - self.c;
    }

    /// The next output sample for input `x`.
    pub(crate) fn run(&mut self, x: f32) -> f32 {
        let y = self.a * x + self.b * self.y1 + self.c * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// A score of held notes `(key, on s, off s)` at `rate` Hz (no bends, full expression, velocity
/// 100), ending 0.3 s after the last note-off: what the synthetic sources' tests play.
#[cfg(test)]
pub(crate) fn held_score(notes: &[(u8, f64, f64)], rate: u32) -> Score {
    let at = |s: f64| (s * rate as f64) as usize;
    let notes: Vec<crate::dataset::ScoreNote> = notes
        .iter()
        .map(|&(key, on, off)| crate::dataset::ScoreNote {
            key,
            velocity: 100,
            on: at(on),
            off: at(off),
        })
        .collect();
    let length = notes.last().map_or(0, |n| n.off) + at(0.3);
    Score {
        events: Vec::new(),
        notes,
        bends: vec![(0, 0.0)],
        length,
    }
}

/// Energy of `x` (at `rate` Hz) between `lo` and `hi` Hz: a direct Hann-windowed DFT every
/// `step` Hz, summed. For the synthetic sources' tests.
#[cfg(test)]
pub(crate) fn band_energy(x: &[f32], rate: u32, lo: f32, hi: f32, step: f32) -> f64 {
    let mut sum = 0.0;
    let mut f = lo;
    while f <= hi {
        let w = std::f64::consts::TAU * f as f64 / rate as f64;
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for (n, v) in x.iter().enumerate() {
            let hann = 0.5 - 0.5 * (std::f64::consts::TAU * n as f64 / x.len() as f64).cos();
            re += *v as f64 * hann * (w * n as f64).cos();
            im -= *v as f64 * hann * (w * n as f64).sin();
        }
        sum += re * re + im * im;
        f += step;
    }
    sum
}

/// How well pYIN (between `fmin` and `fmax` Hz) hears `score`'s notes, moved `offset`
/// semitones, in `audio` at `rate` Hz: the frames (160-sample hop) where both the labels and
/// pYIN say a note sounds, those within 50 cents of the note, and all frames. For the
/// synthetic sources' tests.
#[cfg(test)]
pub(crate) fn frames_on_the_score(
    audio: &[f32],
    score: &Score,
    rate: u32,
    (fmin, fmax): (f64, f64),
    offset: f64,
) -> (usize, usize, usize) {
    let hop = 160;
    let track = crate::transfer::track_pitch(audio, rate, hop, fmin, fmax).unwrap();
    let labels = score.frame_notes(hop);
    let (mut both, mut agree) = (0, 0);
    for (f, label) in labels.iter().enumerate() {
        if *label >= 0 && track.voiced.get(f) == Some(&true) {
            both += 1;
            let expected = crate::transfer::midi_to_hz(*label as f64 + offset);
            let cents: f64 = 1200.0 * (track.f0_hz[f] / expected).log2();
            agree += usize::from(cents.abs() < 50.0);
        }
    }
    (both, agree, labels.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 32_000;

    fn held(notes: &[(u8, f64, f64)]) -> Score {
        held_score(notes, RATE)
    }

    /// The voice sings the score's notes: pYIN hears the labelled note (within 50 cents) on
    /// nine in ten of the frames where both the labels and pYIN say a note sounds, across a
    /// bass-to-soprano phrase with every vowel, and is silent outside the notes' releases.
    #[test]
    fn the_voice_sings_the_scores_notes() {
        let score = held(&[
            (45, 0.1, 0.6),
            (52, 0.6, 1.1),
            (60, 1.2, 1.7),
            (67, 1.7, 2.2),
            (76, 2.3, 2.8),
        ]);
        let audio = sing_vowels(&score, RATE, 3, &VOWELS);
        let (both, agree, frames) = frames_on_the_score(&audio, &score, RATE, (80.0, 1200.0), 0.0);
        assert!(both > frames / 2, "{both} of {frames} frames voiced");
        assert!(
            agree * 10 >= both * 9,
            "{agree} of {both} frames on the note"
        );
        // Before the first note and after the last release: silence.
        assert!(audio[..3000].iter().all(|v| *v == 0.0));
        // 0.3 s after the last note-off the release (60 ms) is 43 dB down: under 40 dB below
        // the peak.
        assert!(audio[audio.len() - 100..]
            .iter()
            .all(|v| v.abs() < 0.01 * VOICE_PEAK));
        let peak = audio.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!((peak - VOICE_PEAK).abs() < 1e-6);
    }

    /// The formants shape the spectrum by vowel: on the same held note, /a/ (F1 730 Hz) puts
    /// far more energy around 700 Hz than /i/ (F1 270 Hz, F2 2290 Hz), and /i/ far more
    /// around 2.3 kHz than /a/ (whose F2 is at 1090 Hz).
    #[test]
    fn the_vowel_moves_the_formants() {
        let score = held(&[(48, 0.0, 1.0)]);
        let a = sing_vowels(&score, RATE, 1, &VOWELS[0..1]);
        let i = sing_vowels(&score, RATE, 1, &VOWELS[2..3]);
        let (a, i) = (&a[8_000..16_192], &i[8_000..16_192]);
        let ratio = |x: &[f32]| {
            band_energy(x, RATE, 600.0, 850.0, 10.0) / band_energy(x, RATE, 2150.0, 2450.0, 10.0)
        };
        let (ra, ri) = (ratio(a), ratio(i));
        // At least 20 dB apart either way.
        assert!(ra > 100.0 * ri, "/a/ {ra:.3e} against /i/ {ri:.3e}");
    }
}
