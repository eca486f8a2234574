//! The timbre encoder's harmonic input (`timbre_harmonics`): the levels are the log-magnitude
//! at multiples of the ruler's pitch (checked against a scalar reading of the same frames), a
//! model started from a file without them computes that file's timbre, and the engine's
//! `z_t` of a clip is candle's.

mod common;

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use nice_assert_no_alloc::{assert_no_alloc, violation_count, AllocDisabler};
use realfft::num_complex::Complex32;
use timbreswap_engine::kernels::Kernels;
use timbreswap_engine::model_file;
use timbreswap_engine::network::Network;
use timbreswap_engine::neural::NeuralProcessor;
use timbreswap_engine::processor::{FrameParams, SwapMode};
use timbreswap_training::model::file;
use timbreswap_training::model::{Config, FeatureStats, HARMONIC_FLOOR, MIDDLE_C};
use timbreswap_training::rng::SplitMix64;
use timbreswap_training::train::{initial_model, start_from};

#[global_allocator]
static ALLOC: AllocDisabler = AllocDisabler;

/// A tiny model with a pitch ruler (which the harmonic input needs).
fn tiny_config(timbre_harmonics: usize) -> Config {
    Config {
        z_t: 6,
        z_v: 5,
        z_p: 4,
        hidden: 16,
        kernel: 2,
        dilations: vec![1, 2],
        timbre_layers: 1,
        pitch_binary: true,
        pitch_bins: 84,
        pitch_ruler_scale: 2.0,
        timbre_harmonics,
        ..Config::default()
    }
}

fn random(shape: &[usize], spread: f64, seed: u64) -> Tensor {
    let mut rng = SplitMix64::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.range(-spread, spread) as f32).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// A freshly initialised model of `cfg` (weights seeded by `seed`) saved under a scratch
/// folder named `name`; returns the file.
fn save(cfg: &Config, seed: u64, name: &str) -> std::path::PathBuf {
    let (varmap, _) = initial_model(cfg, &FeatureStats::identity(cfg.bins()), seed).unwrap();
    common::save_tiny(cfg, &varmap, name).1
}

#[test]
fn harmonic_levels_are_the_log_magnitude_at_multiples_of_the_ruler_pitch() {
    // 64 harmonics of a ruler near its middle note pass Nyquist: both paths are covered.
    let cfg = tiny_config(64);
    let stats = FeatureStats {
        log_mag_mean: (0..cfg.bins()).map(|k| -0.01 * k as f32).collect(),
        envelope_mean: (0..cfg.bins()).map(|k| 0.3 - 0.002 * k as f32).collect(),
        fine_mean: vec![0.1; cfg.bins()],
        scale: [1.7, 1.3, 0.8],
    };
    let (_, model) = initial_model(&cfg, &stats, 3).unwrap();
    let (frames, bins) = (7, cfg.bins());
    // Wide enough that some harmonics fall below the floor.
    let tv = random(&[2, frames, bins], 4.0, 21);
    let p = random(&[2, frames, bins], 4.0, 22);
    let got = model.harmonic_levels(&tv, &p).unwrap();
    assert_eq!(got.dims(), &[2, frames, cfg.timbre_harmonics]);
    let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();

    let ruler = model.encode_pitch(&p).unwrap().mean;
    let ruler = ruler.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let tv = tv.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let p = p.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (mut inside_seen, mut outside_seen, mut floored_seen) = (0, 0, 0);
    for row in 0..2 * frames {
        // The natural-log magnitude the normalised envelope and fine structure stand for.
        let log_mag: Vec<f64> = (0..bins)
            .map(|k| {
                let i = row * bins + k;
                (tv[i] as f64 * 1.3 + stats.envelope_mean[k] as f64)
                    + (p[i] as f64 * 0.8 + stats.fine_mean[k] as f64)
            })
            .collect();
        let note = ruler[row * cfg.z_p] as f64 / 2.0 + MIDDLE_C as f64;
        let f0 = 440.0 * 2f64.powf((note - 69.0) / 12.0);
        let levels: Vec<Option<f64>> = (1..=cfg.timbre_harmonics)
            .map(|h| {
                let position = h as f64 * f0 * cfg.n_fft as f64 / cfg.sample_rate as f64;
                (position <= (bins - 1) as f64).then(|| {
                    let lo = position.floor() as usize;
                    let frac = position - lo as f64;
                    let hi = (lo + 1).min(bins - 1);
                    log_mag[lo] * (1.0 - frac) + log_mag[hi] * frac
                })
            })
            .collect();
        let strongest = levels.iter().flatten().fold(f64::MIN, |a, &b| a.max(b));
        for (h, level) in levels.iter().enumerate() {
            let expected = match level {
                Some(l) => {
                    inside_seen += 1;
                    let r = (l - strongest).max(HARMONIC_FLOOR as f64);
                    floored_seen += usize::from(r == HARMONIC_FLOOR as f64);
                    r
                }
                None => {
                    outside_seen += 1;
                    HARMONIC_FLOOR as f64
                }
            } / 1.7;
            let g = got[row * cfg.timbre_harmonics + h] as f64;
            // The model finds the position in f32 (about 1e-4 bins off at the 64th harmonic),
            // and these random spectra change by up to 16 nepers per bin.
            assert!(
                (g - expected).abs() < 2e-3,
                "frame {row} harmonic {}: {g} against {expected}",
                h + 1
            );
        }
    }
    assert!(inside_seen > 0 && outside_seen > 0 && floored_seen > 0);
}

