//! `attention` and `activations`: figures of what the network computes on one slice (each
//! attention gate's psi over FLAIR, dense beside pruned; a channel group's activation maps
//! sorted by importance) as PNGs for papers.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};

use super::defaults;
use crate::analysis::maps::{
    PSI_DIFFERENCE_LIMIT, SliceMaps, activation_range, finite_range, slice_maps,
};
use crate::backend;
use crate::data::dataset::{PreparedCase, open_case};
use crate::model::Checkpoint;
use crate::montage::{display_window, tumour_slice};
use crate::plot::{Tile, write_tiles_png};
use crate::prune::{ChannelGraph, PrunePlan, StructuredMethod, channel_importance};
use crate::render::{MapPalette, Window, render_map};

/// The case, slice and model a figure shows.
#[derive(Args, Debug)]
pub struct SliceArgs {
    /// A BraTS case folder (or a file inside one); the embedded default case when omitted.
    pub case: Option<PathBuf>,
    /// Axial slice (default: the one with the most tumour, else the middle).
    #[arg(long)]
    pub slice: Option<usize>,
    /// A checkpoint; the embedded default model when omitted.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A pruning plan (the app's plan export) applied to the model.
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// Where the PNG goes.
    #[arg(short, long)]
    pub output: PathBuf,
}

#[derive(Args, Debug)]
pub struct AttentionArgs {
    #[command(flatten)]
    pub slice: SliceArgs,
}

#[derive(Args, Debug)]
pub struct ActivationsArgs {
    #[command(flatten)]
    pub slice: SliceArgs,
    /// The channel group (names as `info` and the app show them, e.g. `enc1.out`, `att3`).
    #[arg(long)]
    pub group: String,
    /// Order of the channels: by filter L2, by BN |gamma|, or as they are.
    #[arg(long, value_enum, default_value_t = ChannelOrder::L2)]
    pub sort: ChannelOrder,
    /// Tiles per row.
    #[arg(long, default_value_t = 8)]
    pub columns: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChannelOrder {
    L2,
    BnGamma,
    Index,
}

/// What both figures start from: the case, the slice, the (possibly pruned) model.
struct Scene {
    case: PreparedCase,
    z: usize,
    dense: Checkpoint,
    pruned: Option<Checkpoint>,
    window: Window,
}

impl Scene {
    fn open(args: &SliceArgs) -> Result<Scene> {
        let case = match &args.case {
            Some(path) => open_case(path).map_err(|e| anyhow!(e))?.0,
            None => crate::defaults::default_case(),
        };
        let z = match args.slice {
            Some(z) if z >= case.dims[2] => bail!(
                "--slice {z}: {} has {} axial slices (0..{})",
                case.id,
                case.dims[2],
                case.dims[2] - 1
            ),
            Some(z) => z,
            None => tumour_slice(&case),
        };
        let (dense, _) = defaults::model_or_default(args.model.as_deref())?;
        let pruned = match &args.plan {
            Some(path) => Some(plan_model(path, &dense)?),
            None => None,
        };
        let window = display_window(&case.modalities[3]);
        Ok(Scene {
            case,
            z,
            dense,
            pruned,
            window,
        })
    }

    fn maps(&self, checkpoint: &Checkpoint, group: Option<&str>) -> Result<SliceMaps> {
        let device = backend::cpu_device();
        let model = checkpoint.build(&device)?.folded();
        slice_maps(&model, &self.case, self.z, group, group.is_none(), &device)
            .map_err(|e| anyhow!(e))
    }

