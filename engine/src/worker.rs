//! The worker side of the pipeline: one thread per engine instance that turns frames into
//! grains. It talks to the audio thread only through the rings it owns the ends of.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rtrb::{Consumer, Producer};

use crate::engine::WorkerPriority;
use crate::messages::{AudioToWorkerMsg, WorkerToAudioMsg};
use crate::processor::FrameProcessor;
use crate::stats::{EngineStats, MAX_WORKER_PANICS};

/// Flags shared between the engine and its worker.
#[derive(Debug, Default)]
pub(crate) struct WorkerFlags {
    /// Asks the worker to exit.
    pub stop: AtomicBool,
    /// Fault injection for tests: while set, the worker takes no frames.
    pub paused: AtomicBool,
    /// Fault injection for tests: the next frame's processing panics.
    pub panic_next: AtomicBool,
    /// Set by the worker: with the timbres it holds, every frame plays dry unless it asks for
    /// a Neural map point ([`FrameProcessor::idle`]). The audio thread then keeps such frames
    /// to itself instead of waking the worker for each (the worker sleeps while an instance has
    /// nothing to do). Updated after every control poll.
    pub idle: AtomicBool,
    /// Set by the audio thread: frames before this index (of the current epoch) have been
    /// played, processed or not. The worker skips such frames instead of processing them
    /// late, so after a stall or a burst it catches up at once rather than lengthening the
    /// run of dry frames.
    pub played: AtomicU64,
}

/// The worker's ends of the rings.
pub(crate) struct WorkerRings {
    pub headers: Consumer<AudioToWorkerMsg>,
    pub frames: Consumer<f32>,
    pub grain_headers: Producer<WorkerToAudioMsg>,
    pub grains: Producer<f32>,
}

/// Longest the worker waits for a frame before it looks at control messages again.
pub(crate) const IDLE_WAIT: Duration = Duration::from_millis(20);

/// The worker's frame shape and timing.
pub(crate) struct WorkerTiming {
    /// Frame length, in samples.
    pub n_fft: usize,
    /// Time between frames (one hop at the model rate).
    pub hop: Duration,
    /// How long the worker sleeps between checks while paused by fault injection.
    pub poll: Duration,
}

/// Starts the worker thread. It waits for frames parked (woken by the audio thread's
/// `unpark` after each frame, and by the control side after each message).
pub(crate) fn spawn(
    priority: WorkerPriority,
    mut processor: FrameProcessor,
    mut rings: WorkerRings,
    timing: WorkerTiming,
    flags: Arc<WorkerFlags>,
    stats: Arc<EngineStats>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("timbreswap-worker".into())
        .spawn(move || {
            let WorkerTiming { n_fft, hop, poll } = timing;
            crate::denormals::flush_to_zero_for_this_thread();
            let granted = if priority == WorkerPriority::Realtime {
                // One frame per hop; a frame takes well under half of it.
                crate::scheduling::promote_current_thread(hop, hop / 2)
            } else {
                crate::scheduling::Scheduling::Normal
            };
            stats.set_worker_scheduling(granted);
            let mut frame = vec![0.0f32; n_fft];
            let mut grain = vec![0.0f32; n_fft];
            let mut epoch: Option<u32> = None;
            while !flags.stop.load(Ordering::Acquire) {
                if flags.paused.load(Ordering::Acquire) {
                    std::thread::sleep(poll);
                    continue;
                }
                let Ok(AudioToWorkerMsg::Frame {
                    epoch: frame_epoch,
                    index,
                    params,
                }) = rings.headers.pop()
                else {
                    processor.poll_control();
                    flags.idle.store(processor.idle(), Ordering::Release);
                    // The audio thread unparks this thread after each frame it sends, so the
                    // wait ends as soon as there is work; the timeout only bounds how long
                    // control messages wait while no audio flows.
                    std::thread::park_timeout(IDLE_WAIT);
                    continue;
                };
                // The audio thread writes the samples before the header.
                let Ok(chunk) = rings.frames.read_chunk(n_fft) else {
                    continue;
                };
                let (a, b) = chunk.as_slices();
                frame[..a.len()].copy_from_slice(a);
                frame[a.len()..].copy_from_slice(b);
                chunk.commit_all();
                if epoch != Some(frame_epoch) {
                    processor.reset();
                    epoch = Some(frame_epoch);
                }
                // Already played dry: processing it now would only delay the next frames.
                if index < flags.played.load(Ordering::Acquire) {
                    stats.late_frames_skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let started = Instant::now();
                // A panic in the frame processing (a bug) must not end the stream silently:
                // it is counted, the processor forgets its stream and this frame plays dry.
                // After MAX_WORKER_PANICS the worker stops for good; the audio thread then
                // substitutes the dry signal for every frame and the editor says why.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    if flags.panic_next.swap(false, Ordering::AcqRel) {
                        panic!("injected worker fault");
                    }
                    processor.process(index, &frame, &params, &mut grain)
                }));
                let elapsed = started.elapsed();
                flags.idle.store(processor.idle(), Ordering::Release);
                let Ok(wrote) = result else {
                    let panics = stats.worker_panics.fetch_add(1, Ordering::Relaxed) + 1;
                    if panics >= MAX_WORKER_PANICS {
                        break;
                    }
                    processor.reset();
                    continue;
                };
                if rings.grain_headers.slots() == 0 {
                    stats.add_worker_time(elapsed);
                    continue;
                }
                if !wrote {
                    let _ = rings.grain_headers.push(WorkerToAudioMsg::Grain {
                        epoch: frame_epoch,
                        index,
                        dry: true,
                    });
                    stats.add_worker_time(elapsed);
                    continue;
                }
                let Ok(mut chunk) = rings.grains.write_chunk(n_fft) else {
                    stats.add_worker_time(elapsed);
                    continue;
                };
                let (a, b) = chunk.as_mut_slices();
                let split = a.len();
                a.copy_from_slice(&grain[..split]);
                b.copy_from_slice(&grain[split..]);
                chunk.commit_all();
                let _ = rings.grain_headers.push(WorkerToAudioMsg::Grain {
                    epoch: frame_epoch,
                    index,
                    dry: false,
                });
                stats.add_worker_time(elapsed);
            }
        })
}
