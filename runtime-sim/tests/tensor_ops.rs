//! conv and matmul through the simulator against naive f64 loops; skipping and S1 exactness.

mod common;
use common::{close, Asm, Geo, Rng};
use trainer_sim::ledger::Event;
use trainer_sim::RunStats;

/// Runs one conv in `mode` with operands `a`, `b` (f32) and options `extra`; returns out and stats.
fn conv(
    g: &Geo,
    mode: &str,
    extra: &str,
    a: &[f32],
    b: &[f32],
    out_len: usize,
    setup: &[(&str, Vec<f32>)],
) -> (Vec<f32>, RunStats) {
    let mut p = Asm::default();
    let (aa, ba, oa) = (
        p.tensor("a", "f32", &[a.len()]),
        p.tensor("b", "f32", &[b.len()]),
        p.tensor("out", "f32", &[out_len]),
    );
    p.load(aa, "f32", 4 * a.len() as u32, "ibuf:f32@0")
        .load(ba, "f32", 4 * b.len() as u32, "wbuf:f32@0");
    let mut gb = 0u32;
    for (name, v) in setup {
        let at = p.tensor(name, "f32", &[v.len()]);
        p.load(at, "f32", 4 * v.len() as u32, &format!("gbuf:f32@{gb}"));
        gb += 4 * v.len() as u32;
    }
    p.op(format!(
        "conv mode={mode} df=ws dci=none dcw=none {} a=ibuf:f32@0 b=wbuf:f32@0 out=obuf:f32@0 {extra}",
        g.fields()
    ));
    p.store(oa, "f32", 4 * out_len as u32, "obuf:f32@0");
    let mut sim = p.sim();
    sim.write_tensor("a", a).unwrap();
    sim.write_tensor("b", b).unwrap();
    for (name, v) in setup {
        sim.write_tensor(name, v).unwrap();
    }
    let stats = sim.run().unwrap();
    (sim.read_tensor("out").unwrap(), stats)
}

fn geos() -> Vec<Geo> {
    vec![
        Geo {
            n: 2,
            c: 4,
            h: 7,
            w: 6,
            k: 6,
            r: 3,
            s: 2,
            stride: (2, 1),
            pad: (1, 0, 1, 1),
            dil: (1, 2),
            groups: 2,
        },
        Geo::same3x3(1, 3, (5, 5), 4),
        Geo {
            n: 2,
            c: 4,
            h: 6,
            w: 6,
            k: 4,
            r: 3,
            s: 3,
            stride: (2, 2),
            pad: (1, 1, 0, 0),
            dil: (1, 1),
            groups: 4,
        },
    ]
}

fn mac_sum(s: &RunStats) -> u64 {
    let t = s.ledger.total();
    [Event::MacFp32Random, Event::MacFp32Gated, Event::MacFp32Skipped]
        .iter()
        .map(|&e| t[e])
        .sum()
}

#[test]
fn conv_ff_bp_wg_match_naive_loops() {
    let mut rng = Rng(3);
    for g in geos() {
        let x = rng.vec(g.x_len(), 0.7);
        let w = rng.vec(g.w_len(), 0.6);
        let dy = rng.vec(g.y_len(), 0.8);
        let (mut y, mut dx, mut dw) = (
            vec![0.0f64; g.y_len()],
            vec![0.0f64; g.x_len()],
            vec![0.0f64; g.w_len()],
        );
        g.each_mac(|xi, wi, yi| {
            y[yi] += f64::from(x[xi]) * f64::from(w[wi]);
            dx[xi] += f64::from(dy[yi]) * f64::from(w[wi]);
            dw[wi] += f64::from(x[xi]) * f64::from(dy[yi]);
        });
        let dense = (g.y_len() * g.w_len() / g.k) as u64;
        for skip in ["none", "in+w"] {
            let e = format!("skip={skip}");
            let (got, s) = conv(&g, "ff", &e, &x, &w, g.y_len(), &[]);
            close(&got, &y, 1e-5);
            assert_eq!(mac_sum(&s), dense, "{g:?}");
            let (got, s) = conv(&g, "bp", &e, &dy, &w, g.x_len(), &[]);
            close(&got, &dx, 1e-5);
            assert_eq!(mac_sum(&s), dense);
            let (got, s) = conv(&g, "wg", &e, &x, &dy, g.w_len(), &[]);
            close(&got, &dw, 1e-5);
            assert_eq!(mac_sum(&s), dense);
        }
    }
}

#[test]
fn skipping_changes_accounting_not_numbers() {
    let mut rng = Rng(5);
    let g = geos()[0];
    let x = rng.vec(g.x_len(), 0.3);
    let w = rng.vec(g.w_len(), 0.3);
    let (plain, s0) = conv(&g, "ff", "skip=none", &x, &w, g.y_len(), &[]);
    let (skipped, s1) = conv(&g, "ff", "skip=in+w", &x, &w, g.y_len(), &[]);
    assert_eq!(plain, skipped, "bit-identical");
    let (t0, t1) = (s0.ledger.total(), s1.ledger.total());
    assert_eq!(t0[Event::MacFp32Random], t1[Event::MacFp32Random]);
    assert_eq!(t0[Event::MacFp32Skipped], 0);
    assert!(s1.busy[2] < s0.busy[2], "skipping saves compute cycles");
    // The effective count matches a naive count; `ws` compresses `a`, so only the input's zeros
    // are skipped and a zero weight against a non-zero input is gated.
    let (mut eff, mut gated) = (0u64, 0u64);
    g.each_mac(|xi, wi, _| {
        eff += u64::from(x[xi] != 0.0 && w[wi] != 0.0);
        gated += u64::from(x[xi] != 0.0 && w[wi] == 0.0);
    });
    assert_eq!(t1[Event::MacFp32Random], eff);
    assert_eq!(t1[Event::MacFp32Gated], gated);
}

