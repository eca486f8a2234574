//! Rendering the protocol's instrument data from a General MIDI SoundFont with rustysynth:
//! isolated notes and monophonic phrases, dry, mono, at the model rate, with per-frame note
//! labels and a stable train/valid/test split (`../shared/eval-protocol.md`).
//!
//! Everything is a function of the instrument list and the seed: re-running renders the same
//! files, and clips already on disk (with the right length) are not rendered again. Programs
//! that play samples of the held-out library are left out ([`DatasetOptions::held_out`]).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use rustysynth::{SoundFont, Synthesizer, SynthesizerSettings};

use crate::instruments::Instrument;
use crate::manifest::{
    note_key, phrase_key, split_of, write_manifest, ClipRecord, Set, MANIFEST_FILE,
};

mod score;

use score::seconds;
pub use score::{
    note_score, phrase_score, play, Event, Score, ScoreNote, BEND_RANGE, NOTE_CLIP_S, NOTE_HOLD_S,
    PHRASE_S,
};

/// Velocities of the notes set.
pub const NOTE_VELOCITIES: [u8; 3] = [40, 80, 120];
/// Phrases per instrument.
pub const PHRASES_PER_INSTRUMENT: u32 = 20;
/// Gain applied to the synthesiser's output before 16-bit quantisation: FluidR3 GM peaks at
/// -2.3 dBFS over the whole protocol set with it (clipped samples are counted and reported).
pub const OUTPUT_GAIN: f32 = 2.5;

/// Which sets to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetChoice {
    /// Notes only.
    Notes,
    /// Phrases only.
    Phrases,
    /// Both.
    All,
}

/// What to render and where.
#[derive(Debug, Clone)]
pub struct DatasetOptions {
    /// The SF2 file.
    pub soundfont: PathBuf,
    /// Output folder (created).
    pub out: PathBuf,
    /// Sets to render.
    pub set: SetChoice,
    /// Sample rate, in Hz (the model rate).
    pub rate: u32,
    /// Seed of the phrase generator.
    pub seed: u64,
    /// Instruments (program, range).
    pub instruments: Vec<Instrument>,
    /// Phrases per instrument (the protocol's is [`PHRASES_PER_INSTRUMENT`]).
    pub phrases: u32,
    /// Worker threads.
    pub threads: usize,
    /// The library held out for evaluation: programs of `soundfont` that play any of its
    /// samples are not rendered ([`crate::data::overlap`]), unless `soundfont` is that library.
    /// `None`: no check.
    pub held_out: Option<PathBuf>,
}

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The SoundFont file is missing.
    #[error("SoundFont {} not found: {}", .0.display(), install_hint(.0))]
    MissingSoundFont(PathBuf),
    /// The held-out library, needed to check the SoundFont for its samples, is missing.
    #[error(
        "held-out library {} not found: it is needed to leave out programs that play its \
         samples (install it with `apt-get install timgm6mb-soundfont`, pass --held-out PATH, \
         or --held-out none to render without the check)", .0.display()
    )]
    MissingHeldOut(PathBuf),
    /// The SoundFont could not be parsed.
    #[error("cannot parse SoundFont {path}: {detail}")]
    BadSoundFont {
        /// The file.
        path: PathBuf,
        /// The parser's words.
        detail: String,
    },
    /// The synthesiser refused the settings.
    #[error("synthesiser: {0}")]
    Synth(String),
    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The folder holds audio rendered with other settings.
    #[error("{folder} was rendered with other settings ({previous}); render into a new folder")]
    SettingsChanged {
        /// The dataset folder.
        folder: PathBuf,
        /// The recorded settings (JSON).
        previous: String,
    },
    /// WAV writing.
    #[error("{path}: {source}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// The encoder's error.
        source: hound::Error,
    },
}

/// How to get a missing SoundFont: the Debian package of a library the protocol names, or
/// the list of them.
fn install_hint(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy());
    match name.and_then(|n| crate::data::library::by_file_name(&n)) {
        Some(l) => format!(
            "install it with `apt-get install {}` or pass --soundfont PATH",
            l.package
        ),
        None => "pass --soundfont PATH to an SF2 file (the protocol's libraries install with \
                 `apt-get install fluid-soundfont-gm csound-soundfont opl3-soundfont \
                 timgm6mb-soundfont`)"
            .to_string(),
    }
}

