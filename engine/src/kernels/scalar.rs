//! Portable kernels. Safe code; the `unsafe fn` pointer types accept them as they are.

/// Lanes of partial sums in [`dot`]: independent chains the compiler can vectorise.
const LANES: usize = 8;

/// `Σ a[i] b[i]` over the common length, with `LANES` partial sums.
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (wa, xb) in ca.zip(cb) {
        for ((s, p), q) in acc.iter_mut().zip(wa).zip(xb) {
            *s += p * q;
        }
    }
    let mut sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (p, q) in ra.iter().zip(rb) {
        sum += p * q;
    }
    sum
}

pub(super) fn matvec_bias(w: &[f32], bias: &[f32], x: &[f32], y: &mut [f32]) {
    // `x` is non-empty by contract, so `chunks_exact` gets a non-zero size.
    for ((yr, row), b) in y.iter_mut().zip(w.chunks_exact(x.len())).zip(bias) {
        *yr = dot(row, x) + b;
    }
}

pub(super) fn matmul_bias(w: &[f32], bias: &[f32], x: &[f32], frames: usize, y: &mut [f32]) {
    // rows, cols >= 1 by contract.
    let cols = x.len() / frames;
    for (xf, yf) in x.chunks_exact(cols).zip(y.chunks_exact_mut(bias.len())) {
        matvec_bias(w, bias, xf, yf);
    }
}

pub(super) fn leaky_relu(y: &mut [f32], slope: f32) {
    for v in y {
        *v = v.max(slope * *v);
    }
}

pub(super) fn add_leaky_relu(acc: &mut [f32], x: &[f32], slope: f32) {
    for (a, v) in acc.iter_mut().zip(x) {
        *a += v.max(slope * v);
    }
}
