//! The rows of the table: the [`TransferSystem`] trait, the pair a row sees
//! ([`TransferPair`]), closures as rows ([`FnSystem`]) and the built-in rows [`Dry`],
//! [`Classic`], [`EngineNeural`] and [`Oracle`].

use std::collections::BTreeMap;
use std::sync::Arc;

use rustysynth::{SoundFont, Synthesizer, SynthesizerSettings};
use timbreswap_engine::clip::{descriptor_from_audio, DecodedAudio};
use timbreswap_engine::exemplar::ExemplarBank;
use timbreswap_engine::network::Network;
use timbreswap_engine::neural::PhaseMode;
use timbreswap_engine::processor::SwapMode;
use timbreswap_engine::render::{render, RenderOptions};
use timbreswap_engine::{LatencyMode, StftConfig};

use crate::dataset::{self, Score, OUTPUT_GAIN};
use crate::instruments::Instrument;
use crate::manifest::ClipRecord;

/// One source/reference pair as a row sees it.
#[derive(Debug, Clone, Copy)]
pub struct TransferPair<'a> {
    /// The source phrase (instrument A), mono, in -1..1.
    pub source: &'a [f32],
    /// Its manifest record.
    pub source_record: &'a ClipRecord,
    /// The reference note clip (instrument B), mono, in -1..1.
    pub reference: &'a [f32],
    /// Its manifest record.
    pub reference_record: &'a ClipRecord,
    /// Sample rate of both, in Hz.
    pub sample_rate: u32,
    /// Semitones the rows that can move pitch (the engine's Exemplar and Neural, the
    /// Exemplar variants) play the source at, as the plugin's Transpose; 0 for a played or
    /// sung source.
    pub transpose: f32,
}

/// A row of the table: anything that turns (source, reference) into output audio.
pub trait TransferSystem: Sync {
    /// Row name.
    fn name(&self) -> String;
    /// Notes printed under the table.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
    /// Called once with every source record before anything is computed (fail fast).
    fn prepare(&self, _sources: &[&ClipRecord]) -> Result<(), String> {
        Ok(())
    }
    /// The output: mono at `pair.sample_rate`, the source's length (a different length is
    /// cut or padded with zeros), finite.
    fn transfer(&self, pair: &TransferPair<'_>) -> Result<Vec<f32>, String>;
}

/// A row from a closure.
pub struct FnSystem<F> {
    name: String,
    f: F,
}

impl<F> FnSystem<F>
where
    F: Fn(&TransferPair<'_>) -> Result<Vec<f32>, String> + Sync,
{
    /// The row `name` computed by `f`.
    pub fn new(name: impl Into<String>, f: F) -> Self {
        Self {
            name: name.into(),
            f,
        }
    }
}

impl<F> TransferSystem for FnSystem<F>
where
    F: Fn(&TransferPair<'_>) -> Result<Vec<f32>, String> + Sync,
{
    fn name(&self) -> String {
        self.name.clone()
    }

    fn transfer(&self, pair: &TransferPair<'_>) -> Result<Vec<f32>, String> {
        (self.f)(pair)
    }
}

/// The `dry` row: the source unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dry;

impl TransferSystem for Dry {
    fn name(&self) -> String {
        "dry".to_string()
    }

    fn transfer(&self, pair: &TransferPair<'_>) -> Result<Vec<f32>, String> {
        Ok(pair.source.to_vec())
    }
}

/// The pair's source phrase through the engine's offline render with `opts`.
fn render_source(pair: &TransferPair<'_>, opts: &RenderOptions) -> Result<Vec<f32>, String> {
    let input = DecodedAudio {
        sample_rate: pair.sample_rate,
        channels: vec![pair.source.to_vec()],
        truncated: false,
    };
    render(&input, opts)
        .map_err(|e| e.to_string())?
        .audio
        .channels
        .into_iter()
        .next()
        .ok_or_else(|| "the engine returned no channel".to_string())
}

/// What a row's name adds for `mode`: nothing, or ` low-latency`.
pub fn latency_suffix(mode: LatencyMode) -> &'static str {
    match mode {
        LatencyMode::Normal => "",
        LatencyMode::Low => " low-latency",
    }
}

/// What a row's note adds for `mode`.
fn latency_note(mode: LatencyMode) -> &'static str {
    match mode {
        LatencyMode::Normal => "",
        LatencyMode::Low => {
            "; the engine built for low latency (frames every half hop, each grain over the \
             frame's last hop, the latest processed frame's smoothed gain)"
        }
    }
}

/// The `classic` row: the plugin engine's offline render (same code as the plugin) with the
/// reference's timbre descriptor in slot A, mix 1.
#[derive(Debug, Clone, Copy, Default)]
pub struct Classic {
    /// The engine's analysis settings.
    pub stft: StftConfig,
    /// The latency the engine is built for (rows in the low-latency mode are named
    /// `... low-latency`).
    pub latency_mode: LatencyMode,
}

impl TransferSystem for Classic {
    fn name(&self) -> String {
        format!("classic{}", latency_suffix(self.latency_mode))
    }

