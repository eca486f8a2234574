//! The table on small datasets rendered at test time, against what each row must find.

use super::*;
use crate::manifest::write_manifest;

const RATE: u32 = 32_000;

/// Harmonic tone at MIDI `note` (detuned by `cents`) with partial amplitudes `h^-tilt`,
/// sounding from 0.05 s to 0.45 s of a 0.5 s clip, faded in and out over `fade` samples
/// (raised cosine; 0: hard edges).
fn tone(note: u8, cents: f32, tilt: f32, gain: f32, fade: usize) -> Vec<f32> {
    let f0 = 440.0 * 2f32.powf((note as f32 - 69.0 + cents / 100.0) / 12.0);
    let len = RATE as usize / 2;
    let (on, off) = (RATE as usize / 20, 9 * RATE as usize / 20);
    let partials: Vec<(f32, f32)> = (1..60)
        .map(|h| (h as f32 * f0, (h as f32).powf(-tilt)))
        .filter(|(f, _)| *f < 12_000.0)
        .collect();
    let norm: f32 = partials.iter().map(|(_, a)| a).sum();
    (0..len)
        .map(|i| {
            if i < on || i >= off {
                return 0.0;
            }
            let t = i as f32 / RATE as f32;
            let edge = (i - on).min(off - 1 - i);
            let ramp = if edge < fade {
                0.5 - 0.5 * (std::f32::consts::PI * edge as f32 / fade as f32).cos()
            } else {
                1.0
            };
            ramp * gain / norm
                * partials
                    .iter()
                    .map(|(f, a)| a * (2.0 * std::f32::consts::PI * f * t).sin())
                    .sum::<f32>()
        })
        .collect()
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(tag: &str) -> TempDir {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "timbreswap-eval-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn write_wav(path: &Path, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in samples {
        w.write_sample((s * 32_767.0).round() as i16).unwrap();
    }
    w.finalize().unwrap();
}

const PROGRAMS: [u8; 3] = [0, 40, 73];
const TILTS: [f32; 3] = [0.2, 1.0, 2.2];
const NOTES: [u8; 4] = [55, 60, 64, 67];

/// 3 instruments (spectral tilts) x 4 notes x 4 variants (train, train, test, valid);
/// variant `v` is detuned by `[-2, 1, 2, 0][v]` cents whatever the instrument.
fn dataset(root: &Path) -> Vec<ClipRecord> {
    dataset_detuned(root, |_, v| [-2.0, 1.0, 2.0, 0.0][v], 0)
}

/// As [`dataset`], with instrument `i`'s variant `v` detuned by `detune(i, v)` cents and
/// every tone faded in and out over `fade` samples.
fn dataset_detuned(
    root: &Path,
    detune: impl Fn(usize, usize) -> f32,
    fade: usize,
) -> Vec<ClipRecord> {
    let cfg = StftConfig::default();
    let mut records = Vec::new();
    for (i, (&program, &tilt)) in PROGRAMS.iter().zip(&TILTS).enumerate() {
        for &note in &NOTES {
            for (v, split) in [Split::Train, Split::Train, Split::Test, Split::Valid]
                .into_iter()
                .enumerate()
            {
                let cents = detune(i, v);
                let gain = [0.3, 0.22, 0.26, 0.3][v];
                let samples = tone(note, cents, tilt, gain, fade);
                let path = PathBuf::from(format!("i{i}_n{note}_v{v}.wav"));
                write_wav(&root.join(&path), &samples);
                let (on, off) = (RATE as usize / 20, 9 * RATE as usize / 20);
                let frame_notes = (0..samples.len() / cfg.hop + 1)
                    .map(|f| {
                        let s = f * cfg.hop;
                        if s >= on && s < off {
                            note as i16
                        } else {
                            -1
                        }
                    })
                    .collect();
                records.push(ClipRecord {
                    set: Set::Notes,
                    path,
                    program,
                    instrument: format!("tilt {tilt}"),
                    family: "synthetic".to_string(),
                    note: Some(note),
                    velocity: 80,
                    phrase: None,
                    split,
                    sample_rate: RATE,
                    samples: samples.len(),
                    hop: cfg.hop,
                    frame_notes,
                });
            }
        }
    }
    write_manifest(root, &records).unwrap();
    records
}

