//! Convolution kernels against a naive f64 direct-loop reference, brute-force counters and finite
//! differences.

use super::*;
use crate::kernels::testutil::{assert_close, lane_dot, sparse_vec, Rng};

/// Results of the naive reference: outputs with keep-masks applied and effective MACs (FF, BP, WG).
struct Reference {
    y: Vec<f64>,
    dx: Vec<f64>,
    dw: Vec<f64>,
    eff: [u64; 3],
}

#[allow(clippy::too_many_arguments)]
fn reference(
    sh: &ConvShape,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    keep_y: &[bool],
    keep_x: &[bool],
    keep_w: &[bool],
) -> Reference {
    let (oh, ow) = (sh.out_h(), sh.out_w());
    let (cg, kg) = (sh.c / sh.groups, sh.k / sh.groups);
    let mut r = Reference {
        y: vec![0.0; sh.output_len()],
        dx: vec![0.0; sh.input_len()],
        dw: vec![0.0; sh.weight_len()],
        eff: [0; 3],
    };
    for n in 0..sh.n {
        for k in 0..sh.k {
            let g = k / kg;
            for y in 0..oh {
                for xo in 0..ow {
                    let yi = ((n * sh.k + k) * oh + y) * ow + xo;
                    for ci in 0..cg {
                        let c = g * cg + ci;
                        for rr in 0..sh.r {
                            for ss in 0..sh.s {
                                let wi = ((k * cg + ci) * sh.r + rr) * sh.s + ss;
                                let ih =
                                    (y * sh.stride.0 + rr * sh.dilation.0) as isize - sh.pad.top as isize;
                                let iw =
                                    (xo * sh.stride.1 + ss * sh.dilation.1) as isize - sh.pad.left as isize;
                                if ih < 0 || iw < 0 || ih >= sh.h as isize || iw >= sh.w as isize {
                                    continue;
                                }
                                let xi = ((n * sh.c + c) * sh.h + ih as usize) * sh.w + iw as usize;
                                let (xv, wv, gv) = (x[xi], w[wi], dy[yi]);
                                r.y[yi] += f64::from(xv) * f64::from(wv);
                                r.dx[xi] += f64::from(gv) * f64::from(wv);
                                r.dw[wi] += f64::from(gv) * f64::from(xv);
                                r.eff[0] += u64::from(keep_y[yi] && xv != 0.0 && wv != 0.0);
                                r.eff[1] += u64::from(keep_x[xi] && gv != 0.0 && wv != 0.0);
                                r.eff[2] += u64::from(keep_w[wi] && gv != 0.0 && xv != 0.0);
                            }
                        }
                    }
                }
            }
        }
    }
    let zero = |v: &mut Vec<f64>, keep: &[bool]| {
        v.iter_mut()
            .zip(keep)
            .for_each(|(a, &k)| *a *= f64::from(u8::from(k)))
    };
    zero(&mut r.y, keep_y);
    zero(&mut r.dx, keep_x);
    zero(&mut r.dw, keep_w);
    r
}

fn shapes() -> Vec<ConvShape> {
    let base = ConvShape::simple(2, 4, 7, 6, 3, 1, 1);
    vec![
        base,
        ConvShape {
            stride: (2, 2),
            ..base
        },
        ConvShape {
            pad: Padding {
                top: 1,
                left: 0,
                bottom: 2,
                right: 1,
            },
            stride: (2, 1),
            ..base
        },
        ConvShape {
            groups: 2,
            dilation: (2, 1),
            ..base
        },
        ConvShape {
            groups: 4,
            c: 4,
            k: 8,
            ..base
        },
        ConvShape {
            r: 1,
            s: 1,
            pad: Padding::uniform(0),
            n: 3,
            ..base
        },
        ConvShape {
            h: 9,
            w: 5,
            r: 3,
            s: 2,
            stride: (3, 2),
            dilation: (1, 2),
            ..base
        },
        // More output channels per group than a WG row block.
        ConvShape {
            groups: 2,
            k: 40,
            ..base
        },
        // One image (FF writes each group's product straight into the output).
        ConvShape { n: 1, ..base },
        ConvShape {
            n: 1,
            groups: 2,
            stride: (2, 1),
            ..base
        },
    ]
}

