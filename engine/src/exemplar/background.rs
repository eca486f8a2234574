//! The reference clip's background: the steady noise a recording carries under its notes (a
//! room's hiss, a microphone's floor), measured where no note sounds and taken out of the
//! frames the bank keeps, so that the swap plays the instrument and not the room.

use crate::features::FrameFeatures;

/// A frame YIN has no sure pitch for and that lies this far under the clip's loudest frame is
/// background, not note, in dB: it may measure the background, and where the clip has one
/// (its pauses are not silent) the bank does not keep it.
pub const BACKGROUND_UNDER_DB: f32 = 20.0;
/// A background further than this under the clip's loudest frame, in dB, is left in: as
/// quiet as a good studio's floor, or the last of a reverb's tail at a clip's end, it is no
/// room a listener hears in the clip.
pub const MAX_BACKGROUND_UNDER_DB: f32 = 60.0;
/// Over a background, a frame the bank keeps lies at least this far above the background's
/// own level (all bins), in dB.
pub const NOTE_OVER_BACKGROUND_DB: f32 = 10.0;
/// What spectral subtraction leaves at least of the background in a bin or a valley, as a
/// share of its power there (-20 dB; Berouti et al.'s spectral floor). Measured on TimGM6mb
/// with references under pink noise 30 dB down (experiments/quality-log.md, "A reference in a
/// room, taken out"), on the valleys, before hidden partials were given it too: 0, 0.01 and
/// 0.1 moved 27.2, 33.6 and 31.2 % of outputs to the reference's instrument (a reference's
/// noise between partials is part of how it sounds; none at all reads as another
/// instrument).
pub const SUBTRACTION_FLOOR: f32 = 0.01;
/// A bin of a row this many times (43 dB) above the background's mean power is left as it
/// is: subtraction would take at most 1e-4 of its power.
pub const UNTOUCHED_OVER_BACKGROUND: f32 = 2e4;
/// Background frames an estimate needs (whose whole window lies in background); with fewer,
/// nothing is estimated and nothing taken out.
pub const MIN_BACKGROUND_FRAMES: usize = 8;
/// The quantile of the background frames' levels an estimate starts from (a frame's level:
/// its mean log-magnitude over the bins, in dB); it reads the frames at most
/// [`QUIET_SPREAD_DB`] above that level. A room's steady noise scatters little in this
/// measure (3 s of `sox`'s pink and of its white noise at the default framing, a throwaway
/// script: 0.37 dB standard deviation, every frame within 1.5 dB of the 10 % quantile; white
/// noise in `tests::white_noise_has_its_variance_as_density`); a pause's ringing tails and a
/// fade lie above it.
pub const QUIET_QUANTILE: f32 = 0.1;
/// How far above the [`QUIET_QUANTILE`] of the background frames' levels a frame the estimate
/// reads may lie, in dB. Under a tail that dies away over the floor of the pauses, 1.5 dB
/// reads the floor within 10 % (`a_pauses_ringing_tails_are_not_its_background`); 2 and 3 dB
/// read it 11 and 16 % high, and the median over every background frame 100 %.
pub const QUIET_SPREAD_DB: f32 = 1.5;
/// dB per neper of magnitude (`20 / ln 10`).
const NEPER_TO_DB: f32 = 8.685_89;
/// Background frames an estimate reads at most (spread evenly over those there are).
pub const MAX_BACKGROUND_FRAMES: usize = 128;
/// A partial counts only where its peak power stands this many times (10 dB) above the
/// background's mean power at its frequency: the highest of 128 bins of noise alone passes
/// with a chance of about 0.6 % (`128 e^-10`).
pub const PARTIAL_OVER_BACKGROUND: f32 = 10.0;
/// Spectral subtraction's over-subtraction factor: what is taken out of a frame's power is
/// this many times the background's mean power (the noise in one frame scatters above its
/// mean; a factor of 1 leaves that scatter as tonal specks).
pub const OVER_SUBTRACTION: f32 = 2.0;

