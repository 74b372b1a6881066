//! Builders of the streaming (non-PE) instructions: they read and write DRAM directly, so the
//! lowering emits them in program order on the compute queue.

use super::emit::{float, int, name, operand, TrnInstr};
use super::plan::Loc;
use trainer_isa::Operand;

/// `[N, C, HW]` view of a tensor shape (rank 1: `[1, C, 1]`; rank 2: `[N, C, 1]`).
pub fn nchw(shape: &[usize]) -> (usize, usize, usize) {
    match shape {
        [] => (1, 1, 1),
        [c] => (1, *c, 1),
        [n, c, rest @ ..] => (*n, *c, rest.iter().product()),
    }
}

/// An instruction with integer fields `ints`, then operands (absent ones omitted).
pub fn instr(
    mn: &'static str,
    ints: &[(&'static str, usize)],
    ops: &[(&'static str, Option<&Loc>)],
) -> TrnInstr {
    let mut f: Vec<_> = ints.iter().map(|&(n, v)| int(n, v)).collect();
    f.extend(ops.iter().filter_map(|&(n, l)| l.map(|l| operand(n, l.op()))));
    TrnInstr::new(mn, f)
}

/// `[N, C, HW]` integer fields of a per-channel instruction over `t`.
pub fn per_channel(t: &Loc) -> [(&'static str, usize); 3] {
    let (n, c, hw) = nchw(&t.shape);
    [("n", n), ("c", c), ("hw", hw)]
}

/// `fill n value out`.
pub fn fill(n: usize, value: f64, out: Operand) -> TrnInstr {
    TrnInstr::new(
        "fill",
        vec![int("n", n), float("value", value), operand("out", out)],
    )
}

/// `convert n src out` (also a plain copy when the dtypes agree).
pub fn convert(n: usize, src: Operand, out: Operand) -> TrnInstr {
    TrnInstr::new(
        "convert",
        vec![int("n", n), operand("src", src), operand("out", out)],
    )
}

/// A per-channel instruction with an `opt` flag set.
pub fn with_opt(mn: &'static str, opt: &str, t: &Loc, ops: &[(&'static str, Option<&Loc>)]) -> TrnInstr {
    let mut i = instr(mn, &per_channel(t), ops);
    i.fields.insert(0, name("opt", opt));
    i
}
