//! Everything a reference file gives the plugin, analysed on two threads: the clip (decoded,
//! checked, mono at the engine rate) with its classic descriptor, the neural timbre latent, and
//! the Exemplar analysis. Not realtime-safe (file I/O, allocation, a thread).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::clip::{descriptor_from_mono, reference_samples, ReferenceClip};
use crate::config::StftConfig;
use crate::error::ClipError;
use crate::exemplar::{sure_pitches, ExemplarBank, Yin, MAX_BANK_SECONDS};
use crate::features::FeatureExtractor;
use crate::network::{at_training_level, Network};
use crate::resampler::resample_all;
use crate::timbre::TimbreDescriptor;

/// A reference file's analyses.
#[derive(Debug, Clone)]
pub struct ReferenceAnalysis {
    /// The clip and its classic descriptor (its `latent` is not set here).
    pub clip: ReferenceClip,
    /// The timbre latent `z_t` measured with the network given (`None` without one).
    pub z_t: Option<Vec<f32>>,
    /// The analysis for Exemplar mode (`None` when no frame of the clip sounds, or when it
    /// could not be made).
    pub bank: Option<ExemplarBank>,
}

/// Decodes and checks the reference at `path`, then analyses it at `cfg`'s rate for every
/// mode on two threads: the classic descriptor, with `net` the timbre latent (the audio
/// resampled to `net`'s rate where it differs), and the Exemplar analysis. Where the model
/// reads the clip at the Exemplar analysis's framing (the built-in model does), both read one
/// analysis of it. If the system refuses the second thread, everything runs on this one.
/// Errors are the clip's (unreadable, unsupported, silent, ...).
pub fn analyse_reference_file(
    path: &Path,
    cfg: &StftConfig,
    net: Option<&Network>,
) -> Result<ReferenceAnalysis, ClipError> {
    let (samples, truncated) = reference_samples(path, cfg.sample_rate)?;
    let shares_features = net.is_some_and(|net| {
        net.stft() == *cfg && net.config().mag_floor == crate::exemplar::MAG_FLOOR
    }) && samples.len() <= MAX_BANK_SECONDS * cfg.sample_rate as usize;
    let (descriptor, z_t, bank) = if shares_features {
        analyse_shared(path, &samples, cfg, net)
    } else {
        analyse_apart(path, &samples, cfg, net)
    };
    Ok(ReferenceAnalysis {
        clip: ReferenceClip {
            descriptor: descriptor?,
            samples,
            truncated,
        },
        z_t,
        bank,
    })
}

/// What [`analyse_reference_file`] computes from the clip's samples.
type Analyses = (
    Result<TimbreDescriptor, ClipError>,
    Option<Vec<f32>>,
    Option<ExemplarBank>,
);

/// Frames of YIN each thread takes at a time in [`analyse_shared`].
const YIN_CHUNK_FRAMES: usize = 64;

/// The analyses when `net` reads the clip as the Exemplar analysis does: the features once,
/// without their envelopes (then `z_t`, which makes the envelopes of the frames it pools), on
/// this thread while the other makes the descriptor; then both take YIN's
/// frames, [`YIN_CHUNK_FRAMES`] at a time, until none is left; then the bank (its partials on
/// two threads). The same values as [`analyse_apart`], bit for bit.
fn analyse_shared(
    path: &Path,
    samples: &[f32],
    cfg: &StftConfig,
    net: Option<&Network>,
) -> Analyses {
    let level = at_training_level(samples);
    let level = &level[..];
    let frames = level.len() / cfg.hop + 1;
    let chunks = frames.div_ceil(YIN_CHUNK_FRAMES);
    let next = AtomicUsize::new(0);
    let take_yin_chunks = || {
        let (mut done, mut yin) = (Vec::new(), Yin::new());
        loop {
            let chunk = next.fetch_add(1, Ordering::Relaxed);
            if chunk >= chunks {
                return done;
            }
            let range = chunk * YIN_CHUNK_FRAMES..((chunk + 1) * YIN_CHUNK_FRAMES).min(frames);
            done.push((chunk, sure_pitches(&mut yin, cfg, level, range)));
        }
    };
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("timbreswap-reference-analysis".into())
            .spawn_scoped(scope, || {
                let descriptor = descriptor_from_mono(path, samples, cfg);
                (descriptor, exemplar_part(take_yin_chunks))
            });
        let features = FeatureExtractor::new(cfg, crate::exemplar::MAG_FLOOR)
            .without_envelope()
            .clip(level);
        let z_t = net.and_then(|net| net.clip_timbre_of(&features));
        let mut sure = exemplar_part(take_yin_chunks);
        let descriptor = match helper.map(|thread| thread.join()) {
            Ok(Ok((descriptor, theirs))) => {
                sure = sure.zip(theirs).map(|(mut mine, theirs)| {
                    mine.extend(theirs);
                    mine
                });
                descriptor
            }
            // No second thread (every chunk is this thread's), or it panicked (its chunks
            // are lost): the rest here.
            _ => {
                sure = sure.and_then(|mut sure| {
                    let mut done = vec![false; chunks];
                    sure.iter().for_each(|(chunk, _)| done[*chunk] = true);
                    let rest = exemplar_part(|| {
                        let mut yin = Yin::new();
                        (0..chunks)
                            .filter(|c| !done[*c])
                            .map(|chunk| {
                                let range = chunk * YIN_CHUNK_FRAMES
                                    ..((chunk + 1) * YIN_CHUNK_FRAMES).min(frames);
                                (chunk, sure_pitches(&mut yin, cfg, level, range))
                            })
                            .collect::<Vec<_>>()
                    })?;
                    sure.extend(rest);
                    Some(sure)
                });
                descriptor_from_mono(path, samples, cfg)
            }
        };
        let bank = sure.filter(|_| descriptor.is_ok()).and_then(|mut sure| {
            sure.sort_by_key(|(chunk, _)| *chunk);
            let sure: Vec<Option<f32>> = sure.into_iter().flat_map(|(_, s)| s).collect();
            exemplar_part(|| ExemplarBank::from_parts(cfg, level, features, &sure)).flatten()
        });
        (descriptor, z_t, bank)
    })
}

