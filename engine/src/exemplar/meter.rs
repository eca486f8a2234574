//! The partial meter: the amplitudes of a frame's partials and the noise in the valleys
//! between them, on a long window, for the bank's frames ([`super::ExemplarBank`]).

use realfft::num_complex::Complex32;

use super::background::Background;
use crate::real_fft::ForwardFft;

/// A periodic Hann window's power (`sum w^2`) per sample: 3/8.
pub(super) const HANN_POWER_PER_SAMPLE: f32 = 0.375;

/// FFT size of the reference's partial measurement ([`ExemplarBank`](super::ExemplarBank)), in samples.
pub const HARMONIC_FFT: usize = 2048;
/// Partials the bank measures per frame for [`Shift::Harmonic`](super::Shift::Harmonic) (enough to reach 16 kHz
/// from a 62.5 Hz fundamental).
pub const HARMONIC_PARTIALS: usize = 256;
/// Highest partial frequency [`Shift::Harmonic`](super::Shift::Harmonic) plays, in Hz.
pub const HARMONIC_MAX_HZ: f32 = 16_000.0;

/// From a spectral peak (`|X|`) to the amplitude of the sinusoid behind it: a sinusoid of
/// amplitude `A` peaks at `A sum(w) / 2 = A N / 4` for a Hann window of `N` samples.
const TO_AMPLITUDE: f32 = 4.0 / HARMONIC_FFT as f32;
/// The meter's window power (`sum w^2` of its Hann window).
const WINDOW_POWER: f32 = HARMONIC_FFT as f32 * HANN_POWER_PER_SAMPLE;

/// Measures partial amplitudes of frames of a clip on a [`HARMONIC_FFT`]-point Hann spectrum.
pub(super) struct PartialMeter {
    fft: ForwardFft,
    /// The transform's scratch, kept between frames.
    scratch: Vec<Complex32>,
    window: Vec<f32>,
    time: Vec<f32>,
    spectrum: Vec<Complex32>,
    mag: Vec<f32>,
    /// Over a background, whether each valley of the frame measured last is the floor.
    at_floor: Vec<bool>,
}

impl PartialMeter {
    pub(super) fn new() -> Self {
        let fft = ForwardFft::new(HARMONIC_FFT);
        Self {
            spectrum: vec![Complex32::default(); HARMONIC_FFT / 2 + 1],
            scratch: fft.make_scratch(),
            fft,
            window: crate::stft::hann(HARMONIC_FFT),
            time: vec![0.0; HARMONIC_FFT],
            mag: vec![0.0; HARMONIC_FFT / 2 + 1],
            at_floor: vec![false; HARMONIC_PARTIALS],
        }
    }

