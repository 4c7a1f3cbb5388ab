//! The `dreamos` binary: parse the command line and hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    dreamos::cli::dispatch(dreamos::cli::Cli::parse())
}
