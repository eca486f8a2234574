//! Per-frame features of the instrument classifier: Slaney mel filterbank, orthonormal DCT,
//! MFCC and their deltas, spectral centroid, flatness and contrast ([`FeatureExtractor`]), and
//! the choice of a clip's active frames ([`active_frames`]).

use timbreswap_engine::stft::Stft;
use timbreswap_engine::StftConfig;

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

/// Floor added to powers before logarithms (mel energies, flatness), in squared FFT units.
const POWER_FLOOR: f64 = 1e-10;
/// Floor added to magnitudes before the contrast's logarithm.
const MAG_FLOOR: f64 = 1e-10;
/// Floor of a frame's energy before the dB conversion.
pub(super) const ENERGY_FLOOR: f64 = 1e-30;
/// Lowest spectral centroid the logarithm sees, in Hz (silent frames).
const CENTROID_FLOOR_HZ: f64 = 1.0;

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
        let frames = samples.len() / FEATURE_HOP + 1;
        let mut stft = Stft::new(&self.cfg);
        let mut frame = vec![0.0f32; n];
        // The element type comes from `Stft::analyse` (the engine's complex type).
        let mut spectrum = vec![Default::default(); bins];
        let mut power = Vec::with_capacity(frames * bins);
        for f in 0..frames {
            crate::dsp_split::centred_frame(samples, f * FEATURE_HOP, &mut frame);
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
}
