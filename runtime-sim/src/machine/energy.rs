//! The energy table: energy per event for every (component, action) pair, in the style of
//! Accelergy's ERT.
//!
//! Amounts follow `spec/isa.md` §4: MAC events per MAC, SRAM per **byte** moved (the table stores
//! pJ/bit, the lookup multiplies by 8), DRAM per **bit**, register file per access, DMA per row,
//! the other units per operation, leakage per cycle (derived from mW and the clock by
//! [`super::Machine::pj`]).

use serde::Deserialize;

/// MAC arithmetic mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MacMode {
    /// fp32 operands.
    Fp32,
    /// fp16 operands.
    Fp16,
    /// fp8 operands.
    Fp8,
}

/// What happened to a MAC slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MacKind {
    /// Performed with both operands non-zero (random data toggling).
    Random,
    /// Performed with a zero operand and clock-gated.
    Gated,
    /// Not performed (zero-skipped): only the index/skip logic spends energy.
    Skipped,
}

/// A hardware component that spends energy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    /// The PE array's MAC units.
    Mac,
    /// Input buffer.
    Ibuf,
    /// Weight buffer.
    Wbuf,
    /// Output buffer.
    Obuf,
    /// Global buffer.
    Gbuf,
    /// PE register files.
    Rf,
    /// Off-chip DRAM.
    Dram,
    /// DMA engine.
    Dma,
    /// Speculation unit (IRSU).
    Spec,
    /// Decoupled BN unit.
    Bn,
    /// Vector unit.
    Vector,
    /// Mask / prune unit.
    Mask,
    /// Control (instruction issue).
    Ctrl,
    /// Static leakage of the whole chip.
    Leakage,
}

/// An action of a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// A MAC slot of a mode.
    Mac(MacMode, MacKind),
    /// A read (per byte for SRAM, per bit for DRAM, per access for the RF).
    Read,
    /// A write (units as for `Read`).
    Write,
    /// A DMA row.
    Row,
    /// Speculation S1 operation (a forward-mask bit checked).
    S1,
    /// Speculation S2 operation (a magnitude-margin compare).
    S2,
    /// Speculation S3 operation (a low-precision predictor MAC).
    S3,
    /// A unit's element operation (BN, vector, mask).
    Op,
    /// An instruction issued.
    Issue,
    /// A clock cycle (leakage).
    Cycle,
}

impl Component {
    /// Every component, in report order.
    pub const ALL: [Component; 14] = [
        Component::Mac,
        Component::Ibuf,
        Component::Wbuf,
        Component::Obuf,
        Component::Gbuf,
        Component::Rf,
        Component::Dram,
        Component::Dma,
        Component::Spec,
        Component::Bn,
        Component::Vector,
        Component::Mask,
        Component::Ctrl,
        Component::Leakage,
    ];

    /// The component's name in `spec/isa.md` §4 (`mac`, `sram.ibuf`, ..., `leak`).
    pub fn name(self) -> &'static str {
        match self {
            Component::Mac => "mac",
            Component::Ibuf => "sram.ibuf",
            Component::Wbuf => "sram.wbuf",
            Component::Obuf => "sram.obuf",
            Component::Gbuf => "sram.gbuf",
            Component::Rf => "rf",
            Component::Dram => "dram",
            Component::Dma => "dma",
            Component::Spec => "spec",
            Component::Bn => "bn",
            Component::Vector => "vec",
            Component::Mask => "mask",
            Component::Ctrl => "ctrl",
            Component::Leakage => "leak",
        }
    }

    /// Parses a component name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl Action {
    /// The action's name in `spec/isa.md` §4 (`fp16.random`, `read`, `s1`, `op`, ...).
    pub fn name(self) -> String {
        match self {
            Action::Mac(mode, kind) => {
                let m = match mode {
                    MacMode::Fp32 => "fp32",
                    MacMode::Fp16 => "fp16",
                    MacMode::Fp8 => "fp8",
                };
                let k = match kind {
                    MacKind::Random => "random",
                    MacKind::Gated => "gated",
                    MacKind::Skipped => "skipped",
                };
                format!("{m}.{k}")
            }
            Action::Read => "read".into(),
            Action::Write => "write".into(),
            Action::Row => "row".into(),
            Action::S1 => "s1".into(),
            Action::S2 => "s2".into(),
            Action::S3 => "s3".into(),
            Action::Op => "op".into(),
            Action::Issue => "issue".into(),
            Action::Cycle => "cycle".into(),
        }
    }

    /// Parses an action name.
    pub fn from_name(name: &str) -> Option<Self> {
        let simple = [
            Action::Read,
            Action::Write,
            Action::Row,
            Action::S1,
            Action::S2,
            Action::S3,
            Action::Op,
            Action::Issue,
            Action::Cycle,
        ];
        let modes = [MacMode::Fp32, MacMode::Fp16, MacMode::Fp8];
        let kinds = [MacKind::Random, MacKind::Gated, MacKind::Skipped];
        simple
            .into_iter()
            .chain(
                modes
                    .into_iter()
                    .flat_map(|m| kinds.into_iter().map(move |k| Action::Mac(m, k))),
            )
            .find(|a| a.name() == name)
    }
}

