//! Streaming instructions (BN in both forms, pooling, loss, SGD, elementwise, masks) against naive
//! f64 references, run through the simulator with operands in DRAM.

mod common;
use common::{close, Asm, Geo, Rng};
use trainer_sim::Simulator;

/// Declares f32 tensors `names` with lengths, assembles `code`, writes inputs, runs.
fn run(tensors: &[(&str, &str, usize)], code: &str, inputs: &[(&str, &[f32])]) -> Simulator {
    let mut p = Asm::default();
    let mut lines = code.to_string();
    let mut subst: Vec<(String, String)> = tensors
        .iter()
        .map(|(name, dtype, n)| {
            (
                format!("${name}"),
                format!("dram:{dtype}@{}", p.tensor(name, dtype, &[*n])),
            )
        })
        .collect();
    // Longest names first, so `$w` does not replace inside `$wm`.
    subst.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    for (k, v) in subst {
        lines = lines.replace(&k, &v);
    }
    for l in lines.lines().filter(|l| !l.trim().is_empty()) {
        p.op(l.trim());
    }
    let mut sim = p.sim();
    for (name, v) in inputs {
        sim.write_tensor(name, v).unwrap();
    }
    sim.run().unwrap();
    sim
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

#[test]
fn elementwise_ops() {
    let mut rng = Rng(1);
    let n = 37;
    let (a, b) = (rng.vec(n, 0.8), rng.vec(n, 0.8));
    let t = [
        ("a", "f32", n),
        ("b", "f32", n),
        ("o1", "f32", n),
        ("m1", "b1", n),
        ("o2", "f32", n),
        ("o3", "f32", n),
        ("m3", "f32", n),
        ("o4", "f32", n),
        ("o5", "f32", n),
        ("o6", "f16", n),
        ("o7", "f32", n),
    ];
    let sim = run(
        &t,
        &format!(
            "relu n={n} src=$a out=$o1 mask=$m1
             relu.bwd n={n} dy=$b mask=$m1 out=$o2
             clip n={n} lo=-0.5 hi=0.5 src=$a out=$o3 mask=$m3
             add n={n} a=$a b=$b out=$o4
             axpy n={n} alpha=2.5 x=$a y=$b out=$o5
             convert n={n} src=$a out=$o6
             fill n={n} value=0.25 out=$o7"
        ),
        &[("a", &a), ("b", &b)],
    );
    let r = |name| sim.read_tensor(name).unwrap();
    close(
        &r("o1"),
        &a.iter().map(|&x| f64::from(x.max(0.0))).collect::<Vec<_>>(),
        0.0,
    );
    close(
        &r("o2"),
        &a.iter()
            .zip(&b)
            .map(|(&x, &g)| if x > 0.0 { f64::from(g) } else { 0.0 })
            .collect::<Vec<_>>(),
        0.0,
    );
    close(
        &r("o3"),
        &a.iter()
            .map(|&x| f64::from(x.clamp(-0.5, 0.5)))
            .collect::<Vec<_>>(),
        0.0,
    );
    close(
        &r("m3"),
        &a.iter()
            .map(|&x| f64::from(u8::from(-0.5 < x && x < 0.5)))
            .collect::<Vec<_>>(),
        0.0,
    );
    close(
        &r("o4"),
        &a.iter()
            .zip(&b)
            .map(|(&x, &y)| f64::from(x) + f64::from(y))
            .collect::<Vec<_>>(),
        1e-7,
    );
    close(
        &r("o5"),
        &a.iter()
            .zip(&b)
            .map(|(&x, &y)| 2.5 * f64::from(x) + f64::from(y))
            .collect::<Vec<_>>(),
        1e-6,
    );
    close(
        &r("o6"),
        &a.iter()
            .map(|&x| f64::from(half::f16::from_f32(x).to_f32()))
            .collect::<Vec<_>>(),
        0.0,
    );
    close(&r("o7"), &vec![0.25; n], 0.0);
}

#[test]
fn bias_add_and_grad() {
    let mut rng = Rng(2);
    let (n, c, hw) = (2, 3, 5);
    let (x, bias) = (rng.vec(n * c * hw, 1.0), rng.vec(c, 1.0));
    let sim = run(
        &[("x", "f32", n * c * hw), ("bias", "f32", c), ("y", "f32", n * c * hw), ("g", "f32", c)],
        &format!("bias.add n={n} c={c} hw={hw} src=$x bias=$bias out=$y\nbias.grad n={n} c={c} hw={hw} dy=$x out=$g"),
        &[("x", &x), ("bias", &bias)],
    );
    let y: Vec<f64> = (0..x.len())
        .map(|i| f64::from(x[i]) + f64::from(bias[(i / hw) % c]))
        .collect();
    close(&sim.read_tensor("y").unwrap(), &y, 1e-7);
    let mut g = vec![0.0f64; c];
    x.iter()
        .enumerate()
        .for_each(|(i, &v)| g[(i / hw) % c] += f64::from(v));
    close(&sim.read_tensor("g").unwrap(), &g, 1e-6);
}

/// Naive BN reference: (y, mean, invstd, dx, dgamma, dbeta) for x, dy, gamma, beta.
#[allow(clippy::too_many_arguments)] // the BN problem's natural parameters
fn bn_ref(
    n: usize,
    c: usize,
    hw: usize,
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
) -> [Vec<f64>; 6] {
    let m = (n * hw) as f64;
    let ch = |i: usize| (i / hw) % c;
    let mut mean = vec![0.0; c];
    let mut var = vec![0.0; c];
    x.iter()
        .enumerate()
        .for_each(|(i, &v)| mean[ch(i)] += f64::from(v) / m);
    x.iter()
        .enumerate()
        .for_each(|(i, &v)| var[ch(i)] += (f64::from(v) - mean[ch(i)]).powi(2) / m);
    let inv: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let xhat: Vec<f64> = (0..x.len())
        .map(|i| (f64::from(x[i]) - mean[ch(i)]) * inv[ch(i)])
        .collect();
    let y: Vec<f64> = (0..x.len())
        .map(|i| f64::from(gamma[ch(i)]) * xhat[i] + f64::from(beta[ch(i)]))
        .collect();
    let (mut dg, mut db) = (vec![0.0; c], vec![0.0; c]);
    for i in 0..x.len() {
        dg[ch(i)] += f64::from(dy[i]) * xhat[i];
        db[ch(i)] += f64::from(dy[i]);
    }
    let dx = (0..x.len())
        .map(|i| {
            f64::from(gamma[ch(i)]) * inv[ch(i)] / m
                * (m * f64::from(dy[i]) - db[ch(i)] - xhat[i] * dg[ch(i)])
        })
        .collect();
    [y, mean, inv, dx, dg, db]
}

#[test]
fn bn_conventional_forward_and_backward() {
    let mut rng = Rng(4);
    let (n, c, hw) = (3, 4, 6);
    let len = n * c * hw;
    let x: Vec<f32> = rng.vec(len, 1.0).iter().map(|v| 2.0 * v + 0.3).collect();
    let dy = rng.vec(len, 1.0);
    let (gamma, beta) = (rng.vec(c, 1.0), rng.vec(c, 1.0));
    let mut block = vec![0.0f32; 4 * c];
    block[2 * c..3 * c].copy_from_slice(&gamma);
    block[3 * c..].copy_from_slice(&beta);
    let running: Vec<f32> = [vec![0.0; c], vec![1.0; c]].concat();
    let sim = run(
        &[
            ("x", "f32", len),
            ("dy", "f32", len),
            ("stats", "f32", 2 * c),
            ("block", "f32", 4 * c),
            ("run", "f32", 2 * c),
            ("y", "f32", len),
            ("sums", "f32", 2 * c),
            ("dx", "f32", len),
        ],
        &format!(
            "fill n={} value=0 out=$stats
             bn.stats n={n} c={c} hw={hw} src=$x stats=$stats
             bn.finalize c={c} count={} stats=$stats block=$block running=$run
             bn.apply n={n} c={c} hw={hw} src=$x block=$block out=$y
             bn.bwd_reduce n={n} c={c} hw={hw} dy=$dy x=$x block=$block sums=$sums
             bn.bwd n={n} c={c} hw={hw} dy=$dy x=$x block=$block sums=$sums dx=$dx",
            2 * c,
            n * hw
        ),
        &[("x", &x), ("dy", &dy), ("block", &block), ("run", &running)],
    );
    let [y, mean, inv, dx, dg, db] = bn_ref(n, c, hw, &x, &dy, &gamma, &beta, 1e-5);
    let blk = sim.read_tensor("block").unwrap();
    close(&blk[..c], &mean, 1e-5);
    close(&blk[c..2 * c], &inv, 1e-4);
    close(&sim.read_tensor("y").unwrap(), &y, 1e-4);
    let sums = sim.read_tensor("sums").unwrap();
    close(&sums[..c], &dg, 1e-4);
    close(&sums[c..], &db, 1e-5);
    close(&sim.read_tensor("dx").unwrap(), &dx, 1e-4);
    // Running statistics, PyTorch convention (momentum 0.1, unbiased variance).
    let m = (n * hw) as f64;
    let rv: Vec<f64> = inv
        .iter()
        .map(|i| 0.9 + 0.1 * (1.0 / (i * i) - 1e-5) * m / (m - 1.0))
        .collect();
    let r = sim.read_tensor("run").unwrap();
    close(&r[..c], &mean.iter().map(|v| 0.1 * v).collect::<Vec<_>>(), 1e-5);
    close(&r[c..], &rv, 1e-4);
}

#[test]
fn bn_decoupled_equals_conventional() {
    // conv FF with `bns` (statistics on write), the next conv reading through `bna` (+ReLU), and the
    // BP with `bns` giving BN backward sums: equal to the conventional passes.
    let mut rng = Rng(6);
    let g = Geo::same3x3(2, 3, (5, 5), 4);
    let g2 = Geo { c: 4, k: 2, ..g };
    let (x, w, w2, dy2) = (
        rng.vec(g.x_len(), 0.9),
        rng.vec(g.w_len(), 0.9),
        rng.vec(g2.w_len(), 0.9),
        rng.vec(g2.y_len(), 0.9),
    );
    let (gamma, beta) = (rng.vec(4, 1.0), rng.vec(4, 1.0));
    let mut block = vec![0.0f32; 16];
    block[8..12].copy_from_slice(&gamma);
    block[12..].copy_from_slice(&beta);
    let hw = 25;
    let (yl, z) = (g.y_len(), g2.y_len());
    let mut p = Asm::default();
    let addr = |p: &mut Asm, n: &str, len| p.tensor(n, "f32", &[len]);
    let (xa, wa, w2a, dya, ba) = (
        addr(&mut p, "x", g.x_len()),
        addr(&mut p, "w", g.w_len()),
        addr(&mut p, "w2", g2.w_len()),
        addr(&mut p, "dy2", z),
        addr(&mut p, "block", 16),
    );
    let (out_dec, out_conv, sums_dec, sums_conv) = (
        addr(&mut p, "z_dec", z),
        addr(&mut p, "z_conv", z),
        addr(&mut p, "s_dec", 8),
        addr(&mut p, "s_conv", 8),
    );
    let ga = |o: usize| format!("gbuf:f32@{}", 4 * o);
    // gbuf layout: stats 0..8, block 8..24, sums 24..32, h (pre-BN, yl) 32.., a (post, yl), dh (yl)
    let (st, bl, sm, h, a, dh) = (0, 8, 24, 32, 32 + yl, 32 + 2 * yl);
    p.load(xa, "f32", 4 * g.x_len() as u32, "ibuf:f32@0")
        .load(wa, "f32", 4 * g.w_len() as u32, "wbuf:f32@0");
    p.load(
        w2a,
        "f32",
        4 * g2.w_len() as u32,
        &format!("wbuf:f32@{}", 4 * g.w_len()),
    );
    p.load(ba, "f32", 64, &ga(bl))
        .load(dya, "f32", 4 * z as u32, "ibuf:f32@8192");
    let w2buf = format!("wbuf:f32@{}", 4 * g.w_len());
    let count = 2 * hw;
    // Decoupled: conv1 FF writes h to obuf with stats; finalize; conv2 reads h through bna+relu.
    p.op(format!("fill n=8 value=0 out={}", ga(st)));
    p.op(format!(
        "conv mode=ff df=ws dci=none dcw=none {} a=ibuf:f32@0 b=wbuf:f32@0 out=obuf:f32@0 bns={}",
        g.fields(),
        ga(st)
    ));
    p.op(format!(
        "bn.finalize c=4 count={count} stats={} block={}",
        ga(st),
        ga(bl)
    ));
    p.op(format!(
        "conv mode=ff df=ws dci=none dcw=none opt=bnrelu {} a=obuf:f32@0 b={w2buf} out=obuf:f32@{} bna={}",
        g2.fields(),
        4 * yl,
        ga(bl)
    ));
    p.store(out_dec, "f32", 4 * z as u32, &format!("obuf:f32@{}", 4 * yl));
    // Decoupled BP: conv2 BP writes dh (gradient w.r.t. relu(bn(h))) with the ReLU mask... here the
    // sums use dh directly (no ReLU mask), matching bn.bwd_reduce without a mask.
    p.op(format!("fill n=8 value=0 out={}", ga(sm)));
    p.op(format!("conv mode=bp df=ws dci=none dcw=none {} a=ibuf:f32@8192 b={w2buf} out=obuf:f32@{} bna={} bns={} aux=obuf:f32@0", g2.fields(), 4 * (yl + z), ga(bl), ga(sm)));
    p.store(sums_dec, "f32", 32, &ga(sm));
    // Conventional: the same with separate passes.
    p.op(format!("fill n=8 value=0 out={}", ga(st)));
    p.op(format!(
        "conv mode=ff df=ws dci=none dcw=none {} a=ibuf:f32@0 b=wbuf:f32@0 out={}",
        g.fields(),
        ga(h)
    ));
    p.op(format!("bn.stats n=2 c=4 hw={hw} src={} stats={}", ga(h), ga(st)));
    p.op(format!(
        "bn.finalize c=4 count={count} stats={} block={}",
        ga(st),
        ga(bl)
    ));
    p.op(format!(
        "bn.apply opt=relu n=2 c=4 hw={hw} src={} block={} out={}",
        ga(h),
        ga(bl),
        ga(a)
    ));
    p.op("dma.load fmt=dense ar=ar0 ctr=none rows=0 row_bytes=0 dstride=0 bstride=0 dram=dram:f32@0 buf=ibuf:f32@0".to_string());
    p.op(format!(
        "conv mode=ff df=ws dci=none dcw=none {} a={} b={w2buf} out=obuf:f32@{}",
        g2.fields(),
        ga(a),
        4 * yl
    ));
    p.store(out_conv, "f32", 4 * z as u32, &format!("obuf:f32@{}", 4 * yl));
    p.op(format!(
        "conv mode=bp df=ws dci=none dcw=none {} a=ibuf:f32@8192 b={w2buf} out={}",
        g2.fields(),
        ga(dh)
    ));
    p.op(format!(
        "bn.bwd_reduce n=2 c=4 hw={hw} dy={} x={} block={} sums={}",
        ga(dh),
        ga(h),
        ga(bl),
        ga(sm)
    ));
    p.store(sums_conv, "f32", 32, &ga(sm));
    let mut sim = p.sim();
    for (n, v) in [
        ("x", &x),
        ("w", &w),
        ("w2", &w2),
        ("dy2", &dy2),
        ("block", &block),
    ] {
        sim.write_tensor(n, v).unwrap();
    }
    sim.run().unwrap();
    let (zd, zc) = (
        sim.read_tensor("z_dec").unwrap(),
        sim.read_tensor("z_conv").unwrap(),
    );
    close(&zd, &f64s(&zc), 1e-5);
    let (sd, sc) = (
        sim.read_tensor("s_dec").unwrap(),
        sim.read_tensor("s_conv").unwrap(),
    );
    close(&sd, &f64s(&sc), 1e-5);
}

#[test]
fn pooling_forward_and_backward() {
    let mut rng = Rng(7);
    let (n, c, h, w) = (2, 2, 5, 4);
    let len = n * c * h * w;
    let x = rng.vec(len, 1.0);
    // max 2x2 stride 2 pad (0,0,1,0): OH = (5+1-2)/2+1 = 3, OW = 2
    let (oh, ow) = (3, 2);
    let ol = n * c * oh * ow;
    let dy = rng.vec(ol, 1.0);
    let geo = "r=2 s=2 stride_h=2 stride_w=2 pad_t=0 pad_l=0 pad_b=1 pad_r=0";
    let zero = "r=0 s=0 stride_h=0 stride_w=0 pad_t=0 pad_l=0 pad_b=0 pad_r=0";
    let sim = run(
        &[
            ("x", "f32", len),
            ("dy", "f32", ol),
            ("y", "f32", ol),
            ("idx", "i32", ol),
            ("dx", "f32", len),
            ("ya", "f32", ol),
            ("dxa", "f32", len),
            ("g", "f32", n * c),
            ("dg", "f32", len),
        ],
        &format!(
            "pool kind=max dir=fwd n={n} c={c} h={h} w={w} {geo} src=$x out=$y idx=$idx
             pool kind=max dir=bwd n={n} c={c} h={h} w={w} {geo} src=$dy out=$dx idx=$idx
             pool kind=avg dir=fwd n={n} c={c} h={h} w={w} {geo} src=$x out=$ya
             pool kind=avg dir=bwd n={n} c={c} h={h} w={w} {geo} src=$dy out=$dxa
             pool kind=gavg dir=fwd n={n} c={c} h={h} w={w} {zero} src=$x out=$g
             pool kind=gavg dir=bwd n={n} c={c} h={h} w={w} {zero} src=$dy out=$dg"
        ),
        &[("x", &x), ("dy", &dy)],
    );
    let (mut y, mut dx, mut ya, mut dxa) = (
        vec![0.0f64; ol],
        vec![0.0f64; len],
        vec![0.0f64; ol],
        vec![0.0f64; len],
    );
    for pl in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                let o = pl * oh * ow + oy * ow + ox;
                let mut best: Option<usize> = None;
                for r in 0..2 {
                    for s in 0..2 {
                        let (iy, ix) = (oy * 2 + r, ox * 2 + s);
                        if iy < h && ix < w {
                            let i = pl * h * w + iy * w + ix;
                            if best.is_none_or(|b| x[i] > x[b]) {
                                best = Some(i);
                            }
                            ya[o] += f64::from(x[i]) / 4.0;
                            dxa[i] += f64::from(dy[o]) / 4.0;
                        }
                    }
                }
                let b = best.unwrap();
                y[o] = f64::from(x[b]);
                dx[b] += f64::from(dy[o]);
            }
        }
    }
    close(&sim.read_tensor("y").unwrap(), &y, 0.0);
    close(&sim.read_tensor("dx").unwrap(), &dx, 1e-6);
    close(&sim.read_tensor("ya").unwrap(), &ya, 1e-6);
    close(&sim.read_tensor("dxa").unwrap(), &dxa, 1e-6);
    let gref: Vec<f64> = x
        .chunks(h * w)
        .map(|p| p.iter().map(|&v| f64::from(v)).sum::<f64>() / (h * w) as f64)
        .collect();
    close(&sim.read_tensor("g").unwrap(), &gref, 1e-6);
    let dgref: Vec<f64> = (0..len)
        .map(|i| f64::from(dy[i / (h * w)]) / (h * w) as f64)
        .collect();
    close(&sim.read_tensor("dg").unwrap(), &dgref, 1e-6);
}

