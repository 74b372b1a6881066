//! `trainer bench paper`: the comparisons of BRIEF §7 on a ResNet-18 SDT training step.
//!
//! The same workload (model, batch, fp16, 90% weight sparsity, seeded random data) is compiled and
//! simulated in five configurations: `trainer-28nm` with every feature, with one feature switched
//! off in turn (speculation; adaptive dataflow + PE regrouping; decoupled BN), and `baseline-sdt`.
//! A switched-off feature is off in both places that know it: the compile flags (what the program
//! asks for) and the machine's feature switches (what the hardware does). The machine files are the
//! same for every row; nothing is tuned per row. The peak-EE rows come from
//! [`trainer_sim::bench::peak`].

use super::bench_run::{self, train_steps, StepStats, Workload};
use super::bench_svg::{categories, stacked_bars, Bar};
use anyhow::{Context, Result};
use clap::Args;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;
use std::time::Instant;
use trainer_isa::names::Precision;
use trainer_sim::bench::peak;
use trainer_sim::ledger::Event;
use trainer_sim::machine::Features;
use trainer_sim::report::Report;
use trainer_sim::Simulator;

/// Options of `trainer bench paper`.
#[derive(Args, Debug)]
pub struct PaperArgs {
    /// Model to train (ResNet-18 for CIFAR-10: `examples/resnet18.tg` or `resnet18_cifar10.onnx`).
    #[arg(long, default_value = "examples/resnet18.tg")]
    pub model: PathBuf,
    /// Batch size.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Measured training steps per configuration (each after `entry.prune` put the masks in place).
    #[arg(long, default_value_t = 2)]
    pub steps: u64,
    /// Target weight sparsity.
    #[arg(long, default_value_t = 0.9)]
    pub sparsity: f64,
    /// Seed of the weights and the random data.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write every row and the per-configuration reports as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write SVG bar charts into this directory: energy per step by component (with and without
    /// DRAM) and by phase, one bar per configuration.
    #[arg(long)]
    pub plots: Option<PathBuf>,
}

/// One simulated configuration.
struct Config {
    /// Short key (JSON, plots).
    key: &'static str,
    /// What is switched off.
    label: &'static str,
    /// Machine file.
    machine: &'static str,
    /// Extra `trainer compile` flags.
    flags: &'static [&'static str],
    /// Machine features switched off.
    off: fn(&mut Features),
}

/// Speculation of the full Trainer: S1 (exact), S2 and S3 (predicted, mis-speculation reported).
const SPEC: &str = "s1,s2,s3";

const CONFIGS: [Config; 5] = [
    Config {
        key: "trainer",
        label: "trainer-28nm, all features",
        machine: "trainer-28nm",
        flags: &[
            "--speculation",
            SPEC,
            "--dataflow",
            "adaptive",
            "--bn",
            "decoupled",
        ],
        off: |_| {},
    },
    Config {
        key: "no-speculation",
        label: "trainer-28nm, speculation off",
        machine: "trainer-28nm",
        flags: &["--no-speculation", "--dataflow", "adaptive", "--bn", "decoupled"],
        off: |f| f.speculation = false,
    },
    Config {
        key: "fixed-dataflow",
        label: "trainer-28nm, fixed ws dataflow, no PE regrouping",
        machine: "trainer-28nm",
        flags: &[
            "--speculation",
            SPEC,
            "--dataflow",
            "fixed:ws",
            "--bn",
            "decoupled",
        ],
        off: |f| {
            f.adaptive_dataflow = false;
            f.pe_regrouping = false;
        },
    },
    Config {
        key: "conventional-bn",
        label: "trainer-28nm, conventional BN",
        machine: "trainer-28nm",
        flags: &[
            "--speculation",
            SPEC,
            "--dataflow",
            "adaptive",
            "--bn",
            "conventional",
        ],
        off: |f| f.decoupled_bn = false,
    },
    Config {
        key: "baseline-sdt",
        label: "baseline-sdt (prior sparse training processor)",
        machine: "baseline-sdt",
        flags: &[
            "--no-speculation",
            "--dataflow",
            "fixed:ws",
            "--bn",
            "conventional",
        ],
        off: |_| {},
    },
];

/// The paper's figures (BRIEF §7) that are not peak-EE figures.
mod paper {
    /// Prior work's sparsity→EE conversion ratio is this much lower.
    pub const CONVERSION_VS_PRIOR: f64 = 1.55;
    /// IRSU speculation: throughput gain.
    pub const SPECULATION_THROUGHPUT: f64 = 1.46;
    /// Adaptive dataflow + PE regrouping: utilization gain.
    pub const DATAFLOW_UTILIZATION: f64 = 1.52;
    /// Decoupled BN: energy saved, percent.
    pub const BN_ENERGY_SAVED_PCT: f64 = 37.1;
    /// Versus the prior sparse training processor: energy ratio.
    pub const VS_PRIOR_ENERGY: f64 = 2.23;
    /// Versus the prior sparse training processor: speed-up.
    pub const VS_PRIOR_SPEEDUP: f64 = 1.76;
}

