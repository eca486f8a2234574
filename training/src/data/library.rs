//! The SoundFont libraries: the three the model trains on and the one held out for tests and
//! evaluation (`../shared/eval-protocol.md`). Paths are Debian's; each has its package named,
//! so a missing file is reported with the command that installs it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustysynth::SoundFont;

use crate::dataset::{self, DatasetError};

/// A SoundFont library the project knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownLibrary {
    /// Short name used in manifests and on the command line.
    pub name: &'static str,
    /// Where Debian installs the SF2 file.
    pub path: &'static str,
    /// The Debian package that installs it.
    pub package: &'static str,
    /// Whether it may be trained on (false: held out for tests and evaluation).
    pub training: bool,
}

/// Every library the protocol names.
pub const LIBRARIES: [KnownLibrary; 4] = [
    KnownLibrary {
        name: "fluidr3",
        path: "/usr/share/sounds/sf2/FluidR3_GM.sf2",
        package: "fluid-soundfont-gm",
        training: true,
    },
    KnownLibrary {
        name: "csound",
        path: "/usr/share/sounds/sf2/sf_GMbank.sf2",
        package: "csound-soundfont",
        training: true,
    },
    KnownLibrary {
        name: "opl3",
        path: "/usr/share/sounds/sf2/OPL-3_FM_128M.sf2",
        package: "opl3-soundfont",
        training: true,
    },
    KnownLibrary {
        name: "timgm",
        path: "/usr/share/sounds/sf2/TimGM6mb.sf2",
        package: "timgm6mb-soundfont",
        training: false,
    },
];

/// Why a library could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// The name is not one of [`LIBRARIES`].
    #[error("unknown library {0:?}: expected one of fluidr3, csound, opl3 (timgm is held out)")]
    Unknown(String),
    /// The library is held out from training.
    #[error("{0} is held out for tests and evaluation and is never trained on")]
    HeldOut(&'static str),
    /// The SF2 file is not installed.
    #[error("SoundFont {path} ({name}) not found: install it with `apt-get install {package}`")]
    Missing {
        /// Library name.
        name: &'static str,
        /// Expected file.
        path: PathBuf,
        /// Debian package.
        package: &'static str,
    },
    /// The held-out library, needed to check the training library for its samples, is not
    /// installed.
    #[error(
        "cannot check {name} for samples of the held-out library: {path} not found (install it \
         with `apt-get install {package}`)"
    )]
    HeldOutMissing {
        /// The training library.
        name: &'static str,
        /// Expected file of the held-out library.
        path: PathBuf,
        /// Its Debian package.
        package: &'static str,
    },
    /// The file exists but could not be loaded.
    #[error(transparent)]
    Load(#[from] DatasetError),
}

/// A loaded library.
#[derive(Clone)]
pub struct Library {
    /// Its name ([`KnownLibrary::name`]).
    pub name: &'static str,
    /// The SF2 file.
    pub path: PathBuf,
    /// The parsed SoundFont, shared by the rendering threads.
    pub soundfont: Arc<SoundFont>,
    /// Its GM programs that play samples of the held-out library ([`super::overlap`]): never
    /// trained on.
    pub held_out_programs: BTreeSet<u8>,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The library held out for tests and evaluation (TimGM6mb).
pub fn held_out() -> KnownLibrary {
    *LIBRARIES
        .iter()
        .find(|l| !l.training)
        .expect("the protocol holds one library out")
}

/// The known library whose Debian file is named `file_name` (e.g. `TimGM6mb.sf2`).
pub fn by_file_name(file_name: &str) -> Option<KnownLibrary> {
    LIBRARIES
        .iter()
        .find(|l| {
            Path::new(l.path)
                .file_name()
                .is_some_and(|n| n == file_name)
        })
        .copied()
}

/// The known library called `name`.
pub fn known(name: &str) -> Result<KnownLibrary, LibraryError> {
    LIBRARIES
        .iter()
        .find(|l| l.name == name)
        .copied()
        .ok_or_else(|| LibraryError::Unknown(name.to_string()))
}

/// Loads the training library `name` from `path` (its Debian path when `None`) and finds its
/// programs that play samples of the held-out library (read from its Debian path, which must
/// exist). A held-out library is refused; a missing file names the package that installs it.
pub fn load_training(name: &str, path: Option<&Path>) -> Result<Library, LibraryError> {
    let lib = known(name)?;
    if !lib.training {
        return Err(LibraryError::HeldOut(lib.name));
    }
    let path = path.map_or_else(|| PathBuf::from(lib.path), Path::to_path_buf);
    if !path.exists() {
        return Err(LibraryError::Missing {
            name: lib.name,
            path,
            package: lib.package,
        });
    }
    let soundfont = dataset::load_soundfont(&path)?;
    let held = held_out();
    let held_path = PathBuf::from(held.path);
    if !held_path.exists() {
        return Err(LibraryError::HeldOutMissing {
            name: lib.name,
            path: held_path,
            package: held.package,
        });
    }
    let held_out_soundfont = dataset::load_soundfont(&held_path)?;
    let held_out_programs =
        super::overlap::programs_sharing_samples(&soundfont, &held_out_soundfont);
    Ok(Library {
        name: lib.name,
        path,
        soundfont,
        held_out_programs,
    })
}

/// Whether `soundfont` has a melodic preset (bank 0) for the 0-based GM `program`. A synth
/// asked for a missing program falls back to another preset silently, so pairs check first.
pub fn has_program(soundfont: &SoundFont, program: u8) -> bool {
    soundfont
        .get_presets()
        .iter()
        .any(|p| p.get_bank_number() == 0 && p.get_patch_number() == i32::from(program))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_held_out_library_says_what_to_do() {
        let err = load_training("csound", Some(Path::new("/nonexistent/sf_GMbank.sf2")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("apt-get install csound-soundfont"), "{err}");
        let err = load_training("timgm", None).unwrap_err().to_string();
        assert!(err.contains("held out"), "{err}");
        let err = load_training("fluid", None).unwrap_err().to_string();
        assert!(err.contains("unknown library"), "{err}");
        // The dataset command's own check names the package of the file it looked for.
        let Err(err) = dataset::load_soundfont(Path::new("/nonexistent/FluidR3_GM.sf2")) else {
            panic!("a missing SoundFont loaded");
        };
        let err = err.to_string();
        assert!(err.contains("apt-get install fluid-soundfont-gm"), "{err}");
    }

    #[test]
    fn program_presence_follows_the_presets() {
        let path = Path::new(held_out().path);
        assert!(path.exists(), "install timgm6mb-soundfont");
        let sf = dataset::load_soundfont(path).expect("loads");
        // Every General MIDI library has a piano; no melodic bank has program 128.
        assert!(has_program(&sf, 0));
        let programs = (0..=127u8).filter(|&p| has_program(&sf, p)).count();
        let presets = sf
            .get_presets()
            .iter()
            .filter(|p| p.get_bank_number() == 0)
            .map(|p| p.get_patch_number())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        assert_eq!(programs, presets);
    }
}
