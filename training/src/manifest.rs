//! The dataset manifest: one JSON object per clip, one clip per line (`manifest.jsonl` next to
//! the audio). Everything the evaluation needs is in here, so scoring never re-derives labels.
//!
//! Frame convention (shared with the engine's analysis): frame `f` is centred on sample
//! `f * hop` of the clip (the clip is padded with `n_fft / 2` zeros on both sides), so a clip of
//! `len` samples has `len / hop + 1` frames.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the manifest inside a dataset folder.
pub const MANIFEST_FILE: &str = "manifest.jsonl";

/// Which protocol set a clip belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Set {
    /// Isolated notes: every semitone of the range at velocities 40, 80, 120.
    Notes,
    /// Monophonic 4 s phrases.
    Phrases,
}

/// Train / validation / test membership (stable hash, 70 / 15 / 15 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training data (70 %).
    Train,
    /// Validation data (15 %).
    Valid,
    /// Test data (15 %).
    Test,
}

/// One rendered clip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipRecord {
    /// Notes or phrases.
    pub set: Set,
    /// Audio file, relative to the dataset folder (mono 16-bit PCM WAV at `sample_rate`).
    pub path: PathBuf,
    /// General MIDI program, 0-based.
    pub program: u8,
    /// Instrument name from the instrument list.
    pub instrument: String,
    /// Instrument family from the instrument list.
    pub family: String,
    /// For notes: the MIDI note; for phrases: `None`.
    pub note: Option<u8>,
    /// For notes: the MIDI velocity; for phrases: the first note's velocity.
    pub velocity: u8,
    /// For phrases: the phrase index (0..20); for notes: `None`.
    pub phrase: Option<u32>,
    /// Train, valid or test.
    pub split: Split,
    /// Sample rate of the audio, in Hz.
    pub sample_rate: u32,
    /// Samples in the clip.
    pub samples: usize,
    /// Hop of the frame labels, in samples.
    pub hop: usize,
    /// Sounding MIDI note of each frame (rounded, pitch bend included), or -1 for none.
    pub frame_notes: Vec<i16>,
}

impl ClipRecord {
    /// Absolute path of the audio inside `root`.
    pub fn audio_path(&self, root: &Path) -> PathBuf {
        root.join(&self.path)
    }
}

/// Why a dataset clip's audio could not be read as its record describes it.
#[derive(Debug, thiserror::Error)]
pub enum ClipReadError {
    /// A WAV file could not be opened or decoded.
    #[error("{path}: {source}")]
    Wav {
        /// Audio file.
        path: PathBuf,
        /// Underlying error.
        source: hound::Error,
    },
    /// A WAV file is not mono 16-bit integer PCM.
    #[error("{path}: expected mono 16-bit integer PCM, found {channels} channel(s) of {bits}-bit {format}")]
    WavFormat {
        /// Audio file.
        path: PathBuf,
        /// Channels in the file.
        channels: u16,
        /// Bits per sample in the file.
        bits: u16,
        /// Sample format in the file.
        format: String,
    },
    /// The clip (record or file) is not at the expected sample rate.
    #[error("{path}: sample rate {found} Hz, expected {expected} Hz")]
    SampleRate {
        /// Audio file.
        path: PathBuf,
        /// Rate found, Hz.
        found: u32,
        /// Rate expected, Hz.
        expected: u32,
    },
    /// The file's length disagrees with the record.
    #[error("{path}: {found} samples, the manifest says {expected}")]
    Length {
        /// Audio file.
        path: PathBuf,
        /// Samples in the file.
        found: usize,
        /// Samples in the record.
        expected: usize,
    },
}

