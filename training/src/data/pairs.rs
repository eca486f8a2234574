//! The paired swap set: one score rendered twice, as instrument A (the source) and as
//! instrument B (the target), plus another score rendered as B (the reference the timbre
//! encoder reads). Instruments come from every training library ([`super::library`]), A and B
//! from the same pool (the protocol's 36 programs and voice-like and lead programs, so sources
//! cover more than sampled instruments); with [`PairOptions::augment_share`], one random
//! [`TimbreAugment`] colours the target and its reference alike (a new instrument).
//!
//! Each score stays inside both instruments' ranges: B is drawn among the instruments whose
//! range overlaps A's by at least [`MIN_OVERLAP`] semitones, and the phrase (velocity changes,
//! legato, portamento, vibrato, swells, rests: [`crate::dataset::phrase_score`]) is written in
//! the overlap. The set is a pure function of its options: rendering skips pairs already on
//! disk, so an interrupted run resumes.
//!
//! Files: `pairs/NNNNN_{src,tgt,ref}.wav` (mono 16-bit PCM, the dataset's gain) and
//! `pairs.jsonl`, one [`PairRecord`] per line.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use rustysynth::{Synthesizer, SynthesizerSettings};
use serde::{Deserialize, Serialize};

use super::augment::TimbreAugment;
use super::library::{has_program, Library, LibraryError};
use crate::dataset::{already_rendered, phrase_score, play, write_wav, DatasetError, Score};
use crate::instruments::Instrument;
use crate::manifest::fnv1a;
use crate::rng::{mix64, SplitMix64};

/// Manifest of a pair folder.
pub const PAIRS_MANIFEST: &str = "pairs.jsonl";
/// Settings file of a pair folder (a folder rendered with other settings is refused).
pub const PAIR_SETTINGS: &str = "pair-settings.json";
/// Least overlap of A's and B's ranges, semitones (the phrase generator's register is 18).
pub const MIN_OVERLAP: u8 = 12;
/// Share of pairs held out for validation (by a stable hash of the index), percent.
pub const VALID_PERCENT: u64 = 5;
/// Default share of pairs whose target and reference get a [`TimbreAugment`].
pub const DEFAULT_AUGMENT_SHARE: f64 = 0.5;

/// Programs beyond the protocol's list, so sources and targets include voices, whistles and
/// synth leads: (0-based GM program, name, family, lowest and highest MIDI note).
pub const EXTRA_PROGRAMS: [(u8, &str, &str, u8, u8); 10] = [
    (22, "Harmonica", "reed", 55, 84),
    (50, "Synth Strings 1", "ensemble", 36, 96),
    (53, "Voice Oohs", "voice", 48, 79),
    (54, "Synth Voice", "voice", 48, 79),
    (62, "Synth Brass 1", "brass", 36, 84),
    (74, "Recorder", "pipe", 60, 91),
    (78, "Whistle", "pipe", 60, 96),
    (82, "Lead 3 (calliope)", "synth", 48, 91),
    (84, "Lead 5 (charang)", "synth", 40, 84),
    (85, "Lead 6 (voice)", "synth", 48, 84),
];

/// The protocol's instruments plus [`EXTRA_PROGRAMS`] (those not already listed).
pub fn instrument_pool(protocol: &[Instrument]) -> Vec<Instrument> {
    let mut pool = protocol.to_vec();
    for (program, name, family, low, high) in EXTRA_PROGRAMS {
        if !pool.iter().any(|i| i.program == program) {
            pool.push(Instrument {
                program,
                name: name.to_string(),
                family: family.to_string(),
                low,
                high,
            });
        }
    }
    pool
}

/// Validation or training membership of pair `index` (stable hash, [`VALID_PERCENT`] % valid).
pub fn is_valid_pair(index: usize) -> bool {
    fnv1a(format!("pair/{index}").as_bytes()) % 100 < VALID_PERCENT
}

