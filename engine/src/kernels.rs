//! SIMD compute kernels for the neural timbre model, chosen once at run time.
//!
//! The model is a stack of linear layers run one frame at a time on the worker thread (every
//! 5 ms) and, for the encoder, over all frames of a clip off the audio thread. [`Kernels`] is a
//! small table of function pointers picked at construction for the best instruction set the CPU
//! has ([`Isa`]): AVX-512F, AVX2+FMA or plain Rust on x86_64, NEON on aarch64, plain Rust
//! elsewhere. Construction ([`Kernels::best`], [`Kernels::for_isa`], [`Kernels::available`])
//! runs feature detection and may allocate; do it once, off the audio thread, and copy the
//! table where it is needed.
//!
//! Every kernel method is realtime-safe: no allocation, locking or system call, and no panic in
//! release builds. Lengths are checked on every call; on inconsistent lengths a method fires a
//! `debug_assert!` (so debug builds stop at the bug) and otherwise computes nothing but fills
//! its output with zeros.
//!
//! Weights are row-major `[out, in]` (`w[r * cols + c]`), accumulation is in `f32` with several
//! partial sums per row; results agree with an `f64` reference to about 1e-5 of `Σ|w·x| + |b|`.
//! The per-frame product also reads narrowed weights, f16 or int8 with one scale per row
//! ([`Kernels::matvec_bias_f16`], [`Kernels::matvec_bias_i8`]; the kernels are in
//! `narrow.rs`): AVX-512F and AVX2+FMA (with F16C) have SIMD kernels for both; NEON and the
//! scalar set run the network on the same values widened to f32 at load (their plain loop
//! over narrowed weights is slower than their f32 kernel).

#![deny(unsafe_op_in_unsafe_fn)]

use std::fmt;

/// An instruction set a [`Kernels`] table can be built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust, no explicit SIMD (the compiler may still vectorise for the target baseline).
    Scalar,
    /// x86_64 AVX2 with FMA, 8 lanes of `f32`.
    Avx2Fma,
    /// x86_64 AVX-512 Foundation, 16 lanes of `f32`.
    Avx512,
    /// aarch64 Advanced SIMD (NEON), 4 lanes of `f32`.
    Neon,
}

impl Isa {
    /// Every variant, best first (the order [`Kernels::best`] tries them in).
    const ALL: [Isa; 4] = [Isa::Avx512, Isa::Avx2Fma, Isa::Neon, Isa::Scalar];
}

impl fmt::Display for Isa {
    /// Human-readable name, e.g. `AVX2+FMA`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Isa::Scalar => "scalar",
            Isa::Avx2Fma => "AVX2+FMA",
            Isa::Avx512 => "AVX-512F",
            Isa::Neon => "NEON",
        })
    }
}

/// `y = W x + bias`; contract: `w.len() == y.len() * x.len()`, `bias.len() == y.len()`,
/// `y` and `x` non-empty, and the CPU supports the kernel's ISA.
type MatvecFn = unsafe fn(w: &[f32], bias: &[f32], x: &[f32], y: &mut [f32]);
/// `Y[f] = W X[f] + bias` for `frames` frames; contract: `rows = bias.len() >= 1`,
/// `frames >= 1`, `cols = x.len() / frames >= 1`, `x.len() == frames * cols`,
/// `y.len() == frames * rows`, `w.len() == rows * cols`, and the CPU supports the ISA.
type MatmulFn = unsafe fn(w: &[f32], bias: &[f32], x: &[f32], frames: usize, y: &mut [f32]);
/// [`MatvecFn`] with narrowed weights ([`crate::narrow`]): f16 bit patterns, or int8 values
/// whose row sums are multiplied by `scales` (then as long as `bias`); otherwise the same
/// contract.
type MatvecNarrowFn<T> =
    unsafe fn(w: &[T], scales: Option<&[f32]>, bias: &[f32], x: &[f32], y: &mut [f32]);
/// `y = max(y, slope y)`; contract: the CPU supports the ISA.
type LeakyFn = unsafe fn(y: &mut [f32], slope: f32);
/// `acc += max(x, slope x)`; contract: `acc.len() == x.len()` and the CPU supports the ISA.
type AddLeakyFn = unsafe fn(acc: &mut [f32], x: &[f32], slope: f32);

/// A table of compute kernels for one instruction set, chosen once at construction.
///
/// Cheap to copy (a tag and a few function pointers), `Send + Sync`. All methods take `&self`,
/// are realtime-safe (no allocation, lock, system call or panic in release builds) and may be
/// called from any thread, the audio and worker threads included.
#[derive(Clone, Copy)]
pub struct Kernels {
    isa: Isa,
    matvec: MatvecFn,
    /// The f16-weight product, where this ISA has a kernel for it.
    matvec_f16: Option<MatvecNarrowFn<u16>>,
    /// The int8-weight product, where this ISA has a kernel for it.
    matvec_i8: Option<MatvecNarrowFn<i8>>,
    matmul: MatmulFn,
    leaky: LeakyFn,
    add_leaky: AddLeakyFn,
}

