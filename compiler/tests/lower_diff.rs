//! Differential tests: the simulator running the compiled binary's `entry.prune` + `entry.train`
//! agrees with the IR interpreter's training step (fp32) — loss, logits and every updated
//! parameter, momentum, BN statistic and mask — on the example models, with the machine's
//! buffers and with tiny buffers that force every tiling path (channel, row and reduction tiles,
//! accumulation, halos).

mod common;

use common::{check_step, check_step_conditioned, onnx, shared_onnx, tg_example, TINY_BUFFERS};
use trainer_compiler::autodiff::AutodiffOptions;
use trainer_compiler::lower::LowerOptions;
use trainer_compiler::sdt::{DataflowMode, SdtOptions, Speculation};

fn tiny() -> LowerOptions {
    LowerOptions {
        buffers: TINY_BUFFERS,
        ..LowerOptions::default()
    }
}

fn sparse(s: f64) -> SdtOptions {
    SdtOptions {
        sparsity: s,
        ..SdtOptions::default()
    }
}

fn spec_all_90() -> SdtOptions {
    SdtOptions {
        speculation: Speculation::ALL,
        ..sparse(0.9)
    }
}

/// One MobileNetV2 step at 90% with all speculation, BN decoupled or conventional.
fn mobilenet_v2_step(bn_decoupled: bool, batch: usize, tol: f64) {
    let opts = SdtOptions {
        bn_decoupled,
        ..spec_all_90()
    };
    let (ad, lo) = (AutodiffOptions::default(), LowerOptions::default());
    check_step(&onnx("mobilenet_v2_cifar10.onnx", batch), &opts, &ad, &lo, tol);
}

#[test]
fn digits_mlp_dense_step_matches_interpreter() {
    let ad = AutodiffOptions::default();
    for lo in [LowerOptions::default(), tiny()] {
        check_step(
            &onnx("digits_mlp.onnx", 16),
            &SdtOptions::default(),
            &ad,
            &lo,
            1e-4,
        );
    }
}

#[test]
fn digits_cnn_dense_step_matches_interpreter() {
    let ad = AutodiffOptions::default();
    for lo in [LowerOptions::default(), tiny()] {
        check_step(
            &onnx("digits_cnn.onnx", 16),
            &SdtOptions::default(),
            &ad,
            &lo,
            1e-4,
        );
    }
}

#[test]
fn digits_cnn_sparse_momentum_step_matches_interpreter() {
    let ad = AutodiffOptions {
        momentum: 0.9,
        weight_decay: 1e-4,
        ..AutodiffOptions::default()
    };
    for lo in [LowerOptions::default(), tiny()] {
        check_step(&onnx("digits_cnn.onnx", 16), &sparse(0.9), &ad, &lo, 1e-4);
    }
}

#[test]
fn digits_cnn_all_speculation_adaptive_tiny_buffers_matches_interpreter() {
    let opts = SdtOptions {
        speculation: Speculation::ALL,
        dataflow: DataflowMode::Adaptive,
        ..sparse(0.9)
    };
    check_step(
        &onnx("digits_cnn.onnx", 4),
        &opts,
        &AutodiffOptions::default(),
        &tiny(),
        1e-4,
    );
    let exact = SdtOptions {
        sparse_wg: true,
        bn_decoupled: false,
        ..opts
    };
    check_step(
        &onnx("digits_cnn.onnx", 4),
        &exact,
        &AutodiffOptions::default(),
        &tiny(),
        1e-4,
    );
}

#[test]
fn example_mlp_tg_step_matches_interpreter() {
    for lo in [LowerOptions::default(), tiny()] {
        check_step(
            &tg_example("mlp.tg", 2),
            &sparse(0.5),
            &AutodiffOptions::default(),
            &lo,
            1e-4,
        );
    }
}

#[test]
fn example_lenet_tg_step_matches_interpreter() {
    for lo in [LowerOptions::default(), tiny()] {
        check_step(
            &tg_example("lenet.tg", 2),
            &sparse(0.5),
            &AutodiffOptions::default(),
            &lo,
            1e-4,
        );
    }
}

