//! Plain PCM packets (WAV, AIFF) read straight to `f32`, with the values symphonia's PCM
//! decoder and its sample conversion give, without its per-sample reads, its planar buffer and
//! the copy into a [`SampleBuffer`](symphonia::core::audio::SampleBuffer): the reference
//! loader's decode of a 10 s stereo WAV file, most of its serial part. Not realtime-safe
//! (allocates).

use symphonia::core::codecs::{
    CodecParameters, CODEC_TYPE_PCM_F32BE, CODEC_TYPE_PCM_F32LE, CODEC_TYPE_PCM_S16BE,
    CODEC_TYPE_PCM_S16LE, CODEC_TYPE_PCM_S24BE, CODEC_TYPE_PCM_S24LE, CODEC_TYPE_PCM_S32BE,
    CODEC_TYPE_PCM_S32LE,
};

/// How one sample is stored in a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// Signed 16-bit integer.
    S16,
    /// Signed 24-bit integer (three bytes).
    S24,
    /// Signed 32-bit integer.
    S32,
    /// IEEE 754 single precision.
    F32,
}

impl Encoding {
    /// Bytes per sample.
    fn bytes(self) -> usize {
        match self {
            Self::S16 => 2,
            Self::S24 => 3,
            Self::S32 | Self::F32 => 4,
        }
    }
}

/// The layout of a PCM track's packets: interleaved frames of `channels` samples.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PcmLayout {
    encoding: Encoding,
    big_endian: bool,
    /// Samples per frame (the track's channel count).
    channels: usize,
    /// Most frames the decoder takes from one packet (its buffer's length; it leaves any past
    /// it, and so does [`convert`](Self::convert)).
    max_frames: usize,
}

impl PcmLayout {
    /// The layout of a track whose packets [`convert`](Self::convert) reads as the decoder
    /// would: signed 16, 24 or 32-bit integers coded in all their bits, or 32-bit floats,
    /// either byte order, with a channel count and a packet length stated. `None` for every
    /// other codec (8-bit, unsigned, A-law, 64-bit floats, integers coded in fewer bits, which
    /// the decoder shifts): those are the decoder's.
    pub(crate) fn of(params: &CodecParameters) -> Option<Self> {
        let (encoding, big_endian) = match params.codec {
            CODEC_TYPE_PCM_S16LE => (Encoding::S16, false),
            CODEC_TYPE_PCM_S16BE => (Encoding::S16, true),
            CODEC_TYPE_PCM_S24LE => (Encoding::S24, false),
            CODEC_TYPE_PCM_S24BE => (Encoding::S24, true),
            CODEC_TYPE_PCM_S32LE => (Encoding::S32, false),
            CODEC_TYPE_PCM_S32BE => (Encoding::S32, true),
            CODEC_TYPE_PCM_F32LE => (Encoding::F32, false),
            CODEC_TYPE_PCM_F32BE => (Encoding::F32, true),
            _ => return None,
        };
        if encoding != Encoding::F32 {
            // The decoder's coded width: bits per coded sample, else bits per sample.
            let coded = params.bits_per_coded_sample.or(params.bits_per_sample)?;
            if coded as usize != 8 * encoding.bytes() {
                return None;
            }
        }
        let channels = params.channels?.count();
        let max_frames = usize::try_from(params.max_frames_per_packet?).ok()?;
        (channels > 0).then_some(Self {
            encoding,
            big_endian,
            channels,
            max_frames,
        })
    }

    /// Samples per frame.
    pub(crate) fn channels(&self) -> usize {
        self.channels
    }

