//! baseview's window events turned into egui's input (GUI thread only).
//!
//! This is where file drops enter the editor: `DragEntered` / `DragMoved` with audio files fill
//! egui's `hovered_files` and answer [`EventStatus::AcceptDrop`] with [`DropEffect::Copy`] (the
//! host's file browser then shows a "copy" cursor, and Windows and macOS deliver the drop);
//! anything else is refused with [`EventStatus::Ignored`]. `DragLeft` clears the hover state,
//! `DragDropped` moves the accepted files to `dropped_files`, where the editor's drop zones pick
//! them up. Everything here is plain data, so it is tested without a window.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use baseview::{
    DropData, DropEffect, Event, EventStatus, MouseButton, MouseEvent, ScrollDelta, WindowEvent,
};
use egui::{Modifiers, MouseWheelUnit, Pos2, Vec2};
use keyboard_types::{Code, Key, KeyState, NamedKey};

/// File extensions the reference slots accept (what `timbreswap_engine::clip` decodes).
pub const AUDIO_EXTENSIONS: [&str; 7] = ["wav", "wave", "aif", "aiff", "flac", "mp3", "ogg"];
/// File extension of a model file (accepted by the model zone).
pub const MODEL_EXTENSION: &str = "safetensors";

/// What a dragged file is to the editor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A clip for reference slot A or B.
    Audio,
    /// A model file from `timbreswap train`.
    Model,
}

/// The kind of `path` by its extension (case-insensitive), or `None` if the editor cannot use
/// it.
pub fn file_kind(path: &Path) -> Option<FileKind> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    if AUDIO_EXTENSIONS.contains(&ext.as_str()) {
        Some(FileKind::Audio)
    } else if ext == MODEL_EXTENSION {
        Some(FileKind::Model)
    } else {
        None
    }
}

/// A file dropped on the editor, as egui hands it to the UI.
#[derive(Debug)]
pub struct LocalFile {
    path: PathBuf,
}

impl egui::DroppedFile for LocalFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

/// Accumulates one frame's egui input from baseview events.
pub struct InputState {
    /// The input of the next egui frame.
    raw: egui::RawInput,
    /// Physical pixels per egui point (system scale factor times the editor's zoom).
    pixels_per_point: f32,
    /// Last pointer position, in egui points.
    pointer: Option<Pos2>,
    /// Modifier keys held, as of the last event that reported them.
    modifiers: Modifiers,
    /// Whether egui wanted the keyboard after the last frame (a text field has focus); if not,
    /// key events go back to the host (a DAW plays notes from the computer keyboard).
    wants_keyboard: bool,
}

impl InputState {
    /// An empty input state for a window of `size_points` egui points at `pixels_per_point`.
    pub fn new(size_points: Vec2, pixels_per_point: f32) -> Self {
        let mut state = Self {
            raw: egui::RawInput::default(),
            pixels_per_point,
            pointer: None,
            modifiers: Modifiers::default(),
            wants_keyboard: false,
        };
        state.set_size(size_points, pixels_per_point);
        state
    }

    /// The window's new size in egui points and its scale.
    pub fn set_size(&mut self, size_points: Vec2, pixels_per_point: f32) {
        self.pixels_per_point = pixels_per_point;
        self.raw.screen_rect = Some(egui::Rect::from_min_size(Pos2::ZERO, size_points));
    }

    /// Tells the translator whether egui has keyboard focus (after a frame).
    pub fn set_wants_keyboard(&mut self, wants: bool) {
        self.wants_keyboard = wants;
    }

    /// Files hovering over the window now.
    #[cfg(test)]
    pub fn hovered_files(&self) -> &[egui::HoveredFile] {
        &self.raw.hovered_files
    }

    /// Takes the input gathered since the last frame, stamped with `time` (seconds). Hovered
    /// files stay until the drag leaves or drops (egui's `RawInput::take` keeps them).
    pub fn take(&mut self, time: f64) -> egui::RawInput {
        let mut raw = self.raw.take();
        raw.time = Some(time);
        raw
    }

    /// A position in physical pixels as egui points.
    fn to_points(&self, x: f64, y: f64) -> Pos2 {
        Pos2::new(
            x as f32 / self.pixels_per_point,
            y as f32 / self.pixels_per_point,
        )
    }

    /// Records the modifier keys reported with an event (egui hears of changes).
    fn set_modifiers(&mut self, modifiers: keyboard_types::Modifiers) {
        let modifiers = translate_modifiers(modifiers);
        if modifiers != self.modifiers {
            self.modifiers = modifiers;
            self.raw
                .events
                .push(egui::Event::ModifiersChanged(modifiers));
        }
    }

