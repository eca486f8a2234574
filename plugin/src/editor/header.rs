//! The editor's header: the title, the neural model (a drop zone for model files) with its
//! controls, the model's weights precision and the Latency setting. GUI thread.

use std::path::PathBuf;

use egui::{Rect, RichText};
use nice_plug::prelude::*;
use timbreswap_engine::model_file::Precision;

use super::{slot, theme, Target, TimbreswapApp, MODEL_ZONE};
use crate::loader::Task;
use crate::model::weights_label;
use crate::params::Latency;

impl TimbreswapApp {
    /// The header: title, then the model (a drop zone for model files) with its controls.
    pub(super) fn header(&mut self, ui: &mut egui::Ui, setter: &ParamSetter, rect: Rect) {
        let name = self
            .shared
            .network()
            .map_or_else(|| "none loaded yet".to_string(), |n| n.name().to_string());
        let (takes, over) = slot::hover_state(ui, MODEL_ZONE, rect);
        let (stroke, fill) = slot::zone_frame(takes, over);
        ui.painter()
            .rect(rect, 6.0, fill, stroke, egui::StrokeKind::Inside);
        self.zones[MODEL_ZONE] = Some(rect);
        ui.scope_builder(egui::UiBuilder::new().max_rect(rect.shrink2(egui::vec2(10.0, 4.0))), |ui| {
            ui.horizontal_centered(|ui| {
                ui.label(
                    RichText::new("TIMBRESWAP")
                        .font(theme::bold(theme::HEADING + 1.0))
                        .color(theme::ACCENT),
                );
                ui.add_space(12.0);
                ui.label(RichText::new("Model").color(theme::TEXT_DIM));
                ui.add(egui::Label::new(RichText::new(name).font(theme::bold(theme::BODY))).truncate());
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    self.latency_menu(ui, setter);
                    self.weights_menu(ui);
                    if ui
                        .button("Built-in")
                        .on_hover_text("Go back to the model that ships with the plugin")
                        .clicked()
                    {
                        self.executor
                            .execute_gui(Task::LoadModel { path: None });
                    }
                    let busy = self.dialogs.open().is_some();
                    if ui
                        .add_enabled(!busy, egui::Button::new("Load model…"))
                        .on_hover_text("Choose a .safetensors model from `timbreswap train` (or drop it anywhere on the editor); the references are measured again with it")
                        .clicked()
                    {
                        self.dialogs.pick(Target::Model);
                    }
                    let field = ui.add(
                        egui::TextEdit::singleline(&mut self.model_path)
                            .hint_text("model path, Enter")
                            .desired_width(170.0),
                    );
                    if field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                        let path = self.model_path.trim().to_string();
                        if !path.is_empty() {
                            self.executor.execute_gui(Task::LoadModel {
                                path: Some(PathBuf::from(path)),
                            });
                        }
                    }
                });
            });
        });
    }

    /// The model's weights precision: as the file stores them, or read as f32, f16, int8 or
    /// f16 + int8 (mixed; the model is loaded again in the new precision).
    fn weights_menu(&mut self, ui: &mut egui::Ui) {
        let current = self.params.model_weights.snapshot();
        let mut chosen = current;
        egui::ComboBox::from_id_salt("model-weights")
            .selected_text(format!("Weights: {}", weights_label(current)))
            .width(118.0)
            .show_ui(ui, |ui| {
                for option in [
                    None,
                    Some(Precision::F32),
                    Some(Precision::F16),
                    Some(Precision::Int8),
                    Some(Precision::Mixed),
                ] {
                    ui.selectable_value(&mut chosen, option, weights_label(option));
                }
            })
            .response
            .on_hover_text(
                "How the network reads the model's matrices. f16 + int8 is how the built-in \
                 model is stored (its variation encoder in int8, the rest in f16): it sounds \
                 as f16 does, for less CPU. int8 costs the least CPU per instance (a quarter of \
                 f32's memory traffic) and sounds slightly different (within 0.1 dB on \
                 average); f32 is the training's own precision. The references are measured \
                 again.",
            );
        if chosen != current {
            self.executor
                .execute_gui(Task::SetWeights { weights: chosen });
        }
    }

    /// The Latency setting: Normal or Low. A change asks the host to restart the plugin, which
    /// then reports the new latency (the meters show it).
    fn latency_menu(&self, ui: &mut egui::Ui, setter: &ParamSetter) {
        let param = &self.params.latency;
        let current = param.value();
        let mut chosen = current;
        let label = |l: Latency| match l {
            Latency::Normal => "Normal",
            Latency::Low => "Low",
        };
        egui::ComboBox::from_id_salt("latency")
            .selected_text(format!("Latency: {}", label(current)))
            .width(104.0)
            .show_ui(ui, |ui| {
                for option in [Latency::Normal, Latency::Low] {
                    ui.selectable_value(&mut chosen, option, label(option));
                }
            })
            .response
            .on_hover_text(
                "Normal: the whole analysis frame (22.7 ms at 48 kHz with 128-sample \
                 buffers). Low: 9.2 ms with buffers of up to 64 samples; Exemplar then \
                 plays the reference's partials in short grains and keeps most of its swap, \
                 Classic and Neural carry their timbre change as a smooth gain on your sound \
                 (its phase kept), and the plugin works twice as often. The host restarts \
                 the plugin to apply it.",
            );
        if chosen != current {
            setter.begin_set_parameter(param);
            setter.set_parameter(param, chosen);
            setter.end_set_parameter(param);
        }
    }
}
