//! The timbre map widget: the model's training instruments on the 2-D PCA plane of its timbre
//! space (coloured by family, with a legend), labelled where a label has room (collision-aware
//! placement; any instrument is named under the pointer), the loaded references A and B where
//! their timbre latents project, and the point of the Timbre X / Timbre Y parameters with its
//! nearest instruments named. Drag or click to move the point, double-click an instrument to
//! snap to it.

use egui::{Align2, Color32, Pos2, Rect, Sense, Stroke, Vec2};
use nice_plug::prelude::*;
use timbreswap_engine::network::Network;
use timbreswap_engine::Slot;

use super::theme;
use crate::params::TimbreswapParams;
use crate::shared::slot_name;

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

/// Colours of the General MIDI families the training data uses; others get a hashed hue.
const FAMILY_COLOURS: [(&str, Color32); 13] = [
    ("keys", Color32::from_rgb(120, 170, 255)),
    ("mallets", Color32::from_rgb(90, 215, 230)),
    ("organ", Color32::from_rgb(175, 140, 255)),
    ("guitar", Color32::from_rgb(240, 150, 90)),
    ("bass", Color32::from_rgb(200, 120, 80)),
    ("strings", Color32::from_rgb(245, 110, 130)),
    ("ensemble", Color32::from_rgb(250, 160, 200)),
    ("brass", Color32::from_rgb(250, 210, 80)),
    ("reed", Color32::from_rgb(150, 220, 110)),
    ("pipe", Color32::from_rgb(100, 220, 170)),
    ("synth", Color32::from_rgb(210, 120, 240)),
    ("voice", Color32::from_rgb(255, 240, 180)),
    ("ethnic", Color32::from_rgb(200, 190, 140)),
];

/// A stable colour per instrument family.
pub fn family_colour(family: &str) -> Color32 {
    if let Some((_, c)) = FAMILY_COLOURS.iter().find(|(f, _)| *f == family) {
        return *c;
    }
    let hash = family.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ b as u32).wrapping_mul(16_777_619)
    });
    let hue = (hash % 360) as f32 / 360.0;
    egui::ecolor::Hsva::new(hue, 0.55, 0.9, 1.0).into()
}

/// Radius of an instrument's dot, in logical pixels.
const DOT: f32 = 3.5;
/// How close the pointer must be to an instrument to name it (hover) or snap to it
/// (double-click), in logical pixels.
const PICK_RADIUS: f32 = 10.0;
/// Instruments named as the point's nearest.
const NEAREST: usize = 3;

/// Where each label goes: for every anchor (screen position) and label size, the first of
/// eight places around its dot (above, below, right, left, then the diagonals) that stays
/// inside `bounds` and clear of every dot, every `blocked` rectangle and every label placed
/// before it; `None` when all eight collide (that label then shows on hover only).
pub fn place_labels(
    anchors: &[Pos2],
    sizes: &[Vec2],
    bounds: Rect,
    blocked: &[Rect],
) -> Vec<Option<Rect>> {
    let dots: Vec<Rect> = anchors
        .iter()
        .map(|p| Rect::from_center_size(*p, Vec2::splat(2.0 * DOT + 2.0)))
        .collect();
    let mut placed: Vec<Rect> = Vec::new();
    anchors
        .iter()
        .zip(sizes)
        .enumerate()
        .map(|(i, (p, size))| {
            let (w, h) = (size.x, size.y);
            let gap = DOT + 2.0;
            let candidates = [
                Pos2::new(p.x - w / 2.0, p.y - gap - h),
                Pos2::new(p.x - w / 2.0, p.y + gap),
                Pos2::new(p.x + gap, p.y - h / 2.0),
                Pos2::new(p.x - gap - w, p.y - h / 2.0),
                Pos2::new(p.x + gap * 0.7, p.y - gap * 0.7 - h),
                Pos2::new(p.x - gap * 0.7 - w, p.y - gap * 0.7 - h),
                Pos2::new(p.x + gap * 0.7, p.y + gap * 0.7),
                Pos2::new(p.x - gap * 0.7 - w, p.y + gap * 0.7),
            ];
            let free = |r: &Rect| {
                bounds.contains_rect(*r)
                    && !placed.iter().any(|o| o.intersects(*r))
                    && !blocked.iter().any(|o| o.intersects(*r))
                    && !dots
                        .iter()
                        .enumerate()
                        .any(|(j, d)| j != i && d.intersects(*r))
            };
            let spot = candidates
                .iter()
                .map(|c| Rect::from_min_size(*c, *size))
                .find(free);
            if let Some(r) = spot {
                placed.push(r);
            }
            spot
        })
        .collect()
}

