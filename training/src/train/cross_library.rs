//! The cross-library timbre term (not in the paper): one GM program played by several
//! training libraries (FluidR3, the csound GM bank, the OPL3 FM bank) should land on nearby
//! `z_t`, nearer than other programs do.
//!
//! The unsupervised objective lets `z_t` name a library's sample as well as what makes the
//! instrument that instrument, and on an unseen library only the second helps. Each step
//! draws [`CrossLibraryConfig::programs`] programs that two or more libraries have, one clip
//! of each program from every library that has it, and encodes a crop of each clip as
//! training's first pass does (the pitch-shifted crop, the clean crop's pooling weights). The
//! term is a supervised contrastive loss (Khosla et al. 2020) on the posterior means with the
//! same Euclidean geometry the evaluation's k-NN uses: for every crop, the softmax over the
//! other crops of minus their squared distance, divided by the batch's mean squared distance
//! and a temperature, and the mean negative log-probability of the crops of its program from
//! the other libraries. Dividing by the mean distance makes it scale-free, so shrinking or
//! growing `z_t` (which the KL term also acts on) neither lowers nor raises it.

use std::collections::HashMap;

use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

use super::crops::{crops_on_two_threads, timbre_crop, TimbreCrop};
use super::{pooling, stack, ClipSet, TrainConfig, TrainError};
use crate::manifest::ClipRecord;
use crate::rng::SplitMix64;

/// The cross-library term's settings (`"cross_library"` in the training config; off by
/// default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrossLibraryConfig {
    /// Weight of the term relative to the reconstruction term (0: off; the term is a mean
    /// negative log-probability, nats per crop).
    pub weight: f64,
    /// Programs per step; each brings one clip from every library that has it.
    pub programs: usize,
    /// Softmax temperature, in units of the batch's mean squared distance.
    pub temperature: f64,
    /// Validation programs (fixed crops, drawn once from the validation clips).
    pub valid_programs: usize,
    /// Each program's clips play the same score in every library (the dataset's same note at
    /// the same velocity, or the same phrase) where the libraries have it, instead of a clip
    /// drawn at random per library: the positives then differ only in the library.
    pub same_score: bool,
}

impl Default for CrossLibraryConfig {
    fn default() -> Self {
        Self {
            weight: 0.0,
            programs: 16,
            temperature: 0.1,
            valid_programs: 36,
            same_score: false,
        }
    }
}

impl CrossLibraryConfig {
    /// Whether the term is on.
    pub fn enabled(&self) -> bool {
        self.weight > 0.0
    }

    /// Whether every value is the default (the config then serialises without it, so files
    /// written before the term read and compare as before).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the settings before a run of `folders` dataset folders.
    pub fn validate(&self, folders: usize) -> Result<(), TrainError> {
        if !self.weight.is_finite() || self.weight < 0.0 {
            return Err(TrainError::Settings(format!(
                "cross_library.weight must be a finite number >= 0, got {}",
                self.weight
            )));
        }
        if !self.enabled() {
            return Ok(());
        }
        if folders < 2 {
            return Err(TrainError::Settings(
                "cross_library needs two or more libraries: add dataset folders of other \
                 training libraries to `libraries`"
                    .into(),
            ));
        }
        if self.programs < 2 || self.valid_programs < 2 {
            return Err(TrainError::Settings(
                "cross_library.programs and valid_programs must be at least 2".into(),
            ));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(TrainError::Settings(format!(
                "cross_library.temperature must be positive, got {}",
                self.temperature
            )));
        }
        Ok(())
    }
}

/// The clips of a set grouped by program, then by library; only the programs that two or
/// more libraries have (the others give the term no pair).
pub(super) struct ProgramIndex {
    /// Per program: per library that has it, its clips (indices into the set).
    groups: Vec<Vec<Vec<usize>>>,
    /// Per clip: the clips of the other libraries that play its program and score.
    same_score: Vec<Vec<usize>>,
}

