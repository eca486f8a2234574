//! The kernel sets against an f64 reference and against each other, at awkward shapes.

use super::*;

/// SplitMix64, for reproducible test data without a dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn next_f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next_f32()).collect()
    }
}

/// The network's shapes plus awkward ones (rows, cols).
const SHAPES: &[(usize, usize)] = &[
    (1, 1),
    (3, 5),
    (7, 17),
    (33, 65),
    (257, 192),
    (192, 384),
    (192, 257),
    (192, 321),
    (192, 160),
    (128, 192),
    (64, 192),
    (0, 5),
    (5, 0),
    (0, 0),
];

/// `f64` reference of `y = W x + b` and the error scale `Σ|w x| + |b|` per row.
fn reference(w: &[f32], b: &[f32], x: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let cols = x.len();
    (0..b.len())
        .map(|r| {
            let row = &w[r * cols..(r + 1) * cols];
            let terms = row.iter().zip(x).map(|(&p, &q)| p as f64 * q as f64);
            let sum: f64 = terms.clone().sum();
            let mag: f64 = terms.map(f64::abs).sum();
            (sum + b[r] as f64, mag + (b[r] as f64).abs())
        })
        .unzip()
}

fn assert_close(got: &[f32], want: &[f64], scale: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= 1e-5 * s + 1e-30,
            "{what}: element {i}: got {g}, want {w}, error {err:e} > 1e-5 × {s}"
        );
    }
}

fn all_kernels() -> Vec<Kernels> {
    let isas = Kernels::available();
    assert_eq!(isas.last(), Some(&Isa::Scalar));
    isas.into_iter()
        .map(|isa| Kernels::for_isa(isa).expect("available ISA builds"))
        .collect()
}

fn all_shapes() -> Vec<(usize, usize)> {
    // Every row remainder mod 4 and every column remainder mod 32, plus the listed ones.
    let mut shapes: Vec<_> = (1..=9)
        .flat_map(|r| (1..=70).map(move |c| (r, c)))
        .collect();
    shapes.extend_from_slice(SHAPES);
    shapes
}

#[test]
fn dispatch_is_consistent() {
    let best = Kernels::best();
    let available = Kernels::available();
    assert_eq!(available.first(), Some(&best.isa()));
    assert!(Kernels::for_isa(Isa::Scalar).is_some());
    for isa in [Isa::Scalar, Isa::Avx2Fma, Isa::Avx512, Isa::Neon] {
        let k = Kernels::for_isa(isa);
        assert_eq!(k.is_some(), available.contains(&isa), "{isa}");
        if let Some(k) = k {
            assert_eq!(k.isa(), isa);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        assert!(!available.contains(&Isa::Neon));
        if is_x86_feature_detected!("avx512f") {
            assert_eq!(best.isa(), Isa::Avx512);
        } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            assert_eq!(best.isa(), Isa::Avx2Fma);
        }
    }
    assert_eq!(Isa::Avx2Fma.to_string(), "AVX2+FMA");
    assert_eq!(
        format!("{best:?}"),
        format!("Kernels {{ isa: {:?} }}", best.isa())
    );
    eprintln!("kernels available: {available:?}, best {}", best.isa());
}

#[test]
fn matvec_matches_f64_reference() {
    let mut rng = SplitMix(1);
    for k in all_kernels() {
        for (rows, cols) in all_shapes() {
            let w = rng.vec(rows * cols);
            let b = rng.vec(rows);
            let x = rng.vec(cols);
            let mut y = vec![f32::NAN; rows];
            k.matvec_bias(&w, &b, &x, &mut y);
            let (want, scale) = reference(&w, &b, &x);
            assert_close(
                &y,
                &want,
                &scale,
                &format!("{} matvec {rows}x{cols}", k.isa()),
            );
        }
    }
}

