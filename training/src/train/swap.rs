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
//! reconstruction term. With [`SwapConfig::differential`] the prediction is the engine's
//! differential output stage instead (the source reshaped by the difference of two decodings).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, D};
use serde::{Deserialize, Serialize};

use super::{TrainConfig, TrainError};
use crate::data::pairs::{self, PairAudio};
use crate::model::features::FrameFeatures;
use crate::model::{ThreeFactor, LIKELIHOOD_VARIANCE};
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
    /// Score the engine's differential output stage instead of the decoded spectrum: the
    /// prediction is the source's own normalised log-magnitude plus the difference between
    /// the decodings with B's reference `z_t` and with the source's own `z_t` (what
    /// `PhaseMode::Differential` applies to the input, bins ratio for ratio). It asks the
    /// decoder for the change between two timbres rather than for every detail of B.
    pub differential: bool,
    /// Weight of the variation-invariance term on the pairs (0: off): the gap between the
    /// posterior means of `z_v` of the source and of the target (the same score played by
    /// another instrument, each encoded with its own `z_t`), frame by frame over the source's
    /// sounding frames, relative to the spread of the source's means over the batch
    /// (scale-free, as the pitch-invariance term). It asks `z_v` to carry what the performance
    /// does (loudness, articulation, vibrato), the same whichever instrument plays it, and
    /// leaves telling instruments apart to `z_t`.
    pub variation_weight: f64,
    /// Weight of the cycle term (0: off): the timbre encoder reads the swapped output (the
    /// decoding the swap term scores, whatever that term's weight) and its `z_t` is pulled
    /// towards the `z_t` of B's reference, held fixed (squared distance of the posterior
    /// means, summed over dimensions, averaged over pairs). It asks the decoder for an output
    /// whose timbre is read as B's, whether or not it matches B's rendering bin by bin.
    pub cycle_weight: f64,
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
            differential: false,
            variation_weight: 0.0,
            cycle_weight: 0.0,
        }
    }
}

impl SwapConfig {
    /// Whether the pairs are used (a pair folder and a positive weight for the swap term or
    /// the variation-invariance term).
    pub fn enabled(&self) -> bool {
        self.pairs.is_some() && self.any_weight()
    }

    fn any_weight(&self) -> bool {
        self.weight > 0.0 || self.variation_weight > 0.0 || self.cycle_weight > 0.0
    }

