//! The plan tree's workspace file: a saver thread that writes the newest tree (never the UI
//! thread), and other workspace files chosen in dialogs (run and read on threads of their own).

use std::path::PathBuf;

use crossbeam_channel::{Receiver, Sender, unbounded};

use crate::plan_tree::PlanTree;

/// Where the tree is saved, what was saved last, and the threads' channels.
pub(super) struct WorkspaceFile {
    /// The workspace file (`None`: not saved).
    pub path: Option<PathBuf>,
    saved: PlanTree,
    saver: Sender<(PathBuf, PlanTree)>,
    errors: Receiver<String>,
    errors_tx: Sender<String>,
    /// Workspace files chosen in the dialogs (which run on threads of their own).
    picks_tx: Sender<WorkspacePick>,
    picks: Receiver<WorkspacePick>,
}

/// A workspace file chosen in a dialog.
pub(super) enum WorkspacePick {
    /// Keep the tree in this file from now on.
    SaveAs(PathBuf),
    /// This file's tree (read on the dialog's thread) replaces the open one.
    Opened(PathBuf, PlanTree),
}

impl WorkspaceFile {
    /// The tree in `path` (empty when there is none yet, or with the error reported when it is
    /// unreadable: the broken file is left as it is for the user, and not saved over).
    pub fn open(path: Option<PathBuf>) -> (WorkspaceFile, PlanTree) {
        let (tree, path, load_error) = match &path {
            Some(p) if p.exists() => match PlanTree::read(p) {
                Ok(tree) => (tree, path, None),
                // Not saved over: the user may want to mend it.
                Err(e) => (PlanTree::default(), None, Some(e)),
            },
            _ => (PlanTree::default(), path, None),
        };
        let (errors_tx, errors) = unbounded();
        if let Some(e) = load_error {
            let _ = errors_tx.send(format!("the plan tree was not loaded: {e}"));
        }
        let saver = spawn_saver(errors_tx.clone());
        let (picks_tx, picks) = unbounded();
        let file = WorkspaceFile {
            path,
            saved: tree.clone(),
            saver,
            errors,
            errors_tx,
            picks_tx,
            picks,
        };
        (file, tree)
    }

    /// Hands `tree` to the saver thread when it changed since the last save.
    pub fn save_if_changed(&mut self, tree: &PlanTree) {
        if *tree != self.saved
            && let Some(path) = &self.path
        {
            let _ = self.saver.send((path.clone(), tree.clone()));
            self.saved = tree.clone();
        }
    }

    /// Takes the workspace files chosen in dialogs: "save as" moves `tree` there (written at
    /// once); an opened file's tree is returned (the caller makes it the tree), now saved.
    pub fn take_picks(&mut self, tree: &PlanTree) -> Option<PlanTree> {
        let mut opened = None;
        for pick in self.picks.try_iter().collect::<Vec<_>>() {
            match pick {
                WorkspacePick::SaveAs(path) => {
                    self.path = Some(path.clone());
                    let current = opened.as_ref().unwrap_or(tree);
                    let _ = self.saver.send((path, current.clone()));
                    self.saved = current.clone();
                }
                WorkspacePick::Opened(path, new) => {
                    self.path = Some(path);
                    self.saved = new.clone();
                    opened = Some(new);
                }
            }
        }
        opened
    }

    /// Runs a dialog for another workspace file on a thread of its own; the file is read there
    /// too (disk), and a broken one is reported by name.
    pub fn pick_dialog(&self, open: bool) {
        let (picks, errors) = (self.picks_tx.clone(), self.errors_tx.clone());
        std::thread::spawn(move || {
            let dialog = rfd::FileDialog::new()
                .set_title("Plan tree workspace")
                .add_filter("workspace", &["json"]);
            if !open {
                if let Some(path) = dialog.set_file_name("workspace.json").save_file() {
                    let _ = picks.send(WorkspacePick::SaveAs(path));
                }
                return;
            }
            if let Some(path) = dialog.pick_file() {
                match PlanTree::read(&path) {
                    Ok(tree) => {
                        let _ = picks.send(WorkspacePick::Opened(path, tree));
                    }
                    Err(e) => {
                        let _ = errors.send(format!("the plan tree was not opened: {e}"));
                    }
                }
            }
        });
    }

    /// Errors the saver (or the load) reported since the last call.
    pub fn take_errors(&self) -> Vec<String> {
        self.errors.try_iter().collect()
    }
}

/// A thread that writes the newest (file, tree) it was sent (atomically), reporting failures.
fn spawn_saver(errors: Sender<String>) -> Sender<(PathBuf, PlanTree)> {
    let (tx, rx) = unbounded::<(PathBuf, PlanTree)>();
    std::thread::Builder::new()
        .name("raagr2-workspace".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let (path, newest) = rx.try_iter().last().unwrap_or(first);
                if let Err(e) = newest.write(&path) {
                    let _ = errors.send(format!("the plan tree was not saved: {e}"));
                }
            }
        })
        .expect("spawning the workspace saver");
    tx
}