/// Energy of one MAC slot of a mode, pJ.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MacEnergy {
    /// Performed with both operands non-zero.
    pub random: f64,
    /// Performed with a zero operand, clock-gated.
    pub gated: f64,
    /// Zero-skipped (index logic only).
    pub skipped: f64,
}

/// MAC energies per mode.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MacEnergies {
    /// fp32 mode.
    pub fp32: MacEnergy,
    /// fp16 mode.
    pub fp16: MacEnergy,
    /// fp8 mode.
    pub fp8: MacEnergy,
}

/// Read/write energy of a memory, pJ per bit.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitEnergy {
    /// Read, pJ/bit.
    pub read_pj_per_bit: f64,
    /// Write, pJ/bit.
    pub write_pj_per_bit: f64,
}

/// SRAM energies per buffer.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SramEnergies {
    /// Input buffer.
    pub ibuf: BitEnergy,
    /// Weight buffer.
    pub wbuf: BitEnergy,
    /// Output buffer.
    pub obuf: BitEnergy,
    /// Global buffer.
    pub gbuf: BitEnergy,
}

/// Register-file energies, pJ per access.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RfEnergy {
    /// Read access.
    pub read_pj: f64,
    /// Write access.
    pub write_pj: f64,
}

/// Energies of the non-PE units, pJ per operation.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitEnergies {
    /// DMA engine, per row (descriptor and address generation).
    pub dma_row_pj: f64,
    /// Speculation S1 (forward-mask bit check).
    pub spec_s1_pj: f64,
    /// Speculation S2 (magnitude-margin compare).
    pub spec_s2_pj: f64,
    /// Speculation S3 (low-precision predictor MAC).
    pub spec_s3_pj: f64,
    /// BN-unit element operation.
    pub bn_op_pj: f64,
    /// Vector-unit element operation.
    pub vector_op_pj: f64,
    /// Mask-unit operation.
    pub mask_op_pj: f64,
    /// Instruction issue.
    pub ctrl_issue_pj: f64,
}

/// Leakage power per component, mW.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakageMw {
    /// PE array (MACs and register files).
    pub pe: f64,
    /// Input buffer.
    pub ibuf: f64,
    /// Weight buffer.
    pub wbuf: f64,
    /// Output buffer.
    pub obuf: f64,
    /// Global buffer.
    pub gbuf: f64,
    /// Speculation unit.
    pub spec: f64,
    /// BN unit.
    pub bn: f64,
    /// Vector unit.
    pub vector: f64,
    /// Mask unit.
    pub mask: f64,
    /// Control and DMA.
    pub ctrl: f64,
}

impl LeakageMw {
    /// Total leakage power, mW.
    pub fn total(&self) -> f64 {
        self.pe
            + self.ibuf
            + self.wbuf
            + self.obuf
            + self.gbuf
            + self.spec
            + self.bn
            + self.vector
            + self.mask
            + self.ctrl
    }

    /// `(key, mW)` for every component, for validation and reports.
    pub fn entries(&self) -> [(&'static str, f64); 10] {
        [
            ("pe", self.pe),
            ("ibuf", self.ibuf),
            ("wbuf", self.wbuf),
            ("obuf", self.obuf),
            ("gbuf", self.gbuf),
            ("spec", self.spec),
            ("bn", self.bn),
            ("vector", self.vector),
            ("mask", self.mask),
            ("ctrl", self.ctrl),
        ]
    }
}

/// The energy table of a machine.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergyTable {
    /// MAC energies.
    pub mac: MacEnergies,
    /// SRAM buffer energies.
    pub sram: SramEnergies,
    /// PE register files.
    pub rf: RfEnergy,
    /// Off-chip DRAM.
    pub dram: BitEnergy,
    /// Other units.
    pub units: UnitEnergies,
    /// Leakage power.
    pub leakage_mw: LeakageMw,
}

