//! Throughput of the convolution kernels on a ResNet-18-sized layer (N=16, C=K=128, 16×16, 3×3,
//! stride 1, pad 1) with dense weights and with 90% of the weights masked out, and of BP on the
//! small output-channel tiles the simulator runs it on (`bp_tile`), and of FF and WG on such tiles
//! (`ff_tile`, `wg_tile`), of the f16 storage conversions on 2^14 and 2^20 values (`f16_*`), and
//! of the top-k mask and threshold on ResNet-18's largest weight tensor (`topk`, `topk_threshold`).
//!
//! Run with `cargo bench -p trainer-sim --bench kernels`. Divan reports time per call; the dense
//! work is 2·N·K·C·R·S·OH·OW = 1.21 GFLOP per call, so GFLOP/s = 1.21 / seconds.

use divan::counter::ItemsCount;
use divan::Bencher;
use std::fmt;
use std::hint::black_box;
use trainer_sim::exec::InputViews;
use trainer_sim::kernels::conv::{conv_bp, conv_ff, conv_ff_cols, conv_wg, ConvOpts, ConvShape, OperandB};
use trainer_sim::kernels::density::Counting;
use trainer_sim::kernels::numeric::Format;
use trainer_sim::kernels::prune::{top_k_threshold, topk_mask};

fn main() {
    divan::main();
}

const SPARSITY: [f64; 2] = [0.0, 0.9];

struct Data {
    shape: ConvShape,
    x: Vec<f32>,
    w: Vec<f32>,
    dy: Vec<f32>,
    mask: Vec<bool>,
}

fn data(sparsity: f64) -> Data {
    data_for(ConvShape::simple(16, 128, 16, 128, 3, 1, 1), sparsity)
}

/// Deterministic uniform noise in [-0.5, 0.5) (xorshift).
fn noise() -> impl FnMut() -> f32 {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
}

fn data_for(shape: ConvShape, sparsity: f64) -> Data {
    let mut next = noise();
    // Post-ReLU-like activations (about half zero) and gradients.
    let x = (0..shape.input_len()).map(|_| next().max(0.0)).collect();
    let w: Vec<f32> = (0..shape.weight_len()).map(|_| next()).collect();
    let dy = (0..shape.output_len()).map(|_| next()).collect();
    let mask = topk_mask(&w, sparsity).expect("valid sparsity").mask;
    Data {
        shape,
        x,
        w,
        dy,
        mask,
    }
}

fn flops(d: &Data) -> ItemsCount {
    ItemsCount::new(2 * d.shape.macs())
}

fn opts(d: &Data, sparsity: f64, counting: Counting) -> ConvOpts<'_> {
    ConvOpts {
        weight_mask: (sparsity > 0.0).then_some(&d.mask[..]),
        counting,
        ..Default::default()
    }
}

/// FF with exact effective-MAC counting (items = dense FLOPs).
#[divan::bench(args = SPARSITY, sample_count = 10)]
fn ff(b: Bencher, sparsity: f64) {
    let d = data(sparsity);
    let mut y = vec![0.0; d.shape.output_len()];
    b.counter(flops(&d)).bench_local(|| {
        conv_ff(
            &d.shape,
            black_box(&d.x),
            &d.w,
            &mut y,
            &opts(&d, sparsity, Counting::Exact),
        )
    });
}

/// FF without exact counting: the cost of the arithmetic alone.
#[divan::bench(args = SPARSITY, sample_count = 10)]
fn ff_slots_only(b: Bencher, sparsity: f64) {
    let d = data(sparsity);
    let mut y = vec![0.0; d.shape.output_len()];
    b.counter(flops(&d)).bench_local(|| {
        conv_ff(
            &d.shape,
            black_box(&d.x),
            &d.w,
            &mut y,
            &opts(&d, sparsity, Counting::SlotsOnly),
        )
    });
}

/// BP (input gradient) with exact counting.
#[divan::bench(args = SPARSITY, sample_count = 10)]
fn bp(b: Bencher, sparsity: f64) {
    let d = data(sparsity);
    let mut dx = vec![0.0; d.shape.input_len()];
    b.counter(flops(&d))
        .with_inputs(|| OperandB::from(&d.w[..]))
        .bench_local_refs(|w| {
            conv_bp(
                &d.shape,
                black_box(&d.dy),
                w,
                &mut dx,
                &opts(&d, sparsity, Counting::Exact),
            )
        });
}

/// WG (weight gradient) with exact counting; at 90% the keep-mask selects the unpruned gradients.
#[divan::bench(args = SPARSITY, sample_count = 10)]
fn wg(b: Bencher, sparsity: f64) {
    let d = data(sparsity);
    let mut dw = vec![0.0; d.shape.weight_len()];
    let keep = (sparsity > 0.0).then_some(&d.mask[..]);
    b.counter(flops(&d))
        .with_inputs(|| OperandB::from(&d.dy[..]))
        .bench_local_refs(|dy| {
            conv_wg(
                &d.shape,
                black_box(&d.x),
                dy,
                &mut dw,
                &ConvOpts {
                    keep,
                    ..Default::default()
                },
            )
        });
}

