//! The editor, landscape (980×560 by default, `editor/layout.rs`): a header with the title and
//! the neural model (a drop zone for model files), the two reference cards on the left
//! (`editor/slot.rs`: drop zones with the clip's waveform, name, length and level, the preset
//! picker, the slot's own error), the timbre map (`editor/timbre_map.rs`), a knob per parameter
//! (`editor/knob.rs`), the live view of input and output spectra (`editor/live_view.rs`) with
//! the level meters, latency, CPU and dropouts (`editor/meters.rs`), and a status line. The
//! look (bundled font, palette, sizes) is in `editor/theme.rs`.
//!
//! The window is the project's own egui-on-baseview layer (`editor/window.rs`), so that file
//! drags reach egui (`editor/input.rs`); the Load… buttons open the system's file chooser on
//! a thread of their own (`editor/dialog.rs`). Files dropped or chosen go to the same
//! background loader ([`Task`]) either way. Everything here runs on the GUI thread.

use std::error::Error;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use baseview::dpi::{LogicalSize, PhysicalSize};
use baseview::{WindowSettings, WindowSize, WindowWaker};
use egui::{Color32, Rect, RichText};
use nice_plug::context::gui::GuiContext;
use nice_plug::editor::dpi::NativeSize;
use nice_plug::editor::{
    Editor, EditorHandle, HostMethods, ParentWindowHandle, ResizeHint, SpawnedEditor,
};
use nice_plug::prelude::*;
use timbreswap_engine::Slot;

mod dialog;
mod header;
mod input;
mod knob;
pub mod layout;
mod live_view;
mod meters;
mod slot;
#[cfg(test)]
mod test_support;
pub mod theme;
mod timbre_map;
pub mod window;

use crate::loader::Task;
use crate::params::{Mode, TimbreswapParams};
use crate::shared::Shared;
use crate::Timbreswap;
use dialog::{Dialogs, Target};
use input::FileKind;
use window::{DrawnText, EditorApp, EguiWindow, FrameProbe, Screenshot};

/// Editor size when first opened, in logical pixels.
pub const EDITOR_SIZE: (u32, u32) = layout::DEFAULT_SIZE;
/// Smallest editor size, in logical pixels.
const MIN_SIZE: (u32, u32) = layout::MIN_SIZE;
/// Largest editor size, in logical pixels.
const MAX_SIZE: (u32, u32) = layout::MAX_SIZE;
/// How often the editor redraws while open (live view, meters, status line).
const REFRESH: Duration = Duration::from_millis(33);

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
    ResizeHint::resizable().with_min_max_logical_size(
        Some(nice_plug::editor::dpi::LogicalSize::new(
            MIN_SIZE.0 as f32,
            MIN_SIZE.1 as f32,
        )),
        Some(nice_plug::editor::dpi::LogicalSize::new(
            MAX_SIZE.0 as f32,
            MAX_SIZE.1 as f32,
        )),
    )
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
        .with_max_size(LogicalSize::new(MAX_SIZE.0 as f64, MAX_SIZE.1 as f64))
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

/// Frames drawn before a screenshot is taken (egui lays text out on the first).
const SCREENSHOT_AFTER_FRAMES: u32 = 3;

/// A picture of the editor and the texts it drew, from [`screenshot`].
#[derive(Debug, Clone)]
pub struct EditorShot {
    /// The pixels.
    pub picture: Screenshot,
    /// Every text drawn, with its rectangle in logical pixels.
    pub texts: Vec<DrawnText>,
}

/// Opens the editor in a free-standing window of `size` logical pixels (at the display's own
/// scale: on X11 its `Xft.dpi`) and runs it until `probe` lets it close. Needs a display (X11:
/// `DISPLAY`, e.g. Xvfb) with OpenGL 3.2; used by the editor's tests under Xvfb.
pub fn run_with_probe(
    params: Arc<TimbreswapParams>,
    shared: Arc<Shared>,
    executor: AsyncExecutor<Timbreswap>,
    gui_context: GuiContext,
    size: (u32, u32),
    probe: Box<dyn FrameProbe>,
) -> Result<(), Box<dyn Error>> {
    let state = Arc::new(EditorState::default());
    state.width.store(size.0, Ordering::Relaxed);
    state.height.store(size.1, Ordering::Relaxed);
    let app = TimbreswapApp::new(params, shared, state.clone(), executor, gui_context);
    let window =
        baseview::Window::create(window_settings(&state, None, false, None), move |context| {
            Ok(EguiWindow::new(context, app, 1.0, Some(probe))?)
        })?;
    window.run_until_closed()?;
    Ok(())
}

