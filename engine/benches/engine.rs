//! Per-block cost of the engine at 48 kHz with 128-sample stereo blocks.
//!
//! - `offline/classic`: the whole classic path on one thread (frames processed inline), i.e.
//!   the CPU the classic swap costs on one core; real-time factor = time per block / 2.667 ms.
//! - `offline/identity`: the same with no timbre loaded (resampling + framing + overlap-add).
//! - `realtime/audio-thread`: what the host's audio thread itself spends when the worker thread
//!   does the FFT work.
//!
//! Run: `cargo bench -p timbreswap-engine --bench engine`.

use std::f32::consts::PI;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use timbreswap_engine::timbre::analyse;
use timbreswap_engine::{
    BlockParams, Engine, EngineSettings, EngineStats, ProcessingMode, StftConfig, TimbreDescriptor,
};

const RATE: f64 = 48_000.0;
const BLOCK: usize = 128;

fn tone(rate: f64, len: usize, f0: f32, tilt: f32) -> Vec<f32> {
    (0..len)
        .map(|n| {
            let t = n as f32 / rate as f32;
            (1..40)
                .filter(|h| *h as f32 * f0 < 15_000.0)
                .map(|h| (2.0 * PI * f0 * h as f32 * t).sin() * (h as f32).powf(-tilt))
                .sum::<f32>()
                * 0.2
        })
        .collect()
}

fn timbre() -> TimbreDescriptor {
    let cfg = StftConfig::default();
    analyse(&tone(32_000.0, 32_000, 330.0, 2.5), &cfg, "bench").unwrap()
}

fn bench_mode(
    c: &mut Criterion,
    name: &str,
    mode: ProcessingMode,
    timbre: Option<&TimbreDescriptor>,
) {
    let settings = EngineSettings {
        host_rate: RATE,
        max_block: BLOCK,
        channels: 2,
        mode,
        stft: StftConfig::default(),
    };
    let (mut engine, _control) =
        Engine::new(settings, Arc::new(EngineStats::default()), timbre, None).unwrap();
    // Two seconds of input, cycled, so the timed work is only `process`.
    let input = tone(RATE, 2 * RATE as usize, 220.0, 1.0);
    let mut left = vec![0.0f32; BLOCK];
    let mut right = vec![0.0f32; BLOCK];
    let mix = vec![1.0f32; BLOCK];
    let gain = vec![1.0f32; BLOCK];
    let morph = vec![0.0f32; BLOCK];
    let mut pos = 0;
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(BLOCK as u64));
    group.bench_function("block-128-at-48k", |b| {
        b.iter(|| {
            if pos + BLOCK > input.len() {
                pos = 0;
            }
            left.copy_from_slice(&input[pos..pos + BLOCK]);
            right.copy_from_slice(&input[pos..pos + BLOCK]);
            pos += BLOCK;
            engine.process(
                &mut [&mut left[..], &mut right[..]],
                &BlockParams::new(&mix, &gain, &morph),
            );
            std::hint::black_box(left[0]);
        })
    });
    group.finish();
}

fn engine_blocks(c: &mut Criterion) {
    let t = timbre();
    bench_mode(c, "offline/classic", ProcessingMode::Offline, Some(&t));
    bench_mode(c, "offline/identity", ProcessingMode::Offline, None);
    bench_mode(
        c,
        "realtime/audio-thread",
        ProcessingMode::Realtime,
        Some(&t),
    );
}

criterion_group!(benches, engine_blocks);
criterion_main!(benches);
