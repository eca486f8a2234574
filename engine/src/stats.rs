//! Counters the engine publishes for the editor and the tests (atomics: readable from any
//! thread, written without locks).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use crate::scheduling::Scheduling;

/// Live statistics of one engine instance.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Frames whose processed grain was not ready in time and were replaced by the dry signal.
    pub dropouts: AtomicU64,
    /// Frames overlap-added (processed or substituted).
    pub frames: AtomicU64,
    /// Total time the worker spent processing frames, in nanoseconds.
    pub worker_ns: AtomicU64,
    /// Frames the worker processed and handed back (counted once the grain is in the ring).
    pub worker_frames: AtomicU64,
    /// Frames the audio thread handed to the worker.
    pub frames_sent: AtomicU64,
    /// Frames the worker skipped because the audio thread had already played them dry (their
    /// deadline had passed before the worker got to them).
    pub late_frames_skipped: AtomicU64,
    /// Input samples that were NaN or infinite and were replaced by silence.
    pub nonfinite_inputs: AtomicU64,
    /// Which scheduling the worker got, as a [`Scheduling`] byte.
    worker_scheduling: AtomicU8,
    /// Panics caught in the worker's frame processing (each one resets the processor; after
    /// [`MAX_WORKER_PANICS`] the worker stops and the engine plays the dry signal).
    pub worker_panics: AtomicU64,
}

/// Caught panics after which the worker gives up and the engine bypasses.
pub const MAX_WORKER_PANICS: u64 = 3;

impl EngineStats {
    /// Whether the worker has stopped after [`MAX_WORKER_PANICS`] caught panics (the output is
    /// the latency-aligned dry signal from then on). Realtime-safe.
    pub fn worker_failed(&self) -> bool {
        self.worker_panics.load(Ordering::Relaxed) >= MAX_WORKER_PANICS
    }

    /// Frames the worker has dealt with: processed, skipped as late, or lost to a caught
    /// panic. Equal to [`EngineStats::frames_sent`] when the worker has caught up.
    /// Realtime-safe.
    pub fn frames_answered(&self) -> u64 {
        self.worker_frames.load(Ordering::Acquire)
            + self.late_frames_skipped.load(Ordering::Acquire)
            + self.worker_panics.load(Ordering::Acquire)
    }

    /// The scheduling the worker thread got from the OS. Realtime-safe.
    pub fn worker_scheduling(&self) -> Scheduling {
        Scheduling::from_u8(self.worker_scheduling.load(Ordering::Relaxed))
    }

    /// Whether the worker thread runs with real-time scheduling (any class). Realtime-safe.
    pub fn worker_realtime(&self) -> bool {
        self.worker_scheduling().is_realtime()
    }

    pub(crate) fn set_worker_scheduling(&self, s: Scheduling) {
        self.worker_scheduling.store(s as u8, Ordering::Relaxed);
    }

    /// Dropouts so far. Realtime-safe.
    pub fn dropouts(&self) -> u64 {
        self.dropouts.load(Ordering::Relaxed)
    }

    pub(crate) fn add_worker_time(&self, elapsed: Duration) {
        self.worker_ns
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
        self.worker_frames.fetch_add(1, Ordering::Relaxed);
    }

    /// Share of one core the worker used: processing time per frame over the hop duration
    /// `hop_s` (seconds). 0 before any frame.
    pub fn worker_load(&self, hop_s: f64) -> f64 {
        let frames = self.worker_frames.load(Ordering::Relaxed);
        if frames == 0 {
            return 0.0;
        }
        self.worker_ns.load(Ordering::Relaxed) as f64 * 1e-9 / frames as f64 / hop_s
    }

    /// Sets every counter to zero.
    pub fn clear(&self) {
        for c in [
            &self.dropouts,
            &self.frames,
            &self.worker_ns,
            &self.worker_frames,
            &self.frames_sent,
            &self.late_frames_skipped,
            &self.nonfinite_inputs,
            &self.worker_panics,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}
