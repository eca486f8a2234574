//! A short run of each fuzz target (`timbreswap_tests::fuzz`): mutated clips, model files and
//! plugin states never panic, hang or play non-finite audio. Longer runs:
//! `cargo run --release -p timbreswap-tests --example fuzz -- TARGET SECONDS` (figures in
//! `docs/benchmarks.md`).

use timbreswap_tests::fuzz::{self, Rng, Verdict};

/// Mutants of every clip format: each is decoded and analysed or refused with a typed error.
#[test]
fn mutated_clips_are_decoded_or_refused() {
    let seeds = fuzz::clip_seeds();
    let dir = std::env::temp_dir().join(format!("timbreswap-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = Rng::new(1);
    let mut refused = 0;
    for i in 0..300 {
        let (ext, seed) = &seeds[i % seeds.len()];
        let input = fuzz::mutate(seed, &mut rng);
        let path = dir.join(format!("mutant.{ext}"));
        match fuzz::clip_target(&input, &path) {
            Ok(Verdict::Refused) => refused += 1,
            Ok(Verdict::Accepted) => {}
            Err(problem) => panic!("mutant {i} of tone.{ext}: {problem}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("300 clip mutants, {refused} refused");
}

/// Mutants of the shipped model file: parsed and played finite, or refused.
#[test]
fn mutated_model_files_are_played_finite_or_refused() {
    let seed = std::fs::read(fuzz::root().join("assets/models/default.safetensors")).unwrap();
    let input: Vec<f32> = (0..8_000)
        .map(|n| 0.3 * (std::f32::consts::TAU * 220.0 * n as f32 / 32_000.0).sin())
        .collect();
    let mut rng = Rng::new(2);
    let mut accepted = 0;
    for i in 0..40 {
        let mutant = fuzz::mutate(&seed, &mut rng);
        match fuzz::model_target(&mutant, &input) {
            Ok(Verdict::Accepted) => accepted += 1,
            Ok(Verdict::Refused) => {}
            Err(problem) => panic!("model mutant {i}: {problem}"),
        }
    }
    println!("40 model mutants, {accepted} accepted and played finite");
}

/// Mutated states loaded into the CLAP bundle while it plays: refused or applied, and the
/// output stays finite and bounded.
#[test]
fn mutated_states_keep_the_plugin_playing_safely() {
    let seeds = fuzz::state_seeds();
    assert!(
        seeds.len() >= 2,
        "the state corpus is missing (tests/fuzz/states)"
    );
    let mut host = timbreswap_tests::host::PluginHost::load(&timbreswap_tests::bundle_path(), None)
        .expect("the bundle loads (cargo xtask bundle timbreswap --release)");
    host.set_offline(true).unwrap();
    host.activate(48_000.0, 512).unwrap();
    let block: Vec<f32> = (0..512)
        .map(|n| 0.25 * (std::f32::consts::TAU * 233.0 * n as f32 / 48_000.0).sin())
        .collect();
    let input = vec![block.clone(), block];
    let mut rng = Rng::new(3);
    let mut refused = 0;
    for i in 0..300 {
        let seed = &seeds[i % seeds.len()];
        let mutant = fuzz::mutate_state(seed, &mut rng);
        match fuzz::state_target(&mut host, &mutant, &input) {
            Ok(Verdict::Refused) => refused += 1,
            Ok(Verdict::Accepted) => {}
            Err(problem) => panic!("state mutant {i}: {problem}"),
        }
    }
    println!("300 state mutants, {refused} refused outright");
}
