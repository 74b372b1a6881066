//! The `sdt` dialect: the sparse-training program built by autodiff and refined by the SDT
//! passes. Layouts of fused operands/results follow [`crate::sdt::ops`]; compute ops carry
//! `layer` and `phase` (`ff`, `bp`, `wg`, `bn`, `update`, ...) attributes. Operand counts of
//! compute ops vary with the `fused` features, so their arities are open here.

use super::registry::{Arity, AttrKind as K, OpDef};

fn compute(name: &str, summary: &str) -> OpDef {
    OpDef::new(name, summary, Arity::AtLeast(1), Arity::AtLeast(1))
        .opt("layer", K::Str)
        .opt("phase", K::Str)
        .opt("fused", K::Strs)
        .pure()
}

/// Every `sdt` op.
pub fn ops() -> Vec<OpDef> {
    let any = Arity::AtLeast(0);
    vec![
        OpDef::new(
            "sdt.step",
            "One training step: entry-block arguments are the input batch and labels; ends with `sdt.return`.",
            Arity::Exact(0),
            Arity::Exact(0),
        )
        .regions(1)
        .req("sym_name", K::Str),
        OpDef::new("sdt.return", "Step outputs (loss, logits).", any, Arity::Exact(0)).terminator(),
        OpDef::new(
            "sdt.state",
            "Reads persistent state `name` (weights, BN running stats, momentum buffers, masks, step counter) at the start of the step; `init` says how it is initialised.",
            Arity::Exact(0),
            Arity::Exact(1),
        )
        .req("name", K::Str)
        .opt("role", K::Str)
        .opt("init", K::Str),
        OpDef::new("sdt.assign", "Writes the new value of persistent state `name` at the end of the step.", Arity::Exact(1), Arity::Exact(0))
            .req("name", K::Str)
            .opt("layer", K::Str)
            .opt("phase", K::Str),
        compute("sdt.increment", "Step counter + 1."),
        compute("sdt.conv_ff", "Convolution forward (FF) with the masked weight `w ⊙ mask`; fused features add BN-apply on read, S3 prediction and BN statistics."),
        compute("sdt.conv_bp", "Convolution input gradient (BP): transposed convolution of dy with the masked weight; `omask` skips outputs (S1)."),
        compute("sdt.conv_wg", "Convolution weight gradient (WG): correlation of x and dy; `omask` skips pruned weights (S2 / sparse WG)."),
        compute("sdt.matmul_ff", "Linear layer forward `x·Wᵀ` with the masked weight."),
        compute("sdt.matmul_bp", "Linear layer input gradient `dy·W`."),
        compute("sdt.matmul_wg", "Linear layer weight gradient `dyᵀ·x`."),
        compute("sdt.bias_add", "Adds a per-channel bias."),
        compute("sdt.bias_grad", "Bias gradient: sum of dy over all but the channel axis."),
        compute("sdt.relu", "ReLU forward; also yields the ReLU mask used by BP and S1."),
        compute("sdt.relu_bwd", "ReLU backward: dy where the forward mask is 1."),
        compute("sdt.clip", "Clip forward (ReLU6)."),
        compute("sdt.pool_ff", "Max/average/global-average pooling forward (`kind`)."),
        compute("sdt.pool_bwd", "Pooling backward."),
        compute("sdt.reduce_mean", "Mean over axes forward."),
        compute("sdt.reduce_mean_bwd", "Mean over axes backward (broadcast dy / n)."),
        compute("sdt.reshape", "Reshape (also the backward of reshape/flatten)."),
        compute("sdt.add", "Elementwise sum (residuals, gradient accumulation)."),
        compute("sdt.concat", "Concatenation forward."),
        compute("sdt.slice", "Slice (backward of concat)."),
        compute("sdt.bn_stats", "BN forward statistics `[2, C]` = (Σx, Σx²) over N·H·W (conventional mode: a separate pass)."),
        compute("sdt.bn_finalize", "From statistics, γ, β and running stats: the BN block `[4, C]` (mean, inv-std, γ, β) and new running mean/var."),
        compute("sdt.bn_apply", "Normalisation `γ·(x − μ)·σ⁻¹ + β` with a BN block."),
        compute("sdt.bn_bwd_reduce", "BN backward reductions (Σdy, Σdy·x̂) = (dβ, dγ)."),
        compute("sdt.bn_bwd", "BN input gradient from dy, x̂ and the reductions."),
        compute("sdt.softmax_ce", "Mean softmax cross-entropy of logits and integer labels; results: loss and dlogits (scaled by `loss_scale` if set)."),
        compute("sdt.sgd", "SGD with momentum and weight decay on the dense weight: results new weight (and new momentum buffer)."),
        compute("sdt.prune_mask", "Pruning mask of a weight: keeps the k = max(1, round((1−s)·n)) largest |w| (ties: lower flat index); recomputed every `interval` steps, else the old mask."),
        compute("sdt.apply_mask", "w ⊙ mask."),
        compute("sdt.spec_s1", "S1 predicate (exact): the forward ReLU mask, used as the output mask of BP."),
        compute("sdt.spec_s2", "S2 predicate: weights predicted to stay pruned at the next mask update (their WG is skipped)."),
        compute("sdt.spec_s3", "S3 predictor: last step's BN block of the following BN, used to skip conv outputs that BN+ReLU will zero."),
    ]
}
