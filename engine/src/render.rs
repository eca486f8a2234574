//! Offline rendering: the engine run over a whole signal in offline mode, as the plugin runs
//! in a host's bounce. Not realtime-safe (allocates); never on the audio thread.

use std::path::Path;
use std::sync::Arc;

use crate::clip::DecodedAudio;
use crate::config::{LatencyMode, StftConfig};
use crate::engine::{BlockParams, Engine, EngineSettings, ProcessingMode};
use crate::error::EngineError;
use crate::exemplar::ExemplarBank;
use crate::messages::Slot;
use crate::network::Network;
use crate::neural::PhaseMode;
use crate::processor::SwapMode;
use crate::stats::EngineStats;
use crate::timbre::TimbreDescriptor;

/// What to render.
#[derive(Debug, Clone)]
pub struct RenderOptions<'a> {
    /// Timbre of slot A.
    pub timbre_a: Option<&'a TimbreDescriptor>,
    /// Timbre of slot B.
    pub timbre_b: Option<&'a TimbreDescriptor>,
    /// Morph A -> B, 0..=1.
    pub morph: f32,
    /// Wet share, 0..=1.
    pub mix: f32,
    /// Output gain, in dB.
    pub output_db: f32,
    /// Block size the engine is driven with, in samples. The result does not depend on it.
    pub block: usize,
    /// Internal STFT settings.
    pub stft: StftConfig,
    /// Classic or neural.
    pub mode: SwapMode,
    /// The neural model (Neural mode falls back to Classic without one).
    pub model: Option<Arc<Network>>,
    /// Timbre latent of slot A for the model (`z_t` values).
    pub latent_a: Option<&'a [f32]>,
    /// Timbre latent of slot B for the model.
    pub latent_b: Option<&'a [f32]>,
    /// Neural: variation amount, 0..=2.
    pub variation: f32,
    /// Transposition, semitones (Exemplar: the played pitch; Neural: the pitch the model
    /// hears).
    pub transpose: f32,
    /// Neural: phase reconstruction.
    pub phase: PhaseMode,
    /// Exemplar: share of a struck reference's note decay the output takes, 0..=1.
    pub decay: f32,
    /// Exemplar: the analysed clips of slots A and B (Exemplar mode falls back to Classic
    /// without them).
    pub exemplars: [Option<Arc<ExemplarBank>>; 2],
    /// The latency the engine is built for.
    pub latency_mode: LatencyMode,
}

impl Default for RenderOptions<'_> {
    fn default() -> Self {
        Self {
            timbre_a: None,
            timbre_b: None,
            morph: 0.0,
            mix: 1.0,
            output_db: 0.0,
            block: 512,
            stft: StftConfig::default(),
            mode: SwapMode::Classic,
            model: None,
            latent_a: None,
            latent_b: None,
            variation: 1.0,
            transpose: 0.0,
            phase: PhaseMode::Input,
            decay: 1.0,
            exemplars: [None, None],
            latency_mode: LatencyMode::Normal,
        }
    }
}

/// The rendered signal and what the engine reported.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Output, same rate, channel count and length as the input, latency removed.
    pub audio: DecodedAudio,
    /// The engine's latency, in samples (already compensated in `audio`).
    pub latency: u32,
}

/// Renders `input` through the engine in offline mode and removes the latency, so the output
/// lines up with the input sample for sample.
pub fn render(input: &DecodedAudio, opts: &RenderOptions) -> Result<Rendered, EngineError> {
    let channels = input.channels.len().max(1);
    let block = opts.block.max(1);
    let settings = EngineSettings {
        host_rate: input.sample_rate as f64,
        max_block: block,
        channels,
        mode: ProcessingMode::Offline,
        stft: opts.stft,
        worker_priority: Default::default(),
        latency_mode: opts.latency_mode,
        latency_block: None,
    };
    let (mut engine, mut control) = Engine::new(
        settings,
        Arc::new(EngineStats::default()),
        opts.timbre_a,
        opts.timbre_b,
    )?;
    if opts.model.is_some() {
        control
            .set_model(opts.model.clone(), opts.latent_a, opts.latent_b)
            .map_err(|e| EngineError::Model(e.to_string()))?;
    }
    for (slot, bank) in [Slot::A, Slot::B].into_iter().zip(&opts.exemplars) {
        if bank.is_some() {
            control
                .set_exemplar(slot, bank.clone())
                .map_err(|e| EngineError::Exemplar(e.to_string()))?;
        }
    }
    let latency = engine.latency_samples() as usize;
    let len = input.channels.first().map_or(0, Vec::len);
    let total = len + latency;
    let mut out: Vec<Vec<f32>> = (0..channels)
        .map(|c| {
            let mut v = input.channels.get(c).cloned().unwrap_or_default();
            v.resize(total, 0.0);
            v
        })
        .collect();
    let mix = vec![opts.mix.clamp(0.0, 1.0); block];
    let gain = vec![10f32.powf(opts.output_db / 20.0); block];
    let morph = vec![opts.morph.clamp(0.0, 1.0); block];
    let variation = vec![opts.variation; block];
    let transpose = vec![opts.transpose; block];
    let decay = vec![opts.decay; block];
    let params = BlockParams {
        mix: &mix,
        gain: &gain,
        morph: &morph,
        variation: &variation,
        transpose: &transpose,
        mode: opts.mode,
        phase: opts.phase,
        map_x: &[],
        map_y: &[],
        map_amount: &[],
        decay: &decay,
    };
    let mut start = 0;
    while start < total {
        let end = (start + block).min(total);
        let mut slices: Vec<&mut [f32]> = out.iter_mut().map(|c| &mut c[start..end]).collect();
        engine.process(&mut slices, &params);
        start = end;
    }
    for c in &mut out {
        c.drain(..latency);
    }
    Ok(Rendered {
        audio: DecodedAudio {
            sample_rate: input.sample_rate,
            channels: out,
            truncated: false,
        },
        latency: latency as u32,
    })
}

/// Writes `audio` as a 32-bit float WAV file.
pub fn write_wav(path: &Path, audio: &DecodedAudio) -> Result<(), hound::Error> {
    let spec = hound::WavSpec {
        channels: audio.channels.len() as u16,
        sample_rate: audio.sample_rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut writer = hound::WavWriter::create(path, spec)?;
    let len = audio.channels.first().map_or(0, Vec::len);
    for i in 0..len {
        for c in &audio.channels {
            writer.write_sample(c[i])?;
        }
    }
    writer.finalize()
}
