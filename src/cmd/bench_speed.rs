//! `trainer bench sim` and `trainer bench compile`: how fast the toolchain itself is.
//!
//! `bench sim` times one simulated SDT training step (median over runs, with full accounting) and
//! reports effective MACs simulated per second and the peak resident memory; a dense fp32 step of
//! the same network, timed in the same run, is the baseline. `bench compile` times the whole
//! compile pipeline (import → `.tbin` bytes) over several models and reports time per graph
//! operation and per emitted instruction; with `--depth` it also compiles synthetic chains that
//! differ only in depth (`bench_depth`) and fits how compile time grows with it.

use super::bench_depth;
use super::bench_run::{self, median, train_steps, Workload};
use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use trainer_sim::Simulator;

/// Options of `trainer bench sim`.
#[derive(Args, Debug)]
pub struct SimArgs {
    /// Model (ResNet-18 for CIFAR-10 by default).
    #[arg(long, default_value = "examples/resnet18.tg")]
    pub model: PathBuf,
    /// Batch size.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Timed training steps (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: u64,
    /// Skip the dense fp32 baseline step.
    #[arg(long)]
    pub no_baseline: bool,
    /// Instructions the simulator may keep pending (convs running their kernels in the
    /// background, stores waiting for them; default 8). 0 runs one instruction at a time: the
    /// results are the same, only the speed changes.
    #[arg(long)]
    pub background: Option<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Options of `trainer bench compile` (default compile options, as `trainer compile MODEL --batch N -o OUT`).
#[derive(Args, Debug)]
pub struct CompileBenchArgs {
    /// Models to compile (missing files are reported and skipped).
    #[arg(default_values = ["examples/mlp.tg", "examples/lenet.tg", "examples/resnet18.tg", "tests/data/mobilenet_v2_cifar10.onnx", "tests/data/vgg11_bn_graph.onnx", "tests/data/resnet18_imagenet_graph.onnx"])]
    pub models: Vec<PathBuf>,
    /// Batch size.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Timed compilations per model (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Also compile synthetic conv–BN–ReLU chains of these numbers of blocks (e.g.
    /// `--depth 16,32,64,128`) and report how compile time grows with depth.
    #[arg(long, value_delimiter = ',')]
    pub depth: Vec<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Timing of one workload's training step.
struct StepTiming {
    compile_seconds: f64,
    step_seconds: f64,
    /// Fastest and slowest timed step (this machine's speed drifts; the spread shows how much).
    step_range: (f64, f64),
    /// Median CPU seconds (all threads) of a step, if the platform reports them.
    step_cpu_seconds: Option<f64>,
    prune_seconds: f64,
    effective_macs: u64,
    dense_macs: u64,
}

fn time_step(w: &Workload, runs: u64, background: Option<usize>) -> Result<StepTiming> {
    let (program, compile_seconds) = w.compile(
        "trainer-28nm",
        &["--speculation", "s1,s2,s3", "--dataflow", "adaptive"],
    )?;
    let mut sim = Simulator::new(program, bench_run::cost_model("trainer-28nm", |_| {})?)?;
    if let Some(n) = background {
        sim.set_background(n);
    }
    let stats = train_steps(&mut sim, runs, w.seed)?;
    let n = runs.max(1);
    Ok(StepTiming {
        compile_seconds,
        step_seconds: median(&stats.train_seconds),
        step_range: stats
            .train_seconds
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), &s| (lo.min(s), hi.max(s))),
        step_cpu_seconds: (!stats.train_cpu_seconds.is_empty()).then(|| median(&stats.train_cpu_seconds)),
        prune_seconds: median(&stats.prune_seconds),
        effective_macs: stats.train.effective_macs() / n,
        dense_macs: stats.train.dense_macs() / n,
    })
}

/// Target of issue 7: one ResNet-18 CIFAR SDT step (batch 16, 90%, fp16) in at most this long.
const STEP_TARGET_SECONDS: f64 = 1.0;

