//! The training config ([`TrainConfig`]): data, schedule, loss weights and the optional
//! sections, with the defaults of the shipped model.

use super::*;

/// Everything that fixes a training run; stored in its checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// The model.
    pub model: Config,
    /// Epochs to train; one epoch is one crop of every training clip.
    pub epochs: usize,
    /// Crops per step.
    pub batch: usize,
    /// Frames per crop.
    pub crop_frames: usize,
    /// Adam learning rate at epoch 0.
    pub learning_rate: f64,
    /// Learning-rate factor per epoch (exponential decay).
    pub lr_decay: f64,
    /// Epochs per KL annealing cycle.
    pub kl_cycle_epochs: usize,
    /// Share of a cycle over which the KL weight ramps from 0 to 1.
    pub kl_ramp: f64,
    /// Weight of `z_v`'s KL term relative to the other two (1: the paper's objective; above 1
    /// limits what the variation latent may carry, against timbre and pitch leaking into it).
    /// Validation always reports the plain negative ELBO.
    pub kl_variation_weight: f64,
    /// Weight of `z_p`'s KL term relative to `z_t`'s (1: the paper's objective; above 1 narrows
    /// the pitch latent, so the decoder has less room to take timbre cues of the fine structure
    /// from it). Validation always reports the plain negative ELBO.
    pub kl_pitch_weight: f64,
    /// Weight of the pitch-invariance term (0: the paper's objective): the squared distance
    /// between the posterior means of `z_p` of the clean and of the distorted crop, relative
    /// to the spread of the clean means over the batch (both over active frames). It asks the
    /// pitch encoder for the same point whatever the timbre, where the paper only hides the
    /// timbre from it; needs the timbre distortion. Validation reports the plain negative ELBO.
    pub pitch_invariance_weight: f64,
    /// Weight of the pitch-contrast term (0: the paper's objective): the squared distance
    /// between the `z_p` means of the clean and of the distorted crop (same notes, another
    /// timbre) over the squared distance between those of the clean and of the pitch-shifted
    /// crop (same timbre, other notes), both over active frames, the second over the crops
    /// shifted by at least one semitone. Where the invariance term measures the gap against the
    /// spread of the batch, which rewards codes that tell instruments apart as much as notes,
    /// this one rewards telling notes apart only. Needs the timbre distortion and the pitch
    /// shift. Validation reports the plain negative ELBO.
    pub pitch_contrast_weight: f64,
    /// Weight of the pitch classifier's cross-entropy, which a model with a pitch ruler
    /// (`pitch_bins` above 0) needs and only it allows. Its targets come from the audio, not
    /// from the dataset's labels: pYIN's pitch of every fourth frame of the clip, measured once
    /// on the whole clip (frames it finds unvoiced are left out), spread over the semitone bins
    /// as a Gaussian of [`PITCH_TARGET_SPREAD`] semitones. The classifier answers for the clean crop, the distorted crop (the same
    /// target: the ruler ignores timbre) and the pitch-shifted crop (the target moved by the
    /// shift: the ruler follows pitch), the pooling-weighted mean over frames, then crops, of
    /// the three. Needs the pitch shift and the timbre distortion. Validation reports the plain
    /// negative ELBO.
    pub pitch_classifier_weight: f64,
    /// Largest global gradient norm (larger gradients are scaled down).
    pub grad_clip: f64,
    /// Seed of every random draw.
    pub seed: u64,
    /// Random pitch shift of the timbre/variation encoder input (`--no-pitch-shift`).
    pub pitch_shift: bool,
    /// Random timbre distortion of the pitch encoder input (`--no-timbre-distortion`).
    pub timbre_distortion: bool,
    /// After the timbre distortion, also a random instrument body ([`crate::perturb::Body`]) on the
    /// pitch encoder input, giving every partial its own random level (off: the paper's
    /// distortion). It hides the partial-by-partial balance, which the cepstral envelope is too
    /// smooth to carry, from the pitch encoder; needs the timbre distortion.
    pub body_filter: bool,
    /// Re-entry training (`--no-reentry`).
    pub reentry: bool,
    /// Dataset sets trained on.
    pub sets: Vec<Set>,
    /// Validation crops (fixed, unperturbed).
    pub valid_crops: usize,
    /// Training clips measured for the input normalisation.
    pub norm_clips: usize,
    /// At most this many training clips (0: all), for quick runs and tests.
    pub max_clips: usize,
    /// The swap term on paired renders ([`SwapConfig`]; off by default).
    #[serde(skip_serializing_if = "SwapConfig::is_default")]
    pub swap: SwapConfig,
    /// The cross-library timbre term ([`CrossLibraryConfig`]; off by default; needs
    /// `libraries`).
    #[serde(skip_serializing_if = "CrossLibraryConfig::is_default")]
    pub cross_library: CrossLibraryConfig,
    /// An instrument classifier on `z_v` trained against the encoders ([`AdversaryConfig`];
    /// off by default).
    #[serde(skip_serializing_if = "AdversaryConfig::is_default")]
    pub adversary: AdversaryConfig,
    /// More dataset folders to train on beside `--data` (each a `timbreswap dataset` render of
    /// another training library, e.g. the csound GM bank and the OPL3 FM bank): their clips
    /// join `--data`'s, split for split, and the timbre map's instruments take the clips of
    /// every library (by GM program). A relative path is taken from the working directory.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub libraries: Vec<PathBuf>,
    /// Start from this model file's weights and input normalisation instead of seeded
    /// random weights (fine-tuning; its config must equal `model`; a relative path is taken
    /// from the working directory). `None`: from scratch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: Config::default(),
            epochs: 30,
            batch: 32,
            crop_frames: 80,
            learning_rate: 1e-3,
            lr_decay: 0.95,
            kl_cycle_epochs: 10,
            kl_ramp: 0.5,
            kl_variation_weight: 1.0,
            kl_pitch_weight: 1.0,
            pitch_invariance_weight: 0.0,
            pitch_contrast_weight: 0.0,
            pitch_classifier_weight: 0.0,
            grad_clip: 10.0,
            seed: 1,
            pitch_shift: true,
            timbre_distortion: true,
            body_filter: false,
            reentry: true,
            sets: vec![Set::Notes, Set::Phrases],
            valid_crops: 256,
            norm_clips: 300,
            max_clips: 0,
            swap: SwapConfig::default(),
            cross_library: CrossLibraryConfig::default(),
            adversary: AdversaryConfig::default(),
            libraries: Vec::new(),
            init_from: None,
        }
    }
}

impl TrainConfig {
    /// The KL weight at `epoch` plus `fraction` (0..1) of it.
    pub fn kl_weight(&self, epoch: usize, fraction: f64) -> f64 {
        let cycle = self.kl_cycle_epochs.max(1) as f64;
        let pos = ((epoch as f64 + fraction) % cycle) / cycle;
        if self.kl_ramp <= 0.0 {
            1.0
        } else {
            (pos / self.kl_ramp).min(1.0)
        }
    }

    /// The learning rate during `epoch`.
    pub fn lr(&self, epoch: usize) -> f64 {
        self.learning_rate * self.lr_decay.powi(epoch as i32)
    }

    /// The dataset folders a run with `data` reads: `data`, then [`Self::libraries`].
    pub fn folders<'a>(&'a self, data: &'a Path) -> Vec<&'a Path> {
        std::iter::once(data)
            .chain(self.libraries.iter().map(PathBuf::as_path))
            .collect()
    }

    /// The same run with a different epoch count (what `--resume` may change).
    pub(super) fn same_run(&self, other: &TrainConfig) -> bool {
        let mut a = self.clone();
        a.epochs = other.epochs;
        a == *other
    }
}
