//! f16 weights in the shipped network: the f16 kernels compute what the f32 kernels compute
//! on the same (f16-rounded) weights, a network with f16 weights stays close to one with the
//! f32 weights they were rounded from, frame by frame, and a frame step with f16 weights does
//! not allocate.

use std::path::Path;

use nice_assert_no_alloc::{assert_no_alloc, violation_count, AllocDisabler};
use timbreswap_engine::features::FeatureExtractor;
use timbreswap_engine::half::{f16_bits, f32_from_bits};
use timbreswap_engine::kernels::{Isa, Kernels};
use timbreswap_engine::model_file::{self, ModelFile};
use timbreswap_engine::network::{Network, StepInput};

#[global_allocator]
static ALLOC: AllocDisabler = AllocDisabler;

fn asset(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// The decoder's denormalised output (natural-log magnitude) for every frame of `audio`, the
/// network's own clip timbre `z_t` decoded with. Each frame's step runs under
/// `assert_no_alloc`.
fn decode_frames(net: &Network, audio: &[f32], z_t: &[f32]) -> Vec<Vec<f32>> {
    let cfg = net.stft();
    let bins = cfg.n_bins();
    let features = FeatureExtractor::new(&cfg, net.config().mag_floor).clip(audio);
    let mut state = net.state();
    let (mut env, mut fine, mut out) = (vec![0.0; bins], vec![0.0; bins], vec![0.0; bins]);
    let before = violation_count();
    let frames = (0..features.frames)
        .map(|t| {
            let rows = t * bins..(t + 1) * bins;
            env.copy_from_slice(&features.envelope[rows.clone()]);
            fine.copy_from_slice(&features.fine[rows.clone()]);
            net.normalise(&features.log_mag[rows], &mut env, &mut fine);
            let input = StepInput {
                envelope: &env,
                fine: &fine,
                z_t_encode: z_t,
                z_t_decode: z_t,
                variation: 1.0,
            };
            assert_no_alloc(|| net.step(&mut state, &input, &mut out));
            let mut y = out.clone();
            net.denormalise(&mut y);
            y
        })
        .collect();
    assert_eq!(violation_count(), before, "a frame step allocated");
    frames
}

/// An f32 model whose f16 rounding is `shipped`: every matrix weight (an f16 value) moved by a
/// random offset of up to 0.49 of the f16 step around it, as the f32 weights of a trained
/// model sit anywhere within half a step of their f16 rounding.
fn f32_model_rounding_to(shipped: &ModelFile) -> ModelFile {
    let mut file = shipped.clone();
    let mut state = 2024u32;
    for (name, tensor) in &mut file.weights {
        if !ModelFile::is_matrix(name, tensor) {
            continue;
        }
        for v in &mut tensor.data {
            let h = f16_bits(*v);
            let (sign, magnitude) = (h & 0x8000, h & 0x7fff);
            let at = |m: u16| f32_from_bits(sign | m);
            let up = (at(magnitude + 1) - *v).abs();
            let step = if magnitude == 0 {
                up
            } else {
                up.min((*v - at(magnitude - 1)).abs())
            };
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let u = state as f32 / u32::MAX as f32 * 2.0 - 1.0;
            *v += 0.49 * u * step;
        }
        tensor.half = None;
    }
    file.id = format!("{}-f32", shipped.id);
    file
}

#[test]
fn f16_weights_decode_what_f32_weights_decode() {
    // The shipped file stores its matrices as f16; the f32 model is one that rounds to it.
    let shipped = model_file::load(&asset("assets/models/default.safetensors")).unwrap();
    let file = f32_model_rounding_to(&shipped);
    let half = file.with_half_matrices();
    for (name, tensor) in &half.weights {
        assert_eq!(
            tensor.half, shipped.weights[name].half,
            "{name}: not the shipped rounding"
        );
    }
    let matrices = half
        .weights
        .iter()
        .filter(|(n, t)| ModelFile::is_matrix(n, t))
        .count();
    assert!(matrices > 10, "only {matrices} matrices");
    let audio =
        timbreswap_engine::clip::decode_file(&asset("assets/examples/input-voice.wav"), 4.0)
            .unwrap()
            .mono();
    let reference = Network::new(&file, "f32", Kernels::best()).unwrap();
    let z_t = reference.clip_timbre(&audio);
    let f32_frames = decode_frames(&reference, &audio, &z_t);

    // The same f16-rounded weights through every kernel set: the f16 kernels where a set has
    // them, the weights widened to f32 elsewhere. They agree to f32 rounding.
    let widened = Network::new(&half, "f16", Kernels::for_isa(Isa::Scalar).unwrap()).unwrap();
    let widened_frames = decode_frames(&widened, &audio, &z_t);
    for isa in Kernels::available() {
        let kernels = Kernels::for_isa(isa).unwrap();
        let net = Network::new(&half, "f16", kernels).unwrap();
        let frames = decode_frames(&net, &audio, &z_t);
        let worst = frames
            .iter()
            .flatten()
            .zip(widened_frames.iter().flatten())
            .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
            .fold(0.0f32, f32::max);
        println!(
            "{isa} (f16 kernels: {}): worst relative difference {worst:.2e}",
            kernels.has_f16()
        );
        assert!(worst < 1e-4, "{isa}: {worst}");
    }

    // Against f32 weights: the mean and largest difference of the decoded log-magnitude, in dB.
    let db = 20.0 / std::f32::consts::LN_10;
    let diffs: Vec<f32> = widened_frames
        .iter()
        .flatten()
        .zip(f32_frames.iter().flatten())
        .map(|(a, b)| db * (a - b).abs())
        .collect();
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    let largest = diffs.iter().fold(0.0f32, |m, v| m.max(*v));
    println!(
        "f16 against f32 weights, {} frames: mean {mean:.4} dB, largest {largest:.3} dB",
        f32_frames.len()
    );
    // f16 keeps 11 significant bits (a relative step of 2^-11 per weight); summed over a few
    // hundred products of both signs the decoded spectrum moves by a small fraction of a dB.
    assert!(mean < 0.1, "mean difference {mean} dB");
    assert!(largest < 0.1, "largest difference {largest} dB");
}
