//! The instance's own thread for file and model work: loading references and models, and
//! applying a state the host restored.
//!
//! nice-plug offers a background thread for this, but it is one thread shared by every instance
//! in the process, and it ends for good when it meets a task whose instance has been destroyed
//! meanwhile. The instances left then lose all their tasks, and the last of them to be destroyed
//! panics inside the host's `destroy` call, which aborts the host. This thread belongs to one
//! instance, holds none of nice-plug's wrapper, and is stopped and joined when the plugin is
//! dropped.
//!
//! Tasks from the editor reach it through nice-plug's GUI executor (the plugin's task executor
//! only queues them here); the audio thread asks for [`Task::ApplyState`] with
//! [`JobSender::apply_state`], which neither allocates nor locks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::{JoinHandle, Thread};

use crate::loader::{self, Task};
use crate::params::TimbreswapParams;
use crate::shared::Shared;

/// Flags shared by the senders and the thread.
#[derive(Default)]
struct Flags {
    /// The audio thread asked for [`Task::ApplyState`] since the thread last looked.
    apply_state: AtomicBool,
    /// The owner is being dropped: the thread ends after the task it is running.
    stop: AtomicBool,
}

/// The thread, owned by the plugin instance. Dropping it waits for the task in progress (a file
/// read or an analysis, bounded) and ends the thread; main thread.
pub struct Jobs {
    sender: JobSender,
    handle: Option<JoinHandle<()>>,
}

/// A handle that queues tasks on an instance's [`Jobs`] thread; cheap to clone.
#[derive(Clone)]
pub struct JobSender {
    /// Tasks from the main and GUI threads.
    tasks: Sender<Task>,
    flags: Arc<Flags>,
    /// The thread to wake (`None` when it could not be started).
    thread: Option<Thread>,
}

impl Jobs {
    /// Starts the thread for an instance whose state is `params` and `shared`. Main thread
    /// (allocates, spawns). If the system refuses a thread, the instance still plays and the
    /// editor says that files cannot be loaded.
    pub fn start(params: Arc<TimbreswapParams>, shared: Arc<Shared>) -> Self {
        let (tasks, inbox) = channel();
        let flags = Arc::new(Flags::default());
        let spawned = std::thread::Builder::new()
            .name("timbreswap-loader".into())
            .spawn({
                let flags = flags.clone();
                let shared = shared.clone();
                move || serve(&inbox, &flags, &params, &shared)
            });
        let handle = match spawned {
            Ok(handle) => Some(handle),
            Err(e) => {
                shared.report_error(format!(
                    "Cannot start the thread that loads files ({e}): references and models \
                     cannot be loaded in this instance"
                ));
                None
            }
        };
        let thread = handle.as_ref().map(|h| h.thread().clone());
        Self {
            sender: JobSender {
                tasks,
                flags,
                thread,
            },
            handle,
        }
    }

    /// A handle for queueing tasks on this thread.
    pub fn sender(&self) -> JobSender {
        self.sender.clone()
    }

    /// [`JobSender::apply_state`] on this thread. Realtime-safe.
    pub fn apply_state(&self) {
        self.sender.apply_state();
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        self.sender.flags.stop.store(true, Ordering::Release);
        self.sender.wake();
        if let Some(handle) = self.handle.take() {
            // Tasks run under `catch_unwind` (`run_guarded`), so the thread ends without a
            // panic; there is nothing to report from the join.
            let _ = handle.join();
        }
    }
}

impl JobSender {
    /// Queues `task`. Main or GUI thread (allocates a queue node); never blocks on the task.
    pub fn send(&self, task: Task) {
        // Fails only once the thread has ended (the instance is being dropped): nothing to do.
        if self.tasks.send(task).is_ok() {
            self.wake();
        }
    }

    /// Asks for [`Task::ApplyState`]. Realtime-safe: sets a flag and wakes the thread (a futex
    /// wake at most), without allocating or locking.
    pub fn apply_state(&self) {
        self.flags.apply_state.store(true, Ordering::Release);
        self.wake();
    }

    /// nice-plug's task executor for the plugin: each task is only queued here, so the thread
    /// nice-plug calls it on (the host's main thread) never waits for a file.
    pub fn executor(self) -> impl Fn(Task) + Send + 'static {
        move |task| self.send(task)
    }

    fn wake(&self) {
        if let Some(thread) = &self.thread {
            thread.unpark();
        }
    }
}

/// The thread's loop: runs queued tasks in order, then a requested [`Task::ApplyState`], then
/// sleeps until woken (`park` keeps a wake that came while a task ran, so none is lost).
fn serve(
    inbox: &Receiver<Task>,
    flags: &Flags,
    params: &Arc<TimbreswapParams>,
    shared: &Arc<Shared>,
) {
    while !flags.stop.load(Ordering::Acquire) {
        while let Ok(task) = inbox.try_recv() {
            if flags.stop.load(Ordering::Acquire) {
                return;
            }
            run_guarded(task, params, shared);
        }
        if flags.apply_state.swap(false, Ordering::AcqRel) {
            run_guarded(Task::ApplyState, params, shared);
            continue;
        }
        std::thread::park();
    }
}

/// Runs `task`; a panic in it (a bug) is reported in the editor instead of ending the thread,
/// so the instance keeps loading files. The shared state's locks are taken through
/// `PoisonError::into_inner` everywhere, so a task that panicked holding one leaves it usable.
fn run_guarded(task: Task, params: &Arc<TimbreswapParams>, shared: &Arc<Shared>) {
    let what = format!("{task:?}");
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        loader::run(task, params, shared)
    }));
    if ran.is_err() {
        shared.report_error(format!(
            "Internal error while running {what}; the previous state keeps playing"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "timed out: {what}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Tasks sent from another thread run on the instance's thread; dropping `Jobs` ends it.
    #[test]
    fn queued_tasks_run_and_drop_joins_the_thread() {
        let params = Arc::new(TimbreswapParams::default());
        let shared = Arc::new(Shared::default());
        let jobs = Jobs::start(params.clone(), shared.clone());
        let sender = jobs.sender();
        let thread = sender.thread.clone().expect("the thread starts");
        std::thread::spawn({
            let sender = sender.clone();
            move || {
                sender.send(Task::LoadReference {
                    slot: timbreswap_engine::Slot::A,
                    path: "/nonexistent/reference.wav".into(),
                })
            }
        })
        .join()
        .unwrap();
        // The task ran there: loading a missing file reports an error in the editor's status.
        wait_for("the task reports its error", || {
            shared.status.lock().unwrap().last_error.is_some()
        });
        let error = shared.status.lock().unwrap().last_error.clone().unwrap();
        assert!(error.contains("reference.wav"), "{error}");
        assert_eq!(thread.name(), Some("timbreswap-loader"));
        drop(jobs);
        // After the join the thread is gone: its own clone of the flags and the receiver are
        // dropped, so only this test's sender still holds the flags.
        assert_eq!(Arc::strong_count(&sender.flags), 1);
        // Sending after the thread ended is dropped quietly (no panic, nothing queued).
        sender.send(Task::ApplyState);
        sender.apply_state();
    }

    /// The audio thread's request is served by the thread, once however often it is made.
    #[test]
    fn apply_state_requests_are_served() {
        let params = Arc::new(TimbreswapParams::default());
        let shared = Arc::new(Shared::default());
        let jobs = Jobs::start(params, shared);
        let sender = jobs.sender();
        for _ in 0..3 {
            sender.apply_state();
        }
        wait_for("the request is taken", || {
            !sender.flags.apply_state.load(Ordering::Acquire)
        });
    }
}
