//! NumPy files for `trainer run`: data (`.npy`, f32 rows) and labels (`.npy`, int64/int32) in,
//! weights (`.npz`) and logits (`.npy`) out. Outputs are written to a temporary file next to the
//! target and renamed into place, so an error never leaves a half-written file.

use anyhow::{bail, Context, Result};
use npyz::{DType, NpyFile, Order, TypeChar, WriterBuilder};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A dense row-major f32 array.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Elements in row-major order.
    pub data: Vec<f32>,
}

fn open(path: &Path) -> Result<NpyFile<BufReader<File>>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let npy = NpyFile::new(BufReader::new(file))
        .with_context(|| format!("{} is not a valid .npy file", path.display()))?;
    if npy.order() == Order::Fortran {
        bail!(
            "{}: Fortran-ordered arrays are not supported (save with C order)",
            path.display()
        );
    }
    Ok(npy)
}

fn shape_of(npy: &NpyFile<BufReader<File>>) -> Vec<usize> {
    npy.shape().iter().map(|&d| d as usize).collect()
}

/// The element type of an array as NumPy writes it (`<f4`, `<i8`, ...).
fn descr(dtype: &DType) -> String {
    match dtype {
        DType::Plain(t) => t.to_string(),
        other => other.descr(),
    }
}

/// Reads a float array (f32, or f64 converted to f32) with at least one dimension (rows first).
pub fn read_data(path: &Path) -> Result<Array> {
    let npy = open(path)?;
    let shape = shape_of(&npy);
    if shape.is_empty() {
        bail!(
            "{}: data must have a row dimension, found a scalar",
            path.display()
        );
    }
    let dtype = npy.dtype();
    let read = |e: std::io::Error| anyhow::Error::new(e).context(format!("cannot read {}", path.display()));
    let data = match &dtype {
        DType::Plain(t) if t.type_char() == TypeChar::Float && t.size_field() == 4 => {
            npy.into_vec::<f32>().map_err(read)?
        }
        DType::Plain(t) if t.type_char() == TypeChar::Float && t.size_field() == 8 => npy
            .into_vec::<f64>()
            .map_err(read)?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        other => bail!(
            "{}: data must be float32 (or float64), found dtype `{}`",
            path.display(),
            descr(other)
        ),
    };
    Ok(Array { shape, data })
}

/// Reads a one-dimensional int64 or int32 label array.
pub fn read_labels(path: &Path) -> Result<Vec<i64>> {
    let npy = open(path)?;
    let shape = shape_of(&npy);
    if shape.len() != 1 {
        bail!(
            "{}: labels must be one-dimensional, found shape {:?}",
            path.display(),
            shape
        );
    }
    let dtype = npy.dtype();
    let read = |e: std::io::Error| anyhow::Error::new(e).context(format!("cannot read {}", path.display()));
    match &dtype {
        DType::Plain(t) if t.type_char() == TypeChar::Int && t.size_field() == 8 => {
            npy.into_vec::<i64>().map_err(read)
        }
        DType::Plain(t) if t.type_char() == TypeChar::Int && t.size_field() == 4 => Ok(npy
            .into_vec::<i32>()
            .map_err(read)?
            .into_iter()
            .map(i64::from)
            .collect()),
        other => bail!(
            "{}: labels must be int64 or int32, found dtype `{}`",
            path.display(),
            descr(other)
        ),
    }
}

/// Writes `path` through `write` on a temporary sibling file, renamed into place on success.
pub fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp: PathBuf = path.with_file_name(tmp_name);
    let result = write(&tmp).and_then(|()| {
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes one f32 array as `.npy`.
pub fn write_npy(path: &Path, array: &Array) -> Result<()> {
    write_atomic(path, |tmp| {
        let err = || format!("cannot write {}", path.display());
        let mut out = BufWriter::new(File::create(tmp).with_context(err)?);
        let shape: Vec<u64> = array.shape.iter().map(|&d| d as u64).collect();
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&shape)
            .writer(&mut out)
            .begin_nd()
            .with_context(err)?;
        w.extend(array.data.iter().copied()).with_context(err)?;
        w.finish().with_context(err)?;
        out.flush().with_context(err)
    })
}

/// Writes named f32 arrays as an uncompressed `.npz` archive (like `numpy.savez`), in the given
/// order, with fixed timestamps so the same arrays give the same bytes.
pub fn write_npz(path: &Path, arrays: &[(String, Array)]) -> Result<()> {
    write_atomic(path, |tmp| {
        let err = || format!("cannot write {}", path.display());
        let mut npz = npyz::npz::NpzWriter::create(tmp).with_context(err)?;
        let options = zip::write::FileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .last_modified_time(zip::DateTime::default());
        for (name, array) in arrays {
            let shape: Vec<u64> = array.shape.iter().map(|&d| d as u64).collect();
            let mut w = npz
                .array::<f32>(name, options)
                .with_context(err)?
                .default_dtype()
                .shape(&shape)
                .begin_nd()
                .with_context(err)?;
            w.extend(array.data.iter().copied()).with_context(err)?;
            w.finish().with_context(err)?;
        }
        npz.zip_writer()
            .finish()
            .with_context(err)?
            .flush()
            .with_context(err)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_and_npz_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let a = Array {
            shape: vec![2, 3],
            data: vec![1.0, -2.0, 3.5, 0.0, 5.0, 6.25],
        };
        let p = dir.path().join("a.npy");
        write_npy(&p, &a).unwrap();
        assert_eq!(read_data(&p).unwrap(), a);
        let z = dir.path().join("w.npz");
        write_npz(
            &z,
            &[
                ("fc.weight".into(), a.clone()),
                (
                    "fc.bias".into(),
                    Array {
                        shape: vec![1],
                        data: vec![7.0],
                    },
                ),
            ],
        )
        .unwrap();
        let mut npz = npyz::npz::NpzArchive::open(&z).unwrap();
        let got = npz.by_name("fc.weight").unwrap().unwrap();
        assert_eq!(got.shape(), &[2, 3]);
        assert_eq!(got.into_vec::<f32>().unwrap(), a.data);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no temporary files left behind"
        );
    }

    #[test]
    fn labels_reject_floats() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("y.npy");
        write_npy(
            &p,
            &Array {
                shape: vec![3],
                data: vec![0.0, 1.0, 2.0],
            },
        )
        .unwrap();
        let e = read_labels(&p).unwrap_err().to_string();
        assert!(
            e.contains("labels must be int64 or int32, found dtype `<f4`"),
            "{e}"
        );
    }
}
