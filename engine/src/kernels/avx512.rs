//! AVX-512F kernels (16 lanes). Column tails use masked loads, so there is no scalar tail.

use std::arch::x86_64::*;

/// Mask of the lowest `n` lanes, `n < 16`.
#[inline]
fn tail_mask(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// Horizontal sums of four vectors, as the four lanes of the result: each is folded to
/// 256 bits, then the AVX2 four-way reduction (AVX-512F implies AVX2 and FMA).
#[inline]
#[target_feature(enable = "avx512f")]
fn hsum4(a: __m512, b: __m512, c: __m512, d: __m512) -> __m128 {
    super::avx2::hsum4(fold(a), fold(b), fold(c), fold(d))
}

/// Sum of the two 256-bit halves.
#[inline]
#[target_feature(enable = "avx512f")]
fn fold(v: __m512) -> __m256 {
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    _mm256_add_ps(_mm512_castps512_ps256(v), hi)
}

/// Same layout and blocking as the AVX2 version: four rows sharing the loads of `x`, two
/// accumulators per row, then one masked step for the last `cols % 16` columns.
///
/// # Safety
/// AVX-512F available; `rows >= 1`; `w` valid for `rows * cols` reads, `bias` for `rows`
/// reads, `x` for `cols` reads, `y` for `rows` writes.
#[target_feature(enable = "avx512f")]
unsafe fn matvec_raw(
    w: *const f32,
    bias: *const f32,
    x: *const f32,
    y: *mut f32,
    rows: usize,
    cols: usize,
) {
    let last = rows - 1;
    let end32 = cols & !31;
    let end16 = cols & !15;
    let mask = tail_mask(cols - end16);
    let mut r = 0;
    while r < rows {
        // Where fewer than four rows remain the block repeats row `last` (same stores).
        let idx = [r, (r + 1).min(last), (r + 2).min(last), (r + 3).min(last)];
        // SAFETY: every index is < rows, so each row start lies inside `w`.
        let (p0, p1, p2, p3) = unsafe {
            (
                w.add(idx[0] * cols),
                w.add(idx[1] * cols),
                w.add(idx[2] * cols),
                w.add(idx[3] * cols),
            )
        };
        let z = _mm512_setzero_ps();
        let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
        let (mut b0, mut b1, mut b2, mut b3) = (z, z, z, z);
        let mut c = 0;
        while c < end32 {
            // SAFETY: c + 32 <= cols, so the 32 floats read from `x` and from each row are
            // in bounds; unaligned loads.
            unsafe {
                let x0 = _mm512_loadu_ps(x.add(c));
                let x1 = _mm512_loadu_ps(x.add(c + 16));
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(p0.add(c)), x0, a0);
                a1 = _mm512_fmadd_ps(_mm512_loadu_ps(p1.add(c)), x0, a1);
                a2 = _mm512_fmadd_ps(_mm512_loadu_ps(p2.add(c)), x0, a2);
                a3 = _mm512_fmadd_ps(_mm512_loadu_ps(p3.add(c)), x0, a3);
                b0 = _mm512_fmadd_ps(_mm512_loadu_ps(p0.add(c + 16)), x1, b0);
                b1 = _mm512_fmadd_ps(_mm512_loadu_ps(p1.add(c + 16)), x1, b1);
                b2 = _mm512_fmadd_ps(_mm512_loadu_ps(p2.add(c + 16)), x1, b2);
                b3 = _mm512_fmadd_ps(_mm512_loadu_ps(p3.add(c + 16)), x1, b3);
            }
            c += 32;
        }
        if c < end16 {
            // SAFETY: c + 16 <= cols; unaligned loads in bounds.
            unsafe {
                let x0 = _mm512_loadu_ps(x.add(c));
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(p0.add(c)), x0, a0);
                a1 = _mm512_fmadd_ps(_mm512_loadu_ps(p1.add(c)), x0, a1);
                a2 = _mm512_fmadd_ps(_mm512_loadu_ps(p2.add(c)), x0, a2);
                a3 = _mm512_fmadd_ps(_mm512_loadu_ps(p3.add(c)), x0, a3);
            }
        }
        if end16 < cols {
            // SAFETY: only the lanes in `mask` (columns end16..cols, in bounds) are read;
            // masked-off lanes are not accessed (AVX-512 fault suppression) and read as 0.
            unsafe {
                let x0 = _mm512_maskz_loadu_ps(mask, x.add(end16));
                b0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, p0.add(end16)), x0, b0);
                b1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, p1.add(end16)), x0, b1);
                b2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, p2.add(end16)), x0, b2);
                b3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, p3.add(end16)), x0, b3);
            }
        }
        let sums = hsum4(
            _mm512_add_ps(a0, b0),
            _mm512_add_ps(a1, b1),
            _mm512_add_ps(a2, b2),
            _mm512_add_ps(a3, b3),
        );
        let mut out = [0.0f32; 4];
        // SAFETY: `out` holds four floats; unaligned store.
        unsafe { _mm_storeu_ps(out.as_mut_ptr(), sums) };
        for (s, &row) in out.iter().zip(&idx) {
            // SAFETY: row < rows indexes `bias` and `y` in bounds.
            unsafe { *y.add(row) = s + *bias.add(row) };
        }
        r += 4;
    }
}

