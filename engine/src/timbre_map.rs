//! The timbre map: the model's training instruments as anchors on the 2-D PCA plane of the
//! timbre space, and the way back from a point on that plane to a timbre latent `z_t`.
//!
//! Coordinates: the editor and the Timbre X / Timbre Y parameters use *normalised* map
//! coordinates, -1..=1 on each axis over the anchors' bounding box (plus a 10 % margin), so the
//! parameters mean the same for every model. [`MapBlender::to_plane`] and
//! [`MapBlender::to_normalised`] convert.
//!
//! Inverse projection (the blending rule): a point `p` on the plane gets the inverse-squared-
//! distance weighted mean of the `z_t` of its [`NEAREST`] nearest anchors,
//! `w_i = 1 / (|p - a_i|^2 + EPS)`, normalised. At an anchor it is that instrument's timbre;
//! between anchors it moves smoothly between them; far outside it stays a blend of real
//! instruments (no extrapolation past the data). A 2-D point cannot pick out one of the 64-D
//! latents that project onto it, so the rule chooses the plausible ones, those near real
//! instruments.

use crate::model_file::TimbreMap;

/// Anchors blended for a point.
pub const NEAREST: usize = 3;

/// Regulariser of the inverse-distance weights, in squared normalised map units.
const EPS: f32 = 1e-8;

/// Margin added around the anchors' bounding box, as a share of its size.
const MARGIN: f32 = 0.1;

/// The anchors of a model's timbre map and the inverse projection. Built off the audio thread;
/// [`MapBlender::blend`] is realtime-safe.
#[derive(Debug, Clone)]
pub struct MapBlender {
    /// Anchor positions in normalised map coordinates, one per instrument.
    anchors: Vec<[f32; 2]>,
    /// The instruments' latents, row-major `instruments x dims`.
    z_t: Vec<f32>,
    dims: usize,
    /// Plane coordinates of the normalised origin.
    center: [f32; 2],
    /// Plane units per normalised unit, per axis.
    half_extent: [f32; 2],
}

impl MapBlender {
    /// The blender of `map`. Allocates.
    pub fn new(map: &TimbreMap) -> Self {
        let dims = map.dims();
        let plane: Vec<[f32; 2]> = (0..map.instruments.len())
            .filter_map(|i| map.instrument_z_t(i).map(|z| map.project(z)))
            .collect();
        let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
        for p in &plane {
            for a in 0..2 {
                lo[a] = lo[a].min(p[a]);
                hi[a] = hi[a].max(p[a]);
            }
        }
        let mut center = [0.0f32; 2];
        let mut half_extent = [1.0f32; 2];
        for a in 0..2 {
            if lo[a].is_finite() && hi[a].is_finite() {
                center[a] = 0.5 * (lo[a] + hi[a]);
                half_extent[a] = (0.5 * (hi[a] - lo[a]) * (1.0 + MARGIN)).max(1e-6);
            }
        }
        let mut blender = Self {
            anchors: Vec::with_capacity(plane.len()),
            z_t: map.z_t[..plane.len() * dims].to_vec(),
            dims,
            center,
            half_extent,
        };
        blender.anchors = plane.iter().map(|p| blender.to_normalised(*p)).collect();
        blender
    }

    /// Anchor positions (normalised map coordinates), in the map's instrument order.
    pub fn anchors(&self) -> &[[f32; 2]] {
        &self.anchors
    }

    /// Dimensions of the latents.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Plane (PCA) coordinates of a normalised point.
    pub fn to_plane(&self, p: [f32; 2]) -> [f32; 2] {
        [
            self.center[0] + p[0] * self.half_extent[0],
            self.center[1] + p[1] * self.half_extent[1],
        ]
    }

    /// Normalised coordinates of a plane (PCA) point.
    pub fn to_normalised(&self, p: [f32; 2]) -> [f32; 2] {
        [
            (p[0] - self.center[0]) / self.half_extent[0],
            (p[1] - self.center[1]) / self.half_extent[1],
        ]
    }

