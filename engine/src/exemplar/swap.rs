//! The per-frame exemplar processor.

use std::sync::Arc;

use realfft::num_complex::Complex32;

use super::bank::ExemplarBank;
use super::meter::{partial_level, HARMONIC_PARTIALS};
use super::notes::NoteTracker;
use super::partials::partial_amplitudes;
use super::pitch::{refine_pitch, Yin, YIN_MAX_LAG, YIN_TRUST, YIN_WINDOW};
use super::sinusoids::SinusoidKernel;
use super::{MAG_FLOOR, MIDDLE_C_HZ};
use crate::cepstrum::Cepstrum;
use crate::config::StftConfig;
use crate::network::{Network, NetworkState};

/// Notes older than this many seconds all count as "sustained": the choice among their frames
/// goes by pitch alone.
pub const ATTACK_SECONDS: f32 = 0.25;
/// Cost of one semitone of pitch distance, in frames of note age.
pub const SEMITONE_COST_FRAMES: f32 = 6.0;
/// Largest move along frequency, in semitones: a frame further from the input's pitch is
/// moved this far and no further.
pub const MAX_SHIFT_SEMITONES: f32 = 24.0;

/// Most a reference's note decay takes off the input's level, in dB.
pub const MAX_NOTE_DECAY_DB: f32 = 60.0;

/// Largest transposition of the played pitch ([`ExemplarSwap::set_transpose`]), in semitones
/// either way (the plugin's Transpose range).
pub const MAX_TRANSPOSE_SEMITONES: f32 = crate::neural::MAX_TRANSPOSE;

/// The reference's noise between its partials is played this much louder (amplitude) than it
/// was measured: the valley minimum under-reads the noise, which sits under the partials'
/// skirts too. 1.2 of 1, 1.2, 1.3 and 1.4 measured (experiments/quality-log.md): louder noise moves more
/// outputs to the reference's instrument and costs pitch accuracy; 1.3 already dropped FluidR3
/// below 95 % of frames within 50 cents. With the noise below the fundamental held to
/// [`MAX_NOISE_BELOW_FUNDAMENTAL`], 1.4 kept the pitch but cost the phrase references on
/// TimGM6mb three outputs' instrument (same log, "Noise below the fundamental").
pub const NOISE_GAIN: f32 = 1.2;
/// The most power the reference's noise may carry below the output's fundamental, as a share
/// of the output's partials' power (0.1: 10 dB under them); louder, it is scaled down to this.
/// The noise keeps the reference's frequencies, so a low reference (a bass) under a high input
/// put its whole low end, loud, below the input's fundamental: a rumble louder than the note,
/// which pYIN read as the pitch (a flute phrase under a bass note: 0 % of frames within 50
/// cents). Measured against no limit, 1, 0.25 and 0.1 on both libraries
/// (experiments/quality-log.md, "Noise below the fundamental"): 0.1 kept the most pitch and
/// every TimGM6mb output's instrument.
pub const MAX_NOISE_BELOW_FUNDAMENTAL: f32 = 0.1;

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

