//! The three-factor model's configuration: the schema written into every model file (as JSON
//! metadata) and read by both the training crate and the engine, plus the list of weight
//! tensors (names and shapes) a config implies.
//!
//! Weight names, per stack prefix `p` (see [`ModelConfig::layers`]): `p.input.{weight,bias}`,
//! `p.blocks.{i}.conv.{weight,bias}`, `p.output.{weight,bias}`; plus `timbre.head.{weight,bias}`
//! and the input normalisation `features.{log_mag_mean,envelope_mean,fine_mean}` `[bins]` and
//! `features.scale` `[3]`. Linear weights are `[out, in]`, row-major; a causal convolution's
//! weight is `[channels, kernel * channels]`, tap-major (tap `j` looks `j * dilation` frames
//! back).

use serde::{Deserialize, Serialize};

use crate::config::StftConfig;

/// Name of the model file format (the `format` metadata key).
pub const FORMAT_NAME: &str = "timbreswap-three-factor";

/// Slope of the leaky ReLU after every hidden layer.
pub const LEAKY_SLOPE: f32 = 0.1;

/// Version of the model file format and config schema this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Log-variances are clamped to this range before use (numerical safety; the posterior
/// standard deviations it allows, 0.0067..20, are far outside what training reaches).
pub const LOG_VAR_RANGE: (f32, f32) = (-10.0, 6.0);

/// Frames within this many dB of a clip's loudest frame are pooled by the timbre encoder (the
/// protocol's activity range).
pub const POOLING_RANGE_DB: f32 = 60.0;

/// Everything that fixes the shape and meaning of a model; written into the model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Format version of the file and this schema ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Model sample rate, in Hz.
    pub sample_rate: u32,
    /// FFT size and Hann window length, in samples.
    pub n_fft: usize,
    /// Hop between frames, in samples.
    pub hop: usize,
    /// Cepstral lifter cut-off, in quefrency samples (coefficients below it are the envelope).
    pub cepstral_cutoff: usize,
    /// Floor added to magnitudes before the natural log (unnormalised FFT of the windowed
    /// frame; a full-scale sine peaks near 128 at n_fft 512, so 1e-3 keeps about 100 dB).
    pub mag_floor: f32,
    /// Dimensions of the timbre latent.
    pub z_t: usize,
    /// Dimensions of the variation latent (unused when `variation` is false).
    pub z_v: usize,
    /// Dimensions of the pitch latent.
    pub z_p: usize,
    /// Hidden channels of every stack.
    pub hidden: usize,
    /// Taps of each causal convolution.
    pub kernel: usize,
    /// Dilation (frames) of each residual block of the variation, pitch and decoder stacks.
    pub dilations: Vec<usize>,
    /// Residual per-frame blocks of the timbre encoder before pooling.
    pub timbre_layers: usize,
    /// Three factors (true) or two (no variation latent; `--no-variation`).
    pub variation: bool,
    /// Cepstral split of the encoder inputs (false: every encoder sees the whole log-magnitude;
    /// `--no-cepstrum`).
    pub cepstrum: bool,
    /// `z_p` is a binary code: each value is the sign (+-1) of the pitch encoder's mean head,
    /// 0 counting as +1 (training passes `tanh`'s gradient straight through and has no KL
    /// term for `z_p`). Off: the paper's Gaussian `z_p`. Written to a file only when on, so
    /// files without it read as before.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pitch_binary: bool,
    /// Semitone bins of the pitch classifier; 0: none (every value of `z_p` alike). Above 0,
    /// `z_p`'s first value is a pitch ruler: the pitch stack also puts out one logit per
    /// semitone from MIDI note [`PITCH_BIN_LOW`] up, and the ruler is the softmax-weighted
    /// mean of those bins' notes, in semitones from middle C, times `pitch_ruler_scale`
    /// ([`ModelConfig::pitch_ruler`]). The stack's output is then the mean and log-variance
    /// heads of the other `z_p - 1` values, then the logits. The ruler is continuous in a
    /// binary code and deterministic (no noise, no KL term) in a Gaussian one. Written to a
    /// file only when above 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub pitch_bins: usize,
    /// Ruler units per semitone (only with `pitch_bins`). In a distance between two `z_p`, a
    /// semitone on the ruler weighs as much as this squared over 4 flipped bits of a binary
    /// code.
    #[serde(skip_serializing_if = "is_one")]
    pub pitch_ruler_scale: f32,
    /// Harmonics whose levels the timbre encoder reads beside the envelope; 0: none (the
    /// envelope alone, as the paper). Above 0 (a pitch ruler is then needed), each frame's
    /// input to `timbre.frames` is its envelope followed by the log-magnitude at the first
    /// `timbre_harmonics` multiples of the frame's ruler pitch, relative to the strongest of
    /// them (a pitch-independent harmonic balance). Written to a file only when above 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub timbre_harmonics: usize,
}

