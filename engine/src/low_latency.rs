//! Low-latency resynthesis ([`LatencyMode::Low`](crate::LatencyMode::Low)): frames every half
//! hop, each grain covering only its frame's last hop. The frame processor runs on every other
//! frame, as in the normal mode; its output over input, smoothed across frequency, is applied
//! to the asymmetric-window spectra of that frame and the next. Where the processed frame was
//! an Exemplar frame played as partials and noise, its grains are those partials (sinusoids at
//! the frame's pitch and phase) and that noise instead. Runs wherever the frame processor runs;
//! realtime-safe after construction.

use realfft::num_complex::{Complex32, Complex64};

use crate::cepstrum::Cepstrum;
use crate::config::{LatencyMode, StftConfig};
use crate::exemplar::{random_phase, HarmonicFrame, HARMONIC_PARTIALS};
use crate::processor::frame_scale;
use crate::stft::Stft;

/// Largest per-bin boost the low-latency path carries from a processed frame to the frames
/// after it (linear, +30 dB): a bin the input barely reaches cannot be raised from its window's
/// leakage (which repeats with every grain).
const MAX_HELD_BOOST: f32 = 31.622_776;
/// Largest per-bin cut it carries (linear, -60 dB).
const MAX_HELD_CUT: f32 = 1_000.0;
/// Largest factor a grain of held partials or noise is scaled by to reach its share of the
/// processed frame's energy (+120 dB): the bank's amplitudes are at the training level, the
/// input at any level; past this (a grain of nearly nothing) the grain plays its gain instead.
const MAX_PARTIALS_GAIN: f32 = 1e6;

/// The low-latency resynthesis: each frame's spectrum through the asymmetric analysis window,
/// times the per-bin ratio of output to input of the latest processed frame, through the
/// matching synthesis window (silent but for the frame's last two half-hops).
pub(crate) struct LowLatency {
    stft: Stft,
    /// Smooths the log gain across frequency (a short impulse response: the gain must act
    /// within the grain's short span).
    smoothing: Cepstrum,
    /// Natural-log gain per bin, then its smoothed form.
    log_gain: Vec<f32>,
    smooth_gain: Vec<f32>,
    /// The current frame's asymmetric-window spectrum, then its output.
    spectrum: Vec<Complex32>,
    /// The current frame's unprocessed grain (the input the processed one replaces).
    identity: Vec<f32>,
    /// Output over input magnitude of the latest processed frame per bin, smoothed across
    /// frequency (its cepstrum cut at the STFT's cepstral cut-off, as the timbre envelope is)
    /// and limited to [`MAX_HELD_BOOST`] and [`MAX_HELD_CUT`]. Real: the grains keep the input's
    /// phase.
    gain: Vec<f32>,
    /// Output over input energy of the latest processed frame: each grain's own ratio is
    /// brought to it, so the output level follows the input as the processed frames' did.
    energy_ratio: f32,
    /// Whether `gain` holds a processed frame's ratio (false: the frames play dry).
    pub(crate) held: bool,
    /// The processed frame's partials and noise, when it was played that way.
    partials: HeldPartials,
    /// Whether the current grain is the second after the processed frame (half a hop later).
    second: bool,
    /// The product of the asymmetric analysis and synthesis windows (a 160-sample Hann window
    /// at the end of the frame at the default framing): what a grain made in the time domain
    /// is shaped by, so that the grains overlap-add as the spectral ones do.
    grain_window: Vec<f32>,
    /// Sum of the squares of `grain_window`.
    grain_window_energy: f32,
    /// The first sample where `grain_window` is not zero (the grain's span starts there).
    grain_start: usize,
    /// Shapes the noise grains: an inverse FFT through the square root of `grain_window`, so
    /// that independent grains overlap-add to a steady power.
    noise: Stft,
    /// Weights of the input's power over a grain's whole frame: the processed frames'
    /// analysis window (Hann), and the sum of its squares.
    power_window: Vec<f32>,
    power_window_energy: f32,
    /// The noise grain, before it is added.
    noise_grain: Vec<f32>,
    /// State of the noise phases' generator.
    seed: u32,
    /// Grains since construction (one per frame, processed or not).
    grain: u64,
    /// The latest grain played as partials, and its fundamental's phase at its centre
    /// (radians) and step (radians per sample): the next such grain carries the phase on.
    partial_grain: Option<u64>,
    grain_phase: f64,
    grain_w: f64,
    /// The gain the latest grain of partials asked for (before it was smoothed).
    partial_gain: f32,
    sample_rate: f32,
    hop: usize,
}

