//! Dataset rendering from a real SoundFont (TimGM6mb, Debian `timgm6mb-soundfont`): the labels
//! line up with the pitch pYIN measures in the audio, the split is stable, and a second run
//! renders nothing.

use std::path::{Path, PathBuf};

use pyin::{Framing, PYINExecutor, PadMode};
use timbreswap_training::dataset::{render_dataset, DatasetError};
use timbreswap_training::manifest::{note_key, read_manifest, split_of, Set};

mod common;

use common::{temp_dir, tiny_dataset as options};

fn read_wav(path: &Path) -> Vec<f32> {
    let mut r = hound::WavReader::open(path).unwrap();
    r.samples::<i16>()
        .map(|s| s.unwrap() as f32 / 32768.0)
        .collect()
}

/// Share of frames, voiced by pYIN and labelled with a note, whose pYIN pitch rounds to the label.
fn label_agreement(samples: &[f32], labels: &[i16], hop: usize) -> (usize, usize) {
    // The test instruments sit between 196 and 466 Hz; a narrow search range and half-semitone
    // resolution keep pYIN's Viterbi pass quick.
    let mut pyin = PYINExecutor::new(100.0, 1000.0, 32_000, 2048, None, Some(hop), Some(0.5));
    let wav: Vec<f64> = samples.iter().map(|v| *v as f64).collect();
    let (_, f0, voiced, _) = pyin.pyin(&wav, f64::NAN, Framing::Center(PadMode::Constant(0.0)));
    let (mut agree, mut total) = (0, 0);
    for (i, label) in labels.iter().enumerate() {
        if *label < 0 || i >= f0.len() || !voiced[i] {
            continue;
        }
        total += 1;
        let midi = 69.0 + 12.0 * (f0[i] / 440.0).log2();
        if (midi.round() as i16 - label).abs() == 0 {
            agree += 1;
        }
    }
    (agree, total)
}

#[test]
fn labels_agree_with_pyin_and_reruns_skip() {
    let out = temp_dir("render");
    let opts = options(out.clone());
    let summary = render_dataset(&opts, &|_, _| {}).unwrap();
    // 4 + 3 notes x 3 velocities + 2 x 2 phrases.
    assert_eq!(summary.clips, 7 * 3 + 4);
    assert_eq!(summary.rendered, summary.clips);
    assert_eq!(summary.clipped_samples, 0);

    let records = read_manifest(&out).unwrap();
    assert_eq!(records.len(), summary.clips);
    for set in [Set::Notes, Set::Phrases] {
        let (mut agree, mut total) = (0, 0);
        for r in records.iter().filter(|r| r.set == set) {
            if let Some(note) = r.note {
                assert_eq!(r.split, split_of(&note_key(r.program, note, r.velocity)));
            }
            let audio = read_wav(&r.audio_path(&out));
            assert_eq!(audio.len(), r.samples);
            assert_eq!(r.frame_notes.len(), r.samples / r.hop + 1);
            let (a, t) = label_agreement(&audio, &r.frame_notes, r.hop);
            agree += a;
            total += t;
        }
        let share = agree as f64 / total.max(1) as f64;
        assert!(total > 200, "{set:?}: only {total} voiced labelled frames");
        assert!(
            share >= 0.9,
            "{set:?}: labels agree with pYIN on {:.1} % of {total} frames",
            share * 100.0
        );
    }

    // Second run: nothing to render, same manifest.
    let again = render_dataset(&opts, &|_, _| {}).unwrap();
    assert_eq!(again.rendered, 0);
    assert_eq!(read_manifest(&out).unwrap(), records);

    // Another seed into the same folder would keep old phrase audio under new labels: refused.
    let mut other = opts.clone();
    other.seed = 2;
    let err = render_dataset(&other, &|_, _| {}).unwrap_err();
    assert!(matches!(err, DatasetError::SettingsChanged { .. }), "{err}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn missing_soundfont_names_the_debian_package() {
    let mut opts = options(temp_dir("missing"));
    opts.soundfont = PathBuf::from("/nonexistent/FluidR3_GM.sf2");
    let err = render_dataset(&opts, &|_, _| {}).unwrap_err();
    assert!(matches!(err, DatasetError::MissingSoundFont(_)));
    assert!(err.to_string().contains("fluid-soundfont-gm"), "{err}");
}
