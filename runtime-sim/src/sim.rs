//! The simulator: loads a program once, runs it (repeatedly: one training step per run, DRAM kept
//! across runs), and returns what happened as [`RunStats`].
//!
//! The front-end executes control instructions at dispatch in program order (loops, registers,
//! tokens, tags); every other instruction goes to its executor ([`crate::exec`]), and the ledger and
//! the timeline then observe the executor's [`Activity`].

use crate::cost::CostModel;
use crate::decode::{decode, DecodedProgram, Op};
use crate::error::{Fault, FaultKind, SimError};
use crate::exec::{
    execute, wait, Activity, Background, ConvViews, Ctx, Features, Left, Retire, Settle, Work,
};
use crate::hazard::{self, overlap, Region};
use crate::ledger::{Event, Ledger, TagKey};
use crate::memory::{Buffers, Dram, Memory};
use crate::state::State;
use crate::timing::{queue_index, Timeline};
use std::collections::VecDeque;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use trainer_isa::names::CfgF32;
use trainer_isa::{DType, Program, Queue, TensorEntry};

/// Outcome of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Events per tag.
    pub ledger: Ledger,
    /// Cycles from start until every queue drained.
    pub cycles: u64,
    /// Instructions issued (loop bodies counted per iteration).
    pub instructions: u64,
    /// Busy cycles of the (dma-load, dma-store, compute) queues.
    pub busy: [u64; 3],
    /// S3 outputs predicted zero, and of those mis-speculated.
    pub s3: (u64, u64),
}

impl RunStats {
    /// Effective MACs over the run.
    pub fn effective_macs(&self) -> u64 {
        self.ledger.tags.values().map(|t| t.effective_macs).sum()
    }

    /// Dense-equivalent MACs over the run.
    pub fn dense_macs(&self) -> u64 {
        self.ledger.tags.values().map(|t| t.dense_macs).sum()
    }
}

/// Accumulates a later run (host loops run entries one after another): events and work per tag,
/// cycles, queue busy cycles, instructions and S3 counts add up.
impl std::ops::AddAssign<&RunStats> for RunStats {
    fn add_assign(&mut self, later: &RunStats) {
        for (key, e) in &later.ledger.tags {
            let t = self.ledger.entry(*key);
            t.events += &e.events;
            t.compute_cycles += e.compute_cycles;
            t.effective_macs += e.effective_macs;
            t.dense_macs += e.dense_macs;
        }
        self.cycles += later.cycles;
        self.instructions += later.instructions;
        self.busy.iter_mut().zip(later.busy).for_each(|(b, l)| *b += l);
        self.s3.0 += later.s3.0;
        self.s3.1 += later.s3.1;
    }
}

/// A loaded program with its machine and memory.
#[derive(Debug, Clone)]
pub struct Simulator {
    prog: DecodedProgram,
    cost: CostModel,
    mem: Memory,
    max_instructions: Option<u64>,
    background: usize,
    views: ConvViews,
}

impl Simulator {
    /// Decodes and validates `program` and initialises DRAM from its data segments.
    pub fn new(program: Program, cost: CostModel) -> Result<Self, SimError> {
        let prog = decode(program)?;
        let mut dram = Dram::new(prog.program.dram_size as usize);
        for seg in &prog.program.data {
            let at = seg.addr as usize;
            dram.bytes_mut()[at..at + seg.bytes.len()].copy_from_slice(&seg.bytes);
        }
        let mem = Memory::new(dram, Buffers::new(cost.buffers));
        Ok(Simulator {
            prog,
            cost,
            mem,
            max_instructions: None,
            background: BACKGROUND,
            views: ConvViews::default(),
        })
    }

    /// Reads a `.tbin` image and loads it.
    pub fn from_tbin(bytes: &[u8], cost: CostModel) -> Result<Self, SimError> {
        Self::new(trainer_isa::tbin::read(bytes)?, cost)
    }

    /// Limits the instructions one run may issue (runaway loops fault).
    pub fn set_max_instructions(&mut self, n: Option<u64>) {
        self.max_instructions = n;
    }

