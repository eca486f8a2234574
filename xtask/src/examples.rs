//! `cargo xtask examples`: the example clips, synthesised with rustysynth from a GM SoundFont.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, ensure, Context, Result};
use rustysynth::{SoundFont, Synthesizer, SynthesizerSettings};

use super::EXAMPLES_DIR;

/// SoundFonts tried, in order, when `--soundfont` is not given (Debian package locations).
const DEFAULT_SOUNDFONTS: [&str; 2] = [
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
];

/// Sample rate of the example files, in Hz.
const SAMPLE_RATE: u32 = 32_000;

/// Peak level the clips are normalised to, in dBFS.
const PEAK_DBFS: f64 = -3.0;

/// Fade-out at the very end of every clip, in seconds (cuts any release tail cleanly).
const FADE_OUT_S: f64 = 0.02;

/// Upper bound on the combined size of the example files, in bytes.
const MAX_TOTAL_BYTES: u64 = 2_000_000;

/// Pitch-bend range of the synthesiser channel, in semitones (set through RPN 0).
const BEND_RANGE_SEMITONES: i32 = 2;

/// Interval between two pitch-bend messages of a vibrato, in seconds.
const VIBRATO_STEP_S: f64 = 0.005;

/// Vibrato rate, in Hz.
const VIBRATO_RATE_HZ: f64 = 5.5;

/// Vibrato depth (peak deviation), in semitones.
const VIBRATO_DEPTH_SEMITONES: f64 = 0.3;

/// Part of the vibrato note, from its start, that is played straight.
const VIBRATO_DELAY: f64 = 0.25;

/// Time the vibrato takes to reach its full depth, in seconds.
const VIBRATO_FADE_IN_S: f64 = 0.3;

/// Interval between two expression (CC 11) messages of a swell, in seconds.
const SWELL_STEP_S: f64 = 0.01;

/// Expression value a swell starts from.
const SWELL_FROM: i32 = 35;

/// Part of the swell note, from its start, over which the expression rises to 127.
const SWELL_SPAN: f64 = 0.75;

/// MIDI channel everything is played on.
const CHANNEL: i32 = 0;

/// One note: key, velocity, start and end times in seconds.
#[derive(Debug, Clone, Copy)]
struct Note {
    key: i32,
    velocity: i32,
    start: f64,
    end: f64,
}

/// Shorthand constructor for the note tables below.
const fn note(key: i32, velocity: i32, start: f64, end: f64) -> Note {
    Note {
        key,
        velocity,
        start,
        end,
    }
}

/// One example clip: an instrument playing a phrase.
#[derive(Debug)]
struct Clip {
    /// File name inside [`EXAMPLES_DIR`].
    file: &'static str,
    /// General MIDI program (0-based).
    program: i32,
    /// Length of the file, in seconds.
    duration_s: f64,
    /// The phrase, monophonic. A note starting where the previous one ends is legato.
    notes: &'static [Note],
    /// Index of the note that gets a pitch-bend vibrato.
    vibrato_note: Option<usize>,
    /// Index of the note that gets an expression (CC 11) swell.
    swell_note: Option<usize>,
}

