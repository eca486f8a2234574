//! How the process's allocator treats freed memory.
//!
//! A training step (and a batched evaluation) allocates and frees tensors of a few megabytes
//! hundreds of times. glibc's allocator by default serves such blocks with fresh `mmap`s (or
//! returns a heap's free top to the system) and gets them back page by page, zero-filled, on
//! the next step: on this project's 2-core VM keeping that memory took a training step from
//! 1.36 to 1.14 s (`experiments/benchmarks-log.md`, "Training speed").

/// Largest block glibc may serve from its heaps rather than a private `mmap` (its ceiling on
/// 64-bit systems, 32 MiB), in bytes.
const MMAP_THRESHOLD_BYTES: i32 = 32 << 20;

/// Free memory at the top of a heap that glibc keeps instead of returning it, in bytes.
const TRIM_THRESHOLD_BYTES: i32 = 1 << 30;

/// Extra memory glibc asks for whenever a heap grows, in bytes.
const TOP_PAD_BYTES: i32 = 64 << 20;

/// Has glibc's allocator keep freed memory for reuse (blocks up to 32 MiB from its heaps, up
/// to 1 GiB of free heap kept) instead of returning it to the system after every step. Call it
/// once, at the start of `main`, before other threads run. Returns whether every setting was
/// accepted; elsewhere than Linux with glibc it does nothing and returns `false`.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        [
            (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
            (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
            (libc::M_TOP_PAD, TOP_PAD_BYTES),
        ]
        .into_iter()
        // SAFETY: `mallopt` only changes the allocator's tuning parameters; it takes the
        // allocator's own lock, so it is sound at any time, and the values are within the
        // ranges glibc documents (it answers 0 and changes nothing otherwise).
        .all(|(param, value)| unsafe { libc::mallopt(param, value) } == 1)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = (MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES, TOP_PAD_BYTES);
        false
    }
}

#[cfg(test)]
mod tests {
    /// glibc accepts every setting (they are inside its documented ranges).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_accepts_every_setting() {
        assert!(super::keep_freed_memory());
    }
}
