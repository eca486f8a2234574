//! The reference clip's analysis: the frames an [`super::ExemplarSwap`] chooses from.

use realfft::num_complex::Complex32;

use super::notes::NoteTracker;
use super::pitch::{refine_pitch, Yin, YIN_TRUST};
use super::{MAG_FLOOR, MIDDLE_C_HZ};
use crate::config::StftConfig;
use crate::features::FeatureExtractor;
use crate::network::{at_training_level, Network};

/// Longest stretch of a clip the bank analyses, in seconds (its first seconds; a bank of
/// 20 s holds about 12 MB).
pub const MAX_BANK_SECONDS: usize = 20;

/// The reference clip as frames to choose from.
#[derive(Debug, Clone)]
pub struct ExemplarBank {
    /// The framing the clip was analysed at.
    pub(super) cfg: StftConfig,
    pub(super) bins: usize,
    /// `ln(|X| + mag_floor)` of each kept frame, row-major `frames x bins`.
    pub(super) log_mag: Vec<f32>,
    /// Pitch ruler of each kept frame, semitones from middle C.
    pub(super) pitch: Vec<f32>,
    /// Note age of each kept frame, in frames.
    pub(super) age: Vec<u32>,
    /// Whether the next kept frame continues the same note.
    pub(super) continues: Vec<bool>,
    /// Amplitude of partials `1..=HARMONIC_PARTIALS` of each kept frame (linear, the sinusoid's
    /// peak amplitude in sample units), row-major `frames x HARMONIC_PARTIALS`; measured on a
    /// [`HARMONIC_FFT`]-point Hann spectrum, so low notes' partials are resolved.
    pub(super) harmonics: Vec<f32>,
    /// Noise between the partials of each kept frame, row-major `frames x HARMONIC_PARTIALS`:
    /// entry `h` is the spectrum's valley between partials `h` and `h + 1` (`h = 0`: below
    /// the fundamental) as a noise amplitude per bin (`|X| / sqrt(sum w^2)`).
    pub(super) noise: Vec<f32>,
}

impl ExemplarBank {
    /// Analyses `audio` (mono, at `cfg`'s rate; its first [`MAX_BANK_SECONDS`]). A frame's
    /// pitch is YIN's where YIN is sure, otherwise the harmonic sum near the last sure pitch.
    /// `None` when the clip has no sounding frame. Allocates; call it off the audio thread.
    pub fn new(cfg: &StftConfig, audio: &[f32]) -> Option<Self> {
        Self::analyse(cfg, audio, None, None)
    }

    /// [`new`](Self::new) with the clip's pitch given (semitones from middle C; `None`:
    /// measured).
    pub fn analyse_with_pitch(cfg: &StftConfig, audio: &[f32], known: Option<f32>) -> Option<Self> {
        Self::analyse(cfg, audio, None, known)
    }

    /// [`new`](Self::new) with `net`'s pitch ruler as the fallback guess where YIN is unsure
    /// (at `net`'s framing); `known`: the clip's pitch given (semitones from middle C). `None`
    /// also when the model has no pitch ruler.
    pub fn with_ruler(net: &Network, audio: &[f32], known: Option<f32>) -> Option<Self> {
        if !net.config().pitch_ruler() {
            return None;
        }
        Self::analyse(&net.stft(), audio, Some(net), known)
    }

