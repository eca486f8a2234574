//! A small, synchronous CLAP host harness built on `clack-host`.
//!
//! [`PluginHost`] loads a `.clap` bundle (on Linux: a shared library), instantiates one of its
//! plugins and drives it from a single OS thread. CLAP distinguishes between the *main thread*
//! and the *audio thread*; this harness plays both roles sequentially on the calling thread,
//! which is allowed as long as the two kinds of calls never overlap (they cannot here, since
//! every method takes `&mut self`). Each method's documentation says which CLAP thread role it
//! plays.
//!
//! Plugin-to-host callbacks are recorded in flags and serviced when the harness next gets
//! control:
//!
//! - `request_callback`: the plugin's `on_main_thread` is called before the current (or next)
//!   harness method returns;
//! - `request_restart`: honoured by [`PluginHost::latency`], which deactivates and reactivates
//!   the plugin with the same settings (see [`PluginHost::restart_requested`]);
//! - `request_process` / `params.request_flush`: the harness drives processing explicitly, so a
//!   process request is simply acknowledged and a flush request is satisfied by the next process
//!   call (or by an immediate `params.flush` while the plugin is inactive);
//! - `latency.changed`, `params.rescan`, `params.clear`, `state.mark_dirty` and
//!   `audio-ports.rescan`: recorded and reported by [`PluginHost::take_notifications`].
//!
//! The type is deliberately not `Send`: a CLAP instance must stay on the thread that created it.

use std::cell::Cell;
use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use clack_extensions::audio_ports::{
    AudioPortFlags, AudioPortInfoBuffer, AudioPortRescanFlags, HostAudioPorts, HostAudioPortsImpl,
    PluginAudioPorts,
};
use clack_extensions::latency::{HostLatency, HostLatencyImpl, PluginLatency};
use clack_extensions::params::{
    HostParams, HostParamsImplMainThread, HostParamsImplShared, ParamClearFlags, ParamInfoBuffer,
    ParamRescanFlags, PluginParams,
};
use clack_extensions::render::{PluginRender, RenderMode};
use clack_extensions::state::{HostState, HostStateImpl, PluginState, StateError};
use clack_host::entry::PluginEntryError;
use clack_host::events::event_types::ParamValueEvent;
use clack_host::prelude::*;

/// Name the harness reports to plugins through `clap_host`.
const HOST_NAME: &str = "Timbreswap test host";
/// Vendor the harness reports to plugins through `clap_host`.
const HOST_VENDOR: &str = "Timbreswap";
/// URL the harness reports to plugins through `clap_host`.
const HOST_URL: &str = "https://example.invalid/timbreswap";
/// Channel count assumed for the main ports of a plugin without the `clap.audio-ports` extension.
const DEFAULT_CHANNELS: u32 = 2;
/// Upper bound on consecutive restarts or main-thread callbacks serviced in one go, so that a
/// plugin that keeps asking cannot hang the harness.
const MAX_SERVICE_ROUNDS: usize = 16;
/// Initial capacity of the per-block event buffers.
const EVENT_CAPACITY: usize = 256;

