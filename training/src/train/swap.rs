//! The swap objective (not in the paper; DESIGN.md, Model): on a pair from
//! [`crate::data::pairs`], decode (`z_t` of B's reference, `z_v` and `z_p` of A's source) and
//! compare the result with B playing the source's score. The paper's objective never asks the
//! decoder to perform a swap; this asks it directly, and it penalises a `z_v` that carries
//! A's instrument (the target is B) and a `z_t` that names a program instead of reading the
//! clip (the target's augmentation is only visible in the reference).
//!
//! The swap path is the engine's: posterior means, the variation encoder conditioned on the
//! source's own `z_t`, the source unperturbed. The term is the Gaussian negative
//! log-likelihood of the target's normalised log-magnitude, the same scale as the
//! reconstruction term.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, D};
use serde::{Deserialize, Serialize};

use super::{TrainConfig, TrainError};
use crate::data::pairs::{self, PairAudio};
use crate::model::features::{pooling_weights, FrameFeatures};
use crate::model::{ThreeFactor, LIKELIHOOD_VARIANCE, POOLING_RANGE_DB};
use crate::rng::SplitMix64;

/// The swap term's settings (`"swap"` in the training config; off by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SwapConfig {
    /// Pair folder written by `timbreswap pairs` (`None`: no swap term).
    pub pairs: Option<PathBuf>,
    /// Weight of the swap term relative to the reconstruction term.
    pub weight: f64,
    /// Pairs per step.
    pub batch: usize,
    /// Frames of the reference the timbre encoder reads (a random stretch of the clip; the
    /// plugin reads the whole clip).
    pub reference_frames: usize,
    /// Validation pairs (fixed crops).
    pub valid_pairs: usize,
    /// At most this many training pairs (0: all), for quick runs and tests.
    pub max_pairs: usize,
}

impl Default for SwapConfig {
    fn default() -> Self {
        Self {
            pairs: None,
            weight: 0.0,
            batch: 16,
            reference_frames: 160,
            valid_pairs: 64,
            max_pairs: 0,
        }
    }
}

impl SwapConfig {
    /// Whether the term is on (a pair folder and a positive weight).
    pub fn enabled(&self) -> bool {
        self.pairs.is_some() && self.weight > 0.0
    }

    /// Whether every value is the default (the config then serialises without it, so files
    /// written before the swap term read and compare as before).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the settings before a run.
    pub fn validate(&self) -> Result<(), TrainError> {
        if self.pairs.is_some() != (self.weight > 0.0) {
            return Err(TrainError::Settings(
                "swap.pairs and a positive swap.weight go together".into(),
            ));
        }
        if self.enabled() && (self.batch == 0 || self.reference_frames == 0) {
            return Err(TrainError::Settings(
                "swap.batch and swap.reference_frames must be positive".into(),
            ));
        }
        if !self.weight.is_finite() || self.weight < 0.0 {
            return Err(TrainError::Settings(format!(
                "swap.weight must be a finite number >= 0, got {}",
                self.weight
            )));
        }
        Ok(())
    }
}

/// The pairs of one split, in memory.
pub struct PairSet {
    /// Their audio (target level-matched to the source).
    pub audio: Vec<PairAudio>,
}

