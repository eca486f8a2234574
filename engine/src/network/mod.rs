//! The three-factor network without candle: the same arithmetic as the training crate's
//! `ThreeFactor`, run one frame at a time with the SIMD [`Kernels`] and preallocated state.
//!
//! - [`Network`] holds the weights (immutable after [`Network::new`]; share it with `Arc`).
//! - [`NetworkState`] holds one stream's causal histories and scratch buffers; [`Network::step`]
//!   advances it by one frame without allocating (realtime-safe).
//! - [`Network::clip_timbre`] runs the timbre encoder over a whole clip (allocates; call it off
//!   the audio thread).
//!
//! A stack is `output(blocks(leaky(input(x))))`; a residual causal block is
//! `h[t] += leaky(W [h[t], h[t-d], ..., h[t-(k-1)d]] + b)`, its past inputs kept in a ring
//! (zeros before the first frame, as the training's zero padding).
//!
//! Files: `mod.rs` (the network, its state and the per-frame step), `layers.rs` (linear
//! layers and causal stacks), `clip.rs` (the timbre encoder over a whole clip).

use crate::config::StftConfig;
use crate::harmonics;
use crate::kernels::Kernels;
use crate::model_config::{ModelConfig, MIDDLE_C, PITCH_BIN_LOW};
use crate::model_file::{ModelFile, ModelFileError, TimbreMap};
use crate::timbre_map::MapBlender;

mod clip;
mod layers;

use layers::{Linear, Stack, StackState};

/// One stream's state: causal histories of the variation, pitch and decoder stacks and the
/// per-frame buffers. Made by [`Network::state`]; sized for its network.
#[derive(Debug, Clone)]
pub struct NetworkState {
    variation: Option<StackState>,
    pitch: StackState,
    decoder: StackState,
    /// The decoder's second stream: the same `z_v` and `z_p` decoded with another `z_t`
    /// ([`Network::redecode`]).
    redecoder: StackState,
    timbre: StackState,
    /// `[envelope input, z_t]`.
    variation_input: Box<[f32]>,
    /// Mean and log-variance of `z_v`.
    variation_stats: Box<[f32]>,
    /// The pitch stack's output: mean and log-variance heads of `z_p` (all but a ruler), then
    /// a classifier's logits.
    pitch_stats: Box<[f32]>,
    /// `z_p` of the last step: the ruler if any, then the heads' means (signs in a binary
    /// code).
    pitch_code: Box<[f32]>,
    /// `[z_t, z_v, z_p]`.
    decoder_input: Box<[f32]>,
    /// `[z_t, z_v, z_p]` of [`Network::redecode`].
    redecoder_input: Box<[f32]>,
    /// Mean and log-variance of `z_t` (timbre head output).
    timbre_stats: Box<[f32]>,
    /// The timbre encoder's input of one frame: normalised envelope, then the harmonic levels
    /// (`bins + timbre_harmonics` values).
    timbre_input: Box<[f32]>,
}

impl NetworkState {
    /// Clears every history (as a fresh state: silence before the next frame). Realtime-safe.
    pub fn reset(&mut self) {
        if let Some(v) = &mut self.variation {
            v.reset();
        }
        self.pitch.reset();
        self.decoder.reset();
        self.redecoder.reset();
    }

    /// Posterior mean of `z_v` of the last step (empty for a two-factor model).
    pub fn z_v(&self) -> &[f32] {
        &self.variation_stats[..self.variation_stats.len() / 2]
    }

    /// `z_p` of the last step (posterior means, a binary code's signs, a ruler's value).
    pub fn z_p(&self) -> &[f32] {
        &self.pitch_code
    }
}

/// The per-frame inputs of one [`Network::step`].
#[derive(Debug, Clone, Copy)]
pub struct StepInput<'a> {
    /// Normalised envelope (or log-magnitude without the cepstral split), `bins` values: the
    /// variation encoder's input.
    pub envelope: &'a [f32],
    /// Normalised fine structure (or log-magnitude), `bins` values: the pitch encoder's input.
    pub fine: &'a [f32],
    /// The timbre that conditions the variation encoder (the input's own), `z_t` values.
    pub z_t_encode: &'a [f32],
    /// The timbre decoded with (the reference's), `z_t` values.
    pub z_t_decode: &'a [f32],
    /// Scale of `z_v` around its prior mean 0: 0 = flat, 1 = as played, 2 = exaggerated.
    pub variation: f32,
}

