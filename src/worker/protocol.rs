//! The worker's protocol: what the UI asks for ([`Request`]) and what the worker answers
//! ([`Response`]), with the plain-data views they carry (no burn types cross to the UI).

use std::path::PathBuf;

use crate::analysis::maps::GateMaps;
use crate::analysis::sensitivity::SensitivityCell;
use crate::data::dataset::PreparedCase;
use crate::export::{ModelFormat, Precision};
use crate::metrics::findings::{Lesion, Segmentations, VolumeTable, lesions};
use crate::metrics::{Region, RegionScores};
use crate::plan_tree::NodeStats;
use crate::prune::sweep::SweepPoint;
use crate::prune::{PruneMethod, PrunePlan};

/// What the UI asks for.
#[derive(Debug, Clone)]
pub enum Request {
    /// The embedded default case (synthetic, generated in memory).
    OpenDefault,
    /// Segment whole cases on the model's 1 mm grid, labels back on the case's own grid (or
    /// the case's voxels as they are); the dense segmentation is made again.
    SetResample(bool),
    /// A BraTS case folder, or a file inside one.
    OpenPath(PathBuf),
    /// A checkpoint of this project or a PyTorch state_dict (safetensors) as the dense model;
    /// `None`: the embedded default model. Answered by `ModelReady` (and the open case
    /// segmented again) or an error naming the file.
    OpenModel(Option<PathBuf>),
    /// Activation maps of a channel group of the dense model and every attention gate's psi
    /// for the dense model and the model of `preview`, on `preview`'s slice.
    Maps(MapsRequest),
    /// The axial segmentations of two models (plan tree nodes) on one slice, to compare.
    CompareSlices {
        id: u64,
        a: PreviewRequest,
        b: PreviewRequest,
    },
    /// Params, MACs, latency and Dice (open case, held-out cases) of each node's model (a
    /// background job).
    StartNodeStats(Vec<(u64, PreviewRequest)>),
    /// SNIP, sensitivity and instability of every channel of one group of the dense model (a
    /// background job).
    StartChannelScores { group: String, slice_idx: usize },
    /// Prune the dense model and segment axial slice `slice_idx` with the result.
    Preview(PreviewRequest),
    /// Dice of the open case vs sparsity for each method over `ratios` (a background job).
    StartSweep {
        methods: Vec<PruneMethod>,
        ratios: Vec<f64>,
    },
    /// Fine-tune the model of `preview` (a background job) on synthetic training cases.
    StartFineTune(FineTuneRequest),
    /// Search per-group ratios of the dense model under a Dice budget on the open case (a
    /// background job): `AutoUniform`, then an `AutoStep` per kept step, then `AutoPruned`
    /// (the searched model can then be previewed and saved as the fine-tuned one).
    StartAutoPrune(AutoPruneRequest),
    /// Prune each channel group alone at each ratio and score the open case (a background job).
    StartSensitivity {
        method: PruneMethod,
        ratios: Vec<f64>,
    },
    /// Layer x layer linear CKA between two models (`None`: the dense model) on the open case's
    /// tumour slices (a background job).
    StartCka {
        a: Option<PreviewRequest>,
        b: Option<PreviewRequest>,
    },
    /// Stop the running background job after its current step.
    CancelJob,
    /// Look for a wgpu adapter (answered by `GpuProbe`; not a job: it runs beside one).
    ProbeGpu,
    /// Save the model of `preview` (fine-tuned when `fine_tuned`) in `format` and `precision`
    /// (answered by `Saved` or an error naming the file).
    ExportModel {
        preview: PreviewRequest,
        fine_tuned: bool,
        path: PathBuf,
        format: ModelFormat,
        precision: Precision,
    },
    /// Segment the whole open case with the dense model (`preview: None`) or the model of
    /// `preview`, and save the label map as NIfTI with the case's geometry.
    ExportPrediction {
        preview: Option<PreviewRequest>,
        path: PathBuf,
    },
    /// The open case's one-page report (truth, dense and the model of `preview`) as a PNG.
    ExportReport {
        preview: PreviewRequest,
        path: PathBuf,
    },
    /// Save a plan tree node's plan as a plan file (`prune --plan`).
    ExportPlan { plan: PrunePlan, path: PathBuf },
    /// Read a study file (`study -o OUT` writes OUT.json): answered by `StudyOpened` or an
    /// error naming the file.
    OpenStudy(PathBuf),
    /// Save sweep points as CSV (`.csv`) or as the PNG plot (any other extension).
    ExportSweep {
        points: Vec<SweepPoint>,
        path: PathBuf,
    },
}

/// A CKA matrix as the UI shows it.
#[derive(Debug, Clone)]
pub struct CkaView {
    /// Which models (rows vs columns), in words.
    pub title: String,
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    /// `values[row][column]`, NaN where undefined.
    pub values: Vec<Vec<f64>>,
    pub slices: usize,
}

