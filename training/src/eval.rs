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

/// The DSP-split baseline: mean cepstral envelope over the active frames as `z_t`, the frame's
/// cepstral fine structure as `z_p`, no `z_v`; lossless (MSE 0).
#[derive(Debug, Clone, Copy, Default)]
pub struct DspSplit;

impl LatentModel for DspSplit {
    fn name(&self) -> String {
        "DSP split".to_string()
    }

    fn dims(&self, cfg: &StftConfig) -> LatentDims {
        LatentDims {
            z_t: Some(cfg.n_bins()),
            z_v: None,
            z_p: Some(cfg.n_bins()),
        }
    }

    fn notes(&self) -> Vec<String> {
        vec![
            "DSP split: MSE 0 by construction, lossless (envelope + fine structure = ln(|X| + 1e-9) exactly); \
             z_t = mean cepstral envelope over the active frames, z_p = the frame's fine structure (one value per bin, natural-log magnitude), no z_v."
                .to_string(),
        ]
    }

    fn encode(&self, clip: &ClipInput<'_>) -> Result<ClipLatents, String> {
        let z_t = dsp_split::timbre_vector(clip.features, clip.active)
            .ok_or_else(|| "no active frame".to_string())?;
        let mut z_p = Vec::with_capacity(clip.active.len() * clip.features.bins);
        for &f in clip.active {
            z_p.extend_from_slice(dsp_split::pitch_vector(clip.features, f));
        }
        Ok(ClipLatents {
            z_t: Some(z_t),
            z_v: None,
            z_p: Some(z_p),
            reconstruction: Some(SquaredError {
                sum: 0.0,
                count: (clip.features.frames * clip.features.bins) as u64,
            }),
        })
    }
}

/// Diagnostic row: a one-value "pitch latent" that holds the frame's sounding F0 (in cents,
/// MIDI note × 100, measured by [`crate::f0::f0_near`] around the frame's labelled note) and
/// nothing else: no timbre, no level, no time. Its "instrument on z_p" is what the column
/// scores for a latent that knows the pitch as finely as the decoder needs it, and no more.
#[derive(Debug, Clone, Copy, Default)]
pub struct SoundingF0;

impl LatentModel for SoundingF0 {
    fn name(&self) -> String {
        "sounding F0 only".to_string()
    }

    fn dims(&self, _cfg: &StftConfig) -> LatentDims {
        LatentDims {
            z_t: None,
            z_v: None,
            z_p: Some(1),
        }
    }

    fn notes(&self) -> Vec<String> {
        vec![
            "sounding F0 only: z_p is one value, the frame's F0 in cents (100 x MIDI note), \
             measured to a fraction of a cent from the audio around the labelled note \
             (normalised cross-correlation refined to a fraction of a sample; \
             training/src/f0.rs; a frame with no period to measure, its sound ending inside \
             it, holds the note's nominal pitch); no z_t, no z_v, no reconstruction. Its \
             instrument on z_p is what a latent holding the pitch exactly, and nothing else, \
             scores in that column."
                .to_string(),
        ]
    }

    fn encode(&self, clip: &ClipInput<'_>) -> Result<ClipLatents, String> {
        let sr = clip.cfg.sample_rate;
        let mut z_p = Vec::with_capacity(clip.active.len());
        for &f in clip.active {
            let note = clip.record.frame_notes[f];
            let nominal = crate::transfer::midi_to_hz(note as f64);
            // An active frame whose sound ends (or starts) inside it may leave no period to
            // measure: it holds the note's nominal pitch, which carries no instrument.
            let hz =
                crate::f0::f0_near(clip.samples, sr, f * clip.cfg.hop, nominal).unwrap_or(nominal);
            z_p.push((6900.0 + 1200.0 * (hz / 440.0).log2()) as f32);
        }
        Ok(ClipLatents {
            z_t: None,
            z_v: None,
            z_p: Some(z_p),
            reconstruction: None,
        })
    }
}

/// One row of the table. Accuracies are shares in 0..=1 (the markdown shows percent); `None`
/// reads N/A.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalRow {
    /// Model name.
    pub model: String,
    /// Log-amplitude reconstruction MSE on the test split (model's own normalisation).
    pub mse: Option<f64>,
    /// Instrument accuracy of `z_t` (one vote per clip); high is good.
    pub instr_on_z_t: Option<f64>,
    /// Instrument accuracy of `z_v` (frame-wise); low is good.
    pub instr_on_z_v: Option<f64>,
    /// Instrument accuracy of `z_p` (frame-wise); low is good.
    pub instr_on_z_p: Option<f64>,
    /// Pitch accuracy of `z_t` (notes set only); low is good.
    pub pitch_on_z_t: Option<f64>,
    /// Pitch accuracy of `z_v` (frame-wise); low is good.
    pub pitch_on_z_v: Option<f64>,
    /// Pitch accuracy of `z_p` (frame-wise); high is good.
    pub pitch_on_z_p: Option<f64>,
}

/// Instrument accuracies of one model on a group of test items (same k-NN as the table; shares
/// in 0..=1, `None` where the model has no such latent or the group has no item).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstrumentShares {
    /// Test clips of the group (the `z_t` column's items).
    pub test_clips: usize,
    /// Test frames of the group (the `z_v` and `z_p` columns' items).
    pub test_frames: usize,
    /// Share of the group's test clips whose `z_t` names their instrument.
    pub instr_on_z_t: Option<f64>,
    /// Share of the group's test frames whose `z_v` names their instrument.
    pub instr_on_z_v: Option<f64>,
    /// Share of the group's test frames whose `z_p` names their instrument.
    pub instr_on_z_p: Option<f64>,
}

/// Instrument accuracies of one model on the test items of one instrument.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstrumentRow {
    /// Model name.
    pub model: String,
    /// GM program of the test items.
    pub program: u32,
    /// With a copy split ([`EvalOptions::copy_threshold_db`]): whether these test items' clips
    /// have a copy in train.
    pub copy: Option<bool>,
    /// The accuracies (inline in the JSON).
    #[serde(flatten)]
    pub shares: InstrumentShares,
}

/// Instrument accuracies of one model on the test items whose clips have (or have not) a copy
/// in train ([`EvalOptions::copy_threshold_db`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CopyRow {
    /// Model name.
    pub model: String,
    /// Whether the test items' clips have a copy in train.
    pub copy: bool,
    /// The accuracies (inline in the JSON).
    #[serde(flatten)]
    pub shares: InstrumentShares,
}