/// An Exemplar frame's partials and noise ([`HarmonicFrame`]), held for its grains.
struct HeldPartials {
    /// Whether the latest processed frame was one.
    held: bool,
    f0: f32,
    /// Phase of the fundamental at the processed frame's centre, radians.
    phase: f64,
    amplitudes: Vec<f32>,
    noise: Vec<f32>,
    noise_share: f32,
}

impl LowLatency {
    /// For frames of `cfg` as [`LatencyMode::Low`] spaces them. Allocates.
    pub(crate) fn new(cfg: &StftConfig) -> Self {
        let (analysis, synthesis) = LatencyMode::Low.grain_windows(cfg);
        let grain_window: Vec<f32> = analysis
            .iter()
            .zip(&synthesis)
            .map(|(a, s)| a * s)
            .collect();
        let grain_window_energy = grain_window.iter().map(|v| v * v).sum();
        let grain_start = grain_window
            .iter()
            .position(|v| *v != 0.0)
            .unwrap_or(grain_window.len());
        let noise_window = grain_window.iter().map(|v| v.max(0.0).sqrt()).collect();
        let noise = Stft::with_windows(cfg, analysis.clone(), noise_window);
        let bins = cfg.n_bins();
        let power_window = crate::stft::hann(cfg.n_fft);
        Self {
            stft: Stft::with_windows(cfg, analysis, synthesis),
            smoothing: Cepstrum::new(cfg),
            log_gain: vec![0.0; bins],
            smooth_gain: vec![0.0; bins],
            spectrum: vec![Complex32::default(); bins],
            identity: vec![0.0; cfg.n_fft],
            gain: vec![1.0; bins],
            energy_ratio: 1.0,
            held: false,
            partials: HeldPartials {
                held: false,
                f0: 0.0,
                phase: 0.0,
                amplitudes: vec![0.0; HARMONIC_PARTIALS],
                noise: vec![0.0; bins],
                noise_share: 0.0,
            },
            second: false,
            grain_window,
            grain_window_energy,
            grain_start,
            noise,
            noise_grain: vec![0.0; cfg.n_fft],
            power_window_energy: power_window.iter().map(|w| w * w).sum(),
            power_window,
            seed: 0x6c6f_7721,
            grain: 0,
            partial_grain: None,
            grain_phase: 0.0,
            grain_w: 0.0,
            partial_gain: 0.0,
            sample_rate: cfg.sample_rate as f32,
            hop: cfg.hop,
        }
    }

