//! Half-precision (IEEE 754 binary16) weights: the conversions.
//!
//! A model file may store its weight matrices as f16 ([`crate::model_file`]); the network then
//! streams half the bytes per frame through the cache with the kernels of `narrow.rs`
//! (AVX-512F, and AVX2+FMA with F16C); with another kernel set
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
        let mut rng = crate::test_rng::XorShift::new(12345);
        for _ in 0..100_000 {
            let state = rng.next_u32();
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
