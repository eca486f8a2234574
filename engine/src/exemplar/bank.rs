//! The reference clip's analysis: the frames an [`super::ExemplarSwap`] chooses from.

use super::background::{
    Background, BACKGROUND_UNDER_DB, MAX_BACKGROUND_UNDER_DB, NOTE_OVER_BACKGROUND_DB,
};
use super::cuts::{frames_over_cuts, hard_cuts};
use super::meter::{any_partial_heard, PartialMeter, HANN_POWER_PER_SAMPLE, HARMONIC_PARTIALS};
use super::notes::{NoteFrame, NoteTracker};
use super::pitch::{refine_pitch, Yin};
use super::track::{mend_stray_pitches, nearest_known, sure_pitches};
use super::{MAG_FLOOR, MIDDLE_C_HZ};
use crate::config::StftConfig;
use crate::features::{FeatureExtractor, FrameFeatures};
use crate::halves::{in_halves, rows_in_halves};
use crate::network::{at_training_level, Network};

/// Longest stretch of a clip the bank analyses, in seconds (its first seconds; a bank of
/// 20 s holds about 12 MB).
pub const MAX_BANK_SECONDS: usize = 20;

/// The reference clip as frames to choose from.
#[derive(Debug, Clone)]
pub struct ExemplarBank {
    /// The framing the clip was analysed at.
    pub(super) cfg: StftConfig,
    pub(super) bins: usize,
    /// `ln(|X| + mag_floor)` of each kept frame, row-major `frames x bins`; less the clip's
    /// background, where it has one (`background.rs`).
    pub(super) log_mag: Vec<f32>,
    /// Pitch ruler of each kept frame, semitones from middle C.
    pub(super) pitch: Vec<f32>,
    /// Note age of each kept frame, in frames.
    pub(super) age: Vec<u32>,
    /// Whether the next kept frame continues the same note.
    pub(super) continues: Vec<bool>,
    /// Amplitude of partials `1..=HARMONIC_PARTIALS` of each kept frame (linear, the sinusoid's
    /// peak amplitude in sample units), row-major `frames x HARMONIC_PARTIALS`; measured on a
    /// [`HARMONIC_FFT`](super::HARMONIC_FFT)-point Hann spectrum, so low notes' partials are
    /// resolved. Where the clip has a background, less it; a partial hidden under it holds its
    /// floor.
    pub(super) harmonics: Vec<f32>,
    /// Noise between the partials of each kept frame, row-major `frames x HARMONIC_PARTIALS`:
    /// entry `h` is the spectrum's valley between partials `h` and `h + 1` (`h = 0`: below
    /// the fundamental) as a noise amplitude per bin (`|X| / sqrt(sum w^2)`); less the clip's
    /// background, where it has one, down to its floor.
    pub(super) noise: Vec<f32>,
    /// How the clip's notes fall after their peak ([`note_decay`]).
    pub(super) decay: NoteDecay,
    /// The level of the background taken out of the frames, in dB under the clip's loudest
    /// frame (negative); `None` where the clip has none.
    background_db: Option<f32>,
}

impl ExemplarBank {
    /// Analyses `audio` (mono, at `cfg`'s rate; its first [`MAX_BANK_SECONDS`]). A frame's
    /// pitch is YIN's where YIN is sure, otherwise the harmonic sum near the last sure pitch.
    /// Where the clip's pauses hold a steady background (a room's noise: see
    /// [`BACKGROUND_UNDER_DB`]), it is measured there and taken out of the frames kept, and
    /// those frames are the notes' (clear of it), not the noise's. `None` when the clip has no
    /// sounding frame. Allocates; call it off the audio thread.
    pub fn new(cfg: &StftConfig, audio: &[f32]) -> Option<Self> {
        Self::analyse(cfg, audio, None, None)
    }

    /// [`new`](Self::new) with the clip's pitch given (semitones from middle C; `None`:
    /// measured).
    pub fn analyse_with_pitch(cfg: &StftConfig, audio: &[f32], known: Option<f32>) -> Option<Self> {
        Self::analyse(cfg, audio, None, known)
    }

    /// [`new`](Self::new) with `net`'s pitch ruler as the fallback guess where YIN is unsure
    /// (at `net`'s framing); `known`: the clip's pitch given (semitones from middle C). `None`
    /// also when the model has no pitch ruler.
    pub fn with_ruler(net: &Network, audio: &[f32], known: Option<f32>) -> Option<Self> {
        if !net.config().pitch_ruler() {
            return None;
        }
        Self::analyse(&net.stft(), audio, Some(net), known)
    }

