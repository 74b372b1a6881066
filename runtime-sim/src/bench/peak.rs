//! The peak energy-efficiency microbenchmark (BRIEF §7, rows 1–3): one large conv layer, FF, on
//! random data at a given activation and weight density, in fp16 or fp8.
//!
//! The program is built with the trainer-isa builder and simulated like any other: the input is
//! loaded once, weights are loaded per output-channel tile — double-buffered when two tiles fit the
//! weight buffer (the next tile's DMA overlaps the current tile's conv through tokens) — and outputs
//! are stored per tile. Convs are
//! tagged layer 1 / `ff`, data movement layer 0 / `other`. Figures are measured on the conv tag:
//! dense-equivalent FLOPs (2 per dense MAC) over its on-chip energy — the conv instructions' events
//! except DRAM, plus leakage over their compute cycles — and over their compute time.

use crate::cost::CostModel;
use crate::error::SimError;
use crate::ledger::{Event, TagKey};
use crate::sim::Simulator;
use serde::Serialize;
use trainer_isa::flags::{SKIP_IN, SKIP_W};
use trainer_isa::names::{AddrReg, Counter, Dataflow, DmaFmt, Mode, Phase, Precision, QueueName};
use trainer_isa::{DType, Instr, InstrError, Opcode, Operand, Program, Role, Segment, Space, TensorEntry};

/// The paper's figures (BRIEF §7).
pub mod paper {
    /// Peak EE, FP16, 90% activation + 90% weight sparsity, TFLOPS/W.
    pub const FP16_SPARSE_TFLOPS_PER_W: f64 = 173.28;
    /// Peak EE, FP8, same sparsity, TFLOPS/W.
    pub const FP8_SPARSE_TFLOPS_PER_W: f64 = 276.55;
    /// Sparsity → EE conversion ratio (EE at 90/90 over dense EE).
    pub const CONVERSION_RATIO: f64 = 80.9;
}

/// Shape of the benchmark layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Layer {
    /// Input channels.
    pub c: u16,
    /// Output channels.
    pub k: u16,
    /// Input height and width.
    pub hw: u16,
    /// Output channels per weight tile.
    pub k_tile: u16,
}

/// The benchmark layer: 128 → 128 channels, 3×3, 20×20, padding 1, batch 1, 32-channel weight tiles
/// (the whole input and one fp16 tile, or two fp8 tiles, fit the 128 KiB buffers of `trainer-28nm`).
pub const LAYER: Layer = Layer {
    c: 128,
    k: 128,
    hw: 20,
    k_tile: 32,
};

/// Figures of one benchmark run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeakFigures {
    /// Dense-equivalent TFLOPS per watt of on-chip energy.
    pub tflops_per_w: f64,
    /// Dense-equivalent TFLOPS over the conv time.
    pub tflops: f64,
    /// Effective MACs / (MACs per cycle in the mode × conv cycles).
    pub utilization: f64,
    /// Conv compute cycles.
    pub cycles: u64,
    /// On-chip energy of the conv layer, pJ.
    pub energy_pj: f64,
    /// Dense MACs.
    pub dense_macs: u64,
    /// Effective MACs.
    pub effective_macs: u64,
    /// On-chip energy per component, pJ.
    pub components: std::collections::BTreeMap<String, f64>,
}

/// Deterministic xorshift generator for the benchmark's random data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `n` values, each non-zero with probability `density`, non-zero values in ±[0.25, 1).
    fn sparse(&mut self, n: usize, density: f64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                if self.uniform() < density {
                    let m = 0.25 + 0.75 * self.uniform();
                    if self.next() & 1 == 0 {
                        m as f32
                    } else {
                        -m as f32
                    }
                } else {
                    0.0
                }
            })
            .collect()
    }
}

fn op(space: Space, dtype: DType, addr: u32) -> Operand {
    Operand::new(space, dtype, addr)
}

