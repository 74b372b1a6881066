//! `trainer bench`: microbenchmarks that reproduce the paper's figures on the simulator.

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use trainer_isa::names::Precision;
use trainer_sim::bench::peak;
use trainer_sim::cost::CostModel;

/// Run a benchmark.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Which benchmark.
    #[command(subcommand)]
    pub which: Bench,
}

/// The benchmarks.
#[derive(Subcommand, Debug)]
pub enum Bench {
    /// Peak energy efficiency: one large conv layer, FF, dense and at 90% activation + 90% weight sparsity.
    Peak(PeakArgs),
    /// The paper's comparisons (BRIEF §7) on a ResNet-18 SDT step: trainer-28nm, each feature off, baseline-sdt.
    Paper(super::bench_paper::PaperArgs),
    /// Simulator speed: one ResNet-18 SDT step (median), effective MACs/s, peak memory.
    Sim(super::bench_speed::SimArgs),
    /// Compiler speed across models, with time per graph op.
    Compile(super::bench_speed::CompileBenchArgs),
}

/// Precision of the peak benchmark.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum PeakPrecision {
    /// fp16 operands.
    Fp16,
    /// fp8 (e4m3) operands.
    Fp8,
}

/// Options of `trainer bench peak`.
#[derive(Args, Debug)]
pub struct PeakArgs {
    /// Only this precision (default: both).
    #[arg(long, value_enum)]
    pub precision: Option<PeakPrecision>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Machine model: a built-in name or a TOML file.
    #[arg(long, default_value = "trainer-28nm")]
    pub machine: String,
}

/// Runs `trainer bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    match args.which {
        Bench::Peak(p) => run_peak(&p),
        Bench::Paper(p) => super::bench_paper::run(&p),
        Bench::Sim(s) => super::bench_speed::run_sim(&s),
        Bench::Compile(c) => super::bench_speed::run_compile(&c),
    }
}

fn run_peak(args: &PeakArgs) -> Result<()> {
    let cost = CostModel::resolve(&args.machine)?;
    let want = |p: PeakPrecision| {
        args.precision
            .is_none_or(|q| std::mem::discriminant(&q) == std::mem::discriminant(&p))
    };
    let fp16 = want(PeakPrecision::Fp16)
        .then(|| peak::measure(&cost, Precision::Fp16))
        .transpose()?;
    let fp8 = want(PeakPrecision::Fp8)
        .then(|| peak::measure(&cost, Precision::Fp8))
        .transpose()?;
    if args.json {
        println!("{}", peak::json(fp16.as_ref(), fp8.as_ref()));
    } else {
        print!("{}", peak::table(fp16.as_ref(), fp8.as_ref()));
    }
    Ok(())
}
