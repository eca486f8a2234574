use pyin::{Framing, PYINExecutor, PadMode};
use std::time::Instant;

#[test]
fn pyin_timing() {
    let sr = 32_000u32;
    let x: Vec<f64> = (0..4 * sr as usize)
        .map(|i| {
            let t = i as f64 / sr as f64;
            let f = 220.0 * (1.0 + 0.3 * (t * 0.5).sin());
            (1..10)
                .map(|h| (std::f64::consts::TAU * f * h as f64 * t).sin() / h as f64)
                .sum::<f64>()
                * 0.1
        })
        .collect();
    for (fmin, fmax, res) in [
        (50.0, 2100.0, 0.25),
        (35.0, 3200.0, 0.25),
        (100.0, 600.0, 0.25),
        (50.0, 2100.0, 0.5),
    ] {
        let t = Instant::now();
        let mut p = PYINExecutor::new(fmin, fmax, sr, 2048, None, Some(160), Some(res));
        let t_new = t.elapsed().as_secs_f64();
        let (_, f0, v, _) = p.pyin(&x, f64::NAN, Framing::Center(PadMode::Constant(0.0)));
        println!("fmin {fmin} fmax {fmax} res {res}: new {t_new:.3} s, total {:.3} s, {} frames, voiced {}", t.elapsed().as_secs_f64(), f0.len(), v.iter().filter(|b| **b).count());
    }
}
