//! Tests of the loader: installs, saved clips, presets and the weights setting.

use super::*;
use crate::model::default_network;

/// An offline engine (48 kHz, blocks of 256, stereo) whose control handle `shared` holds,
/// as while the plugin is active; keep it alive for as long as it should run.
fn running_engine(shared: &Shared) -> timbreswap_engine::Engine {
    let settings = timbreswap_engine::EngineSettings {
        host_rate: 48_000.0,
        max_block: 256,
        channels: 2,
        mode: timbreswap_engine::ProcessingMode::Offline,
        stft: timbreswap_engine::StftConfig::default(),
        worker_priority: Default::default(),
        latency_mode: Default::default(),
        latency_block: None,
    };
    let (engine, control) =
        timbreswap_engine::Engine::new(settings, shared.stats.clone(), None, None).unwrap();
    *shared.control.lock().unwrap() = Some(control);
    engine
}

fn last_error(shared: &Shared) -> Option<String> {
    shared.status.lock().unwrap().last_error.clone()
}

/// A reference installed while no engine runs (as in the window between `activate`
/// reading the fields and the new engine's start) is noted as unapplied, so the next
/// `process` has the state applied; one the running engine takes is not.
#[test]
fn an_install_with_no_engine_is_not_lost() {
    use std::sync::atomic::Ordering;
    let net = default_network().unwrap();
    let params = TimbreswapParams::default();
    let shared = Shared::default();
    let count = || params.restores.load(Ordering::Acquire);
    let before = count();
    install(Slot::A, preset(&net, 2), None, "", &params, &shared);
    assert_eq!(count(), before + 1, "no engine: the change must be noted");
    assert!(params.timbre_a.snapshot().is_some());

    let _engine = running_engine(&shared);
    let before = count();
    install(Slot::B, preset(&net, 3), None, "", &params, &shared);
    assert_eq!(count(), before, "the engine took it: nothing to re-apply");
    assert!(params.timbre_b.snapshot().is_some());
}

