//! Decoding audio files (reference clips and render inputs) with symphonia, off the audio thread.

use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::config::StftConfig;
use crate::error::ClipError;
use crate::pcm::PcmLayout;
use crate::resampler::{resample_all, resample_filled};
use crate::timbre::{analyse, TimbreDescriptor};

/// Most samples (all channels together) the decoder reserves from a file header's stated
/// length before the audio is there (16 Mi, 64 MiB): a damaged or hostile header cannot make it
/// allocate more; longer audio grows the buffers as it is decoded.
const MAX_RESERVED_SAMPLES: usize = 1 << 24;

/// Longest reference clip accepted, in seconds (10 minutes).
pub const MAX_CLIP_SECONDS: f64 = 600.0;

/// A clip whose peak is below this is treated as silent, in dBFS.
pub const SILENCE_DBFS: f64 = -80.0;

/// Decoded audio: planar channels at the file's own rate.
#[derive(Debug, Clone)]
pub struct DecodedAudio {
    /// Sample rate, in Hz.
    pub sample_rate: u32,
    /// One vector per channel, all the same length.
    pub channels: Vec<Vec<f32>>,
    /// Whether the file was longer than the limit it was decoded with and only its beginning
    /// is here ([`decode_file_cut`]).
    pub truncated: bool,
}

impl DecodedAudio {
    /// Channel average (mono mix-down).
    pub fn mono(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.channels.first().map_or(0, Vec::len)];
        self.mix_into(&mut out);
        out
    }

    /// Writes the channel average of the first `out.len()` frames into `out` (zero where no
    /// channel reaches): [`average_into`].
    fn mix_into(&self, out: &mut [f32]) {
        let channels = self.channels.iter().map(Vec::as_slice);
        average_into(out, channels, self.channels.len());
    }

    /// Length, in seconds.
    pub fn duration_s(&self) -> f64 {
        self.channels.first().map_or(0, Vec::len) as f64 / self.sample_rate as f64
    }
}

/// Writes the average of `channels` into `out` (zero where no channel reaches): the channels
/// summed in order, from -0.0 as `Iterator::sum` starts, then divided by `count` (their
/// number); a channel at a time, so the sums run many samples at once. The one mix-down of
/// [`DecodedAudio::mono`] and [`decode_mono_cut`], which must agree bit for bit.
fn average_into<'a>(out: &mut [f32], channels: impl IntoIterator<Item = &'a [f32]>, count: usize) {
    out.fill(-0.0);
    for c in channels {
        for (o, v) in out.iter_mut().zip(c) {
            *o += v;
        }
    }
    let n = count.max(1) as f32;
    for o in out.iter_mut() {
        *o /= n;
    }
}

/// Decodes `path` (WAV, AIFF, FLAC, MP3, OGG/Vorbis; any rate and channel count) refusing clips
/// longer than `max_seconds`. Never panics: a decoder panic on a malformed file becomes
/// [`ClipError::Corrupt`].
pub fn decode_file(path: &Path, max_seconds: f64) -> Result<DecodedAudio, ClipError> {
    decode_checked(path, max_seconds, false, false).map(DecodedAudio::from)
}

/// Like [`decode_file`], but a file longer than `max_seconds` is cut there instead of refused
/// (`truncated` says so).
pub fn decode_file_cut(path: &Path, max_seconds: f64) -> Result<DecodedAudio, ClipError> {
    decode_checked(path, max_seconds, true, false).map(DecodedAudio::from)
}

/// A file decoded straight to its channel average ([`decode_mono_cut`]).
#[derive(Debug, Clone)]
pub struct DecodedMono {
    /// Sample rate, in Hz.
    pub sample_rate: u32,
    /// The channel average, bit for bit [`DecodedAudio::mono`] of the same file.
    pub samples: Vec<f32>,
    /// Whether the file was longer than the limit and only its beginning is here.
    pub truncated: bool,
    /// The largest `|v|` over every channel's samples, as the bits of an `f32` (at or above
    /// `0x7f80_0000` where a sample is infinite or NaN).
    largest: u32,
}

