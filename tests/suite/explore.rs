//! The exploration views driven through egui_kittest: opening a model of one's own, a plan
//! tree that survives a restart and restores and compares its nodes, and the filter view's
//! hand-picked channels reaching the pruned model.

use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use raagr2_lab::model::save_checkpoint;
use raagr2_lab::plan_tree::PlanTree;
use raagr2_lab::prune::{PruneMethod, Ratios, StructuredMethod, prune_checkpoint};
use raagr2_lab::ui::{LabApp, Tab};

use crate::common;
use crate::common::app::{app, app_with_workspace, ready, wait_until};

/// The default model with a quarter of every group's channels removed, saved in `dir`.
fn smaller_checkpoint(dir: &std::path::Path) -> std::path::PathBuf {
    let smaller = prune_checkpoint(
        &raagr2_lab::defaults::default_checkpoint(),
        PruneMethod::Structured(StructuredMethod::L2),
        &Ratios::Uniform(0.25),
        None,
    )
    .unwrap();
    let path = dir.join("smaller.safetensors");
    save_checkpoint(&path, &smaller).unwrap();
    path
}

fn group_index(harness: &Harness<'static, LabApp>, name: &str) -> usize {
    let model = harness.state().model.as_ref().unwrap();
    model.groups.iter().position(|g| g.name == name).unwrap()
}

#[test]
fn a_checkpoint_and_a_pytorch_state_dict_open_as_the_dense_model() {
    let mut harness = app();
    wait_until(&mut harness, "the default case and model", ready);
    let default_params = harness.state().model.as_ref().unwrap().params;

    // One of our checkpoints: the default model with a quarter of its channels removed.
    let dir = common::scratch_dir("open-model");
    let path = smaller_checkpoint(&dir);
    harness.state_mut().open_model(Some(path.clone()));
    wait_until(&mut harness, "the opened model", |app| {
        app.model
            .as_ref()
            .is_some_and(|m| m.source.as_deref() == Some(path.as_path()))
            && app.preview.is_some()
    });
    let opened = harness.state().model.clone().unwrap();
    assert!(opened.params < default_params, "the smaller model is open");
    assert_eq!(
        harness.state().preview.as_ref().unwrap().params,
        opened.params
    );
    // The pruning tools apply to it: a preset prunes it further.
    harness.get_by_label("half").click();
    wait_until(&mut harness, "a preview of the pruned model", |app| {
        app.preview
            .as_ref()
            .is_some_and(|p| p.params < opened.params)
    });
    // Its root node is in the plan tree.
    let roots = harness
        .state()
        .plans
        .tree
        .children(None)
        .filter(|n| n.model.as_deref() == Some(path.as_path()))
        .count();
    assert_eq!(roots, 1);

    // A PyTorch state_dict (no config in it): imported, widths inferred from its shapes.
    let pytorch = common::fixture("dlunet_w8.safetensors");
    harness.state_mut().open_model(Some(pytorch.clone()));
    wait_until(&mut harness, "the imported model", |app| {
        app.model
            .as_ref()
            .is_some_and(|m| m.source.as_deref() == Some(pytorch.as_path()))
    });

    // Not a model: a named error, and the open model stays.
    let bogus = dir.join("notes.safetensors");
    std::fs::write(&bogus, "not a model").unwrap();
    harness.state_mut().open_model(Some(bogus.clone()));
    wait_until(&mut harness, "an error", |app| !app.errors.is_empty());
    let error = harness.state().errors[0].clone();
    assert!(
        error.contains("notes.safetensors"),
        "names the file: {error}"
    );
    harness.get_by_label_contains("Error: ");
    assert_eq!(
        harness.state().model.as_ref().unwrap().source.as_deref(),
        Some(pytorch.as_path())
    );
}

