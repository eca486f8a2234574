//! The editor: the two reference slots (a clip or a model preset each; drop a file on a slot,
//! or use its Load... button), the neural model, the timbre map (`editor/timbre_map.rs`), a
//! knob per parameter (`editor/knob.rs`), the live view of input and output spectra with the
//! output meter (`editor/live_view.rs`), and a status line with latency, dropouts, worker load,
//! the model's name and the last error.
//!
//! The window is the project's own egui-on-baseview layer (`editor/window.rs`), so that file
//! drags reach egui (`editor/input.rs`); the Load... buttons open the system's file chooser on
//! a thread of their own (`editor/dialog.rs`). Files dropped or chosen go to the same
//! background loader ([`Task`]) either way. Everything here runs on the GUI thread.

use std::error::Error;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use baseview::dpi::{LogicalSize, PhysicalSize};
use baseview::{WindowSettings, WindowSize, WindowWaker};
use egui::{Color32, Rect, RichText, Stroke};
use nice_plug::context::gui::GuiContext;
use nice_plug::editor::dpi::NativeSize;
use nice_plug::editor::{
    Editor, EditorHandle, HostMethods, ParentWindowHandle, ResizeHint, SpawnedEditor,
};
use nice_plug::prelude::*;
use timbreswap_engine::Slot;

mod dialog;
mod input;
mod knob;
mod live_view;
#[cfg(test)]
mod test_support;
mod timbre_map;
pub mod window;

use crate::loader::Task;
use crate::params::{Mode, TimbreswapParams};
use crate::shared::{slot_name, Shared};
use crate::Timbreswap;
use dialog::{Dialogs, Target};
use input::FileKind;
use window::{EditorApp, EguiWindow, Screenshot};

/// Editor size when first opened, in logical pixels.
pub const EDITOR_SIZE: (u32, u32) = (560, 960);
/// Smallest editor size, in logical pixels.
const MIN_SIZE: (f32, f32) = (460.0, 560.0);
/// How often the editor redraws while open (live view, meter, status line).
const REFRESH: Duration = Duration::from_millis(33);
/// Colour of a drop zone that would take the hovering file.
const DROP_HIGHLIGHT: Color32 = Color32::from_rgb(255, 200, 60);

/// The editor's size and whether it is open; shared by the plugin, the editor and its window.
#[derive(Debug)]
pub struct EditorState {
    /// Logical width, pixels.
    width: AtomicU32,
    /// Logical height, pixels.
    height: AtomicU32,
    /// The system scale factor last seen (`f32` bits).
    scale: AtomicU32,
    /// Whether the window is open.
    open: AtomicBool,
}

impl Default for EditorState {
    fn default() -> Self {
        Self {
            width: AtomicU32::new(EDITOR_SIZE.0),
            height: AtomicU32::new(EDITOR_SIZE.1),
            scale: AtomicU32::new(1.0f32.to_bits()),
            open: AtomicBool::new(false),
        }
    }
}

impl EditorState {
    /// The editor's logical size, pixels.
    pub fn logical_size(&self) -> LogicalSize<f64> {
        LogicalSize::new(
            self.width.load(Ordering::Relaxed) as f64,
            self.height.load(Ordering::Relaxed) as f64,
        )
    }

    /// The system scale factor last seen (1 until a window has opened).
    pub fn scale_factor(&self) -> f64 {
        f32::from_bits(self.scale.load(Ordering::Relaxed)) as f64
    }

    /// Whether the window is open.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    fn store(&self, size: WindowSize) {
        self.width
            .store(size.logical.width.round() as u32, Ordering::Relaxed);
        self.height
            .store(size.logical.height.round() as u32, Ordering::Relaxed);
        self.scale
            .store((size.scale_factor as f32).to_bits(), Ordering::Relaxed);
    }
}

/// The plugin's editor (nice-plug's [`Editor`]).
pub struct TimbreswapEditor {
    params: Arc<TimbreswapParams>,
    shared: Arc<Shared>,
    state: Arc<EditorState>,
    executor: AsyncExecutor<Timbreswap>,
}

/// Creates the editor.
pub fn create(
    params: Arc<TimbreswapParams>,
    shared: Arc<Shared>,
    state: Arc<EditorState>,
    executor: AsyncExecutor<Timbreswap>,
) -> Option<TimbreswapEditor> {
    Some(TimbreswapEditor {
        params,
        shared,
        state,
        executor,
    })
}

/// The resize rule the host is told.
fn resize_hint() -> ResizeHint {
    ResizeHint::resizable().with_min_logical_size(nice_plug::editor::dpi::LogicalSize::new(
        MIN_SIZE.0, MIN_SIZE.1,
    ))
}

