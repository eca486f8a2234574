//! Per-block cost of the engine at 48 kHz with 128-sample stereo blocks.
//!
//! - `offline/classic`: the whole classic path on one thread (frames processed inline), i.e.
//!   the CPU the classic swap costs on one core; real-time factor = time per block / 2.667 ms.
//! - `offline/identity`: the same with no timbre loaded (resampling + framing + overlap-add).
//! - `realtime/audio-thread`: what the host's audio thread itself spends when the worker thread
//!   does the FFT work.
//! - `offline/neural-reconstruct`, `offline/neural-input`: the whole neural path (the built-in
//!   model, RTPGHI or input phase) on one thread; `realtime/audio-thread-neural` its audio-thread
//!   share.
//! - `offline/neural-input-at-minus-400-db`: the neural input-phase path on an input 1e-20 times
//!   as loud, whose squares and products are denormals (flush-to-zero keeps them cheap).
//! - `offline/exemplar`: the whole Exemplar path (the trumpet example's analysis, the built-in
//!   model loaded beside it as in the plugin, which Exemplar does not run) on one thread;
//!   `offline/exemplar-low-latency` the same built for the Low latency mode (grains every half
//!   hop, the reference's partials played by oscillators).
//! - `offline/neural-input-f32`, `-f16`, `-int8`, `-mixed`: `offline/neural-input` (the
//!   built-in model as it ships) with the model's matrices as f32, f16, int8 and mixed (the
//!   variation encoder's int8, the rest f16).
//! - `network/frame-f32`: one streaming step of the network (variation, pitch, decoder,
//!   input-timbre tracker excluded) per kernel set, f32 matrices; `network/frame-f16`,
//!   `network/frame-int8` and `network/frame-mixed` the same with f16, int8 and mixed
//!   matrices, per kernel set that has kernels for them.
//! - `reference-clip/10s`: analysing a 10 s reference clip off the audio thread: the classic
//!   descriptor, the neural `z_t` and Exemplar mode's analysis, each alone and the loader's
//!   whole job from a 44.1 kHz stereo file (one thread, and two as the plugin runs it), and its
//!   resampling step alone (`resample-44k1-to-32k`);
//!   `neural-z_t-harmonic-input` is the `z_t` of a model whose timbre encoder also reads 24
//!   harmonic levels (`timbre_harmonics`).
//!
//! Run: `cargo bench -p timbreswap-engine --bench engine`.

use std::f32::consts::PI;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use timbreswap_engine::exemplar::ExemplarBank;
use timbreswap_engine::kernels::Kernels;
use timbreswap_engine::model_file::{self, Precision};
use timbreswap_engine::network::{Network, StepInput};
use timbreswap_engine::neural::PhaseMode;
use timbreswap_engine::processor::SwapMode;
use timbreswap_engine::timbre::analyse;
use timbreswap_engine::{
    BlockParams, Engine, EngineSettings, EngineStats, LatencyMode, ProcessingMode, Slot,
    StftConfig, TimbreDescriptor,
};

/// The built-in model's network with `kernels`, as it ships.
fn network(kernels: Kernels) -> Arc<Network> {
    network_with(kernels, None)
}

/// The built-in model's network with `kernels`, its matrices as `precision` (as
/// `timbreswap convert-model` writes them) when given.
fn network_with(kernels: Kernels, precision: Option<Precision>) -> Arc<Network> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/models/default.safetensors");
    let mut file = model_file::load(&path).unwrap();
    if let Some(p) = precision {
        file = file.with_precision(p);
    }
    Arc::new(Network::new(&file, "default", kernels).unwrap())
}

/// The built-in model with a timbre encoder that also reads `harmonics` harmonic levels per
/// frame (`timbre_harmonics`), their weights zero: the same `z_t`, at the cost of such a model's
/// analysis (the pitch stack over the clip for each frame's ruler, then the levels).
fn harmonic_network(kernels: Kernels, harmonics: usize) -> Arc<Network> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/models/default.safetensors");
    let mut file = model_file::load(&path)
        .unwrap()
        .with_precision(Precision::F32);
    let bins = file.config.bins();
    file.config.timbre_harmonics = harmonics;
    let input = file.weights.get_mut("timbre.frames.input.weight").unwrap();
    let rows = input.shape[0];
    input.data = input
        .data
        .chunks_exact(bins)
        .flat_map(|row| {
            row.iter()
                .copied()
                .chain(std::iter::repeat_n(0.0, harmonics))
        })
        .collect();
    input.shape = vec![rows, bins + harmonics];
    Arc::new(Network::new(&file, "harmonic", kernels).unwrap())
}

