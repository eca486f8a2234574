//! A run's starting model: a new one with seeded weights, or a model file's (`init_from`),
//! and the input normalisation measured on the training clips.

use super::*;

/// A model of `cfg` with normalisation `stats` and seeded initial weights (`init_weights`),
/// its variables in the returned map.
pub fn initial_model(
    cfg: &Config,
    stats: &FeatureStats,
    seed: u64,
) -> Result<(VarMap, ThreeFactor), TrainError> {
    cfg.validate()?;
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    stats.insert_into(&varmap)?;
    let model = ThreeFactor::new(cfg, VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    init_weights(&trainable_vars(&varmap), seed)?;
    Ok((varmap, model))
}

/// A model of `cfg` holding the weights and normalisation of the model file at `path`
/// (fine-tuning); its config must be `cfg`, or `cfg` with `timbre_harmonics` where the file
/// has none: the timbre encoder's input layer then gets zero weights for the harmonic levels,
/// so the model starts out computing what the file computes.
pub fn start_from(cfg: &Config, path: &Path) -> Result<(VarMap, ThreeFactor), TrainError> {
    let file = timbreswap_engine::model_file::load(path)
        .map_err(|e| TrainError::Settings(format!("init_from {}: {e}", path.display())))?;
    let added_harmonics = if file.config.timbre_harmonics == 0 {
        cfg.timbre_harmonics
    } else {
        0
    };
    let as_file = Config {
        timbre_harmonics: cfg.timbre_harmonics - added_harmonics,
        ..cfg.clone()
    };
    if file.config != as_file {
        return Err(TrainError::Settings(format!(
            "init_from {}: its model config differs from the training config's `model`",
            path.display()
        )));
    }
    let feature = |name: &str| -> Result<Vec<f32>, TrainError> {
        file.weights
            .get(&format!("features.{name}"))
            .map(|w| w.data.clone())
            .ok_or_else(|| {
                TrainError::Settings(format!("init_from {}: no features.{name}", path.display()))
            })
    };
    let scale = feature("scale")?;
    // The model keeps the scales as numbers (not tensors), so they go in at construction.
    let stats = FeatureStats {
        log_mag_mean: feature("log_mag_mean")?,
        envelope_mean: feature("envelope_mean")?,
        fine_mean: feature("fine_mean")?,
        scale: [scale[0], scale[1], scale[2]],
    };
    let (varmap, model) = initial_model(cfg, &stats, 0)?;
    let data = varmap.data().lock().expect("var map");
    for (name, var) in data.iter() {
        let w = file.weights.get(name).ok_or_else(|| {
            TrainError::Settings(format!("init_from {}: no tensor {name}", path.display()))
        })?;
        let mut value = Tensor::from_vec(w.data.clone(), w.shape.clone(), &Device::Cpu)?;
        if name == "timbre.frames.input.weight" && added_harmonics > 0 {
            let zeros = Tensor::zeros((w.shape[0], added_harmonics), DType::F32, &Device::Cpu)?;
            value = Tensor::cat(&[&value, &zeros], 1)?;
        }
        var.set(&value)?;
    }
    drop(data);
    Ok((varmap, model))
}

/// The trained variables of `varmap` (everything but `features.*`), sorted by name.
pub fn trainable_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().expect("var map");
    let mut vars: Vec<(String, Var)> = data
        .iter()
        .filter(|(k, _)| !k.starts_with("features."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Every variable of `varmap` as a tensor, by name (what a model file holds).
pub fn weights_of(varmap: &VarMap) -> HashMap<String, Tensor> {
    let data = varmap.data().lock().expect("var map");
    data.iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect()
}

/// Measures [`FeatureStats`] on the first `norm_clips` training clips (of a seeded order).
pub(super) fn normalisation(set: &ClipSet, tc: &TrainConfig) -> FeatureStats {
    let cfg = &tc.model;
    let bins = cfg.bins();
    let mut order: Vec<usize> = (0..set.audio.len()).collect();
    shuffle(&mut order, mix64(tc.seed ^ 0x4E4F_524D));
    order.truncate(tc.norm_clips.max(1));
    let mut ex = FeatureExtractor::new(&cfg.stft(), cfg.mag_floor);
    let feats: Vec<FrameFeatures> = order.iter().map(|&i| ex.clip(&set.audio[i])).collect();
    let frames: usize = feats.iter().map(|f| f.frames).sum();
    let mean_and_scale = |pick: fn(&FrameFeatures) -> &Vec<f32>| {
        let mut mean = vec![0.0f64; bins];
        for f in &feats {
            for row in pick(f).chunks_exact(bins) {
                for (m, v) in mean.iter_mut().zip(row) {
                    *m += *v as f64;
                }
            }
        }
        mean.iter_mut().for_each(|m| *m /= frames as f64);
        let mut var = 0.0f64;
        for f in &feats {
            for row in pick(f).chunks_exact(bins) {
                for (m, v) in mean.iter().zip(row) {
                    var += (*v as f64 - m).powi(2);
                }
            }
        }
        let scale = (var / (frames * bins) as f64).sqrt().max(1e-6) as f32;
        (
            mean.into_iter().map(|m| m as f32).collect::<Vec<f32>>(),
            scale,
        )
    };
    let (log_mag_mean, s0) = mean_and_scale(|f| &f.log_mag);
    let (envelope_mean, s1) = mean_and_scale(|f| &f.envelope);
    let (fine_mean, s2) = mean_and_scale(|f| &f.fine);
    FeatureStats {
        log_mag_mean,
        envelope_mean,
        fine_mean,
        scale: [s0, s1, s2],
    }
}

/// Seeded initial weights: `N(0, gain^2 / fan_in)` for matrices (gain 1, or 0.5 inside
/// residual blocks), zero biases; the same for every run with the same seed.
pub(super) fn init_weights(vars: &[(String, Var)], seed: u64) -> candle_core::Result<()> {
    let mut sorted: Vec<&(String, Var)> = vars.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (i, (name, var)) in sorted.into_iter().enumerate() {
        let dims = var.dims().to_vec();
        let n: usize = dims.iter().product();
        let values = if dims.len() == 2 {
            let gain = if name.contains(".blocks.") { 0.5 } else { 1.0 };
            let std = gain / (dims[1] as f64).sqrt();
            let mut rng = SplitMix64::new(mix64(seed ^ mix64(i as u64 + 1)));
            normals(&mut rng, n)
                .into_iter()
                .map(|v| v * std as f32)
                .collect()
        } else {
            vec![0.0f32; n]
        };
        var.set(&Tensor::from_vec(values, dims, var.device())?)?;
    }
    Ok(())
}
