use super::*;
use crate::lower::emit::{operand, FieldValue};
use proptest::prelude::*;
use trainer_isa::{DType, Operand, Space};

/// A dense 1-row `dma.load` (or `dma.store`) between DRAM `addr` and ibuf `buf`.
fn dma(load: bool, addr: u32, buf: u32, ar: &str) -> TrnInstr {
    TrnInstr::new(
        if load { "dma.load" } else { "dma.store" },
        vec![
            name("fmt", "dense"),
            name("ar", ar),
            name("ctr", "none"),
            int("rows", 1),
            int("row_bytes", 64),
            int("dstride", 0),
            int("bstride", 64),
            operand("dram", Operand::new(Space::Dram, DType::F32, addr)),
            operand("buf", Operand::new(Space::Ibuf, DType::F32, buf)),
        ],
    )
}

fn load(addr: u32, buf: u32) -> TrnInstr {
    dma(true, addr, buf, "ar0")
}

fn store(addr: u32, buf: u32) -> TrnInstr {
    dma(false, addr, buf, "ar0")
}

fn tok(mnemonic: &'static str, q: &str, t: usize) -> TrnInstr {
    TrnInstr::new(mnemonic, vec![name("q", q), int("tok", t)])
}

/// A compute stand-in reading on-chip slot `slot`.
fn compute(slot: u32) -> TrnInstr {
    TrnInstr::new(
        "fill",
        vec![
            int("n", 16),
            ("value", FieldValue::Float(0.0)),
            operand("out", Operand::new(Space::Obuf, DType::F32, slot)),
        ],
    )
}

/// A streaming instruction with a DRAM operand.
fn streaming(src: u32) -> TrnInstr {
    TrnInstr::new(
        "relu",
        vec![
            int("n", 16),
            operand("src", Operand::new(Space::Dram, DType::F32, src)),
            operand("out", Operand::new(Space::Dram, DType::F32, 0x10_0000)),
        ],
    )
}

/// A double-buffered tile: load into slot `t mod 2`, compute, store.
fn tile(t: u32, load_at: u32, store_at: u32) -> Vec<TrnInstr> {
    let s = t % 2;
    vec![
        load(load_at, s * 0x1000),
        tok("tok.signal", "load", 2 + s as usize),
        tok("tok.wait", "compute", 2 + s as usize),
        compute(s * 0x1000),
        tok("tok.signal", "compute", 4 + s as usize),
        tok("tok.wait", "store", 4 + s as usize),
        store(store_at, s * 0x1000),
    ]
}

fn field<'a>(i: &'a TrnInstr, f: &str) -> &'a FieldValue {
    &i.fields.iter().find(|(k, _)| *k == f).unwrap().1
}

fn int_field(i: &TrnInstr, f: &str) -> u32 {
    match field(i, f) {
        FieldValue::Int(v) => *v as u32,
        v => panic!("{f}: {v:?}"),
    }
}

fn reg(i: &TrnInstr, f: &str) -> usize {
    match field(i, f) {
        FieldValue::Name(n) => REGS.iter().position(|r| *r == n.as_str()).unwrap(),
        v => panic!("{f}: {v:?}"),
    }
}

