//! Half-precision (IEEE 754 binary16) weights: the conversions, and matrix-vector kernels that
//! read f16 weight rows and accumulate in f32.
//!
//! A model file may store its weight matrices as f16 ([`crate::model_file`]); the network then
//! streams half the bytes per frame through the cache, which is what its per-frame cost is
//! made of (about 4.5 MB of f32 weights per 5 ms frame do not stay in a 2 MB L2). The kernels
//! exist for AVX-512F and for AVX2+FMA with F16C; with another kernel set
//! ([`Kernels::has_f16`](crate::kernels::Kernels::has_f16) false) the network widens the same
//! f16 values to f32 at load, so every kernel set computes with the same weights.
//!
//! The conversions are exact where a value is representable and round to nearest, ties to
//! even, otherwise (as the F16C instructions do), with infinities, NaN and subnormals kept.

#![deny(unsafe_op_in_unsafe_fn)]

/// The f16 nearest to `v` (ties to even), as its bit pattern. Values beyond the f16 range
/// become infinities; NaN stays NaN.
pub fn f16_bits(v: f32) -> u16 {
    let bits = v.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let mantissa = bits & 0x007f_ffff;
    if exp == 0xff {
        // Infinity, or NaN (kept quiet and non-zero).
        return sign | 0x7c00 | if mantissa != 0 { 0x0200 } else { 0 };
    }
    // The value's exponent in f16's bias.
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Subnormal in f16 (or zero): shift the full significand into place and round.
        if e < -10 {
            return sign;
        }
        let significand = mantissa | 0x0080_0000;
        let shift = (14 - e) as u32;
        let half = significand >> shift;
        let rest = significand & ((1 << shift) - 1);
        let halfway = 1 << (shift - 1);
        let round_up = rest > halfway || (rest == halfway && half & 1 == 1);
        return sign | (half + u32::from(round_up)) as u16;
    }
    let half = ((e as u32) << 10) | (mantissa >> 13);
    let rest = mantissa & 0x1fff;
    let round_up = rest > 0x1000 || (rest == 0x1000 && half & 1 == 1);
    // A carry out of the mantissa steps the exponent up, to infinity at the top: as it should.
    sign | (half + u32::from(round_up)) as u16
}

/// The f32 value of the f16 bit pattern `h` (exact).
pub fn f32_from_bits(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let mantissa = u32::from(h & 0x03ff);
    let bits = match (exp, mantissa) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: normalise the significand.
            let shift = m.leading_zeros() - 21;
            let m = (m << shift) & 0x03ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (m << 13)
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, m) => sign | 0x7fc0_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// `y[r] = Σ_c f32(w[r cols + c]) x[c] + bias[r]` in plain Rust (the reference the SIMD
/// kernels are tested against, and the fallback of
/// [`Kernels::matvec_bias_f16`](crate::kernels::Kernels::matvec_bias_f16)). `x` non-empty,
/// `w.len() == y.len() * x.len()`, `bias.len() == y.len()`. Realtime-safe.
pub(crate) fn matvec_bias_portable(w: &[u16], bias: &[f32], x: &[f32], y: &mut [f32]) {
    for ((yr, row), b) in y.iter_mut().zip(w.chunks_exact(x.len())).zip(bias) {
        let mut acc = [0.0f32; 8];
        let (cw, cx) = (row.chunks_exact(8), x.chunks_exact(8));
        let (rw, rx) = (cw.remainder(), cx.remainder());
        for (ws, xs) in cw.zip(cx) {
            for ((a, w), x) in acc.iter_mut().zip(ws).zip(xs) {
                *a += f32_from_bits(*w) * x;
            }
        }
        let mut sum: f32 = acc.iter().sum();
        for (w, x) in rw.iter().zip(rx) {
            sum += f32_from_bits(*w) * x;
        }
        *yr = sum + b;
    }
}