/// What a budget search runs under.
#[derive(Debug, Clone)]
pub struct AutoPruneRequest {
    pub settings: crate::prune::auto::AutoSettings,
    /// Adam steps of each of the search's fine-tunes (0: none).
    pub fine_tune_steps: usize,
}

/// A uniform ratio on the budget search's chart.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoPoint {
    pub ratio: f64,
    pub macs: u64,
    /// Dice on the search's tumour slices.
    pub subset_dice: RegionScores,
}

/// A step the budget search kept.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoStepView {
    pub step: usize,
    /// The group it cut.
    pub group: String,
    /// Share removed so far per group, by the names in `group_names`.
    pub ratios: Vec<f64>,
    pub group_names: Vec<String>,
    pub macs: u64,
    pub subset_dice: RegionScores,
}

/// The end of a budget search.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoOutcome {
    /// The per-group ratios it found (and its method).
    pub plan: PrunePlan,
    pub steps: usize,
    pub macs: u64,
    pub dense_macs: u64,
    /// Dice on the whole open case, of the result and of the dense model.
    pub case_dice: RegionScores,
    pub dense_case_dice: RegionScores,
    pub subset_dice: RegionScores,
    /// Adam steps of its fine-tunes.
    pub fine_tune_steps: usize,
    /// Why it ended.
    pub stopped: String,
}

/// What a fine-tune job trains.
#[derive(Debug, Clone)]
pub struct FineTuneRequest {
    pub preview: PreviewRequest,
    pub epochs: usize,
    pub learning_rate: f64,
    /// Batches per epoch (small numbers keep a demo short).
    pub batches_per_epoch: usize,
    pub device: crate::backend::DeviceChoice,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PreviewRequest {
    /// Increases with every request; results carry it so stale ones can be dropped.
    pub id: u64,
    /// The dense model pruned by this plan (or the plan's saved checkpoint, when it has one).
    pub plan: PrunePlan,
    pub slice_idx: usize,
    /// Preview the fine-tuned model (from the last fine-tune job) instead of pruning afresh.
    pub fine_tuned: bool,
    /// The number format the whole-case Dice is scored in (as an export in it computes).
    pub precision: Precision,
}

impl PreviewRequest {
    /// Both preview the same model in the same number format (only the slice may differ), so
    /// one whole-case segmentation serves both. Never so for the fine-tuned model, which each
    /// fine-tune replaces.
    pub fn same_model(&self, other: &PreviewRequest) -> bool {
        !self.fine_tuned
            && !other.fine_tuned
            && self.plan == other.plan
            && self.precision == other.precision
    }
}

/// What the filter and attention views ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct MapsRequest {
    pub id: u64,
    /// The pruned model (its slice is the maps' slice).
    pub preview: PreviewRequest,
    /// The dense model's channel group whose activations are wanted.
    pub group: Option<String>,
    /// Whether the gates of both models are wanted.
    pub attention: bool,
}

/// Maps on the open case's axial plane (`nx * ny`, x fastest).
#[derive(Debug, Clone)]
pub struct MapsView {
    pub id: u64,
    pub slice_idx: usize,
    pub group: Option<String>,
    /// The dense model's activation map per channel of `group`.
    pub channels: Vec<Vec<f32>>,
    /// (gate, mean psi) of the dense and of the pruned model; NaN outside the network's window.
    pub attention_dense: GateMaps,
    pub attention_pruned: GateMaps,
    /// Time the worker spent on the maps.
    pub millis: f64,
}

/// Per-channel scores of one group that need data or training (a background job).
#[derive(Debug, Clone, Default)]
pub struct ChannelScoresView {
    pub group: String,
    pub snip: Vec<f32>,
    pub sensitivity: Vec<f32>,
    pub instability: Vec<f32>,
}

/// A case as the viewer needs it.
#[derive(Debug, Clone)]
pub struct CaseView {
    pub id: String,
    /// x, y, z voxel counts (x fastest in the arrays).
    pub dims: [usize; 3],
    pub spacing_mm: [f32; 3],
    /// T1, T1ce, T2, FLAIR, z-scored inside the brain.
    pub modalities: [Vec<f32>; 4],
    /// Sub-region codes 0 background, 1 NCR/NET, 2 ED, 3 ET, when a segmentation exists.
    pub truth: Option<Vec<u8>>,
}

/// The dense model's prunable structure and size.
#[derive(Debug, Clone)]
pub struct ModelView {
    /// The file it came from (`None`: the embedded default model).
    pub source: Option<PathBuf>,
    pub description: String,
    /// (name, channels, mean filter-L2 importance per channel).
    pub groups: Vec<GroupView>,
    pub params: usize,
    pub macs: u64,
    /// The model's own training, per epoch, when its checkpoint records it (what the Plots tab
    /// shows until the app fine-tunes).
    pub training: Vec<crate::train::EpochRecord<crate::train::DiceFigures>>,
}

#[derive(Debug, Clone)]
pub struct GroupView {
    pub name: String,
    pub channels: usize,
    /// Filter-L2 importance per channel.
    pub importance: Vec<f32>,
    /// Mean |gamma| of the batch norms on each channel (network slimming's score).
    pub bn_gamma: Vec<f32>,
}

