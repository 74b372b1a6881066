//! One module per subcommand.
pub mod compile;
pub mod build;
pub mod train_opts;
pub mod asm;
pub mod disasm;
pub mod mlir_verify;
pub mod bench;
pub mod bench_paper;
pub mod bench_run;
pub mod bench_speed;
pub mod bench_svg;
pub mod run;
pub mod run_train;
pub mod arrays;
pub mod batches;
pub mod schedule;
pub mod opt;
