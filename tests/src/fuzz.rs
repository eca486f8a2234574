//! Mutation fuzzing on stable Rust: seed inputs (the corpora under `tests/fuzz/` and the
//! repository's fixtures) mutated byte-wise, fed to the clip decoder, the model-file parser and
//! the plugin's state restore. A target passes an input when it returns (an `Ok` or a typed
//! error, never a panic) within its time bound and whatever it plays is finite.
//!
//! `tests/tests/fuzz.rs` runs a few hundred inputs per target as part of the tests;
//! `cargo run --release -p timbreswap-tests --example fuzz -- TARGET SECONDS` runs one target for
//! as long as asked and reports what it saw.

/// A small deterministic generator (xorshift64*), so a failing input is reproducible from its
/// seed and iteration.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced by a fixed non-zero value).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Values that break parsers more often than random bytes do: lengths and sizes at their
/// limits, float specials.
const INTERESTING: [&[u8]; 8] = [
    &[0x00, 0x00, 0x00, 0x00],
    &[0xff, 0xff, 0xff, 0xff],
    &[0xff, 0xff, 0xff, 0x7f],
    &[0x00, 0x00, 0x00, 0x80],
    &[0x00, 0x00, 0xc0, 0x7f],       // f32 NaN
    &[0x00, 0x00, 0x80, 0x7f],       // f32 +inf
    &[0xca, 0xf2, 0x49, 0x71],       // f32 1e30
    &[0x01, 0x00, 0x00, 0x00, 0x00], // 1 then padding
];

/// `seed` with one to eight random mutations: bit flips, byte overwrites, interesting values,
/// deletions, insertions, duplicated or swapped chunks, truncation.
pub fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut data = seed.to_vec();
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        if data.is_empty() {
            data.push(rng.next_u64() as u8);
            continue;
        }
        let len = data.len();
        let at = rng.below(len);
        match rng.below(8) {
            0 => data[at] ^= 1 << rng.below(8),
            1 => data[at] = rng.next_u64() as u8,
            2 => {
                let v = INTERESTING[rng.below(INTERESTING.len())];
                for (i, b) in v.iter().enumerate() {
                    if at + i < len {
                        data[at + i] = *b;
                    }
                }
            }
            3 => {
                let n = 1 + rng.below((len - at).min(64));
                data.drain(at..at + n);
            }
            4 => {
                let n = 1 + rng.below(64);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                data.splice(at..at, bytes);
            }
            5 => {
                let n = 1 + rng.below((len - at).min(256));
                let chunk = data[at..at + n].to_vec();
                let to = rng.below(len);
                data.splice(to..to, chunk);
            }
            6 => {
                let n = 1 + rng.below((len - at).min(256));
                let to = rng.below(len - n + 1);
                let chunk = data[at..at + n].to_vec();
                let other = data[to..to + n].to_vec();
                data[to..to + n].copy_from_slice(&chunk);
                data[at..at + n].copy_from_slice(&other);
            }
            _ => data.truncate(at),
        }
    }
    data
}

