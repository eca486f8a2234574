//! The control side of a running engine ([`EngineControl`]): hands timbres, models, clips
//! and whole states to the audio side over the control ring and frees what comes back on the
//! garbage ring. Not realtime-safe: the GUI, a background task or the main thread.

use super::*;

/// Why the control side could not hand something to the engine.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControlError {
    /// The descriptor is unusable.
    #[error(transparent)]
    Timbre(#[from] TimbreError),
    /// Too many changes are waiting for the engine; try again shortly.
    #[error("the engine is busy; try again")]
    QueueFull,
    /// The model frames audio differently from this engine (rate, FFT size or hop).
    #[error(
        "the model was trained on {} Hz audio in {}-sample frames every {} samples; this \
         plugin runs {} Hz, {}-sample frames every {} samples (train or export the model for \
         the plugin's settings)",
        model.sample_rate, model.n_fft, model.hop, engine.sample_rate, engine.n_fft, engine.hop
    )]
    ModelMismatch {
        /// The model's analysis settings.
        model: StftConfig,
        /// The engine's.
        engine: StftConfig,
    },
    /// An exemplar bank analysed at other frames than this engine's.
    #[error(
        "the clip was analysed at {} Hz in {}-sample frames every {} samples; this engine runs \
         {} Hz, {}-sample frames every {} samples",
        clip.sample_rate, clip.n_fft, clip.hop, engine.sample_rate, engine.n_fft, engine.hop
    )]
    ExemplarFraming {
        /// The bank's analysis settings.
        clip: StftConfig,
        /// The engine's.
        engine: StftConfig,
    },
    /// A timbre latent of the wrong size for the loaded model.
    #[error("a timbre latent of {found} values does not fit a model of {expected}")]
    LatentSize {
        /// Values given.
        found: usize,
        /// Values the model needs.
        expected: usize,
    },
}

/// The control side's handle on a running engine: sets timbres, frees what the engine hands
/// back. Not realtime-safe; use from the GUI, a background task or the main thread.
pub struct EngineControl {
    pub(super) stft: StftConfig,
    /// The clips last handed to slots A and B for Exemplar mode: a state that brings the same
    /// clip (the same `Arc`) again leaves that slot's stream playing instead of restarting it.
    pub(super) exemplars: [Option<Arc<ExemplarBank>>; 2],
    /// Latent size of the loaded model, if any.
    pub(super) z_t: Option<usize>,
    pub(super) tx: Producer<ControlToProcessorMsg>,
    pub(super) garbage: Consumer<ProcessorToControlMsg>,
    pub(super) spectra: SpectrumView,
    /// The worker thread (realtime mode), woken after each message so that an idle worker,
    /// which the audio thread no longer wakes, takes it at once.
    pub(super) worker: Option<std::thread::Thread>,
}

impl EngineControl {
    /// Wakes the worker so it polls the control ring now.
    fn wake_worker(&self) {
        if let Some(t) = &self.worker {
            t.unpark();
        }
    }

    /// The live view's spectra (open it with [`SpectrumView::set_open`], read the newest with
    /// [`SpectrumView::update`]). Not realtime-safe.
    pub fn spectra(&mut self) -> &mut SpectrumView {
        &mut self.spectra
    }

    /// Puts `timbre` into `slot` (`None` empties it). Not realtime-safe.
    pub fn set_timbre(
        &mut self,
        slot: Slot,
        timbre: Option<&TimbreDescriptor>,
    ) -> Result<(), ControlError> {
        self.collect_garbage();
        let envelope = self.envelope(timbre)?;
        self.tx
            .push(ControlToProcessorMsg::SetTimbre { slot, envelope })
            .map_err(|_| ControlError::QueueFull)?;
        self.wake_worker();
        Ok(())
    }

    /// Loads a neural model (`None` unloads it) with the timbre latents of slots A and B
    /// (`z_t` values of this model each, `None` for an empty slot). The processor is built
    /// here; the engine swaps it in between two frames and hands the old one back to be freed
    /// here. Not realtime-safe.
    pub fn set_model(
        &mut self,
        model: Option<Arc<Network>>,
        timbre_a: Option<&[f32]>,
        timbre_b: Option<&[f32]>,
    ) -> Result<(), ControlError> {
        self.collect_garbage();
        let (processor, z_t) = self.neural_processor(model.clone(), [timbre_a, timbre_b])?;
        if self.tx.is_full() {
            return Err(ControlError::QueueFull);
        }
        // Cannot fail: this is the ring's only producer and it has a free slot.
        let _ = self.tx.push(ControlToProcessorMsg::SetModel(processor));
        // Recorded only once the model is on its way, so a refused hand-off changes nothing.
        self.z_t = z_t;
        self.wake_worker();
        Ok(())
    }