/// Reads the audio of `record` (mono 16-bit PCM under `root`) as samples in -1..1, checking it
/// is at `rate` Hz and as long as the record says.
pub fn read_clip_audio(
    root: &Path,
    record: &ClipRecord,
    rate: u32,
) -> Result<Vec<f32>, ClipReadError> {
    let path = record.audio_path(root);
    if record.sample_rate != rate {
        return Err(ClipReadError::SampleRate {
            path,
            found: record.sample_rate,
            expected: rate,
        });
    }
    let reader = match hound::WavReader::open(&path) {
        Ok(r) => r,
        Err(source) => return Err(ClipReadError::Wav { path, source }),
    };
    let spec = reader.spec();
    if spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(ClipReadError::WavFormat {
            path,
            channels: spec.channels,
            bits: spec.bits_per_sample,
            format: format!("{:?}", spec.sample_format),
        });
    }
    if spec.sample_rate != rate {
        return Err(ClipReadError::SampleRate {
            path,
            found: spec.sample_rate,
            expected: rate,
        });
    }
    let samples: Result<Vec<f32>, hound::Error> = reader
        .into_samples::<i16>()
        .map(|s| s.map(|v| v as f32 / 32_768.0))
        .collect();
    let samples = match samples {
        Ok(s) => s,
        Err(source) => return Err(ClipReadError::Wav { path, source }),
    };
    if samples.len() != record.samples {
        return Err(ClipReadError::Length {
            path,
            found: samples.len(),
            expected: record.samples,
        });
    }
    Ok(samples)
}

/// Reads every record of `root/manifest.jsonl`.
pub fn read_manifest(root: &Path) -> std::io::Result<Vec<ClipRecord>> {
    let path = root.join(MANIFEST_FILE);
    let reader = BufReader::new(File::open(&path)?);
    let mut records = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str(&line).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}:{}: {e}", path.display(), i + 1),
            )
        })?;
        records.push(record);
    }
    Ok(records)
}

/// Writes `records` as `root/manifest.jsonl` (atomically: a temporary file renamed).
pub fn write_manifest(root: &Path, records: &[ClipRecord]) -> std::io::Result<()> {
    let tmp = root.join(format!("{MANIFEST_FILE}.tmp"));
    {
        let mut w = BufWriter::new(File::create(&tmp)?);
        for r in records {
            serde_json::to_writer(&mut w, r)?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
    }
    std::fs::rename(tmp, root.join(MANIFEST_FILE))
}

/// 64-bit FNV-1a hash (stable across platforms and versions, unlike `std`'s hasher).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The protocol's split of a key: 70 % train, 15 % valid, 15 % test by a stable hash.
pub fn split_of(key: &str) -> Split {
    match fnv1a(key.as_bytes()) % 100 {
        0..=69 => Split::Train,
        70..=84 => Split::Valid,
        _ => Split::Test,
    }
}

/// Split key of a note clip: (program, note, velocity).
pub fn note_key(program: u8, note: u8, velocity: u8) -> String {
    format!("notes/{program}/{note}/{velocity}")
}

/// Split key of a phrase: (program, phrase index).
pub fn phrase_key(program: u8, phrase: u32) -> String {
    format!("phrases/{program}/{phrase}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_published_vectors() {
        // Reference values of the 64-bit FNV-1a test suite.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn split_is_stable_and_near_70_15_15() {
        let mut counts = [0usize; 3];
        for program in 0..40u8 {
            for note in 30..100u8 {
                for velocity in [40u8, 80, 120] {
                    let s = split_of(&note_key(program, note, velocity));
                    assert_eq!(s, split_of(&note_key(program, note, velocity)));
                    counts[s as usize] += 1;
                }
            }
        }
        let total = counts.iter().sum::<usize>() as f64;
        let shares: Vec<f64> = counts.iter().map(|c| *c as f64 / total).collect();
        assert!((shares[0] - 0.70).abs() < 0.02, "{shares:?}");
        assert!((shares[1] - 0.15).abs() < 0.02, "{shares:?}");
        assert!((shares[2] - 0.15).abs() < 0.02, "{shares:?}");
    }
}
