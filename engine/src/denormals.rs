//! Flush-to-zero and denormals-are-zero for the threads that run the DSP.
//!
//! Denormal floats (below about 1.2e-38) take a slow path on many CPUs; decaying tails,
//! filters and the network's activations produce them. The engine's audio-thread entry point
//! and the worker thread run with the CPU flags that flush them to zero:
//! - x86-64: MXCSR's FTZ (bit 15) and DAZ (bit 6) bits;
//! - AArch64: FPCR's FZ bit (24), which flushes inputs and outputs;
//! - elsewhere: nothing (documented as such).
//!
//! The audio thread belongs to the host, so [`FlushToZero`] restores its previous flags when
//! dropped; the worker sets them once for its own life.

/// While alive, the calling thread flushes denormals to zero; dropping it restores the flags
/// it found. Realtime-safe (two register accesses).
#[derive(Debug)]
pub struct FlushToZero {
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(dead_code)
    )]
    previous: u64,
}

impl FlushToZero {
    /// Sets the flags on the calling thread. Realtime-safe.
    #[inline]
    pub fn new() -> Self {
        let previous = read_flags();
        write_flags(previous | FLUSH_BITS);
        Self { previous }
    }
}

impl Default for FlushToZero {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FlushToZero {
    #[inline]
    fn drop(&mut self) {
        write_flags(self.previous);
    }
}

/// Sets the flags on the calling thread for good (for threads the engine owns). Realtime-safe.
pub fn flush_to_zero_for_this_thread() {
    write_flags(read_flags() | FLUSH_BITS);
}

#[cfg(target_arch = "x86_64")]
const FLUSH_BITS: u64 = (1 << 15) | (1 << 6);
#[cfg(target_arch = "aarch64")]
const FLUSH_BITS: u64 = 1 << 24;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const FLUSH_BITS: u64 = 0;

#[cfg(target_arch = "x86_64")]
#[inline]
fn read_flags() -> u64 {
    let mut csr: u32 = 0;
    // SAFETY: `stmxcsr` stores the 32-bit MXCSR register into the valid, aligned, writable
    // `u32` that `csr` points to; SSE is part of the x86-64 baseline.
    unsafe {
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
    }
    u64::from(csr)
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn write_flags(flags: u64) {
    let csr = flags as u32;
    // SAFETY: `ldmxcsr` loads MXCSR from the valid, aligned `u32` that `csr` points to. The
    // value is one read from MXCSR with only the FTZ/DAZ bits (both defined on every x86-64
    // CPU with SSE2) possibly added, so no reserved bit is set; it changes only this thread's
    // floating-point modes.
    unsafe {
        std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags));
    }
}

#[cfg(target_arch = "aarch64")]
#[inline]
fn read_flags() -> u64 {
    let fpcr: u64;
    // SAFETY: reading FPCR has no side effect and is allowed at EL0.
    unsafe {
        std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack, preserves_flags));
    }
    fpcr
}

#[cfg(target_arch = "aarch64")]
#[inline]
fn write_flags(flags: u64) {
    // SAFETY: writing FPCR at EL0 is allowed; the value is one read from FPCR with only the FZ
    // bit possibly added, and it changes only this thread's floating-point modes.
    unsafe {
        std::arch::asm!("msr fpcr, {}", in(reg) flags, options(nomem, nostack, preserves_flags));
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn read_flags() -> u64 {
    0
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn write_flags(_flags: u64) {}

#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests {
    use super::*;
    use std::hint::black_box;

    /// A product whose exact value is a denormal comes out as that denormal without the guard,
    /// as zero with it, and as the denormal again once the guard is dropped.
    #[test]
    fn the_guard_flushes_denormals_and_restores_the_flags() {
        let product = || black_box(1e-30f32) * black_box(1e-10f32);
        let denormal = product();
        assert!(denormal > 0.0 && !denormal.is_normal(), "{denormal}");
        {
            let _ftz = FlushToZero::new();
            assert_eq!(product(), 0.0);
            // A denormal input counts as zero (DAZ on x86-64; FZ covers inputs on AArch64).
            assert_eq!(black_box(denormal) * black_box(1.0e10f32), 0.0);
        }
        assert_eq!(product(), denormal);
    }
}
