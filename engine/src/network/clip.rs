//! The timbre encoder over a whole clip: its frames' hidden features pooled into `z_t`.

use super::{at_training_level, pitch_ruler, Network};
use crate::cepstrum::Cepstrum;
use crate::features::{pooling_weights, FeatureExtractor, FrameFeatures, MAX_POOLED_FRAMES};
use crate::harmonics;
use crate::model_config::POOLING_RANGE_DB;

/// Frames analysed per batch by [`Network::clip_timbre`] (bounds its memory on long clips).
const CLIP_CHUNK_FRAMES: usize = 1024;

impl Network {
    /// Posterior-mean `z_t` of a whole clip (mono, at the model rate): the training's
    /// pooling, frames within [`POOLING_RANGE_DB`] of the loudest weighted equally. Works
    /// through the clip in chunks, so memory stays small for long clips. A clip whose peak
    /// lies outside [`CLIP_PEAK_RANGE`](super::CLIP_PEAK_RANGE) is first scaled to the
    /// range's nearer end, so a very quiet or very loud reference reads as the training clips
    /// do. Allocates; call it off the audio thread.
    pub fn clip_timbre(&self, audio: &[f32]) -> Vec<f32> {
        let audio = at_training_level(audio);
        let audio = &audio[..];
        let c = &self.config;
        let mut ex = FeatureExtractor::new(&c.stft(), c.mag_floor);
        let frames = audio.len() / c.hop + 1;
        let weights = pooling_weights(&ex.frame_db(audio, 0, frames), POOLING_RANGE_DB);
        self.pool_timbre(&weights, |start, n, log_mag, envelope| {
            let f = ex.frames(audio, start * c.hop, n);
            log_mag.copy_from_slice(&f.log_mag);
            envelope.copy_from_slice(&f.envelope);
        })
    }

    /// [`Network::clip_timbre`] of a clip whose features are already at hand: `features` must
    /// be [`FeatureExtractor::clip`] of the clip at the training level ([`at_training_level`])
    /// at this network's framing and magnitude floor, as the Exemplar analysis also reads them
    /// (`None` otherwise: another bin count). Features made
    /// [`without_envelope`](FeatureExtractor::without_envelope) get the envelopes of the
    /// frames pooled made here, with the extractor's own cepstrum. The same latent, bit for
    /// bit, without analysing the clip again. Allocates; call it off the audio thread.
    pub fn clip_timbre_of(&self, features: &FrameFeatures) -> Option<Vec<f32>> {
        let bins = self.config.bins();
        let has_envelope = features.envelope.len() == features.log_mag.len();
        if features.bins != bins
            || features.log_mag.len() != features.frames * bins
            || !(has_envelope || features.envelope.is_empty())
        {
            return None;
        }
        let weights = pooling_weights(&features.frame_db, POOLING_RANGE_DB);
        let mut cepstrum = (!has_envelope).then(|| Cepstrum::new(&self.stft()));
        Some(self.pool_timbre(&weights, |start, n, log_mag, envelope| {
            let rows = start * bins..(start + n) * bins;
            log_mag.copy_from_slice(&features.log_mag[rows.clone()]);
            match &mut cepstrum {
                None => envelope.copy_from_slice(&features.envelope[rows]),
                Some(cepstrum) => {
                    let frames = log_mag
                        .chunks_exact(bins)
                        .zip(envelope.chunks_exact_mut(bins));
                    for (l, e) in frames {
                        cepstrum.envelope(l, e);
                    }
                }
            }
        }))
    }

