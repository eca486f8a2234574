//! The live view: input and output spectra (handed over by the engine while the editor is
//! open), drawn into the rectangle the layout gives them.

use egui::{Align2, Color32, Pos2, Rect, Sense, Stroke, Vec2};

use super::theme;

/// Frequency range shown, in Hz (logarithmic axis).
const F_MIN: f32 = 50.0;
const F_MAX: f32 = 16_000.0;
/// Level range shown, in dB re full-scale sine.
const DB_MIN: f32 = -100.0;
const DB_MAX: f32 = 0.0;

/// x position of `hz` in `rect` on the logarithmic frequency axis.
fn x_of(rect: Rect, hz: f32) -> f32 {
    let t = (hz.max(F_MIN).ln() - F_MIN.ln()) / (F_MAX.ln() - F_MIN.ln());
    rect.left() + t.clamp(0.0, 1.0) * rect.width()
}

/// y position of `db` in `rect`.
fn y_of(rect: Rect, db: f32) -> f32 {
    let t = (db.clamp(DB_MIN, DB_MAX) - DB_MIN) / (DB_MAX - DB_MIN);
    rect.bottom() - t * rect.height()
}

/// The polyline of one spectrum (`bin_hz` Hz per bin), skipping bins below [`F_MIN`].
fn curve(rect: Rect, db: &[f32], bin_hz: f32) -> Vec<Pos2> {
    db.iter()
        .enumerate()
        .skip(1)
        .filter(|(k, _)| *k as f32 * bin_hz >= F_MIN && *k as f32 * bin_hz <= F_MAX)
        .map(|(k, v)| Pos2::new(x_of(rect, k as f32 * bin_hz), y_of(rect, *v)))
        .collect()
}

/// Draws both spectra (`None`: no engine yet) into `rect`.
pub fn show(ui: &mut egui::Ui, rect: Rect, spectra: Option<(&[f32], &[f32])>, bin_hz: f32) {
    let response = ui.allocate_rect(rect, Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 4.0, theme::PLOT);
    for db in [-80.0, -60.0, -40.0, -20.0] {
        let y = y_of(rect, db);
        painter.line_segment(
            [Pos2::new(rect.left(), y), Pos2::new(rect.right(), y)],
            Stroke::new(1.0, theme::GRID.gamma_multiply(0.6)),
        );
    }
    for hz in [100.0, 1_000.0, 10_000.0] {
        let x = x_of(rect, hz);
        painter.line_segment(
            [Pos2::new(x, rect.top()), Pos2::new(x, rect.bottom())],
            Stroke::new(1.0, theme::GRID),
        );
        // Labels sit right of their line, the last one left of it (it is near the edge).
        let (at, align) = if hz < 10_000.0 {
            (Pos2::new(x + 3.0, rect.bottom() - 2.0), Align2::LEFT_BOTTOM)
        } else {
            (
                Pos2::new(x - 3.0, rect.bottom() - 2.0),
                Align2::RIGHT_BOTTOM,
            )
        };
        painter.text(
            at,
            align,
            if hz < 1_000.0 {
                "100 Hz"
            } else if hz < 10_000.0 {
                "1 kHz"
            } else {
                "10 kHz"
            },
            theme::regular(theme::SMALL - 1.0),
            theme::TEXT_DIM,
        );
    }
    painter.text(
        rect.left_top() + Vec2::new(6.0, 4.0),
        Align2::LEFT_TOP,
        "Spectra",
        theme::bold(theme::SMALL),
        theme::TEXT_DIM,
    );
    match spectra {
        Some((input, output)) => {
            painter.add(egui::Shape::line(
                curve(rect, input, bin_hz),
                Stroke::new(1.0, Color32::from_gray(150)),
            ));
            painter.add(egui::Shape::line(
                curve(rect, output, bin_hz),
                Stroke::new(1.5, theme::ACCENT),
            ));
        }
        None => {
            painter.text(
                rect.center(),
                Align2::CENTER_CENTER,
                "The spectra appear while the plugin is processing",
                theme::regular(theme::BODY),
                theme::TEXT_DIM,
            );
        }
    }
    response.on_hover_text("Grey: input spectrum; amber: output spectrum (dB re full scale)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_map_the_ranges_onto_the_rect() {
        let rect = Rect::from_min_size(Pos2::new(0.0, 0.0), Vec2::new(100.0, 50.0));
        assert!((x_of(rect, F_MIN) - 0.0).abs() < 1e-4);
        assert!((x_of(rect, F_MAX) - 100.0).abs() < 1e-3);
        // Octaves are equally spaced.
        let a = x_of(rect, 200.0) - x_of(rect, 100.0);
        let b = x_of(rect, 4_000.0) - x_of(rect, 2_000.0);
        assert!((a - b).abs() < 1e-3);
        assert_eq!(y_of(rect, DB_MAX), 0.0);
        assert_eq!(y_of(rect, -500.0), 50.0);
        // 62.5 Hz bins: bin 0 and those above 16 kHz are not drawn.
        assert_eq!(curve(rect, &[0.0; 257], 62.5).len(), 256);
    }

    /// Headless: both spectra are drawn as lines of one point per shown bin.
    #[test]
    fn draws_both_spectra_headless() {
        let ctx = egui::Context::default();
        let input: Vec<f32> = (0..257).map(|k| -20.0 - k as f32 * 0.2).collect();
        let output: Vec<f32> = input.iter().map(|v| v - 6.0).collect();
        let out = ctx.run_ui(egui::RawInput::default(), |ui| {
            let rect = Rect::from_min_size(Pos2::ZERO, Vec2::new(500.0, 120.0));
            show(ui, rect, Some((&input, &output)), 62.5);
        });
        let lines: Vec<usize> = out
            .shapes
            .iter()
            .filter_map(|s| match &s.shape {
                egui::Shape::Path(p) if p.points.len() > 100 => Some(p.points.len()),
                _ => None,
            })
            .collect();
        out.drop_without_applying_deltas();
        assert_eq!(lines, vec![256, 256]);
    }
}
