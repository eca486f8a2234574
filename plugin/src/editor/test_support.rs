//! Test doubles for the editor's headless tests: a host that records parameter gestures, and
//! egui frames driven by synthetic input.

use std::sync::Mutex;

use egui::{Pos2, Rect, Vec2};
use nice_plug::context::gui::GuiContextInner;
use nice_plug::params::internals::ParamPtr;
use nice_plug::prelude::*;

/// One call a widget made on the host: `("begin" | "set" | "end", parameter, normalised)`.
pub type Call = (&'static str, ParamPtr, f32);

/// Records what the widgets ask the host to do with parameters.
#[derive(Default)]
pub struct Recorder {
    /// The calls so far, in order.
    pub calls: Mutex<Vec<Call>>,
}

impl Recorder {
    /// The calls so far, leaving the record empty.
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

// SAFETY (test double): only used on the test thread; the pointers are compared, never
// dereferenced.
unsafe impl Send for Recorder {}
unsafe impl Sync for Recorder {}

impl GuiContextInner for Recorder {
    fn plugin_api(&self) -> PluginApi {
        PluginApi::Clap
    }
    unsafe fn raw_begin_set_parameter(&self, param: ParamPtr) {
        self.calls.lock().unwrap().push(("begin", param, 0.0));
    }
    unsafe fn raw_set_parameter_normalized(&self, param: ParamPtr, normalized: f32) {
        self.calls.lock().unwrap().push(("set", param, normalized));
    }
    unsafe fn raw_end_set_parameter(&self, param: ParamPtr) {
        self.calls.lock().unwrap().push(("end", param, 0.0));
    }
    fn get_state(&self) -> nice_plug::plugin::PluginState {
        unreachable!("the editor's widgets do not read the state")
    }
    fn set_state(&self, _state: nice_plug::plugin::PluginState) {}
    fn request_restart(&self) {}
}

/// The test screen, in points: the editor's default size.
pub const SCREEN: Vec2 = Vec2::new(
    super::layout::DEFAULT_SIZE.0 as f32,
    super::layout::DEFAULT_SIZE.1 as f32,
);

/// Runs one egui frame per entry of `frames` (each the events of that frame, 50 ms apart)
/// with `ui` drawing into the root; returns the number of shapes of the last frame.
pub fn run_frames(
    ctx: &egui::Context,
    ui: &mut dyn FnMut(&mut egui::Ui),
    frames: Vec<Vec<egui::Event>>,
) -> usize {
    run_raw_frames(
        ctx,
        ui,
        frames
            .into_iter()
            .map(|events| egui::RawInput {
                events,
                ..Default::default()
            })
            .collect(),
    )
}

/// Like [`run_frames`] with whole raw inputs (hovered and dropped files); the screen and the
/// time are filled in.
pub fn run_raw_frames(
    ctx: &egui::Context,
    ui: &mut dyn FnMut(&mut egui::Ui),
    frames: Vec<egui::RawInput>,
) -> usize {
    let mut shapes = 0;
    let start = ctx.input(|i| i.time);
    for (i, mut input) in frames.into_iter().enumerate() {
        input.screen_rect = Some(Rect::from_min_size(Pos2::ZERO, SCREEN));
        input.time = Some(start + 0.05 * (i + 1) as f64);
        let out = ctx.run_ui(input, |root| ui(root));
        shapes = out.shapes.len();
        // No renderer here: the font atlas uploads are dropped on purpose.
        out.drop_without_applying_deltas();
    }
    shapes
}

/// A private X server (Xvfb) for the window tests; killed when dropped.
pub struct Xvfb {
    child: std::process::Child,
    /// The display name, e.g. `:93`.
    pub display: String,
}

impl Xvfb {
    /// Starts Xvfb on a free display number and waits (up to 10 s) until it accepts clients.
    pub fn start() -> Result<Self, String> {
        let free = (90..190).find(|n| {
            let (socket, lock) = (format!("/tmp/.X11-unix/X{n}"), format!("/tmp/.X{n}-lock"));
            // A lock whose server is gone (killed before it could clean up) is stale: the
            // number is free once its files are removed.
            let owner_alive = std::fs::read_to_string(&lock)
                .ok()
                .and_then(|pid| pid.trim().parse::<u32>().ok())
                .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
            if std::path::Path::new(&lock).exists() && !owner_alive {
                let _ = std::fs::remove_file(&lock);
                let _ = std::fs::remove_file(&socket);
            }
            !std::path::Path::new(&socket).exists() && !std::path::Path::new(&lock).exists()
        });
        let n = free.ok_or("no free X display number in 90..190")?;
        let display = format!(":{n}");
        let child = std::process::Command::new("Xvfb")
            .args([&display, "-screen", "0", "3840x2400x24", "-nolisten", "tcp"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("cannot start Xvfb ({e}); install the xvfb and libgl1-mesa-dri packages (`bash .ci/run` does)")
            })?;
        let mut server = Self { child, display };
        let socket = format!("/tmp/.X11-unix/X{n}");
        for _ in 0..200 {
            if std::path::Path::new(&socket).exists() {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("Xvfb exited at start: {status}"));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = server.child.kill();
        Err("Xvfb did not open its socket within 10 s".into())
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // SIGTERM first, so the server removes its lock file and socket; a kill only if it
        // has not gone within a second.
        let terminated = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if terminated {
            for _ in 0..100 {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
