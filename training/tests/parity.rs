//! The engine runs the model without candle: its frame-by-frame network must match candle's
//! whole-sequence forward of the same weights (the shipped default model, tiny random
//! two-factor and binary-code ones, with and without a pitch ruler), on random inputs and on a
//! real clip, without allocating in any step, and it must expect exactly the weights candle
//! registers.

mod common;

use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use nice_assert_no_alloc::{assert_no_alloc, violation_count, AllocDisabler};
use timbreswap_engine::features::FeatureExtractor;
use timbreswap_engine::kernels::Kernels;
use timbreswap_engine::model_file;
use timbreswap_engine::network::{Network, StepInput};
use timbreswap_training::model::file;
use timbreswap_training::model::{Config, FeatureStats, ThreeFactor};
use timbreswap_training::rng::SplitMix64;
use timbreswap_training::train::initial_model;

#[global_allocator]
static ALLOC: AllocDisabler = AllocDisabler;

/// The parity bound of the neural-mode issue, on the normalised log-magnitude and the latents.
const TOLERANCE: f32 = 1e-4;

fn default_model() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models/default.safetensors")
}

fn example(name: &str) -> Vec<f32> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/examples")
        .join(name);
    let audio = timbreswap_engine::clip::decode_file(&path, 60.0).unwrap();
    assert_eq!(audio.sample_rate, 32_000);
    audio.mono()
}

/// Rows of a `(1, frames, n)` tensor.
fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.squeeze(0).unwrap().to_vec2::<f32>().unwrap()
}

/// Runs the engine network frame by frame and candle on the whole sequence with the same
/// inputs `(1, frames, bins)` each and the same `z_t`s; returns the largest absolute
/// difference of the decoded log-magnitude, `z_v` and `z_p`, and the output's largest value.
fn compare(
    net: &Network,
    model: &ThreeFactor,
    tv: &Tensor,
    p: &Tensor,
    z_enc: &[f32],
    z_dec: &[f32],
) -> (f32, f32) {
    let dev = Device::Cpu;
    let z = z_enc.len();
    let enc = Tensor::from_slice(z_enc, (1, z), &dev).unwrap();
    let dec = Tensor::from_slice(z_dec, (1, z), &dev).unwrap();
    let local = model.encode_local(tv, p, &enc).unwrap();
    let y = model
        .decode(
            &dec,
            local.variation.as_ref().map(|v| &v.mean),
            &local.pitch.mean,
        )
        .unwrap();
    let (y, zp) = (rows(&y), rows(&local.pitch.mean));
    let zv = local.variation.as_ref().map(|v| rows(&v.mean));
    let (tv, p) = (rows(tv), rows(p));
    let mut state = net.state();
    let mut out = vec![0.0f32; y[0].len()];
    let (mut worst, mut peak) = (0.0f32, 0.0f32);
    let allocations = violation_count();
    for t in 0..y.len() {
        assert_no_alloc(|| {
            net.step(
                &mut state,
                &StepInput {
                    envelope: &tv[t],
                    fine: &p[t],
                    z_t_encode: z_enc,
                    z_t_decode: z_dec,
                    variation: 1.0,
                },
                &mut out,
            )
        });
        assert_eq!(
            violation_count(),
            allocations,
            "the engine's step allocated"
        );
        let mut diff = |a: &[f32], b: &[f32]| {
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(b) {
                worst = worst.max((x - y).abs());
                peak = peak.max(y.abs());
            }
        };
        diff(&out, &y[t]);
        diff(state.z_p(), &zp[t]);
        if let Some(zv) = &zv {
            diff(state.z_v(), &zv[t]);
        }
    }
    (worst, peak)
}

fn random(frames: usize, bins: usize, seed: u64) -> Tensor {
    let mut rng = SplitMix64::new(seed);
    let v: Vec<f32> = (0..frames * bins)
        .map(|_| rng.range(-3.0, 3.0) as f32)
        .collect();
    Tensor::from_vec(v, (1, frames, bins), &Device::Cpu).unwrap()
}

#[test]
fn engine_network_matches_candle_on_the_default_model() {
    let path = default_model();
    let candle = file::load(&path).unwrap();
    let engine_file = model_file::load(&path).unwrap();
    let cfg = candle.model.config().clone();
    let bins = cfg.bins();
    let mut rng = SplitMix64::new(5);
    let z_enc: Vec<f32> = (0..cfg.z_t).map(|_| rng.range(-1.0, 1.0) as f32).collect();
    let z_dec = candle.map.instrument_z_t(3).unwrap().to_vec();
    for isa in Kernels::available() {
        let net = Network::new(&engine_file, "default", Kernels::for_isa(isa).unwrap()).unwrap();
        // Random inputs: 120 frames, well past the 16-frame receptive field.
        let (worst, peak) = compare(
            &net,
            &candle.model,
            &random(120, bins, 1),
            &random(120, bins, 2),
            &z_enc,
            &z_dec,
        );
        println!(
            "{isa}: random inputs, max |engine - candle| = {worst:.2e} (outputs up to {peak:.1})"
        );
        assert!(worst <= TOLERANCE, "{isa}: {worst}");
    }

    // A real clip: its own features and timbre, decoded with another instrument's timbre.
    let audio = example("input-flute.wav");
    let net = Arc::new(Network::new(&engine_file, "default", Kernels::best()).unwrap());
    let own_candle = candle.model.clip_timbre(&audio).unwrap();
    let own_engine = net.clip_timbre(&audio);
    let timbre_diff = own_candle
        .iter()
        .zip(&own_engine)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("clip timbre: max |engine - candle| = {timbre_diff:.2e}");
    assert!(
        timbre_diff <= TOLERANCE,
        "clip timbre differs by {timbre_diff}"
    );

    let features = FeatureExtractor::new(&cfg.stft(), cfg.mag_floor).clip(&audio);
    let (tv, p) = candle.model.clip_inputs(&features).unwrap();
    let (worst, peak) = compare(&net, &candle.model, &tv, &p, &own_candle, &z_dec);
    println!(
        "{}: flute clip ({} frames), max |engine - candle| = {worst:.2e} (outputs up to {peak:.1})",
        net.kernels().isa(),
        features.frames
    );
    assert!(worst <= TOLERANCE, "clip: {worst}");
}