    /// Sets how many instructions may be pending at once (convs running their kernels in the
    /// background beside the instructions after them, stores waiting for them; default 8; 0:
    /// each retires as it issues). Results, events and cycles do not depend on it; only the
    /// simulator's speed does.
    pub fn set_background(&mut self, pending: usize) {
        self.background = pending;
    }

    /// The program.
    pub fn program(&self) -> &Program {
        &self.prog.program
    }

    /// The cost model.
    pub fn cost(&self) -> &CostModel {
        &self.cost
    }

    /// Memory (for inspection).
    pub fn memory(&self) -> &Memory {
        &self.mem
    }

    fn tensor(&self, name: &str) -> Result<(TensorEntry, usize), SimError> {
        let t = self
            .prog
            .program
            .tensor(name)
            .ok_or_else(|| SimError::UnknownTensor(name.to_string()))?;
        let n = t.elements().ok_or_else(|| SimError::Tensor {
            name: name.into(),
            why: "size overflows".into(),
        })?;
        Ok((t.clone(), n as usize))
    }

    fn operand(t: &TensorEntry) -> trainer_isa::Operand {
        trainer_isa::Operand::new(trainer_isa::Space::Dram, t.dtype, t.addr)
    }

    /// Writes f32 values into a tensor of the tensor table (converted to its dtype).
    pub fn write_tensor(&mut self, name: &str, values: &[f32]) -> Result<(), SimError> {
        let (t, n) = self.tensor(name)?;
        if values.len() != n {
            return Err(SimError::Tensor {
                name: name.into(),
                why: format!("has {n} elements, got {}", values.len()),
            });
        }
        self.mem
            .write_f32("tensor", Self::operand(&t), values)
            .map_err(|e| SimError::Tensor {
                name: name.into(),
                why: e.to_string(),
            })
    }

    /// Writes integer values (labels) into an `i32`/`i64` tensor.
    pub fn write_tensor_ints(&mut self, name: &str, values: &[i64]) -> Result<(), SimError> {
        let (t, n) = self.tensor(name)?;
        let bad = |why: String| SimError::Tensor {
            name: name.into(),
            why,
        };
        if values.len() != n {
            return Err(bad(format!("has {n} elements, got {}", values.len())));
        }
        let bytes: Vec<u8> = match t.dtype {
            DType::I32 => values.iter().flat_map(|&v| (v as i32).to_le_bytes()).collect(),
            DType::I64 => values.iter().flat_map(|&v| v.to_le_bytes()).collect(),
            d => {
                return Err(bad(format!(
                    "is {}, not an integer tensor",
                    trainer_isa::NamedEnum::name(d)
                )))
            }
        };
        self.mem
            .bytes_mut(
                "tensor",
                trainer_isa::Space::Dram,
                t.addr.into(),
                bytes.len() as u64,
            )
            .map_err(|e| bad(e.to_string()))?
            .copy_from_slice(&bytes);
        Ok(())
    }

    /// Reads a tensor of the tensor table as f32.
    pub fn read_tensor(&self, name: &str) -> Result<Vec<f32>, SimError> {
        let (t, n) = self.tensor(name)?;
        self.mem
            .read_f32("tensor", Self::operand(&t), n)
            .map_err(|e| SimError::Tensor {
                name: name.into(),
                why: e.to_string(),
            })
    }

    /// Runs the program once from pc 0 with reset registers and cleared buffers; DRAM persists.
    pub fn run(&mut self) -> Result<RunStats, Fault> {
        self.run_at(0, State::default())
    }

    /// Runs the code entry `name` (its start is metadata `entry.<name>`, `spec/tbin.md`) with reset
    /// registers except the f32 configuration registers in `preset` (e.g. `sparsity` before
    /// `entry.prune`); buffers are cleared, DRAM persists.
    pub fn run_entry(&mut self, name: &str, preset: &[(CfgF32, f32)]) -> Result<RunStats, SimError> {
        let pc = self
            .prog
            .program
            .meta
            .iter()
            .find(|(k, _)| k.strip_prefix("entry.") == Some(name))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .filter(|&pc| pc < self.prog.ops.len() && self.loop_depth(pc) == 0)
            .ok_or_else(|| SimError::UnknownEntry(name.to_string()))?;
        let mut state = State::default();
        for &(r, v) in preset {
            state.set_f(r, v);
        }
        Ok(self.run_at(pc, state)?)
    }

