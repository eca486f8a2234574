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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use rustysynth::{SoundFont, Synthesizer, SynthesizerSettings};
use serde::Serialize;
use timbreswap_engine::clip::{descriptor_from_audio, DecodedAudio};
use timbreswap_engine::render::{render, RenderOptions};
use timbreswap_engine::stft::Stft;
use timbreswap_engine::StftConfig;

use crate::dataset::{self, DatasetError, Score, SplitMix64, OUTPUT_GAIN};
use crate::instruments::Instrument;
use crate::knn::{self, KnnIndex, K};
use crate::manifest::{self, ClipRecord, Set, Split};

/// Header of the protocol's transfer table.
pub const TABLE_HEADER: &str = "| row | pitch within 50 cents (up) | median cent error (down) | classified as B (up) | classified as A (down) | level difference dB |";

/// Seed of the phrase generator that `timbreswap dataset` uses by default.
pub const DEFAULT_PHRASE_SEED: u64 = 1;

/// Preferred velocity of the reference note clip.
pub const REFERENCE_VELOCITY: u8 = 80;

/// pYIN frame length, in samples.
pub const PYIN_FRAME: usize = 2048;
/// pYIN pitch-bin width, in semitones (0.25 = 25 cents).
pub const PYIN_RESOLUTION: f64 = 0.25;
/// pYIN search range of [`PitchRange::Full`], in Hz.
pub const PYIN_FULL_RANGE_HZ: (f64, f64) = (50.0, 2100.0);
/// Margin around the instrument's note range in [`PitchRange::Instrument`], in semitones.
pub const PITCH_MARGIN_SEMITONES: f64 = 3.0;
/// Largest pitch error that counts as "pitch kept", in cents.
pub const CENT_TOLERANCE: f64 = 50.0;

/// FFT size (Hann window length) of the classifier features, in samples.
pub const FEATURE_FFT: usize = 2048;
/// Hop of the classifier features, in samples.
pub const FEATURE_HOP: usize = 512;
/// Mel bands under the MFCC.
pub const N_MELS: usize = 128;
/// MFCC kept (c0 included).
pub const N_MFCC: usize = 20;
/// Reach of the delta regression, in frames on each side.
pub const DELTA_REACH: usize = 2;
/// Spectral-contrast bands: below [`CONTRAST_FMIN_HZ`], five octaves above it, and the rest
/// up to the Nyquist frequency (librosa's `n_bands = 6`).
pub const CONTRAST_BANDS: usize = 7;
/// Upper edge of the lowest contrast band, in Hz.
pub const CONTRAST_FMIN_HZ: f64 = 200.0;
/// Share of a band's bins averaged for its peak and for its valley.
pub const CONTRAST_QUANTILE: f64 = 0.02;

/// Column of the first MFCC in a feature row.
pub const MFCC_OFFSET: usize = 0;
/// Column of the first delta-MFCC.
pub const DELTA_OFFSET: usize = MFCC_OFFSET + N_MFCC;
/// Column of the log spectral centroid (natural log of Hz).
pub const CENTROID_INDEX: usize = DELTA_OFFSET + N_MFCC;
/// Column of the log spectral flatness (natural log of a ratio in 0..=1).
pub const FLATNESS_INDEX: usize = CENTROID_INDEX + 1;
/// Column of the first spectral-contrast band (dB).
pub const CONTRAST_OFFSET: usize = FLATNESS_INDEX + 1;
/// Values per feature row.
pub const FEATURE_DIM: usize = CONTRAST_OFFSET + CONTRAST_BANDS;

/// Frames more than this below a clip's loudest frame are not active, in dB (protocol).
pub const ACTIVE_RANGE_DB: f32 = 40.0;
/// Most frames of one note clip the classifier is fitted on (protocol).
pub const MAX_FIT_FRAMES_PER_CLIP: usize = 200;

/// Floor added to powers before logarithms (mel energies, flatness), in squared FFT units.
const POWER_FLOOR: f64 = 1e-10;
/// Floor added to magnitudes before the contrast's logarithm.
const MAG_FLOOR: f64 = 1e-10;
/// Floor of a frame's energy before the dB conversion.
const ENERGY_FLOOR: f64 = 1e-30;
/// Lowest spectral centroid the logarithm sees, in Hz (silent frames).
const CENTROID_FLOOR_HZ: f64 = 1.0;