impl EnergyTable {
    /// Energy of one event of `(component, action)` in pJ, in the amounts of `spec/isa.md` §4;
    /// `None` for a pair that is not an event or for leakage (which needs the clock: see
    /// [`super::Machine::pj`]).
    pub fn pj(&self, component: Component, action: Action) -> Option<f64> {
        let sram = |e: &BitEnergy| match action {
            Action::Read => Some(8.0 * e.read_pj_per_bit),
            Action::Write => Some(8.0 * e.write_pj_per_bit),
            _ => None,
        };
        let u = &self.units;
        match (component, action) {
            (Component::Mac, Action::Mac(mode, kind)) => {
                let m = match mode {
                    MacMode::Fp32 => &self.mac.fp32,
                    MacMode::Fp16 => &self.mac.fp16,
                    MacMode::Fp8 => &self.mac.fp8,
                };
                Some(match kind {
                    MacKind::Random => m.random,
                    MacKind::Gated => m.gated,
                    MacKind::Skipped => m.skipped,
                })
            }
            (Component::Ibuf, _) => sram(&self.sram.ibuf),
            (Component::Wbuf, _) => sram(&self.sram.wbuf),
            (Component::Obuf, _) => sram(&self.sram.obuf),
            (Component::Gbuf, _) => sram(&self.sram.gbuf),
            (Component::Rf, Action::Read) => Some(self.rf.read_pj),
            (Component::Rf, Action::Write) => Some(self.rf.write_pj),
            (Component::Dram, Action::Read) => Some(self.dram.read_pj_per_bit),
            (Component::Dram, Action::Write) => Some(self.dram.write_pj_per_bit),
            (Component::Dma, Action::Row) => Some(u.dma_row_pj),
            (Component::Spec, Action::S1) => Some(u.spec_s1_pj),
            (Component::Spec, Action::S2) => Some(u.spec_s2_pj),
            (Component::Spec, Action::S3) => Some(u.spec_s3_pj),
            (Component::Bn, Action::Op) => Some(u.bn_op_pj),
            (Component::Vector, Action::Op) => Some(u.vector_op_pj),
            (Component::Mask, Action::Op) => Some(u.mask_op_pj),
            (Component::Ctrl, Action::Issue) => Some(u.ctrl_issue_pj),
            _ => None,
        }
    }

    /// Every `(key, value)` of the table (dotted TOML keys under `energy.`), for validation.
    pub(crate) fn entries(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for (mode, m) in [
            ("fp32", &self.mac.fp32),
            ("fp16", &self.mac.fp16),
            ("fp8", &self.mac.fp8),
        ] {
            for (kind, v) in [("random", m.random), ("gated", m.gated), ("skipped", m.skipped)] {
                out.push((format!("energy.mac.{mode}.{kind}"), v));
            }
        }
        let s = &self.sram;
        for (buf, e) in [
            ("ibuf", &s.ibuf),
            ("wbuf", &s.wbuf),
            ("obuf", &s.obuf),
            ("gbuf", &s.gbuf),
        ] {
            out.push((format!("energy.sram.{buf}.read_pj_per_bit"), e.read_pj_per_bit));
            out.push((format!("energy.sram.{buf}.write_pj_per_bit"), e.write_pj_per_bit));
        }
        out.push(("energy.rf.read_pj".into(), self.rf.read_pj));
        out.push(("energy.rf.write_pj".into(), self.rf.write_pj));
        out.push(("energy.dram.read_pj_per_bit".into(), self.dram.read_pj_per_bit));
        out.push(("energy.dram.write_pj_per_bit".into(), self.dram.write_pj_per_bit));
        let u = &self.units;
        for (k, v) in [
            ("dma_row_pj", u.dma_row_pj),
            ("spec_s1_pj", u.spec_s1_pj),
            ("spec_s2_pj", u.spec_s2_pj),
            ("spec_s3_pj", u.spec_s3_pj),
            ("bn_op_pj", u.bn_op_pj),
            ("vector_op_pj", u.vector_op_pj),
            ("mask_op_pj", u.mask_op_pj),
            ("ctrl_issue_pj", u.ctrl_issue_pj),
        ] {
            out.push((format!("energy.units.{k}"), v));
        }
        for (k, v) in self.leakage_mw.entries() {
            out.push((format!("energy.leakage_mw.{k}"), v));
        }
        out
    }
}