/// [`decode_file_cut`] mixed down as it decodes: the channel average of the same file, without
/// keeping its channels (for a 10 s stereo clip, 3.5 MB less to write and read back). Plain
/// PCM (16, 24 or 32-bit integers, 32-bit floats: most WAV and AIFF files) is read straight
/// from the file's packets (the crate's `pcm` module), the same values as the decoder's at a
/// fraction of the work; [`decode_file_cut`] decodes every packet, the reference this read is
/// tested against. Never panics. Not realtime-safe (file I/O, allocation).
pub fn decode_mono_cut(path: &Path, max_seconds: f64) -> Result<DecodedMono, ClipError> {
    decode_checked(path, max_seconds, true, true).map(
        |(sample_rate, sink, truncated): (_, MonoSink, _)| DecodedMono {
            sample_rate,
            samples: sink.samples,
            truncated,
            largest: sink.largest,
        },
    )
}

impl From<(u32, Vec<Vec<f32>>, bool)> for DecodedAudio {
    fn from((sample_rate, channels, truncated): (u32, Vec<Vec<f32>>, bool)) -> Self {
        Self {
            sample_rate,
            channels,
            truncated,
        }
    }
}

fn decode_checked<S: Sink + Default>(
    path: &Path,
    max_seconds: f64,
    cut: bool,
    straight_pcm: bool,
) -> Result<(u32, S, bool), ClipError> {
    let path_buf = path.to_path_buf();
    match catch_unwind(AssertUnwindSafe(|| {
        decode_inner(path, max_seconds, cut, straight_pcm)
    })) {
        Ok(result) => result,
        Err(_) => Err(ClipError::Corrupt {
            path: path_buf,
            detail: "the decoder failed on malformed data".into(),
        }),
    }
}

/// Where [`decode_inner`] puts the decoded audio, a packet at a time.
trait Sink {
    /// Gets ready for `channels` channels of about `capacity` frames (the stated length).
    fn begin(&mut self, channels: usize, capacity: usize);
    /// Takes the first `take` of `frames` frames of planar audio: `planes` holds each
    /// channel's `frames` samples in turn.
    fn push(&mut self, planes: &[f32], frames: usize, take: usize);
    /// [`push`](Self::push) for interleaved audio: `samples` holds `frames` frames of every
    /// channel in turn.
    fn push_interleaved(&mut self, samples: &[f32], frames: usize, take: usize);
    /// Frames taken so far.
    fn frames(&self) -> usize;
}

impl Sink for Vec<Vec<f32>> {
    fn begin(&mut self, channels: usize, capacity: usize) {
        *self = (0..channels)
            .map(|_| Vec::with_capacity(capacity))
            .collect();
    }

    fn push(&mut self, planes: &[f32], frames: usize, take: usize) {
        let take = take.min(frames);
        for (c, plane) in self.iter_mut().zip(planes.chunks_exact(frames.max(1))) {
            c.extend_from_slice(&plane[..take]);
        }
    }

    fn push_interleaved(&mut self, samples: &[f32], frames: usize, take: usize) {
        let (take, n) = (take.min(frames), self.len());
        for (i, c) in self.iter_mut().enumerate() {
            c.extend(samples[..take * n].iter().skip(i).step_by(n));
        }
    }

    fn frames(&self) -> usize {
        self.first().map_or(0, Vec::len)
    }
}

/// The channel average of decoded audio, made as it is decoded, and what [`check_audio`]
/// reads of the channels.
#[derive(Default)]
struct MonoSink {
    /// The channel average, as [`DecodedAudio::mono`] makes it.
    samples: Vec<f32>,
    /// The channel count.
    channels: usize,
    /// The largest `|v|` of every channel's samples, as bits ([`largest_magnitude_bits`]).
    largest: u32,
}

