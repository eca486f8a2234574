//! Phase reconstruction: RTPGHI against Griffin–Lim on exact STFT magnitudes, an analytic check
//! of the phase advance, realtime safety (no allocation) and robustness to non-finite input.
//!
//! The quality numbers are printed; see them with
//! `cargo test -p timbreswap-engine --release --test phase -- --nocapture`.

use std::f64::consts::{PI, TAU};
use std::path::Path;

use nice_assert_no_alloc::{assert_no_alloc, violation_count, AllocDisabler};
use realfft::num_complex::Complex32;
use timbreswap_engine::griffin_lim::{
    griffin_lim, istft, spectral_convergence_db, stft, stft_magnitudes,
};
use timbreswap_engine::phase::Rtpghi;
use timbreswap_engine::StftConfig;

#[global_allocator]
static ALLOC: AllocDisabler = AllocDisabler;

const MAG_FLOOR: f32 = 1e-3;
const RATE: f64 = 32_000.0;

/// Log-magnitude frames as the model produces them: `ln(|X| + floor)`.
fn log_mags(mag: &[f32]) -> Vec<f32> {
    mag.iter().map(|&m| (m + MAG_FLOOR).ln()).collect()
}

/// Runs RTPGHI over all frames (pushing, then flushing) and returns the spectra, row-major.
fn rtpghi_spectra(
    log_mag: &[f32],
    frames: usize,
    cfg: &StftConfig,
    lookahead: usize,
) -> Vec<Complex32> {
    let bins = cfg.n_bins();
    let mut r = Rtpghi::new(cfg, MAG_FLOOR, lookahead, 0x5eed);
    let mut out = Vec::with_capacity(frames * bins);
    let mut spec = vec![Complex32::default(); bins];
    for frame in log_mag.chunks_exact(bins) {
        if r.push(frame, &mut spec) {
            out.extend_from_slice(&spec);
        }
    }
    if r.flush(&mut spec) {
        out.extend_from_slice(&spec);
    }
    assert_eq!(out.len(), frames * bins);
    out
}

/// Spectral convergence (dB) of RTPGHI with lookahead 1 and 0, and of 10 Griffin–Lim
/// iterations, all from the exact STFT magnitudes of `x`.
fn scores(x: &[f32]) -> (f64, f64, f64) {
    let cfg = StftConfig::default();
    let (mag, frames) = stft_magnitudes(x, &cfg);
    let logs = log_mags(&mag);
    let sc_rt = |lookahead| {
        let spec = rtpghi_spectra(&logs, frames, &cfg, lookahead);
        let y = istft(&spec, frames, &cfg, x.len());
        spectral_convergence_db(&mag, frames, &y, &cfg)
    };
    let gl = griffin_lim(&mag, frames, &cfg, 10, x.len());
    (
        sc_rt(1),
        sc_rt(0),
        spectral_convergence_db(&mag, frames, &gl, &cfg),
    )
}

fn check(name: &str, x: &[f32]) {
    let (la1, la0, gl10) = scores(x);
    println!(
        "spectral convergence [{name}]: RTPGHI lookahead 1 = {la1:.2} dB, lookahead 0 = {la0:.2} dB, Griffin-Lim 10 iterations = {gl10:.2} dB"
    );
    // Both variants: the engine ships lookahead 0 (no added latency).
    for (lookahead, sc) in [(1, la1), (0, la0)] {
        assert!(
            sc < gl10,
            "{name}: RTPGHI (lookahead {lookahead}) {sc:.2} dB is not better than Griffin-Lim x10 {gl10:.2} dB"
        );
    }
}

/// 220 Hz, 10 harmonics with 1/h amplitudes, 5.5 Hz vibrato of ±50 cents, 1 s.
fn vibrato_tone() -> Vec<f32> {
    let len = RATE as usize;
    let mut phase = 0.0f64;
    (0..len)
        .map(|n| {
            let t = n as f64 / RATE;
            let f0 = 220.0 * 2f64.powf(0.5 / 12.0 * (TAU * 5.5 * t).sin());
            phase += TAU * f0 / RATE;
            let v: f64 = (1..=10).map(|h| (h as f64 * phase).sin() / h as f64).sum();
            (0.3 * v) as f32
        })
        .collect()
}