/// Peak range of the training clips (linear; about -31 to -8 dBFS, the rendered notes' and
/// phrases' spread): [`Network::clip_timbre`] scales a clip outside it to its nearer end.
pub const CLIP_PEAK_RANGE: (f32, f32) = (0.03, 0.4);

/// `audio` as [`Network::clip_timbre`] reads it: scaled to the nearer end of
/// [`CLIP_PEAK_RANGE`] when its peak lies outside (non-finite samples as silence), borrowed
/// unchanged otherwise. Allocates only when it scales.
pub fn at_training_level(audio: &[f32]) -> std::borrow::Cow<'_, [f32]> {
    let peak = crate::clip::finite_peak(audio);
    let (low, high) = CLIP_PEAK_RANGE;
    if peak > 0.0 && !(low..=high).contains(&peak) {
        let gain = peak.clamp(low, high) / peak;
        audio
            .iter()
            .map(|v| if v.is_finite() { v * gain } else { 0.0 })
            .collect()
    } else {
        std::borrow::Cow::Borrowed(audio)
    }
}

/// The three-factor network, ready to stream. Immutable; share it between threads with `Arc`.
#[derive(Debug, Clone)]
pub struct Network {
    config: ModelConfig,
    kernels: Kernels,
    id: String,
    name: String,
    log_mag_mean: Box<[f32]>,
    envelope_mean: Box<[f32]>,
    fine_mean: Box<[f32]>,
    /// Global scales of log-magnitude, envelope and fine structure (natural-log units per
    /// normalised unit).
    scale: [f32; 3],
    timbre_frames: Stack,
    timbre_head: Linear,
    variation: Option<Stack>,
    pitch: Stack,
    decoder: Stack,
    map: TimbreMap,
    blender: MapBlender,
}

impl Network {
    /// Builds the network of a checked model file, with `kernels` (usually
    /// [`Kernels::best`]); `name` is what the user sees. Allocates; not realtime-safe.
    pub fn new(file: &ModelFile, name: &str, kernels: Kernels) -> Result<Self, ModelFileError> {
        let cfg = &file.config;
        let vector = |n: &str| -> Result<Box<[f32]>, ModelFileError> {
            file.weight(n)
                .map(|v| v.to_vec().into_boxed_slice())
                .ok_or_else(|| ModelFileError::Weights(format!("{n} is missing")))
        };
        let s = vector("features.scale")?;
        let layers = cfg.layers();
        let stack = |prefix: &str| -> Result<Option<Stack>, ModelFileError> {
            layers
                .iter()
                .find(|(n, _)| n == prefix)
                // The timbre encoder's per-frame stack runs batched (`clip_timbre`), and so
                // does the pitch stack where the timbre encoder reads harmonic levels.
                .map(|(n, shape)| {
                    let batched =
                        n == "timbre.frames" || (n == "pitch" && cfg.timbre_harmonics > 0);
                    Stack::from_file(file, n, shape, &kernels, batched)
                })
                .transpose()
        };
        let required = |prefix: &str| {
            stack(prefix)?.ok_or_else(|| ModelFileError::Config(format!("no {prefix} stack")))
        };
        Ok(Self {
            config: cfg.clone(),
            kernels,
            id: file.id.clone(),
            name: name.to_string(),
            log_mag_mean: vector("features.log_mag_mean")?,
            envelope_mean: vector("features.envelope_mean")?,
            fine_mean: vector("features.fine_mean")?,
            scale: [s[0], s[1], s[2]],
            timbre_frames: required("timbre.frames")?,
            timbre_head: Linear::from_file(file, "timbre.head", &kernels, false)?,
            variation: stack("variation")?,
            pitch: required("pitch")?,
            decoder: required("decoder")?,
            map: file.map.clone(),
            blender: MapBlender::new(&file.map),
        })
    }

    /// Bytes of layer weights and biases this network holds: what one instance keeps of the
    /// model (the matrices as the file stores them where the kernels read that type, and in
    /// f32 too for the stacks that also run batched: the timbre encoder's per-frame stack, and
    /// the pitch stack of a model with harmonic input). Not
    /// counted: the feature statistics and the timbre map (a few kB).
    pub fn weight_bytes(&self) -> usize {
        [
            Some(&self.timbre_frames),
            self.variation.as_ref(),
            Some(&self.pitch),
            Some(&self.decoder),
        ]
        .into_iter()
        .flatten()
        .map(Stack::bytes)
        .sum::<usize>()
            + self.timbre_head.bytes()
    }

