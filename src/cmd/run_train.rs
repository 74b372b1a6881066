//! `trainer run` on a compiled training binary (one with metadata `entry.train`): the host loop of
//! spec/tbin.md, "Runtime conventions". For each step it sets the `sparsity` register from the
//! schedule and runs `entry.prune` (every `prune_interval` steps, when the binary prunes), writes
//! the next batch into `input`/`labels`, runs `entry.train` and reads `loss`; then it evaluates the
//! held-out rows with `entry.eval` and reports accuracy, energy and cycles.

use super::arrays::{self, Array};
use super::batches::Batches;
use super::run::SimOpts;
use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::{Path, PathBuf};
use trainer_compiler::interp::kernels::train::scheduled_sparsity;
use trainer_isa::names::CfgF32;
use trainer_isa::{Program, Role};
use trainer_sim::report::Report;
use trainer_sim::{RunStats, Simulator};

/// Data and training options of `trainer run` (compiled training binaries only).
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Input rows (.npy, float32, rows first; each row shaped like the program's `input` tensor
    /// without its batch dimension).
    #[arg(long, requires = "labels")]
    pub data: Option<PathBuf>,
    /// Labels (.npy, int64 or int32, one per data row, each in 0..classes).
    #[arg(long, requires = "data")]
    pub labels: Option<PathBuf>,
    /// Train on the first N rows and evaluate on the remaining ones; 0 trains on nothing and
    /// evaluates every row [default: 80% of the rows, rounded down].
    #[arg(long)]
    pub train_rows: Option<usize>,
    /// Training steps, one batch each; 0 only evaluates [default: the binary's `steps` metadata,
    /// or one epoch; 0 with `--train-rows 0`].
    #[arg(long)]
    pub steps: Option<u64>,
    /// Take training batches in row order instead of a shuffled order per epoch.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Seed of the per-epoch shuffle.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write every trained parameter (role param) as f32 under its name to this .npz file.
    #[arg(long)]
    pub save_weights: Option<PathBuf>,
    /// Write the logits of the evaluated rows ([rows, classes] f32, inference-form BN) to this .npy.
    #[arg(long)]
    pub save_logits: Option<PathBuf>,
}

impl DataArgs {
    /// Whether any option that needs a training binary was given.
    pub fn given(&self) -> bool {
        self.data.is_some()
            || self.train_rows.is_some()
            || self.steps.is_some()
            || self.no_shuffle
            || self.save_weights.is_some()
            || self.save_logits.is_some()
    }
}

/// What the host needs to know about a compiled training binary.
#[derive(Debug, Clone, Serialize)]
struct Binary {
    /// Compiled batch size.
    batch: usize,
    /// Shape of one input row (the `input` tensor without its batch dimension).
    row_shape: Vec<usize>,
    /// Number of classes (second dimension of `logits`).
    classes: usize,
    /// `steps` metadata (compile-time step count), if any.
    steps: Option<u64>,
    /// Target sparsity (0: the binary does not prune).
    sparsity: f64,
    /// Sparsity schedule, as compiled.
    schedule: String,
    /// Steps over which the sparsity ramps up from 0 (0: constant).
    ramp_steps: u64,
    /// Masks are recomputed every this many steps.
    prune_interval: u64,
    /// Storage precision, as compiled.
    precision: Option<String>,
}

fn meta_num<T: std::str::FromStr>(p: &Program, key: &str) -> Result<Option<T>> {
    p.meta(key)
        .map(|v| {
            v.trim()
                .parse::<T>()
                .map_err(|_| anyhow::anyhow!("metadata `{key}` = `{v}` is not a valid number"))
        })
        .transpose()
}

fn tensor_shape(p: &Program, name: &str, rank: Option<usize>) -> Result<Vec<usize>> {
    let t = p.tensor(name).with_context(|| {
        format!("the training binary has no `{name}` tensor (spec/tbin.md, Runtime conventions)")
    })?;
    let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
    if rank.is_some_and(|r| r != shape.len()) || shape.first() == Some(&0) {
        bail!("the `{name}` tensor has an unexpected shape {shape:?}");
    }
    Ok(shape)
}

