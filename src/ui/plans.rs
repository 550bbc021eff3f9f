//! The Plans tab and the plan tree's state: keep the current settings as a child node,
//! select a node to restore it, rename, delete, export a node as a plan file, compare two
//! nodes (statistics and the disagreement of their segmentations), and statistics of every
//! node as small multiples. The tree is saved by a thread of its own (never on the UI thread).

use std::path::PathBuf;

use crossbeam_channel::{Receiver, Sender, unbounded};
use eframe::egui;
use egui_plot::{Bar, BarChart, Plot};

use super::LabApp;
use super::viewer::upload;
use crate::plan_tree::NodeStats;
use crate::plan_tree::{PlanNode, PlanTree, node_checkpoint_path};
use crate::prune::{FineTuneRecord, PrunePlan};
use crate::render::{OverlayStyle, SliceAxis, render_disagreement, render_slice};
use crate::worker::{PreviewRequest, Request};

/// The plan tree as the app holds it, and where it is saved.
pub struct PlansState {
    pub tree: PlanTree,
    /// The workspace file (`None`: not saved).
    pub path: Option<PathBuf>,
    saved: PlanTree,
    saver: Sender<(PathBuf, PlanTree)>,
    save_errors: Receiver<String>,
    errors_tx: Sender<String>,
    /// Workspace files chosen in the dialogs (which run on threads of their own).
    picks_tx: Sender<WorkspacePick>,
    picks: Receiver<WorkspacePick>,
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
}

impl PlansState {
    /// The tree in `path` (empty when there is none yet, or with the error shown when it is
    /// unreadable: the broken file is left as it is for the user).
    pub fn open(path: Option<PathBuf>) -> PlansState {
        let (tree, path, load_error) = match &path {
            Some(p) if p.exists() => match PlanTree::read(p) {
                Ok(tree) => (tree, path, None),
                // Not saved over: the user may want to mend it.
                Err(e) => (PlanTree::default(), None, Some(e)),
            },
            _ => (PlanTree::default(), path, None),
        };
        let (errors_tx, save_errors) = unbounded();
        if let Some(e) = load_error {
            let _ = errors_tx.send(format!("the plan tree was not loaded: {e}"));
        }
        let saver = spawn_saver(errors_tx.clone());
        let (picks_tx, picks) = unbounded();
        PlansState {
            saved: tree.clone(),
            tree,
            path,
            saver,
            save_errors,
            errors_tx,
            picks_tx,
            picks,
            compare: Vec::new(),
            comparison: None,
            comparison_id: 0,
            comparison_textures: None,
            pending_restore: None,
            fine_tune_start: None,
            rename: String::new(),
        }
    }

    /// The selected node and its base model's file, when that is not the embedded model (the
    /// app opens it on start).
    pub fn selected_on_a_file(&self) -> Option<(u64, PathBuf)> {
        let node = self.tree.selected_node()?;
        Some((node.id, node.model.clone()?))
    }

    /// Hands the tree to the saver thread when it changed since the last save.
    pub fn save_if_changed(&mut self) {
        if self.tree != self.saved
            && let Some(path) = &self.path
        {
            let _ = self.saver.send((path.clone(), self.tree.clone()));
            self.saved = self.tree.clone();
        }
    }

    /// Applies a workspace file chosen in a dialog: "save as" moves the tree there (written at
    /// once), "open" replaces the tree with the file's. Returns whether the tree was replaced.
    fn apply_picks(&mut self) -> bool {
        let mut replaced = false;
        for pick in self.picks.try_iter().collect::<Vec<_>>() {
            match pick {
                WorkspacePick::SaveAs(path) => {
                    self.path = Some(path.clone());
                    let _ = self.saver.send((path, self.tree.clone()));
                    self.saved = self.tree.clone();
                }
                WorkspacePick::Opened(path, tree) => {
                    self.path = Some(path);
                    self.saved = tree.clone();
                    self.tree = tree;
                    self.compare.clear();
                    self.comparison = None;
                    replaced = true;
                }
            }
        }
        replaced
    }

    /// Runs a dialog for another workspace file on a thread of its own; the file is read there
    /// too (disk), and a broken one is reported by name.
    fn pick_dialog(&self, open: bool) {
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
        self.save_errors.try_iter().collect()
    }
}

