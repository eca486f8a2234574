//! The transfer table of the evaluation protocol (`../shared/eval-protocol.md`, "Transfer
//! table") for one dataset folder rendered by `timbreswap dataset`.
//!
//! Sources are the test-split phrases. Every source (instrument A) gets one reference: a
//! test-split note clip of an instrument B != A, B drawn with the seed, the clip at velocity 80
//! (when the split has one) whose note is nearest the middle of B's range. Every row is a
//! [`TransferSystem`] that turns (source, reference) into output audio; the built-in rows are
//! [`Dry`] (the source unchanged), [`Oracle`] (the source's score re-rendered with B's program
//! from the same SoundFont) and [`Classic`] (the plugin engine's offline render with the
//! reference's timbre descriptor). A neural row is one more [`TransferSystem`] (or an
//! [`FnSystem`] around a closure).
//!
//! Metrics, per row, averaged over sources:
//!
//! - **pitch kept**: pYIN (crate `pyin`) F0 of source and output on the manifest's hop; on frames
//!   voiced in both, the share within 50 cents and the median absolute error in cents. pYIN's
//!   F0 is quantised to its pitch bins ([`PYIN_RESOLUTION`] semitones).
//! - **timbre moved**: an independent frame-wise instrument classifier ([`FeatureExtractor`],
//!   [`InstrumentClassifier`]): 49 standardised features per frame, k-NN with k = 5 fitted on up
//!   to 200 random active frames of every note clip of the dataset (all splits); a clip's label
//!   is the majority vote of its frames within 40 dB of its loudest frame. Shares of outputs
//!   classified as B and as A.
//! - **level kept**: output minus source level in dB (RMS over the samples of the frames pYIN
//!   finds voiced in the source).
//!
//! Layout: `features` (the classifier's frame features), `classifier` (the k-NN instrument
//! classifier), `fit` (fitting it on the dataset's notes), `pitch` (pYIN, pitch agreement,
//! level difference), `systems` (the rows) and `parallel` (the thread pool);
//! this module holds the options, the errors, the source/reference plan, the evaluation loop
//! and the report, and re-exports the public items of the others.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::dataset;
use crate::instruments::Instrument;
use crate::knn::K;
use crate::manifest::{self, ClipRecord, Set, Split};
use crate::rng::{mix64, SplitMix64};

mod classifier;
mod error;
mod features;
mod fit;
mod listen;
mod parallel;
mod pitch;
mod plan;
mod report;
mod room;
mod spectral;
mod systems;

pub use classifier::{majority, InstrumentClassifier};
pub use error::TransferError;
pub use features::{
    active_frames, contrast_bands, dct_matrix, hz_to_mel, mel_filterbank, mel_to_hz,
    spectral_centroid, spectral_contrast, spectral_flatness, FeatureExtractor, FrameFeatures,
    MelFilter, ACTIVE_RANGE_DB, CENTROID_INDEX, CONTRAST_BANDS, CONTRAST_FMIN_HZ, CONTRAST_OFFSET,
    CONTRAST_QUANTILE, DELTA_OFFSET, DELTA_REACH, FEATURE_DIM, FEATURE_FFT, FEATURE_HOP,
    FLATNESS_INDEX, MFCC_OFFSET, N_MELS, N_MFCC,
};
pub use fit::fit_classifier;
use listen::write_pair_audio;
use parallel::parallel_map;
pub use pitch::{
    level_difference_db, midi_to_hz, pitch_agreement, score_agreement, track_pitch, PitchAgreement,
    PitchTrack, ScoreAgreement, CENT_TOLERANCE, PYIN_FRAME, PYIN_RESOLUTION,
};
pub use plan::*;
pub use report::*;
pub use room::{Room, REVERB_DAMPING, REVERB_SHARE};
pub use systems::{
    latency_suffix, Classic, Dry, EngineExemplar, EngineNeural, Exemplar, FnSystem, Oracle,
    TransferPair, TransferSystem,
};