    fn analyse(
        cfg: &StftConfig,
        audio: &[f32],
        net: Option<&Network>,
        known: Option<f32>,
    ) -> Option<Self> {
        let audio = &audio[..audio.len().min(MAX_BANK_SECONDS * cfg.sample_rate as usize)];
        let audio = at_training_level(audio);
        let f = FeatureExtractor::new(cfg, MAG_FLOOR).clip(&audio);
        // Frames are independent: two threads.
        let sure = in_halves(f.frames, MIN_FRAMES_TO_SPLIT, |frames| {
            sure_pitches(&mut Yin::new(), cfg, &audio, frames)
        });
        Self::assemble(cfg, &audio, f, &sure, net, known)
    }

    /// The bank of a clip analysed in parts (the reference loader's schedule): `audio` is the
    /// clip's first [`MAX_BANK_SECONDS`] at the training level (`at_training_level`), `features`
    /// its [`FeatureExtractor::clip`] at `cfg` with [`MAG_FLOOR`] (`envelope` and `fine` may be
    /// left out: the bank does not read them; its log-magnitudes become the bank's rows), and
    /// `sure` the [`sure_pitches`] of all its frames. The same bank as [`new`](Self::new), bit for bit.
    /// `None` when no frame sounds or the parts do not fit together.
    pub(crate) fn from_parts(
        cfg: &StftConfig,
        audio: &[f32],
        features: FrameFeatures,
        sure: &[Option<f32>],
    ) -> Option<Self> {
        let fits = audio.len() <= MAX_BANK_SECONDS * cfg.sample_rate as usize
            && features.bins == cfg.n_bins()
            && features.frames == audio.len() / cfg.hop + 1
            && sure.len() == features.frames;
        if !fits {
            return None;
        }
        Self::assemble(cfg, audio, features, sure, None, None)
    }