/// Builds the benchmark program (data filled in by [`run`]) for a weight buffer of `wbuf_bytes`.
pub fn program(layer: &Layer, precision: Precision, wbuf_bytes: u64) -> Result<Program, InstrError> {
    let dt = if precision == Precision::Fp8 {
        DType::E4m3
    } else {
        DType::F16
    };
    let es = dt.bytes(1) as u32;
    let (c, k, hw, kt) = (
        u32::from(layer.c),
        u32::from(layer.k),
        u32::from(layer.hw),
        u32::from(layer.k_tile),
    );
    let plane = hw * hw;
    let (in_bytes, w_tile, o_tile) = (c * plane * es, kt * c * 9 * es, kt * plane * es);
    let tiles = k / kt;
    let (x_at, w_at) = (0u32, c * plane * es);
    let y_at = w_at + k * c * 9 * es;
    let dram = u64::from(y_at + k * plane * es);
    let load = |addr: u32, bytes: u32, buf: Operand| {
        Instr::build(Opcode::DmaLoad)
            .with("fmt", DmaFmt::Bitmap)
            .with("ar", AddrReg::Ar1)
            .with("ctr", Counter::None)
            .with("rows", 1u32)
            .with("row_bytes", bytes)
            .with("dstride", 0u32)
            .with("bstride", 0u32)
            .with("dram", op(Space::Dram, dt, addr))
            .with("buf", buf)
            .finish()
    };
    let tok = |o: Opcode, q: QueueName, t: u8| Instr::build(o).with("q", q).with("tok", t).finish();
    let tag = |layer: u16, phase: Phase| {
        Instr::build(Opcode::Tag)
            .with("layer", layer)
            .with("phase", phase)
            .finish()
    };
    // Double-buffer the weight tiles when two fit in the weight buffer.
    let slots = if 2 * u64::from(w_tile) <= wbuf_bytes { 2 } else { 1 };
    let wbuf = |t: u32| op(Space::Wbuf, dt, (t % slots) * w_tile);
    let obuf = |t: u32| op(Space::Obuf, dt, (t % 2) * o_tile);
    let mut code = vec![
        Instr::build(Opcode::CfgPrec).with("prec", precision).finish()?,
        tag(0, Phase::Other)?,
        Instr::build(Opcode::ArSet)
            .with("reg", AddrReg::Ar1)
            .with("value", 0u32)
            .finish()?,
        load(x_at, in_bytes, op(Space::Ibuf, dt, 0))?,
        load(w_at, w_tile, wbuf(0))?,
        tok(Opcode::TokSignal, QueueName::Load, 0)?,
    ];
    for t in 0..tiles {
        code.push(tok(Opcode::TokWait, QueueName::Compute, 0)?);
        if t >= 2 {
            code.push(tok(Opcode::TokWait, QueueName::Compute, 3)?); // obuf slot stored
        }
        code.push(tag(1, Phase::Ff)?);
        code.push(
            Instr::build(Opcode::Conv)
                .with("mode", Mode::Ff)
                .with("df", Dataflow::Ws)
                .flags("skip", SKIP_IN | SKIP_W)
                .with("dci", Counter::None)
                .with("dcw", Counter::None)
                .with("n", 1u16)
                .with("c", layer.c)
                .with("h", layer.hw)
                .with("w", layer.hw)
                .with("k", layer.k_tile)
                .with("r", 3u8)
                .with("s", 3u8)
                .with("stride_h", 1u8)
                .with("stride_w", 1u8)
                .with("pad_t", 1u8)
                .with("pad_l", 1u8)
                .with("pad_b", 1u8)
                .with("pad_r", 1u8)
                .with("dil_h", 1u8)
                .with("dil_w", 1u8)
                .with("groups", 1u16)
                .with("a", op(Space::Ibuf, dt, 0))
                .with("b", wbuf(t))
                .with("out", obuf(t))
                .finish()?,
        );
        code.push(tag(0, Phase::Other)?);
        code.push(tok(Opcode::TokSignal, QueueName::Compute, 1)?);
        code.push(tok(Opcode::TokSignal, QueueName::Compute, 2)?);
        code.push(tok(Opcode::TokWait, QueueName::Store, 1)?);
        code.push(
            Instr::build(Opcode::DmaStore)
                .with("fmt", DmaFmt::Dense)
                .with("ar", AddrReg::Ar0)
                .with("ctr", Counter::None)
                .with("rows", 1u32)
                .with("row_bytes", o_tile)
                .with("dstride", 0u32)
                .with("bstride", 0u32)
                .with("dram", op(Space::Dram, dt, y_at + t * o_tile))
                .with("buf", obuf(t))
                .finish()?,
        );
        code.push(tok(Opcode::TokSignal, QueueName::Store, 3)?);
        let u = t + 1;
        if u < tiles {
            if u >= slots {
                // The slot about to be overwritten was read by the conv of tile u - slots.
                code.push(tok(Opcode::TokWait, QueueName::Load, 2)?);
            }
            code.push(load(w_at + u * w_tile, w_tile, wbuf(u))?);
            code.push(tok(Opcode::TokSignal, QueueName::Load, 0)?);
        }
    }
    code.push(Instr::build(Opcode::Halt).finish()?);
    let tensor = |name: &str, role, shape: Vec<u32>, addr| TensorEntry {
        name: name.into(),
        role,
        dtype: dt,
        shape,
        addr,
    };
    Ok(Program {
        dram_size: dram,
        code,
        data: Vec::<Segment>::new(),
        tensors: vec![
            tensor("x", Role::Input, vec![1, c, hw, hw], x_at),
            tensor("w", Role::Param, vec![k, c, 3, 3], w_at),
            tensor("y", Role::Output, vec![1, k, hw, hw], y_at),
        ],
        meta: vec![
            ("layer.1".into(), "peak_conv".into()),
            ("layer.0".into(), "dma".into()),
        ],
    })
}

