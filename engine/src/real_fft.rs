//! Real FFTs, bit for bit realfft's, with the step that turns a half-length complex transform
//! into a real signal's spectrum (and back) done four pairs of bins at a time where the CPU
//! has AVX2.
//!
//! realfft runs that step one pair of bins at a time: for the engine's lengths (512 to 2048)
//! its transforms took 1.4 to 1.7 times what they take here (`cargo bench -p
//! timbreswap-engine --bench kernels -- real_fft`). For even lengths (every length the engine
//! uses) the complex transform is the same one (rustfft's planner, the same length and call)
//! and each pair of bins takes realfft's arithmetic in the same order, so every output is the
//! same `f32` (a NaN where realfft gives a NaN; its sign bit may differ): only the scheduling
//! changes. Odd lengths are realfft's own transforms. Plans allocate; [`ForwardFft::process`]
//! and [`InverseFft::process`] do not, and are realtime-safe.

use std::sync::Arc;

use realfft::num_complex::Complex32;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftPlanner};

/// A real FFT plan of `n` samples in one direction (`R`: realfft's plan of that direction,
/// which odd lengths use).
pub struct RealFft<R: ?Sized> {
    len: usize,
    plan: Plan<R>,
}

/// A forward real FFT of `n` samples to `n / 2 + 1` bins, unnormalised.
pub type ForwardFft = RealFft<dyn RealToComplex<f32>>;

/// An inverse real FFT of `n / 2 + 1` bins to `n` samples, unnormalised (a forward then an
/// inverse transform scales by `n`).
pub type InverseFft = RealFft<dyn ComplexToReal<f32>>;

/// A direction of the transform: realfft's plan of it (which odd lengths use), and which
/// twiddles the split step of an even length takes.
pub trait Direction {
    /// Whether this is the forward transform.
    const FORWARD: bool;

    /// realfft's plan of `len` samples in this direction. Allocates.
    fn plan(len: usize) -> Arc<Self>;

    /// Scratch its `process_with_scratch` needs, in complex values.
    fn scratch_len(&self) -> usize;
}

impl Direction for dyn RealToComplex<f32> {
    const FORWARD: bool = true;

    fn plan(len: usize) -> Arc<Self> {
        RealFftPlanner::<f32>::new().plan_fft_forward(len)
    }

    fn scratch_len(&self) -> usize {
        self.get_scratch_len()
    }
}

impl Direction for dyn ComplexToReal<f32> {
    const FORWARD: bool = false;

    fn plan(len: usize) -> Arc<Self> {
        RealFftPlanner::<f32>::new().plan_fft_inverse(len)
    }

    fn scratch_len(&self) -> usize {
        self.get_scratch_len()
    }
}

/// How a length is transformed.
enum Plan<R: ?Sized> {
    /// Even: the half-length complex transform and the split step here.
    Even(Split),
    /// Odd: realfft's transform (`R`).
    Odd(Arc<R>),
    /// No samples: nothing to transform ([`ForwardFft::process`] and [`InverseFft::process`]
    /// refuse every call).
    Empty,
}

/// The parts of an even length's transform.
struct Split {
    fft: Arc<dyn Fft<f32>>,
    /// realfft's twiddles for the direction (forward: `0.5 e^{-2 pi i k / n}`, inverse:
    /// `e^{+2 pi i k / n}`) for `k = 1..`, their parts apart.
    twiddle_re: Vec<f32>,
    twiddle_im: Vec<f32>,
    /// The pair loop for this CPU.
    pairs: SplitFn,
}

/// The pair loop of one direction: `(left, right, twiddle_re, twiddle_im)`, `left[k]` paired
/// with `right[right.len() - 1 - k]` and twiddle `k`, over `twiddle_re.len()` pairs. Safe to
/// call only where the CPU has the features the chosen function was compiled for.
type SplitFn = unsafe fn(&mut [Complex32], &mut [Complex32], &[f32], &[f32]);

/// realfft's twiddle `k` of length `n`: `e^{-2 pi i k / n}` worked out in `f64`.
fn twiddle(k: usize, n: usize) -> (f64, f64) {
    let angle = -2f64 * std::f64::consts::PI / n as f64 * k as f64;
    (angle.cos(), angle.sin())
}