    /// The timbre encoder over a clip's frames, [`CLIP_CHUNK_FRAMES`] at a time: `rows(start, n,
    /// log_mag, envelope)` fills the features of frames `start..start + n` (`n x bins` each);
    /// their hidden vectors are pooled with `weights` (one per frame) and the head gives the
    /// posterior mean of `z_t`. With harmonic input (`timbre_harmonics`), each chunk also
    /// reads the pitch stack's look-back before it, and the pitch stack runs over the chunk
    /// for each frame's ruler.
    fn pool_timbre(
        &self,
        weights: &[f32],
        mut rows: impl FnMut(usize, usize, &mut [f32], &mut [f32]),
    ) -> Vec<f32> {
        let c = &self.config;
        let (bins, hid, harmonics) = (c.bins(), c.hidden, c.timbre_harmonics);
        let width = bins + harmonics;
        let context = if harmonics > 0 { c.look_back() } else { 0 };
        let frames = weights.len();
        // A long clip's weights leave most of its frames out: only those with weight are
        // encoded. Up to MAX_POOLED_FRAMES frames every frame runs as before, so the latent of
        // such a clip (every clip the dataset and the evaluation use) keeps its bits: skipping a
        // quiet frame would move others into another of the product's blockings.
        if harmonics == 0 && frames > MAX_POOLED_FRAMES && self.timbre_frames.frame_by_frame() {
            return self.pool_timbre_weighted(weights, rows);
        }
        let mut pooled = vec![0.0f64; hid];
        let mut hidden = vec![0.0f32; CLIP_CHUNK_FRAMES * hid];
        let chunk = (CLIP_CHUNK_FRAMES + context).min(frames);
        let (mut log_mag, mut envelope) = (vec![0.0f32; chunk * bins], vec![0.0f32; chunk * bins]);
        // Harmonic input only: the pitch stack's input and output, and the timbre input rows.
        let outputs = c.pitch_outputs();
        let scratch = |n: usize| {
            if harmonics > 0 {
                vec![0.0f32; n]
            } else {
                Vec::new()
            }
        };
        let (mut pitch_in, mut pitch_out) = (scratch(chunk * bins), scratch(chunk * outputs));
        let mut input = scratch(CLIP_CHUNK_FRAMES.min(frames) * width);
        let mut start = 0;
        while start < frames {
            let n = CLIP_CHUNK_FRAMES.min(frames - start);
            let first = start.saturating_sub(context);
            let (lead, m) = (start - first, start + n - first);
            let (log_mag, envelope) = (&mut log_mag[..m * bins], &mut envelope[..m * bins]);
            rows(first, m, log_mag, envelope);
            if harmonics > 0 {
                let (pitch_in, pitch_out) =
                    (&mut pitch_in[..m * bins], &mut pitch_out[..m * outputs]);
                let mut raw = vec![0.0f32; bins];
                for ((l, e), p) in log_mag
                    .chunks_exact(bins)
                    .zip(envelope.chunks_exact(bins))
                    .zip(pitch_in.chunks_exact_mut(bins))
                {
                    if c.cepstrum {
                        for ((r, l), e) in raw.iter_mut().zip(l).zip(e) {
                            *r = l - e;
                        }
                        self.normalise_pitch(&raw, p);
                    } else {
                        self.normalise_pitch(l, p);
                    }
                }
                self.pitch
                    .forward_frames(&self.kernels, pitch_in, m, pitch_out);
                let logits = 2 * c.pitch_heads()..2 * c.pitch_heads() + c.pitch_bins;
                for t in lead..m {
                    let row = &mut input[(t - lead) * width..(t - lead + 1) * width];
                    let (env, levels) = row.split_at_mut(bins);
                    let l = &log_mag[t * bins..(t + 1) * bins];
                    env.copy_from_slice(&envelope[t * bins..(t + 1) * bins]);
                    self.normalise_envelope(l, env);
                    let ruler = pitch_ruler(
                        &pitch_out[t * outputs..(t + 1) * outputs][logits.clone()],
                        c.pitch_ruler_scale,
                    );
                    harmonics::harmonic_levels(c, self.scale[0], l, ruler, levels);
                }
                self.timbre_frames.forward_frames(
                    &self.kernels,
                    &input[..n * width],
                    n,
                    &mut hidden[..n * hid],
                );
            } else {
                for (l, e) in log_mag
                    .chunks_exact(bins)
                    .zip(envelope.chunks_exact_mut(bins))
                {
                    self.normalise_envelope(l, e);
                }
                self.timbre_frames.forward_frames(
                    &self.kernels,
                    envelope,
                    n,
                    &mut hidden[..n * hid],
                );
            }
            for (t, h) in hidden[..n * hid].chunks_exact(hid).enumerate() {
                add_weighted(&mut pooled, weights[start + t], h);
            }
            start += n;
        }
        self.timbre_head_of(&pooled)
    }

    /// [`Self::pool_timbre`] of a clip longer than [`MAX_POOLED_FRAMES`] frames, for a timbre
    /// encoder that reads each frame alone (no harmonic input, no look-back): only the frames
    /// of non-zero weight go through it, [`CLIP_CHUNK_FRAMES`] at a time (a long clip's
    /// weights count at most [`MAX_POOLED_FRAMES`] of its frames). The same latent as encoding
    /// every frame, but for rounding: a frame's sums may run in another of the product's
    /// blockings.
    fn pool_timbre_weighted(
        &self,
        weights: &[f32],
        mut rows: impl FnMut(usize, usize, &mut [f32], &mut [f32]),
    ) -> Vec<f32> {
        let (bins, hid) = (self.config.bins(), self.config.hidden);
        let chosen: Vec<usize> = (0..weights.len()).filter(|&t| weights[t] > 0.0).collect();
        let chunk = CLIP_CHUNK_FRAMES.min(chosen.len());
        let (mut log_mag, mut envelope) = (vec![0.0f32; chunk * bins], vec![0.0f32; chunk * bins]);
        let mut hidden = vec![0.0f32; chunk * hid];
        let mut pooled = vec![0.0f64; hid];
        for frames in chosen.chunks(CLIP_CHUNK_FRAMES) {
            let n = frames.len();
            for ((&t, l), e) in frames
                .iter()
                .zip(log_mag.chunks_exact_mut(bins))
                .zip(envelope.chunks_exact_mut(bins))
            {
                rows(t, 1, l, e);
                self.normalise_envelope(l, e);
            }
            self.timbre_frames.forward_frames(
                &self.kernels,
                &envelope[..n * bins],
                n,
                &mut hidden[..n * hid],
            );
            for (&t, h) in frames.iter().zip(hidden.chunks_exact(hid)) {
                add_weighted(&mut pooled, weights[t], h);
            }
        }
        self.timbre_head_of(&pooled)
    }

    /// The posterior mean of `z_t` from the timbre encoder's pooled features.
    fn timbre_head_of(&self, pooled: &[f64]) -> Vec<f32> {
        let c = &self.config;
        let pooled: Vec<f32> = pooled.iter().map(|v| *v as f32).collect();
        let mut stats = vec![0.0f32; 2 * c.z_t];
        self.timbre_head.apply(&self.kernels, &pooled, &mut stats);
        stats.truncate(c.z_t);
        stats
    }
}

/// `pooled += w * h` in f64, a frame's hidden features `h` into the pooled sum, where its weight
/// `w` is above 0 (a frame of weight 0 adds nothing, not even a signed zero).
fn add_weighted(pooled: &mut [f64], w: f32, h: &[f32]) {
    let w = f64::from(w);
    if w > 0.0 {
        for (p, h) in pooled.iter_mut().zip(h) {
            *p += w * f64::from(*h);
        }
    }
}
