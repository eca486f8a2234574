//! What a transfer evaluation reports: each pair, each row's figures, the classifier, the
//! timings, and how the table prints (markdown, JSON).

use super::*;

/// One source and its reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairInfo {
    /// Source phrase, relative to the dataset folder.
    pub source: PathBuf,
    /// Program of the source (A).
    pub program_a: u8,
    /// Reference clip, relative to the dataset folder: a test-split note, or a phrase with
    /// [`TransferOptions::phrase_references`].
    pub reference: PathBuf,
    /// Program of the reference (B).
    pub program_b: u8,
    /// The reference's MIDI note (`None` for a phrase).
    pub reference_note: Option<u8>,
    /// The reference's velocity.
    pub reference_velocity: u8,
    /// pYIN's search range for this source, in Hz.
    pub pitch_range_hz: (f64, f64),
    /// The classifier's label of the clean source (a program), `None` if it has no active
    /// frame.
    pub source_label: Option<u32>,
    /// Per row (table order): the classifier's label of the output.
    pub output_labels: Vec<Option<u32>>,
    /// Per row (table order): the share of frames voiced in both source and output whose
    /// pitch is within 50 cents (`None` when no frame is voiced in both).
    pub output_pitch_within_50_cents: Vec<Option<f64>>,
    /// Per row (table order): the output's pitch against the source's score (`None` when no
    /// frame has both a note and a voiced pitch).
    pub output_pitch_on_score: Vec<Option<ScoreAgreement>>,
}

/// One row of the table. Shares are in 0..=1 (the markdown shows percent); `None` reads N/A.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransferRowReport {
    /// Row name.
    pub row: String,
    /// Outputs produced (one per source).
    pub outputs: usize,
    /// Sources with at least one frame voiced in both source and output.
    pub pitch_sources: usize,
    /// Frames voiced in both, over all sources.
    pub pitch_frames: usize,
    /// Mean over sources of the share of frames within 50 cents; high is good.
    pub pitch_within_50_cents: Option<f64>,
    /// Mean over sources of the median absolute error in cents; low is good.
    pub median_cent_error: Option<f64>,
    /// Sources with at least one frame that has a note in the score and is voiced in the
    /// output.
    #[serde(default)]
    pub score_sources: usize,
    /// Such frames, over all sources.
    #[serde(default)]
    pub score_frames: usize,
    /// Mean over sources of the share of those frames within 50 cents of the score's note
    /// ([`ScoreAgreement::within`]); high is good.
    #[serde(default)]
    pub pitch_on_score: Option<f64>,
    /// Mean over sources of the share a whole number of octaves above the note; low is good.
    #[serde(default)]
    pub octaves_up_from_score: Option<f64>,
    /// Mean over sources of the share a whole number of octaves below the note; low is good.
    #[serde(default)]
    pub octaves_down_from_score: Option<f64>,
    /// Outputs with at least one active frame (the others are classified as nothing).
    pub classified: usize,
    /// Share of outputs classified as B; high is good.
    pub classified_as_b: Option<f64>,
    /// Share of outputs classified as A; low is good.
    pub classified_as_a: Option<f64>,
    /// Sources with voiced frames in the source for the level.
    pub level_sources: usize,
    /// Mean over sources of output minus source level, in dB; 0 is good.
    pub level_difference_db: Option<f64>,
    /// Mean over sources of the absolute level difference, in dB.
    pub level_abs_difference_db: Option<f64>,
    /// Sources whose distance to the oracle was measured.
    #[serde(default)]
    pub oracle_sources: usize,
    /// Mean over sources of the log-spectral distance to the oracle, dB
    /// (`spectral::log_spectral_distance`; `None` without an oracle row).
    #[serde(default)]
    pub oracle_distance_db: Option<f64>,
    /// Mean time this row took to produce one output, in seconds.
    pub transfer_mean_s: f64,
}

/// The classifier and its check on the clean sources.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassifierInfo {
    /// Neighbours per vote.
    pub k: usize,
    /// Values per frame.
    pub dim: usize,
    /// FFT size of the features, in samples.
    pub fft: usize,
    /// Hop of the features, in samples.
    pub hop: usize,
    /// Note clips with active frames fitted on.
    pub fit_clips: usize,
    /// Note clips without an active labelled frame (left out).
    pub silent_clips: usize,
    /// Frames fitted on.
    pub fit_frames: usize,
    /// Instruments (programs) it knows.
    pub classes: usize,
    /// Share of clean sources classified as their own instrument (A).
    pub clean_source_accuracy: f64,
    /// Clean sources with an active frame.
    pub clean_sources_classified: usize,
}

/// Wall-clock times, in seconds (CPU-parallel stages report wall time; the per-call means
/// are measured inside the worker threads).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TransferTimings {
    /// Reading the note clips, their features and the classifier's index.
    pub fit_s: f64,
    /// All sources: outputs, pYIN, features.
    pub sources_s: f64,
    /// The k-NN classification of all sources and outputs.
    pub knn_s: f64,
    /// Everything.
    pub total_s: f64,
    /// pYIN runs.
    pub pyin_calls: usize,
    /// Mean time of one pYIN run (one clip).
    pub pyin_mean_s: f64,
    /// Feature extractions on sources and outputs.
    pub feature_calls: usize,
    /// Mean time of one feature extraction (one clip).
    pub feature_mean_s: f64,
    /// Worker threads.
    pub threads: usize,
}

