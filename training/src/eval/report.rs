//! The table's rows and report, and how they print (markdown, JSON).

use super::*;

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

pub(super) fn percent(v: Option<f64>) -> String {
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
