//! The neural frame processor: the three-factor model's timbre swap, one STFT frame at a time.
//!
//! For each input frame `X[f]` (the engine's STFT) it computes the model's features
//! (`ln(|X| + mag_floor)`, cepstral envelope and fine structure), optionally transposes the fine
//! structure fed to the pitch encoder, runs the variation and pitch encoders and the decoder
//! with the reference timbre, and gives the decoded magnitude a phase: the input frame's, or
//! RTPGHI's reconstruction without look-ahead (so the neural path adds no latency).
//!
//! The variation encoder is conditioned on the input's own timbre, which streaming cannot pool
//! over the whole clip as training does: a [`TimbreTracker`] pools the timbre encoder's
//! per-frame features over the recent active frames instead (an exponentially weighted mean).
//!
//! Built off the audio thread ([`NeuralProcessor::new`] allocates); everything else is
//! realtime-safe.

use std::sync::Arc;

use realfft::num_complex::Complex32;

use crate::cepstrum::Cepstrum;
use crate::model_config::POOLING_RANGE_DB;
use crate::network::{Network, NetworkState, StepInput};
use crate::phase::Rtpghi;
use crate::processor::FrameParams;

/// Time constant of the input-timbre tracker's pooling, in seconds.
pub const TRACKER_SECONDS: f32 = 2.0;

/// Largest transposition, in semitones (either way).
pub const MAX_TRANSPOSE: f32 = 12.0;

/// How the output's phase is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PhaseMode {
    /// The input frame's phase with the decoded magnitude (the default: measured best for
    /// pitch and timbre, see `docs/quality.md`; the partials keep the input's frequencies, so
    /// Transpose changes the timbre the decoder draws but not the sounding pitch).
    #[default]
    Input,
    /// Real-time phase gradient heap integration from the decoded magnitudes (follows
    /// Transpose; less stable pitch with the shipped model's smooth magnitudes).
    Reconstruct,
    /// The input frame itself, magnitude and phase, reshaped by the decoded timbre
    /// difference: the decoder runs twice on the same `z_v` and `z_p`, with the target timbre
    /// and with the input's own (the tracker's), and each bin's magnitude is multiplied by the
    /// ratio of the two (at most [`MAX_DIFFERENCE_DB`] either way). What the decoder cannot
    /// draw (detail, noise, attacks) is the input's; what it changes is the timbre. With the
    /// input's own timbre as the target the input passes unchanged. Twice the decoder's cost.
    /// Offered by `timbreswap render` and `eval-transfer`, not by the plugin: with the shipped
    /// model the decoded difference is small and few outputs reach the reference's instrument
    /// (`experiments/quality-log.md`, "Differential output").
    Differential,
}

/// Largest change one bin gets in [`PhaseMode::Differential`], in dB (either way).
pub const MAX_DIFFERENCE_DB: f32 = 40.0;

/// Streaming estimate of the input's timbre latent: the timbre encoder's per-frame features
/// pooled over recent frames within [`POOLING_RANGE_DB`] of the (slowly decaying) loudest one,
/// weighted by `exp(-age / TRACKER_SECONDS)`.
#[derive(Debug, Clone)]
pub struct TimbreTracker {
    /// Weighted sum of the active frames' features.
    sum: Box<[f32]>,
    /// Sum of the weights.
    weight: f32,
    /// Running loudest frame, dB, decaying by `decay_db` per frame.
    peak_db: f32,
    /// Per-frame forgetting factor.
    forget: f32,
    /// Peak decay per frame, dB.
    decay_db: f32,
    /// Current frame's features.
    hidden: Box<[f32]>,
    /// Pooled features.
    pooled: Box<[f32]>,
}

impl TimbreTracker {
    /// A tracker for `hidden` features at `frames_per_second`. Allocates.
    pub fn new(hidden: usize, frames_per_second: f32) -> Self {
        let per_frame = 1.0 / (TRACKER_SECONDS * frames_per_second);
        Self {
            sum: vec![0.0; hidden].into_boxed_slice(),
            weight: 0.0,
            peak_db: f32::NEG_INFINITY,
            forget: (-per_frame).exp(),
            decay_db: POOLING_RANGE_DB * per_frame,
            hidden: vec![0.0; hidden].into_boxed_slice(),
            pooled: vec![0.0; hidden].into_boxed_slice(),
        }
    }

