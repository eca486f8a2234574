//! Which test clips of a rendered set have a copy in the train split: a train clip of the same
//! instrument and note whose waveform is the test clip's up to a gain. A SoundFont that plays
//! every velocity of a note from one sample, with no velocity-dependent filter, renders such
//! copies, and the protocol's split (a hash of program, note and velocity) sends the copies of a
//! test note to train. A frame-wise k-NN on any latent that is a function of the gain-normalised
//! input then finds the test frame's own copy, whatever the latent means
//! (`docs/quality.md`, "Copies across velocities").
//!
//! Residual of the best gain: `min_g Σ (a - g·b)² / Σ a² = 1 - ρ²`, with `ρ` the zero-lag
//! correlation coefficient of the two clips (every note of the set starts at the same time).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::manifest::{self, ClipReadError, ClipRecord, Set, Split};

/// Default largest residual of a copy, in dB below the test clip's energy.
pub const DEFAULT_THRESHOLD_DB: f64 = -40.0;

/// Why the copies could not be counted.
#[derive(Debug, thiserror::Error)]
pub enum CopiesError {
    /// The manifest could not be read.
    #[error("reading the manifest of {path}: {source}")]
    Manifest {
        /// Dataset folder.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A clip could not be read.
    #[error(transparent)]
    Clip(#[from] ClipReadError),
    /// The set has no test clip with a note.
    #[error("no test clip with a note in the notes set of {0}")]
    NoTestClips(PathBuf),
}

/// Copies of one instrument's test clips.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstrumentCopies {
    /// GM program.
    pub program: u8,
    /// Instrument name.
    pub instrument: String,
    /// Test clips.
    pub test_clips: usize,
    /// Test clips with a copy in the train split.
    pub with_copy: usize,
}

/// The count over the notes set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CopiesReport {
    /// Largest residual of a copy, dB.
    pub threshold_db: f64,
    /// Test clips of the notes set.
    pub test_clips: usize,
    /// Test clips with a train clip of the same instrument and note at another velocity.
    pub with_same_note_in_train: usize,
    /// Test clips with a copy in the train split (residual at or below `threshold_db`).
    pub with_copy: usize,
    /// Per instrument, by program.
    pub instruments: Vec<InstrumentCopies>,
}

impl CopiesReport {
    /// Markdown summary and per-instrument table.
    pub fn to_markdown(&self) -> String {
        let share = |n: usize| 100.0 * n as f64 / self.test_clips.max(1) as f64;
        let mut out = format!(
            "{} of {} test notes ({:.1} %) have a copy in train (the same instrument and note at \
             another velocity, equal up to a gain within {} dB); {} ({:.1} %) have the same note \
             in train at all.\n\n| program | instrument | test notes | with a copy |\n|---|---|---|---|\n",
            self.with_copy,
            self.test_clips,
            share(self.with_copy),
            self.threshold_db,
            self.with_same_note_in_train,
            share(self.with_same_note_in_train),
        );
        for i in &self.instruments {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                i.program, i.instrument, i.test_clips, i.with_copy
            ));
        }
        out
    }
}

