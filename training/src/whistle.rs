//! A whistled source that no SoundFont renders: a [`Score`] whistled an octave up, so the swap
//! can be measured on the input with the least timbre of its own (`timbreswap eval-transfer
//! --whistle-sources`, where the engine plays it back down with Transpose).
//!
//! A whistle is close to a sine: the air jet's edge tone through the mouth's resonance, with
//! weak second and third partials and breath noise around the tone. Here: a sinusoid with its
//! second and third partials 30 and 40 dB under it, breath noise through a resonator tuned to
//! the tone (a tenth of its frequency wide) 18 dB under it, and a broadband hiss 36 dB under
//! it. Each note starts 60 cents flat and rises to pitch over about 30 ms (the lips' scoop);
//! the score's bends (vibrato, glides) follow. Loudness follows velocity and expression (CC
//! 11), with a 30 ms attack and a 50 ms release, and wavers by 0.3 dB (a slow random walk).

use crate::dataset::Score;
use crate::rng::SplitMix64;
use crate::voice::Resonator;

/// Lowest and highest MIDI notes whistled (B4 to B6, about 490 to 1980 Hz: where most people
/// whistle, and under the engine's pitch tracker's 2 kHz).
pub const WHISTLE_RANGE: (u8, u8) = (71, 95);

/// Semitones a score is whistled above its notes: the plugin plays it back down this far.
pub const WHISTLE_OCTAVE: u8 = 12;

/// Peak level of a whistled phrase (linear), as [`crate::voice::VOICE_PEAK`].
pub const WHISTLE_PEAK: f32 = crate::voice::VOICE_PEAK;

/// Second and third partials' amplitudes relative to the tone (-30 and -40 dB).
const SECOND: f32 = 0.0316;
const THIRD: f32 = 0.01;
/// Breath noise around the tone and broadband hiss, RMS relative to the tone's over the phrase
/// (-18 and -36 dB). The breath is white noise through the voice's formant resonator tuned to
/// the tone (its gain does not matter: the mix sets the level).
const BREATH: f32 = 0.126;
const HISS: f32 = 0.0158;
/// The breath resonator's bandwidth, as a share of the tone's frequency.
const BREATH_BANDWIDTH: f32 = 0.1;
/// How flat a note starts, in semitones, and the time constant of its rise to pitch, seconds.
const SCOOP_SEMITONES: f64 = 0.6;
const SCOOP_S: f64 = 0.01;
/// Attack and release times, in seconds.
const ATTACK_S: f32 = 0.03;
const RELEASE_S: f32 = 0.05;
/// Standard deviation of the loudness's random walk, dB, and its time constant, seconds.
const WAVER_DB: f64 = 0.3;
const WAVER_S: f64 = 0.1;

