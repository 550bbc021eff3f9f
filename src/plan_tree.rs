//! The plan tree: every pruning plan a user kept, as nodes that branch from a base model
//! (root) and from each other, with their measured statistics; kept in a workspace file
//! (JSON, written atomically) that the app reopens on start. The statistics a node keeps
//! ([`NodeStats`]) are defined here, as part of the file format; the worker's protocol carries
//! them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::prune::{PruneMethod, PrunePlan, StructuredMethod};

/// Version of the workspace file format (checked on read).
pub const WORKSPACE_FORMAT: u32 = 1;

/// One kept plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanNode {
    pub id: u64,
    /// `None` for a root: a base model with nothing pruned.
    pub parent: Option<u64>,
    pub name: String,
    /// The base model's file (`None`: the embedded default model); children share their root's.
    pub model: Option<PathBuf>,
    pub plan: PrunePlan,
    /// Measured by the statistics job, when it ran.
    #[serde(default)]
    pub stats: Option<NodeStats>,
}

/// One plan tree node's measured model (the statistics job's answer, kept in the workspace
/// file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStats {
    pub params: usize,
    pub nonzero_params: usize,
    pub macs: u64,
    /// Median CPU forward of one 192x192 slice, milliseconds, measured here.
    pub latency_ms: f64,
    /// Dice WT/TC/ET on the open case (`None` without ground truth).
    pub dice_case: Option<[f64; 3]>,
    /// Mean Dice WT/TC/ET over the held-out synthetic cases.
    pub dice_held_out: [f64; 3],
    pub held_out_cases: usize,
}

/// Every node, the selected one and the next free id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanTree {
    format: u32,
    pub nodes: Vec<PlanNode>,
    pub selected: Option<u64>,
    next_id: u64,
}

impl Default for PlanTree {
    fn default() -> Self {
        PlanTree {
            format: WORKSPACE_FORMAT,
            nodes: Vec::new(),
            selected: None,
            next_id: 1,
        }
    }
}

impl PlanTree {
    /// The root of `model` (a base model, dense), added if the tree has none yet.
    pub fn root_of(&mut self, model: Option<&Path>) -> u64 {
        let existing = self
            .nodes
            .iter()
            .find(|n| n.parent.is_none() && n.model.as_deref() == model)
            .map(|n| n.id);
        existing.unwrap_or_else(|| {
            let name = match model {
                Some(path) => path
                    .file_name()
                    .map_or("model".into(), |n| n.to_string_lossy().into_owned()),
                None => "default model (dense)".into(),
            };
            let plan = PrunePlan::dense(PruneMethod::Structured(StructuredMethod::L2));
            self.push(None, name, model.map(Path::to_path_buf), plan)
        })
    }

    /// A new child of `parent` holding `plan`, selected; its id.
    pub fn add_child(&mut self, parent: u64, name: String, plan: PrunePlan) -> Option<u64> {
        let model = self.node(parent)?.model.clone();
        let id = self.push(Some(parent), name, model, plan);
        self.selected = Some(id);
        Some(id)
    }

    fn push(
        &mut self,
        parent: Option<u64>,
        name: String,
        model: Option<PathBuf>,
        plan: PrunePlan,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.nodes.push(PlanNode {
            id,
            parent,
            name,
            model,
            plan,
            stats: None,
        });
        id
    }

    pub fn node(&self, id: u64) -> Option<&PlanNode> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn node_mut(&mut self, id: u64) -> Option<&mut PlanNode> {
        self.nodes.iter_mut().find(|n| n.id == id)
    }

    pub fn selected_node(&self) -> Option<&PlanNode> {
        self.selected.and_then(|id| self.node(id))
    }

    /// The children of `parent` (`None`: the roots), in creation order.
    pub fn children(&self, parent: Option<u64>) -> impl Iterator<Item = &PlanNode> {
        self.nodes.iter().filter(move |n| n.parent == parent)
    }

    /// Removes `id` and everything under it; returns the removed nodes (their checkpoints are
    /// the caller's to delete). The selection moves to the parent.
    pub fn remove(&mut self, id: u64) -> Vec<PlanNode> {
        let mut doomed = vec![id];
        let mut i = 0;
        while i < doomed.len() {
            let parent = doomed[i];
            doomed.extend(self.children(Some(parent)).map(|n| n.id));
            i += 1;
        }
        let parent = self.node(id).and_then(|n| n.parent);
        let (removed, kept): (Vec<PlanNode>, Vec<PlanNode>) = std::mem::take(&mut self.nodes)
            .into_iter()
            .partition(|n| doomed.contains(&n.id));
        self.nodes = kept;
        if self.selected.is_some_and(|s| doomed.contains(&s)) {
            self.selected = parent;
        }
        removed
    }

    /// Depth of a node (roots 0).
    pub fn depth(&self, id: u64) -> usize {
        let mut depth = 0;
        let mut at = self.node(id).and_then(|n| n.parent);
        while let Some(parent) = at {
            depth += 1;
            at = self.node(parent).and_then(|n| n.parent);
        }
        depth
    }

