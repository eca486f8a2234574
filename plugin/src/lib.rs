//! Timbreswap: plays a live monophonic performance with the timbre of a reference clip.
//!
//! The plugin owns the parameters, the persisted timbres and the editor; all signal processing
//! is in `timbreswap-engine`. The engine is rebuilt in `activate` (main thread) for each host
//! configuration and dropped there too, so the audio thread never allocates or joins.

use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use nice_plug::prelude::*;
use timbreswap_engine::{BlockParams, Engine, EngineSettings, ProcessingMode, Slot, StftConfig};

pub mod editor;
pub mod jobs;
pub mod loader;
pub mod meter;
pub mod model;
pub mod pacing;
pub mod params;
pub mod persisted;
pub mod saved_clip;
pub mod shared;

use loader::Task;
use params::TimbreswapParams;
use shared::Shared;

/// The plugin instance.
pub struct Timbreswap {
    params: Arc<TimbreswapParams>,
    shared: Arc<Shared>,
    /// The running engine (`None` before the first successful activation).
    engine: Option<Engine>,
    /// The state-restore count ([`TimbreswapParams::restores`]) last handed to the engine;
    /// audio thread.
    applied_restores: u32,
    /// Per-sample Mix values of the current block (0..=1); sized in `activate`.
    mix: Vec<f32>,
    /// Per-sample output gain of the current block (linear); sized in `activate`.
    gain: Vec<f32>,
    /// Per-sample Morph values of the current block (0..=1); sized in `activate`.
    morph: Vec<f32>,
    /// Per-sample Variation values of the current block (0..=2); sized in `activate`.
    variation: Vec<f32>,
    /// Per-sample Transpose values of the current block (semitones); sized in `activate`.
    transpose: Vec<f32>,
    /// Per-sample Decay values of the current block (0..=1); sized in `activate`.
    decay: Vec<f32>,
    /// Per-sample timbre-map point and amount of the current block (normalised map
    /// coordinates, 0..=1); sized in `activate`.
    map: [Vec<f32>; 3],
    /// Editor window state.
    editor_state: Arc<editor::EditorState>,
    /// The instance's thread for loading files and applying restored states (its
    /// `apply_state` is called on the audio thread).
    jobs: jobs::Jobs,
    /// How the host calls `process` (largest block, bursts) since the instance was created;
    /// the next activation builds the latency for it. Audio thread, and `activate`.
    pacing: pacing::Pacing,
    /// Host sample rate of the current activation, in Hz.
    rate: f64,
    /// Whether this activation has already asked the host for a restart because its blocks
    /// outgrew [`Engine::covered_block`]; audio thread.
    restart_requested: bool,
    /// The input meter's RMS follower (reset in `activate`); audio thread.
    input_follower: meter::MeterFollower,
    /// The output meter's RMS follower (reset in `activate`); audio thread.
    output_follower: meter::MeterFollower,
}

impl Default for Timbreswap {
    fn default() -> Self {
        let params = Arc::new(TimbreswapParams::default());
        let shared = Arc::new(Shared::default());
        Self {
            jobs: jobs::Jobs::start(params.clone(), shared.clone()),
            params,
            shared,
            engine: None,
            applied_restores: 0,
            mix: Vec::new(),
            gain: Vec::new(),
            morph: Vec::new(),
            variation: Vec::new(),
            transpose: Vec::new(),
            decay: Vec::new(),
            map: [Vec::new(), Vec::new(), Vec::new()],
            editor_state: Arc::new(editor::EditorState::default()),
            pacing: pacing::Pacing::default(),
            rate: 48_000.0,
            restart_requested: false,
            input_follower: meter::MeterFollower::new(48_000.0),
            output_follower: meter::MeterFollower::new(48_000.0),
        }
    }
}