/// `sum_c p_train(c) p_test(c)` straight from label lists.
fn analytic_chance(train: &[u32], test: &[u32]) -> f64 {
    let mut labels: Vec<u32> = train.iter().chain(test).copied().collect();
    labels.sort_unstable();
    labels.dedup();
    labels
        .iter()
        .map(|c| {
            let pt = train.iter().filter(|l| *l == c).count() as f64 / train.len() as f64;
            let ps = test.iter().filter(|l| *l == c).count() as f64 / test.len() as f64;
            pt * ps
        })
        .sum()
}

/// Votes against notes worked by hand: one of each interval class, two right.
#[test]
fn pitch_errors_count_the_interval_of_each_vote() {
    let truth = [60, 60, 60, 60, 60, 72];
    let votes = [60, 61, 55, 48, 80, 72];
    let e = PitchErrors::of("m".into(), &votes, &truth).unwrap();
    assert_eq!(
        (
            e.exact,
            e.semitone,
            e.within_octave,
            e.octave,
            e.beyond_octave
        ),
        (2.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0)
    );
    assert!(PitchErrors::of("m".into(), &[], &[]).is_none());
    assert!(PitchErrors::of("m".into(), &[60], &[60, 61]).is_none());
}

#[test]
fn dsp_split_and_chance_on_a_synthetic_dataset() {
    let dir = temp_dir("table");
    let root = dir.0.clone();
    let records = dataset(&root);
    let opts = EvalOptions {
        data: root.clone(),
        set: Set::Notes,
        max_train_frames: 600,
        seed: 1,
        exclude_same_note: false,
        copy_threshold_db: None,
        test_data: None,
    };
    let report = evaluate(&opts).unwrap();
    assert_eq!(report.rows.len(), 3);
    let dsp = &report.rows[0];
    let chance_row = &report.rows[1];
    assert_eq!(dsp.model, "DSP split");
    assert_eq!(dsp.mse, Some(0.0));
    assert_eq!(dsp.instr_on_z_v, None);
    assert_eq!(dsp.pitch_on_z_v, None);
    let instr_t = dsp.instr_on_z_t.unwrap();
    let pitch_p = dsp.pitch_on_z_p.unwrap();
    assert!(instr_t >= 0.9, "instrument on z_t: {instr_t}");
    assert!(pitch_p >= 0.9, "pitch on z_p: {pitch_p}");

    // Counts: 24 train and 12 test clips (valid ignored), frames subsampled to the cap.
    let c = &report.counts;
    assert_eq!((c.train_clips, c.test_clips), (24, 12));
    assert_eq!(c.clips_without_active_frames, 0);
    assert!(c.subsampled);
    assert_eq!(c.train_frames_used, 600);

    // Chance from the label frequencies, computed here independently.
    let cfg = StftConfig::default();
    let mut frame_labels = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    let mut clip_labels = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    for r in records.iter().filter(|r| r.split != Split::Valid) {
        let reader = hound::WavReader::open(root.join(&r.path)).unwrap();
        let x: Vec<f32> = reader
            .into_samples::<i16>()
            .map(|s| s.unwrap() as f32 / 32_768.0)
            .collect();
        let feat = dsp_split::analyse_clip(&x, &cfg);
        let active = dsp_split::active_frames(&feat, &r.frame_notes);
        let train = r.split == Split::Train;
        for &f in &active {
            let (i, p) = (r.program as u32, r.frame_notes[f] as u32);
            if train {
                frame_labels[0].0.push(i);
                frame_labels[1].0.push(p);
            } else {
                frame_labels[0].1.push(i);
                frame_labels[1].1.push(p);
            }
        }
        let (i, p) = (r.program as u32, r.note.unwrap() as u32);
        if train {
            clip_labels[0].0.push(i);
            clip_labels[1].0.push(p);
        } else {
            clip_labels[0].1.push(i);
            clip_labels[1].1.push(p);
        }
    }
    assert_eq!(c.train_frames, frame_labels[0].0.len());
    assert_eq!(c.test_frames, frame_labels[0].1.len());
    let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-12;
    let instr_clip = analytic_chance(&clip_labels[0].0, &clip_labels[0].1);
    let pitch_clip = analytic_chance(&clip_labels[1].0, &clip_labels[1].1);
    let instr_frame = analytic_chance(&frame_labels[0].0, &frame_labels[0].1);
    let pitch_frame = analytic_chance(&frame_labels[1].0, &frame_labels[1].1);
    assert!((instr_clip - 1.0 / 3.0).abs() < 1e-12);
    assert!((pitch_clip - 0.25).abs() < 1e-12);
    assert!(close(chance_row.instr_on_z_t, instr_clip));
    assert!(close(chance_row.pitch_on_z_t, pitch_clip));
    assert!(close(chance_row.instr_on_z_v, instr_frame));
    assert!(close(chance_row.instr_on_z_p, instr_frame));
    assert!(close(chance_row.pitch_on_z_v, pitch_frame));
    assert!(close(chance_row.pitch_on_z_p, pitch_frame));
    assert_eq!(chance_row.mse, None);

    // The pitch-label floor, computed here from the same frame labels: each test frame is
    // guessed as the majority train instrument of its note.
    let (train_i, test_i) = &frame_labels[0];
    let (train_p, test_p) = &frame_labels[1];
    let guess = |note: u32| -> u32 {
        let mut votes: Vec<(usize, u32)> = Vec::new();
        for instrument in train_i.iter().copied() {
            if !votes.iter().any(|v| v.1 == instrument) {
                let n = train_i
                    .iter()
                    .zip(train_p)
                    .filter(|(i, p)| **i == instrument && **p == note)
                    .count();
                votes.push((n, instrument));
            }
        }
        // Most votes, then the lower program; a note never heard in training: the most
        // common train instrument.
        votes.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        if votes[0].0 > 0 {
            return votes[0].1;
        }
        let mut overall: Vec<(usize, u32)> = votes
            .iter()
            .map(|v| (train_i.iter().filter(|i| **i == v.1).count(), v.1))
            .collect();
        overall.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        overall[0].1
    };
    let right = test_i
        .iter()
        .zip(test_p)
        .filter(|(i, p)| guess(**p) == **i)
        .count();
    let floor = &report.rows[2];
    assert_eq!(floor.model, "pitch label only");
    assert!(close(
        floor.instr_on_z_p,
        right as f64 / test_i.len() as f64
    ));
    assert_eq!((floor.instr_on_z_t, floor.pitch_on_z_p), (None, None));

    // Split by instrument: every test item once, and the item-weighted mean of the
    // per-instrument shares is the table's figure.
    let split: Vec<&InstrumentRow> = report
        .by_instrument
        .iter()
        .filter(|r| r.model == "DSP split")
        .collect();
    assert_eq!(
        split.iter().map(|r| r.program).collect::<Vec<_>>(),
        PROGRAMS.map(u32::from)
    );
    assert_eq!(split.iter().map(|r| r.shares.test_clips).sum::<usize>(), 12);
    assert_eq!(
        split.iter().map(|r| r.shares.test_frames).sum::<usize>(),
        c.test_frames
    );
    let weighted = |share: fn(&InstrumentRow) -> Option<f64>,
                    items: fn(&InstrumentRow) -> usize| {
        split
            .iter()
            .map(|r| share(r).unwrap() * items(r) as f64)
            .sum::<f64>()
            / split.iter().map(|r| items(r)).sum::<usize>() as f64
    };
    assert!(close(
        dsp.instr_on_z_t,
        weighted(|r| r.shares.instr_on_z_t, |r| r.shares.test_clips)
    ));
    assert!(close(
        dsp.instr_on_z_p,
        weighted(|r| r.shares.instr_on_z_p, |r| r.shares.test_frames)
    ));
    assert!(split.iter().all(|r| r.shares.instr_on_z_v.is_none()));

    // The votes' breakdown: its right-note share is the table's cell, and the shares
    // cover every test frame.
    assert_eq!(report.pitch_errors.len(), 1);
    let e = &report.pitch_errors[0];
    assert_eq!(e.model, "DSP split");
    assert!(close(Some(e.exact), dsp.pitch_on_z_p.unwrap()));
    let total = e.exact + e.semitone + e.within_octave + e.octave + e.beyond_octave;
    assert!((total - 1.0).abs() < 1e-9, "{e:?}");

    let md = report.to_markdown();
    assert!(md.starts_with(TABLE_HEADER), "{md}");
    assert!(md.contains("| DSP split | 0.000 |"), "{md}");
    assert!(md.contains("N/A"));
    assert!(md.contains("lossless"));
    assert!(md.contains("subsampled"));
    assert!(serde_json::to_string(&report).is_ok());

    // Same seed, same table; without the cap, nothing is subsampled.
    let again = evaluate(&opts).unwrap();
    assert_eq!(again.rows, report.rows);
    let all = evaluate(&EvalOptions {
        max_train_frames: 100_000,
        ..opts.clone()
    })
    .unwrap();
    assert!(!all.counts.subsampled);
    assert_eq!(all.counts.train_frames_used, all.counts.train_frames);
    assert!(!all.to_markdown().contains("subsampled"));
}

