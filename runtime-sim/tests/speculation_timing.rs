//! Low-precision numerics, S2/S3 speculation, and the timing model (double buffering, load
//! imbalance and PE regrouping).

mod common;
use common::{Asm, Geo, Rng};
use trainer_sim::ledger::Event;
use trainer_sim::RunStats;

fn geo() -> Geo {
    Geo::same3x3(1, 8, (6, 6), 8)
}

/// conv FF with storage dtype `dt` in MAC mode `prec`, all tensors f32 in DRAM converted on chip.
fn conv_in(
    prec: &str,
    dt: &str,
    x: &[f32],
    w: &[f32],
    pre: &str,
    extra: &str,
    s3: Option<&[f32]>,
) -> (Vec<f32>, RunStats) {
    let g = geo();
    let mut p = Asm::default();
    let (xa, wa, ya) = (
        p.tensor("x", "f32", &[x.len()]),
        p.tensor("w", "f32", &[w.len()]),
        p.tensor("y", "f32", &[g.y_len()]),
    );
    let sa = p.tensor("s3", "f32", &[4 * g.k]);
    p.op(format!("cfg.prec prec={prec}"));
    p.op(pre);
    p.op(format!("convert n={} src=dram:f32@{xa} out=ibuf:{dt}@0", x.len()));
    p.op(format!("convert n={} src=dram:f32@{wa} out=wbuf:{dt}@0", w.len()));
    p.op(format!("convert n={} src=dram:f32@{sa} out=gbuf:f32@0", 4 * g.k));
    let s3op = if s3.is_some() { "s3=gbuf:f32@0" } else { "" };
    p.op(format!(
        "conv mode=ff df=ws skip=in+w dci=none dcw=none {} a=ibuf:{dt}@0 b=wbuf:{dt}@0 out=obuf:f32@0 {s3op} {extra}",
        g.fields()
    ));
    p.op(format!(
        "convert n={} src=obuf:f32@0 out=dram:f32@{ya}",
        g.y_len()
    ));
    let mut sim = p.sim();
    sim.write_tensor("x", x).unwrap();
    sim.write_tensor("w", w).unwrap();
    sim.write_tensor("s3", s3.unwrap_or(&vec![0.0; 4 * g.k])).unwrap();
    let stats = sim.run().unwrap();
    (sim.read_tensor("y").unwrap(), stats)
}

#[test]
fn low_precision_rounds_operands_and_accumulates_in_f32() {
    let mut rng = Rng(21);
    let g = geo();
    let (x, w) = (rng.vec(g.x_len(), 0.8), rng.vec(g.w_len(), 0.8));
    for (prec, dt, q) in [
        (
            "fp16",
            "f16",
            (|v: f32| half::f16::from_f32(v).to_f32()) as fn(f32) -> f32,
        ),
        ("fp8", "e4m3", |v: f32| {
            // Reference E4M3 rounding through the simulator's own kernel format.
            trainer_sim::kernels::numeric::Format::E4M3.quantize(v)
        }),
    ] {
        let (xq, wq): (Vec<f32>, Vec<f32>) = (
            x.iter().map(|&v| q(v)).collect(),
            w.iter().map(|&v| q(v)).collect(),
        );
        let mut y = vec![0.0f64; g.y_len()];
        g.each_mac(|xi, wi, yi| y[yi] += f64::from(xq[xi]) * f64::from(wq[wi]));
        let (got, stats) = conv_in(prec, dt, &x, &w, "nop", "", None);
        common::close(&got, &y, 1e-5);
        let t = stats.ledger.total();
        let random = if prec == "fp16" {
            Event::MacFp16Random
        } else {
            Event::MacFp8Random
        };
        assert!(
            t[random] > 0 && t[Event::MacFp32Random] == 0,
            "MACs charged in the {prec} mode"
        );
    }
}

#[test]
fn s3_predicts_zeroed_outputs_and_reports_misspeculation() {
    let mut rng = Rng(22);
    let g = geo();
    let (x, w) = (rng.vec(g.x_len(), 0.8), rng.vec(g.w_len(), 0.8));
    // BN block of the following BN: μ = 0, σ⁻¹ = 1, γ = 1, β = 0, so outputs < 0 are zeroed by ReLU.
    let mut blk = vec![0.0f32; 4 * g.k];
    blk[g.k..3 * g.k].iter_mut().for_each(|v| *v = 1.0);
    let (exact, s0) = conv_in("fp32", "f32", &x, &w, "nop", "", None);
    let (spec, s1) = conv_in("fp32", "f32", &x, &w, "nop", "", Some(&blk));
    let (off, _) = conv_in(
        "fp32",
        "f32",
        &x,
        &w,
        "cfg.seti reg=spec_enable value=3",
        "",
        Some(&blk),
    );
    assert_eq!(off, exact, "S3 disabled = plain computation");
    // Outputs predicted positive are exact; the others hold the e5m2 prediction (negative).
    let mut replaced = 0;
    for (e, s) in exact.iter().zip(&spec) {
        if e != s {
            replaced += 1;
            assert!(*s < 0.0);
        }
    }
    assert!(replaced > 0);
    assert!(s1.s3.0 > 0, "some outputs predicted zero");
    assert!(s1.s3.1 <= s1.s3.0);
    let (t0, t1) = (s0.ledger.total(), s1.ledger.total());
    assert!(t1[Event::MacFp32Skipped] > t0[Event::MacFp32Skipped]);
    assert!(t1[Event::SpecS3] > 0);
    // With ReLU after BN both give the same post-ReLU values except mis-speculated outputs.
    let wrong = exact
        .iter()
        .zip(&spec)
        .filter(|(e, s)| e.max(0.0) != s.max(0.0))
        .count() as u64;
    assert_eq!(wrong, s1.s3.1);
}