/// Why the transfer table could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The manifest could not be read or parsed.
    #[error("cannot read the manifest in {path}: {source}")]
    Manifest {
        /// Dataset folder.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The SoundFont could not be loaded.
    #[error(transparent)]
    SoundFont(#[from] DatasetError),
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
        /// Bits per sample.
        bits: u16,
        /// Sample format.
        format: String,
    },
    /// A clip is not at the dataset's sample rate.
    #[error("{path}: sample rate {found} Hz, the dataset's sources are at {expected} Hz")]
    SampleRate {
        /// Audio file.
        path: PathBuf,
        /// Rate of the file or record, in Hz.
        found: u32,
        /// Rate of the sources, in Hz.
        expected: u32,
    },
    /// The file does not hold the number of samples the manifest says.
    #[error("{path}: {found} samples in the file, the manifest says {expected}")]
    Length {
        /// Audio file.
        path: PathBuf,
        /// Samples in the file.
        found: usize,
        /// Samples in the record.
        expected: usize,
    },
    /// There is no test-split phrase (or `max_sources` is 0).
    #[error("no test-split phrases to use as sources")]
    NoSources,
    /// No other instrument has a test-split note clip to use as a reference.
    #[error("no test-split note clip of an instrument other than program {program} to use as a reference")]
    NoReference {
        /// Program of the source.
        program: u8,
    },
    /// No note clip has an active, labelled frame to fit the classifier on.
    #[error("no note clip with active frames to fit the instrument classifier on")]
    NoFitFrames,
    /// The pitch tracker failed.
    #[error("pYIN on {path}: {message}")]
    Pitch {
        /// Audio the tracker ran on (the source's file for outputs).
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A row refused the sources before anything was computed.
    #[error("row {row}: {message}")]
    Prepare {
        /// Row name.
        row: String,
        /// What went wrong.
        message: String,
    },
    /// A row could not produce an output.
    #[error("row {row}, source {source_path}: {message}")]
    System {
        /// Row name.
        row: String,
        /// Source file, relative to the dataset folder.
        source_path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The classifier's index could not be built.
    #[error(transparent)]
    Knn(#[from] knn::KnnError),
}

// ---------------------------------------------------------------------------------------------
// Features of the instrument classifier.

/// Slaney's mel scale (librosa's default, `htk = False`): linear below 1 kHz, logarithmic
/// above. Hz in, mel out.
pub fn hz_to_mel(hz: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let log_step = 6.4f64.ln() / 27.0;
    if hz < 1000.0 {
        hz / f_sp
    } else {
        15.0 + (hz / 1000.0).ln() / log_step
    }
}

/// Inverse of [`hz_to_mel`]: mel in, Hz out.
pub fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let log_step = 6.4f64.ln() / 27.0;
    if mel < 15.0 {
        mel * f_sp
    } else {
        1000.0 * ((mel - 15.0) * log_step).exp()
    }
}

/// One triangular mel filter: its weights on bins `first..first + weights.len()`.
#[derive(Debug, Clone, PartialEq)]
pub struct MelFilter {
    /// First FFT bin with a non-zero weight.
    pub first: usize,
    /// Weights of the consecutive bins from `first` (Slaney area normalisation: each triangle
    /// has height `2 / (f_high - f_low)` with frequencies in Hz).
    pub weights: Vec<f32>,
}

/// `n_mels` triangular filters from 0 Hz to the Nyquist frequency, equally spaced on Slaney's
/// mel scale, on the `n_fft / 2 + 1` bins of an FFT of `n_fft` samples at `sample_rate` Hz.
pub fn mel_filterbank(sample_rate: u32, n_fft: usize, n_mels: usize) -> Vec<MelFilter> {
    let bins = n_fft / 2 + 1;
    let bin_hz = sample_rate as f64 / n_fft as f64;
    let top = hz_to_mel(sample_rate as f64 / 2.0);
    let edges: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(top * i as f64 / (n_mels + 1) as f64))
        .collect();
    (0..n_mels)
        .map(|m| {
            let (low, centre, high) = (edges[m], edges[m + 1], edges[m + 2]);
            let norm = 2.0 / (high - low);
            let mut first = None;
            let mut weights = Vec::new();
            for k in 0..bins {
                let f = k as f64 * bin_hz;
                let w = if f > low && f <= centre {
                    (f - low) / (centre - low)
                } else if f > centre && f < high {
                    (high - f) / (high - centre)
                } else {
                    0.0
                };
                if w > 0.0 {
                    first.get_or_insert(k);
                    weights.push((w * norm) as f32);
                } else if first.is_some() {
                    break;
                }
            }
            MelFilter {
                first: first.unwrap_or(0),
                weights,
            }
        })
        .collect()
}

/// Orthonormal DCT-II matrix, `n_out x n_in`, row-major: `c_i = s_i sum_m x_m cos(pi i (m +
/// 1/2) / n_in)` with `s_0 = sqrt(1 / n_in)`, `s_i = sqrt(2 / n_in)`.
pub fn dct_matrix(n_out: usize, n_in: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n_out * n_in);
    for i in 0..n_out {
        let s = if i == 0 {
            (1.0 / n_in as f64).sqrt()
        } else {
            (2.0 / n_in as f64).sqrt()
        };
        for m in 0..n_in {
            let angle = std::f64::consts::PI * i as f64 * (m as f64 + 0.5) / n_in as f64;
            out.push((s * angle.cos()) as f32);
        }
    }
    out
}

