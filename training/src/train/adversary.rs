//! An instrument classifier on `z_v`, trained against the encoders (not in the paper).
//!
//! `z_v` names the source's instrument on most test notes (docs/quality.md), so the decoder
//! can read the source's timbre from it and a new `z_t` changes little. Each step, a small
//! classifier (one hidden layer) reads every frame's `z_v` posterior mean and predicts the GM
//! program of the crop's clip; its cross-entropy is added to the loss. Between `z_v` and the
//! classifier sits a gradient reversal (Ganin & Lempitsky 2015): the forward value is `z_v`,
//! the gradient into the encoders is `-weight` times the classifier's, so the classifier learns
//! to name the instrument while the encoders learn to leave it out of `z_v`. The classifier's
//! weights live in their own variable map with their own optimiser; they are saved with the
//! checkpoint (so a run resumes bit for bit) and never exported into the model file.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Linear, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::{init_weights, trainable_vars, Adam, TrainError};
use crate::model::layers::{apply_linear, leaky_relu, linear};

/// File of the classifier's weights and optimiser moments in a checkpoint folder.
pub(super) const CHECKPOINT_FILE: &str = "adversary.safetensors";
/// The checkpoint entry of the classifier's optimiser step count.
const STEPS_KEY: &str = "steps";

/// The adversary's settings (`"adversary"` in the training config; off by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdversaryConfig {
    /// Weight of the reversed gradient into the encoders (0: off). The classifier itself
    /// always learns at the full learning rate.
    pub weight: f64,
    /// Units of the classifier's hidden layer.
    pub hidden: usize,
    /// The classifier's own learning rate (Adam, constant): it must keep up with encoders
    /// that learn to hide the instrument, so it is well above the model's.
    pub learning_rate: f64,
    /// Extra classifier-only steps per training step, on the step's `z_v` with the encoders
    /// held (before the joint step), so that the classifier the encoders answer is a fitted
    /// one rather than one that trails them.
    pub classifier_steps: usize,
}

impl Default for AdversaryConfig {
    fn default() -> Self {
        Self {
            weight: 0.0,
            hidden: 128,
            learning_rate: 3e-3,
            classifier_steps: 0,
        }
    }
}

impl AdversaryConfig {
    /// Whether the adversary is on.
    pub fn enabled(&self) -> bool {
        self.weight > 0.0
    }

    /// Whether every setting is the default (the config file then leaves the section out).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the settings against the model (`variation`: whether it has a `z_v`).
    pub fn validate(&self, variation: bool) -> Result<(), TrainError> {
        if !self.weight.is_finite() || self.weight < 0.0 {
            return Err(TrainError::Data(format!(
                "adversary.weight must be a finite number >= 0, not {}",
                self.weight
            )));
        }
        if self.enabled() && !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(TrainError::Data(format!(
                "adversary.learning_rate must be a positive number, not {}",
                self.learning_rate
            )));
        }
        if self.classifier_steps > 100 {
            return Err(TrainError::Data(format!(
                "adversary.classifier_steps must be 0..=100, not {}",
                self.classifier_steps
            )));
        }
        if self.enabled() && (self.hidden == 0 || self.hidden > 4096) {
            return Err(TrainError::Data(format!(
                "adversary.hidden must be 1..=4096, not {}",
                self.hidden
            )));
        }
        if self.enabled() && !variation {
            return Err(TrainError::Data(
                "adversary needs a model with a variation latent (\"variation\": true)".into(),
            ));
        }
        Ok(())
    }
}

/// The instrument classifier on `z_v` with its optimiser.
pub(super) struct Adversary {
    varmap: VarMap,
    hidden: Linear,
    output: Linear,
    adam: Adam,
    /// Class of each GM program (`None`: no training clip plays it).
    class_of: [Option<u32>; 128],
}

