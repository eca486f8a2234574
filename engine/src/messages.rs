//! Messages between the audio thread, the worker thread and the control side (GUI, background
//! tasks). Everything here is plain data; the rings they travel on are `rtrb` queues sized when
//! the engine is built.

use crate::exemplar::ExemplarSwap;
use crate::neural::NeuralProcessor;
use crate::processor::FrameParams;

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
        /// The controls for this frame.
        params: FrameParams,
    },
}

/// Worker -> audio thread: the next `n_fft` samples in the grain ring are this frame's grain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerToAudioMsg {
    /// A frame is done: a synthesis-windowed grain is in the grain ring, ready to overlap-add,
    /// or (`dry`) there is nothing to swap with and the frame plays the exact dry input (no
    /// samples follow).
    Grain {
        /// Reset generation of the frame it was made from.
        epoch: u32,
        /// Frame number since the last reset.
        index: u64,
        /// The frame plays dry: no reference, or no output from the neural path yet.
        dry: bool,
    },
}

/// Control side -> frame processor (which runs on the worker, or inline on the audio thread in
/// offline mode).
pub enum ControlToProcessorMsg {
    /// Replace the envelope of a slot (`None` empties it). The envelope has one natural-log
    /// magnitude per bin of the engine's [`crate::StftConfig`].
    SetTimbre {
        /// Which slot.
        slot: Slot,
        /// The new envelope.
        envelope: Option<Box<[f32]>>,
    },
    /// Replace the neural timbre latent of a slot (`None` empties it); `z_t` values of the
    /// loaded model.
    SetLatent {
        /// Which slot.
        slot: Slot,
        /// The new latent.
        z_t: Option<Box<[f32]>>,
    },
    /// Replace the neural model (`None` unloads it), built with its slots' latents.
    SetModel(Option<Box<NeuralProcessor>>),
    /// Replace the exemplar swap of a slot (`None` empties it).
    SetExemplar {
        /// Which slot.
        slot: Slot,
        /// The new swap, drawing from the slot's clip.
        swap: Option<Box<ExemplarSwap>>,
    },
}

/// Frame processor -> control side: objects to free off the audio thread.
pub enum ProcessorToControlMsg {
    /// A replaced envelope or timbre latent.
    Garbage(Box<[f32]>),
    /// A replaced neural model.
    Model(Box<NeuralProcessor>),
    /// A replaced exemplar swap.
    Exemplar(Box<ExemplarSwap>),
}