/// What to render and where.
#[derive(Debug, Clone)]
pub struct PairOptions {
    /// Output folder (created).
    pub out: PathBuf,
    /// Libraries to draw A's and B's renderings from (each pair picks one for A and one for B).
    pub libraries: Vec<Library>,
    /// Instrument pool (see [`instrument_pool`]).
    pub instruments: Vec<Instrument>,
    /// Pairs to render.
    pub count: usize,
    /// Sample rate, Hz (the model rate).
    pub rate: u32,
    /// Seed of every draw.
    pub seed: u64,
    /// Share of pairs (0-1) whose target and reference are coloured by one random augmentation.
    pub augment_share: f64,
    /// Share of pairs (0-1) whose source is sung instead of played: the same score sung by
    /// the formant voice ([`crate::voice::sing`]: vowels, vibrato, breath), a synthetic
    /// vowel-like source, at the played source's peak level. Only pairs whose register lies
    /// inside [`crate::voice::VOICE_RANGE`]; their `library_a` is `"voice"`. 0 draws nothing,
    /// so a set rendered without it is unchanged.
    pub voice_share: f64,
    /// Worker threads.
    pub threads: usize,
}

/// One pair, as written to `pairs.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairRecord {
    /// Pair index (file names and the split hash).
    pub index: usize,
    /// Held out for validation.
    pub valid: bool,
    /// Library of the source rendering.
    pub library_a: String,
    /// Source program (0-based GM).
    pub program_a: u8,
    /// Library of the target and the reference.
    pub library_b: String,
    /// Target program (0-based GM).
    pub program_b: u8,
    /// Range the shared score was written in (MIDI notes).
    pub register: (u8, u8),
    /// The augmentation of the target and the reference ("none" when off).
    pub augment: String,
    /// Samples per clip (all three have this length).
    pub samples: usize,
    /// Sample rate, Hz.
    pub sample_rate: u32,
}

impl PairRecord {
    /// Paths of the source, target and reference audio inside `root`.
    pub fn paths(&self, root: &Path) -> [PathBuf; 3] {
        ["src", "tgt", "ref"].map(|k| root.join(format!("pairs/{:05}_{k}.wav", self.index)))
    }
}

/// What decides a pair folder's audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PairSettings {
    libraries: Vec<String>,
    programs: Vec<u8>,
    rate: u32,
    seed: u64,
    augment_share: f64,
    /// Absent from folders rendered before it existed (they had none).
    #[serde(default)]
    voice_share: f64,
    /// Programs left out per library because they play samples of the held-out library.
    /// Absent from folders rendered before the check existed: such a folder is refused where
    /// the check now leaves programs out (its pairs may have used them).
    #[serde(default)]
    held_out_programs: Vec<(String, Vec<u8>)>,
}

/// A planned pair: its record and what to render.
struct PairPlan {
    record: PairRecord,
    library_a: usize,
    library_b: usize,
    source: Score,
    target: Score,
    reference: Score,
    augment: TimbreAugment,
    /// The source is sung ([`PairOptions::voice_share`]).
    sung: bool,
}

/// The score with its program change set to `program`.
fn with_program(score: &Score, program: u8) -> Score {
    let mut s = score.clone();
    for e in s.events.iter_mut().filter(|e| e.command == 0xC0) {
        e.data1 = i32::from(program);
    }
    s
}

