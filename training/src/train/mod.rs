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
use step_log::{StepTerms, TermSums};

mod adam;
mod batch;
mod checkpoint;
mod config;
mod error;
mod losses;
mod setup;
mod step_log;
mod timbre_map;
pub use adam::*;
pub use batch::*;
pub use checkpoint::*;
pub use config::*;
pub use error::*;
pub use losses::*;
pub use setup::*;
pub use timbre_map::*;

#[cfg(test)]
mod tests;

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
        let mut sums = TermSums::default();
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
                let (swap_term, variation_term, cycle_term) = match &swap_crops {
                    Some(crops) => {
                        let terms = swap::swap_terms(&model, crops, &tc.swap)?;
                        loss = terms.added_to(loss, &tc.swap)?;
                        (terms.swap, terms.variation, terms.cycle)
                    }
                    None => (None, None, None),
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
                let optional = |t: &Option<Tensor>| -> candle_core::Result<f64> {
                    t.as_ref().map_or(Ok(f64::NAN), scalar)
                };
                let terms = StepTerms {
                    loss: loss_v,
                    recon: scalar(&first.recon)?,
                    recon_reentry: match &second {
                        Some(p) => scalar(&p.recon)?,
                        None => f64::NAN,
                    },
                    kl_t: scalar(&first.kl_t)?,
                    kl_v: match &first.kl_v {
                        Some(v) => scalar(v)?,
                        None => 0.0,
                    },
                    kl_p: scalar(&first.kl_p)?,
                    pitch_invariance: optional(&inv)?,
                    pitch_contrast: optional(&contrast)?,
                    pitch_classifier: optional(&ruler)?,
                    swap: optional(&swap_term)?,
                    cross_library: optional(&cross_term)?,
                    variation_invariance: optional(&variation_term)?,
                    adversary: optional(&adversary_term)?,
                    cycle: optional(&cycle_term)?,
                };
                sums.add(&terms);
                let record = terms.record(epoch, step, beta, lr, norm, frames as f64 / dt);
                writeln!(log, "{record}").map_err(io_err(out))?;
                progress(
                    epoch,
                    i + 1,
                    steps_per_epoch,
                    &terms.progress_line(beta, frames_done as f64 / train_time),
                );
            }
            Ok(())
        })?;
        let valid = validate(&model, &valid_crops, tc, &dev)?;
        let (valid_swap, valid_variation, valid_cycle) = match &valid_swap_crops {
            Some(crops) => {
                let terms = swap::swap_terms(&model, crops, &tc.swap)?;
                let value = |t: Option<Tensor>| -> candle_core::Result<Option<f64>> {
                    t.map(|t| Ok(t.to_scalar::<f32>()? as f64)).transpose()
                };
                let cycle = value(terms.cycle)?;
                (value(terms.swap)?, value(terms.variation)?, cycle)
            }
            None => (None, None, None),
        };
        let valid_cross = match &programs {
            Some((_, crops)) => Some(
                cross_library_loss(&model, crops, tc.cross_library.temperature)?
                    .to_scalar::<f32>()? as f64,
            ),
            None => None,
        };
        // The score the best epoch is chosen by: the negative ELBO, plus the weighted pair
        // terms (swap, variation, cycle) and cross-library term when they are trained.
        let score = valid.loss
            + valid_swap.map_or(0.0, |v| tc.swap.weight * v)
            + valid_variation.map_or(0.0, |v| tc.swap.variation_weight * v)
            + valid_cycle.map_or(0.0, |v| tc.swap.cycle_weight * v)
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
        let mut record = serde_json::json!({
            "kind": "epoch", "epoch": epoch, "step": state.step, "lr": lr,
            "valid_swap": valid_swap,
            "valid_cross_library": valid_cross,
            "valid_variation_invariance": valid_variation,
            "valid_cycle": valid_cycle,
            "valid": valid, "best": improved, "wall_s": state.wall_s,
            "frames_per_s": frames_done as f64 / train_time,
        });
        if let Some(fields) = record.as_object_mut() {
            fields.extend(sums.epoch_fields(n, tc.reentry));
        }
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
