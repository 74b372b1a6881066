//! Shared helpers of the differential lowering tests: compile a `tg` module to a training
//! binary, run one step on the simulator and in the IR interpreter (fp32), compare.

#![allow(dead_code)]

#[path = "../../../tests/common/npz_values.rs"]
mod npz_values;

use npyz::npz::NpzArchive;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use trainer_compiler::autodiff::{autodiff, AutodiffOptions};
use trainer_compiler::codegen;
use trainer_compiler::frontend::{self, FrontendOptions};
use trainer_compiler::interp::{self, State};
use trainer_compiler::ir::{Module, TensorData};
use trainer_compiler::lower::{self, LowerOptions};
use trainer_compiler::sdt::{self, SdtOptions};
use trainer_isa::names::CfgF32;
use trainer_sim::cost::CostModel;
use trainer_sim::machine::Machine;
use trainer_sim::Simulator;

/// A file of the workspace.
pub fn data(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file)
}

/// An opened `.npz` archive.
pub type Npz = NpzArchive<BufReader<File>>;

/// Array `name` of an `.npz` (f32, f64 or integer) as f64: shape and values.
pub fn npz_array(npz: &mut Npz, name: &str) -> (Vec<usize>, Vec<f64>) {
    let arr = npz
        .by_name(name)
        .unwrap()
        .unwrap_or_else(|| panic!("no array {name}"));
    let shape = arr.shape().iter().map(|&d| d as usize).collect();
    (shape, npz_values::values_f64(arr))
}

/// Deterministic pseudo-random values in [0, 1).
pub fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// Relative L2 error of `a` against `b`, with an RMS floor of `1e-2` under `b` so that values
/// that are pure rounding noise (a BN output's mean, the gradient of a weight a BN makes
/// scale-invariant) do not count as relative errors: `‖a − b‖ / max(‖b‖, 1e-2·√n)` — at a
/// tolerance of 1e-4, an absolute RMS error of 1e-6 is always accepted.
pub fn rel(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let den: f64 = b.iter().map(|&y| (y as f64).powi(2)).sum::<f64>().sqrt();
    num / den.max(1e-2 * (b.len() as f64).sqrt())
}

/// An ONNX model of `tests/data` at a batch size.
pub fn onnx(file: &str, batch: usize) -> Module {
    load_onnx(&data(&format!("tests/data/{file}")), batch)
}

fn load_onnx(path: &Path, batch: usize) -> Module {
    frontend::load(
        path,
        &FrontendOptions {
            batch: Some(batch),
            seed: 0,
        },
    )
    .unwrap()
}

/// A model of the shared model directory (next to the workspace) at a batch size, for on-demand
/// tests of files too large to copy into the repository.
pub fn shared_onnx(file: &str, batch: usize) -> Module {
    load_onnx(&data(&format!("../shared/models/{file}")), batch)
}

/// A `.tg` example of `examples/` at a batch size.
pub fn tg_example(file: &str, batch: usize) -> Module {
    frontend::load(
        &data(&format!("examples/{file}")),
        &FrontendOptions {
            batch: Some(batch),
            seed: 1,
        },
    )
    .unwrap()
}

/// What one differential step measured: the relative error ([`rel`]) of the loss, the logits
/// and every state tensor of the interpreter, and the instruction count of the binary.
#[derive(Debug, Clone)]
pub struct StepDiff {
    /// `(tensor, relative error)`, loss and logits first.
    pub errors: Vec<(String, f64)>,
    /// Instructions in the compiled binary.
    pub instructions: usize,
    /// `(tensor, relative change)` of the interpreter's own step when the batch is perturbed by
    /// a relative 1e-7 (about one f32 ulp), same order as `errors`; empty unless asked for
    /// ([`step_diff_with`]).
    pub sensitivity: Vec<(String, f64)>,
}

impl StepDiff {
    /// The largest error among the tensors `pick` selects (NaN counts as largest).
    pub fn worst(&self, pick: impl Fn(&str) -> bool) -> (f64, &str) {
        self.errors
            .iter()
            .filter(|(n, _)| pick(n))
            .fold((0.0, ""), |w, (n, e)| {
                if *e > w.0 || e.is_nan() {
                    (*e, n.as_str())
                } else {
                    w
                }
            })
    }
}

/// Compiles `tg` to `sdt` and to a program lowered with `lo`; runs one step (`entry.prune` when
/// sparse, then `entry.train`) on the simulator and in the interpreter on the same batch, and
/// compares loss, logits and every state tensor of the interpreter (parameters, momentum, BN
/// statistics, masks). Errors describe the first failure.
pub fn step_diff(
    tg: &Module,
    opts: &SdtOptions,
    ad: &AutodiffOptions,
    lo: &LowerOptions,
) -> Result<StepDiff, String> {
    step_diff_with(tg, opts, ad, lo, false)
}