/// Window settings for the editor (`parent` none: a free-standing window).
fn window_settings(
    state: &EditorState,
    parent: Option<&ParentWindowHandle>,
    wait_for_parent: bool,
    fallback_scale_factor: Option<f64>,
) -> WindowSettings {
    WindowSettings::new()
        .with_title("Timbreswap")
        .with_size(state.logical_size())
        .with_min_size(LogicalSize::new(MIN_SIZE.0 as f64, MIN_SIZE.1 as f64))
        .with_resizable(true)
        .with_parent(parent)
        .with_wait_for_parent(wait_for_parent)
        .with_fallback_scale_factor(fallback_scale_factor)
        .with_gl_config(Some(window::gl_config()))
}

/// nice-plug's host callbacks as baseview's.
struct HostCallbacksAdapter(Box<dyn nice_plug::editor::HostCallbacks>);

impl baseview::host::HostCallbacks for HostCallbacksAdapter {
    fn request_resize(&mut self, new_size: WindowSize) -> Result<(), baseview::HandlerError> {
        self.0
            .request_resize(new_size.physical.into(), new_size.scale_factor)
            .map_err(baseview::HandlerError::from_boxed)
    }

    fn destroyed(&mut self) {
        self.0.destroyed();
    }
}

/// nice-plug's main-thread caller as baseview's (X11 only).
struct MainThreadAdapter(Box<dyn nice_plug::editor::HostMainThreadCaller>);

impl baseview::host::HostMainThreadCaller for MainThreadAdapter {
    fn call_main_thread(&mut self) {
        self.0.call_main_thread();
    }
}

impl Editor for TimbreswapEditor {
    type Handle = TimbreswapEditorHandle;

    fn spawn(
        &self,
        parent: Option<ParentWindowHandle>,
        wait_for_parent: bool,
        fallback_scale_factor: Option<f64>,
        gui_context: GuiContext,
        host: Option<HostMethods>,
    ) -> Result<SpawnedEditor<Self::Handle>, Box<dyn Error>> {
        let app = TimbreswapApp::new(
            self.params.clone(),
            self.shared.clone(),
            self.state.clone(),
            self.executor.clone(),
            gui_context,
        );
        // baseview panics on a parent handle it cannot use; the host gets an error instead.
        let settings = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            window_settings(
                &self.state,
                parent.as_ref(),
                wait_for_parent,
                fallback_scale_factor,
            )
        }))
        .map_err(|_| "the host's parent window handle cannot hold the editor")?;
        let host = host.map(|h| {
            baseview::host::Host::new()
                .with_callbacks(HostCallbacksAdapter(h.callbacks))
                .with_main_thread(MainThreadAdapter(h.main_thread_caller))
        });
        let window = baseview::Window::create_with_host(
            settings,
            move |context| Ok(EguiWindow::new(context, app, 1.0, None)?),
            host,
        )?;
        self.state.open.store(true, Ordering::Release);
        Ok(SpawnedEditor {
            handle: TimbreswapEditorHandle {
                state: self.state.clone(),
                waker: window.waker(),
            },
            window,
        })
    }

    fn size(&self) -> NativeSize<u32> {
        let size = self.state.logical_size();
        NativeSize::from_size(
            nice_plug::editor::dpi::LogicalSize::new(size.width, size.height).into(),
            self.state.scale_factor(),
        )
    }

    fn resize_hint(&self) -> ResizeHint {
        resize_hint()
    }

    unsafe fn assume_standalone_in_process(&self) {
        // SAFETY: nice-plug calls this only under baseview's conditions (a standalone binary
        // with no other windowing library), which are this function's own.
        unsafe { baseview::assume_standalone_in_process() }
    }
}

/// nice-plug's size type as baseview's (physical pixels, logical on macOS).
fn baseview_size(size: NativeSize<u32>) -> baseview::dpi::Size {
    if cfg!(target_os = "macos") {
        LogicalSize::new(size.width as f64, size.height as f64).into()
    } else {
        PhysicalSize::new(size.width, size.height).into()
    }
}

/// A spawned editor; dropping it closes the window.
pub struct TimbreswapEditorHandle {
    state: Arc<EditorState>,
    /// Wakes the window for a redraw (from any thread).
    waker: WindowWaker,
}

impl EditorHandle for TimbreswapEditorHandle {
    type Window = baseview::Window;
    type Error = baseview::Error;

    fn run_until_closed(window: Self::Window) -> Result<(), Self::Error> {
        window.run_until_closed()
    }

    fn set_parent(
        &self,
        parent: ParentWindowHandle,
        window: &Self::Window,
    ) -> Result<(), Self::Error> {
        window.set_parent(&parent)
    }

    fn show(&self, window: &Self::Window) -> Result<(), Self::Error> {
        let shown = window.show();
        self.waker.request_redraw();
        shown
    }

    fn hide(&self, window: &Self::Window) -> Result<(), Self::Error> {
        window.hide()
    }