/// Runs the benchmark at activation density `act` and weight density `wt` (1.0 = dense).
pub fn run(cost: &CostModel, precision: Precision, act: f64, wt: f64) -> Result<PeakFigures, SimError> {
    let layer = LAYER;
    let prog = program(&layer, precision, cost.buffers[1] as u64).map_err(|e| SimError::Tensor {
        name: "peak program".into(),
        why: e.to_string(),
    })?;
    let mut sim = Simulator::new(prog, cost.clone())?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (c, k, hw) = (usize::from(layer.c), usize::from(layer.k), usize::from(layer.hw));
    sim.write_tensor("x", &rng.sparse(c * hw * hw, act))?;
    sim.write_tensor("w", &rng.sparse(k * c * 9, wt))?;
    let stats = sim.run()?;
    let conv = stats
        .ledger
        .tags
        .get(&TagKey::new(1, Phase::Ff))
        .copied()
        .unwrap_or_default();
    let cycles = conv.compute_cycles.max(1);
    let mut components = std::collections::BTreeMap::new();
    for (e, n) in conv
        .events
        .iter()
        .filter(|&(e, _)| e.on_chip() && e != Event::LeakCycle)
    {
        *components.entry(e.name()).or_insert(0.0) += n as f64 * cost.energy_pj[e as usize];
    }
    components.insert(
        Event::LeakCycle.name(),
        cycles as f64 * cost.energy_pj[Event::LeakCycle as usize],
    );
    let energy_pj: f64 = components.values().sum();
    let seconds = cycles as f64 / cost.timing.clock_hz;
    let flops = 2.0 * conv.dense_macs as f64;
    Ok(PeakFigures {
        tflops_per_w: flops / energy_pj,
        tflops: flops / seconds / 1e12,
        utilization: conv.effective_macs as f64 / (cost.timing.macs_per_cycle(precision) * cycles as f64),
        cycles,
        energy_pj,
        dense_macs: conv.dense_macs,
        effective_macs: conv.effective_macs,
        components,
    })
}

