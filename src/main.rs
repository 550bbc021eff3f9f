//! Entry point of the `raagr2-lab` binary: the desktop app without arguments, else the command
//! line; reports errors once.

use clap::Parser;

/// mimalloc reuses freed tensor buffers instead of unmapping and page-faulting them back in.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
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
