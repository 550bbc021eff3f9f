//! The Plans tab and the plan tree's state: keep the current settings as a child node,
//! select a node to restore it, rename, delete, export a node as a plan file, compare two
//! nodes (statistics and the disagreement of their segmentations), and statistics of every
//! node as small multiples. The tree is saved by a thread of its own (never on the UI thread).
//! The tab owns the tree; the shell carries out what needs the model, the settings or the
//! worker.

mod comparison;
mod stats_view;
mod tree_view;
mod workspace_file;

pub(super) use tree_view::{file_stem, keep_plan_ui, plan_name};

use std::path::PathBuf;

use eframe::egui;

use super::command::{AppView, PanelCommand};
use crate::plan_tree::{NodeStats, PlanNode, PlanTree, node_checkpoint_path};
use crate::prune::{FineTuneRecord, PrunePlan};
use workspace_file::WorkspaceFile;

/// The plan tree as the app holds it, and where it is saved.
pub struct PlansState {
    pub tree: PlanTree,
    file: WorkspaceFile,
    /// Nodes ticked for comparison (at most two, oldest first).
    pub compare: Vec<u64>,
    /// The last comparison: (request id, slice, codes of a, codes of b).
    pub comparison: Option<(u64, usize, Vec<u8>, Vec<u8>)>,
    comparison_id: u64,
    comparison_textures: Option<(u64, [egui::TextureHandle; 3])>,
    /// The node a model switch is restoring and the model it waits for (restored when that
    /// model is ready; other models' announcements leave it waiting).
    pub pending_restore: Option<(u64, Option<PathBuf>)>,
    /// What the running fine-tune started from: its plan, its model and the node it branches
    /// from (the settings may change while it trains).
    pub fine_tune_start: Option<(PrunePlan, Option<PathBuf>, Option<u64>)>,
    /// Text of the rename field.
    rename: String,
    /// Format and precision of the selected node's "Export model…".
    export: super::ExportChoice,
}

impl PlansState {
    /// The tree in `path` (empty when there is none yet, or with the error shown when it is
    /// unreadable: the broken file is left as it is for the user).
    pub fn open(path: Option<PathBuf>) -> PlansState {
        let (file, tree) = WorkspaceFile::open(path);
        PlansState {
            tree,
            file,
            compare: Vec::new(),
            comparison: None,
            comparison_id: 0,
            comparison_textures: None,
            pending_restore: None,
            fine_tune_start: None,
            rename: String::new(),
            export: super::ExportChoice::default(),
        }
    }

    /// The workspace file (`None`: not saved).
    pub fn path(&self) -> Option<&PathBuf> {
        self.file.path.as_ref()
    }

    /// The selected node and its base model's file, when that is not the embedded model (the
    /// app opens it on start).
    pub fn selected_on_a_file(&self) -> Option<(u64, PathBuf)> {
        let node = self.tree.selected_node()?;
        Some((node.id, node.model.clone()?))
    }

    /// Hands the tree to the saver thread when it changed since the last save.
    pub fn save_if_changed(&mut self) {
        self.file.save_if_changed(&self.tree);
    }

    /// Errors the saver (or the load) reported since the last call.
    pub fn take_errors(&self) -> Vec<String> {
        self.file.take_errors()
    }

    /// Applies workspace files chosen in a dialog: "save as" moves the tree there (written at
    /// once), "open" replaces the tree with the file's. Returns whether the tree was replaced.
    pub(super) fn apply_picks(&mut self) -> bool {
        let Some(tree) = self.file.take_picks(&self.tree) else {
            return false;
        };
        self.tree = tree;
        self.compare.clear();
        self.comparison = None;
        true
    }

    /// The node to restore now that the model from `source` is ready (its root exists in the
    /// tree): the node waiting for this model, else the selected node when it belongs to it,
    /// else the root; none while a node waits for another model.
    pub(super) fn node_for_model(&mut self, source: &Option<PathBuf>) -> Option<u64> {
        let root = self.tree.root_of(source.as_deref());
        match self.pending_restore.take() {
            Some((id, waiting_for)) if waiting_for == *source => return Some(id),
            // Another model is on its way (on start the embedded one is announced first).
            Some(other) => {
                self.pending_restore = Some(other);
                return None;
            }
            None => {}
        }
        let selected_here = self
            .tree
            .selected_node()
            .filter(|n| n.model == *source)
            .map(|n| n.id);
        Some(selected_here.unwrap_or(root))
    }

