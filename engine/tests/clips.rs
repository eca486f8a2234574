//! Reference-clip decoding and analysis: every supported format gives the same timbre as the
//! WAV original, and every kind of bad file gives its own clear error (never a panic).

use std::path::{Path, PathBuf};

use timbreswap_engine::clip::{decode_file, load_reference, MAX_CLIP_SECONDS};
use timbreswap_engine::{ClipError, StftConfig};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("timbreswap-clips-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn write_float_wav(path: &Path, samples: &[f32], rate: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in samples {
        w.write_sample(*s).unwrap();
    }
    w.finalize().unwrap();
}

/// WAV, FLAC, AIFF, OGG/Vorbis and MP3 versions of one clip decode to the same rate, channel
/// count and (within codec padding) length, and give nearly the same timbre descriptor.
#[test]
fn every_format_decodes_to_the_same_timbre() {
    let cfg = StftConfig::default();
    let wav = decode_file(&fixture("tone.wav"), MAX_CLIP_SECONDS).unwrap();
    assert_eq!((wav.sample_rate, wav.channels.len()), (22_050, 2));
    let reference = load_reference(&fixture("tone.wav"), &cfg).unwrap();
    for name in ["tone.flac", "tone.aiff", "tone.ogg", "tone.mp3"] {
        let audio = decode_file(&fixture(name), MAX_CLIP_SECONDS).unwrap();
        assert_eq!(audio.sample_rate, 22_050, "{name}");
        assert_eq!(audio.channels.len(), 2, "{name}");
        // Lossy codecs may keep encoder delay and padding (up to two MP3 frames or a Vorbis
        // block: 0.1 s at 22.05 kHz); the lossless ones are sample-exact.
        let lossy = name.ends_with(".mp3") || name.ends_with(".ogg");
        let slack = if lossy { 0.105 } else { 1e-6 };
        let seconds = audio.duration_s();
        assert!(
            seconds >= 0.4 - 1e-9 && seconds - 0.4 < slack,
            "{name}: {seconds} s"
        );
        let d = load_reference(&fixture(name), &cfg).unwrap();
        // Lossy codecs differ slightly and low-pass (MP3 at 22.05 kHz above ~8 kHz); compare over
        // 190 Hz - 7 kHz (natural-log units).
        let rms = ((3..112)
            .map(|k| (d.envelope[k] - reference.envelope[k]).powi(2))
            .sum::<f32>()
            / 109.0)
            .sqrt();
        assert!(
            rms < 0.25,
            "{name}: envelope differs from the WAV's by {rms}"
        );
    }
}

#[test]
fn missing_file_is_an_io_error() {
    let err = load_reference(&fixture("no-such-file.wav"), &StftConfig::default()).unwrap_err();
    assert!(matches!(err, ClipError::Io { .. }), "{err}");
}

#[test]
fn garbage_is_refused_without_panic() {
    for (name, bytes) in [
        (
            "garbage.wav",
            b"RIFF\x10\x00\x00\x00WAVEfmt garbage garbage".to_vec(),
        ),
        ("text.mp3", b"this is not an mp3 file at all".repeat(50)),
        (
            "noise.ogg",
            (0..4000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect(),
        ),
    ] {
        let path = temp(name);
        std::fs::write(&path, bytes).unwrap();
        let err = load_reference(&path, &StftConfig::default()).unwrap_err();
        assert!(
            matches!(
                err,
                ClipError::Unsupported { .. } | ClipError::Corrupt { .. } | ClipError::Empty { .. }
            ),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(name));
    }
}

#[test]
fn truncated_file_does_not_panic() {
    let bytes = std::fs::read(fixture("tone.flac")).unwrap();
    let path = temp("truncated.flac");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    // Either the first half decodes or a clear error comes back.
    match load_reference(&path, &StftConfig::default()) {
        Ok(d) => assert!(d.duration_s < 0.4),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

#[test]
fn empty_silent_nonfinite_and_too_long_clips_are_refused() {
    let cfg = StftConfig::default();
    let empty = temp("empty.wav");
    write_float_wav(&empty, &[], 44_100);
    assert!(matches!(
        load_reference(&empty, &cfg),
        Err(ClipError::Empty { .. })
    ));

    let silent = temp("silent.wav");
    write_float_wav(&silent, &vec![0.0; 44_100], 44_100);
    assert!(matches!(
        load_reference(&silent, &cfg),
        Err(ClipError::Silent { .. })
    ));

    let nan = temp("nan.wav");
    let mut samples: Vec<f32> = (0..44_100).map(|i| (i as f32 * 0.05).sin()).collect();
    samples[1000] = f32::NAN;
    write_float_wav(&nan, &samples, 44_100);
    assert!(matches!(
        load_reference(&nan, &cfg),
        Err(ClipError::NonFinite { .. })
    ));

    // The length limit (10 minutes for references) applies while decoding.
    let err = decode_file(&fixture("tone.wav"), 0.1).unwrap_err();
    assert!(matches!(err, ClipError::TooLong { .. }), "{err}");
    // References are cut at the limit instead, and say so.
    let full = decode_file(&fixture("tone.wav"), 600.0).unwrap();
    assert!(!full.truncated);
    let cut = timbreswap_engine::clip::decode_file_cut(&fixture("tone.wav"), 0.1).unwrap();
    assert!(cut.truncated);
    let keep = (0.1 * cut.sample_rate as f64) as usize;
    assert_eq!(cut.channels[0].len(), keep);
    assert_eq!(cut.channels[0][..], full.channels[0][..keep]);
}

/// Each bad file gets the message that says what is wrong with it: a folder, random bytes
/// (no format recognised, not "end of stream"), a WAV cut short by an interrupted copy, and a
/// clip too short to carry a timbre.
#[test]
fn bad_files_get_messages_that_name_the_problem() {
    let cfg = StftConfig::default();
    let dir = temp("a-folder.wav");
    std::fs::create_dir_all(&dir).unwrap();
    let err = load_reference(&dir, &cfg).unwrap_err();
    assert!(matches!(err, ClipError::NotAFile { .. }), "{err}");
    assert!(err.to_string().contains("folder"), "{err}");

    let random = temp("random.bin");
    let bytes: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_246_822_519).rotate_left(13) >> 7) as u8)
        .collect();
    std::fs::write(&random, bytes).unwrap();
    let err = load_reference(&random, &cfg).unwrap_err();
    assert!(!err.to_string().contains("end of stream"), "{err}");
    assert!(matches!(err, ClipError::Unsupported { .. }), "{err}");

    let tone: Vec<f32> = (0..32_000)
        .map(|n| 0.3 * (std::f32::consts::TAU * 440.0 * n as f32 / 32_000.0).sin())
        .collect();
    let whole = temp("whole.wav");
    write_float_wav(&whole, &tone, 32_000);
    let bytes = std::fs::read(&whole).unwrap();
    let cut = temp("cut.wav");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_reference(&cut, &cfg).unwrap_err();
    match &err {
        ClipError::CutShort {
            found, expected, ..
        } => {
            assert_eq!(*expected, 32_000);
            assert!(*found < 16_000 && *found > 15_000, "{err}");
        }
        other => panic!("a cut WAV gave: {other}"),
    }
    assert!(load_reference(&whole, &cfg).is_ok());

    let one = temp("one-sample.wav");
    write_float_wav(&one, &[0.5], 32_000);
    let err = load_reference(&one, &cfg).unwrap_err();
    assert!(matches!(err, ClipError::TooShort { .. }), "{err}");
}