/// A program that streams `tiles` tiles: load → matmul → store, with or without double buffering.
fn stream(double: bool) -> RunStats {
    let (rows, k, n, tiles) = (64usize, 64usize, 64usize, 6usize);
    let mut p = Asm::default();
    let xa = p.tensor("x", "f16", &[tiles * rows * k]);
    let wa = p.tensor("w", "f16", &[k * n]);
    let ya = p.tensor("y", "f16", &[tiles * rows * n]);
    let tb = (rows * k * 2) as u32;
    let ob = (rows * n * 2) as u32;
    p.op("cfg.prec prec=fp16");
    p.load(wa, "f16", (k * n * 2) as u32, "wbuf:f16@0");
    p.op("tok.signal q=load tok=9").op("tok.wait q=compute tok=9");
    let slots = if double { 2 } else { 1 };
    for s in 0..slots {
        p.op(format!("tok.signal q=compute tok={}", 10 + s)); // ibuf slot free
        p.op(format!("tok.signal q=store tok={}", 20 + s)); // obuf slot free
    }
    for t in 0..tiles {
        let s = t % slots;
        p.op(format!("tok.wait q=load tok={}", 10 + s));
        p.load(
            xa + t as u32 * tb,
            "f16",
            tb,
            &format!("ibuf:f16@{}", s as u32 * tb),
        );
        p.op(format!("tok.signal q=load tok={}", 30 + s));
        p.op(format!("tok.wait q=compute tok={}", 30 + s));
        p.op(format!("tok.wait q=compute tok={}", 20 + s));
        p.op(format!(
            "matmul mode=ff df=ws dci=none dcw=none m={rows} k={k} n={n} a=ibuf:f16@{} b=wbuf:f16@0 out=obuf:f16@{}",
            s as u32 * tb,
            s as u32 * ob
        ));
        p.op(format!("tok.signal q=compute tok={}", 10 + s));
        p.op(format!("tok.signal q=compute tok={}", 40 + s));
        p.op(format!("tok.wait q=store tok={}", 40 + s));
        p.store(
            ya + t as u32 * ob,
            "f16",
            ob,
            &format!("obuf:f16@{}", s as u32 * ob),
        );
        p.op(format!("tok.signal q=store tok={}", 20 + s));
    }
    let mut sim = p.sim();
    let mut rng = Rng(23);
    sim.write_tensor("x", &rng.vec(tiles * rows * k, 1.0)).unwrap();
    sim.write_tensor("w", &rng.vec(k * n, 1.0)).unwrap();
    sim.run().unwrap()
}

#[test]
fn double_buffering_overlaps_dma_and_compute() {
    let (single, double) = (stream(false), stream(true));
    let (a, b) = (single.ledger.total(), double.ledger.total());
    for &e in Event::ALL
        .iter()
        .filter(|&&e| e != Event::CtrlIssue && e != Event::LeakCycle)
    {
        assert_eq!(a[e], b[e], "same work: {}", e.name());
    }
    // Single buffering serialises load, compute and store; double buffering overlaps them.
    assert!(
        double.cycles * 4 < single.cycles * 3,
        "double {} vs single {}",
        double.cycles,
        single.cycles
    );
}

#[test]
fn load_imbalance_shows_and_regrouping_rebalances() {
    // Weights non-zero only for the first output channels: with the weights compressed (`is`,
    // skip=w) the first PE group gets all the work unless regrouping spreads it.
    let g = Geo {
        k: 64,
        c: 16,
        h: 8,
        w: 8,
        ..geo()
    };
    let mut rng = Rng(24);
    let x = rng.vec(g.x_len(), 1.0);
    let mut w = rng.vec(g.w_len(), 1.0);
    w[g.w_len() / 8..].iter_mut().for_each(|v| *v = 0.0);
    let run = |regroup: u32| {
        let mut p = Asm::default();
        let (xa, wa) = (p.tensor("x", "f32", &[x.len()]), p.tensor("w", "f32", &[w.len()]));
        p.op(format!("cfg.seti reg=regroup value={regroup}"));
        p.load(xa, "f32", 4 * x.len() as u32, "ibuf:f32@0")
            .load(wa, "f32", 4 * w.len() as u32, "wbuf:f32@0");
        p.op(format!(
            "conv mode=ff df=is skip=in+w dci=none dcw=none {} a=ibuf:f32@0 b=wbuf:f32@0 out=obuf:f32@0",
            g.fields()
        ));
        let mut sim = p.sim();
        sim.write_tensor("x", &x).unwrap();
        sim.write_tensor("w", &w).unwrap();
        sim.run().unwrap()
    };
    let (off, on) = (run(0), run(1));
    assert_eq!(
        off.ledger.total()[Event::MacFp32Random],
        on.ledger.total()[Event::MacFp32Random]
    );
    let startup = 32;
    let (c_off, c_on) = (off.busy[2] - startup, on.busy[2] - startup);
    assert!(c_off >= 6 * c_on, "imbalanced {c_off} vs regrouped {c_on}");
}
