//! The disentanglement table of the evaluation protocol (`../shared/eval-protocol.md`) for one
//! dataset folder (`manifest.jsonl` plus mono 16-bit WAVs).
//!
//! Every row comes from a [`LatentModel`]: per clip it gives a global latent `z_t` and, per
//! active frame, local latents `z_v` and `z_p` (any of them may be absent). The protocol's
//! k-NN classifiers (k = 5, Euclidean) are fitted on the train split and scored on the test
//! split: instrument (the clip's GM program) and pitch (the clip's MIDI note for `z_t`, notes
//! set only; the frame's sounding note for `z_v`, `z_p`). The DSP split ([`DspSplit`]) and
//! chance level are the baseline rows; neural models plug in through the same trait.
//!
//! Active frames (protocol): frames with a note label, louder than -60 dB re the clip's loudest
//! frame ([`dsp_split::active_frames`]). Clips without active frames are left out (and
//! counted). Train frames are subsampled at random (seeded, independent of thread timing) to at
//! most [`EvalOptions::max_train_frames`].
//!
//! Memory: clips are decoded and analysed one at a time per thread; only the latents of the
//! kept frames (all test frames, the train subsample) and one `z_t` per clip are stored.

use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use serde::Serialize;
use timbreswap_engine::StftConfig;

use crate::dsp_split::{self, ClipFeatures};
use crate::knn::{self, KnnIndex, K};
use crate::manifest::{self, ClipReadError, ClipRecord, Set, Split};
use crate::rng::mix64;

mod baselines;
mod frames;
mod report;
pub use baselines::*;
use frames::*;
pub use report::*;

#[cfg(test)]
mod tests;

/// Default cap on the train frames fitted by the frame-level classifiers (protocol).
pub const DEFAULT_MAX_TRAIN_FRAMES: usize = 200_000;

/// Header of the protocol's disentanglement table.
pub const TABLE_HEADER: &str = "| model | MSE | instr. on z_t (up) | instr. on z_v (down) | instr. on z_p (down) | pitch on z_t (down) | pitch on z_v (down) | pitch on z_p (up) |";

/// What to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    /// Dataset folder (holding `manifest.jsonl` and the audio it names).
    pub data: PathBuf,
    /// Which set of the manifest to score (its train and test splits; valid is not used).
    pub set: Set,
    /// Most train frames the frame-level classifiers are fitted on; more are subsampled at
    /// random ([`DEFAULT_MAX_TRAIN_FRAMES`] in the protocol).
    pub max_train_frames: usize,
    /// Seed of the train-frame subsampling.
    pub seed: u64,
    /// Keep every test frame (and clip) from the train frames (clips) of its own instrument
    /// and note. A SoundFont plays every velocity of a note from the same sample, so in the
    /// protocol's table a test frame finds train frames of that very recording; this
    /// diagnostic takes them out of reach. Off in the protocol's table.
    pub exclude_same_note: bool,
    /// Also split the instrument columns by whether the test item's clip has a copy in train
    /// (notes set: the same instrument and note at another velocity, the same waveform through
    /// a static linear filter to within this many dB; [`crate::copies`]), into
    /// [`EvalReport::by_copy`]. Off in the protocol.
    pub copy_threshold_db: Option<f64>,
    /// Score the test split of this second dataset (the same set and programs rendered from
    /// another library) instead of `data`'s, against `data`'s train split: the protocol's
    /// test of generalisation, where no test note has a copy in train (a copy split then puts
    /// every test item under "no copy"). Off in the protocol.
    pub test_data: Option<PathBuf>,
}

