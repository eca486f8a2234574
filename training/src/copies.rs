//! Which test clips of a rendered set have a copy in the train split: a train clip of the same
//! instrument and note whose waveform is the test clip's through a linear filter (a gain, a
//! tone control). A SoundFont that plays every velocity of a note from one sample, with at
//! most a velocity-dependent gain and filter, renders such copies, and the protocol's split (a
//! hash of program, note and velocity) sends the copies of a test note to train, where a
//! frame-wise k-NN can find them; `timbreswap eval --copy-threshold-db` splits the table by
//! them (`experiments/quality-log.md`, "What instrument on z_p is made of").
//!
//! Measure: the power-weighted magnitude-squared coherence `C` of the two clips (Welch:
//! [`COHERENCE_FFT`]-point Hann frames, half overlapping, over their common length), and the
//! residual `1 - C` in dB: the share of the test clip's energy that no linear time-invariant
//! filter of the train clip explains. A copy through any static filter scores `-inf` (floored
//! at -200 dB); unrelated recordings score near 0 dB.

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
             another velocity, equal through a linear filter to within {} dB); {} ({:.1} %) have the same note \
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

/// Frame length of the coherence estimate, in samples (32 ms at 32 kHz).
pub const COHERENCE_FFT: usize = 1024;

/// `10 log10(1 - C)` of two clips over their common length, `C` the power-weighted
/// magnitude-squared coherence (`Σ_f w_f |S_ab|² / (S_aa S_bb)`, `w_f = S_aa(f) / Σ S_aa`):
/// how much of `a`'s energy, in dB, no linear time-invariant filter of `b` explains. `None`
/// when the clips are shorter than one frame or either is silent.
pub fn copy_residual_db(a: &[f32], b: &[f32]) -> Option<f64> {
    let n = a.len().min(b.len());
    if n < COHERENCE_FFT {
        return None;
    }
    let mut planner = realfft::RealFftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(COHERENCE_FFT);
    let window = timbreswap_engine::stft::hann(COHERENCE_FFT);
    let bins = COHERENCE_FFT / 2 + 1;
    let (mut saa, mut sbb) = (vec![0.0f64; bins], vec![0.0f64; bins]);
    let mut sab = vec![realfft::num_complex::Complex64::new(0.0, 0.0); bins];
    let mut frame = fft.make_input_vec();
    let (mut fa, mut fb) = (fft.make_output_vec(), fft.make_output_vec());
    let hop = COHERENCE_FFT / 2;
    let mut start = 0;
    while start + COHERENCE_FFT <= n {
        for (spectrum, x) in [(&mut fa, a), (&mut fb, b)] {
            for ((f, &v), w) in frame.iter_mut().zip(&x[start..]).zip(&window) {
                *f = v as f64 * *w as f64;
            }
            // The lengths come from the plan, so the transform cannot fail.
            let _ = fft.process(&mut frame, spectrum);
        }
        for k in 0..bins {
            saa[k] += fa[k].norm_sqr();
            sbb[k] += fb[k].norm_sqr();
            sab[k] += fa[k] * fb[k].conj();
        }
        start += hop;
    }
    let total: f64 = saa.iter().sum();
    if total == 0.0 || sbb.iter().sum::<f64>() == 0.0 {
        return None;
    }
    let coherence: f64 = (0..bins)
        .filter(|&k| saa[k] > 0.0 && sbb[k] > 0.0)
        .map(|k| saa[k] / total * sab[k].norm_sqr() / (saa[k] * sbb[k]))
        .sum();
    Some(10.0 * (1.0 - coherence.min(1.0)).max(1e-20).log10())
}

