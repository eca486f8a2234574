//! The three-factor model (after Tanaka et al.): a global timbre latent `z_t`, and per-frame
//! variation `z_v` and pitch `z_p` latents, from log-magnitude STFT frames split by cepstral
//! liftering.
//!
//! One definition, candle-transformers style: [`Config`] (serde, with `Default`) and
//! [`ThreeFactor::new`]`(cfg, vb)`; weight names come only from `vb.pp(...)`:
//!
//! - `features.{log_mag_mean, envelope_mean, fine_mean}` `[bins]` and `features.scale` `[3]`:
//!   the input normalisation measured on the training data (not trained);
//! - `timbre.frames.*` (a per-frame stack, kernel 1) and `timbre.head.*`: envelope frames ->
//!   weighted mean over the active frames -> mean and log-variance of `z_t`;
//! - `variation.*`: causal stack, `[envelope, z_t]` -> mean and log-variance of `z_v`;
//! - `pitch.*`: causal stack, fine structure -> mean and log-variance of `z_p` (with a pitch
//!   ruler, of all but its first value, then one logit per semitone bin; the ruler is their
//!   softmax's expected note);
//! - `decoder.*`: causal stack, `[z_t, z_v, z_p]` -> normalised log-magnitude.
//!
//! Each stack is [`layers::CausalStack`]. Tensors are `(batch, frames, values)`.

pub mod features;
pub mod file;
pub mod fit;
pub mod latents;
pub mod layers;
pub mod swap;

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{Linear, VarBuilder};
use layers::{CausalStack, StackState};

pub use timbreswap_engine::harmonics::HARMONIC_FLOOR;
pub use timbreswap_engine::model_config::{
    ModelConfig as Config, ModelConfigError as ConfigError, StackShape, FORMAT_VERSION,
    LOG_VAR_RANGE, MAX_TIMBRE_HARMONICS, MIDDLE_C, PITCH_BIN_LOW, POOLING_RANGE_DB,
};

/// Variance of the Gaussian likelihood on the (normalised) log-magnitude (the paper's 0.5).
pub const LIKELIHOOD_VARIANCE: f64 = 0.5;

/// The input normalisation of a model (`features.*`): per-bin means and one global scale
/// each for log-magnitude, envelope and fine structure (natural-log units).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureStats {
    /// Mean log-magnitude of each bin.
    pub log_mag_mean: Vec<f32>,
    /// Mean envelope of each bin.
    pub envelope_mean: Vec<f32>,
    /// Mean fine structure of each bin.
    pub fine_mean: Vec<f32>,
    /// Standard deviations (about the per-bin means) of log-magnitude, envelope and fine
    /// structure.
    pub scale: [f32; 3],
}

impl FeatureStats {
    /// No normalisation (zero means, unit scales), for tests.
    pub fn identity(bins: usize) -> Self {
        Self {
            log_mag_mean: vec![0.0; bins],
            envelope_mean: vec![0.0; bins],
            fine_mean: vec![0.0; bins],
            scale: [1.0; 3],
        }
    }

    /// Puts the statistics into `varmap` as the `features.*` variables, so that a model built
    /// from it uses them.
    pub fn insert_into(&self, varmap: &candle_nn::VarMap) -> Result<()> {
        let dev = Device::Cpu;
        let mut data = varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("var map poisoned".into()))?;
        for (name, values) in [
            ("log_mag_mean", &self.log_mag_mean[..]),
            ("envelope_mean", &self.envelope_mean[..]),
            ("fine_mean", &self.fine_mean[..]),
            ("scale", &self.scale[..]),
        ] {
            let t = Tensor::from_slice(values, values.len(), &dev)?;
            data.insert(
                format!("features.{name}"),
                candle_core::Var::from_tensor(&t)?,
            );
        }
        Ok(())
    }
}

/// A diagonal Gaussian posterior: mean and log-variance, same shape.
#[derive(Debug, Clone)]
pub struct Posterior {
    /// Mean.
    pub mean: Tensor,
    /// Log-variance (clamped to [`LOG_VAR_RANGE`]).
    pub log_var: Tensor,
}