    fn notes(&self) -> Vec<String> {
        vec![format!(
            "{}: the engine's offline render (cepstral envelope swap) with the reference's \
             timbre descriptor, mix 1, default settings{}.",
            self.name(),
            latency_note(self.latency_mode)
        )]
    }

    fn transfer(&self, pair: &TransferPair<'_>) -> Result<Vec<f32>, String> {
        let descriptor = reference_descriptor(pair, &self.stft)?;
        render_source(
            pair,
            &RenderOptions {
                timbre_a: Some(&descriptor),
                mix: 1.0,
                stft: self.stft,
                latency_mode: self.latency_mode,
                ..Default::default()
            },
        )
    }
}

/// The classic descriptor of a pair's reference clip.
fn reference_descriptor(
    pair: &TransferPair<'_>,
    stft: &StftConfig,
) -> Result<timbreswap_engine::TimbreDescriptor, String> {
    let reference = DecodedAudio {
        sample_rate: pair.sample_rate,
        channels: vec![pair.reference.to_vec()],
        truncated: false,
    };
    descriptor_from_audio(&pair.reference_record.path, &reference, stft).map_err(|e| e.to_string())
}

/// The `engine exemplar` row: the engine's offline render in Exemplar mode (the plugin's
/// code) with the reference clip in slot A, its classic descriptor beside it, mix 1.
pub struct EngineExemplar {
    /// Internal STFT settings.
    pub stft: StftConfig,
    /// The latency the engine is built for.
    pub latency_mode: LatencyMode,
}

impl TransferSystem for EngineExemplar {
    fn name(&self) -> String {
        format!("engine exemplar{}", latency_suffix(self.latency_mode))
    }

    fn notes(&self) -> Vec<String> {
        vec![format!(
            "{}: the engine's offline render in Exemplar mode (the reference clip's partials \
             and noise at the source's pitch, the source's phase where it has no sure pitch, \
             level matched), mix 1, default settings; where YIN is unsure of the source's \
             pitch, a harmonic sum near the last pitch it was sure of{}.",
            self.name(),
            latency_note(self.latency_mode)
        )]
    }

    fn transfer(&self, pair: &TransferPair<'_>) -> Result<Vec<f32>, String> {
        let descriptor = reference_descriptor(pair, &self.stft)?;
        let bank = ExemplarBank::new(&self.stft, pair.reference)
            .ok_or_else(|| "the reference has no sounding frame".to_string())?;
        render_source(
            pair,
            &RenderOptions {
                timbre_a: Some(&descriptor),
                mix: 1.0,
                stft: self.stft,
                mode: SwapMode::Exemplar,
                exemplars: [Some(Arc::new(bank)), None],
                transpose: pair.transpose,
                latency_mode: self.latency_mode,
                ..Default::default()
            },
        )
    }
}

/// A neural row rendered by the plugin's engine (the streaming neural mode, same code as the
/// plugin): the reference clip's `z_t` in slot A, mix 1, the given phase mode.
pub struct EngineNeural {
    /// Row name.
    pub name: String,
    /// The model.
    pub net: Arc<Network>,
    /// Phase reconstruction.
    pub phase: PhaseMode,
    /// Variation amount, 0..=2 (1: the plugin's default, `z_v` as played; 0: its prior mean).
    pub variation: f32,
    /// Diagnostic: take `z_t` from the source itself instead of the reference (the model's
    /// own reconstruction through the engine; its outputs should be classified as A).
    pub self_reference: bool,
    /// The latency the engine is built for.
    pub latency_mode: LatencyMode,
    /// Diagnostic: the reference's `z_t` fitted to the reference by the candle model of the
    /// same file ([`crate::model::fit`]) instead of read by the timbre encoder.
    pub fit: Option<Arc<(crate::model::ThreeFactor, crate::model::fit::TimbreFit)>>,
}

impl TransferSystem for EngineNeural {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn notes(&self) -> Vec<String> {
        vec![format!(
            "{}: the engine's offline render in Neural mode (streaming encoders with the input-timbre tracker, {}'s z_t, {:?} phase, level matched), mix 1, variation {}, no transposition{}.",
            self.name,
            if self.self_reference { "the source clip (a diagnostic: no swap)" } else { "the reference clip" },
            self.phase,
            self.variation,
            latency_note(self.latency_mode)
        )]
        .into_iter()
        .chain(self.fit.as_ref().map(|fit| {
            format!(
                "{}: z_t fitted to the clip (the encoder's z_t, then {} Adam steps at learning rate {} on the decoder's mean squared error over the clip's active frames, its own z_v and z_p held; prior weight {}).",
                self.name, fit.1.steps, fit.1.learning_rate, fit.1.prior_weight
            )
        }))
        .collect()
    }

