//! How the host calls `process`: the largest block it passes and the bursts it calls in, so
//! that the latency can be built for what the host really does (`activate`) and a restart asked
//! for when that changes.
//!
//! The rule: an instance that has seen no realtime call yet builds its latency for the
//! declared maximum block (most hosts play what they declare, and then nothing changes). Once
//! it has played [`SETTLE_SECONDS`] with blocks at most half as large (or at most one hop), it
//! asks for one restart and builds for the largest block it has seen (a host that declares 4 096 and plays 128 gets the 128-sample
//! latency). A block, or a burst of calls, larger than the latency covers asks for a restart at
//! once. Each activation asks at most once.
//!
//! A *run* is a sequence of calls with no real wait between them: a call that starts less than
//! half of the previous call's audio duration after that call ended continues the run. A
//! host's real-time audio thread waits about one block period between calls, so each of its
//! runs is one block. A host that calls in bursts ahead of time (VST3 prefetch, anticipative
//! processing) makes runs of several blocks, and the worker then needs a whole run's period to
//! answer. A caller that never waits (an offline loop) makes one endless run, which is never
//! counted.

use std::time::{Duration, Instant};

/// Consecutive runs longer than the latency covers before a restart is asked for: a host that
/// calls in bursts does so every time, while a scheduling hiccup (a late callback followed by
/// an immediate one) makes a single two-block run between one-block runs.
pub const BURST_RUNS: u32 = 16;

/// Realtime audio an activation plays before it asks for a restart to lower its latency to the
/// blocks the host really passes, in seconds (asked only when the block the latency covers
/// would at least halve).
pub const SETTLE_SECONDS: f64 = 0.25;

/// What `process` has seen of the host's calls. Audio thread only; no allocation.
#[derive(Debug, Clone, Default)]
pub struct Pacing {
    /// Largest block, in samples.
    largest: usize,
    /// Longest counted burst (a run of calls that came [`BURST_RUNS`] times in a row), in
    /// samples; 0 when none.
    burst: usize,
    /// Samples in the current run.
    run: usize,
    /// When the previous call ended, and how long its audio lasts.
    last: Option<(Instant, Duration)>,
    /// Consecutive finished runs longer than the latency covers.
    long_runs: u32,
    /// The longest of those runs, in samples.
    longest_run: usize,
    /// The block this activation's latency was built for, in samples.
    built: usize,
    /// This activation's declared maximum block, in samples.
    max_block: usize,
    /// The largest block that costs no latency beyond the minimum (one hop), in samples.
    floor: usize,
    /// Samples this activation has played.
    heard: usize,
}

impl Pacing {
    /// Largest block or counted burst seen so far, in samples (0 before the first call).
    pub fn largest(&self) -> usize {
        self.largest.max(self.burst)
    }

    /// The block the next activation builds the latency for, given its declared maximum
    /// block: the declared maximum before any realtime call; then the largest block seen (no
    /// larger than that maximum: a host that declares less now has changed its buffer size),
    /// or the longest counted burst if that is longer.
    pub fn latency_block(&self, max_block: usize) -> usize {
        if self.largest == 0 && self.burst == 0 {
            max_block
        } else {
            self.largest.min(max_block).max(self.burst)
        }
    }

    /// Starts an activation whose latency was built for `built` samples, with the declared
    /// `max_block` and `floor`, the largest block that costs no latency beyond the minimum.
    /// Forgets the current run (the timing of one activation says nothing about the next);
    /// keeps what was seen.
    pub fn new_activation(&mut self, built: usize, max_block: usize, floor: usize) {
        *self = Self {
            largest: self.largest,
            burst: self.burst,
            built,
            max_block,
            floor,
            ..Self::default()
        };
    }