#[test]
fn softmax_cross_entropy_and_gradient() {
    let mut rng = Rng(8);
    let (n, c) = (4, 5);
    let z: Vec<f32> = rng.vec(n * c, 1.0).iter().map(|v| 3.0 * v).collect();
    let labels = [1i64, 4, 0, 2];
    let mut p = Asm::default();
    let za = p.tensor("z", "f32", &[n * c]);
    let la = p.tensor("labels", "i64", &[n]);
    let lo = p.tensor("loss", "f32", &[1]);
    let da = p.tensor("dz", "f32", &[n * c]);
    p.op("cfg.set reg=loss_scale value=8");
    p.op(format!("softmax_ce n={n} c={c} logits=dram:f32@{za} labels=dram:i64@{la} loss=dram:f32@{lo} dlogits=dram:f32@{da}"));
    let mut sim = p.sim();
    sim.write_tensor("z", &z).unwrap();
    sim.write_tensor_ints("labels", &labels).unwrap();
    sim.run().unwrap();
    let (mut loss, mut dz) = (0.0f64, vec![0.0f64; n * c]);
    for i in 0..n {
        let row: Vec<f64> = z[i * c..(i + 1) * c].iter().map(|&v| f64::from(v)).collect();
        let s: f64 = row.iter().map(|v| v.exp()).sum();
        loss += (s.ln() - row[labels[i] as usize]) / n as f64;
        for j in 0..c {
            dz[i * c + j] =
                (row[j].exp() / s - f64::from(u8::from(j == labels[i] as usize))) / n as f64 * 8.0;
        }
    }
    close(&sim.read_tensor("loss").unwrap(), &[loss], 1e-5);
    close(&sim.read_tensor("dz").unwrap(), &dz, 1e-5);
    // A label outside 0..C faults.
    sim.write_tensor_ints("labels", &[1, 5, 0, 2]).unwrap();
    let e = sim.run().unwrap_err();
    assert!(e.to_string().contains("softmax_ce"), "{e}");
}

