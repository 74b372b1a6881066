//! The pass manager: named passes, textual pipelines, the verifier after every pass, IR printing
//! after each pass and per-pass timing.
//!
//! ```
//! use trainer_compiler::pass::{PassManager, PassRegistry};
//! use trainer_compiler::ir::Module;
//! let mut pm = PassManager::from_pipeline(&PassRegistry::standard(), "canonicalize,cse,dce").unwrap();
//! let mut m = Module::new();
//! pm.run(&mut m).unwrap();
//! assert_eq!(pm.timings().len(), 3);
//! ```

pub mod canonicalize;
pub mod cse;
pub mod dce;
pub mod pipeline;
pub mod shape_infer;

use crate::dialect::{self, Registry};
use crate::ir::Module;
use crate::verify::{verify, VerifyError, VerifyOptions};
pub use pipeline::{parse_pipeline, PassSpec, PipelineError};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What passes see besides the module.
pub struct PassContext<'a> {
    /// The dialect registry (op purity, definitions).
    pub registry: &'a Registry,
}

/// A pass failure.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// The pass itself failed.
    #[error("pass '{pass}' failed: {msg}")]
    Failed {
        /// Pass name.
        pass: String,
        /// Reason.
        msg: String,
    },
    /// The module did not verify after the pass (or before the first one).
    #[error("after pass '{pass}': {err}")]
    Verify {
        /// Pass name (`input` for the check before the first pass).
        pass: String,
        /// The diagnostics.
        err: VerifyError,
    },
    /// The pipeline text is malformed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Unknown pass or bad option.
    #[error("{0}")]
    Config(String),
}

/// A transformation or check of a module.
pub trait Pass {
    /// Registered name.
    fn name(&self) -> &str;
    /// Runs on the module; the message of `Err` says what went wrong.
    fn run(&mut self, m: &mut Module, cx: &PassContext<'_>) -> Result<(), String>;
}

/// Creates a pass from its `key=value` options.
pub type PassCtor = fn(&BTreeMap<String, String>) -> Result<Box<dyn Pass>, String>;

/// Named pass constructors.
#[derive(Clone, Default)]
pub struct PassRegistry {
    passes: BTreeMap<String, (String, PassCtor)>,
}

fn no_options(name: &str, o: &BTreeMap<String, String>) -> Result<(), String> {
    match o.keys().next() {
        Some(k) => Err(format!("pass '{name}' has no option '{k}'")),
        None => Ok(()),
    }
}

/// A pass that only verifies (the manager verifies after it).
struct VerifyPass;

impl Pass for VerifyPass {
    fn name(&self) -> &str {
        "verify"
    }
    fn run(&mut self, _: &mut Module, _: &PassContext<'_>) -> Result<(), String> {
        Ok(())
    }
}

impl PassRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        PassRegistry::default()
    }

    /// The passes of this crate's IR core: `canonicalize`, `cse`, `dce`, `shape-infer`, `verify`.
    pub fn standard() -> Self {
        let mut r = PassRegistry::new();
        r.register(
            "canonicalize",
            "Folds identity/dropout, reshape chains, no-op reshapes and reshapes of constants.",
            |o| {
                no_options("canonicalize", o)?;
                Ok(Box::new(canonicalize::Canonicalize))
            },
        );
        r.register(
            "cse",
            "Merges identical pure ops (same name, operands, attributes, result types).",
            |o| {
                no_options("cse", o)?;
                Ok(Box::new(cse::Cse))
            },
        );
        r.register("dce", "Erases pure ops whose results are unused.", |o| {
            no_options("dce", o)?;
            Ok(Box::new(dce::Dce))
        });
        r.register(
            "shape-infer",
            "Recomputes result types of tg ops from the shape rules.",
            |o| {
                no_options("shape-infer", o)?;
                Ok(Box::new(shape_infer::ShapeInfer))
            },
        );
        r.register("verify", "Runs the verifier only.", |o| {
            no_options("verify", o)?;
            Ok(Box::new(VerifyPass))
        });
        r
    }

    /// Registers (or replaces) a pass.
    pub fn register(&mut self, name: &str, summary: &str, ctor: PassCtor) {
        self.passes.insert(name.to_string(), (summary.to_string(), ctor));
    }

    /// `(name, summary)` of every pass, sorted by name.
    pub fn list(&self) -> Vec<(&str, &str)> {
        self.passes
            .iter()
            .map(|(k, (s, _))| (k.as_str(), s.as_str()))
            .collect()
    }

    /// Instantiates one pass.
    pub fn create(&self, spec: &PassSpec) -> Result<Box<dyn Pass>, PassError> {
        let (_, ctor) = self.passes.get(&spec.name).ok_or_else(|| {
            let known: Vec<&str> = self.passes.keys().map(String::as_str).collect();
            PassError::Config(format!(
                "unknown pass '{}' (known: {})",
                spec.name,
                known.join(", ")
            ))
        })?;
        let opts: BTreeMap<String, String> = spec.options.iter().cloned().collect();
        ctor(&opts).map_err(PassError::Config)
    }
}