/// With the same note excluded the table still scores every test clip, and what is left
/// is what the synthetic data allows: its timbre (a spectral tilt per instrument) does not
/// depend on the note, so the DSP split's z_t still names the instrument from other
/// notes.
#[test]
fn excluding_the_same_note_keeps_the_timbre_and_every_test_clip() {
    let dir = temp_dir("exclude");
    let root = dir.0.clone();
    dataset(&root);
    let opts = EvalOptions {
        max_train_frames: 600,
        exclude_same_note: true,
        ..EvalOptions::new(root, Set::Notes)
    };
    let report = evaluate(&opts).unwrap();
    let plain = evaluate(&EvalOptions {
        exclude_same_note: false,
        ..opts.clone()
    })
    .unwrap();
    assert_eq!(report.counts.test_clips, plain.counts.test_clips);
    let (dsp, dsp_plain) = (&report.rows[0], &plain.rows[0]);
    assert!(dsp.instr_on_z_t.unwrap() >= 0.9, "{dsp:?}");
    // The mean envelope is ruled by the tilt, so a clip's neighbours are now its
    // instrument's other notes: the pitch on z_t, found before, is gone.
    assert_eq!(dsp.pitch_on_z_t, Some(0.0));
    assert!(dsp_plain.pitch_on_z_t.unwrap() >= 0.9, "{dsp_plain:?}");
    assert!(report.to_markdown().contains("Same note excluded"));
    assert!(!plain.to_markdown().contains("Same note excluded"));
}

