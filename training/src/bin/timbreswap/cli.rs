//! The command line's arguments: every subcommand and its options (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use timbreswap_engine::StftConfig;
use timbreswap_training::eval::DEFAULT_MAX_TRAIN_FRAMES;

/// Default SoundFont of the protocol (Debian package `fluid-soundfont-gm`).
pub(crate) const DEFAULT_SOUNDFONT: &str = "/usr/share/sounds/sf2/FluidR3_GM.sf2";
/// The library held out for evaluation (Debian package `timgm6mb-soundfont`).
pub(crate) const HELD_OUT_SOUNDFONT: &str = "/usr/share/sounds/sf2/TimGM6mb.sf2";

/// How a model's weight matrices are stored (`convert-model --to`, `--weights`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PrecisionArg {
    /// 4 bytes per weight.
    F32,
    /// IEEE binary16, 2 bytes per weight.
    F16,
    /// 1 byte per weight and one f32 scale per row.
    Int8,
    /// The variation encoder's matrices int8, every other matrix f16 (the built-in model).
    Mixed,
}

impl PrecisionArg {
    pub(crate) fn precision(self) -> timbreswap_engine::model_file::Precision {
        use timbreswap_engine::model_file::Precision;
        match self {
            PrecisionArg::F32 => Precision::F32,
            PrecisionArg::F16 => Precision::F16,
            PrecisionArg::Int8 => Precision::Int8,
            PrecisionArg::Mixed => Precision::Mixed,
        }
    }
}

/// `--mode` of `render`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModeArg {
    /// Cepstral envelope swap.
    Classic,
    /// The three-factor model.
    Neural,
    /// The reference clip's own partials and noise at the input's pitch.
    Exemplar,
}

