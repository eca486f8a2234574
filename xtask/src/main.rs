//! Timbreswap's project tasks, run as `cargo xtask <command>`.
//!
//! - `bundle` (and every command not listed below) is nice-plug-xtask's: it builds and bundles
//!   the plugin, e.g. `cargo xtask bundle timbreswap --release`.
//! - `examples` renders the example clips in `assets/examples/` from a General MIDI SoundFont.
//! - `demo` bundles the plugin, loads it in a CLAP host and runs every example input through it
//!   with every example reference, in Classic and in Neural mode, writing the results to
//!   `target/demo/`.
//! - `test` bundles the plugin and runs the workspace tests (which load the bundle).

use std::env;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};

/// Name the usage text and nice-plug-xtask's messages give this tool.
const COMMAND_NAME: &str = "cargo xtask";

/// Cargo package of the plugin.
const PLUGIN_PACKAGE: &str = "timbreswap";

/// Bundle name of the plugin (from `bundler.toml`), which names the files in `target/bundled/`.
const PLUGIN_BUNDLE_NAME: &str = "Timbreswap";

/// Folder of the example clips, relative to the workspace root.
const EXAMPLES_DIR: &str = "assets/examples";

fn main() -> ExitCode {
    match run(env::args().skip(1).collect()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Dispatches on the first argument; anything that is not one of ours goes to nice-plug-xtask.
fn run(args: Vec<String>) -> Result<ExitCode> {
    let Some(command) = args.first() else {
        print_usage();
        return Ok(ExitCode::FAILURE);
    };
    let rest = &args[1..];
    match command.as_str() {
        "examples" => examples::run(rest).map(|()| ExitCode::SUCCESS),
        "demo" => demo::run(rest).map(|()| ExitCode::SUCCESS),
        "test" => run_tests(rest),
        "default-model" => default_model(rest).map(|()| ExitCode::SUCCESS),
        "help" | "-h" | "--help" => {
            print_usage();
            Ok(ExitCode::SUCCESS)
        }
        _ => nice_plug_xtask::main_with_args(COMMAND_NAME, args).map(|()| ExitCode::SUCCESS),
    }
}

/// Prints the commands this tool adds on top of nice-plug-xtask's.
fn print_usage() {
    println!(
        "Usage:
  {COMMAND_NAME} bundle {PLUGIN_PACKAGE} [--release]
      build and bundle the plugin into target/bundled/ (nice-plug-xtask; so is every
      command not listed here)
  {COMMAND_NAME} examples [--soundfont PATH]
      render the example clips into {EXAMPLES_DIR}/ from a General MIDI SoundFont
  {COMMAND_NAME} demo
      bundle the plugin and run every example input through it with every example
      reference, into target/demo/
  {COMMAND_NAME} test [ARGS...]
      install what the tests need (.ci/deps.sh: as root, only what is missing), bundle the
      plugin, then run `cargo test --workspace --release [ARGS...]`
  {COMMAND_NAME} default-model [--data DIR] [--run DIR]
      render the FluidR3 dataset (skips clips already there; default data/fluidr3), train
      the default model with {DEFAULT_MODEL_CONFIG} and --resume (re-run to continue
      after an interruption; default runs/default), and write its f16 conversion to
      {DEFAULT_MODEL}"
    );
}

/// The shipped model, relative to the workspace root.
const DEFAULT_MODEL: &str = "assets/models/default.safetensors";

/// The training config of the shipped model (`timbreswap train --config`), relative to the
/// workspace root.
const DEFAULT_MODEL_CONFIG: &str = "assets/models/default-train.json";

/// `cargo xtask default-model`: dataset, training (resumable) and the f16 conversion into
/// `assets/`.
fn default_model(args: &[String]) -> Result<()> {
    let mut data = std::path::PathBuf::from("data/fluidr3");
    let mut run = std::path::PathBuf::from("runs/default");
    for pair in args.chunks(2) {
        let value = pair
            .get(1)
            .with_context(|| format!("{} needs a folder", pair[0]))?;
        match pair[0].as_str() {
            "--data" => data = value.into(),
            "--run" => run = value.into(),
            other => anyhow::bail!("unknown argument {other} (expected --data DIR or --run DIR)"),
        }
    }
    let timbreswap = |args: &[&std::ffi::OsStr]| -> Result<()> {
        let status = Command::new(cargo_program())
            .args([
                "run",
                "--release",
                "-p",
                "timbreswap-training",
                "--bin",
                "timbreswap",
                "--",
            ])
            .args(args)
            .status()
            .context("could not run cargo")?;
        anyhow::ensure!(status.success(), "timbreswap {:?} failed", args);
        Ok(())
    };
    timbreswap(&["dataset".as_ref(), "--out".as_ref(), data.as_os_str()])?;
    timbreswap(&[
        "train".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
        "--out".as_ref(),
        run.as_os_str(),
        "--config".as_ref(),
        DEFAULT_MODEL_CONFIG.as_ref(),
        "--resume".as_ref(),
    ])?;
    std::fs::create_dir_all("assets/models").context("creating assets/models")?;
    // The shipped file stores its weight matrices as f16 (half the bytes per network step;
    // the transfer and disentanglement tables are the f32 export's, docs/quality.md).
    timbreswap(&[
        "convert-model".as_ref(),
        "--input".as_ref(),
        run.join("model.safetensors").as_os_str(),
        "--out".as_ref(),
        DEFAULT_MODEL.as_ref(),
    ])?;
    println!("{DEFAULT_MODEL} updated; record the run in assets/models/default.md");
    Ok(())
}

/// Builds and bundles the plugin in release mode, as `cargo xtask bundle timbreswap --release`
/// does. Leaves the current directory at the workspace root.
fn bundle_plugin() -> Result<()> {
    let args = ["bundle", PLUGIN_PACKAGE, "--release"].map(String::from);
    nice_plug_xtask::main_with_args(COMMAND_NAME, args)
        .with_context(|| format!("could not bundle the `{PLUGIN_PACKAGE}` plugin"))
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` if set, otherwise `target` (relative to the
/// workspace root, which must be the current directory).
fn target_dir() -> std::path::PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(Into::into)
        .unwrap_or_else(|| "target".into())
}

/// The program to run cargo with: `$CARGO` (set when running under cargo) or `cargo`.
fn cargo_program() -> std::ffi::OsString {
    env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// `cargo xtask test`: installs what the tests need (`.ci/deps.sh`), bundles the plugin, then
/// runs `cargo test --workspace --release` with the
/// extra arguments, inheriting stdio, and exits with its status.
fn run_tests(extra_args: &[String]) -> Result<ExitCode> {
    // What the tests need beyond Rust: installed where missing when run as root, otherwise
    // the script names the one command that installs it and the tests do not start.
    let deps = Command::new("bash")
        .arg(".ci/deps.sh")
        .status()
        .context("could not run `bash .ci/deps.sh`")?;
    if !deps.success() {
        anyhow::bail!("the tests need the packages listed above");
    }
    bundle_plugin()?;
    let status = Command::new(cargo_program())
        .args(["test", "--workspace", "--release"])
        .args(extra_args)
        .status()
        .context("could not run `cargo test`")?;
    let code = status.code().unwrap_or(1);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Formats a level in dBFS with one decimal, or `-inf` for silence.
fn format_db(db: f64) -> String {
    if db.is_finite() {
        format!("{db:.1} dBFS")
    } else {
        "-inf dBFS".to_owned()
    }
}

/// `cargo xtask examples`: the example clips, synthesised with rustysynth from a GM SoundFont.
mod examples {
    use std::fs::{self, File};
    use std::io::BufReader;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use anyhow::{bail, ensure, Context, Result};
    use rustysynth::{SoundFont, Synthesizer, SynthesizerSettings};

    use super::EXAMPLES_DIR;

    /// SoundFonts tried, in order, when `--soundfont` is not given (Debian package locations).
    const DEFAULT_SOUNDFONTS: [&str; 2] = [
        "/usr/share/sounds/sf2/FluidR3_GM.sf2",
        "/usr/share/sounds/sf2/TimGM6mb.sf2",
    ];

    /// Sample rate of the example files, in Hz.
    const SAMPLE_RATE: u32 = 32_000;

    /// Peak level the clips are normalised to, in dBFS.
    const PEAK_DBFS: f64 = -3.0;

    /// Fade-out at the very end of every clip, in seconds (cuts any release tail cleanly).
    const FADE_OUT_S: f64 = 0.02;

    /// Upper bound on the combined size of the example files, in bytes.
    const MAX_TOTAL_BYTES: u64 = 2_000_000;

    /// Pitch-bend range of the synthesiser channel, in semitones (set through RPN 0).
    const BEND_RANGE_SEMITONES: i32 = 2;

    /// Interval between two pitch-bend messages of a vibrato, in seconds.
    const VIBRATO_STEP_S: f64 = 0.005;

    /// Vibrato rate, in Hz.
    const VIBRATO_RATE_HZ: f64 = 5.5;

    /// Vibrato depth (peak deviation), in semitones.
    const VIBRATO_DEPTH_SEMITONES: f64 = 0.3;

    /// Part of the vibrato note, from its start, that is played straight.
    const VIBRATO_DELAY: f64 = 0.25;

    /// Time the vibrato takes to reach its full depth, in seconds.
    const VIBRATO_FADE_IN_S: f64 = 0.3;

    /// Interval between two expression (CC 11) messages of a swell, in seconds.
    const SWELL_STEP_S: f64 = 0.01;

    /// Expression value a swell starts from.
    const SWELL_FROM: i32 = 35;

    /// Part of the swell note, from its start, over which the expression rises to 127.
    const SWELL_SPAN: f64 = 0.75;

    /// MIDI channel everything is played on.
    const CHANNEL: i32 = 0;

    /// One note: key, velocity, start and end times in seconds.
    #[derive(Debug, Clone, Copy)]
    struct Note {
        key: i32,
        velocity: i32,
        start: f64,
        end: f64,
    }

    /// Shorthand constructor for the note tables below.
    const fn note(key: i32, velocity: i32, start: f64, end: f64) -> Note {
        Note {
            key,
            velocity,
            start,
            end,
        }
    }

    /// One example clip: an instrument playing a phrase.
    #[derive(Debug)]
    struct Clip {
        /// File name inside [`EXAMPLES_DIR`].
        file: &'static str,
        /// General MIDI program (0-based).
        program: i32,
        /// Length of the file, in seconds.
        duration_s: f64,
        /// The phrase, monophonic. A note starting where the previous one ends is legato.
        notes: &'static [Note],
        /// Index of the note that gets a pitch-bend vibrato.
        vibrato_note: Option<usize>,
        /// Index of the note that gets an expression (CC 11) swell.
        swell_note: Option<usize>,
    }

    /// The example clips: three melodic inputs and four references.
    const CLIPS: [Clip; 7] = [
        Clip {
            file: "input-flute.wav",
            program: 73,
            duration_s: 4.0,
            notes: &[
                note(72, 92, 0.05, 0.95),
                note(74, 96, 0.95, 1.35),
                note(76, 100, 1.35, 1.75),
                note(79, 104, 1.75, 2.15),
                note(77, 90, 2.3, 2.6),
                note(76, 96, 2.6, 3.7),
            ],
            vibrato_note: Some(5),
            swell_note: Some(0),
        },
        Clip {
            file: "input-voice.wav",
            program: 53,
            duration_s: 4.0,
            notes: &[
                note(57, 90, 0.05, 0.95),
                note(60, 96, 0.95, 1.45),
                note(59, 92, 1.45, 1.85),
                note(62, 100, 1.85, 2.3),
                note(64, 104, 2.45, 3.7),
            ],
            vibrato_note: Some(4),
            swell_note: Some(0),
        },
        Clip {
            file: "input-synth-lead.wav",
            program: 81,
            duration_s: 4.0,
            notes: &[
                note(64, 100, 0.05, 0.45),
                note(67, 96, 0.45, 0.85),
                note(69, 92, 0.85, 1.75),
                note(71, 104, 1.75, 2.15),
                note(69, 96, 2.3, 2.6),
                note(67, 100, 2.6, 3.7),
            ],
            vibrato_note: Some(5),
            swell_note: Some(2),
        },
        Clip {
            file: "ref-trumpet.wav",
            program: 56,
            duration_s: 2.0,
            notes: &[note(67, 100, 0.02, 1.8)],
            vibrato_note: None,
            swell_note: None,
        },
        Clip {
            file: "ref-cello.wav",
            program: 42,
            duration_s: 2.0,
            notes: &[note(50, 100, 0.02, 1.8)],
            vibrato_note: None,
            swell_note: None,
        },
        Clip {
            file: "ref-clarinet.wav",
            program: 71,
            duration_s: 2.0,
            notes: &[note(62, 100, 0.02, 1.8)],
            vibrato_note: None,
            swell_note: None,
        },
        Clip {
            file: "ref-violin.wav",
            program: 40,
            duration_s: 2.0,
            notes: &[note(69, 100, 0.02, 1.8)],
            vibrato_note: None,
            swell_note: None,
        },
    ];

    /// A channel message for the synthesiser, at a time in samples.
    #[derive(Debug, Clone, Copy)]
    struct Event {
        at: usize,
        command: i32,
        data1: i32,
        data2: i32,
    }

    impl Event {
        /// An event at `seconds`.
        fn new(seconds: f64, command: i32, data1: i32, data2: i32) -> Self {
            Self {
                at: seconds_to_samples(seconds),
                command,
                data1,
                data2,
            }
        }

        /// A control change (status 0xB0).
        fn control(seconds: f64, controller: i32, value: i32) -> Self {
            Self::new(seconds, 0xB0, controller, value)
        }

        /// A 14-bit pitch bend (status 0xE0), `value` in `0..16384` with 8192 centred.
        fn pitch_bend(seconds: f64, value: i32) -> Self {
            let value = value.clamp(0, 16383);
            Self::new(seconds, 0xE0, value & 0x7F, value >> 7)
        }
    }

    /// `cargo xtask examples [--soundfont PATH]`.
    pub fn run(args: &[String]) -> Result<()> {
        let requested = parse_soundfont_arg(args)?;
        nice_plug_xtask::chdir_workspace_root()?;
        let path = find_soundfont(requested)?;
        let sound_font = load_soundfont(&path)?;
        println!("SoundFont: {}", path.display());
        warn_missing_presets(&sound_font);

        let dir = Path::new(EXAMPLES_DIR);
        fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
        let mut total_bytes = 0;
        for clip in &CLIPS {
            let samples = render_clip(&sound_font, clip)?;
            let path = dir.join(clip.file);
            write_pcm16(&path, &samples)?;
            let bytes = fs::metadata(&path)
                .with_context(|| format!("could not read the size of {}", path.display()))?
                .len();
            total_bytes += bytes;
            let seconds = samples.len() as f64 / f64::from(SAMPLE_RATE);
            println!("wrote {} ({seconds:.2} s, {bytes} bytes)", path.display());
        }
        println!("{} files, {total_bytes} bytes in all", CLIPS.len());
        ensure!(
            total_bytes <= MAX_TOTAL_BYTES,
            "the example files take {total_bytes} bytes, over the {MAX_TOTAL_BYTES}-byte budget"
        );
        Ok(())
    }

    /// Parses `[--soundfont PATH | --soundfont=PATH]`.
    fn parse_soundfont_arg(args: &[String]) -> Result<Option<PathBuf>> {
        let mut soundfont = None;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let value = if arg == "--soundfont" {
                args.next().context("`--soundfont` needs a path")?.clone()
            } else if let Some(value) = arg.strip_prefix("--soundfont=") {
                value.to_owned()
            } else {
                bail!("unknown argument `{arg}` (usage: cargo xtask examples [--soundfont PATH])");
            };
            soundfont = Some(PathBuf::from(value));
        }
        Ok(soundfont)
    }

    /// The SoundFont to use: the requested one (which must exist) or the first default found.
    fn find_soundfont(requested: Option<PathBuf>) -> Result<PathBuf> {
        if let Some(path) = requested {
            ensure!(
                path.is_file(),
                "SoundFont {} does not exist",
                path.display()
            );
            return Ok(path);
        }
        DEFAULT_SOUNDFONTS
            .iter()
            .map(PathBuf::from)
            .find(|path| path.is_file())
            .with_context(|| {
                format!(
                    "no General MIDI SoundFont found (looked for {}); install one with \
                     `apt-get install fluid-soundfont-gm` (or `timgm6mb-soundfont`), or pass \
                     `--soundfont PATH`",
                    DEFAULT_SOUNDFONTS.join(" and ")
                )
            })
    }

    /// Reads and parses a SoundFont file.
    fn load_soundfont(path: &Path) -> Result<Arc<SoundFont>> {
        let file =
            File::open(path).with_context(|| format!("could not open {}", path.display()))?;
        let sound_font = SoundFont::new(&mut BufReader::new(file))
            .map_err(|error| anyhow::anyhow!("{error:?}"))
            .with_context(|| format!("could not parse SoundFont {}", path.display()))?;
        Ok(Arc::new(sound_font))
    }

    /// Warns about GM programs the clips use that the SoundFont lacks in bank 0 (rustysynth
    /// would silently fall back to its default preset).
    fn warn_missing_presets(sound_font: &SoundFont) {
        for clip in &CLIPS {
            let present = sound_font
                .get_presets()
                .iter()
                .any(|p| p.get_bank_number() == 0 && p.get_patch_number() == clip.program);
            if !present {
                eprintln!(
                    "warning: the SoundFont has no bank-0 preset for GM program {} ({})",
                    clip.program, clip.file
                );
            }
        }
    }

    /// Converts seconds to a sample index at [`SAMPLE_RATE`].
    fn seconds_to_samples(seconds: f64) -> usize {
        (seconds * f64::from(SAMPLE_RATE)).round().max(0.0) as usize
    }

    /// Renders `clip` to mono samples normalised to [`PEAK_DBFS`].
    fn render_clip(sound_font: &Arc<SoundFont>, clip: &Clip) -> Result<Vec<f32>> {
        let mut settings = SynthesizerSettings::new(SAMPLE_RATE as i32);
        settings.enable_reverb_and_chorus = false;
        let mut synth = Synthesizer::new(sound_font, &settings)
            .map_err(|error| anyhow::anyhow!("{error:?}"))
            .with_context(|| format!("could not create a synthesiser for {}", clip.file))?;

        let mut events = setup_events(clip.program);
        for (index, note) in clip.notes.iter().enumerate() {
            if clip.swell_note == Some(index) {
                events.extend(swell_events(note));
            }
            events.push(Event::new(note.start, 0x90, note.key, note.velocity));
            events.push(Event::new(note.end, 0x80, note.key, 0));
            if clip.vibrato_note == Some(index) {
                events.extend(vibrato_events(note));
            }
        }
        // Stable: simultaneous events keep their order (a note ends before the next starts).
        events.sort_by_key(|event| event.at);

        let mut samples = play(&mut synth, &events, seconds_to_samples(clip.duration_s));
        fade_out(&mut samples);
        normalise(&mut samples).with_context(|| format!("{} rendered silent", clip.file))?;
        Ok(samples)
    }

    /// Program change and a dry, centred, bend-range-defined channel.
    fn setup_events(program: i32) -> Vec<Event> {
        vec![
            Event::new(0.0, 0xC0, program, 0),
            Event::control(0.0, 7, 100),  // volume
            Event::control(0.0, 10, 64),  // pan: centre
            Event::control(0.0, 11, 127), // expression
            Event::control(0.0, 91, 0),   // reverb send
            Event::control(0.0, 93, 0),   // chorus send
            Event::control(0.0, 101, 0),  // RPN 0: pitch-bend range…
            Event::control(0.0, 100, 0),
            Event::control(0.0, 6, BEND_RANGE_SEMITONES), // …in semitones
            Event::control(0.0, 38, 0),
            Event::control(0.0, 101, 127), // RPN null
            Event::control(0.0, 100, 127),
            Event::pitch_bend(0.0, 8192),
        ]
    }

    /// Expression rising from [`SWELL_FROM`] to 127 over the first [`SWELL_SPAN`] of `note`
    /// (the first message comes before the note starts).
    fn swell_events(note: &Note) -> Vec<Event> {
        let span = (note.end - note.start) * SWELL_SPAN;
        let steps = (span / SWELL_STEP_S).ceil().max(1.0) as usize;
        (0..=steps)
            .map(|step| {
                let fraction = step as f64 / steps as f64;
                let value = f64::from(SWELL_FROM) + fraction * f64::from(127 - SWELL_FROM);
                Event::control(note.start + fraction * span, 11, value.round() as i32)
            })
            .collect()
    }

    /// A sine vibrato through pitch bend over the end of `note`, fading in, then the bend
    /// re-centred when the note ends.
    fn vibrato_events(note: &Note) -> Vec<Event> {
        let start = note.start + (note.end - note.start) * VIBRATO_DELAY;
        let steps = ((note.end - start) / VIBRATO_STEP_S).floor() as usize;
        let depth = VIBRATO_DEPTH_SEMITONES / f64::from(BEND_RANGE_SEMITONES) * 8192.0;
        let mut events: Vec<Event> = (0..steps)
            .map(|step| {
                let t = step as f64 * VIBRATO_STEP_S;
                let fade = (t / VIBRATO_FADE_IN_S).min(1.0);
                let phase = std::f64::consts::TAU * VIBRATO_RATE_HZ * t;
                let bend = 8192.0 + depth * fade * phase.sin();
                Event::pitch_bend(start + t, bend.round() as i32)
            })
            .collect();
        events.push(Event::pitch_bend(note.end, 8192));
        events
    }

    /// Renders `length` samples, applying `events` (sorted by time) on the way, and returns the
    /// mono mix-down.
    fn play(synth: &mut Synthesizer, events: &[Event], length: usize) -> Vec<f32> {
        let mut left = vec![0.0; length];
        let mut right = vec![0.0; length];
        let mut position = 0;
        for event in events {
            let at = event.at.min(length);
            if at > position {
                synth.render(&mut left[position..at], &mut right[position..at]);
                position = at;
            }
            synth.process_midi_message(CHANNEL, event.command, event.data1, event.data2);
        }
        if position < length {
            synth.render(&mut left[position..], &mut right[position..]);
        }
        left.iter()
            .zip(&right)
            .map(|(l, r)| 0.5 * (l + r))
            .collect()
    }

    /// Linear fade to zero over the last [`FADE_OUT_S`].
    fn fade_out(samples: &mut [f32]) {
        let fade = seconds_to_samples(FADE_OUT_S).min(samples.len());
        let start = samples.len() - fade;
        for (i, sample) in samples[start..].iter_mut().enumerate() {
            *sample *= 1.0 - (i + 1) as f32 / fade as f32;
        }
    }

    /// Scales `samples` so that their peak is at [`PEAK_DBFS`]; fails if they are silent.
    fn normalise(samples: &mut [f32]) -> Result<()> {
        let peak = samples.iter().fold(0.0f32, |peak, s| peak.max(s.abs()));
        ensure!(peak > 1e-6 && peak.is_finite(), "peak level {peak}");
        let gain = (10f64.powf(PEAK_DBFS / 20.0) / f64::from(peak)) as f32;
        samples.iter_mut().for_each(|sample| *sample *= gain);
        Ok(())
    }

    /// Writes `samples` as a mono 16-bit PCM WAV file at [`SAMPLE_RATE`].
    fn write_pcm16(path: &Path, samples: &[f32]) -> Result<()> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let write = || -> hound::Result<()> {
            let mut writer = hound::WavWriter::create(path, spec)?;
            for &sample in samples {
                let value = (sample * f32::from(i16::MAX)).round();
                writer.write_sample(value.clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16)?;
            }
            writer.finalize()
        };
        write().with_context(|| format!("could not write {}", path.display()))
    }
}

/// `cargo xtask demo`: the example clips through the bundled plugin.
mod demo {
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::time::Instant;

    use anyhow::{bail, ensure, Context, Result};
    use timbreswap_engine::clip::{self, DecodedAudio, MAX_CLIP_SECONDS};
    use timbreswap_engine::kernels::Kernels;
    use timbreswap_engine::model_file;
    use timbreswap_engine::network::Network;
    use timbreswap_engine::render::write_wav;
    use timbreswap_engine::timbre::TimbreLatent;
    use timbreswap_engine::{Slot, StftConfig, TimbreDescriptor};
    use timbreswap_tests::host::PluginHost;
    use timbreswap_tests::state::with_timbre;

    use super::{format_db, target_dir, EXAMPLES_DIR, PLUGIN_BUNDLE_NAME};

    /// Block size the plugin is activated with and driven in, in samples.
    const BLOCK: usize = 512;

    /// Largest accepted difference between output and input RMS levels, in dB.
    const MAX_LEVEL_DIFFERENCE_DB: f64 = 6.0;

    /// The plugin's modes: file-name suffix and normalised value of the Mode parameter. (In
    /// offline mode the plugin analyses an Exemplar clip while it activates, so every render
    /// plays its mode from the first sample.)
    const MODES: [(&str, f64); 3] = [("classic", 0.0), ("neural", 0.5), ("exemplar", 1.0)];

    /// The built-in model (the file the plugin embeds), for measuring the references' latents.
    const DEFAULT_MODEL: &str = "assets/models/default.safetensors";

    /// A reference clip and its analysed timbre.
    struct Reference {
        stem: String,
        descriptor: TimbreDescriptor,
    }

    /// What one render measured.
    struct Report {
        output: PathBuf,
        latency: u32,
        real_time_factor: f64,
        input_db: f64,
        output_db: f64,
        non_finite: usize,
    }

    impl Report {
        /// Output minus input RMS level, in dB.
        fn difference_db(&self) -> f64 {
            self.output_db - self.input_db
        }

        /// What is wrong with this render, if anything.
        fn problem(&self) -> Option<String> {
            let output = self.output.display();
            if self.non_finite > 0 {
                Some(format!("{output}: {} non-finite samples", self.non_finite))
            } else if level_mismatch(self.difference_db()) {
                Some(format!(
                    "{output}: not level-matched (output {} vs input {}, more than {MAX_LEVEL_DIFFERENCE_DB} dB apart)",
                    format_db(self.output_db),
                    format_db(self.input_db)
                ))
            } else {
                None
            }
        }

        /// One line for the console.
        fn print(&self, sample_rate: u32) {
            let latency_ms = f64::from(self.latency) * 1000.0 / f64::from(sample_rate);
            println!(
                "{}: latency {} samples ({latency_ms:.1} ms), real-time factor {:.4}, input {}, output {} ({:+.1} dB)",
                self.output.display(),
                self.latency,
                self.real_time_factor,
                format_db(self.input_db),
                format_db(self.output_db),
                self.difference_db()
            );
        }
    }

    /// `cargo xtask demo`.
    pub fn run(args: &[String]) -> Result<()> {
        if let Some(arg) = args.first() {
            bail!("unknown argument `{arg}` (usage: cargo xtask demo)");
        }
        super::bundle_plugin()?;
        let bundle = target_dir()
            .join("bundled")
            .join(format!("{PLUGIN_BUNDLE_NAME}.clap"));
        ensure!(bundle.exists(), "{} was not bundled", bundle.display());

        let inputs = example_files("input-")?;
        let file = model_file::load(Path::new(DEFAULT_MODEL))
            .with_context(|| format!("could not load {DEFAULT_MODEL}"))?;
        let net = Network::new(&file, "default", Kernels::best())?;
        let references = example_files("ref-")?
            .iter()
            .map(|path| analyse_reference(path, &net))
            .collect::<Result<Vec<_>>>()?;
        let out_dir = target_dir().join("demo");
        fs::create_dir_all(&out_dir)
            .with_context(|| format!("could not create {}", out_dir.display()))?;

        let mut reports = Vec::new();
        for input_path in &inputs {
            let input = clip::decode_file(input_path, MAX_CLIP_SECONDS)
                .with_context(|| format!("could not decode {}", input_path.display()))?;
            let stem = file_stem(input_path);
            for reference in &references {
                for (mode, value) in MODES {
                    let output = out_dir.join(format!("{stem}__{}__{mode}.wav", reference.stem));
                    let report = render(&bundle, &input, reference, value, output)?;
                    report.print(input.sample_rate);
                    reports.push(report);
                }
            }
        }
        for (mode, _) in MODES {
            let suffix = format!("__{mode}.wav");
            let subset: Vec<&Report> = reports
                .iter()
                .filter(|r| r.output.to_string_lossy().ends_with(&suffix))
                .collect();
            let mut factors: Vec<f64> = subset.iter().map(|r| r.real_time_factor).collect();
            println!(
                "{mode}: {} renders, median real-time factor {:.4}",
                subset.len(),
                median(&mut factors)
            );
        }
        summarise(&reports)
    }

    /// The `.wav` files in [`EXAMPLES_DIR`] whose names start with `prefix`, sorted.
    fn example_files(prefix: &str) -> Result<Vec<PathBuf>> {
        let dir = Path::new(EXAMPLES_DIR);
        let entries = fs::read_dir(dir).with_context(|| {
            format!(
                "could not read {} (run `cargo xtask examples` first)",
                dir.display()
            )
        })?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry
                .with_context(|| format!("could not list {}", dir.display()))?
                .path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with(prefix) && name.ends_with(".wav") {
                files.push(path);
            }
        }
        ensure!(
            !files.is_empty(),
            "no {prefix}*.wav files in {} (run `cargo xtask examples` first)",
            dir.display()
        );
        files.sort();
        Ok(files)
    }

    /// A file's name without its extension.
    fn file_stem(path: &Path) -> String {
        path.file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Analyses a reference clip as the plugin's loader would: the classic descriptor and the
    /// timbre latent measured with the built-in model.
    fn analyse_reference(path: &Path, net: &Network) -> Result<Reference> {
        let reference = clip::load_reference_clip(path, &StftConfig::default())
            .with_context(|| format!("could not analyse reference {}", path.display()))?;
        let mut descriptor = reference.descriptor;
        descriptor.latent = Some(TimbreLatent {
            model_id: net.id().to_string(),
            z_t: net.clip_timbre(&reference.samples),
        });
        Ok(Reference {
            stem: file_stem(path),
            descriptor,
        })
    }

    /// Runs `input` through a fresh plugin instance with `reference` as timbre A, writes the
    /// result to `output` and measures it.
    fn render(
        bundle: &Path,
        input: &DecodedAudio,
        reference: &Reference,
        mode: f64,
        output: PathBuf,
    ) -> Result<Report> {
        let mut host = PluginHost::load(bundle, None)
            .with_context(|| format!("could not load {}", bundle.display()))?;
        set_timbre_a(&mut host, &reference.descriptor)?;
        let mode_id = host
            .param_id("Mode")
            .context("the plugin has no Mode parameter")?;
        host.set_param_normalised(mode_id, mode)
            .context("could not set the Mode parameter")?;
        host.set_offline(true)
            .context("could not switch the plugin to offline rendering")?;
        host.activate(f64::from(input.sample_rate), BLOCK as u32)
            .context("could not activate the plugin")?;
        let latency = host.latency().context("could not query the latency")?;
        let channels = host.input_channels().context("the plugin is not active")?;

        let mono = input.mono();
        let signal = padded_input(&mono, channels, latency as usize);
        let started = Instant::now();
        let mut rendered = host
            .process_signal(&signal, &[BLOCK])
            .context("the plugin failed to process")?;
        let elapsed = started.elapsed().as_secs_f64();
        for channel in &mut rendered {
            channel.drain(..(latency as usize).min(channel.len()));
        }

        let audio = DecodedAudio {
            sample_rate: input.sample_rate,
            channels: rendered,
            truncated: false,
        };
        write_wav(&output, &audio)
            .with_context(|| format!("could not write {}", output.display()))?;
        Ok(Report {
            output,
            latency,
            real_time_factor: elapsed / input.duration_s(),
            input_db: rms_db(std::slice::from_ref(&mono)),
            output_db: rms_db(&audio.channels),
            non_finite: audio
                .channels
                .iter()
                .flatten()
                .filter(|sample| !sample.is_finite())
                .count(),
        })
    }

    /// Puts `descriptor` in the plugin's persisted `timbre-a` field (and clears `timbre-b`) by
    /// editing its saved JSON state and loading it back.
    fn set_timbre_a(host: &mut PluginHost, descriptor: &TimbreDescriptor) -> Result<()> {
        let saved = host
            .save_state()
            .context("could not save the plugin state")?;
        let state = with_timbre(&saved, Slot::A, Some(descriptor))?;
        let state = with_timbre(&state, Slot::B, None)?;
        host.load_state(&state)
            .context("the plugin refused the state with the reference timbre")
    }

    /// Whether a level difference (in dB) is too large, or not a number (silent input).
    fn level_mismatch(difference_db: f64) -> bool {
        difference_db.is_nan() || difference_db.abs() > MAX_LEVEL_DIFFERENCE_DB
    }

    /// `mono` copied to `channels` channels, followed by `latency` zeros.
    fn padded_input(mono: &[f32], channels: usize, latency: usize) -> Vec<Vec<f32>> {
        let mut channel = Vec::with_capacity(mono.len() + latency);
        channel.extend_from_slice(mono);
        channel.resize(mono.len() + latency, 0.0);
        vec![channel; channels]
    }

    /// RMS level over all samples of all channels, in dBFS (`-inf` for silence).
    fn rms_db(channels: &[Vec<f32>]) -> f64 {
        let (sum, count) = channels
            .iter()
            .flatten()
            .fold((0.0f64, 0usize), |(sum, count), &sample| {
                (sum + f64::from(sample) * f64::from(sample), count + 1)
            });
        if count == 0 {
            return f64::NEG_INFINITY;
        }
        10.0 * (sum / count as f64).log10()
    }

    /// The median of `values` (which must not be empty).
    fn median(values: &mut [f64]) -> f64 {
        values.sort_by(f64::total_cmp);
        let middle = values.len() / 2;
        if values.len().is_multiple_of(2) {
            0.5 * (values[middle - 1] + values[middle])
        } else {
            values[middle]
        }
    }

    /// Prints the summary line and fails if any render was bad.
    fn summarise(reports: &[Report]) -> Result<()> {
        let mut factors: Vec<f64> = reports.iter().map(|r| r.real_time_factor).collect();
        println!(
            "{} renders, median real-time factor {:.4}",
            reports.len(),
            median(&mut factors)
        );
        let problems: Vec<String> = reports.iter().filter_map(Report::problem).collect();
        if !problems.is_empty() {
            bail!(
                "{} bad renders:\n  {}",
                problems.len(),
                problems.join("\n  ")
            );
        }
        Ok(())
    }
}