#[test]
fn s1_output_mask_is_exact_and_skips_work() {
    let mut rng = Rng(9);
    let g = geos()[1];
    let dy = rng.vec(g.y_len(), 0.9);
    let w = rng.vec(g.w_len(), 0.9);
    let relu_mask = rng.mask(g.x_len(), 0.5);
    let (full, _) = conv(&g, "bp", "skip=none", &dy, &w, g.x_len(), &[]);
    let masked: Vec<f32> = full
        .iter()
        .zip(&relu_mask)
        .map(|(&v, &m)| if m != 0.0 { v } else { 0.0 })
        .collect();
    let (s1, stats) = conv(
        &g,
        "bp",
        "skip=out omask=gbuf:f32@0",
        &dy,
        &w,
        g.x_len(),
        &[("m", relu_mask.clone())],
    );
    assert_eq!(s1, masked);
    let t = stats.ledger.total();
    assert_eq!(t[Event::SpecS1], g.x_len() as u64);
    assert!(t[Event::MacFp32Skipped] > 0);
}

#[test]
fn weight_mask_acc_and_relu() {
    let mut rng = Rng(11);
    let g = geos()[1];
    let x = rng.vec(g.x_len(), 0.8);
    let w = rng.vec(g.w_len(), 0.8);
    let wm = rng.mask(g.w_len(), 0.5);
    let mut y = vec![0.0f64; g.y_len()];
    g.each_mac(|xi, wi, yi| y[yi] += f64::from(x[xi]) * f64::from(w[wi] * wm[wi]));
    let relu: Vec<f64> = y.iter().map(|v| v.max(0.0)).collect();
    let (got, _) = conv(
        &g,
        "ff",
        "opt=relu wmask=gbuf:f32@0",
        &x,
        &w,
        g.y_len(),
        &[("wm", wm)],
    );
    close(&got, &relu, 1e-5);
}

/// Runs one matmul; `a`, `b` as given, returns out.
#[allow(clippy::too_many_arguments)] // mirrors the instruction's fields
fn matmul(
    mode: &str,
    tb: bool,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    out_len: usize,
) -> Vec<f32> {
    let mut p = Asm::default();
    let (aa, ba, oa) = (
        p.tensor("a", "f32", &[a.len()]),
        p.tensor("b", "f32", &[b.len()]),
        p.tensor("out", "f32", &[out_len]),
    );
    p.load(aa, "f32", 4 * a.len() as u32, "ibuf:f32@0")
        .load(ba, "f32", 4 * b.len() as u32, "wbuf:f32@0");
    let opt = if tb { "opt=tb" } else { "" };
    p.op(format!("matmul mode={mode} df=os dci=none dcw=none skip=in m={m} k={k} n={n} {opt} a=ibuf:f32@0 b=wbuf:f32@0 out=obuf:f32@0"));
    p.store(oa, "f32", 4 * out_len as u32, "obuf:f32@0");
    let mut sim = p.sim();
    sim.write_tensor("a", a).unwrap();
    sim.write_tensor("b", b).unwrap();
    sim.run().unwrap();
    sim.read_tensor("out").unwrap()
}

#[test]
fn matmul_phases_match_naive_loops() {
    let mut rng = Rng(13);
    let (m, k, n) = (5, 7, 3);
    for tb in [false, true] {
        let a = rng.vec(m * k, 0.7);
        let bmat = rng.vec(k * n, 0.7);
        let dy = rng.vec(m * n, 0.7);
        // B[k][n] stored as [k,n] or (tb) [n,k].
        let bst = |kk: usize, nn: usize| if tb { nn * k + kk } else { kk * n + nn };
        let stored: Vec<f32> = {
            let mut v = vec![0.0; k * n];
            for kk in 0..k {
                for nn in 0..n {
                    v[bst(kk, nn)] = bmat[kk * n + nn];
                }
            }
            v
        };
        let (mut y, mut dx, mut db) = (vec![0.0f64; m * n], vec![0.0f64; m * k], vec![0.0f64; k * n]);
        for i in 0..m {
            for kk in 0..k {
                for nn in 0..n {
                    y[i * n + nn] += f64::from(a[i * k + kk]) * f64::from(bmat[kk * n + nn]);
                    dx[i * k + kk] += f64::from(dy[i * n + nn]) * f64::from(bmat[kk * n + nn]);
                    db[bst(kk, nn)] += f64::from(a[i * k + kk]) * f64::from(dy[i * n + nn]);
                }
            }
        }
        close(&matmul("ff", tb, m, k, n, &a, &stored, m * n), &y, 1e-5);
        close(&matmul("bp", tb, m, k, n, &dy, &stored, m * k), &dx, 1e-5);
        close(&matmul("wg", tb, m, k, n, &a, &dy, k * n), &db, 1e-5);
    }
}