/// Plans pair `index`: draws A (library, instrument), then B among the instruments another or
/// the same library has whose range overlaps A's by [`MIN_OVERLAP`] (never A itself in A's
/// library), the scores and the augmentation. `None` when no B fits A.
fn plan_pair(opts: &PairOptions, available: &[Vec<usize>], index: usize) -> Option<PairPlan> {
    let mut rng = SplitMix64::new(mix64(opts.seed ^ 0x5041_4952 ^ (index as u64) << 20));
    let libs = opts.libraries.len();
    let lib_a = rng.below(libs as u64) as usize;
    let a = available[lib_a][rng.below(available[lib_a].len() as u64) as usize];
    let inst_a = &opts.instruments[a];
    let candidates: Vec<(usize, usize)> = (0..libs)
        .flat_map(|l| available[l].iter().map(move |&i| (l, i)))
        .filter(|&(l, i)| {
            let b = &opts.instruments[i];
            let overlap = i32::from(inst_a.high.min(b.high)) - i32::from(inst_a.low.max(b.low));
            !(l == lib_a && i == a) && overlap >= i32::from(MIN_OVERLAP)
        })
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let (lib_b, b) = candidates[rng.below(candidates.len() as u64) as usize];
    let inst_b = &opts.instruments[b];
    let register = (inst_a.low.max(inst_b.low), inst_a.high.min(inst_b.high));
    let shared = Instrument {
        program: inst_a.program,
        name: inst_a.name.clone(),
        family: inst_a.family.clone(),
        low: register.0,
        high: register.1,
    };
    let score_seed = rng.next_u64();
    let source = phrase_score(&shared, index as u32, score_seed, opts.rate);
    let target = with_program(&source, inst_b.program);
    let reference = phrase_score(
        inst_b,
        index as u32 ^ 0x8000_0000,
        rng.next_u64(),
        opts.rate,
    );
    let augment = if rng.unit() < opts.augment_share {
        TimbreAugment::random(&mut rng)
    } else {
        TimbreAugment::none()
    };
    // Drawn last, and only when asked for, so the other draws stay what they were.
    let (low, high) = crate::voice::VOICE_RANGE;
    let sung = opts.voice_share > 0.0
        && register.0 >= low
        && register.1 <= high
        && rng.unit() < opts.voice_share;
    Some(PairPlan {
        record: PairRecord {
            index,
            valid: is_valid_pair(index),
            library_a: if sung {
                "voice".to_string()
            } else {
                opts.libraries[lib_a].name.to_string()
            },
            program_a: inst_a.program,
            library_b: opts.libraries[lib_b].name.to_string(),
            program_b: inst_b.program,
            register,
            augment: augment.describe(),
            samples: source.length,
            sample_rate: opts.rate,
        },
        library_a: lib_a,
        library_b: lib_b,
        source,
        target,
        reference,
        augment,
        sung,
    })
}

