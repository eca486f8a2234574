//! The editor's window: egui drawn with OpenGL (egui_glow) in a baseview window, on the GUI
//! thread that baseview runs.
//!
//! This replaces nice-plug-egui's window because its egui-baseview layer drops baseview's
//! drag-and-drop events; here every event goes through `InputState` (`input.rs`), which turns file drags
//! into egui's hovered / dropped files and answers the platform's drop negotiation. The rest is
//! what an egui window in a plugin needs: the scale factor and the editor's zoom, resizing,
//! clipboard text for the path fields, the mouse cursor egui asks for, and redraws on demand
//! (egui's repaint requests, the host's parameter changes through `baseview::WindowWaker`).

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baseview::dpi::LogicalSize;
use baseview::gl::GlConfig;
use baseview::{
    Event, EventStatus, HandlerError, MouseCursor, WindowContext, WindowHandler, WindowSize,
};
use egui_glow::glow::{self, HasContext};
use thiserror::Error;

use super::input::InputState;

/// What the window draws; implemented by the editor.
pub trait EditorApp: Send + 'static {
    /// Draws one frame into the window's root `ui` (GUI thread).
    fn ui(&mut self, ui: &mut egui::Ui);
    /// The window has a new size (GUI thread; also called once when it opens).
    fn resized(&mut self, size: WindowSize) {
        let _ = size;
    }
    /// The window is closing (GUI thread).
    fn closed(&mut self) {}
}

/// Why the window could not start drawing.
#[derive(Debug, Error)]
pub enum WindowError {
    /// baseview created the window without an OpenGL context.
    #[error("the editor window has no OpenGL context")]
    NoGlContext,
    /// The GL context could not be made current.
    #[error("the editor's OpenGL context could not be made current: {0}")]
    Context(#[from] baseview::Error),
    /// egui_glow could not compile its shaders (OpenGL older than 2.1 / ES 2.0?).
    #[error("the editor could not set up OpenGL drawing: {0}")]
    Painter(String),
}

/// An RGBA8 picture of the window, rows from the top.
#[derive(Debug, Clone)]
pub struct Screenshot {
    /// Width in physical pixels.
    pub width: u32,
    /// Height in physical pixels.
    pub height: u32,
    /// `width * height * 4` bytes, row-major from the top-left.
    pub rgba: Vec<u8>,
}

/// The OpenGL config the window asks for: 3.2 core, like the egui_glow shaders expect.
pub fn gl_config() -> GlConfig {
    GlConfig::default()
}

/// Background behind egui's panels.
const CLEAR: [f32; 4] = [0.08, 0.08, 0.09, 1.0];
/// A piece of text the frame drew: its screen rectangle (logical pixels, clipped) and string.
#[derive(Debug, Clone, PartialEq)]
pub struct DrawnText {
    /// Where it shows, in logical pixels from the window's top-left.
    pub rect: egui::Rect,
    /// What it says.
    pub text: String,
    /// Whether its clip rectangle cut part of it off.
    pub clipped: bool,
}

/// A test's view of each painted frame (screenshots, layout checks, drag-and-drop tests).
pub trait FrameProbe: Send + 'static {
    /// Called after frame `frame` (from 1) is painted, with every non-empty text it drew;
    /// `shot` reads the frame's pixels back. Returns whether the window stays open.
    fn after_frame(
        &mut self,
        frame: u32,
        texts: &[DrawnText],
        shot: &mut dyn FnMut() -> Screenshot,
    ) -> bool;
}

