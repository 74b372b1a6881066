//! Finite-difference checks of every op's BP/WG rule: small random graphs
//! `x → conv → <op under test> → flatten → gemm → logits`, autodiff'd and run by the reference
//! interpreter; each parameter gradient is compared with central differences of the loss
//! computed by the `tg` interpreter.

use trainer_compiler::autodiff::{autodiff, AutodiffOptions};
use trainer_compiler::frontend::builder::GraphBuilder;
use trainer_compiler::interp::kernels::train::softmax_ce;
use trainer_compiler::interp::{self, State};
use trainer_compiler::ir::{Attribute, Attrs, ElemType, Location, Module, TensorData, Type, ValueId};

/// Deterministic pseudo-random numbers in [-1, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn tensor(&mut self, shape: &[usize], scale: f32) -> TensorData {
        TensorData {
            shape: shape.to_vec(),
            data: (0..shape.iter().product()).map(|_| self.next() * scale).collect(),
        }
    }
}

fn attrs(items: &[(&str, Attribute)]) -> Attrs {
    items.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

fn conv_attrs(stride: i64, pad: i64, dil: i64, group: i64) -> Attrs {
    attrs(&[
        ("strides", Attribute::ints(&[stride, stride])),
        ("pads", Attribute::ints(&[pad; 4])),
        ("dilations", Attribute::ints(&[dil, dil])),
        ("group", Attribute::Int(group)),
    ])
}

const N: usize = 3;

/// Builds `x[N,2,6,6] → conv(4 ch) → body → flatten → gemm(5 classes)`.
fn graph(body: impl FnOnce(&mut GraphBuilder, &mut Rng, ValueId) -> ValueId) -> Module {
    let mut rng = Rng(7);
    let (mut b, args) = GraphBuilder::new("t", &[Type::tensor([N as i64, 2, 6, 6], ElemType::F32)]);
    let loc = Location::Unknown;
    let w = b.param("c0.weight", rng.tensor(&[4, 2, 3, 3], 0.5), loc.clone());
    let bias = b.param("c0.bias", rng.tensor(&[4], 0.2), loc.clone());
    let h = b
        .op("conv", &[args[0], w, bias], conv_attrs(1, 1, 1, 1), loc.clone())
        .unwrap()[0];
    let h = body(&mut b, &mut rng, h);
    let f = b
        .op(
            "flatten",
            &[h],
            attrs(&[("axis", Attribute::Int(1))]),
            loc.clone(),
        )
        .unwrap()[0];
    let k = b.ty(f).as_tensor().unwrap().shape[1] as usize;
    let fw = b.param("fc.weight", rng.tensor(&[5, k], 0.3), loc.clone());
    let fb = b.param("fc.bias", rng.tensor(&[5], 0.1), loc.clone());
    let gemm = attrs(&[
        ("trans_a", Attribute::Bool(false)),
        ("trans_b", Attribute::Bool(true)),
        ("alpha", Attribute::Float(1.0)),
        ("beta", Attribute::Float(1.0)),
    ]);
    let y = b.op("gemm", &[f, fw, fb], gemm, loc).unwrap()[0];
    b.finish(&[y])
}

/// Loss of the `tg` graph with its current weights.
fn loss(tg: &Module, x: &TensorData, y: &[i64]) -> f64 {
    let logits = interp::run_graph(tg, std::slice::from_ref(x)).unwrap();
    softmax_ce(&logits[0], y, 1.0).0 as f64
}

/// Compares every parameter gradient of the training step with central differences.
fn check(tg: Module) {
    let mut rng = Rng(11);
    let x = rng.tensor(&[N, 2, 6, 6], 1.0);
    let y: Vec<i64> = (0..N as i64).map(|i| (i * 2) % 5).collect();
    let sdt = autodiff(&tg, &AutodiffOptions::default()).unwrap();
    let mut state = State::init(&sdt).unwrap();
    let out = interp::run_step(&sdt, &mut state, &x, &y).unwrap();
    assert!((out.loss as f64 - loss(&tg, &x, &y)).abs() < 1e-5);
    let params: Vec<String> = out.grads.keys().cloned().collect();
    assert!(params.iter().any(|p| p == "c0.weight"), "{params:?}");
    for p in params {
        if p.contains("running") {
            continue;
        }
        let g = &out.grads[&p];
        let h = 1e-3f32;
        let mut fd = vec![0f64; g.data.len()];
        for (i, d) in fd.iter_mut().enumerate() {
            let mut plus = tg.clone();
            plus.weights.get_mut(&p).unwrap().data[i] += h;
            let mut minus = tg.clone();
            minus.weights.get_mut(&p).unwrap().data[i] -= h;
            *d = (loss(&plus, &x, &y) - loss(&minus, &x, &y)) / (2.0 * h as f64);
        }
        let num: f64 = g
            .data
            .iter()
            .zip(&fd)
            .map(|(&a, &b)| (a as f64 - b).powi(2))
            .sum::<f64>()
            .sqrt();
        let den: f64 = fd.iter().map(|b| b * b).sum::<f64>().sqrt();
        // Relative to the gradient's norm, or absolute where the true gradient vanishes (a bias
        // in front of BN).
        assert!(num < 2e-2 * den || num < 1e-4, "{p}: error {num} (|fd| = {den})");
    }
}

#[test]
fn conv_gemm_relu() {
    check(graph(|b, _, h| {
        b.op("relu", &[h], Attrs::new(), Location::Unknown).unwrap()[0]
    }));
}

#[test]
fn strided_grouped_dilated_conv() {
    check(graph(|b, rng, h| {
        let w = b.param("c1.weight", rng.tensor(&[6, 2, 3, 3], 0.5), Location::Unknown);
        b.op("conv", &[h, w], conv_attrs(2, 2, 2, 2), Location::Unknown)
            .unwrap()[0]
    }));
}

#[test]
fn batch_norm_relu() {
    check(graph(|b, rng, h| {
        let loc = Location::Unknown;
        let g = b.param("bn.weight", rng.tensor(&[4], 0.5), loc.clone());
        let be = b.param("bn.bias", rng.tensor(&[4], 0.5), loc.clone());
        let rm = b.param(
            "bn.running_mean",
            TensorData {
                shape: vec![4],
                data: vec![0.0; 4],
            },
            loc.clone(),
        );
        let rv = b.param(
            "bn.running_var",
            TensorData {
                shape: vec![4],
                data: vec![1.0; 4],
            },
            loc.clone(),
        );
        let a = attrs(&[
            ("epsilon", Attribute::Float(1e-5)),
            ("momentum", Attribute::Float(0.9)),
            ("training", Attribute::Bool(true)),
        ]);
        let y = b.op("batch_norm", &[h, g, be, rm, rv], a, loc.clone()).unwrap()[0];
        b.op("relu", &[y], Attrs::new(), loc).unwrap()[0]
    }));
}

#[test]
fn max_pool() {
    check(graph(|b, _, h| {
        let a = attrs(&[
            ("kernel_shape", Attribute::ints(&[2, 2])),
            ("strides", Attribute::ints(&[2, 2])),
            ("pads", Attribute::ints(&[0; 4])),
            ("dilations", Attribute::ints(&[1, 1])),
            ("ceil_mode", Attribute::Bool(false)),
        ]);
        b.op("max_pool", &[h], a, Location::Unknown).unwrap()[0]
    }));
}

#[test]
fn average_pool_padded() {
    for include in [false, true] {
        check(graph(|b, _, h| {
            let a = attrs(&[
                ("kernel_shape", Attribute::ints(&[3, 3])),
                ("strides", Attribute::ints(&[2, 2])),
                ("pads", Attribute::ints(&[1; 4])),
                ("ceil_mode", Attribute::Bool(false)),
                ("count_include_pad", Attribute::Bool(include)),
            ]);
            b.op("average_pool", &[h], a, Location::Unknown).unwrap()[0]
        }));
    }
}

#[test]
fn global_average_pool_and_reduce_mean() {
    check(graph(|b, _, h| {
        b.op("global_average_pool", &[h], Attrs::new(), Location::Unknown)
            .unwrap()[0]
    }));
    check(graph(|b, _, h| {
        let a = attrs(&[
            ("axes", Attribute::ints(&[2, 3])),
            ("keepdims", Attribute::Bool(false)),
        ]);
        b.op("reduce_mean", &[h], a, Location::Unknown).unwrap()[0]
    }));
}

#[test]
fn clip_relu6() {
    check(graph(|b, _, h| {
        let a = attrs(&[("min", Attribute::Float(0.0)), ("max", Attribute::Float(1.0))]);
        b.op("clip", &[h], a, Location::Unknown).unwrap()[0]
    }));
}

#[test]
fn residual_add_concat_reshape() {
    check(graph(|b, rng, h| {
        let loc = Location::Unknown;
        let w = b.param("c1.weight", rng.tensor(&[4, 4, 3, 3], 0.4), loc.clone());
        let c = b
            .op("conv", &[h, w], conv_attrs(1, 1, 1, 1), loc.clone())
            .unwrap()[0];
        let s = b.op("add", &[c, h], Attrs::new(), loc.clone()).unwrap()[0];
        let cat = b
            .op(
                "concat",
                &[s, h],
                attrs(&[("axis", Attribute::Int(1))]),
                loc.clone(),
            )
            .unwrap()[0];
        b.op(
            "reshape",
            &[cat],
            attrs(&[("shape", Attribute::ints(&[N as i64, 8, 36, 1]))]),
            loc,
        )
        .unwrap()[0]
    }));
}

#[test]
fn matmul_layer() {
    check(graph(|b, rng, h| {
        let loc = Location::Unknown;
        let f = b
            .op(
                "flatten",
                &[h],
                attrs(&[("axis", Attribute::Int(1))]),
                loc.clone(),
            )
            .unwrap()[0];
        let w = b.param("mm.weight", rng.tensor(&[144, 7], 0.2), loc.clone());
        b.op("matmul", &[f, w], Attrs::new(), loc).unwrap()[0]
    }));
}