/// Most harmonics the timbre encoder may read ([`ModelConfig::timbre_harmonics`]).
pub const MAX_TIMBRE_HARMONICS: usize = 64;

/// MIDI note of the pitch classifier's first bin (C1, 32.7 Hz).
pub const PITCH_BIN_LOW: f32 = 24.0;
/// MIDI note of middle C, the ruler's zero.
pub const MIDDLE_C: f32 = 60.0;

fn is_zero(v: &usize) -> bool {
    *v == 0
}

fn is_one(v: &f32) -> bool {
    *v == 1.0
}

impl Default for ModelConfig {
    fn default() -> Self {
        let stft = StftConfig::default();
        Self {
            format_version: FORMAT_VERSION,
            sample_rate: stft.sample_rate,
            n_fft: stft.n_fft,
            hop: stft.hop,
            cepstral_cutoff: stft.cepstral_cutoff,
            mag_floor: 1e-3,
            z_t: 64,
            z_v: 64,
            z_p: 32,
            hidden: 192,
            kernel: 2,
            dilations: vec![1, 2, 4, 8],
            timbre_layers: 2,
            variation: true,
            cepstrum: true,
            pitch_binary: false,
            pitch_bins: 0,
            pitch_ruler_scale: 1.0,
            timbre_harmonics: 0,
        }
    }
}

/// A config that cannot describe a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid model config: {0}")]
pub struct ModelConfigError(pub String);

/// Largest value accepted for any size in a config (guards allocations from hostile files).
const MAX_SIZE: usize = 4096;

impl ModelConfig {
    /// The analysis settings of the model.
    pub fn stft(&self) -> StftConfig {
        StftConfig {
            sample_rate: self.sample_rate,
            n_fft: self.n_fft,
            hop: self.hop,
            cepstral_cutoff: self.cepstral_cutoff,
        }
    }

    /// Bins per frame, `n_fft / 2 + 1`.
    pub fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Variation dimensions actually present (0 for a two-factor model).
    pub fn z_v_dims(&self) -> usize {
        if self.variation {
            self.z_v
        } else {
            0
        }
    }

    /// Whether `z_p`'s first value is a pitch ruler (`pitch_bins` above 0).
    pub fn pitch_ruler(&self) -> bool {
        self.pitch_bins > 0
    }

    /// Values of `z_p` with a mean and log-variance head: all but a ruler.
    pub fn pitch_heads(&self) -> usize {
        self.z_p - usize::from(self.pitch_ruler())
    }

    /// Values the pitch stack puts out per frame: the mean and log-variance heads, then the
    /// classifier's logits.
    pub fn pitch_outputs(&self) -> usize {
        2 * self.pitch_heads() + self.pitch_bins
    }

