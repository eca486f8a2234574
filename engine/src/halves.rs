//! Independent work split over two threads, for the analyses that run off the audio thread.

use std::ops::Range;

/// `work` over `0..n` split in two halves, the second half on another thread (the first on
/// this one; both here if the system refuses a thread, or for fewer than `min_split` items),
/// the results concatenated in order: what one call over `0..n` gives when the items are
/// independent. A panic in either half is this call's. Not realtime-safe (spawns a thread).
pub(crate) fn in_halves<T: Send>(
    n: usize,
    min_split: usize,
    work: impl Fn(Range<usize>) -> Vec<T> + Sync,
) -> Vec<T> {
    if n < min_split.max(2) {
        return work(0..n);
    }
    let half = n / 2;
    let work = &work;
    std::thread::scope(|scope| {
        let second = std::thread::Builder::new()
            .name("timbreswap-analysis-half".into())
            .spawn_scoped(scope, move || work(half..n));
        let mut out = work(0..half);
        match second {
            Ok(thread) => match thread.join() {
                Ok(rest) => out.extend(rest),
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Err(_) => out.extend(work(half..n)),
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two halves give what one pass gives, in order, at every size around the threshold,
    /// and from the threshold on the second half runs on another thread.
    #[test]
    fn halves_give_what_one_pass_gives() {
        for n in [0, 1, 5, 63, 64, 65, 1001] {
            let got = in_halves(n, 64, |r| r.map(|i| (i * i) as u64).collect());
            let want: Vec<u64> = (0..n).map(|i| (i * i) as u64).collect();
            assert_eq!(got, want, "{n}");
            let names: Vec<bool> = in_halves(n, 64, |r| {
                let other = std::thread::current().name() == Some("timbreswap-analysis-half");
                r.map(|_| other).collect()
            });
            assert_eq!(names.iter().any(|&b| b), n >= 64, "{n}");
        }
    }
}
