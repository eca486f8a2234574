//! The clips a run trains on and how a step's crops become one batch of tensors, with the
//! pitch classifier's targets.

use super::*;

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
pub(super) fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = SplitMix64::new(seed);
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// A batch as tensors `(batch, frames, bins)` (weights `(batch, frames)`).
pub(super) struct Batch {
    pub(super) target_log_mag: Tensor,
    pub(super) weights: Tensor,
    pub(super) shifted: [Tensor; 3],
    pub(super) distorted: [Tensor; 3],
    /// Clean `[envelope, fine structure]` (for the pitch-invariance and pitch-contrast terms,
    /// which every run with the timbre distortion logs, the second when it also shifts).
    pub(super) clean_split: Option<[Tensor; 2]>,
    /// Per crop, 1 where its pitch shift is not 0, else 0.
    pub(super) moved: Vec<f32>,
    /// The pitch classifier's targets (a model with a ruler only).
    pub(super) pitch_targets: Option<PitchTargets>,
}

/// `pick` of every item (row-major `frames x bins`, the same size for each) as a tensor
/// `(items, frames, bins)`.
pub(super) fn stack<T>(
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
pub(super) fn pooling<T>(items: &[T], frame_db: impl Fn(&T) -> &[f32]) -> Vec<f32> {
    items
        .iter()
        .flat_map(|item| pooling_weights(frame_db(item), POOLING_RANGE_DB))
        .collect()
}

/// The pitch classifier's targets: pYIN's pitch of the clean frames that have one as a
/// (fractional) bin index, and the frames' weights (their pooling weights; 0 where pYIN finds no pitch or the
/// target falls outside the bins), all `(batch, frames)`.
pub(super) struct PitchTargets {
    /// Target bin of the clean and distorted crops.
    pub(super) clean: Tensor,
    /// Weights of the clean and distorted crops.
    pub(super) clean_weights: Tensor,
    /// Target bin of the shifted crop (the clean target plus the shift).
    pub(super) shifted: Tensor,
    /// Weights of the shifted crop.
    pub(super) shifted_weights: Tensor,
}

impl PitchTargets {
    pub(super) fn new(
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

pub(super) fn to_batch(
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