    /// A map over FLAIR as a captioned tile.
    fn tile(&self, caption: String, map: &[f32], palette: MapPalette, opacity: f32) -> Tile {
        let (size, rgba) = render_map(
            &self.case.modalities[3],
            self.case.dims,
            self.z,
            self.window,
            map,
            palette,
            opacity,
        );
        Tile {
            caption,
            size,
            rgba,
        }
    }
}

/// Psi over FLAIR for every gate: the model's row, and with `--plan` the pruned model's row
/// and their difference.
pub fn attention(args: AttentionArgs) -> Result<()> {
    let scene = Scene::open(&args.slice)?;
    let dense = scene.maps(&scene.dense, None)?;
    // One colour scale for every gate (dense and pruned), from the dense gates' range.
    let (low, high) =
        finite_range(dense.attention.iter().map(|(_, m)| m.as_slice())).unwrap_or((0.0, 1.0));
    let psi = MapPalette::Heat { low, high };
    let mut tiles: Vec<Tile> = dense
        .attention
        .iter()
        .map(|(gate, map)| scene.tile(format!("{gate} psi"), map, psi, 0.6))
        .collect();
    if let Some(pruned) = &scene.pruned {
        let after = scene.maps(pruned, None)?;
        tiles.extend(
            after
                .attention
                .iter()
                .map(|(gate, map)| scene.tile(format!("{gate} pruned"), map, psi, 0.6)),
        );
        for ((gate, a), (_, b)) in dense.attention.iter().zip(&after.attention) {
            let diff: Vec<f32> = b.iter().zip(a).map(|(b, a)| b - a).collect();
            let palette = MapPalette::Diverging {
                limit: PSI_DIFFERENCE_LIMIT,
            };
            tiles.push(scene.tile(format!("{gate} pruned - dense"), &diff, palette, 0.9));
        }
    }
    let title = format!(
        "attention gates (mean psi over channels, {low:.2}-{high:.2}), {} axial slice {}{}",
        scene.case.id,
        scene.z,
        if scene.pruned.is_some() {
            ": dense, pruned, difference"
        } else {
            ""
        }
    );
    write_tiles_png(&args.slice.output, &title, &tiles, dense.attention.len())?;
    report_written(&args.slice.output, tiles.len())
}

/// Every channel of one group as a heat map, sorted by importance.
pub fn activations(args: ActivationsArgs) -> Result<()> {
    let scene = Scene::open(&args.slice)?;
    let checkpoint = scene.pruned.as_ref().unwrap_or(&scene.dense);
    let maps = scene.maps(checkpoint, Some(&args.group))?;
    let graph = ChannelGraph::of(&checkpoint.config);
    let g = graph
        .group_index(&args.group)
        .ok_or_else(|| anyhow!("no channel group {:?}", args.group))?;
    let score = |method| -> Result<Vec<f32>> {
        Ok(channel_importance(method, &graph, &checkpoint.weights)?[g].clone())
    };
    let (l2, gamma) = (
        score(StructuredMethod::L2)?,
        score(StructuredMethod::BnGamma)?,
    );
    let mut order: Vec<usize> = (0..maps.channels.len()).collect();
    match args.sort {
        ChannelOrder::L2 => order.sort_by(|a, b| l2[*b].total_cmp(&l2[*a])),
        ChannelOrder::BnGamma => order.sort_by(|a, b| gamma[*b].total_cmp(&gamma[*a])),
        ChannelOrder::Index => {}
    }
    let tiles: Vec<Tile> = order
        .iter()
        .map(|&c| {
            let map = &maps.channels[c];
            let (low, high) = activation_range(map);
            let palette = MapPalette::Heat { low, high };
            let caption = format!("#{c} L2 {:.2} g {:.2}", l2[c], gamma[c]);
            scene.tile(caption, map, palette, 1.0)
        })
        .collect();
    let title = format!(
        "{} activations ({} channels, sorted by {:?}), {} axial slice {}",
        args.group,
        tiles.len(),
        args.sort,
        scene.case.id,
        scene.z
    );
    write_tiles_png(&args.slice.output, &title, &tiles, args.columns)?;
    report_written(&args.slice.output, tiles.len())
}

/// The model of the plan file `path`: its saved (fine-tuned) weights when it has them, else
/// the plan applied to `dense` (errors name the plan file).
pub(super) fn plan_model(path: &Path, dense: &Checkpoint) -> Result<Checkpoint> {
    use anyhow::Context;
    let plan = PrunePlan::read(path)?;
    match &plan.checkpoint {
        Some(weights) => {
            eprintln!("using the plan's saved weights {}", weights.display());
            crate::model::load_checkpoint(weights)
                .with_context(|| format!("{}: the plan's saved weights", path.display()))
        }
        None => plan
            .apply(dense, None)
            .with_context(|| format!("{}: applying the plan", path.display())),
    }
}

fn report_written(path: &Path, tiles: usize) -> Result<()> {
    let size = std::fs::metadata(path)
        .with_context(|| path.display().to_string())?
        .len();
    eprintln!("wrote {} ({tiles} maps, {size} bytes)", path.display());
    Ok(())
}
