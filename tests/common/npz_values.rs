//! An `.npy` array's values as f64, shared by the test crates that compare against PyTorch's
//! `.npz` references (included with `#[path]`: the workspace root's tests and the compiler's).

use std::io::Read;

/// The values of `arr` (f32, f64 or integer) as f64.
pub fn values_f64<R: Read>(arr: npyz::NpyFile<R>) -> Vec<f64> {
    match arr.dtype() {
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Int => arr
            .into_vec::<i64>()
            .unwrap()
            .into_iter()
            .map(|v| v as f64)
            .collect(),
        npyz::DType::Plain(t) if t.size_field() == 8 => arr.into_vec::<f64>().unwrap(),
        _ => arr
            .into_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect(),
    }
}