/// What the table was computed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvalCounts {
    /// Train clips with active frames.
    pub train_clips: usize,
    /// Test clips with active frames.
    pub test_clips: usize,
    /// Train and test clips left out for having no active frame.
    pub clips_without_active_frames: usize,
    /// Active frames in the train split.
    pub train_frames: usize,
    /// Train frames the frame-level classifiers were fitted on.
    pub train_frames_used: usize,
    /// Whether the train frames were subsampled (`train_frames_used < train_frames`).
    pub subsampled: bool,
    /// The cap on train frames.
    pub max_train_frames: usize,
    /// Seed of the subsampling.
    pub seed: u64,
    /// Active frames in the test split (all scored).
    pub test_frames: usize,
}

/// Wall-clock time of the stages, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EvalTimings {
    /// Decoding, analysis and encoding of all clips.
    pub features_s: f64,
    /// All k-NN classifications.
    pub knn_s: f64,
}

/// The disentanglement table of one set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// Dataset folder.
    pub data: PathBuf,
    /// Evaluated set.
    pub set: Set,
    /// Analysis settings.
    pub stft: StftConfig,
    /// Neighbours per vote.
    pub k: usize,
    /// One row per model, then chance level.
    pub rows: Vec<EvalRow>,
    /// Clip and frame counts.
    pub counts: EvalCounts,
    /// Stage timings.
    pub timings: EvalTimings,
    /// Remarks printed under the table.
    pub notes: Vec<String>,
    /// The instrument columns split by the test items' instrument, per model (JSON only).
    pub by_instrument: Vec<InstrumentRow>,
    /// The instrument columns split by whether the test item's clip has a copy in train, per
    /// model (with [`EvalOptions::copy_threshold_db`]; empty otherwise).
    pub by_copy: Vec<CopyRow>,
    /// Where each model's pitch-on-`z_p` votes land.
    pub pitch_errors: Vec<PitchErrors>,
    /// Clip-level timbre vectors of each model with a `z_t` (train and test clips), for the
    /// timbre-space plot. Not part of the JSON report.
    #[serde(skip)]
    pub timbres: Vec<TimbreCloud>,
}

/// Where one model's pitch-on-`z_p` votes land relative to the test frame's note: shares of
/// the test frames (0..=1) by the interval between the voted and the sounding note.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PitchErrors {
    /// Model name.
    pub model: String,
    /// The sounding note (the table's pitch-on-`z_p` accuracy).
    pub exact: f64,
    /// One semitone off.
    pub semitone: f64,
    /// 2 to 11 semitones off.
    pub within_octave: f64,
    /// Exactly an octave off.
    pub octave: f64,
    /// More than an octave off.
    pub beyond_octave: f64,
}

impl PitchErrors {
    /// The shares of the votes `predicted` for the notes `truth` (MIDI numbers); `None` when
    /// there is no vote or the two lengths differ.
    pub fn of(model: String, predicted: &[u32], truth: &[u32]) -> Option<Self> {
        if predicted.is_empty() || predicted.len() != truth.len() {
            return None;
        }
        let mut counts = [0usize; 5];
        for (&p, &t) in predicted.iter().zip(truth) {
            let slot = match p.abs_diff(t) {
                0 => 0,
                1 => 1,
                2..=11 => 2,
                12 => 3,
                _ => 4,
            };
            counts[slot] += 1;
        }
        let share = |i: usize| counts[i] as f64 / predicted.len() as f64;
        Some(Self {
            model,
            exact: share(0),
            semitone: share(1),
            within_octave: share(2),
            octave: share(3),
            beyond_octave: share(4),
        })
    }
}

/// Clip-level timbre vectors of one model, with the GM program of each clip.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TimbreCloud {
    /// Row name of the model.
    pub model: String,
    /// Dimensions of a vector.
    pub dim: usize,
    /// GM program of each clip.
    pub programs: Vec<u32>,
    /// Row-major vectors, `programs.len() x dim`.
    pub vectors: Vec<f32>,
}

fn percent(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{:.1}", 100.0 * x),
        _ => "N/A".to_string(),
    }
}

impl EvalReport {
    /// The table in markdown (the protocol's header, accuracies in percent with one decimal,
    /// N/A where not applicable), then the counts, timings and notes.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        s.push_str(TABLE_HEADER);
        s.push('\n');
        s.push_str("|---|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let mse = match r.mse {
                Some(m) if m.is_finite() => format!("{m:.3}"),
                _ => "N/A".to_string(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.model,
                mse,
                percent(r.instr_on_z_t),
                percent(r.instr_on_z_v),
                percent(r.instr_on_z_p),
                percent(r.pitch_on_z_t),
                percent(r.pitch_on_z_v),
                percent(r.pitch_on_z_p),
            );
        }
        let c = &self.counts;
        let set = match self.set {
            Set::Notes => "notes",
            Set::Phrases => "phrases",
        };
        let sampling = if c.subsampled {
            format!(
                "subsampled at random to {} (seed {})",
                c.train_frames_used, c.seed
            )
        } else {
            "all used".to_string()
        };
        let _ = writeln!(
            s,
            "\nSet {set} of {}: k-NN (k = {}, Euclidean) fitted on train, scored on test. \
             Clips: {} train, {} test ({} without active frames left out). \
             Active frames: {} train ({sampling}), {} test. \
             Time: features {:.1} s, k-NN {:.1} s.",
            self.data.display(),
            self.k,
            c.train_clips,
            c.test_clips,
            c.clips_without_active_frames,
            c.train_frames,
            c.test_frames,
            self.timings.features_s,
            self.timings.knn_s,
        );
        for n in &self.notes {
            let _ = writeln!(s, "\n- {n}");
        }
        if !self.pitch_errors.is_empty() {
            let _ = writeln!(
                s,
                "\nPitch on z_p: where the votes land, share of the test frames:\n\n\
                 | model | right note | 1 semitone off | 2-11 off | an octave off | further |\n\
                 |---|---|---|---|---|---|"
            );
            for e in &self.pitch_errors {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} |",
                    e.model,
                    percent(Some(e.exact)),
                    percent(Some(e.semitone)),
                    percent(Some(e.within_octave)),
                    percent(Some(e.octave)),
                    percent(Some(e.beyond_octave))
                );
            }
        }
        if !self.by_copy.is_empty() {
            let _ = writeln!(
                s,
                "\nInstrument columns split by whether the test clip has a copy in train:\n\n\
                 | model | test clips with a copy | clips | frames | instr. on z_t | instr. on z_v | instr. on z_p |\n\
                 |---|---|---|---|---|---|---|"
            );
            for r in &self.by_copy {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    r.model,
                    if r.copy { "yes" } else { "no" },
                    r.shares.test_clips,
                    r.shares.test_frames,
                    percent(r.shares.instr_on_z_t),
                    percent(r.shares.instr_on_z_v),
                    percent(r.shares.instr_on_z_p)
                );
            }
        }
        s
    }
}