    /// Forgets everything. Realtime-safe.
    pub fn reset(&mut self) {
        self.sum.fill(0.0);
        self.weight = 0.0;
        self.peak_db = f32::NEG_INFINITY;
    }

    /// Adds one frame (normalised envelope, natural-log magnitude, the pitch ruler it is read
    /// at by a model with harmonic input, energy in dB) and writes the input's current `z_t`
    /// estimate. Realtime-safe.
    fn update(
        &mut self,
        net: &Network,
        st: &mut NetworkState,
        frame: (&[f32], &[f32], f32),
        frame_db: f32,
        z_t: &mut [f32],
    ) {
        let (envelope, log_mag, ruler) = frame;
        net.timbre_frame(st, envelope, log_mag, ruler, &mut self.hidden);
        self.peak_db = frame_db.max(self.peak_db - self.decay_db);
        for s in self.sum.iter_mut() {
            *s *= self.forget;
        }
        self.weight *= self.forget;
        if frame_db >= self.peak_db - POOLING_RANGE_DB {
            for (s, h) in self.sum.iter_mut().zip(self.hidden.iter()) {
                *s += h;
            }
            self.weight += 1.0;
        }
        if self.weight > 1e-6 {
            let inv = 1.0 / self.weight;
            for (p, s) in self.pooled.iter_mut().zip(self.sum.iter()) {
                *p = s * inv;
            }
        } else {
            self.pooled.copy_from_slice(&self.hidden);
        }
        net.timbre_head(st, &self.pooled, z_t);
    }
}

/// The neural processor of one engine: a network, its streaming state and the two reference
/// timbres. Built on the control side and handed to the engine whole.
pub struct NeuralProcessor {
    net: Arc<Network>,
    state: NetworkState,
    cepstrum: Cepstrum,
    rtpghi: Rtpghi,
    tracker: TimbreTracker,
    /// `z_t` of slot A and B (`None`: empty).
    timbre_a: Option<Box<[f32]>>,
    timbre_b: Option<Box<[f32]>>,
    /// Input features of the current frame: `ln(|X| + mag_floor)`, envelope, fine structure.
    log_mag: Box<[f32]>,
    envelope: Box<[f32]>,
    fine: Box<[f32]>,
    /// Transposed pitch-encoder feature, then its normalised form.
    pitch_raw: Box<[f32]>,
    pitch_in: Box<[f32]>,
    /// The input's own and the target timbre, and the timbre-map point's.
    z_own: Box<[f32]>,
    z_target: Box<[f32]>,
    z_map: Box<[f32]>,
    /// Decoded log-magnitude of the current frame.
    decoded: Box<[f32]>,
    /// The same frame decoded with the input's own timbre ([`PhaseMode::Differential`]).
    decoded_own: Box<[f32]>,
}

impl NeuralProcessor {
    /// A processor for `net` with the slots' timbre latents (`z_t` values each; wrong-length
    /// ones are dropped). Allocates; not realtime-safe.
    pub fn new(
        net: Arc<Network>,
        timbre_a: Option<Box<[f32]>>,
        timbre_b: Option<Box<[f32]>>,
    ) -> Self {
        let cfg = net.config().clone();
        let bins = cfg.bins();
        let stft = cfg.stft();
        let z = cfg.z_t;
        let frames_per_second = cfg.sample_rate as f32 / cfg.hop as f32;
        let fits = |t: Option<Box<[f32]>>| t.filter(|t| t.len() == z);
        Self {
            state: net.state(),
            cepstrum: Cepstrum::new(&stft),
            rtpghi: Rtpghi::new(&stft, cfg.mag_floor, 0, 0x7469_6d62),
            tracker: TimbreTracker::new(cfg.hidden, frames_per_second),
            timbre_a: fits(timbre_a),
            timbre_b: fits(timbre_b),
            log_mag: vec![0.0; bins].into_boxed_slice(),
            envelope: vec![0.0; bins].into_boxed_slice(),
            fine: vec![0.0; bins].into_boxed_slice(),
            pitch_raw: vec![0.0; bins].into_boxed_slice(),
            pitch_in: vec![0.0; bins].into_boxed_slice(),
            z_own: vec![0.0; z].into_boxed_slice(),
            z_target: vec![0.0; z].into_boxed_slice(),
            z_map: vec![0.0; z].into_boxed_slice(),
            decoded: vec![0.0; bins].into_boxed_slice(),
            decoded_own: vec![0.0; bins].into_boxed_slice(),
            net,
        }
    }