/// Dense and 90/90-sparse figures of one precision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrecisionFigures {
    /// Dense data (0% sparsity).
    pub dense: PeakFigures,
    /// 90% activation + 90% weight sparsity.
    pub sparse: PeakFigures,
}

impl PrecisionFigures {
    /// EE at 90/90 over dense EE.
    pub fn conversion_ratio(&self) -> f64 {
        self.sparse.tflops_per_w / self.dense.tflops_per_w
    }
}

/// Sparsity of the "sparse" configuration (activations and weights).
pub const SPARSITY: f64 = 0.9;

/// Runs dense and 90/90-sparse benchmarks in one precision.
pub fn measure(cost: &CostModel, precision: Precision) -> Result<PrecisionFigures, SimError> {
    Ok(PrecisionFigures {
        dense: run(cost, precision, 1.0, 1.0)?,
        sparse: run(cost, precision, 1.0 - SPARSITY, 1.0 - SPARSITY)?,
    })
}

/// The JSON object of `trainer bench peak --json`: flat keys per precision measured.
pub fn json(fp16: Option<&PrecisionFigures>, fp8: Option<&PrecisionFigures>) -> serde_json::Value {
    let mut o = serde_json::Map::new();
    for (name, figs, paper_sparse) in [
        ("fp16", fp16, paper::FP16_SPARSE_TFLOPS_PER_W),
        ("fp8", fp8, paper::FP8_SPARSE_TFLOPS_PER_W),
    ] {
        let Some(f) = figs else { continue };
        let mut put = |k: &str, v: f64| {
            o.insert(format!("{name}_{k}"), serde_json::json!(v));
        };
        put("dense_tflops_per_w", f.dense.tflops_per_w);
        put("sparse_tflops_per_w", f.sparse.tflops_per_w);
        put("paper_sparse_tflops_per_w", paper_sparse);
        put("dense_tflops", f.dense.tflops);
        put("sparse_tflops", f.sparse.tflops);
        put("dense_utilization", f.dense.utilization);
        put("sparse_utilization", f.sparse.utilization);
        o.insert(
            format!("conversion_ratio_{name}"),
            serde_json::json!(f.conversion_ratio()),
        );
    }
    o.insert(
        "paper_conversion_ratio".into(),
        serde_json::json!(paper::CONVERSION_RATIO),
    );
    serde_json::Value::Object(o)
}

/// Human-readable table of the figures, each beside the paper's.
pub fn table(fp16: Option<&PrecisionFigures>, fp8: Option<&PrecisionFigures>) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let l = LAYER;
    let _ = writeln!(
        s,
        "peak EE microbenchmark: conv {}->{} 3x3, {}x{}, FF; sparse = {:.0}% activation + {:.0}% weight sparsity",
        l.c,
        l.k,
        l.hw,
        l.hw,
        100.0 * SPARSITY,
        100.0 * SPARSITY
    );
    let _ = writeln!(
        s,
        "{:<6} {:<7} {:>12} {:>12} {:>9} {:>12}",
        "prec", "data", "TFLOPS/W", "paper", "TFLOPS", "utilization"
    );
    for (name, figs, paper_sparse) in [
        ("fp16", fp16, paper::FP16_SPARSE_TFLOPS_PER_W),
        ("fp8", fp8, paper::FP8_SPARSE_TFLOPS_PER_W),
    ] {
        let Some(f) = figs else { continue };
        for (data, r, paper) in [
            ("dense", &f.dense, "-".to_string()),
            ("90/90", &f.sparse, format!("{paper_sparse:.2}")),
        ] {
            let _ = writeln!(
                s,
                "{:<6} {:<7} {:>12.2} {:>12} {:>9.3} {:>11.1}%",
                name,
                data,
                r.tflops_per_w,
                paper,
                r.tflops,
                100.0 * r.utilization
            );
        }
        let _ = writeln!(
            s,
            "{:<6} conversion ratio {:.1} (paper {:.1})",
            name,
            f.conversion_ratio(),
            paper::CONVERSION_RATIO
        );
    }
    s
}