impl EvalOptions {
    /// The protocol's options for `set` of the dataset in `data` (200 000 train frames, seed 0).
    pub fn new(data: PathBuf, set: Set) -> Self {
        Self {
            data,
            set,
            max_train_frames: DEFAULT_MAX_TRAIN_FRAMES,
            seed: 0,
            exclude_same_note: false,
            copy_threshold_db: None,
            test_data: None,
        }
    }
}

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A clip's audio does not match its manifest record.
    #[error(transparent)]
    Clip(#[from] ClipReadError),
    /// Finding the test clips' copies failed.
    #[error(transparent)]
    Copies(#[from] crate::copies::CopiesError),
    /// The manifest could not be read or parsed.
    #[error("cannot read the manifest in {path}: {source}")]
    Manifest {
        /// Dataset folder.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The set has no clip in the train or the test split.
    #[error("no {set:?} clips with active frames in the {split:?} split")]
    NoClips {
        /// The evaluated set.
        set: Set,
        /// The empty split.
        split: Split,
    },
    /// A clip's frame labels use another hop than the analysis.
    #[error("{path}: frame labels at a hop of {found} samples, the analysis hop is {expected}")]
    Hop {
        /// Audio file.
        path: PathBuf,
        /// Hop of the record, in samples.
        found: usize,
        /// Analysis hop, in samples.
        expected: usize,
    },
    /// The record does not have one label per analysis frame.
    #[error("{path}: {labels} frame labels for {frames} frames")]
    FrameLabels {
        /// Audio file.
        path: PathBuf,
        /// Labels in the record.
        labels: usize,
        /// Frames of the clip (`samples / hop + 1`).
        frames: usize,
    },
    /// A model failed or returned latents of the wrong shape.
    #[error("model {model}: {message}")]
    Model {
        /// Model (row) name.
        model: String,
        /// What went wrong.
        message: String,
    },
    /// A k-NN index could not be built.
    #[error(transparent)]
    Knn(#[from] knn::KnnError),
}

/// Dimensions of a model's latents; `None` for a latent the model does not have (its columns
/// read N/A).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct LatentDims {
    /// Values of the global (per-clip) latent.
    pub z_t: Option<usize>,
    /// Values of the per-frame variation latent.
    pub z_v: Option<usize>,
    /// Values of the per-frame pitch latent.
    pub z_p: Option<usize>,
}

/// One clip as a model sees it.
#[derive(Debug, Clone, Copy)]
pub struct ClipInput<'a> {
    /// The clip's manifest record.
    pub record: &'a ClipRecord,
    /// Its audio, mono, in -1..1 at `cfg.sample_rate`.
    pub samples: &'a [f32],
    /// The engine's analysis of the audio (log magnitude, cepstral split, frame energy).
    pub features: &'a ClipFeatures,
    /// The active frames, ascending: `z_v` and `z_p` have one row per entry.
    pub active: &'a [usize],
    /// Analysis settings.
    pub cfg: &'a StftConfig,
}

/// A model's latents for one clip.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClipLatents {
    /// Global latent (posterior mean), `dims.z_t` values.
    pub z_t: Option<Vec<f32>>,
    /// Variation latent of every active frame, row-major `active.len() x dims.z_v`.
    pub z_v: Option<Vec<f32>>,
    /// Pitch latent of every active frame, row-major `active.len() x dims.z_p`.
    pub z_p: Option<Vec<f32>>,
    /// Log-amplitude reconstruction error of the clip in the model's own normalisation (only
    /// read for test clips; may be `None` elsewhere).
    pub reconstruction: Option<SquaredError>,
}

/// Sum of squared errors over `count` values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SquaredError {
    /// Sum of squared errors.
    pub sum: f64,
    /// Values summed over.
    pub count: u64,
}

