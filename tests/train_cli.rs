//! End-to-end training of compiled binaries: `trainer compile` then `trainer run`.
//!
//! - fp32: one step of digits_cnn on the PyTorch reference batch reproduces the updated parameters
//!   of tests/data/digits_cnn_step.npz (dense and 90% sparse) to 1e-4 relative.
//! - fp16: 300 steps of 90%-sparse digits_cnn (ramped schedule, momentum 0.9) reach the accuracy
//!   of PyTorch's fp32 run within 2 points.
//! - CIFAR-10 models compile at 90% sparsity and train a step on random data, and the report breaks
//!   energy and cycles down by layer, phase and component.

mod common;

use common::{accuracy, args, data, npz_names, ok, read_npz, write_f32, write_i64};
use std::path::Path;

/// ‖a − b‖ / ‖b‖.
fn rel(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    num / den.max(f64::MIN_POSITIVE)
}

/// Compiles digits_cnn with the reference recipe (plus `extra`), trains one step in order on the
/// reference batch of `case`, and compares every saved parameter with `case/new/*`.
fn reference_step(case: &str, extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let npz = data("digits_cnn_step.npz");
    let (xs, x) = read_npz(&npz, &format!("{case}/x"));
    let (_, y) = read_npz(&npz, &format!("{case}/y"));
    write_f32(
        &dir.join("x.npy"),
        &xs,
        &x.iter().map(|&v| v as f32).collect::<Vec<_>>(),
    );
    write_i64(
        &dir.join("y.npy"),
        &y.iter().map(|&v| v as i64).collect::<Vec<_>>(),
    );
    let tbin = dir.join("p.tbin");
    let mut compile = args(&[
        &"compile",
        &data("digits_cnn.onnx"),
        &"--precision",
        &"fp32",
        &"--batch",
        &"16",
    ]);
    compile.extend(args(&[&"--lr", &"0.1", &"--momentum", &"0", &"-o", &tbin]));
    compile.extend(extra.iter().map(|s| std::ffi::OsString::from(*s)));
    ok(&compile);
    let weights = dir.join("w.npz");
    let out = ok(&args(&[
        &"run",
        &tbin,
        &"--data",
        &dir.join("x.npy"),
        &"--labels",
        &dir.join("y.npy"),
        &"--no-shuffle",
        &"--train-rows",
        &"16",
        &"--steps",
        &"1",
        &"--save-weights",
        &weights,
    ]));
    let (_, loss) = read_npz(&npz, &format!("{case}/loss"));
    assert!(
        out.contains(&format!("step 1/1  loss {:.4}", loss[0])),
        "{case}: {out}"
    );
    let prefix = format!("{case}/new/");
    let names: Vec<String> = npz_names(&npz)
        .into_iter()
        .filter_map(|n| n.strip_prefix(&prefix).map(str::to_string))
        .collect();
    assert_eq!(names.len(), 8, "{names:?}");
    let mut saved = npz_names(&weights);
    saved.sort();
    let mut want = names.clone();
    want.sort();
    assert_eq!(
        saved, want,
        "--save-weights holds every parameter under its ONNX name"
    );
    for name in names {
        let (gs, got) = read_npz(&weights, &name);
        let (ws, want) = read_npz(&npz, &format!("{prefix}{name}"));
        assert_eq!(gs, ws, "{case} {name}: shape");
        let r = rel(&got, &want);
        assert!(r <= 1e-4, "{case} {name}: relative error {r:e}");
    }
}

#[test]
fn digits_cnn_fp32_step_reproduces_pytorch_dense() {
    reference_step("dense", &[]);
}

#[test]
fn digits_cnn_fp32_step_reproduces_pytorch_sparse90() {
    reference_step("sparse90", &["--sparsity", "0.9", "--schedule", "constant"]);
}

