//! Matrix-vector kernels over narrowed weights: f16 ([`crate::half`]) and int8 with one scale
//! per row ([`crate::int8`]). The weights are widened to f32 in registers; products and sums
//! are f32, as in the f32 kernels, so only the bytes read per frame change.
//!
//! One generic kernel per instruction set serves both weight types through [`Narrow`] (how
//! eight or sixteen weights are loaded and widened); `scales`, when given, multiplies each
//! row's sum before the bias is added (int8), and is `None` for f16.
//!
//! The network's per-frame cost is the weight bytes it streams through the cache (about
//! 4.5 MB of f32 weights per 5 ms frame do not stay in a 2 MB L2); f16 halves them, int8
//! quarters them.

#![deny(unsafe_op_in_unsafe_fn)]

/// A narrowed weight type: its exact f32 value, and SIMD loads that widen consecutive weights.
pub(crate) trait Narrow: Copy {
    /// The weight's value in f32 (exact).
    fn widen(self) -> f32;

    /// Eight weights from `p`, widened.
    ///
    /// # Safety
    /// AVX2, FMA and F16C available; `p .. p + 8` readable.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256;

    /// Sixteen weights from `p`, widened.
    ///
    /// # Safety
    /// AVX-512F available; `p .. p + 16` readable.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load16(p: *const Self) -> std::arch::x86_64::__m512;
}

/// f16 weights as their bit patterns.
impl Narrow for u16 {
    #[inline]
    fn widen(self) -> f32 {
        crate::half::f32_from_bits(self)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        // SAFETY: per the contract, 8 halves (16 bytes) are readable; unaligned load.
        _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.cast()) })
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load16(p: *const Self) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        // SAFETY: per the contract, 16 halves (32 bytes) are readable; unaligned load.
        _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p.cast()) })
    }
}

/// int8 weights (the row's scale is applied to the sum).
impl Narrow for i8 {
    #[inline]
    fn widen(self) -> f32 {
        f32::from(self)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        // SAFETY: per the contract, 8 bytes are readable; `_mm_loadl_epi64` reads exactly 8,
        // unaligned.
        let bytes = unsafe { _mm_loadl_epi64(p.cast()) };
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes))
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load16(p: *const Self) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        // SAFETY: per the contract, 16 bytes are readable; unaligned load.
        let bytes = unsafe { _mm_loadu_si128(p.cast()) };
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes))
    }
}

/// How many rows ahead of the block of four being summed the SIMD kernels ask for their
/// weights ([`prefetch`]): the next block. A frame's weights do not stay in a 2 MB L2 from one
/// frame to the next, and what the hardware fetches ahead by itself (it does not cross a 4 KiB
/// page) did not keep the f16 product fed: asked for one block ahead, the f16 network step runs
/// about a quarter faster on a 2 MB-L2 Xeon (docs/benchmarks.md, "f16 weights"). The f32
/// kernels (`kernels/`) gained nothing from it and do not ask.
#[cfg(target_arch = "x86_64")]
const PREFETCH_ROWS: usize = 4;

/// Asks for the cache line holding `p` ahead of its use (into every level). A hint: it reads
/// nothing the program sees, never faults and changes no value, whatever the address, so `p`
/// may point past the end of its allocation (made with `wrapping_add`). Realtime-safe.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch<T>(p: *const T) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    // SAFETY: PREFETCHT0 (SSE, part of every x86_64 CPU) accesses no memory architecturally and
    // cannot fault, so any address is sound.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
}

/// Row `r`'s result from its sum: `sum * scales[r] + bias[r]` (`sum + bias[r]` without scales).
#[inline(always)]
fn finish(sum: f32, r: usize, scales: Option<&[f32]>, bias: &[f32]) -> f32 {
    match scales {
        Some(s) => sum * s[r] + bias[r],
        None => sum + bias[r],
    }
}