/// Header of the table of each row's pitch against the source's score.
pub const SCORE_TABLE_HEADER: &str = "| row | within 50 cents of the score's note (up) | octaves up (down) | octaves down (down) | frames |";
/// Header of the protocol's transfer table.
pub const TABLE_HEADER: &str = "| row | pitch within 50 cents (up) | median cent error (down) | classified as B (up) | classified as A (down) | level difference dB | distance to oracle dB (down) |";

/// Seed of the phrase generator that `timbreswap dataset` uses by default.
pub const DEFAULT_PHRASE_SEED: u64 = 1;
/// Name of the oracle row, whose output the distance column is measured to.
pub const ORACLE_ROW: &str = "oracle";

/// Preferred velocity of the reference note clip.
pub const REFERENCE_VELOCITY: u8 = 80;

/// pYIN search range of [`PitchRange::Full`], in Hz.
pub const PYIN_FULL_RANGE_HZ: (f64, f64) = (50.0, 2100.0);
/// Margin around the instrument's note range in [`PitchRange::Instrument`], in semitones.
pub const PITCH_MARGIN_SEMITONES: f64 = 3.0;

/// Most frames of one note clip the classifier is fitted on (protocol).
pub const MAX_FIT_FRAMES_PER_CLIP: usize = 200;

// ---------------------------------------------------------------------------------------------
// Evaluation.

/// pYIN's search range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PitchRange {
    /// The source instrument's note range (from the manifest's note clips) ± 3 semitones.
    Instrument,
    /// The notes the source phrase's labels (manifest) sound ± 3 semitones: fastest (a phrase
    /// spans at most about two octaves), but pYIN cannot see an output pitch outside it.
    Phrase,
    /// 50 to 2100 Hz for every source (slowest: pYIN's Viterbi pass grows with the square of
    /// the number of pitch bins).
    Full,
}

/// What to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferOptions {
    /// Dataset folder (`manifest.jsonl` and the audio it names).
    pub data: PathBuf,
    /// The SoundFont the dataset was rendered from (for the oracle row).
    pub soundfont: PathBuf,
    /// Most sources (an instrument-balanced, seeded subset); `None` for all.
    pub max_sources: Option<usize>,
    /// Seed of the reference choice and of the subsets.
    pub seed: u64,
    /// Seed the dataset's phrases were generated with (`timbreswap dataset --seed`).
    pub phrase_seed: u64,
    /// pYIN's search range.
    pub pitch_range: PitchRange,
    /// Sources sung instead of played: each source phrase's score sung by
    /// [`crate::voice::sing`] (only phrases inside [`crate::voice::VOICE_RANGE`]), a voice-like
    /// input no SoundFont renders. The references, the oracle and the classifier stay the
    /// dataset's.
    pub voice_sources: bool,
    /// Sources whistled instead of played: each source phrase's score whistled
    /// [`crate::whistle::WHISTLE_OCTAVE`] semitones up by [`crate::whistle::whistle`] (only
    /// phrases that then lie inside [`crate::whistle::WHISTLE_RANGE`]), and the rows that can
    /// move pitch (the engine's Exemplar and Neural) play it back down with Transpose. The
    /// pitch columns compare each output with the source's pitch moved down as far; the
    /// references, the oracle (the score as written) and the classifier stay the dataset's.
    /// Not with [`voice_sources`](Self::voice_sources).
    pub whistle_sources: bool,
    /// What the source's room adds (reverb, noise) before any row hears it; the references
    /// and the oracle stay clean.
    pub room: Room,
    /// What the reference clip's room adds before any row analyses it (a clip taken from a
    /// recording); the sources and the oracle stay as they are.
    pub reference_room: Room,
    /// References played as phrases instead of single notes: each pair's reference is a
    /// test-split phrase of the same instrument B ([`phrase_references`]), as a user would
    /// drag a clip of several notes. Sources, B, oracle and classifier are unchanged.
    pub phrase_references: bool,
    /// References of the source's own instrument: each pair's reference is A's test-split
    /// note nearest the phrase's median note ([`same_instrument_references`]), so B is A and
    /// the oracle is the source's own score played by its own instrument. "Classified as B"
    /// then measures what a row keeps of an instrument when nothing has to change. Applied
    /// after [`phrase_references`](Self::phrase_references), which it replaces.
    pub same_instrument_references: bool,
    /// A folder to write every pair's audio into, to listen to: the source, the reference and
    /// each row's output, as 32-bit float WAV files at the dataset's rate named
    /// `SOURCE__REFERENCE__ROW.wav` (file stems; the row's spaces and slashes as `_`). `None`:
    /// nothing is written.
    pub write_audio: Option<PathBuf>,
}