/// A row of the table: anything that maps a clip to latents.
pub trait LatentModel: Sync {
    /// Row name in the table.
    fn name(&self) -> String;
    /// Dimensions of the latents it returns under `cfg`.
    fn dims(&self, cfg: &StftConfig) -> LatentDims;
    /// Notes printed under the table (e.g. the normalisation the MSE is measured in).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
    /// Latents of one clip (latents in `dims` must be present, the others absent).
    fn encode(&self, clip: &ClipInput<'_>) -> Result<ClipLatents, String>;
}

/// The protocol's table for `opts` with the DSP-split and chance rows, at the engine's default
/// analysis settings.
pub fn evaluate(opts: &EvalOptions) -> Result<EvalReport, EvalError> {
    evaluate_models(opts, &StftConfig::default(), &[&DspSplit])
}

/// The protocol's table for `opts`: one row per model in `models`, then chance level, at the
/// analysis settings `cfg` (every clip must be at `cfg.sample_rate` with labels at `cfg.hop`).
pub fn evaluate_models(
    opts: &EvalOptions,
    cfg: &StftConfig,
    models: &[&dyn LatentModel],
) -> Result<EvalReport, EvalError> {
    let all = manifest::read_manifest(&opts.data).map_err(|source| EvalError::Manifest {
        path: opts.data.clone(),
        source,
    })?;
    let other = match &opts.test_data {
        Some(dir) => manifest::read_manifest(dir).map_err(|source| EvalError::Manifest {
            path: dir.clone(),
            source,
        })?,
        None => Vec::new(),
    };
    // (dataset folder, record): train from `data`, test from `test_data` when given.
    let records: Vec<(&Path, &ClipRecord)> = match &opts.test_data {
        None => all
            .iter()
            .filter(|r| r.set == opts.set && matches!(r.split, Split::Train | Split::Test))
            .map(|r| (opts.data.as_path(), r))
            .collect(),
        Some(dir) => all
            .iter()
            .filter(|r| r.set == opts.set && r.split == Split::Train)
            .map(|r| (opts.data.as_path(), r))
            .chain(
                other
                    .iter()
                    .filter(|r| r.set == opts.set && r.split == Split::Test)
                    .map(|r| (dir.as_path(), r)),
            )
            .collect(),
    };
    let dims: Vec<LatentDims> = models.iter().map(|m| m.dims(cfg)).collect();
    // Frame columns: per model, z_v then z_p.
    let frame_dims: Vec<Option<usize>> = dims.iter().flat_map(|d| [d.z_v, d.z_p]).collect();
    let clip_dims: Vec<Option<usize>> = dims.iter().map(|d| d.z_t).collect();

    let mut train_frames = FrameStore::new(opts.max_train_frames, opts.seed, &frame_dims);
    let mut test_frames = FrameStore::new(usize::MAX, opts.seed, &frame_dims);
    let new_clip_store = || ClipStore {
        labels: Vec::new(),
        z_t: vec![Vec::new(); models.len()],
    };
    let mut train_clips = new_clip_store();
    let mut test_clips = new_clip_store();
    let mut silent = 0usize;
    let mut reconstruction = vec![SquaredError::default(); models.len()];

    let start = Instant::now();
    // Test clips with a copy in train, for the copy split. Copies are looked for within
    // `data`: with a second dataset as the test split, no test clip has one.
    let copies = match (opts.copy_threshold_db, &opts.test_data) {
        (Some(db), None) => Some(crate::copies::copy_flags(&opts.data, &all, db)?),
        _ => None,
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(records.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let mut first_error: Option<EvalError> = None;
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<Result<Option<ClipResult>, EvalError>>(2 * threads);
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, stop, records, dims) = (&next, &stop, &records, &dims);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(root, record)) = records.get(i) else {
                        break;
                    };
                    let result = process_clip(root, i, record, cfg, models, dims);
                    if result.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    if tx.send(result).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for result in rx {
            let clip = match result {
                Ok(Some(clip)) => clip,
                Ok(None) => {
                    silent += 1;
                    continue;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            if first_error.is_some() {
                continue;
            }
            let (frames, clips) = match clip.split {
                Split::Train => (&mut train_frames, &mut train_clips),
                _ => (&mut test_frames, &mut test_clips),
            };
            let copy = copies
                .as_ref()
                .is_some_and(|c| c.get(&records[clip.index].1.path) == Some(&true));
            let clip_labels = Labels {
                clip: clip.index as u32,
                frame: 0,
                instrument: clip.program,
                copy,
                pitch: clip.note.unwrap_or(u32::MAX),
            };
            clips.labels.push(clip_labels);
            for (m, l) in clip.latents.iter().enumerate() {
                if let Some(z) = &l.z_t {
                    clips.z_t[m].extend_from_slice(z);
                }
                if clip.split == Split::Test {
                    if let Some(r) = l.reconstruction {
                        reconstruction[m].sum += r.sum;
                        reconstruction[m].count += r.count;
                    }
                }
            }
            let rows: Vec<Option<&[f32]>> = clip
                .latents
                .iter()
                .flat_map(|l| [l.z_v.as_deref(), l.z_p.as_deref()])
                .collect();
            for (row, &(frame, note)) in clip.frames.iter().enumerate() {
                let labels = Labels {
                    clip: clip.index as u32,
                    frame,
                    copy,
                    instrument: clip.program,
                    pitch: note,
                };
                frames.offer(labels, row, &rows);
            }
        }
    });
    if let Some(e) = first_error {
        return Err(e);
    }
    let features_s = start.elapsed().as_secs_f64();
    for (store, split) in [(&train_clips, Split::Train), (&test_clips, Split::Test)] {
        if store.labels.is_empty() {
            return Err(EvalError::NoClips {
                set: opts.set,
                split,
            });
        }
    }
    train_frames.finish();
    test_frames.finish();
    train_clips.finish(&clip_dims);
    test_clips.finish(&clip_dims);

    // Labellings. Clip-level pitch only where every clip has a note (the notes set).
    let clip_pitch = train_clips
        .labels
        .iter()
        .chain(&test_clips.labels)
        .all(|l| l.pitch != u32::MAX);
    let instr = |ls: &[Labels]| ls.iter().map(|l| l.instrument).collect::<Vec<_>>();
    let pitch = |ls: &[Labels]| ls.iter().map(|l| l.pitch).collect::<Vec<_>>();
    let mut clip_labellings = vec![(instr(&train_clips.labels), instr(&test_clips.labels))];
    if clip_pitch {
        clip_labellings.push((pitch(&train_clips.labels), pitch(&test_clips.labels)));
    }
    let frame_labellings = vec![
        (instr(&train_frames.labels), instr(&test_frames.labels)),
        (pitch(&train_frames.labels), pitch(&test_frames.labels)),
    ];
    // Groups of the same-note exclusion: instrument and note (none for a clip without one).
    let group = |ls: &[Labels]| -> Vec<u32> {
        ls.iter()
            .map(|l| {
                if l.pitch == u32::MAX {
                    knn::NO_GROUP
                } else {
                    l.instrument * 1024 + l.pitch
                }
            })
            .collect()
    };
    let clip_groups = opts
        .exclude_same_note
        .then(|| (group(&test_clips.labels), group(&train_clips.labels)));
    let frame_groups = opts
        .exclude_same_note
        .then(|| (group(&test_frames.labels), group(&train_frames.labels)));

    let knn_start = Instant::now();
    let mut rows = Vec::with_capacity(models.len() + 1);
    // Breakdown of the instrument columns: by instrument, and by copy with a copy split.
    let key = |l: &Labels| 2 * l.instrument + u32::from(l.copy);
    let clip_keys: Vec<u32> = test_clips.labels.iter().map(key).collect();
    let frame_keys: Vec<u32> = test_frames.labels.iter().map(key).collect();
    let clip_counts = counts_of(clip_keys.iter().copied());
    let frame_counts = counts_of(frame_keys.iter().copied());
    let mut by_instrument = Vec::new();
    let mut by_copy = Vec::new();
    let mut pitch_errors = Vec::new();
    let mut timbres = Vec::new();
    let mut notes = Vec::new();
    for (m, model) in models.iter().enumerate() {
        // Per-label hits of the instrument labelling: z_t, z_v, z_p.
        let mut per_label: [LabelHits; 3] = Default::default();
        let mut row = EvalRow {
            model: model.name(),
            mse: (reconstruction[m].count > 0)
                .then(|| reconstruction[m].sum / reconstruction[m].count as f64),
            instr_on_z_t: None,
            instr_on_z_v: None,
            instr_on_z_p: None,
            pitch_on_z_t: None,
            pitch_on_z_v: None,
            pitch_on_z_p: None,
        };
        if let Some(dim) = dims[m].z_t {
            let mut vectors = train_clips.z_t[m].clone();
            vectors.extend_from_slice(&test_clips.z_t[m]);
            timbres.push(TimbreCloud {
                model: model.name(),
                dim,
                programs: train_clips
                    .labels
                    .iter()
                    .chain(&test_clips.labels)
                    .map(|l| l.instrument)
                    .collect(),
                vectors,
            });
            let (acc, _, hits) = knn_accuracies(
                std::mem::take(&mut train_clips.z_t[m]),
                &test_clips.z_t[m],
                dim,
                &clip_labellings,
                clip_groups.as_ref(),
                &clip_keys,
            )?;
            per_label[0] = hits;
            row.instr_on_z_t = acc[0];
            row.pitch_on_z_t = acc.get(1).copied().flatten();
        }
        for (kind, (instr_cell, pitch_cell)) in [
            (0, (&mut row.instr_on_z_v, &mut row.pitch_on_z_v)),
            (1, (&mut row.instr_on_z_p, &mut row.pitch_on_z_p)),
        ] {
            let c = 2 * m + kind;
            if let Some(dim) = frame_dims[c] {
                let (acc, votes, hits) = knn_accuracies(
                    std::mem::take(&mut train_frames.columns[c].data),
                    &test_frames.columns[c].data,
                    dim,
                    &frame_labellings,
                    frame_groups.as_ref(),
                    &frame_keys,
                )?;
                if kind == 1 {
                    pitch_errors.extend(PitchErrors::of(
                        model.name(),
                        &votes[1],
                        &frame_labellings[1].1,
                    ));
                }
                per_label[1 + kind] = hits;
                *instr_cell = acc[0];
                *pitch_cell = acc[1];
            }
        }
        let share = |hits: &LabelHits, keys: &[u32]| {
            let (h, n) = keys
                .iter()
                .filter_map(|k| hits.get(k))
                .fold((0, 0), |(h, n), &(a, b)| (h + a, n + b));
            (n > 0).then(|| h as f64 / n as f64)
        };
        let count = |counts: &BTreeMap<u32, usize>, keys: &[u32]| -> usize {
            keys.iter().filter_map(|k| counts.get(k)).sum()
        };
        let shares = |keys: &[u32]| InstrumentShares {
            test_clips: count(&clip_counts, keys),
            test_frames: count(&frame_counts, keys),
            instr_on_z_t: share(&per_label[0], keys),
            instr_on_z_v: share(&per_label[1], keys),
            instr_on_z_p: share(&per_label[2], keys),
        };
        for &k in clip_counts.keys() {
            by_instrument.push(InstrumentRow {
                model: model.name(),
                program: k / 2,
                copy: opts.copy_threshold_db.map(|_| k % 2 == 1),
                shares: shares(&[k]),
            });
        }
        if opts.copy_threshold_db.is_some() {
            for copy in [false, true] {
                let keys: Vec<u32> = clip_counts
                    .keys()
                    .copied()
                    .filter(|k| (k % 2 == 1) == copy)
                    .collect();
                by_copy.push(CopyRow {
                    model: model.name(),
                    copy,
                    shares: shares(&keys),
                });
            }
        }
        rows.push(row);
        notes.extend(model.notes());
    }
    let knn_s = knn_start.elapsed().as_secs_f64();

    // Chance: train label frequencies of all active train frames (before subsampling).
    let frame_instr = chance(
        &train_frames.instrument_counts,
        &test_frames.instrument_counts,
    );
    let frame_pitch = chance(&train_frames.pitch_counts, &test_frames.pitch_counts);
    let clip_chance = |f: fn(&Labels) -> u32| {
        chance(
            &counts_of(train_clips.labels.iter().map(f)),
            &counts_of(test_clips.labels.iter().map(f)),
        )
    };
    rows.push(EvalRow {
        model: "chance".to_string(),
        mse: None,
        instr_on_z_t: clip_chance(|l| l.instrument),
        instr_on_z_v: frame_instr,
        instr_on_z_p: frame_instr,
        pitch_on_z_t: if clip_pitch {
            clip_chance(|l| l.pitch)
        } else {
            None
        },
        pitch_on_z_v: frame_pitch,
        pitch_on_z_p: frame_pitch,
    });
    rows.push(EvalRow {
        model: "pitch label only".to_string(),
        mse: None,
        instr_on_z_t: None,
        instr_on_z_v: None,
        instr_on_z_p: instrument_from_pitch(&train_frames.joint_counts, &test_frames.joint_counts),
        pitch_on_z_t: None,
        pitch_on_z_v: None,
        pitch_on_z_p: None,
    });
    notes.push(
        "pitch label only: instrument on z_p of a latent that holds exactly the frame's note and \
         nothing else, with the best classifier (per note, the most common train instrument of \
         that note; all active frames). Near or below chance, the instrument-on-z_p column \
         measures leakage of timbre into z_p, not the overlap of the instruments' ranges."
            .to_string(),
    );
    notes.push(
        "chance: sum over labels of p_train * p_test (random guesses with the train label \
         frequencies; frame columns use all active train frames)."
            .to_string(),
    );
    if !clip_pitch {
        notes.push("pitch on z_t: N/A (clips without a single MIDI note).".to_string());
    }
    if let Some(dir) = &opts.test_data {
        notes.push(format!(
            "Generalisation test: the test clips are those of the test split of {}, scored \
             against the train split of {}.",
            dir.display(),
            opts.data.display()
        ));
    }
    if opts.exclude_same_note {
        notes.push(
            "Same note excluded: every test frame's neighbours are drawn from the train frames \
             of other (instrument, note) pairs, every test clip's from other clips than those \
             of its instrument and note (a SoundFont plays every velocity of a note from one \
             sample); a diagnostic, not the protocol's table."
                .to_string(),
        );
    }

    let counts = EvalCounts {
        train_clips: train_clips.labels.len(),
        test_clips: test_clips.labels.len(),
        clips_without_active_frames: silent,
        train_frames: train_frames.seen,
        train_frames_used: train_frames.labels.len(),
        subsampled: train_frames.labels.len() < train_frames.seen,
        max_train_frames: opts.max_train_frames,
        seed: opts.seed,
        test_frames: test_frames.seen,
    };
    if counts.subsampled {
        notes.push(format!(
            "Train frames subsampled at random from {} to {} (seed {}).",
            counts.train_frames, counts.train_frames_used, counts.seed
        ));
    }
    Ok(EvalReport {
        data: opts.data.clone(),
        set: opts.set,
        stft: *cfg,
        k: K,
        rows,
        counts,
        timings: EvalTimings { features_s, knn_s },
        notes,
        by_instrument,
        by_copy,
        pitch_errors,
        timbres,
    })
}