    /// The model's config.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The analysis settings the model was trained with.
    pub fn stft(&self) -> StftConfig {
        self.config.stft()
    }

    /// Identity of the model file's contents (see [`ModelFile::id`]).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The name the user knows the model by (file name, or "default").
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kernels the network runs with.
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// The timbre map of the training instruments.
    pub fn map(&self) -> &TimbreMap {
        &self.map
    }

    /// The timbre map's anchors and inverse projection.
    pub fn blender(&self) -> &MapBlender {
        &self.blender
    }

    /// A fresh streaming state. Allocates; not realtime-safe.
    pub fn state(&self) -> NetworkState {
        let c = &self.config;
        let bins = c.bins();
        NetworkState {
            variation: self.variation.as_ref().map(Stack::state),
            pitch: self.pitch.state(),
            decoder: self.decoder.state(),
            redecoder: self.decoder.state(),
            timbre: self.timbre_frames.state(),
            variation_input: vec![0.0; bins + c.z_t].into_boxed_slice(),
            variation_stats: vec![0.0; 2 * c.z_v_dims()].into_boxed_slice(),
            pitch_stats: vec![0.0; c.pitch_outputs()].into_boxed_slice(),
            pitch_code: vec![0.0; c.z_p].into_boxed_slice(),
            decoder_input: vec![0.0; c.z_t + c.z_v_dims() + c.z_p].into_boxed_slice(),
            redecoder_input: vec![0.0; c.z_t + c.z_v_dims() + c.z_p].into_boxed_slice(),
            timbre_stats: vec![0.0; 2 * c.z_t].into_boxed_slice(),
            timbre_input: vec![0.0; bins + c.timbre_harmonics].into_boxed_slice(),
        }
    }

    /// Normalises one frame's natural-log features in place into the encoders' inputs:
    /// `envelope` becomes the variation/timbre input and `fine` the pitch input (both the
    /// normalised log-magnitude when the model has no cepstral split). Realtime-safe.
    pub fn normalise(&self, log_mag: &[f32], envelope: &mut [f32], fine: &mut [f32]) {
        self.normalise_envelope(log_mag, envelope);
        if self.config.cepstrum {
            let sf = 1.0 / self.scale[2];
            for (f, m) in fine.iter_mut().zip(self.fine_mean.iter()) {
                *f = (*f - m) * sf;
            }
        } else {
            fine.copy_from_slice(envelope);
        }
    }

    /// Only the variation/timbre input of [`Network::normalise`]: `envelope` in place (the
    /// normalised log-magnitude without the cepstral split). Realtime-safe.
    pub fn normalise_envelope(&self, log_mag: &[f32], envelope: &mut [f32]) {
        if self.config.cepstrum {
            let se = 1.0 / self.scale[1];
            for (e, m) in envelope.iter_mut().zip(self.envelope_mean.iter()) {
                *e = (*e - m) * se;
            }
        } else {
            let s = 1.0 / self.scale[0];
            for (e, (l, m)) in envelope
                .iter_mut()
                .zip(log_mag.iter().zip(self.log_mag_mean.iter()))
            {
                *e = (l - m) * s;
            }
        }
    }

    /// Mean of the pitch encoder's raw input (fine structure, or log-magnitude without the
    /// split) per bin: what [`Network::normalise`] maps to 0.
    pub fn pitch_input_mean(&self) -> &[f32] {
        if self.config.cepstrum {
            &self.fine_mean
        } else {
            &self.log_mag_mean
        }
    }

    /// The pitch encoder's input from its raw natural-log feature (fine structure, or
    /// log-magnitude without the cepstral split), `bins` values. Realtime-safe.
    pub fn normalise_pitch(&self, raw: &[f32], out: &mut [f32]) {
        let s = 1.0
            / if self.config.cepstrum {
                self.scale[2]
            } else {
                self.scale[0]
            };
        for ((o, r), m) in out.iter_mut().zip(raw).zip(self.pitch_input_mean()) {
            *o = (r - m) * s;
        }
    }

    /// Natural-log magnitude from the decoder's normalised output, in place. Realtime-safe.
    pub fn denormalise(&self, y: &mut [f32]) {
        for (v, m) in y.iter_mut().zip(self.log_mag_mean.iter()) {
            *v = *v * self.scale[0] + m;
        }
    }

