//! The scores the dataset and the pair set render: a held note, and the protocol's
//! monophonic phrases (velocity changes, legato, portamento, vibrato, swells, rests) inside an
//! instrument's range, as timed MIDI events with per-frame note labels; [`play`] renders one
//! with rustysynth.

use rustysynth::Synthesizer;

use crate::instruments::Instrument;
use crate::rng::SplitMix64;

/// How long a note is held, in seconds.
pub const NOTE_HOLD_S: f64 = 1.5;
/// Length of a note clip, in seconds.
pub const NOTE_CLIP_S: f64 = 2.0;
/// Length of a phrase, in seconds.
pub const PHRASE_S: f64 = 4.0;
/// Pitch-bend range set on the channel, in semitones.
pub const BEND_RANGE: f64 = 2.0;
/// MIDI channel used (0-based; not the drum channel).
const CHANNEL: i32 = 0;

/// A timed MIDI message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    /// Time, in samples from the clip start.
    pub at: usize,
    /// Status byte without channel (0x80 note off, 0x90 note on, 0xB0 control, 0xC0 program,
    /// 0xE0 pitch bend).
    pub command: i32,
    /// First data byte.
    pub data1: i32,
    /// Second data byte.
    pub data2: i32,
}

/// A note of a score: MIDI key, velocity, on and off times (samples).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreNote {
    /// MIDI note.
    pub key: u8,
    /// MIDI velocity.
    pub velocity: u8,
    /// Note-on, in samples.
    pub on: usize,
    /// Note-off, in samples.
    pub off: usize,
}

/// A clip to render: its MIDI events and the labels derived from the same score.
#[derive(Debug, Clone)]
pub struct Score {
    /// Program change, controllers, notes and bends, sorted by time.
    pub events: Vec<Event>,
    /// The notes (monophonic: at most one sounding at a time).
    pub notes: Vec<ScoreNote>,
    /// Pitch bend in semitones as (from sample, value) steps, sorted.
    pub bends: Vec<(usize, f64)>,
    /// Clip length, in samples.
    pub length: usize,
}

impl Score {
    /// Sounding MIDI note (bend included, rounded) at sample `t`, or -1.
    pub fn sounding_note(&self, t: usize) -> i16 {
        let Some(note) = self.notes.iter().rev().find(|n| n.on <= t && t < n.off) else {
            return -1;
        };
        let bend = self
            .bends
            .iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .map_or(0.0, |(_, b)| *b);
        (note.key as f64 + bend).round() as i16
    }

    /// Per-frame labels at `hop` (frame `f` centred on sample `f * hop`).
    pub fn frame_notes(&self, hop: usize) -> Vec<i16> {
        (0..=self.length / hop)
            .map(|f| self.sounding_note(f * hop))
            .collect()
    }
}

pub(crate) fn seconds(rate: u32, s: f64) -> usize {
    (s * rate as f64).round() as usize
}

fn control(at: usize, controller: i32, value: i32) -> Event {
    Event {
        at,
        command: 0xB0,
        data1: controller,
        data2: value,
    }
}

fn bend_event(at: usize, semitones: f64) -> Event {
    let value = (8192.0 + semitones / BEND_RANGE * 8192.0)
        .round()
        .clamp(0.0, 16383.0) as i32;
    Event {
        at,
        command: 0xE0,
        data1: value & 0x7F,
        data2: value >> 7,
    }
}

/// Program change and a dry, centred channel with a known bend range.
fn setup(program: u8) -> Vec<Event> {
    vec![
        Event {
            at: 0,
            command: 0xC0,
            data1: program as i32,
            data2: 0,
        },
        control(0, 7, 100),
        control(0, 10, 64),
        control(0, 11, 127),
        control(0, 91, 0),
        control(0, 93, 0),
        control(0, 101, 0),
        control(0, 100, 0),
        control(0, 6, BEND_RANGE as i32),
        control(0, 38, 0),
        control(0, 101, 127),
        control(0, 100, 127),
        bend_event(0, 0.0),
    ]
}

