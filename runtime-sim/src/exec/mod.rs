//! Executors: the functional semantics of each instruction family on real data.
//!
//! An executor reads its operands from [`Memory`], computes with [`crate::kernels`], writes its
//! results, and describes what it did in an [`Activity`]: event counts and the work the timing
//! model needs. It never computes energy or cycles itself; the ledger and the timeline observe the
//! activity afterwards.

mod bn;
mod census;
mod conv_census;
mod dma;
mod loss;
mod mask;
mod stream;
mod tensor;
mod vector;
mod views;

pub use census::UnitWork;
pub use views::{ConvViews, InputViews};

use crate::decode::Op;
use crate::error::FaultKind;
use crate::hazard::Region;
use crate::ledger::{Event, Events};
use crate::memory::Memory;
use crate::state::State;
use std::sync::mpsc::{Receiver, TryRecvError};
use trainer_isa::{Operand, Space};

/// Machine features that change semantics or accounting (from the machine model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// Speculation units present (S1/S2/S3); without them speculation operands act as `none`.
    pub speculation: bool,
    /// Adaptive dataflow supported; without it `adaptive` falls back to `ws`.
    pub adaptive_dataflow: bool,
    /// PE regrouping supported; without it the `regroup` register is ignored.
    pub regrouping: bool,
}

impl Default for Features {
    fn default() -> Self {
        Features {
            speculation: true,
            adaptive_dataflow: true,
            regrouping: true,
        }
    }
}

/// Work of one instruction as the timing model sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Work {
    /// Nothing (control).
    #[default]
    None,
    /// A DMA transfer.
    Dma {
        /// Bits moved over the DRAM interface.
        bits: u64,
        /// Rows transferred.
        rows: u64,
    },
    /// PE-array work: per output unit (channel), MACs performed (not skipped).
    Pe {
        /// Performed MACs per output unit, in unit order.
        per_unit: Vec<u64>,
        /// Whether PE regrouping is in effect for this instruction.
        regroup: bool,
        /// MAC mode.
        prec: trainer_isa::names::Precision,
        /// Operand footprints for the machine's dataflow model (buffer and register-file traffic).
        operands: PeOperands,
    },
    /// Streaming units only (vector, BN, mask, speculation): element operations.
    Stream,
}

/// How a conv/matmul used one operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperandUse {
    /// Memory space.
    pub space: Space,
    /// Elements.
    pub elems: u64,
    /// Non-zero elements (as used: after masks and BN on read).
    pub nonzero: u64,
    /// Bits per element.
    pub elem_bits: u64,
}

/// Operands of a conv/matmul as the dataflow model sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeOperands {
    /// Dataflow in effect (`adaptive` resolved).
    pub df: trainer_isa::names::Dataflow,
    /// Operand `a`.
    pub a: OperandUse,
    /// Operand `b`.
    pub b: OperandUse,
    /// Output.
    pub out: OperandUse,
    /// Whether the output was accumulated (read-modify-write).
    pub acc: bool,
    /// Zero-skipping flags in effect under `df` ([`crate::cost::skip_in_effect`]).
    pub skip: crate::decode::Skip,
}

/// What one instruction did: events and work, plus speculation outcomes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    /// Event counts.
    pub events: Events,
    /// Work for the timing model.
    pub work: Work,
    /// Effective MACs (both operands non-zero, performed).
    pub effective_macs: u64,
    /// Dense MAC count.
    pub dense_macs: u64,
    /// Speculation outcomes: (outputs predicted skippable, of which wrongly).
    pub speculation: Option<(u64, u64)>,
}

impl Activity {
    /// Adds what an instruction did later (when it retired) to what it did when it issued.
    pub fn merge(&mut self, later: Activity) {
        self.events += &later.events;
        if later.work != Work::None {
            self.work = later.work;
        }
        self.effective_macs += later.effective_macs;
        self.dense_macs += later.dense_macs;
        if later.speculation.is_some() {
            self.speculation = later.speculation;
        }
    }
}

/// The accounting of an instruction that its executor left to run later, off the path of the
/// instructions after it: a pure job (it owns what it reads) whose result completes the
/// instruction's [`Activity`]. The run loop accounts instructions in program order, so results do
/// not depend on when the job runs.
pub struct Deferred(pub(crate) Box<dyn FnOnce() -> Settle + Send>);

impl Deferred {
    /// Runs the job.
    pub fn run(self) -> Settle {
        (self.0)()
    }
}

/// The result of a [`Deferred`] job, to apply to the instruction's activity.
pub struct Settle(pub(crate) Box<dyn FnOnce(&mut Activity) + Send>);

impl Settle {
    /// Completes `act` with the job's result.
    pub fn apply(self, act: &mut Activity) {
        (self.0)(act)
    }
}

/// The second half of an instruction left to finish later ([`Background`]): it writes the
/// results and completes the activity, on the run loop's thread, when the instruction retires
/// (in program order). It must not read registers: they may have changed
/// since the instruction issued.
pub struct Retire(pub(crate) Box<RetireFn>);

/// The closure of a [`Retire`].
type RetireFn = dyn FnOnce(&mut Ctx) -> Result<(), FaultKind> + Send;

impl Retire {
    /// Retires the instruction into `ctx`.
    pub fn run(self, ctx: &mut Ctx) -> Result<(), FaultKind> {
        (self.0)(ctx)
    }
}

