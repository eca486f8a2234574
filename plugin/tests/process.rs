//! The plugin's own `process` (parameter smoothing, block splitting, the engine) never touches
//! the allocator, in realtime and offline mode, with a timbre loaded and while it is replaced by
//! a background task.

use nice_assert_no_alloc::{assert_no_alloc, violation_count, AllocDisabler};
use nice_plug::context::process::SendEventError;
use nice_plug::prelude::*;
use timbreswap::loader::Task;
use timbreswap::Timbreswap;

#[global_allocator]
static ALLOC: AllocDisabler = AllocDisabler;

/// A host context that records nothing: the test only drives the plugin.
struct Context {
    transport: Transport,
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
    fn execute_background(&self, _task: Task) {}
    fn execute_gui(&self, _task: Task) {}
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
    fn request_restart(&self) {}
    fn set_current_voice_capacity(&self, _capacity: u32) {}
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
        let layout = Timbreswap::AUDIO_IO_LAYOUTS[0];
        let config = BufferConfig {
            sample_rate: 48_000.0,
            min_buffer_size: None,
            max_buffer_size: 256,
            process_mode: mode,
        };
        let mut context = Context {
            transport: Transport::new(48_000.0),
        };
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
                // Replace the timbre mid-stream from the "background thread".
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
