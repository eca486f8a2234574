//! Samples a training library shares with the held-out one.
//!
//! SoundFont banks borrow from each other: the csound GM bank (`sf_GMbank.sf2`) plays 329 of
//! its 488 samples bit for bit from TimGM6mb, the library held out for evaluation. A program
//! rendered from such samples is the held-out library's sound under another name; training on
//! it would let the evaluation's "unseen" library be seen. [`programs_sharing_samples`] finds
//! those programs, so the dataset and pair renderers leave them out of training data.
//!
//! Samples are compared by their 16-bit PCM, not their names: a sample is shared when the
//! held-out library has one with exactly the same frames.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use rustysynth::SoundFont;

/// Shortest sample compared, in frames: shorter ones (clicks, placeholders) say nothing about
/// an instrument and could match by chance.
pub const MIN_SHARED_SAMPLE_FRAMES: usize = 64;

/// Whether two paths name the same SoundFont: the same file, or files of one name and size
/// (a copy). Used so that rendering the held-out library itself is not refused.
pub fn same_soundfont(a: &Path, b: &Path) -> bool {
    if let (Ok(x), Ok(y)) = (a.canonicalize(), b.canonicalize()) {
        if x == y {
            return true;
        }
    }
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).ok();
    a.file_name().is_some()
        && a.file_name() == b.file_name()
        && size(a).is_some()
        && size(a) == size(b)
}

/// The PCM frames of every sample header of `sf` (empty where the header points outside the
/// wave data).
fn sample_frames(sf: &SoundFont) -> Vec<&[i16]> {
    let wave = sf.get_wave_data();
    sf.get_sample_headers()
        .iter()
        .map(|h| {
            let (start, end) = (h.get_start().max(0) as usize, h.get_end().max(0) as usize);
            wave.get(start..end).unwrap_or(&[])
        })
        .collect()
}

/// Whether a sample is long enough and not silent, so that a match means something.
fn comparable(frames: &[i16]) -> bool {
    frames.len() >= MIN_SHARED_SAMPLE_FRAMES && frames.iter().any(|&s| s != 0)
}

fn fingerprint(frames: &[i16]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    frames.hash(&mut h);
    h.finish()
}

/// Which samples of `library` (by sample header index) have the same PCM as a sample of
/// `held_out`.
pub fn shared_samples(library: &SoundFont, held_out: &SoundFont) -> Vec<bool> {
    let mut index: HashMap<u64, Vec<&[i16]>> = HashMap::new();
    for frames in sample_frames(held_out) {
        if comparable(frames) {
            index.entry(fingerprint(frames)).or_default().push(frames);
        }
    }
    sample_frames(library)
        .into_iter()
        .map(|frames| {
            comparable(frames)
                && index
                    .get(&fingerprint(frames))
                    .is_some_and(|candidates| candidates.contains(&frames))
        })
        .collect()
}

/// The GM programs (melodic bank 0) of `library` that play, in any zone, a sample whose PCM
/// is also one of `held_out`'s.
pub fn programs_sharing_samples(library: &SoundFont, held_out: &SoundFont) -> BTreeSet<u8> {
    let shared = shared_samples(library, held_out);
    let instruments = library.get_instruments();
    library
        .get_presets()
        .iter()
        .filter(|p| p.get_bank_number() == 0 && (0..128).contains(&p.get_patch_number()))
        .filter(|p| {
            p.get_regions().iter().any(|r| {
                instruments.get(r.get_instrument_id()).is_some_and(|inst| {
                    inst.get_regions()
                        .iter()
                        .any(|ir| shared.get(ir.get_sample_id()).copied().unwrap_or(false))
                })
            })
        })
        .map(|p| p.get_patch_number() as u8)
        .collect()
}

