//! Helpers shared by the CLI tests: running the `trainer` binary and reading/writing NumPy files.
#![allow(dead_code)] // each test crate uses a subset

#[path = "npz_values.rs"]
mod npz_values;

use npyz::WriterBuilder;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A file of tests/data.
pub fn data(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file)
}

/// Runs the `trainer` binary.
pub fn trainer<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .output()
        .expect("trainer runs")
}

/// Arguments from strings and paths.
pub fn args(parts: &[&dyn AsRef<OsStr>]) -> Vec<OsString> {
    parts.iter().map(|p| p.as_ref().to_os_string()).collect()
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `trainer`: whether it succeeded, standard output and standard error as text.
pub fn run<S: AsRef<OsStr>>(args: &[S]) -> (bool, String, String) {
    let o = trainer(args);
    (o.status.success(), stdout(&o), stderr(&o))
}

/// Runs `trainer` and asserts success; returns stdout.
pub fn ok<S: AsRef<OsStr> + std::fmt::Debug>(a: &[S]) -> String {
    let o = trainer(a);
    assert!(o.status.success(), "trainer {a:?} failed:\n{}", stderr(&o));
    stdout(&o)
}

/// Writes an f32 `.npy`.
pub fn write_f32(path: &Path, shape: &[u64], values: &[f32]) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(shape)
        .writer(file)
        .begin_nd()
        .unwrap();
    w.extend(values.iter().copied()).unwrap();
    w.finish().unwrap();
}

/// Writes a 1-D int64 `.npy`.
pub fn write_i64(path: &Path, values: &[i64]) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let shape = [values.len() as u64];
    let mut w = npyz::WriteOptions::<i64>::new()
        .default_dtype()
        .shape(&shape)
        .writer(file)
        .begin_nd()
        .unwrap();
    w.extend(values.iter().copied()).unwrap();
    w.finish().unwrap();
}

/// Reads an f32 `.npy`: shape and values.
pub fn read_npy(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let npy = npyz::NpyFile::new(std::fs::File::open(path).unwrap()).unwrap();
    (npy.shape().to_vec(), npy.into_vec::<f32>().unwrap())
}

/// Reads array `name` of an `.npz` (f32, or f64/int converted to f64): shape and values.
pub fn read_npz(path: &Path, name: &str) -> (Vec<u64>, Vec<f64>) {
    let mut npz = npyz::npz::NpzArchive::open(path).unwrap();
    let arr = npz
        .by_name(name)
        .unwrap()
        .unwrap_or_else(|| panic!("no `{name}` in {}", path.display()));
    (arr.shape().to_vec(), npz_values::values_f64(arr))
}

/// Names of the arrays of an `.npz`.
pub fn npz_names(path: &Path) -> Vec<String> {
    npyz::npz::NpzArchive::open(path)
        .unwrap()
        .array_names()
        .map(str::to_string)
        .collect()
}

/// The digits set of tests/data: rows (1797 × 64 values) and labels.
pub fn digits() -> (Vec<f32>, Vec<i64>) {
    let x = npyz::NpyFile::new(std::fs::File::open(data("digits_x.npy")).unwrap()).unwrap();
    let y = npyz::NpyFile::new(std::fs::File::open(data("digits_y.npy")).unwrap()).unwrap();
    (x.into_vec::<f32>().unwrap(), y.into_vec::<i64>().unwrap())
}

/// The accuracy printed on the `test accuracy: 0.xxx` line.
pub fn accuracy(out: &str) -> f64 {
    let line = out
        .lines()
        .find(|l| l.starts_with("test accuracy: "))
        .unwrap_or_else(|| panic!("no accuracy line in\n{out}"));
    line["test accuracy: ".len()..][..5].parse().unwrap()
}
