//! The dataflow model in cycles: the dataflow's compressed operand is the one whose zeros are
//! skipped, the other one's zeros are gated; `adaptive` streams the sparser operand as the
//! density counters see it; PE regrouping shortens an unbalanced layer.

mod common;
use common::{Asm, Geo, Rng};
use trainer_sim::ledger::Event;
use trainer_sim::RunStats;

fn geo() -> Geo {
    Geo::same3x3(1, 16, (8, 8), 32)
}

/// One FF conv of `x` with weights `w` masked by `wm` (`skip=in+w`, dataflow `df`) on `machine`;
/// the loads feed density counters `dc0` (x) and `dc1` (the mask, i.e. the kept weights).
/// Returns the output and the run's statistics.
fn conv_ff(machine: &str, df: &str, x: &[f32], w: &[f32], wm: &[f32]) -> (Vec<f32>, RunStats) {
    let g = geo();
    let mut p = Asm::default();
    let (xa, wa, ma, ya) = (
        p.tensor("x", "f32", &[x.len()]),
        p.tensor("w", "f32", &[w.len()]),
        p.tensor("wm", "f32", &[wm.len()]),
        p.tensor("y", "f32", &[g.y_len()]),
    );
    let load = |at: u32, n: usize, ctr: &str, buf: &str| {
        format!(
            "dma.load fmt=dense ar=ar0 ctr={ctr} rows=1 row_bytes={} dstride=0 bstride=0 dram=dram:f32@{at} buf={buf}",
            4 * n
        )
    };
    p.op("dc.clear ctr=dc0").op("dc.clear ctr=dc1");
    p.op(load(xa, x.len(), "dc0", "ibuf:f32@0"))
        .op(load(wa, w.len(), "none", "wbuf:f32@0"))
        .op(load(ma, wm.len(), "dc1", "gbuf:f32@0"));
    p.op(format!(
        "conv mode=ff df={df} skip=in+w opt=none dci=dc0 dcw=dc1 {} a=ibuf:f32@0 b=wbuf:f32@0 out=obuf:f32@0 wmask=gbuf:f32@0",
        g.fields()
    ));
    p.store(ya, "f32", 4 * g.y_len() as u32, "obuf:f32@0");
    let mut sim = p.sim_on(machine);
    sim.write_tensor("x", x).unwrap();
    sim.write_tensor("w", w).unwrap();
    sim.write_tensor("wm", wm).unwrap();
    let stats = sim.run().unwrap();
    (sim.read_tensor("y").unwrap(), stats)
}

/// Dense weights with a pruning mask keeping `keep` of them, and activations of density `dx`.
fn operands(seed: u64, dx: f64, keep: f64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let g = geo();
    let mut rng = Rng(seed);
    (
        rng.vec(g.x_len(), dx),
        rng.vec(g.w_len(), 1.0),
        rng.mask(g.w_len(), keep),
    )
}

fn macs(s: &RunStats) -> [u64; 3] {
    let t = s.ledger.total();
    [Event::MacFp32Random, Event::MacFp32Gated, Event::MacFp32Skipped].map(|e| t[e])
}

#[test]
fn the_compressed_operand_decides_the_cycles() {
    // Sparse (masked) weights, dense activations.
    let (x, w, wm) = operands(31, 1.0, 0.1);
    let (y_ws, ws) = conv_ff("trainer-28nm", "ws", &x, &w, &wm);
    let (y_is, is) = conv_ff("trainer-28nm", "is", &x, &w, &wm);
    assert_eq!(y_ws, y_is, "the dataflow never changes the result");
    let ([r_ws, g_ws, s_ws], [r_is, g_is, s_is]) = (macs(&ws), macs(&is));
    assert_eq!(r_ws, r_is, "same effective MACs");
    assert_eq!(r_ws + g_ws + s_ws, r_is + g_is + s_is, "same dense MACs");
    // ws compresses the (dense) activations: the pruned weights' MACs are only gated; is
    // compresses the weights: they are skipped.
    assert!(g_ws > 5 * g_is.max(1), "gated ws {g_ws} vs is {g_is}");
    assert!(
        is.busy[2] * 3 < ws.busy[2],
        "compute cycles is {} vs ws {}",
        is.busy[2],
        ws.busy[2]
    );
    // And the other way round: sparse activations, dense weights.
    let (x, w, wm) = operands(32, 0.1, 1.0);
    let (_, ws) = conv_ff("trainer-28nm", "ws", &x, &w, &wm);
    let (_, is) = conv_ff("trainer-28nm", "is", &x, &w, &wm);
    assert!(
        ws.busy[2] * 3 < is.busy[2],
        "ws {} vs is {}",
        ws.busy[2],
        is.busy[2]
    );
}

