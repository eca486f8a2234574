//! `timbreswap`: the project's command-line tool.
//!
//! - `render` runs the plugin's engine offline (no candle involved; `render.rs`);
//! - `dataset` renders the protocol's notes and phrases from a General MIDI SoundFont;
//! - `pairs` renders the paired swap set (one score, two instruments, and a reference);
//! - `train` trains the three-factor model (checkpointed, resumable) and exports it;
//! - `eval` scores disentanglement (k-NN protocol) on a rendered dataset;
//! - `eval-transfer` scores timbre transfer (the protocol's transfer table) on a rendered
//!   dataset (`eval_transfer.rs`);
//! - `copies` counts the test clips that have a copy in the train split;
//! - `convert-model` stores a model's weight matrices as f16, int8 or mixed;
//! - `knn-bench` times the k-NN classifier on random data.
//!
//! The arguments of every command are in `cli.rs`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;

use timbreswap_engine::StftConfig;
use timbreswap_training::dataset::{render_dataset, DatasetOptions, SetChoice};
use timbreswap_training::eval::{evaluate_models, EvalOptions};
use timbreswap_training::manifest::Set;
use timbreswap_training::{instruments, knn};

mod classify;
mod cli;
mod eval_transfer;
mod render;

use cli::*;

/// The built-in default model (what the plugin embeds).
const DEFAULT_MODEL: &[u8] = include_bytes!("../../../../assets/models/default.safetensors");
/// The shipped model's training config (what `train` uses without --config).
const DEFAULT_TRAIN_CONFIG: &str = include_str!("../../../../assets/models/default-train.json");

/// A progress bar counting `unit` (its length set by the first progress call).
fn counting_bar(unit: &str) -> Result<indicatif::ProgressBar> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} {unit} {{elapsed_precise}} (eta {{eta}})"
        ))
        .context("progress bar template")?,
    );
    Ok(bar)
}

/// The row name and file of a `--model` argument (`FILE` or `NAME=FILE`; the name defaults to
/// the file stem).
fn model_arg(spec: &str) -> (String, PathBuf) {
    match spec.split_once('=') {
        Some((n, p)) => (n.to_string(), PathBuf::from(p)),
        None => {
            let p = PathBuf::from(spec);
            let stem = p
                .file_stem()
                .map_or("model".into(), |s| s.to_string_lossy().to_string());
            (stem, p)
        }
    }
}

fn load_models(
    args: &[String],
) -> Result<Vec<(String, timbreswap_training::model::file::ModelFile)>> {
    args.iter()
        .map(|m| {
            let (name, path) = model_arg(m);
            let file = timbreswap_training::model::file::load(&path)
                .with_context(|| format!("loading model {}", path.display()))?;
            Ok((name, file))
        })
        .collect()
}

/// Draws every timbre cloud of `report` to `PREFIX-<model>.png`.
fn plot_timbres(
    report: &timbreswap_training::eval::EvalReport,
    prefix: &std::path::Path,
) -> Result<()> {
    use std::collections::BTreeMap;
    use timbreswap_training::plot::{scatter_png, Group};
    let records = timbreswap_training::manifest::read_manifest(&report.data)?;
    let names: BTreeMap<u32, (String, String)> = records
        .iter()
        .map(|r| (r.program as u32, (r.instrument.clone(), r.family.clone())))
        .collect();
    for cloud in &report.timbres {
        let mut groups: BTreeMap<u32, Group> = BTreeMap::new();
        for (i, program) in cloud.programs.iter().enumerate() {
            let (name, family) = names
                .get(program)
                .cloned()
                .unwrap_or_else(|| (format!("program {program}"), "?".into()));
            groups
                .entry(*program)
                .or_insert_with(|| Group {
                    name,
                    family,
                    members: Vec::new(),
                })
                .members
                .push(i);
        }
        let slug: String = cloud
            .model
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let path = PathBuf::from(format!("{}-{slug}.png", prefix.display()));
        let groups: Vec<Group> = groups.into_values().collect();
        let explained = scatter_png(
            &path,
            &format!(
                "{}: timbre space ({:?}, {} clips)",
                cloud.model,
                report.set,
                cloud.programs.len()
            ),
            &cloud.vectors,
            cloud.dim,
            &groups,
            (1400, 1000),
        )?;
        println!(
            "timbre map: {} (PC 1 {:.0} %, PC 2 {:.0} % of variance)",
            path.display(),
            explained[0] * 100.0,
            explained[1] * 100.0
        );
    }
    Ok(())
}

/// Writes `report` as pretty JSON to `path`, with the command line that made it as `command`.
fn write_report_json(
    path: &Path,
    report: &impl serde::Serialize,
    command_line: String,
) -> Result<()> {
    let mut value = serde_json::to_value(report)?;
    value["command"] = serde_json::Value::String(command_line);
    std::fs::write(path, serde_json::to_string_pretty(&value)?)
        .with_context(|| format!("writing {}", path.display()))
}

