//! One pass of the model over a batch and its loss terms: the reconstruction and KL terms,
//! pitch invariance and contrast, the pitch classifier.

use super::*;

/// Loss terms of one pass (means per frame; `kl_t` per crop divided by its frames).
pub(super) struct PassLoss {
    pub(super) recon: Tensor,
    pub(super) kl_t: Tensor,
    pub(super) kl_v: Option<Tensor>,
    pub(super) kl_p: Tensor,
    /// Posterior mean of `z_p` `(batch, frames, z_p)`.
    pub(super) pitch_mean: Tensor,
    /// Posterior mean of `z_v` `(batch, frames, z_v)` (a three-factor model only).
    pub(super) variation_mean: Option<Tensor>,
    /// The pitch classifier's logits (a model with a ruler only).
    pub(super) pitch_logits: Option<Tensor>,
    pub(super) output: Tensor,
}

impl PassLoss {
    /// The KL terms, `z_v`'s weighted by `variation_weight` and `z_p`'s by `pitch_weight`.
    pub(super) fn kl(
        &self,
        variation_weight: f64,
        pitch_weight: f64,
    ) -> candle_core::Result<Tensor> {
        let mut k = (&self.kl_t + (&self.kl_p * pitch_weight)?)?;
        if let Some(v) = &self.kl_v {
            k = (k + (v * variation_weight)?)?;
        }
        Ok(k)
    }
}

/// One pass of the network: encoders, sampling (`noise` seeds it; `None` takes the means),
/// decoder, loss against `target` (normalised log-magnitude).
///
/// `p_timbre` is the pitch input of the crop `tv_in` comes from: the timbre encoder reads the
/// harmonic levels of that crop (`timbre_harmonics`), while `p_in` (the pitch encoder's input)
/// may come from another version of it (the timbre-distorted crop).
pub(super) fn run_pass(
    model: &ThreeFactor,
    (tv_in, p_timbre): (&Tensor, &Tensor),
    p_in: &Tensor,
    weights: &Tensor,
    target: &Tensor,
    mut noise: Option<&mut SplitMix64>,
) -> candle_core::Result<PassLoss> {
    let t = target.dim(1)?;
    let dev = target.device();
    let timbre = model.encode_timbre(tv_in, p_timbre, weights)?;
    // A reparameterised sample when `noise` is given, the mean otherwise.
    let mut sample = |post: &crate::model::Posterior| -> candle_core::Result<Tensor> {
        match noise.as_deref_mut() {
            Some(rng) => {
                let eps = normals(rng, post.mean.elem_count());
                post.sample(&Tensor::from_vec(eps, post.mean.dims(), dev)?)
            }
            None => Ok(post.mean.clone()),
        }
    };
    let z_t = sample(&timbre)?;
    let local = model.encode_local(tv_in, p_in, &z_t)?;
    let z_v = match &local.variation {
        Some(v) => Some(sample(v)?),
        None => None,
    };
    // A binary code is deterministic: no sample, no KL term; so is a pitch ruler.
    let binary = model.config().pitch_binary;
    let heads = model.config().pitch_heads();
    let ruler = model.config().z_p - heads;
    let gaussian = Posterior {
        mean: local.pitch.mean.narrow(D::Minus1, ruler, heads)?,
        log_var: local.pitch.log_var.narrow(D::Minus1, ruler, heads)?,
    };
    let z_p = if binary {
        local.pitch.mean.clone()
    } else if ruler > 0 {
        Tensor::cat(
            &[
                &local.pitch.mean.narrow(D::Minus1, 0, ruler)?,
                &sample(&gaussian)?,
            ],
            D::Minus1,
        )?
    } else {
        sample(&gaussian)?
    };
    let pitch_mean = local.pitch.mean.clone();
    let output = model.decode(&z_t, z_v.as_ref(), &z_p)?;
    let recon =
        ((&output - target)?.sqr()?.sum(D::Minus1)?.mean_all()? / (2.0 * LIKELIHOOD_VARIANCE))?;
    let kl_t = (timbre.kl()?.mean_all()? / t as f64)?;
    let kl_v = match &local.variation {
        Some(v) => Some(v.kl()?.mean_all()?),
        None => None,
    };
    let kl_p = if binary {
        Tensor::zeros((), DType::F32, dev)?
    } else {
        gaussian.kl()?.mean_all()?
    };
    Ok(PassLoss {
        recon,
        kl_t,
        kl_v,
        kl_p,
        pitch_mean,
        variation_mean: local.variation.as_ref().map(|v| v.mean.clone()),
        pitch_logits: local.pitch_logits.clone(),
        output,
    })
}