    /// Checks every value is usable (version, sizes, the STFT settings).
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        let bad = |m: String| Err(ModelConfigError(m));
        if self.format_version != FORMAT_VERSION {
            return bad(format!(
                "format version {} (this build reads {FORMAT_VERSION})",
                self.format_version
            ));
        }
        if let Err(e) = self.stft().validate() {
            return bad(e.to_string());
        }
        if self.n_fft > 16_384 {
            return bad(format!("n_fft {} is larger than 16384", self.n_fft));
        }
        if !(self.mag_floor.is_finite() && self.mag_floor > 0.0) {
            return bad(format!("mag_floor {} must be positive", self.mag_floor));
        }
        let sizes = [
            ("z_t", self.z_t),
            ("z_p", self.z_p),
            ("hidden", self.hidden),
            ("kernel", self.kernel),
        ];
        for (name, v) in sizes {
            if v == 0 || v > MAX_SIZE {
                return bad(format!("{name} = {v} (must be 1..={MAX_SIZE})"));
            }
        }
        if self.variation && (self.z_v == 0 || self.z_v > MAX_SIZE) {
            return bad(format!("z_v = {} (must be 1..={MAX_SIZE})", self.z_v));
        }
        if self.kernel > 16 || self.timbre_layers > 64 || self.dilations.len() > 64 {
            return bad("too many layers or taps".into());
        }
        if self.dilations.iter().any(|&d| d == 0 || d > 1024) {
            return bad(format!("dilations {:?} must be 1..=1024", self.dilations));
        }
        if self.pitch_bins > 0 {
            if self.z_p < 2 {
                return bad(format!(
                    "a pitch ruler needs z_p of at least 2 (the ruler and one more), not {}",
                    self.z_p
                ));
            }
            if self.pitch_bins > 128 {
                return bad(format!("pitch_bins {} (at most 128)", self.pitch_bins));
            }
            if !(self.pitch_ruler_scale.is_finite() && self.pitch_ruler_scale > 0.0) {
                return bad(format!(
                    "pitch_ruler_scale {} must be positive",
                    self.pitch_ruler_scale
                ));
            }
        }
        if self.timbre_harmonics > 0 {
            if !self.pitch_ruler() {
                return bad(format!(
                    "timbre_harmonics {} needs a pitch ruler (pitch_bins above 0) for the \
                     harmonics' frequencies",
                    self.timbre_harmonics
                ));
            }
            if self.timbre_harmonics > MAX_TIMBRE_HARMONICS {
                return bad(format!(
                    "timbre_harmonics {} (at most {MAX_TIMBRE_HARMONICS})",
                    self.timbre_harmonics
                ));
            }
        }
        Ok(())
    }

    /// Look-back of the causal stacks, in frames (their receptive field minus one).
    pub fn look_back(&self) -> usize {
        (self.kernel - 1) * self.dilations.iter().sum::<usize>()
    }

    /// The stacks and their shapes, by weight prefix (written into the model file).
    pub fn layers(&self) -> Vec<(String, StackShape)> {
        let bins = self.bins();
        let mut list = vec![(
            "timbre.frames".to_string(),
            StackShape {
                input: bins + self.timbre_harmonics,
                hidden: self.hidden,
                output: self.hidden,
                kernel: 1,
                dilations: vec![1; self.timbre_layers],
            },
        )];
        let causal = |input: usize, output: usize| StackShape {
            input,
            hidden: self.hidden,
            output,
            kernel: self.kernel,
            dilations: self.dilations.clone(),
        };
        if self.variation {
            list.push(("variation".into(), causal(bins + self.z_t, 2 * self.z_v)));
        }
        list.push(("pitch".into(), causal(bins, self.pitch_outputs())));
        list.push((
            "decoder".into(),
            causal(self.z_t + self.z_v_dims() + self.z_p, bins),
        ));
        list
    }
}

/// Shape of one causal stack: input projection, residual causal blocks, output projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackShape {
    /// Input values per frame.
    pub input: usize,
    /// Hidden channels.
    pub hidden: usize,
    /// Output values per frame.
    pub output: usize,
    /// Taps per causal convolution.
    pub kernel: usize,
    /// Dilation of each residual block, in frames.
    pub dilations: Vec<usize>,
}

impl StackShape {
    /// Frames of history the whole stack needs (its receptive field minus one).
    pub fn look_back(&self) -> usize {
        (self.kernel - 1) * self.dilations.iter().sum::<usize>()
    }

    /// Every weight tensor of a stack under `prefix`, with its shape.
    pub fn weights(&self, prefix: &str) -> Vec<(String, Vec<usize>)> {
        let mut list = vec![
            (
                format!("{prefix}.input.weight"),
                vec![self.hidden, self.input],
            ),
            (format!("{prefix}.input.bias"), vec![self.hidden]),
        ];
        for i in 0..self.dilations.len() {
            list.push((
                format!("{prefix}.blocks.{i}.conv.weight"),
                vec![self.hidden, self.kernel * self.hidden],
            ));
            list.push((format!("{prefix}.blocks.{i}.conv.bias"), vec![self.hidden]));
        }
        list.push((
            format!("{prefix}.output.weight"),
            vec![self.output, self.hidden],
        ));
        list.push((format!("{prefix}.output.bias"), vec![self.output]));
        list
    }
}

