//! `timbreswap`: the project's command-line tool. `render` runs the plugin's engine offline
//! (no candle involved); dataset, training and evaluation commands join it in later releases.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use timbreswap_engine::clip::{decode_file, load_reference};
use timbreswap_engine::render::{render, write_wav, RenderOptions};
use timbreswap_engine::StftConfig;

/// Longest input `render` accepts, in seconds (one hour).
const MAX_INPUT_SECONDS: f64 = 3600.0;

#[derive(Parser)]
#[command(
    name = "timbreswap",
    version,
    about = "Timbre transfer: play a performance with the timbre of a reference clip"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render a file through the plugin's engine in offline mode (same code as the plugin).
    Render {
        /// The performance to transform (WAV, AIFF, FLAC, MP3, OGG/Vorbis).
        #[arg(long)]
        input: PathBuf,
        /// Reference clip whose timbre to use (slot A).
        #[arg(long)]
        timbre: PathBuf,
        /// Second reference clip (slot B), blended by --morph.
        #[arg(long)]
        timbre_b: Option<PathBuf>,
        /// Morph A -> B, 0..1.
        #[arg(long, default_value_t = 0.0)]
        morph: f32,
        /// Wet share, 0..1 (0 = the input, 1 = fully swapped).
        #[arg(long, default_value_t = 1.0)]
        mix: f32,
        /// Output gain, in dB.
        #[arg(long, default_value_t = 0.0)]
        output_db: f32,
        /// Processing block size, in samples (the result does not depend on it).
        #[arg(long, default_value_t = 512)]
        block: usize,
        /// Output WAV file (32-bit float, same rate and channels as the input).
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Render {
            input,
            timbre,
            timbre_b,
            morph,
            mix,
            output_db,
            block,
            out,
        } => {
            for (name, v) in [("--morph", morph), ("--mix", mix)] {
                if !(0.0..=1.0).contains(&v) {
                    bail!("{name} must be within 0..1 (got {v})");
                }
            }
            if block == 0 {
                bail!("--block must be at least 1");
            }
            let cfg = StftConfig::default();
            let a = load_reference(&timbre, &cfg).context("reference --timbre")?;
            let b = timbre_b
                .map(|p| load_reference(&p, &cfg).context("reference --timbre-b"))
                .transpose()?;
            let audio = decode_file(&input, MAX_INPUT_SECONDS).context("--input")?;
            let started = Instant::now();
            let rendered = render(
                &audio,
                &RenderOptions {
                    timbre_a: Some(&a),
                    timbre_b: b.as_ref(),
                    morph,
                    mix,
                    output_db,
                    block,
                    stft: cfg,
                },
            )?;
            let seconds = started.elapsed().as_secs_f64();
            write_wav(&out, &rendered.audio)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "{}: {:.2} s of audio in {:.3} s (real-time factor {:.4}), latency {} samples ({:.2} ms, compensated)",
                out.display(),
                audio.duration_s(),
                seconds,
                seconds / audio.duration_s().max(1e-9),
                rendered.latency,
                rendered.latency as f64 * 1000.0 / audio.sample_rate as f64
            );
            Ok(())
        }
    }
}