/// The score of a note clip: `key` at `velocity`, held 1.5 s in a 2.0 s clip.
pub fn note_score(program: u8, key: u8, velocity: u8, rate: u32) -> Score {
    let off = seconds(rate, NOTE_HOLD_S);
    let mut events = setup(program);
    events.push(Event {
        at: 0,
        command: 0x90,
        data1: key as i32,
        data2: velocity as i32,
    });
    events.push(Event {
        at: off,
        command: 0x80,
        data1: key as i32,
        data2: 0,
    });
    Score {
        events,
        notes: vec![ScoreNote {
            key,
            velocity,
            on: 0,
            off,
        }],
        bends: vec![],
        length: seconds(rate, NOTE_CLIP_S),
    }
}

/// The score of phrase `index` of `instrument`: a random-walk melody inside the range with
/// notes of 0.1-0.8 s, legato and detached notes, portamento (pitch-bend glides), vibrato of
/// 0-50 cents at 4-7 Hz, expression swells, velocity changes and short rests.
pub fn phrase_score(instrument: &Instrument, index: u32, seed: u64, rate: u32) -> Score {
    let mut rng = SplitMix64::new(
        seed ^ (instrument.program as u64) << 32 ^ (index as u64).wrapping_mul(0x9E37_79B9),
    );
    let (low, high) = (instrument.low as i32, instrument.high as i32);
    // A register of about an octave and a half somewhere in the range.
    let span = (high - low).min(18);
    let floor = rng.int(low, high - span);
    let ceiling = floor + span;
    let vibrato_cents = rng.range(0.0, 50.0);
    let vibrato_hz = rng.range(4.0, 7.0);
    let base_expression = rng.int(90, 127);
    let mut velocity = rng.int(60, 110);
    let mut key = rng.int(floor, ceiling);

    let mut events = setup(instrument.program);
    events.push(control(0, 11, base_expression));
    let mut notes = Vec::new();
    let mut bends: Vec<(usize, f64)> = vec![(0, 0.0)];
    let end = seconds(rate, PHRASE_S - 0.15);
    let step = seconds(rate, 0.005).max(1);
    let mut t = seconds(rate, rng.range(0.05, 0.2));
    while t < end {
        let dur = seconds(rate, rng.range(0.1, 0.8)).min(end - t);
        if dur < seconds(rate, 0.1) {
            break;
        }
        let legato = rng.unit() < 0.35;
        let off = if legato { t + dur } else { t + dur * 85 / 100 };
        events.push(Event {
            at: t,
            command: 0x90,
            data1: key,
            data2: velocity,
        });
        notes.push(ScoreNote {
            key: key as u8,
            velocity: velocity as u8,
            on: t,
            off,
        });
        // Expression swell on some notes.
        if rng.unit() < 0.3 {
            let steps = 12;
            for s in 0..=steps {
                let at = t + dur / 2 * s / steps;
                let value = 60 + (base_expression - 60) * s as i32 / steps as i32;
                events.push(control(at, 11, value));
            }
        }
        // Vibrato on longer notes, after a short delay.
        let vib_start = t + seconds(rate, 0.15);
        if dur > seconds(rate, 0.3) && vibrato_cents > 1.0 {
            let mut at = vib_start;
            while at < off {
                let phase =
                    std::f64::consts::TAU * vibrato_hz * (at - vib_start) as f64 / rate as f64;
                let semis = vibrato_cents / 100.0 * phase.sin();
                events.push(bend_event(at, semis));
                bends.push((at, semis));
                at += step;
            }
        }
        // Next note: a small random step, kept inside the register.
        let interval =
            [-4, -3, -2, -2, -1, -1, 0, 1, 1, 2, 2, 3, 4, 5, -5, 7, -7][rng.int(0, 16) as usize];
        let next = (key + interval).clamp(floor, ceiling);
        // Portamento: a legato glide of up to two semitones into the next note.
        let glide = legato && next != key && (next - key).abs() <= 2 && rng.unit() < 0.5;
        if glide {
            let len = seconds(rate, 0.06).min(dur / 2);
            let from = off - len;
            let mut at = from;
            while at < off {
                let semis = (next - key) as f64 * (at - from) as f64 / len as f64;
                events.push(bend_event(at, semis));
                bends.push((at, semis));
                at += step;
            }
        }
        events.push(Event {
            at: off,
            command: 0x80,
            data1: key,
            data2: 0,
        });
        events.push(bend_event(off, 0.0));
        bends.push((off, 0.0));
        // Rests and velocity changes.
        t = if !legato && rng.unit() < 0.4 {
            off + seconds(rate, rng.range(0.05, 0.3))
        } else if legato {
            off
        } else {
            t + dur
        };
        velocity = (velocity + rng.int(-15, 15)).clamp(40, 120);
        key = next;
    }
    // Events at the same time: note-offs and bend resets before the next note-on.
    events.sort_by_key(|e| (e.at, if e.command == 0x90 { 1 } else { 0 }));
    bends.sort_by_key(|b| b.0);
    Score {
        events,
        notes,
        bends,
        length: seconds(rate, PHRASE_S),
    }
}

