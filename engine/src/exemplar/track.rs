//! The reference clip's pitch track: YIN's pitch where it is sure of it, the nearest sure
//! pitch as the guess elsewhere, and short stray stretches mended to the notes around them.

use super::pitch::{Yin, YIN_TRUST};
use crate::config::StftConfig;

/// YIN's (`yin`'s) pitch (semitones from middle C) of each frame in `frames` of `audio` (mono, at
/// `cfg`'s rate and the training level), where YIN is sure of it (aperiodicity under
/// [`YIN_TRUST`]): frame `t` is YIN over the samples up to its centre plus half a window.
/// Frames are independent, so any split of a clip's frames gives the same values. Allocates.
pub(crate) fn sure_pitches(
    yin: &mut Yin,
    cfg: &StftConfig,
    audio: &[f32],
    frames: std::ops::Range<usize>,
) -> Vec<Option<f32>> {
    let sr = cfg.sample_rate as f32;
    let history = |t: usize| &audio[..(t * cfg.hop + cfg.n_fft / 2).min(audio.len())];
    let sure = |estimate: Option<(f32, f32)>| {
        estimate
            .filter(|(_, aperiodicity)| *aperiodicity < YIN_TRUST)
            .map(|(p, _)| p)
    };
    // Two frames at a time (the same answers as one at a time, in less time).
    let mut out = Vec::with_capacity(frames.len());
    let mut t = frames.start;
    while t + 1 < frames.end {
        out.extend(
            yin.estimate_pair([history(t), history(t + 1)], sr)
                .map(sure),
        );
        t += 2;
    }
    if t < frames.end {
        out.push(sure(yin.estimate(history(t), sr)));
    }
    out
}

/// Shortest stretch of frames, each within [`STRAY_STEP_SEMITONES`] of the one before, that
/// counts as a note of its own: 12 frames, 60 ms at the 5 ms hop.
const STRAY_MAX_FRAMES: usize = 12;

/// Largest pitch step between two frames of one stretch, in semitones (a glide moves far less
/// per frame).
const STRAY_STEP_SEMITONES: f32 = 1.0;

/// How far a short stretch must lie from the notes on both sides of it to be stray, in
/// semitones: more than a fifth, so octave and subharmonic errors go and melodic steps stay.
const STRAY_DISTANCE_SEMITONES: f32 = 7.0;

/// A pitch track (semitones, one per frame) with its stray stretches mended: a stretch
/// shorter than [`STRAY_MAX_FRAMES`] whose pitches all lie more than
/// [`STRAY_DISTANCE_SEMITONES`] from the longer stretches just before and just after it (where
/// there is one on that side) takes the pitch of the nearer of them where it meets this one.
/// YIN reads the common period of two notes where a legato transition puts both in its window
/// (a whole tone apart: three octaves down), and a note's first frames, before its window
/// holds much of the note, an octave or more off; measured at such a pitch, a frame's
/// partials are the wrong ones, and an input far from the clip's notes would choose exactly
/// those frames. Mended, they keep their sound (the attack, the transition) at the note's
/// pitch. A clip with no longer stretch keeps every pitch.
pub(super) fn mend_stray_pitches(mut pitches: Vec<f32>) -> Vec<f32> {
    // Stretches: [start, end) ranges of frames that move by less than a step each.
    let mut stretches: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for t in 1..=pitches.len() {
        if t == pitches.len() || (pitches[t] - pitches[t - 1]).abs() > STRAY_STEP_SEMITONES {
            stretches.push((start, t));
            start = t;
        }
    }
    let long = |&(a, b): &(usize, usize)| b - a >= STRAY_MAX_FRAMES;
    for (i, &(a, b)) in stretches.iter().enumerate() {
        if long(&(a, b)) {
            continue;
        }
        // Where the nearest long stretch on each side meets this one: (frame, pitch).
        let before = stretches[..i]
            .iter()
            .rev()
            .find(|s| long(s))
            .map(|s| (s.1 - 1, pitches[s.1 - 1]));
        let after = stretches[i + 1..]
            .iter()
            .find(|s| long(s))
            .map(|s| (s.0, pitches[s.0]));
        let far = |p: f32| {
            [before, after]
                .into_iter()
                .flatten()
                .all(|(_, q)| (p - q).abs() > STRAY_DISTANCE_SEMITONES)
        };
        if (before.is_none() && after.is_none()) || !pitches[a..b].iter().all(|&p| far(p)) {
            continue;
        }
        // Each frame takes the nearer side's pitch (the earlier on a tie: `min_by_key` keeps
        // the first of equals).
        for (t, slot) in (a..b).zip(&mut pitches[a..b]) {
            if let Some((_, p)) = before
                .into_iter()
                .chain(after)
                .min_by_key(|&(side, _)| side.abs_diff(t))
            {
                *slot = p;
            }
        }
    }
    pitches
}

