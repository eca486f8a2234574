//! Real-time phase reconstruction from log-magnitude frames: RTPGHI.
//!
//! [`Rtpghi`] turns a stream of log-magnitude spectra (for example the output of a model that
//! predicts only magnitudes) into complex spectra that [`crate::stft::Stft::synthesise`] can
//! overlap-add. It implements *real-time phase gradient heap integration* (Průša & Holighaus,
//! "Real-time spectrogram inversion using phase gradient heap integration", DAFx 2016), written
//! from the math below.
//!
//! # Algorithm
//!
//! For a Gaussian window `g(t) = exp(-π t² / λ)` the STFT is, up to a factor, an analytic
//! function of `u/λ − i f`, so its log-magnitude `s` and its window-centre-referenced phase `φ`
//! obey Cauchy–Riemann equations. With time `u` in samples and frequency `f` in cycles/sample:
//!
//! ```text
//! ∂φ/∂u = 2π f + (1/λ) · ∂s/∂f        (instantaneous frequency, rad/sample)
//! ∂φ/∂f = −λ · ∂s/∂u                  (local group delay, rad per cycle/sample)
//! ```
//!
//! The periodic Hann window of length `L = n_fft` is treated as a Gaussian with
//! `λ = 0.25645 · L²` (samples²). With bins `m` (`f = m / L`) and frames `n` (`u = n · hop`):
//!
//! - `∂s/∂f` is the centred difference across bins, `L/2 · (s[m+1] − s[m−1])`, with the
//!   spectrum mirrored at DC and Nyquist (so the derivative is zero there);
//! - `∂s/∂u` is the centred difference `(s[n+1] − s[n−1]) / (2 hop)` with one frame of
//!   lookahead, the backward difference `(s[n] − s[n−1]) / hop` without.
//!
//! Each frame is then integrated by a max-heap (largest magnitude first). The significant bins of
//! the previous frame seed the heap; popping one of them gives the same bin of the current frame
//! its phase by the trapezoid rule in time, `φ(m,n) = φ(m,n−1) + hop/2 · (ω(m,n−1) + ω(m,n))`;
//! popping a bin of the current frame passes phase to its neighbours `m ± 1` by the trapezoid
//! rule in frequency. Bins below `1e-5` of the frame's largest magnitude, or at the floor, get a
//! uniformly random phase from a small seeded PRNG (xorshift64*). When the heap runs empty while
//! significant bins remain (the first frame, onsets), the largest remaining bin is integrated in
//! time from the previous frame (phase zero on the very first frame) and seeds the heap again.
//!
//! # Conventions
//!
//! - Input: natural-log magnitudes `ln(|X| + mag_floor)` of the engine's unnormalised FFT
//!   ([`crate::stft::Stft::analyse`]), `n_fft / 2 + 1` values per frame, one frame per `hop`.
//!   Non-finite values are treated as the floor.
//! - Output: `|X| = max(exp(l) − mag_floor, 0)` with the reconstructed phase, referenced like the
//!   engine's analysis to the *first* sample of the frame. Internally the phase is referenced to
//!   the window centre (sample `n_fft / 2`); the two differ by `exp(−iπ m) = (−1)^m` in bin `m`.
//!
//! # Latency
//!
//! With `lookahead = 1` the spectrum of frame `n` comes out when frame `n + 1` is pushed: one
//! hop (`cfg.hop` samples at the model rate, 5 ms with the default config) of latency on top of
//! the STFT's own. With `lookahead = 0` there is no extra latency, at some cost in quality.
//!
//! # Real-time safety
//!
//! [`Rtpghi::new`] allocates everything. [`Rtpghi::push`], [`Rtpghi::flush`] and
//! [`Rtpghi::reset`] never allocate, lock, block or panic (the heap is a fixed-capacity binary
//! heap on preallocated arrays), so they may run on the audio or worker thread.

use std::f64::consts::{PI, TAU};

use realfft::num_complex::Complex32;

use crate::config::StftConfig;

/// `λ / L²` of the Gaussian that stands in for a periodic Hann window of length `L`.
pub const HANN_LAMBDA_FACTOR: f64 = 0.25645;

/// Bins whose magnitude is below this fraction of the frame's largest magnitude get a random
/// phase instead of an integrated one.
pub const RELATIVE_TOLERANCE: f32 = 1e-5;

