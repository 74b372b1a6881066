//! Dialects: op registries, shape rules and verification.

pub mod tg_shapes;