impl Binary {
    fn of(p: &Program) -> Result<Binary> {
        let input = tensor_shape(p, "input", None)?;
        let batch = *input
            .first()
            .context("the `input` tensor has no batch dimension")?;
        let labels = tensor_shape(p, "labels", Some(1))?;
        let logits = tensor_shape(p, "logits", Some(2))?;
        tensor_shape(p, "loss", None)?;
        if labels[0] != batch || logits[0] != batch {
            bail!(
                "tensors `input`, `labels` and `logits` disagree on the batch size ({batch}, {}, {})",
                labels[0],
                logits[0]
            );
        }
        if let Some(b) = meta_num::<usize>(p, "batch")? {
            if b != batch {
                bail!("metadata `batch` = {b} but the `input` tensor has batch {batch}");
            }
        }
        let steps = meta_num::<u64>(p, "steps")?;
        let sparsity = meta_num::<f64>(p, "sparsity")?.unwrap_or(0.0);
        let schedule = p.meta("schedule").unwrap_or("constant").to_string();
        let ramp_steps = super::schedule::ramp_steps(&schedule, steps).context("metadata `schedule`")?;
        let prune_interval = meta_num::<u64>(p, "prune_interval")?.unwrap_or(1);
        if prune_interval == 0 {
            bail!("metadata `prune_interval` must be at least 1");
        }
        if sparsity > 0.0 && p.meta("entry.prune").is_none() {
            bail!("the binary prunes (metadata `sparsity` = {sparsity}) but has no `entry.prune`");
        }
        Ok(Binary {
            batch,
            row_shape: input[1..].to_vec(),
            classes: logits[1],
            steps,
            sparsity,
            schedule,
            ramp_steps,
            prune_interval,
            precision: p.meta("precision").map(str::to_string),
        })
    }
}

/// The data set, checked against the binary.
struct Dataset {
    x: Array,
    y: Vec<i64>,
    row_len: usize,
}

impl Dataset {
    fn load(data: &Path, labels: &Path, bin: &Binary) -> Result<Dataset> {
        let x = arrays::read_data(data)?;
        let y = arrays::read_labels(labels)?;
        if x.shape[0] != y.len() {
            bail!(
                "{} has {} rows but {} has {} labels",
                data.display(),
                x.shape[0],
                labels.display(),
                y.len()
            );
        }
        if x.shape[1..] != bin.row_shape[..] {
            bail!(
                "{}: rows have shape {:?}, but the program's `input` tensor expects {:?} per row (batch {})",
                data.display(),
                &x.shape[1..],
                bin.row_shape,
                bin.batch
            );
        }
        if let Some((i, v)) = y
            .iter()
            .enumerate()
            .find(|(_, &v)| v < 0 || v >= bin.classes as i64)
        {
            bail!(
                "{}: label {v} at row {i} is outside 0..{} (the program has {} classes)",
                labels.display(),
                bin.classes,
                bin.classes
            );
        }
        let row_len = bin.row_shape.iter().product();
        Ok(Dataset { x, y, row_len })
    }

    fn rows(&self) -> usize {
        self.y.len()
    }

    /// Writes rows `idx` (padded with zero rows and label 0 up to `batch`) into `input`/`labels`.
    fn load_batch(&self, sim: &mut Simulator, idx: &[usize], batch: usize) -> Result<()> {
        let mut x = vec![0.0f32; batch * self.row_len];
        let mut y = vec![0i64; batch];
        for (slot, &r) in idx.iter().enumerate() {
            x[slot * self.row_len..(slot + 1) * self.row_len]
                .copy_from_slice(&self.x.data[r * self.row_len..(r + 1) * self.row_len]);
            y[slot] = self.y[r];
        }
        sim.write_tensor("input", &x)?;
        sim.write_tensor_ints("labels", &y)?;
        Ok(())
    }
}

/// Options of the run, echoed in the JSON report.
#[derive(Debug, Serialize)]
struct RunOptions {
    program: String,
    data: String,
    labels: String,
    rows: usize,
    train_rows: usize,
    eval_rows: usize,
    steps: u64,
    shuffle: bool,
    seed: u64,
    machine: String,
    binary: Binary,
}

/// The JSON report of a training run.
#[derive(Debug, Serialize)]
struct TrainReport {
    /// Model name from the binary's metadata.
    model: Option<String>,
    options: RunOptions,
    /// Training loss of every step.
    losses: Vec<f32>,
    /// Accuracy on the evaluated rows (`null` when there are none).
    accuracy: Option<f64>,
    /// Energy and cycles of training (every `entry.prune` and `entry.train` run).
    train: Report,
    /// Energy and cycles of evaluation (every `entry.eval` run).
    eval: Report,
}

