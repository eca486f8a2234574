//! The Load... buttons' file dialogs: the system's file chooser (on Linux through the XDG
//! desktop portal, so no GTK is loaded into the host), opened on a thread of its own so the
//! editor keeps drawing, with the chosen file returned through a channel.

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
    /// The chosen file, `None` if the user cancelled or no file chooser is available.
    pub path: Option<PathBuf>,
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
                let path = run_dialog(target);
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
fn run_dialog(target: Target) -> Option<PathBuf> {
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
    pollster::block_on(dialog.pick_file()).map(|file| file.path().to_path_buf())
}
