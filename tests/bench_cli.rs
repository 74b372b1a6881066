//! `trainer bench paper` on a tiny configuration: every row of BRIEF §7 is in the JSON with paper
//! value, simulated value and ratio; every configuration has its reports; the plots are SVG.
//! `trainer bench sim` reports the step's time and work; `trainer bench compile --depth` sweeps depth.

use std::path::Path;
use std::process::Command;

#[test]
fn bench_paper_writes_rows_configs_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let plots = dir.path().join("plots");
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lenet.tg");
    let o = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["bench", "paper", "--steps", "1", "--batch", "2", "--model"])
        .arg(&model)
        .arg("--json")
        .arg(&json)
        .arg("--plots")
        .arg(&plots)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for figure in [
        "IRSU speculation",
        "decoupled BN",
        "vs prior sparse training processor: speed",
        "peak EE, FP8",
    ] {
        assert!(out.contains(figure), "missing `{figure}` in:\n{out}");
    }
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 9);
    for r in rows {
        for k in ["figure", "paper", "simulated", "ratio"] {
            assert!(!r[k].is_null(), "row without `{k}`: {r}");
        }
    }
    for c in [
        "trainer",
        "no-speculation",
        "fixed-dataflow",
        "conventional-bn",
        "baseline-sdt",
    ] {
        let cfg = &doc["configs"][c];
        assert!(cfg["train"]["total"]["energy_pj"].as_f64().unwrap() > 0.0, "{c}");
        assert!(
            cfg["train"]["phases"].is_object() && cfg["train"]["total"]["components"].is_object(),
            "{c}"
        );
    }
    assert!(doc["peak"]["fp16_sparse_tflops_per_w"].is_number());
    for svg in [
        "energy_by_component.svg",
        "energy_on_chip_by_component.svg",
        "energy_by_phase.svg",
    ] {
        let text = std::fs::read_to_string(plots.join(svg)).unwrap();
        assert!(text.starts_with("<svg") && text.contains("baseline-sdt"), "{svg}");
        let has_dram = text.contains(">dram</text>");
        assert_eq!(
            has_dram,
            svg == "energy_by_component.svg",
            "{svg}: DRAM in the legend"
        );
    }
}

#[test]
fn bench_sim_reports_the_step_and_takes_the_pending_limit() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lenet.tg");
    let o = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["bench", "sim", "--batch", "2", "--runs", "1", "--no-baseline"])
        .args(["--background", "0", "--json", "--model"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(doc["background"], 0);
    let median = doc["step_seconds_median"].as_f64().unwrap();
    assert!(median > 0.0);
    assert_eq!(
        doc["step_seconds_min"].as_f64(),
        Some(median),
        "one run: min = median"
    );
    assert_eq!(
        doc["step_seconds_max"].as_f64(),
        Some(median),
        "one run: max = median"
    );
    let (effective, dense) = (
        doc["effective_macs"].as_u64().unwrap(),
        doc["dense_macs"].as_u64().unwrap(),
    );
    assert!(effective > 0 && effective < dense, "{effective} of {dense}");
    assert!(doc["baseline_dense_fp32_step_seconds_median"].is_null());
}

#[test]
fn bench_compile_sweeps_depth() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/mlp.tg");
    let o = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["bench", "compile", "--runs", "1", "--depth", "2,4", "--json"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["models"].as_array().unwrap().len(), 1);
    let rows = doc["depth_sweep"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (row, blocks) in rows.iter().zip([2u64, 4]) {
        assert_eq!(row["blocks"], blocks);
        assert!(row["error"].is_null(), "{row}");
        assert!(row["seconds_median"].as_f64().unwrap() > 0.0);
    }
    // Twice the blocks: more instructions, and the same number more of graph ops per block.
    let ops = |i: usize| rows[i]["graph_ops"].as_u64().unwrap();
    assert_eq!(ops(1) - ops(0), 2 * 8);
    assert!(rows[1]["instructions"].as_u64() > rows[0]["instructions"].as_u64());
    assert!(doc["depth_sweep"]["growth_power"].is_number());

    let bad = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["bench", "compile", "--depth", "0"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--depth"));
}
