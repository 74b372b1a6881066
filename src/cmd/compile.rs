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
}

/// Arguments of `trainer compile`.
#[derive(Args, Debug)]
pub struct CompileArgs {
    /// Model to compile: an ONNX file (`.onnx`) or a `.tg` graph.
    pub model: PathBuf,
    /// Stage to emit.
    #[arg(long, value_enum)]
    pub emit: Emit,
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
    super::mlir_verify::check(&module, args.mlir_verify)?;
    let module = match args.emit {
        Emit::Tg => module,
        Emit::Sdt => {
            let mut m = trainer_compiler::autodiff::autodiff(&module, &args.train.autodiff(args.batch))?;
            trainer_compiler::sdt::run_pipeline(&mut m, &args.train.sdt()?)?;
            m
        }
    };
    let out = if args.generic { text::print_generic(&module) } else { text::print_custom(&module) };
    match &args.output {
        Some(path) => std::fs::write(path, out).with_context(|| format!("cannot write `{}`", path.display())),
        None => {
            print!("{out}");
            Ok(())
        }
    }
}
