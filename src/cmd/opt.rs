//! `trainer opt`: run a pass pipeline on textual IR, like `mlir-opt`.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::{Read, Write};
use std::path::PathBuf;
use trainer_compiler::pass::{timing_report, PassManager, PassRegistry};
use trainer_compiler::text::{parse_module, print_module, PrintOptions};

/// Run passes on an IR file (generic MLIR syntax or the custom form) and print the result.
///
/// The module is verified before the first pass and after every pass; verifier errors list
/// every violation with its op and location.
#[derive(Args)]
pub struct OptArgs {
    /// Input IR file (`-` reads standard input).
    pub input: PathBuf,
    /// Comma-separated passes, e.g. `canonicalize,shape-infer,cse,dce`
    /// (options: `pass{key=value ...}`; may be wrapped in `builtin.module(...)`).
    #[arg(long, default_value = "")]
    pub pass_pipeline: String,
    /// Print the IR after every pass (to standard error).
    #[arg(long)]
    pub print_ir_after_all: bool,
    /// Print per-pass timing (to standard error).
    #[arg(long)]
    pub time_passes: bool,
    /// Print MLIR generic syntax instead of the custom form.
    #[arg(long)]
    pub mlir_print_op_generic: bool,
    /// Print locations (`loc(...)`).
    #[arg(long)]
    pub mlir_print_debuginfo: bool,
    /// Accept ops of dialects other than tg/sdt/trn.
    #[arg(long)]
    pub allow_unregistered_dialect: bool,
    /// Skip the verifier.
    #[arg(long)]
    pub no_verify: bool,
    /// Also check the result with real MLIR 22 (needs a build with the `mlir` feature).
    #[arg(long)]
    pub mlir_verify: bool,
    /// List the available passes and exit.
    #[arg(long)]
    pub list_passes: bool,
    /// Write the result here instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Runs `trainer opt`.
pub fn run(args: OptArgs) -> Result<()> {
    let mut registry = PassRegistry::standard();
    trainer_compiler::sdt::registry::register(&mut registry);
    if args.list_passes {
        for (name, summary) in registry.list() {
            println!("{name:14} {summary}");
        }
        return Ok(());
    }
    let (src, name) = if args.input.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read standard input")?;
        (s, "<stdin>".to_string())
    } else {
        let s = std::fs::read_to_string(&args.input)
            .with_context(|| format!("cannot read {}", args.input.display()))?;
        (s, args.input.display().to_string())
    };
    let mut module = parse_module(&src, &name)?;
    let opts = PrintOptions {
        generic: args.mlir_print_op_generic,
        debug_info: args.mlir_print_debuginfo,
    };
    let mut pm = PassManager::from_pipeline(&registry, &args.pass_pipeline)?;
    pm.verify_each = !args.no_verify;
    pm.verify_options.allow_unregistered = args.allow_unregistered_dialect;
    if args.print_ir_after_all {
        pm.after_each(Box::new(move |pass, m| {
            eprintln!(
                "// -----// IR Dump After {pass} //----- //\n{}",
                print_module(m, opts)
            );
        }));
    }
    pm.run(&mut module)?;
    if args.time_passes {
        eprint!("{}", timing_report(pm.timings()));
    }
    super::mlir_verify::check(&module, args.mlir_verify)?;
    let text = print_module(&module, opts);
    match &args.output {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display())),
        None => {
            let mut out = std::io::stdout().lock();
            if out.write_all(text.as_bytes()).is_err() {
                bail!("cannot write to standard output");
            }
            Ok(())
        }
    }
}
