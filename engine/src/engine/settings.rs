//! What an engine is built for ([`EngineSettings`]) and what each `process` call and state
//! update carries ([`BlockParams`], [`StateUpdate`]).

use super::*;

/// How the host is running the plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessingMode {
    /// Live: frames go to the worker thread; a late grain becomes a dropout (dry signal).
    Realtime,
    /// Bounce/freewheel: frames are processed inline on the calling thread; nothing drops.
    Offline,
}

/// Everything the engine is sized for. Fixed for the life of an [`Engine`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineSettings {
    /// Host sample rate, in Hz (8 kHz to 384 kHz; rounded to a whole Hz).
    pub host_rate: f64,
    /// Largest block the host will pass, in samples (the buffers are sized for it).
    pub max_block: usize,
    /// Largest block the latency is built for, in host samples (realtime mode): the worker's
    /// slack covers one block of this size, so frames meet their deadline in blocks up to
    /// [`Engine::covered_block`] and the latency does not grow with a larger declared
    /// `max_block` the host never uses. Blocks up to one hop at the host rate cost no extra
    /// latency. `None`: `max_block`. It may exceed `max_block`: a host that calls `process` in
    /// bursts of several blocks, back to back, needs a whole burst's period. Larger blocks or
    /// bursts are still processed; the frames they make too late play the exact dry input
    /// (crossfaded, counted as dropouts) until the host rebuilds the engine for them.
    pub latency_block: Option<usize>,
    /// Audio channels in and out.
    pub channels: usize,
    /// Realtime or offline.
    pub mode: ProcessingMode,
    /// Internal STFT settings.
    pub stft: StftConfig,
    /// Scheduling the worker thread asks for (realtime mode).
    pub worker_priority: WorkerPriority,
    /// The latency the engine is built for: [`LatencyMode::Normal`], or [`LatencyMode::Low`]
    /// (less than half of it, with frames twice as often).
    pub latency_mode: LatencyMode,
}

/// A whole state for [`EngineControl::set_state`].
#[derive(Debug, Clone, Default)]
pub struct StateUpdate<'a> {
    /// `Some(model)`: load this model (`Some(None)` unloads it); `None`: keep the loaded one.
    pub model: Option<Option<Arc<Network>>>,
    /// The timbres of slots A and B (`None` empties a slot).
    pub timbres: [Option<&'a TimbreDescriptor>; 2],
    /// The `z_t` latents of slots A and B for the model in use after the update.
    pub latents: [Option<&'a [f32]>; 2],
    /// The analysed clips of slots A and B for Exemplar mode (`None` empties a slot's).
    pub exemplars: [Option<Arc<ExemplarBank>>; 2],
}

/// Scheduling of the worker thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkerPriority {
    /// Ask the OS for real-time scheduling so frames are not delayed by ordinary busy threads
    /// (`SCHED_FIFO` on Linux, the Mach time-constraint policy on macOS, MMCSS "Pro Audio" on
    /// Windows; [`crate::scheduling`]); where that is not permitted (no `RLIMIT_RTPRIO`, say)
    /// the worker keeps normal priority. [`EngineStats::worker_scheduling`] says what it got.
    #[default]
    Realtime,
    /// Normal priority.
    Normal,
}

/// Per-sample parameter values for one `process` call; each slice is at least as long as the
/// block.
///
/// Timing rule: every value applies to the input sample it comes with and is heard when that
/// sample reaches the output, one latency later. With the host's delay compensation it lands
/// where the automation point sits on the timeline, and a ramp of Mix beside a ramp of Morph
/// moves together.
#[derive(Debug, Clone, Copy)]
pub struct BlockParams<'a> {
    /// Wet share, 0..=1 (clamped; non-finite: 1).
    pub mix: &'a [f32],
    /// Output gain, linear, [`MIN_OUTPUT_GAIN`]..=[`MAX_OUTPUT_GAIN`] (clamped; non-finite: 1).
    pub gain: &'a [f32],
    /// Morph position A -> B, 0..=1.
    pub morph: &'a [f32],
    /// Neural: variation amount, 0..=2 (1 = as played); empty = 1 throughout.
    pub variation: &'a [f32],
    /// Transposition, semitones, -12..=12 (clamped; non-finite: 0); empty = 0 throughout.
    /// Exemplar: the output plays this far above the input's pitch. Neural: the pitch the
    /// model hears (with Phase Input the sounding pitch stays the input's).
    pub transpose: &'a [f32],
    /// Classic or neural, for the whole block.
    pub mode: SwapMode,
    /// Neural: phase reconstruction, for the whole block.
    pub phase: PhaseMode,
    /// Neural: timbre-map point X, normalised map coordinates (-1..=1); empty = 0 throughout.
    pub map_x: &'a [f32],
    /// Neural: timbre-map point Y; empty = 0 throughout.
    pub map_y: &'a [f32],
    /// Neural: share of the map point against the A/B morph, 0..=1; empty = 0 throughout.
    pub map_amount: &'a [f32],
    /// Exemplar: share of a struck reference's note decay the output takes, 0..=1 (clamped;
    /// non-finite: 1); empty = 1 throughout.
    pub decay: &'a [f32],
}

impl<'a> BlockParams<'a> {
    /// Classic-mode parameters (the neural controls at their defaults).
    pub fn new(mix: &'a [f32], gain: &'a [f32], morph: &'a [f32]) -> Self {
        Self {
            mix,
            gain,
            morph,
            variation: &[],
            transpose: &[],
            mode: SwapMode::Classic,
            phase: PhaseMode::Input,
            map_x: &[],
            map_y: &[],
            map_amount: &[],
            decay: &[],
        }
    }

    /// The controls of sample `j` of the block.
    #[inline]
    pub(super) fn at(&self, j: usize) -> FrameParams {
        FrameParams {
            morph: self.morph[j],
            variation: self.variation.get(j).copied().unwrap_or(1.0),
            transpose: self.transpose.get(j).copied().unwrap_or(0.0),
            mode: self.mode,
            phase: self.phase,
            map_point: [
                self.map_x.get(j).copied().unwrap_or(0.0),
                self.map_y.get(j).copied().unwrap_or(0.0),
            ],
            map_amount: self.map_amount.get(j).copied().unwrap_or(0.0),
            decay: self.decay.get(j).copied().unwrap_or(1.0),
        }
    }
}
