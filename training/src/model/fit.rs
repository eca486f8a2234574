//! A clip's timbre latent fitted to the clip itself (latent optimisation, after LORD, Gabbay &
//! Hoshen 2020): start from the timbre encoder's `z_t` and move it by Adam so that the decoder,
//! given the clip's own `z_v` and `z_p` (the encoders' posterior means, held fixed), redraws
//! the clip's frames. The encoder reads an unseen library's clip poorly; the decoder is asked
//! directly which timbre draws it. Off the audio thread; used by `timbreswap eval-transfer
//! --engine-fit-steps`.

use candle_core::{Tensor, Var};

use super::features::FeatureExtractor;
use super::ThreeFactor;
use crate::train::Adam;

/// How a clip's `z_t` is fitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimbreFit {
    /// Adam steps.
    pub steps: usize,
    /// Adam's learning rate, in `z_t` units per step.
    pub learning_rate: f64,
    /// Weight of `0.5 |z_t|^2` (the standard normal prior's negative log-density) beside the
    /// reconstruction error; 0: none.
    pub prior_weight: f64,
}

/// A fitted timbre latent.
#[derive(Debug, Clone, PartialEq)]
pub struct FittedTimbre {
    /// The fitted `z_t`.
    pub z_t: Vec<f32>,
    /// Reconstruction error with the encoder's `z_t` (mean squared error of the normalised
    /// log-magnitude over the clip's active frames).
    pub error_before: f32,
    /// The same with the fitted `z_t`.
    pub error_after: f32,
}

/// Fits the timbre latent of `audio` (mono, at the model rate): [`TimbreFit::steps`] Adam steps
/// on the mean squared error of the normalised log-magnitude, over the frames the timbre
/// encoder pools (within [`super::POOLING_RANGE_DB`] of the loudest, equally weighted), plus the prior
/// term. The clip is read at the training clips' level, as [`ThreeFactor::clip_timbre`] reads it.
pub fn fit_timbre(
    model: &ThreeFactor,
    audio: &[f32],
    fit: &TimbreFit,
) -> candle_core::Result<FittedTimbre> {
    let cfg = model.config();
    let audio = timbreswap_engine::network::at_training_level(audio);
    let f = FeatureExtractor::new(&cfg.stft(), cfg.mag_floor).clip(&audio);
    let dev = model.device();
    let super::ClipEncoding {
        z_t: start,
        local,
        weights: w,
    } = model.encode_clip(&f)?;
    let z_v = local.variation.as_ref().map(|v| v.mean.detach());
    let z_p = local.pitch.mean.detach();
    let target =
        model.normalise_log_mag(&Tensor::from_slice(&f.log_mag, (1, f.frames, f.bins), dev)?)?;
    // Per-frame weights summing to 1, spread over the bins: the weighted sum is the mean
    // squared error over the active frames.
    let frame_weights = (w.unsqueeze(2)? / f.bins as f64)?;
    let error = |z_t: &Tensor| -> candle_core::Result<Tensor> {
        let y = model.decode(z_t, z_v.as_ref(), &z_p)?;
        (y - &target)?
            .sqr()?
            .broadcast_mul(&frame_weights)?
            .sum_all()
    };
    let error_before = error(&start)?.to_scalar::<f32>()?;
    let z_t = Var::from_tensor(&start.detach())?;
    let mut adam = Adam::new(vec![("z_t".into(), z_t.clone())])?;
    for _ in 0..fit.steps {
        let mut loss = error(z_t.as_tensor())?;
        if fit.prior_weight > 0.0 {
            loss = (loss + (z_t.as_tensor().sqr()?.sum_all()? * (0.5 * fit.prior_weight))?)?;
        }
        adam.step(&loss.backward()?, fit.learning_rate, 1.0)?;
    }
    let error_after = error(z_t.as_tensor())?.to_scalar::<f32>()?;
    Ok(FittedTimbre {
        z_t: z_t.as_tensor().flatten_all()?.to_vec1::<f32>()?,
        error_before,
        error_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No steps leave the encoder's `z_t` (and its error); Adam steps lower the error of the
    /// shipped model's redrawing of a tone it never saw.
    #[test]
    fn fitting_starts_at_the_encoder_and_lowers_the_error() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let file = super::super::file::load(&root.join("assets/models/default.safetensors"))
            .expect("the built-in model");
        let model = &file.model;
        let sr = model.config().sample_rate as f32;
        // A bright tone with vibrato, 0.4 s.
        let audio: Vec<f32> = (0..(0.4 * sr) as usize)
            .map(|i| {
                let t = i as f32 / sr;
                let phase = std::f32::consts::TAU * (330.0 * t + 2.0 * (5.0 * t).sin());
                0.2 * (1..8)
                    .map(|h| (h as f32 * phase).sin() / h as f32)
                    .sum::<f32>()
            })
            .collect();
        let fit = |steps| {
            fit_timbre(
                model,
                &audio,
                &TimbreFit {
                    steps,
                    learning_rate: 0.05,
                    prior_weight: 0.0,
                },
            )
            .unwrap()
        };
        let start = fit(0);
        assert_eq!(start.z_t, model.clip_timbre(&audio).unwrap());
        assert_eq!(start.error_after, start.error_before);
        let fitted = fit(30);
        let norm = |z: &[f32]| z.iter().map(|v| v * v).sum::<f32>().sqrt();
        println!(
            "error {:.4} -> {:.4}, |z_t| {:.2} -> {:.2}",
            fitted.error_before,
            fitted.error_after,
            norm(&start.z_t),
            norm(&fitted.z_t)
        );
        assert_eq!(fitted.error_before, start.error_before);
        assert!(
            fitted.error_after < 0.9 * fitted.error_before,
            "{} -> {}",
            fitted.error_before,
            fitted.error_after
        );
    }
}