    fn analyse(
        cfg: &StftConfig,
        audio: &[f32],
        net: Option<&Network>,
        known: Option<f32>,
    ) -> Option<Self> {
        let audio = &audio[..audio.len().min(MAX_BANK_SECONDS * cfg.sample_rate as usize)];
        let audio = at_training_level(audio);
        let bins = cfg.n_bins();
        let mut ex = FeatureExtractor::new(cfg, MAG_FLOOR);
        let f = ex.clip(&audio);
        let mut ruler = net.map(|n| (n, n.state()));
        let mut env = vec![0.0f32; bins];
        let mut fine = vec![0.0f32; bins];
        let mut mag = vec![0.0f32; bins];
        let bin_hz = cfg.sample_rate as f32 / cfg.n_fft as f32;
        let sr = cfg.sample_rate as f32;
        let mut tracker = NoteTracker::new(sr / cfg.hop as f32);
        let mut bank = Self {
            cfg: *cfg,
            bins,
            log_mag: Vec::new(),
            pitch: Vec::new(),
            age: Vec::new(),
            continues: Vec::new(),
            harmonics: Vec::new(),
            noise: Vec::new(),
        };
        let mut prev_kept: Option<u32> = None;
        // YIN's sure answers first: the whole clip is at hand, so a frame YIN is unsure of
        // (a note's first frames, before YIN has a window of it) takes the nearest sure pitch
        // as the guess, before or after it. Frames are independent: two threads.
        let sure: Vec<Option<f32>> = in_halves(f.frames, |frames| {
            let mut yin = Yin::new();
            frames
                .map(|t| {
                    let end = (t * cfg.hop + cfg.n_fft / 2).min(audio.len());
                    yin.estimate(&audio[..end], sr)
                        .filter(|(_, aperiodicity)| *aperiodicity < YIN_TRUST)
                        .map(|(p, _)| p)
                })
                .collect()
        });
        let nearest = nearest_known(&sure);
        // The frames kept (sounding), in order, with their centre sample and fundamental.
        let mut kept: Vec<(usize, f32)> = Vec::new();
        for t in 0..f.frames {
            let rows = t * bins..(t + 1) * bins;
            let guess = match &mut ruler {
                Some((net, st)) => {
                    env.copy_from_slice(&f.envelope[rows.clone()]);
                    fine.copy_from_slice(&f.fine[rows.clone()]);
                    net.normalise(&f.log_mag[rows.clone()], &mut env, &mut fine);
                    net.pitch_step(st, &fine)?
                }
                None => nearest[t],
            };
            for (m, l) in mag.iter_mut().zip(&f.log_mag[rows.clone()]) {
                *m = (l.exp() - MAG_FLOOR).max(0.0);
            }
            let pitch = known.unwrap_or_else(|| match sure[t] {
                Some(p) => p,
                None => refine_pitch(&mag, bin_hz, guess),
            });
            let note = tracker.update(f.frame_db[t], pitch);
            if !note.sounding {
                prev_kept = None;
                continue;
            }
            if let (Some(prev), Some(last)) = (prev_kept, bank.continues.last_mut()) {
                *last = note.age == prev + 1;
            }
            bank.log_mag.extend_from_slice(&f.log_mag[rows]);
            kept.push((t * cfg.hop, MIDDLE_C_HZ * 2f32.powf(pitch / 12.0)));
            bank.pitch.push(pitch);
            bank.age.push(note.age);
            bank.continues.push(false);
            prev_kept = Some(note.age);
        }
        // The partials of every kept frame (each frame alone: two threads), in order; each
        // half hands back its rows as one pair of vectors, not a vector per frame.
        let measured: Vec<(Vec<f32>, Vec<f32>)> = in_halves(kept.len(), |frames| {
            let mut partials = PartialMeter::new();
            let (mut harmonics, mut noise) = (Vec::new(), Vec::new());
            for (centre, f0) in &kept[frames] {
                partials.measure(&audio, *centre, *f0, sr, &mut harmonics, &mut noise);
            }
            vec![(harmonics, noise)]
        });
        for (harmonics, noise) in measured {
            bank.harmonics.extend(harmonics);
            bank.noise.extend(noise);
        }
        (!bank.pitch.is_empty()).then_some(bank)
    }

    /// The framing the clip was analysed at (an [`ExemplarSwap`] runs at the same).
    pub fn stft(&self) -> StftConfig {
        self.cfg
    }

    /// Frames in the bank.
    pub fn frames(&self) -> usize {
        self.pitch.len()
    }