/// An example clip (mono, 32 kHz) repeated to `seconds`.
fn clip(name: &str, seconds: f64) -> Vec<f32> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/examples")
        .join(name);
    let audio = timbreswap_engine::clip::decode_file(&path, 60.0).unwrap();
    let mono = audio.mono();
    let len = (seconds * audio.sample_rate as f64) as usize;
    mono.iter().cycle().take(len).copied().collect()
}

/// `audio` with white noise `db` under its RMS added (uniform, from a fixed xorshift seed).
fn with_noise(audio: &[f32], db: f32) -> Vec<f32> {
    let rms = (audio.iter().map(|x| x * x).sum::<f32>() / audio.len().max(1) as f32).sqrt();
    // Uniform on [-a, a] has an RMS of a / sqrt(3).
    let a = rms * 10f32.powf(-db / 20.0) * 3f32.sqrt();
    let mut state = 0x9e37_79b9u32;
    audio
        .iter()
        .map(|x| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            x + a * (state as f32 / u32::MAX as f32 * 2.0 - 1.0)
        })
        .collect()
}

/// Neural settings for [`bench_mode`]: the model, a slot-A latent and the phase mode.
type Neural = (Arc<Network>, Vec<f32>, PhaseMode);

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
    neural: Option<Neural>,
) {
    bench_mode_at(c, name, settings(mode), timbre, neural, None, 1.0);
}

/// The engine's settings for `mode` at [`RATE`] and [`BLOCK`], stereo, normal latency.
fn settings(mode: ProcessingMode) -> EngineSettings {
    EngineSettings {
        host_rate: RATE,
        max_block: BLOCK,
        channels: 2,
        mode,
        stft: StftConfig::default(),
        worker_priority: Default::default(),
        latency_mode: Default::default(),
        latency_block: None,
    }
}

/// [`bench_mode`] with the engine built with `settings`, the input scaled by `level`.
fn bench_mode_at(
    c: &mut Criterion,
    name: &str,
    settings: EngineSettings,
    timbre: Option<&TimbreDescriptor>,
    neural: Option<Neural>,
    exemplar: Option<Arc<ExemplarBank>>,
    level: f32,
) {
    let (mut engine, mut control) =
        Engine::new(settings, Arc::new(EngineStats::default()), timbre, None).unwrap();
    let (swap, phase) = match &neural {
        Some((net, z, phase)) => {
            control.set_model(Some(net.clone()), Some(z), None).unwrap();
            (SwapMode::Neural, *phase)
        }
        None => (SwapMode::Classic, PhaseMode::Reconstruct),
    };
    let swap = match exemplar {
        Some(bank) => {
            control.set_exemplar(Slot::A, Some(bank)).unwrap();
            SwapMode::Exemplar
        }
        None => swap,
    };
    // Two seconds of input, cycled, so the timed work is only `process`.
    let input: Vec<f32> = tone(RATE, 2 * RATE as usize, 220.0, 1.0)
        .into_iter()
        .map(|v| v * level)
        .collect();
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
                &BlockParams {
                    mode: swap,
                    phase,
                    ..BlockParams::new(&mix, &gain, &morph)
                },
            );
            std::hint::black_box(left[0]);
        })
    });
    group.finish();
}