/// A step of the Exemplar analysis, `None` if it panics: a panic there leaves the clip without
/// Exemplar mode (it plays Classic there), not the whole load failed.
fn exemplar_part<T>(step: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(step)).ok()
}

/// The analyses each on its own: the Exemplar analysis on a second thread while this one
/// makes the descriptor and `z_t`.
fn analyse_apart(
    path: &Path,
    samples: &[f32],
    cfg: &StftConfig,
    net: Option<&Network>,
) -> Analyses {
    std::thread::scope(|scope| {
        let exemplar = std::thread::Builder::new()
            .name("timbreswap-exemplar-analysis".into())
            .spawn_scoped(scope, || ExemplarBank::new(cfg, samples));
        let descriptor = descriptor_from_mono(path, samples, cfg);
        let z_t = match (&descriptor, net) {
            (Ok(_), Some(net)) => Some(net.clip_timbre(&at_model_rate(samples, cfg, net))),
            _ => None,
        };
        let bank = match exemplar {
            // A panic in the analysis leaves the clip without Exemplar mode (it plays
            // Classic there), not the whole load failed.
            Ok(thread) => thread.join().unwrap_or(None),
            Err(_) => ExemplarBank::new(cfg, samples),
        };
        (descriptor, z_t, bank)
    })
}

/// `samples` (at `cfg`'s rate) at `net`'s rate: the audio its timbre encoder reads.
/// Allocates.
pub fn at_model_rate(samples: &[f32], cfg: &StftConfig, net: &Network) -> Vec<f32> {
    let model_rate = net.stft().sample_rate;
    if cfg.sample_rate == model_rate {
        samples.to_vec()
    } else {
        resample_all(samples, cfg.sample_rate, model_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clip::load_reference_clip;
    use crate::kernels::Kernels;
    use crate::model_file;

    /// The two-thread analysis gives exactly what the one-thread steps give, and a file that
    /// cannot be read is the clip's error.
    #[test]
    fn two_threads_give_what_one_thread_gives() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let file = model_file::load(&root.join("assets/models/default.safetensors")).unwrap();
        let net = Network::new(&file, "default", Kernels::best()).unwrap();
        let cfg = StftConfig::default();
        let path = root.join("assets/examples/ref-trumpet.wav");
        let got = analyse_reference_file(&path, &cfg, Some(&net)).unwrap();

        let clip = load_reference_clip(&path, &cfg).unwrap();
        assert_eq!(got.clip.descriptor, clip.descriptor);
        assert_eq!(got.clip.samples, clip.samples);
        assert_eq!(got.clip.truncated, clip.truncated);
        let z_t = net.clip_timbre(&at_model_rate(&clip.samples, &cfg, &net));
        assert_eq!(got.z_t, Some(z_t));
        let bank = ExemplarBank::new(&cfg, &clip.samples).expect("the trumpet sounds");
        let got_bank = got.bank.expect("an Exemplar analysis");
        assert_eq!(format!("{got_bank:?}"), format!("{bank:?}"));

        let without_model = analyse_reference_file(&path, &cfg, None).unwrap();
        assert_eq!(without_model.z_t, None);
        let missing = root.join("assets/examples/no-such-clip.wav");
        assert!(matches!(
            analyse_reference_file(&missing, &cfg, Some(&net)),
            Err(e) if e.to_string() == load_reference_clip(&missing, &cfg).unwrap_err().to_string()
        ));
    }
}
