//! Where each section of the editor goes, as plain rectangles computed from the window's size:
//! a header (title and model), the two reference cards on the left, the timbre map, the knobs
//! and the live view (spectra, meters, readouts) on the right, and the status line at the
//! bottom. A pure function of the size, so the tests check every allowed size for overlaps.

use egui::{Pos2, Rect, Vec2};

/// Editor size when first opened, in logical pixels (landscape, like a host's plugin window;
/// wide enough for the knobs in one row).
pub const DEFAULT_SIZE: (u32, u32) = (980, 560);
/// Smallest editor size, in logical pixels.
pub const MIN_SIZE: (u32, u32) = (800, 500);
/// Largest editor size, in logical pixels.
pub const MAX_SIZE: (u32, u32) = (1800, 1200);

/// Outer margin and the gap between sections, in logical pixels.
pub const GAP: f32 = 8.0;
/// Height of the header row, in logical pixels.
pub const HEADER: f32 = 30.0;
/// Height of the status line, in logical pixels.
pub const STATUS: f32 = 22.0;
/// Height of one row of knobs, in logical pixels.
pub const KNOB_ROW: f32 = 80.0;
/// Narrowest knob cell, in logical pixels (below it the knobs take two rows): the widest
/// knob name ("Map amount") fits.
pub const MIN_KNOB_CELL: f32 = 70.0;
/// Widest knob cell, in logical pixels.
pub const MAX_KNOB_CELL: f32 = 96.0;
/// Knobs in the editor.
pub const KNOBS: usize = 9;
/// Width of the meters beside the spectra, in logical pixels.
pub const METERS: f32 = 132.0;

/// The sections' rectangles, in logical pixels from the window's top-left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    /// Title and the model's controls.
    pub header: Rect,
    /// Reference A's and B's cards (drop zones).
    pub slots: [Rect; 2],
    /// The timbre map.
    pub map: Rect,
    /// The knobs.
    pub knobs: Rect,
    /// Knobs per row (all in one row, or two rows, the second one shorter if they are odd).
    pub knobs_per_row: usize,
    /// The spectra.
    pub spectra: Rect,
    /// Input and output meters, latency, CPU and dropouts.
    pub meters: Rect,
    /// The status line.
    pub status: Rect,
}

impl Layout {
    /// The layout of a window of `size` (clamped to [`MIN_SIZE`]..=[`MAX_SIZE`]).
    pub fn new(size: Vec2) -> Self {
        let w = size.x.clamp(MIN_SIZE.0 as f32, MAX_SIZE.0 as f32);
        let h = size.y.clamp(MIN_SIZE.1 as f32, MAX_SIZE.1 as f32);
        let header = Rect::from_min_size(Pos2::new(GAP, GAP), Vec2::new(w - 2.0 * GAP, HEADER));
        let status = Rect::from_min_size(
            Pos2::new(GAP, h - GAP - STATUS),
            Vec2::new(w - 2.0 * GAP, STATUS),
        );
        let top = header.bottom() + GAP;
        let bottom = status.top() - GAP;
        let left_w = (w * 0.32).clamp(270.0, 420.0);
        let slot_h = (bottom - top - GAP) / 2.0;
        let slots = [
            Rect::from_min_size(Pos2::new(GAP, top), Vec2::new(left_w, slot_h)),
            Rect::from_min_size(
                Pos2::new(GAP, top + slot_h + GAP),
                Vec2::new(left_w, slot_h),
            ),
        ];
        let right_x = GAP + left_w + GAP;
        let right_w = w - GAP - right_x;
        let knobs_per_row = if right_w / KNOBS as f32 >= MIN_KNOB_CELL {
            KNOBS
        } else {
            KNOBS.div_ceil(2)
        };
        let knob_rows = KNOBS.div_ceil(knobs_per_row);
        let knob_h = KNOB_ROW * knob_rows as f32;
        let body_h = bottom - top;
        // The map gets 55 % of what the knobs leave, the live view the rest.
        let free = body_h - knob_h - 2.0 * GAP;
        let map_h = (free * 0.55).round();
        let live_h = free - map_h;
        let map = Rect::from_min_size(Pos2::new(right_x, top), Vec2::new(right_w, map_h));
        let knobs = Rect::from_min_size(
            Pos2::new(right_x, map.bottom() + GAP),
            Vec2::new(right_w, knob_h),
        );
        let live_top = knobs.bottom() + GAP;
        let spectra = Rect::from_min_size(
            Pos2::new(right_x, live_top),
            Vec2::new(right_w - METERS - GAP, live_h),
        );
        let meters = Rect::from_min_size(
            Pos2::new(spectra.right() + GAP, live_top),
            Vec2::new(METERS, live_h),
        );
        Self {
            header,
            slots,
            map,
            knobs,
            knobs_per_row,
            spectra,
            meters,
            status,
        }
    }