    /// One frame: variation and pitch encoders (posterior means), then the decoder. Writes the
    /// normalised log-magnitude (`bins` values) into `out`. Realtime-safe: no allocation.
    pub fn step(&self, st: &mut NetworkState, input: &StepInput, out: &mut [f32]) {
        let k = &self.kernels;
        let c = &self.config;
        let bins = c.bins();
        let zv = c.z_v_dims();
        if let (Some(stack), Some(vs)) = (&self.variation, st.variation.as_mut()) {
            st.variation_input[..bins].copy_from_slice(&input.envelope[..bins]);
            st.variation_input[bins..].copy_from_slice(&input.z_t_encode[..c.z_t]);
            stack.step(k, vs, &st.variation_input, &mut st.variation_stats);
        }
        self.pitch
            .step(k, &mut st.pitch, &input.fine[..bins], &mut st.pitch_stats);
        let heads = c.pitch_heads();
        let first = c.z_p - heads;
        if c.pitch_ruler() {
            st.pitch_code[0] = pitch_ruler(
                &st.pitch_stats[2 * heads..2 * heads + c.pitch_bins],
                c.pitch_ruler_scale,
            );
        }
        for (z, m) in st.pitch_code[first..]
            .iter_mut()
            .zip(&st.pitch_stats[..heads])
        {
            // A binary code is the sign of the mean head (0 counts as positive, as in
            // training).
            *z = match (c.pitch_binary, *m >= 0.0) {
                (false, _) => *m,
                (true, true) => 1.0,
                (true, false) => -1.0,
            };
        }
        let variation = if input.variation.is_finite() {
            input.variation
        } else {
            1.0
        };
        let d = &mut st.decoder_input;
        d[..c.z_t].copy_from_slice(&input.z_t_decode[..c.z_t]);
        for (o, v) in d[c.z_t..c.z_t + zv]
            .iter_mut()
            .zip(&st.variation_stats[..zv])
        {
            *o = v * variation;
        }
        d[c.z_t + zv..].copy_from_slice(&st.pitch_code);
        self.decoder
            .step(k, &mut st.decoder, &st.decoder_input, out);
    }

    /// Only the pitch encoder: one frame's normalised pitch input (`bins` values) through the
    /// pitch stack, on the same causal history as [`step`](Self::step) (use one or the other
    /// on a state). Returns the pitch ruler in semitones from middle C, or `None` for a model
    /// without a ruler. Realtime-safe.
    pub fn pitch_step(&self, st: &mut NetworkState, fine: &[f32]) -> Option<f32> {
        let c = &self.config;
        if !c.pitch_ruler() {
            return None;
        }
        self.pitch.step(
            &self.kernels,
            &mut st.pitch,
            &fine[..c.bins()],
            &mut st.pitch_stats,
        );
        let heads = c.pitch_heads();
        let semitones = pitch_ruler(&st.pitch_stats[2 * heads..2 * heads + c.pitch_bins], 1.0);
        Some(semitones)
    }

    /// Decodes the last [`step`](Self::step)'s `z_v` and `z_p` again with another timbre
    /// `z_t` (`z_t` values) into `out` (`bins` normalised log-magnitudes), on the decoder's
    /// second causal history. Call it once after every `step` whose frames it should follow:
    /// its history only sees the frames it decodes. Realtime-safe.
    pub fn redecode(&self, st: &mut NetworkState, z_t: &[f32], out: &mut [f32]) {
        let n = self.config.z_t;
        st.redecoder_input.copy_from_slice(&st.decoder_input);
        st.redecoder_input[..n].copy_from_slice(&z_t[..n]);
        self.decoder
            .step(&self.kernels, &mut st.redecoder, &st.redecoder_input, out);
    }