    /// Notes a call of `samples` at `rate` Hz starting at `now`, with the engine covering
    /// blocks (and runs) up to `covered` samples. Returns true when the latency no longer fits
    /// how the host calls (a block larger than `covered`, [`BURST_RUNS`] consecutive runs
    /// longer than it, or, after [`SETTLE_SECONDS`], only smaller blocks than it was built
    /// for): the caller asks the host for a restart, and the next activation builds the latency
    /// for [`Pacing::latency_block`]. Realtime-safe.
    pub fn on_call(&mut self, samples: usize, rate: f64, covered: usize, now: Instant) -> bool {
        self.largest = self.largest.max(samples);
        let mut outgrown = samples > covered;
        // Settled with smaller blocks than the latency was built for: a restart lowers it.
        let settled = self.heard < (SETTLE_SECONDS * rate) as usize
            && self.heard + samples >= (SETTLE_SECONDS * rate) as usize;
        self.heard = self.heard.saturating_add(samples);
        // Worth a restart only when the block the latency covers at least halves.
        let target = self.latency_block(self.max_block).max(self.floor);
        if settled && target.saturating_mul(2) <= self.built {
            outgrown = true;
        }
        let waited = match self.last {
            Some((end, duration)) => now.saturating_duration_since(end) >= duration / 2,
            None => true,
        };
        if waited {
            // The previous run ended with a real wait: it was one burst.
            if self.run > covered && self.last.is_some() {
                self.long_runs += 1;
                self.longest_run = self.longest_run.max(self.run);
                if self.long_runs >= BURST_RUNS {
                    self.burst = self.burst.max(self.longest_run);
                    self.long_runs = 0;
                    outgrown = true;
                }
            } else if self.run > 0 {
                self.long_runs = 0;
                self.longest_run = 0;
            }
            self.run = samples;
        } else {
            self.run += samples;
        }
        self.last = Some((now, Duration::from_secs_f64(samples as f64 / rate.max(1.0))));
        outgrown
    }

