//! A reference slot's card: a drop zone that lights up while a clip it takes hovers over it,
//! with the clip's waveform thumbnail, name, length and level, its Load... and Clear buttons,
//! a typed path, the preset picker (the model's instruments by family, with a search field)
//! and the slot's own error. GUI thread only.

use std::path::PathBuf;

use egui::{Align2, Color32, Pos2, Rect, RichText, Sense, Stroke, Vec2};
use timbreswap_engine::network::Network;
use timbreswap_engine::timbre::ClipOverview;
use timbreswap_engine::{Slot, TimbreDescriptor};

use super::dialog::Target;
use super::input::{self, FileKind};
use super::{theme, TimbreswapApp, MODEL_ZONE};
use crate::loader::Task;
use crate::shared::slot_name;

/// Height the rows under a card's thumbnail take (caption, buttons, path field, with their
/// spacing), in logical pixels.
const ROWS_BELOW_THUMBNAIL: f32 = 92.0;

/// The colour of slot A's and B's marks (card title, map ring).
pub fn slot_colour(slot: Slot) -> Color32 {
    match slot {
        Slot::A => theme::SLOT_A,
        Slot::B => theme::SLOT_B,
    }
}

/// Whether a hovering drag carries a file `zone` takes, and whether it is over `rect`.
pub fn hover_state(ui: &egui::Ui, zone: usize, rect: Rect) -> (bool, bool) {
    ui.input(|i| {
        let takes = i
            .raw
            .hovered_files
            .iter()
            .filter_map(|f| f.path.as_deref().and_then(input::file_kind))
            .any(|kind| {
                if zone == MODEL_ZONE {
                    kind == FileKind::Model
                } else {
                    kind == FileKind::Audio
                }
            });
        let over = takes && i.pointer.latest_pos().is_some_and(|p| rect.contains(p));
        (takes, over)
    })
}

/// The outline and fill of a drop zone: lit while a file it takes hovers over it, hinted while
/// one hovers elsewhere.
pub fn zone_frame(takes: bool, over: bool) -> (Stroke, Color32) {
    if over {
        (
            Stroke::new(2.0, theme::ACCENT),
            theme::ACCENT.gamma_multiply(0.12),
        )
    } else if takes {
        (
            Stroke::new(1.0, theme::ACCENT.gamma_multiply(0.5)),
            theme::CARD,
        )
    } else {
        (Stroke::new(1.0, theme::CARD_EDGE), theme::CARD)
    }
}

/// The thumbnail of a clip: its min/max columns as a filled waveform, with a centre line.
fn thumbnail(
    ui: &mut egui::Ui,
    overview: Option<&ClipOverview>,
    colour: Color32,
    height: f32,
    empty_text: &str,
) -> Rect {
    let (rect, _) = ui.allocate_exact_size(Vec2::new(ui.available_width(), height), Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 3.0, theme::PLOT);
    let mid = rect.center().y;
    painter.line_segment(
        [Pos2::new(rect.left(), mid), Pos2::new(rect.right(), mid)],
        Stroke::new(1.0, theme::GRID),
    );
    let Some(overview) = overview.filter(|o| !o.columns.is_empty()) else {
        painter.text(
            rect.center(),
            Align2::CENTER_CENTER,
            empty_text,
            theme::regular(theme::SMALL),
            theme::TEXT_DIM,
        );
        return rect;
    };
    // Scaled so the clip's own peak fills the height (quiet clips stay readable; the level is
    // written beside it).
    let peak = overview
        .columns
        .iter()
        .flatten()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(1e-6);
    let n = overview.columns.len() as f32;
    let half = rect.height() * 0.45;
    for (i, [lo, hi]) in overview.columns.iter().enumerate() {
        let x0 = rect.left() + rect.width() * i as f32 / n;
        let x1 = rect.left() + rect.width() * (i + 1) as f32 / n;
        let top = mid - (hi / peak).clamp(-1.0, 1.0) * half;
        let bottom = mid - (lo / peak).clamp(-1.0, 1.0) * half;
        painter.rect_filled(
            Rect::from_min_max(
                Pos2::new(x0, top.min(mid - 0.5)),
                Pos2::new(x1.max(x0 + 1.0), bottom.max(mid + 0.5)),
            ),
            0.0,
            colour.gamma_multiply(0.8),
        );
    }
    rect
}

/// "2.0 s · peak -6.1 dB · RMS -18.3 dB" for a clip; the preset's note for a preset.
fn details(d: &TimbreDescriptor) -> String {
    match (&d.overview, &d.preset) {
        (Some(o), _) => format!(
            "{:.1} s · peak {} · RMS {}",
            d.duration_s,
            theme::db_text(o.peak_db),
            theme::db_text(o.rms_db)
        ),
        (None, Some(_)) => "the model's timbre for this instrument".to_string(),
        (None, None) => format!("{:.1} s", d.duration_s),
    }
}

