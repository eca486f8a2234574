//! The real-time scheduling the worker thread asks for, per platform, and what it got.
//!
//! - Linux and other Unix systems (not macOS): `SCHED_FIFO` at a low real-time priority
//!   ([`WORKER_RT_PRIORITY`]), granted where the user may (`RLIMIT_RTPRIO`, as audio setups
//!   usually allow).
//! - macOS: the Mach time-constraint policy, with the frame period, half of it as the
//!   computation and the period as the constraint (Darwin's real-time class; `SCHED_FIFO`
//!   there is not it). Joining the host's audio workgroup would be better still, but nice-plug
//!   does not pass it on.
//! - Windows: MMCSS, task "Pro Audio" (`AvSetMmThreadCharacteristicsW`), and where that fails
//!   `THREAD_PRIORITY_TIME_CRITICAL`.
//!
//! Only the Linux path is built and tested here; the macOS and Windows paths compile only on
//! those systems and are untested (they use each system's documented calls, declared here).

use std::time::Duration;

/// What the OS granted the worker thread (see [`crate::EngineStats::worker_scheduling`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Scheduling {
    /// Normal priority: nothing was asked for, or nothing was granted.
    #[default]
    Normal = 0,
    /// `SCHED_FIFO` (Linux and other Unix systems).
    Fifo = 1,
    /// The Mach time-constraint policy (macOS).
    TimeConstraint = 2,
    /// MMCSS "Pro Audio" (Windows).
    Mmcss = 3,
    /// `THREAD_PRIORITY_TIME_CRITICAL` (Windows, where MMCSS was refused).
    TimeCritical = 4,
}

impl Scheduling {
    /// From its stored byte (unknown values read as [`Scheduling::Normal`]).
    pub fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Fifo,
            2 => Self::TimeConstraint,
            3 => Self::Mmcss,
            4 => Self::TimeCritical,
            _ => Self::Normal,
        }
    }

    /// Whether it is a real-time class (anything but [`Scheduling::Normal`]).
    pub fn is_realtime(self) -> bool {
        self != Self::Normal
    }

    /// In words, for the status line.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Normal => "normal priority",
            Self::Fifo => "real-time priority (SCHED_FIFO)",
            Self::TimeConstraint => "real-time (Mach time constraint)",
            Self::Mmcss => "real-time (MMCSS Pro Audio)",
            Self::TimeCritical => "time-critical priority",
        }
    }
}

/// Real-time priority the worker asks for with `SCHED_FIFO` (1..=99): low, so it never competes
/// with a host's own audio threads (usually higher), yet above every normal thread.
pub const WORKER_RT_PRIORITY: i32 = 5;

/// Asks for real-time scheduling of the calling thread, which must wake once per `period` and
/// needs about `computation` of CPU time each time. Returns what was granted.
pub fn promote_current_thread(period: Duration, computation: Duration) -> Scheduling {
    platform::promote(period, computation)
}

#[cfg(all(unix, not(target_os = "macos")))]
mod platform {
    use super::{Scheduling, WORKER_RT_PRIORITY};
    use std::time::Duration;

    pub fn promote(_period: Duration, _computation: Duration) -> Scheduling {
        let param = libc::sched_param {
            sched_priority: WORKER_RT_PRIORITY,
        };
        // SAFETY: `pthread_self` returns the calling thread's valid handle, `param` is a fully
        // initialised `sched_param` that outlives the call, and the call only changes this
        // thread's scheduling (it fails with EPERM, leaving it unchanged, where not permitted).
        let granted = unsafe {
            libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) == 0
        };
        if granted {
            Scheduling::Fifo
        } else {
            Scheduling::Normal
        }
    }
}

#[cfg(target_os = "macos")]
mod platform {
    use super::Scheduling;
    use std::time::Duration;

    /// `thread_time_constraint_policy_data_t` (`mach/thread_policy.h`); times in Mach
    /// absolute-time units.
    #[repr(C)]
    struct TimeConstraintPolicy {
        period: u32,
        computation: u32,
        constraint: u32,
        preemptible: u32,
    }

    /// `mach_timebase_info_data_t`: absolute-time units are `numer / denom` nanoseconds.
    #[repr(C)]
    struct TimebaseInfo {
        numer: u32,
        denom: u32,
    }

    /// `THREAD_TIME_CONSTRAINT_POLICY` and its count in `integer_t`s.
    const THREAD_TIME_CONSTRAINT_POLICY: u32 = 2;
    const THREAD_TIME_CONSTRAINT_POLICY_COUNT: u32 = 4;

    extern "C" {
        fn pthread_mach_thread_np(thread: libc::pthread_t) -> u32;
        fn mach_timebase_info(info: *mut TimebaseInfo) -> i32;
        fn thread_policy_set(thread: u32, flavor: u32, policy_info: *mut i32, count: u32) -> i32;
    }