    /// The pointer is at `position` (physical pixels) with `modifiers` held.
    fn pointer_at(
        &mut self,
        position: baseview::dpi::PhysicalPosition<f64>,
        modifiers: keyboard_types::Modifiers,
    ) {
        self.set_modifiers(modifiers);
        let pos = self.to_points(position.x, position.y);
        self.pointer = Some(pos);
        self.raw.events.push(egui::Event::PointerMoved(pos));
    }

    /// The pointer (or a drag) left the window.
    fn pointer_gone(&mut self) -> EventStatus {
        self.pointer = None;
        self.raw.events.push(egui::Event::PointerGone);
        EventStatus::Captured
    }

    /// Handles one baseview event; the returned status is what baseview should answer the
    /// platform.
    pub fn handle(&mut self, event: &Event) -> EventStatus {
        match event {
            Event::Mouse(mouse) => self.mouse(mouse),
            Event::Keyboard(key) => self.keyboard(key),
            Event::Window(WindowEvent::Focused) => {
                self.raw.focused = true;
                self.raw.events.push(egui::Event::WindowFocused(true));
                EventStatus::Captured
            }
            Event::Window(WindowEvent::Unfocused) => {
                self.raw.focused = false;
                self.raw.events.push(egui::Event::WindowFocused(false));
                EventStatus::Captured
            }
            _ => EventStatus::Ignored,
        }
    }

    fn mouse(&mut self, event: &MouseEvent) -> EventStatus {
        match event {
            MouseEvent::CursorMoved {
                position,
                modifiers,
            } => {
                self.pointer_at(*position, *modifiers);
                EventStatus::Captured
            }
            MouseEvent::ButtonPressed { button, modifiers }
            | MouseEvent::ButtonReleased { button, modifiers } => {
                self.set_modifiers(*modifiers);
                let (Some(button), Some(pos)) = (translate_button(*button), self.pointer) else {
                    return EventStatus::Ignored;
                };
                self.raw.events.push(egui::Event::PointerButton {
                    pos,
                    button,
                    pressed: matches!(event, MouseEvent::ButtonPressed { .. }),
                    modifiers: self.modifiers,
                });
                EventStatus::Captured
            }
            MouseEvent::WheelScrolled { delta, modifiers } => {
                self.set_modifiers(*modifiers);
                let (unit, delta) = match *delta {
                    ScrollDelta::Lines { x, y } => (MouseWheelUnit::Line, Vec2::new(x, y)),
                    ScrollDelta::Pixels { x, y } => (
                        MouseWheelUnit::Point,
                        Vec2::new(x, y) / self.pixels_per_point,
                    ),
                };
                self.raw.events.push(egui::Event::MouseWheel {
                    unit,
                    delta,
                    phase: egui::TouchPhase::Move,
                    source: egui::MouseWheelSource::Wheel,
                    modifiers: self.modifiers,
                });
                EventStatus::Captured
            }
            MouseEvent::CursorEntered => EventStatus::Captured,
            MouseEvent::CursorLeft => self.pointer_gone(),
            MouseEvent::DragEntered {
                position,
                modifiers,
                data,
            }
            | MouseEvent::DragMoved {
                position,
                modifiers,
                data,
            } => {
                self.pointer_at(*position, *modifiers);
                let usable = usable_files(data);
                self.raw.hovered_files = usable
                    .iter()
                    .map(|path| egui::HoveredFile {
                        path: Some(path.clone()),
                        mime: String::new(),
                    })
                    .collect();
                drop_status(!usable.is_empty())
            }
            MouseEvent::DragLeft => {
                self.raw.hovered_files.clear();
                self.pointer_gone()
            }
            MouseEvent::DragDropped {
                position,
                modifiers,
                data,
            } => {
                self.pointer_at(*position, *modifiers);
                self.raw.hovered_files.clear();
                let usable = usable_files(data);
                self.raw.dropped_files.extend(
                    usable
                        .iter()
                        .map(|path| Arc::new(LocalFile { path: path.clone() }) as _),
                );
                drop_status(!usable.is_empty())
            }
            _ => EventStatus::Ignored,
        }
    }