impl Adversary {
    /// A classifier from `z_v` values to the `programs` present in the training set, weights
    /// seeded by `seed`.
    pub fn new(
        cfg: &AdversaryConfig,
        z_v: usize,
        programs: impl IntoIterator<Item = u8>,
        seed: u64,
        dev: &Device,
    ) -> Result<Self, TrainError> {
        let mut class_of = [None; 128];
        let mut classes = 0u32;
        for p in programs {
            let slot = &mut class_of[usize::from(p & 0x7F)];
            if slot.is_none() {
                *slot = Some(classes);
                classes += 1;
            }
        }
        if classes < 2 {
            return Err(TrainError::Data(
                "adversary needs training clips of two or more programs".into(),
            ));
        }
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, dev).pp("adversary");
        let hidden = linear(z_v, cfg.hidden, vb.pp("hidden"))?;
        let output = linear(cfg.hidden, classes as usize, vb.pp("output"))?;
        let vars = trainable_vars(&varmap);
        init_weights(&vars, seed)?;
        let adam = Adam::new(vars)?;
        Ok(Self {
            varmap,
            hidden,
            output,
            adam,
            class_of,
        })
    }

    /// The class of each program, `(crops,)` u32 (a program no training clip plays, which a
    /// validation or pair clip may, is class 0 with no weight: see [`Adversary::known`]).
    pub fn labels(&self, programs: &[u8], dev: &Device) -> candle_core::Result<Tensor> {
        let v: Vec<u32> = programs
            .iter()
            .map(|&p| self.class_of[usize::from(p & 0x7F)].unwrap_or(0))
            .collect();
        Tensor::from_vec(v, programs.len(), dev)
    }

    /// 1 for each crop whose program has a class, else 0.
    pub fn known(&self, programs: &[u8]) -> Vec<f32> {
        programs
            .iter()
            .map(|&p| f32::from(u8::from(self.class_of[usize::from(p & 0x7F)].is_some())))
            .collect()
    }

    /// The classifier's cross-entropy (nats per weighted frame) on `z_v` `(crops, frames,
    /// z_v)`, each dimension standardised over the batch, against each crop's `labels`, frames weighted by `weights` `(crops, frames)`
    /// times `known` per crop; the gradient into `z_v` is reversed and scaled by
    /// `reversal` ([`reverse_gradient`]).
    pub fn loss(
        &self,
        z_v: &Tensor,
        labels: &Tensor,
        weights: &Tensor,
        known: &[f32],
        reversal: f64,
    ) -> candle_core::Result<Tensor> {
        let (b, t, _) = z_v.dims3()?;
        let h = leaky_relu(&apply_linear(
            &self.hidden,
            &standardised(&reverse_gradient(z_v, reversal)?)?,
        )?)?;
        let logits = apply_linear(&self.output, &h)?;
        let known = Tensor::from_slice(known, (b, 1), z_v.device())?;
        let weights = weights.broadcast_mul(&known)?;
        frame_cross_entropy(&logits, labels, &weights, t)
    }

    /// One optimiser step of the classifier from `grads` (the whole loss's backward pass) at
    /// learning rate `lr`.
    pub fn step(
        &mut self,
        grads: &candle_core::backprop::GradStore,
        lr: f64,
    ) -> candle_core::Result<()> {
        self.adam.step(grads, lr, 1.0)
    }

    /// `steps` classifier-only steps at learning rate `lr` on `z_v` with the encoders held
    /// (its gradient does not leave the classifier); arguments as for [`Adversary::loss`].
    pub fn fit(
        &mut self,
        z_v: &Tensor,
        labels: &Tensor,
        weights: &Tensor,
        known: &[f32],
        steps: usize,
        lr: f64,
    ) -> candle_core::Result<()> {
        let held = z_v.detach();
        for _ in 0..steps {
            let grads = self.loss(&held, labels, weights, known, 0.0)?.backward()?;
            self.step(&grads, lr)?;
        }
        Ok(())
    }

    /// Writes the weights and optimiser moments into the checkpoint folder `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), TrainError> {
        let mut tensors = self.adam.tensors();
        // Its own step count: with classifier-only steps it runs ahead of the model's.
        let steps = Tensor::new(&[self.adam.t as f64], &Device::Cpu)?;
        tensors.insert(STEPS_KEY.into(), steps);
        let data = self.varmap.data().lock().expect("var map");
        for (name, var) in data.iter() {
            tensors.insert(format!("w.{name}"), var.as_tensor().clone());
        }
        drop(data);
        candle_core::safetensors::save(&tensors, dir.join(CHECKPOINT_FILE))?;
        Ok(())
    }

    /// Reads what [`Adversary::save`] wrote (weights, moments and the step count).
    pub fn restore(&mut self, dir: &Path, dev: &Device) -> Result<(), TrainError> {
        let tensors: HashMap<String, Tensor> =
            candle_core::safetensors::load(dir.join(CHECKPOINT_FILE), dev)
                .map_err(|e| TrainError::Resume(format!("{CHECKPOINT_FILE}: {e}")))?;
        let t = tensors
            .get(STEPS_KEY)
            .and_then(|s| s.to_vec1::<f64>().ok())
            .and_then(|s| s.first().copied())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| TrainError::Resume(format!("{CHECKPOINT_FILE} lacks its step count")))?
            as u64;
        let data = self.varmap.data().lock().expect("var map");
        for (name, var) in data.iter() {
            let w = tensors
                .get(&format!("w.{name}"))
                .filter(|w| w.dims() == var.dims())
                .ok_or_else(|| TrainError::Resume(format!("{CHECKPOINT_FILE} lacks {name}")))?;
            var.set(w)?;
        }
        drop(data);
        self.adam.restore(&tensors, t)
    }
}

