//! One module per subcommand.
pub mod arrays;
pub mod asm;
pub mod batches;
pub mod bench;
pub mod bench_paper;
pub mod bench_run;
pub mod bench_speed;
pub mod bench_svg;
pub mod build;
pub mod compile;
pub mod disasm;
pub mod mlir_verify;
pub mod opt;
pub mod run;
pub mod run_train;
pub mod schedule;
pub mod train_opts;
