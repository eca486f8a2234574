//! The egui editor: the two reference slots (a clip file or a model preset each), the neural
//! model, the timbre map (`editor/timbre_map.rs`), the parameters, the live view of input and
//! output spectra with the output meter (`editor/live_view.rs`), and a status line with
//! latency, dropouts, worker load, the model's name and the last error. Drag-and-drop and file
//! dialogs are still to come (editor issue).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use egui::{Color32, RichText};
use nice_plug::context::gui::GuiContext;
use nice_plug::editor::dpi::LogicalSize;
use nice_plug::prelude::*;
use nice_plug_egui::widgets::ParamSlider;
use nice_plug_egui::{
    create_egui_editor, EguiEditor, EguiEditorState, EguiNiceSettings, NiceEguiApp, RepaintNotifier,
};
use timbreswap_engine::Slot;

mod live_view;
mod timbre_map;

use crate::loader::Task;
use crate::params::{Mode, TimbreswapParams};
use crate::shared::{slot_name, Shared};
use crate::Timbreswap;

/// Editor size, in logical pixels.
const EDITOR_SIZE: (u32, u32) = (560, 920);
/// How often the editor redraws while open (live view, meter, status line).
const REFRESH: Duration = Duration::from_millis(33);

/// The initial editor state.
pub fn default_state() -> Arc<EguiEditorState> {
    EguiEditorState::from_size(LogicalSize::new(EDITOR_SIZE.0, EDITOR_SIZE.1), 1.0)
}

/// The editor's state on the GUI thread.
pub struct TimbreswapApp {
    params: Arc<TimbreswapParams>,
    shared: Arc<Shared>,
    executor: AsyncExecutor<Timbreswap>,
    gui: Option<GuiContext>,
    /// Path typed (or pasted) for each slot, A then B.
    paths: [String; 2],
    /// Path typed for a model file.
    model_path: String,
    /// Output meter, dBFS, with a falling peak hold.
    meter_db: f32,
}

/// Creates the editor.
pub fn create(
    params: Arc<TimbreswapParams>,
    shared: Arc<Shared>,
    state: Arc<EguiEditorState>,
    executor: AsyncExecutor<Timbreswap>,
) -> Option<EguiEditor<TimbreswapApp>> {
    let app = TimbreswapApp {
        params,
        shared,
        executor,
        gui: None,
        paths: [String::new(), String::new()],
        model_path: String::new(),
        meter_db: timbreswap_engine::spectrum_view::VIEW_FLOOR_DB,
    };
    create_egui_editor(
        state,
        RepaintNotifier::new(),
        EguiNiceSettings::default(),
        app,
    )
}