/// Whether each test clip of the notes set in `records` (a manifest of the dataset in `data`)
/// has a copy in train, by its path: a train clip of the same instrument and note whose
/// residual through the best static filter is at or below `threshold_db`
/// ([`copy_residual_db`]).
pub fn copy_flags(
    data: &Path,
    records: &[ClipRecord],
    threshold_db: f64,
) -> Result<BTreeMap<PathBuf, bool>, CopiesError> {
    let mut groups: BTreeMap<(u8, u8), Vec<&ClipRecord>> = BTreeMap::new();
    for r in records {
        if let (Set::Notes, Some(note), Split::Train | Split::Test) = (r.set, r.note, r.split) {
            groups.entry((r.program, note)).or_default().push(r);
        }
    }
    let mut flags = BTreeMap::new();
    for clips in groups.values() {
        let (train, test): (Vec<&ClipRecord>, Vec<&ClipRecord>) =
            clips.iter().partition(|r| r.split == Split::Train);
        // Most notes have no test clip: their train audio is not needed.
        if test.is_empty() {
            continue;
        }
        let train_audio = train
            .iter()
            .map(|r| manifest::read_clip_audio(data, r, r.sample_rate))
            .collect::<Result<Vec<_>, _>>()?;
        for t in test {
            let audio = manifest::read_clip_audio(data, t, t.sample_rate)?;
            let copy = train_audio
                .iter()
                .filter_map(|b| copy_residual_db(&audio, b))
                .any(|db| db <= threshold_db);
            flags.insert(t.path.clone(), copy);
        }
    }
    Ok(flags)
}

/// Counts the test clips of the notes set in `data` that have a copy in train.
pub fn count_copies(data: &Path, threshold_db: f64) -> Result<CopiesReport, CopiesError> {
    let records = manifest::read_manifest(data).map_err(|source| CopiesError::Manifest {
        path: data.to_path_buf(),
        source,
    })?;
    let flags = copy_flags(data, &records, threshold_db)?;
    let mut same_note_keys = std::collections::BTreeSet::new();
    for r in &records {
        if let (Set::Notes, Some(note), Split::Train) = (r.set, r.note, r.split) {
            same_note_keys.insert((r.program, note));
        }
    }
    let mut per: BTreeMap<u8, InstrumentCopies> = BTreeMap::new();
    let (mut test_clips, mut same_note, mut with_copy) = (0, 0, 0);
    for r in &records {
        let Some(&copy) = flags.get(&r.path) else {
            continue;
        };
        let entry = per.entry(r.program).or_insert_with(|| InstrumentCopies {
            program: r.program,
            instrument: r.instrument.clone(),
            test_clips: 0,
            with_copy: 0,
        });
        entry.test_clips += 1;
        entry.with_copy += usize::from(copy);
        test_clips += 1;
        with_copy += usize::from(copy);
        if r.note
            .is_some_and(|n| same_note_keys.contains(&(r.program, n)))
        {
            same_note += 1;
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

    fn noise(seed: u64, len: usize) -> Vec<f32> {
        let mut rng = crate::rng::SplitMix64::new(seed);
        (0..len).map(|_| rng.range(-0.5, 0.5) as f32).collect()
    }

    #[test]
    fn filtered_copies_are_copies_and_added_noise_is_the_residual() {
        let a = tone(220.0, 16_000, 0.5);
        // A scaled copy, and a copy through a comb filter (a static tone change).
        assert!(copy_residual_db(&a, &tone(220.0, 16_000, 0.1)).unwrap() < -100.0);
        let mut comb = a.clone();
        for i in (3..comb.len()).rev() {
            comb[i] += 0.5 * comb[i - 3];
        }
        let db = copy_residual_db(&a, &comb).unwrap();
        assert!(db < -40.0, "filtered copy: {db} dB");
        // White noise w1 against w1 + 0.1·w2 (w2 independent, as loud): in every bin
        // C = 1 / (1 + 0.01), so 1 - C = 0.01 / 1.01 (-20.04 dB), up to the estimate's
        // spread over 124 frames.
        let (w1, w2) = (noise(1, 64_000), noise(2, 64_000));
        let b: Vec<f32> = w1.iter().zip(&w2).map(|(x, y)| x + 0.1 * y).collect();
        let db = copy_residual_db(&w1, &b).unwrap();
        assert!((db - 10.0 * (0.01f64 / 1.01).log10()).abs() < 0.5, "{db}");
        // Unrelated recordings: no filter explains one by the other.
        assert!(copy_residual_db(&w1, &w2).unwrap() > -1.0);
        assert_eq!(copy_residual_db(&a, &vec![0.0; 2000]), None);
        assert_eq!(copy_residual_db(&a[..500], &a[..500]), None);
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
        assert!(report
            .to_markdown()
            .contains("1 of 3 test notes (33.3 %) have a copy"));
    }
}
