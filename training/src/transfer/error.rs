//! Why the transfer table could not be computed.

use std::path::PathBuf;

use crate::dataset::DatasetError;
use crate::knn;
use crate::manifest::ClipReadError;

/// Why the transfer table could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// A clip's audio does not match its manifest record.
    #[error(transparent)]
    Clip(#[from] ClipReadError),
    /// The manifest could not be read or parsed.
    #[error("cannot read the manifest in {path}: {source}")]
    Manifest {
        /// Dataset folder.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The SoundFont could not be loaded.
    #[error(transparent)]
    SoundFont(#[from] DatasetError),
    /// There is no test-split phrase (or `max_sources` is 0).
    #[error("no test-split phrases to use as sources")]
    NoSources,
    /// No other instrument has a test-split note clip to use as a reference.
    #[error("no test-split note clip of an instrument other than program {program} to use as a reference")]
    NoReference {
        /// Program of the source.
        program: u8,
    },
    /// Phrase references were asked for, and instrument B has no test-split phrase.
    #[error("no test-split phrase of program {program} to use as a reference")]
    NoReferencePhrase {
        /// Program of the reference's instrument (B).
        program: u8,
    },
    /// No note clip has an active, labelled frame to fit the classifier on.
    #[error("no note clip with active frames to fit the instrument classifier on")]
    NoFitFrames,
    /// The pitch tracker failed.
    #[error("pYIN on {path}: {message}")]
    Pitch {
        /// Audio the tracker ran on (the source's file for outputs).
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Sources both sung and whistled were asked for.
    #[error("sources are sung or whistled, not both")]
    SungAndWhistled,
    /// A sung or whistled source's score could not be regenerated.
    #[error("singing or whistling {path}: {message}")]
    Voice {
        /// The source phrase whose score was wanted.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A row refused the sources before anything was computed.
    #[error("row {row}: {message}")]
    Prepare {
        /// Row name.
        row: String,
        /// What went wrong.
        message: String,
    },
    /// A row could not produce an output.
    #[error("row {row}, source {source_path}: {message}")]
    System {
        /// Row name.
        row: String,
        /// Source file, relative to the dataset folder.
        source_path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The classifier's index could not be built.
    #[error(transparent)]
    Knn(#[from] knn::KnnError),
    /// An output could not be written to [`TransferOptions::write_audio`].
    #[error("writing {path}: {source}")]
    WriteAudio {
        /// The file that was being written.
        path: PathBuf,
        /// Underlying error.
        source: hound::Error,
    },
}
