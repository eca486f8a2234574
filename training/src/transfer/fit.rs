//! Fitting the protocol's instrument classifier on a dataset's note clips.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::manifest::{self, ClipRecord, Set};
use crate::rng::{mix64, SplitMix64};

use super::classifier::InstrumentClassifier;
use super::features::{active_frames, FeatureExtractor, FEATURE_DIM, FEATURE_HOP};
use super::parallel::parallel_map;
use super::{TransferError, MAX_FIT_FRAMES_PER_CLIP};

/// Features of one note clip for the fit: up to [`MAX_FIT_FRAMES_PER_CLIP`] random active
/// frames (labelled and within 40 dB of the clip's loudest frame), raw.
fn fit_rows(
    root: &Path,
    record: &ClipRecord,
    index: usize,
    extractor: &FeatureExtractor,
    seed: u64,
) -> Result<Vec<f32>, TransferError> {
    let samples = manifest::read_clip_audio(root, record, extractor.sample_rate())?;
    let features = extractor.analyse(&samples);
    let hop = record.hop.max(1);
    let labelled = |f: usize| {
        // The label of the manifest frame nearest this frame's centre.
        let at = (f * FEATURE_HOP + hop / 2) / hop;
        record.frame_notes.get(at).is_some_and(|n| *n >= 0)
    };
    let mut active: Vec<usize> = active_frames(&features.frame_db)
        .into_iter()
        .filter(|&f| labelled(f))
        .collect();
    if active.len() > MAX_FIT_FRAMES_PER_CLIP {
        // Partial Fisher-Yates shuffle, seeded per clip.
        let mut rng = SplitMix64::new(mix64(seed ^ mix64(index as u64 + 1)));
        for i in 0..MAX_FIT_FRAMES_PER_CLIP {
            let j = rng.int(i as i32, active.len() as i32 - 1) as usize;
            active.swap(i, j);
        }
        active.truncate(MAX_FIT_FRAMES_PER_CLIP);
        active.sort_unstable();
    }
    let mut rows = Vec::with_capacity(active.len() * FEATURE_DIM);
    for f in active {
        rows.extend_from_slice(features.row(f));
    }
    Ok(rows)
}

/// The classifier fitted on the note clips of `records` (all splits), and the number of clips
/// with and without active frames.
pub fn fit_classifier(
    root: &Path,
    records: &[ClipRecord],
    sample_rate: u32,
    seed: u64,
    threads: usize,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Result<(InstrumentClassifier, usize, usize), TransferError> {
    let extractor = FeatureExtractor::new(sample_rate);
    let notes: Vec<&ClipRecord> = records.iter().filter(|r| r.set == Set::Notes).collect();
    let done = AtomicUsize::new(0);
    let per_clip = parallel_map(&notes, threads, |i, r| {
        let rows = fit_rows(root, r, i, &extractor, seed)?;
        progress(
            "classifier",
            done.fetch_add(1, Ordering::Relaxed) + 1,
            notes.len(),
        );
        Ok::<_, TransferError>(rows)
    })?;
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    let mut silent = 0;
    for (r, clip_rows) in notes.iter().zip(per_clip) {
        if clip_rows.is_empty() {
            silent += 1;
        }
        labels.extend(std::iter::repeat_n(
            r.program as u32,
            clip_rows.len() / FEATURE_DIM,
        ));
        rows.extend(clip_rows);
    }
    let fitted = notes.len() - silent;
    Ok((
        InstrumentClassifier::fit(extractor, rows, labels)?,
        fitted,
        silent,
    ))
}