/// Largest accepted log-magnitude (`exp` of it is about `5.5e34`, finite in `f32`); larger
/// inputs are clamped so that the output stays finite.
pub const MAX_LOG_MAG: f32 = 80.0;

/// Flag in a heap entry's index that marks a bin of the previous frame.
const PREV_FLAG: u32 = 1 << 31;

/// Real-time phase gradient heap integration over a stream of log-magnitude frames.
///
/// Create it off the audio thread with [`Rtpghi::new`]; feed frames with [`Rtpghi::push`]. See
/// the [module documentation](self) for the algorithm and conventions.
pub struct Rtpghi {
    n_bins: usize,
    hop: f64,
    /// `λ / L²` times `L`: the per-bin phase step is `−lambda_over_l · ∂s/∂u`.
    lambda_over_l: f64,
    /// `1 / (2 λ/L² · L)`: turns `s[m+1] − s[m−1]` into the `(1/λ) ∂s/∂f` term, rad/sample.
    inv_two_gamma_l: f64,
    /// `2π / L`: bin-centre angular frequency per bin, rad/sample.
    bin_omega: f64,
    mag_floor: f32,
    log_floor: f32,
    lookahead: usize,
    seed: u64,
    rng: u64,
    /// Log-magnitudes of the previous, current and next frame (`n_bins` each).
    s_prev: Vec<f32>,
    s_cur: Vec<f32>,
    s_next: Vec<f32>,
    /// Centre-referenced phase (rad) and instantaneous frequency (rad/sample) of the previous
    /// frame, and which of its bins were significant.
    phase_prev: Vec<f64>,
    omega_prev: Vec<f64>,
    sig_prev: Vec<bool>,
    /// The same for the frame being integrated, plus its per-bin phase step across frequency.
    phase_cur: Vec<f64>,
    omega_cur: Vec<f64>,
    fstep_cur: Vec<f64>,
    sig_cur: Vec<bool>,
    done: Vec<bool>,
    heap: MaxHeap,
    /// Whether `s_cur` holds a frame (lookahead 1) waiting for its successor.
    pending: bool,
    /// Whether `s_prev`, `phase_prev`, `omega_prev`, `sig_prev` describe a real frame.
    has_prev: bool,
    /// The previous frame was taken by [`Rtpghi::follow`]: `s_prev` and `followed` hold it, and
    /// its phase, instantaneous frequency and significance are derived when a push needs them.
    prev_followed: bool,
    /// The complex spectrum of the followed frame (engine convention).
    followed: Vec<Complex32>,
}

impl Rtpghi {
    /// Creates a reconstructor for frames of `cfg` (`cfg.n_bins()` values each).
    ///
    /// `mag_floor` is the floor inside the input's `ln(|X| + mag_floor)` (linear magnitude units
    /// of the unnormalised FFT; values `<= 0` or non-finite are replaced by `1e-12`);
    /// `lookahead` is `0` or `1` frames (anything larger is treated as `1`); `seed` seeds the
    /// PRNG that draws the phase of insignificant bins. Allocates: call it off the audio thread.
    pub fn new(cfg: &StftConfig, mag_floor: f32, lookahead: usize, seed: u64) -> Self {
        let n_bins = cfg.n_bins().max(2);
        let l = (cfg.n_fft.max(2)) as f64;
        let mag_floor = if mag_floor.is_finite() && mag_floor > 0.0 {
            mag_floor
        } else {
            1e-12
        };
        let mut me = Self {
            n_bins,
            hop: cfg.hop as f64,
            lambda_over_l: HANN_LAMBDA_FACTOR * l,
            inv_two_gamma_l: 1.0 / (2.0 * HANN_LAMBDA_FACTOR * l),
            bin_omega: TAU / l,
            mag_floor,
            log_floor: mag_floor.ln(),
            lookahead: lookahead.min(1),
            seed,
            rng: 0,
            s_prev: vec![0.0; n_bins],
            s_cur: vec![0.0; n_bins],
            s_next: vec![0.0; n_bins],
            phase_prev: vec![0.0; n_bins],
            omega_prev: vec![0.0; n_bins],
            sig_prev: vec![false; n_bins],
            phase_cur: vec![0.0; n_bins],
            omega_cur: vec![0.0; n_bins],
            fstep_cur: vec![0.0; n_bins],
            sig_cur: vec![false; n_bins],
            done: vec![false; n_bins],
            heap: MaxHeap::with_capacity(2 * n_bins),
            pending: false,
            has_prev: false,
            prev_followed: false,
            followed: vec![Complex32::default(); n_bins],
        };
        me.reset();
        me
    }

