//! Running a peer's measuring script (embedded in the binary) with `python3` or
//! `$RAAGR2_PYTHON`, and reading the JSON report it prints: the one way `bench` reaches PyTorch,
//! ONNX Runtime and nibabel.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;

/// A peer script embedded in the binary: its path in the repository (e.g.
/// "tools/torch_bench.py") and its text.
pub type Script = (&'static str, &'static str);

/// Writes `script` and the modules it imports (`modules`) into a temporary folder, runs the
/// script with `args` and `--json`, and parses what it prints; the error says which script
/// failed and the last lines it wrote to stderr.
pub fn run<T: DeserializeOwned>(
    script: Script,
    modules: &[Script],
    args: &[String],
) -> Result<T, String> {
    let name = script.0;
    // One folder per call: tests run peers in parallel threads of one process.
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let folder = std::env::temp_dir().join(format!("raagr2-peer-{}-{call}", std::process::id()));
    let written = std::fs::create_dir_all(&folder)
        .and_then(|()| {
            std::iter::once(&script)
                .chain(modules)
                .try_for_each(|(path, text)| std::fs::write(folder.join(file_name(path)), text))
        })
        .map_err(|e| format!("{}: {e}", folder.display()));
    let script = folder.join(file_name(name));
    let output = written.map(|()| {
        let python = std::env::var("RAAGR2_PYTHON").unwrap_or_else(|_| "python3".into());
        let output = Command::new(&python)
            .arg(&script)
            .args(args)
            .arg("--json")
            .output();
        (python, output)
    });
    let _ = std::fs::remove_dir_all(&folder);
    let (python, output) = output?;
    let output = output.map_err(|e| format!("cannot run {python}: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let mut tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        tail.reverse();
        return Err(format!(
            "{python} {name} failed ({}): {}",
            output.status,
            tail.join(" | ")
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("{name} printed no report ({e})"))
}

/// The last component of a repository path.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