/// Whistles `score` [`WHISTLE_OCTAVE`] semitones above its notes at `rate` Hz, with `seed`
/// for the breath and the wavering. Mono, peak [`WHISTLE_PEAK`] (silence stays silence).
/// Allocates.
pub fn whistle(score: &Score, rate: u32, seed: u64) -> Vec<f32> {
    use std::f64::consts::TAU;
    let sr = rate as f64;
    let mut rng = SplitMix64::new(seed ^ 0x7768_6973_746c);
    let expression: Vec<(usize, f32)> = score
        .events
        .iter()
        .filter(|e| e.command == 0xB0 && e.data1 == 11)
        .map(|e| (e.at, e.data2 as f32 / 127.0))
        .collect();
    // The tone, the breath and the hiss apart, each under the same loudness; then mixed at
    // their shares of the tone's RMS.
    let mut tone = vec![0.0f32; score.length];
    let mut air = vec![0.0f32; score.length];
    let mut hiss = vec![0.0f32; score.length];
    let (attack, release) = (
        1.0 / (ATTACK_S * rate as f32),
        (-1.0 / (RELEASE_S * rate as f32)).exp(),
    );
    let scoop = (-1.0 / (SCOOP_S * sr)).exp();
    let waver_pole = (-1.0 / (WAVER_S * sr)).exp();
    // The walk's input noise for a stationary standard deviation of WAVER_DB.
    let waver_step = WAVER_DB * (1.0 - waver_pole * waver_pole).sqrt();
    let (mut phase, mut envelope, mut waver_db) = (0.0f64, 0.0f32, 0.0f64);
    let (mut bend_at, mut expression_at) = (0usize, 0usize);
    let (mut bend, mut level, mut flat) = (0.0f64, 1.0f32, 0.0f64);
    let (mut current, mut next): (Option<usize>, usize) = (None, 0);
    let mut breath = Resonator::default();
    let mut white_before = 0.0f32;
    for n in 0..score.length {
        while next < score.notes.len() && score.notes[next].on <= n {
            current = Some(next);
            next += 1;
            flat = SCOOP_SEMITONES;
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
        envelope = if n < note.off {
            (envelope + attack).min(1.0)
        } else {
            envelope * release
        };
        flat *= scoop;
        waver_db = waver_pole * waver_db + waver_step * rng.normal();
        let key = (note.key + WHISTLE_OCTAVE) as f64 + bend - flat;
        let f0 = crate::transfer::midi_to_hz(key);
        phase = (phase + TAU * f0 / sr) % TAU;
        if n % 32 == 0 {
            breath.tune(f0 as f32, BREATH_BANDWIDTH * f0 as f32, rate as f32);
        }
        let velocity = (note.velocity as f32 / 127.0).powf(1.5);
        let gain = envelope * velocity * level * 10f32.powf(waver_db as f32 / 20.0);
        tone[n] = gain
            * (phase.sin() as f32
                + SECOND * (2.0 * phase).sin() as f32
                + THIRD * (3.0 * phase).sin() as f32);
        let white = 2.0 * rng.unit() as f32 - 1.0;
        air[n] = gain * breath.run(white);
        // Differentiated white noise: tilted up, as air through the lips.
        hiss[n] = gain * (white - white_before);
        white_before = white;
    }
    let rms = |x: &[f32]| (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>()).sqrt();
    let tone_rms = rms(&tone);
    let share = |x: &[f32], to: f32| {
        let r = rms(x);
        if r > 0.0 {
            (f64::from(to) * tone_rms / r) as f32
        } else {
            0.0
        }
    };
    let (air_gain, hiss_gain) = (share(&air, BREATH), share(&hiss, HISS));
    let mut out: Vec<f32> = tone
        .iter()
        .zip(&air)
        .zip(&hiss)
        .map(|((t, a), h)| t + air_gain * a + hiss_gain * h)
        .collect();
    let peak = out.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if peak > 0.0 {
        let gain = WHISTLE_PEAK / peak;
        out.iter_mut().for_each(|v| *v *= gain);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::midi_to_hz;

    const RATE: u32 = 32_000;

    fn held(notes: &[(u8, f64, f64)]) -> Score {
        crate::voice::held_score(notes, RATE)
    }

    /// The whistle plays the score an octave up: pYIN hears the labelled note plus
    /// [`WHISTLE_OCTAVE`] (within 50 cents) on nine in ten of the frames where both the labels
    /// and pYIN say a note sounds, across the whistled range, silent before the first note.
    #[test]
    fn the_whistle_plays_the_score_an_octave_up() {
        let score = held(&[
            (59, 0.1, 0.6),
            (66, 0.6, 1.1),
            (74, 1.2, 1.7),
            (83, 1.7, 2.2),
        ]);
        let audio = whistle(&score, RATE, 5);
        let octave = f64::from(WHISTLE_OCTAVE);
        let (both, agree, frames) =
            crate::voice::frames_on_the_score(&audio, &score, RATE, (400.0, 2_400.0), octave);
        assert!(both > frames / 2, "{both} of {frames} frames voiced");
        assert!(
            agree * 10 >= both * 9,
            "{agree} of {both} frames on the note"
        );
        assert!(audio[..3000].iter().all(|v| *v == 0.0));
        let peak = audio.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!((peak - WHISTLE_PEAK).abs() < 1e-6);
    }

    /// Energy of `x` within `width` Hz of `hz`, every 2 Hz.
    fn band_energy(x: &[f32], hz: f32, width: f32) -> f64 {
        crate::voice::band_energy(x, RATE, hz - width, hz + width, 2.0)
    }

    /// A whistle is nearly a sine with breath around it: on a held A5 (whistled at 1760 Hz),
    /// the second partial is 25 to 35 dB under the fundamental (30 dB set), and the breath
    /// beside the tone (60-120 Hz away, inside the resonator's 176 Hz) is 15 to 45 dB under
    /// it.
    #[test]
    fn a_whistle_is_a_sine_with_breath() {
        let score = held(&[(81, 0.0, 1.0)]);
        let audio = whistle(&score, RATE, 2);
        let x = &audio[8_000..16_192];
        let f0 = midi_to_hz(93.0) as f32;
        let db = |a: f64, b: f64| 10.0 * (a / b).log10();
        let fundamental = band_energy(x, f0, 8.0);
        let second = db(fundamental, band_energy(x, 2.0 * f0, 8.0));
        assert!(
            (25.0..35.0).contains(&second),
            "second partial {second:.1} dB under"
        );
        let beside = band_energy(x, f0 + 90.0, 30.0) * 9.0 / 31.0;
        let breath = db(fundamental, beside);
        assert!(
            (15.0..45.0).contains(&breath),
            "breath {breath:.1} dB under"
        );
    }
}