    /// Selects node `id` (its name in the rename field); a copy of it.
    pub(super) fn select(&mut self, id: u64) -> Option<PlanNode> {
        let node = self.tree.node(id).cloned()?;
        self.tree.selected = Some(id);
        self.rename = node.name.clone();
        Some(node)
    }

    /// Selects node `id` when it belongs to the model from `source`; its plan to restore.
    pub(super) fn restore(&mut self, id: u64, source: &Option<PathBuf>) -> Option<PrunePlan> {
        let node = self.tree.node(id).filter(|n| n.model == *source)?;
        let plan = node.plan.clone();
        self.select(id);
        Some(plan)
    }

    /// Keeps `plan` of the model from `source` as a new child of the selected node (or of the
    /// model's root); its id.
    pub(super) fn keep(&mut self, plan: PrunePlan, source: &Option<PathBuf>) -> Option<u64> {
        let parent = match self.tree.selected_node() {
            Some(node) if node.model == *source => node.id,
            _ => self.tree.root_of(source.as_deref()),
        };
        let name = plan_name(&plan);
        let id = self.tree.add_child(parent, name.clone(), plan)?;
        self.rename = name;
        Some(id)
    }

    /// A model the worker holds (of the model from `source`) as a new child of `parent` (or
    /// of the root) with `plan` and `record`; its id and where its weights are to be saved
    /// (beside the workspace; none without a workspace file).
    pub(super) fn keep_worker_node(
        &mut self,
        source: &Option<PathBuf>,
        parent: Option<u64>,
        name: String,
        plan: PrunePlan,
        record: Option<FineTuneRecord>,
    ) -> Option<(u64, Option<PathBuf>)> {
        let parent = parent
            .filter(|p| self.tree.node(*p).is_some_and(|n| n.model == *source))
            .unwrap_or_else(|| self.tree.root_of(source.as_deref()));
        let id = self.tree.add_child(parent, name.clone(), plan)?;
        let checkpoint = self
            .path()
            .map(|workspace| node_checkpoint_path(workspace, id));
        if let Some(node) = self.tree.node_mut(id) {
            node.plan.fine_tune = record;
            node.plan.checkpoint = checkpoint.clone();
        }
        self.rename = name;
        Some((id, checkpoint))
    }

    /// Removes a node and its subtree, and their saved weights (on a thread: disk).
    pub(super) fn delete(&mut self, id: u64) {
        let removed = self.tree.remove(id);
        self.compare.retain(|c| removed.iter().all(|n| n.id != *c));
        let files: Vec<PathBuf> = removed
            .into_iter()
            .filter_map(|n| n.plan.checkpoint)
            .collect();
        std::thread::spawn(move || {
            for file in files {
                let _ = std::fs::remove_file(file);
            }
        });
    }

    /// The id of the next comparison asked for (older answers are dropped).
    pub(super) fn next_comparison(&mut self) -> u64 {
        self.comparison_id += 1;
        self.comparison_id
    }

    pub(super) fn on_comparison(&mut self, id: u64, slice: usize, a: Vec<u8>, b: Vec<u8>) {
        if id == self.comparison_id {
            self.comparison = Some((id, slice, a, b));
        }
    }

    pub(super) fn on_node_stats(&mut self, node: u64, stats: NodeStats) {
        if let Some(n) = self.tree.node_mut(node) {
            n.stats = Some(stats);
        }
    }

    /// The tab: the workspace file, the tree and the comparison side by side, the statistics.
    pub(super) fn ui(&mut self, ui: &mut egui::Ui, view: &AppView<'_>) -> Vec<PanelCommand> {
        let mut commands = Vec::new();
        self.workspace_row_ui(ui);
        ui.columns(2, |columns| {
            commands.extend(self.tree_ui(&mut columns[0]));
            commands.extend(self.comparison_ui(&mut columns[1], view));
        });
        ui.separator();
        stats_view::small_multiples_ui(ui, &self.tree);
        commands
    }

    fn workspace_row_ui(&self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let file = self
                .path()
                .map_or("not saved".to_string(), |p| p.display().to_string());
            ui.weak(format!("Workspace: {file}"));
            if ui
                .small_button("Open workspace…")
                .on_hover_text("Another plan tree file (the open tree stays in its own file)")
                .clicked()
            {
                self.file.pick_dialog(true);
            }
            if ui
                .small_button("Save workspace as…")
                .on_hover_text("Keep this plan tree in another file from now on")
                .clicked()
            {
                self.file.pick_dialog(false);
            }
        });
    }
}