    /// The network.
    pub fn network(&self) -> &Arc<Network> {
        &self.net
    }

    /// Whether a slot holds a timbre (otherwise the neural path has nothing to decode with).
    pub fn has_timbre(&self) -> bool {
        self.timbre_a.is_some() || self.timbre_b.is_some()
    }

    /// Replaces the latent of one slot (wrong-length ones empty it); returns the old one for
    /// the caller to free off the audio thread. Realtime-safe.
    pub fn set_timbre(&mut self, slot: crate::Slot, z_t: Option<Box<[f32]>>) -> Option<Box<[f32]>> {
        let z = self.z_target.len();
        let z_t = z_t.filter(|t| t.len() == z);
        match slot {
            crate::Slot::A => std::mem::replace(&mut self.timbre_a, z_t),
            crate::Slot::B => std::mem::replace(&mut self.timbre_b, z_t),
        }
    }

    /// Forgets the stream (histories, tracker, phase). Realtime-safe.
    pub fn reset(&mut self) {
        self.state.reset();
        self.tracker.reset();
        self.rtpghi.reset();
    }

    /// Takes one input frame's spectrum `input` (the engine's STFT) and writes the output
    /// spectrum into `out`. Returns false (and writes nothing) when no output frame is ready
    /// (never, without look-ahead). Realtime-safe.
    pub fn process(
        &mut self,
        input: &[Complex32],
        params: &FrameParams,
        out: &mut [Complex32],
    ) -> bool {
        let cfg = self.net.config();
        let floor = cfg.mag_floor;
        let frame_db = crate::features::split_frame(
            input,
            floor,
            &mut self.cepstrum,
            &mut self.log_mag,
            &mut self.envelope,
            &mut self.fine,
        );
        // The pitch encoder's feature, transposed along frequency (log-magnitude without the
        // cepstral split), before normalisation, as the training's pitch shift sees it.
        let raw: &[f32] = if cfg.cepstrum {
            &self.fine
        } else {
            &self.log_mag
        };
        transpose(
            raw,
            self.net.pitch_input_mean(),
            params.transpose,
            &mut self.pitch_raw,
        );
        self.net
            .normalise_pitch(&self.pitch_raw, &mut self.pitch_in);
        // The pitch input was made above from the raw features; only the envelope is left.
        self.net
            .normalise_envelope(&self.log_mag, &mut self.envelope);

        // A model whose timbre encoder reads harmonic levels reads them at the last frame's
        // pitch (this frame's comes out of the step below, which needs this frame's `z_t`),
        // without the transposition the pitch input had.
        let ruler = self.net.last_ruler(&self.state)
            - transposition(params.transpose) * cfg.pitch_ruler_scale;
        self.tracker.update(
            &self.net,
            &mut self.state,
            (&self.envelope, &self.log_mag, ruler),
            frame_db,
            &mut self.z_own,
        );
        let morph = if params.morph.is_finite() {
            params.morph.clamp(0.0, 1.0)
        } else {
            0.0
        };
        match (&self.timbre_a, &self.timbre_b) {
            (Some(a), Some(b)) => {
                for ((t, a), b) in self.z_target.iter_mut().zip(a.iter()).zip(b.iter()) {
                    *t = a + (b - a) * morph;
                }
            }
            (Some(only), None) | (None, Some(only)) => self.z_target.copy_from_slice(only),
            (None, None) => self.z_target.copy_from_slice(&self.z_own),
        }
        // The timbre map: blended with the A/B morph by Map amount (the map alone when no
        // slot is loaded).
        let amount = if params.map_amount.is_finite() {
            params.map_amount.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if amount > 0.0 {
            self.net.blender().blend(params.map_point, &mut self.z_map);
            let amount = if self.has_timbre() { amount } else { 1.0 };
            for (t, m) in self.z_target.iter_mut().zip(self.z_map.iter()) {
                *t += (m - *t) * amount;
            }
        }
        let variation = if params.variation.is_finite() {
            params.variation.clamp(0.0, 2.0)
        } else {
            1.0
        };
        self.net.step(
            &mut self.state,
            &StepInput {
                envelope: &self.envelope,
                fine: &self.pitch_in,
                z_t_encode: &self.z_own,
                z_t_decode: &self.z_target,
                variation,
            },
            &mut self.decoded,
        );
        self.net.denormalise(&mut self.decoded);
        for d in self.decoded.iter_mut() {
            if !d.is_finite() {
                *d = floor.ln();
            }
        }
        if params.phase == PhaseMode::Differential {
            self.net
                .redecode(&mut self.state, &self.z_own, &mut self.decoded_own);
            self.net.denormalise(&mut self.decoded_own);
        }
        // Only Reconstruct needs RTPGHI's phase; the other modes play the input's, and RTPGHI
        // follows the frame they played, so a change to Reconstruct continues from it.
        let wrote = match params.phase {
            PhaseMode::Reconstruct => self.rtpghi.push(&self.decoded, out),
            PhaseMode::Differential => {
                let limit = MAX_DIFFERENCE_DB * std::f32::consts::LN_10 / 20.0;
                for (((o, x), t), s) in out
                    .iter_mut()
                    .zip(input)
                    .zip(self.decoded.iter())
                    .zip(self.decoded_own.iter())
                {
                    let d = t - s;
                    let d = if d.is_finite() {
                        d.clamp(-limit, limit)
                    } else {
                        0.0
                    };
                    *o = *x * d.exp();
                }
                true
            }
            PhaseMode::Input => {
                with_input_phase(input, &self.decoded, floor, out);
                true
            }
        };
        if params.phase != PhaseMode::Reconstruct {
            self.rtpghi.follow(&self.decoded, out);
        }
        wrote
    }
}

/// `out[k]` = the magnitude `exp(log_mag[k]) - floor` (at least 0) with the phase of
/// `input[k]` (phase 0 where the input bin is silent). Realtime-safe.
pub fn with_input_phase(input: &[Complex32], log_mag: &[f32], floor: f32, out: &mut [Complex32]) {
    for ((o, x), l) in out.iter_mut().zip(input).zip(log_mag) {
        let mag = (l.exp() - floor).max(0.0);
        let norm = crate::stft::magnitude(*x);
        *o = if norm > 1e-20 {
            *x * (mag / norm)
        } else {
            Complex32::new(mag, 0.0)
        };
    }
}

/// The transposition a Transpose setting stands for, in semitones: clamped to
/// ±[`MAX_TRANSPOSE`], 0 when not a number. Realtime-safe.
fn transposition(semitones: f32) -> f32 {
    if semitones.is_finite() {
        semitones.clamp(-MAX_TRANSPOSE, MAX_TRANSPOSE)
    } else {
        0.0
    }
}

/// `out[k] = raw[k / r]` (linear interpolation along bins) with `r = 2^(semitones / 12)`,
/// clamped to ±[`MAX_TRANSPOSE`]; bins whose source lies beyond the last bin take `neutral[k]`
/// (the feature's mean, i.e. "nothing there"). Realtime-safe.
pub fn transpose(raw: &[f32], neutral: &[f32], semitones: f32, out: &mut [f32]) {
    let semitones = transposition(semitones);
    if semitones == 0.0 {
        out.copy_from_slice(raw);
        return;
    }
    let inv_ratio = (-semitones / 12.0).exp2();
    let last = raw.len().saturating_sub(1);
    for (k, (o, n)) in out.iter_mut().zip(neutral).enumerate() {
        let pos = k as f32 * inv_ratio;
        let i = pos as usize;
        *o = if i >= last {
            if i == last && pos == last as f32 {
                raw[last]
            } else {
                *n
            }
        } else {
            let t = pos - i as f32;
            raw[i] * (1.0 - t) + raw[i + 1] * t
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Kernels;

    fn network() -> Network {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../assets/models/default.safetensors");
        let file = crate::model_file::load(&path).unwrap();
        Network::new(&file, "default", Kernels::best()).unwrap()
    }

    /// The tracker pools the active frames' features: a steady input gives exactly the timbre
    /// head of that frame's features (whatever the weights), frames 60 dB below the loudest do
    /// not count, and two alternating frames give the head of their mean.
    #[test]
    fn tracker_pools_active_frames() {
        let net = network();
        let cfg = net.config().clone();
        let bins = cfg.bins();
        let mut st = net.state();
        let a: Vec<f32> = (0..bins).map(|k| (k as f32 * 0.05).sin()).collect();
        let b: Vec<f32> = (0..bins).map(|k| (k as f32 * 0.11).cos() - 0.5).collect();
        let head_of = |st: &mut NetworkState, hidden: &[f32]| {
            let mut z = vec![0.0f32; cfg.z_t];
            net.timbre_head(st, hidden, &mut z);
            z
        };
        let hidden_of = |st: &mut NetworkState, frame: &[f32]| {
            let mut h = vec![0.0f32; cfg.hidden];
            net.timbre_frame(st, frame, frame, 0.0, &mut h);
            h
        };
        let (ha, hb) = (hidden_of(&mut st, &a), hidden_of(&mut st, &b));
        let close = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-4);

        let mut tracker = TimbreTracker::new(cfg.hidden, 200.0);
        let mut z = vec![0.0f32; cfg.z_t];
        for _ in 0..50 {
            tracker.update(&net, &mut st, (&a, &a, 0.0), -10.0, &mut z);
        }
        assert!(close(&z, &head_of(&mut st, &ha)));
        // A quiet frame (more than 60 dB down) is not pooled.
        tracker.update(&net, &mut st, (&b, &b, 0.0), -90.0, &mut z);
        assert!(close(&z, &head_of(&mut st, &ha)));

        // Alternating loud frames pool to (nearly) their mean: the newer frame weighs
        // `1 / forget` more, so the result lies within a fraction of a percent of the mean.
        tracker.reset();
        for i in 0..400 {
            let frame = if i % 2 == 0 { &a } else { &b };
            tracker.update(&net, &mut st, (frame, frame, 0.0), -10.0, &mut z);
        }
        let mean: Vec<f32> = ha.iter().zip(&hb).map(|(x, y)| 0.5 * (x + y)).collect();
        let expected = head_of(&mut st, &mean);
        let err = z
            .iter()
            .zip(&expected)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        let spread = head_of(&mut st, &ha)
            .iter()
            .zip(&head_of(&mut st, &hb))
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 0.01 * spread, "error {err}, spread {spread}");
    }

    /// Differential mode multiplies the input by the ratio of two decodings of one frame: with
    /// no reference the target is the input's own tracked timbre, both decodings run the same
    /// weights on the same inputs and histories, the ratio is exactly 1 and every frame comes
    /// out bit for bit as it went in (Input phase, the decoder's own magnitudes, does not).
    #[test]
    fn differential_mode_with_the_inputs_own_timbre_is_the_identity() {
        let net = Arc::new(network());
        let bins = net.config().bins();
        let mut rng = 0x1234_5678u32;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            rng as f32 / u32::MAX as f32
        };
        let mut own = NeuralProcessor::new(net.clone(), None, None);
        let mut input_phase = NeuralProcessor::new(net, None, None);
        let mut out = vec![Complex32::new(0.0, 0.0); bins];
        let mut changed = 0;
        for frame in 0..120 {
            // A harmonic tone whose pitch and level drift, with noise between the partials.
            let f0 = 6.0 + 3.0 * (frame as f32 * 0.05).sin();
            let x: Vec<Complex32> = (0..bins)
                .map(|k| {
                    let h = k as f32 / f0;
                    let partial = (-(h - h.round()).powi(2) * 40.0).exp() / (1.0 + h);
                    let mag = partial * (1.0 + 0.5 * (frame as f32 * 0.1).cos()) + 1e-3 * next();
                    Complex32::from_polar(mag, std::f32::consts::TAU * next())
                })
                .collect();
            let diff = FrameParams {
                phase: PhaseMode::Differential,
                ..FrameParams::default()
            };
            assert!(own.process(&x, &diff, &mut out));
            assert_eq!(out, x, "frame {frame}");
            let plain = FrameParams {
                phase: PhaseMode::Input,
                ..FrameParams::default()
            };
            assert!(input_phase.process(&x, &plain, &mut out));
            changed += usize::from(out != x);
        }
        assert_eq!(changed, 120, "the decoder reproduced the input exactly");
    }

    #[test]
    fn transpose_moves_a_peak_by_the_ratio() {
        let bins = 257;
        let mut raw = vec![0.0f32; bins];
        raw[40] = 1.0;
        let neutral = vec![-5.0f32; bins];
        let mut out = vec![0.0f32; bins];
        // An octave up: the peak at bin 40 lands on bin 80.
        transpose(&raw, &neutral, 12.0, &mut out);
        let peak = out
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        assert_eq!(peak, 80);
        assert_eq!(out[80], 1.0);
        // An octave down: bin 20; the top half has no source and is neutral.
        transpose(&raw, &neutral, -12.0, &mut out);
        assert_eq!(out[20], 1.0);
        assert_eq!(out[200], -5.0);
        // Zero and non-finite shifts copy.
        transpose(&raw, &neutral, f32::NAN, &mut out);
        assert_eq!(out, raw);
    }
}
