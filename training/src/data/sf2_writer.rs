//! A minimal SoundFont 2 writer for tests: named 16-bit mono samples and presets that play
//! them, laid out as the SF2 2.01 specification's RIFF chunks (INFO, sdta, pdta with its
//! nine sub-chunks and their terminal records).

/// A preset of a test SoundFont: its GM program and bank, and the samples (indices into the
/// sample list) its one instrument plays, the key range split evenly between them.
pub struct TestPreset {
    /// GM program (0-based).
    pub program: u16,
    /// Bank (0: melodic).
    pub bank: u16,
    /// Sample indices, lowest key range first.
    pub samples: Vec<usize>,
}

impl TestPreset {
    /// A preset of `program` in `bank` playing `samples`.
    pub fn new(program: u16, bank: u16, samples: &[usize]) -> Self {
        Self {
            program,
            bank,
            samples: samples.to_vec(),
        }
    }
}

/// Zero frames the specification asks for after each sample.
const SAMPLE_PADDING: usize = 46;
/// Generator numbers (SF2 2.01, section 8.1.2).
const GEN_INSTRUMENT: u16 = 41;
const GEN_KEY_RANGE: u16 = 43;
const GEN_SAMPLE_ID: u16 = 53;

fn chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 9);
    out.extend_from_slice(id);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    if body.len() % 2 == 1 {
        out.push(0);
    }
    out
}

fn list(kind: &[u8; 4], chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut body = kind.to_vec();
    for c in chunks {
        body.extend_from_slice(c);
    }
    chunk(b"LIST", &body)
}

fn name20(name: &str) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (o, b) in out.iter_mut().zip(name.bytes().take(19)) {
        *o = b;
    }
    out
}

fn u16s(values: &[u16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The bytes of an SF2 file with `samples` (name, frames at 32 kHz, root key 60) and
/// `presets`, one instrument per preset.
pub fn write_sf2(samples: &[(&str, &[i16])], presets: &[TestPreset]) -> Vec<u8> {
    // Sample data and headers.
    let mut smpl = Vec::new();
    let mut shdr = Vec::new();
    let mut at = 0u32;
    for (name, frames) in samples {
        let (start, end) = (at, at + frames.len() as u32);
        for s in frames
            .iter()
            .copied()
            .chain(std::iter::repeat_n(0, SAMPLE_PADDING))
        {
            smpl.extend_from_slice(&s.to_le_bytes());
        }
        at = end + SAMPLE_PADDING as u32;
        shdr.extend_from_slice(&name20(name));
        for v in [start, end, start, end, 32_000] {
            shdr.extend_from_slice(&v.to_le_bytes());
        }
        shdr.extend_from_slice(&[60, 0]);
        shdr.extend_from_slice(&u16s(&[0, 1]));
    }
    shdr.extend_from_slice(&name20("EOS"));
    shdr.extend_from_slice(&[0; 26]);

    // Presets, each with one zone naming its instrument; instruments with one zone per sample.
    let (mut phdr, mut pbag, mut pgen) = (Vec::new(), Vec::new(), Vec::new());
    let (mut inst, mut ibag, mut igen) = (Vec::new(), Vec::new(), Vec::new());
    let (mut igens, mut izones) = (0u16, 0u16);
    for (i, p) in presets.iter().enumerate() {
        phdr.extend_from_slice(&name20(&format!("preset {i}")));
        phdr.extend_from_slice(&u16s(&[p.program, p.bank, i as u16]));
        phdr.extend_from_slice(&[0; 12]);
        pbag.extend_from_slice(&u16s(&[i as u16, 0]));
        pgen.extend_from_slice(&u16s(&[GEN_INSTRUMENT, i as u16]));
        inst.extend_from_slice(&name20(&format!("instrument {i}")));
        inst.extend_from_slice(&u16s(&[izones]));
        let n = p.samples.len().max(1);
        for (z, &s) in p.samples.iter().enumerate() {
            let lo = (128 * z / n) as u16;
            let hi = (128 * (z + 1) / n - 1) as u16;
            ibag.extend_from_slice(&u16s(&[igens, 0]));
            igen.extend_from_slice(&u16s(&[GEN_KEY_RANGE, lo | (hi << 8)]));
            igen.extend_from_slice(&u16s(&[GEN_SAMPLE_ID, s as u16]));
            igens += 2;
            izones += 1;
        }
    }
    phdr.extend_from_slice(&name20("EOP"));
    phdr.extend_from_slice(&u16s(&[0, 0, presets.len() as u16]));
    phdr.extend_from_slice(&[0; 12]);
    pbag.extend_from_slice(&u16s(&[presets.len() as u16, 0]));
    pgen.extend_from_slice(&[0; 4]);
    inst.extend_from_slice(&name20("EOI"));
    inst.extend_from_slice(&u16s(&[izones]));
    ibag.extend_from_slice(&u16s(&[igens, 0]));
    igen.extend_from_slice(&[0; 4]);

    let info = list(
        b"INFO",
        &[
            chunk(b"ifil", &u16s(&[2, 1])),
            chunk(b"INAM", b"test bank\0"),
        ],
    );
    let sdta = list(b"sdta", &[chunk(b"smpl", &smpl)]);
    let pdta = list(
        b"pdta",
        &[
            chunk(b"phdr", &phdr),
            chunk(b"pbag", &pbag),
            chunk(b"pmod", &[0; 10]),
            chunk(b"pgen", &pgen),
            chunk(b"inst", &inst),
            chunk(b"ibag", &ibag),
            chunk(b"imod", &[0; 10]),
            chunk(b"igen", &igen),
            chunk(b"shdr", &shdr),
        ],
    );
    let mut body = b"sfbk".to_vec();
    for part in [info, sdta, pdta] {
        body.extend_from_slice(&part);
    }
    chunk(b"RIFF", &body)
}
