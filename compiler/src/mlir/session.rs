//! [`Mlir`]: an MLIR context set up for our IR, and the conversions through it.

use super::MlirError;
use crate::ir::Module;
use crate::text::{parse_module, print_module, PrintOptions};
use melior::dialect::DialectRegistry;
use melior::ir::operation::{OperationLike, OperationPrintingFlags};
use melior::pass::PassManager;
use melior::utility::{parse_pass_pipeline, register_all_dialects, register_all_passes};
use melior::Context;
use std::cell::RefCell;
use std::rc::Rc;

/// Name under which imported MLIR text appears in our parser's error messages.
const IMPORT_FILE: &str = "<mlir>";

/// Shortens MLIR's location of a position in the parsed text, `loc("-":3:7)`, to `3:7`.
fn short_location(loc: melior::ir::Location<'_>) -> String {
    let loc = loc.to_string();
    match loc.strip_prefix("loc(\"-\":").and_then(|s| s.strip_suffix(')')) {
        Some(pos) => pos.to_string(),
        None => loc,
    }
}

/// An MLIR module living in an [`Mlir`] context.
pub type MlirModule<'c> = melior::ir::Module<'c>;

/// An MLIR context for our IR: every upstream dialect registered (so `func`, `arith`, ... ops are
/// understood and canonicalized), unregistered dialects (`tg`, `sdt`, `trn`) allowed, single
/// threaded, and MLIR's diagnostics captured into the errors instead of printed.
pub struct Mlir {
    ctx: Context,
    diagnostics: Rc<RefCell<Vec<String>>>,
}

impl Default for Mlir {
    fn default() -> Self {
        Mlir::new()
    }
}

impl Mlir {
    /// A fresh context.
    pub fn new() -> Mlir {
        let registry = DialectRegistry::new();
        register_all_dialects(&registry);
        let ctx = Context::new_with_registry(&registry, false);
        ctx.set_allow_unregistered_dialects(true);
        let diagnostics = Rc::new(RefCell::new(Vec::new()));
        let sink = Rc::clone(&diagnostics);
        ctx.attach_diagnostic_handler(move |d| {
            let mut text = format!("{}: {d}", short_location(d.location()));
            for note in (0..d.note_count()).filter_map(|i| d.note(i).ok()) {
                let at = short_location(note.location());
                text.push_str(&format!("\n  note: {at}: {note}"));
            }
            sink.borrow_mut().push(text);
            true
        });
        Mlir { ctx, diagnostics }
    }

    /// The underlying melior context.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Takes the diagnostics collected since the last call, one per line.
    fn take_diagnostics(&self) -> String {
        std::mem::take(&mut *self.diagnostics.borrow_mut()).join("\n")
    }

    /// Parses MLIR text (any form MLIR's tools produce) and verifies it.
    pub fn parse(&self, text: &str) -> Result<MlirModule<'_>, MlirError> {
        if let Some(i) = text.find('\0') {
            return Err(MlirError::NulByte(i));
        }
        self.take_diagnostics();
        let module = MlirModule::parse(&self.ctx, text).ok_or_else(|| MlirError::Parse {
            diagnostics: self.take_diagnostics(),
        })?;
        self.verify(&module)?;
        Ok(module)
    }

    /// Runs MLIR's verifier on a module.
    pub fn verify(&self, module: &MlirModule<'_>) -> Result<(), MlirError> {
        self.take_diagnostics();
        if module.as_operation().verify() {
            Ok(())
        } else {
            Err(MlirError::Verify {
                diagnostics: self.take_diagnostics(),
            })
        }
    }

    /// Converts our module to an MLIR module: our generic text with locations, read by MLIR's
    /// parser and checked by its verifier. Weights (the side table) stay behind.
    pub fn export(&self, m: &Module) -> Result<MlirModule<'_>, MlirError> {
        let opts = PrintOptions {
            generic: true,
            debug_info: true,
        };
        self.parse(&print_module(m, opts))
    }

    /// Prints an MLIR module in generic form with inline locations (local scope, so no
    /// `#loc` aliases) — the form [`Mlir::import`] reads.
    pub fn print_generic(&self, module: &MlirModule<'_>) -> Result<String, MlirError> {
        let flags = OperationPrintingFlags::new()
            .enable_debug_info(true, false)
            .print_generic_operation_form()
            .use_local_scope();
        module
            .as_operation()
            .to_string_with_flags(flags)
            .map_err(|e| MlirError::Print(e.to_string()))
    }

    /// Converts an MLIR module back into our IR (MLIR's generic printer, then our parser).
    /// The result has no weights; see [`optimize`](super::optimize) for carrying them.
    pub fn import(&self, module: &MlirModule<'_>) -> Result<Module, MlirError> {
        Ok(parse_module(&self.print_generic(module)?, IMPORT_FILE)?)
    }

    /// Runs a textual MLIR pass pipeline on the module's top operation, e.g.
    /// `"canonicalize,cse"`; MLIR's verifier runs after every pass.
    pub fn run_pipeline(&self, module: &mut MlirModule<'_>, pipeline: &str) -> Result<(), MlirError> {
        register_all_passes();
        let pm = PassManager::new(&self.ctx);
        pm.enable_verifier(true);
        parse_pass_pipeline(
            pm.as_operation_pass_manager(),
            &format!("builtin.module({pipeline})"),
        )
        .map_err(|e| MlirError::Pipeline {
            pipeline: pipeline.to_string(),
            message: e.to_string(),
        })?;
        self.take_diagnostics();
        pm.run(module).map_err(|_| MlirError::PassFailed {
            pipeline: pipeline.to_string(),
            diagnostics: self.take_diagnostics(),
        })
    }
}
