//! The causal building blocks of the three-factor model, written so that each one is a plain
//! matrix product per frame (the engine runs the same arithmetic with SIMD kernels).
//!
//! A causal convolution with kernel `k` and dilation `d` is a linear map of the concatenated
//! taps `[x[t], x[t - d], ..., x[t - (k-1) d]]` (zeros before the first frame). Its weight is
//! stored as one `[out, k * in]` matrix, tap-major, so the engine can stream it with a ring
//! buffer of past inputs and one matrix-vector product.
//!
//! Tensors are `(batch, frames, channels)`. Every block has `forward` (a whole sequence) and
//! `step` (one frame, with a [`StackState`]); streaming a sequence frame by frame gives the
//! same numbers as `forward` (tested to float rounding).

use std::collections::VecDeque;

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{Linear, VarBuilder};

pub use timbreswap_engine::model_config::StackShape;

/// Slope of the leaky ReLU used after every hidden layer (cheap and exact in the engine).
pub const LEAKY_SLOPE: f64 = timbreswap_engine::model_config::LEAKY_SLOPE as f64;

/// Leaky ReLU: `max(x, LEAKY_SLOPE * x)`.
pub fn leaky_relu(x: &Tensor) -> Result<Tensor> {
    x.maximum(&(x * LEAKY_SLOPE)?)
}

/// A linear layer `y = x W^T + b` with the weight `[out, in]` and bias `[out]`, named
/// `weight` / `bias` under its prefix. Accepts `(batch, frames, in)` or `(rows, in)`.
pub fn linear(input: usize, output: usize, vb: VarBuilder) -> Result<Linear> {
    candle_nn::linear(input, output, vb)
}

/// Applies `layer` to the last dimension of `x` with one 2-D matrix product.
pub fn apply_linear(layer: &Linear, x: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let last = *dims.last().unwrap_or(&0);
    let rows: usize = dims[..dims.len() - 1].iter().product();
    let y = layer.forward(&x.reshape((rows, last))?)?;
    let out = y.dim(1)?;
    let mut shape = dims;
    let n = shape.len();
    shape[n - 1] = out;
    y.reshape(shape)
}

/// A residual causal convolution: `y[t] = x[t] + leaky(W [x[t], x[t-d], ...] + b)`.
#[derive(Debug, Clone)]
pub struct CausalBlock {
    conv: Linear,
    kernel: usize,
    dilation: usize,
}

impl CausalBlock {
    /// `channels` in and out, `kernel` taps `dilation` frames apart; weights under `vb`
    /// (`conv.weight` `[channels, kernel * channels]`, `conv.bias` `[channels]`).
    pub fn new(channels: usize, kernel: usize, dilation: usize, vb: VarBuilder) -> Result<Self> {
        let conv = linear(kernel * channels, channels, vb.pp("conv"))?;
        Ok(Self {
            conv,
            kernel,
            dilation,
        })
    }

    /// Frames of history the block needs: `(kernel - 1) * dilation`.
    pub fn history(&self) -> usize {
        (self.kernel - 1) * self.dilation
    }

    /// The whole sequence `x` `(batch, frames, channels)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let frames = x.dim(1)?;
        let mut taps = Vec::with_capacity(self.kernel);
        for j in 0..self.kernel {
            let shift = j * self.dilation;
            if shift == 0 {
                taps.push(x.clone());
            } else if shift >= frames {
                taps.push(x.zeros_like()?);
            } else {
                taps.push(x.pad_with_zeros(1, shift, 0)?.narrow(1, 0, frames)?);
            }
        }
        let stacked = Tensor::cat(&taps, D::Minus1)?;
        x + leaky_relu(&apply_linear(&self.conv, &stacked)?)?
    }

    /// One frame `x` `(batch, channels)`; `history` holds the block's past inputs, newest
    /// first, and is updated.
    pub fn step(&self, x: &Tensor, history: &mut VecDeque<Tensor>) -> Result<Tensor> {
        let mut taps = Vec::with_capacity(self.kernel);
        taps.push(x.clone());
        for j in 1..self.kernel {
            let back = j * self.dilation;
            match history.get(back - 1) {
                Some(past) => taps.push(past.clone()),
                None => taps.push(x.zeros_like()?),
            }
        }
        let stacked = Tensor::cat(&taps, D::Minus1)?;
        let y = (x + leaky_relu(&self.conv.forward(&stacked)?)?)?;
        if self.history() > 0 {
            history.push_front(x.clone());
            history.truncate(self.history());
        }
        Ok(y)
    }
}

/// Input projection, residual causal blocks, output projection:
/// `out(leaky(in(x)) -> blocks)`. Weights: `input.*`, `blocks.{i}.conv.*`, `output.*`.
#[derive(Debug, Clone)]
pub struct CausalStack {
    input: Linear,
    blocks: Vec<CausalBlock>,
    output: Linear,
}

/// Streaming state of a [`CausalStack`]: the past inputs of each block.
#[derive(Debug, Clone, Default)]
pub struct StackState {
    histories: Vec<VecDeque<Tensor>>,
}

impl CausalStack {
    /// A stack of `shape` with weights under `vb`.
    pub fn new(shape: &StackShape, vb: VarBuilder) -> Result<Self> {
        let input = linear(shape.input, shape.hidden, vb.pp("input"))?;
        let blocks = shape
            .dilations
            .iter()
            .enumerate()
            .map(|(i, &d)| CausalBlock::new(shape.hidden, shape.kernel, d, vb.pp("blocks").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let output = linear(shape.hidden, shape.output, vb.pp("output"))?;
        Ok(Self {
            input,
            blocks,
            output,
        })
    }

    /// Frames of look-back (receptive field minus one).
    pub fn receptive_field(&self) -> usize {
        self.blocks.iter().map(CausalBlock::history).sum::<usize>() + 1
    }

    /// The whole sequence `x` `(batch, frames, input)` to `(batch, frames, output)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = leaky_relu(&apply_linear(&self.input, x)?)?;
        for block in &self.blocks {
            h = block.forward(&h)?;
        }
        apply_linear(&self.output, &h)
    }

    /// A fresh streaming state (silence before the first frame).
    pub fn state(&self) -> StackState {
        StackState {
            histories: vec![VecDeque::new(); self.blocks.len()],
        }
    }

    /// One frame `x` `(batch, input)` to `(batch, output)`, advancing `state`.
    pub fn step(&self, x: &Tensor, state: &mut StackState) -> Result<Tensor> {
        let mut h = leaky_relu(&self.input.forward(x)?)?;
        for (block, history) in self.blocks.iter().zip(state.histories.iter_mut()) {
            h = block.step(&h, history)?;
        }
        self.output.forward(&h)
    }
}