/// AVX2+FMA+F16C: eight f16 weights widened per instruction, four rows sharing the loads of
/// `x`, two accumulators per row (the blocking of the f32 kernel).
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX2, FMA and F16C available; `x` non-empty, `w.len() == y.len() * x.len()`,
    /// `bias.len() == y.len()`, `y` non-empty.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn matvec_bias_f16(w: &[u16], bias: &[f32], x: &[f32], y: &mut [f32]) {
        let (rows, cols) = (y.len(), x.len());
        let last = rows - 1;
        let end16 = cols & !15;
        let end8 = cols & !7;
        let (w, x) = (w.as_ptr(), x.as_ptr());
        let mut r = 0;
        while r < rows {
            // Where fewer than four rows remain the block repeats row `last` (same stores).
            let idx = [r, (r + 1).min(last), (r + 2).min(last), (r + 3).min(last)];
            // SAFETY: every index is < rows, so each row's `cols` halves lie inside `w`.
            let p = idx.map(|i| unsafe { w.add(i * cols) });
            let z = _mm256_setzero_ps();
            let (mut a, mut b) = ([z; 4], [z; 4]);
            let mut c = 0;
            while c < end16 {
                // SAFETY: c + 16 <= cols: the 16 floats of `x` are in bounds.
                let (x0, x1) =
                    unsafe { (_mm256_loadu_ps(x.add(c)), _mm256_loadu_ps(x.add(c + 8))) };
                for k in 0..4 {
                    // SAFETY: c + 16 <= cols: both groups of 8 halves lie in row k.
                    let (w0, w1) = unsafe { (load8(p[k], c), load8(p[k], c + 8)) };
                    a[k] = _mm256_fmadd_ps(w0, x0, a[k]);
                    b[k] = _mm256_fmadd_ps(w1, x1, b[k]);
                }
                c += 16;
            }
            if c < end8 {
                // SAFETY: c + 8 <= cols.
                let x0 = unsafe { _mm256_loadu_ps(x.add(c)) };
                for k in 0..4 {
                    // SAFETY: c + 8 <= cols: the 8 halves lie in row k.
                    a[k] = _mm256_fmadd_ps(unsafe { load8(p[k], c) }, x0, a[k]);
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
                    *o += unsafe { super::f32_from_bits(*row.add(cc)) * *x.add(cc) };
                }
                y[i] = *o + bias[i];
            }
            r += 4;
        }
    }

    /// Eight halves from `row + c`, widened.
    ///
    /// # Safety
    /// F16C available; `row + c .. row + c + 8` readable.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(row: *const u16, c: usize) -> __m256 {
        // SAFETY: per this fn's contract; an unaligned 16-byte load.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(row.add(c).cast())) }
    }
}