    /// Writes the amplitudes of partials `1..=HARMONIC_PARTIALS` of `f0` Hz in the frame
    /// centred on sample `centre` of `audio` (`sr` Hz) into `out`, and the valleys between them
    /// into `noise` (both [`HARMONIC_PARTIALS`] long; every entry is written); with
    /// `background`'s noise taken out of both, where there is one.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn measure(
        &mut self,
        audio: &[f32],
        centre: usize,
        f0: f32,
        sr: f32,
        background: Option<&Background>,
        out: &mut [f32],
        noise: &mut [f32],
    ) {
        crate::features::centred_frame(audio, centre, &mut self.time);
        for (t, w) in self.time.iter_mut().zip(&self.window) {
            *t *= w;
        }
        self.fft
            .process(&mut self.time, &mut self.spectrum, &mut self.scratch);
        crate::stft::magnitudes(&self.spectrum, &mut self.mag);
        // Without a NaN (a frame of finite audio), a range's largest or smallest value is
        // found four bins at a time: the same value as a scan, as every order of exact
        // comparisons gives it. A NaN (which `f32::max` and `f32::min` pass over) takes the
        // scan.
        let no_nan = !self.mag.iter().fold(false, |any, m| any | m.is_nan());
        let bin_hz = sr / HARMONIC_FFT as f32;
        // Partials at or above the limit are 0, and once one is, every later one is (h * f0
        // grows with h): the rest of the row is filled at once.
        let limit = HARMONIC_MAX_HZ.min(0.5 * sr);
        let below = (1..=HARMONIC_PARTIALS)
            .take_while(|&h| (h as f32) * f0 < limit)
            .count();
        // Over a background: the lowest and the highest partial heard above it (0: none).
        let (mut first_heard, mut last_heard) = (0, 0);
        for (h, o) in (1..).zip(&mut out[..below]) {
            let peak = match partial_bins(self.mag.len(), f0, h, bin_hz) {
                Some((lo, hi)) if no_nan => largest(&self.mag[lo..=hi]),
                Some((lo, hi)) => self.mag[lo..=hi].iter().copied().reduce(f32::max),
                None => None,
            }
            .unwrap_or(0.0);
            let peak = match background {
                Some(b) => {
                    let (clean, heard) = b.clean_partial(peak, h as f32 * f0, WINDOW_POWER);
                    // A heard partial past more than MAX_UNHEARD_RUN hidden ones is noise
                    // that passed the test, not more of the spectrum.
                    if heard {
                        if first_heard == 0 {
                            first_heard = h;
                            last_heard = h;
                        } else if h - last_heard <= MAX_UNHEARD_RUN + 1 {
                            last_heard = h;
                        }
                    }
                    clean
                }
                None => peak,
            };
            *o = peak * TO_AMPLITUDE;
        }
        out[below..].fill(0.0);
        // Valleys: the smallest magnitude between a partial's main lobe and the next one's
        // (a floor of the noise there, below the partials' leakage).
        let to_density = 1.0 / WINDOW_POWER.sqrt();
        // Valleys past the Nyquist frequency are 0, and so is every later one.
        let mut filled = 0;
        for (h, slot) in noise.iter_mut().enumerate() {
            if (h as f32 + 0.5) * f0 >= 0.5 * sr {
                break;
            }
            let lo = ceil_index((h as f32 + 0.25) * f0 / bin_hz);
            let hi = floor_index((h as f32 + 0.75) * f0 / bin_hz).min(self.mag.len() - 1);
            let mid = round_index((h as f32 + 0.5) * f0 / bin_hz).min(self.mag.len() - 1);
            let v = if lo <= hi && no_nan {
                smallest(&self.mag[lo..=hi])
            } else if lo <= hi {
                self.mag[lo..=hi]
                    .iter()
                    .copied()
                    .fold(f32::INFINITY, f32::min)
            } else {
                self.mag[mid]
            };
            *slot = match background {
                Some(b) => {
                    let (clean, floor) = b.clean_density(v * to_density, (h as f32 + 0.5) * f0);
                    self.at_floor[h] = floor;
                    clean
                }
                None => v * to_density,
            };
            filled = h + 1;
        }
        noise[filled..].fill(0.0);
        if background.is_some() && last_heard > 0 {
            let (heard, at_floor) = (first_heard..=last_heard, &self.at_floor[..filled]);
            roll_off_floor(f0, heard, &mut out[..below], &mut noise[..filled], at_floor);
        }
    }
}

/// The most partials in a row the background may hide between two heard partials of one
/// spectrum ([`roll_off_floor`]): a heard partial further up stands alone, noise that passed
/// [`PARTIAL_OVER_BACKGROUND`](super::background::PARTIAL_OVER_BACKGROUND) (about 0.6 % of the
/// partials noise alone holds), and the floor's fall starts below it.
const MAX_UNHEARD_RUN: usize = 4;

/// Outside the partials heard over the background (`heard`, the lowest and the highest heard
/// partial's numbers, of `f0` Hz), what stands in for the partials and the valleys the
/// background hides (the floor: [`Background::hidden_partial`], and the valleys `at_floor`)
/// falls by 12 dB an octave from the nearest heard partial's frequency: as `1 / f^2` above the
/// highest, as `f^2` below the lowest, as an instrument's spectrum falls past its last strong
/// partial and below its fundamental. A floor that followed the room's own noise put a hiss
/// over the output's top octaves and a rumble under its notes that the clean reference does
/// not have (TimGM6mb's clarinet note under pink noise 30 dB down: the output's 12.8-16 kHz
/// band 16 dB louder, its 50-100 Hz band 15 dB louder than with the clean note;
/// experiments/quality-log.md, "The floor outside the partials heard"). Valleys over the floor
/// (noise of the instrument's own, above the room's) stay as they are.
fn roll_off_floor(
    f0: f32,
    heard: std::ops::RangeInclusive<usize>,
    partials: &mut [f32],
    valleys: &mut [f32],
    at_floor: &[bool],
) {
    let (low, high) = (*heard.start() as f32 * f0, *heard.end() as f32 * f0);
    // The factor at `hz`: 1 between the heard partials, the square of the distance's ratio
    // outside them.
    let fall = |hz: f32| {
        let r = if hz > high {
            high / hz
        } else if hz < low {
            hz / low
        } else {
            1.0
        };
        r * r
    };
    for (h, o) in (1..).zip(partials.iter_mut()) {
        if !heard.contains(&h) {
            *o *= fall(h as f32 * f0);
        }
    }
    for (h, (v, &floor)) in valleys.iter_mut().zip(at_floor).enumerate() {
        let hz = (h as f32 + 0.5) * f0;
        if floor && (hz > high || hz < low) {
            *v *= fall(hz);
        }
    }
}