    /// The bank from the clip's features and YIN's sure pitches (see [`Self::analyse`]).
    fn assemble(
        cfg: &StftConfig,
        audio: &[f32],
        f: FrameFeatures,
        sure: &[Option<f32>],
        net: Option<&Network>,
        known: Option<f32>,
    ) -> Option<Self> {
        let bins = cfg.n_bins();
        let mut ruler = net.map(|n| (n, n.state()));
        let mut env = vec![0.0f32; bins];
        let mut fine = vec![0.0f32; bins];
        let mut mag = vec![0.0f32; bins];
        let bin_hz = cfg.sample_rate as f32 / cfg.n_fft as f32;
        let sr = cfg.sample_rate as f32;
        let mut tracker = NoteTracker::new(sr / cfg.hop as f32);
        let mut bank = Self {
            cfg: *cfg,
            bins,
            log_mag: Vec::new(),
            pitch: Vec::new(),
            age: Vec::new(),
            continues: Vec::new(),
            harmonics: Vec::new(),
            noise: Vec::new(),
            decay: NoteDecay::default(),
            background_db: None,
        };
        let mut prev_kept: Option<u32> = None;
        // YIN's sure answers first: the whole clip is at hand, so a frame YIN is unsure of
        // (a note's first frames, before YIN has a window of it) takes the nearest sure pitch
        // as the guess, before or after it.
        let nearest = nearest_known(sure);
        // Every frame's pitch first: the clip's whole pitch track, so that the short stretches
        // YIN gets wrong can be told from the notes around them.
        let pitches: Vec<f32> = (0..f.frames)
            .map(|t| {
                let rows = t * bins..(t + 1) * bins;
                let guess = match &mut ruler {
                    Some((net, st)) => {
                        env.copy_from_slice(&f.envelope[rows.clone()]);
                        fine.copy_from_slice(&f.fine[rows.clone()]);
                        net.normalise(&f.log_mag[rows.clone()], &mut env, &mut fine);
                        net.pitch_step(st, &fine)?
                    }
                    None => nearest[t],
                };
                Some(known.unwrap_or_else(|| match sure[t] {
                    Some(p) => p,
                    None => {
                        for (m, l) in mag.iter_mut().zip(&f.log_mag[rows]) {
                            *m = (l.exp() - MAG_FLOOR).max(0.0);
                        }
                        refine_pitch(&mag, bin_hz, guess)
                    }
                }))
            })
            .collect::<Option<Vec<f32>>>()?;
        let pitches = mend_stray_pitches(pitches);
        // Every frame's note (the tracker reads the frames in order).
        let notes: Vec<NoteFrame> = pitches
            .iter()
            .zip(&f.frame_db)
            .map(|(&pitch, &db)| tracker.update(db, pitch))
            .collect();
        // Background: the frames not sounding, and those of no sure pitch well under the
        // clip's loudest (a pause's or a tail's noise, however far above the tracker's gate).
        let loudest = f
            .frame_db
            .iter()
            .copied()
            .filter(|d| d.is_finite())
            .fold(f32::NEG_INFINITY, f32::max);
        let quiet = loudest - BACKGROUND_UNDER_DB;
        let background: Vec<bool> = (0..f.frames)
            .map(|t| !notes[t].sounding || (sure[t].is_none() && f.frame_db[t] < quiet))
            .collect();
        // Its noise, from the frames whose whole window is background.
        let window_power = cfg.n_fft as f32 * HANN_POWER_PER_SAMPLE;
        let room = Background::estimate(
            &f,
            MAG_FLOOR,
            window_power,
            bin_hz,
            &background,
            cfg.n_fft.div_ceil(2 * cfg.hop),
        )
        .filter(|r| r.frame_db(window_power) > loudest - MAX_BACKGROUND_UNDER_DB);
        // The frames kept, in order, with their centre sample and fundamental: the sounding
        // ones, less the background where there is one (in a clean clip, whose pauses are
        // silent, the quiet frames YIN is unsure of are the notes' own onsets and tails).
        let mut kept: Vec<(usize, f32)> = Vec::new();
        // Their levels (dB), for the notes' decay.
        let mut levels: Vec<f32> = Vec::new();
        // Over a background, a note frame also stands clear of it (a tail's last frames, in
        // which YIN may be sure of a pitch the noise makes, do not).
        let floor_db = room.as_ref().map_or(f32::NEG_INFINITY, |r| {
            r.frame_db(window_power) + NOTE_OVER_BACKGROUND_DB
        });
        // A frame whose window holds a hard cut holds its splatter, not the instrument.
        let over_cut = frames_over_cuts(&hard_cuts(audio, sr), f.frames, cfg.hop, cfg.n_fft);
        for (t, (&pitch, note)) in pitches.iter().zip(&notes).enumerate() {
            let keep = !over_cut[t]
                && match room {
                    Some(_) => !background[t] && f.frame_db[t] > floor_db,
                    None => note.sounding,
                };
            if !keep {
                prev_kept = None;
                continue;
            }
            if let (Some(prev), Some(last)) = (prev_kept, bank.continues.last_mut()) {
                *last = note.age == prev + 1;
            }
            kept.push((t * cfg.hop, MIDDLE_C_HZ * 2f32.powf(pitch / 12.0)));
            bank.pitch.push(pitch);
            bank.age.push(note.age);
            bank.continues.push(false);
            levels.push(f.frame_db[t]);
            prev_kept = Some(note.age);
        }
        // The kept frames' log-magnitudes: the features' own rows, moved down over the frames
        // not kept (frame t's centre is t * hop), instead of a second copy of the clip's
        // spectra; the background taken out.
        let mut log_mag = f.log_mag;
        let cleaner = room
            .as_ref()
            .map(|r| r.row_cleaner(MAG_FLOOR, window_power));
        for (i, (centre, _)) in kept.iter().enumerate() {
            let t = centre / cfg.hop;
            if t != i {
                log_mag.copy_within(t * bins..(t + 1) * bins, i * bins);
            }
            if let Some(cleaner) = &cleaner {
                cleaner.clean(&mut log_mag[i * bins..(i + 1) * bins]);
            }
        }
        log_mag.truncate(kept.len() * bins);
        if log_mag.capacity() > 2 * log_mag.len() {
            log_mag.shrink_to_fit();
        }
        bank.log_mag = log_mag;
        // The partials of every kept frame (each frame alone: two threads), written straight
        // into the bank's rows.
        bank.harmonics = vec![0.0; kept.len() * HARMONIC_PARTIALS];
        bank.noise = vec![0.0; kept.len() * HARMONIC_PARTIALS];
        rows_in_halves(
            &mut bank.harmonics,
            &mut bank.noise,
            HARMONIC_PARTIALS,
            MIN_FRAMES_TO_SPLIT,
            |first, harmonics, noise| {
                let mut partials = PartialMeter::new();
                let rows = harmonics
                    .chunks_exact_mut(HARMONIC_PARTIALS)
                    .zip(noise.chunks_exact_mut(HARMONIC_PARTIALS));
                for ((centre, f0), (h, n)) in kept[first..].iter().zip(rows) {
                    partials.measure(audio, *centre, *f0, sr, room.as_ref(), h, n);
                }
            },
        );
        bank.background_db = room.as_ref().map(|r| r.frame_db(window_power) - loudest);
        if let Some(room) = &room {
            // A frame of no partial above the background is the background's, not a note's.
            let heard: Vec<bool> = bank
                .harmonics
                .chunks_exact(HARMONIC_PARTIALS)
                .zip(&kept)
                .map(|(row, &(_, f0))| any_partial_heard(room, row, f0))
                .collect();
            bank.keep(&heard, &mut levels);
        }
        bank.decay = note_decay(&levels, &bank.continues, sr / cfg.hop as f32);
        (!bank.pitch.is_empty()).then_some(bank)
    }