impl ModelConfig {
    /// Every weight tensor a model of this config has (normalisation included), sorted by
    /// name, with its shape. The timbre map (`map.*`) is not part of the weights.
    pub fn weight_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let bins = self.bins();
        let mut list = vec![
            ("features.log_mag_mean".to_string(), vec![bins]),
            ("features.envelope_mean".to_string(), vec![bins]),
            ("features.fine_mean".to_string(), vec![bins]),
            ("features.scale".to_string(), vec![3]),
            (
                "timbre.head.weight".to_string(),
                vec![2 * self.z_t, self.hidden],
            ),
            ("timbre.head.bias".to_string(), vec![2 * self.z_t]),
        ];
        for (prefix, shape) in self.layers() {
            list.extend(shape.weights(&prefix));
        }
        list.sort();
        list
    }

    /// Number of trained values (the feature normalisation excluded).
    pub fn trainable_parameters(&self) -> usize {
        self.weight_shapes()
            .iter()
            .filter(|(n, _)| !n.starts_with("features."))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    /// Multiply-adds per frame of the streaming path (variation, pitch and decoder stacks).
    pub fn macs_per_frame(&self) -> usize {
        self.layers()
            .iter()
            .filter(|(n, _)| n != "timbre.frames")
            .map(|(_, s)| {
                s.input * s.hidden
                    + s.dilations.len() * s.kernel * s.hidden * s.hidden
                    + s.hidden * s.output
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_counts_its_weights() {
        let cfg = ModelConfig::default();
        cfg.validate().unwrap();
        assert_eq!(cfg.bins(), 257);
        assert_eq!(cfg.look_back(), 15);
        let shapes = cfg.weight_shapes();
        // 4 normalisation tensors, the timbre head, and 4 stacks of (input, blocks, output).
        let stacks = 1 + 3;
        let blocks = cfg.timbre_layers + 3 * cfg.dilations.len();
        assert_eq!(shapes.len(), 4 + 2 + stacks * 4 + blocks * 2);
        // Hand count: timbre frames 257*192+192 + 2*(192*192+192) + 192*192+192; head
        // 192*128+128; variation (321 in, 128 out); pitch (257 in, 64 out); decoder (160 in,
        // 257 out); the causal blocks have 2*192*192+192 each.
        let h = 192;
        let stack = |i: usize, o: usize, blocks: usize, k: usize| {
            i * h + h + blocks * (k * h * h + h) + h * o + o
        };
        let expected = stack(257, h, 2, 1)
            + h * 128
            + 128
            + stack(321, 128, 4, 2)
            + stack(257, 64, 4, 2)
            + stack(160, 257, 4, 2);
        assert_eq!(cfg.trainable_parameters(), expected);
        let two = ModelConfig {
            variation: false,
            ..ModelConfig::default()
        };
        assert!(two
            .weight_shapes()
            .iter()
            .all(|(n, _)| !n.starts_with("variation")));
    }

    #[test]
    fn bad_configs_are_refused() {
        let ok = ModelConfig::default();
        for bad in [
            ModelConfig {
                format_version: 2,
                ..ok.clone()
            },
            ModelConfig {
                hidden: 0,
                ..ok.clone()
            },
            ModelConfig {
                z_t: 100_000,
                ..ok.clone()
            },
            ModelConfig {
                dilations: vec![0],
                ..ok.clone()
            },
            ModelConfig {
                mag_floor: f32::NAN,
                ..ok.clone()
            },
            ModelConfig {
                n_fft: 511,
                ..ok.clone()
            },
            ModelConfig {
                z_p: 1,
                pitch_bins: 84,
                ..ok.clone()
            },
            ModelConfig {
                pitch_bins: 84,
                pitch_ruler_scale: 0.0,
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        // A ruler beside one more value is fine.
        let ruler = ModelConfig {
            z_p: 2,
            pitch_bins: 84,
            ..ok.clone()
        };
        ruler.validate().unwrap();
        // Its pitch stack puts out one mean and log-variance and the 84 logits.
        assert_eq!(ruler.pitch_outputs(), 2 + 84);
    }
}
