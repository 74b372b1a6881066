//! SGD with momentum and weight decay (PyTorch semantics, dampening 0, no Nesterov):
//! `g' = g + wd·w; v = μ·v + g'; w -= lr·v` (a zero-initialised `v` equals PyTorch's first-step
//! `v = g'`).

use super::{check_len, Result};

/// Hyper-parameters of one SGD step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f32,
    /// Momentum μ.
    pub momentum: f32,
    /// Weight decay (L2) coefficient.
    pub weight_decay: f32,
}

impl Sgd {
    /// Updates `w` and the momentum buffer `v` from the gradient `g`; with a mask (sparse WG) only
    /// masked-in weights (and their momentum) change.
    pub fn step(&self, w: &mut [f32], g: &[f32], v: &mut [f32], mask: Option<&[bool]>) -> Result<()> {
        check_len("SGD gradient", g, w.len())?;
        check_len("SGD momentum", v, w.len())?;
        if let Some(m) = mask {
            check_len("SGD mask", m, w.len())?;
        }
        for (i, ((wi, &gi), vi)) in w.iter_mut().zip(g).zip(v.iter_mut()).enumerate() {
            if mask.is_some_and(|m| !m[i]) {
                continue;
            }
            let gd = gi + self.weight_decay * *wi;
            *vi = self.momentum * *vi + gd;
            *wi -= self.lr * *vi;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_matches_pytorch_recurrence() {
        let sgd = Sgd {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 5e-4,
        };
        let (mut w, mut v) = (vec![1.0f32, -2.0, 0.5], vec![0.0f32; 3]);
        let g = [0.2f32, 0.1, -0.3];
        let (mut rw, mut rv) = (vec![1.0f64, -2.0, 0.5], vec![0.0f64; 3]);
        for _ in 0..3 {
            sgd.step(&mut w, &g, &mut v, None).unwrap();
            for i in 0..3 {
                let gd = f64::from(g[i]) + 5e-4 * rw[i];
                rv[i] = 0.9 * rv[i] + gd;
                rw[i] -= 0.1 * rv[i];
                assert!((f64::from(w[i]) - rw[i]).abs() < 1e-6);
            }
        }
        let before = w.clone();
        sgd.step(&mut w, &g, &mut v, Some(&[true, false, true])).unwrap();
        assert_eq!(w[1], before[1]);
        assert_ne!(w[0], before[0]);
        assert!(sgd.step(&mut w, &g[..2], &mut v, None).is_err());
    }
}