/// Why a dataset folder may not be trained on.
#[derive(Debug, thiserror::Error)]
pub enum TrainingDataError {
    /// The folder holds renders of the held-out library itself.
    #[error("{folder} holds renders of {soundfont}, the library held out for evaluation: it is never trained on")]
    HeldOut {
        /// The dataset folder.
        folder: PathBuf,
        /// The SoundFont it was rendered from.
        soundfont: String,
    },
    /// The folder was rendered without the held-out check (before it existed, or with
    /// `--held-out none`) and holds programs that play the held-out library's samples.
    #[error(
        "{folder} was rendered from {soundfont} without leaving out the programs that play \
         samples of the held-out library, and holds programs {programs:?}: render it again \
         into a new folder (`timbreswap dataset`, which leaves them out)"
    )]
    Leaks {
        /// The dataset folder.
        folder: PathBuf,
        /// The SoundFont it was rendered from.
        soundfont: String,
        /// Its programs that play the held-out library's samples.
        programs: Vec<u8>,
    },
    /// The folder's settings or manifest could not be read, or a SoundFont not loaded.
    #[error("{0}")]
    Read(String),
}

/// Checks that the dataset `folder` may be trained on: not rendered from the held-out library
/// ([`held_out`](super::library::held_out), by file name), and, if rendered without the
/// held-out check (before it existed, or with no held-out library) from a library the protocol
/// names, holding none of that library's programs
/// that play the held-out library's samples (measured again now; needs both SF2 files at
/// their Debian paths, else the folder is let through as it is). A folder without a settings
/// file (not made by `timbreswap dataset`) is let through.
pub fn check_training_folder(folder: &Path) -> Result<(), TrainingDataError> {
    let settings_path = folder.join(crate::dataset::SETTINGS_FILE);
    let Ok(text) = std::fs::read_to_string(&settings_path) else {
        return Ok(());
    };
    let settings: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| TrainingDataError::Read(format!("{}: {e}", settings_path.display())))?;
    let soundfont = settings["soundfont"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let Some(known) = super::library::by_file_name(&soundfont) else {
        return Ok(());
    };
    if !known.training {
        return Err(TrainingDataError::HeldOut {
            folder: folder.to_path_buf(),
            soundfont,
        });
    }
    if settings["skipped_programs"].is_array() {
        return Ok(());
    }
    let held = super::library::held_out();
    if !Path::new(known.path).exists() || !Path::new(held.path).exists() {
        return Ok(());
    }
    let load = |p: &str| {
        crate::dataset::load_soundfont(Path::new(p))
            .map_err(|e| TrainingDataError::Read(e.to_string()))
    };
    let (library, held_out) = (load(known.path)?, load(held.path)?);
    let shared = programs_sharing_samples(&library, &held_out);
    let present: BTreeSet<u8> = crate::manifest::read_manifest(folder)
        .map_err(|e| TrainingDataError::Read(format!("{}: {e}", folder.display())))?
        .iter()
        .map(|r| r.program)
        .collect();
    let programs: Vec<u8> = present.intersection(&shared).copied().collect();
    if programs.is_empty() {
        Ok(())
    } else {
        Err(TrainingDataError::Leaks {
            folder: folder.to_path_buf(),
            soundfont,
            programs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::sf2_writer::{write_sf2, TestPreset};

    /// A ramp of `n` frames starting at `from`: distinct content per `from`.
    fn ramp(from: i16, n: usize) -> Vec<i16> {
        (0..n).map(|i| from.wrapping_add((i * 7) as i16)).collect()
    }

    fn load(bytes: &[u8]) -> SoundFont {
        SoundFont::new(&mut std::io::Cursor::new(bytes)).expect("the test SoundFont parses")
    }

    #[test]
    fn programs_are_shared_by_their_samples_content_not_their_names() {
        let x = ramp(100, 500);
        let y = ramp(-3000, 500);
        let z = ramp(9000, 500);
        // The training library: program 0 plays X, program 1 plays Y, program 2 plays Y below
        // middle C and X above it, program 3 (bank 1) plays X, program 4 plays a short copy of
        // Z and a silent sample.
        let library = load(&write_sf2(
            &[
                ("x", &x),
                ("y", &y),
                ("z-short", &z[..32]),
                ("silence", &[0; 500]),
            ],
            &[
                TestPreset::new(0, 0, &[0]),
                TestPreset::new(1, 0, &[1]),
                TestPreset::new(2, 0, &[1, 0]),
                TestPreset::new(3, 1, &[0]),
                TestPreset::new(4, 0, &[2, 3]),
            ],
        ));
        // The held-out library has X under another name, Z's first 32 frames, silence and
        // a sample that differs from Y in one frame.
        let mut y_off = y.clone();
        y_off[250] += 1;
        let held_out = load(&write_sf2(
            &[
                ("renamed", &x),
                ("y-off", &y_off),
                ("z-short", &z[..32]),
                ("quiet", &[0; 500]),
            ],
            &[TestPreset::new(40, 0, &[0, 1, 2, 3])],
        ));
        assert_eq!(
            shared_samples(&library, &held_out),
            vec![true, false, false, false]
        );
        assert_eq!(
            programs_sharing_samples(&library, &held_out),
            BTreeSet::from([0, 2])
        );
        // Nothing is shared with a library of other sounds.
        let other = load(&write_sf2(&[("z", &z)], &[TestPreset::new(0, 0, &[0])]));
        assert!(programs_sharing_samples(&library, &other).is_empty());
    }

    #[test]
    fn the_held_out_librarys_renders_are_refused_for_training() {
        let dir = std::env::temp_dir().join(format!("timbreswap-folders-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let folder = |name: &str, settings: Option<&str>| {
            let f = dir.join(name);
            std::fs::create_dir_all(&f).unwrap();
            if let Some(text) = settings {
                std::fs::write(f.join(crate::dataset::SETTINGS_FILE), text).unwrap();
            }
            f
        };
        let settings = |soundfont: &str, extra: &str| {
            format!(
                r#"{{"renderer_version": 1, "soundfont": ["{soundfont}", 1], "rate": 32000, "seed": 1, "gain": 2.5{extra}}}"#
            )
        };
        let timgm = folder("timgm", Some(&settings("TimGM6mb.sf2", "")));
        let err = check_training_folder(&timgm).unwrap_err();
        assert!(matches!(err, TrainingDataError::HeldOut { .. }), "{err}");
        assert!(err.to_string().contains("never trained on"), "{err}");
        // Checked when rendered (even with nothing left out), or not made by `dataset`.
        let checked = folder(
            "checked",
            Some(&settings(
                "sf_GMbank.sf2",
                r#", "skipped_programs": [4, 6]"#,
            )),
        );
        assert!(check_training_folder(&checked).is_ok());
        assert!(check_training_folder(&folder("plain", None)).is_ok());
        // A library nobody names, rendered without the check: nothing to measure it against.
        let own = folder("own", Some(&settings("my-bank.sf2", "")));
        assert!(check_training_folder(&own).is_ok());
        let broken = folder("broken", Some("{ not json"));
        assert!(matches!(
            check_training_folder(&broken),
            Err(TrainingDataError::Read(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_library_shares_every_sounding_program_with_itself() {
        let path = Path::new(crate::data::library::held_out().path);
        assert!(path.exists(), "install timgm6mb-soundfont");
        let sf = crate::dataset::load_soundfont(path).expect("TimGM6mb loads");
        let shared = programs_sharing_samples(&sf, &sf);
        let programs: BTreeSet<u8> = (0..=127u8)
            .filter(|&p| crate::data::library::has_program(&sf, p))
            .collect();
        assert_eq!(shared, programs);
        assert!(same_soundfont(path, path));
        assert!(!same_soundfont(
            path,
            Path::new("/nonexistent/TimGM6mb.sf2")
        ));
    }
}
