//! The plugin's own `process` (parameter smoothing, block splitting, the engine) never touches
//! the allocator, in realtime and offline mode, with a timbre loaded and while it is replaced by
//! the instance's loader thread; nor on its other paths: a state restored while active (a
//! request to the loader thread), zero-frame and NaN blocks, and a block larger than the
//! latency covers (a restart to ask for).

use std::sync::atomic::{AtomicU32, Ordering};

use nice_assert_no_alloc::{assert_no_alloc, violation_count, AllocDisabler};
use nice_plug::context::process::SendEventError;
use nice_plug::prelude::*;
use timbreswap::loader::Task;
use timbreswap::Timbreswap;

#[global_allocator]
static ALLOC: AllocDisabler = AllocDisabler;

/// A host context that counts what the plugin asks of it (without allocating).
struct Context {
    transport: Transport,
    /// Restart requests.
    restarts: AtomicU32,
    /// Tasks handed to nice-plug's executors from `process` (the plugin uses its own thread).
    tasks: AtomicU32,
}

impl Context {
    fn new(rate: f32) -> Self {
        Self {
            transport: Transport::new(rate),
            restarts: AtomicU32::new(0),
            tasks: AtomicU32::new(0),
        }
    }
}

impl ActivateContext<Timbreswap> for Context {
    fn plugin_api(&self) -> PluginApi {
        PluginApi::Clap
    }
    fn execute(&self, _task: Task) {}
    fn set_latency_samples(&self, _samples: u32) {}
    fn set_current_voice_capacity(&self, _capacity: u32) {}
}

impl ProcessContext<Timbreswap> for Context {
    fn plugin_api(&self) -> PluginApi {
        PluginApi::Clap
    }
    fn execute_background(&self, _task: Task) {
        self.tasks.fetch_add(1, Ordering::Relaxed);
    }
    fn execute_gui(&self, _task: Task) {
        self.tasks.fetch_add(1, Ordering::Relaxed);
    }
    fn transport(&self) -> &Transport {
        &self.transport
    }
    fn next_event(&mut self) -> Option<PluginNoteEvent<Timbreswap>> {
        None
    }
    fn try_send_event(
        &mut self,
        event: PluginNoteEvent<Timbreswap>,
    ) -> Result<(), (PluginNoteEvent<Timbreswap>, SendEventError)> {
        Err((event, SendEventError::NoOutputBuffer))
    }
    fn set_latency_samples(&self, _samples: u32) {}
    fn request_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }
    fn set_current_voice_capacity(&self, _capacity: u32) {}
}

