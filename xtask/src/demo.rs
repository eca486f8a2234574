//! `cargo xtask demo`: the example clips through the bundled plugin.

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
    write_wav(&output, &audio).with_context(|| format!("could not write {}", output.display()))?;
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