    fn transfer(&self, pair: &TransferPair<'_>) -> Result<Vec<f32>, String> {
        let stft = self.net.stft();
        if pair.sample_rate != stft.sample_rate {
            return Err(format!(
                "the model runs at {} Hz, the data is {} Hz",
                stft.sample_rate, pair.sample_rate
            ));
        }
        let clip = if self.self_reference {
            pair.source
        } else {
            pair.reference
        };
        let z_t = match &self.fit {
            Some(fit) => {
                crate::model::fit::fit_timbre(&fit.0, clip, &fit.1)
                    .map_err(|e| format!("fitting z_t: {e}"))?
                    .z_t
            }
            None => self.net.clip_timbre(clip),
        };
        render_source(
            pair,
            &RenderOptions {
                mix: 1.0,
                stft,
                mode: SwapMode::Neural,
                model: Some(self.net.clone()),
                latent_a: Some(&z_t),
                phase: self.phase,
                variation: self.variation,
                transpose: pair.transpose,
                latency_mode: self.latency_mode,
                ..Default::default()
            },
        )
    }
}

/// The `oracle` row: the source phrase's score (regenerated from the phrase generator) played
/// with B's program on the same SoundFont, scaled and quantised as the dataset writer does.
pub struct Oracle {
    soundfont: Arc<SoundFont>,
    phrase_seed: u64,
    instruments: BTreeMap<u8, Instrument>,
}

impl Oracle {
    /// The oracle for phrases rendered with `phrase_seed` from `soundfont`, with the
    /// instruments (note ranges) the phrases were generated for.
    pub fn new(
        soundfont: Arc<SoundFont>,
        phrase_seed: u64,
        instruments: BTreeMap<u8, Instrument>,
    ) -> Self {
        Self {
            soundfont,
            phrase_seed,
            instruments,
        }
    }

    /// The score of `source` as generated by the dataset (program A), checked against the
    /// record's labels and length.
    pub fn source_score(&self, source: &ClipRecord) -> Result<Score, String> {
        phrase_score_of(source, &self.instruments, self.phrase_seed)
    }
}

/// The score of the phrase `source` as the dataset generated it (program A's note range from
/// `instruments`, `phrase_seed`), checked against the record's labels and length.
pub fn phrase_score_of(
    source: &ClipRecord,
    instruments: &BTreeMap<u8, Instrument>,
    phrase_seed: u64,
) -> Result<Score, String> {
    let index = source
        .phrase
        .ok_or_else(|| format!("{} is not a phrase", source.path.display()))?;
    let inst = instruments.get(&source.program).ok_or_else(|| {
        format!(
            "program {} has no note clips in the manifest, so its note range (which the \
             phrase generator uses) is unknown",
            source.program
        )
    })?;
    let score = dataset::phrase_score(inst, index, phrase_seed, source.sample_rate);
    if score.length != source.samples || score.frame_notes(source.hop) != source.frame_notes {
        return Err(format!(
            "phrase {index} of program {} regenerated with phrase seed {phrase_seed} does not \
             match the manifest's labels: pass the seed the dataset was rendered with \
             (--phrase-seed)",
            source.program
        ));
    }
    Ok(score)
}

impl TransferSystem for Oracle {
    fn name(&self) -> String {
        super::ORACLE_ROW.to_string()
    }

    fn notes(&self) -> Vec<String> {
        vec![format!(
            "oracle: the source phrase's score (phrase seed {}) rendered with B's program on the \
             same SoundFont, the ideal transfer.",
            self.phrase_seed
        )]
    }

    fn prepare(&self, sources: &[&ClipRecord]) -> Result<(), String> {
        sources
            .iter()
            .try_for_each(|s| self.source_score(s).map(|_| ()))
    }