/// The transfer table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransferReport {
    /// Dataset folder.
    pub data: PathBuf,
    /// SoundFont of the oracle.
    pub soundfont: PathBuf,
    /// Seed of the reference choice and subsets.
    pub seed: u64,
    /// Seed of the phrase generator.
    pub phrase_seed: u64,
    /// pYIN's search range.
    pub pitch_range: PitchRange,
    /// Whether the sources were sung ([`TransferOptions::voice_sources`]).
    pub voice_sources: bool,
    /// Whether the sources were whistled ([`TransferOptions::whistle_sources`]).
    pub whistle_sources: bool,
    /// What the sources' room added ([`TransferOptions::room`]).
    pub room: Room,
    /// What the references' room added ([`TransferOptions::reference_room`]).
    pub reference_room: Room,
    /// Whether the references were phrases ([`TransferOptions::phrase_references`]).
    pub phrase_references: bool,
    /// Whether the references were of the source's own instrument
    /// ([`TransferOptions::same_instrument_references`]).
    pub same_instrument_references: bool,
    /// Sample rate of the data, in Hz.
    pub sample_rate: u32,
    /// Test-split phrases in the dataset.
    pub sources_available: usize,
    /// Sources used.
    pub sources_used: usize,
    /// Instruments among the sources.
    pub source_instruments: usize,
    /// The rows.
    pub rows: Vec<TransferRowReport>,
    /// The classifier and its accuracy on the clean sources.
    pub classifier: ClassifierInfo,
    /// Every source, its reference and the labels.
    pub pairs: Vec<PairInfo>,
    /// Stage timings.
    pub timings: TransferTimings,
    /// Remarks printed under the table.
    pub notes: Vec<String>,
    /// SHA-256 of the neural model file, `None` until neural rows exist.
    pub model_hash: Option<String>,
    /// The command line, when run from the CLI.
    pub command: Option<String>,
}

pub(super) fn percent(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{:.1} %", 100.0 * x),
        _ => "N/A".to_string(),
    }
}

impl TransferReport {
    /// The table in markdown (the protocol's header), then the classifier's accuracy on the
    /// clean sources, counts, timings, notes and the command line.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        s.push_str(TABLE_HEADER);
        s.push_str("\n|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let cents = match r.median_cent_error {
                Some(c) if c.is_finite() => format!("{c:.1}"),
                _ => "N/A".to_string(),
            };
            let level = match (r.level_difference_db, r.level_abs_difference_db) {
                (Some(d), Some(a)) if d.is_finite() && a.is_finite() => {
                    format!("{d:+.2} (abs {a:.2})")
                }
                _ => "N/A".to_string(),
            };
            let distance = match r.oracle_distance_db {
                Some(d) if d.is_finite() => format!("{d:.2}"),
                _ => "N/A".to_string(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.row,
                percent(r.pitch_within_50_cents),
                cents,
                percent(r.classified_as_b),
                percent(r.classified_as_a),
                level,
                distance
            );
        }
        s.push_str(
            "\nPitch against the score (pYIN on each output against the note the source's score \
             sounds, on the frames with a note that pYIN finds voiced; means over sources):\n\n",
        );
        s.push_str(SCORE_TABLE_HEADER);
        s.push_str("\n|---|---|---|---|---|\n");
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                r.row,
                percent(r.pitch_on_score),
                percent(r.octaves_up_from_score),
                percent(r.octaves_down_from_score),
                r.score_frames
            );
        }
        let c = &self.classifier;
        let _ = writeln!(
            s,
            "\nClassifier accuracy on the clean source phrases (classified as A): {} ({} of {} \
             sources have active frames).",
            percent(Some(c.clean_source_accuracy)),
            c.clean_sources_classified,
            self.sources_used
        );
        let _ = writeln!(
            s,
            "\nSources: {} of {} test-split phrases ({} instruments) of {}, each with one \
             test-split reference of {} (seed {}). Classifier: k-NN \
             (k = {}, standardised) on {} frames ({} features, FFT {}, hop {}) of {} note clips \
             ({} without active frames), {} instruments. Pitch: pYIN, {} Hz, frame {}, bins of \
             {} semitone, range {}.",
            self.sources_used,
            self.sources_available,
            self.source_instruments,
            self.data.display(),
            if self.same_instrument_references {
                "its own instrument"
            } else {
                "another instrument"
            },
            self.seed,
            c.k,
            c.fit_frames,
            c.dim,
            c.fft,
            c.hop,
            c.fit_clips,
            c.silent_clips,
            c.classes,
            self.sample_rate,
            PYIN_FRAME,
            PYIN_RESOLUTION,
            match self.pitch_range {
                PitchRange::Instrument => "the source instrument's notes ± 3 semitones",
                PitchRange::Phrase => "the source phrase's notes ± 3 semitones",
                PitchRange::Full => "50-2100 Hz",
            },
        );
        let counts: Vec<String> = self
            .rows
            .iter()
            .map(|r| {
                format!(
                    "{}: {} outputs, {} classified, pitch on {} sources ({} frames), level on {} \
                     sources, {:.2} s per output",
                    r.row,
                    r.outputs,
                    r.classified,
                    r.pitch_sources,
                    r.pitch_frames,
                    r.level_sources,
                    r.transfer_mean_s
                )
            })
            .collect();
        let _ = writeln!(s, "\nCounts: {}.", counts.join("; "));
        let t = &self.timings;
        let _ = writeln!(
            s,
            "\nTime: classifier fit {:.1} s, sources {:.1} s, k-NN {:.1} s, total {:.1} s on {} \
             threads; pYIN {:.2} s per clip ({} clips), features {:.3} s per clip ({} clips).",
            t.fit_s,
            t.sources_s,
            t.knn_s,
            t.total_s,
            t.threads,
            t.pyin_mean_s,
            t.pyin_calls,
            t.feature_mean_s,
            t.feature_calls
        );
        for n in &self.notes {
            let _ = writeln!(s, "\n- {n}");
        }
        if let Some(cmd) = &self.command {
            let _ = writeln!(s, "\nCommand: `{cmd}`");
        }
        s
    }
}
