//! The Load... buttons' file dialogs: the system's file chooser (on Linux through the XDG
//! desktop portal over D-Bus, so no GTK is loaded into the host), opened on a thread of its own
//! (with its own small async runtime for the D-Bus connection) so the editor keeps drawing,
//! with the chosen file returned through a channel. A chooser that fails (no D-Bus session, no
//! portal) returns an error message instead of a file; it never takes the editor down.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};

use super::input::{AUDIO_EXTENSIONS, MODEL_EXTENSION};

/// What a dialog is choosing a file for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A reference clip for slot A (0) or B (1).
    Reference(usize),
    /// A model file.
    Model,
}

/// The outcome of one dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// What the dialog was for.
    pub target: Target,
    /// The chosen file, `Ok(None)` if the user cancelled, `Err` with the reason if no file
    /// chooser could be shown.
    pub path: Result<Option<PathBuf>, String>,
}

/// Runs at most one file dialog at a time (GUI thread side).
pub struct Dialogs {
    sender: Sender<Choice>,
    receiver: Receiver<Choice>,
    /// The dialog being shown, if any.
    open: Option<Target>,
}

impl Default for Dialogs {
    fn default() -> Self {
        let (sender, receiver) = channel();
        Self {
            sender,
            receiver,
            open: None,
        }
    }
}

impl Dialogs {
    /// The dialog on screen, if one is.
    pub fn open(&self) -> Option<Target> {
        self.open
    }

    /// Opens a file chooser for `target` on its own thread; does nothing while another one is
    /// open. Returns whether a dialog was started.
    pub fn pick(&mut self, target: Target) -> bool {
        if self.open.is_some() {
            return false;
        }
        let sender = self.sender.clone();
        let spawned = std::thread::Builder::new()
            .name("timbreswap file dialog".into())
            .spawn(move || {
                let path = std::panic::catch_unwind(|| run_dialog(target))
                    .unwrap_or_else(|_| Err("the file chooser failed".to_string()));
                let _ = sender.send(Choice { target, path });
            });
        if spawned.is_ok() {
            self.open = Some(target);
        }
        spawned.is_ok()
    }

    /// A finished dialog's choice, if one arrived (polled every frame).
    pub fn poll(&mut self) -> Option<Choice> {
        match self.receiver.try_recv() {
            Ok(choice) => {
                self.open = None;
                Some(choice)
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => None,
        }
    }

    /// Delivers `choice` as if a dialog had returned it (the editor's tests).
    #[cfg(test)]
    pub fn inject(&mut self, choice: Choice) {
        self.open = Some(choice.target);
        let _ = self.sender.send(choice);
    }
}

/// Shows the system's file chooser and waits for it (dialog thread).
fn run_dialog(target: Target) -> Result<Option<PathBuf>, String> {
    let dialog = match target {
        Target::Reference(slot) => rfd::AsyncFileDialog::new()
            .set_title(format!(
                "Reference {} clip",
                if slot == 0 { "A" } else { "B" }
            ))
            .add_filter("Audio", &AUDIO_EXTENSIONS),
        Target::Model => rfd::AsyncFileDialog::new()
            .set_title("Timbreswap model")
            .add_filter("Timbreswap model", &[MODEL_EXTENSION]),
    };
    if cfg!(target_os = "linux") && std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
        return Err("no D-Bus session for the desktop's file chooser".into());
    }
    // rfd reaches the portal through zbus, which runs on Tokio: a current-thread runtime that
    // lives as long as this dialog.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("no file chooser: {e}"))?;
    let shown = std::time::Instant::now();
    let chosen = runtime
        .block_on(dialog.pick_file())
        .map(|file| file.path().to_path_buf());
    // rfd answers "nothing chosen" both for a cancel and for a portal that is not there; no
    // one cancels a dialog within a quarter of a second.
    if cfg!(target_os = "linux") && chosen.is_none() && shown.elapsed() < NO_CHOOSER {
        return Err("the desktop's file chooser (XDG portal) did not answer".into());
    }
    Ok(chosen)
}

/// A dialog that comes back empty faster than this never opened (Linux: no portal service).
const NO_CHOOSER: std::time::Duration = std::time::Duration::from_millis(250);

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Where no file chooser can open (a D-Bus address with nothing behind it, as on a
    /// headless machine), the dialog thread reports why within moments instead of hanging,
    /// and the Load... buttons are free again.
    #[test]
    fn a_missing_chooser_is_reported_not_hung() {
        // Only this test of the binary reads the D-Bus address.
        std::env::set_var(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/timbreswap-test-bus",
        );
        let mut dialogs = Dialogs::default();
        assert!(dialogs.pick(Target::Reference(1)));
        assert_eq!(dialogs.open(), Some(Target::Reference(1)));
        assert!(!dialogs.pick(Target::Model), "one dialog at a time");
        let start = std::time::Instant::now();
        let choice = loop {
            if let Some(choice) = dialogs.poll() {
                break choice;
            }
            assert!(start.elapsed().as_secs() < 10, "the dialog thread hung");
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(choice.target, Target::Reference(1));
        assert!(choice.path.is_err(), "{:?}", choice.path);
        assert_eq!(dialogs.open(), None);
    }
}
