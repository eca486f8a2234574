//! The timbre map widget: the model's training instruments on the 2-D PCA plane of its timbre
//! space (coloured by family, labelled), the loaded references A and B where their timbre
//! latents project, and the draggable point of the Timbre X / Timbre Y parameters.

use egui::{Align2, Color32, FontId, Pos2, Rect, Sense, Stroke, Vec2};
use nice_plug::prelude::*;
use timbreswap_engine::network::Network;

use crate::params::TimbreswapParams;

/// Height of the map, in logical pixels (it takes the available width).
const HEIGHT: f32 = 190.0;

/// Screen position of a normalised map point (-1..=1 each, y up) in `rect`.
fn to_screen(rect: Rect, p: [f32; 2]) -> Pos2 {
    Pos2::new(
        rect.left() + (p[0].clamp(-1.0, 1.0) + 1.0) * 0.5 * rect.width(),
        rect.bottom() - (p[1].clamp(-1.0, 1.0) + 1.0) * 0.5 * rect.height(),
    )
}

/// Normalised map point of a screen position in `rect`.
fn from_screen(rect: Rect, pos: Pos2) -> [f32; 2] {
    [
        ((pos.x - rect.left()) / rect.width() * 2.0 - 1.0).clamp(-1.0, 1.0),
        ((rect.bottom() - pos.y) / rect.height() * 2.0 - 1.0).clamp(-1.0, 1.0),
    ]
}

/// A stable colour per instrument family.
fn family_colour(family: &str) -> Color32 {
    let hash = family.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ b as u32).wrapping_mul(16_777_619)
    });
    let hue = (hash % 360) as f32 / 360.0;
    egui::ecolor::Hsva::new(hue, 0.55, 0.9, 1.0).into()
}