impl Posterior {
    /// Splits the last dimension of `x` (`2 n` values) into mean and log-variance.
    fn from_stats(x: &Tensor) -> Result<Self> {
        let n = x.dim(D::Minus1)? / 2;
        let mean = x.narrow(D::Minus1, 0, n)?;
        let log_var = x
            .narrow(D::Minus1, n, n)?
            .clamp(LOG_VAR_RANGE.0, LOG_VAR_RANGE.1)?;
        Ok(Self { mean, log_var })
    }

    /// A reparameterised sample `mean + exp(log_var / 2) * noise` (`noise` standard normal).
    pub fn sample(&self, noise: &Tensor) -> Result<Tensor> {
        &self.mean + (&self.log_var * 0.5)?.exp()?.mul(noise)?
    }

    /// KL divergence to N(0, I), summed over the last dimension (one value per row).
    pub fn kl(&self) -> Result<Tensor> {
        let terms = ((self.mean.sqr()? + self.log_var.exp()?)? - &self.log_var)?;
        (terms - 1.0)?.sum(D::Minus1)? * 0.5
    }
}

/// The three-factor model. See the module docs for the weight names.
#[derive(Debug, Clone)]
pub struct ThreeFactor {
    cfg: Config,
    log_mag_mean: Tensor,
    envelope_mean: Tensor,
    fine_mean: Tensor,
    /// Global scales of log-magnitude, envelope and fine structure.
    scale: [f64; 3],
    lifter: Tensor,
    timbre_frames: CausalStack,
    timbre_head: Linear,
    variation: Option<CausalStack>,
    pitch: CausalStack,
    decoder: CausalStack,
}

/// Streaming state of the per-frame parts (variation, pitch, decoder).
#[derive(Debug, Clone)]
pub struct StreamState {
    variation: Option<StackState>,
    pitch: StackState,
    decoder: StackState,
}

/// Latents of one step or sequence.
#[derive(Debug, Clone)]
pub struct LocalPosteriors {
    /// Variation posterior (absent in a two-factor model).
    pub variation: Option<Posterior>,
    /// Pitch posterior (a ruler's value as the first mean, log-variance 0).
    pub pitch: Posterior,
    /// The pitch classifier's logits `(.., pitch_bins)` (a model with a ruler only).
    pub pitch_logits: Option<Tensor>,
}

/// Sequences through the encoders as the engine encodes its input
/// ([`ThreeFactor::encode_pooled`], [`ThreeFactor::encode_clip`]).
#[derive(Debug, Clone)]
pub struct ClipEncoding {
    /// Posterior mean of each sequence's own `z_t`, `(batch, z_t)`.
    pub z_t: Tensor,
    /// The per-frame posteriors given that `z_t`.
    pub local: LocalPosteriors,
    /// The timbre encoder's pooling weights, `(batch, frames)`, each row summing to 1.
    pub weights: Tensor,
}