impl TransferOptions {
    /// All sources, seed 0, the default phrase seed, instrument pitch ranges.
    pub fn new(data: PathBuf, soundfont: PathBuf) -> Self {
        Self {
            data,
            soundfont,
            max_sources: None,
            seed: 0,
            phrase_seed: DEFAULT_PHRASE_SEED,
            pitch_range: PitchRange::Instrument,
            voice_sources: false,
            whistle_sources: false,
            room: Room::default(),
            reference_room: Room::default(),
            phrase_references: false,
            same_instrument_references: false,
            write_audio: None,
        }
    }
}

/// What one row made of one source.
struct RowOutcome {
    pitch: Option<PitchAgreement>,
    /// The output's pitch against the source's score.
    score: Option<ScoreAgreement>,
    level_db: Option<f64>,
    /// Log-spectral distance to the oracle's output, dB.
    oracle_db: Option<f64>,
    /// Standardised active rows; `None` when the output is the source itself.
    features: Option<Vec<f32>>,
    transfer_s: f64,
}

/// Everything one source contributes.
struct SourceOutcome {
    pitch_range_hz: (f64, f64),
    source_rows: Vec<f32>,
    rows: Vec<RowOutcome>,
    pyin_s: f64,
    pyin_calls: usize,
    feature_s: f64,
    feature_calls: usize,
}

/// Shared read-only state of the per-source work.
struct Context<'a> {
    root: &'a Path,
    records: &'a [ClipRecord],
    rate: u32,
    classifier: &'a InstrumentClassifier,
    systems: &'a [&'a dyn TransferSystem],
    instruments: &'a BTreeMap<u8, Instrument>,
    pitch_range: PitchRange,
    /// With sung or whistled sources: the phrase generator's seed (the scores are
    /// regenerated from it).
    voice_phrase_seed: Option<u64>,
    /// Whether the scores are whistled (an octave up) rather than sung.
    whistled: bool,
    /// What the source's room adds.
    room: Room,
    /// What the reference's room adds.
    reference_room: Room,
    /// Where each pair's audio is written ([`TransferOptions::write_audio`]).
    write_audio: Option<&'a Path>,
}