/// The example clips: three melodic inputs and four references.
const CLIPS: [Clip; 7] = [
    Clip {
        file: "input-flute.wav",
        program: 73,
        duration_s: 4.0,
        notes: &[
            note(72, 92, 0.05, 0.95),
            note(74, 96, 0.95, 1.35),
            note(76, 100, 1.35, 1.75),
            note(79, 104, 1.75, 2.15),
            note(77, 90, 2.3, 2.6),
            note(76, 96, 2.6, 3.7),
        ],
        vibrato_note: Some(5),
        swell_note: Some(0),
    },
    Clip {
        file: "input-voice.wav",
        program: 53,
        duration_s: 4.0,
        notes: &[
            note(57, 90, 0.05, 0.95),
            note(60, 96, 0.95, 1.45),
            note(59, 92, 1.45, 1.85),
            note(62, 100, 1.85, 2.3),
            note(64, 104, 2.45, 3.7),
        ],
        vibrato_note: Some(4),
        swell_note: Some(0),
    },
    Clip {
        file: "input-synth-lead.wav",
        program: 81,
        duration_s: 4.0,
        notes: &[
            note(64, 100, 0.05, 0.45),
            note(67, 96, 0.45, 0.85),
            note(69, 92, 0.85, 1.75),
            note(71, 104, 1.75, 2.15),
            note(69, 96, 2.3, 2.6),
            note(67, 100, 2.6, 3.7),
        ],
        vibrato_note: Some(5),
        swell_note: Some(2),
    },
    Clip {
        file: "ref-trumpet.wav",
        program: 56,
        duration_s: 2.0,
        notes: &[note(67, 100, 0.02, 1.8)],
        vibrato_note: None,
        swell_note: None,
    },
    Clip {
        file: "ref-cello.wav",
        program: 42,
        duration_s: 2.0,
        notes: &[note(50, 100, 0.02, 1.8)],
        vibrato_note: None,
        swell_note: None,
    },
    Clip {
        file: "ref-clarinet.wav",
        program: 71,
        duration_s: 2.0,
        notes: &[note(62, 100, 0.02, 1.8)],
        vibrato_note: None,
        swell_note: None,
    },
    Clip {
        file: "ref-violin.wav",
        program: 40,
        duration_s: 2.0,
        notes: &[note(69, 100, 0.02, 1.8)],
        vibrato_note: None,
        swell_note: None,
    },
];

/// A channel message for the synthesiser, at a time in samples.
#[derive(Debug, Clone, Copy)]
struct Event {
    at: usize,
    command: i32,
    data1: i32,
    data2: i32,
}

impl Event {
    /// An event at `seconds`.
    fn new(seconds: f64, command: i32, data1: i32, data2: i32) -> Self {
        Self {
            at: seconds_to_samples(seconds),
            command,
            data1,
            data2,
        }
    }

    /// A control change (status 0xB0).
    fn control(seconds: f64, controller: i32, value: i32) -> Self {
        Self::new(seconds, 0xB0, controller, value)
    }

    /// A 14-bit pitch bend (status 0xE0), `value` in `0..16384` with 8192 centred.
    fn pitch_bend(seconds: f64, value: i32) -> Self {
        let value = value.clamp(0, 16383);
        Self::new(seconds, 0xE0, value & 0x7F, value >> 7)
    }
}

/// `cargo xtask examples [--soundfont PATH]`.
pub fn run(args: &[String]) -> Result<()> {
    let requested = parse_soundfont_arg(args)?;
    nice_plug_xtask::chdir_workspace_root()?;
    let path = find_soundfont(requested)?;
    let sound_font = load_soundfont(&path)?;
    println!("SoundFont: {}", path.display());
    warn_missing_presets(&sound_font);

    let dir = Path::new(EXAMPLES_DIR);
    fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    let mut total_bytes = 0;
    for clip in &CLIPS {
        let samples = render_clip(&sound_font, clip)?;
        let path = dir.join(clip.file);
        write_pcm16(&path, &samples)?;
        let bytes = fs::metadata(&path)
            .with_context(|| format!("could not read the size of {}", path.display()))?
            .len();
        total_bytes += bytes;
        let seconds = samples.len() as f64 / f64::from(SAMPLE_RATE);
        println!("wrote {} ({seconds:.2} s, {bytes} bytes)", path.display());
    }
    println!("{} files, {total_bytes} bytes in all", CLIPS.len());
    ensure!(
        total_bytes <= MAX_TOTAL_BYTES,
        "the example files take {total_bytes} bytes, over the {MAX_TOTAL_BYTES}-byte budget"
    );
    Ok(())
}

/// Parses `[--soundfont PATH | --soundfont=PATH]`.
fn parse_soundfont_arg(args: &[String]) -> Result<Option<PathBuf>> {
    let mut soundfont = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = if arg == "--soundfont" {
            args.next().context("`--soundfont` needs a path")?.clone()
        } else if let Some(value) = arg.strip_prefix("--soundfont=") {
            value.to_owned()
        } else {
            bail!("unknown argument `{arg}` (usage: cargo xtask examples [--soundfont PATH])");
        };
        soundfont = Some(PathBuf::from(value));
    }
    Ok(soundfont)
}