#[test]
fn conv_matches_naive_reference_with_masks_and_counts() {
    let mut rng = Rng::new(1);
    // (weight density, keep density): the later pairs exercise the sparse kernels (spmm; sddmm at
    // a keep density below `SDDMM_DENSITY`).
    for (sh, (wd, kd)) in shapes()
        .into_iter()
        .flat_map(|s| [(s, (0.7, 0.6)), (s, (0.15, 0.2)), (s, (0.15, 0.02))])
    {
        for masked in [false, true] {
            let x = sparse_vec(&mut rng, sh.input_len(), 0.6);
            let w = sparse_vec(&mut rng, sh.weight_len(), wd);
            let dy = sparse_vec(&mut rng, sh.output_len(), 0.5);
            let mut bools =
                |n: usize| -> Vec<bool> { (0..n).map(|_| !masked || rng.uniform() < kd).collect() };
            let (wmask, keep_y, keep_x, keep_w) = (
                bools(sh.weight_len()),
                bools(sh.output_len()),
                bools(sh.input_len()),
                bools(sh.weight_len()),
            );
            let wm: Vec<f32> = w
                .iter()
                .zip(&wmask)
                .map(|(&v, &m)| if m { v } else { 0.0 })
                .collect();
            let r = reference(&sh, &x, &wm, &dy, &keep_y, &keep_x, &keep_w);
            let ff_opts = ConvOpts {
                weight_mask: masked.then_some(&wmask[..]),
                keep: masked.then_some(&keep_y[..]),
                ..Default::default()
            };
            // Outputs start as NaN: every kernel overwrites all of its output.
            let mut y = vec![f32::NAN; sh.output_len()];
            let c = conv_ff(&sh, &x, &w, &mut y, &ff_opts).unwrap();
            assert_close(&y, &r.y, 1e-5);
            assert_eq!(c.effective, r.eff[0], "{sh:?} FF effective");
            assert_eq!(c.mac_slots, sh.macs());
            assert_eq!(c.mac_slots, c.effective + c.zero_operand + c.masked_out);
            assert_eq!(c.outputs_skipped, keep_y.iter().filter(|&&k| !k).count() as u64);

            let bp_opts = ConvOpts {
                keep: masked.then_some(&keep_x[..]),
                ..ff_opts
            };
            let mut dx = vec![f32::NAN; sh.input_len()];
            let c = conv_bp(&sh, &dy, &OperandB::from(&w[..]), &mut dx, &bp_opts).unwrap();
            assert_close(&dx, &r.dx, 1e-5);
            assert_eq!(c.effective, r.eff[1], "{sh:?} BP effective");
            assert_eq!(c.mac_slots, c.effective + c.zero_operand + c.masked_out);
            assert_eq!(c.outputs, sh.input_len() as u64);

            let wg_opts = ConvOpts {
                keep: masked.then_some(&keep_w[..]),
                ..Default::default()
            };
            let mut dw = vec![f32::NAN; sh.weight_len()];
            let c = conv_wg(&sh, &x, &OperandB::from(&dy[..]), &mut dw, &wg_opts).unwrap();
            assert_close(&dw, &r.dw, 1e-5);
            assert_eq!(c.effective, r.eff[2], "{sh:?} WG effective");
            assert_eq!(c.mac_slots, c.effective + c.zero_operand + c.masked_out);
            assert_eq!(
                c.masked_out,
                c.outputs_skipped * (sh.n * sh.out_h() * sh.out_w()) as u64
            );
        }
    }
}

#[test]
fn accumulate_adds_and_slots_only_skips_counting() {
    let sh = ConvShape::simple(2, 3, 5, 4, 3, 1, 1);
    let mut rng = Rng::new(2);
    let x = sparse_vec(&mut rng, sh.input_len(), 0.8);
    let w = sparse_vec(&mut rng, sh.weight_len(), 0.8);
    let mut y1 = vec![0.0; sh.output_len()];
    conv_ff(&sh, &x, &w, &mut y1, &ConvOpts::default()).unwrap();
    let mut y2 = vec![1.0; sh.output_len()];
    let opts = ConvOpts {
        accumulate: true,
        counting: Counting::SlotsOnly,
        ..Default::default()
    };
    let c = conv_ff(&sh, &x, &w, &mut y2, &opts).unwrap();
    assert!(!c.exact && c.effective == 0 && c.mac_slots == sh.macs());
    for (a, b) in y1.iter().zip(&y2) {
        assert!((a + 1.0 - b).abs() < 1e-6);
    }
}

