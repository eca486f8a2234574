//! Cost of the neural-model compute kernels, per instruction set this CPU supports.
//!
//! - `matvec_bias/<rows>x<cols>`: one matrix-vector product with bias (192×384: a residual
//!   causal convolution over two concatenated taps; 257×192: the output projection).
//!   Throughput is in multiply-adds (weights) per second.
//! - `network_frame`: the per-frame layer stack in sequence (192×321 input projection with
//!   leaky ReLU; three groups of four 192×384 residual convolutions each followed by
//!   `add_leaky_relu` into the residual stream, interleaved with 128×192, 192×257, 64×192 and
//!   192×160 projections with leaky ReLU; 257×192 output projection). Every layer has its own
//!   weights (about 4.5 MB in all, as in the real model) and reads its own preallocated input;
//!   the budget is the 5 ms hop.
//! - `matmul_bias/64x192x384`: the batched product over 64 frames (encoder pass over a clip).
//! - `real_fft/{forward,inverse}-<n>/{realfft,engine}`: one real FFT of the lengths the engine
//!   uses (the STFT's 512, YIN's 1152, the partial meter's 2048), realfft's beside the engine's
//!   own (`real_fft.rs`: the same values, bit for bit).
//!
//! Only the kernel calls are timed; all buffers are built outside `iter`.
//!
//! Run: `cargo bench -p timbreswap-engine --bench kernels`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use timbreswap_engine::kernels::{Isa, Kernels};

const SLOPE: f32 = 0.1;