impl Plugin for Timbreswap {
    const NAME: &'static str = "Timbreswap";
    const VENDOR: &'static str = "Timbreswap";
    const URL: &'static str = env!("CARGO_PKG_HOMEPAGE");
    const EMAIL: &'static str = "";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    const AUDIO_IO_LAYOUTS: &'static [AudioIOLayout] = &[
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(2),
            main_output_channels: NonZeroU32::new(2),
            ..AudioIOLayout::const_default()
        },
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(1),
            main_output_channels: NonZeroU32::new(1),
            ..AudioIOLayout::const_default()
        },
    ];

    const SAMPLE_ACCURATE_AUTOMATION: bool = true;

    type SysExMessage = ();
    type BackgroundTask = Task;
    type Editor = editor::TimbreswapEditor;

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    fn task_executor(&mut self) -> TaskExecutor<Self> {
        // Tasks are only queued on the instance's own thread (see `jobs`); the editor hands them
        // over with `execute_gui`.
        Box::new(self.jobs.sender().executor())
    }

    fn editor(&mut self, async_executor: AsyncExecutor<Self>) -> Option<Self::Editor> {
        editor::create(
            self.params.clone(),
            self.shared.clone(),
            self.editor_state.clone(),
            async_executor,
        )
    }

    fn activate(
        &mut self,
        audio_io_layout: &AudioIOLayout,
        buffer_config: &BufferConfig,
        context: &mut impl ActivateContext<Self>,
    ) -> bool {
        let channels = audio_io_layout
            .main_output_channels
            .map_or(2, NonZeroU32::get) as usize;
        let mode = engine_mode(buffer_config.process_mode);
        let max_block = buffer_config.max_buffer_size.max(1) as usize;
        // The latency follows the blocks the host really passes, not the maximum it declares
        // (`pacing.rs`): built for the declared maximum until realtime calls have been seen,
        // then for the largest block (or burst of calls) seen; `process` asks for a restart
        // when that changes.
        let latency_block = self.pacing.latency_block(max_block);
        let settings = EngineSettings {
            host_rate: buffer_config.sample_rate as f64,
            max_block,
            channels,
            mode,
            stft: StftConfig::default(),
            worker_priority: Default::default(),
            latency_mode: self.params.latency.value().engine(),
            latency_block: Some(latency_block),
        };
        let model_rate = settings.stft.sample_rate as f64;
        let frame_hop = settings.latency_mode.frame_hop(&settings.stft);
        let one_hop = (frame_hop as f64 * settings.host_rate / model_rate) as usize;
        self.pacing
            .new_activation(latency_block, max_block, one_hop);
        self.rate = buffer_config.sample_rate as f64;
        self.restart_requested = false;
        self.input_follower = meter::MeterFollower::new(buffer_config.sample_rate);
        self.output_follower = meter::MeterFollower::new(buffer_config.sample_rate);
        self.shared.input_meter.clear();
        self.shared.output_meter.clear();
        // Counted before the fields are read: a restore from now on is applied by `process`.
        self.applied_restores = self.params.restores.load(Ordering::Acquire);
        let timbre_a = loader::validated_timbre(Slot::A, &self.params, &self.shared);
        let timbre_b = loader::validated_timbre(Slot::B, &self.params, &self.shared);
        let (net, choice, _) = loader::wanted_network(&self.params, &self.shared);
        *self
            .shared
            .model
            .write()
            .unwrap_or_else(PoisonError::into_inner) = net.clone();
        *self
            .shared
            .model_choice
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = choice;
        // Stop the old engine (joins its worker) before starting the new one.
        self.engine = None;
        *self
            .shared
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        self.shared.stats.clear();
        self.shared.outgrown_block.store(0, Ordering::Relaxed);
        match Engine::new(
            settings,
            self.shared.stats.clone(),
            timbre_a.as_ref(),
            timbre_b.as_ref(),
        ) {
            Ok((engine, control)) => {
                let latency = engine.latency_samples();
                context.set_latency_samples(latency);
                self.shared.latency.store(latency, Ordering::Relaxed);
                self.shared
                    .sample_rate
                    .store(buffer_config.sample_rate.round() as u32, Ordering::Relaxed);
                let mut control = control;
                // Whether the saved state needs work only a background task may do.
                let mut unapplied = false;
                if let Some(net) = &net {
                    let latent_a = timbre_a.as_ref().and_then(|d| model::latent_for(d, net));
                    let latent_b = timbre_b.as_ref().and_then(|d| model::latent_for(d, net));
                    if let Err(e) = control.set_model(Some(net.clone()), latent_a, latent_b) {
                        self.shared
                            .report_error(format!("Model {}: {e}", net.name()));
                    }
                    // References saved with another model are measured again in the background
                    // once the engine runs: the first `process` call sees an unapplied count
                    // and schedules `Task::ApplyState` (the files are not read here, on the
                    // host's main thread).
                    unapplied |= [&timbre_a, &timbre_b].iter().any(|d| {
                        d.as_ref()
                            .is_some_and(|d| model::latent_for(d, net).is_none())
                    });
                }
                // The clips analysed for Exemplar mode; a clip whose analysis is not at hand
                // (a session just opened) is read again in the background, as above, except
                // for an offline bounce: its first block must already play the clip, so the
                // host waits here for the files (as it does for a sampler's).
                let offline = mode == ProcessingMode::Offline;
                for (slot, timbre) in [(Slot::A, &timbre_a), (Slot::B, &timbre_b)] {
                    let bank = match timbre {
                        Some(d) if offline => {
                            loader::exemplar_bank(slot, d, &self.params, &self.shared)
                        }
                        _ => self.shared.exemplar_for(slot, timbre.as_ref()),
                    };
                    match bank {
                        Some(bank) => {
                            if let Err(e) = control.set_exemplar(slot, Some(bank)) {
                                self.shared
                                    .report_error(format!("Slot {}: {e}", shared::slot_name(slot)));
                            }
                        }
                        None => {
                            unapplied |=
                                !offline && timbre.as_ref().is_some_and(|d| d.source.is_some())
                        }
                    }
                }
                if unapplied {
                    self.applied_restores = self.applied_restores.wrapping_sub(1);
                }
                *self
                    .shared
                    .control
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(control);
                self.engine = Some(engine);
                self.mix = vec![0.0; max_block];
                self.gain = vec![0.0; max_block];
                self.morph = vec![0.0; max_block];
                self.variation = vec![1.0; max_block];
                self.transpose = vec![0.0; max_block];
                self.decay = vec![1.0; max_block];
                self.map = [
                    vec![0.0; max_block],
                    vec![0.0; max_block],
                    vec![0.0; max_block],
                ];
                true
            }
            Err(e) => {
                // A rate or layout the engine does not run at (it supports 8-384 kHz): the
                // activation still succeeds and the audio passes through untouched, with the
                // latency reported as what it is, none.
                context.set_latency_samples(0);
                self.shared.latency.store(0, Ordering::Relaxed);
                self.shared
                    .sample_rate
                    .store(buffer_config.sample_rate.round() as u32, Ordering::Relaxed);
                self.shared.report_error(format!(
                    "Timbreswap cannot run here ({e}); the audio passes through unchanged"
                ));
                true
            }
        }
    }

    fn reset(&mut self) {
        if let Some(engine) = &mut self.engine {
            engine.reset();
        }
    }

    fn process(
        &mut self,
        buffer: &mut Buffer,
        _aux: &mut AuxiliaryBuffers,
        context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        let Some(engine) = self.engine.as_mut() else {
            return ProcessStatus::Normal;
        };
        // Blocks (or bursts of calls) larger than the latency was built for: the frames they
        // make too late play the exact dry input (crossfaded) until the host restarts the
        // plugin, which builds the latency for them and reports it. Asked once per activation.
        // (`Instant::now` reads the clock through the vDSO: no lock, no allocation.)
        // Only realtime calls count: an offline bounce's large blocks say nothing about the
        // blocks of the next live playback.
        let realtime = engine.settings().mode == ProcessingMode::Realtime;
        let samples = buffer.samples();
        let outgrown = realtime
            && self
                .pacing
                .on_call(samples, self.rate, engine.covered_block(), Instant::now());
        if outgrown && !self.restart_requested {
            self.restart_requested = true;
            self.shared
                .outgrown_block
                .store(self.pacing.largest() as u32, Ordering::Relaxed);
            context.request_restart();
        }
        // A Latency setting other than the one the engine was built for: the host restarts
        // the plugin, whose activation builds the engine for it and reports its latency.
        if self.params.latency.value().engine() != engine.settings().latency_mode
            && !self.restart_requested
        {
            self.restart_requested = true;
            context.request_restart();
        }
        // A state the host restored while active (or latents to measure after activation) is
        // applied off this thread; the engine takes it between two frames.
        let restores = self.params.restores.load(Ordering::Acquire);
        if restores != self.applied_restores {
            self.applied_restores = restores;
            self.jobs.apply_state();
        }
        let max = self.mix.len();
        for (_, mut block) in buffer.iter_blocks(max) {
            let len = block.samples();
            self.params.mix.smoothed.next_block(&mut self.mix, len);
            self.params.output.smoothed.next_block(&mut self.gain, len);
            self.params.morph.smoothed.next_block(&mut self.morph, len);
            self.params
                .variation
                .smoothed
                .next_block(&mut self.variation, len);
            self.params
                .transpose
                .smoothed
                .next_block(&mut self.transpose, len);
            self.params.decay.smoothed.next_block(&mut self.decay, len);
            let [map_x, map_y, map_amount] = &mut self.map;
            self.params.timbre_x.smoothed.next_block(map_x, len);
            self.params.timbre_y.smoothed.next_block(map_y, len);
            self.params.map_amount.smoothed.next_block(map_amount, len);
            let mut channels: [&mut [f32]; 2] = [&mut [], &mut []];
            let mut count = 0;
            for (slot, channel) in channels.iter_mut().zip(block.iter_mut()) {
                *slot = channel;
                count += 1;
            }
            self.input_follower
                .measure(&channels[..count], &self.shared.input_meter);
            engine.process(
                &mut channels[..count],
                &BlockParams {
                    mix: &self.mix[..len],
                    gain: &self.gain[..len],
                    morph: &self.morph[..len],
                    variation: &self.variation[..len],
                    transpose: &self.transpose[..len],
                    mode: self.params.mode.value().engine(),
                    phase: self.params.phase.value().engine(),
                    map_x: &self.map[0][..len],
                    map_y: &self.map[1][..len],
                    map_amount: &self.map[2][..len],
                    decay: &self.decay[..len],
                },
            );
            self.output_follower
                .measure(&channels[..count], &self.shared.output_meter);
        }
        if realtime {
            self.pacing.on_call_end(Instant::now());
        }
        ProcessStatus::Normal
    }

    fn deactivate(&mut self) {
        *self
            .shared
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        self.engine = None;
        self.shared.sample_rate.store(0, Ordering::Relaxed);
    }
}

