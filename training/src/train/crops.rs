//! Training crops: cutting, perturbing and analysing the clips of a step, the pitch
//! classifier's targets (pYIN, run once per clip and kept), and the thread that prepares the
//! next step's crops while the current step trains.
//!
//! Everything here is a pure function of the clip and the crop's seed, so a step's crops made
//! ahead of time are the crops the step would have made, and a clip's pitch, measured once on
//! the whole clip, is the same whichever crop asks for it first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::sync::OnceLock;

use super::{ClipSet, TrainConfig};
use crate::model::features::{FeatureExtractor, FrameFeatures};
use crate::model::MIDDLE_C;
use crate::perturb;
use crate::rng::SplitMix64;

/// Samples of extra context perturbed on each side of a crop (so the pitch shift and the
/// effects have settled inside it).
pub(super) const CROP_MARGIN: usize = 2048;

/// Lowest and highest pitch pYIN searches for the classifier's targets, in Hz.
const RULER_F0_RANGE_HZ: (f64, f64) = (40.0, 2200.0);

/// Frames between two pitch targets: pYIN runs at this many hops per frame (it costs more
/// than the rest of a crop at every frame), the frames between have no target.
pub(super) const PITCH_TARGET_STRIDE: usize = 4;

/// One crop's features, row-major `frames x bins`.
pub(super) struct Crop {
    /// Clean crop: the target and the timbre pooling weights.
    pub clean: FrameFeatures,
    /// Pitch-shifted crop (timbre and variation encoders).
    pub shifted: FrameFeatures,
    /// Distorted crop (pitch encoder).
    pub distorted: FrameFeatures,
    /// The pitch shift of `shifted`, semitones (0 when not shifted).
    pub shift: f64,
    /// pYIN's pitch of the clean frames in semitones from middle C ([`crop_targets`]: the
    /// frames whose index in the clip is a multiple of [`PITCH_TARGET_STRIDE`], NaN
    /// elsewhere; empty unless the model has a pitch ruler).
    pub f0: Vec<f32>,
}

/// The samples of a crop of `crop_frames` frames from a random frame of a clip, with
/// [`CROP_MARGIN`] and half a window of context on each side (zeros past the clip's ends).
struct Segment {
    /// The samples.
    samples: Vec<f32>,
    /// The clip frame the crop starts on.
    first: usize,
    /// Samples before the first frame's centre.
    pad: usize,
}

impl Segment {
    /// Cuts a crop of `tc.crop_frames` frames of `clip` at a start drawn by `rng`.
    fn cut(clip: &[f32], tc: &TrainConfig, rng: &mut SplitMix64) -> Self {
        let cfg = &tc.model;
        let frames_total = clip.len() / cfg.hop + 1;
        let t = tc.crop_frames;
        let first = if frames_total > t {
            rng.below((frames_total - t + 1) as u64) as usize
        } else {
            0
        };
        let pad = cfg.n_fft / 2 + CROP_MARGIN;
        let len = (t - 1) * cfg.hop + 2 * pad;
        let mut samples = vec![0.0f32; len];
        for (i, s) in samples.iter_mut().enumerate() {
            let j = (first * cfg.hop + i) as isize - pad as isize;
            if j >= 0 && (j as usize) < clip.len() {
                *s = clip[j as usize];
            }
        }
        Self {
            samples,
            first,
            pad,
        }
    }
}

/// What the timbre encoder reads of a crop: the features of the pitch-shifted crop (as in
/// training's first pass; the clean crop when the run does not shift) and the clean crop's
/// frame levels (the pooling weights).
pub(super) struct TimbreCrop {
    /// The timbre encoder's input features.
    pub shifted: FrameFeatures,
    /// The clean crop's frame energy, dB.
    pub clean_db: Vec<f32>,
}