impl Sink for MonoSink {
    fn begin(&mut self, channels: usize, capacity: usize) {
        self.channels = channels;
        self.samples = Vec::with_capacity(capacity);
    }

    fn push(&mut self, planes: &[f32], frames: usize, take: usize) {
        let take = take.min(frames);
        let start = self.samples.len();
        self.samples.resize(start + take, 0.0);
        let planes = || {
            planes
                .chunks_exact(frames.max(1))
                .take(self.channels)
                .map(|plane| &plane[..take])
        };
        average_into(&mut self.samples[start..], planes(), self.channels);
        let largest = planes().map(largest_magnitude_bits).max().unwrap_or(0);
        self.largest = self.largest.max(largest);
    }

    fn push_interleaved(&mut self, samples: &[f32], frames: usize, take: usize) {
        let (take, n) = (take.min(frames), self.channels.max(1));
        let samples = &samples[..take * n];
        let start = self.samples.len();
        self.samples.resize(start + take, 0.0);
        // Each frame as `average_into` makes it: from -0.0, the channels added in order, then
        // divided by their number.
        let count = n as f32;
        let out = &mut self.samples[start..];
        if n == 2 {
            for (o, frame) in out.iter_mut().zip(samples.chunks_exact(2)) {
                *o = (-0.0 + frame[0] + frame[1]) / count;
            }
        } else {
            for (o, frame) in out.iter_mut().zip(samples.chunks_exact(n)) {
                *o = frame.iter().fold(-0.0, |sum, v| sum + v) / count;
            }
        }
        self.largest = self.largest.max(largest_magnitude_bits(samples));
    }

    fn frames(&self) -> usize {
        self.samples.len()
    }
}