/// Spectral centroid of a magnitude spectrum (bins `0..=n_fft/2` spaced `bin_hz` Hz), in Hz:
/// `sum f_k |X_k| / sum |X_k|`; 0 for an all-zero spectrum.
pub fn spectral_centroid(mag: &[f32], bin_hz: f64) -> f64 {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (k, m) in mag.iter().enumerate() {
        num += k as f64 * bin_hz * *m as f64;
        den += *m as f64;
    }
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// Spectral flatness of a power spectrum: geometric over arithmetic mean of
/// `max(P_k, 1e-10)`, in 0..=1 (librosa's definition, `power = 2`). The periodogram of one
/// frame of white noise gives about `exp(-0.5772) = 0.56` (its bins are exponentially
/// distributed); the power averaged over many frames gives close to 1; a sine gives close to 0.
pub fn spectral_flatness(power: &[f32]) -> f64 {
    log_flatness(power).exp()
}

/// Natural log of [`spectral_flatness`] (computed without underflow).
fn log_flatness(power: &[f32]) -> f64 {
    if power.is_empty() {
        return 0.0;
    }
    let n = power.len() as f64;
    let (mut log_sum, mut sum) = (0.0f64, 0.0f64);
    for p in power {
        let v = (*p as f64).max(POWER_FLOOR);
        log_sum += v.ln();
        sum += v;
    }
    (log_sum / n - (sum / n).ln()).min(0.0)
}

/// Bin ranges `[start, end)` of the [`CONTRAST_BANDS`] spectral-contrast bands for an FFT of
/// `n_fft` samples at `sample_rate` Hz: `[0, 200)`, five octaves `[200, 400)` ..
/// `[3200, 6400)` Hz, and `[6400 Hz, Nyquist]`. Bands above the Nyquist frequency are empty.
pub fn contrast_bands(sample_rate: u32, n_fft: usize) -> Vec<(usize, usize)> {
    let bins = n_fft / 2 + 1;
    let bin_hz = sample_rate as f64 / n_fft as f64;
    // First bin at or above `hz`.
    let bin_at = |hz: f64| ((hz / bin_hz).ceil() as usize).min(bins);
    let mut edges = vec![0usize];
    for b in 0..CONTRAST_BANDS - 1 {
        edges.push(bin_at(CONTRAST_FMIN_HZ * 2f64.powi(b as i32)));
    }
    edges.push(bins);
    edges.windows(2).map(|w| (w[0], w[1].max(w[0]))).collect()
}

/// Spectral contrast of one magnitude spectrum (Jiang et al. 2002, as librosa): per band, the
/// mean of the top 2 % of its magnitudes (at least one bin) over the mean of the bottom 2 %,
/// in dB (`20 log10`); 0 for an empty band. `scratch` is reused between calls.
pub fn spectral_contrast(
    mag: &[f32],
    bands: &[(usize, usize)],
    scratch: &mut Vec<f32>,
    out: &mut [f32],
) {
    for (o, &(start, end)) in out.iter_mut().zip(bands) {
        let end = end.min(mag.len());
        if start >= end {
            *o = 0.0;
            continue;
        }
        scratch.clear();
        scratch.extend_from_slice(&mag[start..end]);
        scratch.sort_unstable_by(f32::total_cmp);
        let n = scratch.len();
        let q = ((CONTRAST_QUANTILE * n as f64).round() as usize).clamp(1, n);
        let valley = scratch[..q].iter().map(|v| *v as f64).sum::<f64>() / q as f64;
        let peak = scratch[n - q..].iter().map(|v| *v as f64).sum::<f64>() / q as f64;
        *o = (20.0 * ((peak + MAG_FLOOR) / (valley + MAG_FLOOR)).log10()) as f32;
    }
}

/// Per-frame features of one clip.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameFeatures {
    /// Row-major `frames x FEATURE_DIM`: [`N_MFCC`] MFCC, [`N_MFCC`] delta-MFCC, log spectral
    /// centroid, log spectral flatness, [`CONTRAST_BANDS`] spectral contrasts (see the
    /// `*_OFFSET` / `*_INDEX` constants).
    pub values: Vec<f32>,
    /// Energy of every frame in dB: `10 log10(sum_k |X_k|^2)` of the Hann-windowed,
    /// unnormalised FFT.
    pub frame_db: Vec<f32>,
    /// Number of frames, `len / FEATURE_HOP + 1` (frame `f` centred on sample `f * hop`).
    pub frames: usize,
}

impl FrameFeatures {
    /// Feature row of `frame`.
    pub fn row(&self, frame: usize) -> &[f32] {
        &self.values[frame * FEATURE_DIM..(frame + 1) * FEATURE_DIM]
    }
}

/// Computes the classifier's per-frame features: Hann window of [`FEATURE_FFT`] samples, hop
/// [`FEATURE_HOP`], frames centred on multiples of the hop (zero padding at the edges).
///
/// - MFCC: [`N_MELS`] Slaney mel bands of the power spectrum, `10 log10(E + 1e-10)`,
///   orthonormal DCT-II, first [`N_MFCC`] coefficients (c0 included);
/// - delta-MFCC: regression over ±[`DELTA_REACH`] frames, `sum n (c[t+n] - c[t-n]) / (2 sum
///   n^2)`, edge frames repeated;
/// - `ln` of the spectral centroid of the magnitude spectrum (Hz, floored at 1 Hz);
/// - `ln` of the spectral flatness of the power spectrum;
/// - spectral contrast in [`CONTRAST_BANDS`] bands (dB).
#[derive(Debug, Clone)]
pub struct FeatureExtractor {
    cfg: StftConfig,
    mel: Vec<MelFilter>,
    dct: Vec<f32>,
    bands: Vec<(usize, usize)>,
}

impl FeatureExtractor {
    /// The extractor for audio at `sample_rate` Hz.
    pub fn new(sample_rate: u32) -> Self {
        Self {
            cfg: StftConfig {
                sample_rate,
                n_fft: FEATURE_FFT,
                hop: FEATURE_HOP,
                ..StftConfig::default()
            },
            mel: mel_filterbank(sample_rate, FEATURE_FFT, N_MELS),
            dct: dct_matrix(N_MFCC, N_MELS),
            bands: contrast_bands(sample_rate, FEATURE_FFT),
        }
    }