/// Waits (up to 20 s) until the instance's loader thread has put a timbre in slot A's
/// persisted field.
fn wait_for_timbre_a(plugin: &Timbreswap) {
    let start = std::time::Instant::now();
    loop {
        let fields = plugin.params().serialize_fields();
        if fields
            .get("timbre-a")
            .is_some_and(|v| v.contains("\"envelope\""))
        {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "the loader thread did not load slot A: {:?}",
            fields.get("timbre-a")
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn example(name: &str) -> std::path::PathBuf {
    std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/examples")).join(name)
}

#[test]
fn plugin_process_does_not_allocate() {
    for mode in [ProcessMode::Realtime, ProcessMode::Offline] {
        let mut plugin = Timbreswap::default();
        let executor = plugin.task_executor();
        // Load a reference as the editor's Load button would (off the audio thread).
        executor(Task::LoadReference {
            slot: timbreswap_engine::Slot::A,
            path: example("ref-trumpet.wav"),
        });
        wait_for_timbre_a(&plugin);
        let layout = Timbreswap::AUDIO_IO_LAYOUTS[0];
        let config = BufferConfig {
            sample_rate: 48_000.0,
            min_buffer_size: None,
            max_buffer_size: 256,
            process_mode: mode,
        };
        let mut context = Context::new(48_000.0);
        assert!(plugin.activate(&layout, &config, &mut context));
        plugin.reset();
        let mut left: Vec<f32> = (0..48_000).map(|n| (n as f32 * 0.03).sin() * 0.3).collect();
        let mut right = left.clone();
        let mut buffer = Buffer::default();
        let mut aux = AuxiliaryBuffers {
            inputs: &mut [],
            outputs: &mut [],
        };
        let before = violation_count();
        for (i, start) in (0..left.len() - 256).step_by(256).enumerate() {
            if i == 50 {
                // Replace the timbre mid-stream (the executor queues it on the loader thread).
                executor(Task::LoadReference {
                    slot: timbreswap_engine::Slot::A,
                    path: example("ref-cello.wav"),
                });
            }
            let len = if i % 3 == 0 { 256 } else { 100 };
            let (l, r) = (
                &mut left[start..start + len],
                &mut right[start..start + len],
            );
            // SAFETY: both slices are valid for `len` samples and outlive `buffer`'s use below.
            unsafe {
                buffer.set_slices(len, |slices| {
                    slices.clear();
                    slices.push(std::mem::transmute::<&mut [f32], &mut [f32]>(l));
                    slices.push(std::mem::transmute::<&mut [f32], &mut [f32]>(r));
                })
            };
            assert_no_alloc(|| {
                plugin.process(&mut buffer, &mut aux, &mut context);
            });
            if mode == ProcessMode::Realtime {
                std::thread::sleep(std::time::Duration::from_micros(300));
            }
        }
        assert_eq!(violation_count(), before, "{mode:?}: allocation in process");
        assert!(left.iter().chain(&right).all(|v| v.is_finite()));
    }
}

/// A plugin activated in realtime mode at 48 kHz with a 4 096-sample maximum, its host
/// context and its audio.
struct Rig {
    plugin: Timbreswap,
    context: Context,
    audio: [Vec<f32>; 2],
    buffer: Buffer<'static>,
}

impl Rig {
    const MAX: usize = 4_096;

    fn new(plugin: Timbreswap) -> Self {
        let mut rig = Self {
            plugin,
            context: Context::new(48_000.0),
            audio: [vec![0.0; Self::MAX], vec![0.0; Self::MAX]],
            buffer: Buffer::default(),
        };
        rig.reactivate();
        // Room for both channel slices, so `set_slices` does not allocate either.
        // SAFETY: no slice is stored.
        unsafe { rig.buffer.set_slices(0, |slices| slices.reserve(2)) };
        rig
    }

    /// (Re)activates the plugin, as a host does on start and on a restart request.
    fn reactivate(&mut self) {
        let config = BufferConfig {
            sample_rate: 48_000.0,
            min_buffer_size: None,
            max_buffer_size: Self::MAX as u32,
            process_mode: ProcessMode::Realtime,
        };
        let layout = Timbreswap::AUDIO_IO_LAYOUTS[0];
        self.plugin.deactivate();
        assert!(self.plugin.activate(&layout, &config, &mut self.context));
    }

    /// One block of `n` samples of a 220 Hz tone (NaN every third sample when `hostile`)
    /// through `process` under `assert_no_alloc`.
    fn block(&mut self, n: usize, hostile: bool) {
        let [left, right] = &mut self.audio;
        for (i, (l, r)) in left.iter_mut().zip(right.iter_mut()).take(n).enumerate() {
            let v = if hostile && i % 3 == 0 {
                f32::NAN
            } else {
                0.3 * (i as f32 * 2.0 * std::f32::consts::PI * 220.0 / 48_000.0).sin()
            };
            (*l, *r) = (v, v);
        }
        // SAFETY: both slices are `n` long and live in `self.audio`, which is never resized
        // and outlives every use of `self.buffer` (both are dropped together).
        unsafe {
            self.buffer.set_slices(n, |slices| {
                slices.clear();
                slices.push(std::mem::transmute::<&mut [f32], &mut [f32]>(
                    &mut left[..n],
                ));
                slices.push(std::mem::transmute::<&mut [f32], &mut [f32]>(
                    &mut right[..n],
                ));
            })
        };
        let mut aux = AuxiliaryBuffers {
            inputs: &mut [],
            outputs: &mut [],
        };
        let before = violation_count();
        let (plugin, buffer, context) = (&mut self.plugin, &mut self.buffer, &mut self.context);
        assert_no_alloc(|| {
            plugin.process(buffer, &mut aux, context);
        });
        assert_eq!(violation_count(), before, "process allocated ({n} samples)");
        assert!(left[..n].iter().chain(&right[..n]).all(|v| v.is_finite()));
    }

    /// Restart requests so far.
    fn restarts(&self) -> u32 {
        self.context.restarts.load(Ordering::Relaxed)
    }

    /// Tasks handed to nice-plug's executors from `process` so far.
    fn tasks(&self) -> u32 {
        self.context.tasks.load(Ordering::Relaxed)
    }
}

#[test]
fn process_does_not_allocate_on_its_rare_paths() {
    let mut plugin = Timbreswap::default();
    let executor = plugin.task_executor();
    let mut rig = Rig::new(plugin);
    // A preset of the model (loaded by the activation) in slot A, as the editor's menu would.
    executor(Task::LoadPreset {
        slot: timbreswap_engine::Slot::A,
        index: 2,
    });
    wait_for_timbre_a(&rig.plugin);
    for _ in 0..40 {
        rig.block(128, false);
    }
    // The host restores a state while the plugin runs (its preset recall): `process` asks the
    // loader thread to apply it (a flag and a wake, under `assert_no_alloc`), and hands nothing
    // to nice-plug's shared background thread. That the state then reaches the engine is
    // `state_loaded_while_active_reaches_the_engine` (tests/tests/host.rs).
    let params = rig.plugin.params();
    params.deserialize_fields(&params.serialize_fields());
    rig.block(128, false);
    rig.block(128, false);
    assert_eq!(rig.tasks(), 0, "a task went to nice-plug's executors");
    // The editor's own request, queued beside it.
    executor(Task::ApplyState);
    // 128-sample blocks for longer than the settling time: one restart request, to build
    // the latency for them rather than for the declared 4 096.
    for _ in 0..100 {
        rig.block(128, false);
    }
    assert_eq!(
        rig.restarts(),
        1,
        "no restart asked for to lower the latency"
    );
    rig.reactivate();
    // Zero frames, NaN samples, then a block larger than the latency now covers (one hop,
    // 240 samples at 48 kHz): one more request, however many large blocks follow.
    rig.block(0, false);
    rig.block(200, true);
    assert_eq!(rig.restarts(), 1);
    rig.block(Rig::MAX, false);
    assert_eq!(rig.restarts(), 2);
    for _ in 0..20 {
        rig.block(1_024, false);
    }
    assert_eq!(rig.restarts(), 2, "asked for once per activation");
    rig.plugin.deactivate();
}
