//! Training-program options shared by the commands that compile a training step
//! (`trainer compile --emit sdt` and later stages): autodiff and SDT pass options.

use clap::{Args, ValueEnum};
use trainer_compiler::autodiff::AutodiffOptions;
use trainer_compiler::sdt::{DataflowMode, SdtOptions, Speculation};

/// BN forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BnMode {
    /// Statistics fused into the producer, normalization into the consumer, BP reductions into
    /// the later layer's BP.
    Decoupled,
    /// Separate passes over the feature maps.
    Conventional,
}

/// Options of the training program (see spec/passes.md).
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// SGD learning rate.
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.0)]
    pub momentum: f64,
    /// L2 weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Loss scale (gradients are divided by it before the update).
    #[arg(long, default_value_t = 1.0)]
    pub loss_scale: f64,
    /// Target weight sparsity of conv/linear weights (0 = dense).
    #[arg(long, default_value_t = 0.0)]
    pub sparsity: f64,
    /// Sparsity schedule: `constant`, or `ramp:F` (linear from 0 over the first fraction F of
    /// `--steps`).
    #[arg(long, default_value = "constant")]
    pub schedule: String,
    /// Total training steps (for `--schedule ramp:F`).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Recompute the pruning masks every N steps.
    #[arg(long, default_value_t = 1)]
    pub prune_interval: u64,
    /// Sparse WG: only unpruned weights get gradients (default: DPF, all do).
    #[arg(long)]
    pub sparse_wg: bool,
    /// Do not prune the first conv/linear layer.
    #[arg(long)]
    pub exempt_first: bool,
    /// Do not prune the last conv/linear layer.
    #[arg(long)]
    pub exempt_last: bool,
    /// Speculation predicates to insert, comma-separated from s1, s2, s3 (default: s1).
    #[arg(long, value_delimiter = ',', conflicts_with = "no_speculation")]
    pub speculation: Option<Vec<String>>,
    /// Insert no speculation at all.
    #[arg(long)]
    pub no_speculation: bool,
    /// BN form.
    #[arg(long, value_enum, default_value_t = BnMode::Decoupled)]
    pub bn: BnMode,
    /// Dataflow choice: `static` (cost model), `adaptive` (run time), or `fixed:ws|os|is`.
    #[arg(long, default_value = "static")]
    pub dataflow: String,
}

impl TrainArgs {
    /// Autodiff options for a graph of batch `batch`.
    pub fn autodiff(&self, batch: Option<usize>) -> AutodiffOptions {
        AutodiffOptions {
            batch,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            loss_scale: self.loss_scale,
        }
    }

    /// SDT pass options.
    pub fn sdt(&self) -> anyhow::Result<SdtOptions> {
        let ramp_steps = super::schedule::ramp_steps(&self.schedule, self.steps)?;
        let speculation = match (&self.speculation, self.no_speculation) {
            (_, true) => Speculation::NONE,
            (None, false) => Speculation::EXACT,
            (Some(list), false) => {
                let mut s = Speculation::NONE;
                for item in list {
                    match item.as_str() {
                        "s1" => s.s1 = true,
                        "s2" => s.s2 = true,
                        "s3" => s.s3 = true,
                        other => anyhow::bail!("--speculation: unknown `{other}` (expected s1, s2, s3)"),
                    }
                }
                s
            }
        };
        let dataflow = match self.dataflow.split_once(':') {
            None if self.dataflow == "static" => DataflowMode::Static,
            None if self.dataflow == "adaptive" => DataflowMode::Adaptive,
            Some(("fixed", df)) => DataflowMode::Fixed(df.to_string()),
            _ => anyhow::bail!(
                "--dataflow must be `static`, `adaptive` or `fixed:ws|os|is`, found `{}`",
                self.dataflow
            ),
        };
        if self.prune_interval == 0 {
            anyhow::bail!("--prune-interval must be at least 1");
        }
        Ok(SdtOptions {
            sparsity: self.sparsity,
            ramp_steps,
            interval: self.prune_interval,
            sparse_wg: self.sparse_wg,
            exempt_first: self.exempt_first,
            exempt_last: self.exempt_last,
            speculation,
            bn_decoupled: self.bn == BnMode::Decoupled,
            dataflow,
            ..SdtOptions::default()
        })
    }
}
