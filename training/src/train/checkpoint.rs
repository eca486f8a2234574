//! What ends an epoch: validation, the checkpoint (resumable bit for bit), the log and its
//! plot.

use super::*;

/// Validation figures of `model` on `crops` (unperturbed, posterior means, KL weight 1).
pub(super) fn validate(
    model: &ThreeFactor,
    crops: &[Crop],
    tc: &TrainConfig,
    dev: &Device,
) -> Result<ValidFigures, TrainError> {
    let bins = tc.model.bins();
    let mut fig = ValidFigures::default();
    let mut batches = 0.0;
    let scale = model.log_mag_scale();
    for chunk in crops.chunks(tc.batch) {
        let batch = to_batch(chunk, bins, false, 0, dev)?;
        let target = model.normalise_log_mag(&batch.target_log_mag)?;
        let (tv, p) =
            model.encoder_inputs(&batch.shifted[0], &batch.shifted[1], &batch.shifted[2])?;
        let pass = run_pass(model, (&tv, &p), &p, &batch.weights, &target, None)?;
        let recon = pass.recon.to_scalar::<f32>()? as f64;
        let kl = pass.kl(1.0, 1.0)?.to_scalar::<f32>()? as f64;
        let mse_n = (&pass.output - &target)?
            .sqr()?
            .mean_all()?
            .to_scalar::<f32>()? as f64;
        fig.recon += recon;
        fig.kl += kl;
        fig.mse_ln += mse_n / (scale * scale);
        batches += 1.0;
    }
    fig.recon /= batches;
    fig.kl /= batches;
    fig.mse_ln /= batches;
    fig.loss = fig.recon + fig.kl;
    Ok(fig)
}

pub(super) fn save_vars(varmap: &VarMap, path: &Path) -> Result<(), TrainError> {
    let tensors = weights_of(varmap);
    let tmp = path.with_extension("partial");
    candle_core::safetensors::save(&tensors, &tmp)?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// Writes the checkpoint into a fresh folder, then swaps it in (an interrupted write leaves
/// the previous checkpoint intact).
pub(super) fn write_checkpoint(
    dir: &Path,
    varmap: &VarMap,
    adam: &Adam,
    adversary: Option<&Adversary>,
    state: &CheckpointState,
) -> Result<(), TrainError> {
    let tmp = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    save_vars(varmap, &tmp.join("weights.safetensors"))?;
    candle_core::safetensors::save(&adam.tensors(), tmp.join("adam.safetensors"))?;
    if let Some(adv) = adversary {
        adv.save(&tmp)?;
    }
    let text = serde_json::to_string_pretty(state).map_err(|e| TrainError::Data(e.to_string()))?;
    std::fs::write(tmp.join("state.json"), text).map_err(io_err(&tmp))?;
    let old = dir.with_extension("old");
    let _ = std::fs::remove_dir_all(&old);
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(io_err(dir))?;
    }
    std::fs::rename(&tmp, dir).map_err(io_err(dir))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Keeps the log records of epochs before `epochs_done` (a resumed run rewrites the rest).
pub(super) fn truncate_log(path: &Path, epochs_done: usize) -> Result<(), TrainError> {
    let Ok(f) = File::open(path) else {
        return Ok(());
    };
    let kept: Vec<String> = BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("epoch").and_then(|e| e.as_u64()))
                .is_some_and(|e| (e as usize) < epochs_done)
        })
        .collect();
    let mut text = kept.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    std::fs::write(path, text).map_err(io_err(path))
}

/// Draws the loss curves of a run's log: training loss (every weighted term: reconstruction of
/// both passes when re-entry is on, KL, pitch invariance, contrast and classifier) and the
/// first pass's reconstruction per step (averaged over 20 steps), validation loss per epoch.
pub fn plot_log(log: &Path, png: &Path) -> Result<(), TrainError> {
    let f = File::open(log).map_err(io_err(log))?;
    let mut train = Vec::new();
    let mut recon = Vec::new();
    let mut valid = Vec::new();
    let mut acc = (0.0, 0.0, 0usize);
    for line in BufReader::new(f).lines().map_while(Result::ok) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let step = v.get("step").and_then(|s| s.as_f64()).unwrap_or(0.0);
        match v.get("kind").and_then(|k| k.as_str()) {
            Some("step") => {
                acc.0 += v.get("loss").and_then(|x| x.as_f64()).unwrap_or(f64::NAN);
                acc.1 += v.get("recon").and_then(|x| x.as_f64()).unwrap_or(f64::NAN);
                acc.2 += 1;
                if acc.2 == 20 {
                    train.push((step, acc.0 / 20.0));
                    recon.push((step, acc.1 / 20.0));
                    acc = (0.0, 0.0, 0);
                }
            }
            Some("epoch") => {
                if let Some(l) = v.pointer("/valid/loss").and_then(|x| x.as_f64()) {
                    valid.push((step, l));
                }
            }
            _ => {}
        }
    }
    let series = vec![
        ("training loss (all weighted terms)".to_string(), train),
        ("training reconstruction (first pass)".to_string(), recon),
        ("validation loss (KL weight 1)".to_string(), valid),
    ];
    crate::plot::lines_png(
        png,
        "Three-factor model: loss per frame",
        "step",
        &series,
        true,
        (900, 540),
    )
    .map_err(|e| TrainError::Data(e.to_string()))
}
