//! Training on tiny datasets rendered at test time: resumption bit for bit, the loss terms
//! against their definitions, the config's defaults.

use super::*;

fn tensor(v: Vec<f32>, shape: (usize, usize, usize)) -> Tensor {
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// The value of a term.
fn value(term: candle_core::Result<Tensor>) -> f32 {
    term.unwrap().to_scalar::<f32>().unwrap()
}

/// Two crops of two frames with 2-D means: `(clean, distorted, weights)`.
/// Clean (crop, frame): (0,0) = [1, 0], (0,1) = [3, 0], (1,0) = [0, 2], (1,1) = [0, 2].
/// Distorted: the first coordinate moved by 1 everywhere (frame (1,1) by 10, weight 0).
/// Weights: crop 0 weighs its frames 1/4, 3/4; crop 1 only its first frame.
fn two_crops() -> (Tensor, Tensor, Tensor) {
    (
        tensor(vec![1., 0., 3., 0., 0., 2., 0., 2.], (2, 2, 2)),
        tensor(vec![2., 0., 4., 0., 1., 2., 10., 2.], (2, 2, 2)),
        Tensor::from_vec(vec![0.25f32, 0.75, 1.0, 0.0], (2, 2), &Device::Cpu).unwrap(),
    )
}

/// The term against its definition worked by hand on [`two_crops`].
#[test]
fn pitch_invariance_is_the_gap_over_the_spread() {
    let (clean, distorted, weights) = two_crops();
    // Gap: (0.25 + 0.75 + 1) * 1 / 2 crops = 1.
    // Centre: ([0.25 + 2.25, 0] + [0, 2]) / 2 = [1.25, 1].
    // Spread: (0.25 * (0.0625 + 1) + 0.75 * (3.0625 + 1) + 1 * (1.5625 + 1)) / 2 = 2.9375.
    let got = value(pitch_invariance(&clean, &distorted, &weights));
    let want = 1.0 / (2.9375 + 1e-6);
    assert!((got - want).abs() < 1e-6, "{got} against {want}");

    // Scale-free: scaling both means leaves it; identical means give 0.
    let scaled = value(pitch_invariance(
        &(&clean * 5.0).unwrap(),
        &(&distorted * 5.0).unwrap(),
        &weights,
    ));
    assert!((scaled - want).abs() < 1e-5, "{scaled} against {want}");
    assert_eq!(value(pitch_invariance(&clean, &clean, &weights)), 0.0);
}

/// The cross-entropy against its definition worked by hand: three bins, two crops of one
/// frame weighted 1 and 0.5.
#[test]
fn pitch_classifier_is_the_cross_entropy_to_a_gaussian_target() {
    let logits = |v: Vec<f32>| Tensor::from_vec(v, (2, 1, 3), &Device::Cpu).unwrap();
    let rows = |v: Vec<f32>| Tensor::from_vec(v, (2, 1), &Device::Cpu).unwrap();
    let weights = rows(vec![1.0, 0.5]);
    // Uniform logits: ln 3 per frame whatever the target; (1 + 0.5) ln 3 / 2 crops.
    let got = value(pitch_classifier(
        &logits(vec![0.0; 6]),
        &rows(vec![1.0, 0.3]),
        &weights,
    ));
    assert!((got - 0.75 * 3f32.ln()).abs() < 1e-6, "{got}");
    // Logits equal to the log target (bin 1, spread 0.5: e^-2, 1, e^-2 normalised) give
    // the target's entropy.
    let q: Vec<f32> = [(-2f32).exp(), 1.0, (-2f32).exp()]
        .iter()
        .map(|v| v / (1.0 + 2.0 * (-2f32).exp()))
        .collect();
    let entropy: f32 = q.iter().map(|p| -p * p.ln()).sum();
    let log_q: Vec<f32> = q.iter().chain(&q).map(|p| p.ln()).collect();
    let got = value(pitch_classifier(
        &logits(log_q),
        &rows(vec![1.0, 1.0]),
        &weights,
    ));
    assert!(
        (got - 0.75 * entropy).abs() < 1e-5,
        "{got} against {}",
        0.75 * entropy
    );
}

/// The contrast term against its definition worked by hand on [`two_crops`], only crop 0
/// shifted.
#[test]
fn pitch_contrast_is_the_distortion_gap_over_the_shift_gap() {
    let (clean, distorted, weights) = two_crops();
    // Shifted: crop 0's second coordinate moved by 2 (its squared gap 4 on both frames);
    // crop 1 moved by 100, but it is not a shifted crop, so it must not count.
    let shifted = tensor(vec![1., 2., 3., 2., 100., 2., 0., 2.], (2, 2, 2));
    let moved = [1.0f32, 0.0];
    // Distortion gap: crop 0 (0.25 + 0.75) * 1 = 1, crop 1 1 * 1 = 1; mean 1.
    // Shift gap: crop 0 only, (0.25 + 0.75) * 4 = 4.
    let got = value(pitch_contrast(
        &clean, &distorted, &shifted, &weights, &moved,
    ));
    let want = 1.0 / (4.0 + 1e-6);
    assert!((got - want).abs() < 1e-6, "{got} against {want}");

    // Scale-free; identical distorted means give 0; no shifted crop gives 0.
    let scaled = |t: &Tensor| (t * 3.0).unwrap();
    let got = value(pitch_contrast(
        &scaled(&clean),
        &scaled(&distorted),
        &scaled(&shifted),
        &weights,
        &moved,
    ));
    assert!((got - want).abs() < 1e-5, "{got} against {want}");
    let same = pitch_contrast(&clean, &clean, &shifted, &weights, &moved);
    assert_eq!(value(same), 0.0);
    let none = pitch_contrast(&clean, &distorted, &shifted, &weights, &[0.0, 0.0]);
    assert_eq!(value(none), 0.0);
}
