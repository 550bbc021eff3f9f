//! What panels share with the app shell: the read-only [`AppView`] they draw from and the
//! [`PanelCommand`]s they emit (the shell alone sends worker requests and changes shared state).

use std::sync::Arc;

use super::state::{GpuState, PruningState, TrainPoint};
use super::{Settings, Tab};
use crate::prune::sweep::SweepPoint;
use crate::prune::{PruneMethod, PrunePlan, StructuredMethod};
use crate::render::{OverlayStyle, SliceAxis, Window};
use crate::worker::{CaseView, FindingsView, MapsView, ModelView, PreviewResult};

/// The app's shared state as panels read it (references into the shell, one frame long).
pub struct AppView<'a> {
    pub settings: &'a Settings,
    pub case: Option<&'a Arc<CaseView>>,
    pub model: Option<&'a ModelView>,
    pub pruning: &'a PruningState,
    pub preview: Option<&'a PreviewResult>,
    /// Whole-case Dice of the preview of the current settings (none while a newer preview is
    /// on its way).
    pub current_case_dice: Option<[f64; 3]>,
    pub preview_case_dice: Option<[f64; 3]>,
    /// The number format `preview_case_dice` is scored in.
    pub case_dice_precision: crate::precision::Precision,
    pub dense_case_dice: Option<[f64; 3]>,
    pub dense_codes: Option<&'a [u8]>,
    /// The pruned model's whole-case segmentation once scored, else the preview's axial slice
    /// placed in a volume of the case's size.
    pub pruned_codes: Option<&'a [u8]>,
    /// The same two segmentations as shared handles (what the 3-D view's upload keeps).
    pub dense_volume: Option<&'a Arc<Vec<u8>>>,
    pub pruned_volume: Option<&'a Arc<Vec<u8>>>,
    /// `pruned_codes` covers the whole case (not only the preview's axial slice).
    pub pruned_whole_case: bool,
    /// Volumes and lesions of the open case (the pruned model's once it has segmented the whole
    /// case).
    pub findings: Option<&'a FindingsView>,
    /// `findings` holds the pruned figures of the current preview.
    pub pruned_findings_current: bool,
    /// The voxel the viewer was sent to (a lesion clicked), marked on the images.
    pub cursor: Option<[usize; 3]>,
    /// Changes whenever a segmentation the viewer shows changes (texture cache key).
    pub codes_generation: u64,
    pub slice_idx: usize,
    pub tab: Tab,
    /// The running background job: (done, total, what).
    pub job: Option<&'a (usize, usize, String)>,
    /// Whether the running job is the budget search (its progress shows in its own section).
    pub searching: bool,
    pub sweep_points: &'a [SweepPoint],
    pub maps: Option<&'a Arc<MapsView>>,
    pub notices: &'a [String],
    pub gpu: &'a GpuState,
    pub fine_tune_history: &'a [TrainPoint],
    /// A fine-tuned model exists in the worker; `show_tuned` previews it.
    pub tuned_available: bool,
    pub show_tuned: bool,
}

/// What a panel asks of the shell; carried out after the panels are drawn, in order.
#[derive(Debug, Clone)]
pub enum PanelCommand {
    /// Another plane (the slice goes to its middle).
    SetAxis(SliceAxis),
    SetModality(usize),
    SetSlice(usize),
    /// Every plane through this voxel (x, y, z): the shown plane's slice moves there and the
    /// others follow when chosen.
    GoToVoxel([usize; 3]),
    /// Segment whole cases on the model's 1 mm grid (or the case's voxels as they are).
    SetResample(bool),
    /// Wheel or arrow steps through the slices.
    MoveSlice(i64),
    SetWindow(Window),
    SetOverlay(OverlayStyle),
    /// The pruning settings as the panel edited them (a new model to preview).
    SetPruning {
        method: PruneMethod,
        pruning: PruningState,
    },
    ProbeGpu,
    /// Score the pruned model's whole-case Dice in this number format.
    SetCaseDicePrecision(crate::precision::Precision),
    StartFineTune,
    StartSweep,
    CancelJob,
    ShowTuned(bool),
    /// Export the previewed model (a save dialog, then the worker writes it).
    ExportModel(super::ExportChoice),
    /// Export plan tree node `id`'s model.
    ExportNodeModel {
        id: u64,
        choice: super::ExportChoice,
    },
    SavePrediction,
    /// The case report (PNG) of the previewed model.
    SaveReport,
    SaveSweep,
    StartBudgetSearch(StructuredMethod),
    StartSensitivity,
    StartCka,
    /// The filter/attention maps should follow what changed.
    WantMaps,
    StartChannelScores {
        group: String,
    },
    /// Marks a channel of a group (of `channels`) for removal or back.
    TogglePick {
        group: String,
        channels: usize,
        channel: usize,
    },
    ClearPicks {
        group: String,
    },
    OpenStudyDialog,
    KeepPlan,
    SelectNode(u64),
    DeleteNode(u64),
    StartNodeStats,
    CompareNodes,
    ExportPlan {
        plan: PrunePlan,
        file_name: String,
    },
    SetPresenter(bool),
    LessonOffered,
    Notice(String),
    /// Something failed: the status line says so and the error is listed.
    Failed {
        status: String,
        error: String,
    },
}
