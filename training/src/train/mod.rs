//! Training of the three-factor model (`timbreswap train`).
//!
//! Each step draws one random crop of `crop_frames` frames from each of `batch` training clips
//! and perturbs it (training only): a random pitch shift for the timbre and variation encoders,
//! a random two-effect timbre distortion for the pitch encoder. The loss per frame is the
//! Gaussian negative log-likelihood (variance [`LIKELIHOOD_VARIANCE`]) of the clean,
//! normalised log-magnitude plus `beta` times the KL divergences of the three posteriors to
//! N(0, I) (`z_t`'s counted once per crop; `z_v`'s and `z_p`'s scaled by their configured
//! weights); `beta` follows a cyclical schedule, a linear ramp
//! from 0 to 1 over the first `kl_ramp` of every `kl_cycle_epochs` epochs, then 1. With
//! re-entry the same network is applied a second time to the first reconstruction (its
//! cepstral split taken in the graph) and that pass's loss is added (Tanaka et al.). With
//! `pitch_invariance_weight` above 0 the pitch encoder also encodes the clean crop and the loss
//! adds the gap between its two answers; with `pitch_contrast_weight` above 0 it also encodes
//! the pitch-shifted crop and the loss adds the gap to the distorted crop's answer over the gap
//! to the shifted crop's; a model with a pitch ruler adds its classifier's cross-entropy
//! against pYIN's pitch for the clean, distorted and shifted crops (none of the three is in
//! the paper; see [`TrainConfig`]). With a `swap` section ([`SwapConfig`], [`swap`]) each step
//! also decodes paired renders (one score as instrument A and as B) with the reference's
//! timbre and scores the result against B; with a `cross_library` section
//! ([`CrossLibraryConfig`], [`cross_library`]) each step also encodes one clip of a few
//! programs from every training library that has them and asks for nearby `z_t` within a
//! program; `init_from` starts from a model file's weights.
//!
//! Everything random is a pure function of the seed, the epoch and the step (crops,
//! perturbations, reparameterisation noise, initial weights), so a run resumed from its
//! checkpoint (written after every epoch) ends bit-identical to an uninterrupted one. That is
//! also why each step's crops can be made on another thread while the step before trains, and
//! the pitch classifier's targets measured once per clip (`crops.rs`).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

pub mod adversary;
mod crops;
pub mod cross_library;
pub mod swap;

pub use adversary::AdversaryConfig;
pub use cross_library::CrossLibraryConfig;
pub use swap::SwapConfig;

use crate::manifest::{self, ClipRecord, Set, Split};
use crate::model::features::{pooling_weights, FeatureExtractor, FrameFeatures};
use crate::model::file::{self, MapInstrument, TimbreMap};
use crate::model::{
    Config, FeatureStats, Posterior, ThreeFactor, LIKELIHOOD_VARIANCE, MIDDLE_C, PITCH_BIN_LOW,
    POOLING_RANGE_DB,
};
use crate::rng::{mix64, normals, SplitMix64};
use adversary::Adversary;
use crops::{make_crops, one_ahead, Crop, PitchCache};
use cross_library::{cross_library_loss, make_program_crops, ProgramIndex};

/// Files of a run folder.
pub const LOG_FILE: &str = "train.jsonl";
/// Loss-curve picture.
pub const PLOT_FILE: &str = "loss.png";
/// Checkpoint folder (weights, optimiser, state), rewritten after every epoch.
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// Weights of the best validation epoch so far.
pub const BEST_FILE: &str = "best-weights.safetensors";
/// The exported model (best validation epoch).
pub const MODEL_FILE: &str = "model.safetensors";

/// Everything that fixes a training run; stored in its checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// The model.
    pub model: Config,
    /// Epochs to train; one epoch is one crop of every training clip.
    pub epochs: usize,
    /// Crops per step.
    pub batch: usize,
    /// Frames per crop.
    pub crop_frames: usize,
    /// Adam learning rate at epoch 0.
    pub learning_rate: f64,
    /// Learning-rate factor per epoch (exponential decay).
    pub lr_decay: f64,
    /// Epochs per KL annealing cycle.
    pub kl_cycle_epochs: usize,
    /// Share of a cycle over which the KL weight ramps from 0 to 1.
    pub kl_ramp: f64,
    /// Weight of `z_v`'s KL term relative to the other two (1: the paper's objective; above 1
    /// limits what the variation latent may carry, against timbre and pitch leaking into it).
    /// Validation always reports the plain negative ELBO.
    pub kl_variation_weight: f64,
    /// Weight of `z_p`'s KL term relative to `z_t`'s (1: the paper's objective; above 1 narrows
    /// the pitch latent, so the decoder has less room to take timbre cues of the fine structure
    /// from it). Validation always reports the plain negative ELBO.
    pub kl_pitch_weight: f64,
    /// Weight of the pitch-invariance term (0: the paper's objective): the squared distance
    /// between the posterior means of `z_p` of the clean and of the distorted crop, relative
    /// to the spread of the clean means over the batch (both over active frames). It asks the
    /// pitch encoder for the same point whatever the timbre, where the paper only hides the
    /// timbre from it; needs the timbre distortion. Validation reports the plain negative ELBO.
    pub pitch_invariance_weight: f64,
    /// Weight of the pitch-contrast term (0: the paper's objective): the squared distance
    /// between the `z_p` means of the clean and of the distorted crop (same notes, another
    /// timbre) over the squared distance between those of the clean and of the pitch-shifted
    /// crop (same timbre, other notes), both over active frames, the second over the crops
    /// shifted by at least one semitone. Where the invariance term measures the gap against the
    /// spread of the batch, which rewards codes that tell instruments apart as much as notes,
    /// this one rewards telling notes apart only. Needs the timbre distortion and the pitch
    /// shift. Validation reports the plain negative ELBO.
    pub pitch_contrast_weight: f64,
    /// Weight of the pitch classifier's cross-entropy, which a model with a pitch ruler
    /// (`pitch_bins` above 0) needs and only it allows. Its targets come from the audio, not
    /// from the dataset's labels: pYIN's pitch of every fourth frame of the clip, measured once
    /// on the whole clip (frames it finds unvoiced are left out), spread over the semitone bins
    /// as a Gaussian of [`PITCH_TARGET_SPREAD`] semitones. The classifier answers for the clean crop, the distorted crop (the same
    /// target: the ruler ignores timbre) and the pitch-shifted crop (the target moved by the
    /// shift: the ruler follows pitch), the pooling-weighted mean over frames, then crops, of
    /// the three. Needs the pitch shift and the timbre distortion. Validation reports the plain
    /// negative ELBO.
    pub pitch_classifier_weight: f64,
    /// Largest global gradient norm (larger gradients are scaled down).
    pub grad_clip: f64,
    /// Seed of every random draw.
    pub seed: u64,
    /// Random pitch shift of the timbre/variation encoder input (`--no-pitch-shift`).
    pub pitch_shift: bool,
    /// Random timbre distortion of the pitch encoder input (`--no-timbre-distortion`).
    pub timbre_distortion: bool,
    /// After the timbre distortion, also a random instrument body ([`crate::perturb::Body`]) on the
    /// pitch encoder input, giving every partial its own random level (off: the paper's
    /// distortion). It hides the partial-by-partial balance, which the cepstral envelope is too
    /// smooth to carry, from the pitch encoder; needs the timbre distortion.
    pub body_filter: bool,
    /// Re-entry training (`--no-reentry`).
    pub reentry: bool,
    /// Dataset sets trained on.
    pub sets: Vec<Set>,
    /// Validation crops (fixed, unperturbed).
    pub valid_crops: usize,
    /// Training clips measured for the input normalisation.
    pub norm_clips: usize,
    /// At most this many training clips (0: all), for quick runs and tests.
    pub max_clips: usize,
    /// The swap term on paired renders ([`SwapConfig`]; off by default).
    #[serde(skip_serializing_if = "SwapConfig::is_default")]
    pub swap: SwapConfig,
    /// The cross-library timbre term ([`CrossLibraryConfig`]; off by default; needs
    /// `libraries`).
    #[serde(skip_serializing_if = "CrossLibraryConfig::is_default")]
    pub cross_library: CrossLibraryConfig,
    /// An instrument classifier on `z_v` trained against the encoders ([`AdversaryConfig`];
    /// off by default).
    #[serde(skip_serializing_if = "AdversaryConfig::is_default")]
    pub adversary: AdversaryConfig,
    /// More dataset folders to train on beside `--data` (each a `timbreswap dataset` render of
    /// another training library, e.g. the csound GM bank and the OPL3 FM bank): their clips
    /// join `--data`'s, split for split, and the timbre map's instruments take the clips of
    /// every library (by GM program). A relative path is taken from the working directory.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub libraries: Vec<PathBuf>,
    /// Start from this model file's weights and input normalisation instead of seeded
    /// random weights (fine-tuning; its config must equal `model`; a relative path is taken
    /// from the working directory). `None`: from scratch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: Config::default(),
            epochs: 30,
            batch: 32,
            crop_frames: 80,
            learning_rate: 1e-3,
            lr_decay: 0.95,
            kl_cycle_epochs: 10,
            kl_ramp: 0.5,
            kl_variation_weight: 1.0,
            kl_pitch_weight: 1.0,
            pitch_invariance_weight: 0.0,
            pitch_contrast_weight: 0.0,
            pitch_classifier_weight: 0.0,
            grad_clip: 10.0,
            seed: 1,
            pitch_shift: true,
            timbre_distortion: true,
            body_filter: false,
            reentry: true,
            sets: vec![Set::Notes, Set::Phrases],
            valid_crops: 256,
            norm_clips: 300,
            max_clips: 0,
            swap: SwapConfig::default(),
            cross_library: CrossLibraryConfig::default(),
            adversary: AdversaryConfig::default(),
            libraries: Vec::new(),
            init_from: None,
        }
    }
}