    /// Keeps the processed frame's partials and noise for its grains: `a`, or `a` and `b`
    /// blended by `morph` (0..=1; two clips' frames at the same pitch and phase), or none (the
    /// grains take the held gain). Call after [`hold`](Self::hold), for every processed frame.
    pub(crate) fn hold_partials(
        &mut self,
        a: Option<HarmonicFrame<'_>>,
        b: Option<(HarmonicFrame<'_>, f32)>,
    ) {
        self.second = false;
        let p = &mut self.partials;
        p.held = false;
        let Some(a) = a else {
            return;
        };
        let n = a.amplitudes.len().min(p.amplitudes.len());
        let m = a.noise.len().min(p.noise.len());
        p.amplitudes[..n].copy_from_slice(&a.amplitudes[..n]);
        p.noise[..m].copy_from_slice(&a.noise[..m]);
        p.noise_share = a.noise_share;
        if let Some((b, morph)) = b {
            for (x, y) in p.amplitudes[..n].iter_mut().zip(b.amplitudes) {
                *x += (y - *x) * morph;
            }
            for (x, y) in p.noise[..m].iter_mut().zip(b.noise) {
                *x += (y - *x) * morph;
            }
            p.noise_share += (b.noise_share - p.noise_share) * morph;
        }
        p.f0 = a.f0;
        p.phase = a.phase;
        p.held = self.held && a.f0.is_finite() && a.f0 > 0.0;
    }

    /// Forgets the held frame and the latest grain of partials: the next grains play dry
    /// until a frame is processed, and the first grain of partials after that starts its
    /// phase and level afresh. Realtime-safe.
    pub(crate) fn reset(&mut self) {
        self.held = false;
        self.partials.held = false;
        self.partial_grain = None;
        self.partial_gain = 0.0;
    }

    /// Marks the next grain as the second after the processed frame.
    pub(crate) fn next_grain(&mut self) {
        self.second = true;
        self.grain += 1;
    }

    /// The held partials as sinusoids over the grain (`grain`, shaped by `grain_window`) and
    /// the held noise with fresh random phases (`noise_grain`); returns their energies and
    /// whether the grain before this one was also made of partials.
    fn partial_grains(&mut self, grain: &mut [f32]) -> (f32, f32, bool) {
        let p = &self.partials;
        let n = grain.len();
        let w = std::f64::consts::TAU * p.f0 as f64 / self.sample_rate as f64;
        // The window is zero before the grain's span: the partials start at its first sample.
        let first = self.grain_start;
        let middle = (first + n) as f64 / 2.0;
        let tau = std::f64::consts::TAU;
        // The fundamental's phase at the middle of the grain's span. After a grain of partials
        // it moves on by half a hop at the mean of the two grains' pitches, so two overlapping
        // grains reach the middle of their overlap with the same phase to first order. (Read
        // from the processed frame's centre instead, a grain drifted from the one before it
        // by its distance from that centre times the change of pitch: with a voice's jitter,
        // a roughness at the grain rate.)
        let continues = self.partial_grain.is_some_and(|g| g + 1 == self.grain);
        self.grain_phase = if continues {
            (self.grain_phase + 0.5 * (self.grain_w + w) * (self.hop / 2) as f64) % tau
        } else {
            // From the processed frame's centre (half a hop on for the second grain).
            let centre = if self.second {
                p.phase + w * (self.hop / 2) as f64
            } else {
                p.phase
            };
            (centre + w * (middle - (n / 2) as f64)) % tau
        };
        self.grain_w = w;
        self.partial_grain = Some(self.grain);
        grain.fill(0.0);
        let phase = self.grain_phase - w * (middle - first as f64);
        // The partials' expected energy over the grain: each partial's mean power (a^2 / 2)
        // times the window's energy. (The grain's own energy swings with where the waveform's
        // peaks fall in its 5 ms, and scaling each grain by it modulated the level.)
        let power = add_partials(&mut grain[first..], &p.amplitudes, w, phase);
        for (g, v) in grain.iter_mut().zip(&self.grain_window) {
            *g *= v;
        }
        let partial_energy = power * self.grain_window_energy;
        for (c, m) in self.spectrum.iter_mut().zip(&p.noise) {
            *c = Complex32::from_polar(*m, random_phase(&mut self.seed));
        }
        self.noise
            .synthesise(&mut self.spectrum, &mut self.noise_grain);
        let noise_energy = self.noise_grain.iter().map(|v| v * v).sum();
        (partial_energy, noise_energy, continues)
    }

    /// Keeps the smoothed `|output| / |input|` per bin and the energy ratio if the frame was
    /// `processed`, else forgets them (the frames after it play dry).
    pub(crate) fn hold(&mut self, processed: bool, input: &[Complex32], output: &[Complex32]) {
        self.grain += 1;
        self.held = processed;
        if !processed {
            return;
        }
        let (energy_in, energy_out) = input
            .iter()
            .zip(output)
            .fold((0.0f32, 0.0f32), |(i, o), (x, y)| {
                (i + x.norm_sqr(), o + y.norm_sqr())
            });
        let ratio = energy_out / energy_in;
        self.energy_ratio = if ratio.is_finite() { ratio } else { 0.0 };
        let floor = 1e-6 * energy_in.sqrt().max(f32::MIN_POSITIVE);
        for ((l, x), y) in self.log_gain.iter_mut().zip(input).zip(output) {
            let (x_mag, y_mag) = (crate::stft::magnitude(*x), crate::stft::magnitude(*y));
            *l = ((y_mag + floor) / (x_mag + floor)).ln();
        }
        self.smoothing
            .envelope(&self.log_gain, &mut self.smooth_gain);
        let (boost, cut) = (MAX_HELD_BOOST.ln(), MAX_HELD_CUT.ln());
        for (g, l) in self.gain.iter_mut().zip(&self.smooth_gain) {
            let l = if l.is_finite() {
                l.clamp(-cut, boost)
            } else {
                -cut
            };
            *g = l.exp();
        }
    }

    /// The grain of `frame` with the held ratio, brought to the held energy ratio against
    /// the same frame's unprocessed grain (the input it replaces); returns the factor to scale
    /// it back by.
    pub(crate) fn resynthesise(&mut self, frame: &[f32], grain: &mut [f32]) -> f32 {
        let (down, scale_back) = frame_scale(frame);
        if self.partials.held {
            // The partials carry their share of the processed frame's energy, the noise the rest.
            let (partial_energy, noise_energy, continues) = self.partial_grains(grain);
            // The input's mean power over the grain's whole frame, weighted by the processed
            // frames' analysis window (the span and weights their level is matched with),
            // times the window's energy: the energy a steady input has under the grain.
            // (Measured under the grain alone, it swings with where the input's waveform peaks
            // fall in those 5 ms: a ripple at the grain rate, 4.6 dB on a steady tone.
            // Unweighted over the frame, a pulse of a peaky input (a voice's glottal pulses)
            // entering or leaving it stepped the level at the grain rate, which spread the
            // partials into their valleys.)
            let power = frame
                .iter()
                .zip(&self.power_window)
                .map(|(v, w)| (v * down * w) * (v * down * w))
                .sum::<f32>()
                / self.power_window_energy;
            let target = self.energy_ratio * power * self.grain_window_energy;
            let share = self.partials.noise_share.clamp(0.0, 1.0);
            let gain = |part: f32, energy: f32| {
                let g = (part * target / energy).sqrt();
                if g.is_finite() && g <= MAX_PARTIALS_GAIN {
                    g
                } else {
                    0.0
                }
            };
            let (mut gp, gn) = (gain(1.0 - share, partial_energy), gain(share, noise_energy));
            // The partials' gain moves half way (in dB) each grain: the geometric mean of
            // this grain's gain and the one before it. A step of level from one 5 ms grain to
            // the next, crossfaded over 2.5 ms, spread the partials into their valleys. (The
            // gain scales the processed frame's own amplitudes, so where that frame's
            // partials jump in level, the grain after the jump is off by half the jump.)
            let own = gp;
            if continues && self.partial_gain > 0.0 && gp > 0.0 {
                gp = (gp * self.partial_gain).sqrt();
            }
            self.partial_gain = own;
            if gp > 0.0 {
                for (g, v) in grain.iter_mut().zip(&self.noise_grain) {
                    *g = *g * gp + v * gn;
                }
                return scale_back;
            }
        }
        self.stft.analyse(frame, &mut self.spectrum);
        for (c, g) in self.spectrum.iter_mut().zip(&self.gain) {
            *c *= g * down;
        }
        self.stft.synthesise(&mut self.spectrum, grain);
        // Energy over the grain's span (the synthesis window is zero before it) of the
        // unprocessed grain at the same level.
        self.stft.identity_grain(frame, &mut self.identity);
        let energy_in: f32 = self.identity.iter().map(|v| (v * down) * (v * down)).sum();
        let energy_out: f32 = grain.iter().map(|g| g * g).sum();
        let level = (self.energy_ratio * energy_in / energy_out).sqrt();
        let level = if level.is_finite() {
            level.min(MAX_HELD_BOOST)
        } else {
            0.0
        };
        for g in grain.iter_mut() {
            *g *= level;
        }
        scale_back
    }
}

/// Samples each partial's oscillator makes at once ([`add_partials`]): independent lanes, so
/// the compiler keeps them in vector registers.
const OSCILLATOR_LANES: usize = 8;

/// Adds the harmonic sum `sum_h a_h cos(h (phase + w t) + schroeder_offset(h))` over
/// `t = 0..out.len()` samples to `out`: partial `h` (from 1) with amplitude `amplitudes[h - 1]`,
/// `w` the fundamental's step in radians per sample, `phase` its phase at `out[0]`. Partials at
/// or above Nyquist (`h w >= pi`) and those of amplitude 0 are left out. Returns the partials'
/// mean power, `sum a_h^2 / 2` over those played. Realtime-safe.
///
/// No trigonometry per partial: the phasors `e^(i h phase)`, `e^(i h w)` and Schroeder's
/// offsets (quadratic in `h`; the Exemplar swap's `schroeder_offset`, as its grains of partials
/// use them) advance from one partial to the next by complex multiplication
/// in f64. Each partial's oscillator then rotates [`OSCILLATOR_LANES`] consecutive samples at
/// a time in f32 (a grain of 160 samples is 20 rotations, so its rounding stays near f32's
/// own).
fn add_partials(out: &mut [f32], amplitudes: &[f32], w: f64, phase: f64) -> f32 {
    let step = Complex64::from_polar(1.0, w);
    let turn = Complex64::from_polar(1.0, phase);
    // Schroeder's offset pi h (h - 1) / H grows by 2 pi h / H from h to h + 1.
    let spread = Complex64::from_polar(1.0, std::f64::consts::TAU / HARMONIC_PARTIALS as f64);
    let (mut at_phase, mut per_sample) = (turn, step);
    let (mut offset, mut offset_step) = (Complex64::new(1.0, 0.0), spread);
    let mut power = 0.0f32;
    for (i, &a) in amplitudes.iter().enumerate() {
        if (i + 1) as f64 * w >= std::f64::consts::PI {
            break;
        }
        if a > 0.0 {
            power += 0.5 * a * a;
            // The lanes start one sample apart; each rotation moves them on by all the lanes.
            let mut lane = at_phase * offset;
            let (mut re, mut im) = ([0.0f32; OSCILLATOR_LANES], [0.0f32; OSCILLATOR_LANES]);
            for (r, m) in re.iter_mut().zip(im.iter_mut()) {
                (*r, *m) = (lane.re as f32, lane.im as f32);
                lane *= per_sample;
            }
            let rotation = per_sample.powu(OSCILLATOR_LANES as u32);
            let (cr, ci) = (rotation.re as f32, rotation.im as f32);
            let mut chunks = out.chunks_exact_mut(OSCILLATOR_LANES);
            for chunk in &mut chunks {
                for (o, r) in chunk.iter_mut().zip(&re) {
                    *o += a * r;
                }
                let next_re: [f32; OSCILLATOR_LANES] =
                    std::array::from_fn(|k| re[k] * cr - im[k] * ci);
                im = std::array::from_fn(|k| im[k] * cr + re[k] * ci);
                re = next_re;
            }
            for (o, r) in chunks.into_remainder().iter_mut().zip(&re) {
                *o += a * r;
            }
        }
        at_phase *= turn;
        per_sample *= step;
        offset *= offset_step;
        offset_step *= spread;
    }
    power
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(cfg: &StftConfig, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..cfg.n_fft)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                s as f32 / u32::MAX as f32 - 0.5
            })
            .collect()
    }

    /// An output equal to its input passes every later frame through unchanged (the grain is
    /// the frame through the two windows); an output 6 dB up raises the grains by 6 dB; one
    /// 40 dB up in one bin is limited to 30 dB there; a dry frame makes the frames after it
    /// dry.
    #[test]
    fn the_held_gain_is_the_output_over_input() {
        let cfg = StftConfig::default();
        let mut low = LowLatency::new(&cfg);
        let mut stft = Stft::new(&cfg);
        let (processed, next) = (frame(&cfg, 7), frame(&cfg, 9));
        let mut input = vec![Complex32::default(); cfg.n_bins()];
        stft.analyse(&processed, &mut input);
        let identity: Vec<f32> = next
            .iter()
            .zip(&low.stft.analysis)
            .zip(&low.stft.synthesis)
            .map(|((x, a), s)| x * a * s * cfg.n_fft as f32)
            .collect();
        let mut grain = vec![0.0f32; cfg.n_fft];

        low.hold(true, &input, &input);
        assert_eq!(low.resynthesise(&next, &mut grain), 1.0);
        for (g, want) in grain.iter().zip(&identity) {
            assert!((g - want).abs() < 1e-5, "{g} against {want}");
        }

        let louder: Vec<Complex32> = input.iter().map(|c| c * 2.0).collect();
        low.hold(true, &input, &louder);
        low.resynthesise(&next, &mut grain);
        for (g, want) in grain.iter().zip(&identity) {
            assert!((g - 2.0 * want).abs() < 1e-4, "{g} against {}", 2.0 * want);
        }

        let mut spike = input.clone();
        spike[40] *= 100.0;
        low.hold(true, &input, &spike);
        let (boost, cut) = (MAX_HELD_BOOST.ln(), MAX_HELD_CUT.ln());
        assert!(low
            .gain
            .iter()
            .all(|g| g.ln() <= boost + 1e-5 && g.ln() >= -cut - 1e-5));

        low.hold(false, &input, &input);
        assert!(!low.held);
    }

    /// The oscillators give the harmonic sum as the formula does, evaluated with `cos` in f64
    /// partial by partial: every partial below Nyquist, Schroeder's offsets, amplitude-0
    /// partials silent, those at or above Nyquist left out of the sum and of the power.
    #[test]
    fn the_oscillators_play_the_harmonic_sum() {
        use crate::exemplar::schroeder_offset;
        let amplitudes: Vec<f32> = (0..HARMONIC_PARTIALS)
            .map(|i| {
                if i % 5 == 3 {
                    0.0
                } else {
                    1.0 / (i + 1) as f32
                }
            })
            .collect();
        // 62.5 Hz at 32 kHz (every partial below Nyquist) and 440 Hz (36 of them), 163 samples
        // (a tail after the lanes).
        for (f0, phase) in [(62.5f64, 0.3f64), (440.0, -2.0)] {
            let w = std::f64::consts::TAU * f0 / 32_000.0;
            let mut out = vec![0.25f32; 163];
            let power = add_partials(&mut out, &amplitudes, w, phase);
            let below: Vec<usize> = (1..=HARMONIC_PARTIALS)
                .filter(|h| (*h as f64) * f0 < 16_000.0)
                .collect();
            let mut peak = 0.0f64;
            for (t, o) in out.iter().enumerate() {
                let want: f64 = 0.25
                    + below
                        .iter()
                        .map(|&h| {
                            let hf = h as f64;
                            f64::from(amplitudes[h - 1])
                                * (hf * (phase + w * t as f64) + schroeder_offset(hf)).cos()
                        })
                        .sum::<f64>();
                peak = peak.max(want.abs());
                assert!(
                    (f64::from(*o) - want).abs() < 1e-5,
                    "{f0} Hz, sample {t}: {o} against {want}"
                );
            }
            assert!(peak > 1.0, "the sum is not trivially small: {peak}");
            let want_power: f64 = below
                .iter()
                .map(|&h| 0.5 * f64::from(amplitudes[h - 1]).powi(2))
                .sum();
            assert!(
                (f64::from(power) - want_power).abs() < 1e-6,
                "{power} against {want_power}"
            );
        }
    }

    /// Grains of partials keep their phase from one to the next while the pitch moves: one
    /// high partial (the 30th of a fundamental rising 2 Hz a hop from 220 Hz, the phase at each
    /// processed frame's centre carried on at the mean pitch, as the Exemplar swap does),
    /// overlap-added grain after grain, keeps its amplitude within 1 dB over the whole span
    /// (0.55 dB). Read from each processed frame's centre instead, neighbouring grains reached
    /// their overlap about 2.5 radians apart, and the sum spread over 9.9 dB.
    #[test]
    fn grains_of_partials_stay_in_phase_while_the_pitch_moves() {
        let cfg = StftConfig::default();
        let mut low = LowLatency::new(&cfg);
        let (n, hop, sr) = (cfg.n_fft, cfg.hop, cfg.sample_rate as f64);
        let silent = vec![Complex32::default(); cfg.n_bins()];
        let mut amplitudes = vec![0.0f32; HARMONIC_PARTIALS];
        amplitudes[29] = 1.0;
        let noise = vec![0.0f32; cfg.n_bins()];
        let frames = 40;
        let mut out = vec![0.0f32; frames * hop + n];
        let mut grain = vec![0.0f32; n];
        let mut phase = 0.0f64;
        for k in 0..frames {
            let f0 = 220.0 + 2.0 * k as f64;
            if k > 0 {
                phase += std::f64::consts::TAU * (f0 - 1.0) * hop as f64 / sr;
            }
            low.hold(true, &silent, &silent);
            let frame = HarmonicFrame {
                f0: f0 as f32,
                phase,
                amplitudes: &amplitudes,
                noise: &noise,
                noise_share: 0.0,
            };
            low.hold_partials(Some(frame), None);
            for second in [false, true] {
                if second {
                    low.next_grain();
                }
                low.partial_grains(&mut grain);
                let at = k * hop + if second { hop / 2 } else { 0 };
                for (o, g) in out[at..].iter_mut().zip(&grain) {
                    *o += g;
                }
            }
        }
        // Amplitude over 16-sample stretches (three periods of the 6.6 kHz partial), past the
        // first grains' fade-in and before the last ones' fade-out.
        let amplitude: Vec<f32> = out[4 * hop + n..(frames - 4) * hop]
            .chunks_exact(16)
            .map(|c| (2.0 * c.iter().map(|v| v * v).sum::<f32>() / 16.0).sqrt())
            .collect();
        let (lo, hi) = amplitude
            .iter()
            .fold((f32::INFINITY, 0.0f32), |(l, h), a| (l.min(*a), h.max(*a)));
        let spread_db = 20.0 * (hi / lo).log10();
        assert!(hi > 0.5, "the partial sounds: {hi}");
        assert!(spread_db < 1.0, "amplitude {lo} to {hi}: {spread_db:.2} dB");
    }

    /// A grain of partials carries on from the grain before it only when that one was made of
    /// partials too and no reset came between them.
    #[test]
    fn grains_of_partials_carry_on_only_from_the_grain_before() {
        let cfg = StftConfig::default();
        let mut low = LowLatency::new(&cfg);
        let silent = vec![Complex32::default(); cfg.n_bins()];
        let amplitudes = vec![0.5f32; HARMONIC_PARTIALS];
        let noise = vec![0.0f32; cfg.n_bins()];
        let frame = HarmonicFrame {
            f0: 220.0,
            phase: 0.0,
            amplitudes: &amplitudes,
            noise: &noise,
            noise_share: 0.0,
        };
        let mut grain = vec![0.0f32; cfg.n_fft];
        let mut carries = |low: &mut LowLatency| low.partial_grains(&mut grain).2;
        low.hold(true, &silent, &silent);
        low.hold_partials(Some(frame), None);
        assert!(!carries(&mut low), "the first grain starts afresh");
        low.next_grain();
        assert!(carries(&mut low), "the second carries on");
        low.reset();
        low.hold(true, &silent, &silent);
        low.hold_partials(Some(frame), None);
        assert!(!carries(&mut low), "after a reset it starts afresh");
        // A grain that played no partials (dry) breaks the run.
        low.next_grain();
        low.hold(true, &silent, &silent);
        low.hold_partials(Some(frame), None);
        assert!(
            !carries(&mut low),
            "after a grain without partials it starts afresh"
        );
    }
}
