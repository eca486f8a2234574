//! The exemplar swap: every output frame is a frame of the reference clip itself, chosen by the
//! age of the note it belongs to and by pitch, moved to the input's pitch (the model's pitch
//! ruler measures both), given the input's phase and level.
//!
//! - [`ExemplarBank`] is the reference's analysis: log-magnitude frames, their pitch, the age
//!   of their note. Built off the audio thread when a reference loads.
//! - [`NoteTracker`] finds note starts in a stream of frames (level jumps, a pitch that moves
//!   to another note, sound after silence); the bank and the input use the same one.
//! - [`ExemplarSwap`] is the per-frame processor. Realtime-safe after construction.

use std::sync::Arc;

use realfft::num_complex::Complex32;

use crate::cepstrum::Cepstrum;
use crate::config::StftConfig;
use crate::features::FeatureExtractor;
use crate::network::{at_training_level, Network, NetworkState};

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
/// Notes older than this many seconds all count as "sustained": the choice among their frames
/// goes by pitch alone.
pub const ATTACK_SECONDS: f32 = 0.25;
/// Cost of one semitone of pitch distance, in frames of note age.
pub const SEMITONE_COST_FRAMES: f32 = 6.0;
/// Largest move along frequency, in semitones: a frame further from the input's pitch is
/// moved this far and no further.
pub const MAX_SHIFT_SEMITONES: f32 = 24.0;

/// Half-width of the search around the pitch ruler's estimate, in cents.
pub const REFINE_RANGE_CENTS: f32 = 150.0;
/// Step of that search, in cents (refined by a parabola through the best step).
pub const REFINE_STEP_CENTS: f32 = 5.0;
/// Highest partial frequency the refinement sums, in Hz.
pub const REFINE_MAX_HZ: f32 = 8_000.0;
/// Most partials the refinement sums.
pub const REFINE_MAX_PARTIALS: usize = 40;
/// Longest stretch of a clip the bank analyses, in seconds (its first seconds; a bank of
/// 20 s holds about 12 MB).
pub const MAX_BANK_SECONDS: usize = 20;
/// Floor added to magnitudes before their logarithm (the shipped models' `mag_floor`).
pub const MAG_FLOOR: f32 = 1e-3;
/// Frequency of middle C (MIDI 60), in Hz.
const MIDDLE_C_HZ: f32 = 261.625_58;

/// The pitch near `guess` (semitones from middle C) whose partials collect the most of the
/// magnitude spectrum `mag` (linear, bins `bin_hz` apart): a harmonic sum over a grid of
/// [`REFINE_STEP_CENTS`] within [`REFINE_RANGE_CENTS`], refined by a parabola. Returns
/// semitones from middle C. Realtime-safe.
pub fn refine_pitch(mag: &[f32], bin_hz: f32, guess: f32) -> f32 {
    let guess = if guess.is_finite() {
        guess.clamp(-60.0, 60.0)
    } else {
        0.0
    };
    let last = mag.len().saturating_sub(1) as f32;
    let at = |pos: f32| -> f32 {
        if pos >= last || pos < 0.0 {
            return 0.0;
        }
        let i = pos as usize;
        let w = pos - i as f32;
        mag[i] + (mag[i + 1] - mag[i]) * w
    };
    let score = |semitones: f32| -> f32 {
        let f0 = MIDDLE_C_HZ * 2f32.powf(semitones / 12.0);
        let partials = ((REFINE_MAX_HZ / f0) as usize).clamp(1, REFINE_MAX_PARTIALS);
        (1..=partials).map(|h| at(h as f32 * f0 / bin_hz)).sum()
    };
    let steps = (REFINE_RANGE_CENTS / REFINE_STEP_CENTS) as i32;
    let step = REFINE_STEP_CENTS / 100.0;
    let (mut best, mut best_score) = (0i32, f32::NEG_INFINITY);
    for i in -steps..=steps {
        let s = score(guess + i as f32 * step);
        if s > best_score {
            best_score = s;
            best = i;
        }
    }
    let centre = guess + best as f32 * step;
    let (l, r) = (score(centre - step), score(centre + step));
    let denom = l - 2.0 * best_score + r;
    let offset = if denom < 0.0 {
        (0.5 * (l - r) / denom).clamp(-0.5, 0.5)
    } else {
        0.0
    };
    centre + offset * step
}

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

/// The reference clip as frames to choose from.
#[derive(Debug, Clone)]
pub struct ExemplarBank {
    /// The framing the clip was analysed at.
    cfg: StftConfig,
    bins: usize,
    /// `ln(|X| + mag_floor)` of each kept frame, row-major `frames x bins`.
    log_mag: Vec<f32>,
    /// Pitch ruler of each kept frame, semitones from middle C.
    pitch: Vec<f32>,
    /// Note age of each kept frame, in frames.
    age: Vec<u32>,
    /// Whether the next kept frame continues the same note.
    continues: Vec<bool>,
    /// Amplitude of partials `1..=HARMONIC_PARTIALS` of each kept frame (linear, the sinusoid's
    /// peak amplitude in sample units), row-major `frames x HARMONIC_PARTIALS`; measured on a
    /// [`HARMONIC_FFT`]-point Hann spectrum, so low notes' partials are resolved.
    harmonics: Vec<f32>,
    /// Noise between the partials of each kept frame, row-major `frames x HARMONIC_PARTIALS`:
    /// entry `h` is the spectrum's valley between partials `h` and `h + 1` (`h = 0`: below
    /// the fundamental) as a noise amplitude per bin (`|X| / sqrt(sum w^2)`).
    noise: Vec<f32>,
}