    /// Loop nesting depth at instruction `pc` (entries must start outside loops).
    fn loop_depth(&self, pc: usize) -> i64 {
        self.prog.ops[..pc]
            .iter()
            .map(|o| match o.op {
                Op::Loop { .. } => 1,
                Op::EndLoop { .. } => -1,
                _ => 0,
            })
            .sum()
    }

    fn run_at(&mut self, start: usize, state: State) -> Result<RunStats, Fault> {
        // The executors fork work with rayon once or more per instruction: from a thread outside
        // the pool every fork is a hand-off to a worker and a blocking wait, so the whole run
        // goes onto a worker thread, where a fork nobody steals runs in place. Deferred
        // accounting jobs are spawned into the same scope.
        rayon::scope(|scope| self.run_on_worker(scope, start, state))
    }

    fn run_on_worker<'s>(
        &mut self,
        scope: &rayon::Scope<'s>,
        start: usize,
        mut state: State,
    ) -> Result<RunStats, Fault> {
        self.mem.clear_buffers();
        let mut books = Books::new();
        let mut inflight = InFlight::new(self.background);
        // The parts of the simulator executors work on (a macro: the loop keeps borrowing the
        // program beside them).
        macro_rules! machine {
            () => {
                Machine {
                    mem: &mut self.mem,
                    views: &mut self.views,
                    features: self.cost.features,
                    state: &mut state,
                    scope,
                }
            };
        }
        let mut loops: Vec<u32> = Vec::new();
        let mut pc = start;
        let ops = &self.prog.ops;
        while pc < ops.len() {
            let d = &ops[pc];
            let fault = |kind| Fault {
                pc,
                mnemonic: d.mnemonic,
                kind,
            };
            books.stats.instructions += 1;
            if self
                .max_instructions
                .is_some_and(|m| books.stats.instructions > m)
            {
                return Err(fault(FaultKind::InstructionLimit(books.stats.instructions - 1)));
            }
            let mut issued = Issued {
                pc,
                key: TagKey::new(state.tag.0, state.tag.1),
                timing: Timing::None,
                act: Activity::default(),
                pending: None,
            };
            let mut next = pc + 1;
            match &d.op {
                Op::Halt => {
                    issued.timing = Timing::Halt;
                    inflight.retire(Retiring::All, &mut machine!())?;
                    books.issue(self, issued)?;
                    break;
                }
                Op::Nop => {}
                Op::Barrier => issued.timing = Timing::Barrier,
                Op::TokSignal { q, tok } => {
                    let t = &mut state.tokens[*tok as usize];
                    *t = t.saturating_add(1);
                    issued.timing = Timing::Signal(queue_index(*q), *tok);
                }
                Op::TokWait { q, tok } => {
                    let t = &mut state.tokens[*tok as usize];
                    if *t == 0 {
                        return Err(fault(FaultKind::Deadlock(*tok)));
                    }
                    *t -= 1;
                    issued.timing = Timing::Wait(queue_index(*q), *tok);
                }
                Op::Loop { count, end } => {
                    if *count == 0 {
                        next = end + 1;
                    } else {
                        loops.push(*count);
                    }
                }
                Op::EndLoop { start } => {
                    let left = loops.last_mut().expect("loops are validated");
                    *left -= 1;
                    if *left > 0 {
                        next = start + 1;
                    } else {
                        loops.pop();
                    }
                }
                Op::ArSet { reg, value } => state.set_ar(*reg, *value),
                Op::ArAdd { reg, value } => state.set_ar(*reg, state.ar(*reg).wrapping_add(*value)),
                Op::CfgSet { reg, value } => state.set_f(*reg, *value),
                Op::CfgSeti { reg, value } => state.set_i(*reg, *value),
                Op::CfgPrec(p) => state.prec = *p,
                Op::Tag { layer, phase } => state.tag = (*layer, *phase),
                Op::DcClear(c) => state.clear_dc(*c),
                op => {
                    // Pending instructions this one would touch retire first.
                    let retiring = match hazard::issue_footprint(op, &state) {
                        Some(regions) => Retiring::Touching(regions),
                        None => Retiring::All,
                    };
                    let mut machine = machine!();
                    inflight.retire(retiring, &mut machine)?;
                    let mut ctx = machine.ctx();
                    execute(op, &mut ctx).map_err(fault)?;
                    issued.timing = Timing::Observe;
                    issued.act = ctx.act;
                    issued.pending = match (ctx.background, ctx.deferred) {
                        (Some(job), _) => {
                            let seq = books.stats.instructions;
                            let settled = inflight.launch((pc, d.mnemonic), seq, job, scope);
                            inflight.retire(Retiring::Excess, &mut machine)?;
                            Some(settled)
                        }
                        (None, Some(job)) => Some(spawn(scope, move || job.run())),
                        (None, None) => None,
                    };
                }
            }
            // The books wait for the oldest instructions' accounting: a pending one among them
            // must have retired.
            let horizon = books.stats.instructions.saturating_sub(IN_FLIGHT as u64 - 2);
            inflight.retire(Retiring::Before(horizon), &mut machine!())?;
            books.issue(self, issued)?;
            pc = next;
        }
        inflight.retire(Retiring::All, &mut machine!())?;
        books.drain(self)?;
        let mut stats = books.stats;
        stats.cycles = books.timeline.end();
        stats.busy = books.timeline.busy();
        Ok(stats)
    }

    /// Accounting observes an executed instruction: dataflow events and its place on the timeline.
    fn observe(&self, act: &mut Activity, timeline: &mut Timeline, pc: usize) {
        if let Work::Pe { operands, .. } = &act.work {
            let random = act.effective_macs;
            self.cost.dataflow_events(operands, random, &mut act.events);
        }
        let queue = self.prog.program.code[pc].def().queue;
        match (&act.work, queue) {
            (Work::Dma { bits, .. }, Queue::Load) => {
                timeline.dma(0, *bits, &self.cost.timing);
            }
            (Work::Dma { bits, .. }, _) => {
                timeline.dma(1, *bits, &self.cost.timing);
            }
            _ => {
                timeline.run(2, self.cost.compute_cycles(act));
            }
        }
    }
}

