//! Every hand-written example (`examples/asm/*.tasm`) assembles with `trainer asm` and runs with
//! `trainer run`, deterministically; `--max-instructions` stops runaway programs cleanly;
//! `trainer bench peak --json` prints one object with the calibrated figures.

mod common;

use std::ffi::OsStr;
use std::process::Output;

/// [`common::trainer`] with the argument type fixed, so `"…".as_ref()` lists infer.
fn trainer(args: &[&OsStr]) -> Output {
    common::trainer(args)
}
use std::path::{Path, PathBuf};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/asm");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tasm"))
        .collect();
    v.sort();
    v
}

#[test]
fn examples_run_deterministically() {
    let tmp = tempfile::tempdir().unwrap();
    let files = examples();
    assert!(!files.is_empty());
    for src in files {
        let tbin = tmp.path().join("p.tbin");
        let o = trainer(&["asm".as_ref(), src.as_os_str(), "-o".as_ref(), tbin.as_os_str()]);
        assert!(
            o.status.success(),
            "asm {}: {}",
            src.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        let mut reports = Vec::new();
        for i in 0..2 {
            let r = tmp.path().join(format!("r{i}.json"));
            let o = trainer(&[
                "run".as_ref(),
                tbin.as_os_str(),
                "--report".as_ref(),
                r.as_os_str(),
            ]);
            assert!(
                o.status.success(),
                "run {}: {}",
                src.display(),
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(String::from_utf8_lossy(&o.stdout).contains("cycles"));
            reports.push(std::fs::read_to_string(&r).unwrap());
        }
        assert_eq!(
            reports[0],
            reports[1],
            "{}: reports differ between runs",
            src.display()
        );
        let doc: serde_json::Value = serde_json::from_str(&reports[0]).unwrap();
        assert!(doc["cycles"].as_u64().unwrap() > 0, "{}", src.display());
        assert!(doc["total"]["energy_pj"].as_f64().unwrap() > 0.0);
        // The baseline machine runs it too.
        let o = trainer(&[
            "run".as_ref(),
            tbin.as_os_str(),
            "--machine".as_ref(),
            "baseline-sdt".as_ref(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // A tiny instruction budget stops the run with an error naming the pc and instruction.
        let o = trainer(&[
            "run".as_ref(),
            tbin.as_os_str(),
            "--max-instructions".as_ref(),
            "2".as_ref(),
        ]);
        assert!(!o.status.success());
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            e.contains("fault at pc 2") && e.contains("instruction limit"),
            "{e}"
        );
    }
}

#[test]
fn bench_peak_json_prints_the_figures() {
    let o = common::trainer(&["bench", "peak", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    for key in [
        "fp16_dense_tflops_per_w",
        "fp16_sparse_tflops_per_w",
        "fp8_dense_tflops_per_w",
        "fp8_sparse_tflops_per_w",
        "conversion_ratio_fp16",
    ] {
        assert!(doc[key].as_f64().is_some(), "missing {key}");
    }
    // Simulated figures (spec/machine.md, calibration log): sparsity converts into efficiency.
    for p in ["fp16", "fp8"] {
        let sparse = doc[format!("{p}_sparse_tflops_per_w")].as_f64().unwrap();
        let dense = doc[format!("{p}_dense_tflops_per_w")].as_f64().unwrap();
        assert!(sparse > 15.0 * dense, "{p}: {sparse} vs dense {dense}");
    }
    let o = trainer(&[
        "bench".as_ref(),
        "peak".as_ref(),
        "--precision".as_ref(),
        "fp8".as_ref(),
    ]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("276.55"));
}

#[test]
fn unknown_machine_is_a_clear_error() {
    let o = trainer(&[
        "bench".as_ref(),
        "peak".as_ref(),
        "--machine".as_ref(),
        "no-such-machine".as_ref(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown machine `no-such-machine`"));
}
