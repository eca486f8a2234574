//! Streaming band-limited resampler (Kaiser-windowed sinc, polyphase table), allocation-free
//! after construction.
//!
//! Output sample `k` is the band-limited input signal evaluated at the input-time position
//! `t_k = k * from / to + offset` (in input samples). The ratio is kept as an exact reduced
//! fraction, so positions never drift, and the time mapping is known to the sample: this is what
//! lets the engine report its latency exactly. Input samples before the first one pushed are
//! zero.

use std::f64::consts::PI;
use std::sync::{Arc, Mutex, PoisonError};

use crate::halves::in_halves;
use crate::kernels::Kernels;

/// Zero crossings of the windowed sinc on each side of its centre.
const ZERO_CROSSINGS: f64 = 24.0;
/// Cut-off as a share of the lower of the two Nyquist frequencies.
const ROLLOFF: f64 = 0.9;
/// Kaiser window shape (about 90 dB stop-band attenuation).
const KAISER_BETA: f64 = 9.0;
/// Table phases per input sample.
const OVERSAMPLE: usize = 512;
/// Most distinct output phases (the reduced ratio's denominator) for which a [`Resampler`]
/// keeps one exact kernel per phase (no larger than the interpolation table it replaces:
/// 441 for 32 -> 44.1 kHz, 3 for 32 -> 48 kHz); above it, two table rows per output.
const MAX_PHASE_KERNELS: u64 = OVERSAMPLE as u64;

/// Converts a stream at `from` Hz into a stream at `to` Hz.
///
/// Push input with [`Resampler::push`]; while [`Resampler::ready`] is true, [`Resampler::pop`]
/// returns the next output sample. Both are realtime-safe (no allocation, no lock).
#[derive(Debug, Clone)]
pub struct Resampler {
    /// Input samples per output sample, numerator of the reduced fraction `from / to`.
    num: u64,
    /// Denominator of the reduced fraction `from / to`.
    den: u64,
    /// Position offset of every output, in input samples.
    offset: f64,
    /// Kernel half-width, in input samples (0 when `from == to` and the offset is whole).
    half: usize,
    /// Polyphase table: row `j` (0..=OVERSAMPLE) holds the `2 * half` taps for fractional phase
    /// `j / OVERSAMPLE`. Empty when `kernels` holds every phase.
    table: Vec<f32>,
    /// Output phase `p` (an output `k` with `k * num % den == p`), when `den` is at most
    /// [`MAX_PHASE_KERNELS`]: its `2 * half` taps (what `pop` would interpolate between two
    /// table rows), its whole-sample shift and its fraction of a sample (the position of `k` is
    /// `k * num / den` rounded down plus the shift, plus the fraction). Empty otherwise.
    kernels: Vec<f32>,
    shifts: Vec<i64>,
    fracs: Vec<f64>,
    /// Input history, written twice (at `i` and `i + cap`) so every window is contiguous.
    hist: Vec<f32>,
    /// Ring capacity (power of two).
    cap: usize,
    /// Input samples pushed so far.
    pushed: u64,
    /// Index of the next output sample.
    produced: u64,
    /// The dot product of a window with its kernel (the CPU's best instruction set).
    simd: Kernels,
}

fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..64 {
        term *= (half / k as f64) * (half / k as f64);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Resampler {
    /// Builds a resampler from `from` Hz to `to` Hz whose output `k` sits at input position
    /// `k * from / to + offset`. `max_push` is the most input samples pushed before outputs are
    /// popped (sizes the history). Allocates; call off the audio thread.
    pub fn new(from: u32, to: u32, offset: f64, max_push: usize) -> Self {
        Self::build(from, to, offset, max_push, true)
    }

    /// [`Resampler::new`], with one kernel per output phase where `phase_kernels` and the
    /// ratio allows, or always two table rows per output (the tests' reference).
    fn build(from: u32, to: u32, offset: f64, max_push: usize, phase_kernels: bool) -> Self {
        assert!(from > 0 && to > 0, "sample rates must be positive");
        let g = gcd(from as u64, to as u64);
        let (num, den) = (from as u64 / g, to as u64 / g);
        let bypass = from == to && offset.fract() == 0.0;
        let half = if bypass {
            0
        } else {
            Self::sinc_half_width(from, to)
        };
        let table = if bypass {
            Vec::new()
        } else {
            let cutoff = Self::cutoff(from, to);
            let taps = 2 * half;
            let norm = bessel_i0(KAISER_BETA);
            let mut table = vec![0.0f32; (OVERSAMPLE + 1) * taps];
            // The kernel is even: the tap at offset -d (row OVERSAMPLE - j, tap taps - 1 - i)
            // equals the one at d, and every d here is exact in f64 (an integer plus a
            // multiple of 1 / OVERSAMPLE), so only the first half of the rows is computed.
            for j in 0..=OVERSAMPLE / 2 {
                for i in 0..taps {
                    table[j * taps + i] = Self::tap(cutoff, half, norm, i, j);
                }
            }
            for j in OVERSAMPLE / 2 + 1..=OVERSAMPLE {
                for i in 0..taps {
                    table[j * taps + i] = table[(OVERSAMPLE - j) * taps + taps - 1 - i];
                }
            }
            table
        };
        let cap = (2 * half + max_push + 4).next_power_of_two();
        let mut me = Self {
            num,
            den,
            offset,
            half,
            table,
            kernels: Vec::new(),
            shifts: Vec::new(),
            fracs: Vec::new(),
            hist: vec![0.0; 2 * cap],
            cap,
            pushed: 0,
            produced: 0,
            simd: Kernels::best(),
        };
        if phase_kernels && den <= MAX_PHASE_KERNELS {
            me.build_phase_kernels();
        }
        me
    }

    /// The filter's tap `i` of table row `j`: the windowed sinc at offset `i + j / OVERSAMPLE
    /// - half` input samples (`norm`: the Kaiser window's `I0(beta)`).
    fn tap(cutoff: f64, half: usize, norm: f64, i: usize, j: usize) -> f32 {
        let d = i as f64 + j as f64 / OVERSAMPLE as f64 - half as f64;
        let x = d / half as f64;
        let window = if x.abs() >= 1.0 {
            0.0
        } else {
            bessel_i0(KAISER_BETA * (1.0 - x * x).sqrt()) / norm
        };
        let arg = 2.0 * cutoff * d;
        let sinc = if arg.abs() < 1e-12 {
            1.0
        } else {
            (PI * arg).sin() / (PI * arg)
        };
        (2.0 * cutoff * sinc * window) as f32
    }

    /// Fills `kernels`, `shifts` and `fracs` for every output phase from the table (which is
    /// then dropped): the same positions and the same interpolated kernels `pop` computes per
    /// output without them.
    fn build_phase_kernels(&mut self) {
        let taps = 2 * self.half;
        let den = self.den as usize;
        let mut kernels = vec![0.0f32; den * taps];
        let mut shifts = Vec::with_capacity(den);
        let mut fracs = Vec::with_capacity(den);
        for p in 0..den {
            let pos = p as f64 / self.den as f64 + self.offset;
            let fl = pos.floor();
            let frac = pos - fl;
            shifts.push(fl as i64);
            fracs.push(frac);
            if taps > 0 {
                let (row_a, row_b, w) = self.rows(frac);
                for ((k, a), b) in kernels[p * taps..(p + 1) * taps]
                    .iter_mut()
                    .zip(row_a)
                    .zip(row_b)
                {
                    *k = a + (b - a) * w;
                }
            }
        }
        self.kernels = kernels;
        self.shifts = shifts;
        self.fracs = fracs;
        self.table = Vec::new();
    }

    /// Cut-off of the anti-aliasing/interpolation filter, in cycles per input sample.
    fn cutoff(from: u32, to: u32) -> f64 {
        0.5 * ROLLOFF * (to as f64 / from as f64).min(1.0)
    }

    /// Kernel half-width, in input samples, of a resampler from `from` Hz to `to` Hz that is
    /// not a bypass (a fractional offset, or different rates). Computes without building it.
    pub fn sinc_half_width(from: u32, to: u32) -> usize {
        (ZERO_CROSSINGS / (2.0 * Self::cutoff(from, to))).ceil() as usize
    }

    /// Kernel half-width, in input samples: how far past an output's position the input must
    /// reach before that output can be computed.
    pub fn half_width(&self) -> usize {
        self.half
    }

    /// Clears the history and restarts both counters at zero. Realtime-safe.
    pub fn reset(&mut self) {
        self.hist.fill(0.0);
        self.pushed = 0;
        self.produced = 0;
    }

    /// Appends one input sample. Realtime-safe.
    #[inline]
    pub fn push(&mut self, x: f32) {
        let i = (self.pushed as usize) & (self.cap - 1);
        self.hist[i] = x;
        self.hist[i + self.cap] = x;
        self.pushed += 1;
    }

    /// Integer and fractional input position of output `k`, and its phase (`k * num % den`).
    #[inline]
    fn position(&self, k: u64) -> (i64, f64, usize) {
        let n = k * self.num;
        let base = (n / self.den) as i64;
        let phase = (n % self.den) as usize;
        if let Some(&shift) = self.shifts.get(phase) {
            return (base + shift, self.fracs[phase], phase);
        }
        let pos = phase as f64 / self.den as f64 + self.offset;
        let fl = pos.floor();
        (base + fl as i64, pos - fl, phase)
    }

    /// Number of input samples that must have been pushed before the next output is ready.
    #[inline]
    pub fn input_needed(&self) -> u64 {
        let (idx, _, _) = self.position(self.produced);
        (idx + self.half as i64 + 1).max(0) as u64
    }

    /// Whether the next output can be computed from what was pushed. Realtime-safe.
    #[inline]
    pub fn ready(&self) -> bool {
        self.input_needed() <= self.pushed
    }

    /// The next output by linear interpolation at the same input position [`Resampler::pop`]
    /// uses (call only when [`Resampler::ready`]): for control signals that need the band-limited
    /// path's timing but not its filter (a constant stays exactly constant). Realtime-safe.
    pub fn pop_linear(&mut self) -> f32 {
        let (idx, frac, _) = self.position(self.produced);
        self.produced += 1;
        let (a, b) = (self.sample(idx), self.sample(idx + 1));
        if a == b {
            return a;
        }
        a + (b - a) * frac as f32
    }

    /// The two table rows around fractional position `frac` (0..1) and the weight of the
    /// second: the kernel there is `a + (b - a) * w`.
    #[inline]
    fn rows(&self, frac: f64) -> (&[f32], &[f32], f32) {
        let taps = 2 * self.half;
        let g = (1.0 - frac) * OVERSAMPLE as f64;
        let mut j = g.floor() as usize;
        let mut w = (g - j as f64) as f32;
        if j >= OVERSAMPLE {
            j = OVERSAMPLE - 1;
            w = 1.0;
        }
        (
            &self.table[j * taps..(j + 1) * taps],
            &self.table[(j + 1) * taps..(j + 2) * taps],
            w,
        )
    }

    /// Computes the next output sample (call only when [`Resampler::ready`]). Realtime-safe.
    pub fn pop(&mut self) -> f32 {
        let (idx, frac, phase) = self.position(self.produced);
        self.produced += 1;
        if self.half == 0 {
            return self.sample(idx);
        }
        let taps = 2 * self.half;
        let first = idx - self.half as i64 + 1;
        let oldest = self.pushed as i64 - self.cap as i64;
        let whole = first >= 0 && first >= oldest;
        if !self.kernels.is_empty() {
            let kernel = &self.kernels[phase * taps..(phase + 1) * taps];
            if whole {
                let start = (first as usize) & (self.cap - 1);
                return self.simd.dot(&self.hist[start..start + taps], kernel);
            }
            // Start-up: part of the window lies before the first sample (zeros).
            return (0..taps)
                .map(|i| self.sample(first + i as i64) * kernel[i])
                .sum();
        }
        let (row_a, row_b, w) = self.rows(frac);
        if whole {
            let start = (first as usize) & (self.cap - 1);
            let window = &self.hist[start..start + taps];
            let (a, b) = dot2(window, row_a, row_b);
            a + (b - a) * w
        } else {
            // Start-up: part of the window lies before the first sample (zeros).
            let mut a = 0.0f32;
            let mut b = 0.0f32;
            for i in 0..taps {
                let x = self.sample(first + i as i64);
                a += x * row_a[i];
                b += x * row_b[i];
            }
            a + (b - a) * w
        }
    }

    /// Input sample `i`, zero before the stream or when already overwritten.
    #[inline]
    fn sample(&self, i: i64) -> f32 {
        if i < 0 || i >= self.pushed as i64 || i < self.pushed as i64 - self.cap as i64 {
            0.0
        } else {
            self.hist[(i as usize) & (self.cap - 1)]
        }
    }
}

/// Two dot products of `x` with `a` and `b`, accumulated in 8 lanes so the compiler vectorises.
#[inline]
fn dot2(x: &[f32], a: &[f32], b: &[f32]) -> (f32, f32) {
    let mut sa = [0.0f32; 8];
    let mut sb = [0.0f32; 8];
    let chunks = x.len() / 8;
    for c in 0..chunks {
        let xs = &x[c * 8..c * 8 + 8];
        let as_ = &a[c * 8..c * 8 + 8];
        let bs = &b[c * 8..c * 8 + 8];
        for l in 0..8 {
            sa[l] += xs[l] * as_[l];
            sb[l] += xs[l] * bs[l];
        }
    }
    let mut ta: f32 = sa.iter().sum();
    let mut tb: f32 = sb.iter().sum();
    for i in chunks * 8..x.len() {
        ta += x[i] * a[i];
        tb += x[i] * b[i];
    }
    (ta, tb)
}

/// Most distinct output phases [`resample_all`] precomputes kernels for (the reduced ratio's
/// denominator: 320 for 44.1 -> 32 kHz, 2 for 48 -> 32 kHz); above it, the streaming path.
const MAX_WHOLE_SIGNAL_PHASES: u64 = 4_096;

/// Resamples a whole signal (off the audio thread). Output `k` is the input at time
/// `k / to` seconds; the output has `ceil(len * to / from)` samples. The same filter and
/// positions as the streaming [`Resampler`] (equal within f32 rounding), computed with one
/// kernel per output phase: a reduced ratio `num / den` has only `den` distinct phases, so each
/// output is one dot product instead of two plus an interpolation. Allocates.
pub fn resample_all(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    resample_filled(input.len(), from, to, |dst| dst.copy_from_slice(input))
}

/// [`resample_all`] of the `len` samples that `fill` writes into the slice it is given (of
/// length `len`): the same output, without the caller making the input first (a mix-down
/// goes straight into the resampler's padded copy). Allocates.
pub fn resample_filled(len: usize, from: u32, to: u32, fill: impl FnOnce(&mut [f32])) -> Vec<f32> {
    let out_len = (len as u64 * to as u64).div_ceil(from as u64) as usize;
    let rs = whole_signal_filter(from, to);
    if rs.half == 0 || rs.den > MAX_WHOLE_SIGNAL_PHASES {
        let mut input = vec![0.0f32; len];
        fill(&mut input);
        if rs.half == 0 {
            // Same rate: output k is input k.
            input.resize(out_len, 0.0);
            return input;
        }
        return resample_streaming(&input, from, to);
    }
    let (half, taps) = (rs.half, 2 * rs.half);
    // Phase p is an output whose position has fraction p / den; its kernel is what `pop`
    // interpolates between two table rows for that fraction.
    let kernels = &rs.kernels;
    let simd = rs.simd;
    // The input with the zeros the stream sees around it: `half` before (the first window
    // starts `half - 1` samples before the input), a window's worth after.
    let mut padded = vec![0.0f32; half + len + taps + 1];
    fill(&mut padded[half..half + len]);
    // Outputs are independent: two threads for long signals.
    in_halves(out_len, MIN_OUTPUTS_TO_SPLIT, |outputs| {
        // Output k sits at input k * num / den: index and phase step by num's quotient and
        // remainder (no division per output).
        let n = outputs.start as u64 * rs.num;
        let (mut idx, mut phase) = ((n / rs.den) as usize, (n % rs.den) as usize);
        let (step, carry, den) = (
            (rs.num / rs.den) as usize,
            (rs.num % rs.den) as usize,
            rs.den as usize,
        );
        outputs
            .map(|_| {
                // The window starts at input idx - half + 1, which is padded index idx + 1.
                let window = &padded[idx + 1..idx + 1 + taps];
                let y = simd.dot(window, &kernels[phase * taps..(phase + 1) * taps]);
                idx += step;
                phase += carry;
                if phase >= den {
                    phase -= den;
                    idx += 1;
                }
                y
            })
            .collect()
    })
}

/// Rate pairs whose whole-signal filter [`resample_filled`] keeps (the latest ones).
const FILTER_CACHE_PAIRS: usize = 4;

/// The resampler [`resample_filled`] reads its filter from for `from -> to`: with one kernel per
/// output phase where its path uses them (up to [`MAX_WHOLE_SIGNAL_PHASES`]). Built once per
/// rate pair and kept for the next clip at the same rates ([`FILTER_CACHE_PAIRS`] pairs):
/// building one takes about a millisecond (a Kaiser table of Bessel series), as long as
/// resampling a second of audio. Locks; call it off the audio thread.
fn whole_signal_filter(from: u32, to: u32) -> Arc<Resampler> {
    type Cache = Vec<(u32, u32, Arc<Resampler>)>;
    static CACHE: Mutex<Cache> = Mutex::new(Vec::new());
    // A panic while the lock was held leaves at worst a pair missing: the cache stays usable.
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((.., rs)) = cache.iter().find(|(f, t, _)| (*f, *t) == (from, to)) {
        return Arc::clone(rs);
    }
    let mut rs = Resampler::new(from, to, 0.0, 4096);
    if rs.half > 0 && rs.den <= MAX_WHOLE_SIGNAL_PHASES && rs.kernels.is_empty() {
        rs.build_phase_kernels();
    }
    let rs = Arc::new(rs);
    if cache.len() >= FILTER_CACHE_PAIRS {
        cache.remove(0);
    }
    cache.push((from, to, Arc::clone(&rs)));
    rs
}

/// Fewest outputs of [`resample_all`] worth a second thread.
const MIN_OUTPUTS_TO_SPLIT: usize = 32_768;

/// [`resample_all`] through the streaming resampler, one sample at a time.
fn resample_streaming(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    let out_len = (input.len() as u64 * to as u64).div_ceil(from as u64) as usize;
    let mut rs = Resampler::new(from, to, 0.0, 4096);
    let mut out = Vec::with_capacity(out_len);
    let mut fed = 0usize;
    while out.len() < out_len {
        while !rs.ready() {
            let x = if fed < input.len() { input[fed] } else { 0.0 };
            rs.push(x);
            fed += 1;
        }
        out.push(rs.pop());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table's mirrored half is the filter computed at those offsets, bit for bit, at
    /// rate pairs with short and long kernels.
    #[test]
    fn the_mirrored_table_rows_are_the_filter() {
        for (from, to) in [
            (44_100, 32_000),
            (32_000, 48_000),
            (96_000, 32_000),
            (8_000, 32_000),
        ] {
            let rs = Resampler::build(from, to, 0.0, 64, false);
            let (cutoff, half) = (Resampler::cutoff(from, to), rs.half);
            let taps = 2 * half;
            let norm = bessel_i0(KAISER_BETA);
            for j in 0..=OVERSAMPLE {
                for i in 0..taps {
                    let want = Resampler::tap(cutoff, half, norm, i, j);
                    assert_eq!(
                        rs.table[j * taps + i].to_bits(),
                        want.to_bits(),
                        "{from} -> {to}, row {j}, tap {i}"
                    );
                }
            }
        }
    }

    /// `pop_linear` follows the band-limited `pop` on a slow, smooth signal (a 20 Hz sine, as
    /// slow as the engine's wet-share crossfades) to within 1e-4 at the same positions, and
    /// keeps a constant exactly constant.
    #[test]
    fn linear_pop_follows_the_sinc_on_slow_signals() {
        let (from, to) = (32_000, 48_000);
        let slow = tone(20.0, from, 32_000);
        let mut sinc = Resampler::new(from, to, 3.25, 512);
        let mut linear = sinc.clone();
        let (mut fed, mut worst) = (0usize, 0.0f32);
        for k in 0..40_000 {
            while !sinc.ready() {
                sinc.push(slow[fed]);
                linear.push(slow[fed]);
                fed += 1;
            }
            let (a, b) = (sinc.pop(), linear.pop_linear());
            if k > 200 {
                worst = worst.max((a - b).abs());
            }
        }
        assert!(worst < 1e-4, "largest difference {worst}");

        let mut ones = Resampler::new(from, to, 0.5, 512);
        for k in 0..5_000 {
            while !ones.ready() {
                ones.push(1.0);
            }
            let v = ones.pop_linear();
            if k > 100 {
                assert_eq!(v, 1.0);
            }
        }
    }

    /// The whole-signal path gives what the streaming resampler gives (the reference), at the
    /// rates a reference file comes in, on a tone with a start, noise and a click at the end.
    #[test]
    fn whole_signal_resampling_matches_the_stream() {
        let mut rng = crate::test_rng::XorShift::new(7);
        for (from, to) in [
            (44_100, 32_000),
            (48_000, 32_000),
            (96_000, 32_000),
            (22_050, 32_000),
            (32_000, 48_000),
            (32_000, 32_000),
            (44_100, 44_100 + 1),
        ] {
            let len = from as usize / 3 + 17;
            let mut x = tone(441.0, from, len);
            for v in &mut x {
                *v = 0.5 * *v + 0.2 * rng.next_centred();
            }
            x[len - 1] = 1.0;
            let want = resample_streaming(&x, from, to);
            let got = resample_all(&x, from, to);
            assert_eq!(got.len(), want.len(), "{from} -> {to}");
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "{from} -> {to}: largest difference {worst}");
        }
    }

    /// The kept filters are what building one gives, however often a pair is asked for and
    /// after other pairs have pushed it out.
    #[test]
    fn kept_filters_are_freshly_built_ones() {
        let pairs = [
            (44_100, 32_000),
            (48_000, 32_000),
            (22_050, 32_000),
            (96_000, 32_000),
            (88_200, 32_000),
            (44_100, 32_000),
        ];
        for (from, to) in pairs.into_iter().chain(pairs) {
            let kept = whole_signal_filter(from, to);
            let mut fresh = Resampler::new(from, to, 0.0, 4096);
            if fresh.kernels.is_empty() {
                fresh.build_phase_kernels();
            }
            assert_eq!(
                (kept.num, kept.den, kept.half),
                (fresh.num, fresh.den, fresh.half)
            );
            assert_eq!(kept.kernels, fresh.kernels, "{from} -> {to}");
        }
    }

    /// One kernel per output phase gives what interpolating two table rows per output gives
    /// (the resampler before phase kernels, the reference here), at the engine's rate pairs
    /// and offsets, to f32 rounding, with the same positions (so the same `ready` points).
    #[test]
    fn phase_kernels_match_the_interpolated_table() {
        let mut rng = crate::test_rng::XorShift::new(11);
        for (from, to, offset) in [
            (48_000, 32_000, 0.0),
            (32_000, 48_000, 0.0),
            (32_000, 48_000, 0.37),
            (44_100, 32_000, 0.0),
            (32_000, 44_100, -0.61),
            (96_000, 32_000, 0.0),
            (32_000, 32_000, 0.25),
        ] {
            let mut fast = Resampler::new(from, to, offset, 64);
            let mut slow = Resampler::build(from, to, offset, 64, false);
            assert!(!fast.kernels.is_empty() && slow.kernels.is_empty());
            let (mut fed, mut worst, mut outputs) = (0usize, 0.0f32, 0usize);
            while fed < 20_000 {
                for _ in 0..37 {
                    let x = rng.next_centred() + (fed as f32 * 0.01).sin();
                    fast.push(x);
                    slow.push(x);
                    fed += 1;
                }
                while slow.ready() {
                    assert!(fast.ready(), "{from} -> {to}: ready differs");
                    let (a, b) = (fast.pop(), slow.pop());
                    worst = worst.max((a - b).abs());
                    outputs += 1;
                }
                assert!(!fast.ready(), "{from} -> {to}: ready differs");
            }
            let expected = fed as u64 * to as u64 / from as u64;
            assert!(
                outputs as u64 + 200 > expected,
                "{from} -> {to}: {outputs} outputs of {expected}"
            );
            assert!(worst < 2e-6, "{from} -> {to}: largest difference {worst}");
        }
    }

    fn tone(freq: f64, rate: u32, len: usize) -> Vec<f32> {
        (0..len)
            .map(|n| (2.0 * PI * freq * n as f64 / rate as f64).sin() as f32)
            .collect()
    }

    fn snr_db(reference: &[f32], test: &[f32]) -> f64 {
        let (mut s, mut e) = (0.0f64, 0.0f64);
        for (r, t) in reference.iter().zip(test) {
            s += (*r as f64).powi(2);
            e += (*r as f64 - *t as f64).powi(2);
        }
        10.0 * (s / e.max(1e-30)).log10()
    }

    /// A sine resampled to another rate equals the same sine generated at that rate.
    #[test]
    fn sine_matches_analytic_at_other_rates() {
        for &(from, to) in &[
            (48_000, 32_000),
            (44_100, 32_000),
            (32_000, 96_000),
            (22_050, 32_000),
            (192_000, 32_000),
        ] {
            let f = 3_000.0;
            let x = tone(f, from, from as usize / 2);
            let y = resample_all(&x, from, to);
            let expect = tone(f, to, y.len());
            // Skip the edges where the signal starts/stops abruptly.
            let skip = to as usize / 50;
            let snr = snr_db(&expect[skip..y.len() - skip], &y[skip..y.len() - skip]);
            assert!(snr > 70.0, "{from}->{to}: SNR {snr:.1} dB");
        }
    }

    /// Content above the target Nyquist is removed (anti-aliasing).
    #[test]
    fn rejects_alias_band() {
        let x = tone(20_000.0, 48_000, 24_000);
        let y = resample_all(&x, 48_000, 32_000);
        let skip = 1000;
        let rms = (y[skip..y.len() - skip]
            .iter()
            .map(|v| (*v as f64).powi(2))
            .sum::<f64>()
            / (y.len() - 2 * skip) as f64)
            .sqrt();
        // A 20 kHz tone would alias to 12 kHz at 32 kHz; it must be at least 70 dB down.
        assert!(
            20.0 * rms.log10() < -70.0,
            "alias at {:.1} dB",
            20.0 * rms.log10()
        );
    }

    /// Equal rates with whole offsets are an exact delay.
    #[test]
    fn bypass_is_exact_delay() {
        let x: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let mut rs = Resampler::new(48_000, 48_000, -3.0, 128);
        let mut out = Vec::new();
        for &v in &x {
            rs.push(v);
            while rs.ready() {
                out.push(rs.pop());
            }
        }
        assert_eq!(&out[..3], &[0.0, 0.0, 0.0]);
        assert_eq!(&out[3..], &x[..]);
    }

    /// Streaming with any push pattern gives the same numbers.
    #[test]
    fn streaming_is_block_independent() {
        let x = tone(1234.0, 44_100, 5000);
        let reference = {
            let mut rs = Resampler::new(44_100, 32_000, 0.0, 8);
            let mut out = Vec::new();
            for &v in &x {
                rs.push(v);
                while rs.ready() {
                    out.push(rs.pop());
                }
            }
            out
        };
        let mut rs = Resampler::new(44_100, 32_000, 0.0, 1000);
        let mut out = Vec::new();
        let mut i = 0;
        let mut step = 1;
        while i < x.len() {
            let end = (i + step).min(x.len());
            for &v in &x[i..end] {
                rs.push(v);
            }
            while rs.ready() {
                out.push(rs.pop());
            }
            i = end;
            step = (step * 7 + 3) % 997 + 1;
        }
        assert_eq!(out, reference);
    }
}