/// Switches of [`ExemplarSwap`]; the default is what [`SwapMode::Exemplar`] plays
/// ([`Shift::Harmonic`], YIN first, the input's phase).
///
/// [`SwapMode::Exemplar`]: crate::processor::SwapMode::Exemplar
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
    opts: ExemplarOptions,
    rtpghi: crate::phase::Rtpghi,
    cepstrum: Cepstrum,
    tracker: NoteTracker,
    attack_frames: u32,
    previous: Option<usize>,
    hop: usize,
    history: Box<[f32]>,
    /// YIN's transforms and buffers.
    yin: Yin,
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
    /// The output's partial amplitudes ([`Shift::Harmonic`]).
    amplitudes: Box<[f32]>,
    /// The last [`Shift::Harmonic`] frame's noise: its magnitude per bin (before the random
    /// phases), and its share of the frame's energy (0..=1).
    noise_mag: Box<[f32]>,
    noise_share: f32,
    /// The analysis window's transform, for the partials ([`Shift::Harmonic`]).
    kernel: SinusoidKernel,
    /// State of the noise phases' generator.
    seed: u32,
    /// Makes random-phase noise frames come out of the overlap-add at their own level.
    noise_gain: f32,
    /// The input note's loudest frame so far, in dB.
    note_peak_db: f32,
    /// Semitones the output plays above the input's pitch ([`ExemplarSwap::set_transpose`]).
    transpose: f32,
    /// The level change the last frame's output takes after level matching: the reference's
    /// note decay ([`ExemplarSwap::note_decay_db`]), in dB (at most 0).
    note_decay_db: f32,
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
        let bins = c.n_bins();
        let stft = crate::stft::Stft::new(c);
        let noise_gain = incoherent_gain(&stft, c.hop) * NOISE_GAIN;
        let kernel = SinusoidKernel::new(&stft.analysis);
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
            yin: Yin::new(),
            log_mag: vec![0.0; bins].into_boxed_slice(),
            mag: vec![0.0; bins].into_boxed_slice(),
            envelope: vec![0.0; bins].into_boxed_slice(),
            fine: vec![0.0; bins].into_boxed_slice(),
            chosen_env: vec![0.0; bins].into_boxed_slice(),
            out_log: vec![0.0; bins].into_boxed_slice(),
            rtpghi: crate::phase::Rtpghi::new(c, MAG_FLOOR, 0, 0x6578_656d),
            phase: 0.0,
            last_f0: 0.0,
            amplitudes: vec![0.0; HARMONIC_PARTIALS].into_boxed_slice(),
            noise_mag: vec![0.0; bins].into_boxed_slice(),
            noise_share: 0.0,
            kernel,
            seed: 0x2545_f491,
            noise_gain,
            note_peak_db: f32::NEG_INFINITY,
            note_decay_db: 0.0,
            transpose: 0.0,
            opts,
            bank,
        }
    }

    /// The last processed frame as partials and noise, if it was played that way
    /// ([`Shift::Harmonic`], a voiced frame): what the low-latency path resynthesises its short
    /// grains from. Realtime-safe.
    pub(crate) fn harmonic_frame(&self) -> Option<HarmonicFrame<'_>> {
        (self.last_f0 > 0.0).then_some(HarmonicFrame {
            f0: self.last_f0,
            phase: self.phase,
            amplitudes: &self.amplitudes,
            noise: &self.noise_mag,
            noise_share: self.noise_share,
        })
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
        self.note_peak_db = f32::NEG_INFINITY;
        self.note_decay_db = 0.0;
    }

    /// Plays the following frames `semitones` above the input's pitch (below when negative),
    /// clamped to [`MAX_TRANSPOSE_SEMITONES`] either way; not finite: 0. Voiced frames are
    /// resynthesised at the moved pitch from the reference's frame nearest it; an unvoiced
    /// frame takes the reference's frame moved there on the input's phase. The experimental
    /// [`Shift::Partials`] variants reshape the input's own partials, which stay at its pitch.
    /// Realtime-safe.
    pub fn set_transpose(&mut self, semitones: f32) {
        self.transpose = if semitones.is_finite() {
            semitones.clamp(-MAX_TRANSPOSE_SEMITONES, MAX_TRANSPOSE_SEMITONES)
        } else {
            0.0
        };
    }

    /// The level change (dB, at most 0) the last processed frame takes after its level has
    /// been matched to the input's: the reference's notes' decay after their peak, as far as
    /// the input's own note has not fallen as far already. Realtime-safe.
    pub fn note_decay_db(&self) -> f32 {
        self.note_decay_db
    }

    /// The note decay (dB) of an input frame at `frame_db` dB, note age `age` frames: the
    /// reference's decay since its notes' peak ([`NoteDecay`](super::NoteDecay)), less what
    /// the input's note has already fallen from its own peak (a struck input under a struck
    /// reference does not decay twice), to at most [`MAX_NOTE_DECAY_DB`]. Realtime-safe.
    fn decay_db(&mut self, sounding: bool, age: u32, frame_db: f32) -> f32 {
        if !sounding || !frame_db.is_finite() {
            return 0.0;
        }
        if age == 0 {
            self.note_peak_db = frame_db;
        } else {
            self.note_peak_db = self.note_peak_db.max(frame_db);
        }
        let d = self.bank.decay;
        let after = age.saturating_sub(d.peak_frames) as f32;
        let target = (d.db_per_frame * after).max(-MAX_NOTE_DECAY_DB);
        let fallen = (frame_db - self.note_peak_db).min(0.0);
        (target - fallen).min(0.0)
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
        let measured = self.yin.estimate(&self.history, sr);
        let guess = match &mut self.ruler {
            Some((net, state)) => {
                net.normalise(&self.log_mag, &mut self.envelope, &mut self.fine);
                net.pitch_step(state, &self.fine).unwrap_or(0.0)
            }
            // YIN's best lag even where it is unsure, else the last pitch it was sure of.
            None => measured.map_or(self.last_sure, |(p, _)| p),
        };
        crate::stft::magnitudes(input, &mut self.mag);
        let trusted = matches!(measured, Some((_, a)) if a < YIN_TRUST);
        if let Some((p, _)) = measured.filter(|_| trusted) {
            self.last_sure = p;
        }
        let pitch = known.unwrap_or_else(|| match measured {
            Some((p, aperiodicity)) if self.opts.yin && aperiodicity < YIN_TRUST => p,
            _ => refine_pitch(&self.mag, bin_hz, guess),
        });
        let voiced = known.is_some() || trusted;
        // Notes are the input's own; the output plays them `transpose` semitones away.
        let note = self.tracker.update(frame_db, pitch);
        self.note_decay_db = self.decay_db(note.sounding, note.age, frame_db);
        let heard = pitch;
        let pitch = pitch + self.transpose;
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
        // Where the input's own partials lie (the Partials variants reshape them).
        let f0_heard = MIDDLE_C_HZ * 2f32.powf(heard / 12.0);
        let resolved = f0_heard / bin_hz >= 1.5 && f0_ref / bin_hz >= 1.5;
        let shift = match self.opts.shift {
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
                let partials = ((bins as f32 * bin_hz / f0_heard) as usize).clamp(1, MAX_PARTIALS);
                let gains = &mut self.chosen_env[..partials];
                let mut last = 0.0;
                for (i, g) in gains.iter_mut().enumerate() {
                    let h = i + 1;
                    let input = partial_level(&self.log_mag, f0_heard, h, bin_hz);
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
                    let u = k as f32 * bin_hz / f0_heard;
                    if near_only && (u - u.round()).abs() * f0_heard / bin_hz > 1.0 {
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

/// The gain that brings frames of independent (random-phase) noise out of `stft`'s
/// overlap-add at their own level: incoherent frames add in power, so it is one over the root
/// of the sum over overlapping frames of `(analysis * synthesis * n)^2`, averaged over a hop.
fn incoherent_gain(stft: &crate::stft::Stft, hop: usize) -> f32 {
    let n = stft.analysis.len();
    let mut power = 0.0f64;
    for i in 0..hop {
        let mut j = i;
        while j < n {
            let g = (stft.analysis[j] * stft.synthesis[j] * n as f32) as f64;
            power += g * g;
            j += hop;
        }
    }
    (hop as f64 / power.max(1e-12)).sqrt() as f32
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
        let n = self.cfg.n_fft;
        let f0_ref = MIDDLE_C_HZ * 2f32.powf(self.bank.pitch[j] / 12.0);
        partial_amplitudes(self.bank.harmonics(j), f0_ref, f0, &mut self.amplitudes);
        let w = two_pi * f0 as f64 / sr as f64;
        // Each sounding partial's windowed spectrum, placed at its frequency.
        out.fill(Complex32::default());
        let bins_per_hz = n as f32 / sr;
        for (i, &a) in self.amplitudes.iter().enumerate() {
            let h = (i + 1) as f64;
            if a <= 0.0 || h * f0 as f64 >= 0.5 * sr as f64 {
                continue;
            }
            // `start`: the phase at the frame's first sample.
            let start = h * (self.phase - w * (n / 2) as f64) + schroeder_offset(h);
            self.kernel
                .add(out, (h * f0 as f64) as f32 * bins_per_hz, a, start);
        }
        let partial_energy: f32 = out.iter().map(|c| c.norm_sqr()).sum();
        // The reference's noise between its partials, at the same frequencies, random phase.
        let noise = self.bank.noise(j);
        let bin_hz = sr / n as f32;
        let scale = (0.375 * n as f32).sqrt() * self.noise_gain;
        let density = |k: usize| {
            let v = (k as f32 * bin_hz / f0_ref - 0.5).max(0.0);
            let i = (v.floor() as usize).min(HARMONIC_PARTIALS - 1);
            let (n0, n1) = (noise[i], noise[(i + 1).min(HARMONIC_PARTIALS - 1)]);
            if n0 <= 0.0 || n1 <= 0.0 {
                0.0
            } else {
                n0 * (n1 / n0).powf((v - i as f32).min(1.0))
            }
        };
        // The bins below the fundamental, and the gain that holds their noise to its share.
        let below = ((f0 / bin_hz).ceil() as usize).min(out.len());
        let below_gain = noise_below_gain((0..below).map(density), n, &self.amplitudes, f0, sr);
        for ((k, o), m) in out.iter_mut().enumerate().zip(self.noise_mag.iter_mut()) {
            let d = density(k) * if k < below { below_gain } else { 1.0 };
            *m = d * scale;
            *o += Complex32::from_polar(d * scale, random_phase(&mut self.seed));
        }
        let noise_energy: f32 = self.noise_mag.iter().map(|m| m * m).sum();
        let total = partial_energy + noise_energy;
        self.noise_share = if total > 0.0 && total.is_finite() {
            noise_energy / total
        } else {
            0.0
        };
    }
}

/// Schroeder's phase offset of partial `h` (from 1), in radians: the partials' phases spread
/// so that their sum keeps a low crest factor. Every grain of partials ([`Shift::Harmonic`],
/// and the low-latency grains made from its frames) starts its partials with these.
pub(crate) fn schroeder_offset(h: f64) -> f64 {
    std::f64::consts::PI * h * (h - 1.0) / HARMONIC_PARTIALS as f64
}

/// The next random phase (radians, `0..TAU`) of the linear congruential generator whose state
/// is `seed`: the phases of the reference's noise. Realtime-safe.
pub(crate) fn random_phase(seed: &mut u32) -> f32 {
    *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
    *seed as f32 * (std::f32::consts::TAU / 4_294_967_296.0)
}

/// One [`Shift::Harmonic`] frame as [`ExemplarSwap::harmonic_frame`] gives it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HarmonicFrame<'a> {
    /// Fundamental, Hz.
    pub f0: f32,
    /// Phase of the fundamental at the frame's centre, radians.
    pub phase: f64,
    /// Amplitude of partials `1..=HARMONIC_PARTIALS` (linear, sample units).
    pub amplitudes: &'a [f32],
    /// The noise's magnitude per bin of the frame's spectrum, before its random phases.
    pub noise: &'a [f32],
    /// The noise's share of the frame's energy, 0..=1.
    pub noise_share: f32,
}

/// The gain (at most 1) that holds the noise below the fundamental to
/// [`MAX_NOISE_BELOW_FUNDAMENTAL`] of the partials' power. `densities`: the noise's amplitude
/// densities (`|X| / sqrt(sum w^2)`, as the bank measures them) in the bins below `f0` Hz of an
/// `n`-point frame at `sr` Hz; `amplitudes`: the output's partial amplitudes at `f0`. A bin of
/// density `d` carries a mean power of `2 d^2 / n`; a partial of amplitude `a`, `a^2 / 2`.
/// Realtime-safe.
fn noise_below_gain(
    densities: impl Iterator<Item = f32>,
    n: usize,
    amplitudes: &[f32],
    f0: f32,
    sr: f32,
) -> f32 {
    let noise: f32 = densities.map(|d| 2.0 * d * d / n as f32).sum();
    let partials: f32 = (1..)
        .zip(amplitudes)
        .take_while(|(h, _)| *h as f32 * f0 < 0.5 * sr)
        .map(|(_, a)| 0.5 * a * a)
        .sum();
    let allowed = MAX_NOISE_BELOW_FUNDAMENTAL * partials;
    if noise > allowed {
        (allowed / noise).sqrt()
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exemplar::test_signal::tone;
    use crate::stft::Stft;

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
}
