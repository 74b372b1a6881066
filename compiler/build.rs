//! Generates the parsers of every `.lalrpop` grammar under `src/` into `OUT_DIR`.

fn main() {
    lalrpop::process_src().expect("lalrpop grammar generation failed");
}
