//! SGD with momentum and weight decay (PyTorch semantics, dampening 0, no Nesterov):
//! `g' = g + wd·w; v = μ·v + g'; w -= lr·v` (a zero-initialised `v` equals PyTorch's first-step
//! `v = g'`).

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
    /// One weight's update from its gradient `g` and momentum `v`: the new weight and momentum.
    pub fn update(&self, w: f32, g: f32, v: f32) -> (f32, f32) {
        let gd = g + self.weight_decay * w;
        let v = self.momentum * v + gd;
        (w - self.lr * v, v)
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
        let (mut w, mut v) = ([1.0f32, -2.0, 0.5], [0.0f32; 3]);
        let g = [0.2f32, 0.1, -0.3];
        let (mut rw, mut rv) = ([1.0f64, -2.0, 0.5], [0.0f64; 3]);
        for _ in 0..3 {
            for i in 0..3 {
                (w[i], v[i]) = sgd.update(w[i], g[i], v[i]);
                let gd = f64::from(g[i]) + 5e-4 * rw[i];
                rv[i] = 0.9 * rv[i] + gd;
                rw[i] -= 0.1 * rv[i];
                assert!((f64::from(w[i]) - rw[i]).abs() < 1e-6);
            }
        }
    }
}