/// SplitMix64-based uniform data in [-1, 1), reproducible.
fn data(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn kernels() -> Vec<(Isa, Kernels)> {
    Kernels::available()
        .into_iter()
        .filter_map(|isa| Kernels::for_isa(isa).map(|k| (isa, k)))
        .collect()
}

fn bench_matvec(c: &mut Criterion) {
    for (rows, cols) in [(192usize, 384usize), (257, 192)] {
        let w = data(1, rows * cols);
        let b = data(2, rows);
        let x = data(3, cols);
        let mut y = vec![0.0f32; rows];
        let mut group = c.benchmark_group(format!("matvec_bias/{rows}x{cols}"));
        group.throughput(Throughput::Elements((rows * cols) as u64));
        for (isa, k) in kernels() {
            group.bench_function(BenchmarkId::from_parameter(isa), |bench| {
                bench.iter(|| {
                    k.matvec_bias(black_box(&w), &b, black_box(&x), &mut y);
                    black_box(&mut y);
                })
            });
        }
        group.finish();
    }
}

/// What a layer does with its product.
#[derive(Clone, Copy)]
enum Act {
    /// Leaky ReLU in place.
    Leaky,
    /// Add leaky ReLU of the product into the residual stream.
    Residual,
    /// Nothing (output projection).
    Linear,
}

struct Layer {
    w: Vec<f32>,
    b: Vec<f32>,
    x: Vec<f32>,
    y: Vec<f32>,
    act: Act,
}

fn network() -> Vec<Layer> {
    let mut shapes: Vec<(usize, usize, Act)> = Vec::new();
    let convs = |s: &mut Vec<_>| s.extend([(192, 384, Act::Residual); 4]);
    shapes.push((192, 321, Act::Leaky));
    convs(&mut shapes);
    shapes.push((128, 192, Act::Leaky));
    shapes.push((192, 257, Act::Leaky));
    convs(&mut shapes);
    shapes.push((64, 192, Act::Leaky));
    shapes.push((192, 160, Act::Leaky));
    convs(&mut shapes);
    shapes.push((257, 192, Act::Linear));
    shapes
        .into_iter()
        .enumerate()
        .map(|(i, (rows, cols, act))| {
            let seed = 10 * i as u64;
            Layer {
                w: data(seed, rows * cols)
                    .iter()
                    .map(|v| v / (cols as f32).sqrt())
                    .collect(),
                b: data(seed + 1, rows),
                x: data(seed + 2, cols),
                y: vec![0.0; rows],
                act,
            }
        })
        .collect()
}

fn bench_network(c: &mut Criterion) {
    let mut layers = network();
    let macs: usize = layers.iter().map(|l| l.w.len()).sum();
    let mut stream = vec![0.0f32; 192];
    let mut group = c.benchmark_group("network_frame");
    group.throughput(Throughput::Elements(macs as u64));
    for (isa, k) in kernels() {
        group.bench_function(BenchmarkId::from_parameter(isa), |bench| {
            bench.iter(|| {
                for l in layers.iter_mut() {
                    k.matvec_bias(&l.w, &l.b, black_box(&l.x), &mut l.y);
                    match l.act {
                        Act::Leaky => k.leaky_relu(&mut l.y, SLOPE),
                        Act::Residual => k.add_leaky_relu(&mut stream, &l.y, SLOPE),
                        Act::Linear => {}
                    }
                    black_box(&mut l.y);
                }
                black_box(&mut stream);
            })
        });
    }
    group.finish();
}

fn bench_matmul(c: &mut Criterion) {
    let (frames, rows, cols) = (64usize, 192usize, 384usize);
    let w = data(4, rows * cols);
    let b = data(5, rows);
    let x = data(6, frames * cols);
    let mut y = vec![0.0f32; frames * rows];
    let mut group = c.benchmark_group(format!("matmul_bias/{frames}x{rows}x{cols}"));
    group.throughput(Throughput::Elements((frames * rows * cols) as u64));
    for (isa, k) in kernels() {
        group.bench_function(BenchmarkId::from_parameter(isa), |bench| {
            bench.iter(|| {
                k.matmul_bias(black_box(&w), &b, black_box(&x), frames, &mut y);
                black_box(&mut y);
            })
        });
    }
    group.finish();
}

fn bench_real_fft(c: &mut Criterion) {
    use realfft::num_complex::Complex32;
    use timbreswap_engine::real_fft::{ForwardFft, InverseFft};
    let mut group = c.benchmark_group("real_fft");
    for n in [512usize, 1152, 2048] {
        let signal = data(n as u64, n);
        let theirs = realfft::RealFftPlanner::<f32>::new().plan_fft_forward(n);
        let ours = ForwardFft::new(n);
        let (mut input, mut spectrum) = (signal.clone(), vec![Complex32::default(); n / 2 + 1]);
        let mut scratch = theirs.make_scratch_vec();
        group.bench_function(format!("forward-{n}/realfft"), |b| {
            b.iter(|| {
                input.copy_from_slice(&signal);
                let _ = theirs.process_with_scratch(&mut input, &mut spectrum, &mut scratch);
                black_box(spectrum[1])
            })
        });
        let mut scratch = ours.make_scratch();
        group.bench_function(format!("forward-{n}/engine"), |b| {
            b.iter(|| {
                input.copy_from_slice(&signal);
                ours.process(&mut input, &mut spectrum, &mut scratch);
                black_box(spectrum[1])
            })
        });
        let bins: Vec<Complex32> = spectrum.clone();
        let theirs = realfft::RealFftPlanner::<f32>::new().plan_fft_inverse(n);
        let ours = InverseFft::new(n);
        let mut scratch = theirs.make_scratch_vec();
        group.bench_function(format!("inverse-{n}/realfft"), |b| {
            b.iter(|| {
                spectrum.copy_from_slice(&bins);
                let _ = theirs.process_with_scratch(&mut spectrum, &mut input, &mut scratch);
                black_box(input[1])
            })
        });
        let mut scratch = ours.make_scratch();
        group.bench_function(format!("inverse-{n}/engine"), |b| {
            b.iter(|| {
                spectrum.copy_from_slice(&bins);
                ours.process(&mut spectrum, &mut input, &mut scratch);
                black_box(input[1])
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_matvec,
    bench_network,
    bench_matmul,
    bench_real_fft
);
criterion_main!(benches);