/// The protocol's table for `opts` with the DSP-split and chance rows, at the engine's default
/// analysis settings.
pub fn evaluate(opts: &EvalOptions) -> Result<EvalReport, EvalError> {
    evaluate_models(opts, &StftConfig::default(), &[&DspSplit])
}

/// Labels of a stored frame (or clip).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Labels {
    /// Position of the clip in the evaluated list.
    clip: u32,
    /// Frame index inside the clip (0 for clip-level entries).
    frame: u32,
    /// GM program.
    instrument: u32,
    /// Whether the clip has a copy in train (test clips, with a copy split only).
    copy: bool,
    /// MIDI note (clip-level: the clip's note, `u32::MAX` when none).
    pitch: u32,
}

/// Everything one clip contributes.
struct ClipResult {
    index: usize,
    split: Split,
    program: u32,
    note: Option<u32>,
    /// Active frames and their notes.
    frames: Vec<(u32, u32)>,
    /// Per model.
    latents: Vec<ClipLatents>,
}

/// A growing matrix of latents, one per (model, latent kind).
struct Column {
    dim: Option<usize>,
    data: Vec<f32>,
}

/// Frame store of one split: keeps at most `cap` frames, the ones with the smallest random
/// keys (so the kept set does not depend on arrival order), for every latent column.
struct FrameStore {
    cap: usize,
    seed: u64,
    seen: usize,
    labels: Vec<Labels>,
    /// Kept frames by key, largest on top: `(key, clip, frame, slot)`.
    heap: BinaryHeap<(u64, u32, u32, usize)>,
    columns: Vec<Column>,
    /// Label counts of every frame seen (before subsampling): instrument, pitch.
    instrument_counts: BTreeMap<u32, usize>,
    pitch_counts: BTreeMap<u32, usize>,
    /// Joint counts of every frame seen: (pitch, instrument).
    joint_counts: BTreeMap<(u32, u32), usize>,
}

impl FrameStore {
    fn new(cap: usize, seed: u64, dims: &[Option<usize>]) -> Self {
        Self {
            cap,
            seed,
            seen: 0,
            labels: Vec::new(),
            heap: BinaryHeap::new(),
            columns: dims
                .iter()
                .map(|d| Column {
                    dim: *d,
                    data: Vec::new(),
                })
                .collect(),
            instrument_counts: BTreeMap::new(),
            pitch_counts: BTreeMap::new(),
            joint_counts: BTreeMap::new(),
        }
    }

    /// Offers frame `row` of every column (`rows[c]` is column `c`'s matrix of the clip).
    fn offer(&mut self, labels: Labels, row: usize, rows: &[Option<&[f32]>]) {
        self.seen += 1;
        *self.instrument_counts.entry(labels.instrument).or_default() += 1;
        *self.pitch_counts.entry(labels.pitch).or_default() += 1;
        *self
            .joint_counts
            .entry((labels.pitch, labels.instrument))
            .or_default() += 1;
        if self.cap == 0 {
            return;
        }
        let key = mix64(self.seed ^ mix64(((labels.clip as u64) << 32) | labels.frame as u64));
        let entry = (key, labels.clip, labels.frame);
        let slot = if self.labels.len() < self.cap {
            self.labels.push(labels);
            for (col, r) in self.columns.iter_mut().zip(rows) {
                if let (Some(dim), Some(r)) = (col.dim, r) {
                    col.data.extend_from_slice(&r[row * dim..(row + 1) * dim]);
                }
            }
            self.labels.len() - 1
        } else {
            match self.heap.peek() {
                Some(&(k, c, f, slot)) if entry < (k, c, f) => {
                    self.heap.pop();
                    self.labels[slot] = labels;
                    for (col, r) in self.columns.iter_mut().zip(rows) {
                        if let (Some(dim), Some(r)) = (col.dim, r) {
                            col.data[slot * dim..(slot + 1) * dim]
                                .copy_from_slice(&r[row * dim..(row + 1) * dim]);
                        }
                    }
                    slot
                }
                _ => return,
            }
        };
        self.heap.push((entry.0, entry.1, entry.2, slot));
    }

    /// Puts the kept frames in (clip, frame) order, so results do not depend on thread timing.
    fn finish(&mut self) {
        self.heap.clear();
        let mut order: Vec<usize> = (0..self.labels.len()).collect();
        order.sort_by_key(|&s| (self.labels[s].clip, self.labels[s].frame));
        self.labels = order.iter().map(|&s| self.labels[s]).collect();
        for col in &mut self.columns {
            if let Some(dim) = col.dim {
                let mut sorted = Vec::with_capacity(col.data.len());
                for &s in &order {
                    sorted.extend_from_slice(&col.data[s * dim..(s + 1) * dim]);
                }
                col.data = sorted;
            }
        }
    }
}

/// Clip-level store of one split.
struct ClipStore {
    labels: Vec<Labels>,
    /// Per model: `z_t` rows, in `labels` order.
    z_t: Vec<Vec<f32>>,
}

impl ClipStore {
    fn finish(&mut self, dims: &[Option<usize>]) {
        let mut order: Vec<usize> = (0..self.labels.len()).collect();
        order.sort_by_key(|&i| self.labels[i].clip);
        self.labels = order.iter().map(|&i| self.labels[i]).collect();
        for (z, dim) in self.z_t.iter_mut().zip(dims) {
            if let Some(dim) = *dim {
                let mut sorted = Vec::with_capacity(z.len());
                for &i in &order {
                    sorted.extend_from_slice(&z[i * dim..(i + 1) * dim]);
                }
                *z = sorted;
            }
        }
    }
}