/// realfft's twiddle count for length `n`: one per pair of bins the split step combines, and
/// one more (unused) where `n / 2` is odd.
fn twiddle_count(n: usize) -> usize {
    if n.is_multiple_of(4) {
        n / 4
    } else {
        n / 4 + 1
    }
}

impl Split {
    /// The split step's parts for length `len` (even, at least 2) in one direction.
    fn new(len: usize, forward: bool) -> Self {
        let (twiddle_re, twiddle_im) = (1..twiddle_count(len))
            .map(|k| {
                let (re, im) = twiddle(k, len);
                let (re, im) = (re as f32, im as f32);
                // realfft: forward, the f32 twiddle times 0.5 (exact); inverse, its conjugate.
                if forward {
                    (re * 0.5, im * 0.5)
                } else {
                    (re, -im)
                }
            })
            .unzip();
        let mut planner = FftPlanner::<f32>::new();
        Self {
            fft: if forward {
                planner.plan_fft_forward(len / 2)
            } else {
                planner.plan_fft_inverse(len / 2)
            },
            twiddle_re,
            twiddle_im,
            pairs: split_fn(forward),
        }
    }

    /// The pair loop over `left[1..]` and `right[..right.len() - 1]` (the halves of the
    /// spectrum, less their first and last bins).
    fn run(&self, bins: &mut [Complex32]) {
        let (left, right) = bins.split_at_mut(bins.len() / 2);
        let right_len = right.len();
        let (left, right) = (&mut left[1..], &mut right[..right_len - 1]);
        let pairs = self.twiddle_re.len().min(left.len()).min(right.len());
        // SAFETY: `pairs` was chosen by `split_fn` for the features this CPU has.
        unsafe {
            (self.pairs)(
                left,
                right,
                &self.twiddle_re[..pairs],
                &self.twiddle_im[..pairs],
            )
        };
    }
}

/// `len` samples as `len / 2` complex values, for the half-length transform.
fn as_complex(samples: &mut [f32]) -> &mut [Complex32] {
    let half = samples.len() / 2;
    // SAFETY: `Complex32` is `#[repr(C)]` with two `f32` fields (`re`, `im`): its size is 8
    // and its alignment 4, that of `f32`, so the first `2 * half` samples are exactly `half`
    // complex values in the same memory, borrowed mutably for as long as `samples` is.
    unsafe { std::slice::from_raw_parts_mut(samples.as_mut_ptr().cast::<Complex32>(), half) }
}

impl<R: Direction + ?Sized> RealFft<R> {
    /// Plans the transform of `len` samples. Not realtime-safe (allocates).
    pub fn new(len: usize) -> Self {
        let plan = match len {
            0 => Plan::Empty,
            _ if len.is_multiple_of(2) => Plan::Even(Split::new(len, R::FORWARD)),
            _ => Plan::Odd(R::plan(len)),
        };
        Self { len, plan }
    }

    /// Samples: the forward transform's input, the inverse's output.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the plan is for no samples (and transforms nothing).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Scratch `process` needs, in complex values.
    pub fn scratch_len(&self) -> usize {
        match &self.plan {
            Plan::Even(split) => split.fft.get_outofplace_scratch_len(),
            Plan::Odd(plan) => plan.scratch_len(),
            Plan::Empty => 0,
        }
    }

    /// Scratch of [`scratch_len`](Self::scratch_len). Allocates.
    pub fn make_scratch(&self) -> Vec<Complex32> {
        vec![Complex32::default(); self.scratch_len()]
    }
}

