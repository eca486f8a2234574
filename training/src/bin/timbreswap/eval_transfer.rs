//! `timbreswap eval-transfer`: the protocol's transfer table on a rendered dataset.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use timbreswap_engine::kernels::Kernels;
use timbreswap_engine::network::Network;
use timbreswap_engine::neural::PhaseMode;
use timbreswap_engine::{LatencyMode, StftConfig};

use crate::cli::{EnginePhaseArg, EvalTransferArgs};
use crate::{load_models, model_arg};

/// Runs `eval-transfer` with its arguments; `command_line` goes into the report.
pub(crate) fn run(args: EvalTransferArgs, command_line: String) -> Result<()> {
    let EvalTransferArgs {
        data,
        soundfont,
        max_sources,
        seed,
        phrase_seed,
        pitch_range,
        voice_sources,
        whistle_sources,
        source_reverb,
        source_noise,
        reference_reverb,
        reference_noise,
        phrase_references,
        same_instrument_references,
        write_audio,
        json,
        models,
        engine,
        engine_phase,
        no_offline,
        engine_variation,
        engine_self,
        engine_fit_steps,
        engine_fit_lr,
        engine_fit_prior,
        exemplar,
        exemplar_rows: exemplar_only,
        low_latency,
    } = args;
    use timbreswap_training::transfer::{
        evaluate_transfer, EngineNeural, TransferOptions, TransferSystem,
    };
    for (flag, s) in [
        ("--source-reverb", source_reverb),
        ("--reference-reverb", reference_reverb),
    ] {
        if let Some(s) = s {
            if !(s.is_finite() && (0.05..=10.0).contains(&s)) {
                bail!("{flag} is a decay time of 0.05 to 10 seconds, got {s}");
            }
        }
    }
    for (flag, db) in [
        ("--source-noise", source_noise),
        ("--reference-noise", reference_noise),
    ] {
        if let Some(db) = db {
            if !(db.is_finite() && (-20.0..=100.0).contains(&db)) {
                bail!("{flag} is a signal-to-noise ratio of -20 to 100 dB, got {db}");
            }
        }
    }
    let mut engine_rows: Vec<EngineNeural> = Vec::new();
    if engine {
        for spec in &models {
            let (name, path) = model_arg(spec);
            let file = timbreswap_engine::model_file::load(&path)
                .with_context(|| format!("--model {}", path.display()))?;
            let net = Arc::new(Network::new(&file, &name, Kernels::best())?);
            let phases: &[(&str, PhaseMode)] = match engine_phase {
                EnginePhaseArg::Both => &[
                    ("reconstruct", PhaseMode::Reconstruct),
                    ("input", PhaseMode::Input),
                ],
                EnginePhaseArg::Input => &[("input", PhaseMode::Input)],
                EnginePhaseArg::Reconstruct => &[("reconstruct", PhaseMode::Reconstruct)],
                EnginePhaseArg::Differential => &[("differential", PhaseMode::Differential)],
                EnginePhaseArg::InputDifferential => &[
                    ("input", PhaseMode::Input),
                    ("differential", PhaseMode::Differential),
                ],
            };
            for &(suffix, phase) in phases {
                for &variation in &engine_variation {
                    if !(0.0..=2.0).contains(&variation) {
                        bail!("--engine-variation values lie in 0..2, got {variation}");
                    }
                    engine_rows.push(EngineNeural {
                        name: if variation == 1.0 {
                            format!("{name} engine/{suffix}")
                        } else {
                            format!("{name} engine/{suffix} v{variation}")
                        },
                        net: net.clone(),
                        phase,
                        variation,
                        self_reference: false,
                        latency_mode: LatencyMode::Normal,
                        fit: None,
                    });
                }
                if engine_self {
                    engine_rows.push(EngineNeural {
                        name: format!("{name} engine/{suffix} self"),
                        net: net.clone(),
                        phase,
                        variation: 1.0,
                        self_reference: true,
                        latency_mode: LatencyMode::Normal,
                        fit: None,
                    });
                }
                if engine_fit_steps > 0 {
                    if !(engine_fit_lr.is_finite() && engine_fit_lr > 0.0) {
                        bail!("--engine-fit-lr must be a positive number, got {engine_fit_lr}");
                    }
                    if !(engine_fit_prior.is_finite() && engine_fit_prior >= 0.0) {
                        bail!("--engine-fit-prior must be 0 or more, got {engine_fit_prior}");
                    }
                    let candle = timbreswap_training::model::file::load(&path)
                        .with_context(|| format!("--model {}", path.display()))?;
                    let fit = timbreswap_training::model::fit::TimbreFit {
                        steps: engine_fit_steps,
                        learning_rate: engine_fit_lr,
                        prior_weight: engine_fit_prior,
                    };
                    engine_rows.push(EngineNeural {
                        name: format!("{name} engine/{suffix} fit{engine_fit_steps}"),
                        net: net.clone(),
                        phase,
                        variation: 1.0,
                        self_reference: false,
                        latency_mode: LatencyMode::Normal,
                        fit: Some(Arc::new((candle.model, fit))),
                    });
                }
            }
        }
    }
    let mut exemplar_rows: Vec<timbreswap_training::transfer::Exemplar> = Vec::new();
    // The first --model's network, loaded beside the engine's Exemplar row.
    let mut first_net: Option<Arc<Network>> = None;
    if exemplar {
        use timbreswap_engine::exemplar::Shift;
        for spec in &models {
            let (name, path) = model_arg(spec);
            let file = timbreswap_engine::model_file::load(&path)
                .with_context(|| format!("--model {}", path.display()))?;
            let net = Arc::new(Network::new(&file, &name, Kernels::best())?);
            first_net.get_or_insert_with(|| net.clone());
            // Every row experiments/quality-log.md reports ("Exemplar swap").
            for (suffix, shift, yin, reconstruct, known_pitch) in [
                ("ruler", Shift::KeepEnvelope, false, false, false),
                ("yin", Shift::KeepEnvelope, true, false, false),
                ("ruler rtpghi", Shift::KeepEnvelope, false, true, false),
                ("known rtpghi", Shift::KeepEnvelope, false, true, true),
                ("partials", Shift::Partials, true, false, false),
                (
                    "partials+noise",
                    Shift::PartialsAndNoise,
                    true,
                    false,
                    false,
                ),
                (
                    "partials+noise known",
                    Shift::PartialsAndNoise,
                    true,
                    false,
                    true,
                ),
                ("harmonic", Shift::Harmonic, true, false, false),
                ("harmonic known", Shift::Harmonic, true, false, true),
            ]
            .into_iter()
            .filter(|row| exemplar_only.is_empty() || exemplar_only.iter().any(|r| r == row.0))
            {
                exemplar_rows.push(timbreswap_training::transfer::Exemplar {
                    name: format!("{name} exemplar/{suffix}"),
                    net: net.clone(),
                    opts: timbreswap_engine::exemplar::ExemplarOptions {
                        shift,
                        yin,
                        reconstruct,
                    },
                    known_pitch,
                    ruler: shift != Shift::Harmonic,
                });
            }
        }
    }
    // The plugin's Exemplar mode through the engine, the first --model loaded beside it
    // as the plugin has its model (its pitch ruler).
    let mut engine_exemplar: Vec<timbreswap_training::transfer::EngineExemplar> = Vec::new();
    let mut classic_rows: Vec<timbreswap_training::transfer::Classic> = Vec::new();
    let latencies: &[LatencyMode] = if low_latency {
        &[LatencyMode::Normal, LatencyMode::Low]
    } else {
        &[LatencyMode::Normal]
    };
    for &latency_mode in latencies {
        if exemplar {
            engine_exemplar.push(timbreswap_training::transfer::EngineExemplar {
                stft: StftConfig::default(),
                latency_mode,
            });
        }
    }
    if low_latency {
        // The classic row itself is always scored; its low-latency twin here.
        classic_rows.push(timbreswap_training::transfer::Classic {
            stft: StftConfig::default(),
            latency_mode: LatencyMode::Low,
        });
        let low: Vec<EngineNeural> = engine_rows
            .iter()
            .filter(|row| !row.self_reference)
            .map(|row| EngineNeural {
                name: format!(
                    "{}{}",
                    row.name,
                    timbreswap_training::transfer::latency_suffix(LatencyMode::Low)
                ),
                net: row.net.clone(),
                latency_mode: LatencyMode::Low,
                fit: row.fit.clone(),
                ..*row
            })
            .collect();
        engine_rows.extend(low);
    }
    let offline: &[String] = if no_offline { &[] } else { &models };
    let neural: Vec<timbreswap_training::model::swap::NeuralTransfer> = load_models(offline)?
        .into_iter()
        .map(|(name, file)| timbreswap_training::model::swap::NeuralTransfer { name, file })
        .collect();
    let extra: Vec<&dyn TransferSystem> = neural
        .iter()
        .map(|n| n as &dyn TransferSystem)
        .chain(engine_rows.iter().map(|n| n as &dyn TransferSystem))
        .chain(exemplar_rows.iter().map(|n| n as &dyn TransferSystem))
        .chain(engine_exemplar.iter().map(|n| n as &dyn TransferSystem))
        .chain(classic_rows.iter().map(|n| n as &dyn TransferSystem))
        .collect();
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>10} {bar:40} {pos}/{len} {elapsed_precise} (eta {eta})",
        )
        .context("progress bar template")?,
    );
    if let Some(dir) = &write_audio {
        std::fs::create_dir_all(dir).with_context(|| format!("--write-audio {}", dir.display()))?;
    }
    let opts = TransferOptions {
        data,
        soundfont,
        max_sources,
        seed,
        phrase_seed,
        pitch_range,
        voice_sources,
        whistle_sources,
        room: timbreswap_training::transfer::Room {
            reverb_s: source_reverb,
            noise_snr_db: source_noise,
        },
        reference_room: timbreswap_training::transfer::Room {
            reverb_s: reference_reverb,
            noise_snr_db: reference_noise,
        },
        phrase_references,
        same_instrument_references,
        write_audio,
    };
    let mut report = evaluate_transfer(&opts, &extra, &|stage, done, total| {
        bar.set_message(stage.to_string());
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    report.command = Some(command_line);
    println!("{}", report.to_markdown());
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
