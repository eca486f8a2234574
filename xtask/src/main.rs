//! Timbreswap's project tasks, run as `cargo xtask <command>`.
//!
//! - `bundle` (and every command not listed below) is nice-plug-xtask's: it builds and bundles
//!   the plugin, e.g. `cargo xtask bundle timbreswap --release`.
//! - `examples` renders the example clips in `assets/examples/` from a General MIDI SoundFont.
//! - `demo` bundles the plugin, loads it in a CLAP host and runs every example input through it
//!   with every example reference, in every Mode (Classic, Neural, Exemplar), writing the
//!   results to `target/demo/`.
//! - `test` bundles the plugin and runs the workspace tests (which load the bundle).
//! - `default-model` renders the dataset, trains the default model (resumably) and writes its
//!   f16 conversion to `assets/models/`.
//!
//! Files: `examples.rs` and `demo.rs` hold those two commands.

mod demo;
mod examples;

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
    // The shipped file stores its variation encoder's matrices as int8 and the others as f16
    // (`--to mixed`: under half the bytes per network step; the transfer and disentanglement
    // tables are the f32 export's, docs/quality.md "Mixed weights").
    timbreswap(&[
        "convert-model".as_ref(),
        "--input".as_ref(),
        run.join("model.safetensors").as_os_str(),
        "--out".as_ref(),
        DEFAULT_MODEL.as_ref(),
        "--to".as_ref(),
        "mixed".as_ref(),
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