/// Draws the map and handles dragging its point. `references` are the latents of slots A and B
/// measured with `net` (if any).
pub fn show(
    ui: &mut egui::Ui,
    net: Option<&Network>,
    references: [Option<&[f32]>; 2],
    params: &TimbreswapParams,
    setter: &ParamSetter,
) {
    let size = Vec2::new(ui.available_width(), HEIGHT);
    let (rect, response) = ui.allocate_exact_size(size, Sense::click_and_drag());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 4.0, Color32::from_gray(24));
    let Some(net) = net else {
        painter.text(
            rect.center(),
            Align2::CENTER_CENTER,
            "The timbre map appears when a model is loaded",
            FontId::proportional(13.0),
            Color32::GRAY,
        );
        return;
    };
    // The plane sits inside a margin so the labels of edge anchors stay readable.
    let plane = rect.shrink2(Vec2::new(44.0, 16.0));
    let blender = net.blender();
    let map = net.map();
    for (instrument, anchor) in map.instruments.iter().zip(blender.anchors()) {
        let pos = to_screen(plane, *anchor);
        painter.circle_filled(pos, 3.5, family_colour(&instrument.family));
        painter.text(
            pos + Vec2::new(0.0, -4.0),
            Align2::CENTER_BOTTOM,
            &instrument.name,
            FontId::proportional(9.5),
            Color32::from_gray(170),
        );
    }
    for (label, z) in ["A", "B"].iter().zip(references) {
        if let Some(z) = z {
            let pos = to_screen(plane, blender.to_normalised(map.project(z)));
            painter.circle_stroke(pos, 7.0, Stroke::new(2.0, Color32::WHITE));
            painter.text(
                pos,
                Align2::CENTER_CENTER,
                *label,
                FontId::proportional(10.0),
                Color32::WHITE,
            );
        }
    }

    // The point: dragging sets Timbre X / Y with one automation gesture per drag.
    if response.drag_started() {
        setter.begin_set_parameter(&params.timbre_x);
        setter.begin_set_parameter(&params.timbre_y);
    }
    if response.dragged() || response.clicked() {
        if let Some(pos) = response.interact_pointer_pos() {
            let [x, y] = from_screen(plane, pos);
            if response.clicked() {
                setter.begin_set_parameter(&params.timbre_x);
                setter.begin_set_parameter(&params.timbre_y);
            }
            setter.set_parameter(&params.timbre_x, x);
            setter.set_parameter(&params.timbre_y, y);
            if response.clicked() {
                setter.end_set_parameter(&params.timbre_x);
                setter.end_set_parameter(&params.timbre_y);
            }
        }
    }
    if response.drag_stopped() {
        setter.end_set_parameter(&params.timbre_x);
        setter.end_set_parameter(&params.timbre_y);
    }
    let amount = params.map_amount.value();
    let point = to_screen(plane, [params.timbre_x.value(), params.timbre_y.value()]);
    let alpha = (80.0 + 175.0 * amount) as u8;
    painter.circle_filled(
        point,
        6.0,
        Color32::from_rgba_unmultiplied(255, 200, 60, alpha),
    );
    painter.circle_stroke(
        point,
        9.0,
        Stroke::new(1.5, Color32::from_rgb(255, 200, 60)),
    );
    response.on_hover_text(
        "The model's timbre space: each dot is a training instrument, A and B are your references. Drag the point to a place on the map; Map amount sets how much it replaces the A/B morph.",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::editor::test_support::Recorder;

    /// One egui frame of the map with the pointer `events`; returns the painted shapes.
    fn frame(
        ctx: &egui::Context,
        net: &Network,
        params: &TimbreswapParams,
        setter: &ParamSetter,
        events: Vec<egui::Event>,
    ) -> usize {
        let input = egui::RawInput {
            screen_rect: Some(Rect::from_min_size(Pos2::ZERO, Vec2::new(600.0, 300.0))),
            events,
            ..Default::default()
        };
        let z = net.map().instrument_z_t(0).map(<[f32]>::to_vec);
        let out = ctx.run_ui(input, |ui| {
            show(ui, Some(net), [z.as_deref(), None], params, setter);
        });
        let shapes = out.shapes.len();
        // No renderer here: the font atlas uploads are dropped on purpose.
        out.drop_without_applying_deltas();
        shapes
    }

    /// Headless: the map draws every anchor plus reference A and the point, and a drag sets
    /// Timbre X / Y inside one begin/end gesture, to where the pointer is.
    #[test]
    fn map_draws_anchors_and_drags_the_point() {
        let net = crate::model::default_network().unwrap();
        let params = TimbreswapParams::default();
        let recorder = Recorder::default();
        let setter = ParamSetter::new(&recorder);
        let ctx = egui::Context::default();
        let shapes = frame(&ctx, &net, &params, &setter, vec![]);
        // Background, a dot and a label per instrument, A's ring and letter, the point's two.
        let anchors = net.map().instruments.len();
        assert!(
            shapes > 2 * anchors + 4,
            "{shapes} shapes for {anchors} anchors"
        );
        assert!(recorder.calls.lock().unwrap().is_empty());

        // The map fills the root's width from the top: aim at a point inside it.
        let at = Pos2::new(400.0, 60.0);
        let press = |pressed| egui::Event::PointerButton {
            pos: at,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: Default::default(),
        };
        frame(
            &ctx,
            &net,
            &params,
            &setter,
            vec![egui::Event::PointerMoved(at), press(true)],
        );
        for dx in [10.0, 20.0, 30.0] {
            let to = Pos2::new(at.x + dx, at.y);
            frame(
                &ctx,
                &net,
                &params,
                &setter,
                vec![egui::Event::PointerMoved(to)],
            );
        }
        let end = Pos2::new(at.x + 30.0, at.y);
        frame(
            &ctx,
            &net,
            &params,
            &setter,
            vec![egui::Event::PointerButton {
                pos: end,
                button: egui::PointerButton::Primary,
                pressed: false,
                modifiers: Default::default(),
            }],
        );
        let calls = recorder.calls.lock().unwrap();
        let x = params.timbre_x.as_ptr();
        let y = params.timbre_y.as_ptr();
        let kinds: Vec<&str> = calls.iter().filter(|c| c.1 == x).map(|c| c.0).collect();
        assert_eq!(kinds.first(), Some(&"begin"), "{kinds:?}");
        assert_eq!(kinds.last(), Some(&"end"), "{kinds:?}");
        assert_eq!(kinds.iter().filter(|k| **k == "begin").count(), 1);
        assert!(kinds.iter().filter(|k| **k == "set").count() >= 2);
        assert!(calls.iter().any(|c| c.1 == y && c.0 == "set"));
        // Moving right raises X: the last X is larger than the first.
        let xs: Vec<f32> = calls
            .iter()
            .filter(|c| c.1 == x && c.0 == "set")
            .map(|c| c.2)
            .collect();
        assert!(xs.last() > xs.first(), "{xs:?}");
        assert!(xs.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn screen_and_map_coordinates_round_trip() {
        let rect = Rect::from_min_size(Pos2::new(10.0, 20.0), Vec2::new(400.0, 200.0));
        for p in [[-1.0, -1.0], [0.0, 0.0], [0.5, -0.25], [1.0, 1.0]] {
            let back = from_screen(rect, to_screen(rect, p));
            assert!((back[0] - p[0]).abs() < 1e-5 && (back[1] - p[1]).abs() < 1e-5);
        }
        // y grows upwards on the map, downwards on screen.
        assert_eq!(to_screen(rect, [-1.0, 1.0]), Pos2::new(10.0, 20.0));
        assert_ne!(family_colour("brass"), family_colour("strings"));
    }
}