    /// Keeps the frames `keep` marks (and their `levels`), in order; a note's run breaks where
    /// a frame of it goes.
    fn keep(&mut self, keep: &[bool], levels: &mut Vec<f32>) {
        if keep.iter().all(|&k| k) {
            return;
        }
        let (bins, p) = (self.bins, HARMONIC_PARTIALS);
        let mut n = 0;
        for (j, &k) in keep.iter().enumerate() {
            if !k {
                if n > 0 {
                    self.continues[n - 1] = false;
                }
                continue;
            }
            if j != n {
                self.log_mag.copy_within(j * bins..(j + 1) * bins, n * bins);
                self.harmonics.copy_within(j * p..(j + 1) * p, n * p);
                self.noise.copy_within(j * p..(j + 1) * p, n * p);
                self.pitch[n] = self.pitch[j];
                self.age[n] = self.age[j];
                self.continues[n] = self.continues[j];
                levels[n] = levels[j];
            }
            n += 1;
        }
        self.log_mag.truncate(n * bins);
        self.harmonics.truncate(n * p);
        self.noise.truncate(n * p);
        self.pitch.truncate(n);
        self.age.truncate(n);
        self.continues.truncate(n);
        levels.truncate(n);
    }

    /// The framing the clip was analysed at (an [`ExemplarSwap`](super::ExemplarSwap) runs at
    /// the same).
    pub fn stft(&self) -> StftConfig {
        self.cfg
    }

    /// The level of the background noise measured in the clip's pauses and taken out of its
    /// frames, in dB under its loudest frame (frame energies at the clip's framing); `None`
    /// where the clip has none (its pauses are silent, or too short to measure).
    pub fn background_db(&self) -> Option<f32> {
        self.background_db
    }

    /// Frames in the bank.
    pub fn frames(&self) -> usize {
        self.pitch.len()
    }

    pub(super) fn row(&self, j: usize) -> &[f32] {
        &self.log_mag[j * self.bins..(j + 1) * self.bins]
    }

    pub(super) fn harmonics(&self, j: usize) -> &[f32] {
        &self.harmonics[j * HARMONIC_PARTIALS..(j + 1) * HARMONIC_PARTIALS]
    }

    pub(super) fn noise(&self, j: usize) -> &[f32] {
        &self.noise[j * HARMONIC_PARTIALS..(j + 1) * HARMONIC_PARTIALS]
    }
}

/// How a clip's notes fall after their peak: what [`note_decay`] reads.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NoteDecay {
    /// Frames from a note's start to its peak (the median over the clip's notes).
    pub peak_frames: u32,
    /// Level change per frame after the peak, in dB (at most 0; 0 for a sustained sound).
    pub db_per_frame: f32,
}

/// Part of a note after its peak that its decay is read from; the rest may be the release.
pub const DECAY_READ_SHARE: f32 = 0.6;
/// Shortest stretch after a note's peak its decay is read from, in seconds.
pub const DECAY_MIN_SECONDS: f32 = 0.08;
/// Fastest decay read from a clip, in dB per second.
pub const MAX_DECAY_DB_PER_S: f32 = 120.0;
/// A note's peak is looked for in its first this many seconds.
pub const PEAK_SEARCH_SECONDS: f32 = 0.25;

