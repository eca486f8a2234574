//! The audio-thread side of the pipeline: mono sum, resampling to the model rate, framing,
//! overlap-add of the grains the worker returns, resampling back, dry/wet mix.
//!
//! Timing, in model samples (`N` = FFT size, `H` = hop): frame `f` covers input samples
//! `f*H .. f*H + N` and is complete after sample `f*H + N - 1` arrives. Its grain can sound only
//! in its last `S` samples (`S = N`; in [`LatencyMode::Low`] `H` is half the STFT hop and
//! `S = 2 H`), so it is added at output position `f*H + N - S`, which is played
//! `D = S - 1 + W` samples after it arrived: `W` is the worker's slack (one hop in offline mode;
//! at least one host block in realtime mode, so the worker has a whole block period to
//! answer). The host-rate latency adds the two resamplers' half-widths and is rounded up to a
//! whole host sample by shifting the output resampler's phase, so an impulse comes out exactly
//! [`Engine::latency_samples`] later.
//!
//! The control side's handle, [`EngineControl`], is in `control.rs`; the settings and per-block
//! parameters in `settings.rs`; the output's safety limits in `limits.rs`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rtrb::{Consumer, Producer, RingBuffer};

use crate::config::{LatencyMode, StftConfig, MAX_HOST_RATE, MIN_HOST_RATE};
use crate::error::{EngineError, TimbreError};
use crate::exemplar::{ExemplarBank, ExemplarSwap};
use crate::messages::{
    AudioToWorkerMsg, ControlToProcessorMsg, ProcessorToControlMsg, Slot, WorkerToAudioMsg,
};
use crate::network::Network;
use crate::neural::{NeuralProcessor, PhaseMode};
use crate::processor::{FrameParams, FrameProcessor, SwapMode};
use crate::resampler::Resampler;
use crate::spectrum_view::{spectrum_pair, SpectrumView};
use crate::stats::EngineStats;
use crate::timbre::TimbreDescriptor;
use crate::worker::{self, WorkerFlags, WorkerRings};

mod control;
mod limits;
mod settings;

pub use control::{ControlError, EngineControl};
pub use limits::{
    safe_mix_and_gain, soft_limit, MAX_OUTPUT_GAIN, MIN_OUTPUT_GAIN, PEAK_RELEASE_S, WET_PEAK_LIMIT,
};
pub use settings::{BlockParams, EngineSettings, ProcessingMode, StateUpdate, WorkerPriority};

/// Slots of the control ring (control side to processor).
///
/// The garbage ring (back) has [`GARBAGE_RING_SLOTS`], one more, which is what keeps the
/// processor side from ever freeing: every control message yields at most one object to free,
/// and every push onto the control ring is preceded by [`EngineControl::collect_garbage`]. So
/// the objects waiting in the garbage ring come from messages that were in the control ring at
/// the last collection or were pushed after it: at most this many still in the ring, plus the
/// one the processor may have popped but whose garbage it has not pushed yet.
pub const MESSAGE_RING_SLOTS: usize = 64;

/// Slots of the garbage ring: [`MESSAGE_RING_SLOTS`] plus the message in flight.
pub const GARBAGE_RING_SLOTS: usize = MESSAGE_RING_SLOTS + 1;

/// Where frames are processed.
enum Backend {
    /// Offline: on the calling thread.
    Inline(Box<FrameProcessor>),
    /// Realtime: on the worker thread.
    Worker {
        headers: Producer<AudioToWorkerMsg>,
        frames: Producer<f32>,
        grain_headers: Consumer<WorkerToAudioMsg>,
        grains: Consumer<f32>,
        flags: Arc<WorkerFlags>,
        thread: Option<JoinHandle<()>>,
    },
}

/// A power-of-two ring indexed by absolute sample counts.
struct Ring {
    data: Vec<f32>,
    mask: usize,
}

impl Ring {
    fn new(min_len: usize) -> Self {
        let len = min_len.next_power_of_two();
        Self {
            data: vec![0.0; len],
            mask: len - 1,
        }
    }
    #[inline]
    fn at(&mut self, i: u64) -> &mut f32 {
        &mut self.data[(i as usize) & self.mask]
    }
    #[inline]
    fn get(&self, i: u64) -> f32 {
        self.data[(i as usize) & self.mask]
    }
    fn clear(&mut self) {
        self.data.fill(0.0);
    }
}

