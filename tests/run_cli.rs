//! End-to-end tests of `trainer run` on a training binary: the hand-written softmax-regression
//! fixture (tests/data/softmax_digits.tasm) trained on the digits set, its outputs (loss lines,
//! accuracy, JSON report, weights, logits), one step checked against a hand computation, and bad
//! arguments rejected with clear errors.

mod common;

use common::{accuracy, data, digits, read_npy, read_npz, stderr, stdout, trainer, write_f32, write_i64};
use std::path::{Path, PathBuf};

/// Assembles the fixture into `dir`.
fn fixture(dir: &Path) -> PathBuf {
    let tbin = dir.join("softmax.tbin");
    let o = trainer(&[
        "asm".as_ref(),
        data("softmax_digits.tasm").as_os_str(),
        "-o".as_ref(),
        tbin.as_os_str(),
    ]);
    assert!(o.status.success(), "asm: {}", stderr(&o));
    tbin
}

#[test]
fn trains_the_fixture_and_writes_every_output() {
    let tmp = tempfile::tempdir().unwrap();
    let tbin = fixture(tmp.path());
    let (report, weights, logits) = (
        tmp.path().join("r.json"),
        tmp.path().join("w.npz"),
        tmp.path().join("l.npy"),
    );
    let run = |report: &Path, weights: &Path| {
        let mut args: Vec<std::ffi::OsString> = vec![
            "run".into(),
            tbin.clone().into(),
            "--data".into(),
            data("digits_x.npy").into(),
        ];
        args.extend([
            "--labels".into(),
            data("digits_y.npy").into(),
            "--train-rows".into(),
            "1500".into(),
        ]);
        args.extend([
            "--report".into(),
            report.into(),
            "--save-weights".into(),
            weights.into(),
        ]);
        args.extend(["--save-logits".into(), logits.clone().into()]);
        trainer(&args)
    };
    let o = run(&report, &weights);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("step 1/100  loss 2.3026"), "{out}");
    assert!(out.contains("step 100/100  loss "), "{out}");
    let acc = accuracy(&out);
    assert!(acc >= 0.85, "softmax regression on digits: {acc}");
    for phase in ["ff", "wg", "update"] {
        assert!(
            out.lines().any(|l| l.starts_with("fc ") && l.contains(phase)),
            "table row fc/{phase}: {out}"
        );
    }

    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["losses"].as_array().unwrap().len(), 100);
    assert_eq!(r["options"]["eval_rows"], 297);
    assert_eq!(r["options"]["binary"]["ramp_steps"], 50);
    assert!((r["accuracy"].as_f64().unwrap() - acc).abs() < 0.001);
    assert!(r["train"]["cycles"].as_u64().unwrap() > 0);
    assert!(
        r["train"]["phases"]["update"]["components"]["dram"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(r["eval"]["total"]["energy_pj"].as_f64().unwrap() > 0.0);
    assert!(r["train"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "fc" && t["phase"] == "wg"));

    let (ws, w) = read_npz(&weights, "fc.weight");
    assert_eq!(ws, [10, 64]);
    assert_eq!(read_npz(&weights, "fc.bias").0, [10]);
    let nonzero = w.iter().filter(|v| **v != 0.0).count();
    assert!(
        nonzero > 320,
        "dense weights are updated, pruned ones keep their values: {nonzero}"
    );
    let (ls, l) = read_npy(&logits);
    assert_eq!(ls, [297, 10]);
    // The saved logits give the reported accuracy.
    let (_, y) = digits();
    let correct = (0..297)
        .filter(|&i| {
            let row = &l[i * 10..i * 10 + 10];
            let best = (0..10).fold(0, |b, j| if row[j] > row[b] { j } else { b });
            best as i64 == y[1500 + i]
        })
        .count();
    assert!((correct as f64 / 297.0 - acc).abs() < 0.001);

    // Deterministic: the same seed gives byte-identical weights.
    let o = run(&tmp.path().join("r2.json"), &tmp.path().join("w2.npz"));
    assert!(o.status.success());
    assert_eq!(
        std::fs::read(&weights).unwrap(),
        std::fs::read(tmp.path().join("w2.npz")).unwrap()
    );
}

/// One step in order on the first 16 rows from zero weights: the update is
/// `W = −lr · (softmax(0) − onehot(y))ᵀ X / 16` (first momentum step = the gradient).
#[test]
fn one_step_matches_the_hand_computed_update() {
    let tmp = tempfile::tempdir().unwrap();
    let tbin = fixture(tmp.path());
    let w = tmp.path().join("w.npz");
    let o = trainer(&[
        "run".as_ref(),
        tbin.as_os_str(),
        "--data".as_ref(),
        data("digits_x.npy").as_os_str(),
        "--labels".as_ref(),
        data("digits_y.npy").as_os_str(),
        "--train-rows".as_ref(),
        "16".as_ref(),
        "--steps".as_ref(),
        "1".as_ref(),
        "--no-shuffle".as_ref(),
        "--save-weights".as_ref(),
        w.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (x, y) = digits();
    let (_, got) = read_npz(&w, "fc.weight");
    let (_, bias) = read_npz(&w, "fc.bias");
    for c in 0..10 {
        let d = |n: usize| (0.1 - f32::from(y[n] == c as i64)) / 16.0;
        let want_b: f32 = -0.1 * (0..16).map(d).sum::<f32>();
        assert!(
            (bias[c] - f64::from(want_b)).abs() < 1e-6,
            "bias {c}: {} vs {want_b}",
            bias[c]
        );
        for k in 0..64 {
            let want: f32 = -0.1 * (0..16).map(|n| d(n) * x[n * 64 + k]).sum::<f32>();
            assert!(
                (got[c * 64 + k] - f64::from(want)).abs() < 1e-6,
                "w[{c},{k}]: {} vs {want}",
                got[c * 64 + k]
            );
        }
    }
}

#[test]
fn steps_zero_and_train_rows_zero_only_evaluate() {
    let tmp = tempfile::tempdir().unwrap();
    let tbin = fixture(tmp.path());
    let logits = tmp.path().join("l.npy");
    let base = |extra: &[&str]| {
        let mut a: Vec<std::ffi::OsString> = vec![
            "run".into(),
            tbin.clone().into(),
            "--data".into(),
            data("digits_x.npy").into(),
        ];
        a.extend(["--labels".into(), data("digits_y.npy").into()]);
        a.extend(extra.iter().map(Into::into));
        trainer(&a)
    };
    // Zero weights: every logit is 0, argmax is class 0.
    let o = base(&["--train-rows", "0", "--save-logits", logits.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(!out.contains("step "), "{out}");
    let zeros = digits().1.iter().filter(|&&v| v == 0).count();
    assert!(
        out.contains(&format!(
            "test accuracy: {:.3} ({zeros}/1797 rows)",
            zeros as f64 / 1797.0
        )),
        "{out}"
    );
    assert_eq!(read_npy(&logits).0, [1797, 10]);
    let o = base(&["--train-rows", "1500", "--steps", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("/297 rows)"));
}

/// Runs `trainer run` expecting failure; returns stderr.
fn fails(args: &[&std::ffi::OsStr]) -> String {
    let o = trainer(args);
    let err = stderr(&o);
    assert!(!o.status.success(), "expected failure: {args:?}\n{}", stdout(&o));
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn bad_arguments_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let tbin = fixture(tmp.path());
    let os = |s: &str| std::ffi::OsString::from(s);
    let (x, y) = (data("digits_x.npy"), data("digits_y.npy"));
    let run = |xs: &Path, ys: &Path, extra: &[&str]| {
        let mut a = vec![
            os("run"),
            tbin.clone().into(),
            os("--data"),
            xs.into(),
            os("--labels"),
            ys.into(),
        ];
        a.extend(extra.iter().map(|s| os(s)));
        let refs: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
        fails(&refs)
    };

    let e = run(&tmp.path().join("missing.npy"), &y, &[]);
    assert!(e.contains("cannot open") && e.contains("missing.npy"), "{e}");

    let flat = tmp.path().join("flat.npy");
    write_f32(&flat, &[1797, 64], &digits().0);
    let e = run(&flat, &y, &[]);
    assert!(
        e.contains("rows have shape [64], but the program's `input` tensor expects [1, 8, 8] per row"),
        "{e}"
    );

    let float_labels = tmp.path().join("yf.npy");
    write_f32(&float_labels, &[1797], &vec![0.0; 1797]);
    let e = run(&x, &float_labels, &[]);
    assert!(
        e.contains("labels must be int64 or int32, found dtype `<f4`"),
        "{e}"
    );

    let few = tmp.path().join("few.npy");
    write_i64(&few, &[0, 1, 2]);
    let e = run(&x, &few, &[]);
    assert!(
        e.contains("has 1797 rows but") && e.contains("has 3 labels"),
        "{e}"
    );

    let big = tmp.path().join("big.npy");
    write_i64(&big, &(0..1797).map(|i| i % 12).collect::<Vec<_>>());
    let e = run(&x, &big, &[]);
    assert!(e.contains("label 10 at row 10 is outside 0..10"), "{e}");

    let e = run(&x, &y, &["--train-rows", "5000"]);
    assert!(e.contains("--train-rows 5000 exceeds the 1797 rows"), "{e}");
    let e = run(&x, &y, &["--train-rows", "8", "--steps", "3"]);
    assert!(e.contains("smaller than the compiled batch of 16 rows"), "{e}");

    let not_npy = tmp.path().join("bad.npy");
    std::fs::write(&not_npy, b"not numpy").unwrap();
    let e = run(&not_npy, &y, &[]);
    assert!(e.contains("is not a valid .npy file"), "{e}");

    // Nothing half-written: a failed write leaves no file behind.
    let nowhere = tmp.path().join("no-such-dir").join("w.npz");
    let e = run(
        &x,
        &y,
        &["--steps", "1", "--save-weights", nowhere.to_str().unwrap()],
    );
    assert!(e.contains("cannot write"), "{e}");
    assert!(!tmp.path().join("no-such-dir").exists());

    // A training binary needs data; a plain program takes none.
    let e = fails(&["run".as_ref(), tbin.as_os_str()]);
    assert!(
        e.contains("is a training binary (it has `entry.train`): give --data X.npy and --labels Y.npy"),
        "{e}"
    );
    let plain = tmp.path().join("plain.tbin");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/asm/mlp_step_fp16.tasm");
    assert!(
        trainer(&["asm".as_ref(), src.as_os_str(), "-o".as_ref(), plain.as_os_str()])
            .status
            .success()
    );
    let e = fails(&[
        "run".as_ref(),
        plain.as_os_str(),
        "--data".as_ref(),
        x.as_os_str(),
        "--labels".as_ref(),
        y.as_os_str(),
    ]);
    assert!(
        e.contains("is not a training binary (no metadata `entry.train`)"),
        "{e}"
    );
}
