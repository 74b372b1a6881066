//! The energy ledger: counts of accounting events per (component, action), per layer tag and phase.
//!
//! Executors describe what an instruction really did ([`Events`]); the ledger only adds those
//! counts up under the current tag. Energy is computed afterwards: Σ count × energy per event, plus
//! leakage power × run time (the `leak/cycle` event). Event names follow `spec/isa.md` §4.

use std::collections::BTreeMap;
use std::ops::{AddAssign, Index, IndexMut};
use trainer_isa::names::{Phase, Precision};
use trainer_isa::{NamedEnum, Space};

macro_rules! events {
    ($($var:ident = $comp:literal / $act:literal),+ $(,)?) => {
        /// An accounting event kind: one (component, action) pair of `spec/isa.md` §4.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[allow(missing_docs)]
        pub enum Event { $($var),+ }

        impl Event {
            /// Every event, in report order.
            pub const ALL: &'static [Event] = &[$(Event::$var),+];

            /// Component name (`mac`, `sram.ibuf`, `dram`, ...).
            pub fn component(self) -> &'static str {
                match self { $(Event::$var => $comp),+ }
            }

            /// Action name (`fp16.random`, `read`, ...).
            pub fn action(self) -> &'static str {
                match self { $(Event::$var => $act),+ }
            }
        }
    };
}

events! {
    MacFp32Random = "mac" / "fp32.random",
    MacFp32Gated = "mac" / "fp32.gated",
    MacFp32Skipped = "mac" / "fp32.skipped",
    MacFp16Random = "mac" / "fp16.random",
    MacFp16Gated = "mac" / "fp16.gated",
    MacFp16Skipped = "mac" / "fp16.skipped",
    MacFp8Random = "mac" / "fp8.random",
    MacFp8Gated = "mac" / "fp8.gated",
    MacFp8Skipped = "mac" / "fp8.skipped",
    IbufRead = "sram.ibuf" / "read",
    IbufWrite = "sram.ibuf" / "write",
    WbufRead = "sram.wbuf" / "read",
    WbufWrite = "sram.wbuf" / "write",
    ObufRead = "sram.obuf" / "read",
    ObufWrite = "sram.obuf" / "write",
    GbufRead = "sram.gbuf" / "read",
    GbufWrite = "sram.gbuf" / "write",
    DramRead = "dram" / "read",
    DramWrite = "dram" / "write",
    RfRead = "rf" / "read",
    RfWrite = "rf" / "write",
    DmaRow = "dma" / "row",
    SpecS1 = "spec" / "s1",
    SpecS2 = "spec" / "s2",
    SpecS3 = "spec" / "s3",
    BnOp = "bn" / "op",
    VecOp = "vec" / "op",
    MaskOp = "mask" / "op",
    CtrlIssue = "ctrl" / "issue",
    LeakCycle = "leak" / "cycle",
}

/// Number of event kinds.
pub const N_EVENTS: usize = Event::ALL.len();

impl Event {
    /// The three MAC events (random, gated, skipped) of a MAC mode.
    pub fn macs(prec: Precision) -> [Event; 3] {
        match prec {
            Precision::Fp32 => [Event::MacFp32Random, Event::MacFp32Gated, Event::MacFp32Skipped],
            Precision::Fp16 => [Event::MacFp16Random, Event::MacFp16Gated, Event::MacFp16Skipped],
            Precision::Fp8 => [Event::MacFp8Random, Event::MacFp8Gated, Event::MacFp8Skipped],
        }
    }

    /// The SRAM read event of an on-chip space, or DRAM read (amount in bits) for `dram`.
    pub fn read(space: Space) -> Option<Event> {
        match space {
            Space::Ibuf => Some(Event::IbufRead),
            Space::Wbuf => Some(Event::WbufRead),
            Space::Obuf => Some(Event::ObufRead),
            Space::Gbuf => Some(Event::GbufRead),
            Space::Dram => Some(Event::DramRead),
            Space::None => None,
        }
    }

    /// The SRAM write event of an on-chip space, or DRAM write for `dram`.
    pub fn write(space: Space) -> Option<Event> {
        match space {
            Space::Ibuf => Some(Event::IbufWrite),
            Space::Wbuf => Some(Event::WbufWrite),
            Space::Obuf => Some(Event::ObufWrite),
            Space::Gbuf => Some(Event::GbufWrite),
            Space::Dram => Some(Event::DramWrite),
            Space::None => None,
        }
    }

    /// `component/action`.
    pub fn name(self) -> String {
        format!("{}/{}", self.component(), self.action())
    }

    /// Whether the event is on-chip (everything but DRAM traffic).
    pub fn on_chip(self) -> bool {
        !matches!(self, Event::DramRead | Event::DramWrite)
    }

    /// The report component this event's energy is attributed to.
    pub fn report_component(self) -> &'static str {
        self.component()
    }
}

/// Event counts of one instruction or one tag (fixed array, indexed by [`Event`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Events(pub [u64; N_EVENTS]);

impl Default for Events {
    fn default() -> Self {
        Events([0; N_EVENTS])
    }
}

impl Index<Event> for Events {
    type Output = u64;
    fn index(&self, e: Event) -> &u64 {
        &self.0[e as usize]
    }
}

impl IndexMut<Event> for Events {
    fn index_mut(&mut self, e: Event) -> &mut u64 {
        &mut self.0[e as usize]
    }
}

impl AddAssign<&Events> for Events {
    fn add_assign(&mut self, o: &Events) {
        self.0.iter_mut().zip(&o.0).for_each(|(a, b)| *a += b);
    }
}

impl Events {
    /// Adds `amount` of event `e`.
    pub fn add(&mut self, e: Event, amount: u64) {
        self[e] += amount;
    }

    /// Non-zero events in report order.
    pub fn iter(&self) -> impl Iterator<Item = (Event, u64)> + '_ {
        Event::ALL.iter().map(|&e| (e, self[e])).filter(|&(_, n)| n > 0)
    }

    /// Energy in pJ given per-event energies (pJ per unit of each event's amount).
    pub fn energy_pj(&self, table: &[f64; N_EVENTS]) -> f64 {
        // Fixed summation order: bit-identical across runs.
        self.0.iter().zip(table).map(|(&n, &e)| n as f64 * e).sum()
    }
}

/// A report key: layer tag and phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TagKey {
    /// Layer id from `tag`.
    pub layer: u16,
    /// Phase code ([`Phase`]).
    pub phase: u8,
}

impl TagKey {
    /// Key of a tag.
    pub fn new(layer: u16, phase: Phase) -> Self {
        TagKey {
            layer,
            phase: phase.code(),
        }
    }

    /// The phase.
    pub fn phase(self) -> Phase {
        Phase::from_code(self.phase).expect("valid phase code")
    }
}

/// What was accumulated under one tag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TagEntry {
    /// Event counts.
    pub events: Events,
    /// Busy cycles of the compute queue attributed to this tag.
    pub compute_cycles: u64,
    /// Effective MACs (both operands non-zero, performed).
    pub effective_macs: u64,
    /// Dense-equivalent MACs.
    pub dense_macs: u64,
}

/// The ledger of one run: entries per tag in deterministic (sorted) order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Per-tag entries.
    pub tags: BTreeMap<TagKey, TagEntry>,
}

impl Ledger {
    /// The entry of `key`, created empty.
    pub fn entry(&mut self, key: TagKey) -> &mut TagEntry {
        self.tags.entry(key).or_default()
    }

    /// Total events over all tags.
    pub fn total(&self) -> Events {
        let mut t = Events::default();
        self.tags.values().for_each(|e| t += &e.events);
        t
    }
}
