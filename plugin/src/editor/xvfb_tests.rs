//! The editor in a real window under Xvfb (OpenGL through Mesa): pictures of its main states,
//! checked for size and for overlapping text and written to `docs/` on request, and a real
//! XDND drag-and-drop from an X client acting as the file manager.
//!
//! Every test here holds [`DISPLAY_LOCK`] while it sets `DISPLAY`, so they can run in one
//! process.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nice_plug::params::Param;

use super::layout::Layout;
use super::test_support::{Recorder, Xvfb};
use super::*;

/// Serialises the tests that point `DISPLAY` at their own Xvfb.
static DISPLAY_LOCK: Mutex<()> = Mutex::new(());

/// The README's main picture and the two other states, relative to the workspace.
const SHOTS: [(&str, &str); 3] = [
    ("empty", "docs/editor-empty.png"),
    ("loaded", "docs/editor.png"),
    ("neural", "docs/editor-neural.png"),
];

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

/// Sets a parameter as the host would (normalised value).
fn set(param: &impl Param, normalized: f32) {
    // SAFETY: the parameter belongs to `params`, which outlives this call; tests only.
    unsafe {
        param.as_ptr()._internal_set_normalized_value(normalized);
    }
}

/// The plugin's state for one of the pictured states: "empty" (the built-in model, no
/// reference), "loaded" (a trumpet clip in A, a cello clip in B) or "neural" (the same, Mode
/// Neural, the map point halfway between Trumpet and Lead 1 (square), Map amount 60 %).
fn state(name: &str) -> (Arc<TimbreswapParams>, Arc<Shared>) {
    let params = Arc::new(TimbreswapParams::default());
    let shared = Arc::new(Shared::default());
    crate::loader::run(Task::LoadModel { path: None }, &params, &shared);
    if name != "empty" {
        for (slot, clip) in [(Slot::A, "ref-trumpet.wav"), (Slot::B, "ref-cello.wav")] {
            crate::loader::run(
                Task::LoadReference {
                    slot,
                    path: workspace().join("assets/examples").join(clip),
                },
                &params,
                &shared,
            );
        }
    }
    if name == "neural" {
        let net = shared.network().unwrap();
        let names: Vec<&str> = net
            .map()
            .instruments
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        let at = |n: &str| names.iter().position(|i| i.contains(n)).unwrap();
        let (a, b) = (
            net.blender().anchors()[at("Trumpet")],
            net.blender().anchors()[at("Lead 1")],
        );
        // Mode has three choices: 0.5 is Neural.
        set(&params.mode, 0.5);
        set(&params.map_amount, 0.6);
        // Timbre X / Y run -1..1: normalised is (v + 1) / 2.
        set(&params.timbre_x, ((a[0] + b[0]) / 2.0 + 1.0) / 2.0);
        set(&params.timbre_y, ((a[1] + b[1]) / 2.0 + 1.0) / 2.0);
    }
    assert!(
        shared.status().last_error.is_none(),
        "{:?}",
        shared.status()
    );
    (params, shared)
}

fn executor() -> AsyncExecutor<Timbreswap> {
    AsyncExecutor::new(Arc::new(|_| {}), Arc::new(|_| {}))
}

/// Pairs of drawn texts whose rectangles overlap by more than a pixel each way.
fn overlaps(texts: &[DrawnText]) -> Vec<String> {
    let mut found = Vec::new();
    for (i, a) in texts.iter().enumerate() {
        for b in &texts[i + 1..] {
            let o = a.rect.intersect(b.rect);
            if o.width() > 1.0 && o.height() > 1.0 {
                found.push(format!(
                    "{:?} {:?} / {:?} {:?}",
                    a.text, a.rect, b.text, b.rect
                ));
            }
        }
    }
    found
}

