//! The built plugin (`target/bundled/Timbreswap.clap`) in a real CLAP host: activation at common
//! rates, every block size, exact latency, automation, state round trips and broken state, each
//! in Classic and in Neural mode (with the built-in model).
//!
//! Build the bundle first: `cargo xtask bundle timbreswap --release` (`cargo xtask test` does).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use timbreswap_engine::clip::load_reference_clip;
use timbreswap_engine::exemplar::ExemplarBank;
use timbreswap_engine::kernels::Kernels;
use timbreswap_engine::model_file;
use timbreswap_engine::network::Network;
use timbreswap_engine::neural::PhaseMode;
use timbreswap_engine::processor::SwapMode;
use timbreswap_engine::render::{render, RenderOptions};
use timbreswap_engine::timbre::TimbreLatent;
use timbreswap_engine::{clip::DecodedAudio, Slot, StftConfig, TimbreDescriptor};
use timbreswap_tests::bundle_path;
use timbreswap_tests::host::PluginHost;
use timbreswap_tests::state::{raw_field, with_field, with_raw_field, with_timbre, without_field};

fn examples() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/examples"))
}

/// The built-in model (the file the plugin embeds).
fn network() -> Arc<Network> {
    static NET: OnceLock<Arc<Network>> = OnceLock::new();
    NET.get_or_init(|| {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models/default.safetensors");
        let file = model_file::load(&path).expect("the default model");
        Arc::new(Network::new(&file, "default", Kernels::best()).unwrap())
    })
    .clone()
}

/// An example clip's descriptor, with its timbre latent measured with the built-in model (as
/// the plugin's loader does), so Neural mode can use it.
fn reference(name: &str) -> TimbreDescriptor {
    let clip = load_reference_clip(&examples().join(name), &StftConfig::default())
        .expect("example reference");
    let net = network();
    let mut descriptor = clip.descriptor;
    descriptor.latent = Some(TimbreLatent {
        model_id: net.id().to_string(),
        z_t: net.clip_timbre(&clip.samples),
    });
    descriptor
}

/// The Mode parameter's normalised values: Classic, Neural (Exemplar is 1.0; its test is
/// `exemplar_mode_plays_the_clip_once_it_is_analysed`).
const MODES: [(&str, f64); 2] = [("Classic", 0.0), ("Neural", 0.5)];
/// Exemplar's normalised Mode value.
const EXEMPLAR: f64 = 1.0;