impl TrainConfig {
    /// The KL weight at `epoch` plus `fraction` (0..1) of it.
    pub fn kl_weight(&self, epoch: usize, fraction: f64) -> f64 {
        let cycle = self.kl_cycle_epochs.max(1) as f64;
        let pos = ((epoch as f64 + fraction) % cycle) / cycle;
        if self.kl_ramp <= 0.0 {
            1.0
        } else {
            (pos / self.kl_ramp).min(1.0)
        }
    }

    /// The learning rate during `epoch`.
    pub fn lr(&self, epoch: usize) -> f64 {
        self.learning_rate * self.lr_decay.powi(epoch as i32)
    }

    /// The dataset folders a run with `data` reads: `data`, then [`Self::libraries`].
    pub fn folders<'a>(&'a self, data: &'a Path) -> Vec<&'a Path> {
        std::iter::once(data)
            .chain(self.libraries.iter().map(PathBuf::as_path))
            .collect()
    }

    /// The same run with a different epoch count (what `--resume` may change).
    fn same_run(&self, other: &TrainConfig) -> bool {
        let mut a = self.clone();
        a.epochs = other.epochs;
        a == *other
    }
}

/// Why training could not run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The dataset is unusable.
    #[error("dataset: {0}")]
    Data(String),
    /// The model config is unusable.
    #[error(transparent)]
    Config(#[from] crate::model::ConfigError),
    /// A training setting is unusable (the swap term's, or `init_from`'s file).
    #[error("training config: {0}")]
    Settings(String),
    /// The checkpoint cannot be resumed.
    #[error("cannot resume: {0}")]
    Resume(String),
    /// A tensor operation failed.
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
    /// Exporting failed.
    #[error(transparent)]
    Export(#[from] file::ModelFileError),
    /// The loss is no longer finite.
    #[error("loss became {0} at step {1}; lower the learning rate")]
    Diverged(f64, u64),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The clips of one split, in memory.
pub struct ClipSet {
    /// Their records.
    pub records: Vec<ClipRecord>,
    /// Their audio, mono, at the model rate.
    pub audio: Vec<Vec<f32>>,
    /// The dataset folder each came from (its index in the folders read).
    pub folder: Vec<usize>,
}

/// Reads the clips of `split` in `sets` from the dataset `folders` (in order; at most `max`
/// of them all when non-zero, a seeded choice).
pub fn load_clips(
    folders: &[&Path],
    split: Split,
    sets: &[Set],
    rate: u32,
    max: usize,
    seed: u64,
) -> Result<ClipSet, TrainError> {
    let mut records: Vec<(usize, ClipRecord)> = Vec::new();
    for (i, data) in folders.iter().enumerate() {
        let all =
            manifest::read_manifest(data).map_err(io_err(&data.join(manifest::MANIFEST_FILE)))?;
        records.extend(
            all.into_iter()
                .filter(|r| r.split == split && sets.contains(&r.set))
                .map(|r| (i, r)),
        );
    }
    if max > 0 && records.len() > max {
        shuffle(&mut records, seed);
        records.truncate(max);
        records.sort_by(|a, b| (a.0, &a.1.path).cmp(&(b.0, &b.1.path)));
    }
    if records.is_empty() {
        let names: Vec<_> = folders.iter().map(|f| f.display().to_string()).collect();
        return Err(TrainError::Data(format!(
            "no {split:?} clips of {sets:?} in {}",
            names.join(", ")
        )));
    }
    let audio = records
        .iter()
        .map(|(i, r)| {
            manifest::read_clip_audio(folders[*i], r, rate)
                .map_err(|e| TrainError::Data(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ClipSet {
        folder: records.iter().map(|(i, _)| *i).collect(),
        records: records.into_iter().map(|(_, r)| r).collect(),
        audio,
    })
}

/// Fisher-Yates shuffle with a seeded SplitMix64.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = SplitMix64::new(seed);
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// A batch as tensors `(batch, frames, bins)` (weights `(batch, frames)`).
struct Batch {
    target_log_mag: Tensor,
    weights: Tensor,
    shifted: [Tensor; 3],
    distorted: [Tensor; 3],
    /// Clean `[envelope, fine structure]` (for the pitch-invariance and pitch-contrast terms,
    /// which every run with the timbre distortion logs, the second when it also shifts).
    clean_split: Option<[Tensor; 2]>,
    /// Per crop, 1 where its pitch shift is not 0, else 0.
    moved: Vec<f32>,
    /// The pitch classifier's targets (a model with a ruler only).
    pitch_targets: Option<PitchTargets>,
}

/// `pick` of every item (row-major `frames x bins`, the same size for each) as a tensor
/// `(items, frames, bins)`.
fn stack<T>(
    items: &[T],
    pick: impl Fn(&T) -> &[f32],
    bins: usize,
    dev: &Device,
) -> candle_core::Result<Tensor> {
    let b = items.len();
    let t = pick(&items[0]).len() / bins;
    let mut v = Vec::with_capacity(b * t * bins);
    for item in items {
        v.extend_from_slice(pick(item));
    }
    Tensor::from_vec(v, (b, t, bins), dev)
}

/// The timbre pooling weights ([`pooling_weights`]) of every item's frame energies
/// (`frame_db`, dB), concatenated: `items x frames`, each item's summing to 1.
fn pooling<T>(items: &[T], frame_db: impl Fn(&T) -> &[f32]) -> Vec<f32> {
    items
        .iter()
        .flat_map(|item| pooling_weights(frame_db(item), POOLING_RANGE_DB))
        .collect()
}

/// The pitch classifier's targets: pYIN's pitch of the clean frames that have one as a
/// (fractional) bin index, and the frames' weights (their pooling weights; 0 where pYIN finds no pitch or the
/// target falls outside the bins), all `(batch, frames)`.
struct PitchTargets {
    /// Target bin of the clean and distorted crops.
    clean: Tensor,
    /// Weights of the clean and distorted crops.
    clean_weights: Tensor,
    /// Target bin of the shifted crop (the clean target plus the shift).
    shifted: Tensor,
    /// Weights of the shifted crop.
    shifted_weights: Tensor,
}

impl PitchTargets {
    fn new(
        crops: &[Crop],
        weights: &[f32],
        bins: usize,
        dev: &Device,
    ) -> candle_core::Result<Self> {
        let (b, t) = (crops.len(), crops[0].clean.frames);
        let first = MIDDLE_C - PITCH_BIN_LOW;
        let last = (bins - 1) as f32;
        let mut v = [(); 4].map(|_| Vec::with_capacity(b * t));
        for (i, c) in crops.iter().enumerate() {
            for j in 0..t {
                let w = weights[i * t + j];
                let note = c.f0.get(j).copied().unwrap_or(f32::NAN) + first;
                for (k, target) in [note, note + c.shift as f32].into_iter().enumerate() {
                    let inside = target.is_finite() && (0.0..=last).contains(&target);
                    v[2 * k].push(if inside { target } else { 0.0 });
                    v[2 * k + 1].push(if inside { w } else { 0.0 });
                }
            }
        }
        let [clean, clean_weights, shifted, shifted_weights] =
            v.map(|x| Tensor::from_vec(x, (b, t), dev));
        Ok(Self {
            clean: clean?,
            clean_weights: clean_weights?,
            shifted: shifted?,
            shifted_weights: shifted_weights?,
        })
    }
}

fn to_batch(
    crops: &[Crop],
    bins: usize,
    with_clean_split: bool,
    pitch_bins: usize,
    dev: &Device,
) -> candle_core::Result<Batch> {
    let b = crops.len();
    let t = crops[0].clean.frames;
    let w = pooling(crops, |c| &c.clean.frame_db);
    Ok(Batch {
        target_log_mag: stack(crops, |c| &c.clean.log_mag, bins, dev)?,
        weights: Tensor::from_slice(&w, (b, t), dev)?,
        shifted: [
            stack(crops, |c| &c.shifted.log_mag, bins, dev)?,
            stack(crops, |c| &c.shifted.envelope, bins, dev)?,
            stack(crops, |c| &c.shifted.fine, bins, dev)?,
        ],
        distorted: [
            stack(crops, |c| &c.distorted.log_mag, bins, dev)?,
            stack(crops, |c| &c.distorted.envelope, bins, dev)?,
            stack(crops, |c| &c.distorted.fine, bins, dev)?,
        ],
        clean_split: if with_clean_split {
            Some([
                stack(crops, |c| &c.clean.envelope, bins, dev)?,
                stack(crops, |c| &c.clean.fine, bins, dev)?,
            ])
        } else {
            None
        },
        moved: crops
            .iter()
            .map(|c| if c.shift != 0.0 { 1.0 } else { 0.0 })
            .collect(),
        pitch_targets: if pitch_bins > 0 {
            Some(PitchTargets::new(crops, &w, pitch_bins, dev)?)
        } else {
            None
        },
    })
}

/// Loss terms of one pass (means per frame; `kl_t` per crop divided by its frames).
struct PassLoss {
    recon: Tensor,
    kl_t: Tensor,
    kl_v: Option<Tensor>,
    kl_p: Tensor,
    /// Posterior mean of `z_p` `(batch, frames, z_p)`.
    pitch_mean: Tensor,
    /// Posterior mean of `z_v` `(batch, frames, z_v)` (a three-factor model only).
    variation_mean: Option<Tensor>,
    /// The pitch classifier's logits (a model with a ruler only).
    pitch_logits: Option<Tensor>,
    output: Tensor,
}

impl PassLoss {
    /// The KL terms, `z_v`'s weighted by `variation_weight` and `z_p`'s by `pitch_weight`.
    fn kl(&self, variation_weight: f64, pitch_weight: f64) -> candle_core::Result<Tensor> {
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
fn run_pass(
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
fn pitch_invariance(
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
fn pitch_contrast(
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
fn pitch_classifier(
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

/// Adam (Kingma & Ba) over named variables, with its moments saved in checkpoints.
pub struct Adam {
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: u64,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const ADAM_EPS: f64 = 1e-8;

impl Adam {
    /// An optimiser of `vars` (sorted by name) with zero moments.
    pub fn new(mut vars: Vec<(String, Var)>) -> candle_core::Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let m = vars
            .iter()
            .map(|(_, v)| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(Self { vars, m, v, t: 0 })
    }

    /// One update with learning rate `lr`; gradients are scaled by `grad_scale`.
    pub fn step(
        &mut self,
        grads: &candle_core::backprop::GradStore,
        lr: f64,
        grad_scale: f64,
    ) -> candle_core::Result<()> {
        self.t += 1;
        let c1 = 1.0 - BETA1.powi(self.t as i32);
        let c2 = 1.0 - BETA2.powi(self.t as i32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let g = (g * grad_scale)?;
            self.m[i] = ((&self.m[i] * BETA1)? + (&g * (1.0 - BETA1))?)?;
            self.v[i] = ((&self.v[i] * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
            let m_hat = (&self.m[i] / c1)?;
            let v_hat = (&self.v[i] / c2)?;
            let update = (m_hat / (v_hat.sqrt()? + ADAM_EPS)?)?;
            var.set(&(var.as_tensor() - (update * lr)?)?)?;
        }
        Ok(())
    }

    /// Global norm of the gradients of the optimised variables.
    pub fn grad_norm(&self, grads: &candle_core::backprop::GradStore) -> candle_core::Result<f64> {
        let mut sum = 0.0f64;
        for (_, var) in &self.vars {
            if let Some(g) = grads.get(var.as_tensor()) {
                sum += g
                    .sqr()?
                    .sum_all()?
                    .to_dtype(DType::F64)?
                    .to_scalar::<f64>()?;
            }
        }
        Ok(sum.sqrt())
    }

    fn tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.insert(format!("m.{name}"), self.m[i].clone());
            out.insert(format!("v.{name}"), self.v[i].clone());
        }
        out
    }

    fn restore(&mut self, tensors: &HashMap<String, Tensor>, t: u64) -> Result<(), TrainError> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            for (key, slot) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                let k = format!("{key}.{name}");
                let value = tensors
                    .get(&k)
                    .ok_or_else(|| TrainError::Resume(format!("optimiser state lacks {k}")))?;
                if value.dims() != var.dims() {
                    return Err(TrainError::Resume(format!("{k} has the wrong shape")));
                }
                *slot = value.clone();
            }
        }
        self.t = t;
        Ok(())
    }
}

/// Checkpoint bookkeeping, `checkpoint/state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    config: TrainConfig,
    epochs_done: usize,
    step: u64,
    adam_t: u64,
    best_epoch: Option<usize>,
    best_valid: f64,
    wall_s: f64,
}

/// Per-epoch validation figures (unperturbed crops, posterior means, KL weight 1).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ValidFigures {
    /// Negative ELBO per frame (reconstruction + all KL terms).
    pub loss: f64,
    /// Reconstruction term per frame.
    pub recon: f64,
    /// KL terms per frame.
    pub kl: f64,
    /// Mean squared error of the log-magnitude, natural-log units squared, per value.
    pub mse_ln: f64,
}

/// What a finished (or resumed and finished) run reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// Epochs trained in total.
    pub epochs: usize,
    /// Steps in total.
    pub steps: u64,
    /// Epoch of the exported weights.
    pub best_epoch: usize,
    /// Its validation score: the negative ELBO per frame, plus the weighted swap term when
    /// the swap term is trained.
    pub best_valid: f64,
    /// Training throughput of this session, crop frames per second (a frame counts once
    /// whether or not re-entry runs a second pass);
    /// `None` when this session trained no step (a resume that only exports).
    pub frames_per_s: Option<f64>,
    /// Wall time of all sessions of the run, in seconds.
    pub wall_s: f64,
    /// Trained values.
    pub parameters: usize,
    /// The exported model.
    pub model_path: PathBuf,
}

/// Progress callback: `(epoch, step in epoch, steps per epoch, message)`.
pub type Progress<'a> = &'a dyn Fn(usize, usize, usize, &str);

/// Runs (or with `resume`, continues) training into `out`.
pub fn train(
    data: &Path,
    out: &Path,
    tc: &TrainConfig,
    resume: bool,
    progress: Progress<'_>,
) -> Result<TrainSummary, TrainError> {
    tc.model.validate()?;
    if tc.batch == 0 || tc.crop_frames == 0 || tc.epochs == 0 {
        return Err(TrainError::Data(
            "batch, crop_frames and epochs must be positive".into(),
        ));
    }
    if tc.pitch_contrast_weight > 0.0 && !(tc.pitch_shift && tc.timbre_distortion) {
        return Err(TrainError::Data(
            "pitch_contrast_weight needs both the pitch shift and the timbre distortion".into(),
        ));
    }
    if tc.model.pitch_ruler()
        && !(tc.pitch_shift && tc.timbre_distortion && tc.pitch_classifier_weight > 0.0)
    {
        return Err(TrainError::Data(
            "a pitch ruler needs the pitch shift, the timbre distortion and a positive \
             pitch_classifier_weight"
                .into(),
        ));
    }
    tc.swap.validate()?;
    tc.cross_library.validate(1 + tc.libraries.len())?;
    tc.adversary.validate(tc.model.variation)?;
    if !tc.model.pitch_ruler() && tc.pitch_classifier_weight > 0.0 {
        return Err(TrainError::Data(
            "pitch_classifier_weight needs a model with pitch_bins above 0".into(),
        ));
    }
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let dev = Device::Cpu;
    let cfg = &tc.model;
    let bins = cfg.bins();
    let folders = tc.folders(data);
    let train_set = load_clips(
        &folders,
        Split::Train,
        &tc.sets,
        cfg.sample_rate,
        tc.max_clips,
        tc.seed,
    )?;
    let valid_set = load_clips(
        &folders,
        Split::Valid,
        &tc.sets,
        cfg.sample_rate,
        if tc.max_clips > 0 {
            tc.max_clips.div_ceil(4)
        } else {
            0
        },
        tc.seed,
    )?;

    // Paired swap examples, when the swap term is on.
    let (train_pairs, valid_pairs) = match &tc.swap.pairs {
        Some(root) if tc.swap.enabled() => (
            Some(swap::load_pairs(
                root,
                false,
                cfg.sample_rate,
                tc.swap.max_pairs,
            )?),
            Some(swap::load_pairs(root, true, cfg.sample_rate, 0)?),
        ),
        _ => (None, None),
    };

    // The cross-library term's programs, when it is on.
    let programs = if tc.cross_library.enabled() {
        let train_index = ProgramIndex::new(&train_set);
        let valid_index = ProgramIndex::new(&valid_set);
        if train_index.programs() < 2 || valid_index.programs() < 2 {
            return Err(TrainError::Data(format!(
                "cross_library needs two or more programs that two libraries share; the \
                 training clips have {}, the validation clips {}",
                train_index.programs(),
                valid_index.programs()
            )));
        }
        let mut rng = SplitMix64::new(mix64(tc.seed ^ 0x4C49_4252_4152_5900));
        let picks = valid_index.pick(
            tc.cross_library.valid_programs,
            tc.cross_library.same_score,
            &mut rng,
        );
        let valid = make_program_crops(&valid_set, &picks, rng.next_u64(), tc);
        Some((train_index, valid))
    } else {
        None
    };

    // Model: seeded weights with the normalisation measured on the training data, or a model
    // file's weights and normalisation (fine-tuning).
    let (varmap, model) = match &tc.init_from {
        None => initial_model(cfg, &normalisation(&train_set, tc), tc.seed)?,
        Some(path) => start_from(cfg, path)?,
    };
    let trainable = trainable_vars(&varmap);
    let mut adam = Adam::new(trainable)?;
    let mut adversary = if tc.adversary.enabled() {
        Some(Adversary::new(
            &tc.adversary,
            cfg.z_v,
            train_set.records.iter().map(|r| r.program),
            mix64(tc.seed ^ 0x4144_5645_5253_4152),
            &dev,
        )?)
    } else {
        None
    };
    let parameters = ThreeFactor::trainable_parameters(cfg);

    let ckpt = out.join(CHECKPOINT_DIR);
    let mut state = CheckpointState {
        config: tc.clone(),
        epochs_done: 0,
        step: 0,
        adam_t: 0,
        best_epoch: None,
        best_valid: f64::INFINITY,
        wall_s: 0.0,
    };
    if resume && ckpt.join("state.json").exists() {
        let text = std::fs::read_to_string(ckpt.join("state.json")).map_err(io_err(&ckpt))?;
        let saved: CheckpointState =
            serde_json::from_str(&text).map_err(|e| TrainError::Resume(e.to_string()))?;
        if !saved.config.same_run(tc) {
            return Err(TrainError::Resume(
                "the checkpoint was trained with another config (only `epochs` may change)".into(),
            ));
        }
        let weights = candle_core::safetensors::load(ckpt.join("weights.safetensors"), &dev)?;
        let data = varmap.data().lock().expect("var map");
        for (name, var) in data.iter() {
            let w = weights
                .get(name)
                .ok_or_else(|| TrainError::Resume(format!("checkpoint lacks {name}")))?;
            var.set(w)?;
        }
        drop(data);
        let moments = candle_core::safetensors::load(ckpt.join("adam.safetensors"), &dev)?;
        adam.restore(&moments, saved.adam_t)?;
        if let Some(adv) = adversary.as_mut() {
            adv.restore(&ckpt, &dev)?;
        }
        state = saved;
        state.config = tc.clone();
        truncate_log(&out.join(LOG_FILE), state.epochs_done)?;
    } else {
        let _ = std::fs::remove_file(out.join(LOG_FILE));
    }
    let mut log = BufWriter::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out.join(LOG_FILE))
            .map_err(io_err(out))?,
    );

    // Fixed validation crops.
    let valid_picks: Vec<(usize, u64)> = (0..tc.valid_crops)
        .map(|i| {
            let s = mix64(tc.seed ^ 0x5641_4C49_4400_0000 ^ i as u64);
            ((s % valid_set.audio.len() as u64) as usize, mix64(s))
        })
        .collect();
    let valid_crops = make_crops(&valid_set, &valid_picks, tc, false, &PitchCache::new(0));
    // pYIN's pitch of each training clip, for the pitch classifier's targets: computed the
    // first time a crop of the clip is made (the first epoch), then kept.
    // Tracks a run before this one measured on the same clips are read from each dataset
    // folder's cache file instead, and the file is rewritten after an epoch that measured
    // new ones.
    let train_pitch = PitchCache::new(train_set.audio.len());
    let cache_members: Vec<Vec<(usize, String, usize)>> = (0..folders.len())
        .map(|f| {
            (0..train_set.audio.len())
                .filter(|&i| train_set.folder[i] == f)
                .map(|i| {
                    let key = train_set.records[i].path.to_string_lossy().into_owned();
                    (i, key, crops::track_len(train_set.audio[i].len(), cfg.hop))
                })
                .collect()
        })
        .collect();
    if cfg.pitch_ruler() {
        for (folder, members) in folders.iter().zip(&cache_members) {
            let path = crops::pitch_cache_file(folder, tc);
            let taken = train_pitch.load(&path, members);
            if taken > 0 {
                progress(
                    state.epochs_done,
                    0,
                    train_set.audio.len().div_ceil(tc.batch),
                    &format!(
                        "pitch targets of {taken} clips read from {}",
                        path.display()
                    ),
                );
            }
        }
    }
    let mut pitch_known = train_pitch.known();
    let valid_swap_crops = valid_pairs.as_ref().map(|set| {
        let picks: Vec<(usize, u64)> = (0..tc.swap.valid_pairs.min(set.audio.len()).max(1))
            .map(|i| (i % set.audio.len(), mix64(tc.seed ^ 0x5357_4150 ^ i as u64)))
            .collect();
        swap::make_swap_crops(set, &picks, tc)
    });

    let steps_per_epoch = train_set.audio.len().div_ceil(tc.batch);
    let session_start = Instant::now();
    let wall_before = state.wall_s;
    let mut frames_done = 0u64;
    let mut train_time = 0.0f64;
    for epoch in state.epochs_done..tc.epochs {
        let mut order: Vec<usize> = (0..train_set.audio.len()).collect();
        shuffle(
            &mut order,
            mix64(tc.seed ^ 0x4550_4F43_4800_0000 ^ epoch as u64),
        );
        let lr = tc.lr(epoch);
        let mut sums = [0.0f64; 13];
        // Each step's crops are made on another thread while the step before trains (they
        // depend on the seed and the step only).
        let first_step = state.step;
        let jobs: Vec<(u64, &[usize])> = order
            .chunks(tc.batch)
            .enumerate()
            .map(|(i, chunk)| (first_step + i as u64, chunk))
            .collect();
        let make = |(step, chunk): (u64, &[usize])| {
            let picks: Vec<(usize, u64)> = chunk
                .iter()
                .enumerate()
                .map(|(j, &c)| (c, mix64(tc.seed ^ mix64(step) ^ (j as u64) << 48)))
                .collect();
            let crops = make_crops(&train_set, &picks, tc, true, &train_pitch);
            let program_crops = programs.as_ref().map(|(index, _)| {
                let mut rng = SplitMix64::new(mix64(tc.seed ^ 0x4C49_4200 ^ mix64(step)));
                let picks = index.pick(
                    tc.cross_library.programs,
                    tc.cross_library.same_score,
                    &mut rng,
                );
                make_program_crops(&train_set, &picks, rng.next_u64(), tc)
            });
            let swap_crops = train_pairs.as_ref().map(|set| {
                let picks: Vec<(usize, u64)> = (0..tc.swap.batch)
                    .map(|j| {
                        let s = mix64(tc.seed ^ 0x5357_4150_0000 ^ mix64(step) ^ (j as u64) << 40);
                        ((s % set.audio.len() as u64) as usize, mix64(s))
                    })
                    .collect();
                swap::make_swap_crops(set, &picks, tc)
            });
            (crops, swap_crops, program_crops)
        };
        one_ahead(jobs, make, |next| -> Result<(), TrainError> {
            for (i, chunk) in order.chunks(tc.batch).enumerate() {
                let t0 = Instant::now();
                let step = state.step;
                let (crops, swap_crops, program_crops) = next()
                    .ok_or_else(|| TrainError::Data("the crop thread stopped early".into()))?;
                let batch = to_batch(&crops, bins, tc.timbre_distortion, cfg.pitch_bins, &dev)?;
                let beta = tc.kl_weight(epoch, i as f64 / steps_per_epoch as f64);
                let mut noise = SplitMix64::new(mix64(tc.seed ^ 0x4E4F_4953_4500_0000 ^ step));
                let target = model.normalise_log_mag(&batch.target_log_mag)?;
                let (tv1, p_shifted) = model.encoder_inputs(
                    &batch.shifted[0],
                    &batch.shifted[1],
                    &batch.shifted[2],
                )?;
                let (_, p1) = model.encoder_inputs(
                    &batch.distorted[0],
                    &batch.distorted[1],
                    &batch.distorted[2],
                )?;
                let first = run_pass(
                    &model,
                    (&tv1, &p_shifted),
                    &p1,
                    &batch.weights,
                    &target,
                    Some(&mut noise),
                )?;
                let (kl_v_weight, kl_p_weight) = (tc.kl_variation_weight, tc.kl_pitch_weight);
                let mut loss = (&first.recon + (first.kl(kl_v_weight, kl_p_weight)? * beta)?)?;
                let (inv, contrast, ruler) = match &batch.clean_split {
                    Some([envelope, fine]) => {
                        let (_, p_clean) =
                            model.encoder_inputs(&batch.target_log_mag, envelope, fine)?;
                        let (clean, clean_logits) = model.encode_pitch_with_logits(&p_clean)?;
                        let clean = clean.mean;
                        let (shifted, shifted_logits) = if tc.pitch_shift {
                            let (post, logits) = model.encode_pitch_with_logits(&p_shifted)?;
                            (Some(post.mean), logits)
                        } else {
                            (None, None)
                        };
                        // The classifier (validated: a ruler comes with both perturbations).
                        let ruler = match (
                            &batch.pitch_targets,
                            &clean_logits,
                            &first.pitch_logits,
                            &shifted_logits,
                        ) {
                            (Some(targets), Some(clean), Some(distorted), Some(shifted)) => {
                                let term = ((pitch_classifier(
                                    clean,
                                    &targets.clean,
                                    &targets.clean_weights,
                                )? + pitch_classifier(
                                    distorted,
                                    &targets.clean,
                                    &targets.clean_weights,
                                )?)? + pitch_classifier(
                                    shifted,
                                    &targets.shifted,
                                    &targets.shifted_weights,
                                )?)?;
                                loss = (loss + (&term * tc.pitch_classifier_weight)?)?;
                                Some(term)
                            }
                            _ => None,
                        };
                        let heads = cfg.pitch_heads();
                        let code = |t: &Tensor, in_graph: bool| -> candle_core::Result<Tensor> {
                            let c = t.narrow(D::Minus1, cfg.z_p - heads, heads)?;
                            Ok(if in_graph { c } else { c.detach() })
                        };
                        // Measured only (the log compares runs by them) unless weighted.
                        let in_graph =
                            tc.pitch_invariance_weight > 0.0 || tc.pitch_contrast_weight > 0.0;
                        let clean = code(&clean, in_graph)?;
                        let distorted = code(&first.pitch_mean, in_graph)?;
                        let inv = pitch_invariance(&clean, &distorted, &batch.weights)?;
                        if tc.pitch_invariance_weight > 0.0 {
                            loss = (loss + (&inv * tc.pitch_invariance_weight)?)?;
                        }
                        let contrast = match &shifted {
                            Some(shifted) => {
                                let shifted = code(shifted, tc.pitch_contrast_weight > 0.0)?;
                                let term = pitch_contrast(
                                    &clean,
                                    &distorted,
                                    &shifted,
                                    &batch.weights,
                                    &batch.moved,
                                )?;
                                if tc.pitch_contrast_weight > 0.0 {
                                    loss = (loss + (&term * tc.pitch_contrast_weight)?)?;
                                }
                                Some(term)
                            }
                            None => None,
                        };
                        (Some(inv), contrast, ruler)
                    }
                    None => (None, None, None),
                };
                let (swap_term, variation_term) = match &swap_crops {
                    Some(crops) => {
                        let terms = swap::swap_terms(&model, crops, &tc.swap)?;
                        if let Some(term) = &terms.swap {
                            loss = (loss + (term * tc.swap.weight)?)?;
                        }
                        if let Some(term) = &terms.variation {
                            loss = (loss + (term * tc.swap.variation_weight)?)?;
                        }
                        (terms.swap, terms.variation)
                    }
                    None => (None, None),
                };
                let adversary_term = match (adversary.as_mut(), &first.variation_mean) {
                    (Some(adv), Some(z_v)) => {
                        let programs: Vec<u8> = chunk
                            .iter()
                            .map(|&c| train_set.records[c].program)
                            .collect();
                        let (labels, known) = (adv.labels(&programs, &dev)?, adv.known(&programs));
                        adv.fit(
                            z_v,
                            &labels,
                            &batch.weights,
                            &known,
                            tc.adversary.classifier_steps,
                            tc.adversary.learning_rate,
                        )?;
                        let term =
                            adv.loss(z_v, &labels, &batch.weights, &known, tc.adversary.weight)?;
                        loss = (loss + &term)?;
                        Some(term)
                    }
                    _ => None,
                };
                let cross_term = match &program_crops {
                    Some(crops) => {
                        let term = cross_library_loss(&model, crops, tc.cross_library.temperature)?;
                        loss = (loss + (&term * tc.cross_library.weight)?)?;
                        Some(term)
                    }
                    None => None,
                };
                let second = if tc.reentry {
                    let (tv2, p2) = model.encoder_inputs_from_normalised(&first.output)?;
                    let pass = run_pass(
                        &model,
                        (&tv2, &p2),
                        &p2,
                        &batch.weights,
                        &target,
                        Some(&mut noise),
                    )?;
                    loss = (loss + (&pass.recon + (pass.kl(kl_v_weight, kl_p_weight)? * beta)?)?)?;
                    Some(pass)
                } else {
                    None
                };
                let grads = loss.backward()?;
                let norm = adam.grad_norm(&grads)?;
                let loss_v = loss.to_scalar::<f32>()? as f64;
                if !loss_v.is_finite() || !norm.is_finite() {
                    return Err(TrainError::Diverged(loss_v, step));
                }
                let scale = if norm > tc.grad_clip {
                    tc.grad_clip / norm
                } else {
                    1.0
                };
                adam.step(&grads, lr, scale)?;
                if let Some(adv) = adversary.as_mut() {
                    adv.step(&grads, tc.adversary.learning_rate)?;
                }
                state.step += 1;
                let dt = t0.elapsed().as_secs_f64();
                let frames = (crops.len() * tc.crop_frames) as u64;
                frames_done += frames;
                train_time += dt;
                let scalar =
                    |t: &Tensor| -> candle_core::Result<f64> { Ok(t.to_scalar::<f32>()? as f64) };
                let rec1 = scalar(&first.recon)?;
                let rec2 = match &second {
                    Some(p) => scalar(&p.recon)?,
                    None => f64::NAN,
                };
                let kl_t = scalar(&first.kl_t)?;
                let kl_v = match &first.kl_v {
                    Some(v) => scalar(v)?,
                    None => 0.0,
                };
                let kl_p = scalar(&first.kl_p)?;
                let optional = |t: &Option<Tensor>| -> candle_core::Result<f64> {
                    t.as_ref().map_or(Ok(f64::NAN), scalar)
                };
                let (inv, contrast, ruler) =
                    (optional(&inv)?, optional(&contrast)?, optional(&ruler)?);
                let swap_v = optional(&swap_term)?;
                let cross_v = optional(&cross_term)?;
                let variation_v = optional(&variation_term)?;
                let adversary_v = optional(&adversary_term)?;
                for (s, v) in sums.iter_mut().zip([
                    loss_v,
                    rec1,
                    rec2,
                    kl_t,
                    kl_v,
                    kl_p,
                    inv,
                    contrast,
                    ruler,
                    swap_v,
                    cross_v,
                    variation_v,
                    adversary_v,
                ]) {
                    *s += v;
                }
                let record = serde_json::json!({
                    "kind": "step", "epoch": epoch, "step": step, "loss": loss_v, "recon": rec1,
                    "recon_reentry": if rec2.is_finite() { Some(rec2) } else { None },
                    "kl_t": kl_t, "kl_v": kl_v, "kl_p": kl_p,
                    "pitch_invariance": if inv.is_finite() { Some(inv) } else { None },
                    "pitch_contrast": if contrast.is_finite() { Some(contrast) } else { None },
                    "pitch_classifier": if ruler.is_finite() { Some(ruler) } else { None },
                    "swap": if swap_v.is_finite() { Some(swap_v) } else { None },
                    "cross_library": if cross_v.is_finite() { Some(cross_v) } else { None },
                    "variation_invariance":
                        if variation_v.is_finite() { Some(variation_v) } else { None },
                    "adversary": if adversary_v.is_finite() { Some(adversary_v) } else { None },
                    "beta": beta, "lr": lr,
                    "grad_norm": norm, "frames_per_s": frames as f64 / dt,
                });
                writeln!(log, "{record}").map_err(io_err(out))?;
                progress(
                epoch,
                i + 1,
                steps_per_epoch,
                &format!(
                    "loss {loss_v:.1} recon {rec1:.1}{} KL t {kl_t:.2} v {kl_v:.2} p {kl_p:.2}{}{}{}{}{}{}{} beta {beta:.2} {:.0} frames/s",
                    if rec2.is_finite() { format!(" re-entry {rec2:.1}") } else { String::new() },
                    if inv.is_finite() { format!(" inv {inv:.3}") } else { String::new() },
                    if contrast.is_finite() { format!(" contrast {contrast:.3}") } else { String::new() },
                    if ruler.is_finite() { format!(" pitch CE {ruler:.3}") } else { String::new() },
                    if swap_v.is_finite() { format!(" swap {swap_v:.1}") } else { String::new() },
                    if cross_v.is_finite() { format!(" cross-library {cross_v:.3}") } else { String::new() },
                    if variation_v.is_finite() { format!(" z_v gap {variation_v:.3}") } else { String::new() },
                    if adversary_v.is_finite() { format!(" z_v instrument CE {adversary_v:.3}") } else { String::new() },
                    frames_done as f64 / train_time
                ),
            );
            }
            Ok(())
        })?;
        let valid = validate(&model, &valid_crops, tc, &dev)?;
        let (valid_swap, valid_variation) = match &valid_swap_crops {
            Some(crops) => {
                let terms = swap::swap_terms(&model, crops, &tc.swap)?;
                let value = |t: Option<Tensor>| -> candle_core::Result<Option<f64>> {
                    t.map(|t| Ok(t.to_scalar::<f32>()? as f64)).transpose()
                };
                (value(terms.swap)?, value(terms.variation)?)
            }
            None => (None, None),
        };
        let valid_cross = match &programs {
            Some((_, crops)) => Some(
                cross_library_loss(&model, crops, tc.cross_library.temperature)?
                    .to_scalar::<f32>()? as f64,
            ),
            None => None,
        };
        // The score the best epoch is chosen by: the negative ELBO, plus the weighted swap
        // and cross-library terms when they are trained.
        let score = valid.loss
            + valid_swap.map_or(0.0, |v| tc.swap.weight * v)
            + valid_variation.map_or(0.0, |v| tc.swap.variation_weight * v)
            + valid_cross.map_or(0.0, |v| tc.cross_library.weight * v);
        let n = steps_per_epoch as f64;
        let improved = score < state.best_valid;
        if improved {
            state.best_valid = score;
            state.best_epoch = Some(epoch);
            save_vars(&varmap, &out.join(BEST_FILE))?;
        }
        state.epochs_done = epoch + 1;
        state.adam_t = adam.t;
        state.wall_s = wall_before + session_start.elapsed().as_secs_f64();
        let record = serde_json::json!({
            "kind": "epoch", "epoch": epoch, "step": state.step, "lr": lr,
            "train_loss": sums[0] / n, "train_recon": sums[1] / n,
            "train_recon_reentry": if tc.reentry { Some(sums[2] / n) } else { None },
            "train_kl_t": sums[3] / n, "train_kl_v": sums[4] / n, "train_kl_p": sums[5] / n,
            "train_pitch_invariance": if sums[6].is_finite() { Some(sums[6] / n) } else { None },
            "train_pitch_contrast": if sums[7].is_finite() { Some(sums[7] / n) } else { None },
            "train_pitch_classifier": if sums[8].is_finite() { Some(sums[8] / n) } else { None },
            "train_swap": if sums[9].is_finite() { Some(sums[9] / n) } else { None },
            "valid_swap": valid_swap,
            "train_cross_library": if sums[10].is_finite() { Some(sums[10] / n) } else { None },
            "valid_cross_library": valid_cross,
            "train_variation_invariance":
                if sums[11].is_finite() { Some(sums[11] / n) } else { None },
            "valid_variation_invariance": valid_variation,
            "train_adversary": if sums[12].is_finite() { Some(sums[12] / n) } else { None },
            "valid": valid, "best": improved, "wall_s": state.wall_s,
            "frames_per_s": frames_done as f64 / train_time,
        });
        writeln!(log, "{record}").map_err(io_err(out))?;
        log.flush().map_err(io_err(out))?;
        write_checkpoint(&ckpt, &varmap, &adam, adversary.as_ref(), &state)?;
        if train_pitch.known() > pitch_known {
            pitch_known = train_pitch.known();
            for (folder, members) in folders.iter().zip(&cache_members) {
                let path = crops::pitch_cache_file(folder, tc);
                let keys: Vec<(usize, String)> =
                    members.iter().map(|(i, k, _)| (*i, k.clone())).collect();
                // A folder that cannot be written to only costs the next run pYIN's time.
                if let Err(e) = train_pitch.save(&path, &keys) {
                    progress(
                        epoch,
                        steps_per_epoch,
                        steps_per_epoch,
                        &format!("pitch targets not cached in {}: {e}", path.display()),
                    );
                }
            }
        }
        let _ = plot_log(&out.join(LOG_FILE), &out.join(PLOT_FILE));
        progress(
            epoch,
            steps_per_epoch,
            steps_per_epoch,
            &format!(
                "epoch {epoch}: valid loss {:.2} (recon {:.2}, KL {:.2}, MSE {:.3} ln^2){}{}{}{}",
                valid.loss,
                valid.recon,
                valid.kl,
                valid.mse_ln,
                valid_swap.map_or(String::new(), |v| format!(", swap {v:.2}")),
                valid_cross.map_or(String::new(), |v| format!(", cross-library {v:.3}")),
                valid_variation.map_or(String::new(), |v| format!(", z_v gap {v:.3}")),
                if improved { " best" } else { "" }
            ),
        );
    }

    // A resume that trains nothing still redraws the plot, so it follows the plotting code.
    if frames_done == 0 {
        let _ = plot_log(&out.join(LOG_FILE), &out.join(PLOT_FILE));
    }

    // Export the best epoch.
    let best_epoch = state
        .best_epoch
        .ok_or_else(|| TrainError::Data("no epoch was validated".into()))?;
    let best = candle_core::safetensors::load(out.join(BEST_FILE), &dev)?;
    let best_model = ThreeFactor::new(
        cfg,
        VarBuilder::from_tensors(best.clone(), DType::F32, &dev),
    )?;
    let map = timbre_map(&best_model, data, tc)?;
    let frames_per_s = (frames_done > 0).then(|| frames_done as f64 / train_time);
    let training = serde_json::json!({
        "data": data.display().to_string(),
        "libraries": tc.libraries,
        "train_config": tc,
        "epochs": state.epochs_done,
        "steps": state.step,
        "best_epoch": best_epoch,
        "best_valid_loss": state.best_valid,
        "wall_s": state.wall_s,
        "parameters": parameters,
        "train_clips": train_set.audio.len(),
    });
    let model_path = out.join(MODEL_FILE);
    file::save(&model_path, cfg, &best, &map, &training)?;
    Ok(TrainSummary {
        epochs: state.epochs_done,
        steps: state.step,
        best_epoch,
        best_valid: state.best_valid,
        frames_per_s,
        wall_s: state.wall_s,
        parameters,
        model_path,
    })
}

/// A model of `cfg` with normalisation `stats` and seeded initial weights (`init_weights`),
/// its variables in the returned map.
pub fn initial_model(
    cfg: &Config,
    stats: &FeatureStats,
    seed: u64,
) -> Result<(VarMap, ThreeFactor), TrainError> {
    cfg.validate()?;
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    stats.insert_into(&varmap)?;
    let model = ThreeFactor::new(cfg, VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    init_weights(&trainable_vars(&varmap), seed)?;
    Ok((varmap, model))
}

/// A model of `cfg` holding the weights and normalisation of the model file at `path`
/// (fine-tuning); its config must be `cfg`, or `cfg` with `timbre_harmonics` where the file
/// has none: the timbre encoder's input layer then gets zero weights for the harmonic levels,
/// so the model starts out computing what the file computes.
pub fn start_from(cfg: &Config, path: &Path) -> Result<(VarMap, ThreeFactor), TrainError> {
    let file = timbreswap_engine::model_file::load(path)
        .map_err(|e| TrainError::Settings(format!("init_from {}: {e}", path.display())))?;
    let added_harmonics = if file.config.timbre_harmonics == 0 {
        cfg.timbre_harmonics
    } else {
        0
    };
    let as_file = Config {
        timbre_harmonics: cfg.timbre_harmonics - added_harmonics,
        ..cfg.clone()
    };
    if file.config != as_file {
        return Err(TrainError::Settings(format!(
            "init_from {}: its model config differs from the training config's `model`",
            path.display()
        )));
    }
    let feature = |name: &str| -> Result<Vec<f32>, TrainError> {
        file.weights
            .get(&format!("features.{name}"))
            .map(|w| w.data.clone())
            .ok_or_else(|| {
                TrainError::Settings(format!("init_from {}: no features.{name}", path.display()))
            })
    };
    let scale = feature("scale")?;
    // The model keeps the scales as numbers (not tensors), so they go in at construction.
    let stats = FeatureStats {
        log_mag_mean: feature("log_mag_mean")?,
        envelope_mean: feature("envelope_mean")?,
        fine_mean: feature("fine_mean")?,
        scale: [scale[0], scale[1], scale[2]],
    };
    let (varmap, model) = initial_model(cfg, &stats, 0)?;
    let data = varmap.data().lock().expect("var map");
    for (name, var) in data.iter() {
        let w = file.weights.get(name).ok_or_else(|| {
            TrainError::Settings(format!("init_from {}: no tensor {name}", path.display()))
        })?;
        let mut value = Tensor::from_vec(w.data.clone(), w.shape.clone(), &Device::Cpu)?;
        if name == "timbre.frames.input.weight" && added_harmonics > 0 {
            let zeros = Tensor::zeros((w.shape[0], added_harmonics), DType::F32, &Device::Cpu)?;
            value = Tensor::cat(&[&value, &zeros], 1)?;
        }
        var.set(&value)?;
    }
    drop(data);
    Ok((varmap, model))
}

/// The trained variables of `varmap` (everything but `features.*`), sorted by name.
pub fn trainable_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().expect("var map");
    let mut vars: Vec<(String, Var)> = data
        .iter()
        .filter(|(k, _)| !k.starts_with("features."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Every variable of `varmap` as a tensor, by name (what a model file holds).
pub fn weights_of(varmap: &VarMap) -> HashMap<String, Tensor> {
    let data = varmap.data().lock().expect("var map");
    data.iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect()
}

/// Measures [`FeatureStats`] on the first `norm_clips` training clips (of a seeded order).
fn normalisation(set: &ClipSet, tc: &TrainConfig) -> FeatureStats {
    let cfg = &tc.model;
    let bins = cfg.bins();
    let mut order: Vec<usize> = (0..set.audio.len()).collect();
    shuffle(&mut order, mix64(tc.seed ^ 0x4E4F_524D));
    order.truncate(tc.norm_clips.max(1));
    let mut ex = FeatureExtractor::new(&cfg.stft(), cfg.mag_floor);
    let feats: Vec<FrameFeatures> = order.iter().map(|&i| ex.clip(&set.audio[i])).collect();
    let frames: usize = feats.iter().map(|f| f.frames).sum();
    let mean_and_scale = |pick: fn(&FrameFeatures) -> &Vec<f32>| {
        let mut mean = vec![0.0f64; bins];
        for f in &feats {
            for row in pick(f).chunks_exact(bins) {
                for (m, v) in mean.iter_mut().zip(row) {
                    *m += *v as f64;
                }
            }
        }
        mean.iter_mut().for_each(|m| *m /= frames as f64);
        let mut var = 0.0f64;
        for f in &feats {
            for row in pick(f).chunks_exact(bins) {
                for (m, v) in mean.iter().zip(row) {
                    var += (*v as f64 - m).powi(2);
                }
            }
        }
        let scale = (var / (frames * bins) as f64).sqrt().max(1e-6) as f32;
        (
            mean.into_iter().map(|m| m as f32).collect::<Vec<f32>>(),
            scale,
        )
    };
    let (log_mag_mean, s0) = mean_and_scale(|f| &f.log_mag);
    let (envelope_mean, s1) = mean_and_scale(|f| &f.envelope);
    let (fine_mean, s2) = mean_and_scale(|f| &f.fine);
    FeatureStats {
        log_mag_mean,
        envelope_mean,
        fine_mean,
        scale: [s0, s1, s2],
    }
}

/// Seeded initial weights: `N(0, gain^2 / fan_in)` for matrices (gain 1, or 0.5 inside
/// residual blocks), zero biases; the same for every run with the same seed.
fn init_weights(vars: &[(String, Var)], seed: u64) -> candle_core::Result<()> {
    let mut sorted: Vec<&(String, Var)> = vars.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (i, (name, var)) in sorted.into_iter().enumerate() {
        let dims = var.dims().to_vec();
        let n: usize = dims.iter().product();
        let values = if dims.len() == 2 {
            let gain = if name.contains(".blocks.") { 0.5 } else { 1.0 };
            let std = gain / (dims[1] as f64).sqrt();
            let mut rng = SplitMix64::new(mix64(seed ^ mix64(i as u64 + 1)));
            normals(&mut rng, n)
                .into_iter()
                .map(|v| v * std as f32)
                .collect()
        } else {
            vec![0.0f32; n]
        };
        var.set(&Tensor::from_vec(values, dims, var.device())?)?;
    }
    Ok(())
}

/// Validation figures of `model` on `crops` (unperturbed, posterior means, KL weight 1).
fn validate(
    model: &ThreeFactor,
    crops: &[Crop],
    tc: &TrainConfig,
    dev: &Device,
) -> Result<ValidFigures, TrainError> {
    let bins = tc.model.bins();
    let mut fig = ValidFigures::default();
    let mut batches = 0.0;
    let scale = model.log_mag_scale();
    for chunk in crops.chunks(tc.batch) {
        let batch = to_batch(chunk, bins, false, 0, dev)?;
        let target = model.normalise_log_mag(&batch.target_log_mag)?;
        let (tv, p) =
            model.encoder_inputs(&batch.shifted[0], &batch.shifted[1], &batch.shifted[2])?;
        let pass = run_pass(model, (&tv, &p), &p, &batch.weights, &target, None)?;
        let recon = pass.recon.to_scalar::<f32>()? as f64;
        let kl = pass.kl(1.0, 1.0)?.to_scalar::<f32>()? as f64;
        let mse_n = (&pass.output - &target)?
            .sqr()?
            .mean_all()?
            .to_scalar::<f32>()? as f64;
        fig.recon += recon;
        fig.kl += kl;
        fig.mse_ln += mse_n / (scale * scale);
        batches += 1.0;
    }
    fig.recon /= batches;
    fig.kl /= batches;
    fig.mse_ln /= batches;
    fig.loss = fig.recon + fig.kl;
    Ok(fig)
}

fn save_vars(varmap: &VarMap, path: &Path) -> Result<(), TrainError> {
    let tensors = weights_of(varmap);
    let tmp = path.with_extension("partial");
    candle_core::safetensors::save(&tensors, &tmp)?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// Writes the checkpoint into a fresh folder, then swaps it in (an interrupted write leaves
/// the previous checkpoint intact).
fn write_checkpoint(
    dir: &Path,
    varmap: &VarMap,
    adam: &Adam,
    adversary: Option<&Adversary>,
    state: &CheckpointState,
) -> Result<(), TrainError> {
    let tmp = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    save_vars(varmap, &tmp.join("weights.safetensors"))?;
    candle_core::safetensors::save(&adam.tensors(), tmp.join("adam.safetensors"))?;
    if let Some(adv) = adversary {
        adv.save(&tmp)?;
    }
    let text = serde_json::to_string_pretty(state).map_err(|e| TrainError::Data(e.to_string()))?;
    std::fs::write(tmp.join("state.json"), text).map_err(io_err(&tmp))?;
    let old = dir.with_extension("old");
    let _ = std::fs::remove_dir_all(&old);
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(io_err(dir))?;
    }
    std::fs::rename(&tmp, dir).map_err(io_err(dir))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Keeps the log records of epochs before `epochs_done` (a resumed run rewrites the rest).
fn truncate_log(path: &Path, epochs_done: usize) -> Result<(), TrainError> {
    let Ok(f) = File::open(path) else {
        return Ok(());
    };
    let kept: Vec<String> = BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("epoch").and_then(|e| e.as_u64()))
                .is_some_and(|e| (e as usize) < epochs_done)
        })
        .collect();
    let mut text = kept.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    std::fs::write(path, text).map_err(io_err(path))
}

/// Draws the loss curves of a run's log: training loss (every weighted term: reconstruction of
/// both passes when re-entry is on, KL, pitch invariance, contrast and classifier) and the
/// first pass's reconstruction per step (averaged over 20 steps), validation loss per epoch.
pub fn plot_log(log: &Path, png: &Path) -> Result<(), TrainError> {
    let f = File::open(log).map_err(io_err(log))?;
    let mut train = Vec::new();
    let mut recon = Vec::new();
    let mut valid = Vec::new();
    let mut acc = (0.0, 0.0, 0usize);
    for line in BufReader::new(f).lines().map_while(Result::ok) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let step = v.get("step").and_then(|s| s.as_f64()).unwrap_or(0.0);
        match v.get("kind").and_then(|k| k.as_str()) {
            Some("step") => {
                acc.0 += v.get("loss").and_then(|x| x.as_f64()).unwrap_or(f64::NAN);
                acc.1 += v.get("recon").and_then(|x| x.as_f64()).unwrap_or(f64::NAN);
                acc.2 += 1;
                if acc.2 == 20 {
                    train.push((step, acc.0 / 20.0));
                    recon.push((step, acc.1 / 20.0));
                    acc = (0.0, 0.0, 0);
                }
            }
            Some("epoch") => {
                if let Some(l) = v.pointer("/valid/loss").and_then(|x| x.as_f64()) {
                    valid.push((step, l));
                }
            }
            _ => {}
        }
    }
    let series = vec![
        ("training loss (all weighted terms)".to_string(), train),
        ("training reconstruction (first pass)".to_string(), recon),
        ("validation loss (KL weight 1)".to_string(), valid),
    ];
    crate::plot::lines_png(
        png,
        "Three-factor model: loss per frame",
        "step",
        &series,
        true,
        (900, 540),
    )
    .map_err(|e| TrainError::Data(e.to_string()))
}

/// The timbre map of `model`: the mean `z_t` of each training instrument's notes (in every
/// dataset folder of the run, [`TrainConfig::folders`]) and the 2-D PCA of those means.
pub fn timbre_map(
    model: &ThreeFactor,
    data: &Path,
    tc: &TrainConfig,
) -> Result<TimbreMap, TrainError> {
    let cfg = model.config();
    let set = load_clips(
        &tc.folders(data),
        Split::Train,
        &[Set::Notes],
        cfg.sample_rate,
        tc.max_clips,
        tc.seed,
    )?;
    let mut by_program: std::collections::BTreeMap<u8, (MapInstrument, Vec<f64>, usize)> =
        Default::default();
    for (record, audio) in set.records.iter().zip(&set.audio) {
        let z = model.clip_timbre(audio)?;
        let entry = by_program.entry(record.program).or_insert_with(|| {
            (
                MapInstrument {
                    program: record.program,
                    name: record.instrument.clone(),
                    family: record.family.clone(),
                },
                vec![0.0; cfg.z_t],
                0,
            )
        });
        for (s, v) in entry.1.iter_mut().zip(&z) {
            *s += *v as f64;
        }
        entry.2 += 1;
    }
    let mut instruments = Vec::new();
    let mut z_t = Vec::new();
    for (_, (inst, sum, n)) in by_program {
        instruments.push(inst);
        z_t.extend(sum.iter().map(|s| (s / n as f64) as f32));
    }
    let (pca_mean, pca_basis) = if instruments.len() >= 2 && cfg.z_t >= 2 {
        let p = crate::plot::pca_2d(&z_t, cfg.z_t).map_err(|e| TrainError::Data(e.to_string()))?;
        (
            p.mean.iter().map(|v| *v as f32).collect(),
            p.axes.iter().flatten().map(|v| *v as f32).collect(),
        )
    } else {
        let mut basis = vec![0.0f32; 2 * cfg.z_t];
        basis[0] = 1.0;
        if cfg.z_t > 1 {
            basis[cfg.z_t + 1] = 1.0;
        }
        (z_t[..cfg.z_t].to_vec(), basis)
    };
    Ok(TimbreMap {
        instruments,
        z_t,
        pca_mean,
        pca_basis,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(v: Vec<f32>, shape: (usize, usize, usize)) -> Tensor {
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// The value of a term.
    fn value(term: candle_core::Result<Tensor>) -> f32 {
        term.unwrap().to_scalar::<f32>().unwrap()
    }

    /// Two crops of two frames with 2-D means: `(clean, distorted, weights)`.
    /// Clean (crop, frame): (0,0) = [1, 0], (0,1) = [3, 0], (1,0) = [0, 2], (1,1) = [0, 2].
    /// Distorted: the first coordinate moved by 1 everywhere (frame (1,1) by 10, weight 0).
    /// Weights: crop 0 weighs its frames 1/4, 3/4; crop 1 only its first frame.
    fn two_crops() -> (Tensor, Tensor, Tensor) {
        (
            tensor(vec![1., 0., 3., 0., 0., 2., 0., 2.], (2, 2, 2)),
            tensor(vec![2., 0., 4., 0., 1., 2., 10., 2.], (2, 2, 2)),
            Tensor::from_vec(vec![0.25f32, 0.75, 1.0, 0.0], (2, 2), &Device::Cpu).unwrap(),
        )
    }

    /// The term against its definition worked by hand on [`two_crops`].
    #[test]
    fn pitch_invariance_is_the_gap_over_the_spread() {
        let (clean, distorted, weights) = two_crops();
        // Gap: (0.25 + 0.75 + 1) * 1 / 2 crops = 1.
        // Centre: ([0.25 + 2.25, 0] + [0, 2]) / 2 = [1.25, 1].
        // Spread: (0.25 * (0.0625 + 1) + 0.75 * (3.0625 + 1) + 1 * (1.5625 + 1)) / 2 = 2.9375.
        let got = value(pitch_invariance(&clean, &distorted, &weights));
        let want = 1.0 / (2.9375 + 1e-6);
        assert!((got - want).abs() < 1e-6, "{got} against {want}");

        // Scale-free: scaling both means leaves it; identical means give 0.
        let scaled = value(pitch_invariance(
            &(&clean * 5.0).unwrap(),
            &(&distorted * 5.0).unwrap(),
            &weights,
        ));
        assert!((scaled - want).abs() < 1e-5, "{scaled} against {want}");
        assert_eq!(value(pitch_invariance(&clean, &clean, &weights)), 0.0);
    }

    /// The cross-entropy against its definition worked by hand: three bins, two crops of one
    /// frame weighted 1 and 0.5.
    #[test]
    fn pitch_classifier_is_the_cross_entropy_to_a_gaussian_target() {
        let logits = |v: Vec<f32>| Tensor::from_vec(v, (2, 1, 3), &Device::Cpu).unwrap();
        let rows = |v: Vec<f32>| Tensor::from_vec(v, (2, 1), &Device::Cpu).unwrap();
        let weights = rows(vec![1.0, 0.5]);
        // Uniform logits: ln 3 per frame whatever the target; (1 + 0.5) ln 3 / 2 crops.
        let got = value(pitch_classifier(
            &logits(vec![0.0; 6]),
            &rows(vec![1.0, 0.3]),
            &weights,
        ));
        assert!((got - 0.75 * 3f32.ln()).abs() < 1e-6, "{got}");
        // Logits equal to the log target (bin 1, spread 0.5: e^-2, 1, e^-2 normalised) give
        // the target's entropy.
        let q: Vec<f32> = [(-2f32).exp(), 1.0, (-2f32).exp()]
            .iter()
            .map(|v| v / (1.0 + 2.0 * (-2f32).exp()))
            .collect();
        let entropy: f32 = q.iter().map(|p| -p * p.ln()).sum();
        let log_q: Vec<f32> = q.iter().chain(&q).map(|p| p.ln()).collect();
        let got = value(pitch_classifier(
            &logits(log_q),
            &rows(vec![1.0, 1.0]),
            &weights,
        ));
        assert!(
            (got - 0.75 * entropy).abs() < 1e-5,
            "{got} against {}",
            0.75 * entropy
        );
    }

    /// The contrast term against its definition worked by hand on [`two_crops`], only crop 0
    /// shifted.
    #[test]
    fn pitch_contrast_is_the_distortion_gap_over_the_shift_gap() {
        let (clean, distorted, weights) = two_crops();
        // Shifted: crop 0's second coordinate moved by 2 (its squared gap 4 on both frames);
        // crop 1 moved by 100, but it is not a shifted crop, so it must not count.
        let shifted = tensor(vec![1., 2., 3., 2., 100., 2., 0., 2.], (2, 2, 2));
        let moved = [1.0f32, 0.0];
        // Distortion gap: crop 0 (0.25 + 0.75) * 1 = 1, crop 1 1 * 1 = 1; mean 1.
        // Shift gap: crop 0 only, (0.25 + 0.75) * 4 = 4.
        let got = value(pitch_contrast(
            &clean, &distorted, &shifted, &weights, &moved,
        ));
        let want = 1.0 / (4.0 + 1e-6);
        assert!((got - want).abs() < 1e-6, "{got} against {want}");

        // Scale-free; identical distorted means give 0; no shifted crop gives 0.
        let scaled = |t: &Tensor| (t * 3.0).unwrap();
        let got = value(pitch_contrast(
            &scaled(&clean),
            &scaled(&distorted),
            &scaled(&shifted),
            &weights,
            &moved,
        ));
        assert!((got - want).abs() < 1e-5, "{got} against {want}");
        let same = pitch_contrast(&clean, &clean, &shifted, &weights, &moved);
        assert_eq!(value(same), 0.0);
        let none = pitch_contrast(&clean, &distorted, &shifted, &weights, &[0.0, 0.0]);
        assert_eq!(value(none), 0.0);
    }
}