    pub fn promote(period: Duration, computation: Duration) -> Scheduling {
        let mut timebase = TimebaseInfo { numer: 0, denom: 0 };
        // SAFETY: `mach_timebase_info` writes the two fields of the valid struct it is given.
        if unsafe { mach_timebase_info(&mut timebase) } != 0 || timebase.numer == 0 {
            return Scheduling::Normal;
        }
        let ticks = |d: Duration| {
            (d.as_nanos() as u64 * timebase.denom as u64 / timebase.numer as u64)
                .min(u32::MAX as u64) as u32
        };
        let mut policy = TimeConstraintPolicy {
            period: ticks(period),
            computation: ticks(computation.min(period)),
            constraint: ticks(period),
            preemptible: 1,
        };
        // SAFETY: `pthread_mach_thread_np` returns the calling thread's Mach port without
        // taking a reference; `policy` is a fully initialised time-constraint policy of
        // THREAD_TIME_CONSTRAINT_POLICY_COUNT 32-bit words that outlives the call, which only
        // changes this thread's scheduling.
        let result = unsafe {
            thread_policy_set(
                pthread_mach_thread_np(libc::pthread_self()),
                THREAD_TIME_CONSTRAINT_POLICY,
                (&mut policy as *mut TimeConstraintPolicy).cast(),
                THREAD_TIME_CONSTRAINT_POLICY_COUNT,
            )
        };
        if result == 0 {
            Scheduling::TimeConstraint
        } else {
            Scheduling::Normal
        }
    }
}

#[cfg(windows)]
mod platform {
    use super::Scheduling;
    use std::time::Duration;

    /// `THREAD_PRIORITY_TIME_CRITICAL`.
    const THREAD_PRIORITY_TIME_CRITICAL: i32 = 15;

    #[link(name = "avrt")]
    extern "system" {
        fn AvSetMmThreadCharacteristicsW(task_name: *const u16, task_index: *mut u32) -> isize;
    }

    #[link(name = "kernel32")]
    extern "system" {
        fn GetCurrentThread() -> isize;
        fn SetThreadPriority(thread: isize, priority: i32) -> i32;
    }

    pub fn promote(_period: Duration, _computation: Duration) -> Scheduling {
        let task: Vec<u16> = "Pro Audio".encode_utf16().chain(Some(0)).collect();
        let mut index = 0u32;
        // SAFETY: `task` is a NUL-terminated UTF-16 string and `index` a valid `u32`, both
        // outliving the call; it registers the calling thread with MMCSS and returns 0 on
        // failure (the handle is released when the thread ends).
        if unsafe { AvSetMmThreadCharacteristicsW(task.as_ptr(), &mut index) } != 0 {
            return Scheduling::Mmcss;
        }
        // SAFETY: the pseudo-handle of the calling thread, with a documented priority value.
        if unsafe { SetThreadPriority(GetCurrentThread(), THREAD_PRIORITY_TIME_CRITICAL) } != 0 {
            Scheduling::TimeCritical
        } else {
            Scheduling::Normal
        }
    }
}

#[cfg(not(any(unix, windows)))]
mod platform {
    use super::Scheduling;
    use std::time::Duration;

    pub fn promote(_period: Duration, _computation: Duration) -> Scheduling {
        Scheduling::Normal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_granted_class_round_trips_through_its_byte() {
        for s in [
            Scheduling::Normal,
            Scheduling::Fifo,
            Scheduling::TimeConstraint,
            Scheduling::Mmcss,
            Scheduling::TimeCritical,
        ] {
            assert_eq!(Scheduling::from_u8(s as u8), s);
            assert_eq!(s.is_realtime(), s != Scheduling::Normal);
        }
        assert_eq!(Scheduling::from_u8(200), Scheduling::Normal);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn on_linux_the_worker_gets_fifo_or_normal_and_says_which() {
        // Run on a thread of its own: the class it gets must match what the OS reports.
        let got = std::thread::spawn(|| {
            let s = promote_current_thread(Duration::from_millis(5), Duration::from_millis(2));
            // SAFETY: `pthread_self` is the calling thread; `sched_getscheduler(0)` reads the
            // calling thread's policy.
            let policy = unsafe { libc::sched_getscheduler(0) };
            (s, policy)
        })
        .join()
        .unwrap();
        match got.0 {
            Scheduling::Fifo => assert_eq!(got.1, libc::SCHED_FIFO),
            Scheduling::Normal => assert_ne!(got.1, libc::SCHED_FIFO),
            other => panic!("{other:?} on Linux"),
        }
    }
}