/// For each entry, the nearest `Some` value of `values` (itself if `Some`; the earlier one on
/// a tie), or 0 when there is none.
pub(super) fn nearest_known(values: &[Option<f32>]) -> Vec<f32> {
    let mut out = vec![0.0f32; values.len()];
    let mut before: Vec<Option<(usize, f32)>> = Vec::with_capacity(values.len());
    let mut last = None;
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            last = Some((i, *v));
        }
        before.push(last);
    }
    let mut after = None;
    for i in (0..values.len()).rev() {
        if let Some(v) = values[i] {
            after = Some((i, v));
        }
        out[i] = match (before[i], after) {
            (Some((b, vb)), Some((a, va))) => {
                if i - b <= a - i {
                    vb
                } else {
                    va
                }
            }
            (Some((_, v)), None) | (None, Some((_, v))) => v,
            (None, None) => 0.0,
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_take_the_nearest_known_one() {
        let v = [None, Some(1.0), None, None, None, Some(5.0), None];
        assert_eq!(nearest_known(&v), vec![1.0, 1.0, 1.0, 1.0, 5.0, 5.0, 5.0]);
        assert_eq!(nearest_known(&[None, None]), vec![0.0, 0.0]);
    }

    /// Short stretches far from the notes around them take the nearer note's pitch (a legato
    /// transition's subharmonic answers, a note's first frames read an octave off); glides,
    /// melodic steps and clips made only of short stretches keep theirs.
    #[test]
    fn stray_stretches_take_the_nearer_notes_pitch() {
        let track = |parts: &[(usize, f32, f32)]| -> Vec<f32> {
            parts
                .iter()
                .flat_map(|&(n, from, step)| (0..n).map(move |i| from + step * i as f32))
                .collect()
        };
        let unchanged =
            |pitches: Vec<f32>| assert_eq!(mend_stray_pitches(pitches.clone()), pitches);
        // A whole-tone legato step read three octaves and one octave down for 7 frames: the
        // first four frames are nearer the note before, the last three the note after.
        let legato = track(&[
            (30, 15.0, 0.0),
            (4, -21.0, 0.0),
            (3, 3.0, 0.0),
            (30, 13.0, 0.0),
        ]);
        let want = track(&[
            (30, 15.0, 0.0),
            (4, 15.0, 0.0),
            (3, 13.0, 0.0),
            (30, 13.0, 0.0),
        ]);
        assert_eq!(mend_stray_pitches(legato), want);
        // A note's first frames read an octave and more down: the note's pitch.
        let attack = track(&[(10, -13.5, 0.0), (40, 2.0, 0.0)]);
        assert_eq!(mend_stray_pitches(attack), track(&[(50, 2.0, 0.0)]));
        // A glide of a fifth, half a semitone a frame: one stretch.
        unchanged(track(&[(20, 0.0, 0.0), (14, 0.5, 0.5), (20, 7.0, 0.0)]));
        // A short note a major third up between two notes: a melodic step.
        unchanged(track(&[(20, 0.0, 0.0), (5, 4.0, 0.0), (20, 2.0, 0.0)]));
        // A short leap far from the note before but near the one after.
        unchanged(track(&[(20, 0.0, 0.0), (5, 9.0, 0.0), (20, 5.0, 0.0)]));
        // Only short stretches (a clip of short notes): nothing to judge them by.
        unchanged(track(&[(5, 0.0, 0.0), (5, 12.0, 0.0), (5, -12.0, 0.0)]));
        unchanged(Vec::new());
    }
}