fn engine_blocks(c: &mut Criterion) {
    let t = timbre();
    bench_mode(
        c,
        "offline/classic",
        ProcessingMode::Offline,
        Some(&t),
        None,
    );
    bench_mode(c, "offline/identity", ProcessingMode::Offline, None, None);
    bench_mode(
        c,
        "realtime/audio-thread",
        ProcessingMode::Realtime,
        Some(&t),
        None,
    );
    let net = network(Kernels::best());
    let z = net.clip_timbre(&clip("ref-trumpet.wav", 3.0));
    for (name, phase) in [
        ("offline/neural-reconstruct", PhaseMode::Reconstruct),
        ("offline/neural-input", PhaseMode::Input),
    ] {
        let neural = Some((net.clone(), z.clone(), phase));
        bench_mode(c, name, ProcessingMode::Offline, Some(&t), neural);
    }
    // The same model with its matrices as f32, f16, int8 and mixed (the narrowed kernels where
    // this CPU has them).
    for precision in [
        Precision::F32,
        Precision::F16,
        Precision::Int8,
        Precision::Mixed,
    ] {
        let net = network_with(Kernels::best(), Some(precision));
        bench_mode(
            c,
            &format!("offline/neural-input-{precision}"),
            ProcessingMode::Offline,
            Some(&t),
            Some((net, z.clone(), PhaseMode::Input)),
        );
    }
    // The same at -400 dB: every sample is a normal float, but the squares and products in
    // the frame processing are denormals. With flush-to-zero they cost nothing extra.
    bench_mode_at(
        c,
        "offline/neural-input-at-minus-400-db",
        settings(ProcessingMode::Offline),
        Some(&t),
        Some((net.clone(), z.clone(), PhaseMode::Input)),
        None,
        1e-20,
    );
    // Exemplar mode as the plugin runs it: the model loaded (Exemplar does not run it), the
    // clip's analysis in slot A.
    let bank =
        Arc::new(ExemplarBank::new(&StftConfig::default(), &clip("ref-trumpet.wav", 3.0)).unwrap());
    for (name, latency_mode) in [
        ("offline/exemplar", LatencyMode::Normal),
        ("offline/exemplar-low-latency", LatencyMode::Low),
    ] {
        bench_mode_at(
            c,
            name,
            EngineSettings {
                latency_mode,
                ..settings(ProcessingMode::Offline)
            },
            Some(&t),
            Some((net.clone(), z.clone(), PhaseMode::Input)),
            Some(bank.clone()),
            1.0,
        );
    }
    bench_mode(
        c,
        "realtime/audio-thread-neural",
        ProcessingMode::Realtime,
        Some(&t),
        Some((net, z, PhaseMode::Reconstruct)),
    );
}

/// One network step per kernel set, on normalised inputs from a real clip.
fn network_frame(c: &mut Criterion) {
    let mut group = c.benchmark_group("network");
    let has = |isa, precision| {
        let k = Kernels::for_isa(isa).unwrap();
        match precision {
            Precision::F32 => true,
            Precision::F16 => k.has_f16(),
            Precision::Int8 => k.has_int8(),
            Precision::Mixed => k.has_f16() && k.has_int8(),
        }
    };
    let precisions = [
        Precision::F32,
        Precision::F16,
        Precision::Int8,
        Precision::Mixed,
    ];
    let runs = precisions
        .into_iter()
        .flat_map(|p| Kernels::available().into_iter().map(move |isa| (isa, p)))
        .filter(|&(isa, p)| has(isa, p));
    for (isa, precision) in runs {
        let net = network_with(Kernels::for_isa(isa).unwrap(), Some(precision));
        let cfg = net.config().clone();
        let audio = clip("input-voice.wav", 2.0);
        let f = timbreswap_engine::features::FeatureExtractor::new(&cfg.stft(), cfg.mag_floor)
            .clip(&audio);
        let bins = cfg.bins();
        let (mut env, mut fine) = (f.envelope.clone(), f.fine.clone());
        for t in 0..f.frames {
            let r = t * bins..(t + 1) * bins;
            let (e, fi) = (&mut env[r.clone()], &mut fine[r.clone()]);
            net.normalise(&f.log_mag[r], e, fi);
        }
        let z = net.map().instrument_z_t(0).unwrap().to_vec();
        let mut state = net.state();
        let mut out = vec![0.0f32; bins];
        let mut t = 0;
        group.bench_function(format!("frame-{precision}/{isa}"), |b| {
            b.iter(|| {
                let r = t * bins..(t + 1) * bins;
                net.step(
                    &mut state,
                    &StepInput {
                        envelope: &env[r.clone()],
                        fine: &fine[r],
                        z_t_encode: &z,
                        z_t_decode: &z,
                        variation: 1.0,
                    },
                    &mut out,
                );
                t = (t + 1) % f.frames;
                std::hint::black_box(out[0]);
            })
        });
    }
    group.finish();
}