    /// Applies a whole state at once: both slots' timbres and latents, and a new model if
    /// [`StateUpdate::model`] says so. Everything is checked (descriptors, the model's framing,
    /// latent sizes, room in the queue) before anything is sent, so on an error nothing has
    /// changed: the engine never plays half of a state. Not realtime-safe.
    pub fn set_state(&mut self, update: StateUpdate<'_>) -> Result<(), ControlError> {
        self.collect_garbage();
        let envelopes = [
            self.envelope(update.timbres[0])?,
            self.envelope(update.timbres[1])?,
        ];
        let (model, z_t) = match update.model {
            Some(net) => {
                let (processor, z_t) = self.neural_processor(net, update.latents)?;
                (Some(processor), z_t)
            }
            None => {
                for z in update.latents.into_iter().flatten() {
                    self.check_latent(z, self.z_t)?;
                }
                (None, self.z_t)
            }
        };
        // A slot whose clip is what it plays already keeps its stream (`None` here: no
        // message), whatever the model does.
        let mut exemplars = [None, None];
        for (i, bank) in update.exemplars.iter().enumerate() {
            if !self.plays_already(i, bank.as_ref()) {
                exemplars[i] = Some(self.exemplar(bank.clone())?);
            }
        }
        // One message per slot for the timbre and one for the exemplar, plus the model (which
        // carries the latents) or one latent message per slot.
        let needed = 4 + if model.is_some() { 1 } else { 2 };
        if self.tx.slots() < needed {
            return Err(ControlError::QueueFull);
        }
        // None of the pushes below can fail: this is the ring's only producer and it has room.
        let had_model = model.is_some();
        if let Some(processor) = model {
            let _ = self.tx.push(ControlToProcessorMsg::SetModel(processor));
        }
        for (slot, envelope) in [Slot::A, Slot::B].into_iter().zip(envelopes) {
            let _ = self
                .tx
                .push(ControlToProcessorMsg::SetTimbre { slot, envelope });
        }
        if !had_model {
            for (slot, z) in [Slot::A, Slot::B].into_iter().zip(update.latents) {
                let _ = self.tx.push(ControlToProcessorMsg::SetLatent {
                    slot,
                    z_t: z.map(|z| z.to_vec().into_boxed_slice()),
                });
            }
        }
        for (slot, swap) in [Slot::A, Slot::B].into_iter().zip(exemplars) {
            if let Some(swap) = swap {
                let _ = self
                    .tx
                    .push(ControlToProcessorMsg::SetExemplar { slot, swap });
                self.exemplars[slot as usize] = update.exemplars[slot as usize].clone();
            }
        }
        self.z_t = z_t;
        self.wake_worker();
        Ok(())
    }

    /// Puts `timbre`, its `z_t` latent (for the loaded model) and its analysed clip (for
    /// Exemplar mode; `None` for a preset) into `slot`, all or none (everything is checked
    /// before anything is sent). Not realtime-safe.
    pub fn set_slot(
        &mut self,
        slot: Slot,
        timbre: Option<&TimbreDescriptor>,
        z_t: Option<&[f32]>,
        exemplar: Option<Arc<ExemplarBank>>,
    ) -> Result<(), ControlError> {
        self.collect_garbage();
        let envelope = self.envelope(timbre)?;
        if let Some(z) = z_t {
            self.check_latent(z, self.z_t)?;
        }
        let swap = if self.plays_already(slot as usize, exemplar.as_ref()) {
            None
        } else {
            Some(self.exemplar(exemplar.clone())?)
        };
        if self.tx.slots() < 3 {
            return Err(ControlError::QueueFull);
        }
        // None of the pushes can fail: this is the ring's only producer and it has room.
        if let Some(swap) = swap {
            let _ = self
                .tx
                .push(ControlToProcessorMsg::SetExemplar { slot, swap });
            self.exemplars[slot as usize] = exemplar;
        }
        let _ = self
            .tx
            .push(ControlToProcessorMsg::SetTimbre { slot, envelope });
        let _ = self.tx.push(ControlToProcessorMsg::SetLatent {
            slot,
            z_t: z_t.map(|z| z.to_vec().into_boxed_slice()),
        });
        self.wake_worker();
        Ok(())
    }

    /// The envelope the processor plays for `timbre` (validated first).
    fn envelope(
        &self,
        timbre: Option<&TimbreDescriptor>,
    ) -> Result<Option<Box<[f32]>>, ControlError> {
        match timbre {
            Some(t) => {
                t.validate()?;
                Ok(Some(t.envelope_for(&self.stft).into_boxed_slice()))
            }
            None => Ok(None),
        }
    }

    /// Room in the control queue, in messages. Not realtime-safe.
    pub fn free_slots(&mut self) -> usize {
        self.collect_garbage();
        self.tx.slots()
    }

