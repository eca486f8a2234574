//! Per-frame spectral processing: FFT, then the classic envelope swap, the exemplar swap or the
//! neural model, level matching, inverse FFT. Runs on the worker thread (realtime mode) or
//! inline on the audio thread (offline mode); either way it never allocates after construction.
//!
//! Every path answers a frame with its own grain: the neural path reconstructs phase without
//! look-ahead, so the classic, neural and dry paths share one latency and Mode can switch (and
//! be automated) without a change of latency.

use realfft::num_complex::Complex32;
use rtrb::{Consumer, Producer};

use crate::cepstrum::Cepstrum;
use crate::config::{LatencyMode, StftConfig};
use crate::exemplar::ExemplarSwap;
use crate::low_latency::LowLatency;
use crate::messages::{ControlToProcessorMsg, ProcessorToControlMsg, Slot};
use crate::neural::{NeuralProcessor, PhaseMode};
use crate::spectrum_view::SpectrumTap;
use crate::stft::Stft;
use crate::timbre::MAG_FLOOR;

/// Per-frame smoothing of the level-matching gain (share of the new value taken each frame).
const LEVEL_SMOOTHING: f32 = 0.5;
/// Largest level-matching boost, in dB (protects against near-empty target envelopes).
const MAX_BOOST_DB: f32 = 40.0;

/// Which timbre-transfer algorithm processes a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SwapMode {
    /// Cepstral envelope swap: the input's fine structure and phase with the reference's
    /// average envelope.
    #[default]
    Classic,
    /// The three-factor model: the input's pitch and variation latents decoded with the
    /// reference's timbre latent. Falls back to Classic while no model is loaded.
    Neural,
    /// The reference clip's own sound: each frame resynthesised at the input's pitch from the
    /// reference's partials and noise at the same point of a note
    /// ([`crate::exemplar`]). A slot without a clip (a preset) plays Classic; with no clip at
    /// all this is Classic.
    Exemplar,
}

/// The controls that apply to one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameParams {
    /// Morph position A -> B, 0..=1.
    pub morph: f32,
    /// Neural: scale of `z_v` around its prior mean, 0..=2 (1 = as played).
    pub variation: f32,
    /// Transposition, semitones, -12..=12. Exemplar: the pitch the output plays, above the
    /// input's. Neural: of the pitch encoder's input.
    pub transpose: f32,
    /// Classic, exemplar or neural.
    pub mode: SwapMode,
    /// Neural: where the output phase comes from.
    pub phase: PhaseMode,
    /// Neural: the timbre-map point, normalised map coordinates (-1..=1 each).
    pub map_point: [f32; 2],
    /// Neural: share of the map point's timbre against the A/B morph, 0..=1.
    pub map_amount: f32,
    /// Exemplar: share of a struck reference's note decay the output takes, 0..=1.
    pub decay: f32,
}

impl Default for FrameParams {
    fn default() -> Self {
        Self {
            morph: 0.0,
            variation: 1.0,
            transpose: 0.0,
            mode: SwapMode::Classic,
            phase: PhaseMode::Input,
            map_point: [0.0; 2],
            map_amount: 0.0,
            decay: 1.0,
        }
    }
}

/// What produced the last grain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Dry,
    Classic,
    Exemplar,
    Neural,
}

/// Largest frame peak processed as it is (+40 dBFS); louder frames are scaled down to it for
/// processing and back up after.
pub const MAX_FRAME_PEAK: f32 = 100.0;

/// Smoothed per-frame level matching: the output frame gets the input frame's spectral energy.
#[derive(Debug, Clone, Copy)]
struct LevelMatch {
    /// Smoothed gain, in dB; `None` until the first non-silent frame after a reset.
    gain_db: Option<f32>,
    /// Frame energy (sum of squared bin magnitudes) below which a frame counts as silent:
    /// about -120 dB re a full-scale sine.
    silence_energy: f32,
}