/// Exponential chirp 200 → 4000 Hz over 1 s.
fn chirp() -> Vec<f32> {
    let len = RATE as usize;
    let (f0, f1) = (200.0f64, 4000.0f64);
    let k = (f1 / f0).ln();
    (0..len)
        .map(|n| {
            let t = n as f64 / RATE;
            // Phase of f(t) = f0 · (f1/f0)^t: 2π f0 ((f1/f0)^t − 1) / ln(f1/f0).
            (0.5 * (TAU * f0 * ((k * t).exp() - 1.0) / k).sin()) as f32
        })
        .collect()
}

/// The first 1.5 s of an example instrument recording (32 kHz mono).
fn example(name: &str, seconds: f64) -> Vec<f32> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/examples")
        .join(name);
    let mut reader = hound::WavReader::open(&path).expect("example WAV");
    let spec = reader.spec();
    assert_eq!(spec.sample_rate, 32_000);
    assert_eq!(spec.channels, 1);
    let max = (seconds * RATE) as usize;
    match spec.sample_format {
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .samples::<i32>()
                .take(max)
                .map(|s| s.expect("sample") as f32 * scale)
                .collect()
        }
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .take(max)
            .map(|s| s.expect("sample"))
            .collect(),
    }
}

#[test]
fn rtpghi_beats_griffin_lim_on_vibrato_tone() {
    check("harmonic tone with vibrato", &vibrato_tone());
}

#[test]
fn rtpghi_beats_griffin_lim_on_chirp() {
    check("exponential chirp 200-4000 Hz", &chirp());
}

#[test]
fn rtpghi_beats_griffin_lim_on_trumpet() {
    check(
        "ref-trumpet.wav, first 1.5 s",
        &example("ref-trumpet.wav", 1.5),
    );
}

/// A stationary sinusoid at a bin centre: the reconstructed phase advances by 2π·f·hop per
/// frame at the peak bin and its neighbours, for both lookaheads.
#[test]
fn stationary_sinusoid_advances_by_two_pi_f_hop() {
    let cfg = StftConfig::default();
    let bin = 40usize; // 2500 Hz
    let f = bin as f64 / cfg.n_fft as f64; // cycles/sample
    let len = 16_000;
    let x: Vec<f32> = (0..len)
        .map(|n| (0.5 * (TAU * f * n as f64 + 0.3).cos()) as f32)
        .collect();
    let (mag, frames) = stft_magnitudes(&x, &cfg);
    let logs = log_mags(&mag);
    let bins = cfg.n_bins();
    let expected = TAU * f * cfg.hop as f64;
    for lookahead in [0, 1] {
        let spec = rtpghi_spectra(&logs, frames, &cfg, lookahead);
        // Away from the signal's edges, where the magnitude is stationary.
        for n in 10..frames - 10 {
            for m in bin - 1..=bin + 1 {
                let a = spec[n * bins + m];
                let b = spec[(n + 1) * bins + m];
                let advance = (b * a.conj()).arg() as f64;
                let err = (advance - expected + PI).rem_euclid(TAU) - PI;
                assert!(
                    err.abs() < 1e-3,
                    "lookahead {lookahead}, frame {n}, bin {m}: advance {advance}, expected {expected} (mod 2π)"
                );
            }
        }
        // The relative phase of neighbouring bins matches the true STFT (up to the constant
        // offset that no magnitude-only method can recover).
        let (truth, _) = stft(&x, &cfg);
        for n in 10..frames - 10 {
            let rel = |s: &[Complex32], m: usize| {
                (s[n * bins + m + 1] * s[n * bins + m].conj()).arg() as f64
            };
            for m in bin - 1..=bin {
                let err = (rel(&spec, m) - rel(&truth, m) + PI).rem_euclid(TAU) - PI;
                assert!(
                    err.abs() < 0.05,
                    "lookahead {lookahead}, frame {n}, bin {m}: {err}"
                );
            }
        }
    }
}