/// The instructions `code` executes, in order, without loop and register instructions and with
/// each DMA's register added to its address (`ar=ar0`); checks nesting and that no register
/// that was in use before is written. Also returns the deepest nesting.
fn expand(code: &[TrnInstr]) -> (Vec<TrnInstr>, usize) {
    let mut ar = [0u32; 8];
    let mut out = Vec::new();
    let mut stack: Vec<(usize, u32)> = Vec::new();
    let mut deepest = 0;
    let mut pc = 0;
    while pc < code.len() {
        let i = &code[pc];
        match i.mnemonic {
            "loop" => {
                stack.push((pc, int_field(i, "count")));
                deepest = deepest.max(stack.len());
            }
            "endloop" => {
                let (start, left) = stack.last_mut().expect("balanced");
                *left -= 1;
                if *left > 0 {
                    pc = *start;
                } else {
                    stack.pop();
                }
            }
            "ar.set" => ar[reg(i, "reg")] = int_field(i, "value"),
            "ar.add" => {
                let r = reg(i, "reg");
                ar[r] = ar[r].wrapping_add(int_field(i, "value"));
            }
            "dma.load" | "dma.store" => {
                let mut i = i.clone();
                let by = ar[reg(&i, "ar")];
                if by != 0 {
                    let FieldValue::Operand(o) = field(&i, "dram") else {
                        panic!("a DMA without a DRAM operand")
                    };
                    assert!(u64::from(o.addr) + u64::from(by) < 1 << 32, "address overflow");
                    shift_addr(&mut i, by);
                }
                set_field(&mut i, "ar", FieldValue::Name(Name::new("ar0")));
                out.push(i);
            }
            _ => out.push(i.clone()),
        }
        pc += 1;
    }
    assert!(stack.is_empty(), "unbalanced loops");
    (out, deepest)
}

/// Rolls `code`, checks that it executes exactly `code`, returns the rolled code and its depth.
fn check(code: Vec<TrnInstr>) -> (Vec<TrnInstr>, usize) {
    let rolled = roll(code.clone());
    let (run, depth) = expand(&rolled);
    let (code, _) = expand(&code);
    if let Some(at) = (0..run.len().max(code.len())).find(|&i| run.get(i) != code.get(i)) {
        panic!(
            "rolled code executes other instructions from {at}: {:?} instead of {:?}\nrolled: {}",
            run.get(at),
            code.get(at),
            listing(&rolled)
        );
    }
    assert!(depth <= MAX_LOOP_DEPTH);
    (rolled, depth)
}

/// Short listing of `code` for failure messages.
fn listing(code: &[TrnInstr]) -> String {
    code.iter()
        .map(|i| {
            let mut l = i.mnemonic.to_string();
            for (f, v) in &i.fields {
                match v {
                    FieldValue::Int(x) if matches!(*f, "count" | "value" | "tok") => {
                        l += &format!(" {f}={x:#x}")
                    }
                    FieldValue::Name(n) if matches!(*f, "ar" | "reg" | "q") => {
                        l += &format!(" {f}={}", n.as_str())
                    }
                    FieldValue::Operand(o) => l += &format!(" {f}={o}"),
                    _ => {}
                }
            }
            l + "\n"
        })
        .collect()
}

fn count(code: &[TrnInstr], mnemonic: &str) -> usize {
    code.iter().filter(|i| i.mnemonic == mnemonic).count()
}

#[test]
fn strided_bodies_become_one_loop() {
    let code: Vec<_> = (0..8u32)
        .flat_map(|t| {
            [
                load(0x1000 + 0x100 * t, 0),
                compute(0),
                store(0x8000 + 0x40 * t, 0),
            ]
        })
        .collect();
    let (rolled, depth) = check(code);
    assert_eq!(depth, 1);
    // ar.set ×2, loop, 3 body instructions, ar.add ×2, endloop.
    assert_eq!(rolled.len(), 9, "{rolled:#?}");
    assert_eq!(int_field(&rolled[2], "count"), 8);
    assert_eq!(count(&rolled, "ar.add"), 2);
}

#[test]
fn double_buffered_tiles_roll_with_period_two() {
    let code: Vec<_> = (0..10u32)
        .flat_map(|t| tile(t, 0x4000 + 0x200 * t, 0x9000 + 0x80 * t))
        .collect();
    let (rolled, depth) = check(code);
    assert_eq!(depth, 1);
    let lp = rolled.iter().find(|i| i.mnemonic == "loop").unwrap();
    assert_eq!(int_field(lp, "count"), 5);
    // Two tiles per body: slots 0 and 1.
    assert_eq!(count(&rolled, "fill"), 2);
}

