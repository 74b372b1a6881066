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
//! read and written back `passes − 1` more times; `acc` reads the output once.
//!
//! The dataflow also decides which operand is *compressed*: the one it streams through the array
//! in (bitmap, non-zeros) form — `a` for `ws` and `os`, `b` for `is` ([`skip_in_effect`]). Zeros
//! of the compressed operand are skipped (no issue slot, no cycle) when the instruction's `skip`
//! flag allows it; zeros of the other operand sit in the register files or arrive densely, so
//! their MACs take an issue slot and are only clock-gated. The compressed operand is read as a
//! bitmap bit per element plus its non-zero elements; the other one densely. Every performed,
//! non-gated MAC reads one operand from and writes one partial sum to a PE register file
//! (`rf/read`, `rf/write`).

use crate::decode::Skip;
use crate::exec::{Activity, Features, OperandUse, PeOperands, Work};
use crate::ledger::{Event, Events, N_EVENTS};
use crate::machine::Machine;
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

/// The zero-skipping flags in effect under dataflow `df` (resolved, not `adaptive`): only the
/// operand the dataflow streams compressed (`ws`, `os`: `a`; `is`: `b`) can have its zeros
/// skipped, and only if the instruction's `skip` asks for it; output skipping is unaffected.
pub fn skip_in_effect(df: Dataflow, skip: Skip) -> Skip {
    let streams_a = df != Dataflow::Is;
    Skip {
        a: skip.a && streams_a,
        b: skip.b && !streams_a,
        out: skip.out,
    }
}

fn read_bytes(u: &OperandUse, compressed: bool) -> u64 {
    if compressed {
        (u.elems + u.nonzero * u.elem_bits).div_ceil(8)
    } else {
        (u.elems * u.elem_bits).div_ceil(8)
    }
}

impl CostModel {
    /// The cost model of a machine.
    pub fn from_machine(m: &Machine) -> CostModel {
        let mut energy_pj = [0.0; N_EVENTS];
        for &e in Event::ALL {
            energy_pj[e as usize] = m.pj_by_name(e.component(), e.action()).unwrap_or(0.0);
        }
        let u = &m.units;
        CostModel {
            name: m.name.clone(),
            timing: TimingParams {
                pe_groups: m.pe.groups as usize,
                lanes_per_group: m.pe.lanes_per_group as usize,
                fp8_multiplier: m.pe.fp8_multiplier.into(),
                fp32_divisor: m.pe.fp32_divisor.into(),
                clock_hz: m.clock_hz(),
                dram_bits_per_cycle: m.dram_bits_per_cycle(),
                dram_latency: m.dram.latency_cycles.into(),
                vec_per_cycle: u.vector_per_cycle.into(),
                bn_per_cycle: u.bn_per_cycle.into(),
                mask_per_cycle: u.mask_per_cycle.into(),
                spec_per_cycle: u.spec_per_cycle.into(),
                compute_startup: u.compute_startup_cycles.into(),
            },
            energy_pj,
            rf_bytes_per_lane: m.pe.rf_bytes_per_lane.into(),
            features: Features {
                speculation: m.features.speculation,
                adaptive_dataflow: m.features.adaptive_dataflow,
                regrouping: m.features.pe_regrouping,
            },
            buffers: [&m.buffers.ibuf, &m.buffers.wbuf, &m.buffers.obuf, &m.buffers.gbuf]
                .map(|b| b.size_bytes as usize),
        }
    }

    /// The cost model of a built-in machine or machine file (`--machine NAME|FILE`).
    pub fn resolve(name_or_path: &str) -> Result<CostModel, crate::machine::MachineError> {
        Machine::resolve(name_or_path).map(|m| CostModel::from_machine(&m))
    }

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
                per_unit,
                regroup,
                prec,
                ..
            } => t.pe_cycles(per_unit, *regroup, *prec),
            _ => 0,
        };
        t.compute_startup + streams.into_iter().fold(pe, u64::max)
    }
}
