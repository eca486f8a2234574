//! Level meters for the editor: the audio thread measures the input and the output of each
//! block ([`MeterFollower`]) and publishes peak and RMS through atomics ([`LevelMeter`]); the
//! editor reads them on the GUI thread. Nothing here allocates, locks or waits.

use std::sync::atomic::{AtomicU32, Ordering};

/// Time constant of the RMS follower, in seconds (a VU-like 300 ms).
pub const RMS_TIME_CONSTANT_S: f32 = 0.3;

/// One signal's level as the editor reads it. Written by the audio thread, read by any.
#[derive(Debug, Default)]
pub struct LevelMeter {
    /// Largest absolute sample since the editor last took it, `f32` bits (`fetch_max` orders
    /// non-negative floats correctly).
    peak: AtomicU32,
    /// RMS over the last [`RMS_TIME_CONSTANT_S`] or so, linear, `f32` bits.
    rms: AtomicU32,
}

impl LevelMeter {
    /// The peak since the last call (linear, full scale = 1), and resets it. Any thread.
    pub fn take_peak(&self) -> f32 {
        f32::from_bits(self.peak.swap(0, Ordering::Relaxed))
    }

    /// The current RMS level, linear. Any thread.
    pub fn rms(&self) -> f32 {
        f32::from_bits(self.rms.load(Ordering::Relaxed))
    }

    /// Resets both readings (while the plugin is inactive). Any thread.
    pub fn clear(&self) {
        self.peak.store(0, Ordering::Relaxed);
        self.rms.store(0, Ordering::Relaxed);
    }
}

/// The audio thread's side of a [`LevelMeter`]: an exponential mean-square follower.
#[derive(Debug, Clone, Copy)]
pub struct MeterFollower {
    /// Smoothed mean square over the channels, full scale = 1.
    mean_square: f32,
    /// Share of the old mean square kept per sample.
    keep: f32,
}

impl MeterFollower {
    /// A follower for `sample_rate` Hz with [`RMS_TIME_CONSTANT_S`].
    pub fn new(sample_rate: f32) -> Self {
        let samples = (RMS_TIME_CONSTANT_S * sample_rate).max(1.0);
        Self {
            mean_square: 0.0,
            keep: (-1.0 / samples).exp(),
        }
    }

    /// Measures one block of `channels` (equal lengths) and publishes it to `meter`.
    /// Non-finite samples are skipped. Realtime-safe.
    pub fn measure(&mut self, channels: &[&mut [f32]], meter: &LevelMeter) {
        let len = channels.iter().map(|c| c.len()).min().unwrap_or(0);
        if len == 0 {
            return;
        }
        let share = 1.0 / channels.len() as f32;
        let mut peak = 0.0f32;
        let mut ms = self.mean_square;
        for i in 0..len {
            let mut square = 0.0f32;
            for c in channels {
                let v = c[i];
                if v.is_finite() {
                    peak = peak.max(v.abs());
                    square += v * v * share;
                }
            }
            ms = square + (ms - square) * self.keep;
        }
        self.mean_square = if ms.is_finite() { ms } else { 0.0 };
        meter.peak.fetch_max(peak.to_bits(), Ordering::Relaxed);
        meter
            .rms
            .store(self.mean_square.sqrt().to_bits(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full-scale sine reads 0 dBFS peak and -3.01 dB RMS once the follower has settled;
    /// the peak is taken once; NaN samples do not reach either reading.
    #[test]
    fn a_sine_reads_its_peak_and_rms() {
        let rate = 48_000.0;
        let mut follower = MeterFollower::new(rate);
        let meter = LevelMeter::default();
        let mut n = 0usize;
        for _ in 0..(3.0 * rate) as usize / 256 {
            let mut block: Vec<f32> = (0..256)
                .map(|_| {
                    n += 1;
                    (std::f32::consts::TAU * 1000.0 * n as f32 / rate).sin()
                })
                .collect();
            block[7] = f32::NAN;
            follower.measure(&[&mut block[..]], &meter);
        }
        let peak = meter.take_peak();
        assert!((peak - 1.0).abs() < 1e-3, "peak {peak}");
        assert_eq!(meter.take_peak(), 0.0);
        let rms_db = 20.0 * meter.rms().log10();
        assert!((rms_db + 3.01).abs() < 0.1, "rms {rms_db} dB");
        // Silence: the mean square decays as exp(-t / RMS_TIME_CONSTANT_S), so the RMS falls
        // by 10 log10(e) / RMS_TIME_CONSTANT_S dB per second.
        let blocks = (3.0 * rate) as usize / 256;
        for _ in 0..blocks {
            let mut block = vec![0.0f32; 256];
            follower.measure(&[&mut block[..]], &meter);
        }
        let t = (blocks * 256) as f32 / rate;
        let expected = -3.01 - 10.0 * std::f32::consts::LOG10_E * t / RMS_TIME_CONSTANT_S;
        let rms_db = 20.0 * meter.rms().log10();
        assert!(
            (rms_db - expected).abs() < 0.3,
            "{rms_db} dB, expected {expected}"
        );
    }
}