/// Errors of the harness.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The bundle could not be loaded, or its `clap_entry` failed to initialize.
    #[error("failed to load CLAP bundle {}: {source}", path.display())]
    Load {
        /// Path of the bundle.
        path: PathBuf,
        /// Error of the underlying entry loader.
        #[source]
        source: PluginEntryError,
    },
    /// The bundle has no plugin factory, no plugin, or no plugin with the requested id.
    #[error(
        "no plugin{} found in CLAP bundle {}",
        requested.as_ref().map(|id| format!(" with id `{id}`")).unwrap_or_default(),
        path.display()
    )]
    NoPlugin {
        /// Path of the bundle.
        path: PathBuf,
        /// The plugin id that was asked for, if any.
        requested: Option<String>,
    },
    /// The plugin factory failed to create the instance, or the instance's `init` failed.
    #[error("failed to instantiate the plugin: {0}")]
    Instantiate(#[source] PluginInstanceError),
    /// `activate` or `start_processing` failed.
    #[error("failed to activate the plugin: {0}")]
    Activation(#[source] PluginInstanceError),
    /// The plugin described its audio ports inconsistently (`clap.audio-ports`).
    #[error("invalid audio port layout: {0}")]
    AudioPorts(String),
    /// The plugin's `process` call failed (or it returned `CLAP_PROCESS_ERROR`).
    #[error("plugin processing failed: {0}")]
    Processing(#[source] PluginInstanceError),
    /// The plugin does not implement an extension the requested operation needs.
    #[error("the plugin does not implement the `{0}` extension")]
    MissingExtension(&'static str),
    /// The plugin rejected a render mode change (`clap.render`).
    #[error("the plugin rejected the {0:?} render mode")]
    RenderMode(RenderMode),
    /// `state.save` failed.
    #[error("failed to save the plugin state: {0}")]
    StateSave(#[source] StateError),
    /// `state.load` failed.
    #[error("failed to load the plugin state: {0}")]
    StateLoad(#[source] StateError),
    /// No parameter has this display name.
    #[error("unknown parameter name `{0}`")]
    UnknownParam(String),
    /// `params.get_info` failed for this parameter index.
    #[error("the plugin could not describe the parameter at index {0}")]
    ParamInfo(u32),
    /// `params.get_value` failed for this parameter id (usually: the id is unknown).
    #[error("the plugin has no value for parameter id {0}")]
    ParamValue(u32),
    /// The operation is not allowed in the plugin's current lifecycle state (e.g. processing
    /// while deactivated, or changing the render mode while active).
    #[error("invalid plugin state: {0}")]
    InvalidState(&'static str),
    /// An argument passed to the harness is invalid (block length, channel count, event offset…).
    #[error("invalid argument: {0}")]
    InvalidInput(String),
}

/// Description of one plugin parameter, from `params.get_info`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    /// Stable CLAP parameter id.
    pub id: u32,
    /// Display name.
    pub name: String,
    /// Minimum plain value.
    pub min: f64,
    /// Maximum plain value.
    pub max: f64,
    /// Default plain value.
    pub default: f64,
}

/// Main-thread notifications the plugin sent since the last [`PluginHost::take_notifications`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostNotifications {
    /// The plugin called `latency.changed`.
    pub latency_changed: bool,
    /// The plugin called `params.rescan` (with any flags).
    pub params_rescanned: bool,
    /// The plugin called `params.clear`.
    pub params_cleared: bool,
    /// The plugin called `state.mark_dirty`.
    pub state_dirty: bool,
    /// The plugin called `audio-ports.rescan`.
    pub audio_ports_changed: bool,
}

/// Thread-safe host data: the requests a plugin may make from any thread.
#[derive(Default)]
struct HarnessShared {
    restart_requested: AtomicBool,
    process_requested: AtomicBool,
    callback_requested: AtomicBool,
    flush_requested: AtomicBool,
}

impl SharedHandler<'_> for HarnessShared {
    fn request_restart(&self) {
        self.restart_requested.store(true, Ordering::SeqCst);
    }

    fn request_process(&self) {
        self.process_requested.store(true, Ordering::SeqCst);
    }

    fn request_callback(&self) {
        self.callback_requested.store(true, Ordering::SeqCst);
    }
}

impl HostParamsImplShared for HarnessShared {
    fn request_flush(&self) {
        self.flush_requested.store(true, Ordering::SeqCst);
    }
}

/// Main-thread host data: notifications recorded for [`PluginHost::take_notifications`].
#[derive(Default)]
struct HarnessMainThread {
    latency_changed: Cell<bool>,
    params_rescanned: Cell<bool>,
    params_cleared: Cell<bool>,
    state_dirty: Cell<bool>,
    audio_ports_changed: Cell<bool>,
}

impl MainThreadHandler<'_> for HarnessMainThread {}

impl HostLatencyImpl for HarnessMainThread {
    fn changed(&self) {
        self.latency_changed.set(true);
    }
}

impl HostParamsImplMainThread for HarnessMainThread {
    fn rescan(&self, _flags: ParamRescanFlags) {
        self.params_rescanned.set(true);
    }

    fn clear(&self, _param_id: ClapId, _flags: ParamClearFlags) {
        self.params_cleared.set(true);
    }
}

impl HostStateImpl for HarnessMainThread {
    fn mark_dirty(&self) {
        self.state_dirty.set(true);
    }
}

impl HostAudioPortsImpl for HarnessMainThread {
    fn is_rescan_flag_supported(&self, _flag: AudioPortRescanFlags) -> bool {
        // Ports are re-queried on every activation, so any change can be honoured.
        true
    }

    fn rescan(&self, _flags: AudioPortRescanFlags) {
        self.audio_ports_changed.set(true);
    }
}

/// Ties the harness' handler types together and declares the host extensions.
struct HarnessHandlers;

impl HostHandlers for HarnessHandlers {
    type Shared<'a> = HarnessShared;
    type MainThread<'a> = HarnessMainThread;
    type AudioProcessor<'a> = ();

    fn declare_extensions(builder: &mut HostExtensions<Self>, _shared: &Self::Shared<'_>) {
        builder
            .register::<HostLatency>()
            .register::<HostParams>()
            .register::<HostState>()
            .register::<HostAudioPorts>();
    }
}

/// Plugin-side extensions, queried once after instantiation (they live as long as the instance).
#[derive(Clone, Copy)]
struct PluginExtensions {
    audio_ports: Option<PluginAudioPorts>,
    latency: Option<PluginLatency>,
    params: Option<PluginParams>,
    render: Option<PluginRender>,
    state: Option<PluginState>,
}

/// Channel counts of every audio port of one direction, and which one is the main port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PortLayout {
    channels: Vec<u32>,
    main: Option<usize>,
}

impl PortLayout {
    /// The layout assumed when the plugin has no `clap.audio-ports` extension.
    fn default_stereo() -> Self {
        Self {
            channels: vec![DEFAULT_CHANNELS],
            main: Some(0),
        }
    }

    /// Channel count of the main port (0 if there is none).
    fn main_channels(&self) -> usize {
        self.main
            .and_then(|index| self.channels.get(index))
            .map_or(0, |&count| count as usize)
    }

    fn total_channels(&self) -> usize {
        self.channels.iter().map(|&count| count as usize).sum()
    }

    /// One zeroed `max_block`-long buffer per channel, grouped by port.
    fn allocate(&self, max_block: usize) -> Vec<Vec<Vec<f32>>> {
        self.channels
            .iter()
            .map(|&count| vec![vec![0.0; max_block]; count as usize])
            .collect()
    }
}

/// Everything that only exists while the plugin is activated.
struct ActiveState {
    processor: PluginAudioProcessor<HarnessHandlers>,
    sample_rate: f64,
    max_block: u32,
    inputs: PortLayout,
    outputs: PortLayout,
    /// Input audio, `[port][channel][frame]`, `max_block` frames per channel.
    input_buffers: Vec<Vec<Vec<f32>>>,
    /// Output audio, `[port][channel][frame]`, `max_block` frames per channel.
    output_buffers: Vec<Vec<Vec<f32>>>,
    input_ports: AudioPorts,
    output_ports: AudioPorts,
    input_events: EventBuffer,
    output_events: EventBuffer,
}

/// A loaded and instantiated CLAP plugin, driven synchronously from the calling thread.
///
/// Dropping the host stops processing, deactivates the plugin and destroys the instance.
pub struct PluginHost {
    active: Option<ActiveState>,
    instance: PluginInstance<HarnessHandlers>,
    extensions: PluginExtensions,
    plugin_id: String,
    plugin_name: String,
    plugin_version: String,
    steady_time: u64,
}

/// Entries loaded by this process, kept so that no bundle is ever unloaded while the process
/// runs. Unloading a Rust `cdylib` (`dlclose`) whose threads registered thread-local destructors
/// crashes the process when those threads exit; hosts keep plugin libraries loaded for the same
/// reason.
fn keep_loaded(entry: &PluginEntry) {
    static LOADED: OnceLock<Mutex<Vec<PluginEntry>>> = OnceLock::new();
    LOADED
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(entry.clone());
}

impl PluginHost {
    /// Loads the bundle at `path` and instantiates its first plugin (or the one whose id equals
    /// `plugin_id` if `Some`).
    ///
    /// Thread: main thread (this thread becomes the plugin's main thread).
    pub fn load(path: &Path, plugin_id: Option<&str>) -> Result<Self, HostError> {
        let load_error = |source| HostError::Load {
            path: path.to_path_buf(),
            source,
        };
        // CLAP hands the bundle's absolute path to `clap_entry.init`, and `dlopen` would search
        // the library path for a bare file name, so resolve the path first.
        let absolute = path
            .canonicalize()
            .map_err(|error| load_error(PluginEntryError::Io(error)))?;
        // SAFETY: loading a CLAP bundle runs foreign code (its entry's `init`); the harness
        // trusts the bundle under test to be a well-formed CLAP plugin, which is the very thing
        // the tests exercise.
        let entry = unsafe { PluginEntry::load(&absolute) }.map_err(load_error)?;
        keep_loaded(&entry);

        let no_plugin = || HostError::NoPlugin {
            path: path.to_path_buf(),
            requested: plugin_id.map(str::to_owned),
        };
        let factory = entry.get_plugin_factory().ok_or_else(no_plugin)?;
        let descriptor = factory
            .plugin_descriptors()
            .find(|descriptor| match (descriptor.id(), plugin_id) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(id), Some(wanted)) => id.to_bytes() == wanted.as_bytes(),
            })
            .ok_or_else(no_plugin)?;
        let id: &CStr = descriptor.id().ok_or_else(no_plugin)?;
        let lossy = |text: Option<&CStr>| {
            text.map(|text| text.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let plugin_name = lossy(descriptor.name());
        let plugin_version = lossy(descriptor.version());

        let host_info = HostInfo::new(HOST_NAME, HOST_VENDOR, HOST_URL, env!("CARGO_PKG_VERSION"))
            .map_err(|error| HostError::InvalidInput(format!("host info: {error}")))?;

        let instance = PluginInstance::<HarnessHandlers>::new(
            |_| HarnessShared::default(),
            |_| HarnessMainThread::default(),
            &entry,
            id,
            &host_info,
        )
        .map_err(HostError::Instantiate)?;

        let handle = instance.plugin_shared_handle();
        let extensions = PluginExtensions {
            audio_ports: handle.get_extension(),
            latency: handle.get_extension(),
            params: handle.get_extension(),
            render: handle.get_extension(),
            state: handle.get_extension(),
        };

        let mut host = Self {
            active: None,
            instance,
            extensions,
            plugin_id: id.to_string_lossy().into_owned(),
            plugin_name,
            plugin_version,
            steady_time: 0,
        };
        host.service_callbacks();
        Ok(host)
    }

    /// Asks the plugin (via the `clap.render` extension, if it has it) to render offline
    /// (`true`) or realtime (`false`). Must be called while deactivated.
    ///
    /// Returns `Ok(false)` if the plugin has no render extension, `Ok(true)` if the mode was
    /// accepted.
    ///
    /// Thread: main thread.
    pub fn set_offline(&mut self, offline: bool) -> Result<bool, HostError> {
        self.service_callbacks();
        if self.active.is_some() {
            return Err(HostError::InvalidState(
                "the render mode can only be changed while the plugin is deactivated",
            ));
        }
        let Some(render) = self.extensions.render else {
            return Ok(false);
        };
        let mode = if offline {
            RenderMode::Offline
        } else {
            RenderMode::Realtime
        };
        let result = render.set(&self.instance.plugin_handle(), mode);
        self.service_callbacks();
        result
            .map(|()| true)
            .map_err(|_| HostError::RenderMode(mode))
    }

    /// Activates at `sample_rate` with min frames 1 and max frames `max_block`, and starts
    /// processing. Deactivates first if already active.
    ///
    /// Channel counts come from the main input/output ports of the plugin's `clap.audio-ports`
    /// extension (every other port gets silent/ignored buffers); without that extension the
    /// plugin is assumed to have one stereo input and one stereo output port. Audio is 32-bit
    /// float. All buffers are allocated here, once, with `max_block` frames per channel.
    ///
    /// Thread: main thread (activation) then audio thread (`start_processing`).
    pub fn activate(&mut self, sample_rate: f64, max_block: u32) -> Result<(), HostError> {
        self.service_callbacks();
        self.deactivate();

        if !(sample_rate.is_finite() && sample_rate > 0.0) {
            return Err(HostError::InvalidInput(format!(
                "sample rate must be positive and finite, got {sample_rate}"
            )));
        }
        if max_block == 0 {
            return Err(HostError::InvalidInput(
                "the maximum block size must be at least 1 frame".to_owned(),
            ));
        }

        let inputs = self.query_ports(true)?;
        let outputs = self.query_ports(false)?;
        let frames = max_block as usize;
        let input_buffers = inputs.allocate(frames);
        let output_buffers = outputs.allocate(frames);
        let input_ports = AudioPorts::with_capacity(inputs.total_channels(), inputs.channels.len());
        let output_ports =
            AudioPorts::with_capacity(outputs.total_channels(), outputs.channels.len());

        // Activating satisfies any restart the plugin asked for so far.
        self.clear_restart_request();

        let configuration = PluginAudioConfiguration {
            sample_rate,
            min_frames_count: 1,
            max_frames_count: max_block,
        };
        let stopped = self
            .instance
            .activate(|_, _| (), configuration)
            .map_err(HostError::Activation)?;
        let started = match stopped.start_processing() {
            Ok(started) => started,
            Err(error) => {
                self.instance.deactivate(error.into_stopped_processor());
                self.service_callbacks();
                return Err(HostError::Activation(
                    PluginInstanceError::StartProcessingFailed,
                ));
            }
        };

        self.active = Some(ActiveState {
            processor: started.into(),
            sample_rate,
            max_block,
            inputs,
            outputs,
            input_buffers,
            output_buffers,
            input_ports,
            output_ports,
            input_events: EventBuffer::with_capacity(EVENT_CAPACITY),
            output_events: EventBuffer::with_capacity(EVENT_CAPACITY),
        });
        self.service_callbacks();
        Ok(())
    }

    /// Stops processing and deactivates the plugin. Does nothing if it is not active.
    ///
    /// Thread: audio thread (`stop_processing`) then main thread (deactivation).
    pub fn deactivate(&mut self) {
        if let Some(active) = self.active.take() {
            let stopped = active.processor.into_stopped();
            self.instance.deactivate(stopped);
        }
        self.service_callbacks();
    }

    /// Whether the plugin is currently activated (and processing).
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// Latency reported by the plugin's `clap.latency` extension, in samples (0 if absent).
    ///
    /// Call after [`activate`](Self::activate); may be called again after processing. If the
    /// plugin requested a restart (`clap_host.request_restart`, which is how a CLAP plugin
    /// announces a latency change while active), the plugin is first deactivated and reactivated
    /// with the same sample rate and maximum block size, and the new value is returned.
    ///
    /// Thread: main thread.
    pub fn latency(&mut self) -> Result<u32, HostError> {
        self.service_callbacks();
        for _ in 0..MAX_SERVICE_ROUNDS {
            if !self.restart_requested() {
                break;
            }
            match self.active.as_ref() {
                Some(active) => {
                    let (sample_rate, max_block) = (active.sample_rate, active.max_block);
                    self.activate(sample_rate, max_block)?;
                }
                None => self.clear_restart_request(),
            }
        }

        let latency = match self.extensions.latency {
            Some(latency) => latency.get(&self.instance.plugin_handle()),
            None => 0,
        };
        self.service_callbacks();
        Ok(latency)
    }

    /// Whether the plugin has asked for a restart that has not been honoured yet.
    ///
    /// Thread: any (it only reads a flag).
    pub fn restart_requested(&self) -> bool {
        self.instance
            .access_shared_handler(|shared| shared.restart_requested.load(Ordering::SeqCst))
    }

    /// Processes one block.
    ///
    /// `input[ch][i]` must have exactly as many channels as the plugin's main input port (see
    /// [`input_channels`](Self::input_channels)), all of the same length `n` with
    /// `0 <= n <= max_block` (hosts make zero-frame calls, e.g. to flush parameters). Returns `output[ch][i]` for the main output port, `n` frames per
    /// channel. `param_events` are `(param_id, plain value, sample_offset)` sent as CLAP param
    /// value events in this block; offsets must be `< n` (they are sorted by offset, keeping the
    /// given order for equal offsets). The steady time counter advances by `n`.
    ///
    /// Thread: audio thread.
    pub fn process(
        &mut self,
        input: &[Vec<f32>],
        param_events: &[(u32, f64, u32)],
    ) -> Result<Vec<Vec<f32>>, HostError> {
        self.service_callbacks();
        let steady_time = self.steady_time;
        let active = self.active.as_mut().ok_or(HostError::InvalidState(
            "process requires an activated plugin",
        ))?;
        let frames = check_block(input, active.inputs.main_channels(), active.max_block)?;

        active.input_events.clear();
        active.output_events.clear();
        for &(id, value, offset) in param_events {
            if offset as usize >= frames {
                return Err(HostError::InvalidInput(format!(
                    "event offset {offset} for parameter {id} is outside the {frames}-frame block"
                )));
            }
            let param_id = ClapId::from_raw(id).ok_or_else(|| {
                HostError::InvalidInput(format!("{id} is not a valid CLAP parameter id"))
            })?;
            let event = ParamValueEvent::new(offset, param_id, Pckn::match_all(), value);
            active.input_events.push(&event);
        }
        active.input_events.sort();

        let ActiveState {
            processor,
            inputs,
            outputs,
            input_buffers,
            output_buffers,
            input_ports,
            output_ports,
            input_events,
            output_events,
            ..
        } = active;

        for (port_index, port) in input_buffers.iter_mut().enumerate() {
            let source = (inputs.main == Some(port_index)).then_some(input);
            for (channel_index, channel) in port.iter_mut().enumerate() {
                let block = &mut channel[..frames];
                match source.and_then(|source| source.get(channel_index)) {
                    Some(samples) => block.copy_from_slice(samples),
                    None => block.fill(0.0),
                }
            }
        }
        for channel in output_buffers.iter_mut().flatten() {
            channel[..frames].fill(0.0);
        }

        let audio_inputs = input_ports.with_input_buffers(input_buffers.iter_mut().map(|port| {
            AudioPortBuffer {
                latency: 0,
                channels: AudioPortBufferType::f32_input_only(
                    port.iter_mut()
                        .map(|channel| InputChannel::variable(&mut channel[..frames])),
                ),
            }
        }));
        let mut audio_outputs =
            output_ports.with_output_buffers(output_buffers.iter_mut().map(|port| {
                AudioPortBuffer {
                    latency: 0,
                    channels: AudioPortBufferType::f32_output_only(
                        port.iter_mut().map(|channel| &mut channel[..frames]),
                    ),
                }
            }));

        let started = processor
            .ensure_processing_started()
            .map_err(HostError::Processing)?;
        started
            .process(
                &audio_inputs,
                &mut audio_outputs,
                &input_events.as_input(),
                &mut output_events.as_output(),
                Some(steady_time),
                None,
            )
            .map_err(HostError::Processing)?;

        let output = match outputs.main.and_then(|index| output_buffers.get(index)) {
            Some(port) => port
                .iter()
                .map(|channel| channel[..frames].to_vec())
                .collect(),
            None => Vec::new(),
        };

        // A process call also serves as the parameter flush the plugin may have asked for.
        self.instance
            .access_shared_handler(|shared| shared.flush_requested.store(false, Ordering::SeqCst));
        self.steady_time += frames as u64;
        self.service_callbacks();
        Ok(output)
    }

    /// Convenience: processes a whole signal (`input[ch][i]`, same rules as
    /// [`process`](Self::process) except for the length) in blocks whose sizes come from
    /// `block_sizes` (cycled; the last block is shortened to fit), and returns the full output.
    /// Each block size must be in `0..=max_block` (0: a zero-frame call), and one must not be 0.
    ///
    /// Thread: audio thread.
    pub fn process_signal(
        &mut self,
        input: &[Vec<f32>],
        block_sizes: &[usize],
    ) -> Result<Vec<Vec<f32>>, HostError> {
        let (max_block, input_channels, output_channels) = match &self.active {
            Some(active) => (
                active.max_block as usize,
                active.inputs.main_channels(),
                active.outputs.main_channels(),
            ),
            None => {
                return Err(HostError::InvalidState(
                    "process_signal requires an activated plugin",
                ));
            }
        };
        if block_sizes.is_empty() {
            return Err(HostError::InvalidInput(
                "at least one block size is required".to_owned(),
            ));
        }
        if let Some(&bad) = block_sizes.iter().find(|&&size| size > max_block) {
            return Err(HostError::InvalidInput(format!(
                "block size {bad} is outside 0..={max_block}"
            )));
        }
        if block_sizes.iter().all(|&size| size == 0) {
            return Err(HostError::InvalidInput(
                "the block sizes must not all be zero".to_owned(),
            ));
        }
        if input.len() != input_channels {
            return Err(HostError::InvalidInput(format!(
                "expected {input_channels} input channels, got {}",
                input.len()
            )));
        }
        let length = input.first().map_or(0, Vec::len);
        if input.iter().any(|channel| channel.len() != length) {
            return Err(HostError::InvalidInput(
                "all input channels must have the same length".to_owned(),
            ));
        }

        let mut output = vec![Vec::with_capacity(length); output_channels];
        let mut block = vec![Vec::with_capacity(max_block); input.len()];
        let mut position = 0;
        for &size in block_sizes.iter().cycle() {
            if position >= length {
                break;
            }
            let frames = size.min(length - position);
            for (destination, source) in block.iter_mut().zip(input) {
                destination.clear();
                destination.extend_from_slice(&source[position..position + frames]);
            }
            let rendered = self.process(&block, &[])?;
            for (destination, source) in output.iter_mut().zip(rendered) {
                destination.extend_from_slice(&source);
            }
            position += frames;
        }
        Ok(output)
    }

    /// Channel count of the main input port used by [`process`](Self::process), or `None` if
    /// the plugin is not active.
    pub fn input_channels(&self) -> Option<usize> {
        self.active
            .as_ref()
            .map(|active| active.inputs.main_channels())
    }

    /// Channel count of the main output port returned by [`process`](Self::process), or `None`
    /// if the plugin is not active.
    pub fn output_channels(&self) -> Option<usize> {
        self.active
            .as_ref()
            .map(|active| active.outputs.main_channels())
    }

    /// The steady time (in frames) that the next [`process`](Self::process) call will report.
    pub fn steady_time(&self) -> u64 {
        self.steady_time
    }

    /// Parameters (id, name, min, max, default) from the `clap.params` extension, in the
    /// plugin's order.
    ///
    /// Thread: main thread.
    pub fn params(&mut self) -> Result<Vec<ParamInfo>, HostError> {
        self.service_callbacks();
        let params = self.params_extension()?;
        let handle = self.instance.plugin_handle();
        let mut buffer = ParamInfoBuffer::new();
        (0..params.count(&handle))
            .map(|index| {
                let info = params
                    .get_info(&handle, index, &mut buffer)
                    .ok_or(HostError::ParamInfo(index))?;
                Ok(ParamInfo {
                    id: info.id.get(),
                    name: String::from_utf8_lossy(info.name).into_owned(),
                    min: info.min_value,
                    max: info.max_value,
                    default: info.default_value,
                })
            })
            .collect()
    }

    /// Id of the parameter whose display name is exactly `name`.
    ///
    /// Thread: main thread.
    pub fn param_id(&mut self, name: &str) -> Result<u32, HostError> {
        self.params()?
            .into_iter()
            .find(|param| param.name == name)
            .map(|param| param.id)
            .ok_or_else(|| HostError::UnknownParam(name.to_owned()))
    }

    /// Current plain value of parameter `id`, via `params.get_value`.
    ///
    /// Thread: main thread.
    pub fn param_value(&mut self, id: u32) -> Result<f64, HostError> {
        self.service_callbacks();
        let params = self.params_extension()?;
        let param_id = ClapId::from_raw(id).ok_or(HostError::ParamValue(id))?;
        params
            .get_value(&self.instance.plugin_handle(), param_id)
            .ok_or(HostError::ParamValue(id))
    }

    /// Sets parameter `id` to the plain `value` outside of processing, by calling
    /// `params.flush` with one input param value event. Works while deactivated and, when
    /// active, between blocks.
    ///
    /// Thread: main thread while deactivated, audio thread while active (as CLAP requires).
    pub fn set_param(&mut self, id: u32, value: f64) -> Result<(), HostError> {
        self.service_callbacks();
        self.params_extension()?;
        let param_id = ClapId::from_raw(id).ok_or_else(|| {
            HostError::InvalidInput(format!("{id} is not a valid CLAP parameter id"))
        })?;
        let mut events = EventBuffer::with_capacity(1);
        events.push(&ParamValueEvent::new(0, param_id, Pckn::match_all(), value));
        self.flush_params(&events)?;
        self.service_callbacks();
        Ok(())
    }

    /// Sets parameter `id` to `normalised` (0..=1 over its range, as a host's automation lane
    /// and VST3 see it): the plain value CLAP takes is `min + normalised * (max - min)` from
    /// its `param_info` (a stepped parameter, such as an enum, has plain values 0, 1, 2, ...).
    ///
    /// Thread: as [`set_param`](Self::set_param).
    pub fn set_param_normalised(&mut self, id: u32, normalised: f64) -> Result<(), HostError> {
        let info = self
            .params()?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| HostError::InvalidInput(format!("no parameter with id {id}")))?;
        self.set_param(
            id,
            info.min + normalised.clamp(0.0, 1.0) * (info.max - info.min),
        )
    }

    /// Saves the plugin state (`state.save`) into bytes.
    ///
    /// Thread: main thread.
    pub fn save_state(&mut self) -> Result<Vec<u8>, HostError> {
        self.service_callbacks();
        let state = self
            .extensions
            .state
            .ok_or(HostError::MissingExtension("clap.state"))?;
        let mut bytes = Vec::new();
        let result = state.save(&self.instance.plugin_handle(), &mut bytes);
        self.service_callbacks();
        result.map_err(HostError::StateSave)?;
        Ok(bytes)
    }

    /// Loads a plugin state (`state.load`) from bytes produced by [`save_state`](Self::save_state).
    ///
    /// Thread: main thread.
    pub fn load_state(&mut self, bytes: &[u8]) -> Result<(), HostError> {
        self.service_callbacks();
        let state = self
            .extensions
            .state
            .ok_or(HostError::MissingExtension("clap.state"))?;
        let mut reader = bytes;
        let result = state.load(&self.instance.plugin_handle(), &mut reader);
        self.service_callbacks();
        result.map_err(HostError::StateLoad)
    }

    /// Plugin name from the descriptor.
    pub fn plugin_name(&self) -> String {
        self.plugin_name.clone()
    }

    /// Plugin id from the descriptor.
    pub fn plugin_id(&self) -> String {
        self.plugin_id.clone()
    }

    /// Plugin version from the descriptor (empty if it has none).
    pub fn plugin_version(&self) -> String {
        self.plugin_version.clone()
    }

    /// Returns and clears the main-thread notifications the plugin sent so far.
    ///
    /// Thread: main thread.
    pub fn take_notifications(&mut self) -> HostNotifications {
        self.service_callbacks();
        self.instance.access_handler(|main| HostNotifications {
            latency_changed: main.latency_changed.take(),
            params_rescanned: main.params_rescanned.take(),
            params_cleared: main.params_cleared.take(),
            state_dirty: main.state_dirty.take(),
            audio_ports_changed: main.audio_ports_changed.take(),
        })
    }

    fn params_extension(&self) -> Result<PluginParams, HostError> {
        self.extensions
            .params
            .ok_or(HostError::MissingExtension("clap.params"))
    }

    fn clear_restart_request(&self) {
        self.instance.access_shared_handler(|shared| {
            shared.restart_requested.store(false, Ordering::SeqCst)
        });
    }

    /// Calls `params.flush` with `events`, from the thread role CLAP requires for the current
    /// lifecycle state. Output events are discarded.
    fn flush_params(&mut self, events: &EventBuffer) -> Result<(), HostError> {
        let params = self.params_extension()?;
        let mut output = EventBuffer::with_capacity(EVENT_CAPACITY);
        match self.active.as_mut() {
            Some(active) => {
                let mut handle = active.processor.plugin_handle();
                params.flush_active(&mut handle, &events.as_input(), &mut output.as_output());
            }
            None => {
                let mut handle =
                    self.instance
                        .inactive_plugin_handle()
                        .ok_or(HostError::InvalidState(
                            "the plugin reports being active without an audio processor",
                        ))?;
                params.flush(&mut handle, &events.as_input(), &mut output.as_output());
            }
        }
        self.instance
            .access_shared_handler(|shared| shared.flush_requested.store(false, Ordering::SeqCst));
        Ok(())
    }

    /// Services the requests the plugin made through host callbacks: runs `on_main_thread` if
    /// requested, acknowledges process requests and performs requested flushes while inactive.
    ///
    /// Thread: main thread.
    fn service_callbacks(&mut self) {
        for _ in 0..MAX_SERVICE_ROUNDS {
            let requested = self.instance.access_shared_handler(|shared| {
                shared.callback_requested.swap(false, Ordering::SeqCst)
            });
            if !requested {
                break;
            }
            self.instance.call_on_main_thread_callback();
        }

        // The harness decides when to process; a request to be processed needs no action.
        self.instance.access_shared_handler(|shared| {
            shared.process_requested.store(false, Ordering::SeqCst)
        });

        // While active, the next process call doubles as the flush.
        let flush = self.active.is_none()
            && self.extensions.params.is_some()
            && self
                .instance
                .access_shared_handler(|shared| shared.flush_requested.load(Ordering::SeqCst));
        if flush {
            // Cannot fail: the params extension is present and the plugin is inactive.
            let _ = self.flush_params(&EventBuffer::new());
        }
    }

    /// Reads the audio ports of one direction from `clap.audio-ports` (main thread, inactive).
    fn query_ports(&mut self, is_input: bool) -> Result<PortLayout, HostError> {
        let Some(audio_ports) = self.extensions.audio_ports else {
            return Ok(PortLayout::default_stereo());
        };
        let direction = if is_input { "input" } else { "output" };
        let handle = self.instance.plugin_handle();
        let count = audio_ports.count(&handle, is_input);
        let mut buffer = AudioPortInfoBuffer::new();
        let mut layout = PortLayout {
            channels: Vec::with_capacity(count as usize),
            main: None,
        };
        for index in 0..count {
            let info = audio_ports
                .get(&handle, index, is_input, &mut buffer)
                .ok_or_else(|| {
                    HostError::AudioPorts(format!("cannot read {direction} port {index}"))
                })?;
            if layout.main.is_none() && info.flags.contains(AudioPortFlags::IS_MAIN) {
                layout.main = Some(layout.channels.len());
            }
            layout.channels.push(info.channel_count);
        }
        if layout.main.is_none() && !layout.channels.is_empty() {
            layout.main = Some(0);
        }
        if layout.channels.iter().any(|&channels| channels > 64) {
            return Err(HostError::AudioPorts(format!(
                "an {direction} port declares more than 64 channels"
            )));
        }
        Ok(layout)
    }
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("plugin_id", &self.plugin_id)
            .field("plugin_name", &self.plugin_name)
            .field("plugin_version", &self.plugin_version)
            .field(
                "active",
                &self
                    .active
                    .as_ref()
                    .map(|active| (active.sample_rate, active.max_block)),
            )
            .field("steady_time", &self.steady_time)
            .finish_non_exhaustive()
    }
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        self.deactivate();
    }
}