/// The "sounding F0 only" row on data where, as in a SoundFont, every variant of an
/// instrument's note shares that instrument's tuning (-20, 0 or +20 cents): the F0 alone
/// finds the test frame's instrument through its train variants, and with the same note
/// excluded the nearest frames are the other instruments' same note, 20 or 40 cents away,
/// never the instrument's own other notes, 300 cents or more away. Either way the
/// neighbours play the test frame's note. The first active frame of a tone, whose window
/// is mostly the silence before it, may read far off; every other frame must not, so at
/// most one frame per test clip may go against that expectation.
#[test]
fn the_sounding_f0_row_finds_a_shared_tuning_and_nothing_else() {
    let dir = temp_dir("f0");
    let root = dir.0.clone();
    dataset_detuned(&root, |i, _| [-20.0, 0.0, 20.0][i], RATE as usize / 50);
    let opts = EvalOptions {
        max_train_frames: 100_000,
        ..EvalOptions::new(root, Set::Notes)
    };
    let cfg = StftConfig::default();
    let plain = evaluate_models(&opts, &cfg, &[&SoundingF0]).unwrap();
    let excluded = evaluate_models(
        &EvalOptions {
            exclude_same_note: true,
            ..opts.clone()
        },
        &cfg,
        &[&SoundingF0],
    )
    .unwrap();
    for (report, instrument) in [(&plain, 1.0), (&excluded, 0.0)] {
        let row = &report.rows[0];
        assert_eq!(row.model, "sounding F0 only");
        assert_eq!(
            (row.mse, row.instr_on_z_t, row.instr_on_z_v),
            (None, None, None)
        );
        let frames = report.counts.test_frames as f64;
        let off = |share: Option<f64>, expected: f64| {
            ((share.unwrap() - expected).abs() * frames).round() as usize
        };
        assert_eq!(report.counts.test_clips, 12);
        assert!(off(row.instr_on_z_p, instrument) <= 12, "{row:?}");
        assert!(off(row.pitch_on_z_p, 1.0) <= 12, "{row:?}");
    }
}

