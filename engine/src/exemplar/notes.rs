//! Streaming note segmentation, shared by the clip's analysis and the input.

/// A frame this far below the tracker's running peak is silence (no note), in dB.
pub const GATE_RANGE_DB: f32 = 45.0;
/// The running peak falls this much per second when the level is lower, in dB.
pub const PEAK_DECAY_DB_PER_S: f32 = 20.0;
/// A rise of this much over the last [`ONSET_SPAN_FRAMES`] frames starts a note, in dB.
pub const ONSET_RISE_DB: f32 = 9.0;
/// Frames the onset rise is measured over.
pub const ONSET_SPAN_FRAMES: usize = 4;
/// A pitch this far from the note's pitch for [`PITCH_CHANGE_FRAMES`] frames starts a note,
/// in semitones (vibrato stays under it).
pub const PITCH_CHANGE_SEMITONES: f32 = 0.7;
/// Frames a changed pitch must hold before it counts as a new note.
pub const PITCH_CHANGE_FRAMES: u32 = 3;

/// Streaming note segmentation of frames (level in dB, pitch in semitones). Realtime-safe.
#[derive(Debug, Clone)]
pub struct NoteTracker {
    peak_db: f32,
    decay_per_frame: f32,
    recent_db: [f32; ONSET_SPAN_FRAMES],
    recent_at: usize,
    in_note: bool,
    note_pitch: f32,
    off_pitch_frames: u32,
    age: u32,
}

/// What the tracker says of one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoteFrame {
    /// Whether the frame is sounding (above the gate).
    pub sounding: bool,
    /// Frames since the note started (0 on its first frame).
    pub age: u32,
}

impl NoteTracker {
    /// A tracker for frames `frames_per_second` apart.
    pub fn new(frames_per_second: f32) -> Self {
        Self {
            peak_db: f32::NEG_INFINITY,
            decay_per_frame: PEAK_DECAY_DB_PER_S / frames_per_second.max(1.0),
            recent_db: [f32::NEG_INFINITY; ONSET_SPAN_FRAMES],
            recent_at: 0,
            in_note: false,
            note_pitch: 0.0,
            off_pitch_frames: 0,
            age: 0,
        }
    }

    /// Forgets the stream. Realtime-safe.
    pub fn reset(&mut self) {
        *self = Self {
            decay_per_frame: self.decay_per_frame,
            ..Self::new(1.0)
        };
    }

    /// One frame: its energy in dB and its pitch in semitones. Realtime-safe.
    pub fn update(&mut self, frame_db: f32, pitch: f32) -> NoteFrame {
        let frame_db = if frame_db.is_finite() {
            frame_db
        } else {
            f32::NEG_INFINITY
        };
        self.peak_db = (self.peak_db - self.decay_per_frame).max(frame_db);
        let lowest_recent = self.recent_db.iter().copied().fold(f32::INFINITY, f32::min);
        self.recent_db[self.recent_at] = frame_db;
        self.recent_at = (self.recent_at + 1) % ONSET_SPAN_FRAMES;
        let sounding = frame_db > self.peak_db - GATE_RANGE_DB && frame_db > -60.0;
        if !sounding {
            self.in_note = false;
            return NoteFrame {
                sounding,
                age: self.age,
            };
        }
        let pitch = if pitch.is_finite() { pitch } else { 0.0 };
        let rise = frame_db - lowest_recent > ONSET_RISE_DB;
        if self.in_note && (pitch - self.note_pitch).abs() > PITCH_CHANGE_SEMITONES {
            self.off_pitch_frames += 1;
        } else {
            self.off_pitch_frames = 0;
        }
        let moved = self.off_pitch_frames >= PITCH_CHANGE_FRAMES;
        if !self.in_note || (rise && self.age > ONSET_SPAN_FRAMES as u32) || moved {
            self.in_note = true;
            self.note_pitch = pitch;
            self.off_pitch_frames = 0;
            self.age = 0;
        } else {
            self.age = self.age.saturating_add(1);
            self.note_pitch += 0.1 * (pitch - self.note_pitch);
        }
        NoteFrame {
            sounding,
            age: self.age,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_start_on_sound_on_a_jump_and_on_a_new_pitch_but_not_on_vibrato() {
        let mut t = NoteTracker::new(200.0);
        assert!(!t.update(f32::NEG_INFINITY, 0.0).sounding);
        let first = t.update(20.0, 0.0);
        assert_eq!((first.sounding, first.age), (true, 0));
        // A vibrato of a third of a semitone keeps the note.
        for i in 1..40 {
            let p = 0.33 * (i as f32 * 0.5).sin();
            assert_eq!(t.update(20.0, p).age, i);
        }
        // Two semitones up: a new note once it has held for PITCH_CHANGE_FRAMES.
        let ages: Vec<u32> = (0..PITCH_CHANGE_FRAMES + 2)
            .map(|_| t.update(20.0, 2.0).age)
            .collect();
        assert_eq!(ages[PITCH_CHANGE_FRAMES as usize - 1], 0, "{ages:?}");
        // A re-attack of the same pitch: a rise of more than ONSET_RISE_DB.
        for _ in 0..10 {
            t.update(5.0, 2.0);
        }
        assert_eq!(t.update(5.0 + ONSET_RISE_DB + 3.0, 2.0).age, 0);
        // Silence ends the note; sound after it starts one.
        for _ in 0..3 {
            assert!(!t.update(-100.0, 2.0).sounding);
        }
        assert_eq!(t.update(20.0, 2.0).age, 0);
        // Non-finite levels are silence, not a panic.
        assert!(!t.update(f32::NAN, f32::NAN).sounding);
    }
}