/// The pitch-invariance term: the weighted mean squared distance between `clean` and
/// `distorted` posterior means `(batch, frames, z_p)`, divided by the weighted spread (mean
/// squared distance to their weighted mean) of the clean means; `weights` `(batch, frames)`,
/// rows summing to 1. Scale-free, so shrinking the latent does not lower it.
pub(super) fn pitch_invariance(
    clean: &Tensor,
    distorted: &Tensor,
    weights: &Tensor,
) -> candle_core::Result<Tensor> {
    let b = clean.dim(0)? as f64;
    let w = weights.unsqueeze(2)?;
    let gap = (clean - distorted)?
        .sqr()?
        .broadcast_mul(&w)?
        .sum_all()?
        .affine(1.0 / b, 0.0)?;
    let centre = (clean.broadcast_mul(&w)?.sum((0, 1))? / b)?;
    let spread = clean
        .broadcast_sub(&centre)?
        .sqr()?
        .broadcast_mul(&w)?
        .sum_all()?
        .affine(1.0 / b, 1e-6)?;
    gap / spread
}

/// The pitch-contrast term: the weighted mean squared distance between `clean` and `distorted`
/// posterior means `(batch, frames, z_p)` (per crop, then over crops), divided by that between
/// `clean` and `shifted` over the crops whose `moved` entry is 1; `weights` `(batch, frames)`,
/// rows summing to 1. Scale-free; 0 when no crop moved (nothing to compare against).
pub(super) fn pitch_contrast(
    clean: &Tensor,
    distorted: &Tensor,
    shifted: &Tensor,
    weights: &Tensor,
    moved: &[f32],
) -> candle_core::Result<Tensor> {
    let n_moved: f32 = moved.iter().sum();
    if n_moved == 0.0 {
        return Tensor::zeros((), DType::F32, clean.device());
    }
    let w = weights.unsqueeze(2)?;
    let per_crop = |other: &Tensor| -> candle_core::Result<Tensor> {
        (clean - other)?.sqr()?.broadcast_mul(&w)?.sum((1, 2))
    };
    let same = per_crop(distorted)?.mean_all()?;
    let mask = Tensor::from_slice(moved, moved.len(), clean.device())?;
    let apart = (per_crop(shifted)? * mask)?
        .sum_all()?
        .affine(1.0 / n_moved as f64, 1e-6)?;
    same / apart
}

/// Spread (standard deviation) of the pitch classifier's target around pYIN's pitch, in
/// semitones (bins).
pub const PITCH_TARGET_SPREAD: f64 = 0.5;

/// The pitch classifier's cross-entropy: logits `(batch, frames, bins)` against a Gaussian of
/// [`PITCH_TARGET_SPREAD`] bins around `target` `(batch, frames)` (a fractional bin index),
/// normalised over the bins; the `weights`-weighted sum over frames `(batch, frames)`, then the
/// mean over crops.
pub(super) fn pitch_classifier(
    logits: &Tensor,
    target: &Tensor,
    weights: &Tensor,
) -> candle_core::Result<Tensor> {
    let (b, _, bins) = logits.dims3()?;
    let index: Vec<f32> = (0..bins).map(|k| k as f32).collect();
    let index = Tensor::from_vec(index, (1, 1, bins), logits.device())?;
    let distance = index.broadcast_sub(&target.unsqueeze(2)?)?;
    let density =
        (distance.sqr()? * (-0.5 / (PITCH_TARGET_SPREAD * PITCH_TARGET_SPREAD)))?.exp()?;
    let q = density.broadcast_div(&density.sum_keepdim(2)?)?;
    let log_p = candle_nn::ops::log_softmax(logits, 2)?;
    let ce = (q * log_p)?.sum(2)?.neg()?;
    (ce * weights)?.sum_all()? / b as f64
}