/// # Safety
/// AVX-512F available; the [`super::MatvecFn`] length contract holds.
#[target_feature(enable = "avx512f")]
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

/// Blocks of four weight rows × four frames (sixteen accumulators), then of two rows for the
/// rows left over, masked column tail; leftover frames go through `matvec_raw`.
///
/// # Safety
/// AVX-512F available; the [`super::MatmulFn`] length contract holds.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn matmul_bias(w: &[f32], bias: &[f32], x: &[f32], frames: usize, y: &mut [f32]) {
    let rows = bias.len();
    let cols = x.len() / frames;
    let (wp, bp, xp, yp) = (w.as_ptr(), bias.as_ptr(), x.as_ptr(), y.as_mut_ptr());
    let end16 = cols & !15;
    let mask = tail_mask(cols - end16);
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
        // Four rows at a time: sixteen accumulators, each weight and input load shared by
        // four multiply-adds.
        while r + 4 <= rows {
            // SAFETY: rows r..r+4 exist, so these row starts lie inside `w`.
            let ps = unsafe {
                [
                    wp.add(r * cols),
                    wp.add((r + 1) * cols),
                    wp.add((r + 2) * cols),
                    wp.add((r + 3) * cols),
                ]
            };
            let z = _mm512_setzero_ps();
            let mut acc = [[z; 4]; 4];
            let mut c = 0;
            while c < end16 {
                // SAFETY: c + 16 <= cols for all four rows and all four frames; unaligned
                // loads.
                unsafe {
                    let ws = ps.map(|p| _mm512_loadu_ps(p.add(c)));
                    for (k, xk) in xs.iter().enumerate() {
                        let xv = _mm512_loadu_ps(xk.add(c));
                        for (row, wv) in acc.iter_mut().zip(ws) {
                            row[k] = _mm512_fmadd_ps(wv, xv, row[k]);
                        }
                    }
                }
                c += 16;
            }
            if end16 < cols {
                // SAFETY: only lanes in `mask` (columns end16..cols, in bounds) are read;
                // masked-off lanes are not accessed and read as 0.
                unsafe {
                    let ws = ps.map(|p| _mm512_maskz_loadu_ps(mask, p.add(end16)));
                    for (k, xk) in xs.iter().enumerate() {
                        let xv = _mm512_maskz_loadu_ps(mask, xk.add(end16));
                        for (row, wv) in acc.iter_mut().zip(ws) {
                            row[k] = _mm512_fmadd_ps(wv, xv, row[k]);
                        }
                    }
                }
            }
            for (i, row) in acc.iter().enumerate() {
                let mut out = [0.0f32; 4];
                // SAFETY: `out` holds four floats; unaligned store.
                unsafe { _mm_storeu_ps(out.as_mut_ptr(), hsum4(row[0], row[1], row[2], row[3])) };
                for (k, o) in out.iter().enumerate() {
                    // SAFETY: frame f + k < frames and row r + i < rows index `y` and `bias`
                    // in bounds.
                    unsafe { *yp.add((f + k) * rows + r + i) = o + *bp.add(r + i) };
                }
            }
            r += 4;
        }
        while r < rows {
            // An odd last row is computed twice; both stores write the same value.
            let rr = [r, (r + 1).min(last)];
            // SAFETY: both row indices are < rows, so the row starts lie inside `w`.
            let (p0, p1) = unsafe { (wp.add(rr[0] * cols), wp.add(rr[1] * cols)) };
            let z = _mm512_setzero_ps();
            let mut a = [z; 4];
            let mut b = [z; 4];
            let mut c = 0;
            while c < end16 {
                // SAFETY: c + 16 <= cols for both rows and all four frames; unaligned loads.
                unsafe {
                    let w0 = _mm512_loadu_ps(p0.add(c));
                    let w1 = _mm512_loadu_ps(p1.add(c));
                    for ((ak, bk), xk) in a.iter_mut().zip(b.iter_mut()).zip(xs) {
                        let xv = _mm512_loadu_ps(xk.add(c));
                        *ak = _mm512_fmadd_ps(w0, xv, *ak);
                        *bk = _mm512_fmadd_ps(w1, xv, *bk);
                    }
                }
                c += 16;
            }
            if end16 < cols {
                // SAFETY: only lanes in `mask` (columns end16..cols, in bounds) are read;
                // masked-off lanes are not accessed and read as 0.
                unsafe {
                    let w0 = _mm512_maskz_loadu_ps(mask, p0.add(end16));
                    let w1 = _mm512_maskz_loadu_ps(mask, p1.add(end16));
                    for ((ak, bk), xk) in a.iter_mut().zip(b.iter_mut()).zip(xs) {
                        let xv = _mm512_maskz_loadu_ps(mask, xk.add(end16));
                        *ak = _mm512_fmadd_ps(w0, xv, *ak);
                        *bk = _mm512_fmadd_ps(w1, xv, *bk);
                    }
                }
            }
            let mut out = [[0.0f32; 4]; 2];
            // SAFETY: each `out` row holds four floats; unaligned stores.
            unsafe {
                _mm_storeu_ps(out[0].as_mut_ptr(), hsum4(a[0], a[1], a[2], a[3]));
                _mm_storeu_ps(out[1].as_mut_ptr(), hsum4(b[0], b[1], b[2], b[3]));
            }
            for (o_row, &row) in out.iter().zip(&rr) {
                for (k, o) in o_row.iter().enumerate() {
                    // SAFETY: frame f + k < frames and row < rows index `y` and `bias` in
                    // bounds.
                    unsafe { *yp.add((f + k) * rows + row) = o + *bp.add(row) };
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
/// AVX-512F available.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn leaky_relu(y: &mut [f32], slope: f32) {
    let s = _mm512_set1_ps(slope);
    let n = y.len();
    let p = y.as_mut_ptr();
    let mut i = 0;
    while i < n {
        let m = if n - i >= 16 {
            0xffff
        } else {
            tail_mask(n - i)
        };
        // SAFETY: only lanes in `m` (elements i..min(i + 16, n), in bounds) are read and
        // written; masked-off lanes are not accessed.
        unsafe {
            let v = _mm512_maskz_loadu_ps(m, p.add(i));
            _mm512_mask_storeu_ps(p.add(i), m, _mm512_max_ps(v, _mm512_mul_ps(v, s)));
        }
        i += 16;
    }
}

/// # Safety
/// AVX-512F available; `acc.len() == x.len()`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn add_leaky_relu(acc: &mut [f32], x: &[f32], slope: f32) {
    let s = _mm512_set1_ps(slope);
    let n = acc.len();
    let (pa, px) = (acc.as_mut_ptr(), x.as_ptr());
    let mut i = 0;
    while i < n {
        let m = if n - i >= 16 {
            0xffff
        } else {
            tail_mask(n - i)
        };
        // SAFETY: only lanes in `m` (elements i..min(i + 16, n), in bounds of both slices,
        // which have equal lengths) are read and written; masked-off lanes are not accessed.
        unsafe {
            let xv = _mm512_maskz_loadu_ps(m, px.add(i));
            let av = _mm512_maskz_loadu_ps(m, pa.add(i));
            let act = _mm512_max_ps(xv, _mm512_mul_ps(xv, s));
            _mm512_mask_storeu_ps(pa.add(i), m, _mm512_add_ps(av, act));
        }
        i += 16;
    }
}

/// `Σ a[i] b[i]`: two 16-lane FMA chains, the last `len % 16` products in one masked step.
///
/// # Safety
/// AVX-512F available; `a.len() == b.len()`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let (end32, end16) = (n & !31, n & !15);
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut s0, mut s1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let mut i = 0;
    while i < end32 {
        // SAFETY: i + 32 <= n = both lengths; unaligned loads.
        unsafe {
            s0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), s0);
            s1 = _mm512_fmadd_ps(
                _mm512_loadu_ps(pa.add(i + 16)),
                _mm512_loadu_ps(pb.add(i + 16)),
                s1,
            );
        }
        i += 32;
    }
    if i < end16 {
        // SAFETY: i + 16 <= n.
        unsafe {
            s0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), s0);
        }
        i += 16;
    }
    if i < n {
        let mask = tail_mask(n - i);
        // SAFETY: the mask reads only lanes i..n, inside both slices; masked-off lanes are
        // not accessed.
        unsafe {
            s1 = _mm512_fmadd_ps(
                _mm512_maskz_loadu_ps(mask, pa.add(i)),
                _mm512_maskz_loadu_ps(mask, pb.add(i)),
                s1,
            );
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(s0, s1))
}