/// Longest burst of host calls the latency is built for, in seconds of audio
/// ([`EngineSettings::latency_block`] beyond `max_block` is capped here).
pub const MAX_BURST_SECONDS: f64 = 0.5;

/// The realtime engine (audio-thread side). Built off the audio thread by [`Engine::new`];
/// after that [`Engine::process`] and [`Engine::reset`] are realtime-safe.
pub struct Engine {
    settings: EngineSettings,
    /// Host-rate latency, in samples.
    latency: usize,
    /// Largest host block whose frames all meet their deadline, in samples.
    covered_block: usize,
    /// Model-rate delay from input to output, `S - 1 + W` (`S`: the samples at the end of a
    /// frame its grain covers, `N` in [`LatencyMode::Normal`]).
    delay_model: u64,
    /// Silent samples at the start of every grain, `N - S`.
    grain_offset: u64,
    n_fft: usize,
    hop: usize,
    /// Per-channel host-rate input history (dry path), indexed by host sample count.
    dry: Vec<Ring>,
    /// Host samples written into `dry`.
    dry_count: u64,
    /// Input peak follower (largest `|x|` of any channel, instant attack, [`PEAK_RELEASE_S`]
    /// release), per host input sample, indexed like `dry`.
    peaks: Ring,
    /// The follower's current value.
    peak: f32,
    /// Mix and Output gain of each host input sample, indexed like `dry` (applied when that
    /// sample reaches the output).
    mixes: Ring,
    gains: Ring,
    /// The follower's per-sample decay factor.
    peak_decay: f32,
    /// How far past the latency-aligned dry sample the wet limit looks, in host samples: the
    /// reach of one frame (the wet sample may come from input up to a frame later).
    peak_lookahead: u64,
    down: Resampler,
    up: Resampler,
    /// Carries the wet share to the host rate on `up`'s time map (linear interpolation: the
    /// share is a smooth crossfade, and 0 or 1 stays exact).
    up_share: Resampler,
    /// Model-rate input history, indexed by model sample count.
    history: Ring,
    /// Overlap-add accumulator, indexed by model output position.
    ola: Ring,
    /// Overlap-added synthesis windows of the processed grains (0..=1), indexed like `ola`.
    wet_share: Ring,
    /// Controls of each frame, indexed by frame number.
    frame_params: Vec<FrameParams>,
    /// Frames the audio thread kept instead of sending to an idle worker (they play dry),
    /// indexed like `frame_params` (realtime mode).
    kept_dry: Vec<bool>,
    /// Host input samples up to (not including) this index carried a Mix above 0: frames
    /// made only of samples after it cannot be heard, so they are not sent (realtime mode).
    mixed_until: u64,
    /// Whether the editor's live view is open (it is fed from the worker, so frames keep
    /// flowing while it is).
    view_open: Arc<std::sync::atomic::AtomicBool>,
    /// Model samples pushed since reset.
    n_in: u64,
    /// Model output samples produced since reset.
    n_out: u64,
    /// Next frame whose grain is to be overlap-added.
    next_grain: u64,
    frame_buf: Vec<f32>,
    grain_buf: Vec<f32>,
    /// `analysis * synthesis * n_fft`: the identity grain window used for dry substitution.
    dry_window: Vec<f32>,
    epoch: u32,
    backend: Backend,
    stats: Arc<EngineStats>,
}