#[test]
fn adaptive_streams_the_sparser_operand_from_the_counters() {
    for (seed, dx, keep, want) in [(41, 1.0, 0.1, "is"), (42, 0.1, 1.0, "ws"), (43, 0.5, 0.3, "is")] {
        let (x, w, wm) = operands(seed, dx, keep);
        let (y, adaptive) = conv_ff("trainer-28nm", "adaptive", &x, &w, &wm);
        let (y_fixed, fixed) = conv_ff("trainer-28nm", want, &x, &w, &wm);
        assert_eq!(y, y_fixed);
        assert_eq!(macs(&adaptive), macs(&fixed), "dx {dx}, kept {keep}: {want}");
        assert_eq!(adaptive.busy, fixed.busy);
    }
    // A machine without adaptive dataflow runs `adaptive` as `ws`.
    let (x, w, wm) = operands(41, 1.0, 0.1);
    let (_, base) = conv_ff("baseline-sdt", "adaptive", &x, &w, &wm);
    let (_, ws) = conv_ff("baseline-sdt", "ws", &x, &w, &wm);
    assert_eq!(macs(&base), macs(&ws));
}

#[test]
fn regrouping_shortens_an_unbalanced_layer() {
    // Weights kept only in the first output channels: with the weights compressed (`is`) the
    // first PE group gets all the work unless regrouping spreads it over the groups.
    let g = geo();
    let (x, w, mut wm) = operands(51, 1.0, 0.5);
    wm[g.w_len() / 8..].iter_mut().for_each(|v| *v = 0.0);
    let run = |regroup: u32| {
        let mut p = Asm::default();
        let (xa, wa) = (p.tensor("x", "f32", &[x.len()]), p.tensor("w", "f32", &[w.len()]));
        let ma = p.tensor("wm", "f32", &[wm.len()]);
        p.op(format!("cfg.seti reg=regroup value={regroup}"));
        p.load(xa, "f32", 4 * x.len() as u32, "ibuf:f32@0")
            .load(wa, "f32", 4 * w.len() as u32, "wbuf:f32@0")
            .load(ma, "f32", 4 * wm.len() as u32, "gbuf:f32@0");
        p.op(format!(
            "conv mode=ff df=is skip=in+w dci=none dcw=none {} a=ibuf:f32@0 b=wbuf:f32@0 out=obuf:f32@0 wmask=gbuf:f32@0",
            g.fields()
        ));
        let mut sim = p.sim();
        sim.write_tensor("x", &x).unwrap();
        sim.write_tensor("w", &w).unwrap();
        sim.write_tensor("wm", &wm).unwrap();
        sim.run().unwrap()
    };
    let (off, on) = (run(0), run(1));
    assert_eq!(
        macs(&off),
        macs(&on),
        "regrouping moves work, it does not remove it"
    );
    let startup = 32;
    let (c_off, c_on) = (off.busy[2] - startup, on.busy[2] - startup);
    assert!(c_off >= 6 * c_on, "unbalanced {c_off} vs regrouped {c_on}");
}

#[test]
fn the_bn_on_read_unit_counts_the_normalised_input() {
    // A dense pre-BN input that BN+ReLU leaves ~10% non-zero, loaded without a counter: the
    // BN-on-read unit counts it. With 30% of the weights kept `adaptive` must stream the input
    // (`ws`; counting pre-BN values would say `is`), with 3% the weights (`is`; no count at all
    // would say `ws`).
    let g = geo();
    let block: Vec<f32> = [0.8f32, 1.0, 1.0, 0.0]
        .iter()
        .flat_map(|&v| std::iter::repeat_n(v, g.c))
        .collect();
    let run = |df: &str, keep: f64| {
        let (x, w, wm) = operands(61, 1.0, keep);
        let mut p = Asm::default();
        let (xa, wa) = (p.tensor("x", "f32", &[x.len()]), p.tensor("w", "f32", &[w.len()]));
        let (ma, ba) = (
            p.tensor("wm", "f32", &[wm.len()]),
            p.tensor("bn", "f32", &[block.len()]),
        );
        p.op("dc.clear ctr=dc0").op("dc.clear ctr=dc1");
        p.load(xa, "f32", 4 * x.len() as u32, "ibuf:f32@0")
            .load(wa, "f32", 4 * w.len() as u32, "wbuf:f32@0")
            .load(ba, "f32", 4 * block.len() as u32, "gbuf:f32@0");
        p.op(format!(
            "dma.load fmt=dense ar=ar0 ctr=dc1 rows=1 row_bytes={} dstride=0 bstride=0 dram=dram:f32@{ma} buf=gbuf:f32@4096",
            4 * wm.len()
        ));
        p.op(format!(
            "conv mode=ff df={df} skip=in+w opt=bnrelu dci=dc0 dcw=dc1 {} a=ibuf:f32@0 b=wbuf:f32@0 out=obuf:f32@0 wmask=gbuf:f32@4096 bna=gbuf:f32@0",
            g.fields()
        ));
        let mut sim = p.sim();
        sim.write_tensor("x", &x).unwrap();
        sim.write_tensor("w", &w).unwrap();
        sim.write_tensor("wm", &wm).unwrap();
        sim.write_tensor("bn", &block).unwrap();
        sim.run().unwrap()
    };
    for (keep, want, other) in [(0.3, "ws", "is"), (0.03, "is", "ws")] {
        let (adaptive, right, wrong) = (run("adaptive", keep), run(want, keep), run(other, keep));
        assert_eq!(macs(&adaptive), macs(&right), "kept {keep}: {want}");
        assert_ne!(macs(&adaptive), macs(&wrong));
        assert!(right.busy[2] < wrong.busy[2]);
    }
}
