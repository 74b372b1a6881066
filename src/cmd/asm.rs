//! `trainer asm`: assemble `.tasm` text into a `.tbin` binary.

use anyhow::{anyhow, Context, Result};
use clap::Args;
use std::path::PathBuf;

/// Assemble a `.tasm` program into a `.tbin` binary.
///
/// The text format (instructions as `mnemonic field=value ...`, and the `.dram`, `.meta`,
/// `.tensor` and `.data` directives) is documented in spec/isa.md. Errors are reported as
/// FILE:LINE:COLUMN.
#[derive(Args)]
pub struct AsmArgs {
    /// Input assembly file (.tasm).
    pub input: PathBuf,
    /// Output binary (.tbin).
    #[arg(short, long)]
    pub output: PathBuf,
}

/// Runs `trainer asm`.
pub fn run(args: AsmArgs) -> Result<()> {
    let src = std::fs::read_to_string(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let program = trainer_isa::assemble(&src).map_err(|e| anyhow!("{}:{e}", args.input.display()))?;
    let bytes = trainer_isa::tbin::write(&program)
        .with_context(|| format!("cannot encode {}", args.input.display()))?;
    std::fs::write(&args.output, bytes).with_context(|| format!("cannot write {}", args.output.display()))
}
