//! The transfer table: feature sanity on synthetic signals, and an end-to-end run on a tiny
//! dataset rendered from TimGM6mb (Debian `timgm6mb-soundfont`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use timbreswap_training::dataset::{self, render_dataset, DatasetOptions, SetChoice};
use timbreswap_training::instruments::Instrument;
use timbreswap_training::manifest::{
    fnv1a, read_clip_audio, read_manifest, write_manifest, ClipRecord, Set, Split,
};
use timbreswap_training::transfer::{
    evaluate_systems, instruments_from_manifest, spectral_centroid, spectral_flatness, Classic,
    Dry, FeatureExtractor, FnSystem, Oracle, Room, TransferOptions, TransferPair, TransferSystem,
    CENTROID_INDEX, FEATURE_DIM, FEATURE_FFT, FLATNESS_INDEX, MFCC_OFFSET, N_MELS, N_MFCC,
    TABLE_HEADER,
};

const RATE: u32 = 32_000;
const TIMGM: &str = "/usr/share/sounds/sf2/TimGM6mb.sf2";

/// Deterministic Gaussian noise (Box-Muller over SplitMix64).
fn noise(len: usize, sigma: f32, seed: u64) -> Vec<f32> {
    let mut rng = timbreswap_training::rng::SplitMix64::new(seed);
    (0..len)
        .map(|_| {
            let u1 = rng.unit().max(1e-12);
            let u2 = rng.unit();
            sigma * ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect()
}

fn sine(hz: f64, amplitude: f32, seconds: f64) -> Vec<f32> {
    (0..(seconds * RATE as f64) as usize)
        .map(|i| amplitude * (std::f64::consts::TAU * hz * i as f64 / RATE as f64).sin() as f32)
        .collect()
}

/// Frames well inside a clip of `frames` frames (away from the zero-padded edges).
fn middle(frames: usize) -> std::ops::Range<usize> {
    frames / 4..3 * frames / 4
}

#[test]
fn mfcc_of_a_louder_copy_differs_only_in_c0() {
    // A harmonic tone over broadband noise, so no mel band sits at the log floor.
    let tone: Vec<f32> = sine(220.0, 0.2, 0.6)
        .iter()
        .zip(sine(660.0, 0.05, 0.6))
        .zip(noise(19_200, 0.01, 7))
        .map(|((a, b), n)| a + b + n)
        .collect();
    let louder: Vec<f32> = tone.iter().map(|v| v * 4.0).collect();
    let ex = FeatureExtractor::new(RATE);
    let a = ex.analyse(&tone);
    let b = ex.analyse(&louder);
    assert_eq!(a.frames, tone.len() / 512 + 1);
    assert_eq!(a.values.len(), a.frames * FEATURE_DIM);
    // +12.04 dB in every mel band moves the orthonormal c0 by sqrt(N_MELS) * 12.04.
    let shift = (N_MELS as f32).sqrt() * 20.0 * 4f32.log10();
    for f in middle(a.frames) {
        let (ra, rb) = (a.row(f), b.row(f));
        let d0 = rb[MFCC_OFFSET] - ra[MFCC_OFFSET];
        assert!(
            (d0 - shift).abs() < 0.05,
            "frame {f}: c0 moved {d0}, not {shift}"
        );
        for c in 1..N_MFCC {
            let d = (rb[MFCC_OFFSET + c] - ra[MFCC_OFFSET + c]).abs();
            assert!(d < 0.02, "frame {f}: c{c} moved {d}");
        }
        // Scale-free features do not move either.
        for i in [CENTROID_INDEX, FLATNESS_INDEX] {
            assert!((rb[i] - ra[i]).abs() < 1e-3, "frame {f}: feature {i}");
        }
    }
}

#[test]
fn flatness_of_noise_and_of_a_sine() {
    let ex = FeatureExtractor::new(RATE);
    let white = noise(RATE as usize, 0.1, 3);
    let feat = ex.analyse(&white);
    let frames = middle(feat.frames);
    let per_frame: f64 = frames
        .clone()
        .map(|f| (feat.row(f)[FLATNESS_INDEX] as f64).exp())
        .sum::<f64>()
        / frames.len() as f64;
    // One frame's periodogram of white noise: exponentially distributed bins, flatness
    // exp(-Euler's gamma) = 0.56 in expectation.
    assert!(
        (per_frame - 0.5615).abs() < 0.05,
        "white noise, per frame: {per_frame}"
    );
    // The power spectrum averaged over frames (the noise's true spectrum) is flat.
    let bins = FEATURE_FFT / 2 + 1;
    let (power, n) = ex.power_spectrogram(&white);
    let mut avg = vec![0.0f32; bins];
    for row in power.chunks_exact(bins).skip(2).take(n - 4) {
        for (a, p) in avg.iter_mut().zip(row) {
            *a += p;
        }
    }
    let flat = spectral_flatness(&avg);
    assert!(flat > 0.9, "white noise, averaged: {flat}");

    let tone = sine(1000.0, 0.5, 0.5);
    let feat = ex.analyse(&tone);
    for f in middle(feat.frames) {
        let flatness = (feat.row(f)[FLATNESS_INDEX] as f64).exp();
        assert!(flatness < 1e-3, "sine frame {f}: {flatness}");
    }
}

#[test]
fn centroid_of_a_sine_is_its_frequency() {
    let ex = FeatureExtractor::new(RATE);
    for hz in [234.5, 1234.5, 5000.0] {
        let tone = sine(hz, 0.3, 0.5);
        let feat = ex.analyse(&tone);
        for f in middle(feat.frames) {
            let c = (feat.row(f)[CENTROID_INDEX] as f64).exp();
            assert!((c - hz).abs() < ex.bin_hz(), "{hz} Hz: centroid {c}");
        }
        // The same through the plain function on one magnitude spectrum.
        let bins = FEATURE_FFT / 2 + 1;
        let (power, frames) = ex.power_spectrogram(&tone);
        let f = frames / 2;
        let mag: Vec<f32> = power[f * bins..(f + 1) * bins]
            .iter()
            .map(|p| p.sqrt())
            .collect();
        let c = spectral_centroid(&mag, ex.bin_hz());
        assert!((c - hz).abs() < ex.bin_hz(), "{hz} Hz: centroid {c}");
    }
}

fn instrument(program: u8, name: &str, family: &str, low: u8, high: u8) -> Instrument {
    Instrument {
        program,
        name: name.into(),
        family: family.into(),
        low,
        high,
    }
}

/// Renders 3 instruments (4 notes each, 2 phrases each) and puts every phrase and every
/// velocity-80 note in the test split (the rest in train).
fn tiny_dataset(out: &Path) {
    assert!(
        Path::new(TIMGM).exists(),
        "install timgm6mb-soundfont ({TIMGM})"
    );
    let opts = DatasetOptions {
        soundfont: PathBuf::from(TIMGM),
        out: out.to_path_buf(),
        set: SetChoice::All,
        rate: RATE,
        seed: 1,
        instruments: vec![
            instrument(73, "Flute", "pipe", 67, 70),
            instrument(71, "Clarinet", "reed", 55, 58),
            instrument(56, "Trumpet", "brass", 60, 63),
        ],
        phrases: 2,
        threads: 2,
        held_out: Some(PathBuf::from(TIMGM)),
    };
    render_dataset(&opts, &|_, _| {}).unwrap();
    let mut records = read_manifest(out).unwrap();
    for r in &mut records {
        r.split = match r.set {
            Set::Phrases => Split::Test,
            Set::Notes if r.velocity == 80 => Split::Test,
            Set::Notes => Split::Train,
        };
    }
    write_manifest(out, &records).unwrap();
}

#[test]
fn end_to_end_on_a_tiny_timgm_dataset() {
    let out = std::env::temp_dir().join(format!("timbreswap-transfer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let started = Instant::now();
    tiny_dataset(&out);
    let render_s = started.elapsed().as_secs_f64();

    let opts = TransferOptions::new(out.clone(), PathBuf::from(TIMGM));
    let records = read_manifest(&out).unwrap();
    let oracle = Oracle::new(
        dataset::load_soundfont(&opts.soundfont).unwrap(),
        opts.phrase_seed,
        instruments_from_manifest(&records),
    );
    // A closure row: the source 6 dB down (pitch kept, level -6.02 dB).
    let half = FnSystem::new("half", |pair: &TransferPair<'_>| {
        Ok(pair.source.iter().map(|v| v * 0.5).collect())
    });
    let classic = Classic::default();
    let systems: [&dyn TransferSystem; 4] = [&Dry, &oracle, &classic, &half];
    let listen = out.join("listen");
    std::fs::create_dir_all(&listen).unwrap();
    let written = TransferOptions {
        write_audio: Some(listen.clone()),
        ..opts.clone()
    };
    let report = evaluate_systems(&written, &systems, &|_, _, _| {}).unwrap();
    println!("{}", report.to_markdown());
    println!(
        "dataset render {render_s:.1} s, evaluation {:.1} s",
        report.timings.total_s
    );

    assert_eq!(report.sources_used, 6);
    assert_eq!(report.source_instruments, 3);
    assert_eq!(report.rows.len(), 4);
    assert_eq!(report.classifier.classes, 3);
    for p in &report.pairs {
        assert_ne!(p.program_a, p.program_b);
        assert_eq!(p.reference_velocity, 80);
    }
    for r in &report.rows {
        assert_eq!(r.outputs, 6);
        for v in [
            r.pitch_within_50_cents,
            r.median_cent_error,
            r.classified_as_b,
            r.classified_as_a,
            r.level_difference_db,
            r.level_abs_difference_db,
        ] {
            let v = v.unwrap_or_else(|| panic!("{}: a number is missing", r.row));
            assert!(v.is_finite(), "{}: {v}", r.row);
        }
        assert!(r.pitch_frames > 0);
    }
    assert!(report.classifier.clean_source_accuracy.is_finite());
    let [dry, oracle_row, classic_row, half_row] = &report.rows[..] else {
        panic!("four rows");
    };
    assert_eq!(dry.row, "dry");
    assert!(dry.pitch_within_50_cents.unwrap() > 0.99);
    assert!(dry.level_abs_difference_db.unwrap() < 0.01);
    assert!(half_row.pitch_within_50_cents.unwrap() > 0.95);
    assert!((half_row.level_difference_db.unwrap() + 6.02).abs() < 0.05);
    assert!(oracle_row.classified_as_b.unwrap() >= dry.classified_as_b.unwrap());
    assert!(classic_row.transfer_mean_s > 0.0);
    // Dry output = the clean source, so its "classified as A" is the clean accuracy.
    assert_eq!(
        dry.classified_as_a.unwrap(),
        report.classifier.clean_source_accuracy
    );

    // Every pair's audio was written to listen to: the source and reference as the dataset
    // holds them, the dry row the source itself, the "half" row the source at half level.
    let wav = |source: &Path, reference: &Path, name: &str| -> Vec<f32> {
        let stem = |p: &Path| p.file_stem().unwrap().to_string_lossy().into_owned();
        let path = listen.join(format!("{}__{}__{name}.wav", stem(source), stem(reference)));
        let mut r = hound::WavReader::open(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert_eq!(r.spec().sample_rate, RATE);
        r.samples::<f32>().map(Result::unwrap).collect()
    };
    let by_path = |path: &Path| records.iter().find(|r| r.path == path).unwrap();
    for p in &report.pairs {
        let (source, reference) = (by_path(&p.source), by_path(&p.reference));
        let clip = read_clip_audio(&out, source, RATE).unwrap();
        let (s, r) = (&source.path, &reference.path);
        assert_eq!(wav(s, r, "source"), clip);
        assert_eq!(
            wav(s, r, "reference"),
            read_clip_audio(&out, reference, RATE).unwrap()
        );
        assert_eq!(wav(s, r, "dry"), clip);
        let halved: Vec<f32> = clip.iter().map(|v| v * 0.5).collect();
        assert_eq!(wav(s, r, "half"), halved);
        assert_eq!(wav(s, r, "oracle").len(), clip.len());
        assert_eq!(wav(s, r, "classic").len(), clip.len());
    }

    // References of the source's own instrument: B is A, each reference is A's velocity-80
    // test note nearest the phrase's median note, and the oracle plays the source's own score
    // with its own instrument, so the dry row (the source) is at about 0 dB from it.
    let same = TransferOptions {
        same_instrument_references: true,
        ..opts.clone()
    };
    let own: [&dyn TransferSystem; 2] = [&Dry, &oracle];
    let own_report = evaluate_systems(&same, &own, &|_, _, _| {}).unwrap();
    assert!(own_report.same_instrument_references);
    assert_eq!(own_report.pairs.len(), 6);
    for p in &own_report.pairs {
        assert_eq!(p.program_a, p.program_b);
        let mut labelled: Vec<f64> = by_path(&p.source)
            .frame_notes
            .iter()
            .filter(|n| **n >= 0)
            .map(|n| *n as f64)
            .collect();
        labelled.sort_by(f64::total_cmp);
        let n = labelled.len();
        let median = (labelled[(n - 1) / 2] + labelled[n / 2]) / 2.0;
        let nearest = records
            .iter()
            .filter(|r| r.program == p.program_a && r.split == Split::Test && r.velocity == 80)
            .filter_map(|r| r.note)
            .map(|note| (note as f64 - median).abs())
            .fold(f64::INFINITY, f64::min);
        let note = p.reference_note.unwrap() as f64;
        assert_eq!((note - median).abs(), nearest, "{p:?}");
        assert_eq!(p.reference_velocity, 80);
    }
    let dry_to_own = own_report.rows[0].oracle_distance_db.unwrap();
    let dry_to_other = dry.oracle_distance_db.unwrap();
    assert!(
        dry_to_own < 0.01,
        "the source is {dry_to_own} dB from its own oracle"
    );
    assert!(dry_to_other > 5.0, "{dry_to_other}");
    assert!(own_report
        .to_markdown()
        .contains("reference of its own instrument"));

    let md = report.to_markdown();
    assert!(md.starts_with(TABLE_HEADER), "{md}");
    assert!(md.contains("| oracle |"));
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["model_hash"].is_null());
    assert_eq!(json["rows"].as_array().map(Vec::len), Some(4));

    // A wrong phrase seed is caught before anything is computed.
    let wrong = Oracle::new(
        dataset::load_soundfont(&opts.soundfont).unwrap(),
        opts.phrase_seed + 1,
        instruments_from_manifest(&records),
    );
    let err = evaluate_systems(&opts, &[&wrong], &|_, _, _| {}).unwrap_err();
    assert!(err.to_string().contains("--phrase-seed"), "{err}");

    // Sung sources: every row gets the phrase's score sung by the formant voice (checked
    // against singing it here), the oracle still renders the score with B, and the voice keeps
    // the score's pitch.
    let sung = TransferOptions {
        voice_sources: true,
        ..opts.clone()
    };
    let is_the_voice = FnSystem::new("sung", |pair: &TransferPair<'_>| {
        let score = oracle.source_score(pair.source_record)?;
        let seed = fnv1a(pair.source_record.path.to_string_lossy().as_bytes());
        let voice = timbreswap_training::voice::sing(&score, pair.sample_rate, seed);
        if pair.source != voice.as_slice() {
            return Err("the source is not the sung phrase".to_string());
        }
        Ok(voice)
    });
    let systems: [&dyn TransferSystem; 3] = [&Dry, &oracle, &is_the_voice];
    let report = evaluate_systems(&sung, &systems, &|_, _, _| {}).unwrap();
    assert!(report.voice_sources);
    assert_eq!(report.sources_used, 6);
    let [dry, oracle_row, voice_row] = &report.rows[..] else {
        panic!("three rows");
    };
    assert!(dry.pitch_within_50_cents.unwrap() > 0.99);
    assert_eq!(voice_row.pitch_within_50_cents, dry.pitch_within_50_cents);
    // The oracle plays the score the voice sings: pYIN agrees on most frames.
    assert!(
        oracle_row.pitch_within_50_cents.unwrap() > 0.8,
        "{oracle_row:?}"
    );
    assert!(report.notes.iter().any(|n| n.starts_with("sources: sung")));

    // Whistled sources: only the phrases whose score an octave up lies in the whistled range
    // (the flute's and the trumpet's; the clarinet's are too low), each whistled an octave up
    // (checked against whistling it here) and handed to the rows with a transposition of an
    // octave down. The pitch columns measure against the source moved down an octave: the
    // oracle, which plays the score as written, agrees on most frames and the dry whistle on
    // none, and against the score the whistle is an octave up.
    let whistled = TransferOptions {
        whistle_sources: true,
        ..opts.clone()
    };
    let is_the_whistle = FnSystem::new("whistled", |pair: &TransferPair<'_>| {
        let score = oracle.source_score(pair.source_record)?;
        let seed = fnv1a(pair.source_record.path.to_string_lossy().as_bytes());
        let whistle = timbreswap_training::whistle::whistle(&score, pair.sample_rate, seed);
        if pair.source != whistle.as_slice() {
            return Err("the source is not the whistled phrase".to_string());
        }
        if pair.transpose != -f32::from(timbreswap_training::whistle::WHISTLE_OCTAVE) {
            return Err(format!("transposition {}", pair.transpose));
        }
        Ok(whistle)
    });
    let systems: [&dyn TransferSystem; 3] = [&Dry, &oracle, &is_the_whistle];
    let report = evaluate_systems(&whistled, &systems, &|_, _, _| {}).unwrap();
    assert!(report.whistle_sources && !report.voice_sources);
    assert_eq!(report.sources_used, 4);
    assert!(report.pairs.iter().all(|p| p.program_a != 71));
    let [dry, oracle_row, whistle_row] = &report.rows[..] else {
        panic!("three rows");
    };
    assert!(dry.pitch_within_50_cents.unwrap() < 0.05, "{dry:?}");
    assert!(dry.octaves_up_from_score.unwrap() > 0.9, "{dry:?}");
    assert_eq!(whistle_row.pitch_within_50_cents, dry.pitch_within_50_cents);
    assert!(
        oracle_row.pitch_within_50_cents.unwrap() > 0.8,
        "{oracle_row:?}"
    );
    assert!(report
        .notes
        .iter()
        .any(|n| n.starts_with("sources: whistled")));
    let both = TransferOptions {
        voice_sources: true,
        ..whistled.clone()
    };
    let err = evaluate_systems(&both, &[&Dry], &|_, _, _| {}).unwrap_err();
    assert!(err.to_string().contains("sung or whistled"), "{err}");

    // Rooms: every row hears the source reverberated and with noise added, and the reference
    // with noise (each checked against applying the same room to the dataset's clip, seeded
    // by its path); the oracle stays the clean score played by B.
    let room = Room {
        reverb_s: Some(0.4),
        noise_snr_db: Some(30.0),
    };
    let reference_room = Room {
        reverb_s: None,
        noise_snr_db: Some(20.0),
    };
    let roomy = TransferOptions {
        room,
        reference_room,
        ..opts.clone()
    };
    let in_its_room = |record: &ClipRecord, room: &Room, salt: u64| -> Result<Vec<f32>, String> {
        let mut clip = read_clip_audio(&out, record, RATE).map_err(|e| e.to_string())?;
        let clean = clip.clone();
        let seed = fnv1a(record.path.to_string_lossy().as_bytes()) ^ salt;
        room.apply(&mut clip, RATE, seed);
        if clip == clean {
            return Err("the room changed nothing".to_string());
        }
        Ok(clip)
    };
    let hears_the_rooms = FnSystem::new("room", |pair: &TransferPair<'_>| {
        let source = in_its_room(pair.source_record, &room, 0x726f_6f6d)?;
        let reference = in_its_room(pair.reference_record, &reference_room, 0x7265_6672)?;
        if pair.source != source.as_slice() || pair.reference != reference.as_slice() {
            return Err("the source or the reference is not the clip in its room".to_string());
        }
        Ok(source)
    });
    let systems: [&dyn TransferSystem; 2] = [&oracle, &hears_the_rooms];
    let report = evaluate_systems(&roomy, &systems, &|_, _, _| {}).unwrap();
    assert_eq!((report.room, report.reference_room), (room, reference_room));
    assert_eq!(report.rows[0].oracle_distance_db, Some(0.0));
    assert!(report.rows[1].oracle_distance_db.unwrap() > 5.0);
    assert!(report
        .notes
        .iter()
        .any(|n| n.starts_with("room: pink noise")));
    assert!(report
        .notes
        .iter()
        .any(|n| n.starts_with("reference room: pink noise")));

    // Phrase references: the same sources and the same instrument B as with note references,
    // each reference now a test-split phrase of B (checked on every pair a row sees), drawn
    // the same way every run.
    let notes = evaluate_systems(&opts, &[&Dry], &|_, _, _| {}).unwrap();
    let phrased = TransferOptions {
        phrase_references: true,
        ..opts.clone()
    };
    let reads_a_phrase_of_b = FnSystem::new("phrase of B", |pair: &TransferPair<'_>| {
        let r = pair.reference_record;
        if r.set != Set::Phrases || r.split != Split::Test || r.note.is_some() {
            return Err(format!("{} is not a test-split phrase", r.path.display()));
        }
        Ok(pair.source.to_vec())
    });
    let systems: [&dyn TransferSystem; 2] = [&Dry, &reads_a_phrase_of_b];
    let report = evaluate_systems(&phrased, &systems, &|_, _, _| {}).unwrap();
    let again = evaluate_systems(&phrased, &[&Dry], &|_, _, _| {}).unwrap();
    assert!(report.phrase_references);
    assert_eq!(report.pairs.len(), notes.pairs.len());
    for ((p, n), a) in report.pairs.iter().zip(&notes.pairs).zip(&again.pairs) {
        assert_eq!(
            (&p.source, p.program_a, p.program_b),
            (&n.source, n.program_a, n.program_b)
        );
        assert!(
            p.reference.starts_with("phrases"),
            "{}",
            p.reference.display()
        );
        assert_eq!(p.reference_note, None);
        assert_eq!(p.reference, a.reference);
    }
    assert!(report
        .notes
        .iter()
        .any(|n| n.starts_with("references: a test-split phrase")));
    let _ = std::fs::remove_dir_all(&out);
}