impl Engine {
    /// Builds an engine for `settings` with the given initial timbres, and its control handle.
    /// Allocates everything, starts the worker in realtime mode. Not realtime-safe.
    pub fn new(
        settings: EngineSettings,
        stats: Arc<EngineStats>,
        timbre_a: Option<&TimbreDescriptor>,
        timbre_b: Option<&TimbreDescriptor>,
    ) -> Result<(Self, EngineControl), EngineError> {
        let cfg = settings.stft;
        cfg.validate()?;
        if !(MIN_HOST_RATE..=MAX_HOST_RATE).contains(&settings.host_rate) {
            return Err(EngineError::HostRate(settings.host_rate));
        }
        if settings.channels == 0 || settings.channels > 64 || settings.max_block == 0 {
            return Err(EngineError::Layout {
                channels: settings.channels,
                max_block: settings.max_block,
            });
        }
        let host = settings.host_rate.round() as u32;
        let model = cfg.sample_rate;
        let rho = host as f64 / model as f64;
        if !settings.latency_mode.fits(&cfg) {
            return Err(EngineError::LatencyMode { hop: cfg.hop });
        }
        // Frames start every `h` samples; each grain covers the frame's last `span`.
        let (n, h) = (cfg.n_fft, settings.latency_mode.frame_hop(&cfg));
        let span = settings.latency_mode.grain_span(&cfg);
        // Model samples one host block can produce (rounding slack included).
        let block_model = (settings.max_block as f64 / rho).ceil() as usize + 2;
        let burst_cap = (MAX_BURST_SECONDS * settings.host_rate) as usize;
        let latency_block = settings.latency_block.map_or(settings.max_block, |b| {
            b.min(settings.max_block.max(burst_cap))
        });
        let slack = match settings.mode {
            ProcessingMode::Offline => h,
            ProcessingMode::Realtime => h.max((latency_block as f64 / rho).ceil() as usize),
        };
        // A grain is silent before its last `span` samples, so it is due once its frame's
        // `n - span`-th sample is.
        let delay_model = (span - 1 + slack) as u64;
        let covered_block = match settings.mode {
            ProcessingMode::Offline => usize::MAX,
            ProcessingMode::Realtime => ((slack as f64 * rho).floor() as usize).max(latency_block),
        };
        let down = Resampler::new(host, model, 0.0, settings.max_block);
        let (latency, up) = if host == model {
            let latency = delay_model as usize;
            (latency, Resampler::new(model, host, 0.0, block_model))
        } else {
            let half_out = Resampler::sinc_half_width(model, host) as f64;
            let half_in = down.half_width() as f64;
            let latency =
                ((delay_model as f64 + half_out + 1.0) * rho + half_in).ceil() as usize + 1;
            let offset = delay_model as f64 - latency as f64 / rho;
            (latency, Resampler::new(model, host, offset, block_model))
        };

        let (ctl_tx, ctl_rx) = RingBuffer::<ControlToProcessorMsg>::new(MESSAGE_RING_SLOTS);
        let (garbage_tx, garbage_rx) = RingBuffer::<ProcessorToControlMsg>::new(GARBAGE_RING_SLOTS);
        let (tap, spectra) = spectrum_pair(cfg.n_bins(), cfg.n_fft);
        let view_open = tap.open_flag();
        let mut control = EngineControl {
            stft: cfg,
            exemplars: [None, None],
            z_t: None,
            tx: ctl_tx,
            garbage: garbage_rx,
            spectra,
            worker: None,
        };
        let mut processor = FrameProcessor::new(&cfg, settings.latency_mode, ctl_rx, garbage_tx);
        processor.set_tap(tap);
        for (slot, timbre) in [(Slot::A, timbre_a), (Slot::B, timbre_b)] {
            if timbre.is_some() {
                control.set_timbre(slot, timbre).map_err(|e| match e {
                    ControlError::Timbre(t) => EngineError::Timbre(t),
                    other => EngineError::Worker(other.to_string()),
                })?;
            }
        }
        processor.poll_control();

        // Frames in flight at most: those completed but not yet consumed.
        let frames_in_flight = (slack + block_model) / h + 4;
        let backend = match settings.mode {
            ProcessingMode::Offline => Backend::Inline(Box::new(processor)),
            ProcessingMode::Realtime => {
                let (headers_tx, headers_rx) = RingBuffer::new(frames_in_flight);
                let (frames_tx, frames_rx) = RingBuffer::new(frames_in_flight * n);
                let (gh_tx, gh_rx) = RingBuffer::new(frames_in_flight);
                let (grains_tx, grains_rx) = RingBuffer::new(frames_in_flight * n);
                let flags = Arc::new(WorkerFlags::default());
                flags.idle.store(processor.idle(), Ordering::Release);
                let hop_s = h as f64 / model as f64;
                let poll = Duration::from_secs_f64((hop_s / 4.0).min(0.001));
                let thread = worker::spawn(
                    settings.worker_priority,
                    processor,
                    WorkerRings {
                        headers: headers_rx,
                        frames: frames_rx,
                        grain_headers: gh_tx,
                        grains: grains_tx,
                    },
                    worker::WorkerTiming {
                        n_fft: n,
                        hop: Duration::from_secs_f64(hop_s),
                        poll,
                    },
                    flags.clone(),
                    stats.clone(),
                )
                .map_err(|e| EngineError::Worker(e.to_string()))?;
                control.worker = Some(thread.thread().clone());
                Backend::Worker {
                    headers: headers_tx,
                    frames: frames_tx,
                    grain_headers: gh_rx,
                    grains: grains_rx,
                    flags,
                    thread: Some(thread),
                }
            }
        };

        let (analysis, synthesis) = settings.latency_mode.grain_windows(&cfg);
        let dry_window = analysis
            .iter()
            .zip(&synthesis)
            .map(|(a, s)| a * s)
            .collect();
        let history_len = delay_model as usize + block_model + n + 8;
        // Frames whose controls (and kept-dry flags) are remembered, by frame number.
        let frame_slots = (history_len / h + 2).next_power_of_two();
        Ok((
            Self {
                settings,
                latency,
                covered_block,
                delay_model,
                grain_offset: (n - span) as u64,
                n_fft: n,
                hop: h,
                dry: (0..settings.channels)
                    .map(|_| Ring::new(latency + settings.max_block + 1))
                    .collect(),
                dry_count: 0,
                peaks: Ring::new(latency + settings.max_block + 1),
                peak: 0.0,
                mixes: Ring::new(latency + settings.max_block + 1),
                gains: Ring::new(latency + settings.max_block + 1),
                peak_decay: (-1.0 / (PEAK_RELEASE_S * settings.host_rate)).exp() as f32,
                peak_lookahead: ((n as f64 * rho).ceil() as u64).min(latency as u64),
                down,
                up_share: up.clone(),
                up,
                history: Ring::new(history_len),
                ola: Ring::new(n + 1),
                wet_share: Ring::new(n + 1),
                frame_params: vec![FrameParams::default(); frame_slots],
                kept_dry: vec![false; frame_slots],
                mixed_until: 0,
                view_open,
                n_in: 0,
                n_out: 0,
                next_grain: 0,
                frame_buf: vec![0.0; n],
                grain_buf: vec![0.0; n],
                dry_window,
                epoch: 0,
                backend,
                stats,
            },
            control,
        ))
    }

