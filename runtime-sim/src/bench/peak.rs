//! The peak energy-efficiency microbenchmark (BRIEF §7, rows 1–3): one large conv layer, FF, on
//! random data at a given activation and weight density, in fp16 or fp8.
//!
//! The program is built with the trainer-isa builder and simulated like any other: the input is
//! loaded once, weights are loaded per output-channel tile with double buffering (the next tile's
//! DMA overlaps the current tile's conv through tokens), outputs are stored per tile. Convs are
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

/// The benchmark layer: 128 → 128 channels, 3×3, 20×20, padding 1, batch 1, 16-channel weight tiles
/// (two fp16 tiles and the whole input fit the 128 KiB buffers of `trainer-28nm`).
pub const LAYER: Layer = Layer { c: 128, k: 128, hw: 20, k_tile: 16 };

/// Figures of one benchmark run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
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
                    if self.next() & 1 == 0 { m as f32 } else { -m as f32 }
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

/// Builds the benchmark program (data filled in by [`run`]).
pub fn program(layer: &Layer, precision: Precision) -> Result<Program, InstrError> {
    let dt = if precision == Precision::Fp8 { DType::E4m3 } else { DType::F16 };
    let es = dt.bytes(1) as u32;
    let (c, k, hw, kt) = (u32::from(layer.c), u32::from(layer.k), u32::from(layer.hw), u32::from(layer.k_tile));
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
    let tag = |layer: u16, phase: Phase| Instr::build(Opcode::Tag).with("layer", layer).with("phase", phase).finish();
    let wbuf = |t: u32| op(Space::Wbuf, dt, (t % 2) * w_tile);
    let obuf = |t: u32| op(Space::Obuf, dt, (t % 2) * o_tile);
    let mut code = vec![
        Instr::build(Opcode::CfgPrec).with("prec", precision).finish()?,
        tag(0, Phase::Other)?,
        Instr::build(Opcode::ArSet).with("reg", AddrReg::Ar1).with("value", 0u32).finish()?,
        load(x_at, in_bytes, op(Space::Ibuf, dt, 0))?,
        load(w_at, w_tile, wbuf(0))?,
        tok(Opcode::TokSignal, QueueName::Load, 0)?,
    ];
    for t in 0..tiles {
        if t + 1 < tiles {
            if t >= 1 {
                // The buffer about to be overwritten was read by the conv of tile t - 1.
                code.push(tok(Opcode::TokWait, QueueName::Load, 2)?);
            }
            code.push(load(w_at + (t + 1) * w_tile, w_tile, wbuf(t + 1))?);
            code.push(tok(Opcode::TokSignal, QueueName::Load, 0)?);
        }
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
    }
    code.push(Instr::build(Opcode::Halt).finish()?);
    let tensor = |name: &str, role, shape: Vec<u32>, addr| TensorEntry { name: name.into(), role, dtype: dt, shape, addr };
    Ok(Program {
        dram_size: dram,
        code,
        data: Vec::<Segment>::new(),
        tensors: vec![
            tensor("x", Role::Input, vec![1, c, hw, hw], x_at),
            tensor("w", Role::Param, vec![k, c, 3, 3], w_at),
            tensor("y", Role::Output, vec![1, k, hw, hw], y_at),
        ],
        meta: vec![("layer.1".into(), "peak_conv".into()), ("layer.0".into(), "dma".into())],
    })
}

/// Runs the benchmark at activation density `act` and weight density `wt` (1.0 = dense).
pub fn run(cost: &CostModel, precision: Precision, act: f64, wt: f64) -> Result<PeakFigures, SimError> {
    let layer = LAYER;
    let prog = program(&layer, precision).map_err(|e| SimError::Tensor { name: "peak program".into(), why: e.to_string() })?;
    let mut sim = Simulator::new(prog, cost.clone())?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (c, k, hw) = (usize::from(layer.c), usize::from(layer.k), usize::from(layer.hw));
    sim.write_tensor("x", &rng.sparse(c * hw * hw, act))?;
    sim.write_tensor("w", &rng.sparse(k * c * 9, wt))?;
    let stats = sim.run()?;
    let conv = stats.ledger.tags.get(&TagKey::new(1, Phase::Ff)).copied().unwrap_or_default();
    let cycles = conv.compute_cycles.max(1);
    let energy_pj: f64 = conv
        .events
        .iter()
        .filter(|&(e, _)| e.on_chip() && e != Event::LeakCycle)
        .map(|(e, n)| n as f64 * cost.energy_pj[e as usize])
        .sum::<f64>()
        + cycles as f64 * cost.energy_pj[Event::LeakCycle as usize];
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
    })
}