/// Cost of pYIN and of the features on one 4 s clip (run with `-- --ignored --nocapture`).
#[test]
#[ignore = "timing only"]
fn pyin_and_feature_cost_per_clip() {
    use timbreswap_training::transfer::{midi_to_hz, track_pitch, PYIN_FULL_RANGE_HZ};
    // A harmonic tone gliding around 220 Hz (4 s at 32 kHz).
    let x: Vec<f32> = (0..4 * RATE as usize)
        .map(|i| {
            let t = i as f64 / RATE as f64;
            let phase = std::f64::consts::TAU * 220.0 * (t + 0.3 * (1.0 - (t * 0.5).cos()));
            (1..10)
                .map(|h| (phase * h as f64).sin() / h as f64)
                .sum::<f64>() as f32
                * 0.1
        })
        .collect();
    let ranges = [
        ("full 50-2100 Hz", PYIN_FULL_RANGE_HZ),
        ("piano 33-96 +-3", (midi_to_hz(30.0), midi_to_hz(99.0))),
        ("violin 55-100 +-3", (midi_to_hz(52.0), midi_to_hz(103.0))),
        ("clarinet 50-91 +-3", (midi_to_hz(47.0), midi_to_hz(94.0))),
        (
            "phrase-sized 24 semitones",
            (midi_to_hz(45.0), midi_to_hz(69.0)),
        ),
        ("9 semitones", (midi_to_hz(52.0), midi_to_hz(61.0))),
    ];
    for (name, (lo, hi)) in ranges {
        let t = Instant::now();
        let track = track_pitch(&x, RATE, 160, lo, hi).unwrap();
        let voiced = track.voiced.iter().filter(|v| **v).count();
        println!(
            "pYIN {name}: {:.2} s per 4 s clip ({voiced} of {} frames voiced)",
            t.elapsed().as_secs_f64(),
            track.voiced.len()
        );
    }
    let ex = FeatureExtractor::new(RATE);
    let t = Instant::now();
    let feat = ex.analyse(&x);
    println!(
        "features: {:.3} s per 4 s clip ({} frames)",
        t.elapsed().as_secs_f64(),
        feat.frames
    );
}