impl ForwardFft {
    /// The spectrum of `input` (`len` samples, used as scratch: its values are lost) into
    /// `output` (`len / 2 + 1` bins). Returns false, writing nothing, where a length is not
    /// the plan's or `scratch` is shorter than [`scratch_len`](Self::scratch_len).
    /// Realtime-safe.
    pub fn process(
        &self,
        input: &mut [f32],
        output: &mut [Complex32],
        scratch: &mut [Complex32],
    ) -> bool {
        let half = self.len / 2;
        if input.len() != self.len || output.len() != half + 1 || scratch.len() < self.scratch_len()
        {
            return false;
        }
        let split = match &self.plan {
            Plan::Even(split) => split,
            Plan::Odd(plan) => return plan.process_with_scratch(input, output, scratch).is_ok(),
            Plan::Empty => return false,
        };
        split
            .fft
            .process_outofplace_with_scratch(as_complex(input), &mut output[..half], scratch);
        // DC and Nyquist from the first value.
        let first = output[0];
        output[0] = Complex32::new(first.re + first.im, 0.0);
        output[half] = Complex32::new(first.re - first.im, 0.0);
        split.run(output);
        if output.len() % 2 == 1 {
            let centre = output.len() / 2;
            output[centre].im = -output[centre].im;
        }
        true
    }
}

impl InverseFft {
    /// The signal of `input` (`len / 2 + 1` bins, used as scratch: its values are lost; the
    /// imaginary part of its first bin, and of its last for an even `len`, is read as 0, as a
    /// real signal's is) into `output` (`len` samples). Returns false, writing nothing, where
    /// a length is not the plan's or `scratch` is shorter than
    /// [`scratch_len`](Self::scratch_len). Realtime-safe.
    pub fn process(
        &self,
        input: &mut [Complex32],
        output: &mut [f32],
        scratch: &mut [Complex32],
    ) -> bool {
        let half = self.len / 2;
        if input.len() != half + 1 || output.len() != self.len || scratch.len() < self.scratch_len()
        {
            return false;
        }
        let split = match &self.plan {
            Plan::Even(split) => split,
            Plan::Odd(plan) => {
                input[0].im = 0.0;
                return plan.process_with_scratch(input, output, scratch).is_ok();
            }
            Plan::Empty => return false,
        };
        input[0].im = 0.0;
        input[half].im = 0.0;
        let (first, last) = (input[0], input[half]);
        let (sum, diff) = (first + last, first - last);
        input[0] = Complex32::new(sum.re - sum.im, diff.re - diff.im);
        split.run(input);
        let len = input.len();
        if len % 2 == 1 {
            let centre = input[len / 2];
            let doubled = centre + centre;
            input[len / 2] = doubled.conj();
        }
        split
            .fft
            .process_outofplace_with_scratch(&mut input[..half], as_complex(output), scratch);
        true
    }
}

/// One pair of the forward split, realfft's arithmetic: `l` and `r` in, both out.
#[inline(always)]
fn forward_pair(l: Complex32, r: Complex32, tw_re: f32, tw_im: f32) -> (Complex32, Complex32) {
    let sum = l + r;
    let diff = l - r;
    let half_sum_re = 0.5 * sum.re;
    let half_diff_im = 0.5 * diff.im;
    let out_re = sum.im * tw_re + diff.re * tw_im;
    let out_im = sum.im * tw_im - diff.re * tw_re;
    (
        Complex32::new(half_sum_re + out_re, half_diff_im + out_im),
        Complex32::new(half_sum_re - out_re, out_im - half_diff_im),
    )
}

/// One pair of the inverse split, realfft's arithmetic.
#[inline(always)]
fn inverse_pair(l: Complex32, r: Complex32, tw_re: f32, tw_im: f32) -> (Complex32, Complex32) {
    let sum = l + r;
    let diff = l - r;
    let out_re = sum.im * tw_re + diff.re * tw_im;
    let out_im = sum.im * tw_im - diff.re * tw_re;
    (
        Complex32::new(sum.re - out_re, diff.im - out_im),
        Complex32::new(sum.re + out_re, -out_im - diff.im),
    )
}

/// The pair loop one pair at a time, as realfft runs it.
#[inline(always)]
fn split_with(
    left: &mut [Complex32],
    right: &mut [Complex32],
    tw_re: &[f32],
    tw_im: &[f32],
    pair: impl Fn(Complex32, Complex32, f32, f32) -> (Complex32, Complex32),
) {
    let pairs = tw_re
        .len()
        .min(tw_im.len())
        .min(left.len())
        .min(right.len());
    let last = right.len().wrapping_sub(1);
    for k in 0..pairs {
        (left[k], right[last - k]) = pair(left[k], right[last - k], tw_re[k], tw_im[k]);
    }
}