/// The `n` instruments nearest to a normalised map point, nearest first.
pub fn nearest(anchors: &[[f32; 2]], point: [f32; 2], n: usize) -> Vec<usize> {
    let mut order: Vec<(usize, f32)> = anchors
        .iter()
        .enumerate()
        .map(|(i, a)| (i, (a[0] - point[0]).powi(2) + (a[1] - point[1]).powi(2)))
        .collect();
    order.sort_by(|a, b| a.1.total_cmp(&b.1));
    order.into_iter().take(n).map(|(i, _)| i).collect()
}

/// One gesture that moves the point to `p` (normalised map coordinates).
fn set_point(setter: &ParamSetter, params: &TimbreswapParams, p: [f32; 2]) {
    setter.begin_set_parameter(&params.timbre_x);
    setter.begin_set_parameter(&params.timbre_y);
    setter.set_parameter(&params.timbre_x, p[0]);
    setter.set_parameter(&params.timbre_y, p[1]);
    setter.end_set_parameter(&params.timbre_x);
    setter.end_set_parameter(&params.timbre_y);
}

/// Draws the map into `rect` and handles its point: drag it, click to move it, double-click an
/// instrument to snap to it. `references` are the latents of slots A and B measured with `net`
/// (if any).
pub fn show(
    ui: &mut egui::Ui,
    rect: Rect,
    net: Option<&Network>,
    references: [Option<&[f32]>; 2],
    params: &TimbreswapParams,
    setter: &ParamSetter,
) {
    let response = ui.allocate_rect(rect, Sense::click_and_drag());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 4.0, theme::PLOT);
    painter.text(
        rect.left_top() + Vec2::new(8.0, 5.0),
        Align2::LEFT_TOP,
        "Timbre map",
        theme::bold(theme::SMALL),
        theme::TEXT_DIM,
    );
    let Some(net) = net else {
        painter.text(
            rect.center(),
            Align2::CENTER_CENTER,
            "The timbre map appears when a model is loaded",
            theme::regular(theme::BODY),
            theme::TEXT_DIM,
        );
        return;
    };
    let blender = net.blender();
    let map = net.map();
    let label_font = theme::regular(theme::SMALL - 0.5);

    // The legend: one entry per family, in rows along the bottom.
    let mut families: Vec<&str> = map.instruments.iter().map(|i| i.family.as_str()).collect();
    families.sort_unstable();
    families.dedup();
    let legend_font = theme::regular(theme::SMALL - 1.0);
    let entries: Vec<(&str, std::sync::Arc<egui::Galley>)> = families
        .iter()
        .map(|f| {
            (
                *f,
                painter.layout_no_wrap(f.to_string(), legend_font.clone(), theme::TEXT_DIM),
            )
        })
        .collect();
    let row_h = legend_font.size + 4.0;
    let mut rows: Vec<Vec<usize>> = vec![Vec::new()];
    let mut x = 0.0;
    let usable = rect.width() - 16.0;
    for (i, (_, g)) in entries.iter().enumerate() {
        let w = g.size().x + 14.0;
        if x + w > usable && !rows.last().is_some_and(Vec::is_empty) {
            rows.push(Vec::new());
            x = 0.0;
        }
        if let Some(row) = rows.last_mut() {
            row.push(i);
        }
        x += w;
    }
    let legend_h = rows.len() as f32 * row_h + 4.0;
    let legend = Rect::from_min_max(Pos2::new(rect.left(), rect.bottom() - legend_h), rect.max);
    for (r, row) in rows.iter().enumerate() {
        let mut x = rect.left() + 8.0;
        let y = legend.top() + r as f32 * row_h + row_h / 2.0;
        for &i in row {
            let (family, galley) = &entries[i];
            painter.circle_filled(Pos2::new(x + 3.0, y), 3.0, family_colour(family));
            let w = galley.size().x;
            painter.galley(
                Pos2::new(x + 9.0, y - galley.size().y / 2.0),
                galley.clone(),
                theme::TEXT_DIM,
            );
            x += w + 14.0;
        }
    }

    // The plane leaves room for the title row, the legend and the labels of edge anchors.
    let top_row = theme::SMALL + 10.0;
    let plane = Rect::from_min_max(
        Pos2::new(rect.left() + 40.0, rect.top() + top_row + 14.0),
        Pos2::new(rect.right() - 40.0, legend.top() - 10.0),
    );
    let anchors: Vec<Pos2> = blender
        .anchors()
        .iter()
        .map(|a| to_screen(plane, *a))
        .collect();
    let galleys: Vec<std::sync::Arc<egui::Galley>> = map
        .instruments
        .iter()
        .map(|i| painter.layout_no_wrap(i.name.clone(), label_font.clone(), theme::TEXT))
        .collect();
    let sizes: Vec<Vec2> = galleys.iter().map(|g| g.size()).collect();

    // The point's nearest instruments, named in the title row.
    let point_norm = [params.timbre_x.value(), params.timbre_y.value()];
    let near: Vec<&str> = nearest(blender.anchors(), point_norm, NEAREST)
        .into_iter()
        .filter_map(|i| map.instruments.get(i).map(|m| m.name.as_str()))
        .collect();
    let caption = painter.layout_no_wrap(
        format!("Point near {}", near.join(" · ")),
        theme::regular(theme::SMALL),
        theme::ACCENT,
    );
    let caption_rect = Rect::from_min_size(
        Pos2::new(rect.right() - 8.0 - caption.size().x, rect.top() + 5.0),
        caption.size(),
    );
    let title_rect = Rect::from_min_size(rect.left_top(), Vec2::new(90.0, top_row));
    let fits_caption = caption_rect.left() > title_rect.right() + 8.0;
    if fits_caption {
        painter.galley(caption_rect.min, caption, theme::ACCENT);
    }

    // Marks that labels must not cover: A, B and the point.
    let point = to_screen(plane, point_norm);
    let mut marks = vec![Rect::from_center_size(point, Vec2::splat(20.0))];
    let reference_marks: Vec<(usize, Pos2)> = references
        .iter()
        .enumerate()
        .filter_map(|(i, z)| {
            z.map(|z| (i, to_screen(plane, blender.to_normalised(map.project(z)))))
        })
        .collect();
    marks.extend(
        reference_marks
            .iter()
            .map(|(_, p)| Rect::from_center_size(*p, Vec2::splat(18.0))),
    );
    let mut blocked = marks.clone();
    blocked.push(legend);
    blocked.push(title_rect);
    if fits_caption {
        blocked.push(caption_rect.expand(2.0));
    }
    let bounds = Rect::from_min_max(
        Pos2::new(rect.left() + 2.0, rect.top() + 2.0),
        Pos2::new(rect.right() - 2.0, legend.top()),
    );
    let labels = place_labels(&anchors, &sizes, bounds, &blocked);
    for ((instrument, pos), (galley, label)) in map
        .instruments
        .iter()
        .zip(&anchors)
        .zip(galleys.iter().zip(&labels))
    {
        painter.circle_filled(*pos, DOT, family_colour(&instrument.family));
        if let Some(r) = label {
            painter.galley(r.min, galley.clone(), Color32::from_gray(185));
        }
    }
    for (i, pos) in &reference_marks {
        let slot = if *i == 0 { Slot::A } else { Slot::B };
        let colour = super::slot::slot_colour(slot);
        painter.circle_filled(*pos, 8.0, theme::PLOT);
        painter.circle_stroke(*pos, 8.0, Stroke::new(2.0, colour));
        painter.text(
            *pos,
            Align2::CENTER_CENTER,
            slot_name(slot),
            theme::bold(theme::SMALL),
            colour,
        );
    }

    // Hover: the instrument under the pointer is named (where its label had no room, or to
    // pick it out of a cluster).
    let hovered = response.hover_pos().and_then(|p| {
        anchors
            .iter()
            .enumerate()
            .map(|(i, a)| (i, a.distance(p)))
            .filter(|(_, d)| *d <= PICK_RADIUS)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    });

    // The point: dragging sets Timbre X / Y with one automation gesture per drag; a click
    // moves it there; a double-click on an instrument snaps it to that instrument.
    if response.drag_started() {
        setter.begin_set_parameter(&params.timbre_x);
        setter.begin_set_parameter(&params.timbre_y);
    }
    if response.double_clicked() {
        if let Some(i) = hovered {
            set_point(setter, params, blender.anchors()[i]);
        }
    } else if response.dragged() || response.clicked() {
        if let Some(pos) = response.interact_pointer_pos() {
            let p = from_screen(plane, pos);
            if response.clicked() {
                set_point(setter, params, p);
            } else {
                setter.set_parameter(&params.timbre_x, p[0]);
                setter.set_parameter(&params.timbre_y, p[1]);
            }
        }
    }
    if response.drag_stopped() {
        setter.end_set_parameter(&params.timbre_x);
        setter.end_set_parameter(&params.timbre_y);
    }
    let amount = params.map_amount.value();
    let alpha = (90.0 + 165.0 * amount) as u8;
    painter.circle_filled(
        point,
        6.0,
        Color32::from_rgba_unmultiplied(
            theme::ACCENT.r(),
            theme::ACCENT.g(),
            theme::ACCENT.b(),
            alpha,
        ),
    );
    painter.circle_stroke(point, 9.5, Stroke::new(1.5, theme::ACCENT));
    if let Some(i) = hovered {
        let g = painter.layout_no_wrap(
            map.instruments[i].name.clone(),
            theme::bold(theme::SMALL),
            theme::TEXT,
        );
        let at = anchors[i] + Vec2::new(8.0, -8.0 - g.size().y);
        let mut r = Rect::from_min_size(at, g.size()).expand(3.0);
        // Keep the hover label inside the map.
        let shift = Vec2::new(
            (rect.right() - 2.0 - r.right()).min(0.0) + (rect.left() + 2.0 - r.left()).max(0.0),
            (rect.top() + 2.0 - r.top()).max(0.0),
        );
        r = r.translate(shift);
        painter.rect_filled(r, 3.0, theme::CARD);
        painter.rect_stroke(
            r,
            3.0,
            Stroke::new(1.0, family_colour(&map.instruments[i].family)),
            egui::StrokeKind::Inside,
        );
        painter.galley(r.min + Vec2::splat(3.0), g, theme::TEXT);
    }
    response.on_hover_text(
        "The model's timbre space: each dot is a training instrument, A and B are your references. Drag the point or click a place; double-click an instrument to snap to it. Map amount sets how much the point replaces the A/B morph.",
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
            let rect = Rect::from_min_size(Pos2::ZERO, Vec2::new(600.0, 300.0));
            show(ui, rect, Some(net), [z.as_deref(), None], params, setter);
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

    /// Labels never overlap each other, a dot, or a blocked area, and stay in bounds; in a
    /// cluster with no room left, the rest go unlabelled (hover names them).
    #[test]
    fn labels_are_placed_without_collisions() {
        let bounds = Rect::from_min_size(Pos2::ZERO, Vec2::new(500.0, 250.0));
        let blocked = [Rect::from_min_size(
            Pos2::new(200.0, 100.0),
            Vec2::new(40.0, 40.0),
        )];
        // A deterministic scatter with some tight clusters.
        let mut seed = 12345u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (seed >> 8) as f32 / (1u32 << 24) as f32
        };
        let mut anchors: Vec<Pos2> = (0..30)
            .map(|_| Pos2::new(20.0 + 460.0 * next(), 20.0 + 210.0 * next()))
            .collect();
        anchors.extend((0..12).map(|i| Pos2::new(100.0 + i as f32, 60.0)));
        let sizes: Vec<Vec2> = anchors
            .iter()
            .enumerate()
            .map(|(i, _)| Vec2::new(40.0 + (i % 5) as f32 * 12.0, 12.0))
            .collect();
        let placed = place_labels(&anchors, &sizes, bounds, &blocked);
        let rects: Vec<(usize, Rect)> = placed
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.map(|r| (i, r)))
            .collect();
        assert!(
            rects.len() >= 20,
            "{} of {} placed",
            rects.len(),
            anchors.len()
        );
        assert!(
            rects.len() < anchors.len(),
            "the cluster cannot all be labelled"
        );
        for (k, (i, r)) in rects.iter().enumerate() {
            assert!(bounds.contains_rect(*r));
            assert!(!blocked[0].intersects(*r));
            assert!((r.size() - sizes[*i]).length() < 1e-3);
            // Next to its own dot: within the offsets of the eight places.
            assert!(r.expand(DOT + 3.0).contains(anchors[*i]), "{i}: {r:?}");
            for (j, a) in anchors.iter().enumerate() {
                if j != *i {
                    let dot = Rect::from_center_size(*a, Vec2::splat(2.0 * DOT + 2.0));
                    assert!(!dot.intersects(*r), "label {i} covers dot {j}");
                }
            }
            for (_, other) in &rects[k + 1..] {
                assert!(!other.intersects(*r), "{r:?} / {other:?}");
            }
        }
    }

    #[test]
    fn the_nearest_instruments_come_nearest_first() {
        let anchors = [[0.0, 0.0], [0.5, 0.5], [-0.9, 0.1], [0.45, 0.4]];
        assert_eq!(nearest(&anchors, [0.5, 0.45], 3), vec![1, 3, 0]);
        assert_eq!(nearest(&anchors, [-1.0, 0.0], 1), vec![2]);
    }

    /// A double-click near an instrument's dot snaps the point exactly onto that instrument
    /// (not where the pointer was), in one gesture.
    #[test]
    fn double_clicking_an_instrument_snaps_the_point_to_it() {
        let net = crate::model::default_network().unwrap();
        let params = TimbreswapParams::default();
        let recorder = Recorder::default();
        let setter = ParamSetter::new(&recorder);
        let ctx = egui::Context::default();
        let rect = Rect::from_min_size(Pos2::ZERO, Vec2::new(600.0, 300.0));
        let input = egui::RawInput {
            screen_rect: Some(rect),
            ..Default::default()
        };
        let out = ctx.run_ui(input, |ui| {
            show(ui, rect, Some(&net), [None, None], &params, &setter);
        });
        // The instruments' dots, in anchor order (the first circles of radius DOT).
        let dots: Vec<Pos2> = out
            .shapes
            .iter()
            .filter_map(|s| match &s.shape {
                egui::Shape::Circle(c) if c.radius == DOT => Some(c.center),
                _ => None,
            })
            .collect();
        out.drop_without_applying_deltas();
        let anchors = net.blender().anchors();
        assert_eq!(dots.len(), anchors.len());
        // Pick a dot with no other within the pick radius.
        let i = (0..dots.len())
            .find(|&i| {
                dots.iter()
                    .enumerate()
                    .all(|(j, d)| j == i || d.distance(dots[i]) > PICK_RADIUS * 2.0)
            })
            .expect("an isolated instrument");
        // Beside the dot but within the pick radius: a plain click would move the point
        // here, the snap puts it on the instrument itself.
        let at = dots[i] + Vec2::new(PICK_RADIUS * 0.6, 0.0);
        let click = |pressed| egui::Event::PointerButton {
            pos: at,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: Default::default(),
        };
        for (k, events) in [
            vec![egui::Event::PointerMoved(at)],
            vec![click(true), click(false)],
            vec![click(true), click(false)],
            vec![],
        ]
        .into_iter()
        .enumerate()
        {
            let input = egui::RawInput {
                screen_rect: Some(rect),
                events,
                time: Some(0.05 * (k + 1) as f64),
                ..Default::default()
            };
            let out = ctx.run_ui(input, |ui| {
                show(ui, rect, Some(&net), [None, None], &params, &setter);
            });
            out.drop_without_applying_deltas();
        }
        let calls = recorder.take();
        let x = params.timbre_x.as_ptr();
        let y = params.timbre_y.as_ptr();
        let last = |p| {
            calls
                .iter()
                .rev()
                .find(|c| c.1 == p && c.0 == "set")
                .map(|c| c.2)
                .unwrap()
        };
        // Timbre X / Y run -1..1: normalised (v + 1) / 2.
        assert!((last(x) - (anchors[i][0] + 1.0) / 2.0).abs() < 1e-5);
        assert!((last(y) - (anchors[i][1] + 1.0) / 2.0).abs() < 1e-5);
        let tail: Vec<&str> = calls.iter().rev().take(2).map(|c| c.0).collect();
        assert_eq!(tail, vec!["end", "end"], "the snap is one closed gesture");
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
