//! `trainer opt`: pipelines, printing options, stdin, and errors with positions.

use std::io::Write;
use std::process::{Command, Stdio};

const INPUT: &str = r#""builtin.module"() ({
  "tg.graph"() ({
  ^bb0(%arg0: tensor<2x6xf32>):
    %0 = "tg.identity"(%arg0) : (tensor<2x6xf32>) -> tensor<2x6xf32> loc("id")
    %1 = "tg.relu"(%0) : (tensor<2x6xf32>) -> tensor<2x6xf32> loc("relu1")
    %2 = "tg.relu"(%0) : (tensor<2x6xf32>) -> tensor<2x6xf32> loc("relu2")
    %3 = "tg.add"(%1, %2) : (tensor<2x6xf32>, tensor<2x6xf32>) -> tensor<2x6xf32> loc("add")
    "tg.return"(%3) : (tensor<2x6xf32>) -> ()
  }) {sym_name = "main"} : () -> ()
}) : () -> ()
"#;

fn opt(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .arg("opt")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let s = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.success(), s(out.stdout), s(out.stderr))
}

#[test]
fn runs_a_pipeline_and_prints_both_forms() {
    let (ok, out, err) = opt(
        &["-", "--pass-pipeline", "canonicalize,cse,dce", "--time-passes"],
        INPUT,
    );
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "builtin.module {\n^bb0:\n  tg.graph @main {\n  ^bb0(%arg0: tensor<2x6xf32>):\n    \
         %0 = tg.relu %arg0 : tensor<2x6xf32> -> tensor<2x6xf32>\n    \
         %1 = tg.add %0, %0 : tensor<2x6xf32>, tensor<2x6xf32> -> tensor<2x6xf32>\n    \
         tg.return %1 : tensor<2x6xf32>\n  }\n}\n"
    );
    assert!(
        err.contains("pass execution timing") && err.contains("cse"),
        "{err}"
    );

    let (ok, out, _) = opt(
        &[
            "-",
            "--pass-pipeline",
            "builtin.module(canonicalize)",
            "--mlir-print-op-generic",
            "--mlir-print-debuginfo",
        ],
        INPUT,
    );
    assert!(ok);
    assert!(
        out.contains("%0 = \"tg.relu\"(%arg0) : (tensor<2x6xf32>) -> tensor<2x6xf32> loc(\"relu1\")"),
        "{out}"
    );
    // The output is valid input again.
    let (ok, again, _) = opt(&["-", "--mlir-print-op-generic", "--mlir-print-debuginfo"], &out);
    assert!(ok);
    assert_eq!(again, out);
}

#[test]
fn prints_ir_after_every_pass() {
    let (ok, _, err) = opt(
        &["-", "--pass-pipeline", "cse,dce", "--print-ir-after-all"],
        INPUT,
    );
    assert!(ok);
    assert!(err.contains("// -----// IR Dump After cse //----- //"), "{err}");
    assert!(err.contains("// -----// IR Dump After dce //----- //"), "{err}");
}

#[test]
fn reports_parse_verify_and_pipeline_errors() {
    let (ok, _, err) = opt(&["-"], "\"tg.relu\"(%x) : (tensor<2xf32>) -> tensor<2xf32>\n");
    assert!(!ok);
    assert!(
        err.starts_with("error: <stdin>:1:1: 'tg.relu' defines 0 results"),
        "{err}"
    );

    let bad = INPUT
        .replace(
            "(%1, %2) : (tensor<2x6xf32>, tensor<2x6xf32>) -> tensor<2x6xf32>",
            "(%1, %2) : (tensor<2x6xf32>, tensor<2x6xf32>) -> tensor<3x6xf32>",
        )
        .replace(
            "\"tg.return\"(%3) : (tensor<2x6xf32>)",
            "\"tg.return\"(%3) : (tensor<3x6xf32>)",
        );
    let (ok, _, err) = opt(&["-"], &bad);
    assert!(!ok);
    assert!(
        err.contains("after pass 'input'") && err.contains("loc(\"add\"): 'tg.add': result types"),
        "{err}"
    );

    let (ok, _, err) = opt(&["-", "--pass-pipeline", "cse,bogus"], INPUT);
    assert!(!ok);
    assert!(err.contains("unknown pass 'bogus'"), "{err}");
}