/// # Safety
/// None beyond the types': the baseline target's instructions.
unsafe fn forward_split_baseline(
    left: &mut [Complex32],
    right: &mut [Complex32],
    tw_re: &[f32],
    tw_im: &[f32],
) {
    split_with(left, right, tw_re, tw_im, forward_pair);
}

/// # Safety
/// None beyond the types': the baseline target's instructions.
unsafe fn inverse_split_baseline(
    left: &mut [Complex32],
    right: &mut [Complex32],
    tw_re: &[f32],
    tw_im: &[f32],
) {
    split_with(left, right, tw_re, tw_im, inverse_pair);
}

/// The pair loop in AVX2, four pairs a register: `(l, r)` interleaved as `(re, im)` lanes,
/// the right side's four read and written in reverse order. Each lane takes realfft's
/// operations on one pair in the same order (products, then sums; a sum of a negated value
/// where realfft subtracts is the same operation), so the results are [`split_with`]'s bit
/// for bit. `FORWARD` picks the direction.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn split_avx2<const FORWARD: bool>(
    left: &mut [Complex32],
    right: &mut [Complex32],
    tw_re: &[f32],
    tw_im: &[f32],
) {
    use std::arch::x86_64::*;
    let pairs = tw_re
        .len()
        .min(tw_im.len())
        .min(left.len())
        .min(right.len());
    let last = right.len().wrapping_sub(1);
    let (lp, rp) = (
        left.as_mut_ptr().cast::<f32>(),
        right.as_mut_ptr().cast::<f32>(),
    );
    // Odd lanes (the imaginary parts) from the second operand of a blend.
    const ODD: i32 = 0b1010_1010;
    // Four complex values (64-bit lanes) in reverse order.
    const REVERSE: i32 = 0b00_01_10_11;
    let half = _mm256_set1_ps(0.5);
    // The sign bit: `x ^ sign` is `-x` exactly (zeros included, as `0 - x` is not).
    let sign = _mm256_set1_ps(-0.0);
    let mut k = 0;
    while k + 4 <= pairs {
        // SAFETY: k + 4 <= pairs <= left.len(), so left[k..k + 4] (8 floats) is in bounds;
        // last - k - 3 >= right.len() - pairs >= 0, so right[last - k - 3..=last - k] is too;
        // twiddles k..k + 4 exist (k + 4 <= pairs). Unaligned loads and stores; the left and
        // right slices do not overlap (two `&mut`).
        unsafe {
            let l = _mm256_loadu_ps(lp.add(2 * k));
            let r_at = rp.add(2 * (last - k - 3));
            let r = _mm256_castpd_ps(_mm256_permute4x64_pd(
                _mm256_castps_pd(_mm256_loadu_ps(r_at)),
                REVERSE,
            ));
            let (re, im) = (
                _mm_loadu_ps(tw_re.as_ptr().add(k)),
                _mm_loadu_ps(tw_im.as_ptr().add(k)),
            );
            // (tw_re, tw_im) interleaved per pair.
            let tw = _mm256_set_m128(_mm_unpackhi_ps(re, im), _mm_unpacklo_ps(re, im));
            let sum = _mm256_add_ps(l, r);
            let diff = _mm256_sub_ps(l, r);
            // (sum.im tw_re, sum.im tw_im) and (diff.re tw_im, diff.re tw_re).
            let a = _mm256_mul_ps(_mm256_movehdup_ps(sum), tw);
            let b = _mm256_permute_ps(_mm256_mul_ps(_mm256_moveldup_ps(diff), tw), 0b10_11_00_01);
            // (out_re, out_im) = (a.re + b.re, a.im - b.im): an add-subtract of -b (x - (-y)
            // is x + y and x + (-y) is x - y, exactly).
            let o = _mm256_addsub_ps(a, _mm256_xor_ps(b, sign));
            let (new_l, new_r) = if FORWARD {
                // (0.5 sum.re, 0.5 diff.im).
                let h = _mm256_blend_ps(_mm256_mul_ps(half, sum), _mm256_mul_ps(half, diff), ODD);
                (
                    _mm256_add_ps(h, o),
                    _mm256_blend_ps(_mm256_sub_ps(h, o), _mm256_sub_ps(o, h), ODD),
                )
            } else {
                // (sum.re, diff.im).
                let p = _mm256_blend_ps(sum, diff, ODD);
                let neg_o = _mm256_xor_ps(o, sign);
                (
                    _mm256_sub_ps(p, o),
                    _mm256_blend_ps(_mm256_add_ps(p, o), _mm256_sub_ps(neg_o, p), ODD),
                )
            };
            _mm256_storeu_ps(lp.add(2 * k), new_l);
            _mm256_storeu_ps(
                r_at,
                _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(new_r), REVERSE)),
            );
        }
        k += 4;
    }
    // The last pairs one at a time.
    let pair = if FORWARD { forward_pair } else { inverse_pair };
    while k < pairs {
        (left[k], right[last - k]) = pair(left[k], right[last - k], tw_re[k], tw_im[k]);
        k += 1;
    }
}

