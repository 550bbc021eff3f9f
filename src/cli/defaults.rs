//! The command line's fall-backs: the embedded model when no checkpoint is given, held-out
//! synthetic cases when no data is given.

use std::path::Path;

use anyhow::Result;

use super::data_args::DataArgs;
use crate::defaults::{
    DEFAULT_MODEL_NAME, HELD_OUT_CASES, HELD_OUT_FIRST_SEED, default_checkpoint,
};
use crate::model::{Checkpoint, load_checkpoint};

/// The checkpoint at `path`, or the embedded default; with a name for reports.
pub fn model_or_default(path: Option<&Path>) -> Result<(Checkpoint, String)> {
    Ok(match path {
        Some(p) => (load_checkpoint(p)?, p.display().to_string()),
        None => (default_checkpoint(), DEFAULT_MODEL_NAME.to_string()),
    })
}

/// `data` as given, or the held-out synthetic cases when it names no source.
pub fn data_or_held_out(data: &DataArgs) -> DataArgs {
    if data.data.is_some() || data.synthetic.is_some() {
        return data.clone();
    }
    DataArgs {
        synthetic: Some(HELD_OUT_CASES),
        synthetic_seed: HELD_OUT_FIRST_SEED,
        ..data.clone()
    }
}
