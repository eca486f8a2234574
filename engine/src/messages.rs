//! Messages between the audio thread, the worker thread and the control side (GUI, background
//! tasks). Everything here is plain data; the rings they travel on are `rtrb` queues sized when
//! the engine is built.

/// One of the two reference slots that the Morph parameter blends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// Slot A (Morph = 0 %).
    A,
    /// Slot B (Morph = 100 %).
    B,
}

/// Audio thread -> worker: the next `n_fft` samples in the frame ring belong to this frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AudioToWorkerMsg {
    /// A complete analysis frame.
    Frame {
        /// Reset generation; bumped by every `Engine::reset`.
        epoch: u32,
        /// Frame number since the last reset.
        index: u64,
        /// Morph position A -> B for this frame, 0..=1.
        morph: f32,
    },
}

/// Worker -> audio thread: the next `n_fft` samples in the grain ring are this frame's grain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerToAudioMsg {
    /// A synthesis-windowed grain, ready to overlap-add.
    Grain {
        /// Reset generation of the frame it was made from.
        epoch: u32,
        /// Frame number since the last reset.
        index: u64,
    },
}

/// Control side -> frame processor (which runs on the worker, or inline on the audio thread in
/// offline mode).
#[derive(Debug)]
pub enum ControlToProcessorMsg {
    /// Replace the envelope of a slot (`None` empties it). The envelope has one natural-log
    /// magnitude per bin of the engine's [`crate::StftConfig`].
    SetTimbre {
        /// Which slot.
        slot: Slot,
        /// The new envelope.
        envelope: Option<Box<[f32]>>,
    },
}

/// Frame processor -> control side: objects to free off the audio thread.
#[derive(Debug)]
pub enum ProcessorToControlMsg {
    /// A replaced envelope.
    Garbage(Box<[f32]>),
}