/// The preset picker: the model's instruments grouped by family, narrowed by a search field.
/// Returns the chosen instrument's index.
fn preset_picker(
    ui: &mut egui::Ui,
    net: &Network,
    index: usize,
    search: &mut String,
) -> Option<usize> {
    let mut chosen = None;
    let instruments = &net.map().instruments;
    let mut families: Vec<&str> = instruments.iter().map(|i| i.family.as_str()).collect();
    families.sort_unstable();
    families.dedup();
    egui::ComboBox::from_id_salt(("preset", index))
        .selected_text("Preset…")
        .width(ui.available_width().min(150.0))
        .height(320.0)
        .show_ui(ui, |ui| {
            // A fixed size, so the list does not stay shrunk after the search is shortened.
            ui.set_min_width(220.0);
            ui.set_min_height(300.0);
            ui.add(
                egui::TextEdit::singleline(search)
                    .hint_text("Search instruments")
                    .desired_width(200.0),
            )
            .request_focus();
            let needle = search.trim().to_lowercase();
            let mut any = false;
            for family in &families {
                let members: Vec<(usize, &str)> = instruments
                    .iter()
                    .enumerate()
                    .filter(|(_, i)| i.family == *family)
                    .filter(|(_, i)| {
                        needle.is_empty()
                            || i.name.to_lowercase().contains(&needle)
                            || i.family.to_lowercase().contains(&needle)
                    })
                    .map(|(k, i)| (k, i.name.as_str()))
                    .collect();
                if members.is_empty() {
                    continue;
                }
                any = true;
                ui.label(
                    RichText::new(family.to_uppercase())
                        .font(theme::bold(theme::SMALL))
                        .color(super::timbre_map::family_colour(family)),
                );
                for (k, name) in members {
                    if ui.selectable_label(false, format!("  {name}")).clicked() {
                        chosen = Some(k);
                    }
                }
            }
            if !any {
                ui.label(RichText::new("No instrument matches").color(theme::TEXT_DIM));
            }
        })
        .response
        .on_hover_text("Use the timbre the model learned for one of its training instruments");
    chosen
}