/// The decay of a clip's notes from the level of its kept frames (`level_db`, dB) and their
/// note links (`continues`), frames `fps` a second: each note's peak in its first
/// [`PEAK_SEARCH_SECONDS`], then the least-squares slope of its level over the first
/// [`DECAY_READ_SHARE`] of the rest (at least [`DECAY_MIN_SECONDS`] long); the median over
/// the notes. Allocates.
pub fn note_decay(level_db: &[f32], continues: &[bool], fps: f32) -> NoteDecay {
    let search = (PEAK_SEARCH_SECONDS * fps).round().max(1.0) as usize;
    let min_len = (DECAY_MIN_SECONDS * fps).round().max(3.0) as usize;
    let mut peaks = Vec::new();
    let mut slopes = Vec::new();
    let mut start = 0;
    while start < level_db.len() {
        let mut end = start + 1;
        while end < level_db.len() && continues[end - 1] {
            end += 1;
        }
        let note = &level_db[start..end];
        let peak = (0..note.len().min(search))
            .max_by(|a, b| note[*a].total_cmp(&note[*b]))
            .unwrap_or(0);
        let len = ((note.len() - peak) as f32 * DECAY_READ_SHARE) as usize;
        if len >= min_len {
            let seg = &note[peak..peak + len];
            let n = len as f32;
            let mean_x = (n - 1.0) / 2.0;
            let mean_y = seg.iter().sum::<f32>() / n;
            let (mut sxy, mut sxx) = (0.0f32, 0.0f32);
            for (i, y) in seg.iter().enumerate() {
                let dx = i as f32 - mean_x;
                sxy += dx * (y - mean_y);
                sxx += dx * dx;
            }
            if sxx > 0.0 && sxy.is_finite() {
                peaks.push(peak as u32);
                slopes.push(sxy / sxx);
            }
        }
        start = end;
    }
    if slopes.is_empty() {
        return NoteDecay::default();
    }
    slopes.sort_by(f32::total_cmp);
    peaks.sort_unstable();
    let fastest = MAX_DECAY_DB_PER_S / fps.max(1.0);
    NoteDecay {
        peak_frames: peaks[peaks.len() / 2],
        db_per_frame: slopes[slopes.len() / 2].clamp(-fastest, 0.0),
    }
}