impl LevelMatch {
    /// Scales `out` to `energy_in`, smoothed over frames. A silent input frame (below
    /// `silence_energy`) comes out at its own energy, unsmoothed, so silence in is silence out
    /// (digital silence exactly: a model decodes something from nothing, and no held gain may
    /// let it through); it says nothing about the right gain for sound, so the smoothed gain is
    /// held (an onset after silence then starts at a sensible gain instead of fading in).
    fn apply(&mut self, energy_in: f32, out: &mut [Complex32]) {
        let energy_out: f32 = out.iter().map(|c| c.norm_sqr()).sum();
        if energy_in < self.silence_energy {
            let gain = if energy_out > 0.0 && energy_in > 0.0 {
                (energy_in / energy_out).sqrt()
            } else {
                0.0
            };
            let gain = if gain.is_finite() { gain } else { 0.0 };
            for c in out.iter_mut() {
                *c *= gain;
            }
            return;
        }
        let silent = energy_out <= 0.0;
        let gain_db = match (self.gain_db, silent) {
            (Some(prev), true) => prev,
            (None, true) => 0.0,
            (prev, false) => {
                let frame_gain_db = (10.0 * (energy_in / energy_out).log10()).min(MAX_BOOST_DB);
                match prev {
                    Some(prev) => prev + LEVEL_SMOOTHING * (frame_gain_db - prev),
                    None => frame_gain_db,
                }
            }
        };
        let gain_db = if gain_db.is_finite() { gain_db } else { 0.0 };
        self.gain_db = Some(gain_db);
        let gain = 10f32.powf(gain_db / 20.0);
        for c in out.iter_mut() {
            *c *= gain;
        }
    }
}

/// The worker's per-frame signal processor.
pub struct FrameProcessor {
    stft: Stft,
    cepstrum: Cepstrum,
    /// Spectrum of the current frame, `n_bins` bins.
    spectrum: Vec<Complex32>,
    /// The output spectrum being built.
    output: Vec<Complex32>,
    /// Natural-log magnitude of the current frame (classic path).
    log_mag: Vec<f32>,
    /// Cepstral envelope of that frame.
    envelope: Vec<f32>,
    /// Target envelope (morph of the slots).
    target: Vec<f32>,
    /// Envelope of slot A (natural-log magnitude per bin), if loaded.
    timbre_a: Option<Box<[f32]>>,
    /// Envelope of slot B, if loaded.
    timbre_b: Option<Box<[f32]>>,
    /// The neural model with its slots' timbre latents, if one is loaded.
    neural: Option<Box<NeuralProcessor>>,
    /// Exemplar swaps of slots A and B (for clips; `None` for presets and empty slots).
    exemplar: [Option<Box<ExemplarSwap>>; 2],
    /// Slot B's exemplar output while Morph blends two exemplars, `n_bins` bins.
    exemplar_b: Vec<Complex32>,
    level: LevelMatch,
    /// Path of the previous grain (a change resets the neural stream).
    last_path: Path,
    /// Where spectra go for the editor's live view, if anywhere.
    tap: Option<SpectrumTap>,
    /// The low-latency resynthesis ([`LatencyMode::Low`]), if the engine runs it.
    low: Option<LowLatency>,
    control: Consumer<ControlToProcessorMsg>,
    garbage: Producer<ProcessorToControlMsg>,
}

impl FrameProcessor {
    /// Builds the processor for `cfg`, for frames as `latency` spaces them. Not
    /// realtime-safe (allocates).
    pub fn new(
        cfg: &StftConfig,
        latency: LatencyMode,
        control: Consumer<ControlToProcessorMsg>,
        garbage: Producer<ProcessorToControlMsg>,
    ) -> Self {
        let bins = cfg.n_bins();
        Self {
            stft: Stft::new(cfg),
            cepstrum: Cepstrum::new(cfg),
            spectrum: vec![Complex32::default(); bins],
            output: vec![Complex32::default(); bins],
            log_mag: vec![0.0; bins],
            envelope: vec![0.0; bins],
            target: vec![0.0; bins],
            timbre_a: None,
            timbre_b: None,
            neural: None,
            exemplar: [None, None],
            exemplar_b: vec![Complex32::default(); bins],
            level: LevelMatch {
                gain_db: None,
                silence_energy: (cfg.n_fft as f32 / 4.0).powi(2) * 1e-12,
            },
            last_path: Path::Dry,
            tap: None,
            low: match latency {
                LatencyMode::Normal => None,
                LatencyMode::Low => Some(LowLatency::new(cfg)),
            },
            control,
            garbage,
        }
    }

    /// Publishes spectra to `tap` from now on (the editor's live view). Not realtime-safe.
    pub fn set_tap(&mut self, tap: SpectrumTap) {
        self.tap = Some(tap);
    }

    /// The STFT windows this processor uses (for dry substitution on the audio thread).
    pub fn stft(&self) -> &Stft {
        &self.stft
    }

    /// Forgets the stream: the level smoothing and the neural histories. Realtime-safe.
    pub fn reset(&mut self) {
        self.level.gain_db = None;
        if let Some(low) = &mut self.low {
            low.reset();
        }
        if let Some(n) = &mut self.neural {
            n.reset();
        }
        for e in self.exemplar.iter_mut().flatten() {
            e.reset();
        }
    }