impl ThreeFactor {
    /// Builds the model for `cfg` with weights from `vb` (a `VarMap` for training, a file's
    /// tensors for inference).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::wrap)?;
        let bins = cfg.bins();
        let fv = vb.pp("features");
        let log_mag_mean = fv.get(bins, "log_mag_mean")?;
        let envelope_mean = fv.get(bins, "envelope_mean")?;
        let fine_mean = fv.get(bins, "fine_mean")?;
        let scale_t = fv.get(3, "scale")?;
        let s = scale_t.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        if s.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(candle_core::Error::Msg(format!(
                "features.scale must be positive, got {s:?}"
            )));
        }
        let layers = cfg.layers();
        let shape = |name: &str| {
            layers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s.clone())
        };
        let timbre_frames = CausalStack::new(
            &shape("timbre.frames").expect("listed"),
            vb.pp("timbre").pp("frames"),
        )?;
        let timbre_head = layers::linear(cfg.hidden, 2 * cfg.z_t, vb.pp("timbre").pp("head"))?;
        let variation = match shape("variation") {
            Some(s) => Some(CausalStack::new(&s, vb.pp("variation"))?),
            None => None,
        };
        let pitch = CausalStack::new(&shape("pitch").expect("listed"), vb.pp("pitch"))?;
        let decoder = CausalStack::new(&shape("decoder").expect("listed"), vb.pp("decoder"))?;
        let lifter = Tensor::from_vec(
            features::lifter_matrix(&cfg.stft()),
            (bins, bins),
            vb.device(),
        )?;
        Ok(Self {
            cfg: cfg.clone(),
            log_mag_mean,
            envelope_mean,
            fine_mean,
            scale: [s[0], s[1], s[2]],
            lifter,
            timbre_frames,
            timbre_head,
            variation,
            pitch,
            decoder,
        })
    }

    /// The model's config.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.log_mag_mean.device()
    }

    /// Normalised log-magnitude: `(log_mag - log_mag_mean) / scale[0]`.
    pub fn normalise_log_mag(&self, log_mag: &Tensor) -> Result<Tensor> {
        log_mag.broadcast_sub(&self.log_mag_mean)? / self.scale[0]
    }

    /// Log-magnitude from its normalised form (inverse of [`Self::normalise_log_mag`]).
    pub fn denormalise_log_mag(&self, y: &Tensor) -> Result<Tensor> {
        (y * self.scale[0])?.broadcast_add(&self.log_mag_mean)
    }

    /// Encoder inputs `(timbre/variation input, pitch input)` from natural-log features, all
    /// `(batch, frames, bins)`. Without the cepstral split both are the normalised
    /// log-magnitude.
    pub fn encoder_inputs(
        &self,
        log_mag: &Tensor,
        envelope: &Tensor,
        fine: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        if !self.cfg.cepstrum {
            let n = self.normalise_log_mag(log_mag)?;
            return Ok((n.clone(), n));
        }
        let env = (envelope.broadcast_sub(&self.envelope_mean)? / self.scale[1])?;
        let fin = (fine.broadcast_sub(&self.fine_mean)? / self.scale[2])?;
        Ok((env, fin))
    }

    /// Encoder inputs `(timbre/variation, pitch)`, each `(1, frames, bins)`, of one clip's
    /// features.
    pub fn clip_inputs(&self, f: &features::FrameFeatures) -> Result<(Tensor, Tensor)> {
        let dev = self.device();
        let shape = (1, f.frames, f.bins);
        let log_mag = Tensor::from_slice(&f.log_mag, shape, dev)?;
        let envelope = Tensor::from_slice(&f.envelope, shape, dev)?;
        let fine = Tensor::from_slice(&f.fine, shape, dev)?;
        self.encoder_inputs(&log_mag, &envelope, &fine)
    }

    /// Posterior-mean `z_t` of a whole clip (mono, at the model rate), pooled over its frames
    /// within [`POOLING_RANGE_DB`] of the loudest.
    pub fn clip_timbre(&self, audio: &[f32]) -> Result<Vec<f32>> {
        // At the training clips' level, as the engine's `Network::clip_timbre` reads a clip.
        let audio = timbreswap_engine::network::at_training_level(audio);
        let f = features::FeatureExtractor::new(&self.cfg.stft(), self.cfg.mag_floor).clip(&audio);
        let (tv, p) = self.clip_inputs(&f)?;
        let w = features::pooling_weights(&f.frame_db, POOLING_RANGE_DB);
        let w = Tensor::from_vec(w, (1, f.frames), self.device())?;
        self.encode_timbre(&tv, &p, &w)?
            .mean
            .flatten_all()?
            .to_vec1::<f32>()
    }

    /// A clip's features (at this model's framing and floor) through the encoders: its `z_t`
    /// pooled equally over the frames within [`POOLING_RANGE_DB`] of the loudest, and the local
    /// posteriors given it.
    pub fn encode_clip(&self, f: &features::FrameFeatures) -> Result<ClipEncoding> {
        let (tv, p) = self.clip_inputs(f)?;
        let weights = Tensor::from_vec(
            features::pooling_weights(&f.frame_db, POOLING_RANGE_DB),
            (1, f.frames),
            self.device(),
        )?;
        self.encode_pooled(&tv, &p, weights)
    }

    /// Encoder inputs `tv` and `p` `(batch, frames, bins)` through the encoders: each
    /// sequence's `z_t` (posterior mean) pooled with `weights` `(batch, frames)`, and the
    /// local posteriors conditioned on it.
    pub fn encode_pooled(&self, tv: &Tensor, p: &Tensor, weights: Tensor) -> Result<ClipEncoding> {
        let z_t = self.encode_timbre(tv, p, &weights)?.mean;
        let local = self.encode_local(tv, p, &z_t)?;
        Ok(ClipEncoding {
            z_t,
            local,
            weights,
        })
    }

    /// The global scale of the log-magnitude normalisation (natural-log units per normalised
    /// unit).
    pub fn log_mag_scale(&self) -> f64 {
        self.scale[0]
    }

    /// Encoder inputs from a normalised log-magnitude `y` (the re-entry pass): the cepstral
    /// split is applied in the graph with the lifter matrix.
    pub fn encoder_inputs_from_normalised(&self, y: &Tensor) -> Result<(Tensor, Tensor)> {
        if !self.cfg.cepstrum {
            return Ok((y.clone(), y.clone()));
        }
        let log_mag = self.denormalise_log_mag(y)?;
        let (b, t, k) = log_mag.dims3()?;
        let envelope = log_mag
            .reshape((b * t, k))?
            .matmul(&self.lifter)?
            .reshape((b, t, k))?;
        let fine = (&log_mag - &envelope)?;
        self.encoder_inputs(&log_mag, &envelope, &fine)
    }

    /// Timbre posterior `(batch, z_t)` of the encoder inputs `tv` and `p` `(batch, frames,
    /// bins)` pooled with `weights` `(batch, frames)` (rows sum to 1). The timbre encoder reads
    /// `tv` and, with `timbre_harmonics`, the frames' [`Self::harmonic_levels`].
    pub fn encode_timbre(&self, tv: &Tensor, p: &Tensor, weights: &Tensor) -> Result<Posterior> {
        let input = if self.cfg.timbre_harmonics > 0 {
            Tensor::cat(&[tv, &self.harmonic_levels(tv, p)?], D::Minus1)?
        } else {
            tv.clone()
        };
        let h = self.timbre_frames.forward(&input)?;
        let pooled = h.broadcast_mul(&weights.unsqueeze(2)?)?.sum(1)?;
        Posterior::from_stats(&self.timbre_head.forward(&pooled)?)
    }

    /// The timbre encoder's harmonic input `(batch, frames, timbre_harmonics)` of the encoder
    /// inputs `tv` and `p` `(batch, frames, bins)`: the natural-log magnitude at the first
    /// `timbre_harmonics` multiples of each frame's pitch (the pitch ruler's note, its
    /// gradient stopped), read between bins linearly, minus the strongest of them, floored at
    /// [`HARMONIC_FLOOR`] (also the value of a harmonic above the top bin) and divided by the
    /// log-magnitude scale. A function of the input alone: no gradient flows through it.
    pub fn harmonic_levels(&self, tv: &Tensor, p: &Tensor) -> Result<Tensor> {
        let count = self.cfg.timbre_harmonics;
        let (b, t, bins) = tv.dims3()?;
        let dev = tv.device();
        let log_mag = if self.cfg.cepstrum {
            let envelope = (tv * self.scale[1])?.broadcast_add(&self.envelope_mean)?;
            let fine = (p * self.scale[2])?.broadcast_add(&self.fine_mean)?;
            (envelope + fine)?
        } else {
            self.denormalise_log_mag(tv)?
        }
        .detach()
        .contiguous()?;
        let (_, logits) = self.encode_pitch_with_logits(p)?;
        let logits = logits.ok_or_else(|| {
            candle_core::Error::Msg("timbre_harmonics needs a pitch ruler".into())
        })?;
        // Ruler -> MIDI note -> the fundamental's position in bins.
        let note = (self.pitch_ruler(&logits.detach())? / self.cfg.pitch_ruler_scale as f64)?
            .affine(1.0, MIDDLE_C as f64)?;
        let bins_per_hz = self.cfg.n_fft as f64 / self.cfg.sample_rate as f64;
        let fundamental =
            (((note - 69.0)? * (std::f64::consts::LN_2 / 12.0))?.exp()? * (440.0 * bins_per_hz))?;
        let multiples: Vec<f32> = (1..=count).map(|k| k as f32).collect();
        let multiples = Tensor::from_vec(multiples, (1, 1, count), dev)?;
        let position = fundamental.broadcast_mul(&multiples)?; // (b, t, count)
        let top = (bins - 1) as f64;
        let inside = position.le(top)?;
        let clamped = position.clamp(0.0, top - 1e-3)?;
        let below = clamped.floor()?;
        let frac = (&clamped - &below)?;
        let lo = below.to_dtype(DType::U32)?.contiguous()?;
        let hi = (&below + 1.0)?.to_dtype(DType::U32)?.contiguous()?;
        let v_lo = log_mag.gather(&lo, D::Minus1)?;
        let v_hi = log_mag.gather(&hi, D::Minus1)?;
        let level = ((v_lo * (1.0 - &frac)?)? + (v_hi * frac)?)?;
        // The strongest harmonic inside the spectrum is 0; the fundamental is always inside
        // (the ruler's highest note is below Nyquist at every supported rate).
        let lowest = Tensor::full(f32::MIN / 4.0, (b, t, count), dev)?;
        let strongest = inside.where_cond(&level, &lowest)?.max_keepdim(D::Minus1)?;
        let relative = level
            .broadcast_sub(&strongest)?
            .clamp(HARMONIC_FLOOR, 0.0)?;
        let floor = Tensor::full(HARMONIC_FLOOR, (b, t, count), dev)?;
        let relative = inside.where_cond(&relative, &floor)?;
        Ok((relative / self.scale[0])?.detach())
    }

    /// `z_t` `(batch, z)` repeated over `frames`.
    fn tile(z_t: &Tensor, frames: usize) -> Result<Tensor> {
        let (b, z) = z_t.dims2()?;
        z_t.unsqueeze(1)?.broadcast_as((b, frames, z))?.contiguous()
    }

    /// Variation and pitch posteriors of a whole sequence: `tv_input` and `p_input`
    /// `(batch, frames, bins)`, `z_t` `(batch, z_t)`.
    pub fn encode_local(
        &self,
        tv_input: &Tensor,
        p_input: &Tensor,
        z_t: &Tensor,
    ) -> Result<LocalPosteriors> {
        let variation = match &self.variation {
            Some(stack) => {
                let frames = tv_input.dim(1)?;
                let x = Tensor::cat(&[tv_input, &Self::tile(z_t, frames)?], D::Minus1)?;
                Some(Posterior::from_stats(&stack.forward(&x)?)?)
            }
            None => None,
        };
        let (pitch, pitch_logits) = self.encode_pitch_with_logits(p_input)?;
        Ok(LocalPosteriors {
            variation,
            pitch,
            pitch_logits,
        })
    }

    /// The pitch stack's output `out` `(.., pitch_outputs)` as the posterior of `z_p` and the
    /// classifier's logits. With `pitch_binary`, the heads' means become their signs (+-1), with
    /// the gradient of `tanh` (straight-through). With a ruler, the first mean is the ruler
    /// ([`Self::pitch_ruler`]) and its log-variance 0 (it is never sampled).
    fn pitch_output(&self, out: &Tensor) -> Result<(Posterior, Option<Tensor>)> {
        let heads = self.cfg.pitch_heads();
        let mut post = Posterior::from_stats(&out.narrow(D::Minus1, 0, 2 * heads)?)?;
        if self.cfg.pitch_binary {
            let soft = post.mean.tanh()?;
            let hard = ((post.mean.ge(0.0)?.to_dtype(DType::F32)? * 2.0)? - 1.0)?;
            post.mean = (&soft + (hard - &soft)?.detach())?;
        }
        if !self.cfg.pitch_ruler() {
            return Ok((post, None));
        }
        let logits = out.narrow(D::Minus1, 2 * heads, self.cfg.pitch_bins)?;
        let ruler = self.pitch_ruler(&logits)?;
        let mean = Tensor::cat(&[&ruler, &post.mean], D::Minus1)?;
        let log_var = Tensor::cat(&[&ruler.zeros_like()?, &post.log_var], D::Minus1)?;
        Ok((Posterior { mean, log_var }, Some(logits)))
    }

    /// The pitch ruler `(.., 1)` of classifier logits `(.., pitch_bins)`: the softmax-weighted
    /// mean of the bins' notes in semitones from middle C, times `pitch_ruler_scale` (the
    /// engine's [`timbreswap_engine::network::pitch_ruler`]).
    pub fn pitch_ruler(&self, logits: &Tensor) -> Result<Tensor> {
        let bins = self.cfg.pitch_bins;
        let offset = PITCH_BIN_LOW - MIDDLE_C;
        let notes: Vec<f32> = (0..bins).map(|k| k as f32 + offset).collect();
        let notes = Tensor::from_vec(notes, bins, logits.device())?;
        let p = candle_nn::ops::softmax_last_dim(&logits.contiguous()?)?;
        p.broadcast_mul(&notes)?
            .sum_keepdim(D::Minus1)?
            .affine(self.cfg.pitch_ruler_scale as f64, 0.0)
    }

    /// Pitch posterior of a whole sequence `p_input` `(batch, frames, bins)` (the pitch encoder
    /// depends on nothing else).
    pub fn encode_pitch(&self, p_input: &Tensor) -> Result<Posterior> {
        Ok(self.encode_pitch_with_logits(p_input)?.0)
    }

    /// [`Self::encode_pitch`] and, with a ruler, the classifier's logits `(batch, frames,
    /// pitch_bins)`.
    pub fn encode_pitch_with_logits(
        &self,
        p_input: &Tensor,
    ) -> Result<(Posterior, Option<Tensor>)> {
        self.pitch_output(&self.pitch.forward(p_input)?)
    }

    /// Normalised log-magnitude `(batch, frames, bins)` from `z_t` `(batch, z_t)` and the
    /// per-frame `z_v` (ignored by a two-factor model) and `z_p`.
    pub fn decode(&self, z_t: &Tensor, z_v: Option<&Tensor>, z_p: &Tensor) -> Result<Tensor> {
        let frames = z_p.dim(1)?;
        let tiled = Self::tile(z_t, frames)?;
        let x = match (&self.variation, z_v) {
            (Some(_), Some(z_v)) => Tensor::cat(&[&tiled, z_v, z_p], D::Minus1)?,
            (Some(_), None) => {
                return Err(candle_core::Error::Msg(
                    "a three-factor model needs z_v".into(),
                ))
            }
            (None, _) => Tensor::cat(&[&tiled, z_p], D::Minus1)?,
        };
        self.decoder.forward(&x)
    }

    /// A fresh streaming state.
    pub fn stream_state(&self) -> StreamState {
        StreamState {
            variation: self.variation.as_ref().map(CausalStack::state),
            pitch: self.pitch.state(),
            decoder: self.decoder.state(),
        }
    }

    /// One frame of [`Self::encode_local`] then [`Self::decode`] with the posterior means:
    /// `tv_input`, `p_input` `(batch, bins)`, `z_t_enc` the timbre that conditions the
    /// variation encoder and `z_t_dec` the one decoded with (the timbre swap), both
    /// `(batch, z_t)`. Returns the local posteriors and the normalised log-magnitude.
    pub fn step(
        &self,
        tv_input: &Tensor,
        p_input: &Tensor,
        z_t_enc: &Tensor,
        z_t_dec: &Tensor,
        state: &mut StreamState,
    ) -> Result<(LocalPosteriors, Tensor)> {
        let variation = match (&self.variation, state.variation.as_mut()) {
            (Some(stack), Some(st)) => {
                let x = Tensor::cat(&[tv_input, z_t_enc], D::Minus1)?;
                Some(Posterior::from_stats(&stack.step(&x, st)?)?)
            }
            _ => None,
        };
        let (pitch, pitch_logits) =
            self.pitch_output(&self.pitch.step(p_input, &mut state.pitch)?)?;
        let x = match &variation {
            Some(v) => Tensor::cat(&[z_t_dec, &v.mean, &pitch.mean], D::Minus1)?,
            None => Tensor::cat(&[z_t_dec, &pitch.mean], D::Minus1)?,
        };
        let y = self.decoder.step(&x, &mut state.decoder)?;
        Ok((
            LocalPosteriors {
                variation,
                pitch,
                pitch_logits,
            },
            y,
        ))
    }

    /// Number of trained values (the feature normalisation excluded).
    pub fn trainable_parameters(cfg: &Config) -> usize {
        cfg.trainable_parameters()
    }

    /// Multiply-adds per frame of the streaming path (variation, pitch and decoder stacks).
    pub fn macs_per_frame(cfg: &Config) -> usize {
        cfg.macs_per_frame()
    }
}