/// A JSON text with one value replaced at random by a hostile one (huge or negative numbers,
/// NaN spelled out, wrong types, deep nesting), or the bytes mutated when it is not JSON.
pub fn mutate_json(text: &str, rng: &mut Rng) -> String {
    const HOSTILE: [&str; 10] = [
        "1e30",
        "-1e30",
        "-5",
        "0",
        "1e400",
        "null",
        "\"text\"",
        "[]",
        "{}",
        "[[[[[[[[[[1]]]]]]]]]]",
    ];
    // Positions of number or literal tokens.
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'-' || c.is_ascii_digit() || c == b't' || c == b'f' || c == b'n' {
            let start = i;
            while i < bytes.len() && !matches!(bytes[i], b',' | b'}' | b']' | b' ' | b'\n') {
                i += 1;
            }
            // Only tokens that follow a ':' or '[' or ',' (values, not words inside strings).
            let before = text[..start].trim_end().chars().last();
            if matches!(before, Some(':' | '[' | ',')) {
                tokens.push(start..i);
            }
        } else if c == b'"' {
            // Skip strings.
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else {
            i += 1;
        }
    }
    if tokens.is_empty() {
        return String::from_utf8_lossy(&mutate(bytes, rng)).into_owned();
    }
    let range = tokens[rng.below(tokens.len())].clone();
    let mut out = text.to_string();
    out.replace_range(range, HOSTILE[rng.below(HOSTILE.len())]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mutations are deterministic for a seed, change the input, and the JSON mutator keeps the
    /// text JSON while replacing exactly one value.
    #[test]
    fn mutations_are_reproducible_and_change_the_input() {
        let seed: Vec<u8> = (0..200u8).collect();
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let mut changed = 0;
        for _ in 0..100 {
            let x = mutate(&seed, &mut a);
            assert_eq!(x, mutate(&seed, &mut b));
            changed += usize::from(x != seed);
        }
        assert!(changed >= 95, "{changed} of 100 changed");

        let json = r#"{"a": 1.5, "b": [2, 3], "c": "x: 4", "d": true}"#;
        let mut rng = Rng::new(3);
        for _ in 0..50 {
            let m = mutate_json(json, &mut rng);
            assert_ne!(m, json);
            assert!(m.contains("\"c\": \"x: 4\""), "a string was edited: {m}");
        }
    }
}

/// What a target made of one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted, and everything it produced is finite.
    Accepted,
    /// Refused with a typed error (the expected fate of most mutants).
    Refused,
}

/// The clip decoder and reference analysis on `bytes`, written to `path` (its extension picks
/// the decoder, as a file's does). A clip that loads must give a finite descriptor and finite
/// samples.
pub fn clip_target(bytes: &[u8], path: &std::path::Path) -> Result<Verdict, String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    match timbreswap_engine::clip::load_reference_clip(
        path,
        &timbreswap_engine::StftConfig::default(),
    ) {
        Ok(clip) => {
            if clip.samples.iter().all(|v| v.is_finite())
                && clip.descriptor.envelope.iter().all(|v| v.is_finite())
                && clip.descriptor.validate().is_ok()
            {
                Ok(Verdict::Accepted)
            } else {
                Err("a clip loaded with non-finite samples or an invalid descriptor".into())
            }
        }
        Err(_) => Ok(Verdict::Refused),
    }
}

/// The model-file parser on `bytes`; a file it accepts is built into a network and plays
/// `input` (32 kHz mono) in Neural mode through the engine's offline render, with its own
/// timbre of `input` in slot A: the output must be finite.
pub fn model_target(bytes: &[u8], input: &[f32]) -> Result<Verdict, String> {
    use std::sync::Arc;
    use timbreswap_engine::clip::DecodedAudio;
    use timbreswap_engine::render::{render, RenderOptions};
    let Ok(file) = timbreswap_engine::model_file::parse(bytes) else {
        return Ok(Verdict::Refused);
    };
    let Ok(net) = timbreswap_engine::network::Network::new(
        &file,
        "fuzz",
        timbreswap_engine::kernels::Kernels::best(),
    ) else {
        return Ok(Verdict::Refused);
    };
    let net = Arc::new(net);
    let z = net.clip_timbre(input);
    let rate = net.stft().sample_rate;
    let rendered = render(
        &DecodedAudio {
            sample_rate: rate,
            channels: vec![input.to_vec()],
            truncated: false,
        },
        &RenderOptions {
            mode: timbreswap_engine::processor::SwapMode::Neural,
            model: Some(net.clone()),
            latent_a: Some(&z),
            stft: net.stft(),
            mix: 1.0,
            ..RenderOptions::default()
        },
    );
    match rendered {
        Ok(r) if r.audio.channels.iter().flatten().all(|v| v.is_finite()) => Ok(Verdict::Accepted),
        Ok(_) => Err("an accepted model played non-finite audio".into()),
        Err(_) => Ok(Verdict::Refused),
    }
}

