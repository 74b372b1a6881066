//! MLIR interop of `trainer compile` output, for every example model (`examples/*.tg`,
//! `tests/data/*.onnx`) and every IR stage `trainer compile --emit` offers (`tg`, `sdt`, `trn`,
//! read from its help, so new stages are picked up automatically; a missing stage, or a model the
//! compiler cannot compile to a stage, is skipped with a message):
//!
//! * the generic text (`--mlir-print-op-generic`) is accepted by
//!   `mlir-opt-22 --allow-unregistered-dialect` (skipped with a message when the tool is absent,
//!   only in a build without the `mlir` feature);
//! * with the `mlir` feature: accepted by MLIR through melior, our IR → MLIR → our IR is
//!   identical, `--mlir-verify` passes, and MLIR's `canonicalize,cse` give a module we import.

mod common;

use common::trainer;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Stages of the compiler, in pipeline order.
const STAGES: [&str; 3] = ["tg", "sdt", "trn"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The example models, sorted.
fn models() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (dir, ext) in [("examples", "tg"), ("tests/data", "onnx")] {
        let entries = std::fs::read_dir(root().join(dir)).expect("model directory exists");
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

/// The IR stages `trainer compile --emit` offers (read from its help), in pipeline order.
fn offered_stages() -> Vec<&'static str> {
    let help = String::from_utf8(trainer(&["compile", "--help"]).stdout).expect("UTF-8 help");
    let values: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("--emit"))
        .skip_while(|l| !l.contains("Possible values"))
        .skip(1)
        .map_while(|l| l.trim().strip_prefix("- "))
        .filter_map(|l| l.split(':').next())
        .collect();
    assert!(
        values.contains(&"tg"),
        "cannot read the stages from `trainer compile --help`"
    );
    let offered: Vec<_> = STAGES.into_iter().filter(|s| values.contains(s)).collect();
    for stage in STAGES.iter().filter(|s| !offered.contains(s)) {
        eprintln!("SKIPPING stage `{stage}`: `trainer compile` does not offer it yet");
    }
    offered
}

/// Generic text of `model` at `stage`, or `None` when the compiler cannot compile the model to
/// that stage (reported on stderr; the stage's own tests cover compile errors).
fn emit(model: &Path, stage: &str) -> Option<String> {
    let model = model.to_str().expect("UTF-8 path");
    let out = trainer(&["compile", model, "--emit", stage, "--mlir-print-op-generic"]);
    if out.status.success() {
        return Some(String::from_utf8(out.stdout).expect("UTF-8 output"));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("SKIPPING {model} at stage `{stage}`: trainer compile fails: {stderr}");
    None
}

/// Every (model, stage, generic text) the CLI produces (computed once per test binary).
fn outputs() -> &'static [(PathBuf, &'static str, String)] {
    static OUTPUTS: OnceLock<Vec<(PathBuf, &'static str, String)>> = OnceLock::new();
    OUTPUTS.get_or_init(|| {
        let mut out = Vec::new();
        for stage in offered_stages() {
            for model in models() {
                if let Some(text) = emit(&model, stage) {
                    out.push((model, stage, text));
                }
            }
        }
        out
    })
}

/// Path of a file holding the generic text of `examples/mlp.tg` at stage `tg` (for `trainer opt`).
fn generic_file() -> String {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    let path = FILE.get_or_init(|| {
        let text = emit(&root().join("examples/mlp.tg"), "tg").expect("mlp.tg compiles");
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mlir_interop_mlp.mlir");
        std::fs::write(&path, text).expect("the target's temporary directory is writable");
        path
    });
    path.to_str().expect("UTF-8 path").to_string()
}

/// `mlir-opt-22` on PATH, else `mlir-opt` under the LLVM 22 prefix.
fn mlir_opt() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("mlir-opt-22"))
            .find(|p| p.is_file())
    });
    let prefix = std::env::var_os("MLIR_SYS_220_PREFIX")
        .map_or_else(|| PathBuf::from("/usr/lib/llvm-22"), PathBuf::from);
    on_path.or_else(|| Some(prefix.join("bin/mlir-opt")).filter(|p| p.is_file()))
}

#[test]
fn generic_text_is_accepted_by_mlir_opt() {
    let Some(tool) = mlir_opt() else {
        if cfg!(feature = "mlir") {
            panic!("the `mlir` feature needs mlir-opt (package mlir-22-tools)");
        }
        eprintln!("skipping: mlir-opt-22 not found (install mlir-22-tools)");
        return;
    };
    for (model, stage, text) in outputs() {
        let mut child = Command::new(&tool)
            .args(["--allow-unregistered-dialect", "-o", "/dev/null", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mlir-opt runs");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(text.as_bytes())
            .expect("mlir-opt reads its input");
        let out = child.wait_with_output().expect("mlir-opt finishes");
        assert!(
            out.status.success(),
            "mlir-opt rejects {} at stage {stage}:\n{}",
            model.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[cfg(feature = "mlir")]
mod with_mlir {
    use super::*;
    use trainer_compiler::mlir;
    use trainer_compiler::text::{parse_module, print_generic};

    #[test]
    fn melior_accepts_and_round_trip_is_identical() {
        for (model, stage, text) in outputs() {
            let what = format!("{} at stage {stage}", model.display());
            mlir::verify_text(text).unwrap_or_else(|e| panic!("{what}: {e}"));
            let ours = parse_module(text, &what).unwrap_or_else(|e| panic!("{e}"));
            let back = mlir::round_trip(&ours).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(&print_generic(&back), text, "{what}: round trip differs");
        }
    }

    #[test]
    fn mlir_verify_flag_passes_at_every_stage() {
        let model = root().join("examples/mlp.tg");
        for stage in offered_stages() {
            let out = trainer(&[
                "compile",
                model.to_str().unwrap(),
                "--emit",
                stage,
                "--mlir-verify",
            ]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "--emit {stage} --mlir-verify: {stderr}");
        }
        let out = trainer(&[
            "opt",
            &generic_file(),
            "--pass-pipeline",
            "canonicalize,cse",
            "--mlir-verify",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "trainer opt --mlir-verify: {stderr}");
    }

    #[test]
    fn canonicalize_and_cse_give_importable_modules() {
        for (model, stage, text) in outputs() {
            let what = format!("{} at stage {stage}", model.display());
            let ours = parse_module(text, &what).unwrap_or_else(|e| panic!("{e}"));
            let out = mlir::optimize(&ours, "canonicalize,cse").unwrap_or_else(|e| panic!("{what}: {e}"));
            mlir::verify(&out).unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    }
}

#[cfg(not(feature = "mlir"))]
#[test]
fn mlir_verify_without_mlir_is_a_clear_error() {
    let model = root().join("examples/mlp.tg");
    let compile = [
        "compile",
        model.to_str().unwrap(),
        "--emit",
        "tg",
        "--mlir-verify",
    ];
    let file = generic_file();
    for args in [&compile[..], &["opt", &file, "--mlir-verify"]] {
        let out = trainer(args);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("built without"), "{args:?}: {stderr}");
    }
}