fn shot(name: &str, size: (u32, u32)) -> EditorShot {
    let (params, shared) = state(name);
    let gui = GuiContext::new(Arc::new(Recorder::default()));
    screenshot(params, shared, executor(), gui, size).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `f` with `DISPLAY` pointing at a private Xvfb.
fn with_xvfb<T>(f: impl FnOnce(&str) -> T) -> T {
    let _lock = DISPLAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let xvfb = Xvfb::start().unwrap_or_else(|e| panic!("{e}"));
    std::env::set_var("DISPLAY", &xvfb.display);
    let out = f(&xvfb.display);
    drop(xvfb);
    out
}

/// Under Xvfb, in a real window with OpenGL: each main state draws a landscape editor of the
/// default size with hundreds of colours, the texts it draws stay inside the window, are never
/// cut off and never overlap, at the default, the smallest and the largest size and at 200 %
/// scale. The pictures are saved to
/// `$TMPDIR` (and to `docs/` with `TIMBRESWAP_UPDATE_SCREENSHOT=1`); the README shows the
/// committed ones.
#[test]
fn editor_states_render_landscape_without_overlapping_text() {
    with_xvfb(|_| {
        let update = std::env::var_os("TIMBRESWAP_UPDATE_SCREENSHOT").is_some();
        for (name, doc) in SHOTS {
            // Size, texts inside the window, none cut off or overlapping, a filled picture.
            let s = check_size(name, EDITOR_SIZE, 1.0);
            let pic = &s.picture;
            assert!(pic.width > pic.height, "landscape");
            let pixels: Vec<[u8; 4]> = pic
                .rgba
                .chunks_exact(4)
                .map(|p| [p[0], p[1], p[2], p[3]])
                .collect();
            let colours: HashSet<[u8; 4]> = pixels.iter().copied().collect();
            assert!(colours.len() > 100, "{name}: {} colours", colours.len());
            let vivid = pixels
                .iter()
                .filter(|p| {
                    let max = p[0].max(p[1]).max(p[2]) as i32;
                    let min = p[0].min(p[1]).min(p[2]) as i32;
                    max - min > 80
                })
                .count();
            assert!(vivid > 500, "{name}: {vivid} coloured pixels");
            assert!(s.texts.len() > 30, "{name}: {} texts", s.texts.len());
            let out = std::env::temp_dir().join(format!("timbreswap-editor-{name}.png"));
            write_png(&out, pic);
            eprintln!("editor screenshot: {}", out.display());
            if update {
                write_png(&workspace().join(doc), pic);
            }
            let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
            assert!(readme.contains(doc), "the README shows {doc}");
            let committed = png::Decoder::new(std::io::BufReader::new(
                std::fs::File::open(workspace().join(doc))
                    .unwrap_or_else(|e| panic!("{doc} is committed: {e}")),
            ))
            .read_info()
            .expect("a PNG");
            assert_eq!(
                (committed.info().width, committed.info().height),
                EDITOR_SIZE
            );
        }
        // The smallest and the largest size: still no overlaps, everything inside.
        for size in [layout::MIN_SIZE, layout::MAX_SIZE] {
            for name in ["loaded", "neural"] {
                check_size(name, size, 1.0);
            }
        }
    });
    // 200 %: the system scale of an X display is its Xft.dpi (192 = 2x), as a desktop sets it.
    with_xvfb(|display| {
        let _resources = set_xft_dpi(display, 192);
        for name in ["loaded", "neural"] {
            let s = check_size(name, EDITOR_SIZE, 2.0);
            if name == "loaded" {
                write_png(
                    &std::env::temp_dir().join("timbreswap-editor-200.png"),
                    &s.picture,
                );
            }
        }
    });
}

/// Puts `Xft.dpi` into the display's resource database (the root window's RESOURCE_MANAGER).
/// The connection returned must stay open while it counts: an X server resets (forgetting the
/// property) when its last client leaves.
fn set_xft_dpi(display: &str, dpi: u32) -> x11rb::rust_connection::RustConnection {
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{AtomEnum, PropMode};
    use x11rb::wrapper::ConnectionExt as _;
    let (conn, screen) = x11rb::rust_connection::RustConnection::connect(Some(display)).unwrap();
    let root = conn.setup().roots[screen].root;
    conn.change_property8(
        PropMode::REPLACE,
        root,
        AtomEnum::RESOURCE_MANAGER,
        AtomEnum::STRING,
        format!("Xft.dpi:\t{dpi}\n").as_bytes(),
    )
    .unwrap();
    conn.sync().unwrap();
    conn
}

/// The state `name` at `size` logical pixels on a display of system scale `scale`: the
/// picture has `size × scale` pixels and is filled, the texts stay inside the window, none is
/// cut off by its clip rectangle and no two overlap.
fn check_size(name: &str, size: (u32, u32), scale: f64) -> EditorShot {
    let s = shot(name, size);
    assert_eq!(
        (s.picture.width, s.picture.height),
        (
            (size.0 as f64 * scale) as u32,
            (size.1 as f64 * scale) as u32
        ),
        "{name} at {size:?} x{scale}"
    );
    let window =
        egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(size.0 as f32, size.1 as f32));
    for t in &s.texts {
        assert!(window.contains_rect(t.rect), "{name} {size:?}: {t:?}");
    }
    let bad = overlaps(&s.texts);
    assert!(bad.is_empty(), "{name} at {size:?} x{scale}: {bad:#?}");
    let cut: Vec<&DrawnText> = s.texts.iter().filter(|t| t.clipped).collect();
    assert!(
        cut.is_empty(),
        "{name} at {size:?} x{scale}: clipped text: {cut:#?}"
    );
    write_png(
        &std::env::temp_dir().join(format!(
            "timbreswap-editor-{name}-{}x{}-{scale}x.png",
            size.0, size.1
        )),
        &s.picture,
    );
    // The drawing fills the window at its scale: the bottom-right quarter (meters, status
    // line, spectra labels) has text and marks in it, not only dark background.
    let pic = &s.picture;
    let (w, h) = (pic.width as usize, pic.height as usize);
    let bright = (h / 2..h)
        .flat_map(|y| (w / 2..w).map(move |x| (y * w + x) * 4))
        .filter(|&i| pic.rgba[i..i + 3].iter().any(|c| *c > 110))
        .count();
    assert!(
        bright > w * h / 2000,
        "{name} at {size:?} x{scale}: only {bright} bright pixels in the bottom-right quarter"
    );
    s
}