/// Renders `score` with `synth` (reset first) and returns the mono mix-down.
pub fn play(synth: &mut Synthesizer, score: &Score) -> Vec<f32> {
    synth.reset();
    let mut left = vec![0.0f32; score.length];
    let mut right = vec![0.0f32; score.length];
    let mut pos = 0;
    for e in &score.events {
        let at = e.at.min(score.length);
        if at > pos {
            synth.render(&mut left[pos..at], &mut right[pos..at]);
            pos = at;
        }
        synth.process_midi_message(CHANNEL, e.command, e.data1, e.data2);
    }
    if pos < score.length {
        synth.render(&mut left[pos..], &mut right[pos..]);
    }
    left.iter()
        .zip(&right)
        .map(|(l, r)| 0.5 * (l + r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flute() -> Instrument {
        Instrument {
            program: 73,
            name: "Flute".into(),
            family: "pipe".into(),
            low: 60,
            high: 96,
        }
    }

    #[test]
    fn note_labels_cover_the_held_part_only() {
        let s = note_score(0, 60, 80, 32_000);
        let labels = s.frame_notes(160);
        assert_eq!(labels.len(), 64_000 / 160 + 1);
        // 1.5 s = frame 300.
        assert!(labels[..300].iter().all(|n| *n == 60));
        assert!(labels[300..].iter().all(|n| *n == -1));
    }

    #[test]
    fn phrases_are_deterministic_in_range_and_varied() {
        let inst = flute();
        let a = phrase_score(&inst, 3, 7, 32_000);
        let b = phrase_score(&inst, 3, 7, 32_000);
        assert_eq!(a.events, b.events);
        let c = phrase_score(&inst, 4, 7, 32_000);
        assert_ne!(a.events, c.events);
        for s in [&a, &c] {
            assert!(s.notes.len() >= 5, "{} notes", s.notes.len());
            assert!(s.notes.iter().all(|n| (60..=96).contains(&n.key)));
            assert!(s.notes.iter().all(|n| n.off > n.on && n.off <= s.length));
            // Monophonic: no overlap.
            assert!(s.notes.windows(2).all(|w| w[0].off <= w[1].on));
            let labels = s.frame_notes(160);
            assert!(labels.contains(&-1) || s.notes[0].on > 0);
            assert!(labels.iter().filter(|n| **n >= 0).count() > labels.len() / 3);
        }
        // Across the 20 phrases: some vibrato and some glides.
        let all: Vec<Score> = (0..20).map(|i| phrase_score(&inst, i, 7, 32_000)).collect();
        assert!(
            all.iter()
                .any(|s| s.bends.iter().any(|(_, b)| b.abs() > 0.9)),
            "a glide"
        );
        assert!(
            all.iter()
                .any(|s| s.bends.iter().any(|(_, b)| b.abs() > 0.05 && b.abs() < 0.5)),
            "vibrato"
        );
    }

    #[test]
    fn bend_events_encode_the_semitones() {
        let e = bend_event(0, 1.0);
        let value = e.data1 | (e.data2 << 7);
        assert_eq!(value, 8192 + 4096);
        let e = bend_event(0, -2.0);
        assert_eq!(e.data1 | (e.data2 << 7), 0);
    }
}
