//! The `dreamos` binary: parse the command line and hand over to the library.

use clap::Parser;

/// mimalloc instead of glibc malloc: the bus and the Lua states allocate per message.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    dreamos::cli::dispatch(dreamos::cli::Cli::parse())
}