#[test]
fn example_resnet18_tg_sparse_speculative_step_matches_interpreter() {
    let d = check_step(
        &tg_example("resnet18.tg", 2),
        &spec_all_90(),
        &AutodiffOptions::default(),
        &LowerOptions::default(),
        1e-4,
    );
    eprintln!(
        "resnet18.tg: {} instructions, worst {:?}",
        d.instructions,
        d.worst(|_| true)
    );
}

/// MobileNetV2 (ReLU6, depthwise, residual adds) at batch 8 with conventional BN: its last
/// stages normalise 8 values per channel (1×1 maps), so gradients through them are
/// ill-conditioned; 5e-4 is the tolerance (measured 1.5e-4).
#[test]
fn mobilenet_v2_sparse_step_matches_interpreter() {
    mobilenet_v2_step(false, 8, 5e-4);
}

/// MobileNetV2 with decoupled BN (statistics accumulated by the producing conv tiles, applied as
/// the consumer reads) and all speculation, at 90%: measured 1.8e-5. The batch is 32 because at
/// batch 8 the step is not comparable in fp32 by any two implementations: the 1×1 stages
/// normalise 8 values per channel, forward differences of the order of 1e-5 (both BN forms; the
/// one-pass f32 sums of the decoupled form are a little noisier) reach a ReLU6 input of −6.5e-6
/// (`features.18.1`, channel 26), the clip's gradient mask flips for that one element, and the
/// 8-sample BN backward spreads it to every gradient upstream (0.2 relative at the stem). With 32
/// values per channel the stages are better conditioned and no input of this batch sits within
/// the engines' differences of a ReLU6 boundary (at batch 16 one still does).
#[test]
fn mobilenet_v2_decoupled_bn_sparse_step_matches_interpreter() {
    mobilenet_v2_step(true, 32, 1e-4);
}

/// VGG-11 with BN (224×224, seeded initialization) at batch 2, 90%, all speculation: measured
/// 1.7e-5. About 15 minutes in the two engines, so on demand (`--ignored`).
#[test]
#[ignore = "about 15 minutes"]
fn vgg11_bn_sparse_step_matches_interpreter() {
    let ad = AutodiffOptions::default();
    let lo = LowerOptions::default();
    check_step(&onnx("vgg11_bn_graph.onnx", 2), &spec_all_90(), &ad, &lo, 1e-4);
}

/// ResNet-18 ImageNet shape (224×224, max-pool stem) at batch 2, 90%, all speculation. This
/// step is discontinuous at the rounding level: the interpreter's own BN-bias gradients move by
/// up to 1.4e-3 (relative) when the batch is perturbed by 1e-7, and the simulator differs from
/// it by the same amount (every other tensor below 2e-4). So each tensor must agree to 1e-4 or
/// to within 4× the interpreter's own sensitivity. About 12 minutes: on demand.
#[test]
#[ignore = "about 12 minutes"]
fn resnet18_imagenet_sparse_step_matches_interpreter_within_conditioning() {
    let ad = AutodiffOptions::default();
    let lo = LowerOptions::default();
    let tg = onnx("resnet18_imagenet_graph.onnx", 2);
    check_step_conditioned(&tg, &spec_all_90(), &ad, &lo, 1e-4, 4.0);
}

/// PyTorch's ResNet-18 CIFAR-10 export (45 MB: read from the shared model directory next to
/// the workspace, not copied into the repository) at batch 4, 90%, all speculation.
#[test]
#[ignore = "needs the shared ResNet-18 export"]
fn resnet18_cifar10_onnx_sparse_step_matches_interpreter() {
    let ad = AutodiffOptions::default();
    let lo = LowerOptions::default();
    let tg = shared_onnx("resnet18_cifar10.onnx", 4);
    check_step(&tg, &spec_all_90(), &ad, &lo, 1e-4);
}
