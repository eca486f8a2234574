//! The baseline rows: the DSP split (cepstral envelope and fine structure) and the sounding F0.

use super::*;

/// The DSP-split baseline: mean cepstral envelope over the active frames as `z_t`, the frame's
/// cepstral fine structure as `z_p`, no `z_v`; lossless (MSE 0).
#[derive(Debug, Clone, Copy, Default)]
pub struct DspSplit;

impl LatentModel for DspSplit {
    fn name(&self) -> String {
        "DSP split".to_string()
    }

    fn dims(&self, cfg: &StftConfig) -> LatentDims {
        LatentDims {
            z_t: Some(cfg.n_bins()),
            z_v: None,
            z_p: Some(cfg.n_bins()),
        }
    }

    fn notes(&self) -> Vec<String> {
        vec![
            "DSP split: MSE 0 by construction, lossless (envelope + fine structure = ln(|X| + 1e-9) exactly); \
             z_t = mean cepstral envelope over the active frames, z_p = the frame's fine structure (one value per bin, natural-log magnitude), no z_v."
                .to_string(),
        ]
    }

    fn encode(&self, clip: &ClipInput<'_>) -> Result<ClipLatents, String> {
        let z_t = dsp_split::timbre_vector(clip.features, clip.active)
            .ok_or_else(|| "no active frame".to_string())?;
        let mut z_p = Vec::with_capacity(clip.active.len() * clip.features.bins);
        for &f in clip.active {
            z_p.extend_from_slice(dsp_split::pitch_vector(clip.features, f));
        }
        Ok(ClipLatents {
            z_t: Some(z_t),
            z_v: None,
            z_p: Some(z_p),
            reconstruction: Some(SquaredError {
                sum: 0.0,
                count: (clip.features.frames * clip.features.bins) as u64,
            }),
        })
    }
}

/// Diagnostic row: a one-value "pitch latent" that holds the frame's sounding F0 (in cents,
/// MIDI note × 100, measured by [`crate::f0::f0_near`] around the frame's labelled note) and
/// nothing else: no timbre, no level, no time. Its "instrument on z_p" is what the column
/// scores for a latent that knows the pitch as finely as the decoder needs it, and no more.
#[derive(Debug, Clone, Copy, Default)]
pub struct SoundingF0;

impl LatentModel for SoundingF0 {
    fn name(&self) -> String {
        "sounding F0 only".to_string()
    }

    fn dims(&self, _cfg: &StftConfig) -> LatentDims {
        LatentDims {
            z_t: None,
            z_v: None,
            z_p: Some(1),
        }
    }

    fn notes(&self) -> Vec<String> {
        vec![
            "sounding F0 only: z_p is one value, the frame's F0 in cents (100 x MIDI note), \
             measured to a fraction of a cent from the audio around the labelled note \
             (normalised cross-correlation refined to a fraction of a sample; \
             training/src/f0.rs; a frame with no period to measure, its sound ending inside \
             it, holds the note's nominal pitch); no z_t, no z_v, no reconstruction. Its \
             instrument on z_p is what a latent holding the pitch exactly, and nothing else, \
             scores in that column."
                .to_string(),
        ]
    }

    fn encode(&self, clip: &ClipInput<'_>) -> Result<ClipLatents, String> {
        let sr = clip.cfg.sample_rate;
        let mut z_p = Vec::with_capacity(clip.active.len());
        for &f in clip.active {
            let note = clip.record.frame_notes[f];
            let nominal = crate::transfer::midi_to_hz(note as f64);
            // An active frame whose sound ends (or starts) inside it may leave no period to
            // measure: it holds the note's nominal pitch, which carries no instrument.
            let hz =
                crate::f0::f0_near(clip.samples, sr, f * clip.cfg.hop, nominal).unwrap_or(nominal);
            z_p.push((6900.0 + 1200.0 * (hz / 440.0).log2()) as f32);
        }
        Ok(ClipLatents {
            z_t: None,
            z_v: None,
            z_p: Some(z_p),
            reconstruction: None,
        })
    }
}