impl ExemplarBank {
    /// Analyses `audio` (mono, at `cfg`'s rate; its first [`MAX_BANK_SECONDS`]). A frame's
    /// pitch is YIN's where YIN is sure, otherwise the harmonic sum near the last sure pitch.
    /// `None` when the clip has no sounding frame. Allocates; call it off the audio thread.
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
        let bins = cfg.n_bins();
        let mut ex = FeatureExtractor::new(cfg, MAG_FLOOR);
        let f = ex.clip(&audio);
        let mut ruler = net.map(|n| (n, n.state()));
        let mut env = vec![0.0f32; bins];
        let mut fine = vec![0.0f32; bins];
        let mut mag = vec![0.0f32; bins];
        let mut scratch = vec![0.0f32; YIN_MAX_LAG + 1];
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
        };
        let mut partials = PartialMeter::new();
        let mut prev_kept: Option<u32> = None;
        // YIN's sure answers first: the whole clip is at hand, so a frame YIN is unsure of
        // (a note's first frames, before YIN has a window of it) takes the nearest sure pitch
        // as the guess, before or after it.
        let sure: Vec<Option<f32>> = (0..f.frames)
            .map(|t| {
                let end = (t * cfg.hop + cfg.n_fft / 2).min(audio.len());
                yin(&audio[..end], sr, &mut scratch)
                    .filter(|(_, aperiodicity)| *aperiodicity < YIN_TRUST)
                    .map(|(p, _)| p)
            })
            .collect();
        let nearest = nearest_known(&sure);
        for t in 0..f.frames {
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
            for (m, l) in mag.iter_mut().zip(&f.log_mag[rows.clone()]) {
                *m = (l.exp() - MAG_FLOOR).max(0.0);
            }
            let pitch = known.unwrap_or_else(|| match sure[t] {
                Some(p) => p,
                None => refine_pitch(&mag, bin_hz, guess),
            });
            let note = tracker.update(f.frame_db[t], pitch);
            if !note.sounding {
                prev_kept = None;
                continue;
            }
            if let (Some(prev), Some(last)) = (prev_kept, bank.continues.last_mut()) {
                *last = note.age == prev + 1;
            }
            bank.log_mag.extend_from_slice(&f.log_mag[rows]);
            let f0 = MIDDLE_C_HZ * 2f32.powf(pitch / 12.0);
            partials.measure(
                &audio,
                t * cfg.hop,
                f0,
                sr,
                &mut bank.harmonics,
                &mut bank.noise,
            );
            bank.pitch.push(pitch);
            bank.age.push(note.age);
            bank.continues.push(false);
            prev_kept = Some(note.age);
        }
        (!bank.pitch.is_empty()).then_some(bank)
    }

    /// The framing the clip was analysed at (an [`ExemplarSwap`] runs at the same).
    pub fn stft(&self) -> StftConfig {
        self.cfg
    }

    /// Frames in the bank.
    pub fn frames(&self) -> usize {
        self.pitch.len()
    }

    fn row(&self, j: usize) -> &[f32] {
        &self.log_mag[j * self.bins..(j + 1) * self.bins]
    }

    fn harmonics(&self, j: usize) -> &[f32] {
        &self.harmonics[j * HARMONIC_PARTIALS..(j + 1) * HARMONIC_PARTIALS]
    }

    fn noise(&self, j: usize) -> &[f32] {
        &self.noise[j * HARMONIC_PARTIALS..(j + 1) * HARMONIC_PARTIALS]
    }
}

/// The output's partial amplitudes at `f0` Hz from a reference frame's partial amplitudes
/// `amps` at `f0_ref` Hz: the reference's partials read as an envelope over frequency (each
/// output partial takes the reference's level at its own frequency, log-linear between the
/// reference's partials; below the fundamental its level), so resonances stay where they
/// are. Nothing past the reference's last partial. Measured against keeping the pattern by
/// partial number (source and filter) on TimGM6mb: more outputs classified as the
/// reference's instrument, and the pitch kept more often (docs/quality.md). Realtime-safe.
pub fn partial_amplitudes(amps: &[f32], f0_ref: f32, f0: f32, out: &mut [f32]) {
    let n = amps.len().min(out.len());
    out[..n].fill(0.0);
    // Partials up to the last one the reference has (above it, its band ended).
    let Some(m) = amps[..n].iter().rposition(|a| *a > 0.0).map(|i| i + 1) else {
        return;
    };
    let ratio = if f0_ref > 0.0 && f0.is_finite() && f0 > 0.0 {
        f0 / f0_ref
    } else {
        1.0
    };
    for (i, o) in out[..n].iter_mut().enumerate() {
        // This partial's frequency in the reference's partial numbers, from 0.
        let pos = ((i + 1) as f32 * ratio - 1.0).max(0.0);
        if pos > (m - 1) as f32 {
            break;
        }
        let k = pos as usize;
        let (a0, a1) = (amps[k], amps[(k + 1).min(m - 1)]);
        *o = if a0 > 0.0 && a1 > 0.0 {
            a0 * (a1 / a0).powf(pos - k as f32)
        } else {
            0.0
        };
    }
}