/// Instructions deferred accounting may keep in flight before the oldest must be settled. Also
/// how far behind the run loop a background conv may retire: with a horizon of a few dozen
/// instructions (a conv tile comes with about a dozen DMA, token and counter instructions) at most
/// two or three convs were ever pending and their censuses could not wait for an idle thread;
/// 1024 leaves [`BACKGROUND`] as the limit (measured: the step takes about 0.85× as long as with 32).
const IN_FLIGHT: usize = 1024;

/// How often the books look for settled instructions: every this many issued (one look per
/// instruction polled a pending census's channel up to 190 thousand times per ResNet-18 step,
/// 0.9% of the step's CPU samples). Accounting is in program order whenever it happens.
const POLL_EVERY: usize = 16;

/// Instructions that may be pending at once (convs whose kernels run in the background, stores
/// waiting for them), by default.
const BACKGROUND: usize = 8;

/// Runs `job` in `scope`; its result arrives on the returned channel.
fn spawn<'s, T: Send + 's>(scope: &rayon::Scope<'s>, job: impl FnOnce() -> T + Send + 's) -> Receiver<T> {
    let (tx, rx) = sync_channel(1);
    scope.spawn(move |_| {
        // The receiver is gone only if the run already failed.
        let _ = tx.send(job());
    });
    rx
}

/// The parts of the simulator an instruction executes on.
struct Machine<'m, 's> {
    mem: &'m mut Memory,
    views: &'m mut ConvViews,
    features: Features,
    state: &'m mut State,
    scope: &'m rayon::Scope<'s>,
}

