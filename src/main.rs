//! Entry point of the `raagr2-lab` binary: parses the command line and reports errors once.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = raagr2_lab::cli::Cli::parse();
    match raagr2_lab::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
