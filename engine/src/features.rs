//! The neural model's input features from audio (training data, evaluation clips, reference
//! clips): log-magnitude STFT frames with the model's floor, split by cepstral liftering into
//! envelope (low quefrency) and fine structure (high quefrency). Shared by the training crate
//! and the engine so both see exactly the same numbers. Everything here allocates: call it off
//! the audio thread.

use crate::cepstrum::Cepstrum;
use crate::config::StftConfig;
use crate::stft::Stft;

/// Fills `frame` with the clip's samples around `centre`: sample `centre + i - frame.len() / 2`
/// for each `i`, zero outside the clip (the shared frame convention: frame `f` is centred on
/// sample `f * hop`).
pub fn centred_frame(samples: &[f32], centre: usize, frame: &mut [f32]) {
    let pad = frame.len() / 2;
    // Inside the clip (every frame but the first and last few): one copy.
    if let Some(inside) = centre
        .checked_sub(pad)
        .and_then(|start| samples.get(start..start + frame.len()))
    {
        frame.copy_from_slice(inside);
        return;
    }
    for (i, x) in frame.iter_mut().enumerate() {
        *x = (centre + i)
            .checked_sub(pad)
            .and_then(|j| samples.get(j))
            .copied()
            .unwrap_or(0.0);
    }
}

/// One frame's features from its spectrum `input`: `ln(|X| + mag_floor)` into `log_mag`, its
/// cepstral envelope into `envelope` and the fine structure (`log_mag - envelope`) into
/// `fine`. Returns the frame's energy in dB (`10 log10 sum |X|^2`, floor 1e-30).
/// Realtime-safe.
pub fn split_frame(
    input: &[realfft::num_complex::Complex32],
    mag_floor: f32,
    cepstrum: &mut Cepstrum,
    log_mag: &mut [f32],
    envelope: &mut [f32],
    fine: &mut [f32],
) -> f32 {
    let energy: f32 = input.iter().map(|x| x.norm_sqr()).sum();
    crate::stft::magnitudes(input, log_mag);
    for l in log_mag.iter_mut() {
        *l = (*l + mag_floor).ln();
    }
    cepstrum.envelope(log_mag, envelope);
    for ((f, l), e) in fine.iter_mut().zip(log_mag.iter()).zip(envelope.iter()) {
        *f = l - e;
    }
    10.0 * (energy + 1e-30).log10()
}

/// Frames of a clip as the model sees them; row-major `frames x bins`, natural logs.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameFeatures {
    /// `ln(|X| + mag_floor)` of every frame (unnormalised FFT of the Hann-windowed frame).
    pub log_mag: Vec<f32>,
    /// Cepstral envelope of `log_mag`; empty from an extractor made
    /// [`without_envelope`](FeatureExtractor::without_envelope).
    pub envelope: Vec<f32>,
    /// `log_mag - envelope`; empty from an extractor made [`without_fine`](FeatureExtractor::without_fine)
    /// or [`without_envelope`](FeatureExtractor::without_envelope).
    pub fine: Vec<f32>,
    /// Frame energy in dB (`10 log10 sum |X|^2`, floor 1e-30).
    pub frame_db: Vec<f32>,
    /// Frames.
    pub frames: usize,
    /// Bins per frame.
    pub bins: usize,
}

/// Reusable analysis for one [`StftConfig`] and magnitude floor. Not realtime-safe.
pub struct FeatureExtractor {
    cfg: StftConfig,
    mag_floor: f32,
    stft: Stft,
    cepstrum: Cepstrum,
    /// Whether [`frames`](Self::frames) fills [`FrameFeatures::fine`].
    fine: bool,
    /// Whether [`frames`](Self::frames) fills [`FrameFeatures::envelope`].
    envelope: bool,
}

impl FeatureExtractor {
    /// An extractor for `cfg` with `ln(|X| + mag_floor)`.
    pub fn new(cfg: &StftConfig, mag_floor: f32) -> Self {
        Self {
            cfg: *cfg,
            mag_floor,
            stft: Stft::new(cfg),
            cepstrum: Cepstrum::new(cfg),
            fine: true,
            envelope: true,
        }
    }

    /// The same extractor, leaving [`FrameFeatures::fine`] empty: for readers of the
    /// log-magnitudes and envelopes only, a third less memory.
    pub fn without_fine(mut self) -> Self {
        self.fine = false;
        self
    }

    /// The same extractor, leaving [`FrameFeatures::envelope`] and [`FrameFeatures::fine`]
    /// empty: the log-magnitudes and frame energies only, without a cepstrum per frame. For
    /// the reference loader, whose Exemplar analysis reads the log-magnitudes and whose
    /// [`Network::clip_timbre_of`](crate::network::Network::clip_timbre_of) makes the
    /// envelopes of the frames it pools (of a clip past 5 s, a share of them).
    pub fn without_envelope(mut self) -> Self {
        self.envelope = false;
        self.fine = false;
        self
    }