impl Machine<'_, '_> {
    /// A fresh execution context.
    fn ctx(&mut self) -> Ctx<'_> {
        Ctx {
            mem: self.mem,
            state: self.state,
            features: self.features,
            views: self.views,
            act: Activity::default(),
            deferred: None,
            background: None,
        }
    }
}

/// A pending instruction: its kernel runs in the background, or it waits, until it retires.
struct Pending {
    pc: usize,
    mnemonic: &'static str,
    /// Its place in the run (instructions issued up to and including it).
    seq: u64,
    /// Its kernel's result (at once if it has none).
    kernel: Receiver<Retire>,
    /// What later instructions may not touch before it retires.
    touches: Vec<Region>,
    /// Where its accounting goes (its entry in the books waits for it).
    settled: SyncSender<Settle>,
}

/// Which pending instructions to retire.
enum Retiring {
    /// Every one.
    All,
    /// Up to the last one that touches these regions.
    Touching(Vec<Region>),
    /// Those issued before instruction `n` of the run.
    Before(u64),
    /// The oldest ones beyond the limit.
    Excess,
}

/// The pending instructions, in program order (they retire in that order).
struct InFlight {
    queue: VecDeque<Pending>,
    /// At most this many stay pending after a launch.
    limit: usize,
}

impl InFlight {
    fn new(limit: usize) -> Self {
        InFlight {
            queue: VecDeque::new(),
            limit,
        }
    }

    /// Makes the instruction at `pc` pending, starting its kernel if it has one; returns where its
    /// accounting will arrive.
    fn launch<'s>(
        &mut self,
        (pc, mnemonic): (usize, &'static str),
        seq: u64,
        job: Background,
        scope: &rayon::Scope<'s>,
    ) -> Receiver<Settle> {
        let (settled, settle) = sync_channel(1);
        let kernel = match job.left {
            Left::Kernel(kernel) => spawn(scope, kernel),
            Left::Retire(retire) => {
                let (tx, rx) = sync_channel(1);
                tx.send(retire).expect("the receiver is here");
                rx
            }
        };
        self.queue.push_back(Pending {
            pc,
            mnemonic,
            seq,
            kernel,
            touches: job.touches,
            settled,
        });
        settle
    }

    /// Retires the pending instructions `which` selects, oldest first.
    fn retire(&mut self, which: Retiring, m: &mut Machine) -> Result<(), Fault> {
        let count = match which {
            Retiring::All => self.queue.len(),
            Retiring::Touching(regions) => self
                .queue
                .iter()
                .rposition(|p| overlap(&p.touches, &regions))
                .map_or(0, |i| i + 1),
            Retiring::Before(n) => self.queue.iter().take_while(|p| p.seq < n).count(),
            Retiring::Excess => self.queue.len().saturating_sub(self.limit),
        };
        for p in self.queue.drain(..count) {
            let retire = wait(&p.kernel);
            let mut ctx = m.ctx();
            retire.run(&mut ctx).map_err(|kind| Fault {
                pc: p.pc,
                mnemonic: p.mnemonic,
                kind,
            })?;
            let (later, deferred) = (ctx.act, ctx.deferred);
            let settle = move |census: Option<Settle>| {
                Settle(Box::new(move |act: &mut Activity| {
                    act.merge(later);
                    if let Some(census) = census {
                        census.apply(act);
                    }
                }))
            };
            // The receiver is gone only if the run already failed.
            let settled = p.settled;
            match deferred {
                Some(job) => m.scope.spawn(move |_| {
                    let _ = settled.send(settle(Some(job.run())));
                }),
                None => {
                    let _ = settled.send(settle(None));
                }
            }
        }
        Ok(())
    }
}

/// What an instruction does to the timeline when it is accounted.
enum Timing {
    /// Nothing (most control instructions).
    None,
    /// `halt`: only its issue is counted.
    Halt,
    /// `barrier`.
    Barrier,
    /// `tok.signal` in a queue.
    Signal(usize, u8),
    /// `tok.wait` in a queue.
    Wait(usize, u8),
    /// An executed instruction, observed from its activity.
    Observe,
}

