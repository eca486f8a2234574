//! The editor's look: the bundled font (DejaVu Sans Condensed, regular and bold, compiled into
//! the plugin; `assets/fonts/`), the text sizes, the spacing and one palette that every widget
//! draws with. GUI thread only.

use std::sync::Arc;

use egui::{Color32, FontData, FontDefinitions, FontFamily, FontId, Stroke, TextStyle};

/// The regular face, compiled in.
const REGULAR: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSansCondensed.ttf");
/// The bold face, compiled in.
const BOLD: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSansCondensed-Bold.ttf");
/// Name of the bold family (`FontFamily::Name`).
pub const BOLD_FAMILY: &str = "bold";

/// Window background.
pub const BACKGROUND: Color32 = Color32::from_rgb(22, 23, 27);
/// Card (section) background.
pub const CARD: Color32 = Color32::from_rgb(31, 33, 39);
/// Card outline.
pub const CARD_EDGE: Color32 = Color32::from_rgb(52, 55, 64);
/// Plot background (map, spectra, thumbnails, meters).
pub const PLOT: Color32 = Color32::from_rgb(17, 18, 21);
/// Grid lines in plots.
pub const GRID: Color32 = Color32::from_rgb(44, 47, 54);
/// Main text.
pub const TEXT: Color32 = Color32::from_rgb(222, 224, 230);
/// Secondary text (units, captions).
pub const TEXT_DIM: Color32 = Color32::from_rgb(140, 145, 156);
/// The accent: values, the map point, the output spectrum, drop highlights.
pub const ACCENT: Color32 = Color32::from_rgb(255, 184, 64);
/// Reference A's colour.
pub const SLOT_A: Color32 = Color32::from_rgb(96, 190, 255);
/// Reference B's colour.
pub const SLOT_B: Color32 = Color32::from_rgb(255, 120, 170);
/// Errors.
pub const ERROR: Color32 = Color32::from_rgb(255, 110, 90);
/// Warnings.
pub const WARNING: Color32 = Color32::from_rgb(250, 210, 90);
/// Meter: safe levels.
pub const METER_LOW: Color32 = Color32::from_rgb(80, 200, 120);
/// Meter: above -6 dBFS.
pub const METER_HIGH: Color32 = Color32::from_rgb(250, 200, 70);
/// Meter: above -0.5 dBFS.
pub const METER_CLIP: Color32 = Color32::from_rgb(250, 80, 70);

/// Body text size, in points.
pub const BODY: f32 = 12.5;
/// Small text (captions, units, map labels), in points.
pub const SMALL: f32 = 10.5;
/// Headings, in points.
pub const HEADING: f32 = 15.0;

/// A font of the regular face.
pub fn regular(size: f32) -> FontId {
    FontId::new(size, FontFamily::Proportional)
}

/// A font of the bold face.
pub fn bold(size: f32) -> FontId {
    FontId::new(size, FontFamily::Name(BOLD_FAMILY.into()))
}

/// Installs the fonts, text styles, spacing and colours into `ctx`.
pub fn apply(ctx: &egui::Context) {
    let mut fonts = FontDefinitions::default();
    fonts
        .font_data
        .insert("dejavu".into(), Arc::new(FontData::from_static(REGULAR)));
    fonts
        .font_data
        .insert("dejavu-bold".into(), Arc::new(FontData::from_static(BOLD)));
    // The bundled face first; egui's own fonts stay behind it for symbols it lacks.
    for family in [FontFamily::Proportional, FontFamily::Monospace] {
        fonts
            .families
            .entry(family)
            .or_default()
            .insert(0, "dejavu".into());
    }
    let mut bold_chain = vec!["dejavu-bold".to_string()];
    bold_chain.extend(
        fonts
            .families
            .get(&FontFamily::Proportional)
            .cloned()
            .unwrap_or_default(),
    );
    fonts
        .families
        .insert(FontFamily::Name(BOLD_FAMILY.into()), bold_chain);
    ctx.set_fonts(fonts);

    ctx.all_styles_mut(|style| {
        style.text_styles = [
            (TextStyle::Heading, bold(HEADING)),
            (TextStyle::Body, regular(BODY)),
            (TextStyle::Button, regular(BODY)),
            (TextStyle::Small, regular(SMALL)),
            (
                TextStyle::Monospace,
                FontId::new(BODY, FontFamily::Monospace),
            ),
        ]
        .into();
        style.spacing.item_spacing = egui::vec2(6.0, 5.0);
        style.spacing.button_padding = egui::vec2(8.0, 3.0);
        style.spacing.interact_size.y = 22.0;
        let v = &mut style.visuals;
        *v = egui::Visuals::dark();
        v.override_text_color = Some(TEXT);
        v.panel_fill = BACKGROUND;
        v.window_fill = CARD;
        v.extreme_bg_color = PLOT;
        v.faint_bg_color = CARD;
        v.selection.bg_fill = ACCENT.gamma_multiply(0.45);
        v.selection.stroke = Stroke::new(1.0, ACCENT);
        v.hyperlink_color = ACCENT;
        v.widgets.noninteractive.bg_stroke = Stroke::new(1.0, CARD_EDGE);
        v.widgets.inactive.weak_bg_fill = Color32::from_rgb(45, 48, 57);
        v.widgets.inactive.bg_fill = Color32::from_rgb(45, 48, 57);
        v.widgets.hovered.weak_bg_fill = Color32::from_rgb(60, 64, 75);
        v.widgets.hovered.bg_stroke = Stroke::new(1.0, ACCENT.gamma_multiply(0.7));
        v.widgets.active.weak_bg_fill = Color32::from_rgb(72, 76, 90);
        v.widgets.active.bg_stroke = Stroke::new(1.0, ACCENT);
        for w in [
            &mut v.widgets.inactive,
            &mut v.widgets.hovered,
            &mut v.widgets.active,
            &mut v.widgets.open,
        ] {
            w.corner_radius = 4.0.into();
        }
    });
}

/// A level in dBFS as text ("-12.3 dB", "-inf" below -120).
pub fn db_text(db: f32) -> String {
    if db.is_finite() && db > -120.0 {
        format!("{db:.1} dB")
    } else {
        "-inf".to_string()
    }
}