    /// Frames of lookahead (0 or 1): how many pushes the output lags behind the input, i.e.
    /// `lookahead * hop` samples of extra latency at the model rate. Any thread.
    pub fn lookahead(&self) -> usize {
        self.lookahead
    }

    /// Number of bins per frame, `n_fft / 2 + 1`. Any thread.
    pub fn n_bins(&self) -> usize {
        self.n_bins
    }

    /// Forgets all frames and reseeds the PRNG, so the next push starts a new stream exactly as
    /// after [`Rtpghi::new`]. Realtime-safe (no allocation, locking or panics); call it from the
    /// thread that pushes.
    pub fn reset(&mut self) {
        // xorshift64* must not start at zero; mix the seed (splitmix64 finaliser) instead.
        self.rng = splitmix64(self.seed) | 1;
        self.pending = false;
        self.has_prev = false;
        self.prev_followed = false;
        self.heap.clear();
        for v in [&mut self.s_prev, &mut self.s_cur, &mut self.s_next] {
            v.fill(self.log_floor);
        }
        self.phase_prev.fill(0.0);
        self.omega_prev.fill(0.0);
        self.sig_prev.fill(false);
    }

    /// Feeds the next frame's log-magnitudes (`ln(|X| + mag_floor)`, natural log, one value per
    /// bin) and writes a reconstructed complex spectrum (engine convention, see the module doc)
    /// into `out`.
    ///
    /// With lookahead 1 the spectrum written is that of the *previous* frame, and the very first
    /// push after [`Rtpghi::new`]/[`Rtpghi::reset`]/[`Rtpghi::flush`] returns `false` and leaves
    /// `out` untouched. With lookahead 0 it is the frame just pushed and the result is always
    /// `true`. Non-finite inputs count as the floor and values above [`MAX_LOG_MAG`] are clamped; missing values (a short `log_mag`) too, and
    /// extra values are ignored; only the first `n_bins` entries of `out` are written.
    ///
    /// Realtime-safe (no allocation, locking or panics); call it from one thread at a time.
    pub fn push(&mut self, log_mag: &[f32], out: &mut [Complex32]) -> bool {
        let floor = self.log_floor;
        let target = if self.lookahead == 0 || !self.pending {
            &mut self.s_cur
        } else {
            &mut self.s_next
        };
        load_frame(target, log_mag, floor);
        if self.lookahead == 0 {
            self.integrate(Gradient::Backward);
            self.emit(out);
            self.advance();
            return true;
        }
        if !self.pending {
            self.pending = true;
            return false;
        }
        self.integrate(Gradient::Centred);
        self.emit(out);
        self.advance();
        // The next frame becomes the pending one.
        std::mem::swap(&mut self.s_cur, &mut self.s_next);
        true
    }

    /// Takes a frame whose phase was chosen elsewhere instead of reconstructing one: `log_mag`
    /// its log-magnitudes (as for [`Rtpghi::push`]) and `spectrum` the complex frame that was
    /// played (engine convention; a short one counts as silent past its end). The next push
    /// integrates on from this frame's phase exactly as if it had reconstructed it, so a stream
    /// can play another phase (the input's) for a while and switch to reconstruction without a
    /// jump. Costs two copies: the phase is derived only when a push follows. With lookahead 1
    /// a pending frame is dropped.
    ///
    /// Realtime-safe (no allocation, locking or panics); call it from the thread that pushes.
    pub fn follow(&mut self, log_mag: &[f32], spectrum: &[Complex32]) {
        load_frame(&mut self.s_prev, log_mag, self.log_floor);
        let mut bins = spectrum.iter();
        for f in self.followed.iter_mut() {
            *f = bins.next().copied().unwrap_or_default();
        }
        self.pending = false;
        self.has_prev = true;
        self.prev_followed = true;
    }