/// What a clinician reads of the open case: each region's volume in the ground truth, the
/// dense and (once scored) the pruned segmentation, and the WT, TC and ET lesions.
#[derive(Debug, Clone)]
pub struct FindingsView {
    pub case_id: String,
    pub volumes: VolumeTable,
    /// WT's lesions, then TC's, then ET's (each as `metrics::findings::lesions` lists them).
    pub lesions: Vec<Lesion>,
}

impl FindingsView {
    /// The findings of `case` with the segmentations given.
    pub fn of(case: &PreparedCase, dense: Option<&[u8]>, pruned: Option<&[u8]>) -> FindingsView {
        let maps = Segmentations {
            truth: case.regions.as_deref(),
            dense,
            pruned,
        };
        let grid = case.grid();
        FindingsView {
            case_id: case.id.clone(),
            volumes: maps.volumes(&grid),
            lesions: [Region::Wt, Region::Tc, Region::Et]
                .into_iter()
                .flat_map(|region| lesions(&maps, &grid, region))
                .collect(),
        }
    }
}

/// The result of one preview.
#[derive(Debug, Clone)]
pub struct PreviewResult {
    pub id: u64,
    pub slice_idx: usize,
    /// Sub-region codes of the axial slice (dims x * y).
    pub codes: Vec<u8>,
    pub params: usize,
    pub nonzero_params: usize,
    pub macs: u64,
    /// Channels kept per group (same order as the model's groups).
    pub kept: Vec<usize>,
    pub prune_ms: f64,
    pub forward_ms: f64,
}

/// What the worker tells the UI.
#[derive(Debug, Clone)]
pub enum Response {
    Status(String),
    ModelReady(ModelView),
    CaseLoaded(CaseView),
    /// The dense model's segmentation of the whole open case (codes, case voxel order).
    DensePrediction {
        case_id: String,
        codes: Vec<u8>,
        /// Volumes and lesions of the truth and the dense segmentation.
        findings: Box<FindingsView>,
    },
    Preview(PreviewResult),
    /// The previewed model over the whole open case (computed after the slice preview when no
    /// newer request waits; `request` is the preview's): its segmentation (case voxel order),
    /// Dice WT/TC/ET when the case has a ground truth, and the case's findings with it.
    PreviewWholeCase {
        request: Box<PreviewRequest>,
        dice: Option<[f64; 3]>,
        codes: Vec<u8>,
        findings: Box<FindingsView>,
    },
    /// A background job advanced: `done` of `total` steps, with what it is doing.
    JobProgress {
        done: usize,
        total: usize,
        label: String,
    },
    /// One point of a sweep: Dice WT/TC/ET of the open case at a sparsity.
    SweepPoint(SweepPoint),
    /// One fine-tuning epoch: losses and validation Dice.
    TrainEpoch {
        epoch: usize,
        train_loss: f64,
        val_loss: f64,
        val_dice: [f64; 3],
        /// Wall time of the epoch, validation included.
        secs: f64,
    },
    /// The wgpu adapter's name, or why there is none.
    GpuProbe(Result<String, String>),
    /// Fine-tuning ended; the tuned model can be previewed with `fine_tuned: true`.
    FineTuned {
        device: String,
        epochs_done: usize,
        cancelled: bool,
    },
    /// A background job request was accepted and its thread runs; `label` says what it does.
    JobStarted {
        label: String,
    },
    /// A background job request was not started (no case, no ground truth, another job
    /// running...): nothing runs, `reason` says why.
    JobRefused {
        reason: String,
    },
    /// The background job ended (finished or cancelled).
    JobFinished {
        cancelled: bool,
    },
    /// The background job stopped on an error or a bug; nothing more comes from it.
    JobFailed {
        reason: String,
    },
    /// One cell of a sensitivity run (group index into the model's groups).
    SensitivityCell(SensitivityCell),
    /// A finished CKA matrix.
    Cka(CkaView),
    /// A file was written.
    Saved(PathBuf),
    /// The answer to `OpenStudy`.
    StudyOpened {
        path: PathBuf,
        file: Box<crate::prune::study::StudyFile>,
    },
    /// The answer to `Maps`.
    Maps(MapsView),
    /// The answer to `CompareSlices`: sub-region codes of the slice (dims x * y) by each model.
    Comparison {
        id: u64,
        slice_idx: usize,
        a: Vec<u8>,
        b: Vec<u8>,
    },
    /// The uniform-ratio curve of a budget search (first).
    AutoUniform(Vec<AutoPoint>),
    /// A step the budget search kept.
    AutoStep(AutoStepView),
    /// The budget search's result; the job then finishes.
    AutoPruned(AutoOutcome),
    /// One node measured by a `StartNodeStats` job.
    NodeStats {
        node: u64,
        stats: NodeStats,
    },
    /// A `StartChannelScores` job's results so far (each list fills as it is computed).
    ChannelScores(ChannelScoresView),
    /// A request failed; the message names what and why.
    Error(String),
}