#[test]
fn matvec_large_magnitudes_and_offsets() {
    // Cancellation-heavy data (large values, mixed signs) and unaligned sub-slices.
    let mut rng = SplitMix(2);
    for k in all_kernels() {
        for &(rows, cols) in &[(192, 384), (257, 192), (13, 37)] {
            let w: Vec<f32> = rng.vec(rows * cols + 3).iter().map(|v| v * 1e3).collect();
            let b: Vec<f32> = rng.vec(rows + 1).iter().map(|v| v * 1e4).collect();
            let x: Vec<f32> = rng.vec(cols + 2).iter().map(|v| v * 1e2).collect();
            let (w, b, x) = (&w[3..], &b[1..], &x[2..]);
            let mut y = vec![f32::NAN; rows + 1];
            k.matvec_bias(w, b, x, &mut y[1..]);
            let (want, scale) = reference(w, b, x);
            assert_close(
                &y[1..],
                &want,
                &scale,
                &format!("{} offsets {rows}x{cols}", k.isa()),
            );
            assert!(y[0].is_nan(), "wrote outside the output");
        }
    }
}

#[test]
fn matmul_matches_matvec_and_reference() {
    let mut rng = SplitMix(3);
    let shapes = [
        (1, 1),
        (3, 5),
        (7, 17),
        (33, 65),
        (257, 192),
        (64, 192),
        (2, 31),
        (5, 0),
        (0, 5),
    ];
    for k in all_kernels() {
        for &(rows, cols) in &shapes {
            for frames in [0, 1, 2, 3, 4, 5, 7, 8, 9, 13] {
                let w = rng.vec(rows * cols);
                let b = rng.vec(rows);
                let x = rng.vec(frames * cols);
                let mut y = vec![f32::NAN; frames * rows];
                k.matmul_bias(&w, &b, &x, frames, &mut y);
                let what = format!("{} matmul {frames}x({rows}x{cols})", k.isa());
                for f in 0..frames {
                    let xf = &x[f * cols..(f + 1) * cols];
                    let yf = &y[f * rows..(f + 1) * rows];
                    let (want, scale) = reference(&w, &b, xf);
                    assert_close(yf, &want, &scale, &what);
                    let mut one = vec![f32::NAN; rows];
                    k.matvec_bias(&w, &b, xf, &mut one);
                    // Different blocking may change the summation order: compare within
                    // twice the reference tolerance.
                    for ((&p, &q), &s) in yf.iter().zip(&one).zip(&scale) {
                        assert!(
                            ((p - q) as f64).abs() <= 2e-5 * s + 1e-30,
                            "{what}: {p} vs {q}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn activations_match_scalar_definition() {
    let mut rng = SplitMix(4);
    for k in all_kernels() {
        for n in 0..70 {
            for slope in [0.1f32, 0.0, 1.0, 0.25] {
                let v: Vec<f32> = rng.vec(n).iter().map(|v| v * 10.0).collect();
                let mut y = v.clone();
                k.leaky_relu(&mut y, slope);
                for (&g, &x) in y.iter().zip(&v) {
                    let want = if x >= 0.0 { x } else { slope * x };
                    assert_eq!(g.to_bits(), want.to_bits(), "{} leaky {n}: {x}", k.isa());
                }
                let acc0 = rng.vec(n);
                let mut acc = acc0.clone();
                k.add_leaky_relu(&mut acc, &v, slope);
                for ((&g, &a), &x) in acc.iter().zip(&acc0).zip(&v) {
                    let want = a + if x >= 0.0 { x } else { slope * x };
                    assert_eq!(
                        g.to_bits(),
                        want.to_bits(),
                        "{} add_leaky {n}: {x}",
                        k.isa()
                    );
                }
            }
        }
    }
}

#[test]
fn activations_touch_only_their_slice() {
    for k in all_kernels() {
        let mut buf = [-1.0f32; 40];
        k.leaky_relu(&mut buf[3..22], 0.1);
        assert!(buf[..3].iter().chain(&buf[22..]).all(|&v| v == -1.0));
        assert!(buf[3..22].iter().all(|&v| v == -0.1));
        let x = vec![2.0f32; 19];
        k.add_leaky_relu(&mut buf[3..22], &x, 0.1);
        assert!(buf[..3].iter().chain(&buf[22..]).all(|&v| v == -1.0));
        assert!(buf[3..22].iter().all(|&v| v == 1.9));
    }
}

/// Inconsistent lengths: release builds zero the output and return.
#[cfg(not(debug_assertions))]
#[test]
fn mismatched_lengths_zero_the_output() {
    for k in all_kernels() {
        let w = vec![1.0f32; 12];
        let b = vec![1.0f32; 3];
        let x = vec![1.0f32; 4];
        // w too short, bias too short, x too long.
        for (wl, bl, xl) in [(11, 3, 4), (12, 2, 4), (12, 3, 5)] {
            let mut y = vec![7.0f32; 3];
            let xs = vec![1.0f32; xl];
            k.matvec_bias(&w[..wl.min(12)], &b[..bl], &xs, &mut y);
            assert_eq!(y, [0.0; 3], "{} matvec ({wl}, {bl}, {xl})", k.isa());
        }
        // Frames not dividing x, y of the wrong size, w of the wrong size, zero frames.
        let x2 = vec![1.0f32; 8];
        let mut y = vec![7.0f32; 6];
        k.matmul_bias(&w, &b, &x2[..7], 2, &mut y);
        assert_eq!(y, [0.0; 6]);
        let mut y = vec![7.0f32; 5];
        k.matmul_bias(&w, &b, &x2, 2, &mut y);
        assert_eq!(y, [0.0; 5]);
        let mut y = vec![7.0f32; 6];
        k.matmul_bias(&w[..9], &b, &x2, 2, &mut y);
        assert_eq!(y, [0.0; 6]);
        let mut y = vec![7.0f32; 6];
        k.matmul_bias(&w, &b, &x2, 0, &mut y);
        assert_eq!(y, [0.0; 6]);
        let mut acc = vec![7.0f32; 3];
        k.add_leaky_relu(&mut acc, &x, 0.1);
        assert_eq!(acc, [0.0; 3]);
        // The consistent call still works afterwards.
        let mut y = vec![0.0f32; 3];
        k.matvec_bias(&w, &b, &x, &mut y);
        assert_eq!(y, [5.0; 3]);
    }
}

/// Inconsistent lengths: debug builds stop at the `debug_assert!`.
#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "matvec_bias")]
fn mismatched_lengths_debug_assert() {
    let mut y = vec![0.0f32; 3];
    Kernels::best().matvec_bias(&[1.0; 11], &[0.0; 3], &[1.0; 4], &mut y);
}

#[test]
fn degenerate_shapes() {
    for k in all_kernels() {
        // No columns: y = bias, for one frame and for several.
        let mut y = vec![f32::NAN; 3];
        k.matvec_bias(&[], &[1.0, 2.0, 3.0], &[], &mut y);
        assert_eq!(y, [1.0, 2.0, 3.0]);
        let mut y = vec![f32::NAN; 6];
        k.matmul_bias(&[], &[1.0, 2.0, 3.0], &[], 2, &mut y);
        assert_eq!(y, [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
        // No rows, no frames.
        k.matvec_bias(&[], &[], &[1.0; 4], &mut []);
        k.matmul_bias(&[], &[], &[1.0; 8], 2, &mut []);
        k.matmul_bias(&[1.0; 6], &[1.0; 2], &[], 0, &mut []);
        k.leaky_relu(&mut [], 0.1);
        k.add_leaky_relu(&mut [], &[], 0.1);
    }
}

/// Every set's dot product against the f64 sum, at every length up to 100 (each tail of the
/// 8- and 16-lane loops, with and without the 32-wide block) and at the resamplers' lengths;
/// unequal lengths give 0.
#[test]
fn dot_matches_f64_reference() {
    let mut rng = SplitMix(7);
    for k in all_kernels() {
        for n in (0..=100).chain([148, 1024, 1031]) {
            let (a, b) = (rng.vec(n), rng.vec(n));
            let (want, scale) = reference(&a, &[0.0], &b);
            assert_close(
                &[k.dot(&a, &b)],
                &want,
                &scale,
                &format!("{} dot {n}", k.isa()),
            );
        }
    }
}

#[test]
#[cfg(not(debug_assertions))]
fn dot_of_unequal_lengths_is_zero() {
    for k in all_kernels() {
        assert_eq!(k.dot(&[1.0, 2.0], &[3.0]), 0.0, "{}", k.isa());
    }
}