/// For each entry, the nearest `Some` value of `values` (itself if `Some`; the earlier one on
/// a tie), or 0 when there is none.
fn nearest_known(values: &[Option<f32>]) -> Vec<f32> {
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

/// FFT size of the reference's partial measurement ([`ExemplarBank`]), in samples.
pub const HARMONIC_FFT: usize = 2048;
/// Partials the bank measures per frame for [`Shift::Harmonic`] (enough to reach 16 kHz
/// from a 62.5 Hz fundamental).
pub const HARMONIC_PARTIALS: usize = 256;
/// Highest partial frequency [`Shift::Harmonic`] plays, in Hz.
pub const HARMONIC_MAX_HZ: f32 = 16_000.0;

/// Measures partial amplitudes of frames of a clip on a [`HARMONIC_FFT`]-point Hann spectrum.
struct PartialMeter {
    fft: std::sync::Arc<dyn realfft::RealToComplex<f32>>,
    window: Vec<f32>,
    time: Vec<f32>,
    spectrum: Vec<Complex32>,
    mag: Vec<f32>,
}

impl PartialMeter {
    fn new() -> Self {
        let fft = realfft::RealFftPlanner::<f32>::new().plan_fft_forward(HARMONIC_FFT);
        Self {
            spectrum: fft.make_output_vec(),
            fft,
            window: crate::stft::hann(HARMONIC_FFT),
            time: vec![0.0; HARMONIC_FFT],
            mag: vec![0.0; HARMONIC_FFT / 2 + 1],
        }
    }

    /// Appends [`HARMONIC_PARTIALS`] amplitudes of partials of `f0` Hz in the frame centred on
    /// sample `centre` of `audio` (`sr` Hz) to `out`.
    fn measure(
        &mut self,
        audio: &[f32],
        centre: usize,
        f0: f32,
        sr: f32,
        out: &mut Vec<f32>,
        noise: &mut Vec<f32>,
    ) {
        crate::features::centred_frame(audio, centre, &mut self.time);
        for (t, w) in self.time.iter_mut().zip(&self.window) {
            *t *= w;
        }
        let _ = self.fft.process(&mut self.time, &mut self.spectrum);
        for (m, x) in self.mag.iter_mut().zip(&self.spectrum) {
            *m = x.norm();
        }
        // A sinusoid of amplitude A peaks at A * sum(w) / 2 = A * N / 4 for a Hann window.
        let to_amplitude = 4.0 / HARMONIC_FFT as f32;
        let bin_hz = sr / HARMONIC_FFT as f32;
        for h in 1..=HARMONIC_PARTIALS {
            let a = if h as f32 * f0 < HARMONIC_MAX_HZ.min(0.5 * sr) {
                partial_level(&self.mag, f0, h, bin_hz).unwrap_or(0.0) * to_amplitude
            } else {
                0.0
            };
            out.push(a);
        }
        // Valleys: the smallest magnitude between a partial's main lobe and the next one's
        // (a floor of the noise there, below the partials' leakage).
        let to_density = 1.0 / (0.375 * HARMONIC_FFT as f32).sqrt();
        for h in 0..HARMONIC_PARTIALS {
            let lo = ((h as f32 + 0.25) * f0 / bin_hz).ceil() as usize;
            let hi = (((h as f32 + 0.75) * f0 / bin_hz).floor() as usize).min(self.mag.len() - 1);
            let mid = (((h as f32 + 0.5) * f0 / bin_hz).round() as usize).min(self.mag.len() - 1);
            let v = if (h as f32 + 0.5) * f0 >= 0.5 * sr {
                0.0
            } else if lo <= hi {
                self.mag[lo..=hi]
                    .iter()
                    .copied()
                    .fold(f32::INFINITY, f32::min)
            } else {
                self.mag[mid]
            };
            noise.push(v * to_density);
        }
    }
}

/// How a chosen frame is moved to the input's pitch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shift {
    /// Only the fine structure is stretched; the frame's cepstral envelope stays.
    KeepEnvelope,
    /// Nothing is stretched: each of the input's partials takes the level of the chosen
    /// frame's partial of the same number (the input's own partials, at their own
    /// frequencies, with the reference's partial pattern). Frames whose partials the FFT
    /// cannot resolve take [`Shift::KeepEnvelope`].
    Partials,
    /// [`Shift::Partials`] on the bins within one bin of the input's partials,
    /// [`Shift::KeepEnvelope`] between them (the reference's noise between its partials).
    PartialsAndNoise,
    /// Additive: sinusoids at the input's pitch with the chosen frame's partial amplitudes
    /// (measured on a long window, so low notes keep their partial pattern), a continuous
    /// phase; frames where the input has no trusted pitch take [`Shift::KeepEnvelope`].
    Harmonic,
}

/// Partials whose levels [`Shift::Partials`] reads, at most.
pub const MAX_PARTIALS: usize = 64;
/// Largest change [`Shift::Partials`] makes to a partial, in dB.
pub const MAX_PARTIAL_GAIN_DB: f32 = 40.0;

/// The largest value of `row` within half a partial spacing of partial `h` of `f0` Hz (bins
/// `bin_hz` apart); `None` above the last bin.
fn partial_level(row: &[f32], f0: f32, h: usize, bin_hz: f32) -> Option<f32> {
    let centre = h as f32 * f0 / bin_hz;
    let half = (0.5 * f0 / bin_hz).max(1.0);
    let lo = (centre - half).ceil().max(0.0) as usize;
    let hi = ((centre + half).floor() as usize).min(row.len() - 1);
    if lo > hi || lo >= row.len() {
        return None;
    }
    row[lo..=hi].iter().copied().reduce(f32::max)
}

/// Switches of [`ExemplarSwap`]; the default is what [`SwapMode::Exemplar`] plays
/// ([`Shift::Harmonic`], YIN first, the input's phase).
///
/// [`SwapMode::Exemplar`]: crate::SwapMode::Exemplar
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExemplarOptions {
    /// How a chosen frame is moved to the input's pitch.
    pub shift: Shift,
    /// YIN first (the ruler where it is unsure), or the refined ruler alone.
    pub yin: bool,
    /// Phase from the magnitudes (RTPGHI) instead of the input's.
    pub reconstruct: bool,
}

impl Default for ExemplarOptions {
    fn default() -> Self {
        Self {
            shift: Shift::Harmonic,
            yin: true,
            reconstruct: false,
        }
    }
}