    /// `frames` frames of `samples` (mono, at the model rate); frame `f` is centred on sample
    /// `offset + f * hop` (zeros outside the clip).
    pub fn frames(&mut self, samples: &[f32], offset: usize, frames: usize) -> FrameFeatures {
        let bins = self.cfg.n_bins();
        let mut frame = vec![0.0f32; self.cfg.n_fft];
        let mut spectrum = vec![Default::default(); bins];
        let mut log_mag = vec![0.0f32; frames * bins];
        let mut envelope = if self.envelope {
            vec![0.0f32; frames * bins]
        } else {
            Vec::new()
        };
        let mut fine = if self.fine {
            vec![0.0f32; frames * bins]
        } else {
            Vec::new()
        };
        let mut frame_db = Vec::with_capacity(frames);
        for f in 0..frames {
            centred_frame(samples, offset + f * self.cfg.hop, &mut frame);
            self.stft.analyse(&frame, &mut spectrum);
            let rows = f * bins..(f + 1) * bins;
            let row = &mut log_mag[rows.clone()];
            crate::stft::magnitudes(&spectrum, row);
            // The energy is summed in the logarithms' loop, where its chain of additions
            // costs no time of its own.
            let mut energy = 0.0f32;
            for (l, c) in row.iter_mut().zip(&spectrum) {
                energy += c.norm_sqr();
                *l = (*l + self.mag_floor).ln();
            }
            frame_db.push(10.0 * (energy + 1e-30).log10());
            if !self.envelope {
                continue;
            }
            self.cepstrum
                .envelope(&log_mag[rows.clone()], &mut envelope[rows.clone()]);
            if self.fine {
                for k in rows {
                    fine[k] = log_mag[k] - envelope[k];
                }
            }
        }
        FrameFeatures {
            log_mag,
            envelope,
            fine,
            frame_db,
            frames,
            bins,
        }
    }

    /// Only the frame energies of [`FeatureExtractor::frames`] (`10 log10 sum |X|^2`, in dB),
    /// without the log-magnitudes and the cepstral split.
    pub fn frame_db(&mut self, samples: &[f32], offset: usize, frames: usize) -> Vec<f32> {
        let mut frame = vec![0.0f32; self.cfg.n_fft];
        let mut spectrum = vec![Default::default(); self.cfg.n_bins()];
        (0..frames)
            .map(|f| {
                centred_frame(samples, offset + f * self.cfg.hop, &mut frame);
                self.stft.analyse(&frame, &mut spectrum);
                let energy: f32 = spectrum
                    .iter()
                    .map(|c: &realfft::num_complex::Complex32| c.norm_sqr())
                    .sum();
                10.0 * (energy + 1e-30).log10()
            })
            .collect()
    }

    /// All `len / hop + 1` frames of a clip (the dataset's frame convention).
    pub fn clip(&mut self, samples: &[f32]) -> FrameFeatures {
        let frames = samples.len() / self.cfg.hop + 1;
        self.frames(samples, 0, frames)
    }
}

/// The cepstral liftering as a matrix: `envelope_row = log_mag_row * lifter`, row-major
/// `bins x bins` (the engine's [`Cepstrum::envelope`] is linear; column `k` of the
/// transposed map is the envelope of the unit vector `e_k`).
pub fn lifter_matrix(cfg: &StftConfig) -> Vec<f32> {
    let bins = cfg.n_bins();
    let mut cepstrum = Cepstrum::new(cfg);
    let mut unit = vec![0.0f32; bins];
    let mut row = vec![0.0f32; bins];
    let mut m = vec![0.0f32; bins * bins];
    for i in 0..bins {
        unit.fill(0.0);
        unit[i] = 1.0;
        cepstrum.envelope(&unit, &mut row);
        m[i * bins..(i + 1) * bins].copy_from_slice(&row);
    }
    m
}

/// Most frames a clip's timbre is pooled over ([`pooling_weights`]): 1 000 frames, 5 s at the
/// built-in model's 5 ms hop. Training crops, the dataset's notes and phrases (2-4 s) and the
/// evaluation's references hold fewer, so their weights are every active frame's.
pub const MAX_POOLED_FRAMES: usize = 1_000;