    /// The settings the engine was built for. Realtime-safe.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Input-to-output delay, in host samples, of both the wet and the dry path. Realtime-safe.
    pub fn latency_samples(&self) -> u32 {
        self.latency as u32
    }

    /// The largest host block whose frames all meet their deadline, in samples: in realtime
    /// mode the block the latency is built for ([`EngineSettings::latency_block`]), at least one
    /// hop at the host rate; in offline mode every block (`usize::MAX`). A caller that sees
    /// larger blocks should build the engine again with a larger `latency_block` (the plugin
    /// asks the host for a restart). Realtime-safe.
    pub fn covered_block(&self) -> usize {
        self.covered_block
    }

    /// The statistics this engine writes. Realtime-safe.
    pub fn stats(&self) -> &Arc<EngineStats> {
        &self.stats
    }

    /// Clears all signal state (as after `new`). Frames still at the worker are discarded when
    /// they come back. Realtime-safe.
    pub fn reset(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        for d in &mut self.dry {
            d.clear();
        }
        self.dry_count = 0;
        self.peaks.clear();
        self.peak = 0.0;
        self.down.reset();
        self.up.reset();
        self.up_share.reset();
        self.history.clear();
        self.ola.clear();
        self.wet_share.clear();
        self.n_in = 0;
        self.n_out = 0;
        self.next_grain = 0;
        self.kept_dry.fill(false);
        self.mixed_until = 0;
        if let Backend::Worker { flags, .. } = &self.backend {
            flags.played.store(0, Ordering::Release);
        }
        if let Backend::Inline(p) = &mut self.backend {
            p.reset();
        }
    }

