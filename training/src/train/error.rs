//! Why a training run stops ([`TrainError`]).

use super::*;

/// Why training could not run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The dataset is unusable.
    #[error("dataset: {0}")]
    Data(String),
    /// The model config is unusable.
    #[error(transparent)]
    Config(#[from] crate::model::ConfigError),
    /// A training setting is unusable (the swap term's, or `init_from`'s file).
    #[error("training config: {0}")]
    Settings(String),
    /// The checkpoint cannot be resumed.
    #[error("cannot resume: {0}")]
    Resume(String),
    /// A tensor operation failed.
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
    /// Exporting failed.
    #[error(transparent)]
    Export(#[from] file::ModelFileError),
    /// The loss is no longer finite.
    #[error("loss became {0} at step {1}; lower the learning rate")]
    Diverged(f64, u64),
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}
