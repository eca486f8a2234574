//! Training data beyond the protocol's dataset: the SoundFont libraries trained on, paired
//! swap examples (one score rendered as two instruments, plus a reference clip of the second)
//! and the timbre augmentation applied alike to a target and its reference.
//!
//! - [`library`]: which SF2 files are training libraries, which one is held out, and whether a
//!   library has a GM program.
//! - [`augment`]: a random "new instrument" (body resonance, EQ, saturation, breath noise)
//!   drawn once and applied to several clips.
//! - [`overlap`]: the programs of a training library that play samples of the held-out
//!   library (left out of training data).
//! - [`pairs`]: planning, rendering (resumable) and reading the paired swap set.

pub mod augment;
pub mod library;
pub mod overlap;
pub mod pairs;
#[cfg(test)]
pub(crate) mod sf2_writer;