    /// Processes `io` in place: `io[ch][i]` for every channel, all the same length (any length;
    /// longer than `max_block` is split). `params` holds one value per sample. Realtime-safe:
    /// no allocation, lock, wait or system call.
    pub fn process(&mut self, io: &mut [&mut [f32]], params: &BlockParams) {
        // The host's thread: flush denormals while the engine runs, restore its flags after.
        let _ftz = crate::denormals::FlushToZero::new();
        let len = io.first().map_or(0, |c| c.len());
        let len = len
            .min(params.mix.len())
            .min(params.gain.len())
            .min(params.morph.len());
        let channels = io.len().min(self.settings.channels);
        let mut start = 0;
        while start < len {
            let end = (start + self.settings.max_block).min(len);
            self.process_chunk(&mut io[..channels], start, end, params);
            start = end;
        }
    }

    fn process_chunk(&mut self, io: &mut [&mut [f32]], start: usize, end: usize, p: &BlockParams) {
        let channels = io.len().max(1);
        let inv_channels = 1.0 / channels as f32;
        // 1. Input: sanitise, keep the dry signal, mono sum into the model-rate path.
        let base = self.dry_count;
        for j in start..end {
            let mut sum = 0.0f32;
            let mut peak = 0.0f32;
            let at = self.dry_count;
            for (ch, buf) in io.iter().enumerate() {
                let mut v = buf[j];
                if !v.is_finite() {
                    v = 0.0;
                    self.stats.nonfinite_inputs.fetch_add(1, Ordering::Relaxed);
                } else if v.abs() < 1e-30 {
                    v = 0.0;
                }
                *self.dry[ch].at(at) = v;
                sum += v;
                peak = peak.max(v.abs());
            }
            self.peak = peak.max(self.peak * self.peak_decay);
            *self.peaks.at(at) = self.peak;
            // Mix and Output apply to the audio that came in with them, like every other
            // parameter (they reach the output one latency later, with that audio).
            *self.mixes.at(at) = p.mix[j];
            *self.gains.at(at) = p.gain[j];
            self.dry_count += 1;
            if p.mix[j] > 0.0 {
                self.mixed_until = self.dry_count;
            }
            self.down.push(sum * inv_channels);
            while self.down.ready() {
                let x = self.down.pop();
                self.push_model(x, p.at(j));
            }
        }
        // 2. Output: pull model-rate output through the output resampler, mix with dry.
        for (k, j) in (start..end).enumerate() {
            while !self.up.ready() && self.n_out < self.n_in {
                let (y, share) = self.next_model_output();
                self.up.push(y);
                self.up_share.push(share);
            }
            let (wet, share) = if self.up.ready() {
                (self.up.pop(), self.up_share.pop_linear())
            } else {
                (0.0, 0.0)
            };
            let written = base + k as u64;
            // The input's peak around the frames this sample comes from (newest input at most).
            let limit = if written + self.peak_lookahead >= self.latency as u64 {
                let probe =
                    (written + self.peak_lookahead - self.latency as u64).min(self.dry_count - 1);
                WET_PEAK_LIMIT * self.peaks.get(probe)
            } else {
                0.0
            };
            let wet = if wet.is_finite() {
                soft_limit(wet, limit)
            } else {
                0.0
            };
            let share = if share.is_finite() {
                share.clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (mix, gain) = if written >= self.latency as u64 {
                let aligned = written - self.latency as u64;
                safe_mix_and_gain(self.mixes.get(aligned), self.gains.get(aligned))
            } else {
                // Before the first input sample reaches the output: silence either way.
                safe_mix_and_gain(p.mix[j], p.gain[j])
            };
            // The processed grains cover `share` of this sample; the rest is the exact dry
            // input (no reference, a frame that played dry, a missed deadline).
            let dry_share = 1.0 - mix * share;
            for (ch, buf) in io.iter_mut().enumerate() {
                let dry = if written >= self.latency as u64 {
                    self.dry[ch].get(written - self.latency as u64)
                } else {
                    0.0
                };
                buf[j] = (dry * dry_share + wet * mix) * gain;
            }
        }
    }

    /// Appends one model-rate input sample; hands a completed frame to the backend.
    #[inline]
    fn push_model(&mut self, x: f32, params: FrameParams) {
        *self.history.at(self.n_in) = x;
        self.n_in += 1;
        let n = self.n_fft as u64;
        if self.n_in >= n && (self.n_in - n).is_multiple_of(self.hop as u64) {
            let frame = (self.n_in - n) / self.hop as u64;
            let slot = (frame as usize) & (self.frame_params.len() - 1);
            self.frame_params[slot] = params;
            self.kept_dry[slot] = false;
            if let Backend::Worker {
                headers,
                frames,
                thread,
                flags,
                ..
            } = &mut self.backend
            {
                // Frames that would play dry anyway stay here, and the worker sleeps: an
                // instance with nothing to swap with (the worker says so), or one whose Mix has
                // been 0 for every input sample this frame and its resampling can reach (one
                // latency, which covers both) while no live view wants its spectra, costs no
                // worker wake-up.
                let nothing_to_do = flags.idle.load(Ordering::Acquire)
                    && !(params.mode == SwapMode::Neural && params.map_amount > 0.0);
                let unheard = self.dry_count >= self.mixed_until + self.latency as u64
                    && !self.view_open.load(Ordering::Relaxed);
                if nothing_to_do || unheard {
                    self.kept_dry[slot] = true;
                    return;
                }
                // If the worker has fallen this far behind the frame is not sent; its grain
                // will be missing and the dry signal takes its place.
                if headers.slots() > 0 {
                    if let Ok(mut chunk) = frames.write_chunk(self.n_fft) {
                        let (a, b) = chunk.as_mut_slices();
                        let first = frame * self.hop as u64;
                        for (i, v) in a.iter_mut().chain(b.iter_mut()).enumerate() {
                            *v = self.history.get(first + i as u64);
                        }
                        chunk.commit_all();
                        let _ = headers.push(AudioToWorkerMsg::Frame {
                            epoch: self.epoch,
                            index: frame,
                            params,
                        });
                        self.stats.frames_sent.fetch_add(1, Ordering::Relaxed);
                        // Wakes the worker: an atomic swap, plus a wake-up system call that
                        // never blocks (a futex wake on Linux) when the worker is parked. No
                        // allocation, no lock.
                        if let Some(t) = thread {
                            t.thread().unpark();
                        }
                    }
                }
            }
        }
    }

    /// Produces the next model-rate output sample (output position `n_out - D`) and its wet
    /// share (0: the dry input plays there, 1: processed grains cover it).
    #[inline]
    fn next_model_output(&mut self) -> (f32, f32) {
        let m = self.n_out;
        self.n_out += 1;
        if m < self.delay_model {
            return (0.0, 0.0);
        }
        let pos = m - self.delay_model;
        while self.next_grain * self.hop as u64 + self.grain_offset <= pos {
            let f = self.next_grain;
            self.next_grain += 1;
            self.add_grain(f);
        }
        let y = self.ola.get(pos);
        *self.ola.at(pos) = 0.0;
        let share = self.wet_share.get(pos);
        *self.wet_share.at(pos) = 0.0;
        (y, share)
    }

    /// Fetches (or, if late, substitutes) the grain of frame `f` and overlap-adds it.
    fn add_grain(&mut self, f: u64) {
        let first = f * self.hop as u64;
        if self.n_in < first + self.n_fft as u64 {
            // Cannot happen with the latency computed in `new`; keep silence rather than
            // reading a frame that has not arrived.
            debug_assert!(false, "frame {f} requested before it was complete");
            return;
        }
        let mut have = false;
        // The frame plays dry on purpose (nothing to swap with): not a dropout.
        let mut dry_frame = false;
        match &mut self.backend {
            Backend::Inline(processor) => {
                for (i, v) in self.frame_buf.iter_mut().enumerate() {
                    *v = self.history.get(first + i as u64);
                }
                let slot = (f as usize) & (self.frame_params.len() - 1);
                // As on the worker: a panic (a bug) in the frame processing is counted, the
                // processor forgets its stream and the frame plays dry; it never unwinds into
                // the host. After MAX_WORKER_PANICS the processor is no longer called.
                if !self.stats.worker_failed() {
                    let (frame, params, grain) = (
                        &self.frame_buf,
                        &self.frame_params[slot],
                        &mut self.grain_buf,
                    );
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        processor.process(f, frame, params, grain)
                    })) {
                        Ok(wrote) => {
                            have = wrote;
                            dry_frame = !wrote;
                        }
                        Err(_) => {
                            self.stats.worker_panics.fetch_add(1, Ordering::Relaxed);
                            processor.reset();
                        }
                    }
                }
            }
            Backend::Worker { .. } if self.kept_dry[(f as usize) & (self.kept_dry.len() - 1)] => {
                // Kept on this side (nothing to do, or not heard): dry on purpose.
                dry_frame = true;
            }
            Backend::Worker {
                grain_headers,
                grains,
                ..
            } => {
                while let Ok(WorkerToAudioMsg::Grain { epoch, index, dry }) =
                    grain_headers.peek().copied()
                {
                    if epoch == self.epoch && index > f {
                        break;
                    }
                    let _ = grain_headers.pop();
                    let current = epoch == self.epoch && index == f;
                    if dry {
                        // No samples follow a dry header.
                        if current {
                            dry_frame = true;
                            break;
                        }
                        continue;
                    }
                    let Ok(chunk) = grains.read_chunk(self.n_fft) else {
                        break;
                    };
                    if current {
                        let (a, b) = chunk.as_slices();
                        self.grain_buf[..a.len()].copy_from_slice(a);
                        self.grain_buf[a.len()..].copy_from_slice(b);
                        have = true;
                    }
                    chunk.commit_all();
                    if have {
                        break;
                    }
                }
            }
        }
        if have {
            // A processed grain, and its share of the output (the windows' overlap-add is 1).
            // From the grain's first sample that can sound: the silent ones before it lie
            // before the output position already played.
            let offset = self.grain_offset as usize;
            for (i, (g, w)) in self
                .grain_buf
                .iter()
                .zip(&self.dry_window)
                .enumerate()
                .skip(offset)
            {
                *self.ola.at(first + i as u64) += g;
                *self.wet_share.at(first + i as u64) += w;
            }
        } else if !dry_frame {
            // Deadline missed: this frame's share goes to the exact, latency-aligned dry input
            // (every channel, full band), crossfaded by the neighbouring grains' windows.
            self.stats.dropouts.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.frames.fetch_add(1, Ordering::Relaxed);
        if let Backend::Worker { flags, .. } = &self.backend {
            // The worker skips this frame from now on if it has not reached it yet.
            flags.played.store(f + 1, Ordering::Release);
        }
    }

    /// Fault injection for tests: stops (or restarts) the worker taking frames. Does nothing in
    /// offline mode. Not part of the stable API.
    #[doc(hidden)]
    pub fn set_worker_paused(&self, paused: bool) {
        if let Backend::Worker { flags, .. } = &self.backend {
            flags.paused.store(paused, Ordering::Release);
        }
    }
}

impl Engine {
    /// Fault injection for tests: the worker's next frame panics (caught there). Does nothing
    /// in offline mode. Not part of the stable API.
    #[doc(hidden)]
    pub fn inject_worker_panic(&self) {
        if let Backend::Worker { flags, .. } = &self.backend {
            flags.panic_next.store(true, Ordering::Release);
        }
    }
}

impl Drop for Engine {
    /// Stops and joins the worker. Runs wherever the engine is dropped: drop it off the audio
    /// thread (the plugin does so in `activate`/`deactivate`).
    fn drop(&mut self) {
        if let Backend::Worker { flags, thread, .. } = &mut self.backend {
            flags.stop.store(true, Ordering::Release);
            if let Some(t) = thread.take() {
                let _ = t.join();
            }
        }
    }
}