/// The per-frame exemplar processor. Realtime-safe after construction.
pub struct ExemplarSwap {
    cfg: StftConfig,
    /// A model's pitch ruler and its causal state: the guess where YIN is unsure.
    ruler: Option<(Arc<Network>, NetworkState)>,
    /// The last pitch YIN was sure of, semitones from middle C (the guess without a ruler).
    last_sure: f32,
    bank: Arc<ExemplarBank>,
    shift: Shift,
    opts: ExemplarOptions,
    rtpghi: crate::phase::Rtpghi,
    cepstrum: Cepstrum,
    tracker: NoteTracker,
    attack_frames: u32,
    previous: Option<usize>,
    hop: usize,
    history: Box<[f32]>,
    yin_scratch: Box<[f32]>,
    log_mag: Box<[f32]>,
    mag: Box<[f32]>,
    envelope: Box<[f32]>,
    fine: Box<[f32]>,
    chosen_env: Box<[f32]>,
    out_log: Box<[f32]>,
    /// Phase of the fundamental at the current frame's centre ([`Shift::Harmonic`]), radians.
    phase: f64,
    /// Pitch of the previous frame, Hz (0 when none).
    last_f0: f32,
    stft: crate::stft::Stft,
    grain: Box<[f32]>,
    /// The output's partial amplitudes ([`Shift::Harmonic`]).
    amplitudes: Box<[f32]>,
    /// The partials' oscillators ([`Shift::Harmonic`]).
    oscillators: Oscillators,
    /// State of the noise phases' generator.
    seed: u32,
    /// Makes random-phase noise frames come out of the overlap-add at their own level.
    noise_gain: f32,
}

impl ExemplarSwap {
    /// A processor drawing from `bank`, for frames of `cfg` (the bank's framing). Where YIN
    /// is unsure of the input's pitch, the harmonic sum searches near the last sure pitch.
    /// Allocates.
    pub fn new(cfg: &StftConfig, bank: Arc<ExemplarBank>, opts: ExemplarOptions) -> Self {
        Self::build(cfg, None, bank, opts)
    }

    /// [`new`](Self::new) with `net`'s pitch ruler as the guess where YIN is unsure (or, with
    /// `opts.yin` off, everywhere). `net` must frame audio as the bank does (rate, FFT size,
    /// hop) and have a pitch ruler, else the guess is YIN's as in [`new`](Self::new).
    /// Allocates.
    pub fn with_ruler(net: Arc<Network>, bank: Arc<ExemplarBank>, opts: ExemplarOptions) -> Self {
        let cfg = bank.stft();
        let m = net.stft();
        let fits = (m.sample_rate, m.n_fft, m.hop) == (cfg.sample_rate, cfg.n_fft, cfg.hop)
            && net.config().pitch_ruler();
        let ruler = fits.then(|| {
            let state = net.state();
            (net, state)
        });
        Self::build(&cfg, ruler, bank, opts)
    }

    fn build(
        c: &StftConfig,
        ruler: Option<(Arc<Network>, NetworkState)>,
        bank: Arc<ExemplarBank>,
        opts: ExemplarOptions,
    ) -> Self {
        let shift = opts.shift;
        let bins = c.n_bins();
        let fps = c.sample_rate as f32 / c.hop as f32;
        Self {
            cfg: *c,
            ruler,
            last_sure: 0.0,
            cepstrum: Cepstrum::new(c),
            tracker: NoteTracker::new(fps),
            attack_frames: (ATTACK_SECONDS * fps).round() as u32,
            previous: None,
            hop: c.hop,
            history: vec![0.0; YIN_WINDOW + YIN_MAX_LAG].into_boxed_slice(),
            yin_scratch: vec![0.0; YIN_MAX_LAG + 1].into_boxed_slice(),
            log_mag: vec![0.0; bins].into_boxed_slice(),
            mag: vec![0.0; bins].into_boxed_slice(),
            envelope: vec![0.0; bins].into_boxed_slice(),
            fine: vec![0.0; bins].into_boxed_slice(),
            chosen_env: vec![0.0; bins].into_boxed_slice(),
            out_log: vec![0.0; bins].into_boxed_slice(),
            rtpghi: crate::phase::Rtpghi::new(c, MAG_FLOOR, 0, 0x6578_656d),
            phase: 0.0,
            last_f0: 0.0,
            stft: crate::stft::Stft::new(c),
            grain: vec![0.0; c.n_fft].into_boxed_slice(),
            amplitudes: vec![0.0; HARMONIC_PARTIALS].into_boxed_slice(),
            oscillators: Oscillators::new(HARMONIC_PARTIALS.div_ceil(LANES) * LANES),
            seed: 0x2545_f491,
            noise_gain: {
                // Incoherent frames add in power: sum over overlapping frames of
                // (analysis * synthesis * n)^2, averaged over a hop.
                let st = crate::stft::Stft::new(c);
                let n = c.n_fft;
                let mut power = 0.0f64;
                for i in 0..c.hop {
                    let mut j = i;
                    while j < n {
                        let g = (st.analysis[j] * st.synthesis[j] * n as f32) as f64;
                        power += g * g;
                        j += c.hop;
                    }
                }
                (c.hop as f64 / power.max(1e-12)).sqrt() as f32
            },
            opts,
            bank,
            shift,
        }
    }

    /// Forgets the stream. Realtime-safe.
    pub fn reset(&mut self) {
        if let Some((_, state)) = &mut self.ruler {
            state.reset();
        }
        self.last_sure = 0.0;
        self.tracker.reset();
        self.previous = None;
        self.history.fill(0.0);
        self.phase = 0.0;
        self.last_f0 = 0.0;
    }

    /// The bank frame for an input frame of note age `age` at `pitch` semitones.
    fn choose(&self, age: u32, pitch: f32) -> usize {
        let bank = &self.bank;
        let cap = self.attack_frames;
        let cost = |j: usize| {
            let da = (age.min(cap) as f32 - bank.age[j].min(cap) as f32).abs();
            da + SEMITONE_COST_FRAMES * (pitch - bank.pitch[j]).abs()
        };
        let mut best = 0;
        let mut best_cost = f32::INFINITY;
        for j in 0..bank.frames() {
            let c = cost(j);
            if c < best_cost {
                best_cost = c;
                best = j;
            }
        }
        // Continuity: keep playing the reference's note forward while it fits about as well
        // (its own fluctuation then comes through instead of one frozen frame).
        if age > 0 {
            if let Some(prev) = self.previous {
                if bank.continues[prev] && cost(prev + 1) <= best_cost + SEMITONE_COST_FRAMES {
                    return prev + 1;
                }
            }
        }
        best
    }

