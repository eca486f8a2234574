//! Per-frame spectral processing: FFT, cepstral split, classic envelope swap with level
//! matching, inverse FFT. Runs on the worker thread (realtime mode) or inline on the audio
//! thread (offline mode); either way it never allocates after construction.

use realfft::num_complex::Complex32;
use rtrb::{Consumer, Producer};

use crate::cepstrum::Cepstrum;
use crate::config::StftConfig;
use crate::messages::{ControlToProcessorMsg, ProcessorToControlMsg, Slot};
use crate::stft::Stft;
use crate::timbre::MAG_FLOOR;

/// Per-frame smoothing of the level-matching gain (share of the new value taken each frame).
const LEVEL_SMOOTHING: f32 = 0.5;
/// Largest level-matching boost, in dB (protects against near-empty target envelopes).
const MAX_BOOST_DB: f32 = 40.0;

/// The worker's per-frame signal processor.
pub struct FrameProcessor {
    stft: Stft,
    cepstrum: Cepstrum,
    /// Spectrum of the current frame, `n_bins` bins.
    spectrum: Vec<Complex32>,
    /// Natural-log magnitude of the current frame.
    log_mag: Vec<f32>,
    /// Cepstral envelope of the current frame.
    envelope: Vec<f32>,
    /// Target envelope (morph of the slots).
    target: Vec<f32>,
    /// Envelope of slot A (natural-log magnitude per bin), if loaded.
    timbre_a: Option<Box<[f32]>>,
    /// Envelope of slot B, if loaded.
    timbre_b: Option<Box<[f32]>>,
    /// Smoothed level-matching gain, in dB; `None` until the first frame after a reset.
    gain_db: Option<f32>,
    /// Frame energy (sum of squared bin magnitudes) below which a frame counts as silent:
    /// about -120 dB re a full-scale sine.
    silence_energy: f32,
    control: Consumer<ControlToProcessorMsg>,
    garbage: Producer<ProcessorToControlMsg>,
}

impl FrameProcessor {
    /// Builds the processor for `cfg`. Not realtime-safe (allocates).
    pub fn new(
        cfg: &StftConfig,
        control: Consumer<ControlToProcessorMsg>,
        garbage: Producer<ProcessorToControlMsg>,
    ) -> Self {
        let bins = cfg.n_bins();
        Self {
            stft: Stft::new(cfg),
            cepstrum: Cepstrum::new(cfg),
            spectrum: vec![Complex32::default(); bins],
            log_mag: vec![0.0; bins],
            envelope: vec![0.0; bins],
            target: vec![0.0; bins],
            timbre_a: None,
            timbre_b: None,
            gain_db: None,
            silence_energy: (cfg.n_fft as f32 / 4.0).powi(2) * 1e-12,
            control,
            garbage,
        }
    }

    /// The STFT windows this processor uses (for dry substitution on the audio thread).
    pub fn stft(&self) -> &Stft {
        &self.stft
    }

    /// Forgets the level smoothing state. Realtime-safe.
    pub fn reset(&mut self) {
        self.gain_db = None;
    }

    /// Applies pending control messages. Realtime-safe: replaced envelopes are handed back to
    /// the control side to be freed there.
    pub fn poll_control(&mut self) {
        while let Ok(msg) = self.control.pop() {
            match msg {
                ControlToProcessorMsg::SetTimbre { slot, envelope } => {
                    let envelope = envelope.filter(|e| e.len() == self.target.len());
                    let old = match slot {
                        Slot::A => std::mem::replace(&mut self.timbre_a, envelope),
                        Slot::B => std::mem::replace(&mut self.timbre_b, envelope),
                    };
                    if let Some(old) = old {
                        // If the control side has stopped draining, freeing here is the only
                        // option left; it does not happen while the engine is used as designed.
                        let _ = self.garbage.push(ProcessorToControlMsg::Garbage(old));
                    }
                }
            }
        }
    }

    /// Whether any slot holds a timbre (otherwise frames pass through unchanged).
    pub fn has_timbre(&self) -> bool {
        self.timbre_a.is_some() || self.timbre_b.is_some()
    }

    /// Processes one frame (`n_fft` samples, unwindowed) with morph position `morph` (0 = A,
    /// 1 = B) into a synthesis-windowed `grain` of `n_fft` samples. Realtime-safe.
    pub fn process(&mut self, frame: &[f32], morph: f32, grain: &mut [f32]) {
        self.poll_control();
        let morph = if morph.is_finite() {
            morph.clamp(0.0, 1.0)
        } else {
            0.0
        };
        match (&self.timbre_a, &self.timbre_b) {
            (None, None) => {
                self.stft.identity_grain(frame, grain);
                return;
            }
            (Some(a), None) => self.target.copy_from_slice(a),
            (None, Some(b)) => self.target.copy_from_slice(b),
            (Some(a), Some(b)) => {
                for ((t, a), b) in self.target.iter_mut().zip(a.iter()).zip(b.iter()) {
                    *t = a + (b - a) * morph;
                }
            }
        }
        self.stft.analyse(frame, &mut self.spectrum);
        for (l, c) in self.log_mag.iter_mut().zip(&self.spectrum) {
            *l = (c.norm() + MAG_FLOOR).ln();
        }
        self.cepstrum.envelope(&self.log_mag, &mut self.envelope);
        // Keep the fine structure and the phase: Y = X * exp(target - envelope).
        let mut energy_in = 0.0f32;
        let mut energy_out = 0.0f32;
        for ((c, t), e) in self
            .spectrum
            .iter_mut()
            .zip(&self.target)
            .zip(&self.envelope)
        {
            energy_in += c.norm_sqr();
            *c *= (t - e).clamp(-80.0, 80.0).exp();
            energy_out += c.norm_sqr();
        }
        // Level matching: same spectral energy as the input frame, smoothed over frames. A
        // silent frame says nothing about the right gain, so it holds the previous one (an
        // onset after silence then starts at a sensible gain instead of fading in).
        let silent = energy_in < self.silence_energy || energy_out <= 0.0;
        let gain_db = match (self.gain_db, silent) {
            (Some(prev), true) => prev,
            (None, true) => 0.0,
            (prev, false) => {
                let frame_gain_db = (10.0 * (energy_in / energy_out).log10()).min(MAX_BOOST_DB);
                match prev {
                    Some(prev) => prev + LEVEL_SMOOTHING * (frame_gain_db - prev),
                    None => frame_gain_db,
                }
            }
        };
        let gain_db = if gain_db.is_finite() { gain_db } else { 0.0 };
        self.gain_db = Some(gain_db);
        let gain = 10f32.powf(gain_db / 20.0);
        for c in self.spectrum.iter_mut() {
            *c *= gain;
        }
        self.stft.synthesise(&mut self.spectrum, grain);
        for g in grain.iter_mut() {
            if !g.is_finite() {
                *g = 0.0;
            }
        }
    }
}
