//! The neural mode in the engine, with the shipped default model: loading refuses bad files,
//! the per-frame step and `Engine::process` never allocate (with model and timbre swaps in
//! flight), the latency does not depend on Mode, output is independent of block sizes, and the
//! swap moves the input's spectrum towards the reference's.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nice_assert_no_alloc::{assert_no_alloc, violation_count, AllocDisabler};
use rtrb::RingBuffer;
use timbreswap_engine::exemplar::ExemplarBank;
use timbreswap_engine::kernels::Kernels;
use timbreswap_engine::model_file::{self, ModelFileError};
use timbreswap_engine::network::Network;
use timbreswap_engine::neural::PhaseMode;
use timbreswap_engine::processor::{FrameParams, FrameProcessor, SwapMode};
use timbreswap_engine::{
    BlockParams, ControlError, Engine, EngineSettings, EngineStats, LatencyMode, ProcessingMode,
    Slot, StftConfig,
};

#[global_allocator]
static ALLOC: AllocDisabler = AllocDisabler;

/// Both latency modes.
const LATENCIES: [LatencyMode; 2] = [LatencyMode::Normal, LatencyMode::Low];

fn asset(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn network() -> Arc<Network> {
    let file = model_file::load(&asset("assets/models/default.safetensors")).unwrap();
    Arc::new(Network::new(&file, "default", Kernels::best()).unwrap())
}

fn clip(name: &str) -> Vec<f32> {
    let audio =
        timbreswap_engine::clip::decode_file(&asset(&format!("assets/examples/{name}")), 60.0)
            .unwrap();
    audio.mono()
}

fn settings(rate: f64, max_block: usize, mode: ProcessingMode) -> EngineSettings {
    EngineSettings {
        host_rate: rate,
        max_block,
        channels: 1,
        mode,
        stft: StftConfig::default(),
        worker_priority: Default::default(),
        latency_mode: Default::default(),
        latency_block: None,
    }
}

/// Runs `x` through `engine` in blocks cycling through `blocks`, with constant controls.
fn run(engine: &mut Engine, x: &[f32], blocks: &[usize], p: FrameParams) -> Vec<f32> {
    let max = engine.settings().max_block;
    let (mix, gain) = (vec![1.0; max], vec![1.0; max]);
    let (morph, variation, transpose) = (
        vec![p.morph; max],
        vec![p.variation; max],
        vec![p.transpose; max],
    );
    let params = BlockParams {
        mix: &mix,
        gain: &gain,
        morph: &morph,
        variation: &variation,
        transpose: &transpose,
        mode: p.mode,
        phase: p.phase,
        map_x: &[],
        map_y: &[],
        map_amount: &[],
        decay: &[],
    };
    let mut out = x.to_vec();
    let mut start = 0;
    let mut i = 0;
    while start < out.len() {
        let end = (start + blocks[i % blocks.len()].min(max)).min(out.len());
        engine.process(&mut [&mut out[start..end]], &params);
        start = end;
        i += 1;
    }
    out
}

/// A fresh engine for `s` with the model loaded and `z` as slot A's latent.
fn engine_with(
    net: &Arc<Network>,
    s: EngineSettings,
    z: Option<&[f32]>,
) -> (Engine, timbreswap_engine::EngineControl) {
    let (e, mut control) = Engine::new(s, Arc::new(EngineStats::default()), None, None).unwrap();
    control.set_model(Some(net.clone()), z, None).unwrap();
    (e, control)
}

/// A fresh offline engine at `rate`, built for `latency`, with the trumpet example in slot A
/// for every mode: Classic's descriptor, Neural's latent and Exemplar's analysis of the same
/// clip.
fn trumpet_in_every_mode(
    net: &Arc<Network>,
    rate: f64,
    latency: LatencyMode,
) -> (Engine, timbreswap_engine::EngineControl) {
    let trumpet = clip("ref-trumpet.wav");
    let classic =
        timbreswap_engine::timbre::analyse(&trumpet, &StftConfig::default(), "trumpet").unwrap();
    let z = net.clip_timbre(&trumpet);
    let (e, mut control) = Engine::new(
        EngineSettings {
            latency_mode: latency,
            ..settings(rate, 256, ProcessingMode::Offline)
        },
        Arc::new(EngineStats::default()),
        Some(&classic),
        None,
    )
    .unwrap();
    control
        .set_model(Some(net.clone()), Some(&z), None)
        .unwrap();
    let bank = ExemplarBank::new(&StftConfig::default(), &trumpet).unwrap();
    control.set_exemplar(Slot::A, Some(Arc::new(bank))).unwrap();
    (e, control)
}

fn neural(phase: PhaseMode) -> FrameParams {
    FrameParams {
        mode: SwapMode::Neural,
        phase,
        ..FrameParams::default()
    }
}

fn exemplar() -> FrameParams {
    FrameParams {
        mode: SwapMode::Exemplar,
        ..FrameParams::default()
    }
}

#[test]
fn malformed_model_files_are_refused_with_typed_errors() {
    let good = std::fs::read(asset("assets/models/default.safetensors")).unwrap();
    assert!(model_file::parse(&good).is_ok());
    // Truncated anywhere: never a panic, always an error.
    for cut in [0, 7, 8, 100, good.len() / 2, good.len() - 1] {
        assert!(
            matches!(
                model_file::parse(&good[..cut]),
                Err(ModelFileError::Safetensors(_))
            ),
            "cut at {cut}"
        );
    }
    // Garbage and a missing file.
    assert!(model_file::parse(&[0xff; 64]).is_err());
    assert!(matches!(
        model_file::load(Path::new("/nonexistent/model.safetensors")),
        Err(ModelFileError::Io { .. })
    ));
    // A flipped byte in the JSON header (inside the config) is refused, not misread.
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(good[8..8 + header_len].to_vec()).unwrap();
    let edited = header.replace("\\\"hidden\\\":192", "\\\"hidden\\\":193");
    assert_ne!(edited, header, "the config is in the header");
    let mut bad = good.clone();
    bad[8..8 + header_len].copy_from_slice(edited.as_bytes());
    let err = model_file::parse(&bad).unwrap_err();
    assert!(matches!(err, ModelFileError::Weights(_)), "{err}");
    // A weight of 1e30 (a finite but absurd value) is refused by name.
    let data_start = 8 + header_len;
    let mut huge = good.clone();
    huge[data_start..data_start + 4].copy_from_slice(&1e30f32.to_le_bytes());
    let err = model_file::parse(&huge).unwrap_err();
    assert!(matches!(err, ModelFileError::Weights(_)), "{err}");
    assert!(err.to_string().contains("1e30"), "{err}");
}

#[test]
fn a_model_for_another_stft_is_refused_by_the_engine() {
    let net = network();
    let other = StftConfig {
        n_fft: 1024,
        hop: 320,
        ..StftConfig::default()
    };
    let (_, mut control) = Engine::new(
        EngineSettings {
            stft: other,
            worker_priority: Default::default(),
            latency_mode: Default::default(),
            latency_block: None,
            ..settings(48_000.0, 128, ProcessingMode::Offline)
        },
        Arc::new(EngineStats::default()),
        None,
        None,
    )
    .unwrap();
    let err = control
        .set_model(Some(net.clone()), None, None)
        .unwrap_err();
    assert!(matches!(err, ControlError::ModelMismatch { .. }));
    // Said in words, not as a struct dump.
    let message = err.to_string();
    assert!(
        message.contains("32000 Hz") && message.contains("1024-sample") && !message.contains('{'),
        "{message}"
    );
    let (_, mut control) = Engine::new(
        settings(48_000.0, 128, ProcessingMode::Offline),
        Arc::new(EngineStats::default()),
        None,
        None,
    )
    .unwrap();
    assert!(matches!(
        control.set_model(Some(net), Some(&[0.0; 3]), None),
        Err(ControlError::LatentSize { .. })
    ));
}

/// The worker's per-frame step (the frame processor in neural mode, both phase modes, with a
/// transposition and a model swap) does not touch the allocator, with the shipped model (a
/// binary pitch code beside a pitch ruler, so the step's sign and ruler loops run) and with
/// its Gaussian reading (the same weights with `pitch_binary` cleared, so the path that takes
/// `z_p`'s posterior means as they are runs too).
#[test]
fn neural_frame_step_does_not_allocate() {
    let shipped = model_file::load(&asset("assets/models/default.safetensors")).unwrap();
    assert!(shipped.config.pitch_binary && shipped.config.pitch_ruler());
    let mut gaussian = shipped;
    gaussian.config.pitch_binary = false;
    let gaussian = Arc::new(Network::new(&gaussian, "gaussian", Kernels::best()).unwrap());
    let signed = frame_steps_do_not_allocate(network());
    let plain = frame_steps_do_not_allocate(gaussian);
    // The two readings of the same weights sound different: the sign loop ran in one only.
    assert!(plain.iter().zip(&signed).any(|(a, b)| a != b));
}

/// Runs 200 frames of `input-flute.wav` through a frame processor with `net` and returns the
/// grains it wrote, asserting that no step allocates.
fn frame_steps_do_not_allocate(net: Arc<Network>) -> Vec<f32> {
    let cfg = StftConfig::default();
    let (mut tx, rx) = RingBuffer::new(8);
    let (garbage_tx, mut garbage) = RingBuffer::new(8);
    let mut processor = FrameProcessor::new(&cfg, Default::default(), rx, garbage_tx);
    let z = net.map().instrument_z_t(0).unwrap().to_vec();
    let x = clip("input-flute.wav");
    let mut grain = vec![0.0f32; cfg.n_fft];
    let mut grains = Vec::with_capacity(200 * cfg.n_fft);
    let before = violation_count();
    for (f, frame) in x.windows(cfg.n_fft).step_by(cfg.hop).take(200).enumerate() {
        if f == 0 || f == 120 {
            // Built off the "audio" thread, swapped in by the processor.
            let model = timbreswap_engine::neural::NeuralProcessor::new(
                net.clone(),
                Some(z.clone().into_boxed_slice()),
                None,
            );
            let _ = tx.push(
                timbreswap_engine::messages::ControlToProcessorMsg::SetModel(Some(Box::new(model))),
            );
        }
        let params = FrameParams {
            transpose: if f > 60 { 3.5 } else { 0.0 },
            variation: 1.5,
            ..neural(match f % 75 {
                0..25 => PhaseMode::Reconstruct,
                25..50 => PhaseMode::Input,
                _ => PhaseMode::Differential,
            })
        };
        let mut wrote = false;
        assert_no_alloc(|| wrote = processor.process(f as u64, frame, &params, &mut grain));
        assert!(wrote);
        assert!(grain.iter().all(|g| g.is_finite()));
        grains.extend_from_slice(&grain);
        while garbage.pop().is_ok() {}
    }
    assert_eq!(violation_count(), before, "allocation in the neural step");
    grains
}

/// `Engine::process` in neural mode, realtime and offline, with the model loaded, timbres
/// changed from the control side and the timbre map in use while it plays, does not allocate.
#[test]
fn neural_process_does_not_allocate() {
    let net = network();
    let z_a = net.map().instrument_z_t(1).unwrap().to_vec();
    let z_b = net.map().instrument_z_t(7).unwrap().to_vec();
    let x = clip("input-voice.wav");
    let runs = [ProcessingMode::Offline, ProcessingMode::Realtime]
        .into_iter()
        .flat_map(|m| LATENCIES.map(|l| (m, l)));
    for (mode, latency) in runs {
        let s = EngineSettings {
            latency_mode: latency,
            ..settings(48_000.0, 128, mode)
        };
        let (mut e, mut control) = engine_with(&net, s, Some(&z_a));
        let (mix, gain, morph) = (vec![1.0; 128], vec![1.0; 128], vec![0.5; 128]);
        let variation: Vec<f32> = (0..128).map(|i| i as f32 / 64.0).collect();
        let transpose = vec![-5.0; 128];
        let (map_x, map_y, map_amount) = (vec![0.3; 128], vec![-0.4; 128], vec![0.6; 128]);
        let mut buf = vec![0.0f32; 128];
        // The editor's live view is open: spectra are handed over while processing.
        control.spectra().set_open(true);
        let mut spectra_seen = 0;
        let before = violation_count();
        for (i, chunk) in x.chunks_exact(128).take(300).enumerate() {
            match i {
                40 => control.set_latent(Slot::B, Some(&z_b)).unwrap(),
                80 => control
                    .set_model(Some(net.clone()), Some(&z_b), Some(&z_a))
                    .unwrap(),
                120 => control.set_latent(Slot::A, None).unwrap(),
                _ => {}
            }
            buf.copy_from_slice(chunk);
            let params = BlockParams {
                mix: &mix,
                gain: &gain,
                morph: &morph,
                variation: &variation,
                transpose: &transpose,
                mode: if i % 100 < 70 {
                    SwapMode::Neural
                } else {
                    SwapMode::Classic
                },
                phase: if i % 30 < 15 {
                    PhaseMode::Reconstruct
                } else {
                    PhaseMode::Input
                },
                map_x: &map_x,
                map_y: &map_y,
                map_amount: if i % 50 < 25 { &map_amount } else { &[] },
                decay: &[],
            };
            assert_no_alloc(|| {
                e.process(&mut [&mut buf[..]], &params);
                if i == 200 {
                    e.reset();
                }
            });
            assert!(buf.iter().all(|v| v.is_finite()));
            if mode == ProcessingMode::Realtime {
                std::thread::sleep(Duration::from_micros(300));
            }
            if i % 10 == 9 && control.spectra().update() {
                spectra_seen += 1;
            }
        }
        assert_eq!(
            violation_count(),
            before,
            "{mode:?} {latency:?}: allocation inside process"
        );
        // A voice at a sensible level shows up in both spectra.
        assert!(
            spectra_seen > 10,
            "{mode:?} {latency:?}: {spectra_seen} spectra"
        );
        let view = control.spectra();
        for db in [&view.input_db, &view.output_db] {
            assert!(db.iter().all(|v| v.is_finite()));
            assert!(db.iter().any(|v| *v > -60.0), "{mode:?}: empty spectrum");
        }
        control.collect_garbage();
    }
}

/// Offline neural output does not depend on how the host slices the blocks.
#[test]
fn neural_output_is_independent_of_block_sizes() {
    let net = network();
    let z = net.map().instrument_z_t(2).unwrap().to_vec();
    let x: Vec<f32> = clip("input-synth-lead.wav")
        .into_iter()
        .take(48_000)
        .collect();
    let render = |blocks: &[usize], max: usize| {
        let (mut e, _control) = engine_with(
            &net,
            settings(32_000.0, max, ProcessingMode::Offline),
            Some(&z),
        );
        run(&mut e, &x, blocks, neural(PhaseMode::Reconstruct))
    };
    let reference = render(&[4096], 4096);
    for (blocks, max) in [
        (vec![1], 64),
        (vec![64], 64),
        (vec![480], 480),
        (vec![7, 300, 33], 512),
    ] {
        assert_eq!(render(&blocks, max), reference, "blocks {blocks:?}");
    }
}

/// Latency is the same in Classic and Neural mode (the neural path has no look-ahead), and an
/// onset in the input comes out at the reported latency in neural mode too.
#[test]
fn neural_mode_keeps_the_reported_latency() {
    let net = network();
    let z = net.map().instrument_z_t(0).unwrap().to_vec();
    let rate = 48_000.0;
    for (latency, limit_s) in [(LatencyMode::Normal, 0.025), (LatencyMode::Low, 0.010)] {
        let s = EngineSettings {
            latency_mode: latency,
            ..settings(rate, 256, ProcessingMode::Offline)
        };
        let (mut e, _control) = engine_with(&net, s, Some(&z));
        let lat = e.latency_samples() as usize;
        assert!(lat as f64 / rate <= limit_s, "{latency:?}: latency {lat}");
        // A tone burst that starts at `onset`: the output's energy envelope rises within a hop
        // of `onset + latency`.
        let onset = 24_000;
        let x: Vec<f32> = (0..72_000)
            .map(|n| {
                if n < onset {
                    0.0
                } else {
                    0.3 * (std::f32::consts::TAU * 330.0 * n as f32 / rate as f32).sin()
                }
            })
            .collect();
        let y = run(&mut e, &x, &[256], neural(PhaseMode::Reconstruct));
        let first_loud = y.iter().position(|v| v.abs() > 0.01).unwrap();
        let expected = onset + lat;
        let hop = (rate * 0.005) as usize;
        assert!(
            first_loud + 2 * hop >= expected && first_loud <= expected + hop,
            "{latency:?}: first output at {first_loud}, expected about {expected}"
        );
    }
}

/// Decoding the flute with the trumpet preset's timbre moves its average spectral envelope
/// towards the trumpet's (measured with the engine's classic analysis, independent of the
/// model), for both phase modes.
#[test]
fn neural_swap_moves_the_envelope_towards_the_reference() {
    let net = network();
    let cfg = StftConfig::default();
    let reference = clip("ref-trumpet.wav");
    let source = clip("input-flute.wav");
    let z = net.clip_timbre(&reference);
    let env = |x: &[f32]| {
        timbreswap_engine::timbre::analyse(x, &cfg, "x")
            .unwrap()
            .envelope
    };
    let (env_ref, env_src) = (env(&reference), env(&source));
    // Shape distance over 250 Hz - 8 kHz, level removed.
    let distance = |a: &[f32], b: &[f32]| {
        let d: Vec<f32> = (4..128).map(|k| a[k] - b[k]).collect();
        let m = d.iter().sum::<f32>() / d.len() as f32;
        (d.iter().map(|v| (v - m).powi(2)).sum::<f32>() / d.len() as f32).sqrt()
    };
    let before = distance(&env_src, &env_ref);
    for phase in [
        PhaseMode::Reconstruct,
        PhaseMode::Input,
        PhaseMode::Differential,
    ] {
        let (mut e, _control) = engine_with(
            &net,
            settings(32_000.0, 512, ProcessingMode::Offline),
            Some(&z),
        );
        let lat = e.latency_samples() as usize;
        let mut padded = source.clone();
        padded.resize(source.len() + lat, 0.0);
        let y = run(&mut e, &padded, &[512], neural(phase));
        let after = distance(&env(&y[lat..]), &env_ref);
        println!("{phase:?}: envelope distance to the trumpet {before:.2} -> {after:.2}");
        assert!(after < 0.7 * before, "{phase:?}: {before} -> {after}");
    }
}

/// With no reference loaded, Map amount 100 % at an instrument's anchor plays exactly what that
/// instrument's preset latent in slot A plays (the inverse projection returns the anchor's
/// latent there).
#[test]
fn map_point_at_an_anchor_plays_that_instrument() {
    let net = network();
    let index = 5;
    let anchor = net.blender().anchors()[index];
    let z = net.map().instrument_z_t(index).unwrap().to_vec();
    let x: Vec<f32> = clip("input-flute.wav").into_iter().take(32_000).collect();
    let render = |latent: Option<&[f32]>, amount: f32| {
        let (mut e, _control) = engine_with(
            &net,
            settings(32_000.0, 512, ProcessingMode::Offline),
            latent,
        );
        let (mix, gain, morph) = (vec![1.0; 512], vec![1.0; 512], vec![0.0; 512]);
        let (mx, my, ma) = (
            vec![anchor[0]; 512],
            vec![anchor[1]; 512],
            vec![amount; 512],
        );
        let params = BlockParams {
            mode: SwapMode::Neural,
            map_x: &mx,
            map_y: &my,
            map_amount: &ma,
            decay: &[],
            ..BlockParams::new(&mix, &gain, &morph)
        };
        let mut out = x.clone();
        for chunk in out.chunks_mut(512) {
            e.process(&mut [chunk], &params);
        }
        out
    };
    let from_map = render(None, 1.0);
    let from_preset = render(Some(&z), 0.0);
    let err = from_map
        .iter()
        .zip(&from_preset)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let peak = from_preset.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(peak > 0.01, "silent render");
    // The anchor's weight is 1 - O(EPS / d^2) of the neighbours: tiny differences only.
    assert!(err < 1e-3 * peak, "max difference {err} (peak {peak})");
}

/// Silence in is silence out in every mode and phase: digital silence gives exact zeros (the
/// decoder's output for nothing, and Classic's envelope for nothing, are scaled to the input's
/// energy), and after a tone the output is silent again once the tone has left the frames.
#[test]
fn silence_in_is_silence_out_in_every_mode() {
    let net = network();
    let rate = 48_000.0;
    let tone: Vec<f32> = (0..48_000)
        .map(|n| 0.3 * (std::f32::consts::TAU * 330.0 * n as f32 / 48_000.0).sin())
        .collect();
    let mut tone_then_silence = tone.clone();
    tone_then_silence.resize(3 * 48_000, 0.0);
    let modes = [
        neural(PhaseMode::Input),
        neural(PhaseMode::Reconstruct),
        neural(PhaseMode::Differential),
        FrameParams::default(),
        exemplar(),
    ];
    for (p, latency) in modes.into_iter().flat_map(|p| LATENCIES.map(|l| (p, l))) {
        let fresh = || trumpet_in_every_mode(&net, rate, latency);
        let (mut e, _control) = fresh();
        let zeros = run(&mut e, &vec![0.0; 96_000], &[256], p);
        assert!(
            zeros.iter().all(|&v| v == 0.0),
            "{p:?} {latency:?}: digital silence gave sound"
        );
        let (mut e, _control) = fresh();
        let y = run(&mut e, &tone_then_silence, &[256], p);
        let lat = e.latency_samples() as usize;
        let during = y[lat + 12_000..lat + 36_000]
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        // The tone plays; half a second after it has left the frames, nothing does.
        assert!(
            during > 0.05,
            "{p:?} {latency:?}: the tone did not play ({during})"
        );
        let after = y[48_000 + lat + 24_000..]
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(
            after < 1e-6,
            "{p:?} {latency:?}: {after} after the tone ended"
        );
    }
}

/// Hostile inputs in every mode: DC steps, finite bursts of 1e15 and 1e30, denormals, NaN and
/// infinities. The output is always finite, never more than `WET_PEAK_LIMIT` times the input's
/// (finite) peak, and a burst does not leave the output silent: half a second after it, the
/// tone plays at the level a clean run gives.
#[test]
fn hostile_inputs_give_bounded_output_in_every_mode() {
    use timbreswap_engine::engine::WET_PEAK_LIMIT;
    let net = network();
    let rate = 48_000.0;
    let n = 2 * 48_000;
    let tone = |i: usize| 0.3 * (std::f32::consts::TAU * 330.0 * i as f32 / 48_000.0).sin();
    let sine_then = |level: f32| -> Vec<f32> {
        (0..n)
            .map(|i| if i < n / 2 { tone(i) } else { level })
            .collect()
    };
    let burst = |value: f32| -> Vec<f32> {
        (0..n)
            .map(|i| {
                if (24_000..24_480).contains(&i) {
                    if i % 2 == 0 {
                        value
                    } else {
                        -value
                    }
                } else {
                    tone(i)
                }
            })
            .collect()
    };
    let clean: Vec<f32> = (0..n).map(tone).collect();
    let mut special = clean.clone();
    for (i, v) in special.iter_mut().enumerate().skip(20_000).take(2_000) {
        *v = match i % 4 {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            _ => 1e-39,
        };
    }
    let denormals: Vec<f32> = (0..n)
        .map(|i| if i % 2 == 0 { 1e-39 } else { -1e-40 })
        .collect();
    let inputs: Vec<(&str, Vec<f32>, bool)> = vec![
        ("sine then DC 0.1", sine_then(0.1), false),
        ("sine then DC 1.0", sine_then(1.0), false),
        ("burst 1e15", burst(1e15), true),
        ("burst 1e30", burst(1e30), true),
        ("NaN, Inf and denormals", special, true),
        ("denormals", denormals, false),
    ];
    let modes = [
        FrameParams::default(),
        neural(PhaseMode::Input),
        neural(PhaseMode::Reconstruct),
        neural(PhaseMode::Differential),
        exemplar(),
    ];
    let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
    for (p, latency) in modes.into_iter().flat_map(|p| LATENCIES.map(|l| (p, l))) {
        let fresh = || trumpet_in_every_mode(&net, rate, latency);
        let (mut e, _control) = fresh();
        let reference = run(&mut e, &clean, &[256], p);
        let tail = n - 24_000..n;
        for (name, x, recovers) in &inputs {
            let (mut e, _control) = fresh();
            let y = run(&mut e, x, &[256], p);
            let peak_in = x
                .iter()
                .filter(|v| v.is_finite())
                .fold(0.0f32, |m, v| m.max(v.abs()));
            let peak_out = y.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(
                y.iter().all(|v| v.is_finite()),
                "{p:?} {latency:?} {name}: non-finite"
            );
            // The wet part is within the limit; the windows' overlap-add is 1 within float
            // rounding, so up to a few 1e-6 of the dry input can sit beside a limited wet.
            assert!(
                peak_out <= WET_PEAK_LIMIT * peak_in * 1.0001,
                "{p:?} {latency:?} {name}: peak {peak_out} from an input peak of {peak_in}"
            );
            if *recovers {
                let (got, want) = (rms(&y[tail.clone()]), rms(&reference[tail.clone()]));
                let db = 20.0 * (got / want).log10();
                assert!(
                    db.abs() < 3.0,
                    "{p:?} {latency:?} {name}: {db:.1} dB from a clean run, 0.5 s after"
                );
            }
        }
    }
}

/// A reference's absolute level does not change the output: the same clip at -66 dBFS, as it
/// is and 60 dB louder (ten times past full scale) gives outputs within 0.5 dB of each other
/// and of the input's level, in Classic, Neural and Exemplar mode.
#[test]
fn the_reference_level_does_not_change_the_output_level() {
    let net = network();
    let reference = clip("ref-trumpet.wav");
    let peak = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let x: Vec<f32> = clip("input-flute.wav").into_iter().take(64_000).collect();
    let rms = |x: &[f32]| {
        10.0 * (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len() as f64).log10()
    };
    let modes = [FrameParams::default(), neural(PhaseMode::Input), exemplar()];
    for (p, latency) in modes.into_iter().flat_map(|p| LATENCIES.map(|l| (p, l))) {
        let mut levels = Vec::new();
        for target_peak_db in [-66.0f32, 0.0, 20.0] {
            let gain = 10f32.powf(target_peak_db / 20.0) / peak;
            let scaled: Vec<f32> = reference.iter().map(|v| v * gain).collect();
            let descriptor =
                timbreswap_engine::timbre::analyse(&scaled, &StftConfig::default(), "ref").unwrap();
            let z = net.clip_timbre(&scaled);
            let (mut e, mut control) = Engine::new(
                EngineSettings {
                    latency_mode: latency,
                    ..settings(32_000.0, 256, ProcessingMode::Offline)
                },
                Arc::new(EngineStats::default()),
                Some(&descriptor),
                None,
            )
            .unwrap();
            control
                .set_model(Some(net.clone()), Some(&z), None)
                .unwrap();
            let bank = ExemplarBank::new(&StftConfig::default(), &scaled).unwrap();
            control.set_exemplar(Slot::A, Some(Arc::new(bank))).unwrap();
            let lat = e.latency_samples() as usize;
            let y = run(&mut e, &x, &[256], p);
            levels.push(rms(&y[lat..]) - rms(&x[..x.len() - lat]));
        }
        println!("{:?} {latency:?}: output re input {levels:.2?} dB", p.mode);
        for l in &levels {
            assert!(l.abs() < 0.5, "{:?} {latency:?}: {levels:.2?} dB", p.mode);
        }
    }
}

/// The low-latency mode keeps a steady tone steady: in Classic, Neural and Exemplar mode, a
/// sustained harmonic tone comes out at the level the normal mode gives (within 1 dB), and its
/// energy, folded over one frame hop and over one STFT hop (the periods at which grains and
/// processed frames repeat), varies by less than 2 dB (the normal mode's own frame-rate ripple
/// on this tone is up to 1.5 dB): no buzz at the frame rate.
#[test]
fn low_latency_keeps_a_steady_tone_steady() {
    let net = network();
    let rate = 32_000.0;
    let x: Vec<f32> = (0..64_000)
        .map(|n| {
            let t = n as f32 / 32_000.0;
            (1..12)
                .map(|h| 0.3 / h as f32 * (std::f32::consts::TAU * 220.0 * h as f32 * t).sin())
                .sum()
        })
        .collect();
    let level_db = |y: &[f32]| {
        10.0 * (y.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / y.len() as f64).log10()
    };
    // Largest over smallest energy of eight equal phases of `period` samples, in dB.
    let ripple_db = |y: &[f32], period: usize| {
        let mut bins = [0.0f64; 8];
        for (i, v) in y.iter().enumerate() {
            bins[(i % period) * 8 / period] += f64::from(*v).powi(2);
        }
        let max = bins.iter().copied().fold(0.0, f64::max);
        let min = bins.iter().copied().fold(f64::INFINITY, f64::min);
        10.0 * (max / min).log10()
    };
    let hop = StftConfig::default().hop;
    for p in [FrameParams::default(), neural(PhaseMode::Input), exemplar()] {
        let steady = |latency| {
            let (mut e, _control) = trumpet_in_every_mode(&net, rate, latency);
            let y = run(&mut e, &x, &[256], p);
            // Half a second in (past the onset and the level matching's settling) to the end.
            y[16_000..60_000].to_vec()
        };
        let (normal, low) = (steady(LatencyMode::Normal), steady(LatencyMode::Low));
        let gap = level_db(&low) - level_db(&normal);
        assert!(gap.abs() < 1.0, "{:?}: low latency {gap:.2} dB off", p.mode);
        for period in [hop / 2, hop] {
            let (r_low, r_normal) = (ripple_db(&low, period), ripple_db(&normal, period));
            println!(
                "{:?}: level {gap:+.2} dB; over {period} samples {r_low:.2} dB (normal {r_normal:.2})",
                p.mode
            );
            assert!(
                r_low < 2.0,
                "{:?}: {r_low:.2} dB over {period} samples (normal mode {r_normal:.2})",
                p.mode
            );
        }
    }
}

/// The timbre latent of a clip is the encoder's features pooled over its active frames: a
/// clip of 2 s over all of them, a clip of 12 s over at most `MAX_POOLED_FRAMES` of them spread
/// over it. Checked against the same pooling run frame by frame through the streaming step
/// (another kernel than the clip's batched product), and the long clip's latent is near the
/// short one's whose sound it repeats.
#[test]
fn a_clips_timbre_is_pooled_over_its_active_frames() {
    use timbreswap_engine::features::{pooling_weights, FeatureExtractor, MAX_POOLED_FRAMES};
    use timbreswap_engine::network::at_training_level;

    let net = network();
    let c = net.config();
    let trumpet = clip("ref-trumpet.wav");
    let long: Vec<f32> = (0..6).flat_map(|_| trumpet.iter().copied()).collect();
    let mut latents = Vec::new();
    for audio in [&trumpet, &long] {
        let got = net.clip_timbre(audio);
        let level = at_training_level(audio);
        let f = FeatureExtractor::new(&net.stft(), c.mag_floor).clip(&level);
        let w = pooling_weights(
            &f.frame_db,
            timbreswap_engine::model_config::POOLING_RANGE_DB,
        );
        // The loader's route (features it shares with the Exemplar analysis, without their
        // envelopes: the pooled frames' are made on the way), and with the envelopes at hand:
        // the same bits.
        let shared = FeatureExtractor::new(&net.stft(), c.mag_floor)
            .without_envelope()
            .clip(&level);
        assert!(shared.envelope.is_empty() && shared.fine.is_empty());
        assert_eq!(net.clip_timbre_of(&shared), Some(got.clone()));
        let with_envelopes = FeatureExtractor::new(&net.stft(), c.mag_floor)
            .without_fine()
            .clip(&level);
        assert_eq!(net.clip_timbre_of(&with_envelopes), Some(got.clone()));
        let counted = w.iter().filter(|x| **x > 0.0).count();
        assert!(counted <= MAX_POOLED_FRAMES, "{counted} frames pooled");
        let peak = f.frame_db.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let active = f
            .frame_db
            .iter()
            .filter(|&&db| db >= peak - timbreswap_engine::model_config::POOLING_RANGE_DB)
            .count();
        assert_eq!(
            active > MAX_POOLED_FRAMES,
            audio.len() == long.len(),
            "{active} active"
        );
        let (bins, hid) = (f.bins, c.hidden);
        let mut st = net.state();
        let (mut env, mut h) = (vec![0.0f32; bins], vec![0.0f32; hid]);
        let mut pooled = vec![0.0f64; hid];
        for t in (0..f.frames).filter(|&t| w[t] > 0.0) {
            let rows = t * bins..(t + 1) * bins;
            env.copy_from_slice(&f.envelope[rows.clone()]);
            net.normalise_envelope(&f.log_mag[rows.clone()], &mut env);
            net.timbre_frame(&mut st, &env, &f.log_mag[rows], 0.0, &mut h);
            for (p, v) in pooled.iter_mut().zip(&h) {
                *p += f64::from(w[t]) * f64::from(*v);
            }
        }
        let pooled: Vec<f32> = pooled.iter().map(|v| *v as f32).collect();
        let mut want = vec![0.0f32; c.z_t];
        net.timbre_head(&mut st, &pooled, &mut want);
        for (i, (g, e)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                "z_t[{i}]: {g} against {e}"
            );
        }
        latents.push(got);
    }
    // The long clip is the short one six times: about the same timbre.
    let distance: f32 = latents[0]
        .iter()
        .zip(&latents[1])
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f32>()
        .sqrt();
    let size: f32 = latents[0].iter().map(|a| a * a).sum::<f32>().sqrt();
    assert!(distance < 0.05 * size, "{distance} apart, size {size}");
}