/// Cuts and analyses a crop of `clip` for the timbre encoder only ([`TimbreCrop`]), with the
/// random pitch shift when the run has it.
pub(super) fn timbre_crop(
    clip: &[f32],
    tc: &TrainConfig,
    extractor: &mut FeatureExtractor,
    rng: &mut SplitMix64,
) -> TimbreCrop {
    let cfg = &tc.model;
    let t = tc.crop_frames;
    let Segment { samples, pad, .. } = Segment::cut(clip, tc, rng);
    let clean = extractor.frames(&samples, pad, t);
    let shifted = if tc.pitch_shift {
        let (mut s, _) = perturb::random_pitch_shift(&samples, cfg.sample_rate, rng);
        s.resize(samples.len(), 0.0);
        extractor.frames(&s, pad, t)
    } else {
        clean.clone()
    };
    TimbreCrop {
        shifted,
        clean_db: clean.frame_db,
    }
}

/// Cuts, perturbs and analyses a crop of `clip` chosen by `rng`. `pitch` gives the clip's
/// pitch track ([`clip_pitch`]) when the crop needs targets (perturbed, pitch ruler); it is
/// called at most once.
fn make_crop<'a>(
    clip: &[f32],
    pitch: impl FnOnce() -> &'a [f32],
    tc: &TrainConfig,
    extractor: &mut FeatureExtractor,
    rng: &mut SplitMix64,
    perturbed: bool,
) -> Crop {
    let cfg = &tc.model;
    let t = tc.crop_frames;
    let Segment {
        samples: seg,
        first,
        pad,
    } = Segment::cut(clip, tc, rng);
    let len = seg.len();
    let clean = extractor.frames(&seg, pad, t);
    if !perturbed {
        return Crop {
            shifted: clean.clone(),
            distorted: clean.clone(),
            clean,
            shift: 0.0,
            f0: Vec::new(),
        };
    }
    let f0 = if cfg.pitch_ruler() {
        crop_targets(pitch(), first, t)
    } else {
        Vec::new()
    };
    let (shifted, shift) = if tc.pitch_shift {
        let (mut s, semitones) = perturb::random_pitch_shift(&seg, cfg.sample_rate, rng);
        s.resize(len, 0.0);
        (extractor.frames(&s, pad, t), semitones)
    } else {
        (clean.clone(), 0.0)
    };
    let distorted = if tc.timbre_distortion {
        let mut d = seg.clone();
        perturb::distort(&mut d, cfg.sample_rate, rng);
        if tc.body_filter {
            perturb::Body::random(rng).apply(&mut d, cfg.sample_rate);
        }
        extractor.frames(&d, pad, t)
    } else {
        clean.clone()
    };
    Crop {
        clean,
        shifted,
        distorted,
        shift,
        f0,
    }
}

/// pYIN's pitch of `clip` in semitones from middle C, on every [`PITCH_TARGET_STRIDE`]th
/// frame (entry `i` is frame `i * PITCH_TARGET_STRIDE`, centred on sample
/// `i * PITCH_TARGET_STRIDE * hop`, the dataset's framing); NaN where pYIN finds no pitch, and
/// everywhere if it fails.
pub(super) fn clip_pitch(clip: &[f32], rate: u32, hop: usize) -> Vec<f32> {
    let step = hop * PITCH_TARGET_STRIDE;
    let entries = track_len(clip.len(), hop);
    let (low, high) = RULER_F0_RANGE_HZ;
    let Ok(track) = crate::transfer::track_pitch(clip, rate, step, low, high) else {
        return vec![f32::NAN; entries];
    };
    let middle_c_hz = crate::transfer::midi_to_hz(f64::from(MIDDLE_C));
    (0..entries)
        .map(|i| match (track.voiced.get(i), track.f0_hz.get(i)) {
            (Some(true), Some(&hz)) if hz.is_finite() && hz > 0.0 => {
                (12.0 * (hz / middle_c_hz).log2()) as f32
            }
            _ => f32::NAN,
        })
        .collect()
}