/// The fp16 recipe; PyTorch fp32 with the same recipe reaches 0.896.
#[test]
fn digits_cnn_fp16_sparse_training_reaches_pytorch_accuracy() {
    let tmp = tempfile::tempdir().unwrap();
    let (tbin, report) = (tmp.path().join("p.tbin"), tmp.path().join("r.json"));
    let mut compile = args(&[
        &"compile",
        &data("digits_cnn.onnx"),
        &"--precision",
        &"fp16",
        &"--sparsity",
        &"0.9",
    ]);
    compile.extend(args(&[
        &"--schedule",
        &"ramp:0.5",
        &"--batch",
        &"32",
        &"--lr",
        &"0.1",
        &"--momentum",
        &"0.9",
    ]));
    compile.extend(args(&[&"--steps", &"300", &"-o", &tbin]));
    ok(&compile);
    let started = std::time::Instant::now();
    let out = ok(&args(&[
        &"run",
        &tbin,
        &"--data",
        &data("digits_x.npy"),
        &"--labels",
        &data("digits_y.npy"),
        &"--train-rows",
        &"1500",
        &"--steps",
        &"300",
        &"--report",
        &report,
    ]));
    eprintln!(
        "fp16 digits_cnn, 300 steps + 297 evaluated rows: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let acc = accuracy(&out);
    assert!(acc >= 0.876, "test accuracy {acc} < 0.876\n{out}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let losses: Vec<f64> = r["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 300);
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    assert!(
        mean(&losses[270..]) < 0.5 * mean(&losses[..30]),
        "loss falls: {losses:?}"
    );
    assert_eq!(r["options"]["binary"]["precision"], "fp16");
    assert_eq!(r["options"]["binary"]["ramp_steps"], 150);
}

/// Compiles `model` at 90% sparsity in fp16 and trains one step on random data of its input shape;
/// checks the report's breakdowns.
fn cifar_step(model: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (tbin, report) = (dir.join("p.tbin"), dir.join("r.json"));
    ok(&args(&[
        &"compile",
        &model,
        &"--precision",
        &"fp16",
        &"--sparsity",
        &"0.9",
        &"-o",
        &tbin,
    ]));
    let disasm = ok(&args(&[&"disasm", &tbin]));
    let batch: u64 = disasm
        .lines()
        .find_map(|l| l.strip_prefix(".meta \"batch\" \""))
        .and_then(|v| v.trim_end_matches('"').parse().ok())
        .expect("batch metadata");
    // Deterministic pseudo-random inputs (an LCG) and labels.
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let x: Vec<f32> = (0..batch * 3 * 32 * 32)
        .map(|_| next() as f32 / u32::MAX as f32 * 4.0 - 1.0)
        .collect();
    let y: Vec<i64> = (0..batch).map(|_| i64::from(next() % 10)).collect();
    write_f32(&dir.join("x.npy"), &[batch, 3, 32, 32], &x);
    write_i64(&dir.join("y.npy"), &y);
    let out = ok(&args(&[
        &"run",
        &tbin,
        &"--data",
        &dir.join("x.npy"),
        &"--labels",
        &dir.join("y.npy"),
        &"--train-rows",
        &batch.to_string(),
        &"--steps",
        &"1",
        &"--report",
        &report,
    ]));
    assert!(out.contains("step 1/1  loss "), "{out}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let loss = r["losses"][0].as_f64().expect("finite loss");
    assert!(
        (1.0..5.0).contains(&loss),
        "random labels: loss near ln 10, got {loss}"
    );
    let train = &r["train"];
    assert!(train["cycles"].as_u64().unwrap() > 0);
    for phase in ["ff", "bp", "wg", "update"] {
        assert!(
            train["phases"][phase]["energy_pj"].as_f64().unwrap() > 0.0,
            "phase {phase}"
        );
        assert!(
            train["phases"][phase]["compute_cycles"].as_u64().unwrap() > 0,
            "phase {phase}"
        );
    }
    for component in ["mac", "dram", "sram.wbuf", "leak"] {
        assert!(
            train["total"]["components"][component].as_f64().unwrap() > 0.0,
            "component {component}"
        );
    }
    let tags = train["tags"].as_array().unwrap();
    let conv_layers = tags
        .iter()
        .filter(|t| t["phase"] == "wg" && t["effective_macs"].as_u64().unwrap() > 0)
        .count();
    assert!(conv_layers >= 10, "per-layer rows with WG work: {conv_layers}");
    assert!(tags
        .iter()
        .all(|t| t["name"].is_string() && t["components"].is_object()));
    // Pruning keeps about 10% of the weights: effective MACs well below dense.
    let (eff, dense) = (
        train["total"]["effective_macs"].as_f64().unwrap(),
        train["total"]["dense_macs"].as_f64().unwrap(),
    );
    assert!(eff < 0.6 * dense, "effective {eff} of dense {dense} MACs");
}

#[test]
fn mobilenet_v2_trains_a_sparse_step() {
    cifar_step(&data("mobilenet_v2_cifar10.onnx"));
}

/// ResNet-18 (45 MB of weights) is read from the shared model directory next to the repository;
/// skipped when it is not there.
#[test]
fn resnet18_trains_a_sparse_step() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/models/resnet18_cifar10.onnx");
    if !model.exists() {
        eprintln!("skipping: {} not present", model.display());
        return;
    }
    cifar_step(&model);
}
