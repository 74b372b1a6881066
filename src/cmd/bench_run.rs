//! Shared machinery of the whole-network benchmarks (`trainer bench paper`, `trainer bench sim`):
//! compile a model in-process with the same options `trainer compile` takes, load it on a machine
//! (optionally with Trainer features switched off), and run the host loop of spec/tbin.md
//! ("Runtime conventions") on seeded random data.

use super::compile::CompileArgs;
use anyhow::{Context, Result};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::time::Instant;
use trainer_compiler::frontend::{self, FrontendOptions};
use trainer_compiler::interp::kernels::train::scheduled_sparsity;
use trainer_isa::names::CfgF32;
use trainer_isa::Program;
use trainer_sim::cost::CostModel;
use trainer_sim::machine::{Features, Machine};
use trainer_sim::{RunStats, Simulator};

/// `trainer compile` arguments parsed from a list of flags, so that benchmarks compile exactly
/// as the CLI does.
#[derive(Parser)]
struct CompileLine {
    #[command(flatten)]
    args: CompileArgs,
}

/// What to train: model, batch, precision and sparsity.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Workload {
    /// Model file (`.onnx` or `.tg`).
    pub model: PathBuf,
    /// Batch size.
    pub batch: usize,
    /// Storage precision (`fp32`, `fp16`, `fp8`).
    pub precision: String,
    /// Target weight sparsity.
    pub sparsity: f64,
    /// Seed of the weight initialization and of the random data.
    pub seed: u64,
}

impl Workload {
    /// Compiles the workload with the extra `trainer compile` flags `flags` for machine `machine`.
    /// Returns the program and the compile time in seconds.
    pub fn compile(&self, machine: &str, flags: &[&str]) -> Result<(Program, f64)> {
        let mut line: Vec<String> = vec!["compile".into(), self.model.display().to_string()];
        for (k, v) in [
            ("--batch", self.batch.to_string()),
            ("--seed", self.seed.to_string()),
            ("--precision", self.precision.clone()),
            ("--sparsity", self.sparsity.to_string()),
            ("--machine", machine.to_string()),
        ] {
            line.extend([k.to_string(), v]);
        }
        line.extend(flags.iter().map(|f| f.to_string()));
        let c = CompileLine::try_parse_from(&line)
            .with_context(|| format!("bad compile flags {flags:?}"))?
            .args;
        let start = Instant::now();
        let program = compile_args(&c)?;
        Ok((program, start.elapsed().as_secs_f64()))
    }
}

/// Compiles the model of `c` to a program, as `trainer compile -o` does.
pub fn compile_args(c: &CompileArgs) -> Result<Program> {
    let opts = FrontendOptions {
        batch: c.batch,
        seed: c.seed,
    };
    let tg = frontend::load(&c.model, &opts).with_context(|| c.model.display().to_string())?;
    super::build::binary(tg, c, &c.train, &c.target)
}

/// The cost model of machine `name` with the features `off` switches off applied.
pub fn cost_model(name: &str, off: fn(&mut Features)) -> Result<CostModel> {
    let mut m = Machine::resolve(name)?;
    off(&mut m.features);
    Ok(CostModel::from_machine(&m))
}

/// A deterministic pseudo-random stream (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.unit(), self.unit());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

/// Statistics of a host-loop run, prune and train entries kept apart.
#[derive(Debug, Default)]
pub struct StepStats {
    /// Every `entry.prune` run.
    pub prune: RunStats,
    /// Every `entry.train` run.
    pub train: RunStats,
    /// Loss of every step.
    pub losses: Vec<f32>,
    /// Wall-clock seconds of each `entry.train` run.
    pub train_seconds: Vec<f64>,
    /// CPU seconds of this process (all threads) during each `entry.train` run, if known.
    pub train_cpu_seconds: Vec<f64>,
    /// Wall-clock seconds of each `entry.prune` run.
    pub prune_seconds: Vec<f64>,
}

/// Runs `steps` training steps of the host loop on seeded random data (standard-normal inputs,
/// uniform labels): before each step `entry.prune` at the program's target sparsity (constant
/// schedule, every step), then `entry.train`.
pub fn train_steps(sim: &mut Simulator, steps: u64, seed: u64) -> Result<StepStats> {
    let p = sim.program();
    let sparsity: f64 = p.meta("sparsity").and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let input = p.tensor("input").context("the program has no `input` tensor")?;
    let n_in = input.elements().context("`input` too large")? as usize;
    let batch = *input.shape.first().context("`input` has no batch dimension")? as usize;
    let classes = p
        .tensor("logits")
        .and_then(|t| t.shape.get(1).copied())
        .map(u64::from)
        .context("the program has no `logits` tensor [batch, classes]")?;
    let mut rng = Rng(seed ^ 0x5EED);
    let mut out = StepStats::default();
    for t in 0..steps {
        if sparsity > 0.0 {
            let s = scheduled_sparsity(sparsity, 0, t);
            let start = Instant::now();
            out.prune += &sim
                .run_entry("prune", &[(CfgF32::Sparsity, s as f32)])
                .with_context(|| format!("step {t}: entry.prune"))?;
            out.prune_seconds.push(start.elapsed().as_secs_f64());
        }
        let x: Vec<f32> = (0..n_in).map(|_| rng.normal()).collect();
        let y: Vec<i64> = (0..batch).map(|_| (rng.next() % classes) as i64).collect();
        sim.write_tensor("input", &x)?;
        sim.write_tensor_ints("labels", &y)?;
        let (start, cpu) = (Instant::now(), cpu_seconds());
        out.train += &sim
            .run_entry("train", &[])
            .with_context(|| format!("step {t}: entry.train"))?;
        out.train_seconds.push(start.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (cpu, cpu_seconds()) {
            out.train_cpu_seconds.push(b - a);
        }
        out.losses.push(sim.read_tensor("loss")?[0]);
    }
    Ok(out)
}

/// Median of `v` (0 for an empty slice).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Peak resident memory of this process (`VmHWM` of /proc/self/status), bytes, if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time of this process so far (user + system, all threads; `/proc/self/stat` fields 14
/// and 15, in the kernel's fixed 100 Hz user ticks), seconds, if known. On a shared machine it
/// measures the work done rather than the share of the cores the process got.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().skip(11);
    let (user, system): (u64, u64) = (fields.next()?.parse().ok()?, fields.next()?.parse().ok()?);
    Some((user + system) as f64 / 100.0)
}

/// Writes `text` to `path`, naming the file on failure.
pub fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