/// The background's noise power density across frequency.
#[derive(Debug, Clone)]
pub(super) struct Background {
    /// Mean noise power per bin over the window's power (`E|X_k|^2 / sum w^2`, sample units
    /// squared), one per bin of the clip's framing: the same at any window length.
    density: Vec<f32>,
    /// Spacing of `density`'s bins, in Hz.
    bin_hz: f32,
}

impl Background {
    /// The background of a clip's frames `f` (rows of `ln(|X| + floor)`, `bin_hz` apart,
    /// window power `window_power` = `sum w^2`); `background[t]` says whether frame `t` is
    /// background; `reach` is how many frames either side of a frame its window covers.
    /// Reads the frames whose whole window is background (not the clip's edges, where the
    /// window runs past the audio), and of those only the quietest (minimum statistics, after
    /// Martin: a room's noise is the floor a clip never falls under, while a note's ringing
    /// tail in a pause lies above it): those within [`QUIET_SPREAD_DB`] of the
    /// [`QUIET_QUANTILE`] of their levels (at least the [`MIN_BACKGROUND_FRAMES`]-th
    /// quietest). Per bin, the median power over ln 2 (the mean of noise's exponentially
    /// distributed power, robust to a few frames a note still reaches). `None` where fewer than
    /// [`MIN_BACKGROUND_FRAMES`] qualify, or where the background lies under the rows' own
    /// floor in every bin (a digital silence, as in a clean clip's pauses: nothing to take
    /// out).
    pub(super) fn estimate(
        f: &FrameFeatures,
        floor: f32,
        window_power: f32,
        bin_hz: f32,
        background: &[bool],
        reach: usize,
    ) -> Option<Self> {
        let (log_mag, bins) = (&f.log_mag, f.bins);
        let frames = background.len().min(log_mag.len() / bins.max(1));
        let whole: Vec<usize> = (reach..frames.saturating_sub(reach))
            .filter(|&t| background[t - reach..=t + reach].iter().all(|&b| b))
            .collect();
        if whole.len() < MIN_BACKGROUND_FRAMES {
            return None;
        }
        // Each frame's level: its mean log-magnitude over the bins, in dB (noise's scatters
        // far less from frame to frame than its energy, which a few low bins rule).
        let level = |t: usize| {
            let row = &log_mag[t * bins..(t + 1) * bins];
            row.iter().sum::<f32>() / bins as f32 * NEPER_TO_DB
        };
        // The quiet level: a low quantile of those, at least the MIN_BACKGROUND_FRAMES-th
        // quietest (so that an estimate reads that many).
        let levels: Vec<f32> = whole.iter().map(|&t| level(t)).collect();
        let mut sorted = levels.clone();
        let rank = ((whole.len() as f32 * QUIET_QUANTILE) as usize)
            .max(MIN_BACKGROUND_FRAMES)
            .min(whole.len())
            - 1;
        let (_, &mut quiet, _) = sorted.select_nth_unstable_by(rank, f32::total_cmp);
        let quiet: Vec<usize> = whole
            .into_iter()
            .zip(levels)
            .filter(|&(_, l)| l <= quiet + QUIET_SPREAD_DB)
            .map(|(t, _)| t)
            .collect();
        let step = quiet.len().div_ceil(MAX_BACKGROUND_FRAMES);
        let read: Vec<usize> = quiet.into_iter().step_by(step).collect();
        let mut column = vec![0.0f32; read.len()];
        let mut density = vec![0.0f32; bins];
        let mid = read.len() / 2;
        for (k, d) in density.iter_mut().enumerate() {
            for (c, &t) in column.iter_mut().zip(&read) {
                let m = (log_mag[t * bins + k].exp() - floor).max(0.0);
                *c = m * m;
            }
            let (_, median, _) = column.select_nth_unstable_by(mid, f32::total_cmp);
            let v = *median / std::f32::consts::LN_2 / window_power;
            // A clip's samples are finite; a bin that is not anyway is taken as no noise.
            *d = if v.is_finite() { v } else { 0.0 };
        }
        let audible = density.iter().any(|&d| d * window_power > floor * floor);
        audible.then_some(Self { density, bin_hz })
    }

