//! The training passes as named passes of the pass manager: `autodiff`, `sdt-prune`,
//! `sdt-speculate`, `sdt-bn-decouple`, `sdt-dataflow`, with `key=value` options named as in
//! `spec/passes.md` (`-` and `_` are interchangeable).

use super::{bn_decouple, dataflow, prune, speculate, DataflowMode, SdtOptions, Speculation};
use crate::autodiff::{autodiff, AutodiffOptions};
use crate::ir::Module;
use crate::pass::{Pass, PassContext, PassRegistry};
use std::collections::BTreeMap;

/// Typed access to a pass's options; every key must be consumed.
struct Opts<'a> {
    pass: &'a str,
    map: BTreeMap<String, &'a str>,
}

impl<'a> Opts<'a> {
    fn new(pass: &'a str, o: &'a BTreeMap<String, String>) -> Self {
        Opts {
            pass,
            map: o.iter().map(|(k, v)| (k.replace('-', "_"), v.as_str())).collect(),
        }
    }

    fn get<T: std::str::FromStr>(&mut self, key: &str, default: T) -> Result<T, String> {
        match self.map.remove(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("pass '{}': option '{key}' has a bad value '{v}'", self.pass)),
        }
    }

    fn done(self) -> Result<(), String> {
        match self.map.keys().next() {
            Some(k) => Err(format!("pass '{}' has no option '{k}'", self.pass)),
            None => Ok(()),
        }
    }
}

/// The body of a closure-backed pass.
type PassFn = Box<dyn FnMut(&mut Module) -> Result<(), String>>;

/// A pass that runs a closure over the module.
struct FnPass {
    name: &'static str,
    f: PassFn,
}

impl Pass for FnPass {
    fn name(&self) -> &str {
        self.name
    }

    fn run(&mut self, m: &mut Module, _: &PassContext<'_>) -> Result<(), String> {
        (self.f)(m)
    }
}

fn boxed(
    name: &'static str,
    f: impl FnMut(&mut Module) -> Result<(), String> + 'static,
) -> Result<Box<dyn Pass>, String> {
    Ok(Box::new(FnPass { name, f: Box::new(f) }))
}

/// Registers the training passes in `reg`.
pub fn register(reg: &mut PassRegistry) {
    reg.register(
        "autodiff",
        "tg graph -> sdt training step (FF, loss, BP, WG, SGD).",
        |o| {
            let mut p = Opts::new("autodiff", o);
            let d = AutodiffOptions::default();
            let batch: usize = p.get("batch", 0)?;
            let opts = AutodiffOptions {
                batch: (batch > 0).then_some(batch),
                lr: p.get("lr", d.lr)?,
                momentum: p.get("momentum", d.momentum)?,
                weight_decay: p.get("weight_decay", d.weight_decay)?,
                loss_scale: p.get("loss_scale", d.loss_scale)?,
            };
            p.done()?;
            boxed("autodiff", move |m| {
                *m = autodiff(m, &opts).map_err(|e| e.to_string())?;
                Ok(())
            })
        },
    );
    reg.register(
        "sdt-prune",
        "Pruning masks on conv/linear weights (DPF or sparse WG).",
        |o| {
            let mut p = Opts::new("sdt-prune", o);
            let d = SdtOptions::default();
            let opts = SdtOptions {
                sparsity: p.get("sparsity", 0.9)?,
                ramp_steps: p.get("ramp_steps", 0)?,
                interval: p.get("interval", 1)?,
                sparse_wg: p.get("sparse_wg", false)?,
                exempt_first: p.get("exempt_first", false)?,
                exempt_last: p.get("exempt_last", false)?,
                ..d
            };
            p.done()?;
            boxed("sdt-prune", move |m| {
                prune::run(m, &opts).map_err(|e| e.to_string())
            })
        },
    );
    reg.register("sdt-speculate", "S1/S2/S3 speculation predicates.", |o| {
        let mut p = Opts::new("sdt-speculate", o);
        let d = SdtOptions::default();
        let opts = SdtOptions {
            speculation: Speculation {
                s1: p.get("s1", true)?,
                s2: p.get("s2", false)?,
                s3: p.get("s3", false)?,
            },
            s2_margin: p.get("s2_margin", d.s2_margin)?,
            s3_threshold: p.get("s3_threshold", d.s3_threshold)?,
            ..d
        };
        p.done()?;
        boxed("sdt-speculate", move |m| {
            speculate::run(m, &opts).map_err(|e| e.to_string())
        })
    });
    reg.register(
        "sdt-bn-decouple",
        "Fuses BN statistics, normalization and BP reductions into compute ops.",
        |o| {
            Opts::new("sdt-bn-decouple", o).done()?;
            boxed("sdt-bn-decouple", |m| {
                bn_decouple::run(m).map_err(|e| e.to_string())
            })
        },
    );
    reg.register(
        "sdt-dataflow",
        "Per-layer, per-phase dataflow from the cost model.",
        |o| {
            let mut p = Opts::new("sdt-dataflow", o);
            let mode: String = p.get("mode", "static".to_string())?;
            p.done()?;
            let dataflow = match mode.as_str() {
                "static" => DataflowMode::Static,
                "adaptive" => DataflowMode::Adaptive,
                df => DataflowMode::Fixed(df.to_string()),
            };
            let opts = SdtOptions {
                dataflow,
                ..SdtOptions::default()
            };
            boxed("sdt-dataflow", move |m| {
                dataflow::run(m, &opts).map_err(|e| e.to_string())
            })
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pass::PassManager;

    #[test]
    fn pipeline_of_training_passes() {
        let mut reg = PassRegistry::standard();
        register(&mut reg);
        let mut m = crate::frontend::tg::compile(
            include_str!("../../../examples/mlp.tg"),
            "mlp.tg",
            &crate::frontend::tg::TgOptions {
                batch: Some(4),
                seed: 0,
            },
        )
        .unwrap();
        let text = "autodiff{lr=0.05 momentum=0.9},sdt-prune{sparsity=0.5 sparse-wg=true},sdt-speculate{s2=true},sdt-bn-decouple,sdt-dataflow{mode=adaptive}";
        let mut pm = PassManager::from_pipeline(&reg, text).unwrap();
        pm.run(&mut m).unwrap();
        let out = crate::text::print_custom(&m);
        assert!(
            out.contains("sdt.prune_mask") && out.contains("dataflow = \"adaptive\""),
            "{out}"
        );
        assert!(PassManager::from_pipeline(&reg, "sdt-prune{bogus=1}").is_err());
    }
}