/// Result of one configuration.
struct Measured {
    config: &'static Config,
    train: Report,
    prune: Report,
    stats: StepStats,
    compile_seconds: f64,
    simulate_seconds: f64,
    /// The machine's feature switches as simulated.
    features: Value,
}

/// One row of the comparison.
#[derive(serde::Serialize)]
struct Row {
    figure: String,
    unit: &'static str,
    paper: f64,
    simulated: f64,
    /// simulated / paper.
    ratio: f64,
    how: String,
}

fn row(figure: &str, unit: &'static str, paper: f64, simulated: f64, how: &str) -> Row {
    Row {
        figure: figure.to_string(),
        unit,
        paper,
        simulated,
        ratio: simulated / paper,
        how: how.to_string(),
    }
}

fn measure(w: &Workload, c: &'static Config, steps: u64) -> Result<Measured> {
    let (program, compile_seconds) = w
        .compile(c.machine, c.flags)
        .with_context(|| format!("compiling for `{}`", c.key))?;
    let cost = bench_run::cost_model(c.machine, c.off)?;
    let f = cost.features;
    let features = json!({"speculation": f.speculation, "adaptive_dataflow": f.adaptive_dataflow, "pe_regrouping": f.regrouping});
    let start = Instant::now();
    let mut sim = Simulator::new(program, cost)?;
    let stats = train_steps(&mut sim, steps, w.seed).with_context(|| format!("simulating `{}`", c.key))?;
    let simulate_seconds = start.elapsed().as_secs_f64();
    Ok(Measured {
        config: c,
        train: Report::new(&stats.train, sim.cost(), sim.program()),
        prune: Report::new(&stats.prune, sim.cost(), sim.program()),
        stats,
        compile_seconds,
        simulate_seconds,
        features,
    })
}