/// The SoundFont to use: the requested one (which must exist) or the first default found.
fn find_soundfont(requested: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(path) = requested {
        ensure!(
            path.is_file(),
            "SoundFont {} does not exist",
            path.display()
        );
        return Ok(path);
    }
    DEFAULT_SOUNDFONTS
        .iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .with_context(|| {
            format!(
                "no General MIDI SoundFont found (looked for {}); install one with \
                 `apt-get install fluid-soundfont-gm` (or `timgm6mb-soundfont`), or pass \
                 `--soundfont PATH`",
                DEFAULT_SOUNDFONTS.join(" and ")
            )
        })
}

/// Reads and parses a SoundFont file.
fn load_soundfont(path: &Path) -> Result<Arc<SoundFont>> {
    let file = File::open(path).with_context(|| format!("could not open {}", path.display()))?;
    let sound_font = SoundFont::new(&mut BufReader::new(file))
        .map_err(|error| anyhow::anyhow!("{error:?}"))
        .with_context(|| format!("could not parse SoundFont {}", path.display()))?;
    Ok(Arc::new(sound_font))
}

/// Warns about GM programs the clips use that the SoundFont lacks in bank 0 (rustysynth
/// would silently fall back to its default preset).
fn warn_missing_presets(sound_font: &SoundFont) {
    for clip in &CLIPS {
        let present = sound_font
            .get_presets()
            .iter()
            .any(|p| p.get_bank_number() == 0 && p.get_patch_number() == clip.program);
        if !present {
            eprintln!(
                "warning: the SoundFont has no bank-0 preset for GM program {} ({})",
                clip.program, clip.file
            );
        }
    }
}

/// Converts seconds to a sample index at [`SAMPLE_RATE`].
fn seconds_to_samples(seconds: f64) -> usize {
    (seconds * f64::from(SAMPLE_RATE)).round().max(0.0) as usize
}

/// Renders `clip` to mono samples normalised to [`PEAK_DBFS`].
fn render_clip(sound_font: &Arc<SoundFont>, clip: &Clip) -> Result<Vec<f32>> {
    let mut settings = SynthesizerSettings::new(SAMPLE_RATE as i32);
    settings.enable_reverb_and_chorus = false;
    let mut synth = Synthesizer::new(sound_font, &settings)
        .map_err(|error| anyhow::anyhow!("{error:?}"))
        .with_context(|| format!("could not create a synthesiser for {}", clip.file))?;

    let mut events = setup_events(clip.program);
    for (index, note) in clip.notes.iter().enumerate() {
        if clip.swell_note == Some(index) {
            events.extend(swell_events(note));
        }
        events.push(Event::new(note.start, 0x90, note.key, note.velocity));
        events.push(Event::new(note.end, 0x80, note.key, 0));
        if clip.vibrato_note == Some(index) {
            events.extend(vibrato_events(note));
        }
    }
    // Stable: simultaneous events keep their order (a note ends before the next starts).
    events.sort_by_key(|event| event.at);

    let mut samples = play(&mut synth, &events, seconds_to_samples(clip.duration_s));
    fade_out(&mut samples);
    normalise(&mut samples).with_context(|| format!("{} rendered silent", clip.file))?;
    Ok(samples)
}

/// Program change and a dry, centred, bend-range-defined channel.
fn setup_events(program: i32) -> Vec<Event> {
    vec![
        Event::new(0.0, 0xC0, program, 0),
        Event::control(0.0, 7, 100),  // volume
        Event::control(0.0, 10, 64),  // pan: centre
        Event::control(0.0, 11, 127), // expression
        Event::control(0.0, 91, 0),   // reverb send
        Event::control(0.0, 93, 0),   // chorus send
        Event::control(0.0, 101, 0),  // RPN 0: pitch-bend range…
        Event::control(0.0, 100, 0),
        Event::control(0.0, 6, BEND_RANGE_SEMITONES), // …in semitones
        Event::control(0.0, 38, 0),
        Event::control(0.0, 101, 127), // RPN null
        Event::control(0.0, 100, 127),
        Event::pitch_bend(0.0, 8192),
    ]
}