    fn keyboard(&mut self, event: &keyboard_types::KeyboardEvent) -> EventStatus {
        self.set_modifiers(event.modifiers);
        if !self.wants_keyboard {
            return EventStatus::Ignored;
        }
        let pressed = event.state == KeyState::Down;
        let command = self.modifiers.command;
        // Clipboard shortcuts by physical key, so they work on any layout.
        if pressed && command {
            match event.code {
                Code::KeyC => {
                    self.raw.events.push(egui::Event::Copy);
                    return EventStatus::Captured;
                }
                Code::KeyX => {
                    self.raw.events.push(egui::Event::Cut);
                    return EventStatus::Captured;
                }
                _ => {}
            }
        }
        if let Some(key) = translate_key(&event.key, event.code) {
            self.raw.events.push(egui::Event::Key {
                key,
                physical_key: None,
                pressed,
                repeat: event.repeat,
                modifiers: self.modifiers,
            });
        }
        if pressed && !command {
            if let Key::Character(text) = &event.key {
                if !text.chars().any(char::is_control) {
                    self.raw.events.push(egui::Event::Text(text.clone()));
                }
            }
        }
        EventStatus::Captured
    }

    /// Queues a paste of `text` (the window reads the clipboard on the paste shortcut).
    pub fn paste(&mut self, text: String) {
        self.raw.events.push(egui::Event::Paste(text));
    }

    /// Whether `event` is the paste shortcut while egui has the keyboard.
    pub fn is_paste(&self, event: &Event) -> bool {
        match event {
            Event::Keyboard(key) => {
                self.wants_keyboard
                    && key.state == KeyState::Down
                    && translate_modifiers(key.modifiers).command
                    && key.code == Code::KeyV
            }
            _ => false,
        }
    }
}

/// The files of `data` the editor can use.
fn usable_files(data: &DropData) -> Vec<PathBuf> {
    match data {
        DropData::Files(paths) => paths
            .iter()
            .filter(|p| file_kind(p).is_some())
            .cloned()
            .collect(),
        _ => Vec::new(),
    }
}

/// The answer to a drag: copy if something usable is in it, refuse otherwise.
fn drop_status(usable: bool) -> EventStatus {
    if usable {
        EventStatus::AcceptDrop(DropEffect::Copy)
    } else {
        EventStatus::Ignored
    }
}

fn translate_button(button: MouseButton) -> Option<egui::PointerButton> {
    Some(match button {
        MouseButton::Left => egui::PointerButton::Primary,
        MouseButton::Right => egui::PointerButton::Secondary,
        MouseButton::Middle => egui::PointerButton::Middle,
        MouseButton::Back => egui::PointerButton::Extra1,
        MouseButton::Forward => egui::PointerButton::Extra2,
        _ => return None,
    })
}

fn translate_modifiers(m: keyboard_types::Modifiers) -> Modifiers {
    let ctrl = m.contains(keyboard_types::Modifiers::CONTROL);
    let meta = m.contains(keyboard_types::Modifiers::META);
    Modifiers {
        alt: m.contains(keyboard_types::Modifiers::ALT),
        ctrl,
        shift: m.contains(keyboard_types::Modifiers::SHIFT),
        mac_cmd: cfg!(target_os = "macos") && meta,
        command: if cfg!(target_os = "macos") {
            meta
        } else {
            ctrl
        },
    }
}

