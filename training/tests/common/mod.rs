//! Shared fixtures of the training crate's integration tests: a scratch folder and a tiny
//! dataset rendered at test time from TimGM6mb (Debian `timgm6mb-soundfont`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use timbreswap_training::dataset::{DatasetOptions, SetChoice};
use timbreswap_training::instruments::Instrument;

/// The small General MIDI SoundFont the tests render with.
pub const TIMGM: &str = "/usr/share/sounds/sf2/TimGM6mb.sf2";

/// An empty scratch folder unique to this process and `name`.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("timbreswap-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Two instruments, seven notes at three velocities and two phrases each, at 32 kHz.
pub fn tiny_dataset(out: PathBuf) -> DatasetOptions {
    assert!(
        Path::new(TIMGM).exists(),
        "install timgm6mb-soundfont ({TIMGM})"
    );
    DatasetOptions {
        soundfont: PathBuf::from(TIMGM),
        out,
        set: SetChoice::All,
        rate: 32_000,
        seed: 1,
        instruments: vec![
            Instrument {
                program: 73,
                name: "Flute".into(),
                family: "pipe".into(),
                low: 67,
                high: 70,
            },
            Instrument {
                program: 71,
                name: "Clarinet".into(),
                family: "reed".into(),
                low: 55,
                high: 57,
            },
        ],
        phrases: 2,
        threads: 2,
    }
}