impl TimbreswapApp {
    /// Reference `slot`'s card in `rect`: a drop zone for clips.
    pub(super) fn slot_card(&mut self, ui: &mut egui::Ui, slot: Slot, rect: Rect) {
        let index = slot as usize;
        self.zones[index] = Some(rect);
        let (takes, over) = hover_state(ui, index, rect);
        let (stroke, fill) = zone_frame(takes, over);
        ui.painter()
            .rect(rect, 6.0, fill, stroke, egui::StrokeKind::Inside);
        let inner = rect.shrink(10.0);
        let stored = self.params.timbre(slot).read().clone();
        let error = self.shared.slot_error(slot);
        let net = self.shared.network();
        let colour = slot_colour(slot);
        let mut thumb = Rect::NOTHING;
        ui.scope_builder(egui::UiBuilder::new().max_rect(inner), |ui| {
            ui.set_clip_rect(rect);
            ui.horizontal(|ui| {
                ui.label(
                    RichText::new(format!("Reference {}", slot_name(slot)))
                        .font(theme::bold(theme::HEADING))
                        .color(colour),
                );
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if ui
                        .add_enabled(stored.is_some(), egui::Button::new("Clear"))
                        .on_hover_text("Empty this slot")
                        .clicked()
                    {
                        self.executor
                            .execute_gui(Task::ClearReference { slot });
                    }
                });
            });
            let name = stored
                .as_ref()
                .map_or_else(|| "Empty".to_string(), |d| d.name.clone());
            ui.add(
                egui::Label::new(RichText::new(name).font(theme::bold(theme::BODY)))
                    .truncate(),
            );
            // The error, at most three lines (all of it on hover).
            let error_text = error.as_ref().map(|e| {
                let mut job = egui::text::LayoutJob::simple(
                    e.clone(),
                    theme::regular(theme::SMALL),
                    theme::ERROR,
                    inner.width(),
                );
                job.wrap.max_rows = 3;
                job.wrap.overflow_character = Some('…');
                ui.painter().layout_job(job)
            });
            // The thumbnail takes what the rows below leave: caption, buttons, path, error.
            let rows_below = ROWS_BELOW_THUMBNAIL
                + error_text.as_ref().map_or(0.0, |g| g.size().y + ui.spacing().item_spacing.y);
            let height = (ui.available_height() - rows_below).clamp(24.0, 90.0);
            thumb = thumbnail(
                ui,
                stored.as_ref().and_then(|d| d.overview.as_ref()),
                colour,
                height,
                match &stored {
                    Some(d) if d.preset.is_some() => "A model preset: no clip to show",
                    Some(_) => "No waveform saved with this clip",
                    None => "Drop a clip here",
                },
            );
            let caption = match &stored {
                Some(d) => details(d),
                None => "WAV, AIFF, FLAC, MP3 or OGG, any rate".to_string(),
            };
            ui.add(
                egui::Label::new(RichText::new(caption).font(theme::regular(theme::SMALL)).color(theme::TEXT_DIM))
                    .truncate(),
            );
            ui.horizontal(|ui| {
                let busy = self.dialogs.open().is_some();
                if ui
                    .add_enabled(!busy, egui::Button::new(format!("Load {}…", slot_name(slot))))
                    .on_hover_text("Choose a WAV, AIFF, FLAC, MP3 or OGG clip whose timbre this slot plays (or drag the file onto this card)")
                    .clicked()
                {
                    self.dialogs.pick(Target::Reference(index));
                }
                if let Some(net) = net.as_deref() {
                    if let Some(i) = preset_picker(ui, net, index, &mut self.preset_search[index]) {
                        self.preset_search[index].clear();
                        self.executor
                            .execute_gui(Task::LoadPreset { slot, index: i });
                    }
                }
            });
            let field = ui.add(
                egui::TextEdit::singleline(&mut self.paths[index])
                    .hint_text("or type a path, then Enter")
                    .desired_width(f32::INFINITY),
            );
            if field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                let path = self.paths[index].trim().to_string();
                if !path.is_empty() {
                    self.load(index, PathBuf::from(path));
                }
            }
            if let (Some(galley), Some(error)) = (error_text, &error) {
                ui.add(egui::Label::new(galley)).on_hover_text(error);
            }
        });
        if over && thumb.is_positive() {
            ui.painter()
                .rect_filled(thumb, 3.0, theme::PLOT.gamma_multiply(0.85));
            ui.painter().text(
                thumb.center(),
                Align2::CENTER_CENTER,
                format!("Drop to load into {}", slot_name(slot)),
                theme::bold(theme::SMALL),
                theme::ACCENT,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::editor::window::{drawn_texts, DrawnText};
    use egui::{Event, Pos2};

    /// One frame of the picker alone with `events`; returns its choice and the texts drawn.
    fn frame(
        ctx: &egui::Context,
        net: &Network,
        search: &mut String,
        events: Vec<Event>,
        time: f64,
    ) -> (Option<usize>, Vec<DrawnText>) {
        let input = egui::RawInput {
            screen_rect: Some(Rect::from_min_size(Pos2::ZERO, Vec2::new(400.0, 600.0))),
            events,
            time: Some(time),
            ..Default::default()
        };
        let mut chosen = None;
        let out = ctx.run_ui(input, |ui| {
            chosen = preset_picker(ui, net, 0, search);
        });
        let texts = drawn_texts(&out.shapes);
        out.drop_without_applying_deltas();
        (chosen, texts)
    }

    fn click(at: Pos2) -> Vec<Event> {
        let button = |pressed| Event::PointerButton {
            pos: at,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: Default::default(),
        };
        vec![Event::PointerMoved(at), button(true), button(false)]
    }

    /// Opening the picker lists the instruments under their families; typing narrows the list
    /// to the matches (by name or family); clicking one chooses that instrument.
    #[test]
    fn the_preset_picker_groups_by_family_and_searches() {
        let net = crate::model::default_network().unwrap();
        let ctx = egui::Context::default();
        let mut search = String::new();
        let (_, texts) = frame(&ctx, &net, &mut search, vec![], 0.0);
        let button = texts
            .iter()
            .find(|t| t.text.starts_with("Preset"))
            .expect("the picker's button")
            .rect;
        frame(&ctx, &net, &mut search, click(button.center()), 0.1);
        let (_, open) = frame(&ctx, &net, &mut search, vec![], 0.2);
        let has = |texts: &[DrawnText], s: &str| texts.iter().any(|t| t.text == s);
        // The list scrolls: its top shows the first families, each under its heading.
        assert!(
            has(&open, "BASS") && has(&open, "BRASS"),
            "families are headings"
        );
        assert!(has(&open, "Trumpet") && has(&open, "Banjo"));
        // The search field has focus: typing narrows the list.
        frame(
            &ctx,
            &net,
            &mut search,
            vec![Event::Text("trum".into())],
            0.3,
        );
        assert_eq!(search, "trum");
        frame(&ctx, &net, &mut search, vec![], 0.35);
        let (_, narrowed) = frame(&ctx, &net, &mut search, vec![], 0.4);
        assert!(has(&narrowed, "Trumpet") && has(&narrowed, "BRASS"));
        assert!(!has(&narrowed, "Banjo") && !has(&narrowed, "BASS"));
        // A family name matches its members.
        search.clear();
        search.push_str("reed");
        // (The popup takes its new size on the frame after its contents change.)
        frame(&ctx, &net, &mut search, vec![], 0.5);
        let (_, reeds) = frame(&ctx, &net, &mut search, vec![], 0.55);
        assert!(has(&reeds, "Clarinet") && !has(&reeds, "Trumpet"));
        search.clear();
        search.push_str("trum");
        frame(&ctx, &net, &mut search, vec![], 0.6);
        let (_, narrowed) = frame(&ctx, &net, &mut search, vec![], 0.65);
        let trumpet = narrowed.iter().find(|t| t.text == "Trumpet").unwrap().rect;
        let (chosen, _) = frame(&ctx, &net, &mut search, click(trumpet.center()), 0.7);
        let expected = net
            .map()
            .instruments
            .iter()
            .position(|i| i.name == "Trumpet")
            .unwrap();
        assert_eq!(chosen, Some(expected));
    }
}