    /// Derives the previous frame's phase (window-centre reference), instantaneous frequency
    /// and significance from a followed frame, as [`Rtpghi::integrate`] and
    /// [`Rtpghi::advance`] would have left them.
    fn settle_followed(&mut self) {
        self.prev_followed = false;
        self.instantaneous_frequency(Frame::Previous);
        self.significance(Frame::Previous);
        for (m, (p, x)) in self.phase_prev.iter_mut().zip(&self.followed).enumerate() {
            let start = (x.im as f64).atan2(x.re as f64);
            *p = swap_reference(m, start).rem_euclid(TAU);
        }
    }

    /// Instantaneous frequency (rad/sample) of a frame from the centred difference across
    /// bins, mirrored at both ends.
    fn instantaneous_frequency(&mut self, frame: Frame) {
        let n = self.n_bins;
        let (s, omega) = match frame {
            Frame::Previous => (&self.s_prev, &mut self.omega_prev),
            Frame::Current => (&self.s_cur, &mut self.omega_cur),
        };
        for (m, w) in omega.iter_mut().enumerate() {
            let below = s[m.abs_diff(1)];
            let above = s[if m + 1 < n { m + 1 } else { n - 2 }];
            *w = self.bin_omega * m as f64 + (above - below) as f64 * self.inv_two_gamma_l;
        }
    }

    /// Marks a frame's significant bins (above the relative tolerance and clear of the floor);
    /// returns how many there are.
    fn significance(&mut self, frame: Frame) -> usize {
        let (log_floor, mag_floor) = (self.log_floor, self.mag_floor);
        let (s, sig) = match frame {
            Frame::Previous => (&self.s_prev, &mut self.sig_prev),
            Frame::Current => (&self.s_cur, &mut self.sig_cur),
        };
        let max_mag = s
            .iter()
            .map(|&s| linear(s, mag_floor))
            .fold(0.0f32, f32::max);
        let threshold = (max_mag * RELATIVE_TOLERANCE).max(mag_floor * 1e-3);
        let mut count = 0usize;
        for (sig, &s) in sig.iter_mut().zip(s) {
            *sig = s > log_floor && linear(s, mag_floor) > threshold;
            count += usize::from(*sig);
        }
        count
    }

    /// Emits the pending frame (lookahead 1) as if the frame after it had the same magnitudes,
    /// then ends the stream: the next push starts afresh, as after [`Rtpghi::reset`] (the PRNG
    /// is not reseeded). Returns `false` and leaves `out` untouched when nothing is pending
    /// (always so with lookahead 0).
    ///
    /// Realtime-safe (no allocation, locking or panics); call it from the thread that pushes.
    pub fn flush(&mut self, out: &mut [Complex32]) -> bool {
        if self.lookahead == 0 || !self.pending {
            return false;
        }
        self.s_next.copy_from_slice(&self.s_cur);
        self.integrate(Gradient::Centred);
        self.emit(out);
        self.pending = false;
        self.has_prev = false;
        true
    }