/// A clip recorded in a room (the violin example, then half a second of its room alone, white
/// noise 30 dB under its RMS throughout) loads with its background measured, taken out and
/// said in the status line; the clean clip (its pause silent) says nothing of a room.
#[test]
fn a_clips_room_noise_is_measured_and_said() {
    let params = Arc::new(TimbreswapParams::default());
    let shared = Arc::new(Shared::default());
    let cfg = StftConfig::default();
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/examples/ref-violin.wav");
    let mut samples = timbreswap_engine::clip::load_reference_clip(&example, &cfg)
        .unwrap()
        .samples;
    let rms = (samples.iter().map(|x| x * x).sum::<f32>() / samples.len() as f32).sqrt();
    samples.extend(vec![0.0; cfg.sample_rate as usize / 2]);
    // Uniform on [-a, a] has an RMS of a / sqrt(3).
    let a = rms * 10f32.powf(-30.0 / 20.0) * 3f32.sqrt();
    let mut state = 77u32;
    for x in &mut samples {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        *x += a * (state as f32 / 2_147_483_648.0 - 1.0);
    }
    let dir = std::env::temp_dir().join(format!("timbreswap-room-clip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("violin-in-a-room.wav");
    let audio = timbreswap_engine::clip::DecodedAudio {
        sample_rate: cfg.sample_rate,
        channels: vec![samples],
        truncated: false,
    };
    timbreswap_engine::render::write_wav(&path, &audio).unwrap();
    let load = |slot: Slot, path: &Path| {
        run(
            Task::LoadReference {
                slot,
                path: path.to_path_buf(),
            },
            &params,
            &shared,
        );
        let status = shared.status();
        assert_eq!(status.last_error, None);
        status.message
    };
    let message = load(Slot::A, &path);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(message.contains("room noise"), "{message}");
    let descriptor = params.timbre_a.snapshot().expect("slot A holds the clip");
    let bank = shared
        .exemplar_for(Slot::A, Some(&descriptor))
        .expect("the clip is analysed");
    // 30 dB under the clip's RMS, and the loudest frame lies above its RMS.
    let level = bank.background_db().expect("a background");
    assert!((-45.0..-30.0).contains(&level), "{level} dB");
    assert!(message.contains(&format!("{:.0} dB", -level)), "{message}");
    let message = load(Slot::B, &example);
    assert!(!message.contains("room"), "{message}");
}

/// A loaded clip is analysed for Exemplar mode, kept with its file for the next activation,
/// and saved with the project: with the file gone, the saved clip is analysed instead.
/// A preset has no clip; a damaged saved clip without its file, or a file gone from a
/// project that saved none, says Exemplar plays it as Classic. A project from before clips
/// were saved keeps its clip from the next time the file is read.
#[test]
fn a_loaded_clip_is_kept_and_saved_for_exemplar_mode() {
    let params = Arc::new(TimbreswapParams::default());
    let shared = Arc::new(Shared::default());
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/examples/ref-violin.wav");
    let dir = std::env::temp_dir().join(format!("timbreswap-saved-clip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let clip = dir.join("violin.wav");
    std::fs::copy(&example, &clip).unwrap();
    run(
        Task::LoadReference {
            slot: Slot::B,
            path: clip.clone(),
        },
        &params,
        &shared,
    );
    let descriptor = params.timbre_b.snapshot().expect("slot B holds the clip");
    let bank = shared
        .exemplar_for(Slot::B, Some(&descriptor))
        .expect("the clip is analysed");
    assert!(bank.frames() > 100, "{} frames", bank.frames());
    // Saved with the project: the clip's own samples (16-bit, so exactly).
    let cfg = StftConfig::default();
    let original = timbreswap_engine::clip::load_reference_clip(&clip, &cfg)
        .unwrap()
        .samples;
    let saved = params.clip_b.snapshot().expect("the clip is saved");
    assert_eq!(Some(&saved.source), descriptor.source.as_ref());
    assert_eq!(saved.samples(cfg.sample_rate).unwrap(), original);
    assert!(params.clip_a.snapshot().is_none());
    // Found again by the file it came from.
    assert!(exemplar_bank(Slot::B, &descriptor, &params, &shared).is_some());
    assert!(shared.exemplar_for(Slot::A, Some(&descriptor)).is_none());
    // A damaged saved clip: said, and the file read instead (and saved again).
    shared.keep_exemplar(Slot::B, None);
    *params.clip_b.write() = Some(SavedClip {
        pcm: "not base64!".into(),
        ..saved.clone()
    });
    assert!(exemplar_bank(Slot::B, &descriptor, &params, &shared).is_some());
    let message = last_error(&shared).unwrap();
    assert!(message.contains("unusable"), "{message}");
    assert_eq!(params.clip_b.snapshot().as_ref(), Some(&saved));

    // The file is gone (the project opened elsewhere): the saved clip plays.
    std::fs::remove_dir_all(&dir).unwrap();
    shared.keep_exemplar(Slot::B, None);
    let again = exemplar_bank(Slot::B, &descriptor, &params, &shared)
        .expect("analysed from the saved clip");
    assert_eq!(again.frames(), bank.frames());
    // A model that has not measured it measures the saved clip (the same samples as the
    // file's), not nothing.
    let net = default_network().unwrap();
    assert!(latent_for(&descriptor, &net).is_none());
    assert_eq!(
        remeasure(Slot::B, &descriptor, &net, &params, &shared),
        Some(measure(&net, &at_model_rate(&original, &cfg, &net)).z_t)
    );
    // Damaged too: Classic, and why.
    shared.keep_exemplar(Slot::B, None);
    *params.clip_b.write() = Some(SavedClip {
        pcm: "not base64!".into(),
        ..saved.clone()
    });
    assert!(exemplar_bank(Slot::B, &descriptor, &params, &shared).is_none());
    let message = last_error(&shared).unwrap();
    assert!(
        message.contains("Exemplar plays it as Classic"),
        "{message}"
    );

    assert!(exemplar_bank(Slot::A, &preset(&net, 2).unwrap(), &params, &shared).is_none());
    // A project saved before clips were kept: read from the file, saved from now on.
    let mut old = descriptor.clone();
    old.source = Some(example.display().to_string());
    *params.timbre_a.write() = Some(old.clone());
    assert!(exemplar_bank(Slot::A, &old, &params, &shared).is_some());
    assert_eq!(
        params.clip_a.snapshot().map(|c| c.source),
        old.source.clone()
    );
    // Its file gone too, and nothing saved: Classic, and why.
    let mut gone = descriptor.clone();
    gone.source = Some("/nonexistent/violin.wav".into());
    assert!(exemplar_bank(Slot::A, &gone, &params, &shared).is_none());
    let message = last_error(&shared).unwrap();
    assert!(
        message.contains("Exemplar plays it as Classic"),
        "{message}"
    );
}

/// A preset measured with another model is looked up again by the instrument it records,
/// whatever its display name, and states saved before it recorded one fall back to the
/// display name; a preset of an instrument the model lacks, and a clip saved without its
/// file, say so instead of silently playing Classic.
#[test]
fn presets_are_looked_up_again_by_their_instrument() {
    let net = default_network().unwrap();
    let index = 3;
    let want = net.map().instrument_z_t(index).unwrap().to_vec();
    let mut descriptor = preset(&net, index).unwrap();
    // As if another model had measured it: its latent no longer fits `net`.
    descriptor.latent.as_mut().unwrap().model_id = "another model".into();
    assert!(latent_for(&descriptor, &net).is_none());

    let shared = Shared::default();
    let params = TimbreswapParams::default();
    descriptor.name = "renamed by the user".into();
    assert_eq!(
        remeasure(Slot::A, &descriptor, &net, &params, &shared),
        Some(want.clone())
    );

    let mut legacy = preset(&net, index).unwrap();
    legacy.latent = None;
    legacy.preset = None;
    assert_eq!(
        remeasure(Slot::A, &legacy, &net, &params, &shared),
        Some(want)
    );
    assert_eq!(last_error(&shared), None);

    descriptor.preset = Some("an instrument no model has".into());
    assert_eq!(
        remeasure(Slot::B, &descriptor, &net, &params, &shared),
        None
    );
    let message = last_error(&shared).unwrap();
    assert!(message.contains("an instrument no model has"), "{message}");

    legacy.name = "a clip saved without its file".into();
    assert_eq!(remeasure(Slot::B, &legacy, &net, &params, &shared), None);
    let message = last_error(&shared).unwrap();
    assert!(message.contains("without its file"), "{message}");
}

/// The weights setting reloads the model in the chosen precision: the running engine
/// takes it, the saved state records it, the slot's latent is measured again with it, a
/// model chosen afterwards keeps the precision, and a restored state that names another
/// precision is noticed as a change (and one that names the running one is not).
#[test]
fn the_weights_setting_reloads_the_model_and_is_saved() {
    use nice_plug::params::persist::PersistentField;
    let params = Arc::new(TimbreswapParams::default());
    let shared = Arc::new(Shared::default());
    let stored = default_network().unwrap();
    let _engine = running_engine(&shared);
    *shared.model.write().unwrap() = Some(stored.clone());
    install(Slot::A, preset(&stored, 2), None, "", &params, &shared);

    run(
        Task::SetWeights {
            weights: Some(Precision::Int8),
        },
        &params,
        &shared,
    );
    assert_eq!(last_error(&shared), None);
    let int8 = shared.network().unwrap();
    assert!(
        int8.id() != stored.id() && int8.id().ends_with("-int8"),
        "{}",
        int8.id()
    );
    assert_eq!(params.model_weights.snapshot(), Some(Precision::Int8));
    assert_eq!(
        shared.model_choice.lock().unwrap().weights,
        Some(Precision::Int8)
    );
    let latent = params.timbre_a.snapshot().unwrap().latent.unwrap();
    assert_eq!(latent.model_id, int8.id());
    assert!(!wanted_network(&params, &shared).2, "nothing changed since");

    // Back to the built-in model by its button: the precision stays.
    run(Task::LoadModel { path: None }, &params, &shared);
    assert_eq!(shared.network().unwrap().id(), int8.id());

    // A restored project that saved no precision asks for the model as stored.
    PersistentField::set(&params.model_weights, None);
    let (net, choice, changed) = wanted_network(&params, &shared);
    assert!(changed);
    assert_eq!(choice.weights, None);
    assert_eq!(net.unwrap().id(), stored.id());
}
