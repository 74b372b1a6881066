//! Element-mask helpers shared by the compute kernels.

use super::{check_len, Result};
use std::borrow::Cow;

/// Writes (or adds) `src` into `dst`, zeroing elements not kept (the kernels store many short
/// runs: a plain copy is done in line, [`copy`]).
pub(crate) fn store(dst: &mut [f32], src: &[f32], keep: Option<&[bool]>, accumulate: bool) {
    match (keep, accumulate) {
        (None, false) => copy(dst, src),
        (None, true) => dst.iter_mut().zip(src).for_each(|(d, s)| *d += s),
        (Some(k), _) => {
            for ((d, &s), &k) in dst.iter_mut().zip(src).zip(k) {
                let v = if k { s } else { 0.0 };
                *d = if accumulate { *d + v } else { v };
            }
        }
    }
}

/// `dst ← src` (as long), sixteen values at a time in AVX-512 registers where the build targets
/// AVX-512 (the compiler turns a loop of short copies into a call to `memcpy`).
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
fn copy(dst: &mut [f32], src: &[f32]) {
    use std::arch::x86_64::{_mm512_loadu_ps, _mm512_storeu_ps};
    let ((dst, dst_rest), (src, src_rest)) = (dst.as_chunks_mut::<16>(), src.as_chunks::<16>());
    for (d, s) in dst.iter_mut().zip(src) {
        // SAFETY: the build targets AVX-512F (the `cfg` of this function); the load and the
        // store are of sixteen-element arrays, and they need no alignment.
        unsafe { _mm512_storeu_ps(d.as_mut_ptr(), _mm512_loadu_ps(s.as_ptr())) };
    }
    dst_rest.copy_from_slice(src_rest);
}

/// `dst ← src` (as long).
#[cfg(not(all(target_arch = "x86_64", target_feature = "avx512f")))]
fn copy(dst: &mut [f32], src: &[f32]) {
    dst.copy_from_slice(src);
}

/// `x ⊙ mask` in place.
pub(crate) fn apply_mask(x: &mut [f32], mask: Option<&[bool]>) {
    if let Some(m) = mask {
        x.iter_mut().zip(m).for_each(|(v, &k)| {
            if !k {
                *v = 0.0;
            }
        });
    }
}

/// `w ⊙ mask`, borrowing `w` when there is no mask.
pub(crate) fn apply_weight_mask<'w>(w: &'w [f32], mask: Option<&[bool]>) -> Result<Cow<'w, [f32]>> {
    match mask {
        None => Ok(Cow::Borrowed(w)),
        Some(m) => {
            check_len("weight mask", m, w.len())?;
            Ok(Cow::Owned(
                w.iter().zip(m).map(|(&v, &k)| if k { v } else { 0.0 }).collect(),
            ))
        }
    }
}