/// `--phase` of `render`.
/// Phase modes of `eval-transfer --engine`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum EnginePhaseArg {
    /// Input phase and RTPGHI.
    Both,
    /// Input phase only (the plugin's default).
    Input,
    /// RTPGHI only.
    Reconstruct,
    /// The input reshaped by the decoded timbre difference only.
    Differential,
    /// Input phase and the differential mode.
    InputDifferential,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PhaseArg {
    /// The input's phase.
    Input,
    /// RTPGHI reconstruction.
    Reconstruct,
    /// The input reshaped by the decoded timbre difference.
    Differential,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LatencyArg {
    /// The whole analysis frame (22.7 ms at 48 kHz with 128-sample blocks).
    Normal,
    /// Frames every half hop, each grain over the frame's last hop (9.2 ms at 48 kHz with
    /// blocks of up to 64 samples).
    Low,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SetArg {
    /// Isolated notes.
    Notes,
    /// Monophonic phrases.
    Phrases,
    /// Both (dataset only).
    All,
}

/// Longest input `render` accepts, in seconds (one hour).
pub(crate) const MAX_INPUT_SECONDS: f64 = 3600.0;

#[derive(Parser)]
#[command(
    name = "timbreswap",
    version,
    about = "Timbre transfer: play a performance with the timbre of a reference clip"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Copy a model file with its weight matrices stored narrower (f16 by default: half the
    /// bytes per frame for the engine's f16 kernels, AVX-512F and AVX2+F16C, and half the
    /// file; int8 or mixed fewer). Prints how much a weight moved.
    ConvertModel {
        /// The model file to convert.
        #[arg(long)]
        input: PathBuf,
        /// Where to write the copy.
        #[arg(long)]
        out: PathBuf,
        /// How the copy stores its weight matrices: f16 (2 bytes a weight), int8 (1 byte and
        /// one scale per row), mixed (the variation encoder's int8, the rest f16: how the
        /// built-in model ships) or f32.
        #[arg(long, value_enum, default_value_t = PrecisionArg::F16)]
        to: PrecisionArg,
    },
    /// Render a file through the plugin's engine in offline mode (same code as the plugin).
    Render(RenderArgs),
    /// Render the evaluation protocol's notes and phrases from a SoundFont (skips clips already
    /// rendered; writes DIR/manifest.jsonl).
    Dataset {
        /// SF2 file (another library is the test of generalisation).
        #[arg(long, default_value = DEFAULT_SOUNDFONT)]
        soundfont: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Which set.
        #[arg(long, value_enum, default_value = "all")]
        set: SetArg,
        /// Sample rate, in Hz (the model rate).
        #[arg(long, default_value_t = StftConfig::default().sample_rate)]
        rate: u32,
        /// Seed of the phrase generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Instrument list (TSV: program, name, family, low, high); default: the protocol's.
        #[arg(long)]
        instruments: Option<PathBuf>,
        /// Phrases per instrument.
        #[arg(long, default_value_t = timbreswap_training::dataset::PHRASES_PER_INSTRUMENT)]
        phrases: u32,
        /// The library held out for evaluation (an SF2 file, or `none`): programs of
        /// --soundfont that play any of its samples are left out, so that training data never
        /// holds its sound (the csound GM bank plays many of TimGM6mb's samples). Rendering
        /// the held-out library itself leaves nothing out.
        #[arg(long, default_value = HELD_OUT_SOUNDFONT)]
        held_out: String,
    },
    /// Render the paired swap set: one score played by instrument A (source) and by B
    /// (target), plus another clip of B (reference), from the training libraries, with a
    /// random timbre augmentation shared by target and reference (skips pairs already on disk;
    /// writes DIR/pairs.jsonl).
    Pairs {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Training libraries (fluidr3, csound, opl3), each optionally NAME=PATH; default all
        /// three at their Debian paths. TimGM6mb is held out and refused.
        #[arg(long = "library", value_delimiter = ',', default_values_t = ["fluidr3".to_string(), "csound".to_string(), "opl3".to_string()])]
        libraries: Vec<String>,
        /// Pairs to render.
        #[arg(long, default_value_t = 2000)]
        count: usize,
        /// Sample rate, in Hz (the model rate).
        #[arg(long, default_value_t = StftConfig::default().sample_rate)]
        rate: u32,
        /// Seed of every draw.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Share of pairs (0-1) whose target and reference get one random timbre augmentation.
        #[arg(long, default_value_t = timbreswap_training::data::pairs::DEFAULT_AUGMENT_SHARE)]
        augment: f64,
        /// Share of pairs (0-1) whose source is sung by the formant voice instead of played
        /// (pairs whose register a voice can sing; their library_a is "voice").
        #[arg(long, default_value_t = 0.0)]
        voice_share: f64,
        /// Instrument list (TSV); default: the protocol's, plus voice and lead programs.
        #[arg(long)]
        instruments: Option<PathBuf>,
    },
    /// Train the three-factor model on a rendered dataset and export the best validation epoch
    /// to RUN_DIR/model.safetensors. Writes train.jsonl, loss.png and a checkpoint after every
    /// epoch; --resume continues an interrupted run to the same result.
    Train {
        /// Dataset folder (with manifest.jsonl).
        #[arg(long)]
        data: PathBuf,
        /// Run folder.
        #[arg(long)]
        out: PathBuf,
        /// Training config (JSON, any subset of the fields, the rest at their defaults; see
        /// docs/model.md). Without it: the shipped model's config (assets/models/default-train.json).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Continue from RUN_DIR/checkpoint (only --epochs may differ).
        #[arg(long)]
        resume: bool,
        /// Epochs (overrides the config).
        #[arg(long)]
        epochs: Option<usize>,
        /// Seed (overrides the config).
        #[arg(long)]
        seed: Option<u64>,
        /// Ablation: no random pitch shift of the timbre/variation input.
        #[arg(long)]
        no_pitch_shift: bool,
        /// Ablation: no random timbre distortion of the pitch input.
        #[arg(long)]
        no_timbre_distortion: bool,
        /// Ablation: no cepstral split (every encoder sees the whole log-magnitude).
        #[arg(long)]
        no_cepstrum: bool,
        /// Ablation: no re-entry pass.
        #[arg(long)]
        no_reentry: bool,
        /// Ablation: two factors (no variation latent).
        #[arg(long)]
        no_variation: bool,
    },
    /// Score disentanglement on a rendered dataset: the protocol's k-NN table (DSP split and
    /// chance rows until a model exists), as markdown on stdout and JSON with --json.
    Eval {
        /// Dataset folder (with manifest.jsonl).
        #[arg(long)]
        data: PathBuf,
        /// Which set.
        #[arg(long, value_enum, default_value = "notes")]
        set: SetArg,
        /// Largest number of train frames for the frame-wise k-NN (random subsample).
        #[arg(long, default_value_t = DEFAULT_MAX_TRAIN_FRAMES)]
        max_train_frames: usize,
        /// Seed of the subsampling.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Write the report as JSON here too.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Draw each model's timbre space (PCA of the clip-level z_t, coloured by family,
        /// labelled by instrument) into PNGs named PREFIX-MODEL.png (MODEL: the row name).
        #[arg(long)]
        plot: Option<PathBuf>,
        /// A trained model file to score as a row (repeatable; NAME=FILE names the row).
        #[arg(long = "model")]
        models: Vec<String>,
        /// Leave the DSP-split row out (its figures do not depend on the models; its 257-value
        /// frames are most of the k-NN time).
        #[arg(long)]
        no_dsp_row: bool,
        /// Diagnostic: keep every test frame and clip from the train frames and clips of its own
        /// instrument and note (every velocity of a note plays one SoundFont sample).
        #[arg(long)]
        exclude_same_note: bool,
        /// Diagnostic: add the "sounding F0 only" row, a one-value pitch latent holding the
        /// frame's F0 to a fraction of a cent and nothing else.
        #[arg(long)]
        f0_row: bool,
        /// Cepstral cut-off of the DSP-split row, in quefrency samples: lower quefrencies are
        /// its timbre (envelope), the rest its pitch (fine structure). Default: the engine's.
        /// Model rows analyse with their own settings.
        #[arg(long)]
        cepstral_cutoff: Option<usize>,
        /// Diagnostic (notes set): also split the instrument columns by whether the test
        /// clip has a copy in train (the same instrument and note at another velocity, the same
        /// waveform through a static linear filter to within this many dB, as `timbreswap
        /// copies` counts them).
        #[arg(long, allow_hyphen_values = true)]
        copy_threshold_db: Option<f64>,
        /// Generalisation test: score the test split of this dataset (the same set rendered
        /// from another SoundFont) against the train split of --data.
        #[arg(long)]
        test_data: Option<PathBuf>,
    },
    /// Count the notes set's test clips that have a copy in the train split: the same
    /// instrument and note at another velocity, the same waveform through a static linear
    /// filter (a SoundFont that plays every velocity from one sample renders such copies).
    Copies {
        /// Dataset folder (with manifest.jsonl).
        #[arg(long)]
        data: PathBuf,
        /// Largest residual that still counts as a copy, dB: the share of the test clip's
        /// energy that no linear filter of the train clip explains (1 - coherence).
        #[arg(long, default_value_t = timbreswap_training::copies::DEFAULT_THRESHOLD_DB, allow_hyphen_values = true)]
        threshold_db: f64,
        /// Write the report as JSON here too.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Score timbre transfer on a rendered dataset: the protocol's transfer table (dry, oracle
    /// and classic rows; sources are the test-split phrases), as markdown on stdout and JSON
    /// with --json.
    EvalTransfer(EvalTransferArgs),
    /// Name the instrument of audio files with the transfer table's classifier (k-NN on the
    /// note clips of a rendered dataset), with each file's votes and, with --frames, which
    /// stretch was heard as what: what `eval-transfer` counts, for one output.
    Classify(ClassifyArgs),
    /// Time the k-NN classifier (k = 5) on random data.
    KnnBench {
        /// Training rows.
        #[arg(long, default_value_t = 200_000)]
        train: usize,
        /// Test rows.
        #[arg(long, default_value_t = 20_000)]
        test: usize,
        /// Dimensions.
        #[arg(long, default_value_t = 64)]
        dim: usize,
    },
}

/// The arguments of `timbreswap classify`.
#[derive(Args)]
pub(crate) struct ClassifyArgs {
    /// Dataset folder whose note clips the classifier is fitted on (with manifest.jsonl), as
    /// `eval-transfer --data`.
    #[arg(long)]
    pub(crate) data: PathBuf,
    /// Seed of the fit's frame choice (`eval-transfer --seed`).
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Also print each run of frames with one label, with its times.
    #[arg(long)]
    pub(crate) frames: bool,
    /// Audio files to classify (WAV, AIFF, FLAC, MP3, OGG/Vorbis; mixed to mono at the
    /// dataset's rate).
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
}

/// The arguments of `timbreswap eval-transfer`.
#[derive(Args)]
pub(crate) struct EvalTransferArgs {
    /// Dataset folder (with manifest.jsonl).
    #[arg(long)]
    pub(crate) data: PathBuf,
    /// The SF2 file the dataset was rendered from (the oracle row re-renders with it).
    #[arg(long, default_value = DEFAULT_SOUNDFONT)]
    pub(crate) soundfont: PathBuf,
    /// Most sources (an instrument-balanced subset drawn with --seed); default: all.
    #[arg(long)]
    pub(crate) max_sources: Option<usize>,
    /// Seed of the reference choice and of the subsets.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Seed the dataset's phrases were rendered with (`timbreswap dataset --seed`).
    #[arg(long, default_value_t = timbreswap_training::transfer::DEFAULT_PHRASE_SEED)]
    pub(crate) phrase_seed: u64,
    /// pYIN's search range (cost grows with its square).
    #[arg(long, value_enum, default_value = "instrument")]
    pub(crate) pitch_range: timbreswap_training::transfer::PitchRange,
    /// Sing the sources instead: each test phrase's score sung by a formant voice (vowels,
    /// vibrato, breath), only phrases a voice can sing; references, oracle and classifier
    /// stay the dataset's.
    #[arg(long)]
    pub(crate) voice_sources: bool,
    /// Whistle the sources instead: each test phrase's score whistled an octave up (only
    /// phrases that then lie in B4-B6), and the engine's Exemplar and Neural rows play it back
    /// down with Transpose -12, as a user whistling a line would; references, oracle and
    /// classifier stay the dataset's.
    #[arg(long, conflicts_with = "voice_sources")]
    pub(crate) whistle_sources: bool,
    /// Reverberate each source as a room would, this many seconds to -60 dB (a quarter of the
    /// signal wet), before any row hears it; references and oracle stay clean.
    #[arg(long)]
    pub(crate) source_reverb: Option<f64>,
    /// Add pink noise (room tone) to each source, this many dB under its level, before any
    /// row hears it.
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) source_noise: Option<f64>,
    /// Reverberate each reference clip as a room would (as --source-reverb) before any row
    /// analyses it; sources and oracle stay as they are.
    #[arg(long)]
    pub(crate) reference_reverb: Option<f64>,
    /// Add pink noise to each reference clip, this many dB under its level.
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) reference_noise: Option<f64>,
    /// Play a phrase of the reference's instrument as the reference (several notes, as a
    /// user would drag) instead of one note; the same sources, B and oracle.
    #[arg(long)]
    pub(crate) phrase_references: bool,
    /// Play a note of the source's own instrument as the reference (the test-split note
    /// nearest the phrase's median note): B is A and the oracle is the source itself, so
    /// "classified as B" is what the swap keeps of an instrument when nothing has to change
    #[arg(long, conflicts_with = "phrase_references")]
    pub(crate) same_instrument_references: bool,
    /// Write every pair's audio into this folder (created if missing), to listen to: the
    /// source, the reference and each row's output as 32-bit float WAV files named
    /// SOURCE__REFERENCE__ROW.wav
    #[arg(long)]
    pub(crate) write_audio: Option<PathBuf>,
    /// Write the report as JSON here too.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// A trained model file to score as an offline neural-swap row (repeatable; NAME=FILE
    /// names the row).
    #[arg(long = "model")]
    pub(crate) models: Vec<String>,
    /// For each --model also score the plugin engine's streaming neural mode (rows
    /// `NAME engine/reconstruct` and `NAME engine/input`).
    #[arg(long)]
    pub(crate) engine: bool,
    /// Which phase modes the --engine rows run (input is the plugin's default).
    #[arg(long, value_enum, default_value = "both")]
    pub(crate) engine_phase: EnginePhaseArg,
    /// Skip the offline (candle) neural-swap row of each --model (with --engine, only the
    /// engine's rows are scored).
    #[arg(long)]
    pub(crate) no_offline: bool,
    /// Variation amounts the --engine rows run at (comma-separated; 1 is the plugin's
    /// default; rows other than 1 are named `... v<amount>`).
    #[arg(long, value_delimiter = ',', default_values_t = [1.0f32])]
    pub(crate) engine_variation: Vec<f32>,
    /// Also score each --engine model with the source's own z_t (rows `... self`): the
    /// model's reconstruction, which the classifier should call A; it tells a timbre the
    /// decoder cannot draw from one the swap does not reach.
    #[arg(long)]
    pub(crate) engine_self: bool,
    /// Also score each --engine model with the reference's z_t fitted to the reference
    /// by this many Adam steps on the decoder's error (rows `... fitN`; a diagnostic of
    /// latent optimisation, after LORD; 0: none).
    #[arg(long, default_value_t = 0)]
    pub(crate) engine_fit_steps: usize,
    /// Learning rate of --engine-fit-steps.
    #[arg(long, default_value_t = 0.05)]
    pub(crate) engine_fit_lr: f64,
    /// Weight of the standard normal prior on the fitted z_t (--engine-fit-steps).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) engine_fit_prior: f64,
    /// Also score the exemplar swap: the engine's Exemplar mode (row `engine exemplar`)
    /// and, for each --model, the variants experiments/quality-log.md reports (rows `NAME
    /// exemplar/...`, "Exemplar swap").
    #[arg(long)]
    pub(crate) exemplar: bool,
    /// With --exemplar: only these variants (e.g. `yin,harmonic`; `none`: only the engine
    /// row; default: all).
    #[arg(long, value_delimiter = ',')]
    pub(crate) exemplar_rows: Vec<String>,
    /// Also score every engine row (classic, --engine, --exemplar's engine row) with the
    /// engine built for low latency (rows `... low-latency`).
    #[arg(long)]
    pub(crate) low_latency: bool,
}

/// The arguments of `timbreswap render`.
#[derive(Args)]
pub(crate) struct RenderArgs {
    /// The performance to transform (WAV, AIFF, FLAC, MP3, OGG/Vorbis).
    #[arg(long)]
    pub(crate) input: PathBuf,
    /// Reference clip whose timbre to use (slot A).
    #[arg(long)]
    pub(crate) timbre: PathBuf,
    /// Second reference clip (slot B), blended by --morph.
    #[arg(long)]
    pub(crate) timbre_b: Option<PathBuf>,
    /// Morph A -> B, 0..1.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) morph: f32,
    /// Wet share, 0..1 (0 = the input, 1 = fully swapped).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) mix: f32,
    /// Output gain, in dB.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) output_db: f32,
    /// Processing block size, in samples (the result does not depend on it).
    #[arg(long, default_value_t = 512)]
    pub(crate) block: usize,
    /// Classic (cepstral envelope swap), neural (the three-factor model) or exemplar (the
    /// reference clip's own partials and noise at the input's pitch).
    #[arg(long, value_enum, default_value_t = ModeArg::Classic)]
    pub(crate) mode: ModeArg,
    /// Neural model file (default: the built-in model, assets/models/default.safetensors).
    #[arg(long)]
    pub(crate) model: Option<PathBuf>,
    /// Neural: expression kept, 0..2 (1 = as played).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) variation: f32,
    /// Transposition, semitones (-12..12). Exemplar: the output plays this far above the
    /// input's pitch. Neural: the pitch the model hears (with `--phase input` the sounding
    /// pitch stays the input's).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub(crate) transpose: f32,
    /// Neural: output phase.
    #[arg(long, value_enum, default_value_t = PhaseArg::Input)]
    pub(crate) phase: PhaseArg,
    /// Exemplar: share of a struck reference's note decay the output takes, 0..1 (the
    /// plugin's Decay; 0 keeps the input's level).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) decay: f32,
    /// The latency the engine is built for (the plugin's Latency setting).
    #[arg(long, value_enum, default_value_t = LatencyArg::Normal)]
    pub(crate) latency: LatencyArg,
    /// Output WAV file (32-bit float, same rate and channels as the input).
    #[arg(long)]
    pub(crate) out: PathBuf,
}
