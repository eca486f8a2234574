//! int8 weights with one scale per row: the quantisation.
//!
//! Row `r` of a matrix is stored as `values[r * cols ..][..cols]` (integers in -127..=127) and
//! `scales[r]`, and stands for `w[r][c] = scales[r] * values[r * cols + c]`. The scale is the
//! row's largest magnitude over 127, so every weight is within half a step (`scales[r] / 2`)
//! of its original. The network reads such rows with the kernels of `narrow.rs`: the
//! int8 values widened in registers, products and sums in f32, the row's sum times its scale
//! plus the bias; a quarter of the f32 bytes per frame.

/// Largest magnitude of a stored value: the range is symmetric (-128 is never written).
pub const MAX_VALUE: i8 = 127;

/// A matrix quantised row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Rows {
    /// Row-major values, `rows * cols` of them, each in `-MAX_VALUE..=MAX_VALUE`.
    pub values: Vec<i8>,
    /// One scale per row (0 for a row of zeros), finite and non-negative.
    pub scales: Vec<f32>,
}

impl Int8Rows {
    /// Quantises the row-major matrix `w` of `cols` columns (`w.len()` a multiple of `cols`,
    /// `cols > 0`, every value finite): per row, `scale = max |w| / 127` and each value
    /// `round(w / scale)`.
    pub fn quantize(w: &[f32], cols: usize) -> Self {
        let mut values = Vec::with_capacity(w.len());
        let mut scales = Vec::with_capacity(w.len() / cols.max(1));
        for row in w.chunks_exact(cols.max(1)) {
            let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let scale = max / f32::from(MAX_VALUE);
            scales.push(scale);
            values.extend(row.iter().map(|v| {
                if scale > 0.0 {
                    (v / scale)
                        .round()
                        .clamp(-f32::from(MAX_VALUE), f32::from(MAX_VALUE))
                        as i8
                } else {
                    0
                }
            }));
        }
        Self { values, scales }
    }

    /// The values the rows stand for, `scales[r] * values[r][c]`, row-major (`cols` columns).
    pub fn dequantized(&self, cols: usize) -> Vec<f32> {
        self.values
            .chunks_exact(cols.max(1))
            .zip(&self.scales)
            .flat_map(|(row, s)| row.iter().map(move |v| s * f32::from(*v)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each row's largest magnitude maps to ±127 exactly, every weight comes back within half
    /// a step of itself, and a row of zeros stays zeros with scale 0.
    #[test]
    fn every_weight_comes_back_within_half_a_step() {
        let cols = 37;
        let mut rng = crate::test_rng::XorShift::new(7);
        let mut w: Vec<f32> = (0..5 * cols)
            .map(|i| {
                // Rows of very different sizes.
                rng.next_centred() * 10f32.powi(i as i32 / cols as i32 - 2)
            })
            .collect();
        w[3 * cols..4 * cols].fill(0.0);
        let q = Int8Rows::quantize(&w, cols);
        assert_eq!((q.values.len(), q.scales.len()), (w.len(), 5));
        let back = q.dequantized(cols);
        for (r, row) in w.chunks_exact(cols).enumerate() {
            let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert_eq!(q.scales[r], max / 127.0);
            let qs = &q.values[r * cols..][..cols];
            if max == 0.0 {
                assert!(qs.iter().all(|v| *v == 0));
                continue;
            }
            assert_eq!(qs.iter().map(|v| v.unsigned_abs()).max(), Some(127));
            for (c, v) in row.iter().enumerate() {
                let err = (back[r * cols + c] - v).abs();
                assert!(
                    err <= 0.5 * q.scales[r] * (1.0 + 1e-5),
                    "row {r} col {c}: {err}"
                );
            }
        }
    }
}
