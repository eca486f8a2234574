//! The protocol's independent instrument classifier ([`InstrumentClassifier`]): k-NN on
//! standardised per-frame features, a clip labelled by the [`majority`] vote of its active
//! frames.

use std::collections::BTreeMap;

use crate::knn::KnnIndex;

use super::features::{active_frames, FeatureExtractor, FEATURE_DIM};
use super::TransferError;

/// The most frequent label; ties go to the smaller label. `None` when empty.
pub fn majority(labels: &[u32]) -> Option<u32> {
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for l in labels {
        *counts.entry(*l).or_default() += 1;
    }
    // `max_by_key` keeps the last maximum; iterate in descending label order so the smallest
    // label of a tie comes last.
    counts
        .into_iter()
        .rev()
        .max_by_key(|(_, c)| *c)
        .map(|(l, _)| l)
}

/// The protocol's independent instrument classifier: k-NN (k = 5, Euclidean) on standardised
/// per-frame features ([`FeatureExtractor`]); labels are GM programs.
#[derive(Debug, Clone)]
pub struct InstrumentClassifier {
    extractor: FeatureExtractor,
    index: KnnIndex,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    /// Frames fitted on.
    pub fit_frames: usize,
    /// Labels (programs) seen in fitting, ascending.
    pub classes: Vec<u32>,
}

impl InstrumentClassifier {
    /// Fits on `rows` (row-major, one [`FEATURE_DIM`] row per label, raw features) and their
    /// labels: the z-score uses the rows' own mean and standard deviation (a constant column
    /// is centred only).
    pub fn fit(
        extractor: FeatureExtractor,
        mut rows: Vec<f32>,
        labels: Vec<u32>,
    ) -> Result<Self, TransferError> {
        let n = labels.len();
        if n == 0 {
            return Err(TransferError::NoFitFrames);
        }
        let mut sum = vec![0.0f64; FEATURE_DIM];
        let mut sq = vec![0.0f64; FEATURE_DIM];
        for row in rows.chunks_exact(FEATURE_DIM) {
            for ((s, q), v) in sum.iter_mut().zip(&mut sq).zip(row) {
                *s += *v as f64;
                *q += (*v as f64) * (*v as f64);
            }
        }
        let mean: Vec<f32> = sum.iter().map(|s| (s / n as f64) as f32).collect();
        let inv_std: Vec<f32> = sum
            .iter()
            .zip(&sq)
            .map(|(s, q)| {
                let m = s / n as f64;
                let var = (q / n as f64 - m * m).max(0.0);
                if var > 1e-12 {
                    (1.0 / var.sqrt()) as f32
                } else {
                    1.0
                }
            })
            .collect();
        standardise(&mut rows, &mean, &inv_std);
        let mut classes = labels.clone();
        classes.sort_unstable();
        classes.dedup();
        let index = KnnIndex::new(rows, labels, FEATURE_DIM)?;
        Ok(Self {
            extractor,
            index,
            mean,
            inv_std,
            fit_frames: n,
            classes,
        })
    }

    /// The feature extractor.
    pub fn extractor(&self) -> &FeatureExtractor {
        &self.extractor
    }

    /// Standardised feature rows of the active frames of `samples` (frames within 40 dB of the
    /// loudest), row-major.
    pub fn active_rows(&self, samples: &[f32]) -> Vec<f32> {
        let features = self.extractor.analyse(samples);
        let mut rows = Vec::new();
        for f in active_frames(&features.frame_db) {
            rows.extend_from_slice(features.row(f));
        }
        standardise(&mut rows, &self.mean, &self.inv_std);
        rows
    }

    /// Label of every standardised row.
    pub fn classify_rows(&self, rows: &[f32]) -> Vec<u32> {
        self.index.classify(rows)
    }

    /// The clip's label: majority vote of its active frames; `None` for a silent clip.
    pub fn classify_clip(&self, samples: &[f32]) -> Option<u32> {
        majority(&self.classify_rows(&self.active_rows(samples)))
    }
}

fn standardise(rows: &mut [f32], mean: &[f32], inv_std: &[f32]) {
    for row in rows.chunks_exact_mut(FEATURE_DIM) {
        for ((v, m), s) in row.iter_mut().zip(mean).zip(inv_std) {
            *v = (*v - m) * s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_breaks_ties_towards_the_smaller_label() {
        assert_eq!(majority(&[]), None);
        assert_eq!(majority(&[3, 1, 3]), Some(3));
        assert_eq!(majority(&[7, 2, 7, 2]), Some(2));
    }
}