impl Context<'_> {
    /// pYIN's range for a source, in Hz.
    fn range_hz(&self, source: &ClipRecord) -> (f64, f64) {
        let labelled = source.frame_notes.iter().filter(|n| **n >= 0);
        let phrase = match (labelled.clone().min(), labelled.max()) {
            (Some(lo), Some(hi)) => Some((*lo as f64, *hi as f64)),
            _ => None,
        };
        let notes = match (self.pitch_range, self.instruments.get(&source.program)) {
            (PitchRange::Full, _) => return PYIN_FULL_RANGE_HZ,
            (PitchRange::Instrument, Some(inst)) => Some((inst.low as f64, inst.high as f64)),
            // No note clips of this instrument: the phrase's own labels.
            (PitchRange::Instrument, None) | (PitchRange::Phrase, _) => phrase,
        };
        match notes {
            Some((lo, hi)) => (
                midi_to_hz(lo - PITCH_MARGIN_SEMITONES),
                midi_to_hz(hi + PITCH_MARGIN_SEMITONES),
            ),
            None => PYIN_FULL_RANGE_HZ,
        }
    }

    fn process(&self, &(s, r): &(usize, usize)) -> Result<SourceOutcome, TransferError> {
        let src_rec = &self.records[s];
        let ref_rec = &self.records[r];
        // The source and the note its score sounds in each frame (at the record's hop).
        let (mut source, notes) = match self.voice_phrase_seed {
            Some(phrase_seed) => {
                let score = systems::phrase_score_of(src_rec, self.instruments, phrase_seed)
                    .map_err(|message| TransferError::Voice {
                        path: src_rec.path.clone(),
                        message,
                    })?;
                let seed = manifest::fnv1a(src_rec.path.to_string_lossy().as_bytes());
                let notes = score.frame_notes(src_rec.hop);
                let source = if self.whistled {
                    crate::whistle::whistle(&score, self.rate, seed)
                } else {
                    crate::voice::sing(&score, self.rate, seed)
                };
                (source, notes)
            }
            None => (
                manifest::read_clip_audio(self.root, src_rec, self.rate)?,
                src_rec.frame_notes.clone(),
            ),
        };
        // Salts of the two roles' room noise: "room" and "refr" in ASCII.
        self.room
            .apply_to_clip(&mut source, self.rate, &src_rec.path, 0x726f_6f6d);
        let mut reference = manifest::read_clip_audio(self.root, ref_rec, self.rate)?;
        self.reference_room
            .apply_to_clip(&mut reference, self.rate, &ref_rec.path, 0x7265_6672);
        let (fmin, fmax) = self.range_hz(src_rec);
        // A whistled source sounds an octave above its score; the outputs are to play the
        // score (the rows that can move pitch play it back down by `transpose`).
        let up = if self.whistled {
            f64::from(crate::whistle::WHISTLE_OCTAVE)
        } else {
            0.0
        };
        let transpose = -up as f32;
        let moved = |hz: f64| hz * (up / 12.0).exp2();
        let pitch_err = |message| TransferError::Pitch {
            path: src_rec.path.clone(),
            message,
        };
        let mut pyin_s = 0.0;
        let mut feature_s = 0.0;
        let mut pyin_calls = 0;
        let mut feature_calls = 0;
        // pYIN over `x` between `scale` times the source's range (the whistle sounds an
        // octave above the outputs).
        let mut track = |x: &[f32], scale: f64| {
            let t = Instant::now();
            let result = track_pitch(x, self.rate, src_rec.hop, fmin * scale, fmax * scale)
                .map_err(pitch_err);
            pyin_s += t.elapsed().as_secs_f64();
            pyin_calls += 1;
            result
        };
        let src_track = track(&source, moved(1.0))?;
        // The pitch every output should play: the source's, moved by the transposition.
        let target_track = PitchTrack {
            f0_hz: src_track.f0_hz.iter().map(|f| f / moved(1.0)).collect(),
            voiced: src_track.voiced.clone(),
        };
        let mut features = |x: &[f32]| {
            let t = Instant::now();
            let rows = self.classifier.active_rows(x);
            feature_s += t.elapsed().as_secs_f64();
            feature_calls += 1;
            rows
        };
        let source_rows = features(&source);
        let pair = TransferPair {
            source: &source,
            source_record: src_rec,
            reference: &reference,
            reference_record: ref_rec,
            sample_rate: self.rate,
            transpose,
        };
        let mut outputs = Vec::with_capacity(self.systems.len());
        for system in self.systems {
            let t = Instant::now();
            let mut out = system
                .transfer(&pair)
                .map_err(|message| TransferError::System {
                    row: system.name(),
                    source_path: src_rec.path.clone(),
                    message,
                })?;
            let transfer_s = t.elapsed().as_secs_f64();
            if out.iter().any(|v| !v.is_finite()) {
                return Err(TransferError::System {
                    row: system.name(),
                    source_path: src_rec.path.clone(),
                    message: "non-finite output".to_string(),
                });
            }
            out.resize(source.len(), 0.0);
            outputs.push((out, transfer_s));
        }
        if let Some(dir) = self.write_audio {
            let named =
                self.systems.iter().zip(&outputs).map(|(system, (out, _))| {
                    (system.name().replace([' ', '/'], "_"), out.as_slice())
                });
            let clips = [("source".to_string(), source.as_slice())]
                .into_iter()
                .chain([("reference".to_string(), reference.as_slice())])
                .chain(named);
            write_pair_audio(dir, &src_rec.path, &ref_rec.path, self.rate, clips)?;
        }
        // The oracle row's output is what every row's distance is measured to.
        let oracle = self
            .systems
            .iter()
            .position(|s| s.name() == ORACLE_ROW)
            .map(|k| &outputs[k].0);
        let mut rows = Vec::with_capacity(self.systems.len());
        for (out, transfer_s) in &outputs {
            let (out, transfer_s) = (out.as_slice(), *transfer_s);
            let level_db = level_difference_db(&source, out, &src_track.voiced, src_rec.hop);
            let oracle_db = oracle.and_then(|o| {
                spectral::log_spectral_distance(out, o, &src_track.voiced, src_rec.hop)
            });
            let outcome = if out == source.as_slice() {
                // Same audio, same analysis: reuse the source's.
                RowOutcome {
                    pitch: pitch_agreement(&target_track, &src_track),
                    score: score_agreement(&notes, &src_track),
                    level_db,
                    oracle_db,
                    features: None,
                    transfer_s,
                }
            } else {
                let out_track = track(out, 1.0)?;
                RowOutcome {
                    pitch: pitch_agreement(&target_track, &out_track),
                    score: score_agreement(&notes, &out_track),
                    level_db,
                    oracle_db,
                    features: Some(features(out)),
                    transfer_s,
                }
            };
            rows.push(outcome);
        }
        Ok(SourceOutcome {
            pitch_range_hz: (fmin, fmax),
            source_rows,
            rows,
            pyin_s,
            pyin_calls,
            feature_s,
            feature_calls,
        })
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for v in values {
        sum += v;
        n += 1;
    }
    (n > 0).then(|| sum / n as f64)
}