    /// Writes the timbre latent of normalised point `p` into `out` (`dims` values) by the
    /// inverse projection of the module docs. Writes nothing for a map without anchors.
    /// Realtime-safe.
    pub fn blend(&self, p: [f32; 2], out: &mut [f32]) {
        let p = [
            if p[0].is_finite() { p[0] } else { 0.0 },
            if p[1].is_finite() { p[1] } else { 0.0 },
        ];
        // The nearest anchors, by a fixed-size insertion (no allocation).
        let mut best = [(f32::INFINITY, usize::MAX); NEAREST];
        for (i, a) in self.anchors.iter().enumerate() {
            let d = (a[0] - p[0]).powi(2) + (a[1] - p[1]).powi(2);
            if d < best[NEAREST - 1].0 {
                let mut j = NEAREST - 1;
                while j > 0 && best[j - 1].0 > d {
                    best[j] = best[j - 1];
                    j -= 1;
                }
                best[j] = (d, i);
            }
        }
        let total: f32 = best
            .iter()
            .filter(|(_, i)| *i != usize::MAX)
            .map(|(d, _)| 1.0 / (d + EPS))
            .sum();
        if total <= 0.0 {
            return;
        }
        out.fill(0.0);
        for (d, i) in best.iter().filter(|(_, i)| *i != usize::MAX) {
            let w = 1.0 / (d + EPS) / total;
            let row = &self.z_t[i * self.dims..(i + 1) * self.dims];
            for (o, z) in out.iter_mut().zip(row) {
                *o += w * z;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_file::MapInstrument;

    /// Four instruments whose 2-D latents are their own plane positions (identity PCA).
    fn square() -> TimbreMap {
        let points = [[0.0, 0.0], [2.0, 0.0], [0.0, 1.0], [2.0, 1.0]];
        TimbreMap {
            instruments: (0..4)
                .map(|i| MapInstrument {
                    program: i,
                    name: format!("i{i}"),
                    family: "f".into(),
                })
                .collect(),
            z_t: points.iter().flatten().copied().collect(),
            pca_mean: vec![0.0, 0.0],
            pca_basis: vec![1.0, 0.0, 0.0, 1.0],
        }
    }

    #[test]
    fn coordinates_span_the_anchors_with_a_margin() {
        let b = MapBlender::new(&square());
        // Bounding box x 0..2, y 0..1, centre (1, 0.5); +10 % margin.
        let corner = b.to_normalised([2.0, 1.0]);
        assert!((corner[0] - 1.0 / 1.1).abs() < 1e-6 && (corner[1] - 1.0 / 1.1).abs() < 1e-6);
        let back = b.to_plane(corner);
        assert!((back[0] - 2.0).abs() < 1e-6 && (back[1] - 1.0).abs() < 1e-6);
        assert_eq!(b.anchors().len(), 4);
    }

    #[test]
    fn blend_is_the_anchor_at_an_anchor_and_a_convex_mix_between() {
        let b = MapBlender::new(&square());
        let mut z = [0.0f32; 2];
        for (i, a) in b.anchors().iter().enumerate() {
            b.blend(*a, &mut z);
            let expected = &square().z_t[2 * i..2 * i + 2];
            assert!((z[0] - expected[0]).abs() < 1e-3 && (z[1] - expected[1]).abs() < 1e-3);
        }
        // The centre is equidistant from all four: three of them (ties broken by order)
        // with equal weights.
        b.blend([0.0, 0.0], &mut z);
        let (x, y) = (z[0], z[1]);
        assert!(
            (x - 2.0 / 3.0).abs() < 1e-4 && (y - 1.0 / 3.0).abs() < 1e-4,
            "{z:?}"
        );
        // Far outside, still a convex mix of real instruments.
        b.blend([50.0, -50.0], &mut z);
        assert!(
            (0.0..=2.0).contains(&z[0]) && (0.0..=1.0).contains(&z[1]),
            "{z:?}"
        );
        b.blend([f32::NAN, 0.0], &mut z);
        assert!(z.iter().all(|v| v.is_finite()));
    }
}