    /// Sample rate, in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.cfg.sample_rate
    }

    /// Width of one FFT bin, in Hz.
    pub fn bin_hz(&self) -> f64 {
        self.cfg.sample_rate as f64 / FEATURE_FFT as f64
    }

    /// Power spectrogram `|X_k|^2` of `samples`, row-major `frames x (FEATURE_FFT / 2 + 1)`,
    /// and the number of frames.
    pub fn power_spectrogram(&self, samples: &[f32]) -> (Vec<f32>, usize) {
        let n = FEATURE_FFT;
        let bins = n / 2 + 1;
        let pad = n / 2;
        let frames = samples.len() / FEATURE_HOP + 1;
        let mut stft = Stft::new(&self.cfg);
        let mut frame = vec![0.0f32; n];
        // The element type comes from `Stft::analyse` (the engine's complex type).
        let mut spectrum = vec![Default::default(); bins];
        let mut power = Vec::with_capacity(frames * bins);
        for f in 0..frames {
            // Padded sample `f * hop + i` is clip sample `f * hop + i - pad`.
            for (i, x) in frame.iter_mut().enumerate() {
                *x = (f * FEATURE_HOP + i)
                    .checked_sub(pad)
                    .and_then(|j| samples.get(j))
                    .copied()
                    .unwrap_or(0.0);
            }
            stft.analyse(&frame, &mut spectrum);
            power.extend(spectrum.iter().map(|c| c.norm_sqr()));
        }
        (power, frames)
    }

    /// The features of every frame of `samples` (mono, at [`Self::sample_rate`]).
    pub fn analyse(&self, samples: &[f32]) -> FrameFeatures {
        let bins = FEATURE_FFT / 2 + 1;
        let (power, frames) = self.power_spectrogram(samples);
        let mut values = vec![0.0f32; frames * FEATURE_DIM];
        let mut frame_db = Vec::with_capacity(frames);
        let mut mag = vec![0.0f32; bins];
        let mut log_mel = vec![0.0f32; N_MELS];
        let mut scratch = Vec::with_capacity(bins);
        let bin_hz = self.bin_hz();
        for (p, row) in power
            .chunks_exact(bins)
            .zip(values.chunks_exact_mut(FEATURE_DIM))
        {
            let energy: f64 = p.iter().map(|v| *v as f64).sum();
            frame_db.push((10.0 * (energy + ENERGY_FLOOR).log10()) as f32);
            for (m, v) in mag.iter_mut().zip(p) {
                *m = v.sqrt();
            }
            for (l, filter) in log_mel.iter_mut().zip(&self.mel) {
                let e: f64 = filter
                    .weights
                    .iter()
                    .zip(&p[filter.first..])
                    .map(|(w, v)| *w as f64 * *v as f64)
                    .sum();
                *l = (10.0 * (e + POWER_FLOOR).log10()) as f32;
            }
            for (c, basis) in row[MFCC_OFFSET..MFCC_OFFSET + N_MFCC]
                .iter_mut()
                .zip(self.dct.chunks_exact(N_MELS))
            {
                *c = basis.iter().zip(&log_mel).map(|(b, l)| b * l).sum();
            }
            let centroid = spectral_centroid(&mag, bin_hz).max(CENTROID_FLOOR_HZ);
            row[CENTROID_INDEX] = centroid.ln() as f32;
            row[FLATNESS_INDEX] = log_flatness(p) as f32;
            spectral_contrast(
                &mag,
                &self.bands,
                &mut scratch,
                &mut row[CONTRAST_OFFSET..CONTRAST_OFFSET + CONTRAST_BANDS],
            );
        }
        // Deltas over ±DELTA_REACH frames, edges repeated.
        let norm = 2.0 * (1..=DELTA_REACH).map(|n| (n * n) as f32).sum::<f32>();
        let last = frames.saturating_sub(1);
        for t in 0..frames {
            for c in 0..N_MFCC {
                let mut d = 0.0f32;
                for n in 1..=DELTA_REACH {
                    let ahead = values[(t + n).min(last) * FEATURE_DIM + MFCC_OFFSET + c];
                    let behind = values[t.saturating_sub(n) * FEATURE_DIM + MFCC_OFFSET + c];
                    d += n as f32 * (ahead - behind);
                }
                values[t * FEATURE_DIM + DELTA_OFFSET + c] = d / norm;
            }
        }
        FrameFeatures {
            values,
            frame_db,
            frames,
        }
    }
}

/// Frames within [`ACTIVE_RANGE_DB`] of the loudest frame (ascending); none for digital
/// silence.
pub fn active_frames(frame_db: &[f32]) -> Vec<usize> {
    let peak = frame_db.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let silence = (10.0 * ENERGY_FLOOR.log10()) as f32 + 1.0;
    if !peak.is_finite() || peak <= silence {
        return Vec::new();
    }
    let threshold = peak - ACTIVE_RANGE_DB;
    (0..frame_db.len())
        .filter(|&f| frame_db[f] >= threshold)
        .collect()
}

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
        let features = self.extractor.analyse(samples);
        let mut rows = Vec::new();
        for f in active_frames(&features.frame_db) {
            rows.extend_from_slice(features.row(f));
        }
        standardise(&mut rows, &self.mean, &self.inv_std);
        rows
    }

    /// Label of every standardised row.
    pub fn classify_rows(&self, rows: &[f32]) -> Vec<u32> {
        self.index.classify(rows)
    }

    /// The clip's label: majority vote of its active frames; `None` for a silent clip.
    pub fn classify_clip(&self, samples: &[f32]) -> Option<u32> {
        majority(&self.classify_rows(&self.active_rows(samples)))
    }
}

fn standardise(rows: &mut [f32], mean: &[f32], inv_std: &[f32]) {
    for row in rows.chunks_exact_mut(FEATURE_DIM) {
        for ((v, m), s) in row.iter_mut().zip(mean).zip(inv_std) {
            *v = (*v - m) * s;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pitch and level.

/// pYIN's result on one clip, one entry per frame (frame `f` centred on sample `f * hop`).
#[derive(Debug, Clone, PartialEq)]
pub struct PitchTrack {
    /// F0 in Hz (NaN where unvoiced), quantised to [`PYIN_RESOLUTION`]-semitone bins.
    pub f0_hz: Vec<f64>,
    /// Whether pYIN finds the frame voiced.
    pub voiced: Vec<bool>,
}

/// Frequency of a (fractional) MIDI note, in Hz.
pub fn midi_to_hz(note: f64) -> f64 {
    440.0 * 2f64.powf((note - 69.0) / 12.0)
}

/// Runs pYIN ([`PYIN_FRAME`]-sample frames, hop `hop` samples, [`PYIN_RESOLUTION`]) over
/// `samples` at `sample_rate` Hz, searching `fmin_hz..fmax_hz` (clamped to what the frame
/// allows and to the Nyquist frequency). Errors (instead of panics) on a range pYIN refuses.
pub fn track_pitch(
    samples: &[f32],
    sample_rate: u32,
    hop: usize,
    fmin_hz: f64,
    fmax_hz: f64,
) -> Result<PitchTrack, String> {
    let sr = sample_rate as f64;
    // pYIN's longest period is `frame - frame / 2 - 1` samples.
    let longest = (PYIN_FRAME - PYIN_FRAME / 2 - 1) as f64;
    let fmin = fmin_hz.max(sr / (longest - 1.0));
    // The crate rounds `log2(f / fmin)` into a bin before clamping it, and panics when that
    // rounds below 0: its longest period, `ceil(sr / fmin)` samples, must not sit much more
    // than half a sample past `sr / fmin`. Moving fmin to `sr / (P - 0.5)` keeps it there.
    let period = (sr / fmin).ceil();
    let fmin = sr / (period - 0.5);
    let fmax = fmax_hz.min(sr / 2.0);
    // pYIN needs more pitch bins than its transition window (35.92 octaves per second).
    let per_semitone = (1.0 / PYIN_RESOLUTION).ceil();
    let bins = (12.0 * per_semitone * (fmax / fmin).log2()).floor() + 1.0;
    let window = (35.92 * 12.0 * hop as f64 / sr).round() * per_semitone + 1.0;
    if hop == 0 || bins.is_nan() || bins <= window {
        return Err(format!(
            "unusable search range {fmin:.1}..{fmax:.1} Hz at a hop of {hop} samples"
        ));
    }
    let wav: Vec<f64> = samples.iter().map(|v| *v as f64).collect();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut exec = pyin::PYINExecutor::new(
            fmin,
            fmax,
            sample_rate,
            PYIN_FRAME,
            None,
            Some(hop),
            Some(PYIN_RESOLUTION),
        );
        exec.pyin(
            &wav,
            f64::NAN,
            pyin::Framing::Center(pyin::PadMode::Constant(0.0)),
        )
    }));
    match result {
        Ok((_, f0_hz, voiced, _)) => Ok(PitchTrack { f0_hz, voiced }),
        Err(_) => Err(format!("pYIN panicked ({fmin:.1}..{fmax:.1} Hz)")),
    }
}