/// egui's key for the keys a text field and a knob use.
fn translate_key(key: &Key, code: Code) -> Option<egui::Key> {
    use egui::Key as K;
    Some(match key {
        Key::Named(named) => match named {
            NamedKey::ArrowDown => K::ArrowDown,
            NamedKey::ArrowLeft => K::ArrowLeft,
            NamedKey::ArrowRight => K::ArrowRight,
            NamedKey::ArrowUp => K::ArrowUp,
            NamedKey::Backspace => K::Backspace,
            NamedKey::Delete => K::Delete,
            NamedKey::End => K::End,
            NamedKey::Enter => K::Enter,
            NamedKey::Escape => K::Escape,
            NamedKey::Home => K::Home,
            NamedKey::PageDown => K::PageDown,
            NamedKey::PageUp => K::PageUp,
            NamedKey::Tab => K::Tab,
            _ => return None,
        },
        Key::Character(_) => match code {
            Code::KeyA => K::A,
            Code::KeyZ => K::Z,
            Code::KeyY => K::Y,
            Code::Space => K::Space,
            _ => return None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use baseview::dpi::PhysicalPosition;

    fn drag(kind: fn(PhysicalPosition<f64>, DropData) -> MouseEvent, files: &[&str]) -> Event {
        Event::Mouse(kind(
            PhysicalPosition::new(200.0, 100.0),
            DropData::Files(files.iter().map(PathBuf::from).collect()),
        ))
    }

    fn entered(position: PhysicalPosition<f64>, data: DropData) -> MouseEvent {
        MouseEvent::DragEntered {
            position,
            modifiers: keyboard_types::Modifiers::empty(),
            data,
        }
    }

    fn moved(position: PhysicalPosition<f64>, data: DropData) -> MouseEvent {
        MouseEvent::DragMoved {
            position,
            modifiers: keyboard_types::Modifiers::empty(),
            data,
        }
    }

    fn dropped(position: PhysicalPosition<f64>, data: DropData) -> MouseEvent {
        MouseEvent::DragDropped {
            position,
            modifiers: keyboard_types::Modifiers::empty(),
            data,
        }
    }

    fn state() -> InputState {
        // A 2x display: 200 physical pixels are 100 points.
        InputState::new(Vec2::new(560.0, 920.0), 2.0)
    }

    fn dropped_paths(raw: &egui::RawInput) -> Vec<PathBuf> {
        raw.dropped_files
            .iter()
            .map(|f| f.path().to_path_buf())
            .collect()
    }

    #[test]
    fn audio_files_are_accepted_hovered_and_dropped() {
        let mut input = state();
        let files = ["/clips/Flute.WAV", "/clips/notes.txt", "/clips/take 2.flac"];
        let copy = EventStatus::AcceptDrop(DropEffect::Copy);
        assert_eq!(input.handle(&drag(entered, &files)), copy);
        let hovered: Vec<_> = input
            .hovered_files()
            .iter()
            .map(|f| f.path.clone().unwrap())
            .collect();
        assert_eq!(
            hovered,
            [
                PathBuf::from("/clips/Flute.WAV"),
                PathBuf::from("/clips/take 2.flac")
            ]
        );
        assert_eq!(input.handle(&drag(moved, &files)), copy);
        // A frame while hovering: egui sees the hovered files and the pointer in points.
        let raw = input.take(0.0);
        assert_eq!(raw.hovered_files.len(), 2);
        assert!(raw
            .events
            .contains(&egui::Event::PointerMoved(Pos2::new(100.0, 50.0))));
        // ...and they are still hovering in the next frame.
        assert_eq!(input.hovered_files().len(), 2);

        assert_eq!(input.handle(&drag(dropped, &files)), copy);
        assert!(input.hovered_files().is_empty());
        let raw = input.take(0.1);
        assert_eq!(
            dropped_paths(&raw),
            [
                PathBuf::from("/clips/Flute.WAV"),
                PathBuf::from("/clips/take 2.flac")
            ]
        );
        assert!(raw.hovered_files.is_empty());
        // Dropped files are delivered once.
        assert!(input.take(0.2).dropped_files.is_empty());
    }

    #[test]
    fn non_audio_files_are_refused() {
        let mut input = state();
        let files = ["/docs/readme.pdf", "/clips/noext", "/clips/image.png"];
        assert_eq!(input.handle(&drag(entered, &files)), EventStatus::Ignored);
        assert!(input.hovered_files().is_empty());
        assert_eq!(input.handle(&drag(dropped, &files)), EventStatus::Ignored);
        assert!(input.take(0.0).dropped_files.is_empty());
        // A drag of something that is not a file at all.
        let text = Event::Mouse(entered(PhysicalPosition::new(1.0, 1.0), DropData::None));
        assert_eq!(input.handle(&text), EventStatus::Ignored);
    }

    #[test]
    fn model_files_are_accepted_too() {
        assert_eq!(
            file_kind(Path::new("/runs/default/model.safetensors")),
            Some(FileKind::Model)
        );
        assert_eq!(file_kind(Path::new("a.Ogg")), Some(FileKind::Audio));
        let mut input = state();
        assert_eq!(
            input.handle(&drag(entered, &["/m/model.safetensors"])),
            EventStatus::AcceptDrop(DropEffect::Copy)
        );
    }

    #[test]
    fn leaving_clears_the_hover_state() {
        let mut input = state();
        input.handle(&drag(entered, &["/clips/a.wav"]));
        assert_eq!(input.hovered_files().len(), 1);
        assert_eq!(
            input.handle(&Event::Mouse(MouseEvent::DragLeft)),
            EventStatus::Captured
        );
        assert!(input.hovered_files().is_empty());
        let raw = input.take(0.0);
        assert!(raw.hovered_files.is_empty());
        assert!(raw.dropped_files.is_empty());
        assert_eq!(raw.events.last(), Some(&egui::Event::PointerGone));
    }

    #[test]
    fn keys_go_to_the_host_unless_a_text_field_has_focus() {
        let mut input = state();
        let key = Event::Keyboard(keyboard_types::KeyboardEvent::key_down(
            Key::Character("a".into()),
            Code::KeyA,
        ));
        assert_eq!(input.handle(&key), EventStatus::Ignored);
        assert!(input.take(0.0).events.is_empty());
        input.set_wants_keyboard(true);
        assert_eq!(input.handle(&key), EventStatus::Captured);
        assert!(input
            .take(0.1)
            .events
            .contains(&egui::Event::Text("a".into())));
    }
}
