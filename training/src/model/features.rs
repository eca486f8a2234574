//! The model's input features: the engine's [`timbreswap_engine::features`] (one definition, so
//! training, evaluation and the plugin see the same numbers).

pub use timbreswap_engine::features::*;
