//! Pooling: max (with argmax indices for the backward pass), average, global average.

use super::zeros;
use crate::ir::TensorData;

/// Window geometry of a max or average pool over `[N, C, H, W]`, output `[N, C, OH, OW]`
/// (output sizes given, so `ceil_mode` needs no special case: windows are clipped to the input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    /// Input shape `[N, C, H, W]`.
    pub input: [usize; 4],
    /// Output height and width.
    pub out: [usize; 2],
    /// Kernel (r, s).
    pub kernel: [usize; 2],
    /// Strides.
    pub stride: [usize; 2],
    /// Padding `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// Dilations (max pool; 1 for average).
    pub dil: [usize; 2],
    /// Average pool divides by the whole window including padding (else by in-bounds count).
    pub count_include_pad: bool,
}

impl PoolGeom {
    /// Output shape.
    pub fn out_shape(&self) -> [usize; 4] {
        [self.input[0], self.input[1], self.out[0], self.out[1]]
    }

    /// For each output `(flat index, plane offset)`: the in-bounds input positions `ih·W + iw` of its
    /// window in row-major order, and the window size counted for `count_include_pad`.
    fn windows(&self, mut f: impl FnMut(usize, usize, &[usize], usize)) {
        let [n, c, h, w] = self.input;
        let mut pos = Vec::new();
        for plane in 0..n * c {
            for y in 0..self.out[0] {
                for x in 0..self.out[1] {
                    pos.clear();
                    let mut padded = 0;
                    for r in 0..self.kernel[0] {
                        for s in 0..self.kernel[1] {
                            let ih = (y * self.stride[0] + r * self.dil[0]) as isize - self.pads[0] as isize;
                            let iw = (x * self.stride[1] + s * self.dil[1]) as isize - self.pads[1] as isize;
                            let in_pad = ih < (h + self.pads[2]) as isize && iw < (w + self.pads[3]) as isize;
                            padded += usize::from(in_pad);
                            if ih >= 0 && iw >= 0 && (ih as usize) < h && (iw as usize) < w {
                                pos.push(ih as usize * w + iw as usize);
                            }
                        }
                    }
                    f(
                        (plane * self.out[0] + y) * self.out[1] + x,
                        plane * h * w,
                        &pos,
                        padded,
                    );
                }
            }
        }
    }
}

/// Max pool: output and argmax index (`ih·W + iw`, first maximum in window order) per output.
pub fn max_ff(g: &PoolGeom, x: &TensorData) -> (TensorData, TensorData) {
    let (mut y, mut idx) = (zeros(&g.out_shape()), zeros(&g.out_shape()));
    g.windows(|o, base, pos, _| {
        let best = pos.iter().copied().fold(None, |b: Option<usize>, p| match b {
            Some(q) if x.data[base + q] >= x.data[base + p] => Some(q),
            _ => Some(p),
        });
        if let Some(p) = best {
            y.data[o] = x.data[base + p];
            idx.data[o] = p as f32;
        }
    });
    (y, idx)
}

/// Max pool backward: each `dy` added at its argmax.
pub fn max_bwd(g: &PoolGeom, dy: &TensorData, idx: &TensorData) -> TensorData {
    let mut dx = zeros(&g.input);
    let [_, _, h, w] = g.input;
    for (o, &d) in dy.data.iter().enumerate() {
        let plane = o / (g.out[0] * g.out[1]);
        dx.data[plane * h * w + idx.data[o] as usize] += d;
    }
    dx
}

/// Divisor of an average window.
fn divisor(g: &PoolGeom, pos: &[usize], padded: usize) -> f32 {
    (if g.count_include_pad { padded } else { pos.len() }).max(1) as f32
}

/// Average pool.
pub fn avg_ff(g: &PoolGeom, x: &TensorData) -> TensorData {
    let mut y = zeros(&g.out_shape());
    g.windows(|o, base, pos, padded| {
        y.data[o] = pos.iter().map(|&p| x.data[base + p]).sum::<f32>() / divisor(g, pos, padded);
    });
    y
}

/// Average pool backward.
pub fn avg_bwd(g: &PoolGeom, dy: &TensorData) -> TensorData {
    let mut dx = zeros(&g.input);
    g.windows(|o, base, pos, padded| {
        let d = dy.data[o] / divisor(g, pos, padded);
        for &p in pos {
            dx.data[base + p] += d;
        }
    });
    dx
}

/// Global average pool `[N, C, H, W] → [N, C, 1, 1]`.
pub fn gavg_ff(x: &TensorData) -> TensorData {
    let [n, c, h, w] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    let data = x
        .data
        .chunks(h * w)
        .map(|p| (p.iter().map(|&v| v as f64).sum::<f64>() / (h * w) as f64) as f32)
        .collect();
    super::tensor(&[n, c, 1, 1], data)
}

/// Global average pool backward: `dy / (H·W)` everywhere.
pub fn gavg_bwd(dy: &TensorData, input: &[usize]) -> TensorData {
    let hw = input[2] * input[3];
    let data = dy
        .data
        .iter()
        .flat_map(|&d| std::iter::repeat_n(d / hw as f32, hw))
        .collect();
    super::tensor(input, data)
}