/// Pitch agreement of an output with its source on the frames voiced in both.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PitchAgreement {
    /// Frames voiced in both.
    pub frames: usize,
    /// Share of those frames within [`CENT_TOLERANCE`] cents, 0..=1.
    pub within: f64,
    /// Median absolute error, in cents.
    pub median_cents: f64,
}

/// Compares two pitch tracks frame by frame; `None` when no frame is voiced in both.
pub fn pitch_agreement(source: &PitchTrack, output: &PitchTrack) -> Option<PitchAgreement> {
    let mut errors: Vec<f64> = source
        .f0_hz
        .iter()
        .zip(&source.voiced)
        .zip(output.f0_hz.iter().zip(&output.voiced))
        .filter(|((fs, vs), (fo, vo))| **vs && **vo && **fs > 0.0 && **fo > 0.0)
        .map(|((fs, _), (fo, _))| (1200.0 * (fo / fs).log2()).abs())
        .collect();
    if errors.is_empty() {
        return None;
    }
    errors.sort_unstable_by(f64::total_cmp);
    let n = errors.len();
    let median = if n % 2 == 1 {
        errors[n / 2]
    } else {
        0.5 * (errors[n / 2 - 1] + errors[n / 2])
    };
    // A hair of slack: the error between two quantised bins is a rounded multiple of 25.
    let within = errors
        .iter()
        .filter(|e| **e <= CENT_TOLERANCE + 1e-6)
        .count();
    Some(PitchAgreement {
        frames: n,
        within: within as f64 / n as f64,
        median_cents: median,
    })
}

/// Output level minus source level, in dB: `10 log10(sum out^2 / sum src^2)` over the samples
/// of the frames voiced in the source (frame `f` covers samples `f * hop - hop / 2` up to
/// `f * hop + hop / 2`). `None` when no frame is voiced or the source is silent there.
pub fn level_difference_db(
    source: &[f32],
    output: &[f32],
    voiced: &[bool],
    hop: usize,
) -> Option<f64> {
    let len = source.len().min(output.len());
    let (mut src, mut out) = (0.0f64, 0.0f64);
    for (f, v) in voiced.iter().enumerate() {
        if !*v {
            continue;
        }
        let start = (f * hop).saturating_sub(hop / 2).min(len);
        let end = (f * hop + hop - hop / 2).min(len);
        for i in start..end {
            src += (source[i] as f64).powi(2);
            out += (output[i] as f64).powi(2);
        }
    }
    if src <= 0.0 {
        return None;
    }
    Some(10.0 * ((out + ENERGY_FLOOR) / src).log10())
}

// ---------------------------------------------------------------------------------------------
// Rows.

/// One source/reference pair as a row sees it.
#[derive(Debug, Clone, Copy)]
pub struct TransferPair<'a> {
    /// The source phrase (instrument A), mono, in -1..1.
    pub source: &'a [f32],
    /// Its manifest record.
    pub source_record: &'a ClipRecord,
    /// The reference note clip (instrument B), mono, in -1..1.
    pub reference: &'a [f32],
    /// Its manifest record.
    pub reference_record: &'a ClipRecord,
    /// Sample rate of both, in Hz.
    pub sample_rate: u32,
}