/// The decoded audio's rate, its samples as the sink holds them, and whether it was cut at
/// the limit.
///
/// With `straight_pcm`, a plain PCM track's packets are read by [`PcmLayout`] instead of the
/// decoder (the same samples).
fn decode_inner<S: Sink + Default>(
    path: &Path,
    max_seconds: f64,
    cut: bool,
    straight_pcm: bool,
) -> Result<(u32, S, bool), ClipError> {
    let p = || path.to_path_buf();
    if path.is_dir() {
        return Err(ClipError::NotAFile { path: p() });
    }
    let file = File::open(path).map_err(|source| ClipError::Io { path: p(), source })?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            mss,
            &FormatOptions {
                enable_gapless: true,
                ..Default::default()
            },
            &MetadataOptions::default(),
        )
        .map_err(|e| match e {
            // The probe read to the end without finding a format it knows.
            SymphoniaError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                ClipError::Unsupported {
                    path: p(),
                    detail: "no audio format recognised in its data".into(),
                }
            }
            e => classify(p(), e),
        })?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| ClipError::Unsupported {
            path: p(),
            detail: "no audio track".into(),
        })?;
    let track_id = track.id;
    // The length the header states, where the container states one (WAV, AIFF, FLAC).
    let expected_frames = track.codec_params.n_frames;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| classify(p(), e))?;
    let mut rate = track.codec_params.sample_rate.unwrap_or(0);
    let pcm = straight_pcm
        .then(|| PcmLayout::of(&track.codec_params))
        .flatten();
    let mut interleaved: Vec<f32> = Vec::new();
    let mut sink = S::default();
    let mut started = false;
    let mut sample_buf: Option<SampleBuffer<f32>> = None;
    let mut decode_errors = 0usize;
    let mut truncated = false;
    let mut channel_count = 0;
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break
            }
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(classify(p(), e)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let (n_ch, frames, samples) = if let Some(layout) = &pcm {
            // The decoder's rate is the track's (checked when it was made).
            let frames = layout.convert(packet.buf(), &mut interleaved);
            (
                layout.channels(),
                frames,
                Samples::Interleaved(&interleaved),
            )
        } else {
            let decoded = match decoder.decode(&packet) {
                Ok(decoded) => decoded,
                Err(SymphoniaError::DecodeError(_)) => {
                    // Skip a damaged packet, as players do; too many means the file is corrupt.
                    decode_errors += 1;
                    if decode_errors > 100 {
                        return Err(ClipError::Corrupt {
                            path: p(),
                            detail: "too many undecodable packets".into(),
                        });
                    }
                    continue;
                }
                Err(e) => return Err(classify(p(), e)),
            };
            let spec = *decoded.spec();
            rate = spec.rate;
            let n_ch = spec.channels.count().max(1);
            let buf = match &mut sample_buf {
                Some(buf) if buf.capacity() >= decoded.capacity() * n_ch => buf,
                _ => sample_buf.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
            };
            let frames = decoded.frames();
            buf.copy_planar_ref(decoded);
            (n_ch, frames, Samples::Planar(buf.samples()))
        };
        if !started {
            // The stated length, up to the limit, so the channels grow without copies; a
            // header is not trusted with more than MAX_RESERVED_SAMPLES in all.
            let limit = ((max_seconds * rate as f64) as u64).saturating_add(1);
            let capacity = expected_frames
                .unwrap_or(0)
                .min(limit)
                .min((MAX_RESERVED_SAMPLES / n_ch) as u64) as usize;
            sink.begin(n_ch, capacity);
            started = true;
            channel_count = n_ch;
        } else if channel_count != n_ch {
            return Err(ClipError::Corrupt {
                path: p(),
                detail: "the channel count changes mid-stream".into(),
            });
        }
        if rate > 0 && (sink.frames() + frames) as f64 > max_seconds * rate as f64 {
            if !cut {
                return Err(ClipError::TooLong {
                    path: p(),
                    limit_s: max_seconds,
                });
            }
            // Only the frames up to the limit: what is past it is neither kept nor checked.
            let keep = (max_seconds * rate as f64) as usize;
            let take = keep.saturating_sub(sink.frames());
            samples.push_to(&mut sink, frames, take);
            truncated = true;
            break;
        }
        samples.push_to(&mut sink, frames, frames);
    }
    if !(1_000..=768_000).contains(&rate) {
        return Err(ClipError::SampleRate { path: p(), rate });
    }
    if sink.frames() == 0 {
        return Err(ClipError::Empty { path: p() });
    }
    let found = sink.frames() as u64;
    if let Some(expected) = expected_frames {
        // Some containers' stated lengths are estimates off by a frame or two (AIFF's
        // padding, an encoder's priming); a cut file misses far more.
        let slack = (expected / 100).max(1_024);
        if !truncated && found + slack < expected {
            return Err(ClipError::CutShort {
                path: p(),
                found,
                expected,
            });
        }
    }
    Ok((rate, sink, truncated))
}

/// One packet's samples, as the decoder left them or as [`PcmLayout`] read them.
enum Samples<'a> {
    /// Each channel's samples in turn.
    Planar(&'a [f32]),
    /// Each frame's samples in turn.
    Interleaved(&'a [f32]),
}

impl Samples<'_> {
    /// The first `take` of the `frames` frames into `sink`.
    fn push_to(&self, sink: &mut impl Sink, frames: usize, take: usize) {
        match self {
            Self::Planar(planes) => sink.push(planes, frames, take),
            Self::Interleaved(samples) => sink.push_interleaved(samples, frames, take),
        }
    }
}

fn classify(path: PathBuf, e: SymphoniaError) -> ClipError {
    match e {
        SymphoniaError::IoError(source) => ClipError::Io { path, source },
        SymphoniaError::Unsupported(what) => ClipError::Unsupported {
            path,
            detail: what.to_string(),
        },
        SymphoniaError::DecodeError(what) => ClipError::Corrupt {
            path,
            detail: what.to_string(),
        },
        other => ClipError::Corrupt {
            path,
            detail: other.to_string(),
        },
    }
}