/// The plugin's state restore through the CLAP bundle: `host` (active) loads `bytes` and plays
/// one block of `input`; the output must be finite and within the engine's bound: the dry
/// input plus the wet signal at most [`WET_PEAK_LIMIT`] times the input's peak, times the
/// largest output gain.
///
/// [`WET_PEAK_LIMIT`]: timbreswap_engine::engine::WET_PEAK_LIMIT
pub fn state_target(
    host: &mut crate::host::PluginHost,
    bytes: &[u8],
    input: &[Vec<f32>],
) -> Result<Verdict, String> {
    let verdict = match host.load_state(bytes) {
        Ok(()) => Verdict::Accepted,
        Err(_) => Verdict::Refused,
    };
    let out = host
        .process(input, &[])
        .map_err(|e| format!("process failed after a state load: {e}"))?;
    let peak_in = input.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
    use timbreswap_engine::engine::{MAX_OUTPUT_GAIN, WET_PEAK_LIMIT};
    let limit = peak_in * (1.0 + WET_PEAK_LIMIT) * MAX_OUTPUT_GAIN * 1.001;
    for v in out.iter().flatten() {
        if !v.is_finite() || v.abs() > limit {
            return Err(format!("output sample {v} (input peak {peak_in})"));
        }
    }
    Ok(verdict)
}

/// The repository root.
pub fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The clip seeds: one fixture per format, with their extensions.
pub fn clip_seeds() -> Vec<(String, Vec<u8>)> {
    ["wav", "flac", "aiff", "ogg", "mp3"]
        .iter()
        .map(|ext| {
            let path = root().join(format!("engine/tests/fixtures/tone.{ext}"));
            (ext.to_string(), std::fs::read(&path).expect("clip fixture"))
        })
        .collect()
}

/// The committed state seeds (`tests/fuzz/states/*.state`).
pub fn state_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<_> = std::fs::read_dir(root().join("tests/fuzz/states"))
        .map(|dir| {
            dir.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "state"))
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    seeds.sort();
    seeds
}

/// A state mutant: one value replaced inside a persisted field or inside the nice-plug state
/// (its length prefix fixed up), or raw byte mutations.
pub fn mutate_state(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    // A third of the time, one value inside a persisted field (a timbre descriptor is JSON
    // inside the state's JSON).
    if rng.below(3) == 0 {
        if let Some(out) = mutate_persisted_field(seed, rng) {
            return out;
        }
    }
    if rng.below(2) == 0 {
        if let Some((_, json)) = seed.split_first_chunk::<8>() {
            if let Ok(text) = std::str::from_utf8(json) {
                let text = mutate_json(text, rng);
                let mut out = (text.len() as u64).to_le_bytes().to_vec();
                out.extend_from_slice(text.as_bytes());
                return out;
            }
        }
    }
    mutate(seed, rng)
}

/// `seed` with one value replaced inside one of its persisted fields' JSON; `None` if it has
/// no such field.
fn mutate_persisted_field(seed: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
    let (_, json) = seed.split_first_chunk::<8>()?;
    let mut value: serde_json::Value = serde_json::from_slice(json).ok()?;
    let fields = value.get_mut("fields")?.as_object_mut()?;
    let keys: Vec<String> = fields
        .iter()
        .filter(|(_, v)| v.as_str().is_some_and(|s| s.starts_with('{')))
        .map(|(k, _)| k.clone())
        .collect();
    if keys.is_empty() {
        return None;
    }
    let key = &keys[rng.below(keys.len())];
    let inner = fields[key].as_str()?.to_string();
    fields.insert(
        key.clone(),
        serde_json::Value::String(mutate_json(&inner, rng)),
    );
    let text = serde_json::to_vec(&value).ok()?;
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    Some(out)
}
