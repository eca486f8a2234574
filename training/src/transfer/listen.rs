//! Every pair's audio written out to listen to (`eval-transfer --write-audio`).

use std::path::Path;

use super::TransferError;

/// Writes one pair's clips into `dir` as `SOURCE__REFERENCE__NAME.wav` (32-bit float, mono,
/// `rate` Hz; `source` and `reference` are the clips' paths, of which the file stems are used).
pub(super) fn write_pair_audio<'c>(
    dir: &Path,
    source: &Path,
    reference: &Path,
    rate: u32,
    clips: impl Iterator<Item = (String, &'c [f32])>,
) -> Result<(), TransferError> {
    let stem = |p: &Path| {
        p.file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
    };
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    for (name, samples) in clips {
        let path = dir.join(format!("{}__{}__{name}.wav", stem(source), stem(reference)));
        let write = || -> Result<(), hound::Error> {
            let mut w = hound::WavWriter::create(&path, spec)?;
            for v in samples {
                w.write_sample(*v)?;
            }
            w.finalize()
        };
        write().map_err(|source| TransferError::WriteAudio {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}
