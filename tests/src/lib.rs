//! Cross-crate test support for Timbreswap: a CLAP host harness ([`host::PluginHost`]) that
//! loads the built bundle, and helpers to prepare plugin state the way a DAW restores it.

pub mod fuzz;
pub mod host;
pub mod state;

use std::path::PathBuf;

/// Path of the bundled CLAP plugin (`target/bundled/Timbreswap.clap`), as written by
/// `cargo xtask bundle timbreswap --release`.
pub fn bundle_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("bundled").join("Timbreswap.clap")
}