    pub(super) fn row(&self, j: usize) -> &[f32] {
        &self.log_mag[j * self.bins..(j + 1) * self.bins]
    }

    pub(super) fn harmonics(&self, j: usize) -> &[f32] {
        &self.harmonics[j * HARMONIC_PARTIALS..(j + 1) * HARMONIC_PARTIALS]
    }

    pub(super) fn noise(&self, j: usize) -> &[f32] {
        &self.noise[j * HARMONIC_PARTIALS..(j + 1) * HARMONIC_PARTIALS]
    }
}

/// `work` over `0..n` split in two halves, the second half on another thread (the first
/// on this one; both here if the system refuses a thread, or for fewer than 64 items), the
/// results concatenated in order: what one call over `0..n` would give when the items are
/// independent.
fn in_halves<T: Send>(n: usize, work: impl Fn(std::ops::Range<usize>) -> Vec<T> + Sync) -> Vec<T> {
    if n < 64 {
        return work(0..n);
    }
    let half = n / 2;
    let work = &work;
    std::thread::scope(|scope| {
        let second = std::thread::Builder::new()
            .name("timbreswap-exemplar-half".into())
            .spawn_scoped(scope, move || work(half..n));
        let mut out = work(0..half);
        match second {
            Ok(thread) => match thread.join() {
                Ok(rest) => out.extend(rest),
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Err(_) => out.extend(work(half..n)),
        }
        out
    })
}

/// For each entry, the nearest `Some` value of `values` (itself if `Some`; the earlier one on
/// a tie), or 0 when there is none.
fn nearest_known(values: &[Option<f32>]) -> Vec<f32> {
    let mut out = vec![0.0f32; values.len()];
    let mut before: Vec<Option<(usize, f32)>> = Vec::with_capacity(values.len());
    let mut last = None;
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            last = Some((i, *v));
        }
        before.push(last);
    }
    let mut after = None;
    for i in (0..values.len()).rev() {
        if let Some(v) = values[i] {
            after = Some((i, v));
        }
        out[i] = match (before[i], after) {
            (Some((b, vb)), Some((a, va))) => {
                if i - b <= a - i {
                    vb
                } else {
                    va
                }
            }
            (Some((_, v)), None) | (None, Some((_, v))) => v,
            (None, None) => 0.0,
        };
    }
    out
}

/// FFT size of the reference's partial measurement ([`ExemplarBank`]), in samples.
pub const HARMONIC_FFT: usize = 2048;
/// Partials the bank measures per frame for [`Shift::Harmonic`] (enough to reach 16 kHz
/// from a 62.5 Hz fundamental).
pub const HARMONIC_PARTIALS: usize = 256;
/// Highest partial frequency [`Shift::Harmonic`] plays, in Hz.
pub const HARMONIC_MAX_HZ: f32 = 16_000.0;

/// Measures partial amplitudes of frames of a clip on a [`HARMONIC_FFT`]-point Hann spectrum.
struct PartialMeter {
    fft: std::sync::Arc<dyn realfft::RealToComplex<f32>>,
    window: Vec<f32>,
    time: Vec<f32>,
    spectrum: Vec<Complex32>,
    mag: Vec<f32>,
}

impl PartialMeter {
    fn new() -> Self {
        let fft = realfft::RealFftPlanner::<f32>::new().plan_fft_forward(HARMONIC_FFT);
        Self {
            spectrum: fft.make_output_vec(),
            fft,
            window: crate::stft::hann(HARMONIC_FFT),
            time: vec![0.0; HARMONIC_FFT],
            mag: vec![0.0; HARMONIC_FFT / 2 + 1],
        }
    }

