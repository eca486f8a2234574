//! A reference clip's audio saved with the project, so that Exemplar mode still plays it when
//! the project is opened where the clip's file is not (another machine, a collaborator, a
//! moved folder). The Classic and Neural timbres are saved as their analysis; Exemplar needs
//! the sound itself.
//!
//! Saved as mono 16-bit PCM at the engine's rate (at most the [`MAX_BANK_SECONDS`] the
//! analysis reads: about 85 kB of state per second of clip), base64 text inside the
//! persisted field. A clip made of 16-bit samples comes back exactly.

use serde::{Deserialize, Serialize};
use timbreswap_engine::exemplar::MAX_BANK_SECONDS;

/// Why a saved clip cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SavedClipError {
    /// Its rate is not the engine's.
    #[error("it was saved at {found} Hz, not the engine's {expected} Hz")]
    Rate {
        /// The saved rate, in Hz.
        found: u32,
        /// The engine's rate, in Hz.
        expected: u32,
    },
    /// The samples are not base64 text of whole 16-bit samples.
    #[error("its samples are damaged ({0})")]
    Encoding(&'static str),
    /// Longer than the analysis reads, or empty.
    #[error("it holds {seconds:.1} s of audio (1 sample to {MAX_BANK_SECONDS} s are kept)")]
    Length {
        /// Its length, in seconds.
        seconds: f64,
    },
    /// Its scale is not a finite number of at least 1.
    #[error("its scale is {0}")]
    Scale(f32),
}

/// A reference clip's audio as the project saves it. Serialised into a persisted field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedClip {
    /// The file it was read from (the slot's descriptor's `source`): ties it to that timbre.
    pub source: String,
    /// Sample rate of the samples, in Hz.
    pub sample_rate: u32,
    /// Full scale of the samples, linear: a sample `s` is `s / 32768 * scale` (1 unless the
    /// clip went above full scale).
    pub scale: f32,
    /// Mono samples, 16-bit little-endian, base64 (RFC 4648, padded).
    pub pcm: String,
}

impl SavedClip {
    /// The first [`MAX_BANK_SECONDS`] of `samples` (mono, `sample_rate` Hz) from file
    /// `source`; `None` when there is nothing to keep (no sample, or a non-finite one). Not
    /// realtime-safe.
    pub fn new(source: &str, samples: &[f32], sample_rate: u32) -> Option<Self> {
        let kept = &samples[..samples.len().min(MAX_BANK_SECONDS * sample_rate as usize)];
        if kept.is_empty() || kept.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let peak = kept.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = peak.max(1.0);
        let mut bytes = Vec::with_capacity(2 * kept.len());
        for v in kept {
            let s = (v / scale * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16;
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        Some(Self {
            source: source.to_string(),
            sample_rate,
            scale,
            pcm: encode(&bytes),
        })
    }

    /// The samples, checked: at `expected_rate` Hz, whole, at most [`MAX_BANK_SECONDS`]
    /// long, with a sane scale. Not realtime-safe.
    pub fn samples(&self, expected_rate: u32) -> Result<Vec<f32>, SavedClipError> {
        if self.sample_rate != expected_rate {
            return Err(SavedClipError::Rate {
                found: self.sample_rate,
                expected: expected_rate,
            });
        }
        if !self.scale.is_finite() || self.scale < 1.0 {
            return Err(SavedClipError::Scale(self.scale));
        }
        // Checked before decoding, so a huge field is refused without a huge allocation.
        let most = MAX_BANK_SECONDS * expected_rate as usize;
        let samples = self.pcm.len() / 4 * 3 / 2;
        if self.pcm.is_empty() || samples > most + 1 {
            return Err(SavedClipError::Length {
                seconds: samples as f64 / expected_rate as f64,
            });
        }
        let bytes = decode(&self.pcm).map_err(SavedClipError::Encoding)?;
        if !bytes.len().is_multiple_of(2) {
            return Err(SavedClipError::Encoding("half a sample at the end"));
        }
        let to_float = self.scale / 32_768.0;
        Ok(bytes
            .chunks_exact(2)
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) * to_float)
            .collect())
    }
}