    fn set_size(
        &self,
        new_size: NativeSize<u32>,
        window: &Self::Window,
    ) -> Result<(), Self::Error> {
        window.resize(baseview_size(new_size))
    }

    fn host_main_thread_callback(&self, window: &Self::Window) {
        window.host_main_thread_callback();
    }

    fn adjust_size(
        &self,
        new_size: NativeSize<u32>,
        window: &Self::Window,
    ) -> Option<NativeSize<u32>> {
        let current = window.size();
        Some(resize_hint().adjust_size(
            new_size,
            NativeSize::from_logical_or_physical(current.logical, current.physical),
            current.scale_factor,
        ))
    }

    fn set_fallback_scale_factor(
        &self,
        scale_factor: f64,
        window: &Self::Window,
    ) -> Result<(), Self::Error> {
        window.suggest_fallback_scale_factor(scale_factor)
    }

    fn state_changed(&self) {
        self.waker.request_redraw();
    }

    fn param_value_changed(&self, _id: &str, _normalized_value: f32) {
        self.waker.request_redraw();
    }

    fn param_modulation_changed(&self, _id: &str, _modulation_offset: f32) {
        self.waker.request_redraw();
    }
}

impl Drop for TimbreswapEditorHandle {
    fn drop(&mut self) {
        self.state.open.store(false, Ordering::Release);
    }
}

/// Opens the editor in a free-standing window, draws three frames and returns a picture of
/// the last one (the window then closes). Needs a display (X11: `DISPLAY`, e.g. Xvfb) with
/// OpenGL 3.2; used by the screenshot test and `cargo xtask screenshot`.
pub fn screenshot(
    params: Arc<TimbreswapParams>,
    shared: Arc<Shared>,
    executor: AsyncExecutor<Timbreswap>,
    gui_context: GuiContext,
) -> Result<Screenshot, Box<dyn Error>> {
    let state = Arc::new(EditorState::default());
    let app = TimbreswapApp::new(params, shared, state.clone(), executor, gui_context);
    let (sender, receiver) = std::sync::mpsc::channel();
    let window = baseview::Window::create(
        window_settings(&state, None, false, Some(1.0)),
        move |context| Ok(EguiWindow::new(context, app, 1.0, Some(sender))?),
    )?;
    window.run_until_closed()?;
    Ok(receiver
        .recv_timeout(Duration::from_secs(1))
        .map_err(|_| "the editor window closed before it drew a frame")?)
}

/// The editor's state on the GUI thread (one per open window).
pub struct TimbreswapApp {
    params: Arc<TimbreswapParams>,
    shared: Arc<Shared>,
    state: Arc<EditorState>,
    executor: AsyncExecutor<Timbreswap>,
    gui: GuiContext,
    /// Path typed (or pasted) for each slot, A then B.
    paths: [String; 2],
    /// Path typed for a model file.
    model_path: String,
    /// Output meter, dBFS, with a falling peak hold.
    meter_db: f32,
    /// The file dialogs of the Load... buttons.
    dialogs: Dialogs,
    /// Screen areas of the drop zones in the last frame: slot A, slot B, the model.
    zones: [Option<Rect>; 3],
    /// A note about the last drop or dialog (shown above the status line).
    notice: Option<String>,
}

/// Index of the model's drop zone in [`TimbreswapApp::zones`].
const MODEL_ZONE: usize = 2;

impl TimbreswapApp {
    fn new(
        params: Arc<TimbreswapParams>,
        shared: Arc<Shared>,
        state: Arc<EditorState>,
        executor: AsyncExecutor<Timbreswap>,
        gui: GuiContext,
    ) -> Self {
        Self {
            params,
            shared,
            state,
            executor,
            gui,
            paths: [String::new(), String::new()],
            model_path: String::new(),
            meter_db: timbreswap_engine::spectrum_view::VIEW_FLOOR_DB,
            dialogs: Dialogs::default(),
            zones: [None; 3],
            notice: None,
        }
    }

    /// Sends a file to the loader: `zone` 0/1 are the slots, [`MODEL_ZONE`] the model.
    fn load(&mut self, zone: usize, path: PathBuf) {
        match (zone, input::file_kind(&path)) {
            (_, Some(FileKind::Model)) => {
                self.model_path = path.display().to_string();
                self.executor
                    .execute_background(Task::LoadModel { path: Some(path) });
                self.notice = None;
            }
            (MODEL_ZONE, _) => {
                self.notice = Some(format!(
                    "{} is not a model file: drop clips onto Reference A or B",
                    path.display()
                ));
            }
            (slot, _) => {
                let slot = if slot == 0 { Slot::A } else { Slot::B };
                self.paths[slot as usize] = path.display().to_string();
                self.executor
                    .execute_background(Task::LoadReference { slot, path });
                self.notice = None;
            }
        }
    }

