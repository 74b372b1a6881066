//! The machine model: PE organisation, clock, on-chip buffers, DRAM, feature switches and the
//! energy table, loaded from TOML (`spec/machine.md`).
//!
//! Built-ins (`trainer-28nm`, `baseline-sdt`) are embedded TOML files; [`Machine::resolve`] takes a
//! built-in name or a file path (`--machine NAME|FILE`). Unknown keys are rejected (serde
//! `deny_unknown_fields`) and every value is validated, with the offending key named.

pub mod energy;
mod validate;

pub use energy::{Action, Component, EnergyTable, MacKind, MacMode};
use serde::Deserialize;
use std::path::Path;

/// Built-in machines: (name, TOML text).
const BUILTINS: [(&str, &str); 2] = [
    ("trainer-28nm", include_str!("../../machines/trainer-28nm.toml")),
    ("baseline-sdt", include_str!("../../machines/baseline-sdt.toml")),
];

/// Errors of loading a machine model.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// The TOML text does not parse or does not match the schema (unknown key, wrong type).
    #[error("{origin}: {message}")]
    Parse {
        /// File path or built-in name.
        origin: String,
        /// The TOML parser's message (names the key, line and column).
        message: String,
    },
    /// A value is out of range.
    #[error("{origin}: invalid value for `{key}`: {why}")]
    Invalid {
        /// File path or built-in name.
        origin: String,
        /// Dotted key.
        key: String,
        /// Why it is rejected.
        why: String,
    },
    /// The file cannot be read.
    #[error("cannot read machine file {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Neither a built-in name nor an existing file.
    #[error("unknown machine `{0}`: not a built-in ({builtins}) and no such file", builtins = Machine::builtin_names().join(", "))]
    Unknown(String),
}

/// PE array organisation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeConfig {
    /// Number of PE groups.
    pub groups: u32,
    /// MAC lanes per group = fp16 MACs per cycle per group.
    pub lanes_per_group: u32,
    /// fp8 MACs per cycle per fp16 lane.
    pub fp8_multiplier: u32,
    /// fp16 lanes per fp32 MAC per cycle (fp32 throughput = fp16 / divisor).
    pub fp32_divisor: u32,
    /// PE register-file capacity per lane, bytes (dataflow model).
    pub rf_bytes_per_lane: u32,
}

/// Throughputs of the non-PE units, operations per cycle.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitConfig {
    /// Vector-unit element operations per cycle.
    pub vector_per_cycle: u32,
    /// BN-unit element operations per cycle.
    pub bn_per_cycle: u32,
    /// Mask-unit operations per cycle.
    pub mask_per_cycle: u32,
    /// Speculation-unit operations per cycle.
    pub spec_per_cycle: u32,
    /// Fixed start-up cycles of every compute instruction (pipeline fill).
    pub compute_startup_cycles: u32,
}

/// One on-chip SRAM buffer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// Capacity, bytes.
    pub size_bytes: u64,
    /// Number of banks.
    pub banks: u32,
    /// Access width per bank, bits.
    pub width_bits: u32,
}

/// The four on-chip buffers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Buffers {
    /// Input (activation) buffer.
    pub ibuf: BufferConfig,
    /// Weight buffer.
    pub wbuf: BufferConfig,
    /// Output / partial-sum buffer.
    pub obuf: BufferConfig,
    /// Global buffer (gradients, BN statistics, masks, staging).
    pub gbuf: BufferConfig,
}

impl Buffers {
    /// `(name, buffer)` in the order ibuf, wbuf, obuf, gbuf.
    pub fn iter(&self) -> [(&'static str, &BufferConfig); 4] {
        [
            ("ibuf", &self.ibuf),
            ("wbuf", &self.wbuf),
            ("obuf", &self.obuf),
            ("gbuf", &self.gbuf),
        ]
    }
}

/// Off-chip DRAM.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DramConfig {
    /// Bandwidth, GB/s (10⁹ bytes per second).
    pub bandwidth_gb_per_s: f64,
    /// Access latency, cycles.
    pub latency_cycles: u32,
}

/// Architectural features that `baseline-sdt` switches off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Features {
    /// Implicit-redundancy speculation unit (S1/S2/S3).
    pub speculation: bool,
    /// Per-layer/phase dataflow choice, including run-time choice from density counters.
    pub adaptive_dataflow: bool,
    /// PE regrouping to balance uneven sparse work across PE groups.
    pub pe_regrouping: bool,
    /// Decoupled BN unit (statistics fused into producers, normalisation into consumers).
    pub decoupled_bn: bool,
}