/// AVX-512F: sixteen f16 weights widened per instruction (`vcvtph2ps` is part of AVX-512F),
/// the blocking of the f32 kernel, the last `cols % 16` columns in plain code.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX-512F available; `x` non-empty, `w.len() == y.len() * x.len()`,
    /// `bias.len() == y.len()`, `y` non-empty.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn matvec_bias_f16(w: &[u16], bias: &[f32], x: &[f32], y: &mut [f32]) {
        let (rows, cols) = (y.len(), x.len());
        let last = rows - 1;
        let end32 = cols & !31;
        let end16 = cols & !15;
        let (w, x) = (w.as_ptr(), x.as_ptr());
        let mut r = 0;
        while r < rows {
            let idx = [r, (r + 1).min(last), (r + 2).min(last), (r + 3).min(last)];
            // SAFETY: every index is < rows, so each row's `cols` halves lie inside `w`.
            let p = idx.map(|i| unsafe { w.add(i * cols) });
            let z = _mm512_setzero_ps();
            let (mut a, mut b) = ([z; 4], [z; 4]);
            let mut c = 0;
            while c < end32 {
                // SAFETY: c + 32 <= cols: the 32 floats of `x` are in bounds.
                let (x0, x1) =
                    unsafe { (_mm512_loadu_ps(x.add(c)), _mm512_loadu_ps(x.add(c + 16))) };
                for k in 0..4 {
                    // SAFETY: c + 32 <= cols: both groups of 16 halves lie in row k.
                    let (w0, w1) = unsafe { (load16(p[k], c), load16(p[k], c + 16)) };
                    a[k] = _mm512_fmadd_ps(w0, x0, a[k]);
                    b[k] = _mm512_fmadd_ps(w1, x1, b[k]);
                }
                c += 32;
            }
            if c < end16 {
                // SAFETY: c + 16 <= cols.
                let x0 = unsafe { _mm512_loadu_ps(x.add(c)) };
                for k in 0..4 {
                    // SAFETY: c + 16 <= cols: the 16 halves lie in row k.
                    a[k] = _mm512_fmadd_ps(unsafe { load16(p[k], c) }, x0, a[k]);
                }
            }
            for k in 0..4 {
                let sum = _mm512_reduce_add_ps(_mm512_add_ps(a[k], b[k]));
                let mut o = sum;
                for cc in end16..cols {
                    // SAFETY: cc < cols indexes the row and `x` in bounds.
                    o += unsafe { super::f32_from_bits(*p[k].add(cc)) * *x.add(cc) };
                }
                y[idx[k]] = o + bias[idx[k]];
            }
            r += 4;
        }
    }

    /// Sixteen halves from `row + c`, widened.
    ///
    /// # Safety
    /// AVX-512F available; `row + c .. row + c + 16` readable.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load16(row: *const u16, c: usize) -> __m512 {
        // SAFETY: per this fn's contract; an unaligned 32-byte load.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(row.add(c).cast())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every f16 pattern widens and narrows back to itself (NaNs to a NaN), and the widening
    /// agrees with the CPU's F16C instruction where the CPU has it.
    #[test]
    fn every_half_round_trips() {
        for h in 0..=u16::MAX {
            let v = f32_from_bits(h);
            if v.is_nan() {
                assert!(f32_from_bits(f16_bits(v)).is_nan());
                continue;
            }
            assert_eq!(f16_bits(v), h, "{h:#06x} -> {v:e}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("f16c") {
                assert_eq!(v.to_bits(), hardware::widen(h).to_bits(), "{h:#06x}");
            }
        }
    }

    /// Narrowing picks the nearest f16, ties to even: against the F16C instruction on a
    /// spread of values (normal, subnormal, halfway cases, overflow), where the CPU has it,
    /// and against a search over neighbours everywhere.
    #[test]
    fn narrowing_rounds_to_nearest_even() {
        let mut values = vec![
            0.0f32,
            -0.0,
            1.0,
            65504.0,
            65520.0,
            65519.99,
            1e-8,
            2.98e-8,
            5.96e-8,
            6.1e-5,
            -3.0e-7,
            1.0 + 1.0 / 2048.0,
            1.0 + 3.0 / 2048.0,
            f32::INFINITY,
            f32::MIN,
        ];
        let mut state = 12345u32;
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            // Exponents across f16's range and beyond.
            let v = f32::from_bits((state & 0x807f_ffff) | ((95 + (state >> 23) % 50) << 23));
            values.push(v);
        }
        for v in values {
            let h = f16_bits(v);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("f16c") {
                assert_eq!(h, hardware::narrow(v), "{v:e}");
            }
            if v.is_finite() && f32_from_bits(h).is_finite() {
                let err = (f64::from(f32_from_bits(h)) - f64::from(v)).abs();
                for n in [h.wrapping_sub(1), h.wrapping_add(1)] {
                    let other = f32_from_bits(n);
                    if other.is_finite() && (n & 0x8000) == (h & 0x8000) {
                        assert!(err <= (f64::from(other) - f64::from(v)).abs(), "{v:e}");
                    }
                }
            }
        }
    }

    /// A kernel under test, writing its product into the slice.
    type Kernel<'a> = Box<dyn Fn(&mut [f32]) + 'a>;

    /// The SIMD kernels agree with an f64 reference on the same f16 weights, at sizes that
    /// cover every tail, and never read outside their rows.
    #[test]
    fn simd_kernels_match_the_reference() {
        let mut state = 99u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as f32 / u32::MAX as f32 - 0.5
        };
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
            let w: Vec<u16> = (0..rows * cols).map(|_| f16_bits(next())).collect();
            let x: Vec<f32> = (0..cols).map(|_| 4.0 * next()).collect();
            let bias: Vec<f32> = (0..rows).map(|_| next()).collect();
            let reference: Vec<f64> = (0..rows)
                .map(|r| {
                    (0..cols)
                        .map(|c| f64::from(f32_from_bits(w[r * cols + c])) * f64::from(x[c]))
                        .sum::<f64>()
                        + f64::from(bias[r])
                })
                .collect();
            let scale: Vec<f64> = (0..rows)
                .map(|r| {
                    (0..cols)
                        .map(|c| {
                            (f64::from(f32_from_bits(w[r * cols + c])) * f64::from(x[c])).abs()
                        })
                        .sum::<f64>()
                        + f64::from(bias[r]).abs()
                })
                .collect();
            let mut kernels: Vec<(&str, Kernel)> = vec![(
                "portable",
                Box::new(|y: &mut [f32]| matvec_bias_portable(&w, &bias, &x, y)),
            )];
            #[cfg(target_arch = "x86_64")]
            {
                use std::arch::is_x86_feature_detected as has;
                if has!("avx2") && has!("fma") && has!("f16c") {
                    // SAFETY: features detected; lengths as the contract asks.
                    kernels.push((
                        "AVX2+F16C",
                        Box::new(|y: &mut [f32]| unsafe {
                            avx2::matvec_bias_f16(&w, &bias, &x, y)
                        }),
                    ));
                }
                if has!("avx512f") {
                    // SAFETY: feature detected; lengths as the contract asks.
                    kernels.push((
                        "AVX-512F",
                        Box::new(|y: &mut [f32]| unsafe {
                            avx512::matvec_bias_f16(&w, &bias, &x, y)
                        }),
                    ));
                }
            }
            for (name, kernel) in &kernels {
                let mut y = vec![f32::NAN; rows];
                kernel(&mut y);
                for r in 0..rows {
                    let err = (f64::from(y[r]) - reference[r]).abs();
                    assert!(
                        err <= 1e-5 * scale[r] + 1e-7,
                        "{name} {rows}x{cols} row {r}: {} vs {}",
                        y[r],
                        reference[r]
                    );
                }
            }
        }
    }

    /// The F16C instructions, as an independent reference for the conversions.
    #[cfg(target_arch = "x86_64")]
    mod hardware {
        use std::arch::x86_64::*;

        pub fn widen(h: u16) -> f32 {
            // SAFETY: the callers checked F16C is available.
            unsafe { widen_f16c(h) }
        }

        pub fn narrow(v: f32) -> u16 {
            // SAFETY: the callers checked F16C is available.
            unsafe { narrow_f16c(v) }
        }

        #[target_feature(enable = "f16c")]
        unsafe fn widen_f16c(h: u16) -> f32 {
            _mm_cvtss_f32(_mm_cvtph_ps(_mm_set1_epi16(h as i16)))
        }

        #[target_feature(enable = "f16c")]
        unsafe fn narrow_f16c(v: f32) -> u16 {
            let h = _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set1_ps(v));
            _mm_extract_epi16::<0>(h) as u16
        }
    }
}