/// Validates one block of input against the main input channel count and maximum block size,
/// returning its length in frames.
fn check_block(input: &[Vec<f32>], channels: usize, max_block: u32) -> Result<usize, HostError> {
    if channels == 0 {
        return Err(HostError::InvalidInput(
            "the plugin has no main audio input to take the block from".to_owned(),
        ));
    }
    if input.len() != channels {
        return Err(HostError::InvalidInput(format!(
            "expected {channels} input channels, got {}",
            input.len()
        )));
    }
    let frames = input[0].len();
    if input.iter().any(|channel| channel.len() != frames) {
        return Err(HostError::InvalidInput(
            "all input channels must have the same length".to_owned(),
        ));
    }
    if frames > max_block as usize {
        return Err(HostError::InvalidInput(format!(
            "block length {frames} is outside 0..={max_block}"
        )));
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loading_a_missing_bundle_is_an_error() {
        let path = std::env::temp_dir().join("timbreswap-no-such-plugin.clap");
        match PluginHost::load(&path, None) {
            Err(HostError::Load { path: reported, .. }) => assert_eq!(reported, path),
            Err(other) => panic!("unexpected error: {other}"),
            Ok(_) => panic!("loading a missing bundle succeeded"),
        }
    }

    #[test]
    fn errors_can_cross_threads() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<HostError>();
    }

    #[test]
    fn blocks_are_validated() {
        let stereo = vec![vec![0.0; 8]; 2];
        assert_eq!(check_block(&stereo, 2, 8).ok(), Some(8));
        assert!(check_block(&stereo, 2, 7).is_err());
        assert!(check_block(&stereo, 1, 8).is_err());
        assert!(check_block(&stereo, 0, 8).is_err());
        assert!(check_block(&[vec![0.0; 8], vec![0.0; 7]], 2, 8).is_err());
        assert_eq!(check_block(&[vec![], vec![]], 2, 8).ok(), Some(0));
    }

    #[test]
    fn default_layout_is_one_stereo_port() {
        let layout = PortLayout::default_stereo();
        assert_eq!(layout.main_channels(), 2);
        assert_eq!(layout.total_channels(), 2);
        assert_eq!(layout.allocate(4), vec![vec![vec![0.0f32; 4]; 2]]);
    }
}