    /// Whether every value is the default (the config then serialises without it, so files
    /// written before the swap term read and compare as before).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the settings before a run.
    pub fn validate(&self) -> Result<(), TrainError> {
        if self.pairs.is_some() != self.any_weight() {
            return Err(TrainError::Settings(
                "swap.pairs and a positive swap.weight, swap.variation_weight or \
                 swap.cycle_weight go together"
                    .into(),
            ));
        }
        if self.enabled() && (self.batch == 0 || self.reference_frames == 0) {
            return Err(TrainError::Settings(
                "swap.batch and swap.reference_frames must be positive".into(),
            ));
        }
        for (name, w) in [
            ("weight", self.weight),
            ("variation_weight", self.variation_weight),
            ("cycle_weight", self.cycle_weight),
        ] {
            if !w.is_finite() || w < 0.0 {
                return Err(TrainError::Settings(format!(
                    "swap.{name} must be a finite number >= 0, got {w}"
                )));
            }
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
    super::crops::crops_on_two_threads(picks, tc, |ex, rng, p| {
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
    let bins = crops[0].part(part).bins;
    super::stack(crops, |c| field(c.part(part)), bins, dev)
}

/// The timbre pooling weights of `part` of every crop, `(pairs, frames)`.
fn weights(crops: &[SwapCrop], part: Part, dev: &Device) -> candle_core::Result<Tensor> {
    let frames = crops[0].part(part).frames;
    let w = super::pooling(crops, |c| &c.part(part).frame_db);
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
/// target's normalised log-magnitude. With `differential`, `y` is instead
/// `x_A + dec(z_t of B's reference) − dec(z_t of A)`, the engine's differential stage (the
/// normalisation is one affine map for every bin, so a difference of normalised decodings is
/// the log-ratio the engine applies, divided by the same scale).
pub fn swap_loss(
    model: &ThreeFactor,
    crops: &[SwapCrop],
    differential: bool,
) -> candle_core::Result<Tensor> {
    let own = encode_own(model, crops, Part::Source)?;
    let decoded = swap_decode(model, crops, differential, &own.z_t, &own.local)?;
    swap_error(model, crops, &decoded.output)
}

/// `part` of every crop encoded as the engine encodes its input: `z_t` (posterior mean) from
/// the part itself, the local posteriors conditioned on it.
fn encode_own(
    model: &ThreeFactor,
    crops: &[SwapCrop],
    part: Part,
) -> candle_core::Result<crate::model::ClipEncoding> {
    let (tv, p) = inputs(model, crops, part)?;
    model.encode_pooled(&tv, &p, weights(crops, part, model.device())?)
}

/// The swapped output of every crop and the `z_t` it was decoded with.
struct SwapDecoding {
    /// Normalised log-magnitude `(pairs, frames, bins)`: the decoding with B's reference `z_t`
    /// (with `differential`, the source reshaped by the difference of two decodings).
    output: Tensor,
    /// `z_t` (posterior mean) of B's reference, `(pairs, z_t)`.
    z_ref: Tensor,
}

/// The swap of every crop given the source's own `z_t` and its local posteriors.
fn swap_decode(
    model: &ThreeFactor,
    crops: &[SwapCrop],
    differential: bool,
    z_own: &Tensor,
    local: &crate::model::LocalPosteriors,
) -> candle_core::Result<SwapDecoding> {
    let dev = model.device();
    let (tv_r, p_r) = inputs(model, crops, Part::Reference)?;
    let z_ref = model
        .encode_timbre(&tv_r, &p_r, &weights(crops, Part::Reference, dev)?)?
        .mean;
    let variation = local.variation.as_ref().map(|v| &v.mean);
    let mut output = model.decode(&z_ref, variation, &local.pitch.mean)?;
    if differential {
        let own = model.decode(z_own, variation, &local.pitch.mean)?;
        let source = model.normalise_log_mag(&stack(crops, Part::Source, |f| &f.log_mag, dev)?)?;
        output = ((source + output)? - own)?;
    }
    Ok(SwapDecoding { output, z_ref })
}

/// The swap term of a swapped output `y`: the Gaussian negative log-likelihood of the
/// target's normalised log-magnitude, per frame, averaged over frames and pairs.
fn swap_error(model: &ThreeFactor, crops: &[SwapCrop], y: &Tensor) -> candle_core::Result<Tensor> {
    let dev = model.device();
    let target = model.normalise_log_mag(&stack(crops, Part::Target, |f| &f.log_mag, dev)?)?;
    (y - target)?.sqr()?.sum(D::Minus1)?.mean_all()? / (2.0 * LIKELIHOOD_VARIANCE)
}

/// The cycle term ([`SwapConfig::cycle_weight`]): the squared distance between the `z_t` the
/// timbre encoder reads from the swapped output (pooled over the source's frames, with the
/// source's weights) and B's reference `z_t`, held fixed, summed over dimensions and averaged
/// over pairs.
fn cycle_loss(
    model: &ThreeFactor,
    crops: &[SwapCrop],
    decoded: &SwapDecoding,
) -> candle_core::Result<Tensor> {
    let (tv, p) = model.encoder_inputs_from_normalised(&decoded.output)?;
    let source_weights = weights(crops, Part::Source, model.device())?;
    let z_out = model.encode_timbre(&tv, &p, &source_weights)?.mean;
    (z_out - decoded.z_ref.detach())?
        .sqr()?
        .sum(D::Minus1)?
        .mean_all()
}

/// The terms a step takes from its pairs ([`swap_terms`]); `None` where the weight is 0.
pub struct SwapTerms {
    /// The swap term ([`swap_loss`]).
    pub swap: Option<Tensor>,
    /// The variation-invariance term ([`SwapConfig::variation_weight`]).
    pub variation: Option<Tensor>,
    /// The cycle term ([`SwapConfig::cycle_weight`]).
    pub cycle: Option<Tensor>,
}

impl SwapTerms {
    /// `loss` plus every term present times its weight in `cfg`.
    pub fn added_to(&self, loss: Tensor, cfg: &SwapConfig) -> candle_core::Result<Tensor> {
        let mut loss = loss;
        for (term, weight) in [
            (&self.swap, cfg.weight),
            (&self.variation, cfg.variation_weight),
            (&self.cycle, cfg.cycle_weight),
        ] {
            if let Some(term) = term {
                loss = (loss + (term * weight)?)?;
            }
        }
        Ok(loss)
    }
}

/// The pair terms of `crops` that `cfg` weights, sharing the source's encoding and the
/// swapped output.
pub fn swap_terms(
    model: &ThreeFactor,
    crops: &[SwapCrop],
    cfg: &SwapConfig,
) -> candle_core::Result<SwapTerms> {
    let source = encode_own(model, crops, Part::Source)?;
    let decoded = if cfg.weight > 0.0 || cfg.cycle_weight > 0.0 {
        Some(swap_decode(
            model,
            crops,
            cfg.differential,
            &source.z_t,
            &source.local,
        )?)
    } else {
        None
    };
    let swap = match &decoded {
        Some(d) if cfg.weight > 0.0 => Some(swap_error(model, crops, &d.output)?),
        _ => None,
    };
    let cycle = match &decoded {
        Some(d) if cfg.cycle_weight > 0.0 => Some(cycle_loss(model, crops, d)?),
        _ => None,
    };
    let variation = match (&source.local.variation, cfg.variation_weight > 0.0) {
        (Some(a), true) => {
            let target = encode_own(model, crops, Part::Target)?;
            match &target.local.variation {
                // The source's frame weights, each crop's summing to 1 (the timbre pooling
                // weights are normalised that way).
                Some(b) => Some(super::pitch_invariance(&a.mean, &b.mean, &source.weights)?),
                None => None,
            }
        }
        _ => None,
    };
    Ok(SwapTerms {
        swap,
        variation,
        cycle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::features::FeatureExtractor;
    use crate::model::{Config, FeatureStats};

    /// Frames per crop in these tests.
    const FRAMES: usize = 30;

    /// A tiny randomly initialised model (identity normalisation).
    fn model() -> ThreeFactor {
        model_and_vars().1
    }

    /// [`model`] and its variables.
    fn model_and_vars() -> (candle_nn::VarMap, ThreeFactor) {
        let cfg = Config {
            z_t: 6,
            z_v: 5,
            z_p: 4,
            hidden: 16,
            kernel: 3,
            dilations: vec![1, 2],
            timbre_layers: 1,
            ..Config::default()
        };
        let stats = FeatureStats::identity(cfg.stft().n_bins());
        super::super::initial_model(&cfg, &stats, 5).unwrap()
    }

    /// The features of a 330 Hz harmonic tone of peak about `gain`.
    fn tone(model: &ThreeFactor, gain: f32) -> FrameFeatures {
        let cfg = model.config();
        let samples: Vec<f32> = (0..8_000)
            .map(|i| {
                let t = i as f32 / cfg.sample_rate as f32;
                (1..5)
                    .map(|h| (std::f32::consts::TAU * 330.0 * h as f32 * t).sin() / h as f32)
                    .sum::<f32>()
                    * gain
            })
            .collect();
        FeatureExtractor::new(&cfg.stft(), cfg.mag_floor).frames(&samples, 0, FRAMES)
    }

    fn term(model: &ThreeFactor, crop: SwapCrop, differential: bool) -> f64 {
        swap_loss(model, &[crop], differential)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64
    }

    /// The cycle term is connected to the model: a few normalised gradient steps on it alone
    /// lower it by more than half, while the swap and variation terms (weight 0) are not
    /// computed.
    #[test]
    fn gradient_steps_on_the_cycle_term_lower_it() {
        let (vars, model) = model_and_vars();
        let cfg = SwapConfig {
            pairs: Some("pairs".into()),
            weight: 0.0,
            cycle_weight: 1.0,
            ..SwapConfig::default()
        };
        assert!(cfg.validate().is_ok());
        let (a, b) = (tone(&model, 0.2), tone(&model, 0.02));
        let crops = [SwapCrop {
            source: a.clone(),
            target: b.clone(),
            reference: b,
        }];
        let cycle = || {
            let terms = swap_terms(&model, &crops, &cfg).unwrap();
            assert!(terms.swap.is_none() && terms.variation.is_none());
            terms.cycle.unwrap()
        };
        let first = cycle().to_scalar::<f32>().unwrap();
        for _ in 0..30 {
            let grads = cycle().backward().unwrap();
            // The model's weights (the feature statistics are not trained), each step a
            // fixed length along its gradient.
            for (name, var) in vars.data().lock().unwrap().iter() {
                if let (false, Some(g)) = (name.starts_with("features."), grads.get(var)) {
                    let norm = g
                        .sqr()
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap();
                    let step = (g * (0.01 / f64::from(norm.sqrt().max(1e-6)))).unwrap();
                    var.set(&(var.as_tensor() - step).unwrap()).unwrap();
                }
            }
        }
        let last = cycle().to_scalar::<f32>().unwrap();
        println!("cycle term {first} -> {last}");
        assert!(first > 0.0 && last < 0.5 * first, "{first} -> {last}");
    }

    /// The variation-invariance term is 0 when B plays A's own sound (same input, same `z_t`,
    /// same `z_v`), positive when B sounds otherwise; the swap term is left out at weight 0.
    #[test]
    fn the_variation_term_is_zero_for_the_same_sound_and_positive_for_another() {
        let model = model();
        let cfg = SwapConfig {
            pairs: Some("pairs".into()),
            weight: 0.0,
            variation_weight: 1.0,
            ..SwapConfig::default()
        };
        let (a, b) = (tone(&model, 0.2), tone(&model, 0.05));
        let crop = |target: &FrameFeatures| SwapCrop {
            source: a.clone(),
            target: target.clone(),
            reference: a.clone(),
        };
        let value = |target: &FrameFeatures| {
            let terms = swap_terms(&model, &[crop(target), crop(&a)], &cfg).unwrap();
            assert!(terms.swap.is_none());
            terms.variation.unwrap().to_scalar::<f32>().unwrap()
        };
        let same = value(&a);
        assert!(same.abs() < 1e-6, "same sound: {same}");
        let other = value(&b);
        assert!(other > 1e-3, "another sound: {other}");
    }

    #[test]
    fn the_differential_term_is_zero_when_the_reference_is_the_source_and_b_is_a() {
        // Reference = source: both decodings use the same z_t, so the differential prediction
        // is the source itself, exact whatever the (untrained) decoder draws.
        let model = model();
        let a = tone(&model, 0.2);
        let crop = || SwapCrop {
            source: a.clone(),
            target: a.clone(),
            reference: a.clone(),
        };
        let differential = term(&model, crop(), true);
        assert!(
            differential.abs() < 1e-6,
            "differential term {differential}"
        );
        // The plain term asks the untrained decoder to draw the source itself.
        let plain = term(&model, crop(), false);
        assert!(plain > 1.0, "plain term {plain}");
    }

    #[test]
    fn the_differential_term_is_the_squared_log_ratio_when_the_timbres_match() {
        // B is A at half the amplitude and the reference is A: the prediction is A, so the
        // term is, per frame, Σ_bins (ln(|A|+f) − ln(|A|/2+f))² / 2σ², computed here directly.
        let model = model();
        let (a, half) = (tone(&model, 0.2), tone(&model, 0.1));
        let expected = a
            .log_mag
            .iter()
            .zip(&half.log_mag)
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum::<f64>()
            / FRAMES as f64
            / (2.0 * LIKELIHOOD_VARIANCE);
        let got = term(
            &model,
            SwapCrop {
                source: a.clone(),
                target: half,
                reference: a,
            },
            true,
        );
        assert!(expected > 1.0, "the two levels differ: {expected}");
        assert!(
            (got - expected).abs() < 1e-4 * expected,
            "term {got}, expected {expected}"
        );
    }
}
