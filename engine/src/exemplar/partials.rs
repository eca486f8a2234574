//! The levels of a reference frame's partials at another pitch: by frequency (its resonances
//! stay where they are) far from the reference's pitch, by partial number near it.

/// How the level of an output partial below the reference's fundamental falls with its
/// frequency `f`: `(f / f0_ref)^BELOW_FUNDAMENTAL_SLOPE` times the fundamental's amplitude
/// (2: 12 dB per octave). The reference shows nothing there; holding the fundamental's level
/// (0) gave low inputs a buzzy, flat low end. Measured against 0, 1 and 3 on both libraries
/// (experiments/quality-log.md): 2 moved the most outputs to the reference's instrument on TimGM6mb.
pub const BELOW_FUNDAMENTAL_SLOPE: f32 = 2.0;
/// Within this many semitones of the reference frame's pitch, each output partial keeps the
/// level of the reference's partial of the same number (a square wave's missing even
/// partials, a clarinet's weak ones); from there to twice as far, its level (in dB) moves to
/// the envelope reading of [`partial_amplitudes`]. Measured against the envelope alone
/// (experiments/quality-log.md, "What a swap keeps of an instrument"): 4 kept more of an
/// instrument with its own note as the reference on both libraries and the same share of
/// swapped outputs on TimGM6mb.
pub const PARTIAL_NUMBER_SEMITONES: f32 = 4.0;