    /// A latent of `found` values against a model of `expected` (`None`: no model, anything
    /// goes; the processor ignores latents then).
    fn check_latent(&self, z: &[f32], expected: Option<usize>) -> Result<(), ControlError> {
        match expected {
            Some(expected) if z.len() != expected => Err(ControlError::LatentSize {
                found: z.len(),
                expected,
            }),
            _ => Ok(()),
        }
    }

    /// The neural processor for `model` with the slots' latents, checked against this engine's
    /// framing and the model's latent size, and the model's latent size.
    #[allow(clippy::type_complexity)]
    fn neural_processor(
        &self,
        model: Option<Arc<Network>>,
        latents: [Option<&[f32]>; 2],
    ) -> Result<(Option<Box<NeuralProcessor>>, Option<usize>), ControlError> {
        let Some(net) = model else {
            return Ok((None, None));
        };
        // The framing must agree; the cepstral cut-off is the model's own business (its
        // processor lifters with its own).
        let m = net.stft();
        if (m.sample_rate, m.n_fft, m.hop)
            != (self.stft.sample_rate, self.stft.n_fft, self.stft.hop)
        {
            return Err(ControlError::ModelMismatch {
                model: net.stft(),
                engine: self.stft,
            });
        }
        let expected = net.config().z_t;
        for z in latents.into_iter().flatten() {
            self.check_latent(z, Some(expected))?;
        }
        let boxed = |z: Option<&[f32]>| z.map(|z| z.to_vec().into_boxed_slice());
        Ok((
            Some(Box::new(NeuralProcessor::new(
                net,
                boxed(latents[0]),
                boxed(latents[1]),
            ))),
            Some(expected),
        ))
    }

    /// Puts a timbre latent of the loaded model into `slot` (`None` empties it). Not
    /// realtime-safe.
    pub fn set_latent(&mut self, slot: Slot, z_t: Option<&[f32]>) -> Result<(), ControlError> {
        self.collect_garbage();
        if let Some(z) = z_t {
            self.check_latent(z, self.z_t)?;
        }
        self.tx
            .push(ControlToProcessorMsg::SetLatent {
                slot,
                z_t: z_t.map(|z| z.to_vec().into_boxed_slice()),
            })
            .map_err(|_| ControlError::QueueFull)?;
        self.wake_worker();
        Ok(())
    }

    /// Replaces the exemplar swap of `slot` with one drawing from `bank` (`None` empties
    /// it), used by [`SwapMode::Exemplar`]. The swap is built
    /// here; the old one comes back to be freed here. The clip the slot plays already (the
    /// same `Arc`) is left playing: nothing restarts. Not realtime-safe.
    pub fn set_exemplar(
        &mut self,
        slot: Slot,
        bank: Option<Arc<ExemplarBank>>,
    ) -> Result<(), ControlError> {
        self.collect_garbage();
        if self.plays_already(slot as usize, bank.as_ref()) {
            return Ok(());
        }
        let swap = self.exemplar(bank.clone())?;
        if self.tx.is_full() {
            return Err(ControlError::QueueFull);
        }
        // Cannot fail: this is the ring's only producer and it has a free slot.
        let _ = self
            .tx
            .push(ControlToProcessorMsg::SetExemplar { slot, swap });
        self.exemplars[slot as usize] = bank;
        self.wake_worker();
        Ok(())
    }

    /// Whether slot `i` plays `bank` (the same analysis, not just an equal one) already, so
    /// that handing it over again would only restart its stream mid-note.
    fn plays_already(&self, i: usize, bank: Option<&Arc<ExemplarBank>>) -> bool {
        match (&self.exemplars[i], bank) {
            (None, None) => true,
            (Some(playing), Some(bank)) => Arc::ptr_eq(playing, bank),
            _ => false,
        }
    }

    /// The exemplar swap drawing from `bank`, if its framing is this engine's. Where YIN is
    /// unsure of the input's pitch it searches near the last pitch it was sure of; a model's
    /// pitch ruler, measured there, moved neither transfer table (docs/quality.md). Allocates.
    fn exemplar(
        &self,
        bank: Option<Arc<ExemplarBank>>,
    ) -> Result<Option<Box<ExemplarSwap>>, ControlError> {
        let Some(bank) = bank else {
            return Ok(None);
        };
        if bank.stft() != self.stft {
            return Err(ControlError::ExemplarFraming {
                clip: bank.stft(),
                engine: self.stft,
            });
        }
        Ok(Some(Box::new(ExemplarSwap::new(
            &self.stft,
            bank,
            Default::default(),
        ))))
    }

    /// Frees objects the engine has finished with. Not realtime-safe.
    pub fn collect_garbage(&mut self) {
        while self.garbage.pop().is_ok() {}
    }
}