/// `y[r] = Σ_c widen(w[r cols + c]) x[c] (× scales[r]) + bias[r]` in plain Rust: the reference
/// the SIMD kernels are tested against, and the fallback of a table without one (a network
/// widens its weights at load for such a table instead, which is faster). `x` non-empty, `w.len() == y.len() * x.len()`, `bias.len() == y.len()`,
/// `scales` (when given) as long as `bias`. Realtime-safe.
pub(crate) fn matvec_portable<T: Narrow>(
    w: &[T],
    scales: Option<&[f32]>,
    bias: &[f32],
    x: &[f32],
    y: &mut [f32],
) {
    for (r, (yr, row)) in y.iter_mut().zip(w.chunks_exact(x.len())).enumerate() {
        let mut acc = [0.0f32; 8];
        let (cw, cx) = (row.chunks_exact(8), x.chunks_exact(8));
        let (rw, rx) = (cw.remainder(), cx.remainder());
        for (ws, xs) in cw.zip(cx) {
            for ((a, w), x) in acc.iter_mut().zip(ws).zip(xs) {
                *a += w.widen() * x;
            }
        }
        let mut sum: f32 = acc.iter().sum();
        for (w, x) in rw.iter().zip(rx) {
            sum += w.widen() * x;
        }
        *yr = finish(sum, r, scales, bias);
    }
}

/// AVX2+FMA (with F16C for the f16 loads): eight weights widened per load, four rows sharing
/// the loads of `x`, two accumulators per row (the blocking of the f32 kernel).
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use super::{finish, Narrow};
    use std::arch::x86_64::*;

    /// [`super::matvec_portable`] with AVX2.
    ///
    /// # Safety
    /// AVX2, FMA and F16C available; `x` non-empty, `w.len() == y.len() * x.len()`,
    /// `bias.len() == y.len()`, `y` non-empty, `scales` (when given) as long as `bias`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn matvec<T: Narrow>(
        w: &[T],
        scales: Option<&[f32]>,
        bias: &[f32],
        x: &[f32],
        y: &mut [f32],
    ) {
        let (rows, cols) = (y.len(), x.len());
        let last = rows - 1;
        let end16 = cols & !15;
        let end8 = cols & !7;
        let (w, x) = (w.as_ptr(), x.as_ptr());
        // The same columns of the next block of rows (past the last row: a hint, not read).
        let ahead = super::PREFETCH_ROWS * cols;
        let mut r = 0;
        while r < rows {
            // Where fewer than four rows remain the block repeats row `last` (same stores).
            let idx = [r, (r + 1).min(last), (r + 2).min(last), (r + 3).min(last)];
            // SAFETY: every index is < rows, so each row's `cols` weights lie inside `w`.
            let p = idx.map(|i| unsafe { w.add(i * cols) });
            let z = _mm256_setzero_ps();
            let (mut a, mut b) = ([z; 4], [z; 4]);
            let mut c = 0;
            while c < end16 {
                // SAFETY: c + 16 <= cols: the 16 floats of `x` are in bounds.
                let (x0, x1) =
                    unsafe { (_mm256_loadu_ps(x.add(c)), _mm256_loadu_ps(x.add(c + 8))) };
                for k in 0..4 {
                    // Once per 32 bytes of the row: a line or half of one (f16, int8).
                    super::prefetch(p[k].wrapping_add(ahead + c));
                    // SAFETY: c + 16 <= cols: both groups of 8 weights lie in row k.
                    let (w0, w1) = unsafe { (T::load8(p[k].add(c)), T::load8(p[k].add(c + 8))) };
                    a[k] = _mm256_fmadd_ps(w0, x0, a[k]);
                    b[k] = _mm256_fmadd_ps(w1, x1, b[k]);
                }
                c += 16;
            }
            if c < end8 {
                // SAFETY: c + 8 <= cols.
                let x0 = unsafe { _mm256_loadu_ps(x.add(c)) };
                for k in 0..4 {
                    // SAFETY: c + 8 <= cols: the 8 weights lie in row k.
                    a[k] = _mm256_fmadd_ps(unsafe { T::load8(p[k].add(c)) }, x0, a[k]);
                }
            }
            let sums = crate::kernels::avx2_hsum4(
                _mm256_add_ps(a[0], b[0]),
                _mm256_add_ps(a[1], b[1]),
                _mm256_add_ps(a[2], b[2]),
                _mm256_add_ps(a[3], b[3]),
            );
            let mut out = [0.0f32; 4];
            // SAFETY: `out` holds four floats; unaligned store.
            unsafe { _mm_storeu_ps(out.as_mut_ptr(), sums) };
            for ((o, row), &i) in out.iter_mut().zip(p).zip(&idx) {
                for cc in end8..cols {
                    // SAFETY: cc < cols indexes the row and `x` in bounds.
                    *o += unsafe { (*row.add(cc)).widen() * *x.add(cc) };
                }
                y[i] = finish(*o, i, scales, bias);
            }
            r += 4;
        }
    }
}