/// Analysing a 10 s reference clip (already decoded, at the model rate).
fn reference_clip(c: &mut Criterion) {
    let net = network(Kernels::best());
    let audio = clip("ref-cello.wav", 10.0);
    let cfg = StftConfig::default();
    let mut group = c.benchmark_group("reference-clip");
    group.sample_size(20);
    group.bench_function("10s/classic-descriptor", |b| {
        b.iter(|| std::hint::black_box(analyse(&audio, &cfg, "clip").unwrap().frames))
    });
    group.bench_function("10s/neural-z_t", |b| {
        b.iter(|| std::hint::black_box(net.clip_timbre(&audio)[0]))
    });
    let harmonic = harmonic_network(Kernels::best(), 24);
    group.bench_function("10s/neural-z_t-harmonic-input", |b| {
        b.iter(|| std::hint::black_box(harmonic.clip_timbre(&audio)[0]))
    });
    group.bench_function("10s/exemplar-analysis", |b| {
        b.iter(|| std::hint::black_box(ExemplarBank::new(&cfg, &audio).unwrap().frames()))
    });
    // The same clip recorded in a room: white noise 30 dB under its RMS throughout, so the
    // analysis measures the background in the pauses and takes it out of every frame kept.
    let in_a_room = with_noise(&audio, 30.0);
    group.bench_function("10s/exemplar-analysis-in-a-room", |b| {
        b.iter(|| std::hint::black_box(ExemplarBank::new(&cfg, &in_a_room).unwrap().frames()))
    });
    // What the plugin's loader does with a file: decode a 10 s, 44.1 kHz stereo WAV, resample
    // to the model rate, the classic descriptor, then the neural z_t.
    let path = std::env::temp_dir().join(format!("timbreswap-bench-{}.wav", std::process::id()));
    let stereo = clip("ref-cello.wav", 10.0);
    let at_44k1 = timbreswap_engine::resampler::resample_all(&stereo, 32_000, 44_100);
    // The loader's resampling step alone: 10 s at 44.1 kHz to the engine's 32 kHz.
    group.bench_function("10s/resample-44k1-to-32k", |b| {
        b.iter(|| {
            std::hint::black_box(
                timbreswap_engine::resampler::resample_all(&at_44k1, 44_100, 32_000)[0],
            )
        })
    });
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec).unwrap();
    for v in &at_44k1 {
        let s = (v.clamp(-1.0, 1.0) * 32_767.0) as i16;
        writer.write_sample(s).unwrap();
        writer.write_sample(s).unwrap();
    }
    writer.finalize().unwrap();
    group.bench_function("10s/file-to-both-timbres", |b| {
        b.iter(|| {
            let clip = timbreswap_engine::clip::load_reference_clip(&path, &cfg).unwrap();
            std::hint::black_box(net.clip_timbre(&clip.samples)[0])
        })
    });
    // The plugin loader's whole job today: the above and the Exemplar analysis, one step after
    // the other on one thread, then as the loader runs them (`analyse_reference_file`: the
    // Exemplar analysis on a second thread).
    group.bench_function("10s/file-to-every-analysis/one-thread", |b| {
        b.iter(|| {
            let clip = timbreswap_engine::clip::load_reference_clip(&path, &cfg).unwrap();
            let z_t = net.clip_timbre(&clip.samples);
            let bank = ExemplarBank::new(&cfg, &clip.samples).unwrap();
            std::hint::black_box((z_t[0], bank.frames()))
        })
    });
    group.bench_function("10s/file-to-every-analysis/two-threads", |b| {
        b.iter(|| {
            let analysis =
                timbreswap_engine::reference::analyse_reference_file(&path, &cfg, Some(&net))
                    .unwrap();
            std::hint::black_box((analysis.z_t.unwrap()[0], analysis.bank.unwrap().frames()))
        })
    });
    group.finish();
    let _ = std::fs::remove_file(&path);
}

criterion_group!(benches, engine_blocks, network_frame, reference_clip);
criterion_main!(benches);