#[test]
fn sgd_with_momentum_weight_decay_and_mask() {
    let mut rng = Rng(10);
    let n = 19;
    let (w, g, v) = (rng.vec(n, 1.0), rng.vec(n, 1.0), rng.vec(n, 1.0));
    let mask = rng.mask(n, 0.6);
    let sim = run(
        &[("w", "f32", n), ("g", "f32", n), ("v", "f32", n), ("m", "f32", n)],
        &format!(
            "cfg.set reg=lr value=0.1
             cfg.set reg=momentum value=0.9
             cfg.set reg=weight_decay value=0.01
             cfg.set reg=loss_scale value=4
             sgd n={n} w=$w g=$g v=$v mask=$m"
        ),
        &[("w", &w), ("g", &g), ("v", &v), ("m", &mask)],
    );
    let (mut wr, mut vr) = (f64s(&w), f64s(&v));
    for i in 0..n {
        if mask[i] != 0.0 {
            let gd = f64::from(g[i]) / 4.0 + 0.01 * wr[i];
            vr[i] = 0.9 * vr[i] + gd;
            wr[i] -= 0.1 * vr[i];
        }
    }
    close(&sim.read_tensor("w").unwrap(), &wr, 1e-6);
    close(&sim.read_tensor("v").unwrap(), &vr, 1e-6);
}