    /// Appends [`HARMONIC_PARTIALS`] amplitudes of partials of `f0` Hz in the frame centred on
    /// sample `centre` of `audio` (`sr` Hz) to `out`.
    fn measure(
        &mut self,
        audio: &[f32],
        centre: usize,
        f0: f32,
        sr: f32,
        out: &mut Vec<f32>,
        noise: &mut Vec<f32>,
    ) {
        crate::features::centred_frame(audio, centre, &mut self.time);
        for (t, w) in self.time.iter_mut().zip(&self.window) {
            *t *= w;
        }
        let _ = self.fft.process(&mut self.time, &mut self.spectrum);
        for (m, x) in self.mag.iter_mut().zip(&self.spectrum) {
            *m = crate::stft::magnitude(*x);
        }
        // A sinusoid of amplitude A peaks at A * sum(w) / 2 = A * N / 4 for a Hann window.
        let to_amplitude = 4.0 / HARMONIC_FFT as f32;
        let bin_hz = sr / HARMONIC_FFT as f32;
        for h in 1..=HARMONIC_PARTIALS {
            let a = if h as f32 * f0 < HARMONIC_MAX_HZ.min(0.5 * sr) {
                partial_level(&self.mag, f0, h, bin_hz).unwrap_or(0.0) * to_amplitude
            } else {
                0.0
            };
            out.push(a);
        }
        // Valleys: the smallest magnitude between a partial's main lobe and the next one's
        // (a floor of the noise there, below the partials' leakage).
        let to_density = 1.0 / (0.375 * HARMONIC_FFT as f32).sqrt();
        for h in 0..HARMONIC_PARTIALS {
            let lo = ((h as f32 + 0.25) * f0 / bin_hz).ceil() as usize;
            let hi = (((h as f32 + 0.75) * f0 / bin_hz).floor() as usize).min(self.mag.len() - 1);
            let mid = (((h as f32 + 0.5) * f0 / bin_hz).round() as usize).min(self.mag.len() - 1);
            let v = if (h as f32 + 0.5) * f0 >= 0.5 * sr {
                0.0
            } else if lo <= hi {
                self.mag[lo..=hi]
                    .iter()
                    .copied()
                    .fold(f32::INFINITY, f32::min)
            } else {
                self.mag[mid]
            };
            noise.push(v * to_density);
        }
    }
}

/// The largest value of `row` within half a partial spacing of partial `h` of `f0` Hz (bins
/// `bin_hz` apart); `None` above the last bin.
pub(super) fn partial_level(row: &[f32], f0: f32, h: usize, bin_hz: f32) -> Option<f32> {
    let centre = h as f32 * f0 / bin_hz;
    let half = (0.5 * f0 / bin_hz).max(1.0);
    let lo = (centre - half).ceil().max(0.0) as usize;
    let hi = ((centre + half).floor() as usize).min(row.len() - 1);
    if lo > hi || lo >= row.len() {
        return None;
    }
    row[lo..=hi].iter().copied().reduce(f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two halves give what one pass gives, in order, at every size around the threshold,
    /// and from 64 items on the second half runs on another thread.
    #[test]
    fn halves_give_what_one_pass_gives() {
        for n in [0, 1, 5, 63, 64, 65, 1001] {
            let got = in_halves(n, |r| r.map(|i| (i * i) as u64).collect());
            let want: Vec<u64> = (0..n).map(|i| (i * i) as u64).collect();
            assert_eq!(got, want, "{n}");
            let names: Vec<bool> = in_halves(n, |r| {
                let other = std::thread::current().name() == Some("timbreswap-exemplar-half");
                r.map(|_| other).collect()
            });
            assert_eq!(names.iter().any(|&b| b), n >= 64, "{n}");
        }
    }

    #[test]
    fn unknown_values_take_the_nearest_known_one() {
        let v = [None, Some(1.0), None, None, None, Some(5.0), None];
        assert_eq!(nearest_known(&v), vec![1.0, 1.0, 1.0, 1.0, 5.0, 5.0, 5.0]);
        assert_eq!(nearest_known(&[None, None]), vec![0.0, 0.0]);
    }
}