/// A row of the table: anything that turns (source, reference) into output audio.
pub trait TransferSystem: Sync {
    /// Row name.
    fn name(&self) -> String;
    /// Notes printed under the table.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
    /// Called once with every source record before anything is computed (fail fast).
    fn prepare(&self, _sources: &[&ClipRecord]) -> Result<(), String> {
        Ok(())
    }
    /// The output: mono at `pair.sample_rate`, the source's length (a different length is
    /// cut or padded with zeros), finite.
    fn transfer(&self, pair: &TransferPair<'_>) -> Result<Vec<f32>, String>;
}

/// A row from a closure.
pub struct FnSystem<F> {
    name: String,
    f: F,
}

impl<F> FnSystem<F>
where
    F: Fn(&TransferPair<'_>) -> Result<Vec<f32>, String> + Sync,
{
    /// The row `name` computed by `f`.
    pub fn new(name: impl Into<String>, f: F) -> Self {
        Self {
            name: name.into(),
            f,
        }
    }
}

impl<F> TransferSystem for FnSystem<F>
where
    F: Fn(&TransferPair<'_>) -> Result<Vec<f32>, String> + Sync,
{
    fn name(&self) -> String {
        self.name.clone()
    }

    fn transfer(&self, pair: &TransferPair<'_>) -> Result<Vec<f32>, String> {
        (self.f)(pair)
    }
}

/// The `dry` row: the source unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dry;

impl TransferSystem for Dry {
    fn name(&self) -> String {
        "dry".to_string()
    }

    fn transfer(&self, pair: &TransferPair<'_>) -> Result<Vec<f32>, String> {
        Ok(pair.source.to_vec())
    }
}

/// The `classic` row: the plugin engine's offline render (same code as the plugin) with the
/// reference's timbre descriptor in slot A, mix 1.
#[derive(Debug, Clone, Copy, Default)]
pub struct Classic {
    /// The engine's analysis settings.
    pub stft: StftConfig,
}

impl TransferSystem for Classic {
    fn name(&self) -> String {
        "classic".to_string()
    }

    fn notes(&self) -> Vec<String> {
        vec![
            "classic: the engine's offline render (cepstral envelope swap) with the reference's \
             timbre descriptor, mix 1, default settings."
                .to_string(),
        ]
    }

    fn transfer(&self, pair: &TransferPair<'_>) -> Result<Vec<f32>, String> {
        let reference = DecodedAudio {
            sample_rate: pair.sample_rate,
            channels: vec![pair.reference.to_vec()],
        };
        let descriptor = descriptor_from_audio(&pair.reference_record.path, &reference, &self.stft)
            .map_err(|e| e.to_string())?;
        let input = DecodedAudio {
            sample_rate: pair.sample_rate,
            channels: vec![pair.source.to_vec()],
        };
        let rendered = render(
            &input,
            &RenderOptions {
                timbre_a: Some(&descriptor),
                mix: 1.0,
                stft: self.stft,
                ..Default::default()
            },
        )
        .map_err(|e| e.to_string())?;
        rendered
            .audio
            .channels
            .into_iter()
            .next()
            .ok_or_else(|| "the engine returned no channel".to_string())
    }
}

/// The `oracle` row: the source phrase's score (regenerated from the phrase generator) played
/// with B's program on the same SoundFont, scaled and quantised as the dataset writer does.
pub struct Oracle {
    soundfont: Arc<SoundFont>,
    phrase_seed: u64,
    instruments: BTreeMap<u8, Instrument>,
}

impl Oracle {
    /// The oracle for phrases rendered with `phrase_seed` from `soundfont`, with the
    /// instruments (note ranges) the phrases were generated for.
    pub fn new(
        soundfont: Arc<SoundFont>,
        phrase_seed: u64,
        instruments: BTreeMap<u8, Instrument>,
    ) -> Self {
        Self {
            soundfont,
            phrase_seed,
            instruments,
        }
    }

    /// The score of `source` as generated by the dataset (program A), checked against the
    /// record's labels and length.
    pub fn source_score(&self, source: &ClipRecord) -> Result<Score, String> {
        let index = source
            .phrase
            .ok_or_else(|| format!("{} is not a phrase", source.path.display()))?;
        let inst = self.instruments.get(&source.program).ok_or_else(|| {
            format!(
                "program {} has no note clips in the manifest, so its note range (which the \
                 phrase generator uses) is unknown",
                source.program
            )
        })?;
        let score = dataset::phrase_score(inst, index, self.phrase_seed, source.sample_rate);
        if score.length != source.samples || score.frame_notes(source.hop) != source.frame_notes {
            return Err(format!(
                "phrase {index} of program {} regenerated with phrase seed {} does not match \
                 the manifest's labels: pass the seed the dataset was rendered with \
                 (--phrase-seed)",
                source.program, self.phrase_seed
            ));
        }
        Ok(score)
    }
}

impl TransferSystem for Oracle {
    fn name(&self) -> String {
        "oracle".to_string()
    }

    fn notes(&self) -> Vec<String> {
        vec![format!(
            "oracle: the source phrase's score (phrase seed {}) rendered with B's program on the \
             same SoundFont, the ideal transfer.",
            self.phrase_seed
        )]
    }

    fn prepare(&self, sources: &[&ClipRecord]) -> Result<(), String> {
        sources
            .iter()
            .try_for_each(|s| self.source_score(s).map(|_| ()))
    }

    fn transfer(&self, pair: &TransferPair<'_>) -> Result<Vec<f32>, String> {
        let mut score = self.source_score(pair.source_record)?;
        for e in &mut score.events {
            if e.command == 0xC0 {
                e.data1 = pair.reference_record.program as i32;
            }
        }
        let mut settings = SynthesizerSettings::new(pair.sample_rate as i32);
        settings.enable_reverb_and_chorus = false;
        let mut synth =
            Synthesizer::new(&self.soundfont, &settings).map_err(|e| format!("{e:?}"))?;
        let audio = dataset::play(&mut synth, &score);
        Ok(audio
            .iter()
            .map(|s| (s * OUTPUT_GAIN * 32767.0).round().clamp(-32768.0, 32767.0) / 32768.0)
            .collect())
    }
}

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
        }
    }
}

/// One source and its reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairInfo {
    /// Source phrase, relative to the dataset folder.
    pub source: PathBuf,
    /// Program of the source (A).
    pub program_a: u8,
    /// Reference note clip, relative to the dataset folder.
    pub reference: PathBuf,
    /// Program of the reference (B).
    pub program_b: u8,
    /// The reference's MIDI note.
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