/// Shortest usable reference, in seconds: a few analysis frames.
pub const MIN_CLIP_SECONDS: f64 = 0.05;

/// Checks decoded audio is usable as a reference: at least [`MIN_CLIP_SECONDS`] long, finite
/// and not silent.
pub fn check_audio(path: &Path, audio: &DecodedAudio) -> Result<(), ClipError> {
    let frames = audio.channels.first().map_or(0, Vec::len);
    let largest = audio
        .channels
        .iter()
        .map(|c| largest_magnitude_bits(c))
        .max()
        .unwrap_or(0);
    check_levels(path, frames, audio.sample_rate, largest)
}

/// [`check_audio`] of the file [`decode_mono_cut`] read: the same checks on all its channels,
/// with the same errors.
pub fn check_mono(path: &Path, audio: &DecodedMono) -> Result<(), ClipError> {
    check_levels(path, audio.samples.len(), audio.sample_rate, audio.largest)
}

/// The largest `|v|` of `x` as bits: `v`'s bits less the sign, whose order as integers is the
/// magnitudes' order; at or above `0x7f80_0000` (all exponent bits set) where a sample is
/// infinite or NaN. An integer maximum, so it runs many samples at a time (`f32`'s own
/// comparisons, with their NaN rules, ran one at a time). 0 for no samples.
fn largest_magnitude_bits(x: &[f32]) -> u32 {
    x.iter().fold(0u32, |m, v| m.max(v.to_bits() & 0x7fff_ffff))
}

/// The largest `|v|` of the finite samples of `x` (0 for none): the value
/// `x.iter().filter(|v| v.is_finite()).fold(0.0, |m, v| m.max(v.abs()))` gives, from the
/// samples' bits (sign cleared, non-finite ones as 0) in an integer maximum that runs many
/// samples at a time. Any thread; realtime-safe.
pub fn finite_peak(x: &[f32]) -> f32 {
    f32::from_bits(x.iter().fold(0u32, |m, v| {
        let bits = v.to_bits() & 0x7fff_ffff;
        m.max(if bits < 0x7f80_0000 { bits } else { 0 })
    }))
}

/// The checks of [`check_audio`]: `frames` long at `rate`, with the largest magnitude's bits
/// `largest` ([`largest_magnitude_bits`] over every channel).
fn check_levels(path: &Path, frames: usize, rate: u32, largest: u32) -> Result<(), ClipError> {
    let seconds = frames as f64 / rate as f64;
    if seconds < MIN_CLIP_SECONDS {
        return Err(ClipError::TooShort {
            path: path.to_path_buf(),
            seconds,
            min_s: MIN_CLIP_SECONDS,
        });
    }
    if largest >= 0x7f80_0000 {
        return Err(ClipError::NonFinite {
            path: path.to_path_buf(),
        });
    }
    let peak = f32::from_bits(largest);
    if 20.0 * (peak as f64 + 1e-30).log10() < SILENCE_DBFS {
        return Err(ClipError::Silent {
            path: path.to_path_buf(),
            threshold_db: SILENCE_DBFS,
        });
    }
    Ok(())
}

/// Turns decoded audio into a timbre descriptor for `cfg` (mono mix-down, resampling to the
/// model rate, cepstral analysis). Not realtime-safe.
pub fn descriptor_from_audio(
    path: &Path,
    audio: &DecodedAudio,
    cfg: &StftConfig,
) -> Result<TimbreDescriptor, ClipError> {
    check_audio(path, audio)?;
    let at_model_rate = mono_at(audio, cfg.sample_rate);
    descriptor_from_mono(path, &at_model_rate, cfg)
}

/// The channel average of `audio` resampled to `rate`. Allocates.
pub fn mono_at(audio: &DecodedAudio, rate: u32) -> Vec<f32> {
    if audio.sample_rate == rate {
        audio.mono()
    } else {
        let len = audio.channels.first().map_or(0, Vec::len);
        resample_filled(len, audio.sample_rate, rate, |dst| audio.mix_into(dst))
    }
}

