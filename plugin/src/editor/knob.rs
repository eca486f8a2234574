//! A rotary knob for one parameter: drag up or down to change it (hold Shift for fine steps),
//! scroll to nudge it, double-click to reset it to its default. Every change goes through the
//! host as one begin / set... / end automation gesture; the value is shown with its unit.

use egui::{Align2, Color32, Pos2, Sense, Shape, Stroke, Vec2};
use nice_plug::prelude::*;

use super::theme;

/// Knob diameter, in logical pixels.
const DIAMETER: f32 = 44.0;
/// Widest knob cell (knob, name and value), in logical pixels; a narrower space gets a
/// narrower cell.
pub const CELL_WIDTH: f32 = 96.0;
/// Normalised change per logical pixel of vertical drag (a full turn in 200 px).
const DRAG_PER_PIXEL: f32 = 1.0 / 200.0;
/// Drag factor with Shift held.
const FINE: f32 = 0.1;
/// Normalised change per scroll line.
const SCROLL_STEP: f32 = 0.02;
/// The knob's arc: from 7:30 to 4:30 o'clock, in radians from "east", clockwise on screen.
const START: f32 = std::f32::consts::PI * 0.75;
const SWEEP: f32 = std::f32::consts::PI * 1.5;

/// Quantises `normalized` to the parameter's steps (if it has any).
fn snap(param: &impl Param, normalized: f32) -> f32 {
    let normalized = normalized.clamp(0.0, 1.0);
    match param.step_count() {
        Some(steps) if steps > 0 => (normalized * steps as f32).round() / steps as f32,
        _ => normalized,
    }
}

