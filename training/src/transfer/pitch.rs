//! Pitch and level: pYIN tracking ([`track_pitch`]), the pitch agreement of an output with
//! its source ([`pitch_agreement`]) and their level difference ([`level_difference_db`]).

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::Serialize;

use super::features::ENERGY_FLOOR;

/// pYIN frame length, in samples.
pub const PYIN_FRAME: usize = 2048;
/// pYIN pitch-bin width, in semitones (0.25 = 25 cents).
pub const PYIN_RESOLUTION: f64 = 0.25;
/// Largest pitch error that counts as "pitch kept", in cents.
pub const CENT_TOLERANCE: f64 = 50.0;

/// pYIN's result on one clip, one entry per frame (frame `f` centred on sample `f * hop`).
#[derive(Debug, Clone, PartialEq)]
pub struct PitchTrack {
    /// F0 in Hz (NaN where unvoiced), quantised to [`PYIN_RESOLUTION`]-semitone bins.
    pub f0_hz: Vec<f64>,
    /// Whether pYIN finds the frame voiced.
    pub voiced: Vec<bool>,
}

/// Frequency of a (fractional) MIDI note, in Hz.
pub fn midi_to_hz(note: f64) -> f64 {
    440.0 * 2f64.powf((note - 69.0) / 12.0)
}

/// Runs pYIN ([`PYIN_FRAME`]-sample frames, hop `hop` samples, [`PYIN_RESOLUTION`]) over
/// `samples` at `sample_rate` Hz, searching `fmin_hz..fmax_hz` (clamped to what the frame
/// allows and to the Nyquist frequency). Errors (instead of panics) on a range pYIN refuses.
pub fn track_pitch(
    samples: &[f32],
    sample_rate: u32,
    hop: usize,
    fmin_hz: f64,
    fmax_hz: f64,
) -> Result<PitchTrack, String> {
    let sr = sample_rate as f64;
    // pYIN's longest period is `frame - frame / 2 - 1` samples.
    let longest = (PYIN_FRAME - PYIN_FRAME / 2 - 1) as f64;
    let fmin = fmin_hz.max(sr / (longest - 1.0));
    // The crate rounds `log2(f / fmin)` into a bin before clamping it, and panics when that
    // rounds below 0: its longest period, `ceil(sr / fmin)` samples, must not sit much more
    // than half a sample past `sr / fmin`. Moving fmin to `sr / (P - 0.5)` keeps it there.
    let period = (sr / fmin).ceil();
    let fmin = sr / (period - 0.5);
    let fmax = fmax_hz.min(sr / 2.0);
    // pYIN needs more pitch bins than its transition window (35.92 octaves per second).
    let per_semitone = (1.0 / PYIN_RESOLUTION).ceil();
    let bins = (12.0 * per_semitone * (fmax / fmin).log2()).floor() + 1.0;
    let window = (35.92 * 12.0 * hop as f64 / sr).round() * per_semitone + 1.0;
    if hop == 0 || bins.is_nan() || bins <= window {
        return Err(format!(
            "unusable search range {fmin:.1}..{fmax:.1} Hz at a hop of {hop} samples"
        ));
    }
    let wav: Vec<f64> = samples.iter().map(|v| *v as f64).collect();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut exec = pyin::PYINExecutor::new(
            fmin,
            fmax,
            sample_rate,
            PYIN_FRAME,
            None,
            Some(hop),
            Some(PYIN_RESOLUTION),
        );
        exec.pyin(
            &wav,
            f64::NAN,
            pyin::Framing::Center(pyin::PadMode::Constant(0.0)),
        )
    }));
    match result {
        Ok((_, f0_hz, voiced, _)) => Ok(PitchTrack { f0_hz, voiced }),
        Err(_) => Err(format!("pYIN panicked ({fmin:.1}..{fmax:.1} Hz)")),
    }
}

/// Pitch agreement of an output with its source on the frames voiced in both.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PitchAgreement {
    /// Frames voiced in both.
    pub frames: usize,
    /// Share of those frames within [`CENT_TOLERANCE`] cents, 0..=1.
    pub within: f64,
    /// Median absolute error, in cents.
    pub median_cents: f64,
}

/// Compares two pitch tracks frame by frame; `None` when no frame is voiced in both.
pub fn pitch_agreement(source: &PitchTrack, output: &PitchTrack) -> Option<PitchAgreement> {
    let mut errors: Vec<f64> = source
        .f0_hz
        .iter()
        .zip(&source.voiced)
        .zip(output.f0_hz.iter().zip(&output.voiced))
        .filter(|((fs, vs), (fo, vo))| **vs && **vo && **fs > 0.0 && **fo > 0.0)
        .map(|((fs, _), (fo, _))| (1200.0 * (fo / fs).log2()).abs())
        .collect();
    if errors.is_empty() {
        return None;
    }
    errors.sort_unstable_by(f64::total_cmp);
    let n = errors.len();
    let median = if n % 2 == 1 {
        errors[n / 2]
    } else {
        0.5 * (errors[n / 2 - 1] + errors[n / 2])
    };
    // A hair of slack: the error between two quantised bins is a rounded multiple of 25.
    let within = errors
        .iter()
        .filter(|e| **e <= CENT_TOLERANCE + 1e-6)
        .count();
    Some(PitchAgreement {
        frames: n,
        within: within as f64 / n as f64,
        median_cents: median,
    })
}