/// A workspace file chosen in a dialog.
enum WorkspacePick {
    /// Keep the tree in this file from now on.
    SaveAs(PathBuf),
    /// This file's tree (read on the dialog's thread) replaces the open one.
    Opened(PathBuf, PlanTree),
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

impl LabApp {
    /// The model is ready: its root exists in the tree; a node waiting for this model is
    /// restored, else the selected node when it belongs to this model, else the root.
    pub(super) fn plans_on_model_ready(&mut self) {
        let Some(model) = &self.model else { return };
        let source = model.source.clone();
        let root = self.plans.tree.root_of(source.as_deref());
        match self.plans.pending_restore.take() {
            Some((id, waiting_for)) if waiting_for == source => return self.restore_node(id),
            // Another model is on its way (on start the embedded one is announced first).
            Some(other) => {
                self.plans.pending_restore = Some(other);
                return;
            }
            None => {}
        }
        let selected_here = self
            .plans
            .tree
            .selected_node()
            .filter(|n| n.model == source)
            .map(|n| n.id);
        self.restore_node(selected_here.unwrap_or(root));
    }

    /// Makes node `id` the current settings (opening its base model first when another is
    /// open).
    pub fn select_node(&mut self, id: u64) {
        let Some(node) = self.plans.tree.node(id).cloned() else {
            return;
        };
        self.plans.tree.selected = Some(id);
        self.plans.rename = node.name.clone();
        let current = self.model.as_ref().map(|m| m.source.clone());
        if current.as_ref() != Some(&node.model) {
            self.open_model(node.model.clone());
            self.plans.pending_restore = Some((id, node.model.clone()));
            return;
        }
        self.restore_node(id);
    }

    /// Node `id`'s settings on the open model (a node of another model is never applied to it).
    fn restore_node(&mut self, id: u64) {
        let (Some(node), Some(model)) = (self.plans.tree.node(id).cloned(), self.model.clone())
        else {
            return;
        };
        if node.model != model.source {
            return;
        }
        self.plans.tree.selected = Some(id);
        self.plans.rename = node.name.clone();
        self.settings.method = node.plan.method;
        self.pruning.restore(&node.plan, &model);
        // A node's own weights (when fine-tuned and saved) are previewed from its checkpoint.
        self.fine_tune.show_tuned = false;
        self.preview_wanted = true;
    }

    /// Keeps the current settings as a new child of the selected node (or of the model's
    /// root); its id.
    pub fn keep_current_plan(&mut self) -> Option<u64> {
        let model = self.model.clone()?;
        let plan = self.pruning.plan(self.settings.method, &model);
        let parent = match self.plans.tree.selected_node() {
            Some(node) if node.model == model.source => node.id,
            _ => self.plans.tree.root_of(model.source.as_deref()),
        };
        let name = plan_name(&plan);
        let id = self.plans.tree.add_child(parent, name.clone(), plan)?;
        self.plans.rename = name;
        Some(id)
    }

    /// A fine-tune starts: what it trains is remembered for the node it will become.
    pub(super) fn fine_tune_started(&mut self, plan: PrunePlan) {
        let source = self.model.as_ref().and_then(|m| m.source.clone());
        self.plans.fine_tune_start = Some((plan, source, self.plans.tree.selected));
    }

    /// A fine-tune finished: its model becomes a child of the node it started from, with the
    /// plan it started from.
    pub(super) fn keep_fine_tuned(&mut self, device: String, epochs: usize) {
        let Some((plan, source, parent)) = self.plans.fine_tune_start.take() else {
            return;
        };
        let name = format!("{} + {epochs} epoch(s) fine-tuned", plan_name(&plan));
        let record = FineTuneRecord {
            epochs,
            learning_rate: self.fine_tune.settings.learning_rate,
            batches_per_epoch: Some(self.fine_tune.settings.batches_per_epoch),
            device,
        };
        self.keep_worker_model(source, parent, name, plan, Some(record));
    }