/// Draws the knob for `param` labelled `name`, with a musical `tooltip`; returns its response.
pub fn knob<P: Param>(
    ui: &mut egui::Ui,
    param: &P,
    setter: &ParamSetter,
    name: &str,
    tooltip: &str,
) -> egui::Response {
    let size = Vec2::new(ui.available_width().min(CELL_WIDTH), DIAMETER + 34.0);
    let (rect, response) = ui.allocate_exact_size(size, Sense::click_and_drag());
    let id = response.id;
    // The unsnapped value during a drag lives in egui's memory, so stepped parameters still
    // follow the mouse smoothly.
    if response.double_clicked() {
        setter.begin_set_parameter(param);
        setter.set_parameter_normalized(param, param.default_normalized_value());
        setter.end_set_parameter(param);
    } else {
        if response.drag_started() {
            setter.begin_set_parameter(param);
            ui.memory_mut(|m| m.data.insert_temp(id, param.unmodulated_normalized_value()));
        }
        if response.dragged() {
            let fine = ui.input(|i| i.modifiers.shift);
            let delta = -response.drag_delta().y * DRAG_PER_PIXEL * if fine { FINE } else { 1.0 };
            let start: f32 = ui
                .memory(|m| m.data.get_temp(id))
                .unwrap_or_else(|| param.unmodulated_normalized_value());
            let target = (start + delta).clamp(0.0, 1.0);
            ui.memory_mut(|m| m.data.insert_temp(id, target));
            let snapped = snap(param, target);
            if snapped != param.unmodulated_normalized_value() {
                setter.set_parameter_normalized(param, snapped);
            }
        }
        if response.drag_stopped() {
            setter.end_set_parameter(param);
            ui.memory_mut(|m| m.data.remove::<f32>(id));
        }
    }
    if response.hovered() && !response.dragged() {
        let scroll: f32 = ui.input(|i| {
            i.raw
                .events
                .iter()
                .map(|e| match e {
                    egui::Event::MouseWheel { delta, .. } => delta.y,
                    _ => 0.0,
                })
                .sum()
        });
        if scroll != 0.0 {
            let steps = param
                .step_count()
                .map_or(SCROLL_STEP, |n| 1.0 / n.max(1) as f32);
            let next = snap(
                param,
                param.unmodulated_normalized_value() + steps * scroll.signum(),
            );
            setter.begin_set_parameter(param);
            setter.set_parameter_normalized(param, next);
            setter.end_set_parameter(param);
        }
    }

    let painter = ui.painter_at(rect);
    let centre = Pos2::new(rect.center().x, rect.top() + DIAMETER / 2.0 + 2.0);
    let radius = DIAMETER / 2.0 - 3.0;
    let value = param.modulated_normalized_value();
    let active = response.hovered() || response.dragged();
    let arc = |from: f32, to: f32| -> Vec<Pos2> {
        let n = 32;
        (0..=n)
            .map(|i| {
                let a = START + SWEEP * (from + (to - from) * i as f32 / n as f32);
                centre + radius * Vec2::angled(a)
            })
            .collect()
    };
    painter.circle_filled(centre, radius - 4.0, Color32::from_rgb(42, 45, 53));
    painter.add(Shape::line(arc(0.0, 1.0), Stroke::new(4.0, theme::GRID)));
    let accent = if active {
        Color32::from_rgb(255, 214, 110)
    } else {
        theme::ACCENT
    };
    painter.add(Shape::line(arc(0.0, value), Stroke::new(4.0, accent)));
    let tip = centre + (radius - 6.0) * Vec2::angled(START + SWEEP * value);
    painter.line_segment([centre, tip], Stroke::new(2.0, Color32::from_gray(230)));
    painter.text(
        Pos2::new(rect.center().x, rect.top() + DIAMETER + 6.0),
        Align2::CENTER_TOP,
        name,
        theme::bold(theme::SMALL + 0.5),
        theme::TEXT,
    );
    painter.text(
        Pos2::new(rect.center().x, rect.top() + DIAMETER + 20.0),
        Align2::CENTER_TOP,
        param.normalized_value_to_string(value, true),
        theme::regular(theme::SMALL),
        theme::TEXT_DIM,
    );
    response.on_hover_text(format!(
        "{tooltip}\n\nDrag up/down (Shift: fine), scroll to nudge, double-click to reset."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::editor::test_support::{run_frames, Recorder};
    use crate::params::TimbreswapParams;

    /// Headless: a drag up raises the parameter inside one gesture, a double-click resets it.
    #[test]
    fn drag_raises_and_double_click_resets() {
        let params = TimbreswapParams::default();
        let recorder = Recorder::default();
        let setter = ParamSetter::new(&recorder);
        let ctx = egui::Context::default();
        let mut draw = |ui: &mut egui::Ui| {
            knob(ui, &params.morph, &setter, "Morph", "test");
        };
        // The knob sits at the top-left of the root: its dial centre is at (48, 24).
        let at = Pos2::new(48.0, 24.0);
        let press = |pos, pressed| egui::Event::PointerButton {
            pos,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: Default::default(),
        };
        run_frames(
            &ctx,
            &mut draw,
            vec![
                vec![egui::Event::PointerMoved(at)],
                vec![press(at, true)],
                vec![egui::Event::PointerMoved(at - Vec2::new(0.0, 10.0))],
                vec![egui::Event::PointerMoved(at - Vec2::new(0.0, 40.0))],
                vec![press(at - Vec2::new(0.0, 40.0), false)],
            ],
        );
        let calls = recorder.take();
        let kinds: Vec<&str> = calls.iter().map(|c| c.0).collect();
        assert_eq!(kinds.first(), Some(&"begin"), "{kinds:?}");
        assert_eq!(kinds.last(), Some(&"end"), "{kinds:?}");
        assert_eq!(kinds.iter().filter(|k| **k == "begin").count(), 1);
        let sets: Vec<f32> = calls.iter().filter(|c| c.0 == "set").map(|c| c.2).collect();
        assert!(!sets.is_empty(), "{kinds:?}");
        // Morph starts at its default (0); 40 px up is +0.2 normalised (one full turn is
        // 200 px), less egui's drag threshold of a few pixels.
        let start = params.morph.default_normalized_value();
        let last = *sets.last().unwrap();
        assert!(
            last > start && (last - start - 0.2).abs() < 0.03,
            "{start} -> {last}"
        );
        assert!(sets.windows(2).all(|w| w[1] >= w[0]), "{sets:?}");

        // Double-click: one gesture that sets the default.
        run_frames(
            &ctx,
            &mut draw,
            vec![
                vec![press(at, true), press(at, false)],
                vec![press(at, true), press(at, false)],
                vec![],
            ],
        );
        let calls = recorder.take();
        let default = params.morph.default_normalized_value();
        assert!(
            calls.windows(3).any(|w| w[0].0 == "begin"
                && w[1].0 == "set"
                && w[1].2 == default
                && w[2].0 == "end"),
            "{:?}",
            calls.iter().map(|c| (c.0, c.2)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn stepped_parameters_snap() {
        let params = TimbreswapParams::default();
        // Mode: three choices, so normalised 0, 0.5 or 1, the nearest.
        assert_eq!(params.mode.step_count(), Some(2));
        assert_eq!(snap(&params.mode, 0.2), 0.0);
        assert_eq!(snap(&params.mode, 0.3), 0.5);
        assert_eq!(snap(&params.mode, 0.6), 0.5);
        assert_eq!(snap(&params.mode, 0.8), 1.0);
        assert_eq!(snap(&params.mode, 1.7), 1.0);
        // Continuous parameters are only clamped.
        assert_eq!(snap(&params.morph, 0.37), 0.37);
    }
}