/// Reads a mono 16-bit WAV into `-1..1` samples and checks it against its record.
fn read_clip(root: &Path, record: &ClipRecord, cfg: &StftConfig) -> Result<Vec<f32>, EvalError> {
    if record.hop != cfg.hop {
        return Err(EvalError::Hop {
            path: record.audio_path(root),
            found: record.hop,
            expected: cfg.hop,
        });
    }
    Ok(manifest::read_clip_audio(root, record, cfg.sample_rate)?)
}

/// Decodes, analyses and encodes one clip with every model. `None` for a clip without active
/// frames.
fn process_clip(
    root: &Path,
    index: usize,
    record: &ClipRecord,
    cfg: &StftConfig,
    models: &[&dyn LatentModel],
    dims: &[LatentDims],
) -> Result<Option<ClipResult>, EvalError> {
    let samples = read_clip(root, record, cfg)?;
    let features = dsp_split::analyse_clip(&samples, cfg);
    if record.frame_notes.len() != features.frames {
        return Err(EvalError::FrameLabels {
            path: record.audio_path(root),
            labels: record.frame_notes.len(),
            frames: features.frames,
        });
    }
    let active = dsp_split::active_frames(&features, &record.frame_notes);
    if active.is_empty() {
        return Ok(None);
    }
    let input = ClipInput {
        record,
        samples: &samples,
        features: &features,
        active: &active,
        cfg,
    };
    let mut latents = Vec::with_capacity(models.len());
    for (model, dims) in models.iter().zip(dims) {
        let fail = |message: String| EvalError::Model {
            model: model.name(),
            message: format!("{}: {message}", record.path.display()),
        };
        let l = model.encode(&input).map_err(fail)?;
        let check =
            |name: &str, v: &Option<Vec<f32>>, dim: Option<usize>, rows: usize| match (v, dim) {
                (None, None) => Ok(()),
                (Some(v), Some(d)) if v.len() == rows * d => Ok(()),
                (Some(v), Some(d)) => Err(fail(format!(
                    "{name} has {} values, expected {rows} x {d}",
                    v.len()
                ))),
                (Some(_), None) => Err(fail(format!("{name} returned but not declared"))),
                (None, Some(_)) => Err(fail(format!("{name} declared but missing"))),
            };
        check("z_t", &l.z_t, dims.z_t, 1)?;
        check("z_v", &l.z_v, dims.z_v, active.len())?;
        check("z_p", &l.z_p, dims.z_p, active.len())?;
        for v in [&l.z_t, &l.z_v, &l.z_p].into_iter().flatten() {
            if v.iter().any(|x| !x.is_finite()) {
                return Err(fail("non-finite latent".to_string()));
            }
        }
        latents.push(l);
    }
    Ok(Some(ClipResult {
        index,
        split: record.split,
        program: record.program as u32,
        note: record.note.map(u32::from),
        frames: active
            .iter()
            .map(|&f| (f as u32, record.frame_notes[f] as u32))
            .collect(),
        latents,
    }))
}

/// `sum_c p_train(c) * p_test(c)`: the accuracy of guessing at random with the train label
/// frequencies. `None` when either side is empty.
fn chance(train: &BTreeMap<u32, usize>, test: &BTreeMap<u32, usize>) -> Option<f64> {
    let nt: usize = train.values().sum();
    let ns: usize = test.values().sum();
    if nt == 0 || ns == 0 {
        return None;
    }
    Some(
        test.iter()
            .map(|(c, n)| {
                let p = train.get(c).copied().unwrap_or(0) as f64 / nt as f64;
                p * *n as f64 / ns as f64
            })
            .sum(),
    )
}

/// Instrument accuracy on test frames of the best guess from the frame's note alone: for each
/// note, the instrument most common among the train frames of that note (ties: the lower
/// program; a note never seen in training: the most common train instrument). This is what a
/// latent holding exactly the pitch and nothing else would score on "instrument on z_p" with an
/// ideal classifier: the floor of that column, set by how the instruments' ranges overlap.
fn instrument_from_pitch(
    train: &BTreeMap<(u32, u32), usize>,
    test: &BTreeMap<(u32, u32), usize>,
) -> Option<f64> {
    let total: usize = test.values().sum();
    if total == 0 {
        return None;
    }
    let mut by_instrument: BTreeMap<u32, usize> = BTreeMap::new();
    let mut best: BTreeMap<u32, (usize, u32)> = BTreeMap::new();
    for (&(pitch, instrument), &n) in train {
        *by_instrument.entry(instrument).or_default() += n;
        let entry = best.entry(pitch).or_insert((0, instrument));
        if n > entry.0 {
            *entry = (n, instrument);
        }
    }
    let fallback = by_instrument
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(&i, _)| i)?;
    let correct: usize = test
        .iter()
        .filter(|((pitch, instrument), _)| {
            best.get(pitch).map_or(fallback, |&(_, i)| i) == *instrument
        })
        .map(|(_, &n)| n)
        .sum();
    Some(correct as f64 / total as f64)
}

fn counts_of(values: impl Iterator<Item = u32>) -> BTreeMap<u32, usize> {
    let mut m = BTreeMap::new();
    for v in values {
        *m.entry(v).or_default() += 1;
    }
    m
}

/// Hits and items under the first labelling of [`knn_accuracies`], by breakdown key.
type LabelHits = BTreeMap<u32, (usize, usize)>;

/// What [`knn_accuracies`] returns: per labelling the accuracy (`None` for an empty side) and
/// the votes (one per test row; empty for an empty side), and the first labelling's hits.
type KnnScores = (Vec<Option<f64>>, Vec<Vec<u32>>, LabelHits);

