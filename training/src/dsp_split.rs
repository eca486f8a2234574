//! The DSP-split baseline of the evaluation protocol: the engine's own cepstral split of a clip's
//! log-magnitude spectrogram into envelope ("timbre") and fine structure ("pitch").
//!
//! Baseline latents: the timbre vector of a clip is its mean envelope over the active frames
//! ([`timbre_vector`]); the pitch vector of a frame is its fine structure ([`pitch_vector`]);
//! there is no variation latent. Envelope plus fine structure is the log-magnitude spectrum, so
//! the split is lossless.
//!
//! Frame convention (as [`crate::manifest`]): frame `f` is centred on sample `f * hop`, the
//! clip is padded with `n_fft / 2` zeros on both sides, and a clip of `len` samples has
//! `len / hop + 1` frames.

use timbreswap_engine::cepstrum::Cepstrum;
use timbreswap_engine::stft::Stft;
use timbreswap_engine::timbre::MAG_FLOOR;
use timbreswap_engine::StftConfig;

/// Frames quieter than this below the clip's loudest frame are not active, in dB (protocol:
/// "louder than -60 dB re the clip's peak").
pub const ACTIVE_RANGE_DB: f32 = 60.0;

/// Added to a frame's energy before the logarithm, so digital silence gives a finite level.
const ENERGY_FLOOR: f32 = 1e-30;

/// Log-magnitude spectrogram of one clip and its cepstral split. Matrices are row-major,
/// `frames x bins`; values are natural logs of the magnitude of the unnormalised FFT of the
/// Hann-windowed frame, `ln(|X| + MAG_FLOOR)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipFeatures {
    /// Cepstral envelope (low quefrency) of every frame, natural-log magnitude.
    pub envelope: Vec<f32>,
    /// Fine structure, `log_mag - envelope`, natural-log magnitude ratio.
    pub fine: Vec<f32>,
    /// Log magnitude `ln(|X| + MAG_FLOOR)` of every frame.
    pub log_mag: Vec<f32>,
    /// Energy of every frame in dB: `10 log10(sum_k |X_k|^2)` over the bins `0..=n_fft/2` of
    /// the windowed, unnormalised FFT (a full-scale sine gives about 42 dB at `n_fft` 512).
    pub frame_db: Vec<f32>,
    /// Number of frames, `len / hop + 1`.
    pub frames: usize,
    /// Bins per frame, `n_fft / 2 + 1`.
    pub bins: usize,
}

impl ClipFeatures {
    /// Row `frame` of the envelope.
    pub fn envelope_row(&self, frame: usize) -> &[f32] {
        &self.envelope[frame * self.bins..(frame + 1) * self.bins]
    }

    /// Row `frame` of the fine structure.
    pub fn fine_row(&self, frame: usize) -> &[f32] {
        &self.fine[frame * self.bins..(frame + 1) * self.bins]
    }

    /// Row `frame` of the log magnitude.
    pub fn log_mag_row(&self, frame: usize) -> &[f32] {
        &self.log_mag[frame * self.bins..(frame + 1) * self.bins]
    }
}

pub use timbreswap_engine::features::centred_frame;

/// Analyses `samples` (mono, at `cfg.sample_rate`) with the engine's STFT and cepstrum.
/// Allocates the whole spectrogram of the clip (four `frames x bins` matrices).
pub fn analyse_clip(samples: &[f32], cfg: &StftConfig) -> ClipFeatures {
    let n = cfg.n_fft;
    let bins = cfg.n_bins();
    let frames = samples.len() / cfg.hop + 1;
    let mut stft = Stft::new(cfg);
    let mut cepstrum = Cepstrum::new(cfg);
    let mut frame = vec![0.0f32; n];
    // The element type comes from `Stft::analyse` (the engine's complex type).
    let mut spectrum = vec![Default::default(); bins];
    let mut envelope = vec![0.0f32; frames * bins];
    let mut fine = vec![0.0f32; frames * bins];
    let mut log_mag = vec![0.0f32; frames * bins];
    let mut frame_db = Vec::with_capacity(frames);
    for f in 0..frames {
        centred_frame(samples, f * cfg.hop, &mut frame);
        stft.analyse(&frame, &mut spectrum);
        let rows = f * bins..(f + 1) * bins;
        let lm = &mut log_mag[rows.clone()];
        let mut energy = 0.0f32;
        for (l, c) in lm.iter_mut().zip(&spectrum) {
            energy += c.norm_sqr();
            *l = (c.norm() + MAG_FLOOR).ln();
        }
        frame_db.push(10.0 * (energy + ENERGY_FLOOR).log10());
        let env = &mut envelope[rows.clone()];
        cepstrum.envelope(lm, env);
        for ((fi, l), e) in fine[rows].iter_mut().zip(lm.iter()).zip(env.iter()) {
            *fi = l - e;
        }
    }
    ClipFeatures {
        envelope,
        fine,
        log_mag,
        frame_db,
        frames,
        bins,
    }
}

