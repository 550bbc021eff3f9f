//! The network as a PyTorch state_dict in safetensors: the reference code's key names,
//! BatchNorm not folded (running statistics and step counters included), and the channel plan
//! in the header metadata, so that `tools/raagr2_torch.py` (or the reference DLU-Net, when the
//! widths are uniform per level) loads it with `strict=True`.

use std::collections::HashMap;

use safetensors::tensor::Dtype;

use crate::model::checkpoint::{
    CONFIG_METADATA_KEY, FORMAT_METADATA_KEY, Storage, StoredTensor, serialize_tensors,
};
use crate::model::{Checkpoint, ModelError, apply_masks};

/// What `safetensors.torch` writes in the header's `format` entry.
pub const PYTORCH_FORMAT: &str = "pt";

/// Suffix of the BatchNorm buffers that PyTorch keeps beside every running variance.
const RUNNING_VAR: &str = ".running_var";

/// The state_dict bytes of `checkpoint` with its floats stored in `storage`: every weight and
/// buffer under its PyTorch key (unstructured masks baked in as zeros), one int64
/// `num_batches_tracked` per BatchNorm, and the model config (variant, head and every channel
/// width) as JSON under `raagr2.config` in the metadata.
pub fn pytorch_bytes(checkpoint: &Checkpoint, storage: Storage) -> Result<Vec<u8>, ModelError> {
    let mut weights = checkpoint.weights.clone();
    apply_masks(&mut weights, &checkpoint.masks)?;
    let scalar = Vec::new();
    let counters: Vec<String> = weights
        .keys()
        .filter_map(|k| k.strip_suffix(RUNNING_VAR))
        .map(|layer| format!("{layer}.num_batches_tracked"))
        .collect();
    let floats = weights.iter().map(|(k, t)| {
        (
            k.clone(),
            storage.dtype(),
            storage.encode(&t.values),
            &t.shape,
        )
    });
    let steps = counters
        .into_iter()
        .map(|k| (k, Dtype::I64, 0i64.to_le_bytes().to_vec(), &scalar));
    let tensors: Vec<StoredTensor> = floats.chain(steps).collect();
    let config = serde_json::to_string(&checkpoint.config).expect("a config serialises");
    let metadata = HashMap::from([
        (FORMAT_METADATA_KEY.to_string(), PYTORCH_FORMAT.to_string()),
        (CONFIG_METADATA_KEY.to_string(), config),
    ]);
    serialize_tensors(&tensors, metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::checkpoint::checkpoint_from_bytes;

    #[test]
    fn the_state_dict_reads_back_as_the_same_model_with_one_counter_per_batch_norm() {
        let checkpoint = crate::defaults::default_checkpoint();
        let bytes = pytorch_bytes(&checkpoint, Storage::F32).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let counters = file
            .names()
            .into_iter()
            .filter(|k| k.ends_with("num_batches_tracked"))
            .count();
        let norms = checkpoint
            .weights
            .keys()
            .filter(|k| k.ends_with(RUNNING_VAR))
            .count();
        assert!(norms > 0);
        assert_eq!(counters, norms);
        assert_eq!(file.len(), checkpoint.weights.len() + norms);
        let back =
            checkpoint_from_bytes(std::path::Path::new("export.safetensors"), &bytes).unwrap();
        assert_eq!(back.weights, checkpoint.weights);
        assert_eq!(back.config, checkpoint.config);
    }
}
