//! Offline neural timbre swap with the trained model (the reference the engine's neural mode is
//! checked against, and the `neural` row of `timbreswap eval-transfer`): encode the source's
//! `z_v` and `z_p`, decode them with the reference's `z_t`, and resynthesise the decoded
//! magnitudes with the source's phase (least-squares overlap-add, the engine's STFT).

use candle_core::Tensor;
use timbreswap_engine::stft::Stft;

use super::features::FeatureExtractor;
use super::file::ModelFile;
use super::ThreeFactor;
use crate::dsp_split::centred_frame;
use crate::transfer::{TransferPair, TransferSystem};

/// `source` (mono, at the model rate) decoded with the timbre `z_t`; same length as the source.
pub fn swap(model: &ThreeFactor, source: &[f32], z_t: &[f32]) -> candle_core::Result<Vec<f32>> {
    let cfg = model.config();
    let stft_cfg = cfg.stft();
    let mut ex = FeatureExtractor::new(&stft_cfg, cfg.mag_floor);
    let f = ex.clip(source);
    let dev = model.device();
    let local = model.encode_clip(&f)?.local;
    let target = Tensor::from_slice(z_t, (1, z_t.len()), dev)?;
    let y = model.decode(
        &target,
        local.variation.as_ref().map(|v| &v.mean),
        &local.pitch.mean,
    )?;
    let log_mag = model
        .denormalise_log_mag(&y)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    Ok(resynthesise(source, &log_mag, &stft_cfg, cfg.mag_floor))
}

/// Audio with the magnitudes `ln(|Y| + mag_floor)` (row-major `frames x bins`, one frame per
/// hop of `source`, the dataset's frame convention) and the phase of `source`'s STFT, by
/// least-squares overlap-add (normalised by the window overlap, which is short of one within
/// half a window of the ends); same length as `source`. With the source's own log-magnitudes
/// it reproduces the source.
pub fn resynthesise(
    source: &[f32],
    log_mag: &[f32],
    stft_cfg: &timbreswap_engine::StftConfig,
    mag_floor: f32,
) -> Vec<f32> {
    let n = stft_cfg.n_fft;
    let bins = stft_cfg.n_bins();
    let frames = (log_mag.len() / bins).min(source.len() / stft_cfg.hop + 1);
    let mut stft = Stft::new(stft_cfg);
    let mut frame = vec![0.0f32; n];
    let mut spectrum = vec![Default::default(); bins];
    let mut grain = vec![0.0f32; n];
    let pad = n / 2;
    let mut out = vec![0.0f32; source.len() + n];
    // The window product each grain carries (1 summed over frames in the interior); near the
    // clip's ends fewer frames overlap, so the sum is divided out there too.
    let mut window = vec![0.0f32; n];
    stft.identity_grain(&vec![1.0f32; n], &mut window);
    let mut coverage = vec![0.0f32; source.len() + n];
    for t in 0..frames {
        centred_frame(source, t * stft_cfg.hop, &mut frame);
        stft.analyse(&frame, &mut spectrum);
        for (k, c) in spectrum.iter_mut().enumerate() {
            let mag = (log_mag[t * bins + k].exp() - mag_floor).max(0.0);
            let norm = c.norm();
            *c = if norm > 1e-20 {
                *c * (mag / norm)
            } else {
                // No phase to keep: zero phase.
                num_complex_real(mag)
            };
        }
        stft.synthesise(&mut spectrum, &mut grain);
        // Grain `t` covers samples `t * hop - pad ..`; `out` is offset by `pad`.
        let start = t * stft_cfg.hop;
        for (o, g) in out[start..start + n].iter_mut().zip(&grain) {
            *o += *g;
        }
        for (c, w) in coverage[start..start + n].iter_mut().zip(&window) {
            *c += *w;
        }
    }
    out.iter()
        .zip(&coverage)
        .skip(pad)
        .take(source.len())
        .map(|(o, c)| if *c > 1e-3 { o / c } else { *o })
        .collect()
}

/// A real value as the engine's complex type.
fn num_complex_real<C: From<f32>>(v: f32) -> C {
    C::from(v)
}

/// The `neural` row of the transfer table: [`swap`] with the reference clip's `z_t`.
pub struct NeuralTransfer {
    /// Row name.
    pub name: String,
    /// The model.
    pub file: ModelFile,
}

impl TransferSystem for NeuralTransfer {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn notes(&self) -> Vec<String> {
        vec![format!(
            "{}: offline neural swap — source z_v and z_p (posterior means), the reference note's z_t, decoded magnitudes with the source's STFT phase, least-squares overlap-add; no level matching.",
            self.name
        )]
    }

    fn transfer(&self, pair: &TransferPair<'_>) -> Result<Vec<f32>, String> {
        let model = &self.file.model;
        if pair.sample_rate != model.config().sample_rate {
            return Err(format!(
                "the model runs at {} Hz, the data is {} Hz",
                model.config().sample_rate,
                pair.sample_rate
            ));
        }
        let z_t = model
            .clip_timbre(pair.reference)
            .map_err(|e| e.to_string())?;
        let out = swap(model, pair.source, &z_t).map_err(|e| e.to_string())?;
        if out.iter().all(|v| v.is_finite()) {
            Ok(out)
        } else {
            Err("the model produced non-finite audio".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resynthesis_with_the_source_magnitudes_reproduces_the_source() {
        let cfg = timbreswap_engine::StftConfig::default();
        let mut rng = crate::rng::SplitMix64::new(4);
        // A decaying harmonic tone plus a little noise, 0.5 s.
        let source: Vec<f32> = (0..16_000)
            .map(|i| {
                let t = i as f32 / cfg.sample_rate as f32;
                let tone: f32 = (1..6)
                    .map(|h| (std::f32::consts::TAU * 220.0 * h as f32 * t).sin() / h as f32)
                    .sum();
                0.3 * tone * (-2.0 * t).exp() + 0.01 * (rng.next_f32() - 0.5)
            })
            .collect();
        let floor = 1e-3;
        let features = FeatureExtractor::new(&cfg, floor).clip(&source);
        let out = resynthesise(&source, &features.log_mag, &cfg, floor);
        assert_eq!(out.len(), source.len());
        let (mut sig, mut err) = (0.0f64, 0.0f64);
        for (a, b) in source.iter().zip(&out) {
            sig += (*a as f64).powi(2);
            err += (*a as f64 - *b as f64).powi(2);
        }
        let snr = 10.0 * (sig / err).log10();
        assert!(snr > 60.0, "identity resynthesis SNR {snr:.1} dB");
    }
}