/// Whether any of a frame's partials (`amps`, partial `h` of `f0` Hz at `amps[h - 1]`, as
/// [`PartialMeter::measure`] writes them over `background`) stands above the background, not
/// at the level a hidden partial is given.
pub(super) fn any_partial_heard(background: &Background, amps: &[f32], f0: f32) -> bool {
    amps.iter()
        .zip(1..)
        .any(|(&a, h)| a > background.hidden_partial(h as f32 * f0, WINDOW_POWER) * TO_AMPLITUDE)
}

/// `x.floor() as usize`, for every `f32` (negatives and NaN give 0, as the cast saturates),
/// without the library call that `floor` is on the baseline x86-64 target (no rounding
/// instruction there). The cast truncates towards zero, which is the floor from 0 up.
#[inline]
fn floor_index(x: f32) -> usize {
    x as usize
}

/// `x.ceil() as usize` for every `f32`, without a library call: the truncation, one more where
/// `x` lies above it.
#[inline]
fn ceil_index(x: f32) -> usize {
    let i = x as usize;
    if (i as f32) < x {
        i.saturating_add(1)
    } else {
        i
    }
}

/// `x.round() as usize` (halves away from zero) for every `f32`, without a library call: the
/// truncation, one more where the fraction is at least a half (`x - i` is exact for `x` from 0
/// up, where `i <= x < i + 1`).
#[inline]
fn round_index(x: f32) -> usize {
    let i = x as usize;
    if x - i as f32 >= 0.5 {
        i.saturating_add(1)
    } else {
        i
    }
}

/// The largest value of `row` within half a partial spacing of partial `h` of `f0` Hz (bins
/// `bin_hz` apart); `None` above the last bin.
pub(super) fn partial_level(row: &[f32], f0: f32, h: usize, bin_hz: f32) -> Option<f32> {
    let (lo, hi) = partial_bins(row.len(), f0, h, bin_hz)?;
    row[lo..=hi].iter().copied().reduce(f32::max)
}

/// The bins [`partial_level`] reads for partial `h` of `f0` Hz in a row of `len` bins
/// `bin_hz` apart (first and last, inclusive); `None` above the last bin.
#[inline]
fn partial_bins(len: usize, f0: f32, h: usize, bin_hz: f32) -> Option<(usize, usize)> {
    let centre = h as f32 * f0 / bin_hz;
    let half = (0.5 * f0 / bin_hz).max(1.0);
    let lo = ceil_index(centre - half);
    let hi = floor_index(centre + half).min(len.checked_sub(1)?);
    (lo <= hi && lo < len).then_some((lo, hi))
}

/// The largest value of `values` (`None` when empty), which hold no NaN.
#[inline]
fn largest(values: &[f32]) -> Option<f32> {
    extreme(values, |a, b| if b > a { b } else { a })
}

/// The smallest value of `values` (at least one), which hold no NaN.
#[inline]
fn smallest(values: &[f32]) -> f32 {
    extreme(values, |a, b| if b < a { b } else { a }).unwrap_or(f32::INFINITY)
}