/// Waits (frames, then short pauses: the saver is a thread of its own) until the workspace
/// file holds `nodes` nodes.
fn wait_for_saved_tree(
    harness: &mut Harness<'static, LabApp>,
    path: &std::path::Path,
    nodes: usize,
) -> PlanTree {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        harness.step();
        if let Ok(tree) = PlanTree::read(path)
            && tree.nodes.len() == nodes
        {
            return tree;
        }
        assert!(Instant::now() < deadline, "the workspace was not saved");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_plan_tree_of_three_nodes_survives_a_restart_restores_and_compares() {
    let workspace = common::scratch_dir("plan-tree").join("workspace.json");
    let mut harness = app_with_workspace(workspace.clone());
    wait_until(&mut harness, "the default case and model", ready);
    assert_eq!(
        harness.state().plans.tree.nodes.len(),
        1,
        "the model's root"
    );
    let root = harness.state().plans.tree.nodes[0].id;
    let enc3 = group_index(&harness, "enc3.out");

    // Node 2: half of enc3.out.
    harness
        .get_by_role_and_label(egui::accesskit::Role::Slider, "enc3.out 32/32")
        .set_value_accesskit(0.5);
    wait_until(&mut harness, "the enc3.out preview", |app| {
        app.preview.as_ref().is_some_and(|p| p.kept[enc3] == 16)
    });
    harness.get_by_label("Keep as plan").click();
    harness.step();
    // Node 3, a child of node 2: the "quarter" preset.
    harness.get_by_label("quarter").click();
    wait_until(&mut harness, "the preset's preview", |app| {
        app.preview.as_ref().is_some_and(|p| p.kept[enc3] == 24)
    });
    harness.get_by_label("Keep as plan").click();
    harness.step();
    let tree = wait_for_saved_tree(&mut harness, &workspace, 3);
    let (second, third) = (tree.nodes[1].clone(), tree.nodes[2].clone());
    assert_eq!(second.parent, Some(root));
    assert_eq!(
        third.parent,
        Some(second.id),
        "a change from node 2 branches from it"
    );
    assert_eq!(second.plan.group_ratios.get("enc3.out"), Some(&0.5));
    drop(harness);

    // Restart: the tree comes back with node 3 selected and restored.
    let mut harness = app_with_workspace(workspace.clone());
    wait_until(&mut harness, "the restarted app", ready);
    assert_eq!(harness.state().plans.tree.nodes.len(), 3);
    assert_eq!(harness.state().plans.tree.selected, Some(third.id));
    wait_until(&mut harness, "node 3's preview", |app| {
        app.preview.as_ref().is_some_and(|p| p.kept[enc3] == 24)
    });

    // Restore node 2 from the Plans tab.
    harness.state_mut().tab = Tab::Plans;
    harness.step();
    harness.get_by_label_contains(&second.name).click();
    wait_until(&mut harness, "node 2's preview", |app| {
        app.preview.as_ref().is_some_and(|p| p.kept[enc3] == 16)
    });
    assert_eq!(harness.state().pruning.group_ratios[enc3], 0.5);

    // Compare the root with node 3 on this slice.
    harness.state_mut().plans.compare = vec![root, third.id];
    harness.step();
    harness.get_by_label("Compare on this slice").click();
    wait_until(&mut harness, "the comparison", |app| {
        app.plans.comparison.is_some()
    });
    let (_, _, a, b) = harness.state().plans.comparison.clone().unwrap();
    assert_eq!(a.len(), b.len());
    assert!(a.iter().any(|c| *c != 0), "the dense root finds the tumour");
    assert_ne!(a, b, "a quarter of every group changes the segmentation");
    harness.get_by_label_contains("disagreement");
}

#[test]
fn channels_ticked_in_the_filter_view_are_removed_from_the_previewed_model() {
    let mut harness = app();
    wait_until(&mut harness, "the default case and model", ready);
    harness.get_by_label("Filters").click();
    wait_until(&mut harness, "the first group's maps", |app| {
        app.maps.as_ref().is_some_and(|m| m.group.is_some())
    });
    let maps = harness.state().maps.clone().unwrap();
    let group = maps.group.clone().unwrap();
    let g = group_index(&harness, &group);
    let width = harness.state().model.as_ref().unwrap().groups[g].channels;
    assert_eq!(maps.channels.len(), width, "one map per channel");
    let dense_params = harness.state().model.as_ref().unwrap().params;

    harness.get_by_label("remove #3").click();
    wait_until(&mut harness, "a preview without channel 3", |app| {
        app.preview.as_ref().is_some_and(|p| p.kept[g] == width - 1)
    });
    assert_eq!(
        harness.state().pruning.removed.get(&group),
        Some(&vec![3]),
        "the pick is in the plan"
    );
    assert!(harness.state().preview.as_ref().unwrap().params < dense_params);
    // Unticking brings the channel back.
    harness.get_by_label("remove #3").click();
    wait_until(&mut harness, "the dense preview again", |app| {
        app.preview.as_ref().is_some_and(|p| p.kept[g] == width)
    });

    // The attention view shows every gate for both models.
    harness.get_by_label("Attention").click();
    wait_until(&mut harness, "the gates", |app| {
        app.maps
            .as_ref()
            .is_some_and(|m| m.attention_dense.len() == 4 && m.attention_pruned.len() == 4)
    });
    harness.get_by_label("att2");
}

#[test]
fn a_node_of_an_opened_model_is_restored_with_its_model_after_a_restart() {
    let dir = common::scratch_dir("plan-tree-model");
    let workspace = dir.join("workspace.json");
    let path = smaller_checkpoint(&dir);
    let mut harness = app_with_workspace(workspace.clone());
    wait_until(&mut harness, "the default case and model", ready);
    harness.state_mut().open_model(Some(path.clone()));
    wait_until(&mut harness, "the opened model", |app| {
        app.model
            .as_ref()
            .is_some_and(|m| m.source.as_deref() == Some(path.as_path()))
            && app.preview.is_some()
    });
    let enc3 = group_index(&harness, "enc3.out");
    harness
        .get_by_role_and_label(egui::accesskit::Role::Slider, "enc3.out 24/24")
        .set_value_accesskit(0.5);
    wait_until(&mut harness, "the enc3.out preview", |app| {
        app.preview.as_ref().is_some_and(|p| p.kept[enc3] == 12)
    });
    harness.get_by_label("Keep as plan").click();
    harness.step();
    // The default model's root, the opened model's root and the kept node.
    let tree = wait_for_saved_tree(&mut harness, &workspace, 3);
    let kept = tree.nodes[2].clone();
    assert_eq!(kept.model.as_deref(), Some(path.as_path()));
    drop(harness);

    let mut harness = app_with_workspace(workspace);
    wait_until(&mut harness, "the node's model and its preview", |app| {
        app.model
            .as_ref()
            .is_some_and(|m| m.source.as_deref() == Some(path.as_path()))
            && app.preview.as_ref().is_some_and(|p| p.kept[enc3] == 12)
    });
    assert_eq!(harness.state().plans.tree.selected, Some(kept.id));
    assert_eq!(harness.state().plans.tree.nodes.len(), 3, "no stray root");
}

#[test]
fn a_budget_search_shows_progress_moves_the_sliders_ends_as_a_node_and_stops_on_cancel() {
    let workspace = common::scratch_dir("budget-search").join("workspace.json");
    let mut harness = app_with_workspace(workspace.clone());
    wait_until(&mut harness, "the default case and model", ready);
    harness
        .get_by_label("Budget search (automatic ratios)")
        .click();
    harness.step();
    {
        // Two steps without fine-tuning: quick on a CPU.
        let app = harness.state_mut();
        app.budget.max_steps = 2;
        app.budget.fine_tune_every = 0;
        app.budget.budget = [0.05; 3];
    }
    harness.get_by_label("Search ratios").click();
    wait_until(&mut harness, "a candidate scored", |app| {
        app.job
            .as_ref()
            .is_some_and(|(_, _, label)| label.contains("candidate"))
    });
    wait_until(&mut harness, "the search's result", |app| {
        app.budget.result.is_some() && app.job.is_none()
    });
    let app = harness.state();
    let result = app.budget.result.clone().unwrap();
    assert!(result.steps >= 1, "{}", result.stopped);
    assert!(result.macs < result.dense_macs);
    assert_eq!(
        app.budget.trail.len(),
        result.steps,
        "every kept step was sent"
    );
    for (dense, found) in result
        .dense_case_dice
        .as_array()
        .iter()
        .zip(result.case_dice.as_array())
    {
        assert!(
            dense - found <= 0.05 + 1e-9,
            "within the budget on the case"
        );
    }
    // The sliders show the ratios found.
    let model = app.model.clone().unwrap();
    for (g, group) in model.groups.iter().enumerate() {
        let found = result.plan.group_ratios.get(&group.name).copied();
        assert_eq!(
            app.pruning.group_ratios[g],
            found.unwrap_or(0.0),
            "{}",
            group.name
        );
    }
    // The result is a node of the plan tree with its weights, selected and previewed.
    let node = app.plans.tree.selected_node().cloned().unwrap();
    assert!(node.name.starts_with("auto budget"), "{}", node.name);
    assert_eq!(node.plan.group_ratios, result.plan.group_ratios);
    assert!(node.plan.budget_search.is_some());
    let weights = node.plan.checkpoint.clone().unwrap();
    harness.get_by_label("Plots").click();
    harness.step();
    harness.get_by_label("search result");
    wait_for_saved_tree(&mut harness, &workspace, 2);
    wait_until(&mut harness, "the searched model's preview", |app| {
        app.preview.as_ref().is_some_and(|p| p.macs == result.macs)
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !weights.exists() {
        assert!(
            Instant::now() < deadline,
            "the node's weights were not saved"
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(50));
    }

    // A second search, stopped: no node, and the job says it was cancelled.
    // (After the "saved" notice: it moves the panel's buttons.)
    wait_until(&mut harness, "the weights' notice", |app| {
        app.notices.iter().any(|n| n.contains("node-"))
    });
    harness.get_by_label("Search ratios").click();
    wait_until(&mut harness, "the second search running", |app| {
        app.job
            .as_ref()
            .is_some_and(|(_, _, label)| label.starts_with("budget search"))
    });
    harness.get_by_label("Stop search").click();
    wait_until(&mut harness, "the search to stop", |app| app.job.is_none());
    assert_eq!(harness.state().status, "background job cancelled");
    assert_eq!(harness.state().plans.tree.nodes.len(), 2);
}

/// A study file of two rows at two compression points each (what `study -o OUT` writes).
fn small_study_file(dir: &std::path::Path) -> std::path::PathBuf {
    use raagr2_lab::metrics::RegionScores;
    use raagr2_lab::prune::study::{
        DiceSpread, STUDY_FORMAT, Structure, StudyFile, StudyModel, StudyPoint, StudyResult,
        StudyRow,
    };
    let result = |row: StudyRow, target: Option<f64>, macs: u64, dice: f64| {
        let structure = Structure {
            params: 1000,
            nonzero_params: 1000,
            macs,
            latency_ms: 1.0,
            dense_latency_ms: 2.0,
        };
        let scores = RegionScores::from_array([dice; 3]);
        StudyResult {
            point: StudyPoint { row, target },
            slice_side: 240,
            model: StudyModel::Base,
            ratio: target,
            removed_share: target.unwrap_or(0.0),
            structure,
            bytes_on_disk: 4000,
            gzip_bytes: 3000,
            dice: DiceSpread {
                mean: scores,
                sd: None,
            },
            dice_recalibrated: None,
            dice_fine_tuned: Vec::new(),
            full_width: structure,
            fine_tune_steps: 0,
            eval_cases: 2,
            precision: raagr2_lab::precision::Precision::Fp32,
        }
    };
    let file = StudyFile {
        format: STUDY_FORMAT,
        description: "test".into(),
        results: vec![
            result(StudyRow::Magnitude, Some(0.25), 2_000_000_000, 0.9),
            result(StudyRow::Magnitude, Some(0.5), 1_500_000_000, 0.8),
            result(StudyRow::FilterL2, Some(0.25), 1_400_000_000, 0.7),
            result(StudyRow::FilterL2, Some(0.5), 900_000_000, 0.5),
        ],
    };
    let path = dir.join("study.json");
    std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
    path
}

#[test]
fn a_shipped_study_model_opens_by_name_and_the_plots_tab_shows_a_study_file() {
    let mut harness = app();
    wait_until(&mut harness, "the default case and model", ready);

    // Plots tab: the shipped study until the user opens one, saying which it is; without a
    // budget search, no empty chart but a way to fill it.
    harness.state_mut().tab = Tab::Plots;
    harness.run_steps(2);
    harness.get_by_label_contains("Shown: the shipped study of the half-width study family");
    assert!(harness.state().study_points() > 0);
    harness.get_by_label("Budget search").click();
    harness.run_steps(2);
    harness.get_by_label("No budget search yet.");

    // A study file that is not one: an error naming it.
    let dir = common::scratch_dir("study-panel");
    let bogus = dir.join("bogus.json");
    std::fs::write(&bogus, "{\"format\": 1}").unwrap();
    harness.state().open_study(bogus);
    wait_until(&mut harness, "an error", |app| !app.errors.is_empty());
    assert!(
        harness.state().errors[0].contains("bogus.json"),
        "{:?}",
        harness.state().errors
    );

    // A study file: the chart switches to it, one curve per row.
    let study = small_study_file(&dir);
    harness.state().open_study(study);
    wait_until(&mut harness, "the study", |app| {
        app.study_source()
            .is_some_and(|s| s.ends_with("study.json") && !s.contains("shipped"))
    });
    assert_eq!(harness.state().study_points(), 4);
    harness.get_by_label_contains("study.json (4 points, 2 held-out cases each)");
    harness.get_by_label("Compression study");

    // The Models menu opens the study's base model compiled into the program (last: the
    // worker then segments the case again with this larger model).
    harness.get_by_label("Models").click();
    harness.run_steps(2);
    harness.get_by_label("Study: base (half width)").click();
    let shipped = std::path::Path::new("assets/study_base.safetensors");
    wait_until(&mut harness, "the shipped study model", |app| {
        app.model
            .as_ref()
            .is_some_and(|m| m.source.as_deref() == Some(shipped))
    });
    let model = harness.state().model.clone().unwrap();
    assert_eq!(model.params, 2_244_419, "the half-width base network");
    assert!(
        !model.training.is_empty(),
        "its checkpoint carries its training history"
    );
}