/// BP and WG are the gradients of L = Σ G ⊙ conv(x, w): checked by finite differences through FF.
#[test]
fn bp_and_wg_match_finite_differences_of_ff() {
    let sh = ConvShape {
        groups: 2,
        ..ConvShape::simple(2, 4, 6, 4, 3, 2, 1)
    };
    let mut rng = Rng::new(3);
    let x = sparse_vec(&mut rng, sh.input_len(), 1.0);
    let w = sparse_vec(&mut rng, sh.weight_len(), 1.0);
    let g = sparse_vec(&mut rng, sh.output_len(), 1.0);
    let loss = |x: &[f32], w: &[f32]| -> f64 {
        let mut y = vec![0.0; sh.output_len()];
        conv_ff(&sh, x, w, &mut y, &ConvOpts::default()).unwrap();
        y.iter().zip(&g).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum()
    };
    let mut dx = vec![0.0; sh.input_len()];
    conv_bp(&sh, &g, &OperandB::from(&w[..]), &mut dx, &ConvOpts::default()).unwrap();
    let mut dw = vec![0.0; sh.weight_len()];
    conv_wg(&sh, &x, &OperandB::from(&g[..]), &mut dw, &ConvOpts::default()).unwrap();
    let eps = 1e-2;
    let base = loss(&x, &w);
    for i in (0..sh.input_len()).step_by(7) {
        let mut xp = x.clone();
        xp[i] += eps;
        let fd = (loss(&xp, &w) - base) / f64::from(eps);
        assert!(
            (fd - f64::from(dx[i])).abs() < 2e-3,
            "dx[{i}]: fd {fd} vs {}",
            dx[i]
        );
    }
    for i in (0..sh.weight_len()).step_by(5) {
        let mut wp = w.clone();
        wp[i] += eps;
        let fd = (loss(&x, &wp) - base) / f64::from(eps);
        assert!(
            (fd - f64::from(dw[i])).abs() < 2e-3,
            "dw[{i}]: fd {fd} vs {}",
            dw[i]
        );
    }
}

#[test]
fn bad_arguments_are_errors() {
    let sh = ConvShape::simple(1, 3, 4, 2, 3, 1, 0);
    let mut y = vec![0.0; sh.output_len()];
    let x = vec![0.0; sh.input_len()];
    let w = vec![0.0; sh.weight_len()];
    assert!(conv_ff(&sh, &x[1..], &w, &mut y, &ConvOpts::default()).is_err());
    assert!(conv_ff(
        &ConvShape { groups: 2, ..sh },
        &x,
        &w,
        &mut y,
        &ConvOpts::default()
    )
    .is_err());
    assert!(conv_ff(&ConvShape { r: 9, ..sh }, &x, &w, &mut y, &ConvOpts::default()).is_err());
    assert!(conv_ff(
        &ConvShape { stride: (0, 1), ..sh },
        &x,
        &w,
        &mut y,
        &ConvOpts::default()
    )
    .is_err());
    let mask = vec![true; 3];
    let opts = ConvOpts {
        weight_mask: Some(&mask),
        ..Default::default()
    };
    assert!(conv_ff(&sh, &x, &w, &mut y, &opts).is_err());
    let mut dw = vec![0.0; sh.weight_len()];
    let wmask = vec![true; sh.weight_len()];
    let opts = ConvOpts {
        weight_mask: Some(&wmask),
        ..Default::default()
    };
    assert!(conv_wg(&sh, &x, &OperandB::from(&y[..]), &mut dw, &opts).is_err());
}