/// Index of the largest logit (the first one on ties; `None` if any is NaN).
fn argmax(row: &[f32]) -> Option<usize> {
    if row.iter().any(|v| v.is_nan()) {
        return None;
    }
    row.iter()
        .enumerate()
        .fold(None, |best: Option<(usize, f32)>, (i, &v)| match best {
            Some((_, b)) if b >= v => best,
            _ => Some((i, v)),
        })
        .map(|(i, _)| i)
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {what}  {{msg}}  [{{elapsed}} < {{eta}}]");
    pb.set_style(ProgressStyle::with_template(&template).expect("valid template"));
    pb
}

/// Trains and evaluates `sim` (a training binary loaded from `program`) on the data of `args`.
pub fn train(mut sim: Simulator, program: &Path, sim_opts: &SimOpts, args: &DataArgs) -> Result<()> {
    let bin = Binary::of(sim.program()).with_context(|| program.display().to_string())?;
    let (Some(data), Some(labels)) = (&args.data, &args.labels) else {
        bail!(
            "{} is a training binary (it has `entry.train`): give --data X.npy and --labels Y.npy",
            program.display()
        );
    };
    let ds = Dataset::load(data, labels, &bin)?;
    let rows = ds.rows();
    let train_rows = args.train_rows.unwrap_or(rows * 4 / 5);
    if train_rows > rows {
        bail!(
            "--train-rows {train_rows} exceeds the {rows} rows of {}",
            data.display()
        );
    }
    let steps = match (args.steps, train_rows) {
        (Some(s), _) => s,
        (None, 0) => 0,
        (None, n) => bin.steps.unwrap_or((n / bin.batch) as u64),
    };
    if steps > 0 && train_rows < bin.batch {
        bail!("--train-rows {train_rows} is smaller than the compiled batch of {} rows: nothing to train on (use --steps 0 to only evaluate)", bin.batch);
    }
    let eval_idx: Vec<usize> = if train_rows == 0 {
        (0..rows).collect()
    } else {
        (train_rows..rows).collect()
    };

    let seed = (!args.no_shuffle).then_some(args.seed);
    let (losses, train_stats) = train_steps(&mut sim, &bin, &ds, train_rows, steps, seed)?;
    let eval = evaluate(&mut sim, &bin, &ds, &eval_idx)?;
    let accuracy = (!eval_idx.is_empty()).then(|| eval.correct as f64 / eval_idx.len() as f64);
    match accuracy {
        Some(a) => println!("test accuracy: {a:.3} ({}/{} rows)", eval.correct, eval_idx.len()),
        None => println!("no held-out rows (--train-rows {train_rows} of {rows}): evaluation skipped"),
    }
    let eval_stats = eval.stats;
    let logits = eval.logits;

    let train_report = Report::new(&train_stats, sim.cost(), sim.program());
    let eval_report = Report::new(&eval_stats, sim.cost(), sim.program());
    if steps > 0 {
        println!("\ntraining, {steps} steps of {} rows:", bin.batch);
        print!("{}", train_report.to_table());
    }
    if !eval_idx.is_empty() {
        println!(
            "\nevaluation, {} rows: {} cycles ({:.3} ms), energy {:.3} uJ",
            eval_idx.len(),
            eval_report.cycles,
            eval_report.seconds * 1e3,
            eval_report.total.energy_pj / 1e6
        );
    }

    if let Some(path) = &args.save_weights {
        save_params(&sim, path)?;
    }
    if let Some(path) = &args.save_logits {
        arrays::write_npy(
            path,
            &Array {
                shape: vec![eval_idx.len(), bin.classes],
                data: logits,
            },
        )?;
    }
    if let Some(path) = &sim_opts.report {
        let report = TrainReport {
            model: sim.program().meta("model").map(str::to_string),
            options: RunOptions {
                program: program.display().to_string(),
                data: data.display().to_string(),
                labels: labels.display().to_string(),
                rows,
                train_rows,
                eval_rows: eval_idx.len(),
                steps,
                shuffle: !args.no_shuffle,
                seed: args.seed,
                machine: sim.cost().name.clone(),
                binary: bin,
            },
            losses,
            accuracy,
            train: train_report,
            eval: eval_report,
        };
        let json = serde_json::to_string_pretty(&report).expect("reports serialize") + "\n";
        arrays::write_atomic(path, |tmp| {
            std::fs::write(tmp, json).with_context(|| format!("cannot write {}", path.display()))
        })?;
    }
    Ok(())
}

