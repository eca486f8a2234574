//! Headless tests of the editor's app: drops and dialog choices reach the loader.

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
    // The editor hands its tasks to the GUI executor (the plugin's executor only queues them
    // on the instance's loader thread); nothing may go to nice-plug's shared background thread.
    let executor = AsyncExecutor::new(
        Arc::new(|task| panic!("{task:?} sent to nice-plug's background thread")),
        Arc::new(move |task| sink.lock().unwrap().push(task)),
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
        model.max.y <= a.min.y && a.max.y <= b.min.y,
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