    /// Hands an object back to the control side to be freed there.
    fn discard(&mut self, garbage: ProcessorToControlMsg) {
        // The push cannot fail: the garbage ring is as large as the control ring and the
        // control side empties it before every message it sends (see `MESSAGE_RING_SLOTS` in
        // `engine/mod.rs`). Were it ever full, the object would be freed here.
        let _ = self.garbage.push(garbage);
    }

    /// Applies pending control messages. Realtime-safe: replaced objects are handed back to
    /// the control side to be freed there.
    pub fn poll_control(&mut self) {
        while let Ok(msg) = self.control.pop() {
            match msg {
                ControlToProcessorMsg::SetTimbre { slot, envelope } => {
                    let envelope = envelope.filter(|e| e.len() == self.target.len());
                    let old = match slot {
                        Slot::A => std::mem::replace(&mut self.timbre_a, envelope),
                        Slot::B => std::mem::replace(&mut self.timbre_b, envelope),
                    };
                    if let Some(old) = old {
                        self.discard(ProcessorToControlMsg::Garbage(old));
                    }
                }
                ControlToProcessorMsg::SetLatent { slot, z_t } => {
                    let old = match &mut self.neural {
                        Some(n) => n.set_timbre(slot, z_t),
                        None => z_t,
                    };
                    if let Some(old) = old {
                        self.discard(ProcessorToControlMsg::Garbage(old));
                    }
                }
                ControlToProcessorMsg::SetExemplar { slot, swap } => {
                    let mut swap = swap;
                    if let Some(s) = &mut swap {
                        // It joins the stream with the next frame.
                        s.reset();
                    }
                    let old = std::mem::replace(&mut self.exemplar[slot as usize], swap);
                    if let Some(old) = old {
                        self.discard(ProcessorToControlMsg::Exemplar(old));
                    }
                }
                ControlToProcessorMsg::SetModel(model) => {
                    let old = std::mem::replace(&mut self.neural, model);
                    // The new model starts its stream with the next frame.
                    if self.last_path == Path::Neural {
                        self.last_path = Path::Dry;
                    }
                    if let Some(old) = old {
                        self.discard(ProcessorToControlMsg::Model(old));
                    }
                }
            }
        }
    }

    /// Whether any slot holds a classic timbre.
    pub fn has_timbre(&self) -> bool {
        self.timbre_a.is_some() || self.timbre_b.is_some()
    }

    /// Whether any slot holds an exemplar swap.
    pub fn has_exemplar(&self) -> bool {
        self.exemplar.iter().any(Option::is_some)
    }

    /// Whether every frame plays dry now whatever its Mode and Morph: no classic timbre, no
    /// exemplar, no neural latent, and no live view to feed (a Neural map point with a model is the one
    /// exception, which the caller checks per frame). Realtime-safe.
    pub fn idle(&self) -> bool {
        !self.has_timbre()
            && !self.has_exemplar()
            && !self.neural.as_ref().is_some_and(|n| n.has_timbre())
            && !self.tap.as_ref().is_some_and(SpectrumTap::is_open)
    }

    /// Whether a neural model is loaded.
    pub fn has_model(&self) -> bool {
        self.neural.is_some()
    }

    /// Processes frame `index` (`n_fft` samples, unwindowed) with `params` into its
    /// synthesis-windowed `grain`. Returns false (grain untouched) when the frame plays dry:
    /// nothing to swap with (no timbre, or the neural path has no output for it); the engine
    /// then plays the exact dry input, every channel and the full band. In
    /// [`LatencyMode::Low`] only even frames (one hop apart) are processed; every frame's grain
    /// is its own asymmetric-window spectrum times the latest processed frame's output over
    /// input, or, where that frame was an Exemplar frame of partials and noise, those partials
    /// and that noise over the grain. Realtime-safe.
    pub fn process(
        &mut self,
        index: u64,
        frame: &[f32],
        params: &FrameParams,
        grain: &mut [f32],
    ) -> bool {
        if self.low.is_none() {
            let Some(scale_back) = self.spectra(frame, params) else {
                return false;
            };
            self.stft.synthesise(&mut self.output, grain);
            finish_grain(grain, scale_back);
            return true;
        }
        if index.is_multiple_of(2) {
            let processed = self.spectra(frame, params).is_some();
            let exemplar = processed && self.last_path == Path::Exemplar;
            // An Exemplar frame played as partials and noise (one clip, or two blended by
            // Morph) is resynthesised as such; with a Classic preset's share, by its gain.
            let morph = unit_share(params.morph, 0.0);
            let (a, b) = match &self.exemplar {
                _ if !exemplar || self.preset_share(morph) > 0.0 => (None, None),
                [Some(a), Some(b)] => match (a.harmonic_frame(), b.harmonic_frame()) {
                    (Some(a), Some(b)) => (Some(a), Some((b, morph))),
                    _ => (None, None),
                },
                [Some(e), None] | [None, Some(e)] => (e.harmonic_frame(), None),
                [None, None] => (None, None),
            };
            if let Some(low) = &mut self.low {
                low.hold(processed, &self.spectrum, &self.output);
                low.hold_partials(a, b);
            }
        } else if let Some(low) = &mut self.low {
            low.next_grain();
        }
        match &mut self.low {
            Some(low) if low.held => {
                let scale_back = low.resynthesise(frame, grain);
                finish_grain(grain, scale_back);
                true
            }
            _ => false,
        }
    }