/// Runs `steps` training steps on batches of rows `0..train_rows` (pruning per the schedule),
/// printing the loss of each; returns the losses and the accumulated statistics.
fn train_steps(
    sim: &mut Simulator,
    bin: &Binary,
    ds: &Dataset,
    train_rows: usize,
    steps: u64,
    seed: Option<u64>,
) -> Result<(Vec<f32>, RunStats)> {
    let mut stats = RunStats::default();
    let mut losses = Vec::with_capacity(steps as usize);
    if steps == 0 {
        return Ok((losses, stats));
    }
    let pb = progress(steps, "steps");
    let mut batches = Batches::new(train_rows, bin.batch, seed);
    for t in 0..steps {
        if bin.sparsity > 0.0 && t % bin.prune_interval == 0 {
            let s = scheduled_sparsity(bin.sparsity, bin.ramp_steps, t);
            stats += &sim
                .run_entry("prune", &[(CfgF32::Sparsity, s as f32)])
                .with_context(|| format!("step {t}: entry.prune"))?;
        }
        let idx = batches.next().expect("batches never end");
        ds.load_batch(sim, &idx, bin.batch)?;
        stats += &sim
            .run_entry("train", &[])
            .with_context(|| format!("step {t}: entry.train"))?;
        let loss = sim.read_tensor("loss")?[0];
        losses.push(loss);
        pb.set_message(format!("loss {loss:.4}"));
        pb.suspend(|| println!("step {}/{steps}  loss {loss:.4}", t + 1));
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok((losses, stats))
}

/// Outcome of evaluating rows with `entry.eval`.
struct Evaluation {
    /// Rows whose largest logit is their label.
    correct: usize,
    /// Logits of the evaluated rows, row-major `[rows, classes]`.
    logits: Vec<f32>,
    /// Accumulated statistics of the eval runs.
    stats: RunStats,
}

/// Evaluates rows `idx` batch by batch (the last batch padded with zero rows, whose logits are
/// ignored).
fn evaluate(sim: &mut Simulator, bin: &Binary, ds: &Dataset, idx: &[usize]) -> Result<Evaluation> {
    let mut ev = Evaluation {
        correct: 0,
        logits: Vec::with_capacity(idx.len() * bin.classes),
        stats: RunStats::default(),
    };
    if idx.is_empty() {
        return Ok(ev);
    }
    let pb = progress(idx.len().div_ceil(bin.batch) as u64, "eval batches");
    for chunk in idx.chunks(bin.batch) {
        ds.load_batch(sim, chunk, bin.batch)?;
        ev.stats += &sim.run_entry("eval", &[]).context("entry.eval")?;
        let out = sim.read_tensor("logits")?;
        for (slot, &r) in chunk.iter().enumerate() {
            let row = &out[slot * bin.classes..(slot + 1) * bin.classes];
            ev.correct += usize::from(argmax(row) == Some(ds.y[r] as usize));
            ev.logits.extend_from_slice(row);
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(ev)
}

/// Writes every parameter (role param) as f32 in its shape under its name.
fn save_params(sim: &Simulator, path: &Path) -> Result<()> {
    let mut params = Vec::new();
    for t in sim.program().tensors.iter().filter(|t| t.role == Role::Param) {
        let shape = t.shape.iter().map(|&d| d as usize).collect();
        params.push((
            t.name.clone(),
            Array {
                shape,
                data: sim.read_tensor(&t.name)?,
            },
        ));
    }
    arrays::write_npz(path, &params)
}

#[cfg(test)]
mod tests {
    use super::argmax;

    #[test]
    fn argmax_takes_the_first_maximum_and_rejects_nan() {
        assert_eq!(argmax(&[0.1, 0.5, 0.5, -1.0]), Some(1));
        assert_eq!(argmax(&[f32::NEG_INFINITY]), Some(0));
        assert_eq!(argmax(&[0.1, f32::NAN]), None);
    }
}
