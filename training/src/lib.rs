//! Timbreswap's offline side: rendering instrument data from SoundFonts, scoring
//! disentanglement with the evaluation protocol (`../shared/eval-protocol.md`), and later
//! training the three-factor model. Nothing here runs in the plugin.

pub mod copies;
pub mod data;
pub mod dataset;
pub mod dsp_split;
pub mod eval;
pub mod f0;
pub mod instruments;
pub mod knn;
pub mod manifest;
pub mod memory;
pub mod model;
pub mod perturb;
pub mod plot;
pub mod rng;
pub mod train;
pub mod transfer;
pub mod voice;
pub mod whistle;
