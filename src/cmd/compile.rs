//! `trainer compile`: import a model (`.onnx` or `.tg`) and emit a compilation stage.

use anyhow::Context;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use trainer_compiler::frontend::{self, FrontendOptions};
use trainer_compiler::text;

/// Stages `trainer compile` can emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Emit {
    /// The imported, shape-inferred `tg` dialect IR.
    Tg,
    /// The `sdt` training program (autodiff and the SDT passes; see spec/passes.md).
    Sdt,
    /// The `trn` hardware-level IR (tiles, buffers, DMA, tokens; see spec/lowering.md).
    Trn,
    /// Trainer assembly of the compiled binary (`.tasm`).
    Asm,
}

/// Arguments of `trainer compile`.
#[derive(Args, Debug)]
pub struct CompileArgs {
    /// Model to compile: an ONNX file (`.onnx`) or a `.tg` graph.
    pub model: PathBuf,
    /// Stage to emit as text; without it, the compiled `.tbin` binary is written to `-o`.
    #[arg(long, value_enum)]
    pub emit: Option<Emit>,
    /// Batch size (replaces symbolic batch dimensions; overrides an ONNX model's batch).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Seed for initializing weights the model does not carry (graph-only ONNX, `.tg` params).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print IR in MLIR generic syntax instead of the readable custom form.
    #[arg(long, visible_alias = "mlir-print-op-generic")]
    pub generic: bool,
    /// Check the emitted IR with real MLIR 22 (needs a build with the `mlir` feature).
    #[arg(long)]
    pub mlir_verify: bool,
    /// Training-program options (`--emit sdt` and later stages).
    #[command(flatten)]
    pub train: super::train_opts::TrainArgs,
    /// Lowering and code-generation options (`--emit trn|asm` and the binary).
    #[command(flatten)]
    pub target: super::build::TargetArgs,
    /// Write the output to this file instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Runs `trainer compile`.
pub fn run(args: CompileArgs) -> anyhow::Result<()> {
    if args.batch == Some(0) {
        anyhow::bail!("--batch must be at least 1");
    }
    let opts = FrontendOptions {
        batch: args.batch,
        seed: args.seed,
    };
    let module = frontend::load(&args.model, &opts)?;
    let module = match args.emit {
        Some(Emit::Tg) => module,
        Some(Emit::Sdt) => super::build::training_program(&module, &args.train, &args.target, args.batch)?,
        Some(Emit::Trn) => super::build::lowered(&module, &args.train, &args.target, args.batch)?,
        Some(Emit::Asm) => {
            let program = super::build::binary(module, &args, &args.train, &args.target)?;
            return write(&args.output, trainer_isa::disassemble(&program));
        }
        None => {
            let path = args
                .output
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("give `-o OUT.tbin` (or `--emit tg|sdt|trn|asm`)"))?;
            let program = super::build::binary(module, &args, &args.train, &args.target)?;
            let bytes = trainer_isa::tbin::write(&program)?;
            return std::fs::write(path, bytes).with_context(|| format!("cannot write `{}`", path.display()));
        }
    };
    super::mlir_verify::check(&module, args.mlir_verify)?;
    let out = if args.generic {
        text::print_generic(&module)
    } else {
        text::print_custom(&module)
    };
    write(&args.output, out)
}

/// Writes text to `output`, or standard output.
fn write(output: &Option<PathBuf>, out: String) -> anyhow::Result<()> {
    match output {
        Some(path) => std::fs::write(path, out).with_context(|| format!("cannot write `{}`", path.display())),
        None => {
            print!("{out}");
            Ok(())
        }
    }
}