/// Opens the editor like [`run_with_probe`], draws three frames and returns a picture of the
/// last one with its texts (the window then closes).
pub fn screenshot(
    params: Arc<TimbreswapParams>,
    shared: Arc<Shared>,
    executor: AsyncExecutor<Timbreswap>,
    gui_context: GuiContext,
    size: (u32, u32),
) -> Result<EditorShot, Box<dyn Error>> {
    struct Once(std::sync::mpsc::Sender<EditorShot>);
    impl FrameProbe for Once {
        fn after_frame(
            &mut self,
            frame: u32,
            texts: &[DrawnText],
            shot: &mut dyn FnMut() -> Screenshot,
        ) -> bool {
            if frame < SCREENSHOT_AFTER_FRAMES {
                return true;
            }
            let _ = self.0.send(EditorShot {
                picture: shot(),
                texts: texts.to_vec(),
            });
            false
        }
    }
    let (sender, receiver) = std::sync::mpsc::channel();
    run_with_probe(
        params,
        shared,
        executor,
        gui_context,
        size,
        Box::new(Once(sender)),
    )?;
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
    /// What each slot's preset search field holds, A then B.
    preset_search: [String; 2],
    /// Input and output meter ballistics.
    meters: [meters::Ballistics; 2],
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
            preset_search: [String::new(), String::new()],
            meters: [meters::Ballistics::default(); 2],
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
                    .execute_gui(Task::LoadModel { path: Some(path) });
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
                    .execute_gui(Task::LoadReference { slot, path });
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

    /// Spectra and meters; keeps the engine's spectrum hand-off open while drawn.
    fn live_view(&mut self, ui: &mut egui::Ui, spectra: Rect, meters_rect: Rect) {
        let input = &self.shared.input_meter;
        let output = &self.shared.output_meter;
        self.meters[0].update(input.take_peak(), input.rms());
        self.meters[1].update(output.take_peak(), output.rms());
        let stats = &self.shared.stats;
        meters::show(
            ui,
            meters_rect,
            self.meters[0],
            self.meters[1],
            meters::Readouts {
                latency_ms: self.shared.latency_ms(),
                cpu: stats.worker_load(0.005) as f32,
                dropouts: stats.dropouts(),
            },
        );
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
                live_view::show(ui, spectra, Some((&view.input_db, &view.output_db)), bin_hz);
            }
            None => live_view::show(ui, spectra, None, bin_hz),
        }
    }

    /// A knob per parameter, `per_row` to a row, in `rect`.
    fn knobs(&self, ui: &mut egui::Ui, setter: &ParamSetter, rect: Rect, per_row: usize) {
        let p = &self.params;
        let cell = (rect.width() / per_row as f32).min(knob::CELL_WIDTH);
        let row_h = rect.height() / layout::KNOBS.div_ceil(per_row) as f32;
        let x0 = rect.left() + (rect.width() - cell * per_row as f32) / 2.0;
        let place = |i: usize| {
            Rect::from_min_size(
                egui::pos2(
                    x0 + cell * (i % per_row) as f32,
                    rect.top() + row_h * (i / per_row) as f32,
                ),
                egui::vec2(cell, row_h),
            )
        };
        let mut at = 0;
        let mut next = |ui: &mut egui::Ui, f: &mut dyn FnMut(&mut egui::Ui)| {
            ui.scope_builder(egui::UiBuilder::new().max_rect(place(at)), |ui| f(ui));
            at += 1;
        };
        next(ui, &mut |ui| {
            knob::knob(ui, &p.mix, setter, "Mix", "How much of the swapped sound you hear: 0 % is your dry input (latency-aligned), 100 % only the new timbre");
        });
        next(ui, &mut |ui| {
            knob::knob(ui, &p.output, setter, "Output", "Level after the mix");
        });
        next(ui, &mut |ui| {
            knob::knob(
                ui,
                &p.morph,
                setter,
                "Morph A-B",
                "Blends the timbres of references A and B: 0 % is A, 100 % is B",
            );
        });
        next(ui, &mut |ui| {
            knob::knob(ui, &p.mode, setter, "Mode", "Classic: the reference's average spectral envelope on your sound. Neural: the learned model re-plays your notes and expression with the reference's timbre. Exemplar: your notes and dynamics re-played with the reference clip's own partials and noise (presets play Classic)");
        });
        next(ui, &mut |ui| {
            knob::knob(ui, &p.decay, setter, "Decay", "Exemplar: how much of a struck or plucked reference's note decay you hear. 100 % a held note fades as the reference's notes do, 0 % it keeps your level");
        });
        next(ui, &mut |ui| {
            knob::knob(ui, &p.variation, setter, "Variation", "Neural: how much of your playing's expression is kept. 0 % flat, 100 % as played, 200 % exaggerated");
        });
        next(ui, &mut |ui| {
            knob::knob(ui, &p.transpose, setter, "Transpose", "Exemplar: plays your notes this many semitones higher or lower (-12 for a whistled line an octave down). Neural: shifts the pitch the model hears; with Phase = Reconstruct the sounding pitch follows");
        });
        next(ui, &mut |ui| {
            knob::knob(ui, &p.map_amount, setter, "Map amount", "Neural: 0 % plays the A/B morph, 100 % the timbre of the point on the map (with no reference loaded, the map point alone)");
        });
        next(ui, &mut |ui| {
            knob::knob(ui, &p.phase, setter, "Phase", "Neural: Input keeps your sound's phase (tightest transients); Reconstruct rebuilds it from the new spectrum (follows Transpose)");
        });
    }

    /// What the status line can say now, most urgent first (colour, text).
    fn status_lines(&self) -> Vec<(Color32, String)> {
        let stats = &self.shared.stats;
        let mut lines = Vec::new();
        if stats.worker_failed() {
            lines.push((theme::ERROR, "Processing stopped after an internal error: the input passes through. Reload the plugin to start again.".to_string()));
        }
        let status = self.shared.status();
        let slot_errors = [Slot::A, Slot::B].map(|s| self.shared.slot_error(s));
        if let Some(error) = status.last_error {
            // A slot's own error is shown in its card.
            if !slot_errors.iter().flatten().any(|e| *e == error) {
                lines.push((theme::ERROR, error));
            }
        }
        if let Some(notice) = &self.notice {
            lines.push((theme::WARNING, notice.clone()));
        }
        let outgrown = self.shared.outgrown_block.load(Ordering::Relaxed);
        if outgrown > 0 {
            lines.push((theme::WARNING, format!("The host's blocks (or bursts of calls) grew to {outgrown} samples: a restart was asked for so the latency can follow (until then some frames play dry).")));
        }
        let panics = stats.worker_panics.load(Ordering::Relaxed);
        if panics > 0 && !stats.worker_failed() {
            lines.push((theme::WARNING, format!("Processing recovered from {panics} internal error(s); a frame played dry each time.")));
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
                lines.push((
                    theme::WARNING,
                    "No model is loaded: Classic is playing.".to_string(),
                ));
            } else if !measured && self.params.map_amount.value() <= 0.0 {
                lines.push((theme::WARNING, "Neural needs a reference or a preset measured with this model, or Map amount above 0 %: Classic is playing.".to_string()));
            }
        }
        if !status.message.is_empty() {
            lines.push((theme::TEXT_DIM, status.message));
        }
        lines
    }

    /// The status line in `rect`: the most urgent message (all of them on hover), and the
    /// worker's scheduling at the right.
    fn status(&self, ui: &mut egui::Ui, rect: Rect) {
        let lines = self.status_lines();
        let scheduling = format!(
            "{} · {} samples",
            self.shared.stats.worker_scheduling().describe(),
            self.shared.latency.load(Ordering::Relaxed)
        );
        ui.scope_builder(egui::UiBuilder::new().max_rect(rect), |ui| {
            ui.horizontal_centered(|ui| {
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    ui.label(RichText::new(scheduling).font(theme::regular(theme::SMALL)).color(theme::TEXT_DIM))
                        .on_hover_text("The worker asks the OS for real-time scheduling; without it (no rtprio permission) a busy machine can cause dropouts. The number is the latency the host is told, in samples at its rate.");
                    ui.with_layout(egui::Layout::left_to_right(egui::Align::Center), |ui| {
                        if let Some((colour, text)) = lines.first() {
                            let all = lines.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join("\n");
                            ui.add(egui::Label::new(RichText::new(text).color(*colour)).truncate())
                                .on_hover_text(all);
                        }
                    });
                });
            });
        });
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
        let layout = layout::Layout::new(ui.ctx().content_rect().size());
        self.header(ui, &setter, layout.header);
        self.slot_card(ui, Slot::A, layout.slots[0]);
        self.slot_card(ui, Slot::B, layout.slots[1]);
        let net = self.shared.network();
        let latents: [Option<Vec<f32>>; 2] = [Slot::A, Slot::B].map(|slot| {
            let stored = self.params.timbre(slot).read().clone();
            stored
                .zip(net.as_deref())
                .and_then(|(d, net)| crate::model::latent_for(&d, net).map(<[f32]>::to_vec))
        });
        timbre_map::show(
            ui,
            layout.map,
            net.as_deref(),
            [latents[0].as_deref(), latents[1].as_deref()],
            &self.params,
            &setter,
        );
        self.knobs(ui, &setter, layout.knobs, layout.knobs_per_row);
        self.live_view(ui, layout.spectra, layout.meters);
        self.status(ui, layout.status);
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
mod tests;

#[cfg(all(test, target_os = "linux"))]
mod xvfb_tests;