/// Runs `trainer bench sim`.
pub fn run_sim(args: &SimArgs) -> Result<()> {
    anyhow::ensure!(args.runs >= 1, "--runs must be at least 1");
    let sparse = Workload {
        model: args.model.clone(),
        batch: args.batch,
        precision: "fp16".into(),
        sparsity: 0.9,
        seed: 0,
    };
    let t = time_step(&sparse, args.runs, args.background)?;
    let rss = bench_run::peak_rss_bytes();
    let base = if args.no_baseline {
        None
    } else {
        let dense = Workload {
            precision: "fp32".into(),
            sparsity: 0.0,
            ..sparse.clone()
        };
        Some(time_step(&dense, args.runs, args.background)?)
    };
    let macs_per_s = t.effective_macs as f64 / t.step_seconds;
    if args.json {
        let doc = json!({
            "model": args.model.display().to_string(), "batch": args.batch, "runs": args.runs, "background": args.background,
            "step_seconds_median": t.step_seconds, "step_seconds_min": t.step_range.0, "step_seconds_max": t.step_range.1, "step_cpu_seconds_median": t.step_cpu_seconds, "prune_seconds_median": t.prune_seconds,
            "compile_seconds": t.compile_seconds, "effective_macs": t.effective_macs, "dense_macs": t.dense_macs,
            "effective_macs_per_second": macs_per_s, "peak_rss_bytes": rss, "target_step_seconds": STEP_TARGET_SECONDS,
            "baseline_dense_fp32_step_seconds_median": base.as_ref().map(|b| b.step_seconds),
            "baseline_dense_fp32_macs_per_second": base.as_ref().map(|b| b.effective_macs as f64 / b.step_seconds),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    let background = args
        .background
        .map_or(String::new(), |n| format!(", {n} pending"));
    println!(
        "{} batch {}, fp16, 90% weight sparsity, trainer-28nm{background}, median of {} step(s):",
        args.model.display(),
        args.batch,
        args.runs
    );
    println!(
        "  train step      {:.3} s  (target {STEP_TARGET_SECONDS:.1} s: {:.2}x of it; steps took {:.3}-{:.3} s)",
        t.step_seconds,
        t.step_seconds / STEP_TARGET_SECONDS,
        t.step_range.0,
        t.step_range.1
    );
    if let Some(cpu) = t.step_cpu_seconds {
        println!("  step CPU time   {cpu:.3} s  (all threads; the work done, whatever the machine's load)");
    }
    println!("  prune entry     {:.3} s", t.prune_seconds);
    println!("  compile         {:.3} s", t.compile_seconds);
    println!(
        "  effective MACs  {} of {} dense per step: {:.3e} effective MACs/s",
        t.effective_macs, t.dense_macs, macs_per_s
    );
    if let Some(kb) = rss {
        println!(
            "  peak RSS        {:.1} MB (VmHWM of the whole run)",
            kb as f64 / 1e6
        );
    }
    if let Some(b) = base {
        println!(
            "  baseline: dense fp32 step {:.3} s, {:.3e} MACs/s; sparse fp16 step takes {:.2}x of it",
            b.step_seconds,
            b.effective_macs as f64 / b.step_seconds,
            t.step_seconds / b.step_seconds
        );
    }
    Ok(())
}

/// Times `runs` compilations of `model` to `.tbin` bytes (default options, `trainer-28nm`) and
/// returns its row: graph ops, instructions, median seconds and time per op and instruction, or
/// the error that stopped it.
fn time_compile(model: &Path, batch: usize, runs: usize) -> Result<Value> {
    let w = Workload {
        model: model.to_path_buf(),
        batch,
        precision: "fp32".into(),
        sparsity: 0.0,
        seed: 0,
    };
    let opts = trainer_compiler::frontend::FrontendOptions {
        batch: Some(batch),
        seed: 0,
    };
    let graph_ops = trainer_compiler::frontend::load(model, &opts)?.num_ops();
    let mut times = Vec::new();
    let mut instructions = 0;
    let mut error = None;
    for _ in 0..runs {
        match w.compile("trainer-28nm", &[]).and_then(|(p, s)| {
            let start = std::time::Instant::now();
            trainer_isa::tbin::write(&p)?;
            Ok((p, s + start.elapsed().as_secs_f64()))
        }) {
            Ok((p, s)) => {
                instructions = p.code.len();
                times.push(s);
            }
            Err(e) => {
                error = Some(format!("{e:#}"));
                break;
            }
        }
    }
    let secs = median(&times);
    Ok(json!({
        "model": model.display().to_string(), "graph_ops": graph_ops, "instructions": instructions,
        "seconds_median": error.is_none().then_some(secs),
        "microseconds_per_graph_op": error.is_none().then(|| 1e6 * secs / graph_ops.max(1) as f64),
        "microseconds_per_instruction": error.is_none().then(|| 1e6 * secs / instructions.max(1) as f64),
        "error": error,
    }))
}

/// Runs `trainer bench compile`.
pub fn run_compile(args: &CompileBenchArgs) -> Result<()> {
    anyhow::ensure!(args.runs >= 1, "--runs must be at least 1");
    anyhow::ensure!(
        args.depth.iter().all(|&d| d >= 1),
        "--depth values must be at least 1"
    );
    let mut rows = Vec::new();
    for model in &args.models {
        if !model.exists() {
            eprintln!("bench compile: {} not found, skipped", model.display());
            continue;
        }
        rows.push(time_compile(model, args.batch, args.runs)?);
    }
    let sweep = if args.depth.is_empty() {
        None
    } else {
        Some(bench_depth::sweep(&args.depth, |m| {
            time_compile(m, args.batch, args.runs)
        })?)
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "batch": args.batch, "runs": args.runs, "models": rows,
                "depth_sweep": sweep.as_ref().map(bench_depth::Sweep::json),
            }))?
        );
        return Ok(());
    }
    println!("compile to .tbin bytes (default options, as `trainer compile MODEL --batch N`, without the file write), batch {}, median of {} run(s):", args.batch, args.runs);
    println!(
        "{:<44} {:>9} {:>12} {:>10} {:>12} {:>12}",
        "model", "tg ops", "instructions", "seconds", "us / tg op", "us / instr"
    );
    for r in &rows {
        let model = r["model"].as_str().unwrap_or("");
        let ops = r["graph_ops"].as_u64().unwrap_or(0);
        if let Some(e) = r["error"].as_str() {
            println!("{model:<44} {ops:>9} does not compile: {e}");
            continue;
        }
        let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
        println!(
            "{model:<44} {ops:>9} {:>12} {:>10.3} {:>12.1} {:>12.2}",
            r["instructions"].as_u64().unwrap_or(0),
            f("seconds_median"),
            f("microseconds_per_graph_op"),
            f("microseconds_per_instruction"),
        );
    }
    if let Some(sweep) = sweep {
        print!("\n{}", sweep.table());
    }
    Ok(())
}
