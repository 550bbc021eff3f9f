//! The Filters tab: a channel group of the dense model as a grid of activation maps on the
//! current slice, sorted by a chosen score (filter L2, BN gamma, and from a background job
//! SNIP, sensitivity, instability); ticking channels removes them from the plan. The tab owns
//! its choices, scores and textures; picks and jobs are asked of the shell.

use eframe::egui;

use super::command::{AppView, PanelCommand};
use super::viewer::map_texture;
use crate::analysis::maps::activation_range;
use crate::render::MapPalette;
use crate::worker::{ChannelScoresView, GroupView, ModelView};

/// What a channel grid is sorted by (most important first; index: as they are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelSort {
    #[default]
    L2,
    BnGamma,
    Snip,
    Sensitivity,
    Instability,
    Index,
}

impl ChannelSort {
    const ALL: [ChannelSort; 6] = [
        ChannelSort::L2,
        ChannelSort::BnGamma,
        ChannelSort::Snip,
        ChannelSort::Sensitivity,
        ChannelSort::Instability,
        ChannelSort::Index,
    ];

    fn name(self) -> &'static str {
        match self {
            ChannelSort::L2 => "filter L2",
            ChannelSort::BnGamma => "BN |gamma|",
            ChannelSort::Snip => "SNIP",
            ChannelSort::Sensitivity => "sensitivity",
            ChannelSort::Instability => "instability",
            ChannelSort::Index => "channel index",
        }
    }
}

/// The filter view's choices and what it drew last.
#[derive(Default)]
pub struct FilterState {
    /// Index into the model's groups.
    pub group: usize,
    pub sort: ChannelSort,
    /// Scores from the last channel-scores job (for `scores.group`).
    pub scores: Option<ChannelScoresView>,
    /// Channel textures of the maps with this id.
    textures: Option<(u64, Vec<egui::TextureHandle>)>,
}

impl FilterState {
    /// The name of the chosen group in `model`.
    pub fn group_name(&self, model: Option<&ModelView>) -> Option<String> {
        model
            .and_then(|m| m.groups.get(self.group))
            .map(|g| g.name.clone())
    }

    /// Drops what belongs to another model.
    pub fn reset(&mut self) {
        self.group = 0;
        self.scores = None;
        self.textures = None;
    }
}

/// One score per channel under `sort`, when known.
fn sort_scores(
    sort: ChannelSort,
    group: &GroupView,
    scores: Option<&ChannelScoresView>,
) -> Option<Vec<f32>> {
    let from_job = |pick: fn(&ChannelScoresView) -> &Vec<f32>| {
        scores
            .filter(|s| s.group == group.name)
            .map(pick)
            .filter(|v| v.len() == group.channels)
            .cloned()
    };
    match sort {
        ChannelSort::L2 => Some(group.importance.clone()),
        ChannelSort::BnGamma => Some(group.bn_gamma.clone()),
        ChannelSort::Snip => from_job(|s| &s.snip),
        ChannelSort::Sensitivity => from_job(|s| &s.sensitivity),
        ChannelSort::Instability => from_job(|s| &s.instability),
        ChannelSort::Index => None,
    }
}

impl FilterState {
    pub(super) fn ui(&mut self, ui: &mut egui::Ui, view: &AppView<'_>) -> Vec<PanelCommand> {
        let mut commands = Vec::new();
        let (Some(model), Some(case)) = (view.model, view.case) else {
            ui.spinner();
            return commands;
        };
        let g = self.group.min(model.groups.len().saturating_sub(1));
        let group = &model.groups[g];
        self.choices_ui(ui, view, model, group, &mut commands);
        let Some(maps) = view
            .maps
            .filter(|m| m.group.as_deref() == Some(group.name.as_str()))
        else {
            ui.label(format!("computing {}'s activation maps…", group.name));
            ui.spinner();
            return commands;
        };
        ui.label(format!(
            "{} channels of the dense model on axial slice {} (maps computed in {:.0} ms). \
             Tick channels to remove them: the preview and the plan follow.",
            maps.channels.len(),
            maps.slice_idx,
            maps.millis
        ));
        let stale = self.textures.as_ref().is_none_or(|(id, _)| *id != maps.id);
        if stale {
            let window = view.settings.window;
            let textures = maps
                .channels
                .iter()
                .enumerate()
                .map(|(c, map)| {
                    let (low, high) = activation_range(map);
                    let palette = MapPalette::Heat { low, high };
                    let name = format!("channel {c}");
                    let z = maps.slice_idx;
                    map_texture(ui.ctx(), name, case, z, window, map, palette, 1.0)
                })
                .collect();
            self.textures = Some((maps.id, textures));
        }
        commands.extend(self.channel_grid_ui(ui, view, group));
        commands
    }