    /// The current frame's input spectrum (`self.spectrum`, scaled down if it is far beyond
    /// full scale) and output spectrum (`self.output`); `None` when the frame plays dry, else
    /// the factor that scales the output back.
    fn spectra(&mut self, frame: &[f32], params: &FrameParams) -> Option<f32> {
        self.poll_control();
        let neural_ready = self
            .neural
            .as_ref()
            .is_some_and(|n| n.has_timbre() || params.map_amount > 0.0);
        let path = match params.mode {
            SwapMode::Neural if neural_ready => Path::Neural,
            SwapMode::Exemplar if self.has_exemplar() => Path::Exemplar,
            _ if self.has_timbre() => Path::Classic,
            _ => Path::Dry,
        };
        let switched = path != self.last_path;
        self.last_path = path;
        let view = self.tap.as_mut().is_some_and(SpectrumTap::wants_frame);
        if path == Path::Dry {
            if view {
                self.stft.analyse(frame, &mut self.spectrum);
                if let Some(tap) = self.tap.as_mut() {
                    tap.publish(&self.spectrum, &self.spectrum);
                }
            }
            return None;
        }
        self.stft.analyse(frame, &mut self.spectrum);
        // A frame far beyond full scale (a finite burst of 1e15, 1e30) is processed at
        // MAX_FRAME_PEAK and scaled back afterwards: the level matching, the model's causal
        // histories and the timbre tracker only ever see finite, plausible levels, so the
        // stream recovers as soon as the burst has left the frames.
        let (down, scale_back) = frame_scale(frame);
        if down != 1.0 {
            for c in self.spectrum.iter_mut() {
                *c *= down;
            }
        }
        let energy_in: f32 = self.spectrum.iter().map(|c| c.norm_sqr()).sum();
        let morph = unit_share(params.morph, 0.0);
        match (path, self.neural.as_mut()) {
            (Path::Neural, Some(neural)) => {
                if switched {
                    // The model's causal histories start again from silence.
                    neural.reset();
                }
                if !neural.process(&self.spectrum, params, &mut self.output) {
                    return None;
                }
            }
            (Path::Exemplar, _) => self.exemplar(frame, morph, params.transpose, switched),
            _ => self.classic(morph),
        }
        self.level.apply(energy_in, &mut self.output);
        if path == Path::Exemplar {
            let db = unit_share(params.decay, 1.0) * self.note_decay_db(morph);
            if db < 0.0 {
                let gain = 10f32.powf(db / 20.0);
                for c in self.output.iter_mut() {
                    *c *= gain;
                }
            }
        }
        if view {
            if let Some(tap) = self.tap.as_mut() {
                tap.publish(&self.spectrum, &self.output);
            }
        }
        Some(scale_back)
    }

    /// The share of Morph taken by the slot without a clip when only one slot has one and
    /// the other holds a Classic preset (it plays Classic); 0 otherwise.
    fn preset_share(&self, morph: f32) -> f32 {
        match (&self.exemplar, &self.timbre_a, &self.timbre_b) {
            ([Some(_), None], _, Some(_)) => morph,
            ([None, Some(_)], Some(_), _) => 1.0 - morph,
            _ => 0.0,
        }
    }

    /// The exemplar slots' note decay for the frame just processed (dB, at most 0), blended
    /// by `morph` (0..=1) as their outputs are (the Classic preset's share at 0 dB).
    fn note_decay_db(&self, morph: f32) -> f32 {
        match &self.exemplar {
            [Some(a), Some(b)] => {
                a.note_decay_db() + (b.note_decay_db() - a.note_decay_db()) * morph
            }
            [Some(e), None] | [None, Some(e)] => {
                e.note_decay_db() * (1.0 - self.preset_share(morph))
            }
            [None, None] => 0.0,
        }
    }