/// The engine mode for a host's process mode. A buffered host (VST3 `kPrefetch`) calls
/// `process` ahead of time, in bursts, from a thread that may take a little longer: the frames
/// are processed inline there (as for an offline bounce), so a burst never drops a frame.
fn engine_mode(mode: ProcessMode) -> ProcessingMode {
    match mode {
        ProcessMode::Offline | ProcessMode::Buffered => ProcessingMode::Offline,
        ProcessMode::Realtime => ProcessingMode::Realtime,
    }
}

impl ClapPlugin for Timbreswap {
    const CLAP_ID: &'static str = "audio.timbreswap.timbreswap";
    const CLAP_DESCRIPTION: Option<&'static str> =
        Some("Plays a monophonic performance with the timbre of a reference clip");
    const CLAP_MANUAL_URL: Option<&'static str> = None;
    const CLAP_SUPPORT_URL: Option<&'static str> = None;
    const CLAP_FEATURES: &'static [ClapFeature] = &[
        ClapFeature::AudioEffect,
        ClapFeature::Stereo,
        ClapFeature::Mono,
        ClapFeature::Filter,
    ];
}

impl Vst3Plugin for Timbreswap {
    const VST3_CLASS_ID: [u8; 16] = *b"TimbreswapV0Fx01";
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] =
        &[Vst3SubCategory::Fx, Vst3SubCategory::Filter];
}

nice_export_clap!(Timbreswap);
nice_export_vst3!(Timbreswap);