/// Expression rising from [`SWELL_FROM`] to 127 over the first [`SWELL_SPAN`] of `note`
/// (the first message comes before the note starts).
fn swell_events(note: &Note) -> Vec<Event> {
    let span = (note.end - note.start) * SWELL_SPAN;
    let steps = (span / SWELL_STEP_S).ceil().max(1.0) as usize;
    (0..=steps)
        .map(|step| {
            let fraction = step as f64 / steps as f64;
            let value = f64::from(SWELL_FROM) + fraction * f64::from(127 - SWELL_FROM);
            Event::control(note.start + fraction * span, 11, value.round() as i32)
        })
        .collect()
}

/// A sine vibrato through pitch bend over the end of `note`, fading in, then the bend
/// re-centred when the note ends.
fn vibrato_events(note: &Note) -> Vec<Event> {
    let start = note.start + (note.end - note.start) * VIBRATO_DELAY;
    let steps = ((note.end - start) / VIBRATO_STEP_S).floor() as usize;
    let depth = VIBRATO_DEPTH_SEMITONES / f64::from(BEND_RANGE_SEMITONES) * 8192.0;
    let mut events: Vec<Event> = (0..steps)
        .map(|step| {
            let t = step as f64 * VIBRATO_STEP_S;
            let fade = (t / VIBRATO_FADE_IN_S).min(1.0);
            let phase = std::f64::consts::TAU * VIBRATO_RATE_HZ * t;
            let bend = 8192.0 + depth * fade * phase.sin();
            Event::pitch_bend(start + t, bend.round() as i32)
        })
        .collect();
    events.push(Event::pitch_bend(note.end, 8192));
    events
}

/// Renders `length` samples, applying `events` (sorted by time) on the way, and returns the
/// mono mix-down.
fn play(synth: &mut Synthesizer, events: &[Event], length: usize) -> Vec<f32> {
    let mut left = vec![0.0; length];
    let mut right = vec![0.0; length];
    let mut position = 0;
    for event in events {
        let at = event.at.min(length);
        if at > position {
            synth.render(&mut left[position..at], &mut right[position..at]);
            position = at;
        }
        synth.process_midi_message(CHANNEL, event.command, event.data1, event.data2);
    }
    if position < length {
        synth.render(&mut left[position..], &mut right[position..]);
    }
    left.iter()
        .zip(&right)
        .map(|(l, r)| 0.5 * (l + r))
        .collect()
}

/// Linear fade to zero over the last [`FADE_OUT_S`].
fn fade_out(samples: &mut [f32]) {
    let fade = seconds_to_samples(FADE_OUT_S).min(samples.len());
    let start = samples.len() - fade;
    for (i, sample) in samples[start..].iter_mut().enumerate() {
        *sample *= 1.0 - (i + 1) as f32 / fade as f32;
    }
}

/// Scales `samples` so that their peak is at [`PEAK_DBFS`]; fails if they are silent.
fn normalise(samples: &mut [f32]) -> Result<()> {
    let peak = samples.iter().fold(0.0f32, |peak, s| peak.max(s.abs()));
    ensure!(peak > 1e-6 && peak.is_finite(), "peak level {peak}");
    let gain = (10f64.powf(PEAK_DBFS / 20.0) / f64::from(peak)) as f32;
    samples.iter_mut().for_each(|sample| *sample *= gain);
    Ok(())
}

/// Writes `samples` as a mono 16-bit PCM WAV file at [`SAMPLE_RATE`].
fn write_pcm16(path: &Path, samples: &[f32]) -> Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let write = || -> hound::Result<()> {
        let mut writer = hound::WavWriter::create(path, spec)?;
        for &sample in samples {
            let value = (sample * f32::from(i16::MAX)).round();
            writer.write_sample(value.clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16)?;
        }
        writer.finalize()
    };
    write().with_context(|| format!("could not write {}", path.display()))
}