    /// Computes the phase of `s_cur` into `phase_cur`.
    fn integrate(&mut self, gradient: Gradient) {
        let n = self.n_bins;
        if self.prev_followed {
            self.settle_followed();
        }
        self.instantaneous_frequency(Frame::Current);

        // Phase step per bin from the time derivative of the log-magnitude.
        let hop = self.hop;
        let has_prev = self.has_prev;
        let k = self.lambda_over_l;
        for (((step, &prev), &cur), &next) in self
            .fstep_cur
            .iter_mut()
            .zip(&self.s_prev)
            .zip(&self.s_cur)
            .zip(&self.s_next)
        {
            let ds_du = match (gradient, has_prev) {
                (Gradient::Centred, true) => (next - prev) as f64 / (2.0 * hop),
                (Gradient::Centred, false) => (next - cur) as f64 / hop,
                (Gradient::Backward, true) => (cur - prev) as f64 / hop,
                (Gradient::Backward, false) => 0.0,
            };
            *step = -k * ds_du;
        }

        let mut remaining = self.significance(Frame::Current);

        // Random phase for the rest; everything significant is still to do.
        for ((phase, done), &sig) in self
            .phase_cur
            .iter_mut()
            .zip(self.done.iter_mut())
            .zip(&self.sig_cur)
        {
            *done = !sig;
            if !sig {
                *phase = random_phase(&mut self.rng);
            }
        }

        self.heap.clear();
        if has_prev {
            for (m, (&sig, &s)) in self.sig_prev.iter().zip(&self.s_prev).enumerate() {
                if sig {
                    self.heap.push(s, m as u32 | PREV_FLAG);
                }
            }
        }

        while remaining > 0 {
            while let Some(idx) = self.heap.pop() {
                if idx & PREV_FLAG != 0 {
                    let m = (idx & !PREV_FLAG) as usize;
                    if m < n && !self.done[m] {
                        self.time_step(m);
                        remaining -= 1;
                        self.heap.push(self.s_cur[m], m as u32);
                    }
                } else {
                    let m = idx as usize;
                    if m + 1 < n && !self.done[m + 1] {
                        self.phase_cur[m + 1] =
                            self.phase_cur[m] + 0.5 * (self.fstep_cur[m] + self.fstep_cur[m + 1]);
                        self.done[m + 1] = true;
                        remaining -= 1;
                        self.heap.push(self.s_cur[m + 1], (m + 1) as u32);
                    }
                    if m >= 1 && m < n && !self.done[m - 1] {
                        self.phase_cur[m - 1] =
                            self.phase_cur[m] - 0.5 * (self.fstep_cur[m] + self.fstep_cur[m - 1]);
                        self.done[m - 1] = true;
                        remaining -= 1;
                        self.heap.push(self.s_cur[m - 1], (m - 1) as u32);
                    }
                }
            }
            if remaining == 0 {
                break;
            }
            // The heap ran dry (first frame, onset): restart from the largest bin left.
            let start = self
                .s_cur
                .iter()
                .zip(&self.done)
                .enumerate()
                .filter(|(_, (_, &done))| !done)
                .fold(
                    None,
                    |best: Option<(usize, f32)>, (m, (&s, _))| match best {
                        Some((_, b)) if b >= s => best,
                        _ => Some((m, s)),
                    },
                );
            let Some((m, s)) = start else { break };
            if has_prev {
                self.time_step(m);
            } else {
                self.phase_cur[m] = 0.0;
                self.done[m] = true;
            }
            remaining -= 1;
            self.heap.push(s, m as u32);
        }
    }

    /// Phase of bin `m` of the current frame by the trapezoid rule in time.
    fn time_step(&mut self, m: usize) {
        self.phase_cur[m] =
            self.phase_prev[m] + 0.5 * self.hop * (self.omega_prev[m] + self.omega_cur[m]);
        self.done[m] = true;
    }

    /// Writes `s_cur` with `phase_cur`, converted to the frame-start reference, into `out`.
    fn emit(&self, out: &mut [Complex32]) {
        for (m, ((o, &s), &phase)) in out
            .iter_mut()
            .zip(&self.s_cur)
            .zip(&self.phase_cur)
            .enumerate()
        {
            let mag = linear(s, self.mag_floor);
            let (sin, cos) = swap_reference(m, phase).sin_cos();
            *o = Complex32::new(mag * cos as f32, mag * sin as f32);
        }
    }

    /// Makes the current frame the previous one.
    fn advance(&mut self) {
        for (p, &c) in self.phase_prev.iter_mut().zip(&self.phase_cur) {
            // Keep the phase bounded so f64 keeps its precision over long streams.
            *p = c.rem_euclid(TAU);
        }
        self.omega_prev.copy_from_slice(&self.omega_cur);
        self.sig_prev.copy_from_slice(&self.sig_cur);
        self.s_prev.copy_from_slice(&self.s_cur);
        self.has_prev = true;
    }
}

impl std::fmt::Debug for Rtpghi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rtpghi")
            .field("n_bins", &self.n_bins)
            .field("hop", &self.hop)
            .field("lookahead", &self.lookahead)
            .field("mag_floor", &self.mag_floor)
            .finish_non_exhaustive()
    }
}

/// Which of the two frames a helper of [`Rtpghi::integrate`] works on.
#[derive(Clone, Copy)]
enum Frame {
    Previous,
    Current,
}

/// How the time derivative of the log-magnitude is estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gradient {
    /// `(s[n+1] − s[n−1]) / 2hop` (lookahead 1).
    Centred,
    /// `(s[n] − s[n−1]) / hop` (lookahead 0).
    Backward,
}