/// A single impulse: the phase across frequency comes from the magnitude's time derivative,
/// so the resynthesis is again one well-localised click. With lookahead 1 (centred difference)
/// it sits where the impulse was; with lookahead 0 the backward difference estimates the
/// derivative half a hop late, which moves the click by about `hop / 2` samples.
#[test]
fn single_impulse_stays_a_click() {
    let cfg = StftConfig::default();
    let len = 8_000;
    let at = 4_000;
    let mut x = vec![0.0f32; len];
    x[at] = 1.0;
    let (mag, frames) = stft_magnitudes(&x, &cfg);
    let logs = log_mags(&mag);
    for (lookahead, max_shift) in [(1usize, 4usize), (0, cfg.hop / 2 + 8)] {
        let spec = rtpghi_spectra(&logs, frames, &cfg, lookahead);
        let y = istft(&spec, frames, &cfg, len);
        let peak = y
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .map(|(i, _)| i)
            .unwrap();
        let energy: f64 = y.iter().map(|&v| (v as f64).powi(2)).sum();
        let near: f64 = y[peak - 64..peak + 64]
            .iter()
            .map(|&v| (v as f64).powi(2))
            .sum();
        let sc = spectral_convergence_db(&mag, frames, &y, &cfg);
        println!(
            "impulse at {at}, lookahead {lookahead}: peak at {peak}, {:.1}% of the energy within ±2 ms of it, SC {sc:.2} dB",
            100.0 * near / energy
        );
        assert!(
            peak.abs_diff(at) <= max_shift,
            "lookahead {lookahead}: click at {peak}"
        );
        assert!(
            near > 0.9 * energy,
            "lookahead {lookahead}: click smeared ({near} of {energy})"
        );
    }
}

/// push, flush and reset never allocate (with both lookaheads), on real signal frames.
#[test]
fn streaming_calls_do_not_allocate() {
    let cfg = StftConfig::default();
    let (mag, _) = stft_magnitudes(&vibrato_tone(), &cfg);
    let logs = log_mags(&mag);
    let bins = cfg.n_bins();
    for lookahead in [0, 1] {
        let mut r = Rtpghi::new(&cfg, MAG_FLOOR, lookahead, 1);
        let mut out = vec![Complex32::default(); bins];
        let before = violation_count();
        let mut emitted = 0usize;
        for (i, frame) in logs.chunks_exact(bins).enumerate() {
            assert_no_alloc(|| {
                emitted += usize::from(r.push(frame, &mut out));
                if i == 50 {
                    emitted += usize::from(r.flush(&mut out));
                }
                if i == 100 {
                    r.reset();
                }
            });
        }
        assert_no_alloc(|| {
            emitted += usize::from(r.flush(&mut out));
        });
        assert_eq!(
            violation_count(),
            before,
            "lookahead {lookahead}: allocation in push/flush/reset"
        );
        assert!(emitted > 100);
        assert!(out.iter().all(|c| c.re.is_finite() && c.im.is_finite()));
    }
}

/// NaN and infinite log-magnitudes count as the floor: no panic, finite output, zero magnitude
/// in those bins, and the stream carries on normally.
#[test]
fn non_finite_input_gives_finite_output() {
    let cfg = StftConfig::default();
    let bins = cfg.n_bins();
    let (mag, _) = stft_magnitudes(&chirp(), &cfg);
    let logs = log_mags(&mag);
    for lookahead in [0, 1] {
        let mut r = Rtpghi::new(&cfg, MAG_FLOOR, lookahead, 9);
        let mut out = vec![Complex32::default(); bins];
        for (i, frame) in logs.chunks_exact(bins).enumerate().take(60) {
            let mut frame = frame.to_vec();
            match i % 4 {
                0 => frame.iter_mut().step_by(3).for_each(|v| *v = f32::NAN),
                1 => frame.iter_mut().step_by(5).for_each(|v| *v = f32::INFINITY),
                2 => frame
                    .iter_mut()
                    .step_by(7)
                    .for_each(|v| *v = f32::NEG_INFINITY),
                _ => frame.fill(f32::NAN),
            }
            if i == 30 {
                frame.fill(f32::MAX);
            }
            if r.push(&frame, &mut out) {
                assert!(
                    out.iter().all(|c| c.re.is_finite() && c.im.is_finite()),
                    "frame {i}"
                );
            }
        }
        // Wrong lengths are tolerated too.
        r.push(&logs[..10], &mut out);
        r.push(&logs[..bins + 5], &mut out[..3]);
        r.flush(&mut out);
        assert!(out.iter().all(|c| c.re.is_finite() && c.im.is_finite()));
        // An all-NaN frame is all floor: zero magnitude.
        let mut r = Rtpghi::new(&cfg, MAG_FLOOR, lookahead, 9);
        let nan = vec![f32::NAN; bins];
        r.push(&nan, &mut out);
        r.push(&nan, &mut out);
        assert!(out.iter().all(|c| c.norm() == 0.0));
    }
}
