//! `trainer disasm`: print a `.tbin` binary as `.tasm` text.

use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

/// Disassemble a `.tbin` binary into `.tasm` text.
///
/// Prints the whole container (DRAM size, metadata, tensor table, data segments, code), so that
/// `trainer asm` on the output reproduces the binary byte for byte. Corrupt or hostile files are
/// rejected with an error naming the problem and its byte offset.
#[derive(Args)]
pub struct DisasmArgs {
    /// Input binary (.tbin).
    pub input: PathBuf,
    /// Write the assembly here instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Runs `trainer disasm`.
pub fn run(args: DisasmArgs) -> Result<()> {
    let bytes =
        std::fs::read(&args.input).with_context(|| format!("cannot read {}", args.input.display()))?;
    let program = trainer_isa::tbin::read(&bytes).with_context(|| format!("{}", args.input.display()))?;
    let text = trainer_isa::disassemble(&program);
    match &args.output {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display())),
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(text.as_bytes())
                .context("cannot write to standard output")
        }
    }
}
