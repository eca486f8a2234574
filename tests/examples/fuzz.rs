//! Runs one fuzz target for a while and reports what it saw:
//!
//! `cargo run --release -p timbreswap-tests --example fuzz -- clips|models|states SECONDS [SEED]`
//!
//! `... --example fuzz -- seeds` writes the state corpus (`tests/fuzz/states/`): the plugin's
//! own saved state, with references, in each mode. The `states` target needs the bundle
//! (`cargo xtask bundle timbreswap --release`). A failing input is saved as
//! `target/fuzz-failure.bin` and the run stops with its iteration.

use std::time::{Duration, Instant};

use timbreswap_engine::clip::load_reference_clip;
use timbreswap_engine::kernels::Kernels;
use timbreswap_engine::model_file;
use timbreswap_engine::network::Network;
use timbreswap_engine::timbre::TimbreLatent;
use timbreswap_engine::{Slot, StftConfig, TimbreDescriptor};
use timbreswap_tests::fuzz::{self, Rng, Verdict};
use timbreswap_tests::host::PluginHost;
use timbreswap_tests::state::with_timbre;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let target = args.first().map(String::as_str).unwrap_or("");
    if target == "seeds" {
        write_seeds();
        return;
    }
    let seconds: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(60.0);
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut rng = Rng::new(seed);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let (mut runs, mut accepted, mut slowest) = (0usize, 0usize, Duration::ZERO);
    let mut check = |i: usize, input: &[u8], result: Result<Verdict, String>, took: Duration| {
        slowest = slowest.max(took);
        match result {
            Ok(Verdict::Accepted) => accepted += 1,
            Ok(Verdict::Refused) => {}
            Err(problem) => {
                let _ = std::fs::write(fuzz::root().join("target/fuzz-failure.bin"), input);
                panic!("{target} input {i} (seed {seed}): {problem}");
            }
        }
    };
    match target {
        "clips" => {
            let seeds = fuzz::clip_seeds();
            let dir = std::env::temp_dir().join(format!("timbreswap-fuzz-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            while Instant::now() < deadline {
                let (ext, s) = &seeds[runs % seeds.len()];
                let input = fuzz::mutate(s, &mut rng);
                let t = Instant::now();
                let r = fuzz::clip_target(&input, &dir.join(format!("mutant.{ext}")));
                check(runs, &input, r, t.elapsed());
                runs += 1;
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        "models" => {
            let s = std::fs::read(fuzz::root().join("assets/models/default.safetensors")).unwrap();
            let audio: Vec<f32> = (0..8_000)
                .map(|n| 0.3 * (std::f32::consts::TAU * 220.0 * n as f32 / 32_000.0).sin())
                .collect();
            while Instant::now() < deadline {
                let input = fuzz::mutate(&s, &mut rng);
                let t = Instant::now();
                let r = fuzz::model_target(&input, &audio);
                check(runs, &input, r, t.elapsed());
                runs += 1;
            }
        }
        "states" => {
            let seeds = fuzz::state_seeds();
            assert!(
                !seeds.is_empty(),
                "no state corpus: run `... --example fuzz -- seeds`"
            );
            let mut host = PluginHost::load(&timbreswap_tests::bundle_path(), None).unwrap();
            host.set_offline(true).unwrap();
            host.activate(48_000.0, 512).unwrap();
            let block: Vec<f32> = (0..512)
                .map(|n| 0.25 * (std::f32::consts::TAU * 233.0 * n as f32 / 48_000.0).sin())
                .collect();
            let audio = vec![block.clone(), block];
            while Instant::now() < deadline {
                let input = fuzz::mutate_state(&seeds[runs % seeds.len()], &mut rng);
                let t = Instant::now();
                let r = fuzz::state_target(&mut host, &input, &audio);
                check(runs, &input, r, t.elapsed());
                runs += 1;
            }
        }
        _ => {
            eprintln!("usage: fuzz clips|models|states SECONDS [SEED] | fuzz seeds");
            std::process::exit(2);
        }
    }
    println!(
        "{target}: {runs} inputs in {seconds:.0} s (seed {seed}), {accepted} accepted, the rest \
         refused with a typed error; no panic, no non-finite output; slowest input {:.1} ms",
        slowest.as_secs_f64() * 1e3
    );
}

/// The state corpus: the plugin's saved state as it is, and with references in each mode.
fn write_seeds() {
    let root = fuzz::root();
    let file = model_file::load(&root.join("assets/models/default.safetensors")).unwrap();
    let net = Network::new(&file, "default", Kernels::best()).unwrap();
    let reference = |name: &str| -> TimbreDescriptor {
        let clip = load_reference_clip(
            &root.join("assets/examples").join(name),
            &StftConfig::default(),
        )
        .unwrap();
        let mut d = clip.descriptor;
        d.latent = Some(TimbreLatent {
            model_id: net.id().to_string(),
            z_t: net.clip_timbre(&clip.samples),
        });
        d
    };
    let mut host = PluginHost::load(&timbreswap_tests::bundle_path(), None).unwrap();
    let plain = host.save_state().unwrap();
    let one = with_timbre(&plain, Slot::A, Some(&reference("ref-trumpet.wav"))).unwrap();
    let two = with_timbre(&one, Slot::B, Some(&reference("ref-cello.wav"))).unwrap();
    host.load_state(&two).unwrap();
    for (name, normalised) in [("Mode", 0.5), ("Morph", 0.4), ("Mix", 0.8)] {
        let id = host.param_id(name).unwrap();
        host.set_param_normalised(id, normalised).unwrap();
    }
    let neural = host.save_state().unwrap();
    let dir = root.join("tests/fuzz/states");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in [
        ("plain", plain),
        ("classic-trumpet", one),
        ("neural-trumpet-cello", neural),
    ] {
        std::fs::write(dir.join(format!("{name}.state")), bytes).unwrap();
    }
    println!("wrote 3 states into {}", dir.display());
}
