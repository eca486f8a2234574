//! f16, int8 and mixed weights in the shipped network: the narrowed kernels compute what the
//! f32 kernels compute on the same (rounded) weights, a network with f16, int8 or mixed weights
//! stays close to one with the f32 weights they were rounded from, frame by frame, and a frame
//! step with narrowed weights does not allocate.

use std::path::Path;

use nice_assert_no_alloc::{assert_no_alloc, violation_count, AllocDisabler};
use timbreswap_engine::features::FeatureExtractor;
use timbreswap_engine::half::{f16_bits, f32_from_bits};
use timbreswap_engine::kernels::{Isa, Kernels};
use timbreswap_engine::model_file::{self, ModelFile, Precision};
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

/// An f32 model whose conversion to the shipped precision is `shipped` (checked): every f16
/// matrix weight moved by a random offset of up to 0.49 of the f16 step around it, and every
/// int8 weight but each row's largest by up to 0.49 of its row's step, as the f32 weights of a
/// trained model sit anywhere within half a step of their rounding.
fn f32_model_rounding_to(shipped: &ModelFile) -> ModelFile {
    let mut file = shipped.clone();
    let mut state = 2024u32;
    let mut offset = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        0.49 * (state as f32 / u32::MAX as f32 * 2.0 - 1.0)
    };
    for (name, tensor) in &mut file.weights {
        if !ModelFile::is_matrix(name, tensor) {
            continue;
        }
        if let Some(rows) = tensor.int8.take() {
            let cols = tensor.shape[1];
            for (r, row) in tensor.data.chunks_exact_mut(cols).enumerate() {
                let step = rows.scales[r];
                for (v, q) in row.iter_mut().zip(&rows.values[r * cols..]) {
                    // The row's largest keeps its value, and with it the row's scale.
                    if q.unsigned_abs() < 127 {
                        *v += offset() * step;
                    }
                }
            }
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
            *v += offset() * step;
        }
        tensor.half = None;
    }
    file.id = format!("{}-f32", shipped.id);
    let again = file.with_precision(shipped.precision());
    for (name, tensor) in &again.weights {
        let stored = &shipped.weights[name];
        assert_eq!(
            tensor.half, stored.half,
            "{name}: not the shipped f16 rounding"
        );
        assert_eq!(
            tensor.int8, stored.int8,
            "{name}: not the shipped int8 rounding"
        );
    }
    file
}

/// The worst difference between two decodings, relative to `1 + |b|` per value.
fn worst_relative(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
        .fold(0.0f32, f32::max)
}

/// The mean and largest difference between two decodings' log-magnitudes, in dB.
fn db_differences(a: &[Vec<f32>], b: &[Vec<f32>]) -> (f32, f32) {
    let db = 20.0 / std::f32::consts::LN_10;
    let diffs: Vec<f32> = a
        .iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(a, b)| db * (a - b).abs())
        .collect();
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    (mean, diffs.iter().fold(0.0f32, |m, v| m.max(*v)))
}

/// `file` through every kernel set this CPU has decodes `audio` (with `z_t`) as `expected` to
/// f32 rounding: with the narrowed kernels where a set has them for its weights
/// (`narrowed(kernels)`), with the weights widened at load elsewhere.
fn every_kernel_set_decodes(
    file: &ModelFile,
    narrowed: impl Fn(&Kernels) -> bool,
    audio: &[f32],
    z_t: &[f32],
    expected: &[Vec<f32>],
) {
    let precision = file.precision();
    for isa in Kernels::available() {
        let kernels = Kernels::for_isa(isa).unwrap();
        let net = Network::new(file, "narrowed", kernels).unwrap();
        let worst = worst_relative(&decode_frames(&net, audio, z_t), expected);
        println!(
            "{isa} ({precision} kernels: {}): worst relative difference {worst:.2e}",
            narrowed(&kernels)
        );
        assert!(worst < 1e-4, "{isa}: {worst}");
    }
}

fn voice() -> Vec<f32> {
    timbreswap_engine::clip::decode_file(&asset("assets/examples/input-voice.wav"), 4.0)
        .unwrap()
        .mono()
}