/// An issued instruction waiting to be accounted.
struct Issued {
    pc: usize,
    key: TagKey,
    timing: Timing,
    act: Activity,
    /// The result of its deferred accounting job, if it has one.
    pending: Option<Receiver<Settle>>,
}

/// The books of a run: the ledger and the timeline, fed in program order from a short queue of
/// issued instructions (whose deferred accounting may still be running).
struct Books {
    stats: RunStats,
    timeline: Timeline,
    queue: VecDeque<Issued>,
}

impl Books {
    fn new() -> Self {
        Books {
            stats: RunStats::default(),
            timeline: Timeline::new(),
            queue: VecDeque::new(),
        }
    }

    /// Queues `issued`, then, every [`POLL_EVERY`] instructions, accounts every queued
    /// instruction that is ready (and always all of them up to [`IN_FLIGHT`] from the end).
    fn issue(&mut self, sim: &Simulator, issued: Issued) -> Result<(), Fault> {
        self.queue.push_back(issued);
        if self.queue.len() <= IN_FLIGHT && !self.queue.len().is_multiple_of(POLL_EVERY) {
            return Ok(());
        }
        while let Some(front) = self.queue.front_mut() {
            if !front.poll() && self.queue.len() <= IN_FLIGHT {
                break;
            }
            let front = self.queue.pop_front().expect("front exists");
            self.account(sim, front)?;
        }
        Ok(())
    }

    /// Accounts every queued instruction.
    fn drain(&mut self, sim: &Simulator) -> Result<(), Fault> {
        while let Some(front) = self.queue.pop_front() {
            self.account(sim, front)?;
        }
        Ok(())
    }

    /// Accounts one instruction: its timeline effect, its events and work in the ledger.
    fn account(&mut self, sim: &Simulator, mut i: Issued) -> Result<(), Fault> {
        let before = self.timeline.end();
        match i.timing {
            Timing::Halt => {
                self.stats.ledger.entry(i.key).events.add(Event::CtrlIssue, 1);
                return Ok(());
            }
            Timing::None => {}
            Timing::Barrier => self.timeline.barrier(),
            Timing::Signal(q, tok) => self.timeline.signal(q, tok),
            Timing::Wait(q, tok) => {
                if !self.timeline.wait(q, tok) {
                    return Err(Fault {
                        pc: i.pc,
                        mnemonic: sim.prog.ops[i.pc].mnemonic,
                        kind: FaultKind::Deadlock(tok),
                    });
                }
            }
            Timing::Observe => {
                if let Some(rx) = i.pending.take() {
                    wait(&rx).apply(&mut i.act);
                }
                sim.observe(&mut i.act, &mut self.timeline, i.pc);
            }
        }
        let act = i.act;
        let entry = self.stats.ledger.entry(i.key);
        entry.events += &act.events;
        entry.events.add(Event::CtrlIssue, 1);
        entry.effective_macs += act.effective_macs;
        entry.dense_macs += act.dense_macs;
        if matches!(act.work, Work::Pe { .. } | Work::Stream) {
            entry.compute_cycles += sim.cost.compute_cycles(&act);
        }
        entry.events.add(Event::LeakCycle, self.timeline.end() - before);
        if let Some((p, w)) = act.speculation {
            self.stats.s3.0 += p;
            self.stats.s3.1 += w;
        }
        Ok(())
    }
}

impl Issued {
    /// Whether the instruction is ready to account: applies its deferred job's result if it has
    /// arrived.
    fn poll(&mut self) -> bool {
        let Some(rx) = &self.pending else {
            return true;
        };
        match rx.try_recv() {
            Ok(settle) => {
                settle.apply(&mut self.act);
                self.pending = None;
                true
            }
            Err(TryRecvError::Empty) => false,
            // The job died (it panicked): `settle` reports it.
            Err(TryRecvError::Disconnected) => true,
        }
    }
}
