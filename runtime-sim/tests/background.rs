//! Conv kernels running in the background and stores waiting for them: hazards between what a
//! pending instruction touches and the instructions after it, and results equal to
//! one-instruction-at-a-time execution.

mod common;
use common::{Asm, Geo, Rng};
use trainer_sim::{RunStats, Simulator};

/// Outputs of the hazard program and the run's statistics.
struct Run {
    outs: Vec<Vec<f32>>,
    stats: RunStats,
}

const OUTS: [&str; 7] = ["y0", "y1", "y2", "y3", "y4", "y5", "y6"];

/// A program in which pending convs and stores meet every kind of hazard: a store reading their
/// output, a load overwriting their input (harmless) or their output, an accumulation chain, a
/// conv reading another's output, a load overwriting what a pending store reads, a load reading
/// what it writes, element-wise instructions reading or overwriting a pending output, an
/// instruction of unknown footprint, and BN statistics accumulated by two convs in a row.
fn hazards(g: &Geo) -> (Asm, usize) {
    let (x_len, w_len, y_len) = (
        g.n * g.c * g.h * g.w,
        g.k * g.c * g.r * g.s,
        g.n * g.k * g.oh() * g.ow(),
    );
    let mut p = Asm::default();
    let (x, x2, w, z) = (
        p.tensor("x", "f32", &[x_len]),
        p.tensor("x2", "f32", &[x_len]),
        p.tensor("w", "f32", &[w_len]),
        p.tensor("z", "f32", &[y_len]),
    );
    let outs: Vec<u32> = OUTS.iter().map(|n| p.tensor(n, "f32", &[y_len])).collect();
    let (xb, yb) = (4 * x_len as u32, 4 * y_len as u32);
    let conv = |p: &mut Asm, extra: &str, a: &str, out: u32| {
        p.op(format!(
            "conv mode=ff df=ws dci=none dcw=none {} a={a} b=wbuf:f32@0 out=obuf:f32@{out} {extra}",
            g.fields()
        ));
    };
    p.load(x, "f32", xb, "ibuf:f32@0")
        .load(x2, "f32", xb, &format!("ibuf:f32@{xb}"))
        .load(w, "f32", 4 * w_len as u32, "wbuf:f32@0");
    let x2_at = format!("ibuf:f32@{xb}");
    // An accumulation chain into obuf@0: y1 = conv(x) + conv(x2).
    conv(&mut p, "", "ibuf:f32@0", 0);
    conv(&mut p, "opt=acc", &x2_at, 0);
    // Overwrites the first conv's input while it may be pending: it read x when it issued.
    p.load(x2, "f32", xb, "ibuf:f32@0");
    conv(&mut p, "", "ibuf:f32@0", yb);
    p.store(outs[1], "f32", yb, "obuf:f32@0");
    // y0 = conv(x2); then a load overwrites that output, and a conv accumulates onto the load.
    p.store(outs[0], "f32", yb, &format!("obuf:f32@{yb}"));
    p.load(z, "f32", yb, &format!("obuf:f32@{yb}"));
    conv(&mut p, "opt=acc", &x2_at, yb);
    // An element-wise instruction reading the pending accumulation: it retires first.
    // y2 = relu(z + y0).
    p.op(format!(
        "relu n={y_len} src=obuf:f32@{yb} out=obuf:f32@{}",
        2 * yb
    ));
    p.store(outs[2], "f32", yb, &format!("obuf:f32@{}", 2 * yb));
    // The store waits to copy: a load overwriting its source, and a load of what it wrote
    // (y5 = y2), make it copy first.
    p.load(z, "f32", yb, &format!("obuf:f32@{}", 2 * yb));
    p.load(outs[2], "f32", yb, &format!("ibuf:f32@{}", 2 * xb));
    p.store(outs[5], "f32", yb, &format!("ibuf:f32@{}", 2 * xb));
    // A conv reading a pending conv's output, and BN statistics accumulated twice.
    p.op(format!("fill n={} value=0 out=gbuf:f32@0", 2 * g.k));
    conv(&mut p, "bns=gbuf:f32@0", "ibuf:f32@0", 3 * yb);
    conv(&mut p, "bns=gbuf:f32@0", &x2_at, 3 * yb);
    p.store(outs[3], "f32", yb, &format!("obuf:f32@{}", 3 * yb));
    p.store(outs[4], "f32", 8 * g.k as u32, "gbuf:f32@0");
    // A fill over a pending conv's output lands after it; an instruction the hazard check does
    // not know (`bias.add`) retires everything first. y6 = 7 + conv(x2) + 0.5 per channel.
    let (y6, bias) = (format!("obuf:f32@{}", 4 * yb), format!("gbuf:f32@{}", 8 * g.k));
    conv(&mut p, "", "ibuf:f32@0", 4 * yb);
    p.op(format!("fill n={y_len} value=7 out={y6}"));
    conv(&mut p, "opt=acc", "ibuf:f32@0", 4 * yb);
    p.op(format!("fill n={} value=0.5 out={bias}", g.k));
    p.op(format!(
        "bias.add n={} c={} hw={} src={y6} bias={bias} out={y6}",
        g.n,
        g.k,
        g.oh() * g.ow()
    ));
    p.store(outs[6], "f32", yb, &y6);
    p.op("halt");
    (p, y_len)
}