    /// The group and sort choices, the scores job and clearing the group's picks.
    fn choices_ui(
        &mut self,
        ui: &mut egui::Ui,
        view: &AppView<'_>,
        model: &ModelView,
        group: &GroupView,
        commands: &mut Vec<PanelCommand>,
    ) {
        ui.horizontal(|ui| {
            let before = self.group;
            egui::ComboBox::from_label("Group")
                .selected_text(&group.name)
                .show_ui(ui, |ui| {
                    for (i, gv) in model.groups.iter().enumerate() {
                        ui.selectable_value(&mut self.group, i, &gv.name);
                    }
                });
            if self.group != before {
                commands.push(PanelCommand::WantMaps);
            }
            egui::ComboBox::from_label("Sort by")
                .selected_text(self.sort.name())
                .show_ui(ui, |ui| {
                    for sort in ChannelSort::ALL {
                        ui.selectable_value(&mut self.sort, sort, sort.name());
                    }
                });
            if ui
                .button("Compute SNIP, sensitivity, instability")
                .on_hover_text("SNIP on training slices; sensitivity: how much this slice's segmentation changes without each channel; instability: sd/mean of each channel's L2 over 8 fine-tuning steps (background job)")
                .clicked()
            {
                commands.push(PanelCommand::StartChannelScores {
                    group: group.name.clone(),
                });
            }
            let picked = view.pruning.removed.get(&group.name).map_or(0, Vec::len);
            if ui
                .add_enabled(picked > 0, egui::Button::new("Clear picks"))
                .clicked()
            {
                commands.push(PanelCommand::ClearPicks {
                    group: group.name.clone(),
                });
            }
        });
    }

    /// The group's maps in the chosen order, each with its pick box and scores.
    fn channel_grid_ui(
        &self,
        ui: &mut egui::Ui,
        view: &AppView<'_>,
        group: &GroupView,
    ) -> Option<PanelCommand> {
        let (_, textures) = self.textures.as_ref()?;
        let scores = self.scores.as_ref();
        let by = sort_scores(self.sort, group, scores);
        let mut order: Vec<usize> = (0..textures.len()).collect();
        if let Some(by) = &by {
            order.sort_by(|a, b| by[*b].total_cmp(&by[*a]));
        } else if self.sort != ChannelSort::Index {
            ui.weak("(this score needs the background job: shown in channel order)");
        }
        let job = scores.filter(|s| s.group == group.name);
        let side = 128.0;
        let columns = ((ui.available_width() / (side + 12.0)) as usize).max(1);
        let mut toggled = None;
        egui::ScrollArea::vertical()
            .id_salt("channels")
            .show(ui, |ui| {
                egui::Grid::new("channel grid").show(ui, |ui| {
                    for (i, &c) in order.iter().enumerate() {
                        let picked = view
                            .pruning
                            .removed
                            .get(&group.name)
                            .is_some_and(|p| p.contains(&c));
                        ui.vertical(|ui| {
                            let image = egui::Image::new(&textures[c])
                                .fit_to_exact_size(egui::vec2(side, side))
                                .sense(egui::Sense::click());
                            let tint = if picked {
                                egui::Color32::from_gray(90)
                            } else {
                                egui::Color32::WHITE
                            };
                            if ui.add(image.tint(tint)).clicked() {
                                toggled = Some(c);
                            }
                            let mut remove = picked;
                            if ui.checkbox(&mut remove, format!("remove #{c}")).changed() {
                                toggled = Some(c);
                            }
                            ui.label(egui::RichText::new(channel_caption(group, job, c)).small());
                        });
                        if i % columns == columns - 1 {
                            ui.end_row();
                        }
                    }
                });
            });
        toggled.map(|channel| PanelCommand::TogglePick {
            group: group.name.clone(),
            channels: group.channels,
            channel,
        })
    }
}

/// A channel's scores under its map.
fn channel_caption(group: &GroupView, job: Option<&ChannelScoresView>, c: usize) -> String {
    let mut text = format!(
        "L2 {:.2}  γ {:.2}",
        group.importance.get(c).copied().unwrap_or(f32::NAN),
        group.bn_gamma.get(c).copied().unwrap_or(f32::NAN)
    );
    if let Some(job) = job {
        let at = |v: &Vec<f32>| v.get(c).copied();
        if let Some(s) = at(&job.snip) {
            text += &format!("\nSNIP {s:.2e}");
        }
        if let Some(s) = at(&job.sensitivity) {
            text += &format!("  sens {s:.3}");
        }
        if let Some(s) = at(&job.instability) {
            text += &format!("\ninstab {:.2}%", s * 100.0);
        }
    }
    text
}