/// The phase of bin `m` referenced to the frame's start instead of the window's centre, or
/// the other way round: both are a factor of `exp(±iπm) = (-1)^m` (π added to odd bins, which
/// is its own inverse up to whole turns).
fn swap_reference(m: usize, phase: f64) -> f64 {
    if m.is_multiple_of(2) {
        phase
    } else {
        phase + PI
    }
}

/// Copies `log_mag` into `frame`, non-finite or missing values as `floor`, the rest clamped to
/// `floor..=MAX_LOG_MAG` (extra values are ignored).
fn load_frame(frame: &mut [f32], log_mag: &[f32], floor: f32) {
    let mut values = log_mag.iter();
    for s in frame.iter_mut() {
        *s = match values.next() {
            Some(&v) if v.is_finite() => v.clamp(floor, MAX_LOG_MAG),
            _ => floor,
        };
    }
}

/// Linear magnitude of a floored log-magnitude: `max(exp(l) − floor, 0)`.
fn linear(l: f32, floor: f32) -> f32 {
    (l.exp() - floor).max(0.0)
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform phase in `[-π, π)` from an xorshift64* generator.
fn random_phase(state: &mut u64) -> f64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11; // 53 bits
    (r as f64 / (1u64 << 53) as f64) * TAU - PI
}

/// Binary max-heap of `(priority, index)` on arrays allocated once. `push` beyond the capacity
/// drops the entry instead of growing (never happens here: at most two entries per bin).
struct MaxHeap {
    keys: Vec<f32>,
    ids: Vec<u32>,
    len: usize,
}

