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

/// Writes `channels` (all the same length) as one interleaved WAV of `spec`'s format.
fn write_wav(path: &Path, channels: &[Vec<f32>], rate: u32, float: bool) {
    let spec = hound::WavSpec {
        channels: channels.len() as u16,
        sample_rate: rate,
        bits_per_sample: if float { 32 } else { 16 },
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..channels[0].len() {
        for c in channels {
            if float {
                w.write_sample(c[i]).unwrap();
            } else {
                w.write_sample((c[i].clamp(-1.0, 1.0) * 32_767.0) as i16)
                    .unwrap();
            }
        }
    }
    w.finalize().unwrap();
}

/// `channels` as a WAV file of `bits`-bit integers (full scale at 1.0).
fn write_wav_int(path: &Path, channels: &[Vec<f32>], rate: u32, bits: u16) {
    let spec = hound::WavSpec {
        channels: channels.len() as u16,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let full = ((1i64 << (bits - 1)) - 1) as f64;
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..channels[0].len() {
        for c in channels {
            w.write_sample((f64::from(c[i].clamp(-1.0, 1.0)) * full) as i32)
                .unwrap();
        }
    }
    w.finalize().unwrap();
}

/// The loader's decode (`reference_samples`: mixed down as it decodes, checked on the way)
/// gives what decoding every channel, checking them and mixing them down gives: the same
/// samples bit for bit, the same cut, or the same error, for every format, channel count and
/// rate, and for each bad file (a NaN or an infinity in one channel only, silence, too short,
/// empty, cut short, garbage).
#[test]
fn the_loaders_decode_is_the_checked_channel_average() {
    use timbreswap_engine::clip::{
        check_audio, check_mono, decode_file_cut, decode_mono_cut, mono_at, reference_samples,
    };
    let tone = |n: usize, f: f32, a: f32| -> Vec<f32> {
        (0..n).map(|i| a * (i as f32 * f).sin()).collect()
    };
    let mut files: Vec<PathBuf> = ["tone.wav", "tone.flac", "tone.aiff", "tone.ogg", "tone.mp3"]
        .iter()
        .map(|n| fixture(n))
        .collect();
    let mut add = |name: &str, channels: Vec<Vec<f32>>, rate: u32, float: bool| {
        let path = temp(name);
        write_wav(&path, &channels, rate, float);
        files.push(path);
    };
    add("mono-32k.wav", vec![tone(9_000, 0.03, 0.4)], 32_000, true);
    // The common case of a reference: 16-bit stereo at 44.1 kHz, one channel at full scale.
    add(
        "int16-stereo.wav",
        vec![tone(9_000, 0.03, 1.0), tone(9_000, 0.05, -0.7)],
        44_100,
        false,
    );
    add(
        "three-48k.wav",
        vec![
            tone(9_000, 0.03, 0.4),
            tone(9_000, 0.07, -0.9),
            tone(9_000, 0.01, 0.2),
        ],
        48_000,
        false,
    );
    let mut right_nan = vec![tone(9_000, 0.03, 0.4), tone(9_000, 0.05, 0.3)];
    right_nan[1][4_321] = f32::NAN;
    add("right-nan.wav", right_nan, 44_100, true);
    let mut left_inf = vec![tone(9_000, 0.03, 0.4), tone(9_000, 0.05, 0.3)];
    left_inf[0][8_999] = f32::NEG_INFINITY;
    add("left-inf.wav", left_inf, 44_100, true);
    // Quiet in one channel, loud in the other: the peak is over every channel.
    add(
        "one-loud-channel.wav",
        vec![vec![1e-6; 9_000], tone(9_000, 0.05, 0.5)],
        44_100,
        true,
    );
    add(
        "silent-stereo.wav",
        vec![vec![-0.0; 9_000], vec![1e-5; 9_000]],
        44_100,
        true,
    );
    add(
        "too-short.wav",
        vec![vec![0.5; 100], vec![0.5; 100]],
        44_100,
        true,
    );
    add("empty-stereo.wav", vec![vec![], vec![]], 44_100, true);
    // A NaN and a loud sample just past a cut (0.05 s at 32 kHz: frame 1 600), in the same
    // packet as the frames before it: neither is kept, so neither counts.
    let mut past_cut = vec![vec![1e-6f32; 6_400], vec![1e-6f32; 6_400]];
    past_cut[1][1_700] = f32::NAN;
    past_cut[0][1_650] = 0.9;
    add("past-the-cut.wav", past_cut, 32_000, true);
    let whole = temp("long-stereo.wav");
    write_wav(
        &whole,
        &[tone(40_000, 0.02, 0.5), tone(40_000, 0.04, 0.5)],
        32_000,
        true,
    );
    let bytes = std::fs::read(&whole).unwrap();
    let cut = temp("cut-stereo.wav");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    files.extend([whole, cut]);
    // 24 and 32-bit integers (read straight from the packets, not through the decoder).
    for (name, bits, channels) in [("int24-stereo.wav", 24, 2), ("int32-three.wav", 32, 3)] {
        let path = temp(name);
        let channels: Vec<Vec<f32>> = (0..channels)
            .map(|c| tone(9_000, 0.02 + 0.01 * c as f32, 0.9))
            .collect();
        write_wav_int(&path, &channels, 48_000, bits);
        files.push(path);
    }
    let garbage = temp("garbage-stereo.wav");
    std::fs::write(&garbage, b"RIFF\x10\x00\x00\x00WAVEfmt garbage garbage").unwrap();
    files.push(garbage);

    for path in &files {
        for rate in [32_000, 22_050] {
            let want = decode_file_cut(path, MAX_CLIP_SECONDS).and_then(|audio| {
                check_audio(path, &audio)?;
                Ok((mono_at(&audio, rate), audio.truncated))
            });
            let got = reference_samples(path, rate);
            match (&got, &want) {
                (Ok((g, gt)), Ok((w, wt))) => {
                    assert_eq!(gt, wt, "{}", path.display());
                    assert_eq!(
                        g.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        w.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "{} at {rate} Hz",
                        path.display()
                    );
                }
                (Err(g), Err(w)) => assert_eq!(g.to_string(), w.to_string()),
                _ => panic!("{}: {got:?} against {want:?}", path.display()),
            }
        }
        // Cut at a limit: the same first samples, both say so, and the checks read only
        // what is kept.
        if let (Ok(mono), Ok(all)) = (decode_mono_cut(path, 0.05), decode_file_cut(path, 0.05)) {
            assert_eq!(mono.truncated, all.truncated, "{}", path.display());
            assert_eq!(mono.sample_rate, all.sample_rate);
            assert_eq!(
                mono.samples.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                all.mono().iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{}",
                path.display()
            );
            assert_eq!(
                check_mono(path, &mono).map_err(|e| e.to_string()),
                check_audio(path, &all).map_err(|e| e.to_string()),
                "{}",
                path.display()
            );
        }
    }
}