/// RFC 4648 base64 alphabet.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `bytes` as padded base64 text.
fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> shift & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The bytes of padded base64 `text`.
fn decode(text: &str) -> Result<Vec<u8>, &'static str> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(4) {
        return Err("not whole base64 groups");
    }
    let value = |c: u8| -> Option<u32> { ALPHABET.iter().position(|a| *a == c).map(|p| p as u32) };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let groups = text.len() / 4;
    for (g, group) in text.chunks_exact(4).enumerate() {
        let padding = group.iter().rev().take_while(|c| **c == b'=').count();
        if padding > 2 || (padding > 0 && g + 1 != groups) {
            return Err("padding inside the text");
        }
        let mut n = 0u32;
        for &c in &group[..4 - padding] {
            n = n << 6 | value(c).ok_or("a character outside base64")?;
        }
        n <<= 6 * padding as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - padding]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648's test vectors, both ways.
    #[test]
    fn base64_follows_rfc_4648() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert_eq!(decode(coded).unwrap(), plain.as_bytes());
        }
        for bad in ["Zm9", "Zm9v!A==", "Zg==Zg==", "Z==="] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }

    /// 16-bit samples come back exactly; louder ones keep their shape at 16 bits of their
    /// own peak; only what the analysis reads is kept.
    #[test]
    fn samples_round_trip() {
        let sixteen: Vec<f32> = (0..1000)
            .map(|i: i32| (i * 37 % 2001 - 1000) as f32 * 31.0 / 32_768.0)
            .collect();
        let clip = SavedClip::new("x.wav", &sixteen, 32_000).unwrap();
        assert_eq!(clip.samples(32_000).unwrap(), sixteen);

        let loud: Vec<f32> = (0..1000).map(|i| 3.0 * (i as f32 * 0.01).sin()).collect();
        let clip = SavedClip::new("x.wav", &loud, 32_000).unwrap();
        let back = clip.samples(32_000).unwrap();
        // Half a step of rounding, one step at the positive peak (+full scale is clamped to
        // 32 767), plus float rounding.
        let step = clip.scale / 32_768.0;
        assert!(back
            .iter()
            .zip(&loud)
            .all(|(a, b)| (a - b).abs() <= 1.001 * step));

        let long = vec![0.1f32; (MAX_BANK_SECONDS + 2) * 8_000];
        let clip = SavedClip::new("x.wav", &long, 8_000).unwrap();
        assert_eq!(clip.samples(8_000).unwrap().len(), MAX_BANK_SECONDS * 8_000);
        assert!(SavedClip::new("x.wav", &[], 8_000).is_none());
        assert!(SavedClip::new("x.wav", &[0.0, f32::NAN], 8_000).is_none());
    }

    /// A damaged or mismatched saved clip is refused with the reason.
    #[test]
    fn damaged_clips_are_refused() {
        let good = SavedClip::new("x.wav", &[0.5, -0.25, 0.125], 32_000).unwrap();
        assert!(matches!(
            good.samples(48_000),
            Err(SavedClipError::Rate { found: 32_000, .. })
        ));
        for (clip, what) in [
            (
                SavedClip {
                    pcm: "####".into(),
                    ..good.clone()
                },
                "encoding",
            ),
            (
                SavedClip {
                    pcm: encode(&[1, 2, 3]),
                    ..good.clone()
                },
                "odd bytes",
            ),
            (
                SavedClip {
                    scale: f32::NAN,
                    ..good.clone()
                },
                "scale",
            ),
            (
                SavedClip {
                    pcm: String::new(),
                    ..good.clone()
                },
                "empty",
            ),
            (
                SavedClip {
                    pcm: "AAAA".repeat(MAX_BANK_SECONDS * 32_000),
                    ..good.clone()
                },
                "too long",
            ),
        ] {
            assert!(clip.samples(32_000).is_err(), "{what}");
        }
    }
}