    /// Every section, for checks.
    pub fn sections(&self) -> [(&'static str, Rect); 8] {
        [
            ("header", self.header),
            ("slot A", self.slots[0]),
            ("slot B", self.slots[1]),
            ("map", self.map),
            ("knobs", self.knobs),
            ("spectra", self.spectra),
            ("meters", self.meters),
            ("status", self.status),
        ]
    }

    /// Width of one knob cell.
    pub fn knob_cell(&self) -> f32 {
        (self.knobs.width() / self.knobs_per_row as f32).min(MAX_KNOB_CELL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At the smallest, default and largest sizes (and a few between): every section lies
    /// inside the window, no two overlap, and each has room for its contents.
    #[test]
    fn sections_fit_and_never_overlap() {
        let sizes = [
            MIN_SIZE,
            DEFAULT_SIZE,
            MAX_SIZE,
            (MIN_SIZE.0, MAX_SIZE.1),
            (MAX_SIZE.0, MIN_SIZE.1),
            (1024, 640),
        ];
        for (w, h) in sizes {
            let size = Vec2::new(w as f32, h as f32);
            let layout = Layout::new(size);
            let window = Rect::from_min_size(Pos2::ZERO, size);
            let sections = layout.sections();
            for (name, r) in sections {
                assert!(
                    window.contains_rect(r),
                    "{w}x{h}: {name} {r:?} leaves the window"
                );
            }
            for (i, (a, ra)) in sections.iter().enumerate() {
                for (b, rb) in &sections[i + 1..] {
                    let overlap = ra.intersect(*rb);
                    assert!(
                        !overlap.is_positive(),
                        "{w}x{h}: {a} {ra:?} overlaps {b} {rb:?}"
                    );
                }
            }
            assert!(
                layout.map.height() >= 110.0,
                "{w}x{h}: map {:?}",
                layout.map
            );
            assert!(
                layout.spectra.height() >= 80.0,
                "{w}x{h}: spectra {:?}",
                layout.spectra
            );
            assert!(
                layout.slots[0].height() >= 190.0,
                "{w}x{h}: slots {:?}",
                layout.slots
            );
            assert!(layout.knob_cell() >= MIN_KNOB_CELL, "{w}x{h}");
            // Every knob has a cell: the rows hold them all, and no row is empty.
            let rows = (layout.knobs.height() / KNOB_ROW).round() as usize;
            assert!(rows * layout.knobs_per_row >= KNOBS, "{w}x{h}");
            assert!((rows - 1) * layout.knobs_per_row < KNOBS, "{w}x{h}");
        }
        let (w, h) = DEFAULT_SIZE;
        assert!(w > h, "the default size is landscape");
        // At the default size the knobs take one row.
        assert_eq!(
            Layout::new(Vec2::new(w as f32, h as f32)).knobs_per_row,
            KNOBS
        );
        // Outside the allowed range the layout is that of the nearest allowed size.
        assert_eq!(
            Layout::new(Vec2::new(10.0, 10.0)),
            Layout::new(Vec2::new(MIN_SIZE.0 as f32, MIN_SIZE.1 as f32))
        );
    }
}