impl fmt::Debug for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernels").field("isa", &self.isa).finish()
    }
}

impl Default for Kernels {
    /// Same as [`Kernels::best`].
    fn default() -> Self {
        Self::best()
    }
}

impl Kernels {
    /// The best table this CPU supports: AVX-512F, then AVX2+FMA, then scalar on x86_64; NEON
    /// on aarch64; scalar elsewhere.
    ///
    /// Runs CPU feature detection (cached by the standard library after the first call); call
    /// it at setup time, not per frame.
    pub fn best() -> Self {
        Isa::ALL
            .iter()
            .find_map(|&isa| Self::for_isa(isa))
            .unwrap_or_else(Self::scalar)
    }

    /// The table for `isa`, or `None` when this target or CPU lacks it. Intended for tests and
    /// benchmarks; production code uses [`Kernels::best`].
    pub fn for_isa(isa: Isa) -> Option<Self> {
        match isa {
            Isa::Scalar => Some(Self::scalar()),
            Isa::Avx2Fma => avx2_table(),
            Isa::Avx512 => avx512_table(),
            Isa::Neon => neon_table(),
        }
    }

    /// Every instruction set this CPU supports, best first (always ends with [`Isa::Scalar`]).
    /// Allocates; for tests and benchmarks.
    pub fn available() -> Vec<Isa> {
        Isa::ALL
            .iter()
            .copied()
            .filter(|&isa| Self::for_isa(isa).is_some())
            .collect()
    }