/// The texts of a frame's shapes, clipped to their clip rectangles.
pub(crate) fn drawn_texts(shapes: &[egui::epaint::ClippedShape]) -> Vec<DrawnText> {
    fn walk(shape: &egui::Shape, clip: egui::Rect, out: &mut Vec<DrawnText>) {
        match shape {
            egui::Shape::Vec(shapes) => shapes.iter().for_each(|s| walk(s, clip, out)),
            egui::Shape::Text(t) => {
                let text = t.galley.text().trim();
                let full = t.visual_bounding_rect();
                let rect = full.intersect(clip);
                if !text.is_empty() && rect.is_positive() {
                    out.push(DrawnText {
                        rect,
                        text: text.to_string(),
                        clipped: !clip.expand(0.5).contains_rect(full),
                    });
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for s in shapes {
        walk(&s.shape, s.clip_rect, &mut out);
    }
    out
}

struct Inner<A: EditorApp> {
    app: A,
    ctx: egui::Context,
    gl: Arc<glow::Context>,
    painter: egui_glow::Painter,
    input: InputState,
    /// Current window size (physical pixels and scale factor).
    size: WindowSize,
    /// The editor's zoom on top of the system scale factor.
    zoom: f32,
    clipboard: Option<copypasta::ClipboardContext>,
    cursor: MouseCursor,
    /// A test's probe of every frame.
    probe: Option<Box<dyn FrameProbe>>,
    frames: u32,
}

/// The baseview handler of the editor window.
pub struct EguiWindow<A: EditorApp> {
    window: WindowContext,
    start: Instant,
    inner: RefCell<Inner<A>>,
}

impl<A: EditorApp> EguiWindow<A> {
    /// Sets up egui and its OpenGL painter in `window` (called by baseview on the GUI thread).
    /// With `probe`, a test sees every frame (and decides when the window closes).
    pub fn new(
        window: WindowContext,
        mut app: A,
        zoom: f32,
        probe: Option<Box<dyn FrameProbe>>,
    ) -> Result<Self, WindowError> {
        let context = window.gl_context().ok_or(WindowError::NoGlContext)?;
        // SAFETY: the context belongs to this window and is only used on this (its) thread.
        unsafe { context.make_current()? };
        // SAFETY: the loader returns entry points of the context made current just above.
        let gl = Arc::new(unsafe {
            glow::Context::from_loader_function_cstr(|name| context.get_proc_address(name))
        });
        let painter = egui_glow::Painter::new(gl.clone(), "", None, true)
            .map_err(|e| WindowError::Painter(e.to_string()));
        // SAFETY: as above; released whether or not the painter was created.
        unsafe { context.make_not_current()? };
        let painter = painter?;
        let size = window.size();
        app.resized(size);
        let ctx = egui::Context::default();
        super::theme::apply(&ctx);
        ctx.set_zoom_factor(zoom);
        let waker = window.waker();
        ctx.set_request_repaint_callback(move |info| waker.request_redraw_after(info.delay));
        let input = InputState::new(points(size, zoom), pixels_per_point(size, zoom));
        Ok(Self {
            window,
            start: Instant::now(),
            inner: RefCell::new(Inner {
                app,
                ctx,
                gl,
                painter,
                input,
                size,
                zoom,
                clipboard: copypasta::ClipboardContext::new().ok(),
                cursor: MouseCursor::Default,
                probe,
                frames: 0,
            }),
        })
    }
}

/// The window's size in egui points.
fn points(size: WindowSize, zoom: f32) -> egui::Vec2 {
    let ppp = pixels_per_point(size, zoom);
    egui::vec2(
        size.physical.width as f32 / ppp,
        size.physical.height as f32 / ppp,
    )
}

/// Physical pixels per egui point.
fn pixels_per_point(size: WindowSize, zoom: f32) -> f32 {
    (size.scale_factor as f32 * zoom).max(0.25)
}

/// baseview's cursor for egui's.
fn cursor(icon: egui::CursorIcon) -> MouseCursor {
    use egui::CursorIcon as C;
    match icon {
        C::PointingHand => MouseCursor::Hand,
        C::Grab => MouseCursor::Hand,
        C::Grabbing => MouseCursor::HandGrabbing,
        C::Text => MouseCursor::Text,
        C::Crosshair => MouseCursor::Crosshair,
        C::NotAllowed | C::NoDrop => MouseCursor::NotAllowed,
        C::Copy => MouseCursor::Copy,
        C::Move | C::AllScroll => MouseCursor::Move,
        C::ResizeVertical | C::ResizeRow => MouseCursor::NsResize,
        C::ResizeHorizontal | C::ResizeColumn => MouseCursor::EwResize,
        C::ResizeNwSe => MouseCursor::NwseResize,
        C::ResizeNeSw => MouseCursor::NeswResize,
        C::Wait => MouseCursor::Working,
        C::Progress => MouseCursor::PtrWorking,
        C::None => MouseCursor::Hidden,
        _ => MouseCursor::Default,
    }
}

impl<A: EditorApp> Inner<A> {
    /// One egui frame: run the UI, act on its output, paint, and (for a screenshot) read the
    /// pixels back.
    fn frame(&mut self, window: &WindowContext, time: f64) -> Result<(), HandlerError> {
        let mut raw = self.input.take(time);
        // The system scale: egui draws `zoom × native` pixels per point.
        raw.viewports
            .entry(egui::ViewportId::ROOT)
            .or_default()
            .native_pixels_per_point = Some(self.size.scale_factor as f32);
        let app = &mut self.app;
        let mut output = self.ctx.run_ui(raw, |ui| {
            egui::CentralPanel::default()
                .frame(egui::Frame::new().fill(super::theme::BACKGROUND))
                .show(ui, |ui| app.ui(ui));
        });
        let mut textures = std::mem::take(&mut output.textures_delta);
        let painted = self.paint(window, output, &textures);
        // Applied (or, if GL failed, dropped on purpose: the next frame re-sends what it needs).
        textures.clear();
        painted
    }

    /// Acts on a frame's output and paints it; `textures` are the frame's texture changes.
    fn paint(
        &mut self,
        window: &WindowContext,
        output: egui::FullOutput,
        textures: &egui::TexturesDelta,
    ) -> Result<(), HandlerError> {
        self.input
            .set_wants_keyboard(self.ctx.egui_wants_keyboard_input());
        for command in &output.platform_output.commands {
            if let egui::OutputCommand::CopyText(text) = command {
                if let Some(clipboard) = self.clipboard.as_mut() {
                    let _ = copypasta::ClipboardProvider::set_contents(clipboard, text.clone());
                }
            }
        }
        let wanted = cursor(output.platform_output.cursor_icon);
        if wanted != self.cursor && window.set_mouse_cursor(wanted).is_ok() {
            self.cursor = wanted;
        }
        let ppp = output.pixels_per_point;
        let texts = if self.probe.is_some() {
            drawn_texts(&output.shapes)
        } else {
            Vec::new()
        };
        let primitives = self.ctx.tessellate(output.shapes, ppp);
        let context = window.gl_context().ok_or(WindowError::NoGlContext)?;
        // SAFETY: this window's own context, used on its thread only.
        unsafe { context.make_current()? };
        let [width, height] = [self.size.physical.width, self.size.physical.height];
        // SAFETY: plain state calls on the current context.
        unsafe {
            self.gl.viewport(0, 0, width as i32, height as i32);
            self.gl.clear_color(CLEAR[0], CLEAR[1], CLEAR[2], CLEAR[3]);
            self.gl.clear(glow::COLOR_BUFFER_BIT);
        }
        for (id, deltas) in &textures.set {
            for delta in deltas {
                self.painter.set_texture(*id, delta);
            }
        }
        self.painter
            .paint_primitives([width, height], ppp, &primitives);
        for id in &textures.free {
            self.painter.free_texture(*id);
        }
        self.frames += 1;
        if let Some(mut probe) = self.probe.take() {
            let frame = self.frames;
            let open = probe.after_frame(frame, &texts, &mut || self.read_pixels(width, height));
            if open {
                self.probe = Some(probe);
            } else {
                window.request_close();
            }
        }
        context.swap_buffers()?;
        // SAFETY: as above.
        unsafe { context.make_not_current()? };
        let repaint = output
            .viewport_output
            .get(&egui::ViewportId::ROOT)
            .map_or(Duration::MAX, |v| v.repaint_delay);
        if repaint.is_zero() || self.probe.is_some() {
            window.request_redraw();
        } else if repaint < Duration::from_secs(3600) {
            window.request_redraw_after(repaint);
        }
        Ok(())
    }

    /// The back buffer as RGBA rows from the top (GL reads from the bottom).
    fn read_pixels(&self, width: u32, height: u32) -> Screenshot {
        let row = width as usize * 4;
        let mut bottom_up = vec![0u8; row * height as usize];
        // SAFETY: the buffer holds exactly width * height RGBA8 pixels; the context is current.
        unsafe {
            self.gl.read_pixels(
                0,
                0,
                width as i32,
                height as i32,
                glow::RGBA,
                glow::UNSIGNED_BYTE,
                glow::PixelPackData::Slice(Some(&mut bottom_up)),
            );
        }
        let rgba = bottom_up
            .chunks_exact(row)
            .rev()
            .flatten()
            .copied()
            .collect();
        Screenshot {
            width,
            height,
            rgba,
        }
    }
}

impl<A: EditorApp> WindowHandler for EguiWindow<A> {
    fn draw(&self) -> Result<(), HandlerError> {
        let time = self.start.elapsed().as_secs_f64();
        // A platform that re-enters the handler mid-frame gets the frame again later rather
        // than a panic in the host.
        match self.inner.try_borrow_mut() {
            Ok(mut inner) => inner.frame(&self.window, time),
            Err(_) => {
                self.window.request_redraw();
                Ok(())
            }
        }
    }

    fn resized(&self, new_size: WindowSize) -> Result<(), HandlerError> {
        let Ok(mut inner) = self.inner.try_borrow_mut() else {
            return Err(HandlerError::from_boxed("resized while drawing".into()));
        };
        inner.size = new_size;
        inner.app.resized(new_size);
        let zoom = inner.zoom;
        inner
            .input
            .set_size(points(new_size, zoom), pixels_per_point(new_size, zoom));
        self.window.request_redraw();
        Ok(())
    }

    fn on_event(&self, event: Event) -> EventStatus {
        // An event delivered while a frame is being drawn (re-entrant platform call) is
        // dropped rather than panicking in the host.
        let Ok(mut inner) = self.inner.try_borrow_mut() else {
            return EventStatus::Ignored;
        };
        if inner.input.is_paste(&event) {
            let text = inner
                .clipboard
                .as_mut()
                .and_then(|c| copypasta::ClipboardProvider::get_contents(c).ok());
            if let Some(text) = text {
                inner.input.paste(text);
            }
            self.window.request_redraw();
            return EventStatus::Captured;
        }
        let status = inner.input.handle(&event);
        if matches!(event, Event::Window(baseview::WindowEvent::WillClose)) {
            inner.app.closed();
        }
        self.window.request_redraw();
        status
    }
}

impl<A: EditorApp> Drop for EguiWindow<A> {
    fn drop(&mut self) {
        let inner = self.inner.get_mut();
        if let Some(context) = self.window.gl_context() {
            // SAFETY: the window's own context, on its thread; the painter's GL objects are
            // deleted while it is current.
            if unsafe { context.make_current() }.is_ok() {
                inner.painter.destroy();
                // SAFETY: as above.
                let _ = unsafe { context.make_not_current() };
            }
        }
    }
}

/// The logical size a window of `size` asks for at `zoom`.
pub fn zoomed(size: (u32, u32), zoom: f32) -> LogicalSize<f64> {
    LogicalSize::new(size.0 as f64 * zoom as f64, size.1 as f64 * zoom as f64)
}
