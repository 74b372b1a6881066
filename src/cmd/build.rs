//! The compile pipeline behind `trainer compile`: `tg` → `sdt` (autodiff, SDT passes) → `trn`
//! (lowering to the machine's buffers) → program (code generation with metadata,
//! `spec/tbin.md` "Runtime conventions").

use super::compile::CompileArgs;
use super::train_opts::TrainArgs;
use clap::{Args, ValueEnum};
use trainer_compiler::ir::Module;
use trainer_compiler::lower::{self, LowerOptions, Precision};
use trainer_compiler::{autodiff, codegen, sdt};
use trainer_isa::Program;
use trainer_sim::machine::Machine;

/// Loss scale used for fp16/fp8 storage when `--loss-scale` is left at 1.
pub const LOW_PRECISION_LOSS_SCALE: f64 = 1024.0;

/// Storage precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PrecisionArg {
    /// f32 everywhere (reference mode).
    Fp32,
    /// f16 activations, weights and gradients; f32 accumulation and master weights.
    Fp16,
    /// E4M3 forward, E5M2 gradients; f32 accumulation and master weights.
    Fp8,
}

/// Target options: precision and machine.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// Storage precision of activations, weights and gradients.
    #[arg(long, value_enum, default_value_t = PrecisionArg::Fp32)]
    pub precision: PrecisionArg,
    /// Machine model: a built-in name (trainer-28nm, baseline-sdt) or a TOML file; its buffer
    /// sizes decide the tiling.
    #[arg(long, default_value = "trainer-28nm")]
    pub machine: String,
    /// Emit the unrolled instruction stream: no `loop` nests over repeated tile bodies (see
    /// spec/lowering.md "Loops"); the program computes the same, only longer.
    #[arg(long)]
    pub no_loops: bool,
}

impl TargetArgs {
    fn precision(&self) -> Precision {
        match self.precision {
            PrecisionArg::Fp32 => Precision::Fp32,
            PrecisionArg::Fp16 => Precision::Fp16,
            PrecisionArg::Fp8 => Precision::Fp8,
        }
    }

    /// Lowering options from the machine model.
    pub fn lower_options(&self) -> anyhow::Result<LowerOptions> {
        let m = Machine::resolve(&self.machine)?;
        let b = &m.buffers;
        Ok(LowerOptions {
            precision: self.precision(),
            buffers: [
                b.ibuf.size_bytes,
                b.wbuf.size_bytes,
                b.obuf.size_bytes,
                b.gbuf.size_bytes,
            ],
            loops: !self.no_loops,
        })
    }

    fn loss_scale(&self, train: &TrainArgs) -> f64 {
        if self.precision != PrecisionArg::Fp32 && train.loss_scale == 1.0 {
            LOW_PRECISION_LOSS_SCALE
        } else {
            train.loss_scale
        }
    }
}

/// The `sdt` training program of graph `tg`.
pub fn training_program(
    tg: &Module,
    train: &TrainArgs,
    target: &TargetArgs,
    batch: Option<usize>,
) -> anyhow::Result<Module> {
    let mut ad = train.autodiff(batch);
    ad.loss_scale = target.loss_scale(train);
    let mut m = autodiff::autodiff(tg, &ad)?;
    sdt::run_pipeline(&mut m, &train.sdt()?)?;
    Ok(m)
}

/// The `trn` module of graph `tg`.
pub fn lowered(
    tg: &Module,
    train: &TrainArgs,
    target: &TargetArgs,
    batch: Option<usize>,
) -> anyhow::Result<Module> {
    let m = training_program(tg, train, target, batch)?;
    Ok(lower::lower(&m, &target.lower_options()?)?)
}

/// The compiled program of graph `tg`, with the runtime-convention metadata.
pub fn binary(
    mut tg: Module,
    args: &CompileArgs,
    train: &TrainArgs,
    target: &TargetArgs,
) -> anyhow::Result<Program> {
    // The weights go from the graph straight to the program's data (the passes never read them).
    let weights = std::mem::take(&mut tg.weights);
    let sdt = training_program(&tg, train, target, args.batch)?;
    let trn = lower::lower_program(&sdt, &target.lower_options()?)?;
    let mut meta = vec![
        ("sparsity", train.sparsity.to_string()),
        ("schedule", train.schedule.clone()),
        ("prune_interval", train.prune_interval.to_string()),
        ("lr", train.lr.to_string()),
        ("momentum", train.momentum.to_string()),
        ("weight_decay", train.weight_decay.to_string()),
        ("loss_scale", target.loss_scale(train).to_string()),
        ("machine", target.machine.clone()),
        (
            "model",
            args.model
                .file_name()
                .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
        ),
        (
            "compile_options",
            std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        ),
    ];
    let mut program = codegen::generate_lowered(&trn, &weights, &[])?;
    let dim = |name: &str, i: usize| {
        program
            .tensor(name)
            .and_then(|t| t.shape.get(i))
            .map_or_else(String::new, |d| d.to_string())
    };
    let (batch, classes) = (dim("input", 0), dim("logits", 1));
    if let Some(steps) = train.steps {
        meta.push(("steps", steps.to_string()));
    }
    meta.push(("batch", batch));
    meta.push(("classes", classes));
    program
        .meta
        .extend(meta.into_iter().map(|(k, v)| (k.to_string(), v)));
    program.meta.sort();
    program.validate()?;
    Ok(program)
}