/// An instruction left to finish later: a conv whose kernel runs in the background (the conv read
/// all its operands when it issued: a pure job that owns what it reads and returns the conv's
/// [`Retire`]), or a store that waits to copy until it retires. What it touches is what the run
/// loop keeps later instructions off until it retires.
pub struct Background {
    /// The work left.
    pub(crate) left: Left,
    /// What the instruction reads or writes when it retires.
    pub(crate) touches: Vec<Region>,
}

/// What a [`Background`] instruction has left to do before it retires.
pub(crate) enum Left {
    /// A kernel to run (beside the instructions after it).
    Kernel(Box<dyn FnOnce() -> Retire + Send>),
    /// Nothing: only the retirement.
    Retire(Retire),
}

/// Waits for a background job's result. The waiting thread is a rayon worker: it runs pending
/// rayon work (perhaps the job itself) while there is any, and only then blocks.
pub fn wait<T>(rx: &Receiver<T>) -> T {
    loop {
        match rx.try_recv() {
            Ok(v) => return v,
            Err(TryRecvError::Empty) if rayon::yield_now() == Some(rayon::Yield::Executed) => {}
            Err(_) => return rx.recv().expect("a background job panicked"),
        }
    }
}

/// The execution context of one instruction.
pub struct Ctx<'a> {
    /// Memory.
    pub mem: &'a mut Memory,
    /// Registers.
    pub state: &'a mut State,
    /// Machine features.
    pub features: Features,
    /// Operand-derived conv data reused across instructions.
    pub views: &'a mut ConvViews,
    /// What the instruction did so far.
    pub act: Activity,
    /// Accounting the executor deferred (see [`Deferred`]).
    pub deferred: Option<Deferred>,
    /// What the executor left to finish later (see [`Background`]).
    pub background: Option<Background>,
}

impl Ctx<'_> {
    /// Adds an event.
    pub fn ev(&mut self, e: Event, n: u64) {
        self.act.events.add(e, n);
    }

    /// Charges a streaming read of `n` elements of `op` (bytes on-chip, bits in DRAM).
    pub fn charge_read(&mut self, op: Operand, n: usize) {
        if let Some(e) = Event::read(op.space) {
            let amount = traffic(op, n);
            self.ev(e, amount);
        }
    }

    /// Charges a streaming write of `n` elements of `op`.
    pub fn charge_write(&mut self, op: Operand, n: usize) {
        if let Some(e) = Event::write(op.space) {
            let amount = traffic(op, n);
            self.ev(e, amount);
        }
    }

    /// Reads `n` elements of `op` as f32 and charges the read.
    pub fn read(&mut self, field: &'static str, op: Operand, n: usize) -> Result<Vec<f32>, FaultKind> {
        let v = self.mem.read_f32(field, op, n)?;
        self.charge_read(op, n);
        Ok(v)
    }

    /// Reads an optional mask (`None` when the operand is absent) and charges the read.
    pub fn read_mask(
        &mut self,
        field: &'static str,
        op: Operand,
        n: usize,
    ) -> Result<Option<Vec<bool>>, FaultKind> {
        if op.is_none() {
            return Ok(None);
        }
        let m = self.mem.read_mask(field, op, n)?;
        self.charge_read(op, n);
        Ok(Some(m))
    }

    /// Writes `data` to `op` (converting to its dtype) and charges the write.
    pub fn write(&mut self, field: &'static str, op: Operand, data: &[f32]) -> Result<(), FaultKind> {
        self.mem.write_f32(field, op, data)?;
        self.charge_write(op, data.len());
        Ok(())
    }

    /// Writes a mask to `op` if present and charges the write.
    pub fn write_mask(&mut self, field: &'static str, op: Operand, mask: &[bool]) -> Result<(), FaultKind> {
        if op.is_none() {
            return Ok(());
        }
        self.mem.write_mask(field, op, mask)?;
        self.charge_write(op, mask.len());
        Ok(())
    }

    /// Checks, without reading, that `n` elements of `op` fit its space.
    pub fn check(&self, field: &'static str, op: Operand, n: usize) -> Result<(), FaultKind> {
        self.mem
            .range(field, op.space, op.addr.into(), op.dtype.bytes(n as u64))
            .map(|_| ())
    }
}

/// Amount charged for moving `n` elements of `op`: bytes on-chip, bits in DRAM.
pub fn traffic(op: Operand, n: usize) -> u64 {
    match op.space {
        Space::Dram => op.dtype.bits(n as u64),
        _ => op.dtype.bytes(n as u64),
    }
}

/// Executes one non-control operation. Control operations are the front-end's (see [`crate::sim`]).
pub fn execute(op: &Op, ctx: &mut Ctx) -> Result<(), FaultKind> {
    match op {
        Op::Dma(d) => dma::run(d, ctx),
        Op::Conv(c) => tensor::conv(c, ctx),
        Op::Matmul(m) => tensor::matmul(m, ctx),
        Op::PruneTopk { .. } | Op::MaskApply { .. } | Op::SpecS2 { .. } | Op::Density { .. } => {
            mask::run(op, ctx)
        }
        Op::BnStats { .. }
        | Op::BnFinalize { .. }
        | Op::BnApply { .. }
        | Op::BnBwdReduce { .. }
        | Op::BnBwd { .. } => bn::run(op, ctx),
        Op::SoftmaxCe { .. } | Op::Sgd { .. } => loss::run(op, ctx),
        _ => vector::run(op, ctx),
    }
}

/// A kernel error inside an executor: the arguments did not fit (reported as a bad shape).
pub(crate) fn kernel_fault(e: crate::kernels::KernelError) -> FaultKind {
    FaultKind::BadShape(e.to_string())
}