    /// Files dropped this frame go to the zone under the pointer.
    fn take_drops(&mut self, ui: &egui::Ui) {
        let (dropped, pointer) =
            ui.input(|i| (i.raw.dropped_files.clone(), i.pointer.latest_pos()));
        if dropped.is_empty() {
            return;
        }
        let zone = pointer.and_then(|p| {
            self.zones
                .iter()
                .position(|z| z.is_some_and(|r| r.contains(p)))
        });
        let mut paths: Vec<PathBuf> = dropped.iter().map(|f| f.path().to_path_buf()).collect();
        // A model file is unambiguous wherever it lands.
        if let Some(i) = paths
            .iter()
            .position(|p| input::file_kind(p) == Some(FileKind::Model))
        {
            let path = paths.swap_remove(i);
            self.load(MODEL_ZONE, path);
            return;
        }
        match zone {
            Some(zone) => {
                let path = paths.swap_remove(0);
                self.load(zone, path);
                if !paths.is_empty() && zone < MODEL_ZONE {
                    self.notice = Some("One clip per slot: the first dropped file was used".into());
                }
            }
            None => {
                self.notice = Some("Drop the clip onto Reference A or Reference B".into());
            }
        }
    }

    /// A framed drop zone: highlighted while a file it takes hovers over it.
    fn drop_zone(
        &mut self,
        ui: &mut egui::Ui,
        zone: usize,
        add_contents: impl FnOnce(&mut Self, &mut egui::Ui),
    ) {
        let (hovering, pointer) = ui.input(|i| {
            let kinds: Vec<_> = i
                .raw
                .hovered_files
                .iter()
                .filter_map(|f| f.path.as_deref().and_then(input::file_kind))
                .collect();
            let takes = if zone == MODEL_ZONE {
                kinds.contains(&FileKind::Model)
            } else {
                kinds.contains(&FileKind::Audio)
            };
            (takes, i.pointer.latest_pos())
        });
        let over =
            hovering && pointer.is_some_and(|p| self.zones[zone].is_some_and(|r| r.contains(p)));
        let stroke = if over {
            Stroke::new(2.0, DROP_HIGHLIGHT)
        } else if hovering {
            Stroke::new(1.0, DROP_HIGHLIGHT.gamma_multiply(0.5))
        } else {
            Stroke::new(1.0, Color32::from_gray(60))
        };
        let fill = if over {
            Color32::from_rgba_unmultiplied(255, 200, 60, 24)
        } else {
            Color32::TRANSPARENT
        };
        let response = egui::Frame::new()
            .stroke(stroke)
            .fill(fill)
            .corner_radius(4.0)
            .inner_margin(6.0)
            .show(ui, |ui| {
                ui.set_width(ui.available_width());
                add_contents(self, ui);
            })
            .response;
        self.zones[zone] = Some(response.rect);
    }

    fn slot_row(&mut self, ui: &mut egui::Ui, slot: Slot) {
        let index = slot as usize;
        let loaded = self.params.timbre(slot).read().as_ref().map(|d| {
            if d.duration_s > 0.0 {
                format!("{} ({:.1} s)", d.name, d.duration_s)
            } else {
                d.name.clone()
            }
        });
        ui.horizontal(|ui| {
            ui.label(RichText::new(format!("Reference {}", slot_name(slot))).strong());
            ui.label(loaded.unwrap_or_else(|| "empty: drop a clip here".into()));
        });
        ui.horizontal(|ui| {
            let busy = self.dialogs.open().is_some();
            if ui
                .add_enabled(!busy, egui::Button::new(format!("Load {}...", slot_name(slot))))
                .on_hover_text("Choose a WAV, AIFF, FLAC, MP3 or OGG clip whose timbre this slot plays (or drag the file onto this box)")
                .clicked()
            {
                self.dialogs.pick(Target::Reference(index));
            }
            ui.add(
                egui::TextEdit::singleline(&mut self.paths[index])
                    .hint_text("or type a path")
                    .desired_width(220.0),
            );
            let path = self.paths[index].trim().to_string();
            if ui
                .add_enabled(!path.is_empty(), egui::Button::new("Load"))
                .on_hover_text("Analyse the typed file off the audio thread and use its timbre")
                .clicked()
            {
                self.load(index, PathBuf::from(path));
            }
            if ui
                .button("Clear")
                .on_hover_text("Empty this slot")
                .clicked()
            {
                self.executor
                    .execute_background(Task::ClearReference { slot });
            }
        });
        if let Some(net) = self.shared.network() {
            let mut chosen: Option<usize> = None;
            egui::ComboBox::from_id_salt(("preset", index))
                .selected_text("Preset: a training instrument...")
                .width(300.0)
                .show_ui(ui, |ui| {
                    for (i, instrument) in net.map().instruments.iter().enumerate() {
                        if ui
                            .selectable_label(false, &instrument.name)
                            .on_hover_text(format!("{} family", instrument.family))
                            .clicked()
                        {
                            chosen = Some(i);
                        }
                    }
                })
                .response
                .on_hover_text(
                    "Use the timbre the model learned for one of its training instruments",
                );
            if let Some(i) = chosen {
                self.executor
                    .execute_background(Task::LoadPreset { slot, index: i });
            }
        }
    }

