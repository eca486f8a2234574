//! Shared fixtures of the training crate's integration tests: a scratch folder, a tiny
//! dataset rendered at test time from TimGM6mb (Debian `timgm6mb-soundfont`), a tiny training
//! run and its epoch log.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use timbreswap_training::dataset::{DatasetOptions, SetChoice};
use timbreswap_training::instruments::Instrument;
use timbreswap_training::model::file::{self, MapInstrument, TimbreMap};
use timbreswap_training::model::Config;
use timbreswap_training::train::{weights_of, TrainConfig, LOG_FILE};

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
        held_out: Some(PathBuf::from(TIMGM)),
    }
}

/// A tiny run on the TimGM6mb fixture dataset.
pub fn tiny_run(epochs: usize) -> TrainConfig {
    TrainConfig {
        model: Config {
            hidden: 24,
            dilations: vec![1, 2],
            z_t: 8,
            z_v: 8,
            z_p: 6,
            ..Config::default()
        },
        epochs,
        batch: 4,
        crop_frames: 24,
        learning_rate: 3e-3,
        kl_cycle_epochs: 4,
        valid_crops: 8,
        norm_clips: 8,
        ..TrainConfig::default()
    }
}

/// The epoch records of a run's log, without their timing fields (which differ between runs).
pub fn epoch_records(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join(LOG_FILE))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "epoch")
        .map(|mut v| {
            // Timing fields differ between runs.
            for k in ["wall_s", "frames_per_s"] {
                v.as_object_mut().unwrap().remove(k);
            }
            v
        })
        .collect()
}

/// Saves a model of `cfg` with `varmap`'s weights and a one-instrument timbre map into a fresh
/// temporary folder named after `name`; returns the folder and the file.
pub fn save_tiny(
    cfg: &Config,
    varmap: &candle_nn::VarMap,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = temp_dir(name);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    let map = TimbreMap {
        instruments: vec![MapInstrument {
            program: 0,
            name: "Piano".into(),
            family: "piano".into(),
        }],
        z_t: vec![0.5; cfg.z_t],
        pca_mean: vec![0.0; cfg.z_t],
        pca_basis: vec![1.0; 2 * cfg.z_t],
    };
    file::save(
        &path,
        cfg,
        &weights_of(varmap),
        &map,
        &serde_json::Value::Null,
    )
    .unwrap();
    (dir, path)
}

/// The largest absolute value of a tensor.
pub fn max_abs(a: &candle_core::Tensor) -> f32 {
    a.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// The largest absolute difference between two tensors of one shape.
pub fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    max_abs(&(a - b).unwrap())
}