#[test]
fn pruning_masks_speculation_and_density() {
    let w = [0.5f32, -2.0, 0.1, 2.0, -0.3, 0.0, 1.0, -1.0];
    let n = w.len();
    let sim = run(
        &[
            ("w", "f32", n),
            ("m", "b1", n),
            ("wm", "f32", n),
            ("s2", "b1", n),
            ("dc", "f32", n),
        ],
        &format!(
            "prune.topk n={n} k=3 src=$w mask=$m
             mask.apply n={n} src=$w mask=$m out=$wm
             cfg.set reg=s2_margin value=0.5
             spec.s2 n={n} k=3 w=$w mask=$m out=$s2
             density n={n} ctr=dc1 src=$w"
        ),
        &[("w", &w)],
    );
    // Top 3 by magnitude: -2.0 (1), 2.0 (3), then 1.0 / -1.0 tie → lower index 6.
    let m = sim.read_tensor("m").unwrap();
    assert_eq!(m, vec![0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0]);
    assert_eq!(
        sim.read_tensor("wm").unwrap(),
        vec![0.0, -2.0, 0.0, 2.0, 0.0, 0.0, 1.0, 0.0]
    );
    // τ = 1.0, margin 0.5: |w| ≥ 0.5 or kept.
    assert_eq!(
        sim.read_tensor("s2").unwrap(),
        vec![1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    );
}