/// Time spent in one pass run.
#[derive(Clone, Debug, PartialEq)]
pub struct PassTiming {
    /// Pass name.
    pub name: String,
    /// Wall time of the pass.
    pub pass: Duration,
    /// Wall time of the verifier after it.
    pub verify: Duration,
}

/// Called after each pass with its name and the module (for `--print-ir-after-all`).
pub type AfterPassHook<'a> = Box<dyn FnMut(&str, &Module) + 'a>;

/// Runs a sequence of passes, verifying after each.
pub struct PassManager<'a> {
    passes: Vec<Box<dyn Pass>>,
    registry: Registry,
    /// Verifier options (e.g. allow unregistered dialects).
    pub verify_options: VerifyOptions,
    /// Verify the input and the result of every pass (on by default).
    pub verify_each: bool,
    after_pass: Option<AfterPassHook<'a>>,
    timings: Vec<PassTiming>,
}

impl<'a> PassManager<'a> {
    /// An empty manager with the standard dialect registry.
    pub fn new() -> Self {
        PassManager {
            passes: Vec::new(),
            registry: dialect::standard(),
            verify_options: VerifyOptions::default(),
            verify_each: true,
            after_pass: None,
            timings: Vec::new(),
        }
    }

    /// A manager running the passes of a textual pipeline.
    pub fn from_pipeline(reg: &PassRegistry, pipeline: &str) -> Result<Self, PassError> {
        let mut pm = PassManager::new();
        for spec in parse_pipeline(pipeline)? {
            pm.add(reg.create(&spec)?);
        }
        Ok(pm)
    }

    /// Appends a pass.
    pub fn add(&mut self, p: Box<dyn Pass>) {
        self.passes.push(p);
    }

    /// Sets a hook called after every pass (e.g. to print the IR).
    pub fn after_each(&mut self, hook: AfterPassHook<'a>) {
        self.after_pass = Some(hook);
    }

    /// Timings of the last [`PassManager::run`], one per pass.
    pub fn timings(&self) -> &[PassTiming] {
        &self.timings
    }

    /// Verifies the input, then runs every pass, verifying after each.
    pub fn run(&mut self, m: &mut Module) -> Result<(), PassError> {
        self.timings.clear();
        let (reg, opts, on) = (&self.registry, self.verify_options, self.verify_each);
        check(m, reg, opts, on, "input")?;
        let cx = PassContext { registry: reg };
        for p in &mut self.passes {
            let t = Instant::now();
            p.run(m, &cx).map_err(|msg| PassError::Failed {
                pass: p.name().to_string(),
                msg,
            })?;
            let pass = t.elapsed();
            let verify = check(m, reg, opts, on, p.name())?;
            self.timings.push(PassTiming {
                name: p.name().to_string(),
                pass,
                verify,
            });
            if let Some(h) = &mut self.after_pass {
                h(p.name(), m);
            }
        }
        Ok(())
    }
}

/// Verifies `m` (when `enabled`) and returns the time it took.
fn check(
    m: &Module,
    reg: &Registry,
    opts: VerifyOptions,
    enabled: bool,
    pass: &str,
) -> Result<Duration, PassError> {
    let t = Instant::now();
    if enabled {
        verify(m, reg, opts).map_err(|err| PassError::Verify {
            pass: pass.to_string(),
            err,
        })?;
    }
    Ok(t.elapsed())
}

impl Default for PassManager<'_> {
    fn default() -> Self {
        PassManager::new()
    }
}

/// Renders timings like `mlir-opt --mlir-timing`: one line per pass, then the total.
pub fn timing_report(t: &[PassTiming]) -> String {
    let total: Duration = t.iter().map(|p| p.pass + p.verify).sum();
    let mut s = String::from("===== pass execution timing =====\n   wall (ms)   verify (ms)  pass\n");
    for p in t {
        s.push_str(&format!(
            "{:>12.3}  {:>12.3}  {}\n",
            p.pass.as_secs_f64() * 1e3,
            p.verify.as_secs_f64() * 1e3,
            p.name
        ));
    }
    s.push_str(&format!(
        "{:>12.3}  {:>12}  total\n",
        total.as_secs_f64() * 1e3,
        ""
    ));
    s
}
