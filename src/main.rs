//! `trainer`: the command-line front of the Trainer toolchain.
//!
//! Every subcommand lives in its own module under `cmd/`; this file only parses
//! arguments, dispatches, and renders errors (library crates return typed errors).

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cmd;

/// mimalloc: the simulator allocates and frees large operand buffers per instruction; glibc's
/// malloc returns them to the system and page-faults them back in each time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` of mimalloc's `mi_option_t` (15 in both the v2 and the v3
/// `mimalloc.h`), which the bindings do not name: how long freed memory stays committed before it
/// goes back to the system.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory committed for the whole run (a simulation reuses the same buffer sizes
/// instruction after instruction; peak memory stays that of the largest step).
fn keep_freed_memory() {
    // SAFETY: setting an option is allowed at any time; -1 means "never purge".
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

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
    keep_freed_memory();
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
