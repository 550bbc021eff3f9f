//! Running a peer's measuring script (embedded in the binary) with `python3` or
//! `$RAAGR2_PYTHON`, and reading the JSON report it prints: the one way `bench` reaches PyTorch,
//! ONNX Runtime and nibabel.

use std::process::Command;

use serde::de::DeserializeOwned;

/// Writes `source` (the script `name`, e.g. "tools/torch_bench.py") to a temporary file, runs
/// it with `args` and `--json`, and parses what it prints; the error says which script failed
/// and the last lines it wrote to stderr.
pub fn run<T: DeserializeOwned>(name: &str, source: &str, args: &[String]) -> Result<T, String> {
    let file_name = name.rsplit('/').next().unwrap_or(name);
    let script = std::env::temp_dir().join(format!("raagr2-{}-{file_name}", std::process::id()));
    std::fs::write(&script, source).map_err(|e| format!("{}: {e}", script.display()))?;
    let python = std::env::var("RAAGR2_PYTHON").unwrap_or_else(|_| "python3".into());
    let output = Command::new(&python)
        .arg(&script)
        .args(args)
        .arg("--json")
        .output();
    let _ = std::fs::remove_file(&script);
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