/// The descriptor of checked mono audio at the model rate (`path` names it and is recorded as
/// its source).
pub(crate) fn descriptor_from_mono(
    path: &Path,
    at_model_rate: &[f32],
    cfg: &StftConfig,
) -> Result<TimbreDescriptor, ClipError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let mut descriptor = analyse(at_model_rate, cfg, &name).ok_or_else(|| ClipError::Silent {
        path: path.to_path_buf(),
        threshold_db: SILENCE_DBFS,
    })?;
    descriptor.source = Some(path.display().to_string());
    descriptor.overview = Some(crate::timbre::ClipOverview::of(at_model_rate));
    Ok(descriptor)
}

/// A reference clip ready for both modes: its classic descriptor and its mono audio at the
/// model rate (for the neural timbre encoder).
#[derive(Debug, Clone)]
pub struct ReferenceClip {
    /// The classic timbre descriptor (with `source` set to the file).
    pub descriptor: TimbreDescriptor,
    /// Mono audio at the model rate, at most [`MAX_CLIP_SECONDS`] long.
    pub samples: Vec<f32>,
    /// Whether the file was longer than [`MAX_CLIP_SECONDS`] and was cut there.
    pub truncated: bool,
}

/// Decodes, checks and analyses a reference clip; a clip longer than [`MAX_CLIP_SECONDS`] is
/// cut there (and `truncated` says so). Not realtime-safe (file I/O, allocation).
pub fn load_reference_clip(path: &Path, cfg: &StftConfig) -> Result<ReferenceClip, ClipError> {
    let (samples, truncated) = reference_samples(path, cfg.sample_rate)?;
    Ok(ReferenceClip {
        descriptor: descriptor_from_mono(path, &samples, cfg)?,
        samples,
        truncated,
    })
}

/// A reference file's audio, decoded ([`decode_mono_cut`] at [`MAX_CLIP_SECONDS`]), checked
/// ([`check_mono`]) and at `rate`: bit for bit [`mono_at`] of the checked
/// [`decode_file_cut`], and whether it was cut. Not realtime-safe (file I/O, allocation).
pub fn reference_samples(path: &Path, rate: u32) -> Result<(Vec<f32>, bool), ClipError> {
    let audio = decode_mono_cut(path, MAX_CLIP_SECONDS)?;
    check_mono(path, &audio)?;
    let samples = if audio.sample_rate == rate {
        audio.samples
    } else {
        resample_all(&audio.samples, audio.sample_rate, rate)
    };
    Ok((samples, audio.truncated))
}