    /// The instruction set of this table.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    fn scalar() -> Self {
        Self {
            isa: Isa::Scalar,
            matvec: scalar::matvec_bias,
            matvec_f16: None,
            // The portable int8 loop reads a quarter of the bytes but converts every weight
            // on its own: 194 µs a network step against 142 µs with the weights widened at
            // load (docs/benchmarks.md, "int8 weights"), so the scalar set widens them.
            matvec_i8: None,
            matmul: scalar::matmul_bias,
            leaky: scalar::leaky_relu,
            add_leaky: scalar::add_leaky_relu,
        }
    }

    /// Matrix-vector product with bias: `y[r] = Σ_c w[r * x.len() + c] · x[c] + bias[r]`.
    ///
    /// `w` is row-major with `y.len()` rows and `x.len()` columns; `bias.len() == y.len()`.
    /// Any sizes are accepted (zero rows or columns included; with no columns `y = bias`).
    /// On inconsistent lengths it fires a `debug_assert!` and otherwise sets `y` to zeros.
    ///
    /// Realtime-safe; unitless (the caller's activations and weights).
    pub fn matvec_bias(&self, w: &[f32], bias: &[f32], x: &[f32], y: &mut [f32]) {
        if matvec_needs_kernel("matvec_bias", w.len(), bias, x, y) {
            // SAFETY: the table's ISA was detected at construction (`for_isa`), and the
            // lengths were checked, which is the kernel's whole contract.
            unsafe { (self.matvec)(w, bias, x, y) }
        }
    }

    /// Whether this table has a SIMD kernel for f16 weights ([`Self::matvec_bias_f16`]):
    /// AVX-512F, and AVX2+FMA where the CPU has F16C. Elsewhere a network keeps its f16
    /// weights widened to f32 (the same values, twice the bytes).
    pub fn has_f16(&self) -> bool {
        self.matvec_f16.is_some()
    }

    /// [`Self::matvec_bias`] with the weights as f16 bit patterns (widened exactly, products
    /// and sums in f32): half the bytes per row. Without an f16 kernel ([`Self::has_f16`]) it
    /// runs a portable loop. Same length rules. Realtime-safe.
    pub fn matvec_bias_f16(&self, w: &[u16], bias: &[f32], x: &[f32], y: &mut [f32]) {
        if !matvec_needs_kernel("matvec_bias_f16", w.len(), bias, x, y) {
            return;
        }
        match self.matvec_f16 {
            // SAFETY: the kernel is only in the table when its features were detected at
            // construction, and the lengths were checked above (the whole contract).
            Some(kernel) => unsafe { kernel(w, None, bias, x, y) },
            None => crate::narrow::matvec_portable(w, None, bias, x, y),
        }
    }

    /// Whether this table has a SIMD kernel for int8 weights ([`Self::matvec_bias_i8`]):
    /// AVX-512F, and AVX2+FMA where the CPU has F16C. Elsewhere (NEON, scalar) a network keeps
    /// its int8 weights widened to f32 (the same values, four times the bytes).
    pub fn has_int8(&self) -> bool {
        self.matvec_i8.is_some()
    }

    /// [`Self::matvec_bias`] with int8 weights and one scale per row
    /// ([`crate::int8::Int8Rows`]): `y[r] = scales[r] · Σ_c w[r cols + c] · x[c] + bias[r]`,
    /// products and sums in f32; a quarter of the bytes per row. Same length rules, and
    /// `scales.len() == y.len()` (otherwise `y` is set to zeros). Realtime-safe.
    pub fn matvec_bias_i8(&self, w: &[i8], scales: &[f32], bias: &[f32], x: &[f32], y: &mut [f32]) {
        if scales.len() != y.len() {
            debug_assert!(
                false,
                "matvec_bias_i8: {} scales for {} rows",
                scales.len(),
                y.len()
            );
            y.fill(0.0);
            return;
        }
        if !matvec_needs_kernel("matvec_bias_i8", w.len(), bias, x, y) {
            return;
        }
        match self.matvec_i8 {
            // SAFETY: the kernel is only in the table when its features were detected at
            // construction, and the lengths were checked above (the whole contract).
            Some(kernel) => unsafe { kernel(w, Some(scales), bias, x, y) },
            None => crate::narrow::matvec_portable(w, Some(scales), bias, x, y),
        }
    }

    /// Batched product with bias: for each frame `f` in `0..frames`,
    /// `y[f * out ..][..out] = W · x[f * in ..][..in] + bias`, with `out = bias.len()` and
    /// `in = x.len() / frames`; `X` (`frames × in`) and `Y` (`frames × out`) are row-major and
    /// `w.len() == out * in`. Each weight row is reused across several frames.
    ///
    /// `frames == 0` is valid with empty `x` and `y` (nothing computed). On inconsistent
    /// lengths it fires a `debug_assert!` and otherwise sets `y` to zeros.
    ///
    /// Realtime-safe, though meant for the off-thread encoder pass over a whole clip.
    pub fn matmul_bias(&self, w: &[f32], bias: &[f32], x: &[f32], frames: usize, y: &mut [f32]) {
        let rows = bias.len();
        let cols = x.len().checked_div(frames).unwrap_or(0);
        let ok = if frames == 0 {
            x.is_empty() && y.is_empty()
        } else {
            x.len().is_multiple_of(frames)
                && frames.checked_mul(rows) == Some(y.len())
                && rows.checked_mul(cols) == Some(w.len())
        };
        debug_assert!(
            ok,
            "matmul_bias: x {} / frames {} / y {} / w {} / bias {} inconsistent",
            x.len(),
            frames,
            y.len(),
            w.len(),
            rows
        );
        if !ok {
            y.fill(0.0);
            return;
        }
        if frames == 0 || rows == 0 {
            return;
        }
        if cols == 0 {
            for yf in y.chunks_exact_mut(rows) {
                yf.copy_from_slice(bias);
            }
            return;
        }
        // SAFETY: the table's ISA was detected at construction, and the lengths were checked
        // above (rows, cols, frames all >= 1), which is the kernel's whole contract.
        unsafe { (self.matmul)(w, bias, x, frames, y) }
    }

    /// Leaky ReLU in place: `y[i] = max(y[i], slope · y[i])`, for `slope` in `0..=1`
    /// (the model uses 0.1). Realtime-safe.
    pub fn leaky_relu(&self, y: &mut [f32], slope: f32) {
        // SAFETY: the table's ISA was detected at construction; the kernel has no length
        // contract (it covers exactly `y`).
        unsafe { (self.leaky)(y, slope) }
    }

    /// Residual connection: `acc[i] += max(x[i], slope · x[i])`, for `slope` in `0..=1`.
    ///
    /// On `acc.len() != x.len()` it fires a `debug_assert!` and otherwise sets `acc` to zeros.
    /// Realtime-safe.
    pub fn add_leaky_relu(&self, acc: &mut [f32], x: &[f32], slope: f32) {
        let ok = acc.len() == x.len();
        debug_assert!(ok, "add_leaky_relu: acc {} != x {}", acc.len(), x.len());
        if !ok {
            acc.fill(0.0);
            return;
        }
        // SAFETY: the table's ISA was detected at construction; lengths checked above.
        unsafe { (self.add_leaky)(acc, x, slope) }
    }
}