/// The pitch targets of the crop of `frames` frames from clip frame `first`: the clip's pitch
/// ([`clip_pitch`]) on the frames whose clip index is a multiple of [`PITCH_TARGET_STRIDE`],
/// NaN on the others and past the clip's end.
pub(super) fn crop_targets(track: &[f32], first: usize, frames: usize) -> Vec<f32> {
    (first..first + frames)
        .map(|k| match k % PITCH_TARGET_STRIDE {
            0 => track
                .get(k / PITCH_TARGET_STRIDE)
                .copied()
                .unwrap_or(f32::NAN),
            _ => f32::NAN,
        })
        .collect()
}

/// The pitch tracks of a clip set's clips, each computed the first time a crop needs it and
/// kept for the run (a clip's pitch does not depend on the crop, and pYIN over a whole clip
/// once costs less than over every crop of it).
pub(super) struct PitchCache {
    tracks: Vec<OnceLock<Vec<f32>>>,
}

impl PitchCache {
    /// An empty cache for `clips` clips.
    pub fn new(clips: usize) -> Self {
        Self {
            tracks: (0..clips).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Clip `index`'s track ([`clip_pitch`] of `audio` for `tc`'s model), computed on the
    /// first call.
    fn track(&self, index: usize, audio: &[f32], tc: &TrainConfig) -> &[f32] {
        self.tracks[index].get_or_init(|| clip_pitch(audio, tc.model.sample_rate, tc.model.hop))
    }

    /// How many tracks are known (computed or loaded).
    pub fn known(&self) -> usize {
        self.tracks.iter().filter(|t| t.get().is_some()).count()
    }

    /// Takes the tracks a [`Self::save`] left in `path` for `members` (cache index, key, the
    /// track's length for that clip: [`track_len`]); a track of another length is left to be
    /// computed. Returns how many were taken; a missing or unreadable file gives 0 (the tracks
    /// are then computed as usual).
    pub fn load(&self, path: &Path, members: &[(usize, String, usize)]) -> usize {
        let Ok(saved) = candle_core::safetensors::load(path, &candle_core::Device::Cpu) else {
            return 0;
        };
        let mut taken = 0;
        for (index, key, len) in members {
            let Some(track) = saved.get(key).and_then(|t| t.to_vec1::<f32>().ok()) else {
                continue;
            };
            if track.len() == *len && self.tracks[*index].set(track).is_ok() {
                taken += 1;
            }
        }
        taken
    }

    /// Writes the known tracks of `members` (cache index, key) to `path`, keeping the tracks
    /// the file already holds for other keys (a run on a subset of the clips does not shrink
    /// it), through a temporary file renamed over it, so a reader never sees half a file.
    /// Returns how many tracks of `members` were written.
    pub fn save(&self, path: &Path, members: &[(usize, String)]) -> Result<usize, String> {
        let mut tensors: HashMap<String, candle_core::Tensor> =
            candle_core::safetensors::load(path, &candle_core::Device::Cpu).unwrap_or_default();
        let mut written = 0;
        for (index, key) in members {
            if let Some(track) = self.tracks[*index].get() {
                let t =
                    candle_core::Tensor::from_slice(track, track.len(), &candle_core::Device::Cpu)
                        .map_err(|e| e.to_string())?;
                tensors.insert(key.clone(), t);
                written += 1;
            }
        }
        // One temporary name per process: two runs on the same folder never write one file.
        let tmp = path.with_extension(format!("partial-{}", std::process::id()));
        candle_core::safetensors::save(&tensors, &tmp).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, path).map_err(|e| e.to_string())?;
        Ok(written)
    }
}

/// Version of the pitch targets' definition (pYIN's settings, the stride): part of the cache
/// file's name, so a change of either makes runs measure again instead of reading stale
/// tracks.
const PITCH_CACHE_VERSION: u32 = 1;

/// Where a dataset folder keeps the pitch tracks of its clips for `tc`'s model rate and hop
/// (written by training after the epoch that measured them; runs that read the folder later
/// take them instead of running pYIN again).
pub(super) fn pitch_cache_file(folder: &Path, tc: &TrainConfig) -> PathBuf {
    folder.join(format!(
        "pitch-targets-v{PITCH_CACHE_VERSION}-{}hz-hop{}.safetensors",
        tc.model.sample_rate, tc.model.hop
    ))
}