#[test]
fn engine_network_matches_candle_on_a_tiny_two_factor_model() {
    let cfg = Config {
        z_t: 6,
        z_p: 4,
        hidden: 16,
        kernel: 3,
        dilations: vec![1, 3],
        timbre_layers: 1,
        variation: false,
        cepstrum: false,
        ..Config::default()
    };
    let bins = cfg.bins();
    let mut stats = FeatureStats::identity(bins);
    stats.log_mag_mean = (0..bins).map(|k| -(k as f32) / 50.0).collect();
    stats.scale = [2.0, 1.5, 0.5];
    let (varmap, model) = initial_model(&cfg, &stats, 4).unwrap();
    let (dir, path) = common::save_tiny(&cfg, &varmap, "parity-tiny");
    let net = Network::new(&model_file::load(&path).unwrap(), "tiny", Kernels::best()).unwrap();
    let z: Vec<f32> = (0..cfg.z_t).map(|i| i as f32 * 0.3 - 0.7).collect();
    let x = random(40, bins, 7);
    let (worst, _) = compare(&net, &model, &x, &x, &z, &z);
    assert!(worst <= TOLERANCE, "{worst}");
    // Without the cepstral split both encoders see the normalised log-magnitude.
    let log_mag: Vec<f32> = (0..bins).map(|k| (k as f32 * 0.1).sin()).collect();
    let (mut env, mut fine) = (vec![9.0f32; bins], vec![9.0f32; bins]);
    net.normalise(&log_mag, &mut env, &mut fine);
    for k in 0..bins {
        let expected = (log_mag[k] + k as f32 / 50.0) / 2.0;
        assert!((env[k] - expected).abs() < 1e-6 && fine[k] == env[k]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A binary pitch code: the engine takes the sign of the pitch head as candle does, so the
/// codes (+-1) and the decoded frames match; every code value is exactly +-1, except a pitch
/// ruler's (the first value, the classifier's expected note), which both compute alike.
#[test]
fn engine_network_matches_candle_on_a_tiny_binary_pitch_model() {
    for ruler in [false, true] {
        let cfg = Config {
            z_t: 6,
            z_v: 5,
            z_p: 8,
            hidden: 16,
            kernel: 2,
            dilations: vec![1, 2],
            timbre_layers: 1,
            pitch_binary: true,
            pitch_bins: if ruler { 12 } else { 0 },
            ..Config::default()
        };
        let bins = cfg.bins();
        let stats = FeatureStats::identity(bins);
        let (varmap, model) = initial_model(&cfg, &stats, 6).unwrap();
        let (dir, path) = common::save_tiny(&cfg, &varmap, "parity-binary");
        let loaded = model_file::load(&path).unwrap();
        assert!(loaded.config.pitch_binary);
        assert_eq!(loaded.config.pitch_ruler(), ruler);
        let net = Network::new(&loaded, "binary", Kernels::best()).unwrap();
        let z: Vec<f32> = (0..cfg.z_t).map(|i| i as f32 * 0.3 - 0.7).collect();
        let (tv, p) = (random(40, bins, 8), random(40, bins, 9));
        let codes = rows(&model.encode_pitch(&p).unwrap().mean);
        let first = usize::from(ruler);
        assert!(codes
            .iter()
            .flat_map(|c| &c[first..])
            .all(|&v| v == 1.0 || v == -1.0));
        let positive = codes
            .iter()
            .flat_map(|c| &c[first..])
            .filter(|&&v| v > 0.0)
            .count();
        assert!(
            positive > 0 && positive < 40 * (cfg.z_p - first),
            "a constant code"
        );
        if ruler {
            assert!(
                codes.iter().any(|c| c[0].abs() != 1.0),
                "the ruler is signed too"
            );
        }
        let (worst, _) = compare(&net, &model, &tv, &p, &z, &z);
        assert!(worst <= TOLERANCE, "ruler {ruler}: {worst}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn engine_expects_exactly_the_weights_candle_registers() {
    for cfg in [
        Config::default(),
        Config {
            variation: false,
            kernel: 3,
            dilations: vec![2, 5],
            timbre_layers: 0,
            ..Config::default()
        },
        Config {
            pitch_bins: 84,
            ..Config::default()
        },
    ] {
        let candle = file::registered_weights(&cfg).unwrap();
        let engine: std::collections::BTreeMap<String, Vec<usize>> =
            cfg.weight_shapes().into_iter().collect();
        assert_eq!(engine, candle);
    }
}
