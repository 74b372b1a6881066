//! Differential property test: random small graphs (chains and residual DAGs of conv, depthwise
//! conv, batch norm, ReLU/ReLU6, pooling, add, flatten and linear layers with random small
//! shapes), compiled with random sparsity, speculation, BN form, dataflow and buffer sizes, train
//! one step on the simulator to the IR interpreter's result (fp32, 1e-4 relative).

mod common;

use common::{step_diff, TINY_BUFFERS};
use proptest::prelude::*;
use std::fmt::Write;
use trainer_compiler::autodiff::AutodiffOptions;
use trainer_compiler::frontend::tg::{self, TgOptions};
use trainer_compiler::lower::LowerOptions;
use trainer_compiler::sdt::{DataflowMode, SdtOptions, Speculation};

/// One layer of a random graph.
#[derive(Debug, Clone)]
enum Layer {
    Conv {
        k: usize,
        r: usize,
        stride: usize,
        pad: usize,
        bias: bool,
    },
    Depthwise {
        r: usize,
        stride: usize,
    },
    Bn,
    Relu,
    Relu6,
    MaxPool,
    AvgPool,
    /// 3×3 conv keeping the shape, added to its input.
    Residual,
}

fn layer() -> impl Strategy<Value = Layer> {
    prop_oneof![
        3 => (1usize..=16, 1usize..=3, 1usize..=2, 0usize..=1, any::<bool>())
            .prop_map(|(k, r, stride, pad, bias)| Layer::Conv { k, r, stride, pad, bias }),
        1 => (1usize..=3, 1usize..=2).prop_map(|(r, stride)| Layer::Depthwise { r, stride }),
        2 => Just(Layer::Bn),
        2 => Just(Layer::Relu),
        1 => Just(Layer::Relu6),
        1 => Just(Layer::MaxPool),
        1 => Just(Layer::AvgPool),
        1 => Just(Layer::Residual),
    ]
}

/// A random graph and its compile options.
#[derive(Debug, Clone)]
struct Case {
    batch: usize,
    input: [usize; 3],
    layers: Vec<Layer>,
    gap: bool,
    hidden: Option<usize>,
    classes: usize,
    sparsity: f64,
    spec: [bool; 3],
    sparse_wg: bool,
    bn_decoupled: bool,
    dataflow: usize,
    buffers: usize,
    momentum: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (1usize..=3, [1usize..=6, 3usize..=12, 3usize..=12]),
        proptest::collection::vec(layer(), 1..=5),
        (any::<bool>(), proptest::option::of(2usize..=12), 2usize..=5),
        (0usize..3, [any::<bool>(); 3], any::<bool>(), any::<bool>()),
        (0usize..4, 0usize..3, any::<bool>()),
    )
        .prop_map(
            |(
                (batch, input),
                layers,
                (gap, hidden, classes),
                (sp, spec, sparse_wg, bn_decoupled),
                (dataflow, buffers, momentum),
            )| Case {
                batch,
                input,
                layers,
                gap,
                hidden,
                classes,
                sparsity: [0.0, 0.5, 0.9][sp],
                spec,
                sparse_wg,
                bn_decoupled,
                dataflow,
                buffers,
                momentum,
            },
        )
}