#[test]
fn a_model_started_from_a_file_without_harmonics_computes_that_files_timbre() {
    let plain = tiny_config(0);
    let path = save(&plain, 9, "harmonics-plain");
    let (_, before) = start_from(&plain, &path).unwrap();
    let (_, after) = start_from(&tiny_config(12), &path).unwrap();
    let frames = 9;
    let tv = random(&[2, frames, plain.bins()], 2.0, 31);
    let p = random(&[2, frames, plain.bins()], 2.0, 32);
    let weights =
        (Tensor::ones((2, frames), DType::F32, &Device::Cpu).unwrap() / frames as f64).unwrap();
    let a = before.encode_timbre(&tv, &p, &weights).unwrap().mean;
    let b = after.encode_timbre(&tv, &p, &weights).unwrap().mean;
    let diff = common::max_abs_diff(&a, &b);
    assert!(diff < 1e-5, "z_t moved by {diff}");
    // A file with harmonics does not start a model without them.
    let with = save(&tiny_config(12), 9, "harmonics-with");
    assert!(start_from(&plain, &with).is_err());
}

#[test]
fn the_engine_reads_a_harmonic_model_as_candle_does() {
    let cfg = tiny_config(16);
    let path = save(&cfg, 4, "harmonics-engine");
    let candle = file::load(&path).unwrap();
    // 7 s of a tone gliding over an octave with vibrato: more frames than one chunk of the
    // engine's pass (1024), so a chunk reads the pitch stack's look-back before it.
    let rate = cfg.sample_rate as f32;
    let mut phase = 0.0f32;
    let audio: Vec<f32> = (0..7 * cfg.sample_rate as usize)
        .map(|i| {
            let t = i as f32 / rate;
            let f0 =
                220.0 * 2f32.powf(t / 7.0) * (1.0 + 0.01 * (6.0 * std::f32::consts::TAU * t).sin());
            phase += std::f32::consts::TAU * f0 / rate;
            (1..8)
                .map(|h| (h as f32 * phase).sin() / h as f32)
                .sum::<f32>()
                * 0.2
        })
        .collect();
    let expected = candle.model.clip_timbre(&audio).unwrap();
    for isa in Kernels::available() {
        let kernels = Kernels::for_isa(isa).unwrap();
        let net = Network::new(&model_file::load(&path).unwrap(), "harmonics", kernels).unwrap();
        let got = net.clip_timbre(&audio);
        let worst = expected
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let peak = expected.iter().fold(0.0f32, |a, b| a.max(b.abs()));
        assert!(
            worst <= 1e-4 * peak.max(1.0),
            "{isa}: z_t differs by {worst} (peak {peak})"
        );
    }
}

#[test]
fn the_live_path_of_a_harmonic_model_is_allocation_free_and_bounded() {
    let cfg = tiny_config(16);
    let path = save(&cfg, 5, "harmonics-live");
    let net = Arc::new(
        Network::new(
            &model_file::load(&path).unwrap(),
            "harmonics",
            Kernels::best(),
        )
        .unwrap(),
    );
    let reference: Vec<f32> = (0..cfg.sample_rate as usize)
        .map(|i| (i as f32 * 0.05).sin() * 0.3)
        .collect();
    let z_t = net.clip_timbre(&reference).into_boxed_slice();
    let mut processor = NeuralProcessor::new(net, Some(z_t), None);
    let bins = cfg.bins();
    let mut out = vec![Complex32::default(); bins];
    let allocations = violation_count();
    for (frame, transpose) in (0..300).zip([0.0f32, 7.0, -12.0, f32::NAN].into_iter().cycle()) {
        // A harmonic spectrum whose fundamental glides, at a changing transposition.
        let f0_bin = 2.0 + (frame % 50) as f32 * 0.3;
        let input: Vec<Complex32> = (0..bins)
            .map(|k| {
                let near = (k as f32 / f0_bin).fract();
                let peak = (-(near.min(1.0 - near) * 20.0).powi(2)).exp();
                Complex32::new(40.0 * peak + 0.01, 0.0)
            })
            .collect();
        let params = FrameParams {
            mode: SwapMode::Neural,
            transpose,
            ..FrameParams::default()
        };
        assert_no_alloc(|| processor.process(&input, &params, &mut out));
        assert!(out.iter().all(|c| c.re.is_finite() && c.im.is_finite()));
    }
    assert_eq!(violation_count(), allocations, "the neural path allocated");
}
