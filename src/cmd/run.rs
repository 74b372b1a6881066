//! `trainer run`: execute a `.tbin` program on the simulator and report cycles and energy; compiled
//! training binaries train and evaluate on data ([`super::run_train`]).

use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use trainer_sim::cost::CostModel;
use trainer_sim::report::Report;
use trainer_sim::Simulator;

/// Options shared by every command that simulates a program.
#[derive(Args, Debug, Clone)]
pub struct SimOpts {
    /// Machine model: a built-in name (trainer-28nm, baseline-sdt) or a TOML file.
    #[arg(long, default_value = "trainer-28nm")]
    pub machine: String,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Stop with an error after this many issued instructions (runaway loops).
    #[arg(long)]
    pub max_instructions: Option<u64>,
}

impl SimOpts {
    /// Loads `program` on the chosen machine.
    pub fn simulator(&self, program: &std::path::Path) -> Result<Simulator> {
        let cost = CostModel::resolve(&self.machine)?;
        let bytes = std::fs::read(program).with_context(|| format!("cannot read {}", program.display()))?;
        let mut sim = Simulator::from_tbin(&bytes, cost).with_context(|| program.display().to_string())?;
        sim.set_max_instructions(self.max_instructions);
        Ok(sim)
    }

    /// Writes the JSON report if `--report` was given.
    pub fn write_report(&self, report: &Report) -> Result<()> {
        if let Some(path) = &self.report {
            std::fs::write(path, report.to_json() + "\n")
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}

/// Run a program (.tbin) on the simulator.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Program binary (.tbin, e.g. from `trainer asm` or `trainer compile`).
    pub program: PathBuf,
    /// Simulation options.
    #[command(flatten)]
    pub sim: SimOpts,
    /// Training options (compiled training binaries, which have metadata `entry.train`).
    #[command(flatten)]
    pub data: super::run_train::DataArgs,
}

/// Runs `trainer run`: a training binary trains on `--data`/`--labels` and is evaluated; any
/// other program runs once from its first instruction.
pub fn run(args: RunArgs) -> Result<()> {
    let mut sim = args.sim.simulator(&args.program)?;
    if sim.program().meta("entry.train").is_some() {
        return super::run_train::train(sim, &args.program, &args.sim, &args.data);
    }
    if args.data.given() {
        anyhow::bail!("{} is not a training binary (no metadata `entry.train`): --data, --labels, --train-rows, --steps, --no-shuffle, --save-weights and --save-logits need one", args.program.display());
    }
    let stats = sim.run()?;
    let report = Report::new(&stats, sim.cost(), sim.program());
    print!("{}", report.to_table());
    args.sim.write_report(&report)
}