    /// Notes that the call noted last ended at `now`. Realtime-safe.
    pub fn on_call_end(&mut self, now: Instant) {
        if let Some((end, _)) = &mut self.last {
            *end = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: f64 = 48_000.0;
    /// One 128-sample period at 48 kHz.
    const PERIOD: Duration = Duration::from_micros(2_667);
    /// Time a call takes.
    const CALL: Duration = Duration::from_micros(30);
    /// No call asked for a restart.
    const NO_ASKS: [usize; 0] = [];

    /// Calls of `samples` starting at `starts` (each lasting [`CALL`]) against an engine
    /// covering `covered` samples; the indices of the calls that asked for a restart.
    fn asks(
        p: &mut Pacing,
        samples: usize,
        covered: usize,
        starts: impl IntoIterator<Item = Instant>,
    ) -> Vec<usize> {
        starts
            .into_iter()
            .enumerate()
            .filter_map(|(i, now)| {
                let asked = p.on_call(samples, RATE, covered, now);
                p.on_call_end(now + CALL);
                asked.then_some(i)
            })
            .collect()
    }

    /// Start times of `calls` calls, one every `spacing`.
    fn paced(calls: u32, spacing: Duration) -> impl Iterator<Item = Instant> {
        let start = Instant::now();
        (0..calls).map(move |i| start + spacing * i)
    }

    /// Start times of `groups` groups of `burst` calls back to back, each group followed by a
    /// wait until its audio (128 samples a call) is due.
    fn bursts(burst: u32, groups: u32) -> impl Iterator<Item = Instant> {
        let start = Instant::now();
        (0..groups * burst).map(move |i| start + PERIOD * (i - i % burst) + CALL * (i % burst))
    }

    #[test]
    fn a_paced_host_makes_one_block_runs() {
        let mut p = Pacing::default();
        p.new_activation(240, 240, 240);
        assert_eq!(asks(&mut p, 128, 240, paced(500, PERIOD)), NO_ASKS);
        assert_eq!(p.largest(), 128);
    }

    #[test]
    fn a_host_that_declares_more_than_it_plays_gets_one_restart_down() {
        let mut p = Pacing::default();
        // Nothing seen: the declared maximum.
        assert_eq!(p.latency_block(4_096), 4_096);
        p.new_activation(4_096, 4_096, 240);
        // Asked exactly once, by the call during which the settling time's samples are
        // reached.
        let crossing = ((SETTLE_SECONDS * RATE) as usize).div_ceil(128) - 1;
        let calls = 2 * crossing as u32;
        assert_eq!(asks(&mut p, 128, 4_096, paced(calls, PERIOD)), [crossing]);
        assert_eq!(p.latency_block(4_096), 128);
        // Built for what it plays, nothing more is asked.
        p.new_activation(128, 4_096, 240);
        assert_eq!(asks(&mut p, 128, 240, paced(500, PERIOD)), NO_ASKS);
    }

    #[test]
    fn a_small_saving_is_not_worth_a_restart() {
        // Declared 512, plays 300: the covered block would not halve.
        let mut p = Pacing::default();
        p.new_activation(512, 512, 240);
        assert_eq!(asks(&mut p, 300, 512, paced(1_000, PERIOD * 3)), NO_ASKS);
    }

    #[test]
    fn a_host_that_plays_what_it_declares_is_never_restarted() {
        let mut p = Pacing::default();
        p.new_activation(512, 512, 240);
        assert_eq!(asks(&mut p, 512, 512, paced(1_000, PERIOD * 4)), NO_ASKS);
        assert_eq!(p.latency_block(512), 512);
    }

    #[test]
    fn a_larger_block_asks_at_once() {
        let mut p = Pacing::default();
        p.new_activation(240, 4_096, 240);
        let now = Instant::now();
        assert!(!p.on_call(128, RATE, 240, now));
        p.on_call_end(now + CALL);
        assert!(p.on_call(512, RATE, 240, now + PERIOD));
        assert_eq!(p.largest(), 512);
        assert_eq!(p.latency_block(4_096), 512);
        // A later activation that declares a smaller maximum (a smaller buffer setting).
        assert_eq!(p.latency_block(256), 256);
    }

    #[test]
    fn bursts_ask_after_consecutive_long_runs() {
        let mut p = Pacing::default();
        p.new_activation(240, 240, 240);
        // Groups of 8 calls (1 024 samples): the 16th long run ends when group 17 starts.
        let asked = asks(&mut p, 128, 240, bursts(8, 40));
        assert_eq!(asked.first(), Some(&(BURST_RUNS as usize * 8)));
        assert_eq!(p.largest(), 1_024);
        // Beyond the declared maximum block of 128.
        assert_eq!(p.latency_block(128), 1_024);
        // Once the latency covers the bursts, nothing more is asked.
        p.new_activation(1_024, 1_024, 240);
        assert_eq!(asks(&mut p, 128, 1_024, bursts(8, 40)), NO_ASKS);
    }

    #[test]
    fn scheduling_hiccups_are_not_bursts() {
        // Every 5th callback is late and followed at once by the next one (a two-block run)
        // between one-block runs: never 16 long runs in a row.
        let mut p = Pacing::default();
        p.new_activation(240, 240, 240);
        let hiccups = paced(2_000, PERIOD).enumerate().map(|(i, due)| {
            if i % 5 == 1 {
                due + PERIOD - CALL * 2
            } else {
                due
            }
        });
        assert_eq!(asks(&mut p, 128, 240, hiccups), NO_ASKS);
        assert_eq!(p.largest(), 128);
    }

    #[test]
    fn a_loop_that_never_waits_is_not_counted() {
        let mut p = Pacing::default();
        p.new_activation(240, 240, 240);
        let start = Instant::now();
        assert_eq!(asks(&mut p, 128, 240, paced(10_000, CALL)), NO_ASKS);
        // A pause after it ends one long run: one, not sixteen.
        assert!(!p.on_call(128, RATE, 240, start + Duration::from_secs(5)));
        assert_eq!(p.largest(), 128);
    }
}
