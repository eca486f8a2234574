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
/// `Σ a[i] b[i]`; contract: `a.len() == b.len()` and the CPU supports the ISA.
type DotFn = unsafe fn(a: &[f32], b: &[f32]) -> f32;

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
    dot: DotFn,
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
            // load (experiments/benchmarks-log.md, "int8 weights"), so the scalar set widens them.
            matvec_i8: None,
            matmul: scalar::matmul_bias,
            leaky: scalar::leaky_relu,
            add_leaky: scalar::add_leaky_relu,
            dot: scalar::dot,
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

    /// Dot product `Σ a[i] b[i]`, accumulated in f32 over several partial sums (FMA where the
    /// ISA has it); the resamplers' filter taps. On unequal lengths it fires a
    /// `debug_assert!` and otherwise returns 0.
    ///
    /// Realtime-safe; unitless.
    #[inline]
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        let ok = a.len() == b.len();
        debug_assert!(ok, "dot: a {} != b {}", a.len(), b.len());
        if !ok {
            return 0.0;
        }
        // SAFETY: the table's ISA was detected at construction; lengths checked above.
        unsafe { (self.dot)(a, b) }
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
        dot: avx2::dot,
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
        dot: avx512::dot,
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
        dot: neon::dot,
    })
}

#[cfg(not(target_arch = "aarch64"))]
fn neon_table() -> Option<Kernels> {
    None
}

#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::hsum4 as avx2_hsum4;

mod scalar;

#[cfg(target_arch = "x86_64")]
mod avx2;

#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(target_arch = "aarch64")]
mod neon;

#[cfg(test)]
mod tests;