impl ProgramIndex {
    /// Groups `set`'s clips.
    pub fn new(set: &ClipSet) -> Self {
        let libraries = set.folder.iter().copied().max().map_or(0, |m| m + 1);
        let mut by_program = vec![vec![Vec::new(); libraries]; 128];
        for (i, (record, &folder)) in set.records.iter().zip(&set.folder).enumerate() {
            by_program[usize::from(record.program & 0x7F)][folder].push(i);
        }
        let groups = by_program
            .into_iter()
            .map(|libs| {
                libs.into_iter()
                    .filter(|c| !c.is_empty())
                    .collect::<Vec<_>>()
            })
            .filter(|libs| libs.len() >= 2)
            .collect();
        let key = |r: &ClipRecord| (r.program, r.set, r.note, r.velocity, r.phrase);
        let mut by_score: HashMap<_, Vec<usize>> = HashMap::new();
        for (i, r) in set.records.iter().enumerate() {
            by_score.entry(key(r)).or_default().push(i);
        }
        let same_score = set
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                by_score[&key(r)]
                    .iter()
                    .copied()
                    .filter(|&j| set.folder[j] != set.folder[i])
                    .collect()
            })
            .collect();
        Self { groups, same_score }
    }

    /// Programs with clips in two or more libraries.
    pub fn programs(&self) -> usize {
        self.groups.len()
    }

    /// `programs` distinct programs (all of them if fewer) drawn by `rng`, and for each one
    /// clip of every library that has it: `(clip, label)` with the label the program's place
    /// in the draw. With `same_score`, the first library's clip is drawn and the others play
    /// its score where they have it (else a clip drawn at random).
    pub fn pick(
        &self,
        programs: usize,
        same_score: bool,
        rng: &mut SplitMix64,
    ) -> Vec<(usize, usize)> {
        let mut order: Vec<usize> = (0..self.groups.len()).collect();
        // A partial Fisher-Yates shuffle: the first `programs` entries are the draw.
        let n = programs.min(order.len());
        for i in 0..n {
            let j = i + rng.below((order.len() - i) as u64) as usize;
            order.swap(i, j);
        }
        let mut picks = Vec::new();
        for (label, &g) in order[..n].iter().enumerate() {
            let mut first: Option<usize> = None;
            for clips in &self.groups[g] {
                let drawn = clips[rng.below(clips.len() as u64) as usize];
                let clip = match first {
                    Some(f) if same_score => self.same_score[f]
                        .iter()
                        .copied()
                        .find(|c| clips.contains(c))
                        .unwrap_or(drawn),
                    _ => drawn,
                };
                first.get_or_insert(clip);
                picks.push((clip, label));
            }
        }
        picks
    }
}

/// One step's crops for the term and their program labels.
pub(super) struct ProgramCrops {
    crops: Vec<TimbreCrop>,
    labels: Vec<usize>,
}

/// Crops of `picks` (`(clip, label)` from [`ProgramIndex::pick`]) of `set`, each seeded by
/// `seed` and its place, made on two threads.
pub(super) fn make_program_crops(
    set: &ClipSet,
    picks: &[(usize, usize)],
    seed: u64,
    tc: &TrainConfig,
) -> ProgramCrops {
    let seeded: Vec<(usize, u64)> = picks
        .iter()
        .enumerate()
        .map(|(j, &(clip, _))| (clip, crate::rng::mix64(seed ^ (j as u64) << 32)))
        .collect();
    let crops = crops_on_two_threads(&seeded, tc, |ex, rng, clip| {
        timbre_crop(&set.audio[clip], tc, ex, rng)
    });
    ProgramCrops {
        crops,
        labels: picks.iter().map(|p| p.1).collect(),
    }
}

/// The term for `crops` under `model` (in the graph).
pub(super) fn cross_library_loss(
    model: &crate::model::ThreeFactor,
    crops: &ProgramCrops,
    temperature: f64,
) -> candle_core::Result<Tensor> {
    let dev = model.device();
    let items = &crops.crops;
    let (b, bins) = (items.len(), items[0].shifted.bins);
    let w = pooling(items, |c| &c.clean_db);
    let weights = Tensor::from_vec(w, (b, items[0].shifted.frames), dev)?;
    let (tv, p) = model.encoder_inputs(
        &stack(items, |c| &c.shifted.log_mag, bins, dev)?,
        &stack(items, |c| &c.shifted.envelope, bins, dev)?,
        &stack(items, |c| &c.shifted.fine, bins, dev)?,
    )?;
    let means = model.encode_timbre(&tv, &p, &weights)?.mean;
    supervised_contrast(&means, &crops.labels, temperature)
}

