//! The `upkeep` command line.

mod cli;
mod commands;
mod config;
mod exit;
mod printer;
mod progress;
mod secrets;

fn main() -> std::process::ExitCode {
    cli::main()
}