fn run(sim: &mut Simulator, background: usize, inputs: &[(&str, &[f32])]) -> Run {
    sim.set_background(background);
    for (name, v) in inputs {
        sim.write_tensor(name, v).unwrap();
    }
    let stats = sim.run().unwrap();
    Run {
        outs: OUTS.iter().map(|n| sim.read_tensor(n).unwrap()).collect(),
        stats,
    }
}

#[test]
fn pending_instructions_retire_before_what_touches_them() {
    let g = Geo::same3x3(2, 3, (6, 5), 4);
    let (p, y_len) = hazards(&g);
    let mut rng = Rng(11);
    let (x, x2) = (
        rng.vec(g.n * g.c * g.h * g.w, 0.7),
        rng.vec(g.n * g.c * g.h * g.w, 0.7),
    );
    let (w, z) = (rng.vec(g.k * g.c * 9, 0.5), rng.vec(y_len, 1.0));
    let inputs: [(&str, &[f32]); 4] = [("x", &x), ("x2", &x2), ("w", &w), ("z", &z)];
    let mut sim = p.sim();
    let one_at_a_time = run(&mut sim, 0, &inputs);
    for background in [1, 2, 4, 16] {
        let r = run(&mut sim, background, &inputs);
        assert_eq!(
            r.outs, one_at_a_time.outs,
            "outputs with {background} in the background"
        );
        assert_eq!(
            r.stats, one_at_a_time.stats,
            "statistics with {background} in the background"
        );
    }
    // What the program means, checked on its own terms.
    let [y0, y1, y2, y3, stats, y5, y6] = &one_at_a_time.outs[..] else {
        unreachable!()
    };
    let shifted: Vec<f32> = y0.iter().map(|&v| 7.0 + v + 0.5).collect();
    assert_eq!(
        y6, &shifted,
        "the fill landed after the conv before it, the bias after both"
    );
    assert!(y0.iter().any(|&v| v != 0.0), "the conv of x2 is not all zero");
    let want: Vec<f32> = z.iter().zip(y0).map(|(&z, &c)| (c + z).max(0.0)).collect();
    assert_eq!(
        y2, &want,
        "relu(z + conv(x2)): the load landed before the accumulation"
    );
    assert_ne!(y1, y0, "y1 accumulates conv(x) and conv(x2)");
    assert_eq!(y5, y2, "a load reads what the store before it wrote");
    // Both convs of the statistics chain compute conv(x2) (ibuf@0 holds x2 by then): the sums
    // over channels add up twice y3's.
    assert_eq!(y3, y0);
    let sum: f64 = y3.iter().map(|&v| f64::from(v)).sum();
    let both: f64 = stats[..g.k].iter().map(|&v| f64::from(v)).sum();
    assert!(
        (both - 2.0 * sum).abs() <= 1e-5 * (1.0 + sum.abs()),
        "sums {both} vs 2 x {sum}"
    );
}
