//! The model options every command that builds a model shares: a checkpoint, or a fresh model
//! of a variant, width and head.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use crate::backend;
use crate::model::{ChannelPlan, Checkpoint, Head, ModelConfig, Variant, load_checkpoint};

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A raagr2-lab checkpoint (.safetensors with config); omit to describe a fresh model.
    pub checkpoint: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Variant::Base)]
    pub variant: Variant,
    /// Width multiplier of the full 32..512 encoder (0.25 gives 8..128).
    #[arg(long, default_value_t = 1.0, conflicts_with = "widths")]
    pub width: f64,
    /// The five encoder widths, e.g. 8,16,32,64,128.
    #[arg(long, value_delimiter = ',')]
    pub widths: Option<Vec<usize>>,
    #[arg(long, value_enum, default_value_t = Head::Regions3)]
    pub head: Head,
}

impl ModelArgs {
    /// The config and weights this selects (fresh random weights without a checkpoint).
    pub(super) fn checkpoint(&self) -> Result<Checkpoint> {
        self.checkpoint_on(&backend::cpu_device())
    }

    /// As [`Self::checkpoint`], fresh weights drawn on `device` (whose seed then applies).
    pub(super) fn checkpoint_on(&self, device: &burn::prelude::Device) -> Result<Checkpoint> {
        if let Some(path) = &self.checkpoint {
            return Ok(load_checkpoint(path)?);
        }
        let config = ModelConfig::new(
            self.variant,
            self.head,
            plan_from_args(self.width, &self.widths)?,
        );
        config.validate()?;
        let model = config.init(device);
        Ok(Checkpoint::from_model(&config, &model))
    }
}

pub(super) fn plan_from_args(width: f64, widths: &Option<Vec<usize>>) -> Result<ChannelPlan> {
    if let Some(w) = widths {
        if w.len() != 5 {
            bail!(
                "--widths needs five comma-separated encoder widths, got {}",
                w.len()
            );
        }
        if w.contains(&0) {
            bail!("--widths: every encoder width must be at least 1, got {w:?}");
        }
        return Ok(ChannelPlan::from_encoder_widths([
            w[0], w[1], w[2], w[3], w[4],
        ]));
    }
    if !(width.is_finite() && width > 0.0 && width <= 4.0) {
        bail!("--width must be a multiplier in (0, 4], got {width}");
    }
    Ok(ChannelPlan::with_width_multiplier(width))
}