/// Fits on `train` (row-major, `dim` per row; consumed to save a copy), scores `test`, and
/// returns the accuracy and the votes under each labelling `(train labels, test labels)`
/// (`None` and no votes for an empty side) and, for the first labelling, the hits and items of
/// the test rows of each breakdown key (`keys`, one per test row). `groups` (`(test groups,
/// train groups)`) keeps each test row from the train rows of its group.
fn knn_accuracies(
    train: Vec<f32>,
    test: &[f32],
    dim: usize,
    labellings: &[(Vec<u32>, Vec<u32>)],
    groups: Option<&(Vec<u32>, Vec<u32>)>,
    keys: &[u32],
) -> Result<KnnScores, EvalError> {
    if labellings.is_empty() {
        return Ok((Vec::new(), Vec::new(), LabelHits::new()));
    }
    let (first_train, _) = &labellings[0];
    if first_train.is_empty() || test.is_empty() {
        let n = labellings.len();
        return Ok((vec![None; n], vec![Vec::new(); n], LabelHits::new()));
    }
    let index = KnnIndex::new(train, first_train.clone(), dim)?;
    let neighbours =
        index.nearest_excluding(test, groups.map(|(te, tr)| (te.as_slice(), tr.as_slice())));
    let mut hits = LabelHits::new();
    let votes: Vec<Vec<u32>> = labellings
        .iter()
        .map(|(tr, _)| neighbours.iter().map(|n| n.vote(tr)).collect())
        .collect();
    let (_, first_test) = &labellings[0];
    for ((p, t), key) in votes[0].iter().zip(first_test).zip(keys) {
        let entry = hits.entry(*key).or_default();
        entry.0 += usize::from(p == t);
        entry.1 += 1;
    }
    let accuracies = votes
        .iter()
        .zip(labellings)
        .map(|(pred, (_, te))| Some(knn::accuracy(pred, te)))
        .collect();
    Ok((accuracies, votes, hits))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::write_manifest;

    const RATE: u32 = 32_000;

    /// Harmonic tone at MIDI `note` (detuned by `cents`) with partial amplitudes `h^-tilt`,
    /// sounding from 0.05 s to 0.45 s of a 0.5 s clip, faded in and out over `fade` samples
    /// (raised cosine; 0: hard edges).
    fn tone(note: u8, cents: f32, tilt: f32, gain: f32, fade: usize) -> Vec<f32> {
        let f0 = 440.0 * 2f32.powf((note as f32 - 69.0 + cents / 100.0) / 12.0);
        let len = RATE as usize / 2;
        let (on, off) = (RATE as usize / 20, 9 * RATE as usize / 20);
        let partials: Vec<(f32, f32)> = (1..60)
            .map(|h| (h as f32 * f0, (h as f32).powf(-tilt)))
            .filter(|(f, _)| *f < 12_000.0)
            .collect();
        let norm: f32 = partials.iter().map(|(_, a)| a).sum();
        (0..len)
            .map(|i| {
                if i < on || i >= off {
                    return 0.0;
                }
                let t = i as f32 / RATE as f32;
                let edge = (i - on).min(off - 1 - i);
                let ramp = if edge < fade {
                    0.5 - 0.5 * (std::f32::consts::PI * edge as f32 / fade as f32).cos()
                } else {
                    1.0
                };
                ramp * gain / norm
                    * partials
                        .iter()
                        .map(|(f, a)| a * (2.0 * std::f32::consts::PI * f * t).sin())
                        .sum::<f32>()
            })
            .collect()
    }

    struct TempDir(PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn temp_dir(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "timbreswap-eval-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write_wav(path: &Path, samples: &[f32]) {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for s in samples {
            w.write_sample((s * 32_767.0).round() as i16).unwrap();
        }
        w.finalize().unwrap();
    }

    const PROGRAMS: [u8; 3] = [0, 40, 73];
    const TILTS: [f32; 3] = [0.2, 1.0, 2.2];
    const NOTES: [u8; 4] = [55, 60, 64, 67];

    /// 3 instruments (spectral tilts) x 4 notes x 4 variants (train, train, test, valid);
    /// variant `v` is detuned by `[-2, 1, 2, 0][v]` cents whatever the instrument.
    fn dataset(root: &Path) -> Vec<ClipRecord> {
        dataset_detuned(root, |_, v| [-2.0, 1.0, 2.0, 0.0][v], 0)
    }

    /// As [`dataset`], with instrument `i`'s variant `v` detuned by `detune(i, v)` cents and
    /// every tone faded in and out over `fade` samples.
    fn dataset_detuned(
        root: &Path,
        detune: impl Fn(usize, usize) -> f32,
        fade: usize,
    ) -> Vec<ClipRecord> {
        let cfg = StftConfig::default();
        let mut records = Vec::new();
        for (i, (&program, &tilt)) in PROGRAMS.iter().zip(&TILTS).enumerate() {
            for &note in &NOTES {
                for (v, split) in [Split::Train, Split::Train, Split::Test, Split::Valid]
                    .into_iter()
                    .enumerate()
                {
                    let cents = detune(i, v);
                    let gain = [0.3, 0.22, 0.26, 0.3][v];
                    let samples = tone(note, cents, tilt, gain, fade);
                    let path = PathBuf::from(format!("i{i}_n{note}_v{v}.wav"));
                    write_wav(&root.join(&path), &samples);
                    let (on, off) = (RATE as usize / 20, 9 * RATE as usize / 20);
                    let frame_notes = (0..samples.len() / cfg.hop + 1)
                        .map(|f| {
                            let s = f * cfg.hop;
                            if s >= on && s < off {
                                note as i16
                            } else {
                                -1
                            }
                        })
                        .collect();
                    records.push(ClipRecord {
                        set: Set::Notes,
                        path,
                        program,
                        instrument: format!("tilt {tilt}"),
                        family: "synthetic".to_string(),
                        note: Some(note),
                        velocity: 80,
                        phrase: None,
                        split,
                        sample_rate: RATE,
                        samples: samples.len(),
                        hop: cfg.hop,
                        frame_notes,
                    });
                }
            }
        }
        write_manifest(root, &records).unwrap();
        records
    }

    /// `sum_c p_train(c) p_test(c)` straight from label lists.
    fn analytic_chance(train: &[u32], test: &[u32]) -> f64 {
        let mut labels: Vec<u32> = train.iter().chain(test).copied().collect();
        labels.sort_unstable();
        labels.dedup();
        labels
            .iter()
            .map(|c| {
                let pt = train.iter().filter(|l| *l == c).count() as f64 / train.len() as f64;
                let ps = test.iter().filter(|l| *l == c).count() as f64 / test.len() as f64;
                pt * ps
            })
            .sum()
    }

    /// Votes against notes worked by hand: one of each interval class, two right.
    #[test]
    fn pitch_errors_count_the_interval_of_each_vote() {
        let truth = [60, 60, 60, 60, 60, 72];
        let votes = [60, 61, 55, 48, 80, 72];
        let e = PitchErrors::of("m".into(), &votes, &truth).unwrap();
        assert_eq!(
            (
                e.exact,
                e.semitone,
                e.within_octave,
                e.octave,
                e.beyond_octave
            ),
            (2.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0)
        );
        assert!(PitchErrors::of("m".into(), &[], &[]).is_none());
        assert!(PitchErrors::of("m".into(), &[60], &[60, 61]).is_none());
    }

    #[test]
    fn dsp_split_and_chance_on_a_synthetic_dataset() {
        let dir = temp_dir("table");
        let root = dir.0.clone();
        let records = dataset(&root);
        let opts = EvalOptions {
            data: root.clone(),
            set: Set::Notes,
            max_train_frames: 600,
            seed: 1,
            exclude_same_note: false,
            copy_threshold_db: None,
            test_data: None,
        };
        let report = evaluate(&opts).unwrap();
        assert_eq!(report.rows.len(), 3);
        let dsp = &report.rows[0];
        let chance_row = &report.rows[1];
        assert_eq!(dsp.model, "DSP split");
        assert_eq!(dsp.mse, Some(0.0));
        assert_eq!(dsp.instr_on_z_v, None);
        assert_eq!(dsp.pitch_on_z_v, None);
        let instr_t = dsp.instr_on_z_t.unwrap();
        let pitch_p = dsp.pitch_on_z_p.unwrap();
        assert!(instr_t >= 0.9, "instrument on z_t: {instr_t}");
        assert!(pitch_p >= 0.9, "pitch on z_p: {pitch_p}");

        // Counts: 24 train and 12 test clips (valid ignored), frames subsampled to the cap.
        let c = &report.counts;
        assert_eq!((c.train_clips, c.test_clips), (24, 12));
        assert_eq!(c.clips_without_active_frames, 0);
        assert!(c.subsampled);
        assert_eq!(c.train_frames_used, 600);

        // Chance from the label frequencies, computed here independently.
        let cfg = StftConfig::default();
        let mut frame_labels = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
        let mut clip_labels = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
        for r in records.iter().filter(|r| r.split != Split::Valid) {
            let reader = hound::WavReader::open(root.join(&r.path)).unwrap();
            let x: Vec<f32> = reader
                .into_samples::<i16>()
                .map(|s| s.unwrap() as f32 / 32_768.0)
                .collect();
            let feat = dsp_split::analyse_clip(&x, &cfg);
            let active = dsp_split::active_frames(&feat, &r.frame_notes);
            let train = r.split == Split::Train;
            for &f in &active {
                let (i, p) = (r.program as u32, r.frame_notes[f] as u32);
                if train {
                    frame_labels[0].0.push(i);
                    frame_labels[1].0.push(p);
                } else {
                    frame_labels[0].1.push(i);
                    frame_labels[1].1.push(p);
                }
            }
            let (i, p) = (r.program as u32, r.note.unwrap() as u32);
            if train {
                clip_labels[0].0.push(i);
                clip_labels[1].0.push(p);
            } else {
                clip_labels[0].1.push(i);
                clip_labels[1].1.push(p);
            }
        }
        assert_eq!(c.train_frames, frame_labels[0].0.len());
        assert_eq!(c.test_frames, frame_labels[0].1.len());
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-12;
        let instr_clip = analytic_chance(&clip_labels[0].0, &clip_labels[0].1);
        let pitch_clip = analytic_chance(&clip_labels[1].0, &clip_labels[1].1);
        let instr_frame = analytic_chance(&frame_labels[0].0, &frame_labels[0].1);
        let pitch_frame = analytic_chance(&frame_labels[1].0, &frame_labels[1].1);
        assert!((instr_clip - 1.0 / 3.0).abs() < 1e-12);
        assert!((pitch_clip - 0.25).abs() < 1e-12);
        assert!(close(chance_row.instr_on_z_t, instr_clip));
        assert!(close(chance_row.pitch_on_z_t, pitch_clip));
        assert!(close(chance_row.instr_on_z_v, instr_frame));
        assert!(close(chance_row.instr_on_z_p, instr_frame));
        assert!(close(chance_row.pitch_on_z_v, pitch_frame));
        assert!(close(chance_row.pitch_on_z_p, pitch_frame));
        assert_eq!(chance_row.mse, None);

        // The pitch-label floor, computed here from the same frame labels: each test frame is
        // guessed as the majority train instrument of its note.
        let (train_i, test_i) = &frame_labels[0];
        let (train_p, test_p) = &frame_labels[1];
        let guess = |note: u32| -> u32 {
            let mut votes: Vec<(usize, u32)> = Vec::new();
            for instrument in train_i.iter().copied() {
                if !votes.iter().any(|v| v.1 == instrument) {
                    let n = train_i
                        .iter()
                        .zip(train_p)
                        .filter(|(i, p)| **i == instrument && **p == note)
                        .count();
                    votes.push((n, instrument));
                }
            }
            // Most votes, then the lower program; a note never heard in training: the most
            // common train instrument.
            votes.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            if votes[0].0 > 0 {
                return votes[0].1;
            }
            let mut overall: Vec<(usize, u32)> = votes
                .iter()
                .map(|v| (train_i.iter().filter(|i| **i == v.1).count(), v.1))
                .collect();
            overall.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            overall[0].1
        };
        let right = test_i
            .iter()
            .zip(test_p)
            .filter(|(i, p)| guess(**p) == **i)
            .count();
        let floor = &report.rows[2];
        assert_eq!(floor.model, "pitch label only");
        assert!(close(
            floor.instr_on_z_p,
            right as f64 / test_i.len() as f64
        ));
        assert_eq!((floor.instr_on_z_t, floor.pitch_on_z_p), (None, None));

        // Split by instrument: every test item once, and the item-weighted mean of the
        // per-instrument shares is the table's figure.
        let split: Vec<&InstrumentRow> = report
            .by_instrument
            .iter()
            .filter(|r| r.model == "DSP split")
            .collect();
        assert_eq!(
            split.iter().map(|r| r.program).collect::<Vec<_>>(),
            PROGRAMS.map(u32::from)
        );
        assert_eq!(split.iter().map(|r| r.shares.test_clips).sum::<usize>(), 12);
        assert_eq!(
            split.iter().map(|r| r.shares.test_frames).sum::<usize>(),
            c.test_frames
        );
        let weighted = |share: fn(&InstrumentRow) -> Option<f64>,
                        items: fn(&InstrumentRow) -> usize| {
            split
                .iter()
                .map(|r| share(r).unwrap() * items(r) as f64)
                .sum::<f64>()
                / split.iter().map(|r| items(r)).sum::<usize>() as f64
        };
        assert!(close(
            dsp.instr_on_z_t,
            weighted(|r| r.shares.instr_on_z_t, |r| r.shares.test_clips)
        ));
        assert!(close(
            dsp.instr_on_z_p,
            weighted(|r| r.shares.instr_on_z_p, |r| r.shares.test_frames)
        ));
        assert!(split.iter().all(|r| r.shares.instr_on_z_v.is_none()));

        // The votes' breakdown: its right-note share is the table's cell, and the shares
        // cover every test frame.
        assert_eq!(report.pitch_errors.len(), 1);
        let e = &report.pitch_errors[0];
        assert_eq!(e.model, "DSP split");
        assert!(close(Some(e.exact), dsp.pitch_on_z_p.unwrap()));
        let total = e.exact + e.semitone + e.within_octave + e.octave + e.beyond_octave;
        assert!((total - 1.0).abs() < 1e-9, "{e:?}");

        let md = report.to_markdown();
        assert!(md.starts_with(TABLE_HEADER), "{md}");
        assert!(md.contains("| DSP split | 0.000 |"), "{md}");
        assert!(md.contains("N/A"));
        assert!(md.contains("lossless"));
        assert!(md.contains("subsampled"));
        assert!(serde_json::to_string(&report).is_ok());

        // Same seed, same table; without the cap, nothing is subsampled.
        let again = evaluate(&opts).unwrap();
        assert_eq!(again.rows, report.rows);
        let all = evaluate(&EvalOptions {
            max_train_frames: 100_000,
            ..opts.clone()
        })
        .unwrap();
        assert!(!all.counts.subsampled);
        assert_eq!(all.counts.train_frames_used, all.counts.train_frames);
        assert!(!all.to_markdown().contains("subsampled"));
    }

    /// With the same note excluded the table still scores every test clip, and what is left
    /// is what the synthetic data allows: its timbre (a spectral tilt per instrument) does not
    /// depend on the note, so the DSP split's z_t still names the instrument from other
    /// notes.
    #[test]
    fn excluding_the_same_note_keeps_the_timbre_and_every_test_clip() {
        let dir = temp_dir("exclude");
        let root = dir.0.clone();
        dataset(&root);
        let opts = EvalOptions {
            max_train_frames: 600,
            exclude_same_note: true,
            ..EvalOptions::new(root, Set::Notes)
        };
        let report = evaluate(&opts).unwrap();
        let plain = evaluate(&EvalOptions {
            exclude_same_note: false,
            ..opts.clone()
        })
        .unwrap();
        assert_eq!(report.counts.test_clips, plain.counts.test_clips);
        let (dsp, dsp_plain) = (&report.rows[0], &plain.rows[0]);
        assert!(dsp.instr_on_z_t.unwrap() >= 0.9, "{dsp:?}");
        // The mean envelope is ruled by the tilt, so a clip's neighbours are now its
        // instrument's other notes: the pitch on z_t, found before, is gone.
        assert_eq!(dsp.pitch_on_z_t, Some(0.0));
        assert!(dsp_plain.pitch_on_z_t.unwrap() >= 0.9, "{dsp_plain:?}");
        assert!(report.to_markdown().contains("Same note excluded"));
        assert!(!plain.to_markdown().contains("Same note excluded"));
    }

    /// The "sounding F0 only" row on data where, as in a SoundFont, every variant of an
    /// instrument's note shares that instrument's tuning (-20, 0 or +20 cents): the F0 alone
    /// finds the test frame's instrument through its train variants, and with the same note
    /// excluded the nearest frames are the other instruments' same note, 20 or 40 cents away,
    /// never the instrument's own other notes, 300 cents or more away. Either way the
    /// neighbours play the test frame's note. The first active frame of a tone, whose window
    /// is mostly the silence before it, may read far off; every other frame must not, so at
    /// most one frame per test clip may go against that expectation.
    #[test]
    fn the_sounding_f0_row_finds_a_shared_tuning_and_nothing_else() {
        let dir = temp_dir("f0");
        let root = dir.0.clone();
        dataset_detuned(&root, |i, _| [-20.0, 0.0, 20.0][i], RATE as usize / 50);
        let opts = EvalOptions {
            max_train_frames: 100_000,
            ..EvalOptions::new(root, Set::Notes)
        };
        let cfg = StftConfig::default();
        let plain = evaluate_models(&opts, &cfg, &[&SoundingF0]).unwrap();
        let excluded = evaluate_models(
            &EvalOptions {
                exclude_same_note: true,
                ..opts.clone()
            },
            &cfg,
            &[&SoundingF0],
        )
        .unwrap();
        for (report, instrument) in [(&plain, 1.0), (&excluded, 0.0)] {
            let row = &report.rows[0];
            assert_eq!(row.model, "sounding F0 only");
            assert_eq!(
                (row.mse, row.instr_on_z_t, row.instr_on_z_v),
                (None, None, None)
            );
            let frames = report.counts.test_frames as f64;
            let off = |share: Option<f64>, expected: f64| {
                ((share.unwrap() - expected).abs() * frames).round() as usize
            };
            assert_eq!(report.counts.test_clips, 12);
            assert!(off(row.instr_on_z_p, instrument) <= 12, "{row:?}");
            assert!(off(row.pitch_on_z_p, 1.0) <= 12, "{row:?}");
        }
    }

    /// The copy split on data where instrument 0 plays every variant of a note identically
    /// (its test clips are gain-scaled copies of its train clips) and the others detune each
    /// variant differently (no copies): the split counts each group's items, the groups add
    /// up to the table's figures, and the copies are found by the fine structure.
    #[test]
    fn the_copy_split_counts_and_adds_up() {
        let dir = temp_dir("copies");
        let root = dir.0.clone();
        dataset_detuned(
            &root,
            |i, v| {
                if i == 0 {
                    0.0
                } else {
                    [-2.0, 1.0, 2.0, 0.0][v]
                }
            },
            0,
        );
        let report = evaluate(&EvalOptions {
            max_train_frames: 100_000,
            copy_threshold_db: Some(-40.0),
            ..EvalOptions::new(root, Set::Notes)
        })
        .unwrap();
        let dsp = &report.rows[0];
        let split: Vec<&CopyRow> = report
            .by_copy
            .iter()
            .filter(|r| r.model == "DSP split")
            .collect();
        assert_eq!(
            split
                .iter()
                .map(|r| (r.copy, r.shares.test_clips))
                .collect::<Vec<_>>(),
            [(false, 8), (true, 4)]
        );
        assert_eq!(
            split.iter().map(|r| r.shares.test_frames).sum::<usize>(),
            report.counts.test_frames
        );
        let frames = report.counts.test_frames as f64;
        let weighted: f64 = split
            .iter()
            .map(|r| r.shares.instr_on_z_p.unwrap() * r.shares.test_frames as f64)
            .sum::<f64>()
            / frames;
        assert!((weighted - dsp.instr_on_z_p.unwrap()).abs() < 1e-12);
        // Per instrument, program 0's rows are all copies, the others' none.
        for r in report
            .by_instrument
            .iter()
            .filter(|r| r.model == "DSP split")
        {
            assert_eq!(r.copy, Some(r.program == 0), "{r:?}");
        }
        assert!(report.to_markdown().contains("| DSP split | yes | 4 |"));
        // The JSON rows stay flat (the schema of the reports in docs/quality/).
        let json = serde_json::to_value(split[1]).unwrap();
        assert_eq!(json["copy"], true);
        assert_eq!(json["test_clips"], 4);
        assert!(json.get("shares").is_none());
    }

    /// Scoring a second dataset's test split against the first's train split: with an
    /// identical copy of the dataset as the second, the table is the plain one (all train
    /// frames kept: the subsample is drawn by clip position, which the second list changes).
    #[test]
    fn a_second_dataset_as_test_split() {
        let dir = temp_dir("second");
        let (first, second) = (dir.0.join("a"), dir.0.join("b"));
        std::fs::create_dir_all(&first).unwrap();
        std::fs::create_dir_all(&second).unwrap();
        dataset(&first);
        dataset(&second);
        let opts = EvalOptions {
            max_train_frames: 100_000,
            ..EvalOptions::new(first, Set::Notes)
        };
        let plain = evaluate(&opts).unwrap();
        let crossed = evaluate(&EvalOptions {
            test_data: Some(second.clone()),
            ..opts.clone()
        })
        .unwrap();
        assert_eq!(crossed.rows, plain.rows);
        assert_eq!(crossed.counts, plain.counts);
        assert!(crossed.to_markdown().contains("Generalisation test"));
        // Without the second dataset's files, its clips cannot be read.
        std::fs::remove_file(second.join("i0_n55_v2.wav")).unwrap();
        assert!(evaluate(&EvalOptions {
            test_data: Some(second),
            ..opts
        })
        .is_err());
    }

    #[test]
    fn wrong_sample_rate_is_an_error() {
        let dir = temp_dir("rate");
        let root = dir.0.clone();
        let mut records = dataset(&root);
        records[0].sample_rate = 44_100;
        write_manifest(&root, &records).unwrap();
        let err = evaluate(&EvalOptions::new(root.clone(), Set::Notes)).unwrap_err();
        assert!(
            matches!(
                err,
                EvalError::Clip(ClipReadError::SampleRate { found: 44_100, .. })
            ),
            "{err}"
        );
        // No phrases in this dataset: nothing to score.
        let err = evaluate(&EvalOptions::new(root, Set::Phrases)).unwrap_err();
        assert!(matches!(err, EvalError::NoClips { .. }), "{err}");
    }

    /// A model with only a variation latent: the frame's level (one value), so instrument and
    /// pitch are hard to tell from it.
    struct LevelOnly;

    impl LatentModel for LevelOnly {
        fn name(&self) -> String {
            "level".to_string()
        }
        fn dims(&self, _cfg: &StftConfig) -> LatentDims {
            LatentDims {
                z_t: None,
                z_v: Some(1),
                z_p: None,
            }
        }
        fn encode(&self, clip: &ClipInput<'_>) -> Result<ClipLatents, String> {
            Ok(ClipLatents {
                z_v: Some(
                    clip.active
                        .iter()
                        .map(|&f| clip.features.frame_db[f])
                        .collect(),
                ),
                ..ClipLatents::default()
            })
        }
    }

    /// Declares a pitch latent of 3 values but returns 2 per frame.
    struct Broken;

    impl LatentModel for Broken {
        fn name(&self) -> String {
            "broken".to_string()
        }
        fn dims(&self, _cfg: &StftConfig) -> LatentDims {
            LatentDims {
                z_p: Some(3),
                ..LatentDims::default()
            }
        }
        fn encode(&self, clip: &ClipInput<'_>) -> Result<ClipLatents, String> {
            Ok(ClipLatents {
                z_p: Some(vec![0.0; 2 * clip.active.len()]),
                ..ClipLatents::default()
            })
        }
    }

    #[test]
    fn models_plug_in_through_the_trait() {
        let dir = temp_dir("models");
        let root = dir.0.clone();
        dataset(&root);
        let opts = EvalOptions {
            max_train_frames: 300,
            ..EvalOptions::new(root, Set::Notes)
        };
        let cfg = StftConfig::default();
        let report = evaluate_models(&opts, &cfg, &[&LevelOnly]).unwrap();
        let names: Vec<&str> = report.rows.iter().map(|r| r.model.as_str()).collect();
        assert_eq!(names, ["level", "chance", "pitch label only"]);
        let row = &report.rows[0];
        assert!(row.instr_on_z_v.is_some() && row.pitch_on_z_v.is_some());
        assert_eq!(
            (row.mse, row.instr_on_z_t, row.pitch_on_z_t),
            (None, None, None)
        );
        assert_eq!((row.instr_on_z_p, row.pitch_on_z_p), (None, None));
        let md = report.to_markdown();
        assert!(md.contains("| level | N/A | N/A |"), "{md}");

        let err = evaluate_models(&opts, &cfg, &[&Broken]).unwrap_err();
        assert!(
            matches!(&err, EvalError::Model { model, .. } if model == "broken"),
            "{err}"
        );
    }
}
