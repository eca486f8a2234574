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
        self.active_frames_and_rows(samples).1
    }

    /// The active frames of `samples` (ascending) and their standardised feature rows.
    fn active_frames_and_rows(&self, samples: &[f32]) -> (Vec<usize>, Vec<f32>) {
        let features = self.extractor.analyse(samples);
        let frames = active_frames(&features.frame_db);
        let mut rows = Vec::with_capacity(frames.len() * FEATURE_DIM);
        for &f in &frames {
            rows.extend_from_slice(features.row(f));
        }
        standardise(&mut rows, &self.mean, &self.inv_std);
        (frames, rows)
    }

    /// Label of every standardised row.
    pub fn classify_rows(&self, rows: &[f32]) -> Vec<u32> {
        self.index.classify(rows)
    }

    /// The clip's label: majority vote of its active frames; `None` for a silent clip.
    pub fn classify_clip(&self, samples: &[f32]) -> Option<u32> {
        majority(&self.classify_rows(&self.active_rows(samples)))
    }

    /// Every active frame of `samples` with its label: `(frame, program)`, frames of
    /// [`FEATURE_HOP`](super::FEATURE_HOP) samples from the start, ascending. The labels
    /// [`classify_clip`](Self::classify_clip) votes on, with where they lie in time.
    pub fn frame_labels(&self, samples: &[f32]) -> Vec<(usize, u32)> {
        let (frames, rows) = self.active_frames_and_rows(samples);
        frames.into_iter().zip(self.classify_rows(&rows)).collect()
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
    use crate::transfer::{FEATURE_FFT, FEATURE_HOP};

    /// `seconds` of a tone at `hz` (label 1 below) or, with `hz` 0, of white noise (label 2).
    fn signal(hz: f32, seconds: f32, seed: &mut u32) -> Vec<f32> {
        let n = (seconds * 32_000.0) as usize;
        (0..n)
            .map(|i| {
                if hz > 0.0 {
                    0.3 * (std::f32::consts::TAU * hz * i as f32 / 32_000.0).sin()
                } else {
                    *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    0.3 * (*seed as f32 / u32::MAX as f32 - 0.5)
                }
            })
            .collect()
    }

    /// A classifier fitted on a tone (1) and on noise (2) labels a clip of tone, silence and
    /// noise frame by frame: the tone's frames 1, the noise's 2, the silence left out, and the
    /// clip's vote is the majority of the same labels.
    #[test]
    fn frame_labels_say_which_frames_sound_like_what() {
        let extractor = FeatureExtractor::new(32_000);
        let mut seed = 1;
        let (tone, noise) = (signal(440.0, 1.0, &mut seed), signal(0.0, 1.0, &mut seed));
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for (clip, label) in [(&tone, 1u32), (&noise, 2u32)] {
            let features = extractor.analyse(clip);
            for f in active_frames(&features.frame_db) {
                rows.extend_from_slice(features.row(f));
                labels.push(label);
            }
        }
        let classifier = InstrumentClassifier::fit(extractor, rows, labels).unwrap();

        // 0.6 s of tone, 0.4 s of silence, then 1.2 s of noise.
        let mut clip = signal(440.0, 0.6, &mut seed);
        clip.extend(std::iter::repeat_n(0.0, 12_800));
        clip.extend(signal(0.0, 1.2, &mut seed));
        let hop_s = FEATURE_HOP as f32 / 32_000.0;
        let labelled = classifier.frame_labels(&clip);
        assert!(labelled.windows(2).all(|w| w[0].0 < w[1].0));
        // Frames wholly inside one part (a frame spans FEATURE_FFT samples from its start).
        let span_s = FEATURE_FFT as f32 / 32_000.0;
        let inside = |f: usize, from: f32, to: f32| {
            let start = f as f32 * hop_s - span_s / 2.0;
            start >= from && start + span_s <= to
        };
        let tone_frames: Vec<u32> = labelled
            .iter()
            .filter(|(f, _)| inside(*f, 0.0, 0.6))
            .map(|(_, l)| *l)
            .collect();
        let noise_frames: Vec<u32> = labelled
            .iter()
            .filter(|(f, _)| inside(*f, 1.0, 2.2))
            .map(|(_, l)| *l)
            .collect();
        assert!(tone_frames.len() >= 10, "{labelled:?}");
        assert!(noise_frames.len() >= 30, "{labelled:?}");
        assert!(tone_frames.iter().all(|l| *l == 1), "{tone_frames:?}");
        assert!(noise_frames.iter().all(|l| *l == 2), "{noise_frames:?}");
        assert!(
            labelled.iter().all(|(f, _)| !inside(*f, 0.6, 1.0)),
            "a silent frame was labelled: {labelled:?}"
        );
        let votes: Vec<u32> = labelled.iter().map(|(_, l)| *l).collect();
        assert_eq!(classifier.classify_clip(&clip), majority(&votes));
        assert_eq!(classifier.classify_clip(&clip), Some(2));
    }

    #[test]
    fn majority_breaks_ties_towards_the_smaller_label() {
        assert_eq!(majority(&[]), None);
        assert_eq!(majority(&[3, 1, 3]), Some(3));
        assert_eq!(majority(&[7, 2, 7, 2]), Some(2));
    }
}