impl TimbreswapApp {
    fn slot_row(&mut self, ui: &mut egui::Ui, slot: Slot) {
        let index = slot as usize;
        let loaded = self
            .params
            .timbre(slot)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|d| {
                if d.duration_s > 0.0 {
                    format!("{} ({:.1} s)", d.name, d.duration_s)
                } else {
                    d.name.clone()
                }
            });
        ui.horizontal(|ui| {
            ui.label(RichText::new(format!("Reference {}", slot_name(slot))).strong());
            ui.label(loaded.unwrap_or_else(|| "empty: the input passes unchanged".into()));
        });
        ui.horizontal(|ui| {
            ui.add(
                egui::TextEdit::singleline(&mut self.paths[index])
                    .hint_text("path to a WAV, AIFF, FLAC, MP3 or OGG clip")
                    .desired_width(330.0),
            );
            let path = self.paths[index].trim().to_string();
            if ui
                .add_enabled(
                    !path.is_empty(),
                    egui::Button::new(format!("Load {}", slot_name(slot))),
                )
                .on_hover_text("Analyse this clip off the audio thread and use its timbre")
                .clicked()
            {
                self.executor.execute_background(Task::LoadReference {
                    slot,
                    path: PathBuf::from(path),
                });
            }
            if ui
                .button("Clear")
                .on_hover_text("Empty this slot")
                .clicked()
            {
                self.executor
                    .execute_background(Task::ClearReference { slot });
            }
        });
        if let Some(net) = self.shared.network() {
            let mut chosen: Option<usize> = None;
            egui::ComboBox::from_id_salt(("preset", index))
                .selected_text("Preset: a training instrument...")
                .width(330.0)
                .show_ui(ui, |ui| {
                    for (i, instrument) in net.map().instruments.iter().enumerate() {
                        if ui
                            .selectable_label(false, &instrument.name)
                            .on_hover_text(format!("{} family", instrument.family))
                            .clicked()
                        {
                            chosen = Some(i);
                        }
                    }
                })
                .response
                .on_hover_text(
                    "Use the timbre the model learned for one of its training instruments",
                );
            if let Some(i) = chosen {
                self.executor
                    .execute_background(Task::LoadPreset { slot, index: i });
            }
        }
    }

    /// Spectra and meter; keeps the engine's spectrum hand-off open while drawn.
    fn live_view(&mut self, ui: &mut egui::Ui) {
        // The meter falls 1.5 dB per refresh unless a louder peak arrives.
        let peak = self.shared.take_output_peak();
        let peak_db = 20.0 * (peak + 1e-9).log10();
        self.meter_db = peak_db.max(self.meter_db - 1.5);
        let mut control = self
            .shared
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let bin_hz = timbreswap_engine::StftConfig::default().bin_hz(1) as f32;
        match control.as_mut() {
            Some(control) => {
                let view = control.spectra();
                view.set_open(true);
                view.update();
                live_view::show(
                    ui,
                    Some((&view.input_db, &view.output_db)),
                    bin_hz,
                    self.meter_db,
                );
            }
            None => live_view::show(ui, None, bin_hz, self.meter_db),
        }
    }

    fn model_row(&mut self, ui: &mut egui::Ui) {
        let name = self
            .shared
            .network()
            .map_or_else(|| "none loaded yet".to_string(), |n| n.name().to_string());
        ui.horizontal(|ui| {
            ui.label(RichText::new("Model").strong());
            ui.label(name);
        });
        ui.horizontal(|ui| {
            ui.add(
                egui::TextEdit::singleline(&mut self.model_path)
                    .hint_text("path to a .safetensors model from `timbreswap train`")
                    .desired_width(300.0),
            );
            let path = self.model_path.trim().to_string();
            if ui
                .add_enabled(!path.is_empty(), egui::Button::new("Load model"))
                .on_hover_text("Check and load this model off the audio thread; the references are measured again with it")
                .clicked()
            {
                self.executor.execute_background(Task::LoadModel {
                    path: Some(PathBuf::from(path)),
                });
            }
            if ui
                .button("Built-in")
                .on_hover_text("Go back to the model that ships with the plugin")
                .clicked()
            {
                self.executor
                    .execute_background(Task::LoadModel { path: None });
            }
        });
    }
}