/// The pair loop for this CPU in one direction.
fn split_fn(forward: bool) -> SplitFn {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        return if forward {
            split_avx2::<true>
        } else {
            split_avx2::<false>
        };
    }
    if forward {
        forward_split_baseline
    } else {
        inverse_split_baseline
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use realfft::RealFftPlanner;

    /// Lengths with and without leftover pairs after the blocks of four, `n / 2` odd and
    /// even, odd lengths (realfft's own transforms), the engine's (512, 1152, 2048) and the
    /// smallest.
    const LENGTHS: [usize; 16] = [
        1, 2, 3, 4, 6, 9, 10, 18, 34, 36, 64, 100, 255, 512, 1152, 2048,
    ];

    /// Signals of every kind: random, with zeros, tiny and huge values, infinities and NaN.
    fn signals(n: usize) -> Vec<Vec<f32>> {
        let mut rng = crate::test_rng::XorShift::new(n as u32 + 3);
        let plain: Vec<f32> = (0..n).map(|_| rng.next_centred()).collect();
        let mut odd = plain.clone();
        for (i, v) in [0.0, -0.0, 1e-38, 3e38, f32::INFINITY, f32::NAN]
            .into_iter()
            .enumerate()
        {
            if let Some(x) = odd.get_mut((i * 7) % n) {
                *x = v;
            }
        }
        let scaled: Vec<f32> = plain.iter().map(|v| v * 1e-20).collect();
        vec![plain, odd, scaled, vec![0.0; n]]
    }

    /// A value's bits, every NaN as one (a NaN's sign and payload follow the operand order
    /// the compiler chose, which is not part of the arithmetic).
    fn key(v: f32) -> u32 {
        if v.is_nan() {
            f32::NAN.to_bits()
        } else {
            v.to_bits()
        }
    }

    fn bits(c: &[Complex32]) -> Vec<(u32, u32)> {
        c.iter().map(|c| (key(c.re), key(c.im))).collect()
    }

    /// Every bin is realfft's forward transform's, bit for bit (a NaN where it has one).
    #[test]
    fn forward_is_realffts_bit_for_bit() {
        for n in LENGTHS {
            let theirs = RealFftPlanner::<f32>::new().plan_fft_forward(n);
            let ours = ForwardFft::new(n);
            let mut scratch = ours.make_scratch();
            for signal in signals(n) {
                let mut want = theirs.make_output_vec();
                theirs.process(&mut signal.clone(), &mut want).unwrap();
                let mut got = vec![Complex32::new(f32::NAN, f32::NAN); n / 2 + 1];
                assert!(ours.process(&mut signal.clone(), &mut got, &mut scratch));
                assert_eq!(bits(&got), bits(&want), "length {n}");
            }
        }
    }

    /// Every sample is realfft's inverse transform's, bit for bit, including spectra whose
    /// first and last bins have imaginary parts (read as 0).
    #[test]
    fn inverse_is_realffts_bit_for_bit() {
        for n in LENGTHS {
            let theirs = RealFftPlanner::<f32>::new().plan_fft_inverse(n);
            let ours = InverseFft::new(n);
            let mut scratch = ours.make_scratch();
            for signal in signals(n + 2) {
                let spectrum: Vec<Complex32> = signal
                    .chunks_exact(2)
                    .map(|c| Complex32::new(c[0], c[1]))
                    .collect();
                let mut want = vec![0.0f32; n];
                // realfft reports the imaginary parts it dropped; the output is the same.
                let _ = theirs.process(&mut spectrum.clone(), &mut want);
                let mut got = vec![f32::NAN; n];
                assert!(ours.process(&mut spectrum.clone(), &mut got, &mut scratch));
                let b = |x: &[f32]| x.iter().map(|v| key(*v)).collect::<Vec<_>>();
                assert_eq!(b(&got), b(&want), "length {n}");
            }
        }
    }

    /// Both directions on every CPU path this machine has give the baseline's bits (the
    /// vector path is chosen where the CPU has it; here it is compared with the plain loop).
    #[test]
    fn the_vector_pair_loop_is_the_plain_one() {
        let mut rng = crate::test_rng::XorShift::new(11);
        for pairs in [0, 1, 7, 8, 9, 16, 127, 255] {
            let mut make = |len: usize| -> Vec<Complex32> {
                (0..len)
                    .map(|_| Complex32::new(rng.next_centred(), rng.next_centred()))
                    .collect()
            };
            let (left, right) = (make(pairs), make(pairs + 1));
            let tw: Vec<Complex32> = make(pairs);
            let (re, im): (Vec<f32>, Vec<f32>) = tw.iter().map(|c| (c.re, c.im)).unzip();
            for (chosen, plain) in [
                (split_fn(true), forward_split_baseline as SplitFn),
                (split_fn(false), inverse_split_baseline as SplitFn),
            ] {
                let (mut l1, mut r1) = (left.clone(), right.clone());
                let (mut l2, mut r2) = (left.clone(), right.clone());
                // SAFETY: `chosen` is for this CPU; the baseline runs anywhere.
                unsafe {
                    chosen(&mut l1, &mut r1, &re, &im);
                    plain(&mut l2, &mut r2, &re, &im);
                }
                assert_eq!(bits(&l1), bits(&l2), "{pairs} pairs");
                assert_eq!(bits(&r1), bits(&r2), "{pairs} pairs");
                // The plain loop is realfft's per-pair arithmetic: a pair alone.
                if pairs > 0 {
                    let last = right.len() - 1;
                    let (a, b) = forward_pair(left[0], right[last], re[0], im[0]);
                    let (mut l3, mut r3) = (left.clone(), right.clone());
                    // SAFETY: the baseline runs anywhere.
                    unsafe { forward_split_baseline(&mut l3, &mut r3, &re, &im) };
                    assert_eq!(bits(&[a, b]), bits(&[l3[0], r3[last]]));
                }
            }
        }
    }

    /// Wrong lengths and short scratch are refused, and nothing is written.
    #[test]
    fn wrong_lengths_write_nothing() {
        let (f, i) = (ForwardFft::new(0), InverseFft::new(0));
        assert!(f.is_empty() && i.is_empty());
        let mut one = [Complex32::new(1.0, 2.0)];
        assert!(!f.process(&mut [], &mut one, &mut []));
        assert!(!i.process(&mut one, &mut [], &mut []));
        assert_eq!(one[0], Complex32::new(1.0, 2.0));
        let (f, i) = (ForwardFft::new(64), InverseFft::new(64));
        let mut scratch = vec![Complex32::default(); f.scratch_len().max(i.scratch_len())];
        let mut out = vec![Complex32::new(1.0, 2.0); 33];
        assert!(!f.process(&mut [0.5; 63], &mut out, &mut scratch));
        assert!(!f.process(&mut [0.5; 64], &mut out[..32], &mut scratch));
        assert!(out.iter().all(|c| *c == Complex32::new(1.0, 2.0)));
        let mut samples = vec![3.0f32; 64];
        assert!(!i.process(&mut out[..32], &mut samples, &mut scratch));
        assert!(!i.process(&mut out, &mut samples[..63], &mut scratch));
        assert!(samples.iter().all(|v| *v == 3.0));
        if f.scratch_len() > 0 {
            let mut none: [Complex32; 0] = [];
            assert!(!f.process(&mut [0.5; 64], &mut out, &mut none));
        }
    }
}