#[test]
fn f16_weights_decode_what_f32_weights_decode() {
    // The f32 model is one that rounds to the shipped file (its matrices f16 but the
    // variation encoder's, int8).
    let shipped = model_file::load(&asset("assets/models/default.safetensors")).unwrap();
    let file = f32_model_rounding_to(&shipped);
    let half = file.with_half_matrices();
    let stored_half = |name: &String| shipped.weights[name].half.is_some();
    for (name, tensor) in half.weights.iter().filter(|(n, _)| stored_half(n)) {
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
    let audio = voice();
    let reference = Network::new(&file, "f32", Kernels::best()).unwrap();
    let z_t = reference.clip_timbre(&audio);
    let f32_frames = decode_frames(&reference, &audio, &z_t);

    // The same f16-rounded weights through every kernel set: the f16 kernels where a set has
    // them, the weights widened to f32 elsewhere. They agree to f32 rounding.
    let widened = Network::new(&half, "f16", Kernels::for_isa(Isa::Scalar).unwrap()).unwrap();
    let widened_frames = decode_frames(&widened, &audio, &z_t);
    every_kernel_set_decodes(&half, Kernels::has_f16, &audio, &z_t, &widened_frames);

    // Against f32 weights: the mean and largest difference of the decoded log-magnitude, in dB.
    let (mean, largest) = db_differences(&widened_frames, &f32_frames);
    println!(
        "f16 against f32 weights, {} frames: mean {mean:.4} dB, largest {largest:.3} dB",
        f32_frames.len()
    );
    // f16 keeps 11 significant bits (a relative step of 2^-11 per weight); summed over a few
    // hundred products of both signs the decoded spectrum moves by a small fraction of a dB.
    assert!(mean < 0.1, "mean difference {mean} dB");
    assert!(largest < 0.1, "largest difference {largest} dB");
}

#[test]
fn int8_weights_decode_close_to_what_f32_weights_decode() {
    // An f32 model that rounds to the shipped file, and its int8 quantisation.
    let shipped = model_file::load(&asset("assets/models/default.safetensors")).unwrap();
    let file = f32_model_rounding_to(&shipped);
    let int8 = file.with_int8_matrices();
    assert_eq!(int8.precision(), Precision::Int8);
    // The values the int8 rows stand for, as plain f32 weights: what every kernel set must
    // compute from the int8 rows.
    let dequantized = int8.with_precision(Precision::F32);
    let audio = voice();
    let reference = Network::new(&file, "f32", Kernels::best()).unwrap();
    let z_t = reference.clip_timbre(&audio);
    let f32_frames = decode_frames(&reference, &audio, &z_t);
    let plain = Network::new(&dequantized, "dequantized", Kernels::best()).unwrap();
    let plain_frames = decode_frames(&plain, &audio, &z_t);
    every_kernel_set_decodes(&int8, Kernels::has_int8, &audio, &z_t, &plain_frames);
    let (mean, largest) = db_differences(&plain_frames, &f32_frames);
    println!(
        "int8 against f32 weights, {} frames: mean {mean:.4} dB, largest {largest:.3} dB",
        f32_frames.len()
    );
    // int8 moves a weight by up to half a step, 1/254 of its row's largest (f16: 2^-12 of
    // the weight itself), so the decoded spectrum moves about sixty times as much as with f16;
    // measured 0.09 dB on average (experiments/quality-log.md, "int8 weights"), with single quiet
    // bins a few dB off. The bound documents that figure with a margin; the transfer and
    // disentanglement tables are the judges (docs/quality.md).
    assert!(mean < 0.2, "mean difference {mean} dB");
}

#[test]
fn mixed_weights_decode_far_closer_to_f32_than_int8_weights_do() {
    // The shipped file is the mixed conversion of an f32 model that rounds to it.
    let shipped = model_file::load(&asset("assets/models/default.safetensors")).unwrap();
    assert_eq!(shipped.precision(), Precision::Mixed);
    let file = f32_model_rounding_to(&shipped);
    let mixed = file.with_mixed_matrices();
    let audio = voice();
    let reference = Network::new(&file, "f32", Kernels::best()).unwrap();
    let z_t = reference.clip_timbre(&audio);
    let f32_frames = decode_frames(&reference, &audio, &z_t);
    // The values the mixed matrices stand for, as plain f32 weights: what every kernel set
    // must compute from them.
    let plain = Network::new(
        &mixed.with_precision(Precision::F32),
        "plain",
        Kernels::best(),
    )
    .unwrap();
    let plain_frames = decode_frames(&plain, &audio, &z_t);
    let both = |k: &Kernels| k.has_f16() && k.has_int8();
    every_kernel_set_decodes(&mixed, both, &audio, &z_t, &plain_frames);
    let (half, int8) = (file.with_half_matrices(), file.with_int8_matrices());
    let int8_net = Network::new(&int8, "int8", Kernels::best()).unwrap();
    let int8_frames = decode_frames(&int8_net, &audio, &z_t);
    let (mean, largest) = db_differences(&plain_frames, &f32_frames);
    let (int8_mean, int8_largest) = db_differences(&int8_frames, &f32_frames);
    println!(
        "against f32 weights, {} frames: mixed mean {mean:.4} dB, largest {largest:.3} dB; \
         int8 mean {int8_mean:.4} dB, largest {int8_largest:.3} dB",
        f32_frames.len()
    );
    // The variation encoder's int8 rounding (1/254 of a row's largest) is what moves mixed
    // away from f16 (0.0015 dB here), and the decoder hears little of `z_v`'s detail: measured
    // 0.012 dB on average and 0.10 dB at most, where the whole model in int8 moves it 0.091 and
    // 4.6 dB. The bounds keep mixed at a quarter of int8's mean and its worst bin under a
    // fifth of a dB; the transfer tables are the judges (docs/quality.md, "Mixed weights": no
    // output's label changed).
    assert!(
        mean < 0.25 * int8_mean,
        "mixed {mean} dB, int8 {int8_mean} dB"
    );
    assert!(largest < 0.2, "largest mixed difference {largest} dB");

    // Why the variation encoder: of the three per-frame stacks, each alone in int8 (the rest
    // f16), it moves the decoded spectrum least.
    let one_stack_in_int8 = |stack: &str| {
        let mut one = half.clone();
        for (name, tensor) in &mut one.weights {
            if name.starts_with(stack) {
                *tensor = int8.weights[name].clone();
            }
        }
        one.id = format!("{}-{stack}int8", file.id);
        let net = Network::new(&one, stack, Kernels::best()).unwrap();
        db_differences(&decode_frames(&net, &audio, &z_t), &f32_frames).0
    };
    let [variation, pitch, decoder] = ["variation.", "pitch.", "decoder."].map(one_stack_in_int8);
    println!(
        "one stack in int8, mean against f32: variation {variation:.4}, pitch {pitch:.4}, \
         decoder {decoder:.4} dB"
    );
    assert!((variation - mean).abs() < 1e-6, "{variation} {mean}");
    assert!(
        variation < pitch && variation < decoder,
        "{variation} {pitch} {decoder}"
    );
}

/// What a network holds per instance, against a count from the file's tensors: every matrix
/// in the precision the kernels read (2 bytes a weight for f16, 1 plus 4 per row for int8),
/// the timbre encoder's per-frame stack in f32 as well, biases in f32.
#[test]
fn a_network_holds_its_matrices_once_in_the_precision_it_reads() {
    let shipped = model_file::load(&asset("assets/models/default.safetensors")).unwrap();
    let kernels = Kernels::best();
    for precision in [
        Precision::F32,
        Precision::F16,
        Precision::Int8,
        Precision::Mixed,
    ] {
        let file = shipped.with_precision(precision);
        assert_eq!(file.precision(), precision);
        let expected: usize = file
            .weights
            .iter()
            .filter(|(name, _)| !name.starts_with("features."))
            .map(|(name, t)| {
                let n = t.data.len();
                if !ModelFile::is_matrix(name, t) {
                    return 4 * n;
                }
                let stored = match (&t.half, &t.int8) {
                    (Some(_), _) if kernels.has_f16() => 2 * n,
                    (_, Some(_)) if kernels.has_int8() => n + 4 * t.shape[0],
                    _ => 0,
                };
                let f32_copy = stored == 0 || name.starts_with("timbre.frames.");
                stored + if f32_copy { 4 * n } else { 0 }
            })
            .sum();
        let net = Network::new(&file, "default", kernels).unwrap();
        println!("{precision}: {} bytes", net.weight_bytes());
        assert_eq!(net.weight_bytes(), expected, "{precision}");
    }
}
