//! The ledger of a small hand-written program equals hand-counted events; energy = events × table;
//! two runs give identical reports.

use trainer_sim::cost::CostModel;
use trainer_sim::ledger::{Event, N_EVENTS};
use trainer_sim::machine::Machine;
use trainer_sim::report::Report;
use trainer_sim::Simulator;

const PROGRAM: &str = r#"
.dram 512
.tensor "x" role=input dtype=f32 shape=[8] addr=0
.tensor "y" role=output dtype=f32 shape=[8] addr=64
.tensor "cx" role=input dtype=f32 shape=[1, 2, 1, 2] addr=128
.tensor "cw" role=param dtype=f32 shape=[1, 2, 1, 1] addr=192
.tensor "cy" role=output dtype=f32 shape=[1, 1, 1, 2] addr=256
.meta "layer.3" "tiny_conv"
dma.load fmt=dense ar=ar0 ctr=dc2 rows=2 row_bytes=16 dstride=16 bstride=16 dram=dram:f32@0 buf=gbuf:f32@0
relu n=8 src=gbuf:f32@0 out=gbuf:f32@32
dma.store fmt=dense ar=ar0 ctr=none rows=1 row_bytes=32 dstride=0 bstride=0 dram=dram:f32@64 buf=gbuf:f32@32
dma.load fmt=bitmap ar=ar0 ctr=none rows=1 row_bytes=32 dstride=0 bstride=0 dram=dram:f32@0 buf=gbuf:f32@64
tag layer=3 phase=ff
dma.load fmt=dense ar=ar0 ctr=none rows=1 row_bytes=16 dstride=0 bstride=0 dram=dram:f32@128 buf=ibuf:f32@0
dma.load fmt=dense ar=ar0 ctr=none rows=1 row_bytes=8 dstride=0 bstride=0 dram=dram:f32@192 buf=wbuf:f32@0
conv mode=ff df=ws skip=in dci=none dcw=none n=1 c=2 h=1 w=2 k=1 r=1 s=1 stride_h=1 stride_w=1 pad_t=0 pad_l=0 pad_b=0 pad_r=0 dil_h=1 dil_w=1 groups=1 a=ibuf:f32@0 b=wbuf:f32@0 out=obuf:f32@0
dma.store fmt=dense ar=ar0 ctr=none rows=1 row_bytes=8 dstride=0 bstride=0 dram=dram:f32@256 buf=obuf:f32@0
"#;

fn sim() -> Simulator {
    let prog = trainer_isa::assemble(PROGRAM).unwrap();
    let mut sim = Simulator::new(prog, CostModel::resolve("trainer-28nm").unwrap()).unwrap();
    sim.write_tensor("x", &[1.0, 0.0, -2.0, 0.0, 3.0, 0.0, -4.0, 0.0])
        .unwrap();
    // Input channels c0 = [1, 0], c1 = [0, 2]; weights [3, 0].
    sim.write_tensor("cx", &[1.0, 0.0, 0.0, 2.0]).unwrap();
    sim.write_tensor("cw", &[3.0, 0.0]).unwrap();
    sim
}

#[test]
fn ledger_equals_hand_counted_events() {
    let mut s = sim();
    let stats = s.run().unwrap();
    assert_eq!(
        s.read_tensor("y").unwrap(),
        vec![1.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0]
    );
    assert_eq!(s.read_tensor("cy").unwrap(), vec![3.0, 0.0]);
    let t = stats.ledger.total();
    let mut want = [0u64; N_EVENTS];
    let mut set = |e: Event, n: u64| want[e as usize] = n;
    // dma.load (2 rows × 16 B), relu (8 elements), dma.store (32 B), bitmap dma.load (8 elements,
    // 4 non-zero: 8 + 4·32 = 136 bits), then 2 loads (16 + 8 B), conv, store (8 B).
    set(Event::DramRead, 256 + 136 + 128 + 64);
    set(Event::DramWrite, 256 + 64);
    set(Event::GbufWrite, 32 + 32 + 17);
    set(Event::GbufRead, 32 + 32);
    set(Event::DmaRow, 2 + 1 + 1 + 1 + 1 + 1);
    set(Event::VecOp, 8);
    set(Event::IbufWrite, 16);
    set(Event::WbufWrite, 8);
    // conv: 4 MAC slots. (p0,c0) 1·3 random; (p0,c1) 0·0 and (p1,c0) 0·3 have a zero `a`: skipped
    // (skip=in); (p1,c1) 2·0 gated.
    set(Event::MacFp32Random, 1);
    set(Event::MacFp32Skipped, 2);
    set(Event::MacFp32Gated, 1);
    set(Event::RfRead, 1);
    set(Event::RfWrite, 1);
    // ws dataflow, one pass: `a` read compressed (4 bits + 2·32 = 68 bits → 9 B), `b` dense 8 B,
    // output written once (8 B) and read by the store (8 B).
    set(Event::IbufRead, 9);
    set(Event::WbufRead, 8);
    set(Event::ObufWrite, 8);
    set(Event::ObufRead, 8);
    set(Event::CtrlIssue, 9);
    set(Event::LeakCycle, stats.cycles);
    for &e in Event::ALL {
        assert_eq!(t[e], want[e as usize], "{}", e.name());
    }
    // Attribution to tags: the conv's MACs are under layer 3 / ff.
    let conv = stats.ledger.tags.iter().find(|(k, _)| k.layer == 3).unwrap().1;
    assert_eq!(conv.events[Event::MacFp32Random], 1);
    assert_eq!(conv.dense_macs, 4);
}

#[test]
fn energy_is_events_times_table() {
    let mut s = sim();
    let stats = s.run().unwrap();
    let machine = Machine::resolve("trainer-28nm").unwrap();
    let report = Report::new(&stats, s.cost(), s.program());
    let t = stats.ledger.total();
    let want: f64 = Event::ALL
        .iter()
        .map(|&e| t[e] as f64 * machine.pj_by_name(e.component(), e.action()).unwrap())
        .sum();
    assert!(
        (report.total.energy_pj - want).abs() <= 1e-9 * want,
        "{} vs {want}",
        report.total.energy_pj
    );
    let leak = machine.pj_by_name("leak", "cycle").unwrap() * stats.cycles as f64;
    assert!((report.total.components["leak"] - leak).abs() <= 1e-9 * leak);
    assert!(report
        .tags
        .iter()
        .any(|r| r.name.as_deref() == Some("tiny_conv") && r.phase == "ff"));
}

#[test]
fn same_inputs_give_identical_reports() {
    let (mut a, mut b) = (sim(), sim());
    let (ra, rb) = (a.run().unwrap(), b.run().unwrap());
    let ja = Report::new(&ra, a.cost(), a.program()).to_json();
    let jb = Report::new(&rb, b.cost(), b.program()).to_json();
    assert_eq!(ja, jb);
    // A second run on the same simulator (DRAM kept) gives the same report too.
    let rc = a.run().unwrap();
    assert_eq!(Report::new(&rc, a.cost(), a.program()).to_json(), ja);
    assert!(!Report::new(&ra, a.cost(), a.program()).to_table().is_empty());
}