/// `x` `(crops, frames, dims)` with each dimension standardised over the batch's frames (the
/// mean and spread are constants to the gradient): the classifier reads `z_v` the way the
/// evaluation's standardised k-NN does, and shrinking `z_v` does not hide anything from it.
fn standardised(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, t, d) = x.dims3()?;
    let rows = x.reshape((b * t, d))?.detach();
    let mean = rows.mean_keepdim(0)?;
    let spread = (rows.broadcast_sub(&mean)?.sqr()?.mean_keepdim(0)? + 1e-12)?.sqrt()?;
    x.reshape((b * t, d))?
        .broadcast_sub(&mean)?
        .broadcast_div(&spread)?
        .reshape((b, t, d))
}

/// `x` in the forward pass; `-scale` times the incoming gradient in the backward pass:
/// `(1 + scale) * stop_gradient(x) - scale * x`.
pub(super) fn reverse_gradient(x: &Tensor, scale: f64) -> candle_core::Result<Tensor> {
    (x.detach() * (1.0 + scale))? - (x * scale)?
}

/// Mean cross-entropy of per-frame `logits` `(crops, frames, classes)` against one label per
/// crop, frames weighted by `weights` `(crops, frames)`: `sum w * CE / sum w` (0 when every
/// weight is 0).
fn frame_cross_entropy(
    logits: &Tensor,
    labels: &Tensor,
    weights: &Tensor,
    frames: usize,
) -> candle_core::Result<Tensor> {
    let (b, _, _) = logits.dims3()?;
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let index = labels
        .reshape((b, 1, 1))?
        .broadcast_as((b, frames, 1))?
        .contiguous()?;
    let picked = log_p.gather(&index, D::Minus1)?.squeeze(D::Minus1)?;
    let total = weights.sum_all()?;
    let sum = (picked.neg()? * weights)?.sum_all()?;
    sum / (total.to_scalar::<f32>()? as f64).max(1e-12)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(t: &Tensor) -> f64 {
        t.to_scalar::<f32>().unwrap() as f64
    }

    /// The cross-entropy is the weighted mean of `-ln softmax(logits)[label]`, computed
    /// directly in f64 from the same numbers; a crop of an unknown program weighs nothing.
    #[test]
    fn frame_cross_entropy_matches_a_direct_computation() {
        let dev = Device::Cpu;
        let (b, t, c) = (3, 4, 5);
        let logits: Vec<f32> = (0..b * t * c)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3)
            .collect();
        let labels = [2u32, 0, 4];
        let weights: Vec<f32> = (0..b * t).map(|i| (i % 3) as f32 * 0.5).collect();
        let got = value(
            &frame_cross_entropy(
                &Tensor::from_slice(&logits, (b, t, c), &dev).unwrap(),
                &Tensor::from_slice(&labels, b, &dev).unwrap(),
                &Tensor::from_slice(&weights, (b, t), &dev).unwrap(),
                t,
            )
            .unwrap(),
        );
        let (mut sum, mut total) = (0.0f64, 0.0f64);
        for i in 0..b {
            for j in 0..t {
                let row = &logits[(i * t + j) * c..(i * t + j + 1) * c];
                let max = row.iter().fold(f32::MIN, |a, &x| a.max(x)) as f64;
                let z: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
                let ce = -(row[labels[i] as usize] as f64 - max - z.ln());
                sum += weights[i * t + j] as f64 * ce;
                total += weights[i * t + j] as f64;
            }
        }
        assert!(
            (got - sum / total).abs() < 1e-5,
            "{got} against {}",
            sum / total
        );
    }

    /// The reversal leaves the value alone and turns the gradient: d/dx of
    /// `sum(reverse(x, s)^2)` is `-s * 2x`.
    #[test]
    fn the_reversal_passes_the_value_and_turns_the_gradient() {
        let dev = Device::Cpu;
        let x = candle_core::Var::from_slice(&[0.5f32, -1.5, 2.0], 3, &dev).unwrap();
        let y = reverse_gradient(x.as_tensor(), 3.0).unwrap();
        let values = y.to_vec1::<f32>().unwrap();
        assert_eq!(values, vec![0.5, -1.5, 2.0]);
        let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let g = grads.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        for (g, x) in g.iter().zip([0.5f32, -1.5, 2.0]) {
            assert!((g - (-3.0 * 2.0 * x)).abs() < 1e-5, "{g} for {x}");
        }
    }

    /// Trained on `z_v` values that carry the class, the classifier's cross-entropy falls
    /// below chance (ln 3), while the reversed gradient pushes those values apart from what
    /// names the class: one step moves `z_v` so that the cross-entropy rises.
    #[test]
    fn the_classifier_learns_and_the_encoder_is_pushed_away() {
        let dev = Device::Cpu;
        let cfg = AdversaryConfig {
            weight: 1.0,
            hidden: 16,
            ..AdversaryConfig::default()
        };
        let mut adv = Adversary::new(&cfg, 4, [10u8, 20, 30], 7, &dev).unwrap();
        let programs = [10u8, 20, 30, 10, 20, 30];
        let labels = adv.labels(&programs, &dev).unwrap();
        let known = adv.known(&programs);
        let (b, t) = (programs.len(), 5);
        let mut z: Vec<f32> = Vec::new();
        for &p in &programs {
            for j in 0..t {
                let c = f32::from(p) / 10.0 - 2.0;
                z.extend([c, -c, 0.1 * j as f32, 0.3]);
            }
        }
        let weights = Tensor::ones((b, t), DType::F32, &dev).unwrap();
        let z_var = candle_core::Var::from_slice(&z, (b, t, 4), &dev).unwrap();
        let first = value(
            &adv.loss(z_var.as_tensor(), &labels, &weights, &known, 1.0)
                .unwrap(),
        );
        // Fitted on the values as they are (no gradient leaves the classifier).
        adv.fit(z_var.as_tensor(), &labels, &weights, &known, 200, 1e-2)
            .unwrap();
        let trained = value(
            &adv.loss(z_var.as_tensor(), &labels, &weights, &known, 1.0)
                .unwrap(),
        );
        assert!(
            trained < 0.2 * (3f64).ln() && trained < first,
            "{first} -> {trained}"
        );
        // Gradient descent on z through the reversal raises the classifier's loss.
        let loss = adv
            .loss(z_var.as_tensor(), &labels, &weights, &known, 1.0)
            .unwrap();
        let g = loss.backward().unwrap();
        let moved =
            (z_var.as_tensor() - (g.get(z_var.as_tensor()).unwrap() * 0.5).unwrap()).unwrap();
        let after = value(&adv.loss(&moved, &labels, &weights, &known, 1.0).unwrap());
        assert!(after > trained, "{trained} -> {after}");
        // Unknown programs weigh nothing, and a checkpoint restores the classifier exactly.
        assert_eq!(adv.known(&[10, 99]), vec![1.0, 0.0]);
        let dir = std::env::temp_dir().join(format!("ts-adversary-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        adv.save(&dir).unwrap();
        let mut again = Adversary::new(&cfg, 4, [10u8, 20, 30], 99, &dev).unwrap();
        again.restore(&dir, &dev).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(again.adam.t, adv.adam.t);
        let restored = value(
            &again
                .loss(z_var.as_tensor(), &labels, &weights, &known, 1.0)
                .unwrap(),
        );
        assert_eq!(restored, trained);
    }
}