/// A machine model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    /// Name (for reports).
    pub name: String,
    /// One-line description.
    #[serde(default)]
    pub description: String,
    /// Clock frequency, MHz.
    pub clock_mhz: f64,
    /// PE array.
    pub pe: PeConfig,
    /// Non-PE unit throughputs.
    pub units: UnitConfig,
    /// On-chip buffers.
    pub buffers: Buffers,
    /// DRAM.
    pub dram: DramConfig,
    /// Feature switches.
    pub features: Features,
    /// Energy table.
    pub energy: EnergyTable,
}

impl Machine {
    /// Names of the built-in machines.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTINS.iter().map(|(n, _)| *n).collect()
    }

    /// A built-in machine by name (`None` if there is no such built-in).
    pub fn builtin(name: &str) -> Option<Result<Machine, MachineError>> {
        BUILTINS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, text)| Machine::from_toml(text, n))
    }

    /// Parses and validates a machine from TOML text; `origin` names the source in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Machine, MachineError> {
        let machine: Machine = toml::from_str(text).map_err(|e| MachineError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        machine.validate().map_err(|(key, why)| MachineError::Invalid {
            origin: origin.to_string(),
            key,
            why,
        })?;
        Ok(machine)
    }

    /// Loads and validates a machine file.
    pub fn load(path: &Path) -> Result<Machine, MachineError> {
        let text = std::fs::read_to_string(path).map_err(|source| MachineError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Machine::from_toml(&text, &path.display().to_string())
    }

    /// A built-in name or a TOML file path (`--machine NAME|FILE`); built-in names win.
    pub fn resolve(name_or_path: &str) -> Result<Machine, MachineError> {
        if let Some(m) = Machine::builtin(name_or_path) {
            return m;
        }
        let path = Path::new(name_or_path);
        if path.is_file() {
            Machine::load(path)
        } else {
            Err(MachineError::Unknown(name_or_path.to_string()))
        }
    }

    /// Total fp16 MAC lanes.
    pub fn lanes(&self) -> u64 {
        u64::from(self.pe.groups) * u64::from(self.pe.lanes_per_group)
    }

    /// Peak MACs per cycle in a mode (whole array).
    pub fn macs_per_cycle(&self, mode: MacMode) -> f64 {
        let lanes = self.lanes() as f64;
        match mode {
            MacMode::Fp16 => lanes,
            MacMode::Fp8 => lanes * f64::from(self.pe.fp8_multiplier),
            MacMode::Fp32 => lanes / f64::from(self.pe.fp32_divisor),
        }
    }

    /// Clock frequency, Hz.
    pub fn clock_hz(&self) -> f64 {
        self.clock_mhz * 1e6
    }

    /// Dense peak throughput in a mode, FLOP/s (2 FLOPs per MAC).
    pub fn peak_flops(&self, mode: MacMode) -> f64 {
        2.0 * self.macs_per_cycle(mode) * self.clock_hz()
    }

    /// DRAM bandwidth in bits per cycle.
    pub fn dram_bits_per_cycle(&self) -> f64 {
        self.dram.bandwidth_gb_per_s * 8e9 / self.clock_hz()
    }

    /// Leakage energy per cycle of the whole chip, pJ (`mW / MHz · 1000`).
    pub fn leakage_pj_per_cycle(&self) -> f64 {
        self.energy.leakage_mw.total() * 1e3 / self.clock_mhz
    }

    /// Total on-chip SRAM, bytes.
    pub fn sram_bytes(&self) -> u64 {
        self.buffers.iter().iter().map(|(_, b)| b.size_bytes).sum()
    }

    /// Energy of one event in pJ (amounts of `spec/isa.md` §4), including `leak/cycle`; `None`
    /// if the pair is not an event.
    pub fn pj(&self, component: Component, action: Action) -> Option<f64> {
        match (component, action) {
            (Component::Leakage, Action::Cycle) => Some(self.leakage_pj_per_cycle()),
            _ => self.energy.pj(component, action),
        }
    }

    /// [`Machine::pj`] by event names (`"mac"`, `"fp16.random"`; `"sram.ibuf"`, `"read"`; ...).
    pub fn pj_by_name(&self, component: &str, action: &str) -> Option<f64> {
        self.pj(Component::from_name(component)?, Action::from_name(action)?)
    }
}

#[cfg(test)]
mod tests;