/// Pitch of a clip against its score: on the frames where the score sounds a note and pYIN
/// finds the clip voiced, how far pYIN's pitch is from the note. An octave error (a pitch
/// tracker's, or the output's own: a weak fundamental read as its second partial) keeps the
/// pitch class, so it shows here as a whole number of octaves off, where a comparison with the
/// source's own pYIN track cannot see an error both tracks share.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScoreAgreement {
    /// Frames with a note in the score and voiced in the clip.
    pub frames: usize,
    /// Share of those frames within [`CENT_TOLERANCE`] cents of the note, 0..=1.
    pub within: f64,
    /// Share within [`CENT_TOLERANCE`] cents of the note one or more octaves up, 0..=1.
    pub octaves_up: f64,
    /// Share within [`CENT_TOLERANCE`] cents of the note one or more octaves down, 0..=1.
    pub octaves_down: f64,
}

/// Compares a pitch track with the score's note per frame (`notes[f]`, a MIDI note, negative
/// where none sounds; frame `f` as the track's); `None` when no frame has both.
pub fn score_agreement(notes: &[i16], track: &PitchTrack) -> Option<ScoreAgreement> {
    let (mut frames, mut within, mut up, mut down) = (0usize, 0usize, 0usize, 0usize);
    for ((note, f0), voiced) in notes.iter().zip(&track.f0_hz).zip(&track.voiced) {
        if *note < 0 || !*voiced || f0.is_nan() || *f0 <= 0.0 {
            continue;
        }
        frames += 1;
        let cents = 1200.0 * (f0 / midi_to_hz(f64::from(*note))).log2();
        let octaves = (cents / 1200.0).round();
        // A hair of slack: pYIN's bins are rounded multiples of 25 cents.
        if (cents - 1200.0 * octaves).abs() <= CENT_TOLERANCE + 1e-6 {
            match octaves {
                o if o > 0.0 => up += 1,
                o if o < 0.0 => down += 1,
                _ => within += 1,
            }
        }
    }
    (frames > 0).then(|| {
        let share = |n: usize| n as f64 / frames as f64;
        ScoreAgreement {
            frames,
            within: share(within),
            octaves_up: share(up),
            octaves_down: share(down),
        }
    })
}

/// Output level minus source level, in dB: `10 log10(sum out^2 / sum src^2)` over the samples
/// of the frames voiced in the source (frame `f` covers samples `f * hop - hop / 2` up to
/// `f * hop + hop / 2`). `None` when no frame is voiced or the source is silent there.
pub fn level_difference_db(
    source: &[f32],
    output: &[f32],
    voiced: &[bool],
    hop: usize,
) -> Option<f64> {
    let len = source.len().min(output.len());
    let (mut src, mut out) = (0.0f64, 0.0f64);
    for (f, v) in voiced.iter().enumerate() {
        if !*v {
            continue;
        }
        let start = (f * hop).saturating_sub(hop / 2).min(len);
        let end = (f * hop + hop - hop / 2).min(len);
        for i in start..end {
            src += (source[i] as f64).powi(2);
            out += (output[i] as f64).powi(2);
        }
    }
    if src <= 0.0 {
        return None;
    }
    Some(10.0 * ((out + ENERGY_FLOOR) / src).log10())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pitch_agreement_and_level() {
        let src = PitchTrack {
            f0_hz: vec![440.0, 440.0, f64::NAN, 440.0],
            voiced: vec![true, true, false, true],
        };
        let out = PitchTrack {
            f0_hz: vec![440.0, 440.0 * 2f64.powf(1.0 / 12.0), 440.0, f64::NAN],
            voiced: vec![true, true, true, false],
        };
        let a = pitch_agreement(&src, &out).unwrap();
        assert_eq!(a.frames, 2);
        assert!((a.within - 0.5).abs() < 1e-12);
        assert!((a.median_cents - 50.0).abs() < 1e-9);
        let x = vec![0.5f32; 400];
        let y: Vec<f32> = x.iter().map(|v| v * 0.5).collect();
        let d = level_difference_db(&x, &y, &[true, false, true], 160).unwrap();
        assert!((d + 6.0206).abs() < 1e-3, "{d}");
        assert_eq!(level_difference_db(&x, &y, &[false; 3], 160), None);
    }

    /// Each frame is counted by its distance from the score's note: on the note (a quarter
    /// tone either side), one or two octaves up, an octave down, or neither (a fifth up, 75
    /// cents off); frames without a note or without a voiced pitch are left out.
    #[test]
    fn score_agreement_counts_octave_errors() {
        let a4 = midi_to_hz(69.0);
        let cents = |c: f64| a4 * 2f64.powf(c / 1200.0);
        let track = PitchTrack {
            f0_hz: vec![
                cents(0.0),
                cents(50.0),
                cents(-50.0),
                cents(1200.0),
                cents(2400.0 + 25.0),
                cents(-1200.0),
                cents(700.0),
                cents(75.0),
                a4,
                f64::NAN,
            ],
            voiced: vec![true, true, true, true, true, true, true, true, true, false],
        };
        let mut notes = vec![69i16; 10];
        notes[8] = -1; // No note in the score: not counted, whatever pYIN hears.
        let a = score_agreement(&notes, &track).unwrap();
        assert_eq!(a.frames, 8);
        assert!((a.within - 3.0 / 8.0).abs() < 1e-12, "{a:?}");
        assert!((a.octaves_up - 2.0 / 8.0).abs() < 1e-12, "{a:?}");
        assert!((a.octaves_down - 1.0 / 8.0).abs() < 1e-12, "{a:?}");
        assert_eq!(score_agreement(&[-1; 10], &track), None);
        // A shorter score than the track covers only its own frames.
        assert_eq!(score_agreement(&notes[..2], &track).unwrap().frames, 2);
    }
}