/// Reads the training (`valid` false) or validation pairs of `root` (at most `max` when
/// non-zero, the first by index).
pub fn load_pairs(root: &Path, valid: bool, rate: u32, max: usize) -> Result<PairSet, TrainError> {
    let records = pairs::read_pairs(root).map_err(|e| TrainError::Data(e.to_string()))?;
    let mut chosen: Vec<_> = records.into_iter().filter(|r| r.valid == valid).collect();
    if max > 0 {
        chosen.truncate(max);
    }
    if chosen.is_empty() {
        return Err(TrainError::Data(format!(
            "no {} pairs in {}",
            if valid { "validation" } else { "training" },
            root.display()
        )));
    }
    if let Some(r) = chosen.iter().find(|r| r.sample_rate != rate) {
        return Err(TrainError::Data(format!(
            "pair {} is at {} Hz, the model at {rate} Hz: render the pairs with --rate {rate}",
            r.index, r.sample_rate
        )));
    }
    let audio = chosen
        .iter()
        .map(|r| pairs::read_pair_audio(root, r).map_err(|e| TrainError::Data(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PairSet { audio })
}

/// One pair's crops: source and target at the same place, and a stretch of the reference.
pub struct SwapCrop {
    source: FrameFeatures,
    target: FrameFeatures,
    reference: FrameFeatures,
}

/// `frames` frames of `clip` from a start drawn by `rng` (frame `f` centred on sample
/// `(start + f) * hop`, the dataset's convention).
fn crop_start(clip_len: usize, frames: usize, hop: usize, rng: &mut SplitMix64) -> usize {
    let total = clip_len / hop + 1;
    if total > frames {
        rng.below((total - frames + 1) as u64) as usize
    } else {
        0
    }
}

/// Crops of `picks` (`(pair, seed)`) for `tc` (`crop_frames` of the source and the target,
/// `swap.reference_frames` of the reference), on two threads; order follows `picks`.
pub fn make_swap_crops(set: &PairSet, picks: &[(usize, u64)], tc: &TrainConfig) -> Vec<SwapCrop> {
    let (frames, reference_frames, hop) = (tc.crop_frames, tc.swap.reference_frames, tc.model.hop);
    super::crops_on_two_threads(picks, tc, |ex, rng, p| {
        let a = &set.audio[p];
        let s = crop_start(a.source.len(), frames, hop, rng);
        let r = crop_start(a.reference.len(), reference_frames, hop, rng);
        SwapCrop {
            source: ex.frames(&a.source, s * hop, frames),
            target: ex.frames(&a.target, s * hop, frames),
            reference: ex.frames(&a.reference, r * hop, reference_frames),
        }
    })
}

/// Which clip of a [`SwapCrop`].
#[derive(Clone, Copy)]
enum Part {
    Source,
    Target,
    Reference,
}

impl SwapCrop {
    fn part(&self, part: Part) -> &FrameFeatures {
        match part {
            Part::Source => &self.source,
            Part::Target => &self.target,
            Part::Reference => &self.reference,
        }
    }
}

/// `field` of `part` of every crop as a tensor `(pairs, frames, bins)`.
fn stack(
    crops: &[SwapCrop],
    part: Part,
    field: fn(&FrameFeatures) -> &[f32],
    dev: &Device,
) -> candle_core::Result<Tensor> {
    let f = crops[0].part(part);
    let mut v = Vec::with_capacity(crops.len() * f.frames * f.bins);
    for c in crops {
        v.extend_from_slice(field(c.part(part)));
    }
    Tensor::from_vec(v, (crops.len(), f.frames, f.bins), dev)
}

/// The timbre pooling weights of `part` of every crop, `(pairs, frames)`.
fn weights(crops: &[SwapCrop], part: Part, dev: &Device) -> candle_core::Result<Tensor> {
    let frames = crops[0].part(part).frames;
    let mut w = Vec::with_capacity(crops.len() * frames);
    for c in crops {
        w.extend(pooling_weights(&c.part(part).frame_db, POOLING_RANGE_DB));
    }
    Tensor::from_vec(w, (crops.len(), frames), dev)
}

/// The encoder inputs (timbre/variation, pitch) of `part` of every crop.
fn inputs(
    model: &ThreeFactor,
    crops: &[SwapCrop],
    part: Part,
) -> candle_core::Result<(Tensor, Tensor)> {
    let dev = model.device();
    model.encoder_inputs(
        &stack(crops, part, |f| &f.log_mag, dev)?,
        &stack(crops, part, |f| &f.envelope, dev)?,
        &stack(crops, part, |f| &f.fine, dev)?,
    )
}

/// The swap term of `crops`: per frame, `Σ_bins (y − x_B)² / (2σ²)` averaged over frames and
/// pairs, where `y` decodes B's reference `z_t` with the source's `z_v` and `z_p` (posterior
/// means, `z_v` conditioned on the source's own `z_t`, as the engine runs) and `x_B` is the
/// target's normalised log-magnitude.
pub fn swap_loss(model: &ThreeFactor, crops: &[SwapCrop]) -> candle_core::Result<Tensor> {
    let dev = model.device();
    let (tv_s, p_s) = inputs(model, crops, Part::Source)?;
    let (tv_r, _) = inputs(model, crops, Part::Reference)?;
    let z_ref = model
        .encode_timbre(&tv_r, &weights(crops, Part::Reference, dev)?)?
        .mean;
    let z_own = model
        .encode_timbre(&tv_s, &weights(crops, Part::Source, dev)?)?
        .mean;
    let local = model.encode_local(&tv_s, &p_s, &z_own)?;
    let y = model.decode(
        &z_ref,
        local.variation.as_ref().map(|v| &v.mean),
        &local.pitch.mean,
    )?;
    let target = model.normalise_log_mag(&stack(crops, Part::Target, |f| &f.log_mag, dev)?)?;
    (y - target)?.sqr()?.sum(D::Minus1)?.mean_all()? / (2.0 * LIKELIHOOD_VARIANCE)
}