#[test]
fn tap_counters_match_the_im2col_matrix() {
    let mut rng = Rng::new(3);
    for sh in shapes() {
        let in_plane = sh.cg() * sh.h * sh.w;
        let (j, p) = (sh.j(), sh.p());
        let x = sparse_vec(&mut rng, in_plane, 0.5);
        let mut col = vec![0.0; j * p];
        sh.im2col(&x, &mut col);
        let nz = |v: f32| u64::from(v != 0.0);
        let rows: Vec<u64> = (0..j)
            .map(|r| col[r * p..][..p].iter().map(|&v| nz(v)).sum())
            .collect();
        let cols: Vec<u64> = (0..p).map(|q| (0..j).map(|r| nz(col[r * p + q])).sum()).collect();
        // Taps summed over images: from the non-zeros per input position of both (the second
        // image is the first with every other value zeroed).
        let half: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| if i % 2 == 0 { v } else { 0.0 })
            .collect();
        let mut half_col = vec![0.0; j * p];
        sh.im2col(&half, &mut half_col);
        let counts: Vec<u32> = x
            .iter()
            .zip(&half)
            .map(|(&a, &b)| (a != 0.0) as u32 + (b != 0.0) as u32)
            .collect();
        let both: Vec<u64> = (0..j)
            .map(|r| rows[r] + half_col[r * p..][..p].iter().map(|&v| nz(v)).sum::<u64>())
            .collect();
        assert_eq!(sh.tap_row_counts(&counts), both, "{sh:?}");
        assert_eq!(sh.tap_counts(&x), cols, "{sh:?}");
        let bits = sh.tap_bits(&[crate::kernels::density::nonzero_bitmap(&x)]);
        assert_eq!(
            bits,
            MatRef::row_major(&col, j, p).unwrap().nonzero_bits(),
            "{sh:?}"
        );
    }
}

