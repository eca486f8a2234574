//! The timbre map exported with a model: every training instrument's mean `z_t` and its place
//! on the editor's 2-D map.

use super::*;

/// The timbre map of `model`: the mean `z_t` of each training instrument's notes (in every
/// dataset folder of the run, [`TrainConfig::folders`]) and the 2-D PCA of those means.
pub fn timbre_map(
    model: &ThreeFactor,
    data: &Path,
    tc: &TrainConfig,
) -> Result<TimbreMap, TrainError> {
    let cfg = model.config();
    let set = load_clips(
        &tc.folders(data),
        Split::Train,
        &[Set::Notes],
        cfg.sample_rate,
        tc.max_clips,
        tc.seed,
    )?;
    let mut by_program: std::collections::BTreeMap<u8, (MapInstrument, Vec<f64>, usize)> =
        Default::default();
    for (record, audio) in set.records.iter().zip(&set.audio) {
        let z = model.clip_timbre(audio)?;
        let entry = by_program.entry(record.program).or_insert_with(|| {
            (
                MapInstrument {
                    program: record.program,
                    name: record.instrument.clone(),
                    family: record.family.clone(),
                },
                vec![0.0; cfg.z_t],
                0,
            )
        });
        for (s, v) in entry.1.iter_mut().zip(&z) {
            *s += *v as f64;
        }
        entry.2 += 1;
    }
    let mut instruments = Vec::new();
    let mut z_t = Vec::new();
    for (_, (inst, sum, n)) in by_program {
        instruments.push(inst);
        z_t.extend(sum.iter().map(|s| (s / n as f64) as f32));
    }
    let (pca_mean, pca_basis) = if instruments.len() >= 2 && cfg.z_t >= 2 {
        let p = crate::plot::pca_2d(&z_t, cfg.z_t).map_err(|e| TrainError::Data(e.to_string()))?;
        (
            p.mean.iter().map(|v| *v as f32).collect(),
            p.axes.iter().flatten().map(|v| *v as f32).collect(),
        )
    } else {
        let mut basis = vec![0.0f32; 2 * cfg.z_t];
        basis[0] = 1.0;
        if cfg.z_t > 1 {
            basis[cfg.z_t + 1] = 1.0;
        }
        (z_t[..cfg.z_t].to_vec(), basis)
    };
    Ok(TimbreMap {
        instruments,
        z_t,
        pca_mean,
        pca_basis,
    })
}