/// `10 log10(1 - ρ²)` of two clips over their common length: the energy left after subtracting
/// the best gain-scaled `b` from `a`, relative to `a`'s, in dB. `None` when either is silent.
pub fn copy_residual_db(a: &[f32], b: &[f32]) -> Option<f64> {
    let n = a.len().min(b.len());
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a[..n].iter().zip(&b[..n]) {
        let (x, y) = (x as f64, y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        return None;
    }
    let rho2 = (ab * ab / (aa * bb)).min(1.0);
    // 1 - ρ² underflows for exact copies; -200 dB stands for "exact".
    Some(10.0 * (1.0 - rho2).max(1e-20).log10())
}

/// Counts the test clips of the notes set in `data` that have a copy in train.
pub fn count_copies(data: &Path, threshold_db: f64) -> Result<CopiesReport, CopiesError> {
    let records = manifest::read_manifest(data).map_err(|source| CopiesError::Manifest {
        path: data.to_path_buf(),
        source,
    })?;
    let mut groups: BTreeMap<(u8, u8), Vec<&ClipRecord>> = BTreeMap::new();
    for r in &records {
        if let (Set::Notes, Some(note), Split::Train | Split::Test) = (r.set, r.note, r.split) {
            groups.entry((r.program, note)).or_default().push(r);
        }
    }
    let mut per: BTreeMap<u8, InstrumentCopies> = BTreeMap::new();
    let (mut test_clips, mut same_note, mut with_copy) = (0, 0, 0);
    for ((program, _), clips) in &groups {
        let train: Vec<&ClipRecord> = clips
            .iter()
            .copied()
            .filter(|r| r.split == Split::Train)
            .collect();
        let train_audio = train
            .iter()
            .map(|r| manifest::read_clip_audio(data, r, r.sample_rate))
            .collect::<Result<Vec<_>, _>>()?;
        for test in clips.iter().filter(|r| r.split == Split::Test) {
            let entry = per.entry(*program).or_insert_with(|| InstrumentCopies {
                program: *program,
                instrument: test.instrument.clone(),
                test_clips: 0,
                with_copy: 0,
            });
            entry.test_clips += 1;
            test_clips += 1;
            if !train.is_empty() {
                same_note += 1;
            }
            let audio = manifest::read_clip_audio(data, test, test.sample_rate)?;
            let copy = train_audio
                .iter()
                .filter_map(|b| copy_residual_db(&audio, b))
                .any(|db| db <= threshold_db);
            if copy {
                entry.with_copy += 1;
                with_copy += 1;
            }
        }
    }
    if test_clips == 0 {
        return Err(CopiesError::NoTestClips(data.to_path_buf()));
    }
    Ok(CopiesReport {
        threshold_db,
        test_clips,
        with_same_note_in_train: same_note,
        with_copy,
        instruments: per.into_values().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(f0: f32, len: usize, gain: f32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let t = i as f32 / 32_000.0;
                gain * ((std::f32::consts::TAU * f0 * t).sin()
                    + 0.5 * (std::f32::consts::TAU * 2.0 * f0 * t).sin())
            })
            .collect()
    }

    #[test]
    fn the_residual_is_that_of_the_best_gain() {
        let a = tone(220.0, 8000, 0.5);
        // A scaled copy: 1 - ρ² is 0 up to rounding.
        assert!(copy_residual_db(&a, &tone(220.0, 8000, 0.1)).unwrap() < -100.0);
        // a + 0.1·n with n uncorrelated with a and as loud: 1 - ρ² = 0.01 / 1.01 (-20.04 dB).
        // 220/440 Hz and 332/664 Hz complete whole cycles in 8000 samples: orthogonal.
        let n: Vec<f32> = tone(332.0, 8000, 0.5);
        let b: Vec<f32> = a.iter().zip(&n).map(|(x, y)| x + 0.1 * y).collect();
        let db = copy_residual_db(&a, &b).unwrap();
        assert!((db - 10.0 * (0.01f64 / 1.01).log10()).abs() < 0.05, "{db}");
        assert_eq!(copy_residual_db(&a, &vec![0.0; 100]), None);
    }

    #[test]
    fn counts_copies_of_test_notes_in_train() {
        let root = std::env::temp_dir().join(format!("timbreswap-copies-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 32_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        // Program 0: its test note has a train copy at another velocity. Program 1: its train
        // clip of the note is another tone. Program 2: no train clip of the note.
        let clips: [(u8, Split, f32, f32); 5] = [
            (0, Split::Test, 220.0, 0.3),
            (0, Split::Train, 220.0, 0.1),
            (1, Split::Test, 220.0, 0.3),
            (1, Split::Train, 223.0, 0.3),
            (2, Split::Test, 220.0, 0.3),
        ];
        let mut records = Vec::new();
        for (i, &(program, split, f0, gain)) in clips.iter().enumerate() {
            let samples = tone(f0, 16_000, gain);
            let path = PathBuf::from(format!("c{i}.wav"));
            let mut w = hound::WavWriter::create(root.join(&path), spec).unwrap();
            for s in &samples {
                w.write_sample((s * 32_767.0).round() as i16).unwrap();
            }
            w.finalize().unwrap();
            records.push(ClipRecord {
                set: Set::Notes,
                path,
                program,
                instrument: format!("p{program}"),
                family: "synthetic".to_string(),
                note: Some(57),
                velocity: 40 + 20 * i as u8,
                phrase: None,
                split,
                sample_rate: 32_000,
                samples: samples.len(),
                hop: 160,
                frame_notes: vec![57; samples.len() / 160 + 1],
            });
        }
        manifest::write_manifest(&root, &records).unwrap();
        let report = count_copies(&root, DEFAULT_THRESHOLD_DB).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(
            (
                report.test_clips,
                report.with_same_note_in_train,
                report.with_copy
            ),
            (3, 2, 1)
        );
        let per: Vec<(u8, usize, usize)> = report
            .instruments
            .iter()
            .map(|i| (i.program, i.test_clips, i.with_copy))
            .collect();
        assert_eq!(per, [(0, 1, 1), (1, 1, 0), (2, 1, 0)]);
        assert!(report.to_markdown().contains("1 of 3 test notes (33.3 %)"));
    }
}