    /// Exemplar swap of the current frame into `self.output`. With two clips, Morph's blend
    /// of the two (both run every frame so their streams stay aligned: the same measured pitch
    /// and phase, so the blend is phase-coherent). With one clip, the other slot's Classic
    /// timbre (a preset) takes its share of Morph, and an empty other slot none. `morph`:
    /// 0..=1; `transpose`: semitones the clips play above the input's pitch.
    fn exemplar(&mut self, frame: &[f32], morph: f32, transpose: f32, switched: bool) {
        for e in self.exemplar.iter_mut().flatten() {
            if switched {
                e.reset();
            }
            e.set_transpose(transpose);
        }
        // The share of the slot without a clip, when only one has one.
        let other_share = self.preset_share(morph);
        if other_share > 0.0 {
            self.classic(morph);
            std::mem::swap(&mut self.output, &mut self.exemplar_b);
        }
        let [a, b] = &mut self.exemplar;
        match (a, b) {
            (Some(a), Some(b)) => {
                a.process(frame, &self.spectrum, &mut self.output);
                b.process(frame, &self.spectrum, &mut self.exemplar_b);
                for (o, y) in self.output.iter_mut().zip(&self.exemplar_b) {
                    *o += (y - *o) * morph;
                }
            }
            (Some(e), None) | (None, Some(e)) => {
                e.process(frame, &self.spectrum, &mut self.output);
                if other_share > 0.0 {
                    // `exemplar_b` holds the Classic frame.
                    for (o, y) in self.output.iter_mut().zip(&self.exemplar_b) {
                        *o += (y - *o) * other_share;
                    }
                }
            }
            (None, None) => self.output.fill(Complex32::default()),
        }
    }

    /// Classic swap of the current frame into `self.output`: keep its fine structure and
    /// phase, `Y = X * exp(target - envelope)`, the target blended by `morph` (0..=1).
    fn classic(&mut self, morph: f32) {
        match (&self.timbre_a, &self.timbre_b) {
            (None, None) => {}
            (Some(a), None) => self.target.copy_from_slice(a),
            (None, Some(b)) => self.target.copy_from_slice(b),
            (Some(a), Some(b)) => {
                for ((t, a), b) in self.target.iter_mut().zip(a.iter()).zip(b.iter()) {
                    *t = a + (b - a) * morph;
                }
            }
        }
        crate::stft::magnitudes(&self.spectrum, &mut self.log_mag);
        for l in self.log_mag.iter_mut() {
            *l = (*l + MAG_FLOOR).ln();
        }
        self.cepstrum.envelope(&self.log_mag, &mut self.envelope);
        // The target's shape at the input frame's own level (their log envelopes' peaks
        // aligned; a mean would follow the empty bins of a band-limited input): the level of
        // the reference (or of a damaged saved envelope) never reaches the output, and the
        // level matching below only corrects what the new shape changes.
        let peak = |v: &[f32]| v.iter().fold(f32::NEG_INFINITY, |m, x| m.max(*x));
        let shift = peak(&self.envelope) - peak(&self.target);
        let shift = if shift.is_finite() { shift } else { 0.0 };
        for (((o, c), t), e) in self
            .output
            .iter_mut()
            .zip(&self.spectrum)
            .zip(&self.target)
            .zip(&self.envelope)
        {
            *o = c * (t + shift - e).clamp(-80.0, 80.0).exp();
        }
    }
}

/// `v` held to 0..=1; `non_finite` where it is NaN or infinite (a host's or caller's
/// out-of-range control value).
fn unit_share(v: f32, non_finite: f32) -> f32 {
    if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        non_finite
    }
}

/// Scales a grain made at a reduced level back (`scale_back`) and silences any non-finite
/// sample.
fn finish_grain(grain: &mut [f32], scale_back: f32) {
    for g in grain.iter_mut() {
        *g *= scale_back;
        if !g.is_finite() {
            *g = 0.0;
        }
    }
}

/// For a frame far beyond full scale: the factor that brings it to [`MAX_FRAME_PEAK`], and
/// the one that scales the result back (both 1 for any plausible frame).
pub(crate) fn frame_scale(frame: &[f32]) -> (f32, f32) {
    let peak = frame.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if peak > MAX_FRAME_PEAK {
        (MAX_FRAME_PEAK / peak, peak / MAX_FRAME_PEAK)
    } else {
        (1.0, 1.0)
    }
}
