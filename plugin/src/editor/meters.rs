//! The meters beside the spectra: input and output level bars (RMS filled, peak as a line with
//! a falling hold), their readouts, and the instance's latency, worker CPU and dropouts. GUI
//! thread only.

use egui::{Align2, Pos2, Rect, Sense, Stroke};

use super::theme;

/// Lowest level the bars show, in dBFS.
pub const FLOOR_DB: f32 = -60.0;
/// How fast a peak hold falls, in dB per refresh.
pub const HOLD_FALL_DB: f32 = 1.5;

/// One level bar's ballistics (GUI thread).
#[derive(Debug, Clone, Copy)]
pub struct Ballistics {
    /// Peak hold, dBFS.
    pub peak_db: f32,
    /// RMS, dBFS.
    pub rms_db: f32,
}

impl Default for Ballistics {
    fn default() -> Self {
        Self {
            peak_db: f32::NEG_INFINITY,
            rms_db: f32::NEG_INFINITY,
        }
    }
}

impl Ballistics {
    /// Takes one refresh's peak and RMS (linear): the hold jumps up and falls slowly.
    pub fn update(&mut self, peak: f32, rms: f32) {
        let db = |v: f32| {
            if v > 0.0 && v.is_finite() {
                20.0 * v.log10()
            } else {
                f32::NEG_INFINITY
            }
        };
        self.peak_db = db(peak).max(self.peak_db - HOLD_FALL_DB);
        if self.peak_db < -150.0 {
            self.peak_db = f32::NEG_INFINITY;
        }
        self.rms_db = db(rms);
    }
}

/// Height share of a level in a bar, 0..=1.
fn fill(db: f32) -> f32 {
    if db.is_finite() {
        ((db - FLOOR_DB) / -FLOOR_DB).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

fn bar(painter: &egui::Painter, rect: Rect, level: Ballistics) {
    painter.rect_filled(rect, 2.0, theme::PLOT);
    let colour = if level.peak_db > -0.5 {
        theme::METER_CLIP
    } else if level.peak_db > -6.0 {
        theme::METER_HIGH
    } else {
        theme::METER_LOW
    };
    let top = rect.bottom() - fill(level.rms_db) * rect.height();
    painter.rect_filled(
        Rect::from_min_max(Pos2::new(rect.left(), top), rect.max),
        2.0,
        colour.gamma_multiply(0.85),
    );
    if level.peak_db.is_finite() && level.peak_db > FLOOR_DB {
        let y = rect.bottom() - fill(level.peak_db) * rect.height();
        painter.line_segment(
            [Pos2::new(rect.left(), y), Pos2::new(rect.right(), y)],
            Stroke::new(2.0, colour),
        );
    }
    for db in [-48.0, -24.0, -12.0, -6.0] {
        let y = rect.bottom() - fill(db) * rect.height();
        painter.line_segment(
            [Pos2::new(rect.left(), y), Pos2::new(rect.left() + 3.0, y)],
            Stroke::new(1.0, theme::GRID),
        );
    }
}

/// What the readouts under the bars say.
#[derive(Debug, Clone, Copy)]
pub struct Readouts {
    /// Reported latency, in milliseconds.
    pub latency_ms: f32,
    /// Worker thread's share of one core, 0..=1.
    pub cpu: f32,
    /// Frames that played dry because the worker was late.
    pub dropouts: u64,
}

/// Draws the input and output bars and the readouts into `rect`.
pub fn show(ui: &mut egui::Ui, rect: Rect, input: Ballistics, output: Ballistics, r: Readouts) {
    let response = ui.allocate_rect(rect, Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 4.0, theme::CARD);
    let inner = rect.shrink(6.0);
    // Three readout lines at the bottom, labels above the bars.
    let line = theme::SMALL + 4.0;
    let readout_top = inner.bottom() - 3.0 * line;
    let label_h = line;
    let bars_top = inner.top() + label_h;
    let bars_bottom = readout_top - line - 4.0;
    let column = inner.width() / 2.0;
    for (i, (name, level)) in [("In", input), ("Out", output)].iter().enumerate() {
        let x0 = inner.left() + column * i as f32;
        painter.text(
            Pos2::new(x0 + column / 2.0, inner.top()),
            Align2::CENTER_TOP,
            *name,
            theme::bold(theme::SMALL),
            theme::TEXT_DIM,
        );
        let bar_rect = Rect::from_min_max(
            Pos2::new(x0 + column / 2.0 - 7.0, bars_top),
            Pos2::new(x0 + column / 2.0 + 7.0, bars_bottom.max(bars_top + 4.0)),
        );
        bar(&painter, bar_rect, *level);
        painter.text(
            Pos2::new(x0 + column / 2.0, bars_bottom + 2.0),
            Align2::CENTER_TOP,
            if level.peak_db.is_finite() && level.peak_db > -120.0 {
                format!("{:.1}", level.peak_db)
            } else {
                "-inf".to_string()
            },
            theme::regular(theme::SMALL),
            theme::TEXT,
        );
    }
    let rows = [
        format!("Latency {:.1} ms", r.latency_ms),
        format!("CPU {:.1} %", r.cpu * 100.0),
        format!("Dropouts {}", r.dropouts),
    ];
    for (i, text) in rows.iter().enumerate() {
        painter.text(
            Pos2::new(inner.left(), readout_top + i as f32 * line),
            Align2::LEFT_TOP,
            text,
            theme::regular(theme::SMALL),
            if i == 2 && r.dropouts > 0 {
                theme::WARNING
            } else {
                theme::TEXT_DIM
            },
        );
    }
    response.on_hover_text(format!(
        "Bars: RMS (filled) and peak (line), {FLOOR_DB:.0} to 0 dBFS; the number is the peak hold.\\nIn {} / {} RMS, Out {} / {} RMS.\\nLatency: what the plugin reports to the host. CPU: the worker thread's share of one core. Dropouts: frames that played dry because the worker was late.",
        theme::db_text(input.peak_db),
        theme::db_text(input.rms_db),
        theme::db_text(output.peak_db),
        theme::db_text(output.rms_db),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hold_jumps_up_and_falls_slowly() {
        let mut b = Ballistics::default();
        b.update(0.5, 0.25);
        assert!((b.peak_db + 6.02).abs() < 0.01);
        assert!((b.rms_db + 12.04).abs() < 0.01);
        b.update(0.0, 0.0);
        assert!((b.peak_db + 6.02 + HOLD_FALL_DB).abs() < 0.01);
        assert_eq!(b.rms_db, f32::NEG_INFINITY);
        b.update(1.0, f32::NAN);
        assert!(b.peak_db.abs() < 1e-4);
        assert_eq!(b.rms_db, f32::NEG_INFINITY);
        assert_eq!(fill(0.0), 1.0);
        assert_eq!(fill(FLOOR_DB - 10.0), 0.0);
        assert_eq!(fill(f32::NEG_INFINITY), 0.0);
    }
}
