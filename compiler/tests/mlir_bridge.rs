//! The MLIR bridge on the example models (`examples/*.tg`, `tests/data/*.onnx`) as the frontends
//! build them (with locations and weights): MLIR accepts them, our IR → MLIR → our IR is identical
//! locations included, and MLIR's `canonicalize,cse` give a module that passes our verifier and
//! computes bit-identical outputs in the IR interpreter (for inputs up to CIFAR size).
#![cfg(feature = "mlir")]

use std::path::{Path, PathBuf};
use trainer_compiler::frontend::{self, FrontendOptions};
use trainer_compiler::interp::run_graph;
use trainer_compiler::ir::{Module, TensorData};
use trainer_compiler::mlir;
use trainer_compiler::text::{print_module, PrintOptions};
use trainer_compiler::verify::{verify, VerifyOptions};

const WITH_LOCS: PrintOptions = PrintOptions {
    generic: true,
    debug_info: true,
};

fn models() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = Vec::new();
    for (dir, ext) in [("examples", "tg"), ("tests/data", "onnx")] {
        let entries = std::fs::read_dir(root.join(dir)).expect("model directory exists");
        out.extend(
            entries
                .map(|e| e.expect("readable directory").path())
                .filter(|p| p.extension().is_some_and(|x| x == ext)),
        );
    }
    out.sort();
    assert!(!out.is_empty(), "no example models found");
    out
}

/// The model at batch 2 (small enough for the interpreter).
fn load(path: &Path) -> Module {
    let opts = FrontendOptions {
        batch: Some(2),
        seed: 7,
    };
    frontend::load(path, &opts).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Deterministic inputs in [-1, 1) for every argument of the first graph.
fn inputs(m: &Module) -> Vec<TensorData> {
    let graph = m.block(m.body()).ops()[0];
    let entry = m.region(m.op(graph).regions()[0]).blocks()[0];
    let mut state = 0x2545_f491_u32;
    m.block(entry)
        .args()
        .iter()
        .map(|&a| {
            let t = m.ty(a).as_tensor().expect("tensor argument");
            let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
            let data = (0..shape.iter().product::<usize>())
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    (state >> 8) as f32 / (1 << 23) as f32 - 1.0
                })
                .collect();
            TensorData { shape, data }
        })
        .collect()
}

#[test]
fn round_trip_keeps_text_locations_and_weights() {
    for path in models() {
        let m = load(&path);
        let back = mlir::round_trip(&m).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            print_module(&back, WITH_LOCS),
            print_module(&m, WITH_LOCS),
            "{}",
            path.display()
        );
        assert_eq!(back.weights, m.weights);
    }
}

#[test]
fn canonicalize_and_cse_preserve_semantics() {
    let registry = trainer_compiler::dialect::standard();
    for path in models() {
        let what = path.display();
        let m = load(&path);
        let out = mlir::optimize(&m, "canonicalize,cse").unwrap_or_else(|e| panic!("{what}: {e}"));
        verify(&out, &registry, VerifyOptions::default()).unwrap_or_else(|e| panic!("{what}: {e}"));
        let x = inputs(&m);
        if x.iter().map(|t| t.data.len()).sum::<usize>() > 2 * 3 * 32 * 32 {
            eprintln!("{what}: too large for the interpreter in a test; verified only");
            continue;
        }
        let want = run_graph(&m, &x).unwrap_or_else(|e| panic!("{what}: {e}"));
        let got = run_graph(&out, &x).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(got, want, "{what}: outputs differ after MLIR's canonicalize,cse");
    }
}
