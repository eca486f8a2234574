//! A tiny reproducible generator for the tests (Marsaglia's 32-bit xorshift, shifts 13, 17,
//! 5): the same sequence on every machine, without a dependency.

/// Marsaglia's xorshift32; the seed must not be 0.
pub(crate) struct XorShift(u32);

impl XorShift {
    /// A generator starting from `seed` (not 0).
    pub(crate) fn new(seed: u32) -> Self {
        debug_assert!(seed != 0, "xorshift needs a non-zero seed");
        Self(seed)
    }

    /// The next 32 bits.
    pub(crate) fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }

    /// The next value in [-0.5, 0.5].
    pub(crate) fn next_centred(&mut self) -> f32 {
        self.next_u32() as f32 / u32::MAX as f32 - 0.5
    }
}