/// Renders a case as `.tg` text (layers that do not fit the current shape are left out). Biases
/// and BN shifts start random, so no layer output is a constant made of rounding noise.
fn render(c: &Case) -> String {
    let [mut ch, mut h, mut w] = c.input;
    let mut s = format!("graph g(%x: f32[N, {ch}, {h}, {w}]) -> (%logits) {{\n");
    let mut cur = "x".to_string();
    for (i, l) in c.layers.iter().enumerate() {
        let out = format!("l{i}");
        // A bias, or a single weight per output channel, before a BN gets a (nearly) zero
        // gradient (BN removes the mean and the scale): only rounding noise to compare. So
        // convs before a BN have no bias (as usual), and single-weight ones a ReLU after them.
        let before_bn = c.layers[i + 1..].iter().take(2).any(|l| matches!(l, Layer::Bn));
        match *l {
            Layer::Conv {
                k,
                r,
                stride,
                pad,
                bias,
            } => {
                let r = r.min(h + 2 * pad).min(w + 2 * pad);
                writeln!(s, "  param %w{i}: f32[{k}, {ch}, {r}, {r}] init = he").unwrap();
                let b = if bias && !before_bn {
                    writeln!(s, "  param %b{i}: f32[{k}] init = he").unwrap();
                    format!(", %b{i}")
                } else {
                    String::new()
                };
                writeln!(
                    s,
                    "  %{out} = conv(%{cur}, %w{i}{b}) {{stride = [{stride}, {stride}], pad = [{pad}, {pad}, {pad}, {pad}]}}"
                )
                .unwrap();
                if before_bn && ch * r * r == 1 {
                    writeln!(s, "  %a{i} = relu(%{out})").unwrap();
                    cur = format!("a{i}");
                } else {
                    cur = out;
                }
                h = (h + 2 * pad - r) / stride + 1;
                w = (w + 2 * pad - r) / stride + 1;
                ch = k;
                continue;
            }
            Layer::Depthwise { r, stride } => {
                let p = (r - 1) / 2;
                let r = 2 * p + 1;
                writeln!(s, "  param %w{i}: f32[{ch}, 1, {r}, {r}] init = he").unwrap();
                writeln!(
                    s,
                    "  %{out} = conv(%{cur}, %w{i}) {{stride = [{stride}, {stride}], pad = [{p}, {p}, {p}, {p}], groups = {ch}}}"
                )
                .unwrap();
                h = (h + 2 * p - r) / stride + 1;
                w = (w + 2 * p - r) / stride + 1;
                if before_bn && r == 1 {
                    writeln!(s, "  %a{i} = relu(%{out})").unwrap();
                    cur = format!("a{i}");
                    continue;
                }
            }
            // Batch statistics of very few values are ill-conditioned (the variance cancels);
            // a BN right after a BN leaves the first one's β without gradient.
            Layer::Bn if c.batch * h * w < 8 || cur.starts_with("bn") => continue,
            Layer::Bn => {
                for (p, init) in [("g", "ones"), ("b", "he"), ("m", "zeros"), ("v", "ones")] {
                    writeln!(s, "  param %{p}{i}: f32[{ch}] init = {init}").unwrap();
                }
                writeln!(
                    s,
                    "  %bn{i}, %nm{i}, %nv{i} = batch_norm(%{cur}, %g{i}, %b{i}, %m{i}, %v{i}) {{training = true}}"
                )
                .unwrap();
                cur = format!("bn{i}");
                continue;
            }
            Layer::Relu => writeln!(s, "  %{out} = relu(%{cur})").unwrap(),
            Layer::Relu6 => writeln!(s, "  %{out} = clip(%{cur}) {{min = 0.0, max = 6.0}}").unwrap(),
            Layer::MaxPool | Layer::AvgPool if h >= 2 && w >= 2 => {
                let op = if matches!(l, Layer::MaxPool) {
                    "max_pool"
                } else {
                    "average_pool"
                };
                writeln!(s, "  %{out} = {op}(%{cur}) {{kernel = [2, 2], stride = [2, 2]}}").unwrap();
                h /= 2;
                w /= 2;
            }
            Layer::MaxPool | Layer::AvgPool => continue,
            Layer::Residual => {
                writeln!(s, "  param %w{i}: f32[{ch}, {ch}, 3, 3] init = he").unwrap();
                writeln!(s, "  %r{i} = conv(%{cur}, %w{i}) {{pad = [1, 1, 1, 1]}}").unwrap();
                writeln!(s, "  %{out} = add(%r{i}, %{cur})").unwrap();
            }
        }
        cur = out;
    }
    if c.gap {
        // The spatial mean of a BN output is its β: rounding noise only, so a ReLU goes between.
        if cur.starts_with("bn") {
            writeln!(s, "  %lr = relu(%{cur})").unwrap();
            cur = "lr".into();
        }
        writeln!(s, "  %gap = global_average_pool(%{cur})").unwrap();
        cur = "gap".into();
        (h, w) = (1, 1);
    }
    writeln!(s, "  %flat = flatten(%{cur})").unwrap();
    let mut feat = ch * h * w;
    cur = "flat".into();
    if let Some(hd) = c.hidden {
        writeln!(s, "  param %fw: f32[{hd}, {feat}] init = he").unwrap();
        writeln!(s, "  param %fb: f32[{hd}] init = he").unwrap();
        writeln!(s, "  %fc = gemm(%flat, %fw, %fb) {{trans_b = true}}").unwrap();
        writeln!(s, "  %fr = relu(%fc)").unwrap();
        cur = "fr".into();
        feat = hd;
    }
    let k = c.classes;
    writeln!(s, "  param %ow: f32[{k}, {feat}] init = he").unwrap();
    writeln!(s, "  param %ob: f32[{k}] init = he").unwrap();
    writeln!(s, "  %logits = gemm(%{cur}, %ow, %ob) {{trans_b = true}}").unwrap();
    s.push_str("}\n");
    s
}

proptest! {
    // 32 cases by default; `PROPTEST_CASES` asks for more.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_graph_step_matches_interpreter(c in case()) {
        let src = render(&c);
        let tg = tg::compile(&src, "random.tg", &TgOptions { batch: Some(c.batch), seed: 3 })
            .map_err(|e| TestCaseError::fail(format!("{e}\n{src}")))?;
        let opts = SdtOptions {
            sparsity: c.sparsity,
            sparse_wg: c.sparse_wg,
            bn_decoupled: c.bn_decoupled,
            speculation: Speculation { s1: c.spec[0], s2: c.spec[1], s3: c.spec[2] },
            dataflow: match c.dataflow {
                0 => DataflowMode::Static,
                1 => DataflowMode::Adaptive,
                2 => DataflowMode::Fixed("ws".into()),
                _ => DataflowMode::Fixed("os".into()),
            },
            ..SdtOptions::default()
        };
        let ad = AutodiffOptions {
            momentum: if c.momentum { 0.9 } else { 0.0 },
            ..AutodiffOptions::default()
        };
        let lo = LowerOptions {
            buffers: match c.buffers {
                0 => LowerOptions::default().buffers,
                _ => TINY_BUFFERS,
            },
            ..LowerOptions::default()
        };
        let d = step_diff(&tg, &opts, &ad, &lo).map_err(|e| TestCaseError::fail(format!("{e}\n{src}")))?;
        // Loss, logits, new weights and BN statistics to 1e-4; gradients (the momentum buffers) to
        // 1e-3: a gradient that a BN makes (nearly) zero is cancellation noise amplified by σ⁻¹.
        let (e, name) = d.worst(|n| !n.ends_with(".momentum"));
        prop_assert!(e < 1e-4, "{}: relative error {:e}\n{}", name, e, src);
        let (e, name) = d.worst(|n| n.ends_with(".momentum"));
        prop_assert!(e < 1e-3, "{}: relative error {:e}\n{}", name, e, src);
    }
}