/// The supervised contrastive loss of `means` `(n, z)` with `labels` (see the module doc):
/// `d_ij = |m_i - m_j|^2 / mean_{i != j} d_ij`, `l_ij = -d_ij / temperature`, and the mean over
/// the crops that have a positive of `-mean_{j in P(i)} log softmax_{j != i}(l_ij)`, `P(i)` the
/// other crops with `i`'s label. 0 when no crop has a positive.
pub(super) fn supervised_contrast(
    means: &Tensor,
    labels: &[usize],
    temperature: f64,
) -> candle_core::Result<Tensor> {
    let n = labels.len();
    let dev = means.device();
    // Positive weights (1/|P(i)| on i's positives) and the diagonal mask.
    let mut positive = vec![0.0f32; n * n];
    let mut diagonal = vec![0.0f32; n * n];
    let mut anchors = 0usize;
    for i in 0..n {
        diagonal[i * n + i] = 1.0;
        let count = (0..n).filter(|&j| j != i && labels[j] == labels[i]).count();
        if count == 0 {
            continue;
        }
        anchors += 1;
        for j in 0..n {
            if j != i && labels[j] == labels[i] {
                positive[i * n + j] = 1.0 / count as f32;
            }
        }
    }
    if anchors == 0 {
        return Tensor::zeros((), DType::F32, dev);
    }
    let positive = Tensor::from_vec(positive, (n, n), dev)?;
    let diagonal = Tensor::from_vec(diagonal, (n, n), dev)?;
    let norms = means.sqr()?.sum_keepdim(1)?;
    let gram = means.matmul(&means.t()?)?;
    let d = norms
        .broadcast_add(&norms.t()?)?
        .sub(&(gram * 2.0)?)?
        .relu()?;
    let mean = (d.sum_all()? / (n * (n - 1)) as f64)?.affine(1.0, 1e-12)?;
    let logits = d.broadcast_div(&mean)?.affine(-1.0 / temperature, 0.0)?;
    // The diagonal leaves the softmax: a large negative logit.
    let logits = (logits - (diagonal * 1e9)?)?;
    let log_p = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    (positive * log_p)?.sum_all()?.neg()? / anchors as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Set, Split};

    /// The loss against a plain f64 implementation of the same formula, on random points with
    /// one label that has no positive (left out of the mean).
    #[test]
    fn supervised_contrast_matches_a_direct_computation() {
        let (n, z) = (9usize, 5usize);
        let labels = [0, 0, 1, 1, 1, 2, 2, 3, 0];
        let mut rng = SplitMix64::new(7);
        let points: Vec<f32> = (0..n * z)
            .map(|_| (rng.below(2001) as f32 - 1000.0) / 400.0)
            .collect();
        let got = supervised_contrast(
            &Tensor::from_vec(points.clone(), (n, z), &candle_core::Device::Cpu).unwrap(),
            &labels,
            0.3,
        )
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;

        let p = |i: usize, k: usize| points[i * z + k] as f64;
        let dist = |i: usize, j: usize| (0..z).map(|k| (p(i, k) - p(j, k)).powi(2)).sum::<f64>();
        let mut mean = 0.0;
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    mean += dist(i, j);
                }
            }
        }
        mean /= (n * (n - 1)) as f64;
        let (mut total, mut anchors) = (0.0, 0);
        for i in 0..n {
            let pos: Vec<usize> = (0..n)
                .filter(|&j| j != i && labels[j] == labels[i])
                .collect();
            if pos.is_empty() {
                continue;
            }
            let logit = |j: usize| -dist(i, j) / mean / 0.3;
            let lse = (0..n)
                .filter(|&j| j != i)
                .map(|j| logit(j).exp())
                .sum::<f64>()
                .ln();
            total += pos.iter().map(|&j| lse - logit(j)).sum::<f64>() / pos.len() as f64;
            anchors += 1;
        }
        let want = total / anchors as f64;
        assert!(
            (got - want).abs() < 1e-4 * want.max(1.0),
            "{got} against {want}"
        );
    }

    /// Scale-free (the same for the points times 10), and lower when each label's points sit
    /// together than when the labels are mixed at the same places.
    #[test]
    fn supervised_contrast_is_scale_free_and_rewards_grouping() {
        let dev = candle_core::Device::Cpu;
        let points: Vec<f32> = vec![0.0, 0.0, 0.1, 0.0, 5.0, 5.0, 5.1, 5.0, 0.0, 9.0, 0.1, 9.0];
        let grouped = [0, 0, 1, 1, 2, 2];
        let mixed = [0, 1, 2, 0, 1, 2];
        let loss = |scale: f32, labels: &[usize]| {
            let scaled: Vec<f32> = points.iter().map(|v| v * scale).collect();
            supervised_contrast(
                &Tensor::from_vec(scaled, (6, 2), &dev).unwrap(),
                labels,
                0.1,
            )
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
        };
        let (one, ten) = (loss(1.0, &grouped), loss(10.0, &grouped));
        assert!((one - ten).abs() < 1e-4, "{one} against {ten}");
        // Grouped: each point's only positive is its nearest neighbour by far.
        assert!(one < 0.01, "{one}");
        assert!(loss(1.0, &mixed) > 1.0, "{}", loss(1.0, &mixed));
    }

    fn record(program: u8, note: u8) -> ClipRecord {
        ClipRecord {
            set: Set::Notes,
            path: format!("p{program}-{note}.wav").into(),
            program,
            instrument: String::new(),
            family: String::new(),
            note: Some(note),
            velocity: 80,
            phrase: None,
            split: Split::Train,
            sample_rate: 32_000,
            samples: 0,
            hop: 160,
            frame_notes: Vec::new(),
        }
    }

    /// Only programs of two or more libraries are drawn; each draw brings one clip of that
    /// program from every library that has it, distinct programs get distinct labels.
    #[test]
    fn program_index_draws_each_program_from_every_library_that_has_it() {
        // Library 0: programs 0, 0, 40, 73; library 1: 0, 40; library 2: 40, 56.
        let programs = [
            (0, 0u8),
            (0, 0),
            (0, 40),
            (0, 73),
            (1, 0),
            (1, 40),
            (2, 40),
            (2, 56),
        ];
        let set = ClipSet {
            records: programs.iter().map(|&(_, p)| record(p, 60)).collect(),
            audio: vec![Vec::new(); programs.len()],
            folder: programs.iter().map(|&(f, _)| f).collect(),
        };
        let index = ProgramIndex::new(&set);
        assert_eq!(index.programs(), 2);
        let mut rng = SplitMix64::new(3);
        for _ in 0..20 {
            let picks = index.pick(5, false, &mut rng);
            // Program 0: libraries 0 and 1; program 40: libraries 0, 1 and 2.
            assert_eq!(picks.len(), 5);
            for label in 0..2 {
                let clips: Vec<usize> =
                    picks.iter().filter(|p| p.1 == label).map(|p| p.0).collect();
                let program = set.records[clips[0]].program;
                assert!(clips.iter().all(|&c| set.records[c].program == program));
                let mut libs: Vec<usize> = clips.iter().map(|&c| set.folder[c]).collect();
                libs.sort_unstable();
                let want: Vec<usize> = if program == 0 {
                    vec![0, 1]
                } else {
                    vec![0, 1, 2]
                };
                assert_eq!(libs, want);
            }
        }
    }

    /// With `same_score`, every library's clip of a drawn program plays the first one's note
    /// where it has it; a library without that note gives a clip of the program all the same.
    #[test]
    fn same_score_picks_play_one_note_in_every_library() {
        // Program 0 in libraries 0 and 1 at notes 60..64, library 2 at note 90 only.
        let mut clips = Vec::new();
        for folder in 0..2 {
            for note in 60..64 {
                clips.push((folder, record(0, note)));
            }
        }
        clips.push((2, record(0, 90)));
        let set = ClipSet {
            folder: clips.iter().map(|c| c.0).collect(),
            audio: vec![Vec::new(); clips.len()],
            records: clips.into_iter().map(|c| c.1).collect(),
        };
        let index = ProgramIndex::new(&set);
        let mut rng = SplitMix64::new(11);
        for _ in 0..20 {
            let picks = index.pick(1, true, &mut rng);
            assert_eq!(picks.len(), 3);
            let note = |i: usize| set.records[picks[i].0].note;
            let folder = |i: usize| set.folder[picks[i].0];
            assert_eq!((folder(0), folder(1), folder(2)), (0, 1, 2));
            assert_eq!(note(0), note(1));
            assert_eq!(note(2), Some(90));
        }
    }
}