/// Why the pair set could not be rendered or read.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    /// No library, or no instrument any library has.
    #[error("{0}")]
    Empty(String),
    /// Rendering or writing failed.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The folder holds pairs rendered with other settings.
    #[error(
        "{folder} holds pairs rendered with other settings ({previous}); render into a new folder"
    )]
    SettingsChanged {
        /// The folder.
        folder: PathBuf,
        /// The recorded settings (JSON).
        previous: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A pair's audio does not match its record.
    #[error("{path}: {detail}")]
    Audio {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PairError + '_ {
    move |source| PairError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a render did.
#[derive(Debug, Clone)]
pub struct PairSummary {
    /// Pairs in the set.
    pub pairs: usize,
    /// Pairs rendered now (the others were on disk).
    pub rendered: usize,
    /// Programs skipped per library because the library lacks them: (library, programs).
    pub skipped: Vec<(String, Vec<u8>)>,
    /// Programs left out per library because they play samples of the held-out library:
    /// (library, programs).
    pub held_out: Vec<(String, Vec<u8>)>,
    /// Samples clipped when writing 16-bit PCM.
    pub clipped_samples: usize,
    /// Wall-clock seconds.
    pub wall_s: f64,
}

/// Renders the pair set (skipping pairs already on disk) and writes `pairs.jsonl`. Programs a
/// library lacks are skipped for that library (listed in the summary); `progress` gets
/// (pairs done, pairs total) from the worker threads.
pub fn render_pairs(
    opts: &PairOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<PairSummary, PairError> {
    let started = Instant::now();
    if opts.libraries.is_empty() {
        return Err(PairError::Empty("no library to render pairs from".into()));
    }
    let available: Vec<Vec<usize>> = opts
        .libraries
        .iter()
        .map(|l| {
            (0..opts.instruments.len())
                .filter(|&i| {
                    let program = opts.instruments[i].program;
                    has_program(&l.soundfont, program) && !l.held_out_programs.contains(&program)
                })
                .collect()
        })
        .collect();
    let programs_where = |keep: &dyn Fn(&Library, u8) -> bool| -> Vec<(String, Vec<u8>)> {
        opts.libraries
            .iter()
            .map(|l| {
                let programs: Vec<u8> = opts
                    .instruments
                    .iter()
                    .map(|i| i.program)
                    .filter(|&p| keep(l, p))
                    .collect();
                (l.name.to_string(), programs)
            })
            .filter(|(_, programs)| !programs.is_empty())
            .collect()
    };
    let skipped = programs_where(&|l, p| !has_program(&l.soundfont, p));
    let held_out = programs_where(&|l, p| l.held_out_programs.contains(&p));
    if let Some((l, _)) = opts
        .libraries
        .iter()
        .zip(&available)
        .find(|(_, a)| a.is_empty())
    {
        return Err(PairError::Empty(format!(
            "{} has none of the {} programs asked for",
            l.name,
            opts.instruments.len()
        )));
    }
    std::fs::create_dir_all(opts.out.join("pairs")).map_err(io_err(&opts.out))?;
    let settings = PairSettings {
        held_out_programs: held_out.clone(),
        libraries: opts.libraries.iter().map(|l| l.name.to_string()).collect(),
        programs: opts.instruments.iter().map(|i| i.program).collect(),
        rate: opts.rate,
        seed: opts.seed,
        augment_share: opts.augment_share,
        voice_share: opts.voice_share,
    };
    let settings_path = opts.out.join(PAIR_SETTINGS);
    let text = serde_json::to_string_pretty(&settings).expect("settings serialise");
    match std::fs::read_to_string(&settings_path) {
        Ok(previous) => {
            let same = serde_json::from_str::<PairSettings>(&previous).is_ok_and(|p| p == settings);
            if !same {
                return Err(PairError::SettingsChanged {
                    folder: opts.out.clone(),
                    previous,
                });
            }
        }
        Err(_) => std::fs::write(&settings_path, &text).map_err(io_err(&settings_path))?,
    }
    let plans: Vec<PairPlan> = (0..opts.count)
        .filter_map(|i| plan_pair(opts, &available, i))
        .collect();
    let total = plans.len();
    let done = AtomicUsize::new(0);
    let rendered = AtomicUsize::new(0);
    let clipped = AtomicUsize::new(0);
    let first_error: Mutex<Option<PairError>> = Mutex::new(None);
    let threads = opts.threads.max(1);
    let fail = |e: PairError| {
        first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(e);
    };
    std::thread::scope(|scope| {
        for worker in 0..threads {
            let (plans, done, rendered, clipped, fail, first_error) =
                (&plans, &done, &rendered, &clipped, &fail, &first_error);
            scope.spawn(move || {
                let mut settings = SynthesizerSettings::new(opts.rate as i32);
                settings.enable_reverb_and_chorus = false;
                let synths: Result<Vec<Synthesizer>, _> = opts
                    .libraries
                    .iter()
                    .map(|l| Synthesizer::new(&l.soundfont, &settings))
                    .collect();
                let mut synths = match synths {
                    Ok(s) => s,
                    Err(e) => return fail(DatasetError::Synth(format!("{e:?}")).into()),
                };
                for plan in plans.iter().skip(worker).step_by(threads) {
                    if first_error
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .is_some()
                    {
                        return;
                    }
                    let paths = plan.record.paths(&opts.out);
                    let n = plan.record.samples;
                    if !paths.iter().all(|p| already_rendered(p, opts.rate, n)) {
                        let mut source = play(&mut synths[plan.library_a], &plan.source);
                        if plan.sung {
                            let seed = mix64(opts.seed ^ 0x766f_6963 ^ plan.record.index as u64);
                            let mut voice = crate::voice::sing(&plan.source, opts.rate, seed);
                            let peak = |x: &[f32]| x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                            let gain = peak(&source) / crate::voice::VOICE_PEAK;
                            voice.iter_mut().for_each(|v| *v *= gain);
                            source = voice;
                        }
                        let mut target = play(&mut synths[plan.library_b], &plan.target);
                        let mut reference = play(&mut synths[plan.library_b], &plan.reference);
                        plan.augment.apply(&mut target, opts.rate);
                        plan.augment.apply(&mut reference, opts.rate);
                        for (path, audio) in paths.iter().zip([&source, &target, &reference]) {
                            match write_wav(path, audio, opts.rate) {
                                Ok(c) => {
                                    clipped.fetch_add(c, Ordering::Relaxed);
                                }
                                Err(e) => return fail(e.into()),
                            }
                        }
                        rendered.fetch_add(1, Ordering::Relaxed);
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
    let manifest = opts.out.join(PAIRS_MANIFEST);
    let tmp = manifest.with_extension("jsonl.tmp");
    {
        let mut w = BufWriter::new(std::fs::File::create(&tmp).map_err(io_err(&tmp))?);
        for p in &plans {
            let line = serde_json::to_string(&p.record).expect("record serialises");
            writeln!(w, "{line}").map_err(io_err(&tmp))?;
        }
        w.flush().map_err(io_err(&tmp))?;
    }
    std::fs::rename(&tmp, &manifest).map_err(io_err(&manifest))?;
    Ok(PairSummary {
        pairs: total,
        rendered: rendered.into_inner(),
        skipped,
        held_out,
        clipped_samples: clipped.into_inner(),
        wall_s: started.elapsed().as_secs_f64(),
    })
}

/// Reads `pairs.jsonl` of a pair folder.
pub fn read_pairs(root: &Path) -> Result<Vec<PairRecord>, PairError> {
    let path = root.join(PAIRS_MANIFEST);
    let file = std::fs::File::open(&path).map_err(io_err(&path))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io_err(&path))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).map_err(|e| PairError::Audio {
            path: path.clone(),
            detail: format!("line {}: {e}", i + 1),
        })?);
    }
    Ok(out)
}

/// One pair's audio, mono at the model rate.
#[derive(Debug, Clone)]
pub struct PairAudio {
    /// Instrument A playing the score.
    pub source: Vec<f32>,
    /// Instrument B playing the same score, scaled to the source's RMS over the samples where
    /// either sounds (the swap keeps the performance's level; B's own loudness is not asked for).
    pub target: Vec<f32>,
    /// Instrument B playing another score (the timbre encoder's input), at its own level.
    pub reference: Vec<f32>,
}

/// Level under which a sample counts as silent when matching levels (about -80 dBFS).
const SILENT: f32 = 1e-4;

/// Reads pair `record`'s audio from `root` (16-bit PCM WAV, checked against the record), with
/// the target's level matched to the source's.
pub fn read_pair_audio(root: &Path, record: &PairRecord) -> Result<PairAudio, PairError> {
    let read = |path: &Path| -> Result<Vec<f32>, PairError> {
        let reader = hound::WavReader::open(path).map_err(|e| PairError::Audio {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let spec = reader.spec();
        if spec.channels != 1
            || spec.sample_rate != record.sample_rate
            || spec.bits_per_sample != 16
        {
            return Err(PairError::Audio {
                path: path.to_path_buf(),
                detail: format!(
                    "expected mono 16-bit at {} Hz, found {} channels, {} bits at {} Hz",
                    record.sample_rate, spec.channels, spec.bits_per_sample, spec.sample_rate
                ),
            });
        }
        let samples: Result<Vec<f32>, _> = reader
            .into_samples::<i16>()
            .map(|s| s.map(|v| f32::from(v) / 32_768.0))
            .collect();
        let samples = samples.map_err(|e| PairError::Audio {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        if samples.len() != record.samples {
            return Err(PairError::Audio {
                path: path.to_path_buf(),
                detail: format!("{} samples, expected {}", samples.len(), record.samples),
            });
        }
        Ok(samples)
    };
    let [s, t, r] = record.paths(root);
    let source = read(&s)?;
    let mut target = read(&t)?;
    let reference = read(&r)?;
    let (mut es, mut et) = (0.0f64, 0.0f64);
    for (a, b) in source.iter().zip(&target) {
        if a.abs() > SILENT || b.abs() > SILENT {
            es += f64::from(*a) * f64::from(*a);
            et += f64::from(*b) * f64::from(*b);
        }
    }
    if et > 0.0 && es > 0.0 {
        let g = (es / et).sqrt() as f32;
        target.iter_mut().for_each(|x| *x *= g);
    }
    Ok(PairAudio {
        source,
        target,
        reference,
    })
}

/// Loads the training libraries named on the command line, each with its SF2 path (`None`:
/// Debian's); the first one that cannot be loaded is reported.
pub fn load_libraries(names: &[(String, Option<PathBuf>)]) -> Result<Vec<Library>, LibraryError> {
    names
        .iter()
        .map(|(n, p)| super::library::load_training(n, p.as_deref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::load_soundfont;

    #[test]
    fn with_program_changes_only_the_program() {
        let inst = Instrument {
            program: 73,
            name: "Flute".into(),
            family: "pipe".into(),
            low: 60,
            high: 96,
        };
        let s = phrase_score(&inst, 3, 9, 32_000);
        let t = with_program(&s, 40);
        assert_eq!(s.notes, t.notes);
        assert_eq!(s.events.len(), t.events.len());
        let programs: Vec<i32> = t
            .events
            .iter()
            .filter(|e| e.command == 0xC0)
            .map(|e| e.data1)
            .collect();
        assert_eq!(programs, vec![40]);
        for (a, b) in s.events.iter().zip(&t.events) {
            if a.command != 0xC0 {
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn split_holds_out_about_five_percent() {
        let valid = (0..10_000).filter(|&i| is_valid_pair(i)).count();
        assert!((350..650).contains(&valid), "{valid}");
    }

    /// TimGM6mb (the held-out library) stands in for a training library here: the test checks
    /// the pairing, not what is trained on.
    #[test]
    fn pairs_share_the_score_stay_in_range_and_resume() {
        let path = Path::new(super::super::library::LIBRARIES[3].path);
        if !path.exists() {
            panic!(
                "{} missing: apt-get install timgm6mb-soundfont",
                path.display()
            );
        }
        let lib = Library {
            name: "timgm",
            path: path.to_path_buf(),
            soundfont: load_soundfont(path).expect("TimGM6mb loads"),
            held_out_programs: Default::default(),
        };
        let dir = std::env::temp_dir().join(format!("timbreswap-pairs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let protocol = crate::instruments::load(None).expect("instrument list");
        let opts = PairOptions {
            out: dir.clone(),
            libraries: vec![lib],
            instruments: instrument_pool(&protocol),
            count: 6,
            rate: 16_000,
            seed: 5,
            augment_share: 0.5,
            voice_share: 0.0,
            threads: 2,
        };
        let first = render_pairs(&opts, &|_, _| {}).expect("renders");
        assert_eq!((first.pairs, first.rendered), (6, 6));
        let records = read_pairs(&dir).expect("manifest");
        assert_eq!(records.len(), 6);
        // Frames where pYIN finds both clips voiced, and those of them on the same note
        // (within 50 cents; the tracker's octave errors count as the same note name).
        let same_notes = |x: &[f32], y: &[f32]| -> (usize, usize) {
            let detector = |x: &[f32]| {
                crate::transfer::track_pitch(x, 16_000, 80, 40.0, 2200.0).expect("pYIN")
            };
            let (tx, ty) = (detector(x), detector(y));
            let (mut agree, mut both) = (0, 0);
            for ((vx, fx), (vy, fy)) in tx
                .voiced
                .iter()
                .zip(&tx.f0_hz)
                .zip(ty.voiced.iter().zip(&ty.f0_hz))
            {
                if *vx && *vy {
                    both += 1;
                    let cents = 1200.0 * (fx / fy).log2();
                    let folded = cents - 1200.0 * (cents / 1200.0).round();
                    agree += usize::from(folded.abs() < 50.0);
                }
            }
            (agree, both)
        };
        let mut agree = 0usize;
        let mut voiced_both = 0usize;
        for r in &records {
            let a = opts
                .instruments
                .iter()
                .find(|i| i.program == r.program_a)
                .unwrap();
            let b = opts
                .instruments
                .iter()
                .find(|i| i.program == r.program_b)
                .unwrap();
            assert!(r.register.0 >= a.low.max(b.low) && r.register.1 <= a.high.min(b.high));
            assert!(r.register.1 - r.register.0 >= MIN_OVERLAP);
            let audio = read_pair_audio(&dir, r).expect("audio");
            // The same score: where both renderings are voiced, pYIN hears the same note.
            let (a, both) = same_notes(&audio.source, &audio.target);
            agree += a;
            voiced_both += both;
            // The target carries the source's level (matched over the sounding samples).
            let rms = |x: &[f32]| {
                (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
            };
            let ratio_db = 20.0 * (rms(&audio.target) / rms(&audio.source)).log10();
            assert!(
                ratio_db.abs() < 3.0,
                "pair {} level {ratio_db:.1} dB",
                r.index
            );
            assert!(rms(&audio.reference) > 0.0);
        }
        assert!(voiced_both > 200, "{voiced_both}");
        assert!(
            agree as f64 > 0.8 * voiced_both as f64,
            "{agree} of {voiced_both}"
        );
        // Sung sources: the same pairs (instruments, registers, scores, augmentations), the
        // ones whose register a voice can sing with the score sung; pYIN hears the target's
        // notes in it.
        let sung_dir = dir.with_extension("sung");
        let _ = std::fs::remove_dir_all(&sung_dir);
        let sung_opts = PairOptions {
            out: sung_dir.clone(),
            voice_share: 1.0,
            ..opts.clone()
        };
        render_pairs(&sung_opts, &|_, _| {}).expect("renders sung pairs");
        let sung = read_pairs(&sung_dir).expect("manifest");
        let (low, high) = crate::voice::VOICE_RANGE;
        let (mut sung_pairs, mut agree, mut voiced_both) = (0, 0usize, 0usize);
        for (r, s) in records.iter().zip(&sung) {
            let singable = r.register.0 >= low && r.register.1 <= high;
            assert_eq!(s.library_a == "voice", singable, "pair {}", r.index);
            let relabelled = PairRecord {
                library_a: r.library_a.clone(),
                ..s.clone()
            };
            assert_eq!(&relabelled, r);
            let (played, voice) = (
                read_pair_audio(&dir, r).expect("audio"),
                read_pair_audio(&sung_dir, s).expect("audio"),
            );
            assert_eq!(played.reference, voice.reference);
            if !singable {
                assert_eq!(played.source, voice.source);
                continue;
            }
            sung_pairs += 1;
            assert_ne!(played.source, voice.source);
            let (a, both) = same_notes(&voice.source, &voice.target);
            agree += a;
            voiced_both += both;
        }
        assert!(sung_pairs >= 2, "{sung_pairs} sung pairs");
        assert!(
            agree as f64 > 0.8 * voiced_both as f64 && voiced_both > 100,
            "{agree} of {voiced_both}"
        );
        let _ = std::fs::remove_dir_all(&sung_dir);
        // Resuming renders nothing and writes the same manifest.
        let again = render_pairs(&opts, &|_, _| {}).expect("resumes");
        assert_eq!(again.rendered, 0);
        assert_eq!(read_pairs(&dir).expect("manifest"), records);
        // Other settings in the same folder are refused.
        let mut other = opts.clone();
        other.seed = 6;
        assert!(matches!(
            render_pairs(&other, &|_, _| {}),
            Err(PairError::SettingsChanged { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn programs_that_play_held_out_samples_are_never_drawn() {
        let path = Path::new(super::super::library::held_out().path);
        assert!(path.exists(), "install timgm6mb-soundfont");
        let soundfont = load_soundfont(path).expect("TimGM6mb loads");
        let protocol = crate::instruments::load(None).expect("instrument list");
        let pool = instrument_pool(&protocol);
        // Every program but the flute and the clarinet counts as playing held-out samples.
        let kept = [71u8, 73];
        let held_out_programs: std::collections::BTreeSet<u8> = pool
            .iter()
            .map(|i| i.program)
            .filter(|p| !kept.contains(p))
            .collect();
        let library = |held_out_programs| Library {
            name: "timgm",
            path: path.to_path_buf(),
            soundfont: soundfont.clone(),
            held_out_programs,
        };
        let dir =
            std::env::temp_dir().join(format!("timbreswap-pairs-held-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let opts = PairOptions {
            out: dir.clone(),
            libraries: vec![library(held_out_programs.clone())],
            instruments: pool.clone(),
            count: 4,
            rate: 16_000,
            seed: 3,
            augment_share: 0.0,
            voice_share: 0.0,
            threads: 2,
        };
        let summary = render_pairs(&opts, &|_, _| {}).expect("renders");
        assert_eq!(summary.pairs, 4);
        let expected: Vec<u8> = pool
            .iter()
            .map(|i| i.program)
            .filter(|p| held_out_programs.contains(p))
            .collect();
        assert_eq!(summary.held_out, vec![("timgm".to_string(), expected)]);
        for r in read_pairs(&dir).expect("manifest") {
            assert!(
                kept.contains(&r.program_a) && kept.contains(&r.program_b),
                "{r:?}"
            );
        }
        // The same folder with nothing left out is another set: refused.
        let unchecked = PairOptions {
            libraries: vec![library(Default::default())],
            ..opts.clone()
        };
        assert!(matches!(
            render_pairs(&unchecked, &|_, _| {}),
            Err(PairError::SettingsChanged { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