/// Active frames of a clip, ascending: frames with a note label (`frame_notes[f] >= 0`) whose
/// energy is within [`ACTIVE_RANGE_DB`] of the clip's loudest frame (all frames count for the
/// peak). A clip of digital silence has none. Frames beyond either `frame_notes` or the
/// features are not active.
pub fn active_frames(features: &ClipFeatures, frame_notes: &[i16]) -> Vec<usize> {
    let peak = features
        .frame_db
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let silence = 10.0 * ENERGY_FLOOR.log10();
    if !peak.is_finite() || peak <= silence {
        return Vec::new();
    }
    let threshold = peak - ACTIVE_RANGE_DB;
    features
        .frame_db
        .iter()
        .zip(frame_notes)
        .enumerate()
        .filter(|(_, (db, note))| **note >= 0 && **db >= threshold && **db > silence)
        .map(|(f, _)| f)
        .collect()
}

/// Baseline timbre vector (`bins` values, natural-log magnitude): the mean envelope over
/// `active` frames. `None` when `active` is empty.
pub fn timbre_vector(features: &ClipFeatures, active: &[usize]) -> Option<Vec<f32>> {
    if active.is_empty() {
        return None;
    }
    let mut sum = vec![0.0f64; features.bins];
    for &f in active {
        for (s, e) in sum.iter_mut().zip(features.envelope_row(f)) {
            *s += *e as f64;
        }
    }
    let n = active.len() as f64;
    Some(sum.into_iter().map(|s| (s / n) as f32).collect())
}