/// File in the dataset folder recording what its audio was rendered with.
pub const SETTINGS_FILE: &str = "render-settings.json";

/// What decides the content of the audio files: a folder rendered with other settings cannot be
/// resumed (its files would be kept and mislabelled).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RenderSettings {
    /// Version of the renderer's score and mixing rules.
    pub renderer_version: u32,
    /// SoundFont file name and size in bytes.
    pub soundfont: (String, u64),
    /// Sample rate, Hz.
    pub rate: u32,
    /// Phrase seed.
    pub seed: u64,
    /// Output gain.
    pub gain: f32,
    /// Programs left out because they play samples of the held-out library; `None` (absent
    /// from the file) when no check was made: folders rendered before it existed or with no
    /// held-out library.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_programs: Option<Vec<u8>>,
}

/// Bump when scores or mixing change, so old folders are not silently resumed.
pub const RENDERER_VERSION: u32 = 1;

fn settings_of(opts: &DatasetOptions, skipped: Option<&BTreeSet<u8>>) -> RenderSettings {
    RenderSettings {
        renderer_version: RENDERER_VERSION,
        soundfont: (
            opts.soundfont
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::fs::metadata(&opts.soundfont).map_or(0, |m| m.len()),
        ),
        rate: opts.rate,
        seed: opts.seed,
        gain: OUTPUT_GAIN,
        skipped_programs: skipped.map(|s| s.iter().copied().collect()),
    }
}

/// Records the settings in a new folder, or checks they match those of an existing one.
fn check_settings(
    opts: &DatasetOptions,
    skipped: Option<&BTreeSet<u8>>,
) -> Result<(), DatasetError> {
    let path = opts.out.join(SETTINGS_FILE);
    let current = settings_of(opts, skipped);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let previous: Option<RenderSettings> = serde_json::from_str(&text).ok();
            if previous.as_ref() == Some(&current) {
                return Ok(());
            }
            // A folder rendered without the held-out check resumes with it when the check
            // leaves nothing out (its clips are the same), and records the check from then on.
            let checked_now = previous.as_ref().is_some_and(|p| {
                p.skipped_programs.is_none()
                    && current.skipped_programs.as_ref().is_some_and(Vec::is_empty)
                    && RenderSettings {
                        skipped_programs: None,
                        ..current.clone()
                    } == *p
            });
            if !checked_now {
                return Err(DatasetError::SettingsChanged {
                    folder: opts.out.clone(),
                    previous: text.trim().to_string(),
                });
            }
            write_settings(&path, &current)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_settings(&path, &current),
        Err(source) => Err(DatasetError::Io { path, source }),
    }
}