    /// Spectra and meter; keeps the engine's spectrum hand-off open while drawn.
    fn live_view(&mut self, ui: &mut egui::Ui) {
        // The meter falls 1.5 dB per refresh unless a louder peak arrives.
        let peak = self.shared.take_output_peak();
        let peak_db = 20.0 * (peak + 1e-9).log10();
        self.meter_db = peak_db.max(self.meter_db - 1.5);
        let mut control = self
            .shared
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let bin_hz = timbreswap_engine::StftConfig::default().bin_hz(1) as f32;
        match control.as_mut() {
            Some(control) => {
                let view = control.spectra();
                view.set_open(true);
                view.update();
                live_view::show(
                    ui,
                    Some((&view.input_db, &view.output_db)),
                    bin_hz,
                    self.meter_db,
                );
            }
            None => live_view::show(ui, None, bin_hz, self.meter_db),
        }
    }

    fn model_row(&mut self, ui: &mut egui::Ui) {
        let name = self
            .shared
            .network()
            .map_or_else(|| "none loaded yet".to_string(), |n| n.name().to_string());
        ui.horizontal(|ui| {
            ui.label(RichText::new("Model").strong());
            ui.label(name);
        });
        ui.horizontal(|ui| {
            let busy = self.dialogs.open().is_some();
            if ui
                .add_enabled(!busy, egui::Button::new("Load model..."))
                .on_hover_text("Choose a .safetensors model from `timbreswap train` (or drop it here); the references are measured again with it")
                .clicked()
            {
                self.dialogs.pick(Target::Model);
            }
            ui.add(
                egui::TextEdit::singleline(&mut self.model_path)
                    .hint_text("or type a path")
                    .desired_width(170.0),
            );
            let path = self.model_path.trim().to_string();
            if ui
                .add_enabled(!path.is_empty(), egui::Button::new("Load"))
                .on_hover_text("Check and load the typed model file off the audio thread")
                .clicked()
            {
                self.executor.execute_background(Task::LoadModel {
                    path: Some(PathBuf::from(path)),
                });
            }
            if ui
                .button("Built-in")
                .on_hover_text("Go back to the model that ships with the plugin")
                .clicked()
            {
                self.executor
                    .execute_background(Task::LoadModel { path: None });
            }
        });
    }

    /// A knob per parameter, in two rows.
    fn knobs(&self, ui: &mut egui::Ui, setter: &ParamSetter) {
        let p = &self.params;
        ui.horizontal(|ui| {
            knob::knob(ui, &p.mix, setter, "Mix", "How much of the swapped sound you hear: 0 % is your dry input (latency-aligned), 100 % only the new timbre");
            knob::knob(ui, &p.output, setter, "Output", "Level after the mix");
            knob::knob(ui, &p.morph, setter, "Morph A-B", "Blends the timbres of references A and B: 0 % is A, 100 % is B");
            knob::knob(ui, &p.mode, setter, "Mode", "Classic: the reference's average spectral envelope on your sound. Neural: the learned model re-plays your notes and expression with the reference's timbre");
        });
        ui.horizontal(|ui| {
            knob::knob(ui, &p.variation, setter, "Variation", "Neural: how much of your playing's expression is kept. 0 % flat, 100 % as played, 200 % exaggerated");
            knob::knob(ui, &p.transpose, setter, "Transpose", "Neural: shifts the pitch the model hears, in semitones; with Phase = Reconstruct the sounding pitch follows");
            knob::knob(ui, &p.map_amount, setter, "Map amount", "Neural: 0 % plays the A/B morph, 100 % the timbre of the point on the map (with no reference loaded, the map point alone)");
            knob::knob(ui, &p.phase, setter, "Phase", "Neural: Input keeps your sound's phase (tightest transients); Reconstruct rebuilds it from the new spectrum (follows Transpose)");
        });
    }