/// Fewest frames whose analysis is worth a second thread.
const MIN_FRAMES_TO_SPLIT: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    /// Levels of a note that rises for `rise` frames to 0 dB, falls `slope` dB a frame for
    /// `hold` frames, then `release` dB a frame for 40 frames; and its note links.
    fn note(rise: usize, slope: f32, hold: usize, release: f32) -> (Vec<f32>, Vec<bool>) {
        let mut db: Vec<f32> = (0..rise)
            .map(|i| -20.0 * (1.0 - i as f32 / rise as f32))
            .collect();
        db.extend((0..hold).map(|i| slope * i as f32));
        let held = slope * hold as f32;
        db.extend((1..=40).map(|i| held + release * i as f32));
        let mut continues = vec![true; db.len()];
        *continues.last_mut().unwrap() = false;
        (db, continues)
    }

    #[test]
    fn a_notes_decay_is_read_after_its_peak_and_before_its_release() {
        let fps = 200.0;
        // A struck note: -0.1 dB a frame (-20 dB/s) from its peak at frame 4, released at
        // -1 dB a frame: the slope of the decay, not of the release.
        let (db, links) = note(4, -0.1, 300, -1.0);
        let d = note_decay(&db, &links, fps);
        assert_eq!(d.peak_frames, 4);
        assert!((d.db_per_frame + 0.1).abs() < 1e-3, "{d:?}");
        // A held note that swells a little: no decay (never a rise).
        let (db, links) = note(30, 0.01, 300, -1.0);
        assert_eq!(note_decay(&db, &links, fps).db_per_frame, 0.0);
        // Several notes: the median note's decay; a note too short to read is left out.
        let mut all = (Vec::new(), Vec::new());
        for slope in [-0.05, -0.2, -0.1] {
            let (db, links) = note(2, slope, 100, -1.0);
            all.0.extend(db);
            all.1.extend(links);
        }
        let (db, links) = note(2, -3.0, 5, -1.0);
        all.0.extend(&db[..10]);
        all.1.extend(&links[..9]);
        all.1.push(false);
        let d = note_decay(&all.0, &all.1, fps);
        assert!((d.db_per_frame + 0.1).abs() < 1e-3, "{d:?}");
        // Faster than MAX_DECAY_DB_PER_S is held to it; a clip of no readable note has none.
        let (db, links) = note(1, -5.0, 200, -1.0);
        let d = note_decay(&db, &links, fps);
        assert!(
            (d.db_per_frame + MAX_DECAY_DB_PER_S / fps).abs() < 1e-6,
            "{d:?}"
        );
        assert_eq!(note_decay(&[0.0; 5], &[true; 5], fps), NoteDecay::default());
    }

    /// Dropping frames keeps the others whole and in order, and a note's run stops where a
    /// frame of it went.
    #[test]
    fn dropped_frames_leave_the_rest_in_order() {
        use super::super::test_signal::tone;
        let cfg = StftConfig::default();
        let before = ExemplarBank::new(&cfg, &tone(330.0, 5, 8_000)).expect("a note");
        let n = before.frames();
        let keep: Vec<bool> = (0..n).map(|j| j % 3 != 1 && j + 1 != n).collect();
        let mut bank = before.clone();
        let mut levels: Vec<f32> = (0..n).map(|j| j as f32).collect();
        bank.keep(&keep, &mut levels);
        let kept: Vec<usize> = (0..n).filter(|&j| keep[j]).collect();
        assert_eq!(bank.frames(), kept.len());
        assert_eq!(levels, kept.iter().map(|&j| j as f32).collect::<Vec<_>>());
        for (i, &j) in kept.iter().enumerate() {
            assert_eq!(bank.row(i), before.row(j));
            assert_eq!(bank.harmonics(i), before.harmonics(j));
            assert_eq!(bank.noise(i), before.noise(j));
            assert_eq!(
                (bank.pitch[i], bank.age[i]),
                (before.pitch[j], before.age[j])
            );
            let next_kept = j + 1 < n && keep[j + 1];
            assert_eq!(
                bank.continues[i],
                before.continues[j] && next_kept,
                "frame {j}"
            );
        }
        assert!(before.continues.iter().filter(|&&c| c).count() > n / 2);
    }

    /// A second of a 330 Hz tone (five partials), then half a second of silence, and the same
    /// with white noise `db` dB under the tone's RMS added throughout; the noise's standard
    /// deviation.
    fn tone_in_a_room(db: f32) -> (Vec<f32>, Vec<f32>, f32) {
        use super::super::test_signal::{tone, SR};
        let mut clean = tone(330.0, 5, SR as usize);
        let rms = (clean.iter().map(|x| x * x).sum::<f32>() / clean.len() as f32).sqrt();
        clean.extend(vec![0.0; SR as usize / 2]);
        let sigma = rms * 10f32.powf(db / 20.0);
        let mut rng = crate::test_rng::XorShift::new(11);
        // Uniform on [-a, a] has variance a^2 / 3.
        let a = sigma * 3f32.sqrt();
        let noisy = clean
            .iter()
            .map(|x| x + rng.next_centred() * 2.0 * a)
            .collect();
        (clean, noisy, sigma)
    }

    /// A room's noise 55 dB under the note is measured and taken out; 62 dB under, further
    /// than [`MAX_BACKGROUND_UNDER_DB`] (and still above the rows' floor: measured 61.9 dB
    /// under without the limit), it is left in: the bank keeps the frames a clean clip's
    /// analysis keeps.
    #[test]
    fn a_background_far_under_the_note_is_left_in() {
        let cfg = StftConfig::default();
        let (clean, near, _) = tone_in_a_room(-55.0);
        let level = ExemplarBank::new(&cfg, &near)
            .and_then(|b| b.background_db())
            .expect("a background");
        assert!((level + 55.0).abs() < 1.0, "{level} dB");
        let (_, far, _) = tone_in_a_room(-62.0);
        let far = ExemplarBank::new(&cfg, &far).expect("a note");
        let quiet = ExemplarBank::new(&cfg, &clean).expect("a note");
        assert_eq!(far.background_db(), None);
        assert_eq!(far.frames(), quiet.frames());
    }

    /// A clip in a room: white noise 30 dB under its note, through the note and for half a
    /// second after it. The bank keeps none of the noise alone (the clean clip's frames, to
    /// the edges' few), its first partials keep the clean clip's levels to each other, and the
    /// partials and valleys where only the noise is hold the floor left of it, falling by 12
    /// dB an octave above the fifth partial, the last the tone has (without the background
    /// taken out, a partial holds the loudest of its 21 bins' noise, some 25 dB over the
    /// floor, and a valley the quietest of its bins, about 10 dB over it; without the fall,
    /// the floor itself: at the 47th partial, 39 dB over what is asked here). Below the
    /// fundamental, the valley holds the floor's fall there.
    #[test]
    fn a_rooms_noise_is_background_not_note() {
        use super::super::background::SUBTRACTION_FLOOR;
        let cfg = StftConfig::default();
        let (clean, noisy, sigma) = tone_in_a_room(-30.0);
        let quiet = ExemplarBank::new(&cfg, &clean).expect("a note");
        let room = ExemplarBank::new(&cfg, &noisy).expect("a note");
        // The noise's level under the steady tone's frames: 30 dB.
        assert_eq!(quiet.background_db(), None);
        let level = room.background_db().expect("a background");
        assert!((level + 30.0).abs() < 1.0, "{level} dB");
        assert!(
            room.frames().abs_diff(quiet.frames()) <= 3,
            "{} frames kept in the room, {} clean",
            room.frames(),
            quiet.frames()
        );
        // Levels of partials 2..=5 against the fundamental's, in dB, median over the frames.
        let relative = |bank: &ExemplarBank, h: usize| {
            let mut db: Vec<f32> = (0..bank.frames())
                .map(|j| 20.0 * (bank.harmonics(j)[h - 1] / bank.harmonics(j)[0]).log10())
                .collect();
            db.sort_by(f32::total_cmp);
            db[db.len() / 2]
        };
        for h in 2..=5 {
            let (q, r) = (relative(&quiet, h), relative(&room, h));
            assert!(
                (q - r).abs() < 0.5,
                "partial {h}: {r} dB in the room, {q} clean"
            );
        }
        // Partials 6 and up (to 16 kHz) and the valleys from the fifth up: the noise alone, of
        // density sigma^2 (white), times the bank's gain to the training level squared.
        let gain = crate::network::at_training_level(&noisy)[100] / noisy[100];
        let density = (sigma * gain).powi(2);
        // A hidden partial's amplitude: the floor of the noise's power in one bin
        // (`density sum w^2`), through the meter's peak-to-amplitude factor 4 / N.
        let n = super::super::HARMONIC_FFT as f32;
        let hidden = (SUBTRACTION_FLOOR * density * 0.375 * n).sqrt() * 4.0 / n;
        // The floor's fall at `hz`, in power: (5 f0 / hz)^4 above the fifth partial (12 dB an
        // octave in amplitude), (hz / f0)^4 below the fundamental.
        let fall = |hz_over_f0: f32| {
            let r = if hz_over_f0 > 5.0 {
                5.0 / hz_over_f0
            } else {
                hz_over_f0.min(1.0)
            };
            r.powi(4)
        };
        // The steady note's frames: not the first and last 13 (65 ms), whose 64 ms window
        // holds the note's start or end, a transient whose spread is heard over the noise
        // well above the fifth partial.
        let edge = super::super::HARMONIC_FFT.div_ceil(cfg.hop);
        let (mut sounding, mut off_floor, mut all) = (0, 0, 0);
        for j in edge..room.frames() - edge {
            let row = room.harmonics(j);
            let valleys = room.noise(j);
            // Valley 0 (below the fundamental) and valleys 5 and up (above the fifth partial).
            for (h, valley) in valleys.iter().enumerate().take(47) {
                if (1..5).contains(&h) {
                    continue;
                }
                all += 1;
                let share = valley.powi(2) / density / fall(h as f32 + 0.5);
                // Within a factor of 2: the estimate's scatter from bin to bin (a median of
                // about 90 frames); unsubtracted, the lowest of a valley's bins lies about 10
                // dB under the noise, 10 times the floor.
                off_floor += usize::from(!(0.5..2.0).contains(&(share / SUBTRACTION_FLOOR)));
            }
            for h in 6..48 {
                all += 1;
                let power = (row[h - 1] / hidden).powi(2) / fall(h as f32);
                sounding += usize::from(!(0.5..2.0).contains(&power));
            }
        }
        assert!(
            sounding * 100 <= all,
            "{sounding} of {all} noise partials sound"
        );
        assert!(
            off_floor * 100 <= all,
            "{off_floor} of {all} valleys off the floor"
        );
    }
}
