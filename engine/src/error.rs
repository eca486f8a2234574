//! Typed errors of the engine.

use std::path::PathBuf;

/// An [`crate::StftConfig`] that cannot drive the streaming STFT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The model sample rate is outside 8-192 kHz.
    #[error("model sample rate {0} Hz is outside 8000-192000 Hz")]
    SampleRate(u32),
    /// The FFT size is odd, too small or too large.
    #[error("FFT size {0} must be even and within 16-16384")]
    FftSize(usize),
    /// The hop is zero or more than half the FFT size.
    #[error("hop {hop} must be within 1..={}", n_fft / 2)]
    Hop {
        /// Requested hop, samples.
        hop: usize,
        /// FFT size, samples.
        n_fft: usize,
    },
    /// The cepstral cut-off does not leave both an envelope and a fine structure.
    #[error("cepstral cut-off {cutoff} must be within 2..{}", n_fft / 2)]
    CepstralCutoff {
        /// Requested cut-off, quefrency samples.
        cutoff: usize,
        /// FFT size, samples.
        n_fft: usize,
    },
}

/// Why the engine could not be built for a host configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// The STFT settings are unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The host sample rate is not supported.
    #[error("host sample rate {0} Hz is not supported (8 kHz to 384 kHz)")]
    HostRate(f64),
    /// The host asked for zero channels or zero-length blocks.
    #[error("unsupported host layout: {channels} channels, max block {max_block} samples")]
    Layout {
        /// Channel count.
        channels: usize,
        /// Largest block, samples.
        max_block: usize,
    },
    /// The worker thread could not be started.
    #[error("could not start the worker thread: {0}")]
    Worker(String),
    /// A timbre descriptor handed to the engine is invalid.
    #[error(transparent)]
    Timbre(#[from] TimbreError),
    /// The neural model (or a timbre latent for it) cannot be used with this engine.
    #[error("the neural model cannot be used: {0}")]
    Model(String),
    /// An exemplar bank cannot be used with this engine.
    #[error("the exemplar clip cannot be used: {0}")]
    Exemplar(String),
    /// [`crate::LatencyMode::Low`] needs an even STFT hop (its frames are half a hop apart).
    #[error("low latency needs an even STFT hop (it is {hop} samples)")]
    LatencyMode {
        /// The STFT hop, in samples.
        hop: usize,
    },
}

/// A timbre descriptor (saved in plugin state or made from a clip) that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TimbreError {
    /// Written by a newer, unknown format.
    #[error("timbre descriptor format {found} is not supported (this build reads {supported})")]
    Version {
        /// Version in the descriptor.
        found: u32,
        /// Version this build writes and reads.
        supported: u32,
    },
    /// Sizes do not agree with each other.
    #[error("timbre descriptor is malformed: {0}")]
    Malformed(String),
    /// Contains NaN or infinite values.
    #[error("timbre descriptor contains non-finite values")]
    NonFinite,
}

/// Why a reference clip could not be turned into a timbre.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// The container or codec is not one the engine decodes.
    #[error("{path}: unsupported or unrecognised audio format ({detail}); use WAV, AIFF, FLAC, MP3 or OGG/Vorbis")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The decoder's words.
        detail: String,
    },
    /// The data is corrupt.
    #[error("{path}: the audio data is corrupt ({detail})")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The decoder's words.
        detail: String,
    },
    /// No audio samples at all.
    #[error("{path}: the clip contains no audio")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Longer than [`crate::clip::MAX_CLIP_SECONDS`].
    #[error("{path}: the clip is longer than {limit_s:.0} s; trim it to at most 10 minutes")]
    TooLong {
        /// The file.
        path: PathBuf,
        /// The limit, seconds.
        limit_s: f64,
    },
    /// Contains NaN or infinite samples.
    #[error("{path}: the clip contains invalid (NaN or infinite) samples")]
    NonFinite {
        /// The file.
        path: PathBuf,
    },
    /// Nothing louder than the silence threshold.
    #[error("{path}: the clip is silent (peak below {threshold_db:.0} dBFS)")]
    Silent {
        /// The file.
        path: PathBuf,
        /// The threshold, dBFS.
        threshold_db: f64,
    },
    /// The path is a directory, not a file.
    #[error("{path} is a folder, not an audio file")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file ends before the length its header states (an interrupted copy or export).
    #[error("{path}: the file is cut short ({found} of the {expected} samples its header states); export it again")]
    CutShort {
        /// The file.
        path: PathBuf,
        /// Samples per channel decoded.
        found: u64,
        /// Samples per channel the header states.
        expected: u64,
    },
    /// Too short to carry a timbre.
    #[error("{path}: the clip is too short ({seconds:.3} s; at least {min_s:.2} s)")]
    TooShort {
        /// The file.
        path: PathBuf,
        /// Its length, seconds.
        seconds: f64,
        /// The minimum, seconds.
        min_s: f64,
    },
    /// The sample rate is missing or out of range.
    #[error("{path}: unsupported sample rate {rate} Hz")]
    SampleRate {
        /// The file.
        path: PathBuf,
        /// The rate found, Hz (0 = not stated).
        rate: u32,
    },
}