/// What the drag-and-drop test's probe shares with the test thread.
#[derive(Default)]
struct ProbeState {
    /// Texts of the last frame.
    texts: Vec<DrawnText>,
    /// A picture the test asked for, filled by the next frame.
    want_shot: bool,
    shot: Option<Screenshot>,
    /// The test is done: close the window.
    close: bool,
    frames: u32,
}

struct SharedProbe(Arc<Mutex<ProbeState>>);

impl FrameProbe for SharedProbe {
    fn after_frame(
        &mut self,
        frame: u32,
        texts: &[DrawnText],
        shot: &mut dyn FnMut() -> Screenshot,
    ) -> bool {
        let mut s = self.0.lock().unwrap();
        s.frames = frame;
        s.texts = texts.to_vec();
        if s.want_shot {
            s.want_shot = false;
            s.shot = Some(shot());
        }
        !s.close
    }
}

/// Waits up to 10 s for `f` to give something, polling every 20 ms.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A file manager's side of XDND (version 5), with x11rb: it owns `XdndSelection`, offers one
/// file as `text/uri-list`, and talks to the editor's window with client messages.
mod drag_source {
    use super::*;
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{
        Atom, ClientMessageEvent, ConnectionExt as _, CreateWindowAux, EventMask, PropMode,
        SelectionNotifyEvent, Window, WindowClass, SELECTION_NOTIFY_EVENT,
    };
    use x11rb::protocol::Event;
    use x11rb::rust_connection::RustConnection;
    use x11rb::wrapper::ConnectionExt as _;
    use x11rb::CURRENT_TIME;

