//! 2-D convolution (groups, stride, padding, dilation): forward, input gradient, weight gradient.

use super::zeros;
use crate::ir::TensorData;

/// Geometry of a forward convolution, input `[N, C, H, W]`, weights `[K, C/G, R, S]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Batch, input channels, input height and width.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub k: usize,
    /// Kernel height.
    pub r: usize,
    /// Kernel width.
    pub s: usize,
    /// Strides (h, w).
    pub stride: [usize; 2],
    /// Padding `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// Dilations (h, w).
    pub dil: [usize; 2],
    /// Groups.
    pub group: usize,
}

impl ConvGeom {
    /// Output height.
    pub fn oh(&self) -> usize {
        (self.h + self.pads[0] + self.pads[2] - self.dil[0] * (self.r - 1) - 1) / self.stride[0] + 1
    }

    /// Output width.
    pub fn ow(&self) -> usize {
        (self.w + self.pads[1] + self.pads[3] - self.dil[1] * (self.s - 1) - 1) / self.stride[1] + 1
    }

    /// Output shape `[N, K, OH, OW]`.
    pub fn out_shape(&self) -> [usize; 4] {
        [self.n, self.k, self.oh(), self.ow()]
    }

    /// Weight shape `[K, C/G, R, S]`.
    pub fn w_shape(&self) -> [usize; 4] {
        [self.k, self.c / self.group, self.r, self.s]
    }

    /// Calls `f(n, k, oh, ow, c, r, s, ih, iw)` for every in-bounds (input, weight, output) triple;
    /// indices are flat offsets `(x, w, y)`.
    fn for_each(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (oh, ow) = (self.oh(), self.ow());
        let (cg, kg) = (self.c / self.group, self.k / self.group);
        for n in 0..self.n {
            for k in 0..self.k {
                let g = k / kg;
                for y in 0..oh {
                    for x in 0..ow {
                        let yi = ((n * self.k + k) * oh + y) * ow + x;
                        for cc in 0..cg {
                            let c = g * cg + cc;
                            for r in 0..self.r {
                                let ih =
                                    (y * self.stride[0] + r * self.dil[0]) as isize - self.pads[0] as isize;
                                if ih < 0 || ih as usize >= self.h {
                                    continue;
                                }
                                for s in 0..self.s {
                                    let iw = (x * self.stride[1] + s * self.dil[1]) as isize
                                        - self.pads[1] as isize;
                                    if iw < 0 || iw as usize >= self.w {
                                        continue;
                                    }
                                    let xi = ((n * self.c + c) * self.h + ih as usize) * self.w + iw as usize;
                                    let wi = ((k * cg + cc) * self.r + r) * self.s + s;
                                    f(xi, wi, yi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Forward: `y = conv(x, w)`.
pub fn ff(g: &ConvGeom, x: &TensorData, w: &TensorData) -> TensorData {
    let mut y = zeros(&g.out_shape());
    g.for_each(|xi, wi, yi| y.data[yi] += x.data[xi] * w.data[wi]);
    y
}

/// Input gradient: `dx` from the output gradient `dy` and the weights.
pub fn bp(g: &ConvGeom, dy: &TensorData, w: &TensorData) -> TensorData {
    let mut dx = zeros(&[g.n, g.c, g.h, g.w]);
    g.for_each(|xi, wi, yi| dx.data[xi] += dy.data[yi] * w.data[wi]);
    dx
}

/// Weight gradient: `dw` from the input `x` and the output gradient `dy`.
pub fn wg(g: &ConvGeom, x: &TensorData, dy: &TensorData) -> TensorData {
    let mut dw = zeros(&g.w_shape());
    g.for_each(|xi, wi, yi| dw.data[wi] += x.data[xi] * dy.data[yi]);
    dw
}