    fn transfer(&self, pair: &TransferPair<'_>) -> Result<Vec<f32>, String> {
        let mut score = self.source_score(pair.source_record)?;
        for e in &mut score.events {
            if e.command == 0xC0 {
                e.data1 = pair.reference_record.program as i32;
            }
        }
        let mut settings = SynthesizerSettings::new(pair.sample_rate as i32);
        settings.enable_reverb_and_chorus = false;
        let mut synth =
            Synthesizer::new(&self.soundfont, &settings).map_err(|e| format!("{e:?}"))?;
        let audio = dataset::play(&mut synth, &score);
        Ok(audio
            .iter()
            .map(|s| (s * OUTPUT_GAIN * 32767.0).round().clamp(-32768.0, 32767.0) / 32768.0)
            .collect())
    }
}

/// An exemplar-swap row: the reference clip's own frames, chosen by note age and pitch (the
/// model's pitch ruler) and moved to the source's pitch, with the source's phase and level
/// (`timbreswap_engine::exemplar`), overlap-added offline.
pub struct Exemplar {
    /// Row name.
    pub name: String,
    /// The model (its pitch ruler and features).
    pub net: Arc<Network>,
    /// The processor's switches.
    pub opts: timbreswap_engine::exemplar::ExemplarOptions,
    /// Diagnostic: the scores' notes instead of measured pitches.
    pub known_pitch: bool,
    /// The model's pitch ruler as the guess where YIN is unsure (the plugin's Exemplar mode
    /// has none: it searches near the last sure pitch).
    pub ruler: bool,
}

impl TransferSystem for Exemplar {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn notes(&self) -> Vec<String> {
        vec![format!(
            "{}: exemplar swap ({:?}), the reference's frames chosen by note age and pitch, the source's per-frame level.",
            self.name, self.opts
        )]
    }

    fn transfer(&self, pair: &TransferPair<'_>) -> Result<Vec<f32>, String> {
        use timbreswap_engine::exemplar::{ExemplarBank, ExemplarSwap};
        use timbreswap_engine::features::centred_frame;
        use timbreswap_engine::stft::Stft;
        let cfg = self.net.stft();
        if pair.sample_rate != cfg.sample_rate {
            return Err(format!(
                "the model runs at {} Hz, the data is {} Hz",
                cfg.sample_rate, pair.sample_rate
            ));
        }
        let known_ref = self
            .known_pitch
            .then(|| pair.reference_record.note.map(|n| n as f32 - 60.0))
            .flatten();
        let bank = if self.ruler {
            ExemplarBank::with_ruler(&self.net, pair.reference, known_ref)
        } else {
            ExemplarBank::analyse_with_pitch(&cfg, pair.reference, known_ref)
        }
        .ok_or_else(|| "the reference has no sounding frame (or no pitch ruler)".to_string())?;
        let bank = Arc::new(bank);
        let mut swap = if self.ruler {
            ExemplarSwap::with_ruler(self.net.clone(), bank, self.opts)
        } else {
            ExemplarSwap::new(&cfg, bank, self.opts)
        };
        swap.set_transpose(pair.transpose);
        let mut stft = Stft::new(&cfg);
        let n = cfg.n_fft;
        let bins = cfg.n_bins();
        let mut frame = vec![0.0f32; n];
        let mut spectrum = vec![realfft::num_complex::Complex32::default(); bins];
        let mut out = spectrum.clone();
        let mut grain = vec![0.0f32; n];
        let len = pair.source.len();
        let mut output = vec![0.0f32; len + n];
        let mut gain_db: Option<f32> = None;
        let frames = len / cfg.hop + 1;
        for f in 0..frames {
            centred_frame(pair.source, f * cfg.hop, &mut frame);
            stft.analyse(&frame, &mut spectrum);
            let known = self
                .known_pitch
                .then(|| pair.source_record.frame_notes.get(f).copied())
                .flatten()
                .filter(|n| *n >= 0)
                // The note the source sounds: its score's, `transpose` above the outputs'.
                .map(|n| n as f32 - 60.0 - pair.transpose);
            swap.process_at(&frame, &spectrum, known, &mut out);
            let e_in: f32 = spectrum.iter().map(|c| c.norm_sqr()).sum();
            let e_out: f32 = out.iter().map(|c| c.norm_sqr()).sum();
            let g = if e_in < 1e-12 || e_out <= 0.0 {
                0.0
            } else {
                let db = (10.0 * (e_in / e_out).log10()).min(40.0);
                let db = match gain_db {
                    Some(p) => p + 0.5 * (db - p),
                    None => db,
                };
                gain_db = Some(db);
                10f32.powf(db / 20.0)
            };
            for c in out.iter_mut() {
                *c *= g;
            }
            stft.synthesise(&mut out, &mut grain);
            // Grain f covers samples f*hop - n/2 .. f*hop + n/2.
            for (i, g) in grain.iter().enumerate() {
                let at = (f * cfg.hop + i) as isize - (n / 2) as isize;
                if at >= 0 && (at as usize) < output.len() {
                    output[at as usize] += g;
                }
            }
        }
        output.truncate(len);
        for s in output.iter_mut() {
            if !s.is_finite() {
                *s = 0.0;
            }
        }
        Ok(output)
    }
}
