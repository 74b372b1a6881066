//! Instruction-level simulator of the Trainer accelerator with cycle and energy accounting.
//!
//! - [`kernels`]: functional semantics of the accelerator's compute on real data (fp32 accumulation,
//!   storage-precision rounding, exact effective-work counters).
//! - [`machine`]: the machine model (PE organisation, buffers, DRAM, feature switches, energy table)
//!   loaded from TOML.
//! - [`decode`]: a program decoded once into typed operations, statically validated.
//! - [`memory`] (DRAM image and on-chip buffers) and [`state`] (registers) are the machine state;
//!   [`exec`] holds one executor per instruction family.
//! - [`ledger`] (event counts), [`timing`] (queues and PE groups) and [`cost`] (energies and the
//!   dataflow model) observe execution; [`report`] renders the results.
//! - [`sim`]: the [`Simulator`] API; [`bench`](mod@bench): microbenchmarks.

pub mod bench;
pub mod cost;
pub mod decode;
pub mod error;
pub mod exec;
pub mod hazard;
pub mod kernels;
pub mod ledger;
pub mod machine;
pub mod memory;
pub mod report;
pub mod sim;
pub mod state;
pub mod timing;

pub use error::{Fault, FaultKind, SimError};
pub use sim::{RunStats, Simulator};