    /// Nodes in tree order (each followed by its subtree), with their depths.
    pub fn in_order(&self) -> Vec<(usize, &PlanNode)> {
        let mut out = Vec::with_capacity(self.nodes.len());
        let mut stack: Vec<(usize, &PlanNode)> =
            self.children(None).map(|n| (0, n)).collect::<Vec<_>>();
        stack.reverse();
        while let Some((depth, node)) = stack.pop() {
            out.push((depth, node));
            let mut kids: Vec<_> = self
                .children(Some(node.id))
                .map(|n| (depth + 1, n))
                .collect();
            kids.reverse();
            stack.extend(kids);
        }
        out
    }

    /// Reads a workspace file, naming the file and what is wrong with it.
    pub fn read(path: &Path) -> Result<PlanTree, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        #[derive(Deserialize)]
        struct Version {
            format: u32,
        }
        let not_a_workspace = |e| format!("{}: not a plan tree workspace: {e}", path.display());
        let version: Version = serde_json::from_str(&text).map_err(not_a_workspace)?;
        if version.format != WORKSPACE_FORMAT {
            return Err(format!(
                "{}: workspace format {} (this version reads {WORKSPACE_FORMAT})",
                path.display(),
                version.format
            ));
        }
        let tree: PlanTree = serde_json::from_str(&text).map_err(not_a_workspace)?;
        tree.check()
            .map_err(|e| format!("{}: a broken plan tree: {e}", path.display()))?;
        Ok(tree)
    }

    /// Ids unique and below `next_id`, every parent present, no cycles (a hand-edited file).
    fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for node in &self.nodes {
            if !seen.insert(node.id) || node.id >= self.next_id {
                return Err(format!("node id {} repeated or beyond next_id", node.id));
            }
        }
        for node in &self.nodes {
            let mut at = node.parent;
            let mut steps = 0;
            while let Some(parent) = at {
                let Some(p) = self.node(parent) else {
                    return Err(format!("node {} has a missing parent {parent}", node.id));
                };
                steps += 1;
                if steps > self.nodes.len() {
                    return Err(format!("node {} is its own ancestor", node.id));
                }
                at = p.parent;
            }
        }
        Ok(())
    }

    /// Writes the workspace file atomically.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).expect("a plan tree serialises");
        crate::atomic::write_bytes(path, text.as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Where the workspace lives: `RAAGR2_WORKSPACE` when set, else `workspace.json` in the
/// user's data directory (`$XDG_DATA_HOME/raagr2-lab` or `~/.local/share/raagr2-lab`).
pub fn default_workspace_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RAAGR2_WORKSPACE") {
        return Some(PathBuf::from(path));
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(base.join("raagr2-lab").join("workspace.json"))
}

/// Where node `id`'s fine-tuned weights go: beside the workspace file.
pub fn node_checkpoint_path(workspace: &Path, id: u64) -> PathBuf {
    let dir = workspace.parent().unwrap_or(Path::new("."));
    let stem = workspace
        .file_stem()
        .map_or("workspace".into(), |s| s.to_string_lossy().into_owned());
    dir.join(format!("{stem}-checkpoints"))
        .join(format!("node-{id}.safetensors"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_branch_restore_and_survive_a_round_trip() {
        let mut tree = PlanTree::default();
        let root = tree.root_of(None);
        assert_eq!(tree.root_of(None), root, "one root per base model");
        let mut half = PrunePlan::dense(PruneMethod::Structured(StructuredMethod::L2));
        half.global_ratio = Some(0.5);
        let a = tree.add_child(root, "half".into(), half.clone()).unwrap();
        let b = tree.add_child(a, "half, fine-tuned".into(), half).unwrap();
        let c = tree
            .add_child(
                root,
                "other".into(),
                PrunePlan::dense(PruneMethod::Structured(StructuredMethod::BnGamma)),
            )
            .unwrap();
        let order: Vec<u64> = tree.in_order().iter().map(|(_, n)| n.id).collect();
        assert_eq!(order, vec![root, a, b, c]);
        assert_eq!(tree.depth(b), 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ws.json");
        tree.write(&path).unwrap();
        let mut back = PlanTree::read(&path).unwrap();
        assert_eq!(back, tree);
        back.selected = Some(b);
        let removed = back.remove(a);
        assert_eq!(removed.len(), 2, "a node goes with its subtree");
        assert_eq!(back.nodes.len(), 2);
        assert_eq!(
            back.selected,
            Some(root),
            "the selection moves to the parent"
        );
        std::fs::write(&path, "{\"format\": 7}").unwrap();
        let err = PlanTree::read(&path).unwrap_err();
        assert!(err.contains("ws.json") && err.contains("format 7"), "{err}");
        // A hand-edited cycle is refused instead of looping.
        tree.nodes[0].parent = Some(c);
        tree.write(&path).unwrap();
        let err = PlanTree::read(&path).unwrap_err();
        assert!(err.contains("own ancestor"), "{err}");
    }
}
