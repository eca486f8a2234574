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

use crate::cepstrum::Cepstrum;
use crate::config::StftConfig;
use crate::features::{pooling_weights, FeatureExtractor, FrameFeatures, MAX_POOLED_FRAMES};
use crate::harmonics;
use crate::kernels::Kernels;
use crate::model_config::{
    ModelConfig, StackShape, LEAKY_SLOPE, MIDDLE_C, PITCH_BIN_LOW, POOLING_RANGE_DB,
};
use crate::model_file::{ModelFile, ModelFileError, TimbreMap};
use crate::timbre_map::MapBlender;

/// Frames analysed per batch by [`Network::clip_timbre`] (bounds its memory on long clips).
const CLIP_CHUNK_FRAMES: usize = 1024;

/// The narrowed copy of a layer's weights the per-frame product reads.
#[derive(Debug, Clone)]
enum Narrowed {
    /// f16 bit patterns.
    F16(Box<[u16]>),
    /// int8 values and one scale per row.
    Int8 {
        values: Box<[i8]>,
        scales: Box<[f32]>,
    },
}

/// A linear layer `y = W x + b`, `W` row-major `[rows, cols]`.
#[derive(Debug, Clone)]
struct Linear {
    /// The weights in f32: empty when `narrowed` is set and no batched pass needs them.
    w: Box<[f32]>,
    /// `w` as the file stored it, f16 or int8, kept when the kernels read that type: the
    /// per-frame product then reads these (a half or a quarter of the bytes).
    narrowed: Option<Narrowed>,
    b: Box<[f32]>,
    rows: usize,
    cols: usize,
}

impl Linear {
    /// The layer `prefix` of `file`, its narrowed weights kept where `kernels` read them; the
    /// f32 weights kept beside them when `batched` (the batched pass reads f32 only).
    fn from_file(
        file: &ModelFile,
        prefix: &str,
        kernels: &Kernels,
        batched: bool,
    ) -> Result<Self, ModelFileError> {
        let get = |name: String| {
            file.weights
                .get(&name)
                .ok_or_else(|| ModelFileError::Weights(format!("{name} is missing")))
        };
        let w = get(format!("{prefix}.weight"))?;
        let b = get(format!("{prefix}.bias"))?;
        let (rows, cols) = match w.shape[..] {
            [r, c] if b.shape == [r] => (r, c),
            _ => {
                return Err(ModelFileError::Weights(format!(
                    "{prefix}: weight {:?} and bias {:?} do not form a linear layer",
                    w.shape, b.shape
                )))
            }
        };
        let narrowed = match (&w.half, &w.int8) {
            (Some(h), _) if kernels.has_f16() => Some(Narrowed::F16(h.clone().into())),
            (_, Some(q)) if kernels.has_int8() => Some(Narrowed::Int8 {
                values: q.values.clone().into(),
                scales: q.scales.clone().into(),
            }),
            _ => None,
        };
        Ok(Self {
            w: if narrowed.is_none() || batched {
                w.data.clone().into_boxed_slice()
            } else {
                Box::default()
            },
            narrowed,
            b: b.data.clone().into_boxed_slice(),
            rows,
            cols,
        })
    }

    /// Bytes of weights and biases held.
    fn bytes(&self) -> usize {
        let narrowed = match &self.narrowed {
            Some(Narrowed::F16(w)) => 2 * w.len(),
            Some(Narrowed::Int8 { values, scales }) => values.len() + 4 * scales.len(),
            None => 0,
        };
        4 * (self.w.len() + self.b.len()) + narrowed
    }

    #[inline]
    fn apply(&self, k: &Kernels, x: &[f32], y: &mut [f32]) {
        let (x, y) = (&x[..self.cols], &mut y[..self.rows]);
        match &self.narrowed {
            Some(Narrowed::F16(w)) => k.matvec_bias_f16(w, &self.b, x, y),
            Some(Narrowed::Int8 { values, scales }) => {
                k.matvec_bias_i8(values, scales, &self.b, x, y)
            }
            None => k.matvec_bias(&self.w, &self.b, x, y),
        }
    }
}