fn load_plugin() -> PluginHost {
    let path = bundle_path();
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask bundle timbreswap --release` first",
        path.display()
    );
    PluginHost::load(&path, None).expect("the bundle loads")
}

/// A stereo test signal: a harmonic tone with a swell on the left, a quieter copy on the right.
fn signal(rate: f64, seconds: f64) -> Vec<Vec<f32>> {
    let len = (rate * seconds) as usize;
    let left: Vec<f32> = (0..len)
        .map(|n| {
            let t = n as f64 / rate;
            let swell = 0.6 + 0.4 * (2.0 * std::f64::consts::PI * 1.7 * t).sin();
            let v: f64 = (1..12)
                .map(|h| (2.0 * std::f64::consts::PI * 233.0 * h as f64 * t).sin() / h as f64)
                .sum();
            (0.25 * swell * v) as f32
        })
        .collect();
    let right = left.iter().map(|v| 0.5 * v).collect();
    vec![left, right]
}

fn set_timbres(host: &mut PluginHost, a: Option<&TimbreDescriptor>, b: Option<&TimbreDescriptor>) {
    let state = host.save_state().unwrap();
    let state = with_timbre(&state, Slot::A, a).unwrap();
    let state = with_timbre(&state, Slot::B, b).unwrap();
    host.load_state(&state).unwrap();
}

/// Sets a parameter by its normalised value (0..=1 over its range; for Mode's three choices
/// 0, 0.5 and 1).
fn set(host: &mut PluginHost, name: &str, normalised: f64) {
    let id = host.param_id(name).unwrap();
    host.set_param_normalised(id, normalised).unwrap();
}

fn random_blocks(max: usize, seed: u64) -> Vec<usize> {
    let mut s = seed;
    (0..300)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            1 + (s >> 33) as usize % max
        })
        .collect()
}

/// Activates at 44.1, 48 and 96 kHz and processes every block pattern, zero-frame calls
/// included: finite output, and in offline mode the same output whatever the blocks.
#[test]
fn processes_every_block_size_at_common_rates() {
    let trumpet = reference("ref-trumpet.wav");
    for (rate, (mode, value)) in [44_100.0, 48_000.0, 96_000.0]
        .into_iter()
        .flat_map(|r| MODES.map(|m| (r, m)))
    {
        let mut host = load_plugin();
        set_timbres(&mut host, Some(&trumpet), None);
        set(&mut host, "Mode", value);
        assert!(
            host.set_offline(true).unwrap(),
            "the plugin supports offline rendering"
        );
        host.activate(rate, 4096).unwrap();
        let input = signal(rate, 0.5);
        let reference_out = host.process_signal(&input, &[512]).unwrap();
        assert!(reference_out.iter().flatten().all(|v| v.is_finite()));
        for blocks in [
            vec![1],
            vec![64],
            vec![480],
            vec![4096],
            vec![0, 1, 0, 300, 0, 4096],
            random_blocks(4096, rate as u64),
        ] {
            host.deactivate();
            host.activate(rate, 4096).unwrap();
            let out = host.process_signal(&input, &blocks).unwrap();
            assert!(out.iter().flatten().all(|v| v.is_finite()));
            assert_eq!(
                out,
                reference_out,
                "{mode}, {rate} Hz, blocks {:?}",
                &blocks[..1]
            );
        }
    }
}

/// The latency the plugin reports equals the delay of an impulse, to the sample, on the wet
/// (identity) path and on the dry path, at 44.1, 48 and 96 kHz.
#[test]
fn reported_latency_equals_measured_impulse_delay() {
    for rate in [44_100.0, 48_000.0, 96_000.0] {
        for (mix, (mode, value)) in [1.0, 0.0].into_iter().flat_map(|m| MODES.map(|d| (m, d))) {
            let mut host = load_plugin();
            set(&mut host, "Mix", mix);
            set(&mut host, "Mode", value);
            host.set_offline(true).unwrap();
            host.activate(rate, 512).unwrap();
            let latency = host.latency().unwrap() as usize;
            let at = 2_000;
            let mut x = vec![0.0f32; at + latency + 3_000];
            x[at] = 1.0;
            let out = host.process_signal(&[x.clone(), x], &[512]).unwrap();
            let peak = out[0]
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                .unwrap()
                .0;
            assert_eq!(peak - at, latency, "{mode}, {rate} Hz, mix {mix}");
        }
    }
    // Realtime at 48 kHz with 128-sample blocks: at most 25 ms, in both modes (with a
    // reference, so Neural runs the model).
    let violin = reference("ref-violin.wav");
    for (mode, value) in MODES {
        let mut host = load_plugin();
        set_timbres(&mut host, Some(&violin), None);
        set(&mut host, "Mode", value);
        host.set_offline(false).unwrap();
        host.activate(48_000.0, 128).unwrap();
        let latency = host.latency().unwrap();
        assert!(
            latency as f64 / 48.0 <= 25.0,
            "{mode}: latency {latency} samples"
        );
        let out = host.process_signal(&signal(48_000.0, 1.0), &[128]).unwrap();
        assert!(out.iter().flatten().all(|v| v.is_finite()));
    }
}

/// Automation of Mix inside a block takes effect: once it has settled at 0 % the output is the
/// input delayed by exactly the latency; at 100 % it is the swapped timbre.
#[test]
fn mix_automation_takes_effect() {
    let cello = reference("ref-cello.wav");
    for (mode, value) in MODES {
        let mut host = load_plugin();
        set_timbres(&mut host, Some(&cello), None);
        set(&mut host, "Mode", value);
        host.set_offline(true).unwrap();
        let rate = 48_000.0;
        host.activate(rate, 1024).unwrap();
        let latency = host.latency().unwrap() as usize;
        let mix = host.param_id("Mix").unwrap();
        let input = signal(rate, 1.0);
        let mut out: Vec<Vec<f32>> = vec![Vec::new(), Vec::new()];
        for (i, start) in (0..input[0].len()).step_by(1024).enumerate() {
            let end = (start + 1024).min(input[0].len());
            let block: Vec<Vec<f32>> = input.iter().map(|c| c[start..end].to_vec()).collect();
            // Mix to 0 % at sample 100 of block 10; back to 100 % at block 30.
            let events: Vec<(u32, f64, u32)> = match i {
                10 => vec![(mix, 0.0, 100)],
                30 => vec![(mix, 1.0, 0)],
                _ => vec![],
            };
            let processed = host.process(&block, &events).unwrap();
            for (o, p) in out.iter_mut().zip(processed) {
                o.extend(p);
            }
        }
        assert_eq!(host.param_value(mix).unwrap(), 1.0);
        // Mix applies to the audio that came in with it (as every parameter does), so the
        // output follows one latency later. Settled dry region: blocks 12..29 (smoothing takes
        // 20 ms < 2 blocks), shifted by the latency.
        for n in 12 * 1024 + latency..29 * 1024 + latency {
            assert_eq!(out[0][n], input[0][n - latency], "sample {n}");
            assert_eq!(out[1][n], input[1][n - latency], "sample {n}");
        }
        // Until the audio that came with the change reaches the output, it is still wet.
        let change = 10 * 1024 + 100 + latency;
        let before: f32 = (change - 600..change)
            .map(|n| (out[0][n] - input[0][n - latency]).abs())
            .sum();
        assert!(
            before > 1.0,
            "{mode}: Mix acted before its audio reached the output"
        );
        // Wet region before the change differs clearly from the dry signal.
        let diff: f32 = (4 * 1024..9 * 1024)
            .map(|n| (out[0][n] - input[0][n - latency]).abs())
            .sum();
        assert!(diff > 10.0, "{mode}: wet output equals the dry input");
    }
}

/// Saving the state and loading it into a fresh instance reproduces the output bit for bit.
#[test]
fn state_round_trip_reproduces_output() {
    let (a, b) = (reference("ref-clarinet.wav"), reference("ref-violin.wav"));
    let rate = 44_100.0;
    let input = signal(rate, 0.6);
    for (mode, value) in MODES {
        let mut host = load_plugin();
        set_timbres(&mut host, Some(&a), Some(&b));
        set(&mut host, "Morph", 0.3);
        set(&mut host, "Mix", 0.8);
        set(&mut host, "Mode", value);
        set(&mut host, "Variation", 0.7);
        set(&mut host, "Transpose", 0.6);
        host.set_offline(true).unwrap();
        host.activate(rate, 256).unwrap();
        let first = host.process_signal(&input, &[256]).unwrap();
        let saved = host.save_state().unwrap();
        drop(host);

        let mut restored = load_plugin();
        restored.load_state(&saved).unwrap();
        restored.set_offline(true).unwrap();
        restored.activate(rate, 256).unwrap();
        let second = restored.process_signal(&input, &[256]).unwrap();
        assert_eq!(first, second, "{mode}");
    }
}

/// A broken saved state (malformed JSON in a field, a well-formed but inconsistent timbre, a
/// damaged saved clip) is refused and the previous timbre keeps playing, in every Mode (a
/// damaged clip is read from its file instead).
#[test]
fn broken_state_keeps_previous_timbre() {
    let trumpet = reference("ref-trumpet.wav");
    let rate = 48_000.0;
    let input = signal(rate, 0.4);
    let source = trumpet.source.clone().unwrap();
    let damaged_clip = serde_json::json!({
        "source": source,
        "sample_rate": 32_000,
        "scale": 1.0,
        "pcm": "not base64!",
    })
    .to_string();
    for (mode, value) in MODES.into_iter().chain([("Exemplar", EXEMPLAR)]) {
        let mut host = load_plugin();
        set_timbres(&mut host, Some(&trumpet), None);
        set(&mut host, "Mode", value);
        host.set_offline(true).unwrap();
        host.activate(rate, 512).unwrap();
        let good = host.process_signal(&input, &[512]).unwrap();

        let mut truncated = trumpet.clone();
        truncated.envelope.truncate(10);
        let saved = host.save_state().unwrap();
        for broken in [
            with_raw_field(&saved, Slot::A, "{\"version\": 1, \"name\": ").unwrap(),
            with_timbre(&saved, Slot::A, Some(&truncated)).unwrap(),
            b"this is not a plugin state".to_vec(),
            with_field(&saved, "clip-a", "{\"source\": ").unwrap(),
            with_field(&saved, "clip-a", &damaged_clip).unwrap(),
        ] {
            // Loading may be refused outright; either way nothing crashes and the sound is kept.
            let _ = host.load_state(&broken);
            host.deactivate();
            host.activate(rate, 512).unwrap();
            let out = host.process_signal(&input, &[512]).unwrap();
            assert_eq!(out, good, "{mode}");
        }
    }
}

/// The `timbreswap render` path (the engine's offline render) is bit-identical to the plugin
/// in offline mode, whatever block sizes either uses, in every Mode. In Exemplar mode the
/// plugin reads the clip from the state's file when the bounce starts (the render gets the
/// clip analysed as `timbreswap render --mode exemplar` analyses it): the clip plays from the
/// first block, not the Classic sound a live start plays until the analysis arrives.
#[test]
fn offline_render_matches_plugin_bit_for_bit() {
    let violin = reference("ref-violin.wav");
    let rate = 44_100.0;
    let input = signal(rate, 0.5);
    let cfg = StftConfig::default();
    let clip = load_reference_clip(&examples().join("ref-violin.wav"), &cfg).unwrap();
    let bank = Arc::new(ExemplarBank::new(&cfg, &clip.samples).expect("the clip sounds"));
    let modes = [
        ("Classic", 0.0, SwapMode::Classic),
        ("Neural", 0.5, SwapMode::Neural),
        ("Exemplar", EXEMPLAR, SwapMode::Exemplar),
    ];
    let mut outputs = Vec::new();
    for (mode, value, swap_mode) in modes {
        let rendered = render(
            &DecodedAudio {
                sample_rate: rate as u32,
                channels: input.clone(),
                truncated: false,
            },
            &RenderOptions {
                timbre_a: Some(&violin),
                block: 300,
                mode: swap_mode,
                model: Some(network()),
                latent_a: violin.latent.as_ref().map(|l| l.z_t.as_slice()),
                // The plugin's default Phase.
                phase: PhaseMode::Input,
                exemplars: [
                    (swap_mode == SwapMode::Exemplar).then(|| bank.clone()),
                    None,
                ],
                ..RenderOptions::default()
            },
        )
        .unwrap();
        for blocks in [vec![1024], random_blocks(1024, 7)] {
            let mut host = load_plugin();
            set_timbres(&mut host, Some(&violin), None);
            set(&mut host, "Mode", value);
            host.set_offline(true).unwrap();
            host.activate(rate, 1024).unwrap();
            let latency = host.latency().unwrap() as usize;
            assert_eq!(latency as u32, rendered.latency);
            let padded: Vec<Vec<f32>> = input
                .iter()
                .map(|c| {
                    let mut v = c.clone();
                    v.resize(c.len() + latency, 0.0);
                    v
                })
                .collect();
            let out = host.process_signal(&padded, &blocks).unwrap();
            for (o, r) in out.iter().zip(&rendered.audio.channels) {
                assert_eq!(&o[latency..], &r[..], "{mode}");
            }
        }
        outputs.push(rendered.audio.channels);
    }
    // Each Mode plays its own sound (Exemplar is not Classic's fallback).
    assert_ne!(outputs[2], outputs[0]);
    assert_ne!(outputs[2], outputs[1]);
}

/// A state the host loads while the plugin is active and playing (a preset recall, an undo,
/// an A/B compare) reaches the engine: the output moves from the dry input to the swapped
/// sound and, once the histories have filled, plays what the same state loaded before
/// activation plays.
#[test]
fn state_loaded_while_active_reaches_the_engine() {
    let trumpet = reference("ref-trumpet.wav");
    let rate = 48_000.0;
    let block = 512;
    let input = signal(rate, 4.0);
    let len = input[0].len();
    let switch = 48 * block; // about half a second in
    for (mode, value) in MODES {
        // Loaded before activation: the expected sound.
        let mut expected_host = load_plugin();
        set_timbres(&mut expected_host, Some(&trumpet), None);
        set(&mut expected_host, "Mode", value);
        let with_trumpet = expected_host.save_state().unwrap();
        expected_host.set_offline(true).unwrap();
        expected_host.activate(rate, block as u32).unwrap();
        let expected = expected_host.process_signal(&input, &[block]).unwrap();

        // The same state loaded while playing.
        let mut host = load_plugin();
        set(&mut host, "Mode", value);
        host.set_offline(true).unwrap();
        host.activate(rate, block as u32).unwrap();
        let mut out: Vec<Vec<f32>> = vec![Vec::with_capacity(len); input.len()];
        let mut start = 0;
        while start < len {
            let end = (start + block).min(len);
            if start == switch {
                host.load_state(&with_trumpet).unwrap();
            }
            let chunk: Vec<Vec<f32>> = input.iter().map(|c| c[start..end].to_vec()).collect();
            for (o, c) in out.iter_mut().zip(host.process(&chunk, &[]).unwrap()) {
                o.extend_from_slice(&c);
            }
            if start == switch {
                // The first call after the load asks the instance's loader thread for the
                // hand-over; give it time (offline, the engine does not wait).
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            start = end;
        }
        // Without a reference: what the plugin plays with no state loaded.
        let mut plain_host = load_plugin();
        set(&mut plain_host, "Mode", value);
        plain_host.set_offline(true).unwrap();
        plain_host.activate(rate, block as u32).unwrap();
        let dry = plain_host.process_signal(&input, &[block]).unwrap();
        // Before the load: exactly that.
        for (o, d) in out.iter().zip(&dry) {
            assert_eq!(o[..switch], d[..switch], "{mode}: before the load");
        }
        // The last second: the restored sound, not the dry input.
        let tail = len - rate as usize..len;
        let to_expected = error_db(&out, &expected, tail.clone());
        let expected_to_dry = error_db(&expected, &dry, tail);
        println!(
            "{mode}: after the load, {to_expected:.1} dB from the state loaded before \
             activation (which is {expected_to_dry:.1} dB from the dry input)"
        );
        assert!(
            expected_to_dry > -20.0,
            "{mode}: the trumpet state barely changes the sound"
        );
        assert!(
            to_expected < expected_to_dry - 20.0,
            "{mode}: a state loaded while active did not reach the engine ({to_expected:.1} dB)"
        );
    }
}

/// The energy of `a - b` over the samples `tail` of every channel, relative to `b`'s, in dB.
fn error_db(a: &[Vec<f32>], b: &[Vec<f32>], tail: std::ops::Range<usize>) -> f64 {
    let (mut e, mut s) = (0.0f64, 0.0f64);
    for (a, b) in a.iter().zip(b) {
        for n in tail.clone() {
            e += f64::from(a[n] - b[n]).powi(2);
            s += f64::from(b[n]).powi(2);
        }
    }
    10.0 * (e / s).log10()
}

/// What a Classic instance with no reference plays (the input, delayed by the latency).
fn dry_output(input: &[Vec<f32>], rate: f64, block: usize) -> Vec<Vec<f32>> {
    let mut host = load_plugin();
    set(&mut host, "Mode", MODES[0].1);
    host.set_offline(true).unwrap();
    host.activate(rate, block as u32).unwrap();
    host.process_signal(input, &[block]).unwrap()
}

/// Closing one instance while its loader still has work queued (states recalled in a row, each
/// reading a clip) leaves the other instances in the process working: a state recalled in
/// another instance afterwards still reaches its engine, and closing that one is clean.
/// (nice-plug's shared background thread ended at the first task of a closed instance; the
/// others then lost every task and the last one aborted the host in `destroy`.)
#[test]
fn closing_an_instance_with_queued_work_leaves_the_others_working() {
    let trumpet = reference("ref-trumpet.wav");
    let violin = reference("ref-violin.wav");
    let rate = 48_000.0;
    let block = 512;
    let input = signal(rate, 2.0);
    let len = input[0].len();
    let chunk = |start: usize| -> Vec<Vec<f32>> {
        input
            .iter()
            .map(|c| c[start..(start + block).min(len)].to_vec())
            .collect()
    };
    // The state the surviving instance recalls while playing, and what it sounds like when
    // loaded before activation (Classic: its sound does not depend on when the state came).
    let mut expected_host = load_plugin();
    set(&mut expected_host, "Mode", MODES[0].1);
    set_timbres(&mut expected_host, Some(&trumpet), None);
    let with_trumpet = expected_host.save_state().unwrap();
    expected_host.set_offline(true).unwrap();
    expected_host.activate(rate, block as u32).unwrap();
    let expected = expected_host.process_signal(&input, &[block]).unwrap();
    drop(expected_host);

    let mut survivor = load_plugin();
    set(&mut survivor, "Mode", MODES[0].1);
    survivor.set_offline(true).unwrap();
    survivor.activate(rate, block as u32).unwrap();

    // The instance that closes: five recalls of Exemplar states, each needing its clip read
    // and analysed, asked for in a row and closed at once.
    let mut closing = load_plugin();
    set(&mut closing, "Mode", EXEMPLAR);
    let states: Vec<Vec<u8>> = [&violin, &trumpet]
        .iter()
        .map(|d| {
            set_timbres(&mut closing, Some(d), None);
            closing.save_state().unwrap()
        })
        .collect();
    closing.set_offline(true).unwrap();
    closing.activate(rate, block as u32).unwrap();
    for i in 0..5 {
        closing.load_state(&states[i % 2]).unwrap();
        closing.process(&chunk(0), &[]).unwrap();
    }
    drop(closing);

    // The survivor recalls a state while playing; it reaches the engine.
    let mut out: Vec<Vec<f32>> = vec![Vec::with_capacity(len); input.len()];
    let mut start = 0;
    while start < len {
        if start == 8 * block {
            survivor.load_state(&with_trumpet).unwrap();
        }
        for (o, c) in out
            .iter_mut()
            .zip(survivor.process(&chunk(start), &[]).unwrap())
        {
            o.extend_from_slice(&c);
        }
        if start == 8 * block {
            std::thread::sleep(std::time::Duration::from_millis(1_000));
        }
        start += block;
    }
    drop(survivor);
    let tail = len - rate as usize / 2..len;
    // How far the trumpet state is from the input (the dry signal, delayed like the output).
    let to_expected = error_db(&out, &expected, tail.clone());
    let expected_to_dry = error_db(&expected, &dry_output(&input, rate, block), tail);
    assert!(
        to_expected < expected_to_dry - 20.0,
        "the recalled state did not reach the surviving instance ({to_expected:.1} dB from it, \
         the dry input {expected_to_dry:.1} dB)"
    );
}

/// A project saved with another model: the reference's latent does not fit the built-in
/// model, so after activation the plugin measures the clip again off the host's threads and
/// Neural plays with the new latent (the same sound as a latent measured with this model), and
/// the next save records it.
#[test]
fn a_state_from_another_model_is_measured_again_after_activation() {
    let trumpet = reference("ref-trumpet.wav");
    assert!(trumpet.source.is_some(), "the descriptor names its file");
    let mut stale = trumpet.clone();
    let latent = stale.latent.as_mut().unwrap();
    latent.model_id = "a model this plugin does not have".into();
    latent.z_t.iter_mut().for_each(|z| *z = 3.0);
    let rate = 48_000.0;
    let block = 512;
    let input = signal(rate, 3.0);
    let play = |descriptor: &TimbreDescriptor, wait: bool| {
        let mut host = load_plugin();
        set_timbres(&mut host, Some(descriptor), None);
        set(&mut host, "Mode", MODES[1].1);
        host.set_offline(true).unwrap();
        host.activate(rate, block as u32).unwrap();
        let first: Vec<Vec<f32>> = input.iter().map(|c| c[..block].to_vec()).collect();
        let mut out = host.process(&first, &[]).unwrap();
        if wait {
            // The background task has measured the clip once the saved state holds its new
            // latent (it also analyses the clip for Exemplar mode, which takes longer on a
            // busy machine than any fixed wait would allow for).
            let started = std::time::Instant::now();
            while started.elapsed() < std::time::Duration::from_secs(30) {
                let saved = host.save_state().unwrap();
                let latent = timbreswap_tests::state::timbre(&saved, Slot::A)
                    .ok()
                    .flatten()
                    .and_then(|d| d.latent);
                if latent.is_some_and(|l| l.model_id != "a model this plugin does not have") {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let rest: Vec<Vec<f32>> = input.iter().map(|c| c[block..].to_vec()).collect();
        for (o, r) in out
            .iter_mut()
            .zip(host.process_signal(&rest, &[block]).unwrap())
        {
            o.extend_from_slice(&r);
        }
        (out, host.save_state().unwrap())
    };
    let (expected, _) = play(&trumpet, false);
    let (measured, saved) = play(&stale, true);
    let tail = input[0].len() - rate as usize..input[0].len();
    let (mut e, mut s) = (0.0f64, 0.0f64);
    for (a, b) in measured.iter().zip(&expected) {
        for n in tail.clone() {
            e += f64::from(a[n] - b[n]).powi(2);
            s += f64::from(b[n]).powi(2);
        }
    }
    let error_db = 10.0 * (e / s).log10();
    println!("last second: {error_db:.1} dB from the freshly measured reference");
    assert!(
        error_db < -40.0,
        "Neural did not play the measured latent ({error_db:.1} dB)"
    );
    let restored = timbreswap_tests::state::timbre(&saved, Slot::A)
        .unwrap()
        .expect("slot A is saved");
    assert_eq!(restored.latent, trumpet.latent, "the new latent is saved");
}

/// Exemplar mode through the bundle: a state naming a clip, recalled while the plugin plays
/// (a preset recall, an undo), is analysed in the background, and then the clip plays: the
/// output moves far from Classic's, keeps the input's level, and stays finite. (A state
/// loaded before an offline bounce is analysed at activation instead:
/// `offline_render_matches_plugin_bit_for_bit`.)
#[test]
fn exemplar_mode_plays_the_clip_once_it_is_analysed() {
    let violin = reference("ref-violin.wav");
    let rate = 48_000.0;
    let block = 512;
    let input = signal(rate, 3.0);
    let play = |mode: f64| {
        let mut host = load_plugin();
        set(&mut host, "Mode", mode);
        set_timbres(&mut host, Some(&violin), None);
        let with_violin = host.save_state().unwrap();
        set_timbres(&mut host, None, None);
        host.set_offline(true).unwrap();
        host.activate(rate, block as u32).unwrap();
        let first: Vec<Vec<f32>> = input.iter().map(|c| c[..block].to_vec()).collect();
        let mut out = host.process(&first, &[]).unwrap();
        host.load_state(&with_violin).unwrap();
        let second: Vec<Vec<f32>> = input.iter().map(|c| c[block..2 * block].to_vec()).collect();
        for (o, r) in out.iter_mut().zip(host.process(&second, &[]).unwrap()) {
            o.extend_from_slice(&r);
        }
        // The call after the load scheduled the hand-over; the clip is read and analysed on the
        // instance's loader thread (about 0.1 s on an idle machine; the wait leaves room for a
        // busy one).
        std::thread::sleep(std::time::Duration::from_millis(3_000));
        let rest: Vec<Vec<f32>> = input.iter().map(|c| c[2 * block..].to_vec()).collect();
        for (o, r) in out
            .iter_mut()
            .zip(host.process_signal(&rest, &[block]).unwrap())
        {
            o.extend_from_slice(&r);
        }
        out
    };
    let classic = play(MODES[0].1);
    let exemplar = play(EXEMPLAR);
    assert!(exemplar.iter().flatten().all(|v| v.is_finite()));
    let tail = input[0].len() - rate as usize..input[0].len();
    let energy = |x: &[Vec<f32>]| -> f64 {
        x.iter()
            .flat_map(|c| c[tail.clone()].iter())
            .map(|v| f64::from(*v).powi(2))
            .sum()
    };
    let difference: f64 = exemplar
        .iter()
        .zip(&classic)
        .flat_map(|(a, b)| a[tail.clone()].iter().zip(&b[tail.clone()]))
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum();
    let apart_db = 10.0 * (difference / energy(&classic)).log10();
    assert!(
        apart_db > -6.0,
        "Exemplar sounds like Classic ({apart_db:.1} dB apart)"
    );
    let level_db = 10.0 * (energy(&exemplar) / energy(&classic)).log10();
    assert!(
        level_db.abs() < 3.0,
        "Exemplar is {level_db:.1} dB from Classic's level"
    );
}

/// A project opened where the reference's file is not (another machine, a moved folder): the
/// clip saved with the project plays in Exemplar mode, bit for bit as it did with the file
/// (the example is 16-bit, which the saved clip keeps exactly). A project saved before clips
/// were kept plays Classic there instead, which the comparison can tell apart.
#[test]
fn a_saved_clip_plays_without_its_file() {
    let dir = std::env::temp_dir().join(format!("timbreswap-host-clip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("violin.wav");
    std::fs::copy(examples().join("ref-violin.wav"), &file).unwrap();
    let net = network();
    let clip = load_reference_clip(&file, &StftConfig::default()).unwrap();
    let mut violin = clip.descriptor;
    violin.latent = Some(TimbreLatent {
        model_id: net.id().to_string(),
        z_t: net.clip_timbre(&clip.samples),
    });
    let rate = 48_000.0;
    let input = signal(rate, 1.0);
    let play = |state: Option<&[u8]>| {
        let mut host = load_plugin();
        match state {
            Some(state) => host.load_state(state).unwrap(),
            None => {
                set(&mut host, "Mode", EXEMPLAR);
                set_timbres(&mut host, Some(&violin), None);
            }
        }
        host.set_offline(true).unwrap();
        host.activate(rate, 512).unwrap();
        let out = host.process_signal(&input, &[512]).unwrap();
        (out, host.save_state().unwrap())
    };
    let (with_file, saved) = play(None);
    assert!(
        raw_field(&saved, "clip-a")
            .unwrap()
            .is_some_and(|c| c != "null"),
        "the clip is saved with the project"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let (without_file, _) = play(Some(&saved));
    assert_eq!(without_file, with_file);
    let (old_project, _) = play(Some(&without_field(&saved, "clip-a").unwrap()));
    assert!(old_project.iter().flatten().all(|v| v.is_finite()));
    assert_ne!(
        old_project, with_file,
        "without its clip or file, Exemplar plays Classic"
    );
}

/// With no reference loaded the plugin passes the track through: each channel untouched (a
/// left-only signal stays left-only at full level) and the full band (noise up to Nyquist), bit
/// for bit the input delayed by the reported latency, in both modes and at 44.1, 48 and 96 kHz.
#[test]
fn no_reference_passes_the_track_through() {
    for rate in [44_100.0, 48_000.0, 96_000.0] {
        let mut input = signal(rate, 0.5);
        let mut seed = 0x2545_f491u32;
        for v in input[1].iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            *v = 0.2 * (seed as f32 / u32::MAX as f32 - 0.5);
        }
        let left_only = vec![input[0].clone(), vec![0.0; input[0].len()]];
        for (mode, value) in MODES {
            for x in [&input, &left_only] {
                let mut host = load_plugin();
                set(&mut host, "Mode", value);
                host.set_offline(true).unwrap();
                host.activate(rate, 512).unwrap();
                let latency = host.latency().unwrap() as usize;
                let y = host.process_signal(x, &[512, 64, 333]).unwrap();
                for (ch, (y, x)) in y.iter().zip(x.iter()).enumerate() {
                    assert!(y[..latency].iter().all(|v| *v == 0.0), "{mode} {rate}");
                    assert_eq!(
                        &y[latency..],
                        &x[..x.len() - latency],
                        "{mode} {rate} Hz channel {ch}"
                    );
                }
            }
        }
    }
}

/// Hostile audio through the CLAP bundle, in Classic and Neural with a reference (realtime and
/// offline): digital silence gives exact zeros; DC steps, finite bursts of 1e15 and 1e30, NaN,
/// infinities and denormals give finite output never above `WET_PEAK_LIMIT` times the input's
/// finite peak (Output at 0 dB); after a burst the tone comes back at a clean run's level.
#[test]
fn hostile_audio_through_the_bundle_gives_safe_output() {
    use timbreswap_engine::engine::WET_PEAK_LIMIT;
    let rate = 48_000.0;
    let n = 48_000;
    let tone = |i: usize| 0.3 * (std::f32::consts::TAU * 330.0 * i as f32 / 48_000.0).sin();
    let clean: Vec<f32> = (0..n).map(tone).collect();
    let with = |f: &dyn Fn(usize, f32) -> f32| -> Vec<f32> {
        clean.iter().enumerate().map(|(i, v)| f(i, *v)).collect()
    };
    let burst = |value: f32| {
        move |i: usize, v: f32| {
            if (12_000..12_480).contains(&i) {
                if i.is_multiple_of(2) {
                    value
                } else {
                    -value
                }
            } else {
                v
            }
        }
    };
    let inputs: Vec<(&str, Vec<f32>, bool)> = vec![
        (
            "sine then DC 1.0",
            with(&|i, v| if i < n / 2 { v } else { 1.0 }),
            false,
        ),
        ("burst 1e15", with(&burst(1e15)), true),
        ("burst 1e30", with(&burst(1e30)), true),
        (
            "NaN, Inf and denormals",
            with(&|i, v| {
                if (10_000..11_000).contains(&i) {
                    [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-39][i % 4]
                } else {
                    v
                }
            }),
            true,
        ),
        (
            "denormals",
            (0..n).map(|i| [1e-39, -1e-40][i % 2]).collect(),
            false,
        ),
    ];
    let violin = reference("ref-violin.wav");
    let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
    for offline in [true, false] {
        for (mode, value) in MODES {
            let fresh = || {
                let mut host = load_plugin();
                set_timbres(&mut host, Some(&violin), None);
                set(&mut host, "Mode", value);
                host.set_offline(offline).unwrap();
                host.activate(rate, 256).unwrap();
                host.latency().unwrap();
                host
            };
            let what = |name: &str| format!("{mode}, offline {offline}, {name}");
            let y = fresh()
                .process_signal(&[vec![0.0; n], vec![0.0; n]], &[256])
                .unwrap();
            assert!(y.iter().flatten().all(|v| *v == 0.0), "{}", what("silence"));
            let reference_out = fresh()
                .process_signal(&[clean.clone(), clean.clone()], &[256])
                .unwrap();
            let tail = n - 12_000..n;
            for (name, x, recovers) in &inputs {
                let y = fresh()
                    .process_signal(&[x.clone(), x.clone()], &[256])
                    .unwrap();
                let peak_in = x
                    .iter()
                    .filter(|v| v.is_finite())
                    .fold(0.0f32, |m, v| m.max(v.abs()));
                assert!(y.iter().flatten().all(|v| v.is_finite()), "{}", what(name));
                let peak_out = y.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
                assert!(
                    peak_out <= WET_PEAK_LIMIT * peak_in * 1.0001,
                    "{}: peak {peak_out} from an input peak of {peak_in}",
                    what(name)
                );
                if *recovers && offline {
                    // (Realtime runs back to back here, so a late frame may play dry: the
                    // level comparison is made offline, where every frame is processed.)
                    let (got, want) = (
                        rms(&y[0][tail.clone()]),
                        rms(&reference_out[0][tail.clone()]),
                    );
                    let db = 20.0 * (got / want).log10();
                    assert!(
                        db.abs() < 3.0,
                        "{}: {db:.1} dB from a clean run",
                        what(name)
                    );
                }
            }
        }
    }
}

/// The latency an engine of the given settings reports, built directly (the plugin's figure is
/// checked against it).
fn engine_latency(rate: f64, max_block: usize) -> u32 {
    engine_latency_for(rate, max_block, None)
}

/// The latency of an engine built directly with `latency_block`.
fn engine_latency_for(rate: f64, max_block: usize, latency_block: Option<usize>) -> u32 {
    engine_latency_in(rate, max_block, latency_block, Default::default())
}

/// The latency of an engine built directly with `latency_block`, in `latency_mode`.
fn engine_latency_in(
    rate: f64,
    max_block: usize,
    latency_block: Option<usize>,
    latency_mode: timbreswap_engine::LatencyMode,
) -> u32 {
    let settings = timbreswap_engine::EngineSettings {
        host_rate: rate,
        max_block,
        channels: 2,
        mode: timbreswap_engine::ProcessingMode::Realtime,
        stft: StftConfig::default(),
        worker_priority: timbreswap_engine::WorkerPriority::Normal,
        latency_mode,
        latency_block,
    };
    let stats = Arc::new(timbreswap_engine::EngineStats::default());
    let (engine, _control) = timbreswap_engine::Engine::new(settings, stats, None, None).unwrap();
    engine.latency_samples()
}

/// The output equals the input delayed by exactly `latency` samples, on every channel.
fn assert_delayed(y: &[Vec<f32>], x: &[Vec<f32>], latency: usize, what: &str) {
    for (y, x) in y.iter().zip(x) {
        assert!(y[..latency].iter().all(|v| *v == 0.0), "{what}");
        assert_eq!(&y[latency..], &x[..x.len() - latency], "{what}");
    }
}

/// The latency follows the blocks the host really passes, not the maximum it declares. Before
/// any call it is built for the declared maximum (most hosts play what they declare); a host
/// that declares 4 096 at 48 kHz and plays 128-sample blocks gets, after a quarter of a second,
/// one restart request, and then the latency of a 128-sample engine (it kept 4 946 samples,
/// 103 ms, before). When the blocks grow past what the latency covers, one more restart, and
/// the latency of an engine built for the new block. An offline bounce's blocks do not count.
/// Realtime mode, through the CLAP bundle.
#[test]
fn latency_follows_the_blocks_the_host_really_uses() {
    let rate = 48_000.0;
    let mut host = load_plugin();
    host.set_offline(false).unwrap();
    host.activate(rate, 4_096).unwrap();
    assert_eq!(
        host.latency().unwrap(),
        engine_latency(rate, 4_096),
        "before any call"
    );
    // 128-sample calls: a restart is asked for, after which the latency is a 128-sample
    // engine's.
    let x = signal(rate, 1.0);
    host.process_signal(&x, &[128]).unwrap();
    assert!(
        host.restart_requested(),
        "no restart asked for to lower the latency"
    );
    let small = host.latency().unwrap();
    assert_eq!(small, engine_latency(rate, 128));
    assert!(small as f64 / 48.0 <= 25.0, "{small} samples");
    // Calls up to one hop (240 samples): no restart, same latency, and with no reference the
    // input comes out delayed by exactly that.
    let y = host.process_signal(&x, &[128, 240, 64]).unwrap();
    assert!(
        !host.restart_requested(),
        "restart asked for with 64..240-sample calls"
    );
    assert_eq!(host.latency().unwrap(), small);
    assert_delayed(&y, &x, small as usize, "128-sample calls");
    // A 1 024-sample call: a restart is asked for at once; after it the latency is a
    // 1 024-sample engine's, and it holds.
    host.process(&[vec![0.0; 1_024], vec![0.0; 1_024]], &[])
        .unwrap();
    assert!(
        host.restart_requested(),
        "no restart asked for after a 1024-sample call"
    );
    let grown = host.latency().unwrap();
    assert!(!host.restart_requested());
    assert_eq!(grown, engine_latency(rate, 1_024));
    assert!(grown > small);
    let y = host.process_signal(&x, &[1_024, 128]).unwrap();
    assert!(!host.restart_requested(), "restart asked for again");
    assert_delayed(&y, &x, grown as usize, "after the restart");
    // A new activation with a smaller declared maximum (the user picked a smaller buffer) is
    // built for that maximum.
    host.activate(rate, 256).unwrap();
    assert_eq!(host.latency().unwrap(), engine_latency(rate, 256));
    // Offline, every block is covered: no restart; and the bounce's 4 096-sample blocks do
    // not raise the next live playback's latency.
    host.deactivate();
    host.set_offline(true).unwrap();
    host.activate(rate, 4_096).unwrap();
    let offline = host.latency().unwrap();
    host.process_signal(&x, &[4_096]).unwrap();
    assert!(!host.restart_requested(), "offline: restart asked for");
    assert_eq!(host.latency().unwrap(), offline);
    host.deactivate();
    host.set_offline(false).unwrap();
    host.activate(rate, 4_096).unwrap();
    assert_eq!(host.latency().unwrap(), grown, "after an offline bounce");
}

/// The Latency setting, through the CLAP bundle at 48 kHz with 64-sample blocks: Low asks the
/// host for a restart, after which the plugin reports the low-latency engine's latency (at
/// most 10 ms) and, with no reference, the input comes out delayed by exactly that; with a
/// reference it plays, finite and non-silent; Normal brings the normal latency back the same
/// way. The setting is part of the saved state.
#[test]
fn the_latency_setting_restarts_the_plugin_with_its_latency() {
    use timbreswap_engine::LatencyMode;
    let rate = 48_000.0;
    let mut host = load_plugin();
    host.set_offline(false).unwrap();
    host.activate(rate, 64).unwrap();
    let normal = host.latency().unwrap();
    assert_eq!(
        normal,
        engine_latency_in(rate, 64, None, LatencyMode::Normal)
    );
    let x = signal(rate, 0.5);
    host.process_signal(&x, &[64]).unwrap();
    assert!(
        !host.restart_requested(),
        "restart asked for without a change"
    );
    set(&mut host, "Latency", 1.0);
    host.process(&[vec![0.0; 64], vec![0.0; 64]], &[]).unwrap();
    assert!(
        host.restart_requested(),
        "no restart asked for by Latency = Low"
    );
    let low = host.latency().unwrap();
    assert_eq!(low, engine_latency_in(rate, 64, None, LatencyMode::Low));
    assert!(low as f64 / rate <= 0.010, "{low} samples");
    assert!(low < normal);
    let y = host.process_signal(&x, &[64, 17, 64]).unwrap();
    assert!(!host.restart_requested(), "restart asked for again");
    assert_delayed(&y, &x, low as usize, "low latency, no reference");
    // The setting is saved and restored with the state.
    let state = host.save_state().unwrap();
    set_timbres(&mut host, Some(&reference("ref-trumpet.wav")), None);
    let y = host.process_signal(&x, &[64]).unwrap();
    assert!(y.iter().flatten().all(|v| v.is_finite()));
    assert!(
        y.iter().flatten().any(|v| v.abs() > 1e-3),
        "the reference did not play"
    );
    set(&mut host, "Latency", 0.0);
    host.process_signal(&x, &[64]).unwrap();
    assert_eq!(host.latency().unwrap(), normal, "back to Normal");
    host.load_state(&state).unwrap();
    host.process_signal(&x, &[64]).unwrap();
    assert_eq!(host.latency().unwrap(), low, "the saved state's Low");
}

/// A host that calls in bursts (8 blocks of 128 samples back to back, then a wait until their
/// audio is due, as anticipative processing does) gets a restart request once the bursts have
/// come 16 times in a row, and after the restart the latency of an engine built for the whole
/// burst, beyond the declared maximum block; a host that waits a period between calls never
/// gets one. Realtime mode, through the CLAP bundle.
#[test]
fn bursts_of_calls_are_met_with_a_latency_that_covers_them() {
    use std::time::Duration;
    let rate = 48_000.0;
    let block = vec![vec![0.1f32; 128]; 2];
    let mut host = load_plugin();
    host.set_offline(false).unwrap();
    host.activate(rate, 128).unwrap();
    let one_block = host.latency().unwrap();
    assert_eq!(one_block, engine_latency(rate, 128));
    // Paced: one call per period.
    for _ in 0..40 {
        host.process(&block, &[]).unwrap();
        std::thread::sleep(Duration::from_micros(2_667));
    }
    assert!(
        !host.restart_requested(),
        "restart asked for by a paced host"
    );
    // Bursts of eight calls, each followed by the wait until its audio is due.
    let mut bursts = 0;
    while !host.restart_requested() {
        assert!(bursts < 40, "no restart asked for after {bursts} bursts");
        for _ in 0..8 {
            host.process(&block, &[]).unwrap();
        }
        std::thread::sleep(Duration::from_millis(21));
        bursts += 1;
    }
    assert!(bursts > 16, "asked for after {bursts} bursts");
    let covered = host.latency().unwrap();
    assert_eq!(covered, engine_latency_for(rate, 128, Some(8 * 128)));
    assert!(covered > one_block);
}

/// Activation succeeds at every rate a host or validator may ask for (1 kHz to 2 MHz,
/// fractional ones included) and every maximum block (1 to 65 536). Inside the engine's range
/// the plugin runs with its latency; outside it the audio passes through untouched and the
/// reported latency is what it is, 0. Either way the output is the input delayed by exactly
/// the reported latency when there is no reference.
#[test]
fn activation_succeeds_at_any_rate_and_block() {
    for (rate, max_block) in [
        (1_000.0, 64),
        (1_234.567_8, 1),
        (7_999.0, 512),
        (8_000.0, 65_536),
        (22_050.0, 1),
        (44_100.0, 65_536),
        (88_200.0, 333),
        (384_000.0, 4_096),
        (768_000.0, 512),
        (1_234_567.8, 2_048),
        (2_000_000.0, 64),
    ] {
        let mut host = load_plugin();
        host.set_offline(true).unwrap();
        host.activate(rate, max_block)
            .unwrap_or_else(|e| panic!("{rate} Hz / {max_block}: {e}"));
        let latency = host.latency().unwrap() as usize;
        let inside = (8_000.0..=384_000.0).contains(&rate);
        assert_eq!(latency == 0, !inside, "{rate} Hz: latency {latency}");
        let len = (latency + 4_000).max(6_000);
        let x: Vec<Vec<f32>> = signal(rate.max(8_000.0), len as f64 / rate.max(8_000.0))
            .into_iter()
            .map(|mut c| {
                c.resize(len, 0.0);
                c
            })
            .collect();
        let block = (max_block as usize).min(700);
        let y = host.process_signal(&x, &[block]).unwrap();
        for (y, x) in y.iter().zip(&x) {
            assert!(y[..latency].iter().all(|v| *v == 0.0), "{rate} Hz");
            assert_eq!(
                &y[latency..],
                &x[..len - latency],
                "{rate} Hz / {max_block}"
            );
        }
    }
}