/// The length of [`clip_pitch`]'s track for a clip of `samples` samples at hop `hop`.
pub(super) fn track_len(samples: usize, hop: usize) -> usize {
    (samples / hop) / PITCH_TARGET_STRIDE + 1
}

/// `make(extractor, rng, pick)` for every pick `(item, seed)`, on two threads, each with its
/// own feature extractor for `tc`'s model and an rng seeded by the pick; order follows `picks`.
pub(super) fn crops_on_two_threads<C: Send>(
    picks: &[(usize, u64)],
    tc: &TrainConfig,
    make: impl Fn(&mut FeatureExtractor, &mut SplitMix64, usize) -> C + Sync,
) -> Vec<C> {
    let threads = 2.min(picks.len()).max(1);
    let chunk = picks.len().div_ceil(threads);
    let make = &make;
    std::thread::scope(|scope| {
        let handles: Vec<_> = picks
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut ex = FeatureExtractor::new(&tc.model.stft(), tc.model.mag_floor);
                    part.iter()
                        .map(|&(item, seed)| make(&mut ex, &mut SplitMix64::new(seed), item))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("crop worker panicked"))
            .collect()
    })
}

/// Crops of `picks` (`(clip, seed)`), made on two threads; order follows `picks`. Perturbed
/// crops of a model with a pitch ruler take their targets from `pitch` (the set's cache).
pub(super) fn make_crops(
    clips: &ClipSet,
    picks: &[(usize, u64)],
    tc: &TrainConfig,
    perturbed: bool,
    pitch: &PitchCache,
) -> Vec<Crop> {
    crops_on_two_threads(picks, tc, |ex, rng, clip| {
        let audio = &clips.audio[clip];
        make_crop(
            audio,
            || pitch.track(clip, audio, tc),
            tc,
            ex,
            rng,
            perturbed,
        )
    })
}

