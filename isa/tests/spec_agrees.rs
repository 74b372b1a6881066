//! `spec/isa.md` documents exactly the instructions of the table, each with its generated
//! field list (so field names, kinds, order and sizes in the spec cannot drift from the code).

use std::collections::BTreeSet;
use trainer_isa::{InstrDef, TABLE};

fn spec() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/isa.md");
    std::fs::read_to_string(path).expect("spec/isa.md is readable")
}

/// The block each instruction's section must contain, generated from the table.
fn field_block(d: &InstrDef) -> String {
    let mut s = format!(
        "- encoding: opcode `{:#04x}`, {} bytes; queue: {}\n",
        d.byte,
        d.encoded_len(),
        d.queue.name()
    );
    for f in d.fields {
        s.push_str(&format!("- `{}`: {}\n", f.name, f.kind.describe()));
    }
    s
}

/// Mnemonics of `### \`mnemonic\`` headings, with their section text.
fn sections(spec: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in spec.split("\n### `").skip(1) {
        let (name, rest) = part.split_once('`').expect("heading closes its backtick");
        let body = rest.split("\n## ").next().unwrap_or(rest);
        out.push((name.to_string(), body.to_string()));
    }
    out
}

#[test]
fn spec_lists_exactly_the_table() {
    let spec = spec();
    let documented: BTreeSet<String> = sections(&spec).into_iter().map(|(n, _)| n).collect();
    let table: BTreeSet<String> = TABLE.iter().map(|d| d.mnemonic.to_string()).collect();
    assert_eq!(documented, table, "spec/isa.md headings vs instruction table");
}

#[test]
fn spec_field_lists_match_the_table() {
    let spec = spec();
    for (name, body) in sections(&spec) {
        let Some(d) = TABLE.iter().find(|d| d.mnemonic == name) else {
            continue;
        };
        let block = field_block(d);
        assert!(
            body.contains(&block),
            "section `{name}` must contain the field list:\n{block}"
        );
    }
}

/// Prints the generated field blocks (for writing the spec): `cargo test -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_field_blocks() {
    for d in TABLE {
        println!("@@ {}\n{}", d.mnemonic, field_block(d));
    }
}