fn main() -> Result<()> {
    // Training and evaluation free and reallocate megabyte tensors at every step: keep that
    // memory instead of faulting it back in page by page.
    timbreswap_training::memory::keep_freed_memory();
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    match Cli::parse().command {
        Command::Pairs {
            out,
            libraries,
            count,
            rate,
            seed,
            augment,
            voice_share,
            instruments,
        } => {
            use timbreswap_training::data::pairs;
            if !(0.0..=1.0).contains(&augment) {
                anyhow::bail!("--augment is a share between 0 and 1, got {augment}");
            }
            if !(0.0..=1.0).contains(&voice_share) {
                anyhow::bail!("--voice-share is a share between 0 and 1, got {voice_share}");
            }
            let names: Vec<(String, Option<PathBuf>)> = libraries
                .iter()
                .map(|l| match l.split_once('=') {
                    Some((n, p)) => (n.to_string(), Some(PathBuf::from(p))),
                    None => (l.clone(), None),
                })
                .collect();
            let libraries = pairs::load_libraries(&names)?;
            let opts = pairs::PairOptions {
                out,
                libraries,
                instruments: pairs::instrument_pool(&instruments::load(instruments.as_deref())?),
                count,
                rate,
                seed,
                augment_share: augment,
                voice_share,
                threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            };
            let bar = counting_bar("pairs")?;
            let summary = pairs::render_pairs(&opts, &|done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish();
            for (lib, programs) in &summary.held_out {
                eprintln!(
                    "{lib}: programs {programs:?} play samples of the held-out library: left out there"
                );
            }
            for (lib, programs) in &summary.skipped {
                eprintln!("{lib} lacks programs {programs:?}: skipped there");
            }
            println!(
                "{} pairs in {} ({} rendered now in {:.1} s; {} clipped samples)",
                summary.pairs,
                opts.out.display(),
                summary.rendered,
                summary.wall_s,
                summary.clipped_samples
            );
            Ok(())
        }
        Command::Dataset {
            soundfont,
            out,
            set,
            rate,
            seed,
            instruments,
            phrases,
            held_out,
        } => {
            let opts = DatasetOptions {
                soundfont,
                out,
                set: match set {
                    SetArg::Notes => SetChoice::Notes,
                    SetArg::Phrases => SetChoice::Phrases,
                    SetArg::All => SetChoice::All,
                },
                rate,
                seed,
                instruments: instruments::load(instruments.as_deref())?,
                phrases,
                threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
                held_out: (held_out != "none").then(|| PathBuf::from(held_out)),
            };
            let bar = counting_bar("clips")?;
            let summary = render_dataset(&opts, &|done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish();
            println!(
                "{} clips in {} ({} rendered now: {:.0} s of audio in {:.1} s, {:.0}x real time; {} clipped samples)",
                summary.clips,
                opts.out.display(),
                summary.rendered,
                summary.audio_s,
                summary.wall_s,
                summary.speed(),
                summary.clipped_samples
            );
            if !summary.skipped_programs.is_empty() {
                println!(
                    "left out {} program(s) that play samples of the held-out library {}: {:?}",
                    summary.skipped_programs.len(),
                    opts.held_out.as_deref().unwrap_or(Path::new("")).display(),
                    summary.skipped_programs
                );
            }
            Ok(())
        }
        Command::Train {
            data,
            out,
            config,
            resume,
            epochs,
            seed,
            no_pitch_shift,
            no_timbre_distortion,
            no_cepstrum,
            no_reentry,
            no_variation,
        } => {
            use timbreswap_training::train::{train, TrainConfig};
            let mut tc: TrainConfig = match &config {
                Some(path) => serde_json::from_str(
                    &std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?,
                )
                .with_context(|| format!("parsing {}", path.display()))?,
                // The shipped model's config, so `train` without --config retrains it.
                None => serde_json::from_str(DEFAULT_TRAIN_CONFIG)
                    .context("the built-in training config (assets/models/default-train.json)")?,
            };
            if let Some(e) = epochs {
                tc.epochs = e;
            }
            if let Some(s) = seed {
                tc.seed = s;
            }
            tc.pitch_shift &= !no_pitch_shift;
            tc.timbre_distortion &= !no_timbre_distortion;
            tc.reentry &= !no_reentry;
            tc.model.cepstrum &= !no_cepstrum;
            tc.model.variation &= !no_variation;
            for folder in tc.folders(&data) {
                timbreswap_training::data::overlap::check_training_folder(folder)?;
            }
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            std::fs::write(
                out.join("train-config.json"),
                serde_json::to_string_pretty(&tc)?,
            )?;
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "epoch {prefix} {bar:30} {pos}/{len} {elapsed_precise} {msg}",
                )
                .context("progress bar template")?,
            );
            let summary = train(&data, &out, &tc, resume, &|epoch, done, total, msg| {
                bar.set_prefix(format!("{}/{}", epoch + 1, tc.epochs));
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                if msg.starts_with("epoch ") {
                    bar.println(msg);
                } else {
                    bar.set_message(msg.to_string());
                }
            })?;
            bar.finish_and_clear();
            println!(
                "{} epochs, {} steps, {} parameters; best epoch {} (valid score {:.3}); {}; {:.0} s wall in all sessions -> {}",
                summary.epochs,
                summary.steps,
                summary.parameters,
                summary.best_epoch,
                summary.best_valid,
                summary.frames_per_s.map_or("no step trained in this session".to_string(), |f| format!("{f:.0} frames/s")),
                summary.wall_s,
                summary.model_path.display()
            );
            println!("command: `{command_line}`");
            Ok(())
        }
        Command::Eval {
            data,
            set,
            max_train_frames,
            seed,
            json,
            plot,
            models,
            no_dsp_row,
            exclude_same_note,
            f0_row,
            cepstral_cutoff,
            copy_threshold_db,
            test_data,
        } => {
            if test_data.is_some() && copy_threshold_db.is_some() {
                bail!("--copy-threshold-db looks for copies within --data; it does not combine with --test-data");
            }
            let mut analysis = StftConfig::default();
            if let Some(cutoff) = cepstral_cutoff {
                analysis.cepstral_cutoff = cutoff;
                analysis
                    .validate()
                    .context("--cepstral-cutoff does not fit the analysis")?;
            }
            let set = match set {
                SetArg::Notes => Set::Notes,
                SetArg::Phrases => Set::Phrases,
                SetArg::All => bail!("eval scores one set at a time: --set notes or --set phrases"),
            };
            let started = Instant::now();
            let neural: Vec<timbreswap_training::model::latents::NeuralLatents> =
                load_models(&models)?
                    .into_iter()
                    .map(
                        |(name, file)| timbreswap_training::model::latents::NeuralLatents {
                            name,
                            file,
                        },
                    )
                    .collect();
            let mut rows: Vec<&dyn timbreswap_training::eval::LatentModel> = Vec::new();
            if !no_dsp_row {
                rows.push(&timbreswap_training::eval::DspSplit);
            }
            if f0_row {
                rows.push(&timbreswap_training::eval::SoundingF0);
            }
            rows.extend(
                neural
                    .iter()
                    .map(|n| n as &dyn timbreswap_training::eval::LatentModel),
            );
            let report = evaluate_models(
                &EvalOptions {
                    data,
                    set,
                    max_train_frames,
                    seed,
                    exclude_same_note,
                    copy_threshold_db,
                    test_data,
                },
                &analysis,
                &rows,
            )?;
            println!("{}", report.to_markdown());
            println!(
                "command: `{command_line}`; wall time {:.1} s",
                started.elapsed().as_secs_f64()
            );
            if let Some(prefix) = plot {
                plot_timbres(&report, &prefix)?;
            }
            if let Some(path) = json {
                write_report_json(&path, &report, command_line)?;
            }
            Ok(())
        }
        Command::Copies {
            data,
            threshold_db,
            json,
        } => {
            let started = Instant::now();
            let report = timbreswap_training::copies::count_copies(&data, threshold_db)?;
            println!("{}", report.to_markdown());
            println!(
                "command: `{command_line}`; wall time {:.1} s",
                started.elapsed().as_secs_f64()
            );
            if let Some(path) = json {
                write_report_json(&path, &report, command_line)?;
            }
            Ok(())
        }
        Command::EvalTransfer(args) => eval_transfer::run(args, command_line),
        Command::Classify(args) => classify::run(args),
        Command::ConvertModel { input, out, to } => {
            let precision = to.precision();
            let report = timbreswap_training::model::file::convert(&input, &out, precision)?;
            println!(
                "{}: {} weight matrices as {precision} ({} f16, {} int8), {} tensors kept as \
                 f32; largest change of a weight {:.2e} of its matrix's largest; {} -> {} bytes",
                out.display(),
                report.matrices,
                report.narrowed.0,
                report.narrowed.1,
                report.kept,
                report.worst_relative_change,
                report.bytes.0,
                report.bytes.1
            );
            Ok(())
        }
        Command::KnnBench { train, test, dim } => {
            let elapsed = knn::benchmark(train, test, dim);
            println!(
                "k-NN (k = {}): {train} train x {test} test x {dim} dims in {:.2} s ({:.1} M distance evaluations/s)",
                knn::K,
                elapsed.as_secs_f64(),
                train as f64 * test as f64 / elapsed.as_secs_f64() / 1e6
            );
            Ok(())
        }
        Command::Render(args) => render::run(args),
    }
}
