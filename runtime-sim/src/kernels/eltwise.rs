//! Element-wise kernels of the vector unit: ReLU / clip forward and backward, add, scale, axpy,
//! per-channel bias add and its gradient.

use super::{check_len, invalid, Result};

/// `y = max(x, 0)`.
pub fn relu(x: &[f32], y: &mut [f32]) -> Result<()> {
    check_len("relu output", y, x.len())?;
    y.iter_mut().zip(x).for_each(|(o, &v)| *o = v.max(0.0));
    Ok(())
}

/// The ReLU mask `x > 0` as 1.0 / 0.0 into `m` (the forward mask used by ReLU backward and
/// speculation S1).
pub fn relu_mask(x: &[f32], m: &mut [f32]) -> Result<()> {
    check_len("relu mask", m, x.len())?;
    m.iter_mut()
        .zip(x)
        .for_each(|(m, &v)| *m = f32::from(u8::from(v > 0.0)));
    Ok(())
}

/// `dx = dy ⊙ mask` (ReLU backward by mask; a non-zero mask element keeps).
pub fn relu_backward(dy: &[f32], mask: &[f32], dx: &mut [f32]) -> Result<()> {
    check_len("relu mask", mask, dy.len())?;
    check_len("relu input gradient", dx, dy.len())?;
    dx.iter_mut()
        .zip(dy)
        .zip(mask)
        .for_each(|((d, &g), &m)| *d = if m != 0.0 { g } else { 0.0 });
    Ok(())
}

/// Checks clip bounds: `lo <= hi`, neither NaN.
pub fn clip_bounds(lo: f32, hi: f32) -> Result<()> {
    match lo.is_nan() || hi.is_nan() || lo > hi {
        true => Err(invalid("clip bounds", format!("[{lo}, {hi}]"))),
        false => Ok(()),
    }
}

/// `y = clamp(x, lo, hi)` (ReLU6 is `clip(x, 0, 6)`).
pub fn clip(x: &[f32], lo: f32, hi: f32, y: &mut [f32]) -> Result<()> {
    check_len("clip output", y, x.len())?;
    clip_bounds(lo, hi)?;
    y.iter_mut().zip(x).for_each(|(o, &v)| *o = v.clamp(lo, hi));
    Ok(())
}

/// Clip backward: `dx = dy` where `lo < x < hi`, else 0 (PyTorch hardtanh convention).
pub fn clip_backward(dy: &[f32], x: &[f32], lo: f32, hi: f32, dx: &mut [f32]) -> Result<()> {
    check_len("clip input", x, dy.len())?;
    check_len("clip input gradient", dx, dy.len())?;
    dx.iter_mut()
        .zip(dy)
        .zip(x)
        .for_each(|((d, &g), &v)| *d = if v > lo && v < hi { g } else { 0.0 });
    Ok(())
}

/// `out = a + b`.
pub fn add(a: &[f32], b: &[f32], out: &mut [f32]) -> Result<()> {
    check_len("add operand", b, a.len())?;
    check_len("add output", out, a.len())?;
    out.iter_mut().zip(a).zip(b).for_each(|((o, &x), &y)| *o = x + y);
    Ok(())
}

/// `x *= alpha`.
pub fn scale(x: &mut [f32], alpha: f32) {
    x.iter_mut().for_each(|v| *v *= alpha);
}

/// `y += alpha·x`.
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) -> Result<()> {
    check_len("axpy target", y, x.len())?;
    y.iter_mut().zip(x).for_each(|(o, &v)| *o += alpha * v);
    Ok(())
}

/// Adds `bias[c]` to every element of channel `c` of an `n × c × hw` tensor (hw = 1 for features).
pub fn bias_add(x: &mut [f32], bias: &[f32], hw: usize) -> Result<()> {
    let planes = plane_count(x.len(), bias.len(), hw)?;
    for (p, plane) in x.chunks_exact_mut(hw.max(1)).take(planes).enumerate() {
        let b = bias[p % bias.len()];
        plane.iter_mut().for_each(|v| *v += b);
    }
    Ok(())
}

/// Bias gradient: `db[c] = Σ dy` over channel `c` of an `n × c × hw` tensor.
pub fn bias_grad(dy: &[f32], c: usize, hw: usize) -> Result<Vec<f32>> {
    let planes = plane_count(dy.len(), c, hw)?;
    let mut db = vec![0.0f32; c];
    for (p, plane) in dy.chunks_exact(hw.max(1)).take(planes).enumerate() {
        db[p % c] += plane.iter().sum::<f32>();
    }
    Ok(db)
}

fn plane_count(len: usize, c: usize, hw: usize) -> Result<usize> {
    if c == 0 || hw == 0 || !len.is_multiple_of(c * hw) {
        return Err(invalid(
            "bias layout",
            format!("{len} elements is not n × {c} channels × {hw}"),
        ));
    }
    Ok(len / hw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elementwise_ops() {
        let x = [-1.0, 0.0, 2.0, 7.0];
        let mut y = [0.0; 4];
        relu(&x, &mut y).unwrap();
        assert_eq!(y, [0.0, 0.0, 2.0, 7.0]);
        let mut m = [0.0; 4];
        relu_mask(&x, &mut m).unwrap();
        assert_eq!(m, [0.0, 0.0, 1.0, 1.0]);
        relu_backward(&[1.0, 2.0, 3.0, 4.0], &m, &mut y).unwrap();
        assert_eq!(y, [0.0, 0.0, 3.0, 4.0]);
        clip(&x, 0.0, 6.0, &mut y).unwrap();
        assert_eq!(y, [0.0, 0.0, 2.0, 6.0]);
        clip_backward(&[1.0; 4], &x, 0.0, 6.0, &mut y).unwrap();
        assert_eq!(y, [0.0, 0.0, 1.0, 0.0]);
        assert!(clip(&x, 1.0, 0.0, &mut y).is_err());
        add(&x, &x, &mut y).unwrap();
        assert_eq!(y, [-2.0, 0.0, 4.0, 14.0]);
        scale(&mut y, 0.5);
        assert_eq!(y, x);
        axpy(2.0, &x, &mut y).unwrap();
        assert_eq!(y, [-3.0, 0.0, 6.0, 21.0]);
        let mut t = [0.0f32; 8]; // n = 2, c = 2, hw = 2
        bias_add(&mut t, &[1.0, 2.0], 2).unwrap();
        assert_eq!(t, [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
        assert_eq!(bias_grad(&t, 2, 2).unwrap(), vec![4.0, 8.0]);
        assert!(bias_add(&mut t, &[1.0, 2.0, 3.0], 2).is_err());
        assert!(axpy(1.0, &x, &mut y[..2]).is_err());
    }
}
