//! `Timbreswap::process` itself, not only the engine's `process`, never allocates: run under
//! `assert_no_alloc` with mock host contexts, through every path it has (steady blocks, a
//! state change to schedule, a block larger than the latency covers, zero-frame and hostile
//! blocks).

use std::sync::atomic::{AtomicU32, Ordering};

use nice_assert_no_alloc::{assert_no_alloc, violation_count, AllocDisabler};
use nice_plug::context::process::SendEventError;

use super::*;

#[global_allocator]
static ALLOC: AllocDisabler = AllocDisabler;

/// A host that records what the plugin asks of it, without allocating.
struct MockHost {
    transport: Transport,
    latency: AtomicU32,
    restarts: AtomicU32,
    background: AtomicU32,
}

impl MockHost {
    fn new(rate: f32) -> Self {
        Self {
            transport: Transport::new(rate),
            latency: AtomicU32::new(0),
            restarts: AtomicU32::new(0),
            background: AtomicU32::new(0),
        }
    }
}

impl ActivateContext<Timbreswap> for MockHost {
    fn plugin_api(&self) -> PluginApi {
        PluginApi::Clap
    }
    fn execute(&self, task: Task) {
        let _ = task;
    }
    fn set_latency_samples(&self, samples: u32) {
        self.latency.store(samples, Ordering::Relaxed);
    }
    fn set_current_voice_capacity(&self, _capacity: u32) {}
}

impl ProcessContext<Timbreswap> for MockHost {
    fn plugin_api(&self) -> PluginApi {
        PluginApi::Clap
    }
    fn execute_background(&self, _task: Task) {
        self.background.fetch_add(1, Ordering::Relaxed);
    }
    fn execute_gui(&self, _task: Task) {
        self.background.fetch_add(1, Ordering::Relaxed);
    }
    fn transport(&self) -> &Transport {
        &self.transport
    }
    fn next_event(&mut self) -> Option<PluginNoteEvent<Timbreswap>> {
        None
    }
    fn try_send_event(
        &mut self,
        _event: PluginNoteEvent<Timbreswap>,
    ) -> Result<(), (PluginNoteEvent<Timbreswap>, SendEventError)> {
        Ok(())
    }
    fn set_latency_samples(&self, samples: u32) {
        self.latency.store(samples, Ordering::Relaxed);
    }
    fn request_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }
    fn set_current_voice_capacity(&self, _capacity: u32) {}
}

#[test]
fn process_never_allocates() {
    let rate = 48_000.0;
    let max = 4_096;
    let mut plugin = Timbreswap::default();
    let mut host = MockHost::new(rate);
    let (params, shared) = (plugin.params.clone(), plugin.shared.clone());
    loader::run(Task::LoadModel { path: None }, &params, &shared);
    loader::run(
        Task::LoadPreset {
            slot: Slot::A,
            index: 2,
        },
        &params,
        &shared,
    );
    let layout = Timbreswap::AUDIO_IO_LAYOUTS[0];
    let config = BufferConfig {
        sample_rate: rate,
        min_buffer_size: None,
        max_buffer_size: max as u32,
        process_mode: ProcessMode::Realtime,
    };
    assert!(plugin.activate(&layout, &config, &mut host));

    let mut audio = vec![vec![0.0f32; max]; 2];
    let mut buffer = Buffer::default();
    // Room for both channel slices, so `set_slices` below does not allocate either.
    // SAFETY: the slices point into `audio`, which outlives every use of `buffer`.
    unsafe { buffer.set_slices(0, |slices| slices.reserve(2)) };
    let mut phase = 0.0f32;
    let mut call = |plugin: &mut Timbreswap,
                    host: &mut MockHost,
                    audio: &mut Vec<Vec<f32>>,
                    buffer: &mut Buffer,
                    n: usize,
                    hostile: bool| {
        let (left, right) = audio.split_at_mut(1);
        for (i, (l, r)) in left[0]
            .iter_mut()
            .zip(right[0].iter_mut())
            .take(n)
            .enumerate()
        {
            phase += 2.0 * std::f32::consts::PI * 220.0 / rate;
            let v = if hostile && i % 3 == 0 {
                f32::NAN
            } else {
                0.3 * phase.sin()
            };
            (*l, *r) = (v, v);
        }
        // SAFETY: both slices are `n` long and live in `audio`, which outlives this call.
        unsafe {
            buffer.set_slices(n, |slices| {
                slices.clear();
                slices.push(std::mem::transmute::<&mut [f32], &mut [f32]>(
                    &mut left[0][..n],
                ));
                slices.push(std::mem::transmute::<&mut [f32], &mut [f32]>(
                    &mut right[0][..n],
                ));
            })
        };
        let mut aux = AuxiliaryBuffers {
            inputs: &mut [],
            outputs: &mut [],
        };
        let before = violation_count();
        assert_no_alloc(|| {
            plugin.process(buffer, &mut aux, host);
        });
        assert_eq!(violation_count(), before, "process allocated ({n} samples)");
    };
    // Steady 128-sample blocks; then a state restored while active (as a host's preset
    // recall does) is scheduled for the background (counted here, run by hand as the
    // background thread would).
    for _ in 0..40 {
        call(&mut plugin, &mut host, &mut audio, &mut buffer, 128, false);
    }
    assert_eq!(host.background.load(Ordering::Relaxed), 0);
    params.note_unapplied_change();
    call(&mut plugin, &mut host, &mut audio, &mut buffer, 128, false);
    assert_eq!(
        host.background.load(Ordering::Relaxed),
        1,
        "no task scheduled"
    );
    loader::run(Task::ApplyState, &params, &shared);
    for _ in 0..40 {
        call(&mut plugin, &mut host, &mut audio, &mut buffer, 128, false);
    }
    // Zero frames, hostile samples, then a block larger than the latency covers.
    call(&mut plugin, &mut host, &mut audio, &mut buffer, 0, false);
    call(&mut plugin, &mut host, &mut audio, &mut buffer, 200, true);
    assert_eq!(host.restarts.load(Ordering::Relaxed), 0);
    call(&mut plugin, &mut host, &mut audio, &mut buffer, max, false);
    assert_eq!(
        host.restarts.load(Ordering::Relaxed),
        1,
        "restart asked for once"
    );
    for _ in 0..20 {
        call(
            &mut plugin,
            &mut host,
            &mut audio,
            &mut buffer,
            1_024,
            false,
        );
    }
    assert_eq!(
        host.restarts.load(Ordering::Relaxed),
        1,
        "asked for once per activation"
    );
    // The output is finite throughout (the last block's).
    assert!(audio.iter().flatten().all(|v| v.is_finite()));
    plugin.deactivate();
}
