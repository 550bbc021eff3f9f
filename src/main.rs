//! Entry point of the `raagr2-lab` binary: the desktop app without arguments, else the command
//! line; reports errors once.

use clap::Parser;

/// mimalloc reuses freed tensor buffers instead of unmapping and page-faulting them back in.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (mimalloc.h's `mi_option_e`, the same in v2 and v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // Never hand freed memory back to the OS: each large tensor freed and reallocated would
    // otherwise come back as fresh pages the kernel zeroes, a sixth of a training step. The
    // peak stays what it was; the process just keeps it for reuse.
    // SAFETY: sets a plain integer option; mimalloc reads it at each purge decision.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    // No command: the desktop app on the embedded default case and model.
    let outcome = if std::env::args_os().len() == 1 {
        raagr2_lab::ui::run_app()
    } else {
        raagr2_lab::cli::run(raagr2_lab::cli::Cli::parse())
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