/// AVX-512F: sixteen weights widened per load (`vcvtph2ps` and `vpmovsxbd` are part of
/// AVX-512F), the blocking of the f32 kernel, the last `cols % 16` columns in plain code.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use super::{finish, Narrow};
    use std::arch::x86_64::*;

    /// [`super::matvec_portable`] with AVX-512F.
    ///
    /// # Safety
    /// AVX-512F available; `x` non-empty, `w.len() == y.len() * x.len()`,
    /// `bias.len() == y.len()`, `y` non-empty, `scales` (when given) as long as `bias`.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn matvec<T: Narrow>(
        w: &[T],
        scales: Option<&[f32]>,
        bias: &[f32],
        x: &[f32],
        y: &mut [f32],
    ) {
        let (rows, cols) = (y.len(), x.len());
        let last = rows - 1;
        let end32 = cols & !31;
        let end16 = cols & !15;
        let (w, x) = (w.as_ptr(), x.as_ptr());
        // The same columns of the next block of rows (past the last row: a hint, not read).
        let ahead = super::PREFETCH_ROWS * cols;
        let mut r = 0;
        while r < rows {
            let idx = [r, (r + 1).min(last), (r + 2).min(last), (r + 3).min(last)];
            // SAFETY: every index is < rows, so each row's `cols` weights lie inside `w`.
            let p = idx.map(|i| unsafe { w.add(i * cols) });
            let z = _mm512_setzero_ps();
            let (mut a, mut b) = ([z; 4], [z; 4]);
            let mut c = 0;
            while c < end32 {
                // SAFETY: c + 32 <= cols: the 32 floats of `x` are in bounds.
                let (x0, x1) =
                    unsafe { (_mm512_loadu_ps(x.add(c)), _mm512_loadu_ps(x.add(c + 16))) };
                for k in 0..4 {
                    // One line of f16 weights (half of one of int8) per row and step.
                    super::prefetch(p[k].wrapping_add(ahead + c));
                    // SAFETY: c + 32 <= cols: both groups of 16 weights lie in row k.
                    let (w0, w1) = unsafe { (T::load16(p[k].add(c)), T::load16(p[k].add(c + 16))) };
                    a[k] = _mm512_fmadd_ps(w0, x0, a[k]);
                    b[k] = _mm512_fmadd_ps(w1, x1, b[k]);
                }
                c += 32;
            }
            if c < end16 {
                // SAFETY: c + 16 <= cols.
                let x0 = unsafe { _mm512_loadu_ps(x.add(c)) };
                for k in 0..4 {
                    // SAFETY: c + 16 <= cols: the 16 weights lie in row k.
                    a[k] = _mm512_fmadd_ps(unsafe { T::load16(p[k].add(c)) }, x0, a[k]);
                }
            }
            for k in 0..4 {
                let mut o = _mm512_reduce_add_ps(_mm512_add_ps(a[k], b[k]));
                for cc in end16..cols {
                    // SAFETY: cc < cols indexes the row and `x` in bounds.
                    o += unsafe { (*p[k].add(cc)).widen() * *x.add(cc) };
                }
                y[idx[k]] = finish(o, idx[k], scales, bias);
            }
            r += 4;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel under test, writing its product into the slice.
    type Kernel<'a> = Box<dyn Fn(&mut [f32]) + 'a>;

    /// Every kernel for weights of type `T` agrees with an f64 reference on the same weights,
    /// at sizes that cover every tail, and never reads outside its rows. `draw` makes a weight
    /// from a value in [-0.5, 0.5).
    fn kernels_match_the_reference<T: Narrow>(draw: impl Fn(f32) -> T, with_scales: bool) {
        let mut rng = crate::test_rng::XorShift::new(99);
        let mut next = || rng.next_centred();
        for (rows, cols) in [
            (1, 1),
            (3, 7),
            (4, 8),
            (5, 15),
            (7, 16),
            (9, 17),
            (6, 31),
            (13, 33),
            (64, 300),
        ] {
            let w: Vec<T> = (0..rows * cols).map(|_| draw(next())).collect();
            let x: Vec<f32> = (0..cols).map(|_| 4.0 * next()).collect();
            let bias: Vec<f32> = (0..rows).map(|_| next()).collect();
            let scales: Option<Vec<f32>> =
                with_scales.then(|| (0..rows).map(|_| 0.01 * (1.0 + next())).collect());
            let scale_of = |r: usize| scales.as_ref().map_or(1.0, |s| f64::from(s[r]));
            let term = |r: usize, c: usize| f64::from(w[r * cols + c].widen()) * f64::from(x[c]);
            let reference: Vec<f64> = (0..rows)
                .map(|r| {
                    (0..cols).map(|c| term(r, c)).sum::<f64>() * scale_of(r) + f64::from(bias[r])
                })
                .collect();
            let size: Vec<f64> = (0..rows)
                .map(|r| {
                    (0..cols).map(|c| term(r, c).abs()).sum::<f64>() * scale_of(r)
                        + f64::from(bias[r]).abs()
                })
                .collect();
            let s = scales.as_deref();
            let mut kernels: Vec<(&str, Kernel)> = vec![(
                "portable",
                Box::new(|y: &mut [f32]| matvec_portable(&w, s, &bias, &x, y)),
            )];
            #[cfg(target_arch = "x86_64")]
            {
                use std::arch::is_x86_feature_detected as has;
                if has!("avx2") && has!("fma") && has!("f16c") {
                    // SAFETY: features detected; lengths as the contract asks.
                    kernels.push((
                        "AVX2",
                        Box::new(|y: &mut [f32]| unsafe { avx2::matvec(&w, s, &bias, &x, y) }),
                    ));
                }
                if has!("avx512f") {
                    // SAFETY: feature detected; lengths as the contract asks.
                    kernels.push((
                        "AVX-512F",
                        Box::new(|y: &mut [f32]| unsafe { avx512::matvec(&w, s, &bias, &x, y) }),
                    ));
                }
            }
            for (name, kernel) in &kernels {
                let mut y = vec![f32::NAN; rows];
                kernel(&mut y);
                for r in 0..rows {
                    let err = (f64::from(y[r]) - reference[r]).abs();
                    assert!(
                        err <= 1e-5 * size[r] + 1e-7,
                        "{name} {rows}x{cols} row {r}: {} vs {}",
                        y[r],
                        reference[r]
                    );
                }
            }
        }
    }

    #[test]
    fn f16_kernels_match_the_reference() {
        kernels_match_the_reference(crate::half::f16_bits, false);
    }

    #[test]
    fn int8_kernels_match_the_reference() {
        kernels_match_the_reference(|v| (v * 254.0).round().clamp(-127.0, 127.0) as i8, true);
    }
}
