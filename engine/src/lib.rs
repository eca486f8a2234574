//! Timbreswap's play-time engine: everything that runs while the plugin plays.
//!
//! - [`Engine`] is the audio-thread side: mono sum, resampling to the model rate, framing,
//!   overlap-add, resampling back, dry/wet. Its `process` and `reset` are realtime-safe.
//! - The worker thread (one per engine, realtime mode) runs the [`processor::FrameProcessor`]:
//!   FFT, cepstral split, classic envelope swap, inverse FFT. In offline mode the same code runs
//!   inline, so nothing can drop.
//! - [`EngineControl`] is the control side (GUI, background tasks): it hands new timbres to the
//!   processor and frees the old ones, never on the audio thread.
//! - [`clip`] decodes and analyses reference clips off the audio thread; [`render`] runs the
//!   whole engine over a file, as the `timbreswap render` command does.
//! - The neural mode: [`model_config`] and [`model_file`] describe and check the three-factor
//!   model's file, [`features`] computes its inputs, [`network`] runs its encoders and decoder
//!   frame by frame with the SIMD [`kernels`], [`phase`] reconstructs phase (RTPGHI), and
//!   [`neural`] is the per-frame neural processor the worker runs; [`timbre_map`] turns a point
//!   of the model's timbre map back into a timbre; [`griffin_lim`] is the
//!   offline Griffin-Lim reference RTPGHI is measured against.
//! - [`spectrum_view`] hands input and output spectra to the editor's live view.
//! - [`exemplar`] is an experimental swap that plays the reference clip's own frames at the
//!   input's pitch; the evaluation scores it (`eval-transfer --exemplar`), the plugin does not
//!   use it yet.

pub mod cepstrum;
pub mod clip;
pub mod config;
pub mod denormals;
pub mod engine;
pub mod error;
pub mod exemplar;
pub mod features;
pub mod griffin_lim;
pub mod half;
mod halves;
pub mod harmonics;
pub mod int8;
pub mod kernels;
mod low_latency;
pub mod messages;
pub mod model_config;
pub mod model_file;
mod narrow;
pub mod network;
pub mod neural;
mod pcm;
pub mod phase;
pub mod processor;
pub mod real_fft;
pub mod reference;
pub mod render;
pub mod resampler;
pub mod scheduling;
pub mod spectrum_view;
pub mod stats;
pub mod stft;
#[cfg(test)]
mod test_rng;
pub mod timbre;
pub mod timbre_map;
mod worker;

pub use config::{LatencyMode, StftConfig};
pub use engine::{
    safe_mix_and_gain, BlockParams, ControlError, Engine, EngineControl, EngineSettings,
    ProcessingMode, StateUpdate, WorkerPriority, MAX_OUTPUT_GAIN, MIN_OUTPUT_GAIN,
};
pub use error::{ClipError, ConfigError, EngineError, TimbreError};
pub use messages::Slot;
pub use stats::EngineStats;
pub use timbre::TimbreDescriptor;
