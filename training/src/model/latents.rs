//! The trained model as a row of the evaluation table ([`LatentModel`]).

use candle_core::{Tensor, D};

use super::features::{pooling_weights, FeatureExtractor};
use super::file::ModelFile;
use super::POOLING_RANGE_DB;
use crate::eval::{ClipInput, ClipLatents, LatentDims, LatentModel, SquaredError};
use timbreswap_engine::StftConfig;

/// A model file scored by `timbreswap eval --model`.
pub struct NeuralLatents {
    /// Row name.
    pub name: String,
    /// The loaded file.
    pub file: ModelFile,
}

impl NeuralLatents {
    fn run(&self, clip: &ClipInput<'_>) -> candle_core::Result<ClipLatents> {
        let model = &self.file.model;
        let cfg = model.config();
        let mut ex = FeatureExtractor::new(&cfg.stft(), cfg.mag_floor);
        let f = ex.clip(clip.samples);
        let dev = model.device();
        let (tv, p) = model.clip_inputs(&f)?;
        // Timbre pooled over the protocol's active frames (all loud frames if none).
        let weights = if clip.active.is_empty() {
            pooling_weights(&f.frame_db, POOLING_RANGE_DB)
        } else {
            let mut w = vec![0.0f32; f.frames];
            for &a in clip.active {
                w[a] = 1.0 / clip.active.len() as f32;
            }
            w
        };
        let w = Tensor::from_vec(weights, (1, f.frames), dev)?;
        let z_t = model.encode_timbre(&tv, &p, &w)?.mean;
        let local = model.encode_local(&tv, &p, &z_t)?;
        let rows = |t: &Tensor| -> candle_core::Result<Vec<f32>> {
            let dim = t.dim(D::Minus1)?;
            let all = t.flatten_all()?.to_vec1::<f32>()?;
            let mut out = Vec::with_capacity(clip.active.len() * dim);
            for &a in clip.active {
                out.extend_from_slice(&all[a * dim..(a + 1) * dim]);
            }
            Ok(out)
        };
        let z_v = match &local.variation {
            Some(v) => Some(rows(&v.mean)?),
            None => None,
        };
        let z_p = rows(&local.pitch.mean)?;
        let y = model.decode(
            &z_t,
            local.variation.as_ref().map(|v| &v.mean),
            &local.pitch.mean,
        )?;
        let y = model
            .denormalise_log_mag(&y)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut err = SquaredError::default();
        for &a in clip.active {
            let rows = a * f.bins..(a + 1) * f.bins;
            for (p, x) in y[rows.clone()].iter().zip(&f.log_mag[rows]) {
                err.sum += ((p - x) as f64).powi(2);
                err.count += 1;
            }
        }
        Ok(ClipLatents {
            z_t: Some(z_t.flatten_all()?.to_vec1::<f32>()?),
            z_v,
            z_p: Some(z_p),
            reconstruction: Some(err),
        })
    }
}

impl LatentModel for NeuralLatents {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn dims(&self, _cfg: &StftConfig) -> LatentDims {
        let c = self.file.model.config();
        LatentDims {
            z_t: Some(c.z_t),
            z_v: c.variation.then_some(c.z_v),
            z_p: Some(c.z_p),
        }
    }

    fn notes(&self) -> Vec<String> {
        let c = self.file.model.config();
        vec![format!(
            "{}: posterior means; z_t pooled over the active frames; MSE of ln(|X| + {}) over the active frames (natural-log units squared).",
            self.name, c.mag_floor
        )]
    }

    fn encode(&self, clip: &ClipInput<'_>) -> Result<ClipLatents, String> {
        let c = self.file.model.config();
        if c.sample_rate != clip.cfg.sample_rate || c.hop != clip.cfg.hop {
            return Err(format!(
                "model is {} Hz / hop {}, the data {} Hz / hop {}",
                c.sample_rate, c.hop, clip.cfg.sample_rate, clip.cfg.hop
            ));
        }
        self.run(clip).map_err(|e| e.to_string())
    }
}