/// `values` reduced by `pick` (the larger or the smaller of two values), four at a time: four
/// running values over the first four, the next four and so on, the last four read where they
/// end (some values read twice), then the four reduced. `pick` is exact and picks one of its
/// arguments, so without NaN this is the scan's value in fewer dependent steps (an 8-bin
/// partial: 3 instead of 7).
#[inline(always)]
fn extreme(values: &[f32], pick: impl Fn(f32, f32) -> f32 + Copy) -> Option<f32> {
    let n = values.len();
    if n < 4 {
        return values.iter().copied().reduce(pick);
    }
    let quad = |i: usize| -> [f32; 4] { [values[i], values[i + 1], values[i + 2], values[i + 3]] };
    let both = |a: [f32; 4], b: [f32; 4]| {
        [
            pick(a[0], b[0]),
            pick(a[1], b[1]),
            pick(a[2], b[2]),
            pick(a[3], b[3]),
        ]
    };
    let mut acc = quad(0);
    let mut i = 4;
    while i + 4 <= n {
        acc = both(acc, quad(i));
        i += 4;
    }
    if i < n {
        acc = both(acc, quad(n - 4));
    }
    Some(pick(pick(acc[0], acc[1]), pick(acc[2], acc[3])))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each row holds every partial and valley, bit for bit what measuring all of them one by
    /// one gives (zero above 16 kHz or the Nyquist frequency), whatever the fundamental,
    /// including none at all (NaN).
    #[test]
    fn partial_rows_are_every_partial_measured_one_by_one() {
        let sr = 32_000.0f32;
        let audio: Vec<f32> = (0..8_000)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5 + (i as f32 * 0.05).sin())
            .collect();
        // The same audio with an infinite sample in the frame: a spectrum of NaN and
        // infinities, which the scans pass over.
        let mut broken = audio.clone();
        broken[4_100] = f32::INFINITY;
        let mut meter = PartialMeter::new();
        for (audio, f0) in [&audio, &broken].into_iter().flat_map(|audio| {
            [f32::NAN, 40.0, 130.0, 440.0, 5_000.0, 15_990.0, 20_000.0].map(|f0| (audio, f0))
        }) {
            // Rows left over from another frame: every entry must be written.
            let (mut partials, mut noise) = (
                vec![f32::NAN; 1 + HARMONIC_PARTIALS],
                vec![f32::NAN; 1 + HARMONIC_PARTIALS],
            );
            meter.measure(
                audio,
                4_000,
                f0,
                sr,
                None,
                &mut partials[1..],
                &mut noise[1..],
            );
            let bin_hz = sr / HARMONIC_FFT as f32;
            let mag = &meter.mag;
            for (h, got) in partials.iter().enumerate().skip(1) {
                let want = if h as f32 * f0 < HARMONIC_MAX_HZ.min(0.5 * sr) {
                    partial_level(mag, f0, h, bin_hz).unwrap_or(0.0) * 4.0 / HARMONIC_FFT as f32
                } else {
                    0.0
                };
                assert_eq!(got.to_bits(), want.to_bits(), "f0 {f0}, partial {h}");
            }
            for (h, got) in noise.iter().skip(1).enumerate() {
                let lo = ((h as f32 + 0.25) * f0 / bin_hz).ceil() as usize;
                let hi = (((h as f32 + 0.75) * f0 / bin_hz).floor() as usize).min(mag.len() - 1);
                let mid = (((h as f32 + 0.5) * f0 / bin_hz).round() as usize).min(mag.len() - 1);
                let v = if (h as f32 + 0.5) * f0 >= 0.5 * sr {
                    0.0
                } else if lo <= hi {
                    mag[lo..=hi].iter().copied().fold(f32::INFINITY, f32::min)
                } else {
                    mag[mid]
                };
                let want = v * (1.0 / (0.375 * HARMONIC_FFT as f32).sqrt());
                assert_eq!(got.to_bits(), want.to_bits(), "f0 {f0}, valley {h}");
            }
        }
    }

    /// The four-at-a-time largest and smallest values are the scans' (`f32::max` and
    /// `f32::min` in order), bit for bit, for every length from 1 to 40 and for rows of ties,
    /// zeros and infinities.
    #[test]
    fn range_extremes_are_the_scans() {
        let mut rng = crate::test_rng::XorShift::new(5);
        for n in 1..=40 {
            for kind in 0..4 {
                let values: Vec<f32> = (0..n)
                    .map(|i| match kind {
                        0 => rng.next_centred().abs() * 100.0,
                        1 => (i % 3) as f32,
                        2 => [0.0, f32::INFINITY, 1.5][i % 3],
                        _ => 7.0,
                    })
                    .collect();
                let max = values.iter().copied().reduce(f32::max).unwrap();
                let min = values.iter().copied().fold(f32::INFINITY, f32::min);
                assert_eq!(
                    largest(&values).unwrap().to_bits(),
                    max.to_bits(),
                    "{values:?}"
                );
                assert_eq!(smallest(&values).to_bits(), min.to_bits(), "{values:?}");
            }
        }
        assert_eq!(largest(&[]), None);
    }

    /// The index helpers are the library's rounding cast, for every kind of `f32`: integers,
    /// halves, values just either side of them, tiny, huge, negative, infinite and NaN.
    #[test]
    fn index_roundings_are_the_library_ones() {
        let mut values = vec![0.0f32, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        values.extend([
            f32::MIN_POSITIVE,
            1e-30,
            f32::MAX,
            -f32::MAX,
            1.8e19,
            1.9e19,
            4e19,
        ]);
        for k in -3..3000 {
            for base in [k as f32, k as f32 + 0.5, k as f32 * 1024.0 + 0.5] {
                values.extend([base, base.next_up(), base.next_down()]);
            }
        }
        let mut rng = crate::test_rng::XorShift::new(17);
        values.extend((0..10_000).map(|_| rng.next_centred() * 3000.0));
        for x in values {
            assert_eq!(floor_index(x), x.floor() as usize, "floor {x:e}");
            assert_eq!(ceil_index(x), x.ceil() as usize, "ceil {x:e}");
            assert_eq!(round_index(x), x.round() as usize, "round {x:e}");
        }
    }
}