/// Per-frame pooling weights for the timbre encoder: frames within `range_db` of the loudest
/// frame get equal weight, the others none; weights sum to 1 (all frames equal if none is
/// active, e.g. digital silence). Of more than [`MAX_POOLED_FRAMES`] active frames, every
/// `ceil(active / MAX_POOLED_FRAMES)`-th counts (the first, and so on, spread over the whole
/// clip): a long reference's timbre costs the encoder no more than 5 s of it (a 10 s clip's
/// `z_t`: 13.7 -> 8.4 ms; docs/benchmarks.md, "Reference analysis").
pub fn pooling_weights(frame_db: &[f32], range_db: f32) -> Vec<f32> {
    let peak = frame_db.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut w: Vec<f32> = frame_db
        .iter()
        .map(|&db| if db >= peak - range_db { 1.0 } else { 0.0 })
        .collect();
    let active = w.iter().filter(|x| **x > 0.0).count();
    if active > MAX_POOLED_FRAMES {
        let stride = active.div_ceil(MAX_POOLED_FRAMES);
        for (rank, x) in w.iter_mut().filter(|x| **x > 0.0).enumerate() {
            if rank % stride != 0 {
                *x = 0.0;
            }
        }
    }
    let n: f32 = w.iter().sum();
    if n > 0.0 {
        w.iter_mut().for_each(|x| *x /= n);
    } else if !w.is_empty() {
        let u = 1.0 / w.len() as f32;
        w.fill(u);
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every frame, inside the clip or over either end (and clips shorter than a frame), holds
    /// sample `centre + i - len / 2` where it exists and zero elsewhere.
    #[test]
    fn centred_frames_hold_the_samples_around_their_centre() {
        for clip_len in [0usize, 3, 8, 9, 40] {
            let samples: Vec<f32> = (0..clip_len).map(|i| i as f32 + 1.0).collect();
            for len in [1usize, 2, 8] {
                for centre in 0..clip_len + len + 2 {
                    let mut frame = vec![f32::NAN; len];
                    centred_frame(&samples, centre, &mut frame);
                    for (i, v) in frame.iter().enumerate() {
                        let j = (centre + i) as i64 - (len / 2) as i64;
                        let want = if j >= 0 && (j as usize) < clip_len {
                            j as f32 + 1.0
                        } else {
                            0.0
                        };
                        assert_eq!(*v, want, "clip {clip_len}, frame {len}, centre {centre}");
                    }
                }
            }
        }
    }

    #[test]
    fn lifter_matrix_reproduces_the_engine_envelope() {
        let cfg = StftConfig::default();
        let bins = cfg.n_bins();
        let m = lifter_matrix(&cfg);
        // A deterministic pseudo-random spectrum in -8..4.
        let mut state = 3u64;
        let x: Vec<f32> = (0..bins)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                -8.0 + 12.0 * (state >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect();
        let mut expected = vec![0.0f32; bins];
        Cepstrum::new(&cfg).envelope(&x, &mut expected);
        for k in 0..bins {
            let y: f32 = (0..bins).map(|i| x[i] * m[i * bins + k]).sum();
            assert!(
                (y - expected[k]).abs() < 1e-4,
                "bin {k}: {y} vs {}",
                expected[k]
            );
        }
    }

    #[test]
    fn pooling_weights_cover_the_active_frames() {
        let w = pooling_weights(&[-100.0, 0.0, -10.0, -70.0], 60.0);
        assert_eq!(w, vec![0.0, 0.5, 0.5, 0.0]);
        let silent = pooling_weights(&[-300.0, -300.0], 60.0);
        assert_eq!(silent, vec![0.5, 0.5]);
    }

    /// Up to [`MAX_POOLED_FRAMES`] active frames every one counts; past it, every k-th active
    /// frame counts (k the smallest that keeps them within the limit), from the first, spread
    /// over the whole clip, the quiet frames still left out.
    #[test]
    fn a_long_clip_pools_frames_spread_over_it() {
        // Active frames everywhere but every tenth frame (quiet).
        let db = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|t| {
                    if t % 10 == 9 {
                        -90.0
                    } else {
                        -((t % 7) as f32)
                    }
                })
                .collect()
        };
        let at_limit = db(1_111); // 1 000 active frames
        let w = pooling_weights(&at_limit, 60.0);
        assert_eq!(w.iter().filter(|x| **x > 0.0).count(), MAX_POOLED_FRAMES);
        for n in [1_112usize, 2_000, 4_500, 20_000] {
            let frame_db = db(n);
            let w = pooling_weights(&frame_db, 60.0);
            let active: Vec<usize> = (0..n).filter(|t| t % 10 != 9).collect();
            let k = active.len().div_ceil(MAX_POOLED_FRAMES);
            let kept: Vec<usize> = (0..n).filter(|&t| w[t] > 0.0).collect();
            let want: Vec<usize> = active.iter().copied().step_by(k).collect();
            assert_eq!(kept, want, "{n} frames");
            assert!(kept.len() <= MAX_POOLED_FRAMES && kept.len() > MAX_POOLED_FRAMES / 2);
            assert!(*kept.last().unwrap() + 10 * k > n, "reaches the clip's end");
            let sum: f32 = w.iter().sum();
            assert!((sum - 1.0).abs() < 1e-4, "{n} frames: weights sum to {sum}");
            assert!(kept.iter().all(|&t| w[t] == w[kept[0]]), "equal weights");
        }
    }
}