/// A residual causal convolution.
#[derive(Debug, Clone)]
struct Block {
    conv: Linear,
    kernel: usize,
    dilation: usize,
}

impl Block {
    /// Frames of past input the block keeps.
    fn history(&self) -> usize {
        (self.kernel - 1) * self.dilation
    }
}

/// Input projection, residual causal blocks, output projection.
#[derive(Debug, Clone)]
struct Stack {
    input: Linear,
    blocks: Vec<Block>,
    output: Linear,
    hidden: usize,
}

impl Stack {
    /// Whether each output frame depends on its own input frame only (every block's kernel
    /// is 1), so that any set of frames can be run alone.
    fn frame_by_frame(&self) -> bool {
        self.blocks.iter().all(|b| b.history() == 0)
    }

    fn from_file(
        file: &ModelFile,
        prefix: &str,
        shape: &StackShape,
        kernels: &Kernels,
        batched: bool,
    ) -> Result<Self, ModelFileError> {
        let blocks = shape
            .dilations
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                Ok(Block {
                    conv: Linear::from_file(
                        file,
                        &format!("{prefix}.blocks.{i}.conv"),
                        kernels,
                        batched,
                    )?,
                    kernel: shape.kernel,
                    dilation: d,
                })
            })
            .collect::<Result<Vec<_>, ModelFileError>>()?;
        Ok(Self {
            input: Linear::from_file(file, &format!("{prefix}.input"), kernels, batched)?,
            blocks,
            output: Linear::from_file(file, &format!("{prefix}.output"), kernels, batched)?,
            hidden: shape.hidden,
        })
    }

    /// Bytes of weights and biases held.
    fn bytes(&self) -> usize {
        self.input.bytes()
            + self.output.bytes()
            + self.blocks.iter().map(|b| b.conv.bytes()).sum::<usize>()
    }

    fn state(&self) -> StackState {
        StackState {
            rings: self
                .blocks
                .iter()
                .map(|b| vec![0.0; b.history() * self.hidden].into_boxed_slice())
                .collect(),
            frame: 0,
            h: vec![0.0; self.hidden].into_boxed_slice(),
            taps: vec![0.0; self.blocks.iter().map(|b| b.kernel).max().unwrap_or(1) * self.hidden]
                .into_boxed_slice(),
            conv: vec![0.0; self.hidden].into_boxed_slice(),
        }
    }

    /// One frame `x` (`input.cols` values) to `out` (`output.rows` values). Realtime-safe.
    fn step(&self, k: &Kernels, st: &mut StackState, x: &[f32], out: &mut [f32]) {
        let hid = self.hidden;
        self.input.apply(k, x, &mut st.h);
        k.leaky_relu(&mut st.h, LEAKY_SLOPE);
        for (block, ring) in self.blocks.iter().zip(st.rings.iter_mut()) {
            let hist = block.history();
            let taps = &mut st.taps[..block.kernel * hid];
            taps[..hid].copy_from_slice(&st.h);
            for j in 1..block.kernel {
                let back = j * block.dilation;
                // Slot of frame `frame - back` (`back <= hist`); never-written slots are the
                // zeros before the first frame.
                let slot = ((st.frame + (hist - back) as u64) % hist as u64) as usize;
                taps[j * hid..(j + 1) * hid].copy_from_slice(&ring[slot * hid..(slot + 1) * hid]);
            }
            if hist > 0 {
                let slot = (st.frame % hist as u64) as usize;
                ring[slot * hid..(slot + 1) * hid].copy_from_slice(&taps[..hid]);
            }
            block.conv.apply(k, taps, &mut st.conv);
            k.add_leaky_relu(&mut st.h, &st.conv, LEAKY_SLOPE);
        }
        self.output.apply(k, &st.h, out);
        st.frame += 1;
    }

    /// `frames` consecutive frames at once, the first with zeros before it (as a fresh
    /// [`Stack::step`] state): `x` row-major `frames x input`, `out` `frames x output`. Needs
    /// the f32 weights (`batched` at load). Allocates scratch; not realtime-safe.
    fn forward_frames(&self, k: &Kernels, x: &[f32], frames: usize, out: &mut [f32]) {
        let hid = self.hidden;
        let mut h = vec![0.0f32; frames * hid];
        let mut conv = vec![0.0f32; frames * hid];
        let mut taps = Vec::new();
        k.matmul_bias(&self.input.w, &self.input.b, x, frames, &mut h);
        k.leaky_relu(&mut h, LEAKY_SLOPE);
        for block in &self.blocks {
            if block.kernel == 1 {
                k.matmul_bias(&block.conv.w, &block.conv.b, &h, frames, &mut conv);
            } else {
                // Row t: [h[t], h[t - d], ..., h[t - (kernel - 1) d]], zeros before frame 0.
                let width = block.kernel * hid;
                taps.clear();
                taps.resize(frames * width, 0.0f32);
                for (t, row) in taps.chunks_exact_mut(width).enumerate() {
                    for (j, tap) in row.chunks_exact_mut(hid).enumerate() {
                        if let Some(src) = t.checked_sub(j * block.dilation) {
                            tap.copy_from_slice(&h[src * hid..(src + 1) * hid]);
                        }
                    }
                }
                k.matmul_bias(&block.conv.w, &block.conv.b, &taps, frames, &mut conv);
            }
            k.add_leaky_relu(&mut h, &conv, LEAKY_SLOPE);
        }
        k.matmul_bias(&self.output.w, &self.output.b, &h, frames, out);
    }
}