impl MaxHeap {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            keys: vec![0.0; capacity],
            ids: vec![0; capacity],
            len: 0,
        }
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    fn push(&mut self, key: f32, id: u32) {
        if self.len >= self.keys.len() || self.len >= self.ids.len() {
            return;
        }
        let mut i = self.len;
        self.len += 1;
        // Sift up: move parents down until the slot for `key` is found.
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.keys[parent] >= key {
                break;
            }
            self.keys[i] = self.keys[parent];
            self.ids[i] = self.ids[parent];
            i = parent;
        }
        self.keys[i] = key;
        self.ids[i] = id;
    }

    fn pop(&mut self) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let top = self.ids[0];
        self.len -= 1;
        let len = self.len;
        if len == 0 {
            return Some(top);
        }
        let key = self.keys[len];
        let id = self.ids[len];
        // Sift down from the root with the last entry.
        let mut i = 0;
        loop {
            let left = 2 * i + 1;
            if left >= len {
                break;
            }
            let right = left + 1;
            let child = if right < len && self.keys[right] > self.keys[left] {
                right
            } else {
                left
            };
            if self.keys[child] <= key {
                break;
            }
            self.keys[i] = self.keys[child];
            self.ids[i] = self.ids[child];
            i = child;
        }
        self.keys[i] = key;
        self.ids[i] = id;
        Some(top)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_pops_in_descending_order() {
        let mut heap = MaxHeap::with_capacity(64);
        let mut state = 7u64;
        let keys: Vec<f32> = (0..64).map(|_| random_phase(&mut state) as f32).collect();
        for (i, &k) in keys.iter().enumerate() {
            heap.push(k, i as u32);
        }
        // Full: further pushes are dropped, not grown.
        heap.push(100.0, 99);
        let mut last = f32::INFINITY;
        let mut count = 0;
        while let Some(id) = heap.pop() {
            let k = keys[id as usize];
            assert!(k <= last);
            last = k;
            count += 1;
        }
        assert_eq!(count, 64);
    }

    #[test]
    fn random_phase_is_in_range_and_spread() {
        let mut state = splitmix64(1) | 1;
        let mut sum = 0.0;
        for _ in 0..10_000 {
            let p = random_phase(&mut state);
            assert!((-PI..PI).contains(&p));
            sum += p;
        }
        assert!((sum / 10_000.0).abs() < 0.1);
    }

    /// The engine's frame-start phase and the window-centre phase differ by (-1)^m for an even
    /// FFT size: a symmetric (zero-phase about the centre) frame has real spectrum with
    /// alternating sign.
    #[test]
    fn centre_to_start_reference_is_alternating_sign() {
        let cfg = StftConfig::default();
        let mut stft = crate::stft::Stft::new(&cfg);
        let n = cfg.n_fft;
        // An impulse at the window centre: centre-referenced spectrum is real and positive.
        let mut frame = vec![0.0f32; n];
        frame[n / 2] = 1.0;
        let mut spec = vec![Complex32::default(); cfg.n_bins()];
        stft.analyse(&frame, &mut spec);
        for (m, x) in spec.iter().enumerate() {
            let sign = if m.is_multiple_of(2) { 1.0 } else { -1.0 };
            assert!(
                (x.re - sign).abs() < 1e-5 && x.im.abs() < 1e-5,
                "bin {m}: {x}"
            );
        }
    }

    #[test]
    fn first_push_with_lookahead_returns_false() {
        let cfg = StftConfig::default();
        let mut r = Rtpghi::new(&cfg, 1e-3, 1, 1);
        let frame = vec![0.0f32; cfg.n_bins()];
        let mut out = vec![Complex32::default(); cfg.n_bins()];
        assert!(!r.flush(&mut out));
        assert!(!r.push(&frame, &mut out));
        assert!(r.push(&frame, &mut out));
        assert!(r.flush(&mut out));
        assert!(!r.flush(&mut out));
        assert!(!r.push(&frame, &mut out));
        let mut r0 = Rtpghi::new(&cfg, 1e-3, 0, 1);
        assert!(r0.push(&frame, &mut out));
        assert!(!r0.flush(&mut out));
    }

    /// The energy of `got - want` over the energy of `want`.
    fn relative_error(want: &[Complex32], got: &[Complex32]) -> f64 {
        let energy: f64 = want.iter().map(|x| x.norm_sqr() as f64).sum();
        let error: f64 = want
            .iter()
            .zip(got)
            .map(|(a, b)| (a - b).norm_sqr() as f64)
            .sum();
        error / energy
    }

    /// A stream that follows one frame (its magnitudes and the spectrum that was played)
    /// instead of reconstructing it continues exactly as the stream that reconstructed it:
    /// the same output frames after it, up to the random phase of bins far below the peak
    /// (the generator is not drawn while following), on a harmonic tone with vibrato.
    #[test]
    fn following_a_frame_continues_as_if_it_was_reconstructed() {
        let cfg = StftConfig::default();
        let mut stft = crate::stft::Stft::new(&cfg);
        let floor = 1e-3f32;
        let rate = cfg.sample_rate as f64;
        let signal: Vec<f32> = (0..cfg.n_fft + 60 * cfg.hop)
            .map(|n| {
                let t = n as f64 / rate;
                // 220 Hz with a 5 Hz vibrato of 2 %: the integral of 2π f0(t).
                let phase = TAU * 220.0 * t - 0.02 * 220.0 / 5.0 * (TAU * 5.0 * t).cos();
                (1..6)
                    .map(|h| (h as f64 * phase).sin() / h as f64)
                    .sum::<f64>() as f32
                    * 0.3
            })
            .collect();
        let frames: Vec<Vec<f32>> = (0..60)
            .map(|i| {
                let mut spec = vec![Complex32::default(); cfg.n_bins()];
                stft.analyse(&signal[i * cfg.hop..i * cfg.hop + cfg.n_fft], &mut spec);
                spec.iter().map(|x| (x.norm() + floor).ln()).collect()
            })
            .collect();
        let mut whole = Rtpghi::new(&cfg, floor, 0, 3);
        let mut outs = Vec::new();
        for f in &frames {
            let mut out = vec![Complex32::default(); cfg.n_bins()];
            assert!(whole.push(f, &mut out));
            outs.push(out);
        }
        let followed_at = 30;
        let mut parted = Rtpghi::new(&cfg, floor, 0, 3);
        let mut out = vec![Complex32::default(); cfg.n_bins()];
        for f in &frames[..followed_at] {
            parted.push(f, &mut out);
        }
        parted.follow(&frames[followed_at], &outs[followed_at]);
        for (f, want) in frames.iter().zip(&outs).skip(followed_at + 1) {
            assert!(parted.push(f, &mut out));
            let error = relative_error(want, &out);
            assert!(error < 1e-8, "relative error {error:.2e}");
        }
        // Without following, a restart from a reset stream is far off (the test can fail).
        let mut fresh = Rtpghi::new(&cfg, floor, 0, 3);
        fresh.push(&frames[followed_at + 1], &mut out);
        let error = relative_error(&outs[followed_at + 1], &out);
        assert!(error > 0.1, "relative error {error:.2e}");
    }
}