    /// One input frame's spectrum in, the output spectrum out (the input's phase, the chosen
    /// frame's magnitude; the caller matches the level). Realtime-safe.
    pub fn process(&mut self, frame: &[f32], input: &[Complex32], out: &mut [Complex32]) {
        self.process_at(frame, input, None, out)
    }

    /// [`process`](Self::process) with the input's pitch given (semitones from middle C)
    /// instead of measured. Realtime-safe.
    pub fn process_at(
        &mut self,
        frame: &[f32],
        input: &[Complex32],
        known: Option<f32>,
        out: &mut [Complex32],
    ) {
        // The newest hop of samples joins the history YIN reads.
        let hop = self.hop.min(frame.len()).min(self.history.len());
        self.history.copy_within(hop.., 0);
        let n = self.history.len();
        self.history[n - hop..].copy_from_slice(&frame[frame.len() - hop..]);
        let c = self.cfg;
        let floor = MAG_FLOOR;
        let frame_db = crate::features::split_frame(
            input,
            floor,
            &mut self.cepstrum,
            &mut self.log_mag,
            &mut self.envelope,
            &mut self.fine,
        );
        let bin_hz = c.sample_rate as f32 / c.n_fft as f32;
        let sr = c.sample_rate as f32;
        let measured = yin(&self.history, sr, &mut self.yin_scratch);
        let guess = match &mut self.ruler {
            Some((net, state)) => {
                net.normalise(&self.log_mag, &mut self.envelope, &mut self.fine);
                net.pitch_step(state, &self.fine).unwrap_or(0.0)
            }
            // YIN's best lag even where it is unsure, else the last pitch it was sure of.
            None => measured.map_or(self.last_sure, |(p, _)| p),
        };
        for (m, x) in self.mag.iter_mut().zip(input) {
            *m = x.norm();
        }
        let trusted = matches!(measured, Some((_, a)) if a < YIN_TRUST);
        if let Some((p, _)) = measured.filter(|_| trusted) {
            self.last_sure = p;
        }
        let pitch = known.unwrap_or_else(|| match measured {
            Some((p, aperiodicity)) if self.opts.yin && aperiodicity < YIN_TRUST => p,
            _ => refine_pitch(&self.mag, bin_hz, guess),
        });
        let voiced = known.is_some() || trusted;
        let note = self.tracker.update(frame_db, pitch);
        let j = self.choose(note.age, pitch);
        self.previous = Some(j);
        let row = self.bank.row(j);
        let shift = (pitch - self.bank.pitch[j]).clamp(-MAX_SHIFT_SEMITONES, MAX_SHIFT_SEMITONES);
        let ratio = 2f32.powf(shift / 12.0);
        let bins = row.len();
        let floor_log = floor.ln();
        let stretch = |src: &[f32], k: usize| {
            let pos = k as f32 / ratio;
            let i = pos.floor() as usize;
            if i + 1 >= bins {
                floor_log
            } else {
                let w = pos - i as f32;
                src[i] + (src[i + 1] - src[i]) * w
            }
        };
        let f0_in = MIDDLE_C_HZ * 2f32.powf(pitch / 12.0);
        let f0_ref = MIDDLE_C_HZ * 2f32.powf(self.bank.pitch[j] / 12.0);
        let resolved = f0_in / bin_hz >= 1.5 && f0_ref / bin_hz >= 1.5;
        let shift = match self.shift {
            Shift::Partials | Shift::PartialsAndNoise if !resolved => Shift::KeepEnvelope,
            Shift::Harmonic if !voiced => Shift::KeepEnvelope,
            s => s,
        };
        if shift == Shift::Harmonic {
            self.harmonic_grain(j, f0_in, sr, out);
            return;
        }
        self.last_f0 = 0.0;
        if matches!(shift, Shift::KeepEnvelope | Shift::PartialsAndNoise) {
            // The chosen frame's envelope with its fine structure stretched, into `out_log`
            // (PartialsAndNoise then writes the partials over it).
            self.cepstrum.envelope(row, &mut self.chosen_env);
            for ((f, l), e) in self.envelope.iter_mut().zip(row).zip(&*self.chosen_env) {
                *f = l - e;
            }
            for (k, o) in self.out_log.iter_mut().enumerate() {
                let pos = k as f32 / ratio;
                let fine = if (pos as usize) + 1 >= bins {
                    0.0
                } else {
                    stretch(&self.envelope, k)
                };
                *o = self.chosen_env[k] + fine;
            }
        }
        match shift {
            Shift::Partials | Shift::PartialsAndNoise => {
                // Log gain of each partial number, in `chosen_env` (free here).
                let limit = MAX_PARTIAL_GAIN_DB * std::f32::consts::LN_10 / 20.0;
                let partials = ((bins as f32 * bin_hz / f0_in) as usize).clamp(1, MAX_PARTIALS);
                let gains = &mut self.chosen_env[..partials];
                let mut last = 0.0;
                for (i, g) in gains.iter_mut().enumerate() {
                    let h = i + 1;
                    let input = partial_level(&self.log_mag, f0_in, h, bin_hz);
                    let reference = partial_level(row, f0_ref, h, bin_hz);
                    *g = match (input, reference) {
                        (Some(a), Some(b)) => (b - a).clamp(-limit, limit),
                        (Some(_), None) => -limit,
                        _ => last,
                    };
                    last = *g;
                }
                let near_only = shift == Shift::PartialsAndNoise;
                for (k, o) in self.out_log.iter_mut().enumerate() {
                    let u = k as f32 * bin_hz / f0_in;
                    if near_only && (u - u.round()).abs() * f0_in / bin_hz > 1.0 {
                        continue;
                    }
                    let i = (u.floor() as usize).max(1);
                    let w = (u - i as f32).clamp(0.0, 1.0);
                    let g0 = gains[(i - 1).min(partials - 1)];
                    let g1 = gains[i.min(partials - 1)];
                    *o = self.log_mag[k] + g0 + (g1 - g0) * w;
                }
            }
            // Written above.
            Shift::KeepEnvelope | Shift::Harmonic => {}
        }
        if self.opts.reconstruct {
            self.rtpghi.push(&self.out_log, out);
            return;
        }
        crate::neural::with_input_phase(input, &self.out_log, floor, out);
    }
}

