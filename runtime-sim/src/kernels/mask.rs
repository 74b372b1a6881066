//! Element-mask helpers shared by the compute kernels.

use super::{check_len, Result};
use std::borrow::Cow;

/// Writes (or adds) `src` into `dst`, zeroing elements not kept.
pub(crate) fn store(dst: &mut [f32], src: &[f32], keep: Option<&[bool]>, accumulate: bool) {
    match (keep, accumulate) {
        (None, false) => dst.copy_from_slice(src),
        (None, true) => dst.iter_mut().zip(src).for_each(|(d, s)| *d += s),
        (Some(k), _) => {
            for ((d, &s), &k) in dst.iter_mut().zip(src).zip(k) {
                let v = if k { s } else { 0.0 };
                *d = if accumulate { *d + v } else { v };
            }
        }
    }
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