    pub struct Source {
        conn: RustConnection,
        root: Window,
        window: Window,
        pub target: Window,
        atoms: std::collections::HashMap<&'static str, Atom>,
        /// The file offered.
        pub file: PathBuf,
    }

    /// What the editor answered.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct Answers {
        /// XdndStatus: whether the drop would be accepted.
        pub accepted: Option<bool>,
        /// XdndFinished: whether the drop was taken.
        pub finished: Option<bool>,
        /// Selection requests answered.
        pub served: u32,
    }

    const NAMES: [&str; 9] = [
        "XdndAware",
        "XdndSelection",
        "XdndEnter",
        "XdndPosition",
        "XdndStatus",
        "XdndDrop",
        "XdndFinished",
        "XdndActionCopy",
        "text/uri-list",
    ];

    /// Every window under `w` (depth first).
    fn tree(conn: &RustConnection, w: Window, out: &mut Vec<Window>) {
        if let Ok(reply) = conn.query_tree(w).unwrap().reply() {
            for child in reply.children {
                out.push(child);
                tree(conn, child, out);
            }
        }
    }

    impl Source {
        /// Connects to `display` and waits for the editor's window (the one that says
        /// `XdndAware`).
        pub fn connect(display: &str) -> Self {
            let (conn, screen) = RustConnection::connect(Some(display)).unwrap();
            let root = conn.setup().roots[screen].root;
            let atoms = NAMES
                .iter()
                .map(|n| {
                    (
                        *n,
                        conn.intern_atom(false, n.as_bytes())
                            .unwrap()
                            .reply()
                            .unwrap()
                            .atom,
                    )
                })
                .collect::<std::collections::HashMap<_, _>>();
            let aware = atoms["XdndAware"];
            let target = wait_for("the editor's XdndAware window", || {
                let mut all = Vec::new();
                tree(&conn, root, &mut all);
                all.into_iter().find(|w| {
                    conn.get_property(
                        false,
                        *w,
                        aware,
                        x11rb::protocol::xproto::AtomEnum::ANY,
                        0,
                        1,
                    )
                    .ok()
                    .and_then(|c| c.reply().ok())
                    .is_some_and(|r| r.value_len > 0)
                })
            });
            let window = conn.generate_id().unwrap();
            conn.create_window(
                0,
                window,
                root,
                0,
                0,
                1,
                1,
                0,
                WindowClass::INPUT_ONLY,
                0,
                &CreateWindowAux::new(),
            )
            .unwrap();
            conn.flush().unwrap();
            Self {
                conn,
                root,
                window,
                target,
                atoms,
                file: PathBuf::new(),
            }
        }

        fn send(&self, kind: &str, data: [u32; 5]) {
            let event = ClientMessageEvent::new(32, self.target, self.atoms[kind], data);
            self.conn
                .send_event(false, self.target, EventMask::NO_EVENT, event)
                .unwrap();
            self.conn.flush().unwrap();
        }

        /// Root coordinates of a point given in the editor window's own coordinates.
        fn to_root(&self, x: f32, y: f32) -> (i16, i16) {
            let r = self
                .conn
                .translate_coordinates(self.target, self.root, x as i16, y as i16)
                .unwrap()
                .reply()
                .unwrap();
            (r.dst_x, r.dst_y)
        }

        /// Starts a drag of `file`: takes the selection, sends XdndEnter.
        pub fn enter(&mut self, file: &Path) {
            self.file = file.to_path_buf();
            self.conn
                .set_selection_owner(self.window, self.atoms["XdndSelection"], CURRENT_TIME)
                .unwrap();
            self.send(
                "XdndEnter",
                [self.window, 5 << 24, self.atoms["text/uri-list"], 0, 0],
            );
        }

        /// Moves the drag to (x, y) in the window.
        pub fn position(&self, x: f32, y: f32) {
            let (rx, ry) = self.to_root(x, y);
            self.send(
                "XdndPosition",
                [
                    self.window,
                    0,
                    ((rx as u32) << 16) | ry as u32,
                    CURRENT_TIME,
                    self.atoms["XdndActionCopy"],
                ],
            );
        }

        /// Drops.
        pub fn drop_here(&self) {
            self.send("XdndDrop", [self.window, 0, CURRENT_TIME, 0, 0]);
        }

        /// Serves selection requests and collects the editor's answers until `done` says so
        /// (10 s at most).
        pub fn pump(&self, answers: &mut Answers, done: impl Fn(&Answers) -> bool) {
            let start = Instant::now();
            while !done(answers) {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "the editor did not answer the drag: {answers:?}"
                );
                let Some(event) = self.conn.poll_for_event().unwrap() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                match event {
                    Event::SelectionRequest(req) => {
                        let uri = format!("file://{}\r\n", self.file.display());
                        let property = if req.target == self.atoms["text/uri-list"] {
                            self.conn
                                .change_property8(
                                    PropMode::REPLACE,
                                    req.requestor,
                                    req.property,
                                    req.target,
                                    uri.as_bytes(),
                                )
                                .unwrap();
                            req.property
                        } else {
                            x11rb::NONE
                        };
                        let notify = SelectionNotifyEvent {
                            response_type: SELECTION_NOTIFY_EVENT,
                            sequence: 0,
                            time: req.time,
                            requestor: req.requestor,
                            selection: req.selection,
                            target: req.target,
                            property,
                        };
                        self.conn
                            .send_event(false, req.requestor, EventMask::NO_EVENT, notify)
                            .unwrap();
                        self.conn.flush().unwrap();
                        answers.served += 1;
                    }
                    Event::ClientMessage(m) => {
                        let data = m.data.as_data32();
                        if m.type_ == self.atoms["XdndStatus"] {
                            answers.accepted = Some(data[1] & 1 == 1);
                        } else if m.type_ == self.atoms["XdndFinished"] {
                            answers.finished = Some(data[1] & 1 == 1);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// A real drag from another X client: XdndEnter/Position over slot B lights that slot (its
/// outline turns the accent colour and it says "Drop to load into B") and the editor answers
/// XdndStatus "accept"; XdndDrop loads the clip into B (the loader's task, then the slot shows
/// the clip) and is answered with XdndFinished. A broken clip dropped on slot A is accepted
/// (it is a .wav) and its error shows inside slot A's card.
#[test]
fn a_real_xdnd_drop_lands_in_the_slot_under_the_pointer() {
    with_xvfb(|display| {
        let (params, shared) = state("empty");
        let tasks: Arc<Mutex<Vec<String>>> = Arc::default();
        let executor = {
            let (params, shared, tasks) = (params.clone(), shared.clone(), tasks.clone());
            AsyncExecutor::new(
                Arc::new(|task: Task| panic!("{task:?} sent to nice-plug's background thread")),
                Arc::new(move |task: Task| {
                    tasks.lock().unwrap().push(format!("{task:?}"));
                    crate::loader::run(task, &params, &shared);
                }),
            )
        };
        let probe = Arc::new(Mutex::new(ProbeState::default()));
        let editor = {
            let (params, shared, probe) = (params.clone(), shared.clone(), probe.clone());
            std::thread::spawn(move || {
                let gui = GuiContext::new(Arc::new(Recorder::default()));
                run_with_probe(
                    params,
                    shared,
                    executor,
                    gui,
                    EDITOR_SIZE,
                    Box::new(SharedProbe(probe)),
                )
                .map_err(|e| e.to_string())
            })
        };
        let layout = Layout::new(egui::vec2(EDITOR_SIZE.0 as f32, EDITOR_SIZE.1 as f32));
        let mut source = drag_source::Source::connect(display);
        wait_for("the first frames", || {
            (probe.lock().unwrap().frames >= 3).then_some(())
        });

        // Hover a clip over slot B.
        let clip = workspace().join("assets/examples/ref-violin.wav");
        source.enter(&clip);
        let b = layout.slots[1];
        source.position(b.center().x, b.center().y);
        let mut answers = drag_source::Answers::default();
        source.pump(&mut answers, |a| a.accepted.is_some());
        assert_eq!(answers.accepted, Some(true), "{answers:?}");
        assert!(answers.served >= 1, "the editor read the offered file list");
        // The next frames show the hover: slot B lit, A not.
        probe.lock().unwrap().want_shot = true;
        let shot = wait_for("a picture during the hover", || {
            probe.lock().unwrap().shot.take()
        });
        let texts = probe.lock().unwrap().texts.clone();
        let hint = texts
            .iter()
            .find(|t| t.text.contains("Drop to load into B"))
            .unwrap_or_else(|| panic!("no drop hint among {texts:#?}"));
        assert!(
            b.contains_rect(hint.rect),
            "the hint is in slot B: {hint:?}"
        );
        assert!(!texts.iter().any(|t| t.text.contains("Drop to load into A")));
        let accent = |x: f32, y: f32| {
            let i = ((y as u32 * shot.width + x as u32) * 4) as usize;
            let p = &shot.rgba[i..i + 3];
            let a = theme::ACCENT;
            (p[0] as i32 - a.r() as i32).abs() < 40
                && (p[1] as i32 - a.g() as i32).abs() < 40
                && (p[2] as i32 - a.b() as i32).abs() < 40
        };
        // Sample the outlines half-way along their top edges, one pixel inside.
        let a = layout.slots[0];
        assert!(
            accent(b.center().x, b.top() + 1.0),
            "slot B's outline is lit"
        );
        assert!(
            !accent(a.center().x, a.top() + 1.0),
            "slot A's outline is not"
        );

        // Drop: the clip lands in B, and the source hears XdndFinished.
        source.drop_here();
        source.pump(&mut answers, |a| a.finished.is_some());
        assert_eq!(answers.finished, Some(true), "{answers:?}");
        wait_for("slot B to hold the clip", || {
            params
                .timbre(Slot::B)
                .read()
                .as_ref()
                .filter(|d| d.name == "ref-violin.wav")
                .map(|_| ())
        });
        assert!(params.timbre(Slot::A).read().is_none());
        let logged = tasks.lock().unwrap().clone();
        assert!(
            logged.iter().any(|t| t.contains("LoadReference")
                && t.contains("slot: B")
                && t.contains("ref-violin.wav")),
            "{logged:?}"
        );
        wait_for("slot B's card to name the clip", || {
            probe
                .lock()
                .unwrap()
                .texts
                .iter()
                .find(|t| t.text == "ref-violin.wav" && b.contains_rect(t.rect))
                .map(|_| ())
        });

        // A .wav that is not audio, dropped on slot A: accepted, then its error is in A's card.
        let broken =
            std::env::temp_dir().join(format!("timbreswap-broken-{}.wav", std::process::id()));
        std::fs::write(&broken, b"RIFF\x10\x00\x00\x00WAVEjunk-not-a-clip").unwrap();
        let mut answers = drag_source::Answers::default();
        source.enter(&broken);
        source.position(a.center().x, a.center().y);
        source.pump(&mut answers, |x| x.accepted.is_some());
        assert_eq!(answers.accepted, Some(true));
        source.drop_here();
        source.pump(&mut answers, |x| x.finished.is_some());
        let error = wait_for("slot A's error in its card", || {
            probe
                .lock()
                .unwrap()
                .texts
                .iter()
                .find(|t| t.text.starts_with("Slot A:") && a.contains_rect(t.rect))
                .cloned()
        });
        assert!(error.text.contains("timbreswap-broken"), "{error:?}");
        assert!(
            params.timbre(Slot::A).read().is_none(),
            "nothing was installed"
        );
        let _ = std::fs::remove_file(&broken);

        probe.lock().unwrap().close = true;
        editor.join().unwrap().unwrap();
    });
}
