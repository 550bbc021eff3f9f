//! The `raagr2-lab` binary run as users run it, its output captured: one runner for every
//! command-line test.

use std::ffi::OsStr;
use std::process::{Command, Output};

/// A command of the binary under test, to add arguments or environment to.
pub fn command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_raagr2-lab"))
}

/// Runs the binary with `args` and captures what it printed.
pub fn run<S: AsRef<OsStr>>(args: &[S]) -> Output {
    command().args(args).output().expect("the binary runs")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command that must succeed and print JSON, and parses what it printed.
pub fn json<S: AsRef<OsStr>>(args: &[S]) -> serde_json::Value {
    let out = run(args);
    assert!(out.status.success(), "command failed: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("the command printed JSON")
}