/// The length rules of a matrix-vector product with `w_len` weights: `true` when the kernel
/// must run (rows and columns both non-empty, lengths consistent). Otherwise it has done the
/// whole job: inconsistent lengths fire a `debug_assert!` and zero `y`, no columns copy `bias`
/// into `y`. Realtime-safe.
fn matvec_needs_kernel(what: &str, w_len: usize, bias: &[f32], x: &[f32], y: &mut [f32]) -> bool {
    let ok = bias.len() == y.len() && y.len().checked_mul(x.len()) == Some(w_len);
    debug_assert!(
        ok,
        "{what}: w {w_len} != y {} x x {}, or bias {} != y",
        y.len(),
        x.len(),
        bias.len()
    );
    if !ok {
        y.fill(0.0);
        return false;
    }
    if !y.is_empty() && x.is_empty() {
        y.copy_from_slice(bias);
    }
    !y.is_empty() && !x.is_empty()
}

// Compile-time check: the table can be shared with and sent to worker threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Kernels>();
};

#[cfg(target_arch = "x86_64")]
fn avx2_table() -> Option<Kernels> {
    (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(Kernels {
        isa: Isa::Avx2Fma,
        matvec: avx2::matvec_bias,
        matvec_f16: is_x86_feature_detected!("f16c")
            .then_some(crate::narrow::avx2::matvec::<u16> as MatvecNarrowFn<u16>),
        // The narrowed kernels share one body compiled with F16C.
        matvec_i8: is_x86_feature_detected!("f16c")
            .then_some(crate::narrow::avx2::matvec::<i8> as MatvecNarrowFn<i8>),
        matmul: avx2::matmul_bias,
        leaky: avx2::leaky_relu,
        add_leaky: avx2::add_leaky_relu,
    })
}

#[cfg(target_arch = "x86_64")]
fn avx512_table() -> Option<Kernels> {
    is_x86_feature_detected!("avx512f").then_some(Kernels {
        isa: Isa::Avx512,
        matvec: avx512::matvec_bias,
        matvec_f16: Some(crate::narrow::avx512::matvec::<u16>),
        matvec_i8: Some(crate::narrow::avx512::matvec::<i8>),
        matmul: avx512::matmul_bias,
        leaky: avx512::leaky_relu,
        add_leaky: avx512::add_leaky_relu,
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_table() -> Option<Kernels> {
    None
}

#[cfg(not(target_arch = "x86_64"))]
fn avx512_table() -> Option<Kernels> {
    None
}

#[cfg(target_arch = "aarch64")]
fn neon_table() -> Option<Kernels> {
    std::arch::is_aarch64_feature_detected!("neon").then_some(Kernels {
        isa: Isa::Neon,
        matvec: neon::matvec_bias,
        matvec_f16: None,
        matvec_i8: None,
        matmul: neon::matmul_bias,
        leaky: neon::leaky_relu,
        add_leaky: neon::add_leaky_relu,
    })
}

#[cfg(not(target_arch = "aarch64"))]
fn neon_table() -> Option<Kernels> {
    None
}

#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::hsum4 as avx2_hsum4;

/// Portable kernels. Safe code; the `unsafe fn` pointer types accept them as they are.
mod scalar {
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
        let mut sum =
            ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
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
}

/// AVX2+FMA kernels (8 lanes). Column tails (`cols % 8`) are done in scalar code.
#[cfg(target_arch = "x86_64")]
mod avx2 {
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
    pub(super) unsafe fn matmul_bias(
        w: &[f32],
        bias: &[f32],
        x: &[f32],
        frames: usize,
        y: &mut [f32],
    ) {
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
}

/// AVX-512F kernels (16 lanes). Column tails use masked loads, so there is no scalar tail.
#[cfg(target_arch = "x86_64")]
mod avx512 {
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

    /// Blocks of two weight rows × four frames (eight accumulators), masked column tail;
    /// leftover frames go through `matvec_raw`.
    ///
    /// # Safety
    /// AVX-512F available; the [`super::MatmulFn`] length contract holds.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn matmul_bias(
        w: &[f32],
        bias: &[f32],
        x: &[f32],
        frames: usize,
        y: &mut [f32],
    ) {
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
}

/// NEON kernels (4 lanes), one row at a time; kept deliberately simple (not run in CI here).
#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::*;

    /// `Σ w[c] x[c]` over `x.len()` columns.
    ///
    /// # Safety
    /// NEON available; `w.len() >= x.len()`.
    #[target_feature(enable = "neon")]
    unsafe fn dot(w: &[f32], x: &[f32]) -> f32 {
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
    pub(super) unsafe fn matmul_bias(
        w: &[f32],
        bias: &[f32],
        x: &[f32],
        frames: usize,
        y: &mut [f32],
    ) {
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
}

#[cfg(test)]
mod tests {
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
}