/// WG without exact counting: the cost of the arithmetic alone (dense GEMM, or sddmm at 90%).
#[divan::bench(args = SPARSITY, sample_count = 10)]
fn wg_slots_only(b: Bencher, sparsity: f64) {
    let d = data(sparsity);
    let mut dw = vec![0.0; d.shape.weight_len()];
    let keep = (sparsity > 0.0).then_some(&d.mask[..]);
    let opts = ConvOpts {
        keep,
        counting: Counting::SlotsOnly,
        ..Default::default()
    };
    b.counter(flops(&d))
        .with_inputs(|| OperandB::from(&d.dy[..]))
        .bench_local_refs(|dy| conv_wg(&d.shape, black_box(&d.x), dy, &mut dw, &opts));
}

/// A tile of a ResNet-18 CIFAR-10 layer as the simulator runs it: `n` images, `c` input channels
/// of `hw`×`hw`, `k` output(-gradient) channels, 3×3, pad 1, stride `stride`.
#[derive(Clone, Copy)]
struct Tile {
    n: usize,
    c: usize,
    hw: usize,
    k: usize,
    stride: usize,
}

impl Tile {
    fn shape(&self) -> ConvShape {
        ConvShape::simple(self.n, self.c, self.hw, self.k, 3, self.stride, 1)
    }
}

impl fmt::Display for Tile {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let Tile { n, c, hw, k, stride } = self;
        write!(f, "n{n}_c{c}_{hw}x{hw}_k{k}")?;
        match stride {
            1 => Ok(()),
            _ => write!(f, "_s{stride}"),
        }
    }
}

const fn tile(n: usize, c: usize, hw: usize, k: usize) -> Tile {
    Tile {
        n,
        c,
        hw,
        k,
        stride: 1,
    }
}

const fn strided(n: usize, c: usize, hw: usize, k: usize) -> Tile {
    Tile {
        n,
        c,
        hw,
        k,
        stride: 2,
    }
}

/// The simulator's most frequent BP tiles in a training step (`n` images, `c` input channels,
/// `k` output-gradient channels; 3×3, pad 1).
const TILES: [Tile; 9] = [
    tile(4, 512, 4, 4),
    tile(2, 256, 8, 8),
    tile(16, 64, 4, 32),
    tile(1, 32, 32, 32),
    tile(1, 16, 16, 64),
    tile(4, 32, 8, 64),
    tile(1, 128, 16, 16),
    strided(4, 128, 8, 16),
    strided(2, 64, 16, 32),
];

/// BP of one simulator tile as the simulator calls it: 90% of the weights already zero (the mask
/// applied outside), no options but slots-only counting; a fresh [`OperandB`] per call, so its
/// weight CSRs are built in every call (as by the first tile that reads the weights).
#[divan::bench(args = TILES, sample_count = 100)]
fn bp_tile(b: Bencher, tile: Tile) {
    let d = data_for(tile.shape(), 0.9);
    let w: Vec<f32> =
        d.w.iter()
            .zip(&d.mask)
            .map(|(&v, &m)| if m { v } else { 0.0 })
            .collect();
    let mut dx = vec![0.0; d.shape.input_len()];
    let opts = ConvOpts {
        counting: Counting::SlotsOnly,
        ..Default::default()
    };
    b.counter(flops(&d))
        .with_inputs(|| OperandB::from(&w[..]))
        .bench_local_refs(|w| conv_bp(&d.shape, black_box(&d.dy), w, &mut dx, &opts));
}

/// The most frequent WG tiles of a simulated ResNet-18 CIFAR-10 training step (`n` images, `c`
/// input channels, `k` output-gradient channels).
const WG_TILES: [Tile; 6] = [
    tile(2, 8, 8, 128),
    tile(16, 8, 4, 128),
    tile(1, 8, 16, 128),
    strided(4, 8, 8, 128),
    tile(1, 32, 32, 32),
    strided(2, 8, 16, 128),
];

/// Weight sparsity of the simulator's WG keep-mask (speculation S2 keeps the gradients of about
/// 14% of the weights).
const WG_KEEP_SPARSITY: f64 = 0.86;

/// WG of one simulator tile as the simulator calls it: the keep-mask of the unpruned weights
/// (the largest 14%), slots-only counting; a fresh [`OperandB`] per call (dy side by side built in
/// every call).
#[divan::bench(args = WG_TILES, sample_count = 100)]
fn wg_tile(b: Bencher, tile: Tile) {
    let d = data_for(tile.shape(), WG_KEEP_SPARSITY);
    let mut dw = vec![0.0; d.shape.weight_len()];
    let opts = ConvOpts {
        keep: Some(&d.mask),
        counting: Counting::SlotsOnly,
        ..Default::default()
    };
    b.counter(flops(&d))
        .with_inputs(|| OperandB::from(&d.dy[..]))
        .bench_local_refs(|dy| conv_wg(&d.shape, black_box(&d.x), dy, &mut dw, &opts));
}