/// The copy split on data where instrument 0 plays every variant of a note identically
/// (its test clips are gain-scaled copies of its train clips) and the others detune each
/// variant differently (no copies): the split counts each group's items, the groups add
/// up to the table's figures, and the copies are found by the fine structure.
#[test]
fn the_copy_split_counts_and_adds_up() {
    let dir = temp_dir("copies");
    let root = dir.0.clone();
    dataset_detuned(
        &root,
        |i, v| {
            if i == 0 {
                0.0
            } else {
                [-2.0, 1.0, 2.0, 0.0][v]
            }
        },
        0,
    );
    let report = evaluate(&EvalOptions {
        max_train_frames: 100_000,
        copy_threshold_db: Some(-40.0),
        ..EvalOptions::new(root, Set::Notes)
    })
    .unwrap();
    let dsp = &report.rows[0];
    let split: Vec<&CopyRow> = report
        .by_copy
        .iter()
        .filter(|r| r.model == "DSP split")
        .collect();
    assert_eq!(
        split
            .iter()
            .map(|r| (r.copy, r.shares.test_clips))
            .collect::<Vec<_>>(),
        [(false, 8), (true, 4)]
    );
    assert_eq!(
        split.iter().map(|r| r.shares.test_frames).sum::<usize>(),
        report.counts.test_frames
    );
    let frames = report.counts.test_frames as f64;
    let weighted: f64 = split
        .iter()
        .map(|r| r.shares.instr_on_z_p.unwrap() * r.shares.test_frames as f64)
        .sum::<f64>()
        / frames;
    assert!((weighted - dsp.instr_on_z_p.unwrap()).abs() < 1e-12);
    // Per instrument, program 0's rows are all copies, the others' none.
    for r in report
        .by_instrument
        .iter()
        .filter(|r| r.model == "DSP split")
    {
        assert_eq!(r.copy, Some(r.program == 0), "{r:?}");
    }
    assert!(report.to_markdown().contains("| DSP split | yes | 4 |"));
    // The JSON rows stay flat (the schema of the reports in docs/quality/).
    let json = serde_json::to_value(split[1]).unwrap();
    assert_eq!(json["copy"], true);
    assert_eq!(json["test_clips"], 4);
    assert!(json.get("shares").is_none());
}