    /// The model the worker holds (fine-tuned or searched) becomes a child of `parent` (or of
    /// the root of `source`, the model it came from) with `plan`; its weights are saved beside
    /// the workspace (without a workspace file the node records the plan but not the weights).
    pub(super) fn keep_worker_model(
        &mut self,
        source: Option<PathBuf>,
        parent: Option<u64>,
        name: String,
        plan: PrunePlan,
        record: Option<FineTuneRecord>,
    ) {
        if self.model.as_ref().map(|m| &m.source) != Some(&source) {
            self.notices.push(format!(
                "\"{name}\" belongs to a model that is no longer open: not kept as a plan"
            ));
            return;
        }
        let parent = parent
            .filter(|p| self.plans.tree.node(*p).is_some_and(|n| n.model == source))
            .unwrap_or_else(|| self.plans.tree.root_of(source.as_deref()));
        let Some(id) = self
            .plans
            .tree
            .add_child(parent, name.clone(), plan.clone())
        else {
            return;
        };
        let checkpoint = self
            .plans
            .path
            .as_ref()
            .map(|workspace| node_checkpoint_path(workspace, id));
        if let (Some(path), Some(mut preview)) = (&checkpoint, self.current_request()) {
            preview.plan = plan;
            let _ = self.worker.requests.send(Request::ExportModel {
                preview,
                fine_tuned: true,
                path: path.clone(),
            });
        }
        if let Some(node) = self.plans.tree.node_mut(id) {
            node.plan.fine_tune = record;
            node.plan.checkpoint = checkpoint;
        }
        self.plans.rename = name;
        self.restore_node(id);
        self.fine_tune.show_tuned = true;
    }

    /// The request that previews node `node` on the current slice.
    fn node_request(&self, node: &PlanNode) -> Option<PreviewRequest> {
        let mut request = self.current_request()?;
        request.plan = node.plan.clone();
        request.fine_tuned = false;
        Some(request)
    }

