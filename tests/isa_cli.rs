//! End-to-end tests of `trainer asm` / `trainer disasm` on the hand-written examples.

mod common;

use common::trainer;
use std::path::{Path, PathBuf};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("examples dir readable") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "tasm") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn assemble(src: &Path, dst: &Path) {
    let o = trainer(&[Path::new("asm"), src, Path::new("-o"), dst]);
    assert!(
        o.status.success(),
        "asm {}: {}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn examples_roundtrip_byte_identical() {
    let files = examples();
    assert!(
        files.len() >= 3,
        "expected at least 3 .tasm examples, found {files:?}"
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    for f in files {
        let x = tmp.path().join("x.tbin");
        let y = tmp.path().join("y.tasm");
        let z = tmp.path().join("z.tbin");
        assemble(&f, &x);
        let o = trainer(&[Path::new("disasm"), &x]);
        assert!(
            o.status.success(),
            "disasm {}: {}",
            f.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        std::fs::write(&y, &o.stdout).expect("write y.tasm");
        assemble(&y, &z);
        let (xb, zb) = (std::fs::read(&x).expect("x"), std::fs::read(&z).expect("z"));
        assert!(xb == zb, "{}: re-assembled binary differs", f.display());
    }
}

/// A small deterministic generator (xorshift) so the corruption test needs no extra dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn corrupt_binaries_fail_cleanly() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let good = tmp.path().join("good.tbin");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/asm/conv_bn_relu_step.tasm");
    assemble(&src, &good);
    let bytes = std::fs::read(&good).expect("read good");
    let bad = tmp.path().join("bad.tbin");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut rejected = 0;
    for case in 0..60 {
        let mut b = bytes.clone();
        if case % 3 == 0 {
            b.truncate(rng.next() as usize % b.len());
        } else {
            for _ in 0..1 + rng.next() % 4 {
                let at = rng.next() as usize % b.len();
                b[at] ^= 1 + (rng.next() % 255) as u8;
            }
        }
        std::fs::write(&bad, &b).expect("write bad");
        let o = trainer(&[Path::new("disasm"), &bad]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!stderr.contains("panicked"), "case {case}: {stderr}");
        if !o.status.success() {
            rejected += 1;
            assert!(
                stderr.contains("error:") && stderr.contains("bad.tbin"),
                "case {case}: {stderr}"
            );
        }
    }
    // Flips inside f32 immediates or addresses can leave a valid program; most must be rejected.
    assert!(rejected >= 30, "only {rejected} of 60 corruptions were rejected");
}

#[test]
fn asm_errors_name_file_and_place() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let src = tmp.path().join("broken.tasm");
    std::fs::write(&src, "nop\nfill n=4 value=1.0 out=qbuf:f32@0\n").expect("write");
    let o = trainer(&[
        Path::new("asm"),
        &src,
        Path::new("-o"),
        &tmp.path().join("out.tbin"),
    ]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("broken.tasm:2:"), "{stderr}");
}

#[test]
fn help_lists_subcommands() {
    let o = trainer(&[Path::new("--help")]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("asm") && text.contains("disasm"), "{text}");
    let o = trainer(&[Path::new("asm"), Path::new("--help")]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("--output"));
}
