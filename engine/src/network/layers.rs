//! The network's layers: linear layers (f32 weights and their narrowed copies) and residual
//! causal stacks, stepped one frame at a time or run over a clip's frames.

use crate::kernels::Kernels;
use crate::model_config::{StackShape, LEAKY_SLOPE};
use crate::model_file::{ModelFile, ModelFileError};

/// The narrowed copy of a layer's weights the per-frame product reads.
#[derive(Debug, Clone)]
pub(super) enum Narrowed {
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
pub(super) struct Linear {
    /// The weights in f32: empty when `narrowed` is set and no batched pass needs them.
    pub(super) w: Box<[f32]>,
    /// `w` as the file stored it, f16 or int8, kept when the kernels read that type: the
    /// per-frame product then reads these (a half or a quarter of the bytes).
    pub(super) narrowed: Option<Narrowed>,
    pub(super) b: Box<[f32]>,
    pub(super) rows: usize,
    pub(super) cols: usize,
}

impl Linear {
    /// The layer `prefix` of `file`, its narrowed weights kept where `kernels` read them; the
    /// f32 weights kept beside them when `batched` (the batched pass reads f32 only).
    pub(super) fn from_file(
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
    pub(super) fn bytes(&self) -> usize {
        let narrowed = match &self.narrowed {
            Some(Narrowed::F16(w)) => 2 * w.len(),
            Some(Narrowed::Int8 { values, scales }) => values.len() + 4 * scales.len(),
            None => 0,
        };
        4 * (self.w.len() + self.b.len()) + narrowed
    }

    #[inline]
    pub(super) fn apply(&self, k: &Kernels, x: &[f32], y: &mut [f32]) {
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
pub(super) struct Block {
    pub(super) conv: Linear,
    pub(super) kernel: usize,
    pub(super) dilation: usize,
}

impl Block {
    /// Frames of past input the block keeps.
    pub(super) fn history(&self) -> usize {
        (self.kernel - 1) * self.dilation
    }
}

/// Input projection, residual causal blocks, output projection.
#[derive(Debug, Clone)]
pub(super) struct Stack {
    pub(super) input: Linear,
    pub(super) blocks: Vec<Block>,
    pub(super) output: Linear,
    pub(super) hidden: usize,
}

impl Stack {
    /// Whether each output frame depends on its own input frame only (every block's kernel
    /// is 1), so that any set of frames can be run alone.
    pub(super) fn frame_by_frame(&self) -> bool {
        self.blocks.iter().all(|b| b.history() == 0)
    }

    pub(super) fn from_file(
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
    pub(super) fn bytes(&self) -> usize {
        self.input.bytes()
            + self.output.bytes()
            + self.blocks.iter().map(|b| b.conv.bytes()).sum::<usize>()
    }

    pub(super) fn state(&self) -> StackState {
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
    pub(super) fn step(&self, k: &Kernels, st: &mut StackState, x: &[f32], out: &mut [f32]) {
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
    pub(super) fn forward_frames(&self, k: &Kernels, x: &[f32], frames: usize, out: &mut [f32]) {
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
pub(super) struct StackState {
    /// Per block: a ring of its last `history` inputs, `history x hidden` values.
    pub(super) rings: Vec<Box<[f32]>>,
    /// Frames stepped since the state was made or reset.
    pub(super) frame: u64,
    pub(super) h: Box<[f32]>,
    pub(super) taps: Box<[f32]>,
    pub(super) conv: Box<[f32]>,
}

impl StackState {
    pub(super) fn reset(&mut self) {
        for r in &mut self.rings {
            r.fill(0.0);
        }
        self.frame = 0;
    }
}