/// The protocol's transfer table with the dry, oracle and classic rows.
pub fn evaluate_transfer(
    opts: &TransferOptions,
    extra: &[&dyn TransferSystem],
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Result<TransferReport, TransferError> {
    let records =
        manifest::read_manifest(&opts.data).map_err(|source| TransferError::Manifest {
            path: opts.data.clone(),
            source,
        })?;
    let oracle = Oracle::new(
        dataset::load_soundfont(&opts.soundfont)?,
        opts.phrase_seed,
        instruments_from_manifest(&records),
    );
    let classic = Classic::default();
    let mut systems: Vec<&dyn TransferSystem> = vec![&Dry, &oracle, &classic];
    systems.extend_from_slice(extra);
    evaluate_systems(opts, &systems, progress)
}

/// The transfer table with the given rows (in this order). `progress` is called with a stage
/// name and (done, total) from worker threads.
pub fn evaluate_systems(
    opts: &TransferOptions,
    systems: &[&dyn TransferSystem],
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Result<TransferReport, TransferError> {
    let started = Instant::now();
    let root = opts.data.as_path();
    let records = manifest::read_manifest(root).map_err(|source| TransferError::Manifest {
        path: opts.data.clone(),
        source,
    })?;
    let sources_available = records
        .iter()
        .filter(|r| r.set == Set::Phrases && r.split == Split::Test)
        .count();
    if opts.voice_sources && opts.whistle_sources {
        return Err(TransferError::SungAndWhistled);
    }
    let (low, high) = if opts.whistle_sources {
        let (low, high) = crate::whistle::WHISTLE_RANGE;
        let octave = crate::whistle::WHISTLE_OCTAVE;
        (low - octave, high - octave)
    } else {
        crate::voice::VOICE_RANGE
    };
    let singable = |r: &ClipRecord| {
        !(opts.voice_sources || opts.whistle_sources)
            || r.frame_notes
                .iter()
                .all(|n| *n < 0 || (low as i16..=high as i16).contains(n))
    };
    let mut pairs = plan_pairs_of(&records, opts.max_sources, opts.seed, singable)?;
    if opts.phrase_references {
        pairs = phrase_references(&records, &pairs, opts.seed)?;
    }
    if opts.same_instrument_references {
        pairs = same_instrument_references(&records, &pairs)?;
    }
    let rate = records[pairs[0].0].sample_rate;
    let source_records: Vec<&ClipRecord> = pairs.iter().map(|(s, _)| &records[*s]).collect();
    for system in systems {
        system
            .prepare(&source_records)
            .map_err(|message| TransferError::Prepare {
                row: system.name(),
                message,
            })?;
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());

    let fit_start = Instant::now();
    let (classifier, fit_clips, silent_clips) =
        fit_classifier(root, &records, rate, opts.seed, threads, progress)?;
    let fit_s = fit_start.elapsed().as_secs_f64();

    let instruments = instruments_from_manifest(&records);
    let ctx = Context {
        root,
        records: &records,
        rate,
        classifier: &classifier,
        systems,
        instruments: &instruments,
        pitch_range: opts.pitch_range,
        voice_phrase_seed: (opts.voice_sources || opts.whistle_sources).then_some(opts.phrase_seed),
        whistled: opts.whistle_sources,
        room: opts.room,
        reference_room: opts.reference_room,
        write_audio: opts.write_audio.as_deref(),
    };
    let sources_start = Instant::now();
    let done = AtomicUsize::new(0);
    let outcomes = parallel_map(&pairs, threads, |_, pair| {
        let outcome = ctx.process(pair)?;
        progress(
            "sources",
            done.fetch_add(1, Ordering::Relaxed) + 1,
            pairs.len(),
        );
        Ok::<_, TransferError>(outcome)
    })?;
    let sources_s = sources_start.elapsed().as_secs_f64();

    // One k-NN pass over every clip's active frames, then a vote per clip.
    let knn_start = Instant::now();
    let mut all_rows = Vec::new();
    let mut spans = Vec::new();
    for o in &outcomes {
        let clips =
            std::iter::once(Some(&o.source_rows)).chain(o.rows.iter().map(|r| r.features.as_ref()));
        for rows in clips {
            let start = all_rows.len() / FEATURE_DIM;
            if let Some(rows) = rows {
                all_rows.extend_from_slice(rows);
            }
            spans.push(start..all_rows.len() / FEATURE_DIM);
        }
    }
    let frame_labels = classifier.classify_rows(&all_rows);
    let knn_s = knn_start.elapsed().as_secs_f64();
    let per_source = systems.len() + 1;
    let clip_label = |source: usize, slot: usize| -> Option<u32> {
        majority(&frame_labels[spans[source * per_source + slot].clone()])
    };

    let mut pair_infos = Vec::with_capacity(pairs.len());
    for (i, ((s, r), o)) in pairs.iter().zip(&outcomes).enumerate() {
        let source_label = clip_label(i, 0);
        let output_labels = (0..systems.len())
            .map(|k| {
                if o.rows[k].features.is_some() {
                    clip_label(i, k + 1)
                } else {
                    source_label
                }
            })
            .collect();
        pair_infos.push(PairInfo {
            source: records[*s].path.clone(),
            program_a: records[*s].program,
            reference: records[*r].path.clone(),
            program_b: records[*r].program,
            reference_note: records[*r].note,
            reference_velocity: records[*r].velocity,
            pitch_range_hz: o.pitch_range_hz,
            source_label,
            output_labels,
            output_pitch_within_50_cents: o
                .rows
                .iter()
                .map(|r| r.pitch.map(|p| p.within))
                .collect(),
            output_pitch_on_score: o.rows.iter().map(|r| r.score).collect(),
        });
    }

    let n = pairs.len();
    let rows: Vec<TransferRowReport> = systems
        .iter()
        .enumerate()
        .map(|(k, system)| {
            let pitch: Vec<PitchAgreement> =
                outcomes.iter().filter_map(|o| o.rows[k].pitch).collect();
            let levels: Vec<f64> = outcomes.iter().filter_map(|o| o.rows[k].level_db).collect();
            let score: Vec<ScoreAgreement> =
                outcomes.iter().filter_map(|o| o.rows[k].score).collect();
            // Share of outputs labelled with the program `which` picks (A or B) of their pair.
            let share = |which: fn(&PairInfo) -> u8| {
                let hits = pair_infos
                    .iter()
                    .filter(|p| p.output_labels[k] == Some(which(p) as u32))
                    .count();
                Some(hits as f64 / n as f64)
            };
            TransferRowReport {
                row: system.name(),
                outputs: n,
                pitch_sources: pitch.len(),
                pitch_frames: pitch.iter().map(|p| p.frames).sum(),
                pitch_within_50_cents: mean(pitch.iter().map(|p| p.within)),
                median_cent_error: mean(pitch.iter().map(|p| p.median_cents)),
                score_sources: score.len(),
                score_frames: score.iter().map(|a| a.frames).sum(),
                pitch_on_score: mean(score.iter().map(|a| a.within)),
                octaves_up_from_score: mean(score.iter().map(|a| a.octaves_up)),
                octaves_down_from_score: mean(score.iter().map(|a| a.octaves_down)),
                classified: pair_infos
                    .iter()
                    .filter(|p| p.output_labels[k].is_some())
                    .count(),
                classified_as_b: share(|p| p.program_b),
                classified_as_a: share(|p| p.program_a),
                level_sources: levels.len(),
                level_difference_db: mean(levels.iter().copied()),
                level_abs_difference_db: mean(levels.iter().map(|d| d.abs())),
                oracle_sources: outcomes
                    .iter()
                    .filter(|o| o.rows[k].oracle_db.is_some())
                    .count(),
                oracle_distance_db: mean(outcomes.iter().filter_map(|o| o.rows[k].oracle_db)),
                transfer_mean_s: mean(outcomes.iter().map(|o| o.rows[k].transfer_s)).unwrap_or(0.0),
            }
        })
        .collect();

    let clean_correct = pair_infos
        .iter()
        .filter(|p| p.source_label == Some(p.program_a as u32))
        .count();
    let pyin_calls: usize = outcomes.iter().map(|o| o.pyin_calls).sum();
    let feature_calls: usize = outcomes.iter().map(|o| o.feature_calls).sum();
    let mut source_programs: Vec<u8> = pair_infos.iter().map(|p| p.program_a).collect();
    source_programs.sort_unstable();
    source_programs.dedup();

    let mut notes = vec![
        "pitch: mean over sources of the share of frames voiced in both source and output \
         (pYIN) within 50 cents, and of the median absolute error; pYIN's F0 is quantised to \
         25-cent bins."
            .to_string(),
        "timbre: an output's label is the majority vote of the k-NN labels of its frames within \
         40 dB of its loudest frame; shares are over all outputs (an output without such frames \
         counts as neither A nor B)."
            .to_string(),
        "level: output minus source RMS level in dB over the frames voiced in the source, mean \
         (and mean absolute value) over sources."
            .to_string(),
        format!(
            "distance to oracle: log-spectral distance (dB) between the output and the oracle \
             over the frames voiced in the source, the output level-matched to the oracle there, \
             Hann {} FFT, bins floored {} dB below the oracle's strongest; mean over sources.",
            spectral::LSD_FFT,
            spectral::LSD_FLOOR_DB
        ),
    ];
    if opts.pitch_range != PitchRange::Full {
        notes.push(
            "pitch range: pYIN searched only the source's notes ± 3 semitones, so an output \
             pitch outside that range (e.g. an octave error) is not measured as such."
                .to_string(),
        );
    }
    if opts.voice_sources {
        let (low, high) = crate::voice::VOICE_RANGE;
        notes.push(format!(
            "sources: sung, not played: each test phrase's score (only phrases inside MIDI \
             {low}-{high}) sung by a formant voice (training/src/voice.rs: a glottal pulse \
             through four vowel formants, a vowel per note, jitter, shimmer and breath), an \
             input no SoundFont renders; references, oracle and classifier are the dataset's. \
             'classified as A' counts outputs labelled as the phrase's original instrument, \
             and the clean-source accuracy is the sung phrases labelled so (no voice is among \
             the classifier's instruments)."
        ));
    }
    if opts.whistle_sources {
        let (low, high) = crate::whistle::WHISTLE_RANGE;
        let octave = crate::whistle::WHISTLE_OCTAVE;
        notes.push(format!(
            "sources: whistled, not played: each test phrase's score whistled {octave} \
             semitones up (only phrases that then lie inside MIDI {low}-{high}; \
             training/src/whistle.rs: a sine with partials 2 and 3 at -30 and -40 dB, breath \
             noise around the tone, a hiss, a scoop into each note), an input no SoundFont \
             renders. The engine's Exemplar and Neural rows play it with Transpose -{octave}; \
             the other rows cannot move pitch. The pitch columns compare each output with the \
             source's pitch moved down {octave} semitones (the dry row is an octave off by \
             design), and the score table with the score as written. References, oracle and \
             classifier are the dataset's; 'classified as A' counts outputs labelled as the \
             phrase's original instrument."
        ));
    }
    if let Some(rt60) = opts.room.reverb_s {
        notes.push(format!(
            "room: each source reverberated before any row hears it (training/src/transfer/room.rs: \
             an 8-line feedback delay network, RT60 {rt60} s, a wet share of {}, damping {}); \
             the oracle is clean. The pitch columns compare with pYIN of the \
             reverberated source.",
            room::REVERB_SHARE,
            room::REVERB_DAMPING
        ));
    }
    if let Some(snr) = opts.room.noise_snr_db {
        notes.push(format!(
            "room: pink noise added to each source throughout, {snr} dB under its RMS over the \
             20 ms blocks within 40 dB of its loudest; the oracle is clean."
        ));
    }
    if let Some(rt60) = opts.reference_room.reverb_s {
        notes.push(format!(
            "reference room: each reference clip reverberated before any row analyses it (the \
             same reverb, RT60 {rt60} s, a wet share of {}); sources and oracle as they are.",
            room::REVERB_SHARE
        ));
    }
    if let Some(snr) = opts.reference_room.noise_snr_db {
        notes.push(format!(
            "reference room: pink noise added to each reference clip, {snr} dB under its \
             sounding level; sources and oracle as they are."
        ));
    }
    if opts.phrase_references {
        notes.push(
            "references: a test-split phrase of B (several notes, the dataset's phrase \
             generator) instead of one note; the same sources, B and oracle as with note \
             references."
                .to_string(),
        );
    }
    if opts.same_instrument_references {
        notes.push(
            "references: a test-split note of the source's own instrument, the nearest to the \
             phrase's median note (B is A): the oracle is the source's own score played by its \
             own instrument, and 'classified as B' is what a row keeps of an instrument when \
             nothing has to change."
                .to_string(),
        );
    }
    for system in systems {
        notes.extend(system.notes());
    }
    Ok(TransferReport {
        data: opts.data.clone(),
        soundfont: opts.soundfont.clone(),
        seed: opts.seed,
        phrase_seed: opts.phrase_seed,
        pitch_range: opts.pitch_range,
        voice_sources: opts.voice_sources,
        whistle_sources: opts.whistle_sources,
        room: opts.room,
        reference_room: opts.reference_room,
        phrase_references: opts.phrase_references,
        same_instrument_references: opts.same_instrument_references,
        sample_rate: rate,
        sources_available,
        sources_used: n,
        source_instruments: source_programs.len(),
        rows,
        classifier: ClassifierInfo {
            k: K,
            dim: FEATURE_DIM,
            fft: FEATURE_FFT,
            hop: FEATURE_HOP,
            fit_clips,
            silent_clips,
            fit_frames: classifier.fit_frames,
            classes: classifier.classes.len(),
            clean_source_accuracy: clean_correct as f64 / n as f64,
            clean_sources_classified: pair_infos
                .iter()
                .filter(|p| p.source_label.is_some())
                .count(),
        },
        pairs: pair_infos,
        timings: TransferTimings {
            fit_s,
            sources_s,
            knn_s,
            total_s: started.elapsed().as_secs_f64(),
            pyin_calls,
            pyin_mean_s: outcomes.iter().map(|o| o.pyin_s).sum::<f64>() / pyin_calls.max(1) as f64,
            feature_calls,
            feature_mean_s: outcomes.iter().map(|o| o.feature_s).sum::<f64>()
                / feature_calls.max(1) as f64,
            threads,
        },
        notes,
        model_hash: None,
        command: None,
    })
}