/// Streaming state of one causal stack: each block's past inputs and scratch.
#[derive(Debug, Clone)]
struct StackState {
    /// Per block: a ring of its last `history` inputs, `history x hidden` values.
    rings: Vec<Box<[f32]>>,
    /// Frames stepped since the state was made or reset.
    frame: u64,
    h: Box<[f32]>,
    taps: Box<[f32]>,
    conv: Box<[f32]>,
}

impl StackState {
    fn reset(&mut self) {
        for r in &mut self.rings {
            r.fill(0.0);
        }
        self.frame = 0;
    }
}

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

    /// Posterior-mean `z_t` of a whole clip (mono, at the model rate): the training's
    /// pooling, frames within [`POOLING_RANGE_DB`] of the loudest weighted equally. Works
    /// through the clip in chunks, so memory stays small for long clips. A clip whose peak
    /// lies outside [`CLIP_PEAK_RANGE`] is first scaled to the range's nearer end, so a very
    /// quiet or very loud reference reads as the training clips do. Allocates; call it off the
    /// audio thread.
    pub fn clip_timbre(&self, audio: &[f32]) -> Vec<f32> {
        let audio = at_training_level(audio);
        let audio = &audio[..];
        let c = &self.config;
        let mut ex = FeatureExtractor::new(&c.stft(), c.mag_floor);
        let frames = audio.len() / c.hop + 1;
        let weights = pooling_weights(&ex.frame_db(audio, 0, frames), POOLING_RANGE_DB);
        self.pool_timbre(&weights, |start, n, log_mag, envelope| {
            let f = ex.frames(audio, start * c.hop, n);
            log_mag.copy_from_slice(&f.log_mag);
            envelope.copy_from_slice(&f.envelope);
        })
    }

    /// [`Network::clip_timbre`] of a clip whose features are already at hand: `features` must
    /// be [`FeatureExtractor::clip`] of the clip at the training level ([`at_training_level`])
    /// at this network's framing and magnitude floor, as the Exemplar analysis also reads them
    /// (`None` otherwise: another bin count). Features made
    /// [`without_envelope`](FeatureExtractor::without_envelope) get the envelopes of the
    /// frames pooled made here, with the extractor's own cepstrum. The same latent, bit for
    /// bit, without analysing the clip again. Allocates; call it off the audio thread.
    pub fn clip_timbre_of(&self, features: &FrameFeatures) -> Option<Vec<f32>> {
        let bins = self.config.bins();
        let has_envelope = features.envelope.len() == features.log_mag.len();
        if features.bins != bins
            || features.log_mag.len() != features.frames * bins
            || !(has_envelope || features.envelope.is_empty())
        {
            return None;
        }
        let weights = pooling_weights(&features.frame_db, POOLING_RANGE_DB);
        let mut cepstrum = (!has_envelope).then(|| Cepstrum::new(&self.stft()));
        Some(self.pool_timbre(&weights, |start, n, log_mag, envelope| {
            let rows = start * bins..(start + n) * bins;
            log_mag.copy_from_slice(&features.log_mag[rows.clone()]);
            match &mut cepstrum {
                None => envelope.copy_from_slice(&features.envelope[rows]),
                Some(cepstrum) => {
                    let frames = log_mag
                        .chunks_exact(bins)
                        .zip(envelope.chunks_exact_mut(bins));
                    for (l, e) in frames {
                        cepstrum.envelope(l, e);
                    }
                }
            }
        }))
    }

    /// The timbre encoder over a clip's frames, [`CLIP_CHUNK_FRAMES`] at a time: `rows(start, n,
    /// log_mag, envelope)` fills the features of frames `start..start + n` (`n x bins` each);
    /// their hidden vectors are pooled with `weights` (one per frame) and the head gives the
    /// posterior mean of `z_t`. With harmonic input (`timbre_harmonics`), each chunk also
    /// reads the pitch stack's look-back before it, and the pitch stack runs over the chunk
    /// for each frame's ruler.
    fn pool_timbre(
        &self,
        weights: &[f32],
        mut rows: impl FnMut(usize, usize, &mut [f32], &mut [f32]),
    ) -> Vec<f32> {
        let c = &self.config;
        let (bins, hid, harmonics) = (c.bins(), c.hidden, c.timbre_harmonics);
        let width = bins + harmonics;
        let context = if harmonics > 0 { c.look_back() } else { 0 };
        let frames = weights.len();
        // A long clip's weights leave most of its frames out: only those with weight are
        // encoded. Up to MAX_POOLED_FRAMES frames every frame runs as before, so the latent of
        // such a clip (every clip the dataset and the evaluation use) keeps its bits: skipping a
        // quiet frame would move others into another of the product's blockings.
        if harmonics == 0 && frames > MAX_POOLED_FRAMES && self.timbre_frames.frame_by_frame() {
            return self.pool_timbre_weighted(weights, rows);
        }
        let mut pooled = vec![0.0f64; hid];
        let mut hidden = vec![0.0f32; CLIP_CHUNK_FRAMES * hid];
        let chunk = (CLIP_CHUNK_FRAMES + context).min(frames);
        let (mut log_mag, mut envelope) = (vec![0.0f32; chunk * bins], vec![0.0f32; chunk * bins]);
        // Harmonic input only: the pitch stack's input and output, and the timbre input rows.
        let outputs = c.pitch_outputs();
        let scratch = |n: usize| {
            if harmonics > 0 {
                vec![0.0f32; n]
            } else {
                Vec::new()
            }
        };
        let (mut pitch_in, mut pitch_out) = (scratch(chunk * bins), scratch(chunk * outputs));
        let mut input = scratch(CLIP_CHUNK_FRAMES.min(frames) * width);
        let mut start = 0;
        while start < frames {
            let n = CLIP_CHUNK_FRAMES.min(frames - start);
            let first = start.saturating_sub(context);
            let (lead, m) = (start - first, start + n - first);
            let (log_mag, envelope) = (&mut log_mag[..m * bins], &mut envelope[..m * bins]);
            rows(first, m, log_mag, envelope);
            if harmonics > 0 {
                let (pitch_in, pitch_out) =
                    (&mut pitch_in[..m * bins], &mut pitch_out[..m * outputs]);
                let mut raw = vec![0.0f32; bins];
                for ((l, e), p) in log_mag
                    .chunks_exact(bins)
                    .zip(envelope.chunks_exact(bins))
                    .zip(pitch_in.chunks_exact_mut(bins))
                {
                    if c.cepstrum {
                        for ((r, l), e) in raw.iter_mut().zip(l).zip(e) {
                            *r = l - e;
                        }
                        self.normalise_pitch(&raw, p);
                    } else {
                        self.normalise_pitch(l, p);
                    }
                }
                self.pitch
                    .forward_frames(&self.kernels, pitch_in, m, pitch_out);
                let logits = 2 * c.pitch_heads()..2 * c.pitch_heads() + c.pitch_bins;
                for t in lead..m {
                    let row = &mut input[(t - lead) * width..(t - lead + 1) * width];
                    let (env, levels) = row.split_at_mut(bins);
                    let l = &log_mag[t * bins..(t + 1) * bins];
                    env.copy_from_slice(&envelope[t * bins..(t + 1) * bins]);
                    self.normalise_envelope(l, env);
                    let ruler = pitch_ruler(
                        &pitch_out[t * outputs..(t + 1) * outputs][logits.clone()],
                        c.pitch_ruler_scale,
                    );
                    harmonics::harmonic_levels(c, self.scale[0], l, ruler, levels);
                }
                self.timbre_frames.forward_frames(
                    &self.kernels,
                    &input[..n * width],
                    n,
                    &mut hidden[..n * hid],
                );
            } else {
                for (l, e) in log_mag
                    .chunks_exact(bins)
                    .zip(envelope.chunks_exact_mut(bins))
                {
                    self.normalise_envelope(l, e);
                }
                self.timbre_frames.forward_frames(
                    &self.kernels,
                    envelope,
                    n,
                    &mut hidden[..n * hid],
                );
            }
            for (t, h) in hidden[..n * hid].chunks_exact(hid).enumerate() {
                add_weighted(&mut pooled, weights[start + t], h);
            }
            start += n;
        }
        self.timbre_head_of(&pooled)
    }

    /// [`Self::pool_timbre`] of a clip longer than [`MAX_POOLED_FRAMES`] frames, for a timbre
    /// encoder that reads each frame alone (no harmonic input, no look-back): only the frames
    /// of non-zero weight go through it, [`CLIP_CHUNK_FRAMES`] at a time (a long clip's
    /// weights count at most [`MAX_POOLED_FRAMES`] of its frames). The same latent as encoding
    /// every frame, but for rounding: a frame's sums may run in another of the product's
    /// blockings.
    fn pool_timbre_weighted(
        &self,
        weights: &[f32],
        mut rows: impl FnMut(usize, usize, &mut [f32], &mut [f32]),
    ) -> Vec<f32> {
        let (bins, hid) = (self.config.bins(), self.config.hidden);
        let chosen: Vec<usize> = (0..weights.len()).filter(|&t| weights[t] > 0.0).collect();
        let chunk = CLIP_CHUNK_FRAMES.min(chosen.len());
        let (mut log_mag, mut envelope) = (vec![0.0f32; chunk * bins], vec![0.0f32; chunk * bins]);
        let mut hidden = vec![0.0f32; chunk * hid];
        let mut pooled = vec![0.0f64; hid];
        for frames in chosen.chunks(CLIP_CHUNK_FRAMES) {
            let n = frames.len();
            for ((&t, l), e) in frames
                .iter()
                .zip(log_mag.chunks_exact_mut(bins))
                .zip(envelope.chunks_exact_mut(bins))
            {
                rows(t, 1, l, e);
                self.normalise_envelope(l, e);
            }
            self.timbre_frames.forward_frames(
                &self.kernels,
                &envelope[..n * bins],
                n,
                &mut hidden[..n * hid],
            );
            for (&t, h) in frames.iter().zip(hidden.chunks_exact(hid)) {
                add_weighted(&mut pooled, weights[t], h);
            }
        }
        self.timbre_head_of(&pooled)
    }

    /// The posterior mean of `z_t` from the timbre encoder's pooled features.
    fn timbre_head_of(&self, pooled: &[f64]) -> Vec<f32> {
        let c = &self.config;
        let pooled: Vec<f32> = pooled.iter().map(|v| *v as f32).collect();
        let mut stats = vec![0.0f32; 2 * c.z_t];
        self.timbre_head.apply(&self.kernels, &pooled, &mut stats);
        stats.truncate(c.z_t);
        stats
    }
}

/// `pooled += w * h` in f64, a frame's hidden features `h` into the pooled sum, where its weight
/// `w` is above 0 (a frame of weight 0 adds nothing, not even a signed zero).
fn add_weighted(pooled: &mut [f64], w: f32, h: &[f32]) {
    let w = f64::from(w);
    if w > 0.0 {
        for (p, h) in pooled.iter_mut().zip(h) {
            *p += w * f64::from(*h);
        }
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