    /// The noise power density at `hz` (linear between bins; 0 past the last), over the
    /// window's power: multiply by a window's `sum w^2` for the mean power of a bin.
    pub(super) fn density_at(&self, hz: f32) -> f32 {
        let pos = (hz / self.bin_hz).max(0.0);
        let i = pos as usize;
        match (self.density.get(i), self.density.get(i + 1)) {
            (Some(&a), Some(&b)) => a + (b - a) * (pos - i as f32),
            (Some(&a), None) => a,
            _ => 0.0,
        }
    }

    /// The background's level in a frame of window power `window_power`, in dB: `10 log10` of
    /// its mean power summed over the bins (a frame's energy as the features measure it).
    pub(super) fn frame_db(&self, window_power: f32) -> f32 {
        let power: f32 = self.density.iter().map(|d| d * window_power).sum();
        10.0 * (power + 1e-30).log10()
    }

    /// The subtraction of [`OVER_SUBTRACTION`] times the background's power from rows of
    /// `ln(|X| + floor)` at the clip's framing (window power `window_power`), down to
    /// [`SUBTRACTION_FLOOR`] of it, with its per-bin thresholds worked out once.
    pub(super) fn row_cleaner(&self, floor: f32, window_power: f32) -> RowCleaner {
        let log_of_power = |p: f32| (p.sqrt() + floor).ln();
        let bins = self
            .density
            .iter()
            .map(|&d| {
                let noise = d * window_power;
                RowBin {
                    noise,
                    floored: log_of_power(SUBTRACTION_FLOOR * noise),
                    low: log_of_power((OVER_SUBTRACTION + SUBTRACTION_FLOOR) * noise),
                    high: log_of_power(UNTOUCHED_OVER_BACKGROUND * noise),
                }
            })
            .collect();
        RowCleaner { bins, floor }
    }

    /// A partial's amplitude with the background taken out, and whether it is heard over it:
    /// `peak` is its spectral peak (`|X|`) at `hz` on a window of power `window_power`. Where
    /// the peak does not stand [`PARTIAL_OVER_BACKGROUND`] times above the background's mean
    /// power there, the partial is hidden: [`hidden_partial`](Self::hidden_partial).
    pub(super) fn clean_partial(&self, peak: f32, hz: f32, window_power: f32) -> (f32, bool) {
        let density = self.density_at(hz);
        let noise = density * window_power;
        let power = peak * peak;
        if power < PARTIAL_OVER_BACKGROUND * noise {
            (hidden_amplitude(density, window_power), false)
        } else {
            ((power - OVER_SUBTRACTION * noise).max(0.0).sqrt(), true)
        }
    }

    /// What a partial hidden under the background at `hz` is given (`|X|` on a window of power
    /// `window_power`): [`SUBTRACTION_FLOOR`] of the background's mean power there, as the
    /// noise between partials keeps. A partial above the noise measured at that level is at
    /// least sqrt(8 / 0.01), about 29 dB, above it. Measured against none at all on TimGM6mb
    /// under noise 30 dB down: 36.8 against 33.6 % of outputs heard as the reference's
    /// instrument, the distance to the oracle 11.92 against 12.05 dB.
    pub(super) fn hidden_partial(&self, hz: f32, window_power: f32) -> f32 {
        hidden_amplitude(self.density_at(hz), window_power)
    }

    /// A valley's noise density (`|X| / sqrt(sum w^2)`) at `hz` with [`OVER_SUBTRACTION`] times
    /// the background's power taken out, down to [`SUBTRACTION_FLOOR`] of it, and whether it
    /// is that floor.
    pub(super) fn clean_density(&self, density: f32, hz: f32) -> (f32, bool) {
        let noise = self.density_at(hz);
        let left = density * density - OVER_SUBTRACTION * noise;
        let floor = SUBTRACTION_FLOOR * noise;
        (left.max(floor).sqrt(), left <= floor)
    }
}