/// Decodes, checks and analyses a reference clip file. Not realtime-safe (file I/O, allocation).
pub fn load_reference(path: &Path, cfg: &StftConfig) -> Result<TimbreDescriptor, ClipError> {
    let audio = decode_file(path, MAX_CLIP_SECONDS)?;
    descriptor_from_audio(path, &audio, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packets read straight ([`PcmLayout`]) give every channel what the decoder gives, bit
    /// for bit, whole and cut at a limit inside a packet, for 16, 24 and 32-bit integers and
    /// 32-bit floats, one to three channels; and a file in a codec it does not read (8-bit)
    /// still decodes through the decoder.
    #[test]
    fn straight_pcm_is_the_decoders_audio_channel_by_channel() {
        let dir = std::env::temp_dir().join(format!("timbreswap-pcm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut rng = crate::test_rng::XorShift::new(7);
        let cases = [
            (16, hound::SampleFormat::Int, 2),
            (24, hound::SampleFormat::Int, 2),
            (32, hound::SampleFormat::Int, 3),
            (32, hound::SampleFormat::Float, 1),
            (8, hound::SampleFormat::Int, 2),
        ];
        for (bits, format, channels) in cases {
            let path = dir.join(format!("{bits}-{format:?}-{channels}.wav"));
            let spec = hound::WavSpec {
                channels,
                sample_rate: 44_100,
                bits_per_sample: bits,
                sample_format: format,
            };
            let mut w = hound::WavWriter::create(&path, spec).unwrap();
            let full = ((1i64 << (bits - 1)) - 1) as f32;
            // 5 000 frames: several packets; the cut at 0.05 s (2 205 frames) lies inside one.
            for _ in 0..5_000 * usize::from(channels) {
                let v = rng.next_centred();
                match format {
                    hound::SampleFormat::Float => w.write_sample(v).unwrap(),
                    hound::SampleFormat::Int => w.write_sample((v * full) as i32).unwrap(),
                }
            }
            w.finalize().unwrap();
            for limit in [MAX_CLIP_SECONDS, 0.05] {
                let (rate, want, cut): (_, Vec<Vec<f32>>, _) =
                    decode_checked(&path, limit, true, false).unwrap();
                let (got_rate, got, got_cut): (_, Vec<Vec<f32>>, _) =
                    decode_checked(&path, limit, true, true).unwrap();
                assert_eq!((got_rate, got_cut), (rate, cut));
                assert_eq!(want.len(), usize::from(channels));
                let frames = if limit < 1.0 { 2_205 } else { 5_000 };
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(w.len(), frames, "{bits}-bit {format:?}");
                    let bits_of = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits_of(g), bits_of(w), "{bits}-bit {format:?} x{channels}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The peak from the bits is the float fold's, for samples of every kind: signed zeros,
    /// subnormals, the largest finite values, infinities and NaN (left out), and none.
    #[test]
    fn finite_peak_is_the_largest_finite_magnitude() {
        let fold = |x: &[f32]| {
            x.iter()
                .filter(|v| v.is_finite())
                .fold(0.0f32, |m, v| m.max(v.abs()))
        };
        let mut rng = crate::test_rng::XorShift::new(23);
        let plain: Vec<f32> = (0..1_001).map(|_| rng.next_centred()).collect();
        let mut odd = plain.clone();
        odd[3] = f32::INFINITY;
        odd[500] = f32::NAN;
        odd[999] = -f32::NAN;
        let cases: Vec<Vec<f32>> = vec![
            plain.clone(),
            odd,
            vec![],
            vec![-0.0, 0.0],
            vec![f32::NAN, f32::NEG_INFINITY],
            vec![f32::from_bits(1), -f32::from_bits(7), 1e-40],
            vec![f32::MAX, -f32::MAX, f32::INFINITY],
            plain.iter().map(|v| -v * 3e30).collect(),
        ];
        for x in cases {
            assert_eq!(finite_peak(&x).to_bits(), fold(&x).to_bits(), "{x:?}");
        }
    }

    /// The mix-down goes straight into the resampler: the same samples, bit for bit, as the
    /// per-sample channel average resampled on its own, for one to three channels, at the
    /// model rate (no resampling), a common rate and a rate the streaming path takes.
    #[test]
    fn mono_at_is_the_channel_average_resampled() {
        let mut rng = crate::test_rng::XorShift::new(5);
        for channels in 1..=3usize {
            for from in [32_000u32, 44_100, 44_101] {
                let len = from as usize / 5 + 3;
                let audio = DecodedAudio {
                    sample_rate: from,
                    channels: (0..channels)
                        .map(|_| (0..len).map(|_| rng.next_centred()).collect())
                        .collect(),
                    truncated: false,
                };
                let average: Vec<f32> = (0..len)
                    .map(|i| audio.channels.iter().map(|c| c[i]).sum::<f32>() / channels as f32)
                    .collect();
                let want = resample_filled(len, from, 32_000, |dst| dst.copy_from_slice(&average));
                let got = mono_at(&audio, 32_000);
                assert_eq!(
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{channels} channels at {from} Hz"
                );
                assert_eq!(
                    audio.mono().iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    average.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                );
            }
        }
    }
}
