//! Atomic file replacement: write a temporary sibling, sync it, rename it over the target, so an
//! interrupted write never leaves a half-written file where a good one was.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A hidden temporary sibling of `path` (`.name.<pid>.tmp.<ext>`), keeping `.nii.gz` / `.nii`
/// endings because writers such as the NIfTI one choose compression from the extension.
pub fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, ext) = [".nii.gz", ".nii"]
        .iter()
        .find_map(|e| name.strip_suffix(e).map(|s| (s.to_string(), &e[1..])))
        .unwrap_or((name.clone(), "part"));
    path.with_file_name(format!(".{stem}.{}.tmp.{ext}", std::process::id()))
}

/// Creates the parent folder of `path` if needed.
pub fn ensure_parent(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => fs::create_dir_all(dir),
        None => Ok(()),
    }
}

/// Syncs the finished temporary file and renames it over `path`; removes it on failure.
pub fn commit(tmp: &Path, path: &Path) -> std::io::Result<()> {
    let result = fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .and_then(|_| fs::rename(tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    ensure_parent(path)?;
    let tmp = temp_sibling(path);
    if let Err(e) = fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes)) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    commit(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_keep_nifti_endings() {
        let t = temp_sibling(Path::new("/d/case_seg.nii.gz"));
        assert!(t.to_string_lossy().ends_with(".tmp.nii.gz"), "{t:?}");
        assert!(t.starts_with("/d"));
        let t = temp_sibling(Path::new("model.safetensors"));
        assert!(t.to_string_lossy().ends_with(".tmp.part"), "{t:?}");
    }
}
