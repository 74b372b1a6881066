//! `trainer`: the command-line front of the Trainer toolchain.
//!
//! Every subcommand lives in its own module under `cmd/`; this file only parses
//! arguments, dispatches, and renders errors (library crates return typed errors).

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cmd;

/// Compiler and instruction-level simulator for the Trainer sparse-DNN-training accelerator.
///
/// Typical flow: `trainer compile net.onnx -o net.tbin`, then
/// `trainer run net.tbin --data x.npy --labels y.npy --steps 100`.
#[derive(Parser)]
#[command(name = "trainer", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Assemble a .tasm program into a .tbin binary.
    Asm(cmd::asm::AsmArgs),
    /// Disassemble a .tbin binary into .tasm text (re-assembles to the same bytes).
    Disasm(cmd::disasm::DisasmArgs),
    /// Compile a model (.onnx or .tg) and emit a stage, e.g. `--emit tg`.
    Compile(cmd::compile::CompileArgs),
    /// Run a pass pipeline on textual IR and print the result (like mlir-opt).
    Opt(cmd::opt::OptArgs),
    /// Run a .tbin program on the simulator and report cycles and energy.
    Run(cmd::run::RunArgs),
    /// Run a microbenchmark, e.g. `bench peak` (peak energy efficiency).
    Bench(cmd::bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Asm(args) => cmd::asm::run(args),
        Command::Disasm(args) => cmd::disasm::run(args),
        Command::Compile(args) => cmd::compile::run(args),
        Command::Opt(args) => cmd::opt::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Bench(args) => cmd::bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