#[test]
fn batched_im2col_is_every_image_side_by_side() {
    let mut rng = Rng::new(8);
    for sh in shapes() {
        let (j, p, in_plane) = (sh.j(), sh.p(), sh.cg() * sh.h * sh.w);
        // Every input non-zero, so that a padding tap left unwritten would show.
        let x: Vec<f32> = (0..sh.input_len()).map(|_| rng.signed() + 3.0).collect();
        for g in 0..sh.groups {
            let batch = sh.im2col_batch(&x, g);
            assert_eq!(batch.len(), j * sh.n * p, "{sh:?}");
            for n in 0..sh.n {
                let mut col = vec![f32::NAN; j * p];
                sh.im2col(&x[(n * sh.groups + g) * in_plane..][..in_plane], &mut col);
                for r in 0..j {
                    let got = &batch[(r * sh.n + n) * p..][..p];
                    assert!(
                        got.iter()
                            .zip(&col[r * p..][..p])
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{sh:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn ff_from_columns_is_bit_identical_to_ff() {
    let mut rng = Rng::new(11);
    // The last shape has enough work for the parallel sparse product.
    let big = ConvShape::simple(4, 64, 8, 64, 3, 1, 1);
    for sh in shapes().into_iter().chain([big]) {
        let x = sparse_vec(&mut rng, sh.input_len(), 0.6);
        let cols: Vec<Vec<f32>> = (0..sh.groups).map(|g| sh.im2col_batch(&x, g)).collect();
        let opts = ConvOpts {
            counting: Counting::SlotsOnly,
            ..Default::default()
        };
        // Sparse (spmm), dense (GEMM) and non-finite sparse weights (falls back to conv_ff).
        let mut inf = sparse_vec(&mut rng, sh.weight_len(), 0.1);
        if let Some(v) = inf.iter_mut().find(|v| **v != 0.0) {
            *v = f32::INFINITY;
        }
        for w in [
            sparse_vec(&mut rng, sh.weight_len(), 0.1),
            sparse_vec(&mut rng, sh.weight_len(), 0.7),
            inf,
        ] {
            let (mut want, mut got) = (vec![0.0; sh.output_len()], vec![1.0; sh.output_len()]);
            conv_ff(&sh, &x, &w, &mut want, &opts).unwrap();
            conv_ff_cols(&sh, &x, &cols, &OperandB::from(&w[..]), &mut got).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{sh:?}");
        }
        let (w, mut y) = (vec![0.0; sh.weight_len()], vec![0.0; sh.output_len()]);
        assert!(conv_ff_cols(&sh, &x, &cols[1..], &OperandB::from(&w[..]), &mut y).is_err());
    }
}

/// Lopsided BP shapes (k ≪ c, small planes, groups, dilation, asymmetric padding, `col_dy`
/// batches of part of an image or of several images), and whether they take the forward-convolution
/// formulation: not at stride 2, nor where k ≳ c or a 1×1 kernel makes col2im the cheaper one.
/// Sparse WG against its contract, bit for bit: every kept gradient is +0 plus the dot product of
/// the output channel's dy row and the im2col row (images side by side, padding taps as zeros) in
/// [`gemm::sddmm`]'s order, then stored as the keep-mask says.
#[test]
fn sparse_wg_is_bit_identical_to_its_contract() {
    let mut rng = Rng::new(3);
    let big = ConvShape::simple(8, 16, 16, 64, 3, 1, 1); // More kept work than one block does.
    let mut cases: Vec<_> = shapes().into_iter().chain([big]).collect();
    cases.extend([
        ConvShape::simple(3, 5, 5, 12, 3, 2, 1),
        ConvShape::simple(1, 3, 9, 16, 3, 1, 0),
    ]);
    for sh in cases {
        for (density, non_finite) in [(0.0, false), (0.05, false), (0.14, false), (0.14, true)] {
            let x = sparse_vec(&mut rng, sh.input_len(), 0.5);
            let mut dy = sparse_vec(&mut rng, sh.output_len(), 0.9);
            if non_finite {
                dy[sh.output_len() / 2] = f32::INFINITY;
            }
            // Exactly `density` of the gradients kept (at most `SDDMM_DENSITY`: sparse WG).
            let (len, kept) = (sh.weight_len(), (density * sh.weight_len() as f64) as usize);
            let (mut keep, mut order) = (vec![false; len], (0..len).collect::<Vec<_>>());
            for t in 0..kept {
                order.swap(t, t + rng.next_u64() as usize % (len - t));
                keep[order[t]] = true;
            }
            let (kg, j, p) = (sh.kg(), sh.j(), sh.p());
            let mut want = vec![0.0f32; sh.weight_len()];
            for g in 0..sh.groups {
                let col = sh.im2col_batch(&x, g);
                for (r, row) in want[g * kg * j..][..kg * j].chunks_exact_mut(j).enumerate() {
                    let dy_row: Vec<f32> = (0..sh.n)
                        .flat_map(|n| &dy[(n * sh.k + g * kg + r) * p..][..p])
                        .copied()
                        .collect();
                    for (jj, w) in row.iter_mut().enumerate() {
                        *w = 0.0 + lane_dot(&dy_row, &col[jj * sh.n * p..][..sh.n * p]);
                    }
                }
            }
            for (accumulate, counting) in [(false, Counting::SlotsOnly), (true, Counting::Exact)] {
                let dw0: Vec<f32> = (0..sh.weight_len()).map(|_| rng.signed()).collect();
                let mut dw = dw0.clone();
                let opts = ConvOpts {
                    keep: Some(&keep),
                    accumulate,
                    counting,
                    ..Default::default()
                };
                conv_wg(&sh, &x, &OperandB::from(&dy[..]), &mut dw, &opts).unwrap();
                for (i, &got) in dw.iter().enumerate() {
                    let v = if keep[i] { want[i] } else { 0.0 };
                    let expect = if accumulate { dw0[i] + v } else { v };
                    assert_eq!(got.to_bits(), expect.to_bits(), "{sh:?} {density} dw[{i}]");
                }
            }
        }
    }
}

fn bp_shapes() -> Vec<(ConvShape, bool)> {
    let base = ConvShape::simple(4, 64, 4, 2, 3, 1, 1);
    let odd = Padding {
        top: 2,
        left: 0,
        bottom: 1,
        right: 3,
    };
    let forward = [
        base,
        ConvShape {
            groups: 4,
            k: 8,
            h: 5,
            ..base
        },
        ConvShape {
            h: 6,
            w: 7,
            s: 2,
            pad: odd,
            dilation: (2, 3),
            ..base
        },
        ConvShape::simple(2, 32, 32, 8, 3, 1, 1),
        // Output rows narrower than the input's (no padding).
        ConvShape::simple(3, 64, 6, 2, 3, 1, 0),
        ConvShape::simple(5, 64, 16, 8, 3, 1, 1),
    ];
    let col2im = [
        ConvShape::simple(2, 32, 6, 4, 3, 2, 1),
        ConvShape::simple(1, 4, 6, 16, 3, 1, 1),
        ConvShape {
            r: 1,
            s: 1,
            pad: Padding::uniform(0),
            ..base
        },
    ];
    let tag = |shapes: &[ConvShape], f: bool| shapes.iter().map(|&s| (s, f)).collect::<Vec<_>>();
    [tag(&forward, true), tag(&col2im, false)].concat()
}

#[test]
fn bp_as_a_forward_conv_of_dy_matches_the_reference() {
    let mut rng = Rng::new(21);
    for (sh, forward) in bp_shapes() {
        for masked in [false, true] {
            let w = sparse_vec(&mut rng, sh.weight_len(), 0.15);
            let dy = sparse_vec(&mut rng, sh.output_len(), 0.5);
            let mut bools =
                |n: usize| -> Vec<bool> { (0..n).map(|_| !masked || rng.uniform() < 0.6).collect() };
            let (wmask, keep_x) = (bools(sh.weight_len()), bools(sh.input_len()));
            let wm: Vec<f32> = w
                .iter()
                .zip(&wmask)
                .map(|(&v, &m)| v * f32::from(u8::from(m)))
                .collect();
            assert_eq!(bp::forward_weights(&sh, &wm).is_some(), forward, "{sh:?}");
            let all = vec![true; sh.output_len().max(sh.weight_len())];
            let r = reference(&sh, &vec![0.0; sh.input_len()], &wm, &dy, &all, &keep_x, &all);
            let opts = ConvOpts {
                accumulate: true,
                weight_mask: masked.then_some(&wmask[..]),
                keep: masked.then_some(&keep_x[..]),
                counting: Counting::Exact,
            };
            let mut dx = vec![1.0; sh.input_len()];
            let c = conv_bp(&sh, &dy, &OperandB::from(&w[..]), &mut dx, &opts).unwrap();
            dx.iter_mut().for_each(|v| *v -= 1.0);
            assert_close(&dx, &r.dx, 1e-5);
            assert_eq!(c.effective, r.eff[1], "{sh:?} effective");
            assert_eq!(c.mac_slots, sh.macs());
            assert_eq!(c.mac_slots, c.effective + c.zero_operand + c.masked_out);
            assert_eq!(c.outputs_skipped, keep_x.iter().filter(|&&k| !k).count() as u64);
        }
    }
}

/// The forward-convolution formulation and col2im with the images side by side add col2im's
/// products in col2im's order: same bits (any stride, groups, dilation, padding, odd sizes).
#[test]
fn bp_formulations_are_bit_identical() {
    let mut rng = Rng::new(23);
    let strided = ConvShape::simple(4, 32, 8, 16, 3, 2, 1);
    let shapes = bp_shapes()
        .into_iter()
        .map(|(s, _)| s)
        .chain(shapes())
        .chain([strided]);
    for sh in shapes {
        let w = sparse_vec(&mut rng, sh.weight_len(), 0.1);
        let groups = bp::transposed_weights(&sh, &w);
        assert!(groups.iter().all(Option::is_some), "{sh:?}");
        let mut dy = sparse_vec(&mut rng, sh.output_len(), 0.5);
        // Infinite gradients of both signs: their NaN and infinite sums keep their bits too.
        let len = dy.len();
        (dy[len / 3], dy[len / 2]) = (f32::INFINITY, f32::NEG_INFINITY);
        let keep: Vec<bool> = (0..sh.input_len()).map(|_| rng.uniform() < 0.7).collect();
        let start = sparse_vec(&mut rng, sh.input_len(), 0.5);
        for opts in [
            ConvOpts::default(),
            ConvOpts {
                keep: Some(&keep),
                accumulate: true,
                ..Default::default()
            },
        ] {
            let (mut got, mut want) = (start.clone(), start.clone());
            conv_bp(&sh, &dy, &OperandB::from(&w[..]), &mut got, &opts).unwrap();
            bp::by_col2im(&sh, (&w, &groups), &dy, &mut want, &opts).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{sh:?}");
        }
    }
}

/// Sums start at +0 in both formulations: zero results are +0 whatever the signs of the zero
/// operands (-0 gradients, all-zero weights), and taps outside dy change nothing.
#[test]
fn bp_zero_results_are_positive_zero() {
    let mut rng = Rng::new(22);
    for (sh, _) in bp_shapes() {
        let neg: Vec<f32> = sparse_vec(&mut rng, sh.weight_len(), 0.1)
            .iter()
            .map(|v| -v.abs())
            .collect();
        let minus_zero_dy = vec![-0.0; sh.output_len()];
        let dy = sparse_vec(&mut rng, sh.output_len(), 0.5);
        for (w, dy) in [(&neg, &minus_zero_dy), (&vec![-0.0; sh.weight_len()], &dy)] {
            let mut dx = vec![-0.0; sh.input_len()];
            conv_bp(&sh, dy, &OperandB::from(&w[..]), &mut dx, &ConvOpts::default()).unwrap();
            assert!(dx.iter().all(|v| v.to_bits() == 0), "{sh:?}");
        }
    }
}

/// A non-finite weight keeps the col2im formulation, which never multiplies it by a tap outside
/// dy (`∞·0` would be NaN).
#[test]
fn bp_with_non_finite_weights_ignores_padding_taps() {
    let sh = ConvShape::simple(1, 16, 4, 2, 3, 1, 1);
    let mut w = vec![0.0; sh.weight_len()];
    w[0] = f32::INFINITY;
    assert!(bp::forward_weights(&sh, &w).is_none());
    let mut dx = vec![0.0; sh.input_len()];
    conv_bp(
        &sh,
        &vec![1.0; sh.output_len()],
        &OperandB::from(w),
        &mut dx,
        &ConvOpts::default(),
    )
    .unwrap();
    // W[0, 0, 0, 0] reaches dx[0, ih, iw] from dy[0, ih + 1, iw + 1]: inside dy for ih, iw < 3.
    for (i, &v) in dx.iter().enumerate() {
        let inside = i < 16 && i / 4 < 3 && i % 4 < 3;
        assert_eq!(v, if inside { f32::INFINITY } else { 0.0 }, "dx[{i}]");
    }
}

/// BP's weight CSRs, built from the non-zeros, are those of the dense matrices' scans: `W_gᵀ`
/// (col2im) and `W'_g` (forward convolution), or none for weights too dense for the sparse kernel.
#[test]
fn bp_weight_csrs_match_dense_scans() {
    let mut rng = Rng::new(24);
    // More than 64 output channels: two words of the indicator per row.
    let wide = ConvShape::simple(1, 3, 4, 130, 3, 1, 1);
    for sh in bp_shapes().into_iter().map(|(s, _)| s).chain([wide]) {
        let (cg, kg, rs) = (sh.cg(), sh.kg(), sh.r * sh.s);
        for density in [0.05, 0.2, 0.5] {
            let w = sparse_vec(&mut rng, sh.weight_len(), density);
            for wg in w.chunks_exact(kg * cg * rs) {
                let wt = MatRef::row_major(wg, kg, cg * rs).unwrap().t();
                assert_eq!(bp::transposed_csr(wg, cg * rs, 1), sparse_rows(wt), "{sh:?}");
                let dense: Vec<f32> = (0..cg * rs)
                    .flat_map(|ct| (0..kg).map(move |k| wg[k * cg * rs + ct]))
                    .collect();
                let forward = MatRef::row_major(&dense, cg, kg * rs).unwrap();
                assert_eq!(
                    bp::transposed_csr(wg, cg * rs, rs),
                    sparse_rows(forward),
                    "{sh:?}"
                );
            }
        }
    }
}

/// An operand's derived forms are built once and serve later calls of the same shape (the same
/// results as a fresh operand's); another shape is an error, not a stale form.
#[test]
fn operand_forms_are_reused_for_one_shape_only() {
    let mut rng = Rng::new(25);
    let sh = ConvShape::simple(2, 8, 6, 4, 3, 1, 1);
    let w = OperandB::from(sparse_vec(&mut rng, sh.weight_len(), 0.1));
    let dy = sparse_vec(&mut rng, sh.output_len(), 0.5);
    let bp = |w: &OperandB| {
        let mut dx = vec![0.0; sh.input_len()];
        conv_bp(&sh, &dy, w, &mut dx, &ConvOpts::default()).map(|_| dx)
    };
    let first = bp(&w).unwrap();
    assert_eq!(bp(&w).unwrap(), first);
    assert_eq!(bp(&OperandB::from(w.values())).unwrap(), first);
    // Same number of weights, another shape (a 1-wide kernel over 9× the channels).
    let other = ConvShape::simple(2, 72, 6, 4, 1, 1, 0);
    assert_eq!(other.weight_len(), sh.weight_len());
    let mut dx = vec![0.0; other.input_len()];
    let other_dy = vec![1.0; other.output_len()];
    assert!(conv_bp(&other, &other_dy, &w, &mut dx, &ConvOpts::default()).is_err());
}