/// Scoring a second dataset's test split against the first's train split: with an
/// identical copy of the dataset as the second, the table is the plain one (all train
/// frames kept: the subsample is drawn by clip position, which the second list changes).
#[test]
fn a_second_dataset_as_test_split() {
    let dir = temp_dir("second");
    let (first, second) = (dir.0.join("a"), dir.0.join("b"));
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    dataset(&first);
    dataset(&second);
    let opts = EvalOptions {
        max_train_frames: 100_000,
        ..EvalOptions::new(first, Set::Notes)
    };
    let plain = evaluate(&opts).unwrap();
    let crossed = evaluate(&EvalOptions {
        test_data: Some(second.clone()),
        ..opts.clone()
    })
    .unwrap();
    assert_eq!(crossed.rows, plain.rows);
    assert_eq!(crossed.counts, plain.counts);
    assert!(crossed.to_markdown().contains("Generalisation test"));
    // Without the second dataset's files, its clips cannot be read.
    std::fs::remove_file(second.join("i0_n55_v2.wav")).unwrap();
    assert!(evaluate(&EvalOptions {
        test_data: Some(second),
        ..opts
    })
    .is_err());
}

#[test]
fn wrong_sample_rate_is_an_error() {
    let dir = temp_dir("rate");
    let root = dir.0.clone();
    let mut records = dataset(&root);
    records[0].sample_rate = 44_100;
    write_manifest(&root, &records).unwrap();
    let err = evaluate(&EvalOptions::new(root.clone(), Set::Notes)).unwrap_err();
    assert!(
        matches!(
            err,
            EvalError::Clip(ClipReadError::SampleRate { found: 44_100, .. })
        ),
        "{err}"
    );
    // No phrases in this dataset: nothing to score.
    let err = evaluate(&EvalOptions::new(root, Set::Phrases)).unwrap_err();
    assert!(matches!(err, EvalError::NoClips { .. }), "{err}");
}

/// A model with only a variation latent: the frame's level (one value), so instrument and
/// pitch are hard to tell from it.
struct LevelOnly;

impl LatentModel for LevelOnly {
    fn name(&self) -> String {
        "level".to_string()
    }
    fn dims(&self, _cfg: &StftConfig) -> LatentDims {
        LatentDims {
            z_t: None,
            z_v: Some(1),
            z_p: None,
        }
    }
    fn encode(&self, clip: &ClipInput<'_>) -> Result<ClipLatents, String> {
        Ok(ClipLatents {
            z_v: Some(
                clip.active
                    .iter()
                    .map(|&f| clip.features.frame_db[f])
                    .collect(),
            ),
            ..ClipLatents::default()
        })
    }
}

/// Declares a pitch latent of 3 values but returns 2 per frame.
struct Broken;

impl LatentModel for Broken {
    fn name(&self) -> String {
        "broken".to_string()
    }
    fn dims(&self, _cfg: &StftConfig) -> LatentDims {
        LatentDims {
            z_p: Some(3),
            ..LatentDims::default()
        }
    }
    fn encode(&self, clip: &ClipInput<'_>) -> Result<ClipLatents, String> {
        Ok(ClipLatents {
            z_p: Some(vec![0.0; 2 * clip.active.len()]),
            ..ClipLatents::default()
        })
    }
}

#[test]
fn models_plug_in_through_the_trait() {
    let dir = temp_dir("models");
    let root = dir.0.clone();
    dataset(&root);
    let opts = EvalOptions {
        max_train_frames: 300,
        ..EvalOptions::new(root, Set::Notes)
    };
    let cfg = StftConfig::default();
    let report = evaluate_models(&opts, &cfg, &[&LevelOnly]).unwrap();
    let names: Vec<&str> = report.rows.iter().map(|r| r.model.as_str()).collect();
    assert_eq!(names, ["level", "chance", "pitch label only"]);
    let row = &report.rows[0];
    assert!(row.instr_on_z_v.is_some() && row.pitch_on_z_v.is_some());
    assert_eq!(
        (row.mse, row.instr_on_z_t, row.pitch_on_z_t),
        (None, None, None)
    );
    assert_eq!((row.instr_on_z_p, row.pitch_on_z_p), (None, None));
    let md = report.to_markdown();
    assert!(md.contains("| level | N/A | N/A |"), "{md}");

    let err = evaluate_models(&opts, &cfg, &[&Broken]).unwrap_err();
    assert!(
        matches!(&err, EvalError::Model { model, .. } if model == "broken"),
        "{err}"
    );
}