    /// The "Keep" row of the Pruning panel.
    pub(super) fn keep_plan_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let unsaved = match (self.plans.tree.selected_node(), &self.model) {
                (Some(node), Some(model)) => {
                    node.plan != self.pruning.plan(self.settings.method, model)
                }
                _ => false,
            };
            if ui
                .add_enabled(unsaved, egui::Button::new("Keep as plan"))
                .on_hover_text("Keep these settings as a new node of the plan tree (Plans tab)")
                .clicked()
            {
                self.keep_current_plan();
            }
            match self.plans.tree.selected_node() {
                Some(node) if unsaved => ui.weak(format!("changed from \"{}\"", node.name)),
                Some(node) => ui.weak(format!("plan \"{}\"", node.name)),
                None => ui.weak("no plan selected"),
            };
        });
    }

    /// Applies workspace files chosen in the dialogs; an opened tree restores its selected
    /// node (opening its model when another is open).
    pub(super) fn apply_workspace_picks(&mut self) {
        if !self.plans.apply_picks() {
            return;
        }
        let model = self.model.as_ref().map(|m| m.source.clone());
        let selected = self.plans.tree.selected;
        match (selected, model) {
            (Some(id), _) => self.select_node(id),
            (None, Some(source)) => {
                let root = self.plans.tree.root_of(source.as_deref());
                self.restore_node(root);
            }
            (None, None) => {}
        }
    }

    pub(super) fn plans_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let file = self
                .plans
                .path
                .as_ref()
                .map_or("not saved".to_string(), |p| p.display().to_string());
            ui.weak(format!("Workspace: {file}"));
            if ui
                .small_button("Open workspace…")
                .on_hover_text("Another plan tree file (the open tree stays in its own file)")
                .clicked()
            {
                self.plans.pick_dialog(true);
            }
            if ui
                .small_button("Save workspace as…")
                .on_hover_text("Keep this plan tree in another file from now on")
                .clicked()
            {
                self.plans.pick_dialog(false);
            }
        });
        ui.columns(2, |columns| {
            self.tree_ui(&mut columns[0]);
            self.comparison_ui(&mut columns[1]);
        });
        ui.separator();
        self.small_multiples_ui(ui);
    }

    fn tree_ui(&mut self, ui: &mut egui::Ui) {
        ui.strong("Plan tree").on_hover_text(
            "Each node is a pruning plan of its root's model. Click to restore it; tick two to compare.",
        );
        let rows: Vec<(usize, PlanNode)> = self
            .plans
            .tree
            .in_order()
            .into_iter()
            .map(|(d, n)| (d, n.clone()))
            .collect();
        let mut select = None;
        egui::ScrollArea::vertical()
            .id_salt("plan tree")
            .max_height(260.0)
            .show(ui, |ui| {
                for (depth, node) in &rows {
                    ui.horizontal(|ui| {
                        ui.add_space(*depth as f32 * 18.0);
                        let mut ticked = self.plans.compare.contains(&node.id);
                        if ui
                            .checkbox(&mut ticked, "")
                            .on_hover_text("compare")
                            .changed()
                        {
                            toggle_compare(&mut self.plans.compare, node.id);
                        }
                        let selected = self.plans.tree.selected == Some(node.id);
                        let label = format!("{} {}", node_marker(node), node.name);
                        // Long names are cut short (hover shows the whole): the tree keeps to
                        // its column.
                        let button = egui::Button::selectable(selected, label.clone()).truncate();
                        if ui.add(button).on_hover_text(label).clicked() {
                            select = Some(node.id);
                        }
                    });
                }
            });
        if let Some(id) = select {
            self.select_node(id);
        }
        self.node_actions_ui(ui);
    }

    fn node_actions_ui(&mut self, ui: &mut egui::Ui) {
        let Some(node) = self.plans.tree.selected_node().cloned() else {
            return;
        };
        ui.horizontal(|ui| {
            ui.label("Name");
            let edit = ui.add(
                egui::TextEdit::singleline(&mut self.plans.rename)
                    .desired_width((ui.available_width() - 80.0).max(60.0)),
            );
            if edit.lost_focus() || ui.button("Rename").clicked() {
                let name = self.plans.rename.trim().to_string();
                if !name.is_empty()
                    && let Some(n) = self.plans.tree.node_mut(node.id)
                {
                    n.name = name;
                }
            }
        });
        ui.horizontal(|ui| {
            if ui
                .button("Export plan…")
                .on_hover_text("Save this node as a plan file for `raagr2-lab prune --plan`")
                .clicked()
            {
                let plan = node.plan.clone();
                self.save_dialog("Save the plan", &plan_file_name(&node.name), move |path| {
                    Request::ExportPlan { plan, path }
                });
            }
            let deletable = node.parent.is_some();
            if ui
                .add_enabled(deletable, egui::Button::new("Delete"))
                .on_hover_text("Delete this node and everything under it (a root stays)")
                .clicked()
            {
                self.delete_node(node.id);
            }
            if ui
                .button("Measure all")
                .on_hover_text("Params, MACs, latency here and Dice on this case and 3 held-out cases for every node (background)")
                .clicked()
            {
                self.start_node_stats();
            }
        });
    }

    /// Removes a node and its subtree, and their saved weights (on a thread: disk).
    pub fn delete_node(&mut self, id: u64) {
        let removed = self.plans.tree.remove(id);
        self.plans
            .compare
            .retain(|c| removed.iter().all(|n| n.id != *c));
        let files: Vec<PathBuf> = removed
            .into_iter()
            .filter_map(|n| n.plan.checkpoint)
            .collect();
        std::thread::spawn(move || {
            for file in files {
                let _ = std::fs::remove_file(file);
            }
        });
        if let Some(selected) = self.plans.tree.selected {
            self.select_node(selected);
        }
    }

    /// Asks for every node's statistics (a background job).
    pub fn start_node_stats(&mut self) {
        let nodes: Vec<(u64, PreviewRequest)> = self
            .plans
            .tree
            .nodes
            .iter()
            .filter(|n| self.model.as_ref().is_some_and(|m| m.source == n.model))
            .filter_map(|n| Some((n.id, self.node_request(n)?)))
            .collect();
        let _ = self.worker.requests.send(Request::StartNodeStats(nodes));
        self.job = Some((0, 1, "node statistics: starting".into()));
    }

    /// Asks for the two ticked nodes' segmentations of the current slice.
    pub fn compare_nodes(&mut self) {
        let [a, b] = match self.plans.compare.as_slice() {
            [a, b] => [*a, *b],
            _ => return,
        };
        let request = |id| self.plans.tree.node(id).and_then(|n| self.node_request(n));
        if let (Some(a), Some(b)) = (request(a), request(b)) {
            self.plans.comparison_id += 1;
            let id = self.plans.comparison_id;
            let _ = self
                .worker
                .requests
                .send(Request::CompareSlices { id, a, b });
        }
    }

    pub(super) fn on_comparison(&mut self, id: u64, slice: usize, a: Vec<u8>, b: Vec<u8>) {
        if id == self.plans.comparison_id {
            self.plans.comparison = Some((id, slice, a, b));
        }
    }

    pub(super) fn on_node_stats(&mut self, node: u64, stats: NodeStats) {
        if let Some(n) = self.plans.tree.node_mut(node) {
            n.stats = Some(stats);
        }
    }

    fn comparison_ui(&mut self, ui: &mut egui::Ui) {
        ui.strong("Compare two nodes");
        let ticked: Vec<PlanNode> = self
            .plans
            .compare
            .iter()
            .filter_map(|id| self.plans.tree.node(*id).cloned())
            .collect();
        if ticked.len() < 2 {
            ui.label("Tick two nodes in the tree.");
            return;
        }
        let open = self.model.as_ref().map(|m| m.source.clone());
        if ticked.iter().any(|n| Some(&n.model) != open.as_ref()) {
            ui.label("Both nodes must belong to the open model (select one to open its model).");
            return;
        }
        if ui
            .button("Compare on this slice")
            .on_hover_text("Segment the current axial slice with both and show where they disagree")
            .clicked()
        {
            self.compare_nodes();
        }
        comparison_table(ui, &ticked[0], &ticked[1]);
        self.comparison_images_ui(ui, &ticked[0].name, &ticked[1].name);
    }

    fn comparison_images_ui(&mut self, ui: &mut egui::Ui, a_name: &str, b_name: &str) {
        let (Some((id, slice, a, b)), Some(case)) = (&self.plans.comparison, self.case.clone())
        else {
            return;
        };
        let (id, slice) = (*id, *slice);
        let stale = self
            .plans
            .comparison_textures
            .as_ref()
            .is_none_or(|(cached, _)| *cached != id);
        if stale {
            let plane = [case.dims[0], case.dims[1]];
            // One slice as a one-slice volume: the renderer needs no copy of the case.
            let flair = &case.modalities[3][slice * plane[0] * plane[1]..][..plane[0] * plane[1]];
            let render = |codes: &[u8]| {
                render_slice(
                    flair,
                    Some(codes),
                    [plane[0], plane[1], 1],
                    SliceAxis::Axial,
                    0,
                    self.settings.window,
                    &OverlayStyle::default(),
                )
            };
            let ctx = ui.ctx().clone();
            let textures = [
                upload(&ctx, "compare-a", render(a)),
                upload(&ctx, "compare-b", render(b)),
                upload(
                    &ctx,
                    "compare-diff",
                    (plane, render_disagreement(a, b, plane)),
                ),
            ];
            self.plans.comparison_textures = Some((id, textures));
        }
        let Some((_, textures)) = &self.plans.comparison_textures else {
            return;
        };
        let side = ((ui.available_width() - 48.0) / 3.0).clamp(80.0, 260.0);
        ui.horizontal(|ui| {
            let captions = [
                a_name.to_string(),
                b_name.to_string(),
                "disagreement (red: first only, blue: second only)".to_string(),
            ];
            for (texture, caption) in textures.iter().zip(captions) {
                ui.vertical(|ui| {
                    ui.add(egui::Image::new(texture).fit_to_exact_size(egui::vec2(side, side)));
                    ui.label(egui::RichText::new(caption).small());
                });
            }
        });
        ui.label(format!("axial slice {slice}"));
    }

    fn small_multiples_ui(&mut self, ui: &mut egui::Ui) {
        let nodes: Vec<PlanNode> = self
            .plans
            .tree
            .in_order()
            .into_iter()
            .filter(|(_, n)| n.stats.is_some())
            .map(|(_, n)| n.clone())
            .collect();
        if nodes.is_empty() {
            ui.label("Statistics per node: press \"Measure all\".");
            return;
        }
        ui.strong("Statistics per node (bars in tree order; hover for the node)");
        ui.horizontal_wrapped(|ui| {
            for (i, n) in nodes.iter().enumerate() {
                ui.colored_label(super::palette::colour(i), format!("{} {}", i + 1, n.name));
            }
        });
        let metrics: [Metric; 7] = [
            ("params (M)", |s| s.params as f64 / 1e6),
            ("MACs (G, 192x192)", |s| s.macs as f64 / 1e9),
            ("latency (ms)", |s| s.latency_ms),
            ("Dice WT held-out", |s| s.dice_held_out[0]),
            ("Dice TC held-out", |s| s.dice_held_out[1]),
            ("Dice ET held-out", |s| s.dice_held_out[2]),
            ("Dice WT this case", |s| {
                s.dice_case.map_or(f64::NAN, |d| d[0])
            }),
        ];
        let width = (ui.available_width() / 4.0 - 44.0).max(100.0);
        egui::Grid::new("small multiples").show(ui, |ui| {
            for (i, (title, value)) in metrics.iter().enumerate() {
                ui.vertical(|ui| {
                    ui.label(*title);
                    let bars: Vec<Bar> = nodes
                        .iter()
                        .enumerate()
                        .map(|(x, n)| {
                            let v = n.stats.as_ref().map_or(f64::NAN, value);
                            Bar::new(x as f64, if v.is_finite() { v } else { 0.0 })
                                .name(&n.name)
                                .width(0.7)
                                .fill(super::palette::colour(x))
                        })
                        .collect();
                    Plot::new(format!("multiple {title}"))
                        .width(width)
                        .height(90.0)
                        .include_x(-0.6)
                        .include_x(nodes.len() as f64 - 0.4)
                        .include_y(0.0)
                        .show_axes([false, true])
                        .allow_drag(false)
                        .allow_zoom(false)
                        .allow_scroll(false)
                        .show(ui, |plot| plot.bar_chart(BarChart::new(*title, bars)));
                });
                if i % 4 == 3 {
                    ui.end_row();
                }
            }
        });
    }
}

