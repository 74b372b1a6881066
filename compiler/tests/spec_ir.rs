//! `spec/ir.md` lists every registered op exactly as the dialect definitions say
//! (`UPDATE_SPEC=1` rewrites the generated tables).

use std::path::Path;
use trainer_compiler::dialect::{reference_markdown, standard};

#[test]
fn spec_op_tables_match_the_registry() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/ir.md");
    let spec = std::fs::read_to_string(&path).unwrap();
    let reg = standard();
    let mut want = spec.clone();
    for d in ["builtin", "tg", "sdt", "trn"] {
        let (open, close) = (format!("<!-- ops:{d} -->\n"), format!("<!-- /ops:{d} -->"));
        let a = want.find(&open).unwrap_or_else(|| panic!("no {open} marker")) + open.len();
        let b = want.find(&close).unwrap_or_else(|| panic!("no {close} marker"));
        want.replace_range(a..b, &reference_markdown(&reg, d));
    }
    if std::env::var_os("UPDATE_SPEC").is_some() {
        std::fs::write(&path, &want).unwrap();
    } else {
        assert!(
            spec == want,
            "spec/ir.md op tables are stale: run with UPDATE_SPEC=1 and review"
        );
    }
}