/// [`step_diff`], and with `sensitivity` also the interpreter's step on the batch perturbed by a
/// relative 1e-7, compared with its unperturbed step: how far two fp32 evaluations of this step
/// can drift apart on their own (ties of ReLU/max-pool and ill-conditioned BN reductions make
/// some steps discontinuous at the rounding level).
pub fn step_diff_with(
    tg: &Module,
    opts: &SdtOptions,
    ad: &AutodiffOptions,
    lo: &LowerOptions,
    sensitivity: bool,
) -> Result<StepDiff, String> {
    let mut m = autodiff(tg, ad).map_err(|e| format!("autodiff: {e}"))?;
    sdt::run_pipeline(&mut m, opts).map_err(|e| format!("sdt: {e}"))?;
    let trn = lower::lower(&m, lo).map_err(|e| format!("lower: {e}"))?;
    let program = codegen::generate(&trn, &[]).map_err(|e| format!("codegen: {e}"))?;
    let instructions = program.code.len();
    let machine = Machine::resolve("trainer-28nm").unwrap();
    let mut s = Simulator::new(program, CostModel::from_machine(&machine)).map_err(|e| e.to_string())?;
    let mut state = State::init(&m).map_err(|e| e.to_string())?;
    let xshape: Vec<usize> = s
        .program()
        .tensor("input")
        .unwrap()
        .shape
        .iter()
        .map(|&d| d as usize)
        .collect();
    let n: usize = xshape.iter().product();
    let x = TensorData {
        shape: xshape.clone(),
        data: noise(n, 7).iter().map(|v| 2.0 * v - 0.5).collect(),
    };
    let classes = s.program().tensor("logits").unwrap().shape[1] as i64;
    let y: Vec<i64> = (0..xshape[0] as i64).map(|i| (i * 7 + 3) % classes).collect();
    let start = sensitivity.then(|| state.clone());
    let out = interp::run_step(&m, &mut state, &x, &y).map_err(|e| format!("interp: {e}"))?;
    let sensitivity = if let Some(mut sp) = start {
        let xp = TensorData {
            shape: x.shape.clone(),
            data: x
                .data
                .iter()
                .zip(noise(n, 9))
                .map(|(v, u)| v * (1.0 + (u - 0.5) * 2e-7))
                .collect(),
        };
        let op = interp::run_step(&m, &mut sp, &xp, &y).map_err(|e| format!("interp: {e}"))?;
        let mut sens = vec![
            ("loss".to_string(), rel(&[op.loss], &[out.loss])),
            ("logits".to_string(), rel(&op.logits.data, &out.logits.data)),
        ];
        for (name, t) in &state.tensors {
            sens.push((name.clone(), rel(&sp.tensors[name].data, &t.data)));
        }
        sens
    } else {
        Vec::new()
    };
    s.write_tensor("input", &x.data).map_err(|e| e.to_string())?;
    s.write_tensor_ints("labels", &y).map_err(|e| e.to_string())?;
    if opts.sparsity > 0.0 {
        s.run_entry("prune", &[(CfgF32::Sparsity, opts.sparsity as f32)])
            .map_err(|e| format!("sim prune: {e}"))?;
    }
    s.run_entry("train", &[]).map_err(|e| format!("sim train: {e}"))?;
    let loss = s.read_tensor("loss").map_err(|e| e.to_string())?[0];
    let mut errors = vec![
        ("loss".to_string(), rel(&[loss], &[out.loss])),
        (
            "logits".to_string(),
            rel(
                &s.read_tensor("logits").map_err(|e| e.to_string())?,
                &out.logits.data,
            ),
        ),
    ];
    for t in s.program().tensors.clone() {
        if let Some(want) = state.tensors.get(&t.name) {
            let got = s.read_tensor(&t.name).map_err(|e| e.to_string())?;
            errors.push((t.name.clone(), rel(&got, &want.data)));
        }
    }
    if std::env::var_os("DIFF_VERBOSE").is_some() {
        eprintln!("{errors:?}");
    }
    Ok(StepDiff {
        errors,
        instructions,
        sensitivity,
    })
}

/// [`step_diff`] with an assertion that every relative error is below `tol`.
pub fn check_step(
    tg: &Module,
    opts: &SdtOptions,
    ad: &AutodiffOptions,
    lo: &LowerOptions,
    tol: f64,
) -> StepDiff {
    let d = step_diff(tg, opts, ad, lo).unwrap();
    let (e, name) = d.worst(|_| true);
    assert!(e < tol, "{name}: relative error {e:e}");
    d
}

/// [`step_diff_with`] sensitivity, with an assertion that every tensor's relative error is below
/// `tol` or below `factor` times the interpreter's own change under the 1e-7 perturbation.
pub fn check_step_conditioned(
    tg: &Module,
    opts: &SdtOptions,
    ad: &AutodiffOptions,
    lo: &LowerOptions,
    tol: f64,
    factor: f64,
) -> StepDiff {
    let d = step_diff_with(tg, opts, ad, lo, true).unwrap();
    for (name, e) in &d.errors {
        let s = d
            .sensitivity
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0.0, |(_, s)| *s);
        assert!(
            *e < tol.max(factor * s),
            "{name}: relative error {e:e}, interpreter's own sensitivity {s:e}"
        );
    }
    d
}

/// Tiny on-chip buffers (bytes: ibuf, wbuf, obuf, gbuf) that force every tiling path.
pub const TINY_BUFFERS: [u64; 4] = [4096, 2048, 2048, 4096];