fn write_settings(path: &Path, settings: &RenderSettings) -> Result<(), DatasetError> {
    let text = serde_json::to_string_pretty(settings).unwrap_or_default();
    std::fs::write(path, text).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RenderSummary {
    /// Clips in the manifest.
    pub clips: usize,
    /// Clips rendered in this run (the rest were on disk already).
    pub rendered: usize,
    /// Seconds of audio rendered in this run.
    pub audio_s: f64,
    /// Wall time of the run, in seconds.
    pub wall_s: f64,
    /// Samples that hit full scale and were clipped.
    pub clipped_samples: usize,
    /// Programs of the instrument list left out because they play samples of the held-out
    /// library.
    pub skipped_programs: Vec<u8>,
}

impl RenderSummary {
    /// Seconds of audio rendered per second of wall time.
    pub fn speed(&self) -> f64 {
        self.audio_s / self.wall_s.max(1e-9)
    }
}

/// Loads a SoundFont, with the protocol's error for a missing file.
pub fn load_soundfont(path: &Path) -> Result<Arc<SoundFont>, DatasetError> {
    if !path.exists() {
        return Err(DatasetError::MissingSoundFont(path.to_path_buf()));
    }
    let file = File::open(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    SoundFont::new(&mut BufReader::new(file))
        .map(Arc::new)
        .map_err(|e| DatasetError::BadSoundFont {
            path: path.to_path_buf(),
            detail: format!("{e:?}"),
        })
}

/// A clip to produce: its record (labels, split, path) and its score.
struct Job {
    record: ClipRecord,
    score: Score,
}

/// The programs of the instrument list that `soundfont` (the file `opts.soundfont`) plays with
/// samples of the held-out library `opts.held_out`: none when `soundfont` is that library,
/// `None` when there is no held-out library (no check).
fn held_out_programs(
    opts: &DatasetOptions,
    soundfont: &SoundFont,
) -> Result<Option<BTreeSet<u8>>, DatasetError> {
    match &opts.held_out {
        Some(held_out) if !crate::data::overlap::same_soundfont(&opts.soundfont, held_out) => {
            if !held_out.exists() {
                return Err(DatasetError::MissingHeldOut(held_out.clone()));
            }
            let held_out = load_soundfont(held_out)?;
            let shared = crate::data::overlap::programs_sharing_samples(soundfont, &held_out);
            Ok(Some(
                opts.instruments
                    .iter()
                    .map(|i| i.program)
                    .filter(|p| shared.contains(p))
                    .collect(),
            ))
        }
        Some(_) => Ok(Some(BTreeSet::new())),
        None => Ok(None),
    }
}

fn jobs(opts: &DatasetOptions, skipped: &BTreeSet<u8>) -> Vec<Job> {
    let hop = seconds(opts.rate, 0.005).max(1);
    let mut out = Vec::new();
    for inst in opts
        .instruments
        .iter()
        .filter(|i| !skipped.contains(&i.program))
    {
        if matches!(opts.set, SetChoice::Notes | SetChoice::All) {
            for key in inst.low..=inst.high {
                for velocity in NOTE_VELOCITIES {
                    let score = note_score(inst.program, key, velocity, opts.rate);
                    out.push(Job {
                        record: ClipRecord {
                            set: Set::Notes,
                            path: PathBuf::from(format!(
                                "notes/{p:03}/{p:03}_{key:03}_{velocity:03}.wav",
                                p = inst.program
                            )),
                            program: inst.program,
                            instrument: inst.name.clone(),
                            family: inst.family.clone(),
                            note: Some(key),
                            velocity,
                            phrase: None,
                            split: split_of(&note_key(inst.program, key, velocity)),
                            sample_rate: opts.rate,
                            samples: score.length,
                            hop,
                            frame_notes: score.frame_notes(hop),
                        },
                        score,
                    });
                }
            }
        }
        if matches!(opts.set, SetChoice::Phrases | SetChoice::All) {
            for index in 0..opts.phrases {
                let score = phrase_score(inst, index, opts.seed, opts.rate);
                out.push(Job {
                    record: ClipRecord {
                        set: Set::Phrases,
                        path: PathBuf::from(format!(
                            "phrases/{p:03}/{p:03}_p{index:02}.wav",
                            p = inst.program
                        )),
                        program: inst.program,
                        instrument: inst.name.clone(),
                        family: inst.family.clone(),
                        note: None,
                        velocity: score.notes.first().map_or(80, |n| n.velocity),
                        phrase: Some(index),
                        split: split_of(&phrase_key(inst.program, index)),
                        sample_rate: opts.rate,
                        samples: score.length,
                        hop,
                        frame_notes: score.frame_notes(hop),
                    },
                    score,
                });
            }
        }
    }
    out
}

/// Whether `path` already holds the expected clip (mono, right rate, right length).
pub(crate) fn already_rendered(path: &Path, rate: u32, samples: usize) -> bool {
    match hound::WavReader::open(path) {
        Ok(r) => {
            let spec = r.spec();
            spec.channels == 1 && spec.sample_rate == rate && r.duration() as usize == samples
        }
        Err(_) => false,
    }
}

/// Writes mono 16-bit PCM (scaled by [`OUTPUT_GAIN`]); returns the number of clipped samples.
pub(crate) fn write_wav(path: &Path, samples: &[f32], rate: u32) -> Result<usize, DatasetError> {
    let wav_err = |source| DatasetError::Wav {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("wav.tmp");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut clipped = 0;
    let mut w = hound::WavWriter::create(&tmp, spec).map_err(wav_err)?;
    for s in samples {
        let v = s * OUTPUT_GAIN * 32767.0;
        if v.abs() > 32767.0 {
            clipped += 1;
        }
        w.write_sample(v.round().clamp(-32768.0, 32767.0) as i16)
            .map_err(wav_err)?;
    }
    w.finalize().map_err(wav_err)?;
    std::fs::rename(&tmp, path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(clipped)
}

/// Renders the dataset (skipping clips already on disk) and writes the manifest. `progress`
/// is called with (clips done, clips total) from the worker threads.
pub fn render_dataset(
    opts: &DatasetOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<RenderSummary, DatasetError> {
    let started = Instant::now();
    let soundfont = load_soundfont(&opts.soundfont)?;
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DatasetError::Io { path, source }
    };
    let checked = held_out_programs(opts, &soundfont)?;
    std::fs::create_dir_all(&opts.out).map_err(io_err(&opts.out))?;
    check_settings(opts, checked.as_ref())?;
    let skipped = checked.unwrap_or_default();
    let jobs = jobs(opts, &skipped);
    let total = jobs.len();
    let done = AtomicUsize::new(0);
    let rendered = AtomicUsize::new(0);
    let clipped = AtomicUsize::new(0);
    let audio_samples = AtomicUsize::new(0);
    let first_error: Mutex<Option<DatasetError>> = Mutex::new(None);
    let threads = opts.threads.max(1);
    std::thread::scope(|scope| {
        for worker in 0..threads {
            let (jobs, soundfont) = (&jobs, &soundfont);
            let (done, rendered, clipped, audio_samples, first_error) =
                (&done, &rendered, &clipped, &audio_samples, &first_error);
            scope.spawn(move || {
                let mut settings = SynthesizerSettings::new(opts.rate as i32);
                settings.enable_reverb_and_chorus = false;
                let mut synth = match Synthesizer::new(soundfont, &settings) {
                    Ok(s) => s,
                    Err(e) => {
                        first_error
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .get_or_insert(DatasetError::Synth(format!("{e:?}")));
                        return;
                    }
                };
                for job in jobs.iter().skip(worker).step_by(threads) {
                    if first_error
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .is_some()
                    {
                        return;
                    }
                    let path = job.record.audio_path(&opts.out);
                    if !already_rendered(&path, opts.rate, job.record.samples) {
                        let result = path
                            .parent()
                            .map_or(Ok(()), |dir| {
                                std::fs::create_dir_all(dir).map_err(io_err(dir))
                            })
                            .and_then(|()| {
                                let audio = play(&mut synth, &job.score);
                                write_wav(&path, &audio, opts.rate)
                            });
                        match result {
                            Ok(c) => {
                                clipped.fetch_add(c, Ordering::Relaxed);
                                rendered.fetch_add(1, Ordering::Relaxed);
                                audio_samples.fetch_add(job.record.samples, Ordering::Relaxed);
                            }
                            Err(e) => {
                                first_error
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .get_or_insert(e);
                                return;
                            }
                        }
                    }
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                }
            });
        }
    });
    if let Some(e) = first_error
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
    {
        return Err(e);
    }
    let records: Vec<ClipRecord> = jobs.into_iter().map(|j| j.record).collect();
    write_manifest(&opts.out, &records).map_err(io_err(&opts.out.join(MANIFEST_FILE)))?;
    Ok(RenderSummary {
        clips: records.len(),
        rendered: rendered.into_inner(),
        audio_s: audio_samples.into_inner() as f64 / opts.rate as f64,
        wall_s: started.elapsed().as_secs_f64(),
        clipped_samples: clipped.into_inner(),
        skipped_programs: skipped.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_that_play_held_out_samples_are_left_out_and_recorded() {
        use crate::data::sf2_writer::{write_sf2, TestPreset};
        let dir = std::env::temp_dir().join(format!("timbreswap-heldout-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let tone = |from: i16| -> Vec<i16> {
            (0..2000)
                .map(|i| from.wrapping_add((i * 13) as i16))
                .collect()
        };
        let (x, y) = (tone(50), tone(-7000));
        // The training library plays X as the flute and Y as the clarinet; the held-out one
        // has X.
        let library = dir.join("library.sf2");
        let held_out = dir.join("held-out.sf2");
        let preset = |program, sample| TestPreset::new(program, 0, &[sample]);
        std::fs::write(
            &library,
            write_sf2(&[("x", &x), ("y", &y)], &[preset(73, 0), preset(71, 1)]),
        )
        .unwrap();
        std::fs::write(&held_out, write_sf2(&[("x", &x)], &[preset(40, 0)])).unwrap();
        let clarinet = Instrument {
            program: 71,
            name: "Clarinet".into(),
            family: "reed".into(),
            low: 60,
            high: 61,
        };
        let flute = Instrument {
            program: 73,
            name: "Flute".into(),
            family: "pipe".into(),
            low: 60,
            high: 61,
        };
        let opts = |out: &str, held: Option<&Path>| DatasetOptions {
            soundfont: library.clone(),
            out: dir.join(out),
            set: SetChoice::Notes,
            rate: 16_000,
            seed: 1,
            instruments: vec![flute.clone(), clarinet.clone()],
            phrases: 0,
            threads: 1,
            held_out: held.map(Path::to_path_buf),
        };
        let checked = opts("checked", Some(&held_out));
        let summary = render_dataset(&checked, &|_, _| {}).unwrap();
        assert_eq!(summary.skipped_programs, vec![73]);
        let programs: BTreeSet<u8> = crate::manifest::read_manifest(&checked.out)
            .unwrap()
            .iter()
            .map(|r| r.program)
            .collect();
        assert_eq!(programs, BTreeSet::from([71]));
        assert_eq!(summary.clips, 2 * NOTE_VELOCITIES.len());
        // The folder records the check: the same folder without it is refused.
        let text = std::fs::read_to_string(checked.out.join(SETTINGS_FILE)).unwrap();
        let recorded: RenderSettings = serde_json::from_str(&text).unwrap();
        assert_eq!(recorded.skipped_programs, Some(vec![73]));
        let unchecked = DatasetOptions {
            held_out: None,
            ..checked.clone()
        };
        assert!(matches!(
            render_dataset(&unchecked, &|_, _| {}),
            Err(DatasetError::SettingsChanged { .. })
        ));
        // Without the check, or rendering the held-out library itself, nothing is left out.
        let all = render_dataset(&opts("unchecked", None), &|_, _| {}).unwrap();
        assert!(all.skipped_programs.is_empty());
        assert_eq!(all.clips, 4 * NOTE_VELOCITIES.len());
        let itself = DatasetOptions {
            soundfont: held_out.clone(),
            ..opts("itself", Some(&held_out))
        };
        assert_eq!(
            held_out_programs(&itself, &load_soundfont(&held_out).unwrap()).unwrap(),
            Some(BTreeSet::new())
        );
        // A folder rendered without the check resumes with it when nothing is left out, and
        // records the check from then on.
        let clarinet_only = |out: &str, held: Option<&Path>| DatasetOptions {
            instruments: vec![clarinet.clone()],
            ..opts(out, held)
        };
        render_dataset(&clarinet_only("resumed", None), &|_, _| {}).unwrap();
        let resumed = render_dataset(&clarinet_only("resumed", Some(&held_out)), &|_, _| {});
        assert_eq!(resumed.unwrap().rendered, 0);
        let text = std::fs::read_to_string(dir.join("resumed").join(SETTINGS_FILE)).unwrap();
        let recorded: RenderSettings = serde_json::from_str(&text).unwrap();
        assert_eq!(recorded.skipped_programs, Some(Vec::new()));
        // A missing held-out library stops the render and says how to get it.
        let missing = opts("missing", Some(Path::new("/nonexistent/TimGM6mb.sf2")));
        let err = render_dataset(&missing, &|_, _| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("apt-get install timgm6mb-soundfont"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
