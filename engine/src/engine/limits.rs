//! The output's safety limits: how far the wet signal may rise above the input, and the
//! range of the Output gain. Realtime-safe.

/// The wet signal never exceeds this multiple (+12 dB) of the input's recent peak
/// ([`PEAK_RELEASE_S`]): a safety net against whatever a frame's processing makes of a DC
/// step, a huge burst or a damaged state. Below half of it the wet signal is untouched; above,
/// it bends smoothly towards it.
pub const WET_PEAK_LIMIT: f32 = 4.0;

/// Release time of the input peak follower behind [`WET_PEAK_LIMIT`], in seconds.
pub const PEAK_RELEASE_S: f64 = 0.05;

/// Lowest output gain the engine applies (linear, -24 dB: the plugin's Output range); lower,
/// negative or non-finite values (a damaged saved state, a host out of range) are clamped.
pub const MIN_OUTPUT_GAIN: f32 = 0.063_095_73;
/// Highest output gain the engine applies (linear, +24 dB).
pub const MAX_OUTPUT_GAIN: f32 = 15.848_932;

/// `x` unchanged while `|x| <= limit / 2`, bent smoothly (`tanh`, slope 1 at the knee) towards
/// `±limit` above; 0 when `limit` is 0. Realtime-safe.
#[inline]
pub fn soft_limit(x: f32, limit: f32) -> f32 {
    let knee = 0.5 * limit;
    let a = x.abs();
    if a <= knee {
        return x;
    }
    let room = limit - knee;
    if room <= 0.0 {
        return 0.0;
    }
    (knee + room * ((a - knee) / room).tanh()).copysign(x)
}

/// `mix` as a wet share in 0..=1 (non-finite: 1, the default) and `gain` in
/// [`MIN_OUTPUT_GAIN`]..=[`MAX_OUTPUT_GAIN`] (non-finite: 1), so no value can flip the
/// polarity or push the output past +24 dB. Realtime-safe.
#[inline]
pub fn safe_mix_and_gain(mix: f32, gain: f32) -> (f32, f32) {
    let mix = if mix.is_finite() {
        mix.clamp(0.0, 1.0)
    } else {
        1.0
    };
    let gain = if gain.is_finite() {
        gain.clamp(MIN_OUTPUT_GAIN, MAX_OUTPUT_GAIN)
    } else {
        1.0
    };
    (mix, gain)
}
