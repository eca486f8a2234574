//! SplitMix64: the one small, fixed, seedable generator of the offline side (phrase scores,
//! perturbations, subsampling, synthetic test data). Its output never changes between versions,
//! so datasets and evaluations are reproducible from their seeds. Not for cryptography.

/// A SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    /// Uniform in `[0, 1)`, with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[0, 1)`, with 24 random bits.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in `lo..=hi` (slightly biased for huge ranges).
    pub fn int(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i32
    }

    /// Uniform in `0..n` (slightly biased for huge `n`; `n` must be positive).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// One standard normal value: Box-Muller's cosine branch, two uniforms per value (for
    /// many values, [`normals`] uses both branches).
    pub fn normal(&mut self) -> f64 {
        let u = self.unit().max(f64::MIN_POSITIVE);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// SplitMix64's finaliser: a bijective scramble of 64 bits (also a good hash of integers).
pub fn mix64(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Standard normal values from `rng` (Box-Muller).
pub fn normals(rng: &mut SplitMix64, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1 = rng.unit().max(1e-300);
        let u2 = rng.unit();
        let r = (-2.0 * u1.ln()).sqrt();
        let a = std::f64::consts::TAU * u2;
        out.push((r * a.cos()) as f32);
        out.push((r * a.sin()) as f32);
    }
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference sequence of SplitMix64 seeded with 0 (first three outputs).
    #[test]
    fn matches_the_reference_sequence() {
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(rng.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn ranges_stay_in_bounds() {
        let mut rng = SplitMix64::new(9);
        for _ in 0..1000 {
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
            assert!((-3..=4).contains(&rng.int(-3, 4)));
            assert!(rng.below(5) < 5);
            assert!((0.0..1.0).contains(&rng.next_f32()));
        }
    }

    /// Both normal generators have the standard normal's moments: over 200 000 values, mean
    /// within 0.01 (4.5 standard errors), variance within 0.02 and the fourth moment (3 for a
    /// normal) within 0.1.
    #[test]
    fn normal_values_have_standard_moments() {
        let mut rng = SplitMix64::new(4);
        let single: Vec<f64> = (0..200_000).map(|_| rng.normal()).collect();
        let paired: Vec<f64> = normals(&mut rng, 200_000)
            .iter()
            .map(|&x| x as f64)
            .collect();
        for values in [single, paired] {
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            let var = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
            let m4 = values.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n;
            assert!(mean.abs() < 0.01, "{mean}");
            assert!((var - 1.0).abs() < 0.02, "{var}");
            assert!((m4 - 3.0).abs() < 0.1, "{m4}");
        }
    }
}