/// The output's partial amplitudes at `f0` Hz from a reference frame's partial amplitudes
/// `amps` at `f0_ref` Hz. Far from the reference's pitch, the reference's partials are read
/// as an envelope over frequency (each output partial takes the reference's level at its own
/// frequency, log-linear between the reference's partials; below the fundamental the
/// fundamental's level falling by [`BELOW_FUNDAMENTAL_SLOPE`]), so resonances stay where they
/// are; measured against keeping the pattern by partial number (source and filter) on
/// TimGM6mb: more outputs classified as the reference's instrument, and the pitch kept more
/// often (experiments/quality-log.md). Near it (within [`PARTIAL_NUMBER_SEMITONES`], fading
/// out by twice that), each partial the reference has keeps its level by number. Nothing past
/// the reference's last partial's frequency. Realtime-safe.
pub fn partial_amplitudes(amps: &[f32], f0_ref: f32, f0: f32, out: &mut [f32]) {
    let n = amps.len().min(out.len());
    out[..n].fill(0.0);
    // Partials up to the last one the reference has (above it, its band ended).
    let Some(m) = amps[..n].iter().rposition(|a| *a > 0.0).map(|i| i + 1) else {
        return;
    };
    let ratio = if f0_ref > 0.0 && f0.is_finite() && f0 > 0.0 {
        f0 / f0_ref
    } else {
        1.0
    };
    // Near the reference's pitch: by partial number, blended in dB towards the envelope.
    let by_number = (2.0 - (12.0 * ratio.log2()).abs() / PARTIAL_NUMBER_SEMITONES).clamp(0.0, 1.0);
    for (i, o) in out[..n].iter_mut().enumerate() {
        // This partial's frequency in the reference's partial numbers, from 0.
        let rel = (i + 1) as f32 * ratio;
        // The envelope's two neighbouring reference partials and how far between them this
        // partial lies; below the reference's fundamental, the fundamental twice and the
        // factor of the fall below it.
        let (a0, a1, between) = if rel < 1.0 {
            (amps[0], amps[0], rel.powf(BELOW_FUNDAMENTAL_SLOPE))
        } else {
            let pos = rel - 1.0;
            if pos > (m - 1) as f32 {
                break;
            }
            let k = pos as usize;
            (amps[k], amps[(k + 1).min(m - 1)], pos - k as f32)
        };
        if a0 <= 0.0 || a1 <= 0.0 {
            continue;
        }
        // Wholly by number: no envelope to compute.
        let own = if i < m { amps[i] } else { 0.0 };
        if by_number >= 1.0 && own > 0.0 {
            *o = own;
            continue;
        }
        let envelope = if rel < 1.0 {
            a0 * between
        } else {
            a0 * (a1 / a0).powf(between)
        };
        *o = if by_number > 0.0 && own > 0.0 {
            own * (envelope / own).powf(1.0 - by_number)
        } else {
            envelope
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_amplitudes_keep_the_references_envelope_where_it_is() {
        let n = 40;
        let mut out = vec![0.0; n];
        // At the reference's own pitch nothing changes.
        let smooth: Vec<f32> = (1..=n).map(|h| 1.0 / h as f32).collect();
        partial_amplitudes(&smooth, 200.0, 200.0, &mut out);
        for (a, b) in out.iter().zip(&smooth) {
            assert!((a / b - 1.0).abs() < 1e-4, "{a} vs {b}");
        }
        // A resonance at 1 kHz (partial 5 of 200 Hz) stays at 1 kHz: partial 10 of 100 Hz,
        // partial 2 of 500 Hz; and an output partial between two of the reference's takes
        // the level between theirs.
        let formant: Vec<f32> = (1..=n)
            .map(|h| (-((h as f32 * 200.0 - 1_000.0) / 300.0).powi(2)).exp())
            .collect();
        let loudest = |out: &[f32]| {
            out.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i + 1)
        };
        partial_amplitudes(&formant, 200.0, 100.0, &mut out);
        assert_eq!(loudest(&out), Some(10));
        let between = (formant[3] * formant[4]).sqrt();
        assert!((out[8] / between - 1.0).abs() < 1e-4, "900 Hz: {}", out[8]);
        partial_amplitudes(&formant, 200.0, 500.0, &mut out);
        assert_eq!(loudest(&out), Some(2));
        // Below the reference's fundamental the level falls by the slope: at 50 Hz, two
        // octaves under 200 Hz, 24 dB under the fundamental's.
        partial_amplitudes(&smooth, 200.0, 50.0, &mut out);
        let expected = smooth[0] * 0.25f32.powf(BELOW_FUNDAMENTAL_SLOPE);
        assert!((out[0] / expected - 1.0).abs() < 1e-4, "50 Hz: {}", out[0]);
        assert!(
            (out[3] / smooth[0] - 1.0).abs() < 1e-4,
            "200 Hz: {}",
            out[3]
        );
        // Past the reference's band (its last partial at 8 kHz) nothing plays.
        partial_amplitudes(&smooth, 200.0, 400.0, &mut out);
        assert!(out[20..].iter().all(|a| *a == 0.0));
        assert!(out[..20].iter().all(|a| *a > 0.0));
    }

    /// The envelope reading of `amps` for output partial `i` (from 0) at `ratio` times the
    /// reference's pitch, as documented: log-linear between the reference's partials, the
    /// fundamental's level falling by the slope below it, nothing past the last partial.
    fn envelope_reading(amps: &[f32], ratio: f32, i: usize) -> f32 {
        let rel = (i + 1) as f32 * ratio;
        if rel < 1.0 {
            return amps[0] * rel.powf(BELOW_FUNDAMENTAL_SLOPE);
        }
        let pos = rel - 1.0;
        if pos > (amps.len() - 1) as f32 {
            return 0.0;
        }
        let k = pos as usize;
        let next = amps[(k + 1).min(amps.len() - 1)];
        (amps[k].ln() + (next.ln() - amps[k].ln()) * (pos - k as f32)).exp()
    }

    /// Near the reference's pitch a square wave's pattern (odd partials, even ones 40 dB
    /// under) is kept by partial number; from [`PARTIAL_NUMBER_SEMITONES`] the levels move in
    /// dB to the envelope reading, which they reach at twice that.
    #[test]
    fn near_the_references_pitch_partials_keep_their_levels_by_number() {
        let n = 40;
        let square: Vec<f32> = (1..=n)
            .map(|h| if h % 2 == 1 { 1.0 } else { 0.01 } / h as f32)
            .collect();
        let f0_ref = 440.0;
        let at = |semitones: f32| f0_ref * 2f32.powf(semitones / 12.0);
        let mut out = vec![0.0; n];
        let close = |a: f32, b: f32| (a / b - 1.0).abs() < 1e-3;
        for semitones in [
            -PARTIAL_NUMBER_SEMITONES,
            -1.5,
            0.0,
            3.0,
            PARTIAL_NUMBER_SEMITONES,
        ] {
            let ratio = at(semitones) / f0_ref;
            partial_amplitudes(&square, f0_ref, at(semitones), &mut out);
            for (i, (o, a)) in out.iter().zip(&square).enumerate() {
                // Only past the reference's last partial's frequency does nothing play.
                if envelope_reading(&square, ratio, i) == 0.0 {
                    assert_eq!(*o, 0.0, "{semitones} st, partial {}", i + 1);
                } else {
                    assert!(
                        close(*o, *a),
                        "{semitones} st, partial {}: {o} vs {a}",
                        i + 1
                    );
                }
            }
            // The even partials stay 40 dB under their odd neighbours; below the reference's
            // pitch the fundamental keeps its level.
            assert!(out[1] < 0.02 * out[0] && out[1] < 0.02 * out[2], "{out:?}");
            assert!(close(out[0], square[0]), "{semitones} st: {}", out[0]);
        }
        for (semitones, by_number) in [
            (1.5 * PARTIAL_NUMBER_SEMITONES, 0.5),
            (-1.5 * PARTIAL_NUMBER_SEMITONES, 0.5),
            (2.0 * PARTIAL_NUMBER_SEMITONES, 0.0),
            (7.0, 2.0 - 7.0 / PARTIAL_NUMBER_SEMITONES),
        ] {
            let ratio = at(semitones) / f0_ref;
            partial_amplitudes(&square, f0_ref, at(semitones), &mut out);
            for (i, o) in out.iter().enumerate() {
                let e = envelope_reading(&square, ratio, i);
                let expected = if e > 0.0 {
                    (by_number * square[i].ln() + (1.0 - by_number) * e.ln()).exp()
                } else {
                    0.0
                };
                assert!(
                    (expected == 0.0 && *o == 0.0) || close(*o, expected),
                    "{semitones} st, partial {}: {o} vs {expected}",
                    i + 1
                );
            }
        }
    }
}