/// Baseline pitch vector of `frame` (`bins` values, natural-log magnitude ratio): its fine
/// structure.
pub fn pitch_vector(features: &ClipFeatures, frame: usize) -> &[f32] {
    features.fine_row(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Harmonic tone: partials `h * f0` below 14 kHz with amplitude `h^-tilt`, in seconds.
    fn tone(f0: f32, tilt: f32, seconds: f32, rate: u32) -> Vec<f32> {
        let len = (seconds * rate as f32) as usize;
        let partials: Vec<(f32, f32)> = (1..100)
            .map(|h| (h as f32 * f0, (h as f32).powf(-tilt)))
            .filter(|(f, _)| *f < 14_000.0)
            .collect();
        (0..len)
            .map(|i| {
                let t = i as f32 / rate as f32;
                0.2 * partials
                    .iter()
                    .map(|(f, a)| a * (2.0 * std::f32::consts::PI * f * t).sin())
                    .sum::<f32>()
            })
            .collect()
    }

    #[test]
    fn shapes_follow_the_frame_convention_and_split_is_lossless() {
        let cfg = StftConfig::default();
        let x = tone(220.0, 1.0, 0.3, cfg.sample_rate);
        let feat = analyse_clip(&x, &cfg);
        assert_eq!(feat.frames, x.len() / cfg.hop + 1);
        assert_eq!(feat.bins, 257);
        for m in [&feat.envelope, &feat.fine, &feat.log_mag] {
            assert_eq!(m.len(), feat.frames * feat.bins);
        }
        assert_eq!(feat.frame_db.len(), feat.frames);
        for ((f, e), l) in feat.fine.iter().zip(&feat.envelope).zip(&feat.log_mag) {
            assert!((f + e - l).abs() < 1e-4, "{f} + {e} != {l}");
        }
        // Middle frames of a steady tone are far louder than the half-empty edge frames.
        assert!(feat.frame_db[feat.frames / 2] > feat.frame_db[0]);
    }

    #[test]
    fn frames_are_centred_on_multiples_of_the_hop() {
        // A single click at sample 10 * hop: frame 10 sees it at the window centre (weight 1),
        // its neighbours further out, and frames two windows away not at all.
        let cfg = StftConfig::default();
        let mut x = vec![0.0f32; 40 * cfg.hop];
        x[10 * cfg.hop] = 1.0;
        let feat = analyse_clip(&x, &cfg);
        let loudest = (0..feat.frames)
            .max_by(|a, b| feat.frame_db[*a].total_cmp(&feat.frame_db[*b]))
            .unwrap();
        assert_eq!(loudest, 10);
        assert!(feat.frame_db[0] < -200.0);
    }

    fn mean_sq_fine_distance(a: &ClipFeatures, b: &ClipFeatures) -> f32 {
        let frames = a.frames.min(b.frames);
        let mut sum = 0.0;
        let mut count = 0;
        // Steady middle frames only.
        for f in frames / 4..3 * frames / 4 {
            for (x, y) in pitch_vector(a, f).iter().zip(pitch_vector(b, f)) {
                sum += (x - y) * (x - y);
                count += 1;
            }
        }
        sum / count as f32
    }

    #[test]
    fn fine_structure_follows_pitch_not_tilt() {
        let cfg = StftConfig::default();
        let a = analyse_clip(&tone(220.0, 0.5, 0.4, cfg.sample_rate), &cfg);
        let b = analyse_clip(&tone(220.0, 2.0, 0.4, cfg.sample_rate), &cfg);
        let c = analyse_clip(&tone(311.0, 0.5, 0.4, cfg.sample_rate), &cfg);
        let same_pitch = mean_sq_fine_distance(&a, &b);
        let other_pitch = mean_sq_fine_distance(&a, &c);
        assert!(
            same_pitch < 0.5 * other_pitch,
            "same f0: {same_pitch}, other f0: {other_pitch}"
        );
        // And the timbre vector follows the tilt, not the pitch.
        let active: Vec<usize> = (a.frames / 4..3 * a.frames / 4).collect();
        let ta = timbre_vector(&a, &active).unwrap();
        let tb = timbre_vector(&b, &active).unwrap();
        let tc = timbre_vector(&c, &active).unwrap();
        let d = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| (p - q).powi(2)).sum::<f32>();
        assert!(d(&ta, &tc) < d(&ta, &tb));
    }

    #[test]
    fn active_frames_exclude_unlabelled_and_quiet_frames() {
        let cfg = StftConfig::default();
        let hop = cfg.hop;
        // 0.1 s loud, 0.1 s at -80 dB, 0.1 s loud; 60 frames of 5 ms each.
        let loud = tone(440.0, 1.0, 0.1, cfg.sample_rate);
        let mut x = loud.clone();
        x.extend(loud.iter().map(|v| v * 1e-4));
        x.extend_from_slice(&loud);
        let feat = analyse_clip(&x, &cfg);
        let frames = feat.frames;
        assert_eq!(frames, x.len() / hop + 1);
        // Labelled everywhere except frames 5..10.
        let labels: Vec<i16> = (0..frames)
            .map(|f| if (5..10).contains(&f) { -1 } else { 69 })
            .collect();
        let active = active_frames(&feat, &labels);
        let q = loud.len() / hop;
        assert!(!active.is_empty());
        for f in 0..frames {
            let quiet_zone = f > q + 2 && f + 2 < 2 * q;
            let is_active = active.contains(&f);
            if (5..10).contains(&f) || quiet_zone {
                assert!(!is_active, "frame {f} should not be active");
            } else if f > 1 && f + 1 < q || f > 2 * q + 2 && f + 2 < frames {
                assert!(is_active, "frame {f} should be active");
            }
        }
        // Shorter label vectors limit the frames; silence has no active frame.
        assert!(active_frames(&feat, &labels[..3]).iter().all(|f| *f < 3));
        let silent = analyse_clip(&vec![0.0; 4000], &cfg);
        assert!(active_frames(&silent, &vec![60; silent.frames]).is_empty());
    }
}