/// Runs `trainer bench paper`.
pub fn run(args: &PaperArgs) -> Result<()> {
    anyhow::ensure!(args.steps >= 1, "--steps must be at least 1");
    anyhow::ensure!(args.batch >= 1, "--batch must be at least 1");
    let w = Workload {
        model: args.model.clone(),
        batch: args.batch,
        precision: "fp16".into(),
        sparsity: args.sparsity,
        seed: args.seed,
    };
    let mut runs = Vec::new();
    for c in &CONFIGS {
        eprintln!("bench paper: {} ...", c.label);
        let m = measure(&w, c, args.steps)?;
        eprintln!(
            "  compiled in {:.2} s, simulated {} steps in {:.2} s: {} cycles, {:.3} uJ",
            m.compile_seconds,
            args.steps,
            m.simulate_seconds,
            m.train.cycles,
            m.train.total.energy_pj / 1e6
        );
        runs.push(m);
    }
    let peak_cost = bench_run::cost_model("trainer-28nm", |_| {})?;
    let base_cost = bench_run::cost_model("baseline-sdt", |_| {})?;
    let fp16 = peak::measure(&peak_cost, Precision::Fp16)?;
    let fp8 = peak::measure(&peak_cost, Precision::Fp8)?;
    let base16 = peak::measure(&base_cost, Precision::Fp16)?;

    let get = |key: &str| {
        runs.iter()
            .find(|m| m.config.key == key)
            .map(|m| &m.train)
            .expect("every configuration ran")
    };
    let (full, nospec, fixed, convbn, base) = (
        get("trainer"),
        get("no-speculation"),
        get("fixed-dataflow"),
        get("conventional-bn"),
        get("baseline-sdt"),
    );
    let rows = vec![
        row("peak EE, FP16, 90% act + 90% weight sparsity", "TFLOPS/W", peak::paper::FP16_SPARSE_TFLOPS_PER_W, fp16.sparse.tflops_per_w, "bench peak: one large conv layer, FF, random data; dense-equivalent FLOPs / on-chip energy (table calibrated under two-sided skipping, now simulated)"),
        row("peak EE, FP8, 90% act + 90% weight sparsity", "TFLOPS/W", peak::paper::FP8_SPARSE_TFLOPS_PER_W, fp8.sparse.tflops_per_w, "same in fp8 (simulated, see fp16)"),
        row("sparsity->EE conversion ratio (FP16)", "x", peak::paper::CONVERSION_RATIO, fp16.conversion_ratio(), "EE at 90/90 / EE dense, trainer-28nm"),
        row("conversion ratio vs prior work", "x", paper::CONVERSION_VS_PRIOR, fp16.conversion_ratio() / base16.conversion_ratio(), "conversion ratio trainer-28nm / baseline-sdt (FP16)"),
        row("IRSU speculation: throughput", "x", paper::SPECULATION_THROUGHPUT, nospec.cycles as f64 / full.cycles as f64, "train-step cycles, speculation off / on"),
        row("adaptive dataflow + PE regrouping: utilization", "x", paper::DATAFLOW_UTILIZATION, full.utilization / fixed.utilization, "MAC-array utilization, adaptive+regrouping / fixed ws without regrouping"),
        row("decoupled BN unit: energy saved", "%", paper::BN_ENERGY_SAVED_PCT, 100.0 * (1.0 - full.total.energy_pj / convbn.total.energy_pj), "1 - train-step energy decoupled / conventional BN"),
        row("vs prior sparse training processor: energy", "x", paper::VS_PRIOR_ENERGY, base.total.energy_pj / full.total.energy_pj, "train-step energy baseline-sdt / trainer-28nm"),
        row("vs prior sparse training processor: speed", "x", paper::VS_PRIOR_SPEEDUP, base.cycles as f64 / full.cycles as f64, "train-step cycles baseline-sdt / trainer-28nm"),
    ];

    print!("{}", table(args, &rows, &runs));
    print!("\n{}", peak::table(Some(&fp16), Some(&fp8)));

    if let Some(path) = &args.json {
        let configs: BTreeMap<&str, Value> = runs.iter().map(|m| (m.config.key, config_json(m))).collect();
        let doc = json!({
            "workload": {"model": args.model.display().to_string(), "batch": args.batch, "steps": args.steps, "precision": "fp16", "sparsity": args.sparsity, "seed": args.seed},
            "rows": rows,
            "peak": peak::json(Some(&fp16), Some(&fp8)),
            "peak_baseline_fp16": peak::json(Some(&base16), None),
            "configs": configs,
        });
        bench_run::write_file(path, &(serde_json::to_string_pretty(&doc)? + "\n"))?;
    }
    if let Some(dir) = &args.plots {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let per_step = args.steps as f64 * 1e6;
        let bars = |parts: fn(&Report) -> Vec<(String, f64)>| -> Vec<Bar> {
            runs.iter()
                .map(|m| Bar {
                    label: m.config.key.to_string(),
                    parts: parts(&m.train)
                        .into_iter()
                        .map(|(k, pj)| (k, pj / per_step))
                        .collect(),
                })
                .collect()
        };
        let title = format!(
            "ResNet-18 SDT step, batch {}, fp16, {:.0}% weight sparsity",
            args.batch,
            100.0 * args.sparsity
        );
        let by_component = bars(|r| {
            r.total
                .components
                .iter()
                .map(|(k, pj)| (k.clone(), *pj))
                .collect()
        });
        let by_phase = bars(|r| {
            r.phases
                .iter()
                .map(|(p, row)| (p.clone(), row.energy_pj))
                .collect()
        });
        let components = categories(&by_component);
        bench_run::write_file(
            &dir.join("energy_by_component.svg"),
            &stacked_bars(
                &format!("Energy by component: {title}"),
                "uJ per step",
                &by_component,
                &components,
            ),
        )?;
        // DRAM is most of each step's energy and would hide the on-chip parts the features change.
        let off_chip = [Event::DramRead, Event::DramWrite].map(Event::report_component);
        let on_chip: Vec<Bar> = by_component
            .iter()
            .map(|b| Bar {
                label: b.label.clone(),
                parts: b
                    .parts
                    .iter()
                    .filter(|(k, _)| !off_chip.contains(&k.as_str()))
                    .cloned()
                    .collect(),
            })
            .collect();
        bench_run::write_file(
            &dir.join("energy_on_chip_by_component.svg"),
            &stacked_bars(
                &format!("On-chip energy by component (DRAM left out): {title}"),
                "uJ per step",
                &on_chip,
                &components,
            ),
        )?;
        bench_run::write_file(
            &dir.join("energy_by_phase.svg"),
            &stacked_bars(
                &format!("Energy by phase: {title}"),
                "uJ per step",
                &by_phase,
                &categories(&by_phase),
            ),
        )?;
    }
    Ok(())
}

fn config_json(m: &Measured) -> Value {
    let c = m.config;
    json!({
        "label": c.label,
        "machine": c.machine,
        "compile_flags": c.flags,
        "machine_features": m.features,
        "compile_seconds": m.compile_seconds,
        "simulate_seconds": m.simulate_seconds,
        "train_step_seconds": m.stats.train_seconds,
        "losses": m.stats.losses,
        "train": m.train,
        "prune": m.prune,
    })
}

fn table(args: &PaperArgs, rows: &[Row], runs: &[Measured]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "ResNet-18 SDT training: {}, batch {}, fp16, {:.0}% weight sparsity, {} measured step(s) per configuration",
        args.model.display(),
        args.batch,
        100.0 * args.sparsity,
        args.steps
    );
    let _ = writeln!(
        s,
        "\n{:<50} {:>10} {:>12} {:>12} {:>8}",
        "configuration", "cycles", "energy uJ", "utilization", "loss"
    );
    for m in runs {
        let loss = m.stats.losses.last().copied().unwrap_or(f32::NAN);
        let _ = writeln!(
            s,
            "{:<50} {:>10} {:>12.3} {:>11.1}% {:>8.4}",
            m.config.label,
            m.train.cycles,
            m.train.total.energy_pj / 1e6,
            100.0 * m.train.utilization,
            loss
        );
    }
    let _ = writeln!(
        s,
        "\n{:<48} {:>9} {:>12} {:>12} {:>8}",
        "figure", "unit", "paper", "simulated", "sim/paper"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<48} {:>9} {:>12.2} {:>12.2} {:>8.2}",
            r.figure, r.unit, r.paper, r.simulated, r.ratio
        );
    }
    s
}
