//! Where a reference clip is cut hard: its sound stops within a few milliseconds, as no
//! instrument's does (a sample trimmed without a fade, a gate, a clip's end mid-note). A frame
//! whose window holds such a cut holds its splatter (the step's broadband spectrum), and the
//! swap would play it as the instrument's noise; the bank keeps none of them.

/// The span the cut detector measures a clip's level over, in seconds (1 ms).
pub const CUT_BLOCK_SECONDS: f32 = 0.001;
/// A cut: the level falls this far, in dB, from one [`CUT_BLOCK_SECONDS`] block to the block
/// after next (2 ms on: a cut inside the block between leaves half of it loud). The fastest
/// release a SoundFont allows (1 ms) is a cut by this measure too, and plays as one.
pub const CUT_FALL_DB: f32 = 40.0;
/// A fall counts only from a block within this many dB of the clip's loudest block: the
/// splatter of a cut further down lies under what the bank keeps of its notes.
pub const CUT_FROM_UNDER_LOUDEST_DB: f32 = 60.0;
/// ...and within this many dB of the loudest block of the [`CUT_CONTEXT_SECONDS`] before it:
/// the end of a fade-out that reaches digital silence falls from far under the sound before
/// it, and its step splatters no more than that. Over 50 ms (a 440 Hz tone, worked out on its
/// 1 ms blocks), a raised-cosine fade's last fall starts 39.9 dB under the loudest block 16 ms
/// before, a linear one's 20.6 dB; a shorter linear fade counts as a cut (its last frames do
/// splatter: with the 50 ms one's left out, a first version measured the output's energy
/// above 9.5 kHz in `tests/exemplar.rs`'s test at -67.8 dB, against -65.2 dB).
pub const CUT_FROM_UNDER_CONTEXT_DB: f32 = 20.0;
/// The span before a fall whose loudest block [`CUT_FROM_UNDER_CONTEXT_DB`] compares with, in
/// seconds (a frame's window at the default framing).
pub const CUT_CONTEXT_SECONDS: f32 = 0.016;

/// The sample ranges of `audio` (mono, `sample_rate` Hz) where it is cut hard: each range
/// holds a cut (the blocks it may fall in, or the clip's last sample when the clip ends
/// while still within [`CUT_FROM_UNDER_LOUDEST_DB`] of its loudest and
/// [`CUT_FROM_UNDER_CONTEXT_DB`] of the sound before). In order, not overlapping.
/// Allocates; call it off the audio thread (the bank does, when a clip loads).
pub fn hard_cuts(audio: &[f32], sample_rate: f32) -> Vec<std::ops::Range<usize>> {
    let block = ((sample_rate * CUT_BLOCK_SECONDS).round() as usize).max(1);
    let context = ((CUT_CONTEXT_SECONDS / CUT_BLOCK_SECONDS).round() as usize).max(1);
    let levels: Vec<f32> = audio
        .chunks(block)
        .map(|b| {
            let power = b.iter().map(|x| x * x).sum::<f32>() / b.len() as f32;
            10.0 * (power + 1e-30).log10()
        })
        .collect();
    let loudest = levels
        .iter()
        .copied()
        .filter(|l| l.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    // Whether a stop at block `b` is a cut: loud enough in the clip and against what precedes.
    let loud_stop = |b: usize| {
        let before = levels[b.saturating_sub(context)..=b]
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        levels[b] >= loudest - CUT_FROM_UNDER_LOUDEST_DB
            && levels[b] >= before - CUT_FROM_UNDER_CONTEXT_DB
    };
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    let falls = (0..levels.len().saturating_sub(2))
        .filter(|&b| levels[b + 2] <= levels[b] - CUT_FALL_DB && loud_stop(b))
        .map(|b| (b + 1) * block..((b + 2) * block).min(audio.len()));
    let end = levels
        .len()
        .checked_sub(1)
        .filter(|&b| loud_stop(b))
        .map(|_| audio.len() - 1..audio.len());
    for cut in falls.chain(end) {
        match out.last_mut() {
            Some(last) if cut.start <= last.end => last.end = last.end.max(cut.end),
            _ => out.push(cut),
        }
    }
    out
}

/// Whether each of `frames` frames (frame `t` centred on sample `t * hop`, its window
/// `n_fft` samples) holds one of the `cuts` (from [`hard_cuts`]). Allocates.
pub(super) fn frames_over_cuts(
    cuts: &[std::ops::Range<usize>],
    frames: usize,
    hop: usize,
    n_fft: usize,
) -> Vec<bool> {
    let mut over = vec![false; frames];
    let half = n_fft / 2;
    for cut in cuts {
        // Frame t's window is [t hop - half, t hop + half).
        let first = (cut.start + 1).saturating_sub(half).div_ceil(hop);
        let last = (cut.end + half).saturating_sub(1) / hop;
        for o in over.iter_mut().take(last + 1).skip(first) {
            *o = true;
        }
    }
    over
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(n: usize, hz: f32, sr: f32) -> Vec<f32> {
        (0..n)
            .map(|i| 0.5 * (std::f32::consts::TAU * hz * i as f32 / sr).sin())
            .collect()
    }

    /// A tone stopped dead, then silence: one cut, where it stops; a tone that fades out over
    /// 50 ms (raised cosine) to silence, or a quiet tone 70 dB down stopped dead, none; a tone
    /// that runs to the clip's end, a cut at its last sample.
    #[test]
    fn a_tone_stopped_dead_is_cut_and_a_fade_is_not() {
        let sr = 32_000.0;
        let mut clip = sine(16_000, 440.0, sr);
        let stop = 10_000 + 7;
        clip[stop..].fill(0.0);
        let found = hard_cuts(&clip, sr);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains(&stop), "{found:?}");
        let mut faded = sine(16_000, 440.0, sr);
        for (i, v) in faded[10_000..11_600].iter_mut().enumerate() {
            *v *= (std::f32::consts::FRAC_PI_2 * i as f32 / 1_600.0)
                .cos()
                .powi(2);
        }
        faded[11_600..].fill(0.0);
        assert!(hard_cuts(&faded, sr).is_empty());
        // The faded tone, then a quiet one 70 dB under it stopped dead.
        let mut quiet = faded.clone();
        quiet[12_000..14_000].copy_from_slice(&sine(2_000, 440.0, sr));
        for v in &mut quiet[12_000..14_000] {
            *v *= 10f32.powf(-70.0 / 20.0);
        }
        assert!(hard_cuts(&quiet, sr).is_empty());
        let running = sine(16_000, 440.0, sr);
        assert_eq!(hard_cuts(&running, sr), vec![15_999..16_000]);
    }

    /// The frames marked are exactly those whose window `[t hop - n_fft/2, t hop + n_fft/2)`
    /// meets the cut's range, checked against every frame directly.
    #[test]
    fn the_frames_over_a_cut_are_those_whose_window_holds_it() {
        let (hop, n_fft, frames) = (160, 512, 100);
        for cut in [0..1, 1_000..1_032, 4_799..4_831, 15_999..16_000] {
            let over = frames_over_cuts(std::slice::from_ref(&cut), frames, hop, n_fft);
            for (t, &o) in over.iter().enumerate() {
                let (lo, hi) = ((t * hop) as i64 - 256, (t * hop) as i64 + 256);
                let meets = (cut.start as i64) < hi && (cut.end as i64) > lo;
                assert_eq!(o, meets, "frame {t}, cut {cut:?}");
            }
        }
    }
}
