//! One frame of the streaming network, side by side: the engine's SIMD kernels against candle's
//! CPU forward of the same weights one frame at a time (`ThreeFactor::step`), the built-in model,
//! the same normalised inputs from a real clip.
//!
//! Run: `cargo bench -p timbreswap-training --bench forward`.

use std::path::Path;

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use timbreswap_engine::features::FeatureExtractor;
use timbreswap_engine::kernels::Kernels;
use timbreswap_engine::model_file;
use timbreswap_engine::network::{Network, StepInput};
use timbreswap_training::model::file;

fn forward(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join("assets/models/default.safetensors");
    let candle = file::load(&path).unwrap().model;
    let net = Network::new(
        &model_file::load(&path).unwrap(),
        "default",
        Kernels::best(),
    )
    .unwrap();
    let cfg = candle.config().clone();
    let bins = cfg.bins();
    let audio =
        timbreswap_engine::clip::decode_file(&root.join("assets/examples/input-voice.wav"), 60.0)
            .unwrap()
            .mono();
    let f = FeatureExtractor::new(&cfg.stft(), cfg.mag_floor).clip(&audio);
    let (tv, p) = candle.clip_inputs(&f).unwrap();
    let (tv_rows, p_rows) = (
        tv.squeeze(0).unwrap().to_vec2::<f32>().unwrap(),
        p.squeeze(0).unwrap().to_vec2::<f32>().unwrap(),
    );
    let frames = tv_rows.len();
    let z = net.map().instrument_z_t(0).unwrap().to_vec();
    let dev = Device::Cpu;
    let z_t = Tensor::from_slice(&z, (1, cfg.z_t), &dev).unwrap();
    let tv_t: Vec<Tensor> = tv_rows
        .iter()
        .map(|r| Tensor::from_slice(r, (1, bins), &dev).unwrap())
        .collect();
    let p_t: Vec<Tensor> = p_rows
        .iter()
        .map(|r| Tensor::from_slice(r, (1, bins), &dev).unwrap())
        .collect();

    let mut group = c.benchmark_group("frame");
    let mut state = candle.stream_state();
    let mut t = 0;
    group.bench_function("candle", |b| {
        b.iter(|| {
            let (_, y) = candle
                .step(&tv_t[t], &p_t[t], &z_t, &z_t, &mut state)
                .unwrap();
            t = (t + 1) % frames;
            std::hint::black_box(y)
        })
    });
    let mut state = net.state();
    let mut out = vec![0.0f32; bins];
    let mut t = 0;
    group.bench_function(format!("engine-{}", net.kernels().isa()), |b| {
        b.iter(|| {
            net.step(
                &mut state,
                &StepInput {
                    envelope: &tv_rows[t],
                    fine: &p_rows[t],
                    z_t_encode: &z,
                    z_t_decode: &z,
                    variation: 1.0,
                },
                &mut out,
            );
            t = (t + 1) % frames;
            std::hint::black_box(out[0])
        })
    });
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
