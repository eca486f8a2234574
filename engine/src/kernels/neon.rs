//! NEON kernels (4 lanes), one row at a time; kept deliberately simple (not run in CI here).

use std::arch::aarch64::*;

/// `Σ w[c] x[c]` over `x.len()` columns.
///
/// # Safety
/// NEON available; `w.len() >= x.len()`.
#[target_feature(enable = "neon")]
pub(super) unsafe fn dot(w: &[f32], x: &[f32]) -> f32 {
    let n = x.len();
    let end4 = n & !3;
    let mut acc = vdupq_n_f32(0.0);
    let mut c = 0;
    while c < end4 {
        // SAFETY: c + 4 <= n <= both lengths; vld1q_f32 has no alignment requirement
        // beyond that of f32.
        unsafe {
            acc = vfmaq_f32(
                acc,
                vld1q_f32(w.as_ptr().add(c)),
                vld1q_f32(x.as_ptr().add(c)),
            );
        }
        c += 4;
    }
    let mut sum = vaddvq_f32(acc);
    for (p, q) in w[end4..n].iter().zip(&x[end4..]) {
        sum += p * q;
    }
    sum
}

/// # Safety
/// NEON available; the [`super::MatvecFn`] length contract holds.
#[target_feature(enable = "neon")]
pub(super) unsafe fn matvec_bias(w: &[f32], bias: &[f32], x: &[f32], y: &mut [f32]) {
    // `x` is non-empty by contract.
    for ((yr, row), b) in y.iter_mut().zip(w.chunks_exact(x.len())).zip(bias) {
        // SAFETY: NEON available; each row has x.len() elements.
        *yr = unsafe { dot(row, x) } + b;
    }
}

/// Per-frame matrix-vector products.
///
/// # Safety
/// NEON available; the [`super::MatmulFn`] length contract holds.
#[target_feature(enable = "neon")]
pub(super) unsafe fn matmul_bias(w: &[f32], bias: &[f32], x: &[f32], frames: usize, y: &mut [f32]) {
    let cols = x.len() / frames;
    for (xf, yf) in x.chunks_exact(cols).zip(y.chunks_exact_mut(bias.len())) {
        // SAFETY: NEON available; each frame satisfies the matvec contract.
        unsafe { matvec_bias(w, bias, xf, yf) };
    }
}

/// # Safety
/// NEON available.
#[target_feature(enable = "neon")]
pub(super) unsafe fn leaky_relu(y: &mut [f32], slope: f32) {
    let mut chunks = y.chunks_exact_mut(4);
    for ch in &mut chunks {
        // SAFETY: the chunk holds exactly 4 floats.
        unsafe {
            let v = vld1q_f32(ch.as_ptr());
            vst1q_f32(ch.as_mut_ptr(), vmaxq_f32(v, vmulq_n_f32(v, slope)));
        }
    }
    super::scalar::leaky_relu(chunks.into_remainder(), slope);
}

/// # Safety
/// NEON available; `acc.len() == x.len()`.
#[target_feature(enable = "neon")]
pub(super) unsafe fn add_leaky_relu(acc: &mut [f32], x: &[f32], slope: f32) {
    let mut ca = acc.chunks_exact_mut(4);
    let mut cx = x.chunks_exact(4);
    for (a, v) in (&mut ca).zip(&mut cx) {
        // SAFETY: both chunks hold exactly 4 floats.
        unsafe {
            let xv = vld1q_f32(v.as_ptr());
            let act = vmaxq_f32(xv, vmulq_n_f32(xv, slope));
            vst1q_f32(a.as_mut_ptr(), vaddq_f32(vld1q_f32(a.as_ptr()), act));
        }
    }
    super::scalar::add_leaky_relu(ca.into_remainder(), cx.remainder(), slope);
}
