//! The cost model the simulator runs with: timing parameters, per-event energies, the dataflow
//! model of buffer and register-file traffic, and machine features — derived from a
//! [`crate::machine::Machine`].
//!
//! ## Dataflow model (`spec/machine.md`, "Dataflow model")
//!
//! For a conv/matmul the *stationary* operand (`ws`: `b`, `is`: `a`, `os`: the output) is held in
//! the PE register files; it needs `passes = ⌈stationary bytes / (lanes · rf_bytes_per_lane)⌉`
//! array fills. The stationary operand is read from its buffer once, every streamed input operand
//! `passes` times; the output is written once, and with `passes > 1` (not `os`) partial sums are
//! read and written back `passes − 1` more times; `acc` reads the output once. An operand whose
//! zero values are skipped (`skip` `in` for `a`, `w` for `b`) is read compressed: a bitmap bit per
//! element plus its non-zero elements. Every performed, non-gated MAC reads one operand from and
//! writes one partial sum to a PE register file (`rf/read`, `rf/write`).

use crate::exec::{Activity, Features, OperandUse, PeOperands, Work};
use crate::ledger::{Event, Events, N_EVENTS};
use crate::timing::TimingParams;
use trainer_isa::names::Dataflow;

/// Everything the simulator needs from a machine model.
#[derive(Debug, Clone, PartialEq)]
pub struct CostModel {
    /// Machine name (for reports).
    pub name: String,
    /// Throughputs.
    pub timing: TimingParams,
    /// Energy per unit amount of each event, pJ (indexed by [`Event`]); `leak/cycle` is leakage
    /// energy per cycle.
    pub energy_pj: [f64; N_EVENTS],
    /// PE register-file capacity per MAC lane, bytes (dataflow model).
    pub rf_bytes_per_lane: u64,
    /// Features.
    pub features: Features,
    /// Buffer sizes in bytes: ibuf, wbuf, obuf, gbuf.
    pub buffers: [usize; 4],
}

fn read_bytes(u: &OperandUse, compressed: bool) -> u64 {
    if compressed {
        (u.elems + u.nonzero * u.elem_bits).div_ceil(8)
    } else {
        (u.elems * u.elem_bits).div_ceil(8)
    }
}

impl CostModel {
    /// Adds the dataflow model's buffer and register-file events of a conv/matmul.
    pub fn dataflow_events(&self, ops: &PeOperands, random_macs: u64, ev: &mut Events) {
        let a_bytes = read_bytes(&ops.a, ops.skip.a);
        let b_bytes = read_bytes(&ops.b, ops.skip.b);
        let out_bytes = read_bytes(&ops.out, false);
        let stationary = match ops.df {
            Dataflow::Is => a_bytes,
            Dataflow::Os => out_bytes,
            Dataflow::Ws | Dataflow::Adaptive => b_bytes,
        };
        let capacity = (self.timing.lanes() * self.rf_bytes_per_lane).max(1);
        let passes = stationary.div_ceil(capacity).max(1);
        let (a_reads, b_reads) = match ops.df {
            Dataflow::Is => (1, passes),
            Dataflow::Os => (passes, passes),
            Dataflow::Ws | Dataflow::Adaptive => (passes, 1),
        };
        let spill = if ops.df == Dataflow::Os { 0 } else { passes - 1 };
        let mut add = |e: Option<Event>, n: u64| {
            if let Some(e) = e {
                ev.add(e, n);
            }
        };
        add(Event::read(ops.a.space), a_bytes * a_reads);
        add(Event::read(ops.b.space), b_bytes * b_reads);
        add(Event::write(ops.out.space), out_bytes * (1 + spill));
        add(
            Event::read(ops.out.space),
            out_bytes * (spill + u64::from(ops.acc)),
        );
        ev.add(Event::RfRead, random_macs);
        ev.add(Event::RfWrite, random_macs);
    }

    /// Cycles an instruction occupies its queue (compute or DMA transfer excluded: see
    /// [`crate::timing::Timeline::dma`]).
    pub fn compute_cycles(&self, act: &Activity) -> u64 {
        let t = &self.timing;
        let e = &act.events;
        let rate = |n: u64, per: u64| n.div_ceil(per.max(1));
        let dram_bits = e[Event::DramRead] + e[Event::DramWrite];
        let streams = [
            rate(e[Event::VecOp], t.vec_per_cycle),
            rate(e[Event::BnOp], t.bn_per_cycle),
            rate(e[Event::MaskOp], t.mask_per_cycle),
            rate(
                e[Event::SpecS1] + e[Event::SpecS2] + e[Event::SpecS3],
                t.spec_per_cycle,
            ),
            (dram_bits as f64 / t.dram_bits_per_cycle).ceil() as u64,
        ];
        let pe = match &act.work {
            Work::Pe {
                per_unit, regroup, ..
            } => t.pe_cycles(per_unit, *regroup),
            _ => 0,
        };
        t.compute_startup + streams.into_iter().fold(pe, u64::max)
    }
}
