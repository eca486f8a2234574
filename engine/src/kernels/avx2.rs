//! AVX2+FMA kernels (8 lanes). Column tails (`cols % 8`) are done in scalar code.

use std::arch::x86_64::*;

/// Horizontal sums of four vectors, as the four lanes of the result.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn hsum4(a: __m256, b: __m256, c: __m256, d: __m256) -> __m128 {
    // Per 128-bit half: [a01, a23, b01, b23], [c01, c23, d01, d23], then [a, b, c, d].
    let ab = _mm256_hadd_ps(a, b);
    let cd = _mm256_hadd_ps(c, d);
    let abcd = _mm256_hadd_ps(ab, cd);
    _mm_add_ps(
        _mm256_castps256_ps128(abcd),
        _mm256_extractf128_ps::<1>(abcd),
    )
}

/// `y[r] = Σ_c w[r cols + c] x[c] + bias[r]`, four rows at a time sharing the loads of
/// `x`, two accumulators per row.
///
/// # Safety
/// AVX2 and FMA available; `rows >= 1`; `w` valid for `rows * cols` reads, `bias` for
/// `rows` reads, `x` for `cols` reads, `y` for `rows` writes.
#[target_feature(enable = "avx2,fma")]
unsafe fn matvec_raw(
    w: *const f32,
    bias: *const f32,
    x: *const f32,
    y: *mut f32,
    rows: usize,
    cols: usize,
) {
    let last = rows - 1;
    let end16 = cols & !15;
    let end8 = cols & !7;
    let mut r = 0;
    while r < rows {
        // The last block repeats row `last` where fewer than four rows remain; the
        // duplicates compute and store the same value.
        let idx = [r, (r + 1).min(last), (r + 2).min(last), (r + 3).min(last)];
        // SAFETY: every index is < rows, so each row start lies inside `w` and its
        // `cols` elements too.
        let (p0, p1, p2, p3) = unsafe {
            (
                w.add(idx[0] * cols),
                w.add(idx[1] * cols),
                w.add(idx[2] * cols),
                w.add(idx[3] * cols),
            )
        };
        let z = _mm256_setzero_ps();
        let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
        let (mut b0, mut b1, mut b2, mut b3) = (z, z, z, z);
        let mut c = 0;
        while c < end16 {
            // SAFETY: c + 16 <= cols, so the 16 floats read from `x` and from each row are
            // in bounds; unaligned loads, no alignment requirement.
            unsafe {
                let x0 = _mm256_loadu_ps(x.add(c));
                let x1 = _mm256_loadu_ps(x.add(c + 8));
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(p0.add(c)), x0, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(p1.add(c)), x0, a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(p2.add(c)), x0, a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(p3.add(c)), x0, a3);
                b0 = _mm256_fmadd_ps(_mm256_loadu_ps(p0.add(c + 8)), x1, b0);
                b1 = _mm256_fmadd_ps(_mm256_loadu_ps(p1.add(c + 8)), x1, b1);
                b2 = _mm256_fmadd_ps(_mm256_loadu_ps(p2.add(c + 8)), x1, b2);
                b3 = _mm256_fmadd_ps(_mm256_loadu_ps(p3.add(c + 8)), x1, b3);
            }
            c += 16;
        }
        if c < end8 {
            // SAFETY: c + 8 <= cols; unaligned loads in bounds as above.
            unsafe {
                let x0 = _mm256_loadu_ps(x.add(c));
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(p0.add(c)), x0, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(p1.add(c)), x0, a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(p2.add(c)), x0, a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(p3.add(c)), x0, a3);
            }
        }
        let sums = hsum4(
            _mm256_add_ps(a0, b0),
            _mm256_add_ps(a1, b1),
            _mm256_add_ps(a2, b2),
            _mm256_add_ps(a3, b3),
        );
        let mut out = [0.0f32; 4];
        // SAFETY: `out` holds four floats; unaligned store.
        unsafe { _mm_storeu_ps(out.as_mut_ptr(), sums) };
        for ((o, p), &row) in out.iter_mut().zip([p0, p1, p2, p3]).zip(&idx) {
            // SAFETY: columns end8..cols of `x` and of the row are in bounds; `row < rows`
            // indexes `bias` and `y` in bounds.
            unsafe {
                for cc in end8..cols {
                    *o += *p.add(cc) * *x.add(cc);
                }
                *y.add(row) = *o + *bias.add(row);
            }
        }
        r += 4;
    }
}

/// # Safety
/// AVX2 and FMA available; the [`super::MatvecFn`] length contract holds.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn matvec_bias(w: &[f32], bias: &[f32], x: &[f32], y: &mut [f32]) {
    let (rows, cols) = (y.len(), x.len());
    // SAFETY: features as per this fn's contract; the slices have exactly the lengths
    // `matvec_raw` reads and writes (rows >= 1 by contract).
    unsafe {
        matvec_raw(
            w.as_ptr(),
            bias.as_ptr(),
            x.as_ptr(),
            y.as_mut_ptr(),
            rows,
            cols,
        )
    }
}

