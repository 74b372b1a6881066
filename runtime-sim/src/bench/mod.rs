//! Microbenchmarks that run real programs on the simulator.

pub mod peak;
