//! `timbreswap render`: a file through the plugin's engine, offline.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use timbreswap_engine::clip::{decode_file, load_reference_clip};
use timbreswap_engine::exemplar::ExemplarBank;
use timbreswap_engine::kernels::Kernels;
use timbreswap_engine::network::Network;
use timbreswap_engine::neural::PhaseMode;
use timbreswap_engine::processor::SwapMode;
use timbreswap_engine::render::{render, write_wav, RenderOptions};
use timbreswap_engine::{LatencyMode, StftConfig};

use crate::cli::{LatencyArg, ModeArg, PhaseArg, RenderArgs, MAX_INPUT_SECONDS};
use crate::DEFAULT_MODEL;

/// Runs `render` with its arguments.
pub(crate) fn run(args: RenderArgs) -> Result<()> {
    let RenderArgs {
        input,
        timbre,
        timbre_b,
        morph,
        mix,
        output_db,
        block,
        mode,
        model,
        variation,
        transpose,
        phase,
        decay,
        latency,
        out,
    } = args;
    if !(0.0..=2.0).contains(&variation) {
        bail!("--variation must be within 0..2 (got {variation})");
    }
    if !(-12.0..=12.0).contains(&transpose) {
        bail!("--transpose must be within -12..12 semitones (got {transpose})");
    }
    for (name, v) in [("--morph", morph), ("--mix", mix), ("--decay", decay)] {
        if !(0.0..=1.0).contains(&v) {
            bail!("{name} must be within 0..1 (got {v})");
        }
    }
    if block == 0 {
        bail!("--block must be at least 1");
    }
    let cfg = StftConfig::default();
    let a = load_reference_clip(&timbre, &cfg).context("reference --timbre")?;
    let b = timbre_b
        .map(|p| load_reference_clip(&p, &cfg).context("reference --timbre-b"))
        .transpose()?;
    for (clip, flag) in [(Some(&a), "--timbre"), (b.as_ref(), "--timbre-b")] {
        if clip.is_some_and(|c| c.truncated) {
            eprintln!(
                "note: {flag}: only the first {} minutes of the clip are used",
                timbreswap_engine::clip::MAX_CLIP_SECONDS / 60.0
            );
        }
    }
    // Exemplar mode loads the model too, as the plugin does: its pitch ruler guesses
    // where YIN is unsure.
    let net = match mode {
        ModeArg::Classic => None,
        ModeArg::Neural | ModeArg::Exemplar => Some(Arc::new(match &model {
            Some(path) => {
                let file = timbreswap_engine::model_file::load(path)
                    .with_context(|| format!("--model {}", path.display()))?;
                Network::new(&file, &path.display().to_string(), Kernels::best())?
            }
            None => Network::new(
                &timbreswap_engine::model_file::parse(DEFAULT_MODEL)?,
                "default",
                Kernels::best(),
            )?,
        })),
    };
    if let Some(m) = net.as_ref().map(|n| n.stft()) {
        if (m.sample_rate, m.n_fft, m.hop) != (cfg.sample_rate, cfg.n_fft, cfg.hop) {
            bail!("the model frames audio differently ({m:?}) from the engine ({cfg:?})");
        }
    }
    // The latents only matter to Neural mode (Exemplar loads the model for its ruler).
    let neural_net = net.as_ref().filter(|_| matches!(mode, ModeArg::Neural));
    let latent_a = neural_net.map(|n| n.clip_timbre(&a.samples));
    let latent_b = neural_net
        .zip(b.as_ref())
        .map(|(n, b)| n.clip_timbre(&b.samples));
    let exemplars = match mode {
        ModeArg::Exemplar => [Some(&a), b.as_ref()]
            .map(|clip| clip.and_then(|c| ExemplarBank::new(&cfg, &c.samples).map(Arc::new))),
        _ => [None, None],
    };
    let audio = decode_file(&input, MAX_INPUT_SECONDS).context("--input")?;
    let started = Instant::now();
    let rendered = render(
        &audio,
        &RenderOptions {
            timbre_a: Some(&a.descriptor),
            timbre_b: b.as_ref().map(|b| &b.descriptor),
            morph,
            mix,
            output_db,
            block,
            stft: cfg,
            mode: match mode {
                ModeArg::Classic => SwapMode::Classic,
                ModeArg::Neural => SwapMode::Neural,
                ModeArg::Exemplar => SwapMode::Exemplar,
            },
            exemplars,
            model: net,
            latent_a: latent_a.as_deref(),
            latent_b: latent_b.as_deref(),
            variation,
            transpose,
            decay,
            phase: match phase {
                PhaseArg::Input => PhaseMode::Input,
                PhaseArg::Reconstruct => PhaseMode::Reconstruct,
                PhaseArg::Differential => PhaseMode::Differential,
            },
            latency_mode: match latency {
                LatencyArg::Normal => LatencyMode::Normal,
                LatencyArg::Low => LatencyMode::Low,
            },
        },
    )?;
    let seconds = started.elapsed().as_secs_f64();
    write_wav(&out, &rendered.audio).with_context(|| format!("writing {}", out.display()))?;
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