/// Blocks of two weight rows × four frames (eight accumulators): each pair of weight
/// vectors is loaded once per four frames. Leftover frames go through `matvec_raw`.
///
/// # Safety
/// AVX2 and FMA available; the [`super::MatmulFn`] length contract holds.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn matmul_bias(w: &[f32], bias: &[f32], x: &[f32], frames: usize, y: &mut [f32]) {
    let rows = bias.len();
    let cols = x.len() / frames;
    let (wp, bp, xp, yp) = (w.as_ptr(), bias.as_ptr(), x.as_ptr(), y.as_mut_ptr());
    let end8 = cols & !7;
    let last = rows - 1;
    let mut f = 0;
    while f + 4 <= frames {
        // SAFETY: frames f..f+4 exist, so these frame starts are inside `x`.
        let xs = unsafe {
            [
                xp.add(f * cols),
                xp.add((f + 1) * cols),
                xp.add((f + 2) * cols),
                xp.add((f + 3) * cols),
            ]
        };
        let mut r = 0;
        while r < rows {
            // An odd last row is computed twice; both stores write the same value.
            let rr = [r, (r + 1).min(last)];
            // SAFETY: both row indices are < rows, so the row starts lie inside `w`.
            let (p0, p1) = unsafe { (wp.add(rr[0] * cols), wp.add(rr[1] * cols)) };
            let z = _mm256_setzero_ps();
            let mut a = [z; 4];
            let mut b = [z; 4];
            let mut c = 0;
            while c < end8 {
                // SAFETY: c + 8 <= cols for both rows and all four frames; unaligned loads.
                unsafe {
                    let w0 = _mm256_loadu_ps(p0.add(c));
                    let w1 = _mm256_loadu_ps(p1.add(c));
                    for ((ak, bk), xk) in a.iter_mut().zip(b.iter_mut()).zip(xs) {
                        let xv = _mm256_loadu_ps(xk.add(c));
                        *ak = _mm256_fmadd_ps(w0, xv, *ak);
                        *bk = _mm256_fmadd_ps(w1, xv, *bk);
                    }
                }
                c += 8;
            }
            let sa = hsum4(a[0], a[1], a[2], a[3]);
            let sb = hsum4(b[0], b[1], b[2], b[3]);
            let mut out = [[0.0f32; 4]; 2];
            // SAFETY: each `out` row holds four floats; unaligned stores.
            unsafe {
                _mm_storeu_ps(out[0].as_mut_ptr(), sa);
                _mm_storeu_ps(out[1].as_mut_ptr(), sb);
            }
            for (o_row, (&row, p)) in out.iter_mut().zip(rr.iter().zip([p0, p1])) {
                for (k, (o, xk)) in o_row.iter_mut().zip(xs).enumerate() {
                    // SAFETY: columns end8..cols are in bounds of the row and the frame;
                    // frame f + k < frames and row < rows index `y` and `bias` in bounds.
                    unsafe {
                        for cc in end8..cols {
                            *o += *p.add(cc) * *xk.add(cc);
                        }
                        *yp.add((f + k) * rows + row) = *o + *bp.add(row);
                    }
                }
            }
            r += 2;
        }
        f += 4;
    }
    while f < frames {
        // SAFETY: frame f < frames: its input and output rows are in bounds; features as
        // per this fn's contract; rows >= 1.
        unsafe {
            matvec_raw(wp, bp, xp.add(f * cols), yp.add(f * rows), rows, cols);
        }
        f += 1;
    }
}

/// # Safety
/// AVX2 available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn leaky_relu(y: &mut [f32], slope: f32) {
    let s = _mm256_set1_ps(slope);
    let mut chunks = y.chunks_exact_mut(8);
    for ch in &mut chunks {
        // SAFETY: the chunk holds exactly 8 floats; unaligned load and store.
        unsafe {
            let v = _mm256_loadu_ps(ch.as_ptr());
            _mm256_storeu_ps(ch.as_mut_ptr(), _mm256_max_ps(v, _mm256_mul_ps(v, s)));
        }
    }
    super::scalar::leaky_relu(chunks.into_remainder(), slope);
}

/// # Safety
/// AVX2 available; `acc.len() == x.len()`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn add_leaky_relu(acc: &mut [f32], x: &[f32], slope: f32) {
    let s = _mm256_set1_ps(slope);
    let mut ca = acc.chunks_exact_mut(8);
    let mut cx = x.chunks_exact(8);
    for (a, v) in (&mut ca).zip(&mut cx) {
        // SAFETY: both chunks hold exactly 8 floats; unaligned loads and store.
        unsafe {
            let xv = _mm256_loadu_ps(v.as_ptr());
            let av = _mm256_loadu_ps(a.as_ptr());
            let act = _mm256_max_ps(xv, _mm256_mul_ps(xv, s));
            _mm256_storeu_ps(a.as_mut_ptr(), _mm256_add_ps(av, act));
        }
    }
    super::scalar::add_leaky_relu(ca.into_remainder(), cx.remainder(), slope);
}

/// `Σ a[i] b[i]`: two 8-lane FMA chains, then the last `len % 8` products in scalar code.
///
/// # Safety
/// AVX2 and FMA available; `a.len() == b.len()`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let (end16, end8) = (n & !15, n & !7);
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i < end16 {
        // SAFETY: i + 16 <= n = both lengths; unaligned loads.
        unsafe {
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
            s1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i + 8)),
                _mm256_loadu_ps(pb.add(i + 8)),
                s1,
            );
        }
        i += 16;
    }
    if i < end8 {
        // SAFETY: i + 8 <= n.
        unsafe {
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
        }
        i += 8;
    }
    let s = _mm256_add_ps(s0, s1);
    let h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
    let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    let mut sum = _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps::<1>(h, h)));
    for (p, q) in a[i..].iter().zip(&b[i..]) {
        sum += p * q;
    }
    sum
}
