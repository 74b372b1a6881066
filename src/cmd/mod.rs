//! One module per subcommand.
pub mod compile;
pub mod asm;
pub mod disasm;
pub mod mlir_verify;
pub mod bench;
pub mod run;
pub mod run_train;
pub mod arrays;
pub mod batches;
pub mod schedule;