/// Runs `body` with a source of `make(job)` for every job in `jobs`, in order, each made on
/// another thread while `body` works on the one before (one ahead, so at most two are alive).
/// The source answers `None` once the jobs are done (or if `make` panicked; the panic is then
/// raised again when `body` returns).
pub(super) fn one_ahead<J: Send, T: Send, R>(
    jobs: Vec<J>,
    make: impl Fn(J) -> T + Sync,
    body: impl FnOnce(&mut dyn FnMut() -> Option<T>) -> R,
) -> R {
    let make = &make;
    std::thread::scope(|scope| {
        // Capacity 0: the maker hands each item over and only then starts the next.
        let (tx, rx) = sync_channel(0);
        scope.spawn(move || {
            for job in jobs {
                if tx.send(make(job)).is_err() {
                    // `body` returned early.
                    break;
                }
            }
        });
        let result = body(&mut || rx.recv().ok());
        // A maker blocked handing over an item it made after `body` stopped asking gets an
        // error and ends, so the scope can join it.
        drop(rx);
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The targets are the clip's own pitch: a 440 Hz tone (A4, 9 semitones above middle C)
    /// after 30 frames of silence reads 9 on every fourth frame inside the tone and nothing in
    /// the silence; a crop reads the same values on the frames of the clip it covers whose
    /// clip index is a multiple of four, whatever frame it starts on.
    #[test]
    fn pitch_targets_are_the_clips_pitch_on_every_fourth_frame_in_semitones_from_middle_c() {
        let (rate, hop) = (32_000u32, 160usize);
        let tone = crate::perturb::probes::harmonic_tone(440.0, 6, 1.0, rate);
        let mut clip = vec![0.0f32; 30 * hop];
        clip.extend(&tone);
        let frames = clip.len() / hop + 1;
        let track = clip_pitch(&clip, rate, hop);
        assert_eq!(track.len(), (frames - 1) / PITCH_TARGET_STRIDE + 1);
        for (i, v) in track.iter().enumerate() {
            let frame = i * PITCH_TARGET_STRIDE;
            if frame < 20 {
                assert!(v.is_nan(), "frame {frame} reads {v}");
            } else if frame > 40 && frame + 10 < frames {
                assert!((v - 9.0).abs() < 0.3, "frame {frame} reads {v}");
            }
        }
        for first in [0, 1, 2, 3, 37] {
            let crop = crop_targets(&track, first, 60);
            assert_eq!(crop.len(), 60);
            for (j, v) in crop.iter().enumerate() {
                let k = first + j;
                if k % PITCH_TARGET_STRIDE != 0 || k >= frames {
                    assert!(v.is_nan(), "crop from {first}, frame {j} reads {v}");
                } else {
                    let want = track[k / PITCH_TARGET_STRIDE];
                    assert!(
                        v.to_bits() == want.to_bits(),
                        "crop from {first}, frame {j}: {v} against {want}"
                    );
                }
            }
        }
    }

    /// Saved tracks come back bit for bit, only for the clips asked for and only at the
    /// length their clip implies; a missing file loads nothing.
    #[test]
    fn saved_pitch_tracks_load_bit_for_bit_and_only_where_they_fit() {
        let (rate, hop) = (32_000u32, 160usize);
        let tc = TrainConfig::default();
        let clips: Vec<Vec<f32>> = [220.0, 330.0]
            .iter()
            .map(|&hz| crate::perturb::probes::harmonic_tone(hz, 5, 0.5, rate))
            .collect();
        let cache = PitchCache::new(2);
        for (i, c) in clips.iter().enumerate() {
            cache.track(i, c, &tc);
        }
        let dir =
            std::env::temp_dir().join(format!("timbreswap-pitch-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tracks.safetensors");
        let keys = [(0, "a.wav".to_string()), (1, "b.wav".to_string())];
        assert_eq!(cache.save(&path, &keys), Ok(2));

        let len = |c: &Vec<f32>| track_len(c.len(), hop);
        let back = PitchCache::new(3);
        let members = vec![
            (0, "a.wav".to_string(), len(&clips[0])),
            // Another length than saved: measured again, not taken.
            (1, "b.wav".to_string(), len(&clips[1]) + 1),
            (2, "missing.wav".to_string(), 10),
        ];
        assert_eq!(back.load(&path, &members), 1);
        assert_eq!(back.known(), 1);
        let (want, got) = (
            cache.tracks[0].get().unwrap(),
            back.tracks[0].get().unwrap(),
        );
        assert_eq!(want.len(), got.len());
        assert!(want
            .iter()
            .zip(got)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(want.iter().any(|v| v.is_finite()));
        assert_eq!(
            PitchCache::new(1).load(&dir.join("none.safetensors"), &members[..1]),
            0
        );

        // A later save of other clips keeps the tracks already in the file.
        let other = PitchCache::new(1);
        other.track(0, &clips[1], &tc);
        assert_eq!(other.save(&path, &[(0, "c.wav".to_string())]), Ok(1));
        let all = PitchCache::new(2);
        let members = [
            (0, "a.wav".to_string(), len(&clips[0])),
            (1, "c.wav".to_string(), len(&clips[1])),
        ];
        assert_eq!(all.load(&path, &members), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `one_ahead` hands over every job's result in order, makes them on another thread, and
    /// stops cleanly when the body stops asking early.
    #[test]
    fn one_ahead_yields_every_result_in_order_and_stops_when_asked() {
        let main = std::thread::current().id();
        let got = one_ahead(
            (0..20).collect(),
            |j: u64| (j * j, std::thread::current().id()),
            |next| std::iter::from_fn(next).collect::<Vec<_>>(),
        );
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            (0..20).map(|j| j * j).collect::<Vec<_>>()
        );
        assert!(got.iter().all(|g| g.1 != main));
        // The body takes three of a thousand and returns; the maker must end too.
        let first = one_ahead(
            (0..1000).collect(),
            |j: u32| j,
            |next| [next(), next(), next()],
        );
        assert_eq!(first, [Some(0), Some(1), Some(2)]);
    }
}
