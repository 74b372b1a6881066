//! Loop rolling changes nothing the program computes: the same model lowered with and without
//! `loop` nests trains bit-identically on the simulator (the whole DRAM image: weights, momentum,
//! BN statistics, masks, loss, logits), in the same cycles, with the same events — except
//! `ctrl/issue`, which counts the `loop`, `endloop`, `ar.set` and `ar.add` instructions the
//! rolled program issues and whose count the unrolled program does not have.

mod common;

use common::{noise, onnx, tg_example, TINY_BUFFERS};
use trainer_compiler::autodiff::{autodiff, AutodiffOptions};
use trainer_compiler::codegen;
use trainer_compiler::ir::Module;
use trainer_compiler::lower::{self, LowerOptions};
use trainer_compiler::sdt::{self, DataflowMode, SdtOptions, Speculation};
use trainer_isa::names::CfgF32;
use trainer_isa::Program;
use trainer_sim::cost::CostModel;
use trainer_sim::ledger::Event;
use trainer_sim::machine::Machine;
use trainer_sim::{RunStats, Simulator};

/// The program of `tg` lowered with `lo`; checks that the `trn` module and the direct path give
/// the same program.
fn program(m: &Module, lo: &LowerOptions) -> Program {
    let direct = codegen::generate_lowered(&lower::lower_program(m, lo).unwrap(), &m.weights, &[]).unwrap();
    let via_trn = codegen::generate(&lower::lower(m, lo).unwrap(), &[]).unwrap();
    assert_eq!(direct, via_trn, "the trn module and the direct path disagree");
    direct
}

/// Runs `steps` training steps (`entry.prune` first when sparse); returns the DRAM image and
/// the statistics of every entry run.
fn train(p: Program, sparsity: f64, steps: usize) -> (Vec<u8>, Vec<RunStats>) {
    let machine = Machine::resolve("trainer-28nm").unwrap();
    let mut s = Simulator::new(p, CostModel::from_machine(&machine)).unwrap();
    let shape = s.program().tensor("input").unwrap().shape.clone();
    let n: usize = shape.iter().map(|&d| d as usize).product();
    let classes = s.program().tensor("logits").unwrap().shape[1] as i64;
    let mut stats = Vec::new();
    for step in 0..steps {
        let x: Vec<f32> = noise(n, 11 + step as u64).iter().map(|v| 2.0 * v - 0.5).collect();
        let y: Vec<i64> = (0..i64::from(shape[0]))
            .map(|i| (i * 5 + step as i64) % classes)
            .collect();
        s.write_tensor("input", &x).unwrap();
        s.write_tensor_ints("labels", &y).unwrap();
        if sparsity > 0.0 {
            stats.push(
                s.run_entry("prune", &[(CfgF32::Sparsity, sparsity as f32)])
                    .unwrap(),
            );
        }
        stats.push(s.run_entry("train", &[]).unwrap());
    }
    stats.push(s.run_entry("eval", &[]).unwrap());
    (s.memory().dram().bytes().to_vec(), stats)
}

/// Statistics with `ctrl/issue` and the instruction count left out.
fn without_issue(mut r: RunStats) -> RunStats {
    for t in r.ledger.tags.values_mut() {
        t.events[Event::CtrlIssue] = 0;
    }
    r.instructions = 0;
    r
}

/// Lowers `tg` with and without loops and checks that both train alike; returns the two
/// instruction counts (rolled, unrolled).
fn same_training(tg: &Module, opts: &SdtOptions, buffers: [u64; 4], steps: usize) -> (usize, usize) {
    let mut m = autodiff(tg, &AutodiffOptions::default()).unwrap();
    sdt::run_pipeline(&mut m, opts).unwrap();
    m.weights = tg.weights.clone();
    let lo = LowerOptions {
        buffers,
        ..LowerOptions::default()
    };
    let rolled = program(&m, &lo);
    let unrolled = program(&m, &LowerOptions { loops: false, ..lo });
    let sizes = (rolled.code.len(), unrolled.code.len());
    assert!(
        rolled.code.iter().any(|i| i.def().mnemonic == "loop"),
        "nothing was rolled"
    );
    assert!(sizes.0 < sizes.1, "{sizes:?}");
    let (dram_r, stats_r) = train(rolled, opts.sparsity, steps);
    let (dram_u, stats_u) = train(unrolled, opts.sparsity, steps);
    assert!(dram_r == dram_u, "the DRAM images differ");
    for (r, u) in stats_r.into_iter().zip(stats_u) {
        let issued = |s: &RunStats| s.ledger.total()[Event::CtrlIssue];
        assert_eq!(
            issued(&r),
            r.instructions,
            "one ctrl/issue per executed instruction"
        );
        assert!(r.instructions >= u.instructions);
        assert_eq!(without_issue(r), without_issue(u));
    }
    sizes
}

#[test]
fn digits_cnn_trains_bit_identically_with_loops() {
    let opts = SdtOptions {
        speculation: Speculation::ALL,
        dataflow: DataflowMode::Adaptive,
        sparsity: 0.9,
        ..SdtOptions::default()
    };
    let sizes = same_training(&onnx("digits_cnn.onnx", 8), &opts, TINY_BUFFERS, 2);
    eprintln!(
        "digits_cnn batch 8, tiny buffers: {} instructions rolled, {} unrolled",
        sizes.0, sizes.1
    );
}

#[test]
fn resnet18_tg_trains_bit_identically_with_loops() {
    let opts = SdtOptions {
        speculation: Speculation::ALL,
        sparsity: 0.9,
        ..SdtOptions::default()
    };
    // Small buffers (an eighth of the machine's) that force channel and row tiles everywhere.
    let sizes = same_training(
        &tg_example("resnet18.tg", 2),
        &opts,
        [32768, 16384, 16384, 65536],
        1,
    );
    eprintln!(
        "resnet18.tg batch 2, small buffers: {} instructions rolled, {} unrolled",
        sizes.0, sizes.1
    );
}