#[test]
fn identical_bodies_need_no_register() {
    let code: Vec<_> = (0..6).flat_map(|_| [load(0x100, 0), compute(0)]).collect();
    let (rolled, _) = check(code);
    assert_eq!(count(&rolled, "ar.set") + count(&rolled, "ar.add"), 0);
    assert_eq!(rolled.len(), 4);
}

#[test]
fn nested_runs_nest_and_registers_advance_across_the_inner_loop() {
    // 5 rows of 6 tiles: the inner stride 0x100, the row stride 0x10000; a barrier between rows.
    let mut code = Vec::new();
    for r in 0..5u32 {
        for t in 0..6u32 {
            code.extend(tile(
                t,
                0x10_0000 + 0x1_0000 * r + 0x100 * t,
                0x80_0000 + 0x800 * r + 0x40 * t,
            ));
        }
        code.push(TrnInstr::new("barrier", vec![]));
        code.push(load(0x2000 + 0x10 * r, 0x8000));
    }
    let (rolled, depth) = check(code.clone());
    assert_eq!(depth, 2, "{rolled:#?}");
    assert!(rolled.len() < code.len() / 5);
}

#[test]
fn non_constant_stride_is_not_rolled() {
    // Strides 0x100, 0x200, 0x300, …: never constant, so no run of three or more bodies (two
    // bodies always have constant strides: one body of four tiles may roll twice).
    let growing: Vec<_> = (0..8u32)
        .flat_map(|t| [load(0x80 * t * (t + 1), 0), compute(0), compute(0x40)])
        .collect();
    let (rolled, _) = check(growing);
    assert!(
        rolled
            .iter()
            .all(|i| i.mnemonic != "loop" || int_field(i, "count") == 2),
        "{}",
        listing(&rolled)
    );
    // Only the stretch with a constant stride (0x300 … 0x700) rolls.
    let irregular = [
        0x0u32, 0x100, 0x300, 0x400, 0x500, 0x600, 0x700, 0xb00, 0xc00, 0xe00,
    ];
    let code: Vec<_> = irregular
        .iter()
        .flat_map(|&a| [load(a, 0), compute(0), compute(0x40)])
        .collect();
    let (rolled, _) = check(code);
    let counts: Vec<_> = rolled
        .iter()
        .filter(|i| i.mnemonic == "loop")
        .map(|i| int_field(i, "count"))
        .collect();
    assert_eq!(counts, [5], "{}", listing(&rolled));
}

#[test]
fn descending_addresses_are_not_rolled() {
    let code: Vec<_> = (0..8u32)
        .flat_map(|t| [load(0x8000 - 0x100 * t, 0), compute(0), compute(8)])
        .collect();
    let (rolled, _) = check(code.clone());
    assert_eq!(rolled, code);
}

#[test]
fn streaming_dram_operands_must_be_identical() {
    let code: Vec<_> = (0..8u32)
        .flat_map(|t| [load(0x100 * t, 0), streaming(0x4000 + 0x100 * t), compute(0)])
        .collect();
    let (rolled, _) = check(code.clone());
    assert_eq!(rolled, code);
    let same: Vec<_> = (0..8u32)
        .flat_map(|t| [load(0x100 * t, 0), streaming(0x4000), compute(0)])
        .collect();
    let (rolled, _) = check(same);
    assert_eq!(count(&rolled, "loop"), 1);
}

#[test]
fn register_exhaustion_leaves_the_code_unrolled() {
    // Eight DMAs with eight different strides: one more than the seven registers.
    let code: Vec<_> = (0..6u32)
        .flat_map(|t| (0..8u32).map(move |d| load(0x10_0000 * d + (d + 1) * 0x40 * t, 0)))
        .collect();
    let (rolled, _) = check(code.clone());
    assert_eq!(rolled, code);
    // Seven fit.
    let code: Vec<_> = (0..6u32)
        .flat_map(|t| (0..7u32).map(move |d| load(0x10_0000 * d + (d + 1) * 0x40 * t, 0)))
        .collect();
    let (rolled, _) = check(code);
    assert_eq!(count(&rolled, "loop"), 1);
    assert_eq!(count(&rolled, "ar.set"), 7);
}