    fn status(&self, ui: &mut egui::Ui) {
        let stats = &self.shared.stats;
        ui.label(format!(
            "Latency {:.1} ms ({} samples)   Dropouts {}   Worker load {:.1} % ({})",
            self.shared.latency_ms(),
            self.shared.latency.load(Ordering::Relaxed),
            stats.dropouts(),
            stats.worker_load(0.005) * 100.0,
            stats.worker_scheduling().describe(),
        ))
        .on_hover_text("The worker asks the OS for real-time scheduling; without it (no rtprio permission) a busy machine can cause dropouts");
        let outgrown = self.shared.outgrown_block.load(Ordering::Relaxed);
        if outgrown > 0 {
            ui.colored_label(
                egui::Color32::YELLOW,
                format!("The host's blocks (or bursts of calls) grew to {outgrown} samples: a restart was asked for so the latency can follow (until then some frames play dry)."),
            );
        }
        let panics = stats.worker_panics.load(Ordering::Relaxed);
        if stats.worker_failed() {
            ui.colored_label(
                egui::Color32::LIGHT_RED,
                "Processing stopped after an internal error: the input passes through. Reload the plugin to start again.",
            );
        } else if panics > 0 {
            ui.colored_label(
                egui::Color32::YELLOW,
                format!("Processing recovered from {panics} internal error(s); a frame played dry each time."),
            );
        }
        if self.params.mode.value() == Mode::Neural {
            let measured = [Slot::A, Slot::B].iter().any(|slot| {
                self.params
                    .timbre(*slot)
                    .read()
                    .as_ref()
                    .is_some_and(|d| d.latent.is_some())
            });
            if self.shared.network().is_none() {
                ui.colored_label(Color32::YELLOW, "No model is loaded: Classic is playing.");
            } else if !measured && self.params.map_amount.value() <= 0.0 {
                ui.colored_label(
                    Color32::YELLOW,
                    "Neural needs a reference or a preset measured with this model, or Map amount above 0 %: Classic is playing.",
                );
            }
        }
        if let Some(notice) = &self.notice {
            ui.colored_label(Color32::YELLOW, notice);
        }
        let status = self.shared.status();
        match status.last_error {
            Some(error) => {
                ui.colored_label(Color32::from_rgb(255, 110, 90), error);
            }
            None if !status.message.is_empty() => {
                ui.label(status.message);
            }
            None => {}
        }
    }
}

impl EditorApp for TimbreswapApp {
    fn ui(&mut self, ui: &mut egui::Ui) {
        if let Some(choice) = self.dialogs.poll() {
            match (choice.target, choice.path) {
                (Target::Reference(slot), Ok(Some(path))) => self.load(slot, path),
                (Target::Model, Ok(Some(path))) => self.load(MODEL_ZONE, path),
                (_, Ok(None)) => self.notice = None,
                (_, Err(reason)) => {
                    self.notice = Some(format!(
                        "The file chooser could not open ({reason}): drop the file on the editor or type its path"
                    ));
                }
            }
        }
        self.take_drops(ui);
        let gui = self.gui.clone();
        let setter = gui.param_setter();
        egui::ScrollArea::vertical().show(ui, |ui| {
            ui.heading("Timbreswap");
            ui.add_space(4.0);
            self.drop_zone(ui, 0, |app, ui| app.slot_row(ui, Slot::A));
            ui.add_space(4.0);
            self.drop_zone(ui, 1, |app, ui| app.slot_row(ui, Slot::B));
            ui.add_space(4.0);
            self.drop_zone(ui, MODEL_ZONE, |app, ui| app.model_row(ui));
            ui.separator();
            let net = self.shared.network();
            let latents: [Option<Vec<f32>>; 2] = [Slot::A, Slot::B].map(|slot| {
                let stored = self.params.timbre(slot).read().clone();
                stored
                    .zip(net.as_deref())
                    .and_then(|(d, net)| crate::model::latent_for(&d, net).map(<[f32]>::to_vec))
            });
            timbre_map::show(
                ui,
                net.as_deref(),
                [latents[0].as_deref(), latents[1].as_deref()],
                &self.params,
                &setter,
            );
            ui.separator();
            self.knobs(ui, &setter);
            ui.separator();
            self.live_view(ui);
            ui.separator();
            self.status(ui);
        });
        ui.ctx().request_repaint_after(REFRESH);
    }

    fn resized(&mut self, size: WindowSize) {
        self.state.store(size);
    }

    fn closed(&mut self) {
        if let Some(control) = self
            .shared
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            control.spectra().set_open(false);
        }
    }
}