/// Sinusoid oscillators as arrays: amplitude, the current phasor `re + i im`, and the
/// per-sample rotation `dr + i di`.
struct Oscillators {
    amp: Box<[f32]>,
    re: Box<[f32]>,
    im: Box<[f32]>,
    dr: Box<[f32]>,
    di: Box<[f32]>,
}

impl Oscillators {
    /// Room for `n` oscillators. Allocates.
    fn new(n: usize) -> Self {
        let zeros = || vec![0.0f32; n].into_boxed_slice();
        Self {
            amp: zeros(),
            re: zeros(),
            im: zeros(),
            dr: zeros(),
            di: zeros(),
        }
    }
}

impl ExemplarSwap {
    /// [`Shift::Harmonic`]: the spectrum of a windowed sum of sinusoids at partials of `f0`
    /// Hz with bank frame `j`'s amplitudes, the fundamental's phase carried on from the
    /// previous frame. Realtime-safe.
    fn harmonic_grain(&mut self, j: usize, f0: f32, sr: f32, out: &mut [Complex32]) {
        let two_pi = std::f64::consts::TAU;
        // The phase moves over one hop at the mean of the two frames' pitches.
        let step_f0 = if self.last_f0 > 0.0 {
            0.5 * (self.last_f0 + f0)
        } else {
            f0
        };
        self.phase = (self.phase + two_pi * step_f0 as f64 * self.hop as f64 / sr as f64) % two_pi;
        self.last_f0 = f0;
        let n = self.grain.len();
        self.grain.fill(0.0);
        let f0_ref = MIDDLE_C_HZ * 2f32.powf(self.bank.pitch[j] / 12.0);
        partial_amplitudes(self.bank.harmonics(j), f0_ref, f0, &mut self.amplitudes);
        let w = two_pi * f0 as f64 / sr as f64;
        // One oscillator per sounding partial (structure of arrays, padded to whole lanes
        // with silent ones), all advanced together sample by sample.
        let osc = &mut self.oscillators;
        let mut m = 0;
        for (i, &a) in self.amplitudes.iter().enumerate() {
            let h = (i + 1) as f64;
            if a <= 0.0 || h * f0 as f64 >= 0.5 * sr as f64 {
                continue;
            }
            // Schroeder's phases keep the crest factor low.
            let offset = std::f64::consts::PI * h * (h - 1.0) / HARMONIC_PARTIALS as f64;
            let start = h * (self.phase - w * (n / 2) as f64) + offset;
            osc.amp[m] = a;
            osc.re[m] = start.cos() as f32;
            osc.im[m] = start.sin() as f32;
            osc.dr[m] = (h * w).cos() as f32;
            osc.di[m] = (h * w).sin() as f32;
            m += 1;
        }
        let padded = m.div_ceil(LANES) * LANES;
        osc.amp[m..padded].fill(0.0);
        osc.re[m..padded].fill(0.0);
        osc.im[m..padded].fill(0.0);
        osc.dr[m..padded].fill(1.0);
        osc.di[m..padded].fill(0.0);
        for g in self.grain.iter_mut() {
            let mut lanes = [0.0f32; LANES];
            for c in (0..padded).step_by(LANES) {
                let r = c..c + LANES;
                let (amp, dr, di) = (&osc.amp[r.clone()], &osc.dr[r.clone()], &osc.di[r.clone()]);
                let (re, im) = (&mut osc.re[r.clone()], &mut osc.im[r]);
                for l in 0..LANES {
                    lanes[l] += amp[l] * re[l];
                    let next = re[l] * dr[l] - im[l] * di[l];
                    im[l] = re[l] * di[l] + im[l] * dr[l];
                    re[l] = next;
                }
            }
            *g = lanes.iter().sum();
        }
        self.stft.analyse(&self.grain, out);
        // The reference's noise between its partials, at the same frequencies, random phase.
        let noise = self.bank.noise(j);
        let bin_hz = sr / n as f32;
        let scale = (0.375 * n as f32).sqrt() * self.noise_gain;
        for (k, o) in out.iter_mut().enumerate() {
            let v = (k as f32 * bin_hz / f0_ref - 0.5).max(0.0);
            let i = (v.floor() as usize).min(HARMONIC_PARTIALS - 1);
            let (n0, n1) = (noise[i], noise[(i + 1).min(HARMONIC_PARTIALS - 1)]);
            let d = if n0 <= 0.0 || n1 <= 0.0 {
                0.0
            } else {
                n0 * (n1 / n0).powf((v - i as f32).min(1.0))
            };
            self.seed = self
                .seed
                .wrapping_mul(1_664_525)
                .wrapping_add(1_013_904_223);
            let theta = self.seed as f32 * (std::f32::consts::TAU / 4_294_967_296.0);
            *o += Complex32::from_polar(d * scale, theta);
        }
    }
}

/// `sum (a_i - b_i)^2` over the shorter of the two, in eight independent sums (so the
/// compiler can use vector registers; a single running sum would be one long dependency chain).
/// Realtime-safe.
fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            let e = x[l] - y[l];
            lanes[l] += e * e;
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| (x - y) * (x - y)).sum();
    lanes.iter().sum::<f32>() + tail
}

/// Lanes of the vectorised loops (eight f32: one AVX register).
const LANES: usize = 8;