fn percent(v: Option<f64>) -> String {
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
        s.push_str("\n|---|---|---|---|---|---|\n");
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
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                r.row,
                percent(r.pitch_within_50_cents),
                cents,
                percent(r.classified_as_b),
                percent(r.classified_as_a),
                level
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
             test-split note reference of another instrument (seed {}). Classifier: k-NN \
             (k = {}, standardised) on {} frames ({} features, FFT {}, hop {}) of {} note clips \
             ({} without active frames), {} instruments. Pitch: pYIN, {} Hz, frame {}, bins of \
             {} semitone, range {}.",
            self.sources_used,
            self.sources_available,
            self.source_instruments,
            self.data.display(),
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

/// Note ranges of the instruments, from the manifest's note clips (all splits): the
/// instrument list the dataset was rendered with, as the phrase generator needs it.
pub fn instruments_from_manifest(records: &[ClipRecord]) -> BTreeMap<u8, Instrument> {
    let mut out: BTreeMap<u8, Instrument> = BTreeMap::new();
    for r in records.iter().filter(|r| r.set == Set::Notes) {
        let Some(note) = r.note else { continue };
        let inst = out.entry(r.program).or_insert_with(|| Instrument {
            program: r.program,
            name: r.instrument.clone(),
            family: r.family.clone(),
            low: note,
            high: note,
        });
        inst.low = inst.low.min(note);
        inst.high = inst.high.max(note);
    }
    out
}

/// Sources (test-split phrases) and their references, as indices into `records`: at most
/// `max_sources` sources, taken round-robin over the instruments in a seeded order; for each,
/// B drawn with the seed among the other instruments with test-split notes, and B's
/// test-split note clip at velocity 80 (any velocity when there is none) nearest the middle of
/// B's range. Sorted by (program, phrase).
pub fn plan_pairs(
    records: &[ClipRecord],
    max_sources: Option<usize>,
    seed: u64,
) -> Result<Vec<(usize, usize)>, TransferError> {
    let mut by_program: BTreeMap<u8, Vec<usize>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        if r.set == Set::Phrases && r.split == Split::Test {
            by_program.entry(r.program).or_default().push(i);
        }
    }
    let key = |i: usize| {
        let r = &records[i];
        manifest::fnv1a(manifest::phrase_key(r.program, r.phrase.unwrap_or(u32::MAX)).as_bytes())
    };
    let total: usize = by_program.values().map(Vec::len).sum();
    let cap = max_sources.unwrap_or(total).min(total);
    let mut chosen = Vec::with_capacity(cap);
    if cap == total {
        chosen.extend(by_program.values().flatten().copied());
    } else {
        let mut queues: Vec<Vec<usize>> = by_program
            .values()
            .map(|v| {
                let mut v = v.clone();
                // Seeded order inside an instrument; taken from the back.
                v.sort_by_key(|&i| std::cmp::Reverse(knn::mix64(seed ^ key(i))));
                v
            })
            .collect();
        while chosen.len() < cap {
            for q in &mut queues {
                if chosen.len() < cap {
                    if let Some(i) = q.pop() {
                        chosen.push(i);
                    }
                }
            }
        }
    }
    if chosen.is_empty() {
        return Err(TransferError::NoSources);
    }
    chosen.sort_by_key(|&i| (records[i].program, records[i].phrase, i));

    let ranges = instruments_from_manifest(records);
    let mut refs: BTreeMap<u8, Vec<usize>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        if r.set == Set::Notes && r.split == Split::Test && r.note.is_some() {
            refs.entry(r.program).or_default().push(i);
        }
    }
    chosen
        .into_iter()
        .map(|s| {
            let a = records[s].program;
            let others: Vec<u8> = refs.keys().copied().filter(|p| *p != a).collect();
            if others.is_empty() {
                return Err(TransferError::NoReference { program: a });
            }
            let mut rng = SplitMix64::new(knn::mix64(seed ^ key(s)));
            let b = others[rng.int(0, others.len() as i32 - 1) as usize];
            let clips = &refs[&b];
            let preferred: Vec<usize> = clips
                .iter()
                .copied()
                .filter(|&i| records[i].velocity == REFERENCE_VELOCITY)
                .collect();
            let pool = if preferred.is_empty() {
                clips
            } else {
                &preferred
            };
            let middle2 = ranges
                .get(&b)
                .map_or(120, |inst| inst.low as i32 + inst.high as i32);
            let r = pool
                .iter()
                .copied()
                .min_by_key(|&i| {
                    let rec = &records[i];
                    let note = rec.note.unwrap_or(0) as i32;
                    (
                        (2 * note - middle2).abs(),
                        (rec.velocity as i32 - REFERENCE_VELOCITY as i32).abs(),
                        note,
                        i,
                    )
                })
                .ok_or(TransferError::NoReference { program: a })?;
            Ok((s, r))
        })
        .collect()
}

/// Reads a mono 16-bit WAV into `-1..1` samples and checks it against its record and the
/// expected rate.
fn read_clip(root: &Path, record: &ClipRecord, rate: u32) -> Result<Vec<f32>, TransferError> {
    let path = record.audio_path(root);
    if record.sample_rate != rate {
        return Err(TransferError::SampleRate {
            path,
            found: record.sample_rate,
            expected: rate,
        });
    }
    let reader = match hound::WavReader::open(&path) {
        Ok(r) => r,
        Err(source) => return Err(TransferError::Wav { path, source }),
    };
    let spec = reader.spec();
    if spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(TransferError::WavFormat {
            path,
            channels: spec.channels,
            bits: spec.bits_per_sample,
            format: format!("{:?}", spec.sample_format),
        });
    }
    if spec.sample_rate != rate {
        return Err(TransferError::SampleRate {
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
        Err(source) => return Err(TransferError::Wav { path, source }),
    };
    if samples.len() != record.samples {
        return Err(TransferError::Length {
            path,
            found: samples.len(),
            expected: record.samples,
        });
    }
    Ok(samples)
}

/// Runs `f` over `items` on `threads` threads; results in item order; the error of the
/// lowest failing item (others stop early).
fn parallel_map<T, R, E, F>(items: &[T], threads: usize, f: F) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send,
    E: Send,
    F: Fn(usize, &T) -> Result<R, E> + Sync,
{
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let first_error: Mutex<Option<(usize, E)>> = Mutex::new(None);
    let threads = threads.clamp(1, items.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                match f(i, item) {
                    Ok(r) => {
                        results.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(r);
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        let mut slot = first_error.lock().unwrap_or_else(PoisonError::into_inner);
                        if slot.as_ref().is_none_or(|(j, _)| i < *j) {
                            *slot = Some((i, e));
                        }
                        break;
                    }
                }
            });
        }
    });
    if let Some((_, e)) = first_error
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
    {
        return Err(e);
    }
    Ok(results
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .into_iter()
        .flatten()
        .collect())
}