/// A small multiple: its title and the figure it shows.
type Metric = (&'static str, fn(&NodeStats) -> f64);
/// A comparison table row: its name and how a node's statistics print in it.
type Row = (&'static str, fn(&NodeStats) -> String);

/// A short name for a plan (`l2 50% global`, `l2 per-group`, `+2 picked`).
fn plan_name(plan: &PrunePlan) -> String {
    let mut name = match plan.global_ratio {
        Some(r) => format!("{} {:.0}% global", plan.method.key(), r * 100.0),
        None if plan.group_ratios.is_empty() => plan.method.key().to_string(),
        None => {
            let mean = plan.group_ratios.values().sum::<f64>() / plan.group_ratios.len() as f64;
            let groups = plan.group_ratios.len();
            let noun = if groups == 1 { "group" } else { "groups" };
            format!(
                "{} {groups} {noun} ~{:.0}%",
                plan.method.key(),
                mean * 100.0
            )
        }
    };
    let picked: usize = plan.removed_channels.values().map(Vec::len).sum();
    if picked > 0 {
        name += &format!(", {picked} channels picked");
    }
    name
}

fn node_marker(node: &PlanNode) -> &'static str {
    match (node.parent, &node.plan.checkpoint) {
        (None, _) => "[model]",
        _ if node.plan.budget_search.is_some() => "[auto]",
        (_, Some(_)) => "[tuned]",
        _ => "-",
    }
}

/// Ticks or unticks a node for comparison; at most two stay ticked (the oldest goes).
fn toggle_compare(compare: &mut Vec<u64>, id: u64) {
    if let Some(i) = compare.iter().position(|c| *c == id) {
        compare.remove(i);
    } else {
        compare.push(id);
        if compare.len() > 2 {
            compare.remove(0);
        }
    }
}

/// The two nodes' statistics side by side.
fn comparison_table(ui: &mut egui::Ui, a: &PlanNode, b: &PlanNode) {
    let cell =
        |s: &Option<NodeStats>, f: fn(&NodeStats) -> String| s.as_ref().map_or("-".to_string(), f);
    ui.label(format!("A: {}", a.name));
    ui.label(format!("B: {}", b.name));
    if a.stats.is_none() || b.stats.is_none() {
        ui.weak("(\"Measure all\" fills the table)");
    }
    let rows: [Row; 7] = [
        ("params", |s| s.params.to_string()),
        ("MACs (192x192)", |s| {
            format!("{:.3} G", s.macs as f64 / 1e9)
        }),
        ("latency here", |s| format!("{:.1} ms", s.latency_ms)),
        ("Dice WT (held-out)", |s| {
            format!("{:.3}", s.dice_held_out[0])
        }),
        ("Dice TC (held-out)", |s| {
            format!("{:.3}", s.dice_held_out[1])
        }),
        ("Dice ET (held-out)", |s| {
            format!("{:.3}", s.dice_held_out[2])
        }),
        ("Dice WT/TC/ET (case)", |s| {
            s.dice_case.map_or("-".into(), |d| {
                format!("{:.3}/{:.3}/{:.3}", d[0], d[1], d[2])
            })
        }),
    ];
    egui::Grid::new("comparison").striped(true).show(ui, |ui| {
        ui.label("");
        ui.strong("A");
        ui.strong("B");
        ui.end_row();
        for (name, f) in rows {
            ui.label(name);
            ui.label(cell(&a.stats, f));
            ui.label(cell(&b.stats, f));
            ui.end_row();
        }
    });
}

/// A plan file name from a node's name.
fn plan_file_name(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect();
    format!("{stem}.plan.json")
}