/// [`Background::hidden_partial`] where the background's density is `density`: one formula
/// for it and for [`Background::clean_partial`]'s hidden partials, which the bank tells from
/// heard ones by comparing the two.
fn hidden_amplitude(density: f32, window_power: f32) -> f32 {
    (SUBTRACTION_FLOOR * density * window_power).sqrt()
}

/// [`Background::row_cleaner`].
#[derive(Debug, Clone)]
pub(super) struct RowCleaner {
    bins: Vec<RowBin>,
    /// The rows' magnitude floor (`ln(|X| + floor)`).
    floor: f32,
}

/// One bin's background and thresholds, in the rows' units.
#[derive(Debug, Clone, Copy)]
struct RowBin {
    /// The background's mean power in the bin (`|X|^2`).
    noise: f32,
    /// The floor left of it, as a row value.
    floored: f32,
    /// At or under this row value the subtraction leaves the floor.
    low: f32,
    /// At or over this row value the bin is left as it is.
    high: f32,
}

impl RowCleaner {
    /// Takes the background out of `row`, bin by bin (values of `ln(|X| + floor)`): a bin
    /// under [`OVER_SUBTRACTION`] plus [`SUBTRACTION_FLOOR`] times the background's power
    /// becomes the floor, one over [`UNTOUCHED_OVER_BACKGROUND`] times it stays, and those
    /// between lose [`OVER_SUBTRACTION`] times it.
    pub(super) fn clean(&self, row: &mut [f32]) {
        for (l, b) in row.iter_mut().zip(&self.bins) {
            if *l >= b.high {
                continue;
            }
            if *l <= b.low {
                *l = b.floored;
                continue;
            }
            let m = (l.exp() - self.floor).max(0.0);
            let clean = (m * m - OVER_SUBTRACTION * b.noise)
                .max(SUBTRACTION_FLOOR * b.noise)
                .sqrt();
            *l = (clean + self.floor).ln();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StftConfig;
    use crate::features::FeatureExtractor;

    fn white(n: usize, sigma: f32, seed: u32) -> Vec<f32> {
        let mut rng = crate::test_rng::XorShift::new(seed);
        // Uniform on [-a, a] has variance a^2 / 3.
        let a = sigma * 3f32.sqrt();
        (0..n).map(|_| rng.next_centred() * 2.0 * a).collect()
    }

    /// White noise of variance s^2 has density s^2 in every bin (`E|X_k|^2 = s^2 sum w^2`),
    /// whatever the window: the estimate finds it within 10 % over the band, and a density
    /// read at another window's power gives that window's mean bin power.
    #[test]
    fn white_noise_has_its_variance_as_density() {
        let cfg = StftConfig::default();
        let sigma = 0.05f32;
        let audio = white(cfg.sample_rate as usize, sigma, 3);
        let f = FeatureExtractor::new(&cfg, super::super::MAG_FLOOR).clip(&audio);
        let all = vec![true; f.frames];
        let window_power: f32 = crate::stft::hann(cfg.n_fft).iter().map(|w| w * w).sum();
        let bin_hz = cfg.sample_rate as f32 / cfg.n_fft as f32;
        let bg = Background::estimate(&f, super::super::MAG_FLOOR, window_power, bin_hz, &all, 2)
            .expect("a second of noise is background");
        let inner = &bg.density[4..f.bins - 4];
        let mean = inner.iter().sum::<f32>() / inner.len() as f32;
        let want = sigma * sigma;
        assert!((mean / want - 1.0).abs() < 0.1, "{mean} against {want}");
        // Between bins: the linear blend.
        let (a, b) = (bg.density[10], bg.density[11]);
        let got = bg.density_at(10.25 * bin_hz);
        assert!(
            (got - (0.75 * a + 0.25 * b)).abs() <= 1e-6 * a.max(b),
            "{got}"
        );
        assert_eq!(bg.density_at(1e9), 0.0);
        // Every frame of a steady noise lies within QUIET_SPREAD_DB of the QUIET_QUANTILE of
        // the frames' levels (mean log-magnitude, dB): the estimate reads them all.
        let mut levels: Vec<f32> = f
            .log_mag
            .chunks_exact(f.bins)
            .map(|row| row.iter().sum::<f32>() / f.bins as f32 * NEPER_TO_DB)
            .collect();
        levels.sort_by(f32::total_cmp);
        let quantile = levels[(levels.len() as f32 * QUIET_QUANTILE) as usize];
        let loudest = levels[levels.len() - 1];
        assert!(
            loudest <= quantile + QUIET_SPREAD_DB,
            "{loudest} dB against {quantile} dB"
        );
    }

    /// Pauses that hold a ringing tail (noise dying away 40 dB over 0.3 s from 20 dB over a
    /// floor) on a steady floor of white noise: the estimate reads the floor, within 10 %,
    /// not the tails (the median over every pause frame lies twice as high). Where the
    /// floor under the tails is a digital silence, there is no estimate.
    #[test]
    fn a_pauses_ringing_tails_are_not_its_background() {
        let cfg = StftConfig::default();
        let floor = super::super::MAG_FLOOR;
        let bin_hz = cfg.sample_rate as f32 / cfg.n_fft as f32;
        let window_power: f32 = crate::stft::hann(cfg.n_fft).iter().map(|w| w * w).sum();
        let sigma = 0.005f32;
        let sr = cfg.sample_rate as usize;
        // Three pauses: a 0.3 s tail, then 0.1 s of the floor alone.
        let tails = |steady: f32| -> Vec<f32> {
            let mut tail = white(3 * sr / 10, 10.0 * sigma, 7);
            let len = tail.len() as f32;
            for (i, v) in tail.iter_mut().enumerate() {
                *v *= 10f32.powf(-2.0 * i as f32 / len);
            }
            let mut pause = tail;
            pause.extend(vec![0.0; sr / 10]);
            let mut audio: Vec<f32> = (0..3).flat_map(|_| pause.iter().copied()).collect();
            for (v, n) in audio.iter_mut().zip(white(3 * 4 * sr / 10, steady, 11)) {
                *v += n;
            }
            audio
        };
        let audio = tails(sigma);
        let f = FeatureExtractor::new(&cfg, floor).clip(&audio);
        let all = vec![true; f.frames];
        let bg = Background::estimate(&f, floor, window_power, bin_hz, &all, 2)
            .expect("a floor of noise");
        let inner = &bg.density[4..f.bins - 4];
        let mean = inner.iter().sum::<f32>() / inner.len() as f32;
        let want = sigma * sigma;
        assert!((mean / want - 1.0).abs() < 0.1, "{mean} against {want}");
        let silent = FeatureExtractor::new(&cfg, floor).clip(&tails(0.0));
        let all = vec![true; silent.frames];
        assert!(Background::estimate(&silent, floor, window_power, bin_hz, &all, 2).is_none());
    }

    /// Too few background frames, a digital silence, or frames whose window reaches a note:
    /// no estimate.
    #[test]
    fn no_estimate_without_enough_background() {
        let cfg = StftConfig::default();
        let bin_hz = cfg.sample_rate as f32 / cfg.n_fft as f32;
        let floor = super::super::MAG_FLOOR;
        let audio = white(cfg.sample_rate as usize / 2, 0.05, 5);
        let f = FeatureExtractor::new(&cfg, floor).clip(&audio);
        let estimate =
            |background: &[bool]| Background::estimate(&f, floor, 192.0, bin_hz, background, 2);
        // Every other frame background: none has a whole window of it.
        let alternate: Vec<bool> = (0..f.frames).map(|t| t % 2 == 0).collect();
        assert!(estimate(&alternate).is_none());
        // Exactly enough in a row (and their reach either side), then one fewer.
        let run =
            |n: usize| -> Vec<bool> { (0..f.frames).map(|t| (10..14 + n).contains(&t)).collect() };
        assert!(estimate(&run(MIN_BACKGROUND_FRAMES)).is_some());
        assert!(estimate(&run(MIN_BACKGROUND_FRAMES - 1)).is_none());
        // Silence.
        let silent = FeatureExtractor::new(&cfg, floor).clip(&vec![0.0; 16_000]);
        let all = vec![true; silent.frames];
        let none = Background::estimate(&silent, floor, 192.0, bin_hz, &all, 2);
        assert!(none.is_none());
    }

    /// The row cleaner's shortcuts (the floor under its low threshold, nothing over its high
    /// one) give the direct subtraction, `ln(sqrt(max(m^2 - 2 N, 0.01 N)) + floor)`, to 1e-4
    /// of a row value, over levels from 40 dB under the background to 80 dB over it.
    #[test]
    fn the_row_cleaner_is_the_direct_subtraction() {
        let bg = Background {
            density: (0..64).map(|k| 1e-6 * (1.0 + k as f32)).collect(),
            bin_hz: 100.0,
        };
        let (floor, wp) = (1e-3f32, 192.0f32);
        let cleaner = bg.row_cleaner(floor, wp);
        let mut rng = crate::test_rng::XorShift::new(23);
        for _ in 0..200 {
            let db: Vec<f32> = (0..64)
                .map(|_| -40.0 + 120.0 * (rng.next_centred() + 0.5))
                .collect();
            let mut row: Vec<f32> = db
                .iter()
                .zip(&bg.density)
                .map(|(db, d)| ((d * wp * 10f32.powf(db / 10.0)).sqrt() + floor).ln())
                .collect();
            let direct: Vec<f32> = row
                .iter()
                .zip(&bg.density)
                .map(|(l, d)| {
                    let m = (l.exp() - floor).max(0.0);
                    let noise = d * wp;
                    ((m * m - 2.0 * noise).max(0.01 * noise).sqrt() + floor).ln()
                })
                .collect();
            cleaner.clean(&mut row);
            for (k, (got, want)) in row.iter().zip(&direct).enumerate() {
                assert!(
                    (got - want).abs() < 1e-4,
                    "bin {k}, {} dB: {got} against {want}",
                    db[k]
                );
            }
        }
    }

    /// Subtraction: a row of the background's own mean power goes to the floor left of it; a
    /// bin far above it keeps its level less the subtracted power; a partial 10 dB up counts,
    /// 9 dB up does not.
    #[test]
    fn subtraction_takes_out_the_backgrounds_power() {
        let bg = Background {
            density: vec![1e-4; 8],
            bin_hz: 100.0,
        };
        let (floor, wp) = (1e-3f32, 100.0f32);
        // Mean power 1e-2 per bin: |X| = 0.1.
        let mut row = vec![(0.1f32 + floor).ln(); 8];
        row[3] = (10.0f32 + floor).ln();
        bg.row_cleaner(floor, wp).clean(&mut row);
        // The floor: SUBTRACTION_FLOOR of the power, 1e-4 (|X| = 0.01).
        assert!((row[0] - (0.01 + floor).ln()).abs() < 1e-5, "{}", row[0]);
        let want = (100.0f32 - 2.0 * 1e-2).sqrt();
        assert!(((row[3].exp() - floor) / want - 1.0).abs() < 1e-5);
        let noise = 1e-2f32;
        let up = |db: f32| (noise * 10f32.powf(db / 10.0)).sqrt();
        // Hidden: the floor of the background's power, 1e-4 (0.01).
        let (hidden, heard) = bg.clean_partial(up(9.0), 250.0, wp);
        assert!((hidden - 0.01).abs() < 1e-6 && !heard);
        assert_eq!(hidden, bg.hidden_partial(250.0, wp));
        let (kept, heard) = bg.clean_partial(up(10.5), 250.0, wp);
        assert!((kept * kept - (up(10.5).powi(2) - 2.0 * noise)).abs() < 1e-6 && heard);
        // A valley at the background's own density goes to the floor; twice its power and more
        // keeps the rest.
        let (d, floor) = bg.clean_density(1e-2, 250.0);
        assert!((d * d / 1e-6 - 1.0).abs() < 1e-4 && floor, "{d}");
        let (d, floor) = bg.clean_density((5e-4f32).sqrt(), 250.0);
        assert!((d * d - 3e-4).abs() < 1e-8 && !floor, "{d}");
    }
}