/// Features of one note clip for the fit: up to [`MAX_FIT_FRAMES_PER_CLIP`] random active
/// frames (labelled and within 40 dB of the clip's loudest frame), raw.
fn fit_rows(
    root: &Path,
    record: &ClipRecord,
    index: usize,
    extractor: &FeatureExtractor,
    seed: u64,
) -> Result<Vec<f32>, TransferError> {
    let samples = read_clip(root, record, extractor.sample_rate())?;
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
        let mut rng = SplitMix64::new(knn::mix64(seed ^ knn::mix64(index as u64 + 1)));
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

/// What one row made of one source.
struct RowOutcome {
    pitch: Option<PitchAgreement>,
    level_db: Option<f64>,
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
        let source = read_clip(self.root, src_rec, self.rate)?;
        let reference = read_clip(self.root, ref_rec, self.rate)?;
        let (fmin, fmax) = self.range_hz(src_rec);
        let pitch_err = |message| TransferError::Pitch {
            path: src_rec.path.clone(),
            message,
        };
        let mut pyin_s = 0.0;
        let mut feature_s = 0.0;
        let mut pyin_calls = 0;
        let mut feature_calls = 0;
        let mut track = |x: &[f32]| {
            let t = Instant::now();
            let result = track_pitch(x, self.rate, src_rec.hop, fmin, fmax).map_err(pitch_err);
            pyin_s += t.elapsed().as_secs_f64();
            pyin_calls += 1;
            result
        };
        let src_track = track(&source)?;
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
        };
        let mut rows = Vec::with_capacity(self.systems.len());
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
            let level_db = level_difference_db(&source, &out, &src_track.voiced, src_rec.hop);
            let outcome = if out == source {
                // Same audio, same analysis: reuse the source's.
                RowOutcome {
                    pitch: pitch_agreement(&src_track, &src_track),
                    level_db,
                    features: None,
                    transfer_s,
                }
            } else {
                let out_track = track(&out)?;
                RowOutcome {
                    pitch: pitch_agreement(&src_track, &out_track),
                    level_db,
                    features: Some(features(&out)),
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
    evaluate_systems(opts, &[&Dry, &oracle, &classic], progress)
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
    let pairs = plan_pairs(&records, opts.max_sources, opts.seed)?;
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
                classified: pair_infos
                    .iter()
                    .filter(|p| p.output_labels[k].is_some())
                    .count(),
                classified_as_b: share(|p| p.program_b),
                classified_as_a: share(|p| p.program_a),
                level_sources: levels.len(),
                level_difference_db: mean(levels.iter().copied()),
                level_abs_difference_db: mean(levels.iter().map(|d| d.abs())),
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
    ];
    if opts.pitch_range != PitchRange::Full {
        notes.push(
            "pitch range: pYIN searched only the source's notes ± 3 semitones, so an output \
             pitch outside that range (e.g. an octave error) is not measured as such."
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_scale_round_trips_and_filters_cover_the_spectrum() {
        for hz in [0.0, 300.0, 999.0, 1000.0, 4000.0, 16_000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-6 * hz.max(1.0));
        }
        let bank = mel_filterbank(32_000, FEATURE_FFT, N_MELS);
        assert_eq!(bank.len(), N_MELS);
        assert!(bank.iter().all(|f| !f.weights.is_empty()), "empty filter");
        assert!(bank.windows(2).all(|w| w[0].first <= w[1].first));
    }

    #[test]
    fn dct_is_orthonormal() {
        let d = dct_matrix(N_MELS, N_MELS);
        for i in [0, 1, 5, 19] {
            for j in [0, 1, 5, 19] {
                let dot: f32 = (0..N_MELS)
                    .map(|m| d[i * N_MELS + m] * d[j * N_MELS + m])
                    .sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-4, "{i} {j}: {dot}");
            }
        }
    }

    #[test]
    fn contrast_bands_follow_librosa_octaves() {
        let bands = contrast_bands(32_000, 2048);
        assert_eq!(bands.len(), CONTRAST_BANDS);
        assert_eq!(bands[0].0, 0);
        assert_eq!(bands[CONTRAST_BANDS - 1].1, 1025);
        // 200 Hz at 15.625 Hz per bin: bin 13.
        assert_eq!(bands[1].0, 13);
        assert!(bands.windows(2).all(|w| w[0].1 == w[1].0));
    }

    #[test]
    fn majority_breaks_ties_towards_the_smaller_label() {
        assert_eq!(majority(&[]), None);
        assert_eq!(majority(&[3, 1, 3]), Some(3));
        assert_eq!(majority(&[7, 2, 7, 2]), Some(2));
    }

    #[test]
    fn pitch_agreement_and_level() {
        let src = PitchTrack {
            f0_hz: vec![440.0, 440.0, f64::NAN, 440.0],
            voiced: vec![true, true, false, true],
        };
        let out = PitchTrack {
            f0_hz: vec![440.0, 440.0 * 2f64.powf(1.0 / 12.0), 440.0, f64::NAN],
            voiced: vec![true, true, true, false],
        };
        let a = pitch_agreement(&src, &out).unwrap();
        assert_eq!(a.frames, 2);
        assert!((a.within - 0.5).abs() < 1e-12);
        assert!((a.median_cents - 50.0).abs() < 1e-9);
        let x = vec![0.5f32; 400];
        let y: Vec<f32> = x.iter().map(|v| v * 0.5).collect();
        let d = level_difference_db(&x, &y, &[true, false, true], 160).unwrap();
        assert!((d + 6.0206).abs() < 1e-3, "{d}");
        assert_eq!(level_difference_db(&x, &y, &[false; 3], 160), None);
    }
}