impl NiceEguiApp for TimbreswapApp {
    fn build(
        &mut self,
        _egui_ctx: egui::Context,
        nice_gui_ctx: GuiContext,
        _frame: &mut nice_plug_egui::Frame,
    ) -> Result<(), nice_plug_egui::baseview::HandlerError> {
        self.gui = Some(nice_gui_ctx);
        Ok(())
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut nice_plug_egui::Frame) {
        let Some(gui) = self.gui.clone() else {
            return;
        };
        let setter = gui.param_setter();
        ui.heading("Timbreswap");
        ui.add_space(4.0);
        self.slot_row(ui, Slot::A);
        ui.add_space(4.0);
        self.slot_row(ui, Slot::B);
        ui.add_space(4.0);
        self.model_row(ui);
        ui.separator();
        let net = self.shared.network();
        let latents: [Option<Vec<f32>>; 2] = [Slot::A, Slot::B].map(|slot| {
            let stored = self
                .params
                .timbre(slot)
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            stored
                .zip(net.as_deref())
                .and_then(|(d, net)| crate::model::latent_for(&d, net).map(<[f32]>::to_vec))
        });
        timbre_map::show(
            ui,
            net.as_deref(),
            [latents[0].as_deref(), latents[1].as_deref()],
            &self.params,
            &setter,
        );
        ui.separator();
        egui::Grid::new("params").num_columns(2).show(ui, |ui| {
            ui.label("Mix")
                .on_hover_text("0 %: dry input (latency-aligned); 100 %: the swapped timbre only");
            ui.add(ParamSlider::for_param(&self.params.mix, &setter));
            ui.end_row();
            ui.label("Output").on_hover_text("Gain after the mix");
            ui.add(ParamSlider::for_param(&self.params.output, &setter));
            ui.end_row();
            ui.label("Morph A-B")
                .on_hover_text("Blend of the two references' timbres");
            ui.add(ParamSlider::for_param(&self.params.morph, &setter));
            ui.end_row();
            ui.label("Mode").on_hover_text(
                "Classic: the reference's average spectral envelope on your sound. Neural: the learned model re-plays your notes and expression with the reference's timbre",
            );
            ui.add(ParamSlider::for_param(&self.params.mode, &setter));
            ui.end_row();
            ui.label("Variation").on_hover_text(
                "Neural: how much of your playing's expression is kept. 0 % flat, 100 % as played, 200 % exaggerated",
            );
            ui.add(ParamSlider::for_param(&self.params.variation, &setter));
            ui.end_row();
            ui.label("Transpose").on_hover_text(
                "Neural: shifts the pitch the model hears, in semitones; with Phase = Reconstruct the sounding pitch follows",
            );
            ui.add(ParamSlider::for_param(&self.params.transpose, &setter));
            ui.end_row();
            ui.label("Map amount").on_hover_text(
                "Neural: 0 % plays the A/B morph, 100 % the timbre of the point on the map (with no reference loaded, the map point alone)",
            );
            ui.add(ParamSlider::for_param(&self.params.map_amount, &setter));
            ui.end_row();
            ui.label("Phase").on_hover_text(
                "Neural: Input keeps your sound's phase (tightest transients); Reconstruct rebuilds it from the new spectrum (follows Transpose)",
            );
            ui.add(ParamSlider::for_param(&self.params.phase, &setter));
            ui.end_row();
        });
        ui.separator();
        self.live_view(ui);
        ui.separator();
        let stats = &self.shared.stats;
        ui.label(format!(
            "Latency {:.1} ms ({} samples)   Dropouts {}   Worker load {:.1} %{}",
            self.shared.latency_ms(),
            self.shared.latency.load(Ordering::Relaxed),
            stats.dropouts(),
            stats.worker_load(0.005) * 100.0,
            if stats.worker_realtime.load(Ordering::Relaxed) {
                " (real-time priority)"
            } else {
                ""
            },
        ))
        .on_hover_text("The worker asks the OS for real-time scheduling; without it (no rtprio permission) a busy machine can cause dropouts");
        let status = self.shared.status();
        if self.params.mode.value() == Mode::Neural {
            let measured = [Slot::A, Slot::B].iter().any(|slot| {
                self.params
                    .timbre(*slot)
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_ref()
                    .is_some_and(|d| d.latent.is_some())
            });
            if self.shared.network().is_none() {
                ui.colored_label(Color32::YELLOW, "No model is loaded: Classic is playing.");
            } else if !measured && self.params.map_amount.value() <= 0.0 {
                ui.colored_label(
                    Color32::YELLOW,
                    "Neural needs a reference or a preset measured with this model, or Map amount above 0 %: Classic is playing.",
                );
            }
        }
        match status.last_error {
            Some(error) => {
                ui.colored_label(Color32::from_rgb(255, 110, 90), error);
            }
            None if !status.message.is_empty() => {
                ui.label(status.message);
            }
            None => {}
        }
        ui.ctx().request_repaint_after(REFRESH);
    }

    fn editor_closed(&mut self) {
        self.gui = None;
        if let Some(control) = self
            .shared
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            control.spectra().set_open(false);
        }
    }
}
