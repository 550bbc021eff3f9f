//! The plan tree as the Plans tab shows it: the nodes indented under their parents (click to
//! restore, tick two to compare), the selected node's actions, and the Pruning panel's "Keep"
//! row; with the short names a plan gets.

use eframe::egui;

use super::PlansState;
use crate::plan_tree::PlanNode;
use crate::prune::PrunePlan;
use crate::ui::command::PanelCommand;

impl PlansState {
    pub(super) fn tree_ui(&mut self, ui: &mut egui::Ui) -> Vec<PanelCommand> {
        let mut commands = Vec::new();
        ui.strong("Plan tree").on_hover_text(
            "Each node is a pruning plan of its root's model. Click to restore it; tick two to compare.",
        );
        let rows: Vec<(usize, PlanNode)> = self
            .tree
            .in_order()
            .into_iter()
            .map(|(d, n)| (d, n.clone()))
            .collect();
        egui::ScrollArea::vertical()
            .id_salt("plan tree")
            .max_height(260.0)
            .show(ui, |ui| {
                for (depth, node) in &rows {
                    ui.horizontal(|ui| {
                        ui.add_space(*depth as f32 * 18.0);
                        let mut ticked = self.compare.contains(&node.id);
                        if ui
                            .checkbox(&mut ticked, "")
                            .on_hover_text("compare")
                            .changed()
                        {
                            toggle_compare(&mut self.compare, node.id);
                        }
                        let selected = self.tree.selected == Some(node.id);
                        let label = format!("{} {}", node_marker(node), node.name);
                        // Long names are cut short (hover shows the whole): the tree keeps to
                        // its column.
                        let button = egui::Button::selectable(selected, label.clone()).truncate();
                        if ui.add(button).on_hover_text(label).clicked() {
                            commands.push(PanelCommand::SelectNode(node.id));
                        }
                    });
                }
            });
        commands.extend(self.node_actions_ui(ui));
        commands
    }

    /// Rename, export, delete the selected node; measure every node.
    fn node_actions_ui(&mut self, ui: &mut egui::Ui) -> Option<PanelCommand> {
        let node = self.tree.selected_node().cloned()?;
        let mut command = None;
        ui.horizontal(|ui| {
            ui.label("Name");
            let edit = ui.add(
                egui::TextEdit::singleline(&mut self.rename)
                    .desired_width((ui.available_width() - 80.0).max(60.0)),
            );
            if edit.lost_focus() || ui.button("Rename").clicked() {
                let name = self.rename.trim().to_string();
                if !name.is_empty()
                    && let Some(n) = self.tree.node_mut(node.id)
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
                command = Some(PanelCommand::ExportPlan {
                    plan: node.plan.clone(),
                    file_name: plan_file_name(&node.name),
                });
            }
            if ui
                .button("Export model…")
                .on_hover_text("This node's model, written in the format and precision beside")
                .clicked()
            {
                command = Some(PanelCommand::ExportNodeModel {
                    id: node.id,
                    choice: self.export,
                });
            }
            self.export.ui(ui, "plan node");
        });
        ui.horizontal(|ui| {
            let deletable = node.parent.is_some();
            if ui
                .add_enabled(deletable, egui::Button::new("Delete"))
                .on_hover_text("Delete this node and everything under it (a root stays)")
                .clicked()
            {
                command = Some(PanelCommand::DeleteNode(node.id));
            }
            if ui
                .button("Measure all")
                .on_hover_text("Params, MACs, latency here and Dice on this case and 3 held-out cases for every node (background)")
                .clicked()
            {
                command = Some(PanelCommand::StartNodeStats);
            }
        });
        command
    }
}

/// The "Keep" row of the Pruning panel: keeps `current` (the panel's plan) when it differs
/// from the selected node's.
pub(in crate::ui) fn keep_plan_ui(
    ui: &mut egui::Ui,
    selected: Option<&PlanNode>,
    current: Option<&PrunePlan>,
) -> Option<PanelCommand> {
    let mut command = None;
    ui.horizontal(|ui| {
        let unsaved = match (selected, current) {
            (Some(node), Some(plan)) => node.plan != *plan,
            _ => false,
        };
        if ui
            .add_enabled(unsaved, egui::Button::new("Keep as plan"))
            .on_hover_text("Keep these settings as a new node of the plan tree (Plans tab)")
            .clicked()
        {
            command = Some(PanelCommand::KeepPlan);
        }
        match selected {
            Some(node) if unsaved => ui.weak(format!("changed from \"{}\"", node.name)),
            Some(node) => ui.weak(format!("plan \"{}\"", node.name)),
            None => ui.weak("no plan selected"),
        };
    });
    command
}

/// A short name for a plan (`l2 50% global`, `l2 per-group`, `+2 picked`).
pub(in crate::ui) fn plan_name(plan: &PrunePlan) -> String {
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

/// A plan file name from a node's name.
fn plan_file_name(name: &str) -> String {
    format!("{}.plan.json", file_stem(name))
}

/// A node's name as a file name stem (anything but letters and digits becomes `_`).
pub(in crate::ui) fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect()
}
