//! Spectra for the editor's live view. While a view is open, the frame processor (worker
//! thread, or the audio thread in offline mode) publishes the input and output magnitude of
//! every [`VIEW_EVERY_FRAMES`]th frame into an `rtrb` ring; the GUI drains it and keeps the
//! newest. Publishing never allocates, locks or waits: when the ring is full the frame is
//! skipped, and nothing is written while no view is open.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use realfft::num_complex::Complex32;
use rtrb::{Consumer, Producer, RingBuffer};

/// Frames between two published spectra (every 20 ms at the default 5 ms hop).
pub const VIEW_EVERY_FRAMES: u64 = 4;

/// Lowest level reported, in dB relative to a full-scale sine.
pub const VIEW_FLOOR_DB: f32 = -120.0;

/// Spectra the ring holds before the GUI must drain it.
const RING_SPECTRA: usize = 8;

/// The processor's end: publishes spectra while a view is open.
pub struct SpectrumTap {
    tx: Producer<f32>,
    bins: usize,
    /// Amplitude of a full-scale sine's peak bin (`n_fft / 4` for the Hann window).
    full_scale: f32,
    open: Arc<AtomicBool>,
    frame: u64,
}

/// The GUI's end: the newest input and output spectra.
pub struct SpectrumView {
    rx: Consumer<f32>,
    bins: usize,
    open: Arc<AtomicBool>,
    /// Input level per bin, dB re full-scale sine (bin `k` at `k * rate / n_fft` Hz).
    pub input_db: Vec<f32>,
    /// Output level per bin, dB re full-scale sine.
    pub output_db: Vec<f32>,
}

/// A connected tap and view for spectra of `bins` bins of an `n_fft`-point STFT. Allocates.
pub fn spectrum_pair(bins: usize, n_fft: usize) -> (SpectrumTap, SpectrumView) {
    let (tx, rx) = RingBuffer::new(RING_SPECTRA * 2 * bins);
    let open = Arc::new(AtomicBool::new(false));
    (
        SpectrumTap {
            tx,
            bins,
            full_scale: n_fft as f32 / 4.0,
            open: open.clone(),
            frame: 0,
        },
        SpectrumView {
            rx,
            bins,
            open,
            input_db: vec![VIEW_FLOOR_DB; bins],
            output_db: vec![VIEW_FLOOR_DB; bins],
        },
    )
}

impl SpectrumTap {
    /// Whether a view is open. Realtime-safe.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// The flag that says whether a view is open, for another thread to read. Not
    /// realtime-safe (clones an `Arc`).
    pub fn open_flag(&self) -> Arc<AtomicBool> {
        self.open.clone()
    }

    /// Whether the next [`SpectrumTap::publish`] would write (a view is open and this frame is
    /// one of the published ones): lets the caller skip work such as an FFT. Advances the frame
    /// count. Realtime-safe.
    pub fn wants_frame(&mut self) -> bool {
        self.frame = self.frame.wrapping_add(1);
        self.open.load(Ordering::Relaxed) && self.frame.is_multiple_of(VIEW_EVERY_FRAMES)
    }

    /// Writes the input and output spectra (`bins` values each) if there is room. Call only
    /// after [`SpectrumTap::wants_frame`] returned true. Realtime-safe.
    pub fn publish(&mut self, input: &[Complex32], output: &[Complex32]) {
        let Ok(chunk) = self.tx.write_chunk_uninit(2 * self.bins) else {
            return;
        };
        let scale = 1.0 / self.full_scale;
        let values = input
            .iter()
            .chain(output)
            .take(2 * self.bins)
            .map(|c| (20.0 * (c.norm() * scale + 1e-12).log10()).max(VIEW_FLOOR_DB));
        chunk.fill_from_iter(values);
    }
}

impl SpectrumView {
    /// Opens or closes the view (while closed, nothing is published). Any thread.
    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::Relaxed);
    }

    /// Drains what was published and keeps the newest pair in `input_db` / `output_db`;
    /// true if there was a new one. Not realtime-safe (meant for the GUI thread).
    pub fn update(&mut self) -> bool {
        let pair = 2 * self.bins;
        let mut updated = false;
        while self.rx.slots() >= pair {
            let Ok(chunk) = self.rx.read_chunk(pair) else {
                break;
            };
            let (a, b) = chunk.as_slices();
            for (i, v) in a.iter().chain(b).enumerate() {
                if i < self.bins {
                    self.input_db[i] = *v;
                } else {
                    self.output_db[i - self.bins] = *v;
                }
            }
            chunk.commit_all();
            updated = true;
        }
        updated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_every_fourth_frame_only_while_open() {
        let (mut tap, mut view) = spectrum_pair(3, 8);
        let full = Complex32::new(2.0, 0.0); // n_fft / 4 = 2: 0 dB
        let half = Complex32::new(1.0, 0.0);
        let mut published = 0;
        for _ in 0..8 {
            if tap.wants_frame() {
                tap.publish(&[full; 3], &[half; 3]);
                published += 1;
            }
        }
        assert_eq!(published, 0, "closed view");
        assert!(!view.update());
        view.set_open(true);
        for _ in 0..8 {
            if tap.wants_frame() {
                tap.publish(&[full; 3], &[half; 3]);
                published += 1;
            }
        }
        assert_eq!(published, 2);
        assert!(view.update());
        assert!(view.input_db.iter().all(|v| v.abs() < 1e-4));
        assert!(view.output_db.iter().all(|v| (v + 6.0206).abs() < 1e-3));
        // Silence is clamped to the floor.
        tap.publish(&[Complex32::default(); 3], &[Complex32::default(); 3]);
        assert!(view.update());
        assert_eq!(view.input_db, vec![VIEW_FLOOR_DB; 3]);
    }
}