    /// The samples of packet `data` into `out` (cleared first), interleaved, as the decoder and
    /// symphonia's conversion to `f32` give them: `i / 2^15`, `i / 2^23`, `(i / 2^31)` rounded
    /// once from `f64`, floats as they are (NaN and infinity included). Whole frames only, at
    /// most `max_frames`, as the decoder reads. Returns the frame count.
    pub(crate) fn convert(&self, data: &[u8], out: &mut Vec<f32>) -> usize {
        let frame_bytes = self.channels * self.encoding.bytes();
        let frames = (data.len() / frame_bytes).min(self.max_frames);
        let data = &data[..frames * frame_bytes];
        out.clear();
        out.reserve(frames * self.channels);
        let be = self.big_endian;
        match self.encoding {
            Encoding::S16 => out.extend(data.chunks_exact(2).map(|b| {
                let bytes = [b[0], b[1]];
                let i = if be {
                    i16::from_be_bytes(bytes)
                } else {
                    i16::from_le_bytes(bytes)
                };
                f32::from(i) / 32_768.0
            })),
            Encoding::S24 => out.extend(data.chunks_exact(3).map(|b| {
                // The three bytes in the top of an i32, shifted down with their sign.
                let i = if be {
                    i32::from_be_bytes([b[0], b[1], b[2], 0])
                } else {
                    i32::from_le_bytes([0, b[0], b[1], b[2]])
                } >> 8;
                // Exact: a 24-bit integer is an f32.
                i as f32 / 8_388_608.0
            })),
            Encoding::S32 => out.extend(data.chunks_exact(4).map(|b| {
                let bytes = [b[0], b[1], b[2], b[3]];
                let i = if be {
                    i32::from_be_bytes(bytes)
                } else {
                    i32::from_le_bytes(bytes)
                };
                (f64::from(i) / 2_147_483_648.0) as f32
            })),
            Encoding::F32 => out.extend(data.chunks_exact(4).map(|b| {
                let bytes = [b[0], b[1], b[2], b[3]];
                if be {
                    f32::from_be_bytes(bytes)
                } else {
                    f32::from_le_bytes(bytes)
                }
            })),
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use symphonia::core::audio::{Channels, SampleBuffer};
    use symphonia::core::codecs::DecoderOptions;
    use symphonia::core::formats::Packet;

    /// Every encoding and byte order: the samples are what symphonia's PCM decoder and its
    /// conversion to `f32` give for the same packet, bit for bit, including the extremes of
    /// each integer type, a NaN, infinities, a packet that ends inside a frame, and one longer
    /// than the decoder's buffer.
    #[test]
    fn packets_read_as_the_decoder_reads_them() {
        let mut rng = crate::test_rng::XorShift::new(23);
        let codecs = [
            (CODEC_TYPE_PCM_S16LE, 16),
            (CODEC_TYPE_PCM_S16BE, 16),
            (CODEC_TYPE_PCM_S24LE, 24),
            (CODEC_TYPE_PCM_S24BE, 24),
            (CODEC_TYPE_PCM_S32LE, 32),
            (CODEC_TYPE_PCM_S32BE, 32),
            (CODEC_TYPE_PCM_F32LE, 32),
            (CODEC_TYPE_PCM_F32BE, 32),
        ];
        for (codec, bits) in codecs {
            for channels in [1usize, 2, 3] {
                let mut params = CodecParameters::new();
                params
                    .for_codec(codec)
                    .with_sample_rate(44_100)
                    .with_bits_per_sample(bits)
                    .with_bits_per_coded_sample(bits)
                    .with_max_frames_per_packet(64)
                    .with_channels(Channels::from_bits((1 << channels) - 1).unwrap());
                let layout = PcmLayout::of(&params).expect("a plain PCM codec");
                assert_eq!(layout.channels(), channels);
                let width = bits as usize / 8;
                let frame = width * channels;
                // Random bytes, then each integer type's extremes and, for floats, NaN and
                // infinities; 70 frames and a half (past the buffer, and a cut frame).
                let mut data: Vec<u8> = (0..70 * frame + frame / 2)
                    .map(|_| (rng.next_centred() * 255.0) as i32 as u8)
                    .collect();
                let special: Vec<[u8; 4]> = match codec {
                    CODEC_TYPE_PCM_F32LE | CODEC_TYPE_PCM_F32BE => {
                        [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, f32::MAX]
                            .map(|v| {
                                if codec == CODEC_TYPE_PCM_F32BE {
                                    v.to_be_bytes()
                                } else {
                                    v.to_le_bytes()
                                }
                            })
                            .to_vec()
                    }
                    _ => vec![
                        [0x00; 4],
                        [0xff; 4],
                        [0x80, 0, 0, 0],
                        [0x7f, 0xff, 0xff, 0xff],
                    ],
                };
                for (k, s) in special.iter().enumerate() {
                    data[k * width..(k + 1) * width].copy_from_slice(&s[..width]);
                }
                let mut got = Vec::new();
                let frames = layout.convert(&data, &mut got);
                assert_eq!(frames, 64, "{codec:?}: the decoder's buffer holds 64");
                let mut decoder = symphonia::default::get_codecs()
                    .make(&params, &DecoderOptions::default())
                    .unwrap();
                let packet = Packet::new_from_slice(0, 0, 70, &data);
                let decoded = decoder.decode(&packet).unwrap();
                assert_eq!(decoded.frames(), frames);
                let mut want = SampleBuffer::<f32>::new(decoded.capacity() as u64, *decoded.spec());
                want.copy_interleaved_ref(decoded);
                let want = &want.samples()[..frames * channels];
                assert_eq!(got.len(), want.len());
                for (i, (g, w)) in got.iter().zip(want).enumerate() {
                    assert_eq!(
                        g.to_bits(),
                        w.to_bits(),
                        "{codec:?} x{channels}, sample {i}"
                    );
                }
            }
        }
        // Not read here: integers coded in fewer bits than their width, and other codecs.
        let mut params = CodecParameters::new();
        params
            .for_codec(CODEC_TYPE_PCM_S24LE)
            .with_bits_per_sample(24)
            .with_bits_per_coded_sample(20)
            .with_max_frames_per_packet(64)
            .with_channels(Channels::FRONT_LEFT);
        assert!(PcmLayout::of(&params).is_none());
        params
            .for_codec(symphonia::core::codecs::CODEC_TYPE_PCM_U8)
            .with_bits_per_coded_sample(8);
        assert!(PcmLayout::of(&params).is_none());
    }
}