#[test]
fn registers_in_use_are_left_alone() {
    let mut code = vec![TrnInstr::new(
        "ar.set",
        vec![name("reg", "ar1"), int("value", 0x40)],
    )];
    for t in 0..6u32 {
        code.push(dma(true, 0x100, 0, "ar1"));
        code.push(load(0x1000 + 0x80 * t, 0x100));
    }
    let (rolled, _) = check(code);
    let sets: Vec<_> = rolled
        .iter()
        .filter(|i| i.mnemonic == "ar.set")
        .map(|i| reg(i, "reg"))
        .collect();
    assert_eq!(sets, [1, 2]);
}

#[test]
fn entries_with_loops_are_left_alone() {
    let mut code = vec![TrnInstr::new("loop", vec![int("count", 2)])];
    code.extend((0..6u32).map(|t| load(0x100 * t, 0)));
    code.push(TrnInstr::new("endloop", vec![]));
    assert_eq!(roll(code.clone()), code);
}

#[test]
fn deep_nests_stop_at_four_levels() {
    // Six nested dimensions of 2..3 iterations, each with its own stride and a marker.
    let mut code = Vec::new();
    let dims = [3u32, 2, 3, 2, 3, 2];
    let total: u32 = dims.iter().product();
    for flat in 0..total {
        let mut rem = flat;
        let mut addr = 0;
        for (d, &n) in dims.iter().enumerate().rev() {
            let i = rem % n;
            rem /= n;
            addr += i * (0x40 << (2 * (dims.len() - 1 - d)));
        }
        code.push(load(addr, 0));
        code.push(compute(0));
        if flat % 2 == 1 {
            code.push(TrnInstr::new("barrier", vec![]));
        }
    }
    let (rolled, depth) = check(code.clone());
    assert_eq!(depth, MAX_LOOP_DEPTH, "{}", listing(&rolled));
    assert!(rolled.len() < code.len() / 4);
}

/// A random nest of tiled loops: dimension sizes, per-dimension strides of two DMAs, extra
/// instructions at the end of some levels, double-buffered slots.
fn tiled(dims: &[u32], strides: &[(u32, u32)], marks: &[bool]) -> Vec<TrnInstr> {
    let total: u32 = dims.iter().product();
    let mut code = Vec::new();
    for flat in 0..total {
        let mut rem = flat;
        let (mut a, mut b) = (0x1000u32, 0x80_0000u32);
        let mut last = Vec::new();
        for (d, &n) in dims.iter().enumerate().rev() {
            let i = rem % n;
            rem /= n;
            a += i * strides[d].0;
            b += i * strides[d].1;
            last.push(i + 1 == n);
        }
        code.extend(tile(flat, a, b));
        // Marker after the last tile of a dimension `d` (innermost first in `last`).
        for (d, end) in last.iter().enumerate() {
            if *end && marks[d] {
                code.push(compute(0x100 * (d as u32 + 1)));
            } else if !*end {
                break;
            }
        }
    }
    code
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn rolled_code_executes_the_original(
        dims in proptest::collection::vec(1u32..5, 1..5),
        strides in proptest::collection::vec((0u32..4, 0u32..4), 4),
        marks in proptest::collection::vec(any::<bool>(), 4),
        scale in 0u32..3,
    ) {
        let strides: Vec<_> = strides.iter().map(|&(a, b)| (a * (0x40 << scale), b * 0x100)).collect();
        let code = tiled(&dims, &strides, &marks);
        let (rolled, _) = check(code.clone());
        prop_assert!(rolled.len() <= code.len() + 2);
    }
}
