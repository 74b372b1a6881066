//! Test helpers: programs written as `.tasm` text, random tensors, naive f64 references.
#![allow(dead_code)]

use trainer_sim::cost::CostModel;
use trainer_sim::Simulator;

/// Deterministic random numbers.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Values in [-1, 1), zero with probability `1 - density`.
    pub fn vec(&mut self, n: usize, density: f64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                if self.uniform() < density {
                    (2.0 * self.uniform() - 1.0) as f32
                } else {
                    0.0
                }
            })
            .collect()
    }

    pub fn mask(&mut self, n: usize, p: f64) -> Vec<f32> {
        (0..n).map(|_| f32::from(u8::from(self.uniform() < p))).collect()
    }
}

/// A program under construction: tensors in DRAM and instruction lines.
#[derive(Default)]
pub struct Asm {
    dram: u32,
    directives: Vec<String>,
    code: Vec<String>,
}

pub fn bytes_of(dtype: &str, n: usize) -> u32 {
    (match dtype {
        "f32" | "i32" => 4 * n,
        "f16" => 2 * n,
        "e4m3" | "e5m2" => n,
        "b1" => n.div_ceil(8),
        "i64" => 8 * n,
        _ => panic!("dtype {dtype}"),
    }) as u32
}

impl Asm {
    /// Declares a DRAM tensor; returns its address.
    pub fn tensor(&mut self, name: &str, dtype: &str, shape: &[usize]) -> u32 {
        let n: usize = shape.iter().product();
        let addr = self.dram;
        self.dram += bytes_of(dtype, n).div_ceil(64) * 64 + 64;
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        self.directives.push(format!(
            ".tensor \"{name}\" role=other dtype={dtype} shape=[{}] addr={addr}",
            dims.join(", ")
        ));
        addr
    }

    /// Adds an instruction line.
    pub fn op(&mut self, line: impl Into<String>) -> &mut Self {
        self.code.push(line.into());
        self
    }

    /// DMA-loads `bytes` from DRAM `addr` to `buf` (e.g. `ibuf:f32@0`).
    pub fn load(&mut self, addr: u32, dtype: &str, bytes: u32, buf: &str) -> &mut Self {
        self.op(format!(
            "dma.load fmt=dense ar=ar0 ctr=none rows=1 row_bytes={bytes} dstride=0 bstride=0 dram=dram:{dtype}@{addr} buf={buf}"
        ))
    }

    /// DMA-stores `bytes` from `buf` to DRAM `addr`.
    pub fn store(&mut self, addr: u32, dtype: &str, bytes: u32, buf: &str) -> &mut Self {
        self.op(format!(
            "dma.store fmt=dense ar=ar0 ctr=none rows=1 row_bytes={bytes} dstride=0 bstride=0 dram=dram:{dtype}@{addr} buf={buf}"
        ))
    }

    pub fn text(&self) -> String {
        format!(
            ".dram {}\n{}\n{}\n",
            self.dram,
            self.directives.join("\n"),
            self.code.join("\n")
        )
    }

    /// Assembles and loads on `trainer-28nm`.
    pub fn sim(&self) -> Simulator {
        self.sim_on("trainer-28nm")
    }

    pub fn sim_on(&self, machine: &str) -> Simulator {
        let prog = trainer_isa::assemble(&self.text()).unwrap_or_else(|e| panic!("{e}\n{}", self.text()));
        Simulator::new(prog, CostModel::resolve(machine).unwrap()).unwrap()
    }
}

/// Asserts `got ≈ want` elementwise (relative tolerance `tol`).
pub fn close(got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= tol * (1.0 + w.abs()),
            "element {i}: got {g}, want {w}"
        );
    }
}

/// Convolution geometry.
#[derive(Clone, Copy, Debug)]
pub struct Geo {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub r: usize,
    pub s: usize,
    pub stride: (usize, usize),
    pub pad: (usize, usize, usize, usize),
    pub dil: (usize, usize),
    pub groups: usize,
}

impl Geo {
    /// A 3×3 convolution of stride 1 and padding 1 (output the input's size), no dilation or groups.
    pub fn same3x3(n: usize, c: usize, (h, w): (usize, usize), k: usize) -> Self {
        Geo {
            n,
            c,
            h,
            w,
            k,
            r: 3,
            s: 3,
            stride: (1, 1),
            pad: (1, 1, 1, 1),
            dil: (1, 1),
            groups: 1,
        }
    }

    pub fn oh(&self) -> usize {
        (self.h + self.pad.0 + self.pad.2 - self.dil.0 * (self.r - 1) - 1) / self.stride.0 + 1
    }
    pub fn ow(&self) -> usize {
        (self.w + self.pad.1 + self.pad.3 - self.dil.1 * (self.s - 1) - 1) / self.stride.1 + 1
    }
    pub fn x_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }
    pub fn w_len(&self) -> usize {
        self.k * self.c / self.groups * self.r * self.s
    }
    pub fn y_len(&self) -> usize {
        self.n * self.k * self.oh() * self.ow()
    }

    /// The conv fields in assembly.
    pub fn fields(&self) -> String {
        format!(
            "n={} c={} h={} w={} k={} r={} s={} stride_h={} stride_w={} pad_t={} pad_l={} pad_b={} pad_r={} dil_h={} dil_w={} groups={}",
            self.n, self.c, self.h, self.w, self.k, self.r, self.s, self.stride.0, self.stride.1, self.pad.0,
            self.pad.1, self.pad.2, self.pad.3, self.dil.0, self.dil.1, self.groups
        )
    }

    /// Calls `f(x_index, w_index, y_index)` for every MAC of the convolution with a valid input.
    pub fn each_mac(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (cg, kg) = (self.c / self.groups, self.k / self.groups);
        let (oh, ow) = (self.oh(), self.ow());
        for n in 0..self.n {
            for k in 0..self.k {
                let g = k / kg;
                for y in 0..oh {
                    for x in 0..ow {
                        for ci in 0..cg {
                            for r in 0..self.r {
                                for s in 0..self.s {
                                    let ih =
                                        (y * self.stride.0 + r * self.dil.0) as isize - self.pad.0 as isize;
                                    let iw =
                                        (x * self.stride.1 + s * self.dil.1) as isize - self.pad.1 as isize;
                                    if ih < 0 || iw < 0 || ih >= self.h as isize || iw >= self.w as isize {
                                        continue;
                                    }
                                    let c = g * cg + ci;
                                    let xi = ((n * self.c + c) * self.h + ih as usize) * self.w + iw as usize;
                                    let wi = ((k * cg + ci) * self.r + r) * self.s + s;
                                    let yi = ((n * self.k + k) * oh + y) * ow + x;
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