    /// The timbre encoder's per-frame hidden vector of one frame into `hidden` (`hidden`
    /// values): its normalised envelope (`bins` values) and, for a model with harmonic input,
    /// its natural-log magnitude `log_mag` (`bins` values) read at multiples of the pitch that
    /// `ruler` stands for (a pitch-ruler value; the model ignores both otherwise).
    /// Realtime-safe.
    pub fn timbre_frame(
        &self,
        st: &mut NetworkState,
        envelope: &[f32],
        log_mag: &[f32],
        ruler: f32,
        hidden: &mut [f32],
    ) {
        let bins = self.config.bins();
        if self.config.timbre_harmonics == 0 {
            self.timbre_frames
                .step(&self.kernels, &mut st.timbre, envelope, hidden);
            return;
        }
        let (env, levels) = st.timbre_input.split_at_mut(bins);
        env.copy_from_slice(&envelope[..bins]);
        harmonics::harmonic_levels(&self.config, self.scale[0], &log_mag[..bins], ruler, levels);
        self.timbre_frames
            .step(&self.kernels, &mut st.timbre, &st.timbre_input, hidden);
    }

    /// The pitch ruler of the last [`Network::step`] (0 before the first, or in a model
    /// without a ruler). Realtime-safe.
    pub fn last_ruler(&self, st: &NetworkState) -> f32 {
        if self.config.pitch_ruler() {
            st.pitch_code[0]
        } else {
            0.0
        }
    }

    /// Posterior mean of `z_t` from pooled timbre hidden vectors into `z_t`. Realtime-safe.
    pub fn timbre_head(&self, st: &mut NetworkState, pooled: &[f32], z_t: &mut [f32]) {
        self.timbre_head
            .apply(&self.kernels, pooled, &mut st.timbre_stats);
        let n = self.config.z_t;
        z_t[..n].copy_from_slice(&st.timbre_stats[..n]);
    }

    /// An average spectral envelope for a timbre latent (natural-log magnitude per bin, the
    /// engine's cepstral envelope): the decoder's steady output with neutral (zero) variation
    /// and pitch latents. Lets a latent-only timbre (a training-instrument preset) drive the
    /// classic mode too. Allocates; call it off the audio thread.
    pub fn envelope_of(&self, z_t: &[f32]) -> Vec<f32> {
        let c = &self.config;
        let bins = c.bins();
        let mut st = self.state();
        let mut input = vec![0.0f32; c.z_t + c.z_v_dims() + c.z_p];
        for (i, z) in input.iter_mut().zip(z_t) {
            *i = *z;
        }
        let mut y = vec![0.0f32; bins];
        // Past the receptive field the output no longer changes.
        for _ in 0..=c.look_back() {
            self.decoder
                .step(&self.kernels, &mut st.decoder, &input, &mut y);
        }
        self.denormalise(&mut y);
        let mut envelope = vec![0.0f32; bins];
        crate::cepstrum::Cepstrum::new(&c.stft()).envelope(&y, &mut envelope);
        envelope
    }
}

/// The pitch ruler of a classifier's `logits` (one per semitone from [`PITCH_BIN_LOW`]): the
/// softmax-weighted mean of the bins' notes, in semitones from middle C, times `scale`.
/// Realtime-safe.
pub fn pitch_ruler(logits: &[f32], scale: f32) -> f32 {
    let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut sum, mut weighted) = (0.0f32, 0.0f32);
    for (k, l) in logits.iter().enumerate() {
        let e = (l - top).exp();
        sum += e;
        weighted += e * k as f32;
    }
    if !(sum > 0.0 && sum.is_finite()) {
        return 0.0;
    }
    scale * (weighted / sum + PITCH_BIN_LOW - MIDDLE_C)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ruler is the softmax-weighted mean note: one dominant bin gives that bin's note, equal
    /// logits the middle of the bins, two equal bins their midpoint; all in semitones from
    /// middle C times the scale. Logits that are not numbers give 0, not NaN.
    #[test]
    fn the_pitch_ruler_is_the_expected_note_of_the_classifier() {
        let mut logits = vec![0.0f32; 84];
        logits[45] = 60.0; // MIDI 24 + 45 = 69 (A4), 9 semitones above middle C.
        assert!((pitch_ruler(&logits, 2.0) - 18.0).abs() < 1e-4);
        let equal = vec![3.0f32; 84];
        // The mean bin is 41.5, MIDI 65.5.
        assert!((pitch_ruler(&equal, 1.0) - 5.5).abs() < 1e-4);
        let mut two = vec![-1e4f32; 84];
        two[36] = 1.0; // Middle C.
        two[48] = 1.0; // An octave up.
        assert!((pitch_ruler(&two, 1.0) - 6.0).abs() < 1e-4);
        assert_eq!(pitch_ruler(&[f32::NAN; 4], 1.0), 0.0);
    }
}
