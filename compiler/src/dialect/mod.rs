//! Dialects: the op registry, per-dialect op definitions, and the `tg` shape rules.
//!
//! [`standard`] registers `builtin` (just `builtin.module`), `tg`, `sdt` and `trn`.
//! [`reference_markdown`] renders the op tables of `spec/ir.md` from the definitions.

pub mod registry;
pub mod sdt;
pub mod tg;
pub mod tg_shapes;
pub mod trn;

pub use registry::{Arity, AttrKind, AttrRule, OpDef, Registry, VerifyFn};

/// The registry of every dialect of the toolchain.
pub fn standard() -> Registry {
    let mut r = Registry::new();
    r.register(
        "builtin",
        vec![OpDef::new(
            crate::ir::MODULE_OP,
            "Top-level container: one region with one block holding graphs/steps/programs.",
            Arity::Exact(0),
            Arity::Exact(0),
        )
        .regions(1)
        .opt("sym_name", AttrKind::Str)],
    );
    r.register("tg", tg::ops());
    r.register("sdt", sdt::ops());
    r.register("trn", trn::ops());
    r
}

/// Markdown tables (one per dialect) of every registered op: operands, results, regions,
/// attributes (`name: kind`, `?` if optional), flags and semantics.
pub fn reference_markdown(r: &Registry, dialect: &str) -> String {
    let mut s = String::from(
        "| op | operands | results | regions | attributes | flags | semantics |\n|---|---|---|---|---|---|---|\n",
    );
    for d in r.ops_of(dialect) {
        let attrs: Vec<String> = d
            .attrs
            .iter()
            .map(|a| {
                let q = if a.required { "" } else { "?" };
                format!("`{}{q}`: {}", a.name, a.kind.name())
            })
            .collect();
        let mut flags = Vec::new();
        if d.pure {
            flags.push("pure");
        }
        if d.terminator {
            flags.push("terminator");
        }
        s.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} |\n",
            d.name,
            d.operands,
            d.results,
            d.regions,
            attrs.join(", "),
            flags.join(", "),
            d.summary.replace('|', "\\|"),
        ));
    }
    s
}