/// Largest lag YIN searches, in samples at the model rate (50 Hz at 32 kHz).
pub const YIN_MAX_LAG: usize = 640;
/// Smallest lag, in samples (2 kHz at 32 kHz).
pub const YIN_MIN_LAG: usize = 16;
/// Samples summed per lag.
pub const YIN_WINDOW: usize = 512;
/// Above this aperiodicity YIN's answer is not used (the pitch ruler's is).
pub const YIN_TRUST: f32 = 0.3;
/// YIN's absolute threshold on the cumulative-mean-normalised difference.
pub const YIN_THRESHOLD: f32 = 0.15;

/// YIN (de Cheveigné and Kawahara 2002) on the newest `YIN_WINDOW + YIN_MAX_LAG` samples of
/// `history` (oldest first) at `sample_rate` Hz: semitones from middle C and the aperiodicity
/// (the normalised difference at the chosen lag, 0 = periodic), or `None` when silent.
/// `scratch` holds at least `YIN_MAX_LAG + 1` values. Realtime-safe.
pub fn yin(history: &[f32], sample_rate: f32, scratch: &mut [f32]) -> Option<(f32, f32)> {
    let need = YIN_WINDOW + YIN_MAX_LAG;
    if history.len() < need || scratch.len() <= YIN_MAX_LAG {
        return None;
    }
    let x = &history[history.len() - need..];
    let d = &mut scratch[..=YIN_MAX_LAG];
    d[0] = 0.0;
    // The window is the newest YIN_WINDOW samples, compared with the samples tau earlier, so
    // the answer is about the newest sound (a note change shows as soon as it fills the
    // window, whatever the lag).
    let newest = &x[YIN_MAX_LAG..];
    let mut energy = 0.0f32;
    for v in newest {
        energy += v * v;
    }
    if energy.is_nan() || energy <= 1e-12 {
        return None;
    }
    for tau in 1..=YIN_MAX_LAG {
        let older = &x[YIN_MAX_LAG - tau..YIN_MAX_LAG - tau + YIN_WINDOW];
        d[tau] = squared_distance(newest, older);
    }
    // Cumulative mean normalisation, in place.
    let mut running = 0.0f32;
    for (tau, v) in d.iter_mut().enumerate().skip(1) {
        running += *v;
        *v = if running > 0.0 {
            *v * tau as f32 / running
        } else {
            1.0
        };
    }
    let mut chosen = None;
    let mut tau = YIN_MIN_LAG;
    while tau < YIN_MAX_LAG {
        if d[tau] < YIN_THRESHOLD {
            while tau + 1 < YIN_MAX_LAG && d[tau + 1] < d[tau] {
                tau += 1;
            }
            chosen = Some(tau);
            break;
        }
        tau += 1;
    }
    let tau = chosen.unwrap_or_else(|| {
        (YIN_MIN_LAG..YIN_MAX_LAG)
            .min_by(|&a, &b| d[a].total_cmp(&d[b]))
            .unwrap_or(YIN_MIN_LAG)
    });
    let (l, m, r) = (d[tau - 1], d[tau], d[(tau + 1).min(YIN_MAX_LAG)]);
    let denom = l - 2.0 * m + r;
    let offset = if denom > 0.0 {
        (0.5 * (l - r) / denom).clamp(-0.5, 0.5)
    } else {
        0.0
    };
    let f0 = sample_rate / (tau as f32 + offset);
    Some((12.0 * (f0 / MIDDLE_C_HZ).log2(), m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StftConfig;
    use crate::stft::Stft;

    const SR: f32 = 32_000.0;

    /// A harmonic tone: `partials` partials of amplitude 1/h at `f0` Hz.
    fn tone(f0: f32, partials: usize, len: usize) -> Vec<f32> {
        (0..len)
            .map(|n| {
                let t = n as f32 / SR;
                (1..=partials)
                    .filter(|h| *h as f32 * f0 < SR / 2.0)
                    .map(|h| (std::f32::consts::TAU * h as f32 * f0 * t).sin() / h as f32)
                    .sum::<f32>()
                    * 0.1
            })
            .collect()
    }

    fn semitones(hz: f32) -> f32 {
        12.0 * (hz / MIDDLE_C_HZ).log2()
    }

    #[test]
    fn yin_finds_the_fundamental_of_harmonic_tones() {
        let mut scratch = vec![0.0; YIN_MAX_LAG + 1];
        for f0 in [55.0f32, 97.0, 220.0, 440.0, 1234.5] {
            let x = tone(f0, 12, YIN_WINDOW + YIN_MAX_LAG);
            let (p, aperiodicity) = yin(&x, SR, &mut scratch).expect("a tone is not silence");
            let cents = 100.0 * (p - semitones(f0));
            assert!(cents.abs() < 5.0, "{f0} Hz: {cents} cents off");
            assert!(aperiodicity < 0.05, "{f0} Hz: aperiodicity {aperiodicity}");
        }
        let silence = vec![0.0; YIN_WINDOW + YIN_MAX_LAG];
        assert!(yin(&silence, SR, &mut scratch).is_none());
        // Too short a history answers nothing rather than reading past it.
        assert!(yin(&silence[..100], SR, &mut scratch).is_none());
    }

    #[test]
    fn unknown_values_take_the_nearest_known_one() {
        let v = [None, Some(1.0), None, None, None, Some(5.0), None];
        assert_eq!(nearest_known(&v), vec![1.0, 1.0, 1.0, 1.0, 5.0, 5.0, 5.0]);
        assert_eq!(nearest_known(&[None, None]), vec![0.0, 0.0]);
    }

    #[test]
    fn yin_answers_for_the_newest_samples() {
        let mut scratch = vec![0.0; YIN_MAX_LAG + 1];
        // 220 Hz, then 330 Hz for just over one window: the answer is the new note.
        let mut x = tone(220.0, 8, YIN_MAX_LAG);
        x.extend(tone(330.0, 8, YIN_WINDOW + 40));
        let (p, _) = yin(&x, SR, &mut scratch).expect("sound");
        let cents = 100.0 * (p - semitones(330.0));
        assert!(cents.abs() < 10.0, "{cents} cents from 330 Hz");
    }

    #[test]
    fn the_harmonic_sum_refines_a_rough_pitch() {
        let cfg = StftConfig::default();
        let mut stft = Stft::new(&cfg);
        let mut spectrum = vec![Complex32::default(); cfg.n_bins()];
        let bin_hz = cfg.sample_rate as f32 / cfg.n_fft as f32;
        for f0 in [330.0f32, 523.0, 880.0] {
            let x = tone(f0, 10, cfg.n_fft);
            stft.analyse(&x, &mut spectrum);
            let mag: Vec<f32> = spectrum.iter().map(|c| c.norm()).collect();
            let truth = semitones(f0);
            for rough in [truth - 0.8, truth + 0.6] {
                let p = refine_pitch(&mag, bin_hz, rough);
                let cents = 100.0 * (p - truth);
                assert!(
                    cents.abs() < 10.0,
                    "{f0} Hz from {rough}: {cents} cents off"
                );
            }
        }
    }

    /// Every shift keeps the input's pitch and takes the reference's partial pattern: a bank
    /// of a tone with only odd partials at 220 Hz, played by an input of all partials at
    /// 330 Hz, gives partials at the input's odd multiples of 330 Hz and nothing at its even
    /// ones.
    #[test]
    fn the_output_has_the_inputs_pitch_and_the_references_partials() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../assets/models/default.safetensors");
        let net = Arc::new(
            Network::new(
                &crate::model_file::load(&path).unwrap(),
                "default",
                crate::kernels::Kernels::best(),
            )
            .unwrap(),
        );
        let odd: Vec<f32> = {
            let (a, b) = (tone(220.0, 15, 32_000), tone(440.0, 7, 32_000));
            // 1/h amplitudes of all partials of 220 minus those of 440 (= even partials of 220
            // at amplitude 1/(2h)), scaled back: what is left are the odd partials.
            a.iter().zip(&b).map(|(x, y)| x - 0.5 * y).collect()
        };
        let bank = Arc::new(
            ExemplarBank::with_ruler(&net, &odd, None).expect("a tone has sounding frames"),
        );
        assert!(bank.frames() > 150, "{} frames", bank.frames());
        for shift in [
            Shift::KeepEnvelope,
            Shift::Partials,
            Shift::PartialsAndNoise,
        ] {
            let (odd_energy, even_energy) = partial_energies(&net, &bank, shift);
            // The odd partials carry at least 20 dB more than the even ones.
            assert!(
                odd_energy > 100.0 * even_energy,
                "{shift:?}: odd {odd_energy}, even {even_energy}"
            );
        }
    }

    /// Energy at the odd and at the even partials of a 330 Hz input with all partials, through
    /// an exemplar swap drawing from `bank`.
    fn partial_energies(net: &Arc<Network>, bank: &Arc<ExemplarBank>, shift: Shift) -> (f32, f32) {
        let opts = ExemplarOptions {
            shift,
            yin: true,
            reconstruct: false,
        };
        let mut swap = ExemplarSwap::with_ruler(net.clone(), bank.clone(), opts);
        let cfg = net.config().stft();
        let mut stft = Stft::new(&cfg);
        let input = tone(330.0, 20, 16_000);
        let mut frame = vec![0.0; cfg.n_fft];
        let mut spectrum = vec![Complex32::default(); cfg.n_bins()];
        let mut out = spectrum.clone();
        let bin_hz = cfg.sample_rate as f32 / cfg.n_fft as f32;
        let (mut odd_energy, mut even_energy) = (0.0f32, 0.0f32);
        for f in 0..(input.len() - cfg.n_fft) / cfg.hop {
            frame.copy_from_slice(&input[f * cfg.hop..f * cfg.hop + cfg.n_fft]);
            stft.analyse(&frame, &mut spectrum);
            swap.process(&frame, &spectrum, &mut out);
            assert!(out.iter().all(|c| c.re.is_finite() && c.im.is_finite()));
            if f < 40 {
                continue;
            }
            for h in 1..=8 {
                let k = (h as f32 * 330.0 / bin_hz).round() as usize;
                let e = out[k].norm_sqr();
                if h % 2 == 1 {
                    odd_energy += e;
                } else {
                    even_energy += e;
                }
            }
        }
        (odd_energy, even_energy)
    }

    #[test]
    fn partial_amplitudes_keep_the_references_envelope_where_it_is() {
        let n = 40;
        let mut out = vec![0.0; n];
        // At the reference's own pitch nothing changes.
        let smooth: Vec<f32> = (1..=n).map(|h| 1.0 / h as f32).collect();
        partial_amplitudes(&smooth, 200.0, 200.0, &mut out);
        for (a, b) in out.iter().zip(&smooth) {
            assert!((a / b - 1.0).abs() < 1e-4, "{a} vs {b}");
        }
        // A resonance at 1 kHz (partial 5 of 200 Hz) stays at 1 kHz: partial 10 of 100 Hz,
        // partial 2 of 500 Hz; and an output partial between two of the reference's takes
        // the level between theirs.
        let formant: Vec<f32> = (1..=n)
            .map(|h| (-((h as f32 * 200.0 - 1_000.0) / 300.0).powi(2)).exp())
            .collect();
        let loudest = |out: &[f32]| {
            out.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i + 1)
        };
        partial_amplitudes(&formant, 200.0, 100.0, &mut out);
        assert_eq!(loudest(&out), Some(10));
        let between = (formant[3] * formant[4]).sqrt();
        assert!((out[8] / between - 1.0).abs() < 1e-4, "900 Hz: {}", out[8]);
        partial_amplitudes(&formant, 200.0, 500.0, &mut out);
        assert_eq!(loudest(&out), Some(2));
        // Past the reference's band (its last partial at 8 kHz) nothing plays.
        partial_amplitudes(&smooth, 200.0, 400.0, &mut out);
        assert!(out[20..].iter().all(|a| *a == 0.0));
        assert!(out[..20].iter().all(|a| *a > 0.0));
    }

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
