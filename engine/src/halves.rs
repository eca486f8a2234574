//! Independent work split over two threads, for the analyses that run off the audio thread.

use std::ops::Range;
use std::sync::{Mutex, PoisonError};

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

/// `work` over the rows of two tables of `width` values per row, with the same number of rows,
/// split in two halves as [`in_halves`] splits its items: `work(first, a_rows, b_rows)` fills
/// the rows from `first` on that it is given (the second half on another thread; both here
/// if the system refuses a thread, or for fewer than `min_split` rows). The rows are written
/// where they lie, with no copy. A panic in either half is this call's. Not realtime-safe
/// (spawns a thread).
pub(crate) fn rows_in_halves(
    a: &mut [f32],
    b: &mut [f32],
    width: usize,
    min_split: usize,
    work: impl Fn(usize, &mut [f32], &mut [f32]) + Sync,
) {
    let n = a.len().checked_div(width).unwrap_or(0);
    debug_assert!(
        a.len() == n * width && b.len() == n * width,
        "tables of {n} rows of {width}"
    );
    if n < min_split.max(2) {
        work(0, a, b);
        return;
    }
    let half = n / 2;
    let (a_first, a_second) = a.split_at_mut(half * width);
    let (b_first, b_second) = b.split_at_mut(half * width);
    // The second half's rows, for whichever thread runs it: the helper, or this one if the
    // system refuses the helper (the closure holds only references, so each gets a copy).
    let second = Mutex::new(Some((a_second, b_second)));
    let run_second = || {
        let rows = second.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some((a, b)) = rows {
            work(half, a, b);
        }
    };
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("timbreswap-analysis-half".into())
            .spawn_scoped(scope, run_second);
        work(0, a_first, b_first);
        match helper {
            Ok(thread) => {
                if let Err(panic) = thread.join() {
                    std::panic::resume_unwind(panic);
                }
            }
            Err(_) => run_second(),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows filled in halves are the rows one pass fills, at every size around the threshold,
    /// and from the threshold on the second half runs on another thread.
    #[test]
    fn rows_in_halves_fill_what_one_pass_fills() {
        let fill = |first: usize, a: &mut [f32], b: &mut [f32]| {
            for (i, (ra, rb)) in a.chunks_exact_mut(3).zip(b.chunks_exact_mut(3)).enumerate() {
                let row = (first + i) as f32;
                ra.iter_mut()
                    .enumerate()
                    .for_each(|(k, v)| *v = row * 10.0 + k as f32);
                rb.fill(-row);
            }
        };
        for n in [0usize, 1, 5, 63, 64, 65, 1001] {
            let (mut a, mut b) = (vec![f32::NAN; 3 * n], vec![f32::NAN; 3 * n]);
            rows_in_halves(&mut a, &mut b, 3, 64, fill);
            let (mut want_a, mut want_b) = (vec![0.0; 3 * n], vec![0.0; 3 * n]);
            fill(0, &mut want_a, &mut want_b);
            assert_eq!((a, b), (want_a, want_b), "{n}");
            let (mut names, mut unused) = (vec![0.0f32; n], vec![0.0f32; n]);
            rows_in_halves(&mut names, &mut unused, 1, 64, |_, a, _| {
                let other = std::thread::current().name() == Some("timbreswap-analysis-half");
                a.fill(f32::from(u8::from(other)));
            });
            assert_eq!(names.contains(&1.0), n >= 64, "{n}");
        }
    }

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