/// FF of the simulator's output-channel tiles of one layer (`tile.k` channels each, of a layer
/// with as many output channels as input channels), as the simulator calls it: from the layer's
/// shared im2col matrices, one tile per call, cycling through the layer's tiles (so the weights
/// and the parts of the im2col matrix a call reads are as cold as in the simulator), a fresh
/// [`OperandB`] each (its CSRs built in every call).
#[divan::bench(args = [TILES[0], TILES[1]], sample_count = 100)]
fn ff_tile(b: Bencher, tile: Tile) {
    let shape = ConvShape::simple(tile.n, tile.c, tile.hw, tile.k, 3, 1, 1);
    let layer = data_for(ConvShape { k: tile.c, ..shape }, 0.9);
    let w: Vec<f32> = layer
        .w
        .iter()
        .zip(&layer.mask)
        .map(|(&v, &m)| if m { v } else { 0.0 })
        .collect();
    let input = InputViews::default();
    let cols = input.im2col(&shape, &layer.x);
    let mut y = vec![0.0; shape.output_len()];
    let mut tiles = w.chunks_exact(shape.weight_len()).cycle();
    b.counter(ItemsCount::new(2 * shape.macs()))
        .with_inputs(|| OperandB::from(tiles.next().expect("a cycle never ends")))
        .bench_local_refs(|wt| conv_ff_cols(&shape, black_box(&layer.x), cols, wt, &mut y));
}

/// Lengths of the f16 conversion benchmarks' tensors: a tile's worth that stays in L2 (16 Ki
/// values) and about a million values (a large activation tensor of the simulated step, beyond
/// L2, so memory-bound).
const F16_LENS: [usize; 2] = [1 << 14, 1 << 20];

/// `n` values like the simulator's activations and gradients (uniform in ±0.5, a quarter of them
/// zero), and their f16 encoding.
fn f16_data(n: usize) -> (Vec<f32>, Vec<u8>) {
    let mut next = noise();
    let values: Vec<f32> = (0..n)
        .map(|i| match i % 4 {
            0 => 0.0,
            _ => next(),
        })
        .collect();
    let bytes = Format::F16.to_bytes(&values);
    (values, bytes)
}

/// Decoding f16 bytes into a new vector ([`Format::from_bytes`], as an operand read).
#[divan::bench(args = F16_LENS, sample_count = 200)]
fn f16_decode(b: Bencher, n: usize) {
    let (_, bytes) = f16_data(n);
    b.counter(ItemsCount::new(n))
        .bench_local(|| Format::F16.from_bytes(black_box(&bytes)));
}

/// Encoding f32 values as f16 bytes ([`Format::encode_slice`], as an operand write).
#[divan::bench(args = F16_LENS, sample_count = 200)]
fn f16_encode(b: Bencher, n: usize) {
    let (values, mut bytes) = f16_data(n);
    b.counter(ItemsCount::new(n))
        .bench_local(|| Format::F16.encode_slice(black_box(&values), &mut bytes));
}

/// Rounding f32 values to f16 in place and encoding them ([`Format::store_slice`], as an output
/// write; the values are already rounded after the first call, which does not change the work).
#[divan::bench(args = F16_LENS, sample_count = 200)]
fn f16_store(b: Bencher, n: usize) {
    let (mut values, mut bytes) = f16_data(n);
    b.counter(ItemsCount::new(n))
        .bench_local(|| Format::F16.store_slice(black_box(&mut values), &mut bytes));
}

/// Adding decoded f16 values into an f32 slice ([`Format::add_decoded`], as an accumulation).
#[divan::bench(args = F16_LENS, sample_count = 200)]
fn f16_add_decoded(b: Bencher, n: usize) {
    let (_, bytes) = f16_data(n);
    let mut sum = vec![0.0f32; n];
    b.counter(ItemsCount::new(n))
        .bench_local(|| Format::F16.add_decoded(black_box(&bytes), &mut sum));
}

/// Rounding f32 values to f16 in place ([`Format::quantize_slice`]).
#[divan::bench(args = F16_LENS, sample_count = 200)]
fn f16_quantize(b: Bencher, n: usize) {
    let (mut values, _) = f16_data(n);
    b.counter(ItemsCount::new(n))
        .bench_local(|| Format::F16.quantize_slice(black_box(&mut values)));
}

/// Weights of ResNet-18's largest layer (512×512×3×3).
const TOPK_LEN: usize = 512 * 512 * 9;

/// The top-k mask at 90% sparsity of as many uniform random weights as ResNet-18's largest layer
/// (items = weights).
#[divan::bench(sample_count = 50)]
fn topk(b: Bencher) {
    let w: Vec<f32> = std::iter::repeat_with(noise()).take(TOPK_LEN).collect();
    b.counter(ItemsCount::new(TOPK_LEN))
        .bench_local(|| topk_mask(black_box(&w), 0.9));
}

/// The top-k threshold alone (S2's use) at 90% sparsity, same weights as [`topk`].
#[divan::bench(sample_count = 50)]
fn topk_threshold(b: Bencher) {
    let w: Vec<f32> = std::iter::repeat_with(noise()).take(TOPK_LEN).collect();
    b.counter(ItemsCount::new(TOPK_LEN))
        .bench_local(|| top_k_threshold(black_box(&w), TOPK_LEN / 10));
}