impl Drop for TimbreswapApp {
    fn drop(&mut self) {
        // The window can go without a WillClose event (the host destroys it): stop the
        // spectrum hand-off either way.
        self.closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::Mutex;

    use baseview::dpi::PhysicalPosition;
    use baseview::{DropData, Event, EventStatus, MouseEvent};

    use super::input::InputState;
    use super::test_support::{run_raw_frames, Recorder, SCREEN};

    /// An editor app with default parameters and no model, whose background tasks are
    /// recorded instead of run.
    fn app() -> (TimbreswapApp, Arc<Mutex<Vec<Task>>>) {
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let sink = tasks.clone();
        let executor = AsyncExecutor::new(
            Arc::new(move |task| sink.lock().unwrap().push(task)),
            Arc::new(|_| {}),
        );
        let gui = GuiContext::new(Arc::new(Recorder::default()));
        let app = TimbreswapApp::new(
            Arc::new(TimbreswapParams::default()),
            Arc::new(Shared::default()),
            Arc::new(EditorState::default()),
            executor,
            gui,
        );
        (app, tasks)
    }

    fn drag(position: egui::Pos2, files: &[&str], drop: bool) -> Event {
        let position = PhysicalPosition::new(position.x as f64, position.y as f64);
        let modifiers = keyboard_types::Modifiers::empty();
        let data = DropData::Files(files.iter().map(PathBuf::from).collect());
        Event::Mouse(if drop {
            MouseEvent::DragDropped {
                position,
                modifiers,
                data,
            }
        } else {
            MouseEvent::DragMoved {
                position,
                modifiers,
                data,
            }
        })
    }

    /// baseview events through the window's input translation into whole editor frames: a
    /// clip dropped on a slot's zone loads into that slot, a model file loads as the model, a
    /// clip dropped outside the zones loads nothing and says where to drop.
    #[test]
    fn drops_reach_the_slot_under_the_pointer() {
        let (mut app, tasks) = app();
        let ctx = egui::Context::default();
        let mut input = InputState::new(SCREEN, 1.0);
        let frame = |app: &mut TimbreswapApp, input: &mut InputState| {
            run_raw_frames(&ctx, &mut |ui| app.ui(ui), vec![input.take(0.0)]);
        };
        frame(&mut app, &mut input);
        let [Some(a), Some(b), Some(model)] = app.zones else {
            panic!("every drop zone is laid out: {:?}", app.zones);
        };
        assert!(
            a.max.y <= b.min.y && b.max.y <= model.min.y,
            "{a:?} {b:?} {model:?}"
        );

        // Hover over B, then drop there.
        let clip = "/clips/Cello take.wav";
        assert_eq!(
            input.handle(&drag(b.center(), &[clip], false)),
            EventStatus::AcceptDrop(baseview::DropEffect::Copy)
        );
        frame(&mut app, &mut input);
        assert!(tasks.lock().unwrap().is_empty(), "hovering loads nothing");
        input.handle(&drag(b.center(), &[clip], true));
        frame(&mut app, &mut input);
        {
            let tasks = tasks.lock().unwrap();
            assert!(
                matches!(tasks.as_slice(), [Task::LoadReference { slot: Slot::B, path }] if path == Path::new(clip)),
                "{tasks:?}"
            );
        }
        assert_eq!(app.paths[1], clip);

        // A model file dropped on slot A still loads as the model.
        tasks.lock().unwrap().clear();
        input.handle(&drag(a.center(), &["/runs/x/model.safetensors"], true));
        frame(&mut app, &mut input);
        assert!(
            matches!(tasks.lock().unwrap().as_slice(), [Task::LoadModel { path: Some(p) }] if p == Path::new("/runs/x/model.safetensors")),
        );

        // A clip dropped below every zone: nothing loads, the editor says where to drop.
        tasks.lock().unwrap().clear();
        let below = egui::pos2(a.center().x, SCREEN.y - 5.0);
        assert!(app.zones.iter().all(|z| !z.unwrap().contains(below)));
        input.handle(&drag(below, &[clip], true));
        frame(&mut app, &mut input);
        assert!(tasks.lock().unwrap().is_empty());
        assert!(app
            .notice
            .as_deref()
            .unwrap()
            .contains("Reference A or Reference B"));

        // A non-audio file is refused by the translation and never reaches the editor.
        assert_eq!(
            input.handle(&drag(a.center(), &["/x/readme.pdf"], true)),
            EventStatus::Ignored
        );
        frame(&mut app, &mut input);
        assert!(tasks.lock().unwrap().is_empty());
    }

    /// A Load... dialog's answer goes to the loader for its slot; a cancelled one loads nothing.
    #[test]
    fn dialog_choices_go_to_the_loader() {
        let (mut app, tasks) = app();
        let ctx = egui::Context::default();
        app.dialogs.inject(dialog::Choice {
            target: Target::Reference(0),
            path: Ok(Some(PathBuf::from("/clips/violin.flac"))),
        });
        assert_eq!(app.dialogs.open(), Some(Target::Reference(0)));
        run_raw_frames(&ctx, &mut |ui| app.ui(ui), vec![egui::RawInput::default()]);
        assert!(matches!(
            tasks.lock().unwrap().as_slice(),
            [Task::LoadReference { slot: Slot::A, path }] if path == Path::new("/clips/violin.flac")
        ));
        assert_eq!(app.dialogs.open(), None);
        tasks.lock().unwrap().clear();
        app.dialogs.inject(dialog::Choice {
            target: Target::Model,
            path: Ok(None),
        });
        run_raw_frames(&ctx, &mut |ui| app.ui(ui), vec![egui::RawInput::default()]);
        assert!(tasks.lock().unwrap().is_empty());
        assert!(app.notice.is_none(), "cancelling is not an error");
        app.dialogs.inject(dialog::Choice {
            target: Target::Reference(1),
            path: Err("no D-Bus session".into()),
        });
        run_raw_frames(&ctx, &mut |ui| app.ui(ui), vec![egui::RawInput::default()]);
        assert!(tasks.lock().unwrap().is_empty());
        assert!(app.notice.as_deref().unwrap().contains("no D-Bus session"));
        assert_eq!(app.dialogs.open(), None, "the Load... buttons work again");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod screenshot_tests {
    use super::*;
    use std::collections::HashSet;
    use std::path::Path;

    use super::test_support::{Recorder, Xvfb};

    /// Where the README's screenshot lives (relative to the workspace).
    const README_SHOT: &str = "docs/editor.png";

    fn workspace() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
    }

    fn write_png(path: &Path, shot: &Screenshot) {
        let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        let mut encoder = png::Encoder::new(file, shot.width, shot.height);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        encoder
            .write_header()
            .unwrap()
            .write_image_data(&shot.rgba)
            .unwrap();
    }

    /// Under Xvfb: the editor opens in a real window with OpenGL, draws a loaded model, a
    /// preset and a clip, and its picture is neither blank nor uniform. The picture is saved to
    /// `$TMPDIR/timbreswap-editor-screenshot.png` (and to `docs/editor.png` with
    /// `TIMBRESWAP_UPDATE_SCREENSHOT=1`); the README shows the committed one.
    #[test]
    fn editor_renders_under_xvfb() {
        let xvfb = Xvfb::start().unwrap_or_else(|e| panic!("{e}"));
        // SAFETY-free in this edition; no other test of this binary reads DISPLAY.
        std::env::set_var("DISPLAY", &xvfb.display);

        let params = Arc::new(TimbreswapParams::default());
        let shared = Arc::new(Shared::default());
        crate::loader::run(Task::LoadModel { path: None }, &params, &shared);
        let net = shared.network().expect("the built-in model loads");
        let trumpet = net
            .map()
            .instruments
            .iter()
            .position(|i| i.name.contains("Trumpet"))
            .unwrap_or(0);
        crate::loader::run(
            Task::LoadPreset {
                slot: Slot::A,
                index: trumpet,
            },
            &params,
            &shared,
        );
        crate::loader::run(
            Task::LoadReference {
                slot: Slot::B,
                path: workspace().join("assets/examples/ref-cello.wav"),
            },
            &params,
            &shared,
        );
        assert!(
            shared.status().last_error.is_none(),
            "{:?}",
            shared.status()
        );
        let executor = AsyncExecutor::new(Arc::new(|_| {}), Arc::new(|_| {}));
        let gui = GuiContext::new(Arc::new(Recorder::default()));
        let shot = screenshot(params, shared, executor, gui).unwrap_or_else(|e| panic!("{e}"));
        drop(xvfb);

        assert_eq!((shot.width, shot.height), EDITOR_SIZE);
        assert_eq!(shot.rgba.len(), (shot.width * shot.height * 4) as usize);
        let pixels: Vec<[u8; 4]> = shot
            .rgba
            .chunks_exact(4)
            .map(|p| [p[0], p[1], p[2], p[3]])
            .collect();
        let colours: HashSet<[u8; 4]> = pixels.iter().copied().collect();
        // Text, the map's family colours, knobs: a drawn editor has hundreds of colours.
        assert!(colours.len() > 100, "{} colours", colours.len());
        // Not one flat background: the most common colour covers less than 95 % of the picture.
        let background = pixels[0];
        let same = pixels.iter().filter(|p| **p == background).count();
        assert!(
            (same as f64) < 0.95 * pixels.len() as f64,
            "{same} of {} pixels are the background",
            pixels.len()
        );
        // The knobs' amber and the map's anchors are there: some strongly coloured pixels.
        let vivid = pixels
            .iter()
            .filter(|p| {
                let max = p[0].max(p[1]).max(p[2]) as i32;
                let min = p[0].min(p[1]).min(p[2]) as i32;
                max - min > 80
            })
            .count();
        assert!(vivid > 500, "{vivid} coloured pixels");

        let out = std::env::temp_dir().join("timbreswap-editor-screenshot.png");
        write_png(&out, &shot);
        eprintln!("editor screenshot: {}", out.display());
        if std::env::var_os("TIMBRESWAP_UPDATE_SCREENSHOT").is_some() {
            write_png(&workspace().join(README_SHOT), &shot);
        }
        let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
        assert!(
            readme.contains(README_SHOT),
            "the README shows {README_SHOT}"
        );
        let committed = png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(workspace().join(README_SHOT))
                .expect("docs/editor.png is committed"),
        ))
        .read_info()
        .expect("docs/editor.png is a PNG");
        let info = committed.info();
        assert_eq!((info.width, info.height), EDITOR_SIZE);
    }
}
