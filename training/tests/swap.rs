//! The swap term on paired renders: it trains (the term falls), is logged and validated (as
//! are the variation and cycle terms alone), is refused when half-configured, and fine-tuning
//! starts from a model file's exact weights.
//! TimGM6mb stands in for a training library here (it is what CI has); these tests check the
//! mechanics, not what the shipped model was trained on.

mod common;

use std::path::{Path, PathBuf};

use candle_core::Device;
use timbreswap_training::data::library::Library;
use timbreswap_training::data::pairs::{render_pairs, PairOptions};
use timbreswap_training::dataset::{load_soundfont, render_dataset};
use timbreswap_training::instruments::Instrument;
use timbreswap_training::train::{train, SwapConfig, TrainConfig, MODEL_FILE};

/// The fixture's tiny run, with the swap term on `pairs` (off without).
fn tiny(epochs: usize, pairs: Option<PathBuf>) -> TrainConfig {
    TrainConfig {
        swap: SwapConfig {
            weight: if pairs.is_some() { 1.0 } else { 0.0 },
            pairs,
            batch: 4,
            reference_frames: 24,
            valid_pairs: 4,
            max_pairs: 0,
            differential: false,
            variation_weight: 0.0,
            cycle_weight: 0.0,
        },
        ..common::tiny_run(epochs)
    }
}

#[test]
fn the_swap_term_trains_and_fine_tuning_starts_from_the_file() {
    let data = common::temp_dir("swap-data");
    render_dataset(&common::tiny_dataset(data.clone()), &|_, _| {}).unwrap();
    let pairs = common::temp_dir("swap-pairs");
    let timgm = Path::new(common::TIMGM);
    let instrument = |program: u8, name: &str, low, high| Instrument {
        program,
        name: name.into(),
        family: "test".into(),
        low,
        high,
    };
    render_pairs(
        &PairOptions {
            out: pairs.clone(),
            libraries: vec![Library {
                name: "timgm",
                path: timgm.to_path_buf(),
                soundfont: load_soundfont(timgm).unwrap(),
                held_out_programs: Default::default(),
            }],
            instruments: vec![
                instrument(73, "Flute", 60, 84),
                instrument(71, "Clarinet", 55, 79),
                instrument(56, "Trumpet", 55, 79),
            ],
            count: 60,
            rate: 32_000,
            seed: 3,
            augment_share: 0.5,
            voice_share: 0.0,
            threads: 2,
        },
        &|_, _| {},
    )
    .unwrap();

    // The term falls as the decoder learns the swap.
    let run = common::temp_dir("swap-run");
    train(
        &data,
        &run,
        &tiny(20, Some(pairs.clone())),
        false,
        &|_, _, _, _| {},
    )
    .unwrap();
    let records = common::epoch_records(&run);
    let term = |r: &serde_json::Value| r["train_swap"].as_f64().unwrap();
    // Means of the first and last three epochs (one epoch is a few steps of four pairs).
    let n = records.len();
    let first = records[..3].iter().map(term).sum::<f64>() / 3.0;
    let last = records[n - 3..].iter().map(term).sum::<f64>() / 3.0;
    println!(
        "swap term by epoch: {:?}",
        records.iter().map(term).collect::<Vec<_>>()
    );
    assert!(last < 0.75 * first, "swap term {first:.1} -> {last:.1}");
    assert!(records
        .iter()
        .all(|r| r["valid_swap"].as_f64().is_some_and(f64::is_finite)));

    // Without it nothing is logged for it.
    let plain = common::temp_dir("swap-plain");
    train(&data, &plain, &tiny(1, None), false, &|_, _, _, _| {}).unwrap();
    assert!(common::epoch_records(&plain)[0]["train_swap"].is_null());

    // The variation-invariance term alone, and the cycle term alone (which decodes the swap
    // without scoring it), use the pairs without the swap term: each logged for every epoch,
    // training and validation, finite and not negative (a gap over a spread, a squared
    // distance).
    let alone = |set: &dyn Fn(&mut SwapConfig), name: &str, keys: [&str; 2]| {
        let mut config = tiny(2, Some(pairs.clone()));
        config.swap.weight = 0.0;
        set(&mut config.swap);
        let dir = common::temp_dir(name);
        train(&data, &dir, &config, false, &|_, _, _, _| {}).unwrap();
        for r in common::epoch_records(&dir) {
            assert!(r["train_swap"].is_null() && r["valid_swap"].is_null());
            for key in keys {
                let v = r[key].as_f64().unwrap();
                assert!(v.is_finite() && v >= 0.0, "{key} {v}");
            }
        }
    };
    alone(
        &|s| s.variation_weight = 1.0,
        "swap-variation",
        ["train_variation_invariance", "valid_variation_invariance"],
    );
    alone(
        &|s| s.cycle_weight = 1.0,
        "swap-cycle",
        ["train_cycle", "valid_cycle"],
    );

    // Half a configuration is refused, naming the fields.
    let mut no_pairs = tiny(1, None);
    no_pairs.swap.weight = 1.0;
    let mut no_weight = tiny(1, Some(pairs.clone()));
    no_weight.swap.weight = 0.0;
    for config in [no_pairs, no_weight] {
        let err = train(
            &data,
            &common::temp_dir("swap-refused"),
            &config,
            false,
            &|_, _, _, _| {},
        )
        .expect_err("refused");
        assert!(err.to_string().contains("swap.pairs"), "{err}");
    }

    // Fine-tuning at learning rate 0 exports exactly the weights it started from.
    let tuned = common::temp_dir("swap-tuned");
    let mut config = tiny(1, Some(pairs.clone()));
    config.learning_rate = 0.0;
    config.init_from = Some(run.join(MODEL_FILE));
    train(&data, &tuned, &config, false, &|_, _, _, _| {}).unwrap();
    let a = candle_core::safetensors::load(run.join(MODEL_FILE), &Device::Cpu).unwrap();
    let b = candle_core::safetensors::load(tuned.join(MODEL_FILE), &Device::Cpu).unwrap();
    assert_eq!(a.len(), b.len());
    for (name, t) in &a {
        let u = &b[name];
        assert_eq!(t.dims(), u.dims(), "{name}");
        let (x, y) = (
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            u.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert!(
            x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()),
            "{name} differs"
        );
    }
    // A model file of another shape is refused.
    let mut other = tiny(1, None);
    other.model.hidden = 16;
    other.init_from = Some(run.join(MODEL_FILE));
    let err = train(
        &data,
        &common::temp_dir("swap-other"),
        &other,
        false,
        &|_, _, _, _| {},
    )
    .expect_err("refused");
    assert!(err.to_string().contains("init_from"), "{err}");
    for dir in [data, pairs, run, plain, tuned] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
