//! Element-wise passes: an instruction whose every output element depends only on the same
//! element of its inputs streams its operands through f32 buffers a batch at a time — decoded,
//! computed and encoded while the batch is in cache, its chunks across threads — instead of
//! decoding whole tensors into f32 copies and encoding them back.
//!
//! The result is that of reading every input whole, computing, then writing every output whole
//! in order: when an output overlaps an input other than in place (same start, an element no
//! wider than the input's) or another output, the pass runs as one chunk, which is exactly that.

use super::Ctx;
use crate::error::FaultKind;
use crate::hazard::Region;
use crate::memory::{decode_f32_into, encode_f32};
use rayon::prelude::*;
use std::slice::ChunksMut;
use trainer_isa::Operand;

/// Elements per chunk: a multiple of 8, so that the chunks of a `b1` operand start on a byte.
const CHUNK: usize = 4096;

/// Elements of a streamed pass read, computed and written at a time, its chunks across threads.
const BATCH: usize = 16 * CHUNK;

/// One chunk of every input's and every output's buffer.
type Piece<'b, const I: usize, const O: usize> = ([&'b mut [f32]; I], [&'b mut [f32]; O]);

/// An operand of a pass: the field named in faults, and the operand. An absent input reads as
/// zeros; an absent output is computed and dropped.
pub type Field = (&'static str, Operand);

/// Runs `f` over `n` elements of `inputs` into `n` elements of `outputs`: `f(ins, outs)` gets
/// the same chunk of elements of every operand. Every present operand's range is checked first,
/// inputs then outputs in order, so a faulting pass writes nothing. Each read and write is
/// charged.
///
/// A streamed pass takes [`BATCH`] elements at a time: every input's are decoded and computed,
/// chunk by chunk across threads, then every output's encoded, also across threads.
pub fn map<const I: usize, const O: usize>(
    ctx: &mut Ctx,
    n: usize,
    inputs: [Field; I],
    outputs: [Field; O],
    f: impl Fn([&[f32]; I], [&mut [f32]; O]) + Sync,
) -> Result<(), FaultKind> {
    let present = |ops: &[Field]| {
        ops.iter()
            .copied()
            .filter(|(_, op)| !op.is_none())
            .collect::<Vec<_>>()
    };
    let (ins, outs) = (present(&inputs), present(&outputs));
    for &(field, op) in ins.iter().chain(&outs) {
        ctx.check(field, op, n)?;
    }
    let (chunk, batch) = match streamable(&ins, &outs, n) {
        true => (CHUNK.min(n), BATCH.min(n)),
        false => (n, n),
    };
    let mut in_bufs = [(); I].map(|_| vec![0.0f32; batch]);
    let mut out_bufs = [(); O].map(|_| vec![0.0f32; batch]);
    let mut start = 0;
    while start < n {
        let len = batch.min(n - start);
        let mut sources = Vec::with_capacity(I);
        for &(field, op) in &inputs {
            let (at, bytes) = elements(op, start, len);
            sources.push(
                (!op.is_none())
                    .then(|| ctx.mem.bytes(field, op.space, at, bytes))
                    .transpose()?,
            );
        }
        let mut in_chunks = chunks(&mut in_bufs, len, chunk);
        let mut out_chunks = chunks(&mut out_bufs, len, chunk);
        let pieces: Vec<_> = (0..len.div_ceil(chunk))
            .map(|_| (next(&mut in_chunks), next(&mut out_chunks)))
            .collect();
        let piece = |(i, (mut ins, outs)): (usize, Piece<I, O>)| {
            for ((buf, source), &(_, op)) in ins.iter_mut().zip(&sources).zip(&inputs) {
                if let Some(raw) = source {
                    let (from, bytes) = (
                        op.dtype.bytes((i * chunk) as u64),
                        op.dtype.bytes(buf.len() as u64),
                    );
                    decode_f32_into(op.dtype, &raw[from as usize..][..bytes as usize], buf);
                }
            }
            f(ins.each_ref().map(|b| &**b), outs);
        };
        // One chunk (most passes are short) runs here, without the fork-join.
        match pieces.len() {
            1 => pieces.into_iter().enumerate().for_each(piece),
            _ => pieces.into_par_iter().enumerate().for_each(piece),
        }
        for (buf, &(field, op)) in out_bufs.iter().zip(&outputs) {
            if !op.is_none() {
                let (at, bytes) = elements(op, start, len);
                let raw = ctx.mem.bytes_mut(field, op.space, at, bytes)?;
                if len <= chunk {
                    encode_f32(op.dtype, &buf[..len], raw);
                    continue;
                }
                let per_chunk = op.dtype.bytes(chunk as u64) as usize;
                raw.par_chunks_mut(per_chunk)
                    .zip(buf[..len].par_chunks(chunk))
                    .for_each(|(raw, values)| encode_f32(op.dtype, values, raw));
            }
        }
        start += len;
    }
    for &(_, op) in &ins {
        ctx.charge_read(op, n);
    }
    for &(_, op) in &outs {
        ctx.charge_write(op, n);
    }
    Ok(())
}

/// The first `len` values of every buffer in chunks of `chunk`.
fn chunks<const M: usize>(bufs: &mut [Vec<f32>; M], len: usize, chunk: usize) -> [ChunksMut<'_, f32>; M] {
    bufs.each_mut().map(|b| b[..len].chunks_mut(chunk))
}

/// The next chunk of every buffer (they have as many).
fn next<'b, const M: usize>(chunks: &mut [ChunksMut<'b, f32>; M]) -> [&'b mut [f32]; M] {
    chunks
        .each_mut()
        .map(|c| c.next().expect("every buffer has as many chunks"))
}

/// The byte address and length of elements `start..start + len` of `op` (`start` a multiple
/// of 8).
fn elements(op: Operand, start: usize, len: usize) -> (u64, u64) {
    let at = u64::from(op.addr) + op.dtype.bytes(start as u64);
    (at, op.dtype.bytes(len as u64))
}

/// Whether chunks give the same result as one whole pass: every output is disjoint from the
/// other outputs, and from every input unless it is written in place over it (same start, an
/// element no wider: a chunk's output then only covers input bytes already read).
fn streamable(ins: &[Field], outs: &[Field], n: usize) -> bool {
    let overlap = |a: Operand, b: Operand| {
        Region::of(a, n)
            .zip(Region::of(b, n))
            .is_some_and(|(a, b)| a.overlaps(&b))
    };
    outs.iter().enumerate().all(|(i, &(_, out))| {
        let in_place = |inp: Operand| inp.addr == out.addr && out.dtype.bits(1) <= inp.dtype.bits(1);
        outs[i + 1..].iter().all(|&(_, other)| !overlap(out, other))
            && ins.iter().all(|&(_, inp)| !overlap(out, inp) || in_place(inp))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{Activity, ConvViews, Features};
    use crate::memory::{Buffers, Dram, Memory};
    use crate::state::State;
    use trainer_isa::{DType, Space};

    fn op(dtype: DType, addr: u32) -> Operand {
        Operand {
            space: Space::Dram,
            dtype,
            addr,
        }
    }

    /// DRAM holding `init`.
    fn memory(init: &[f32]) -> Memory {
        let mut mem = Memory::new(Dram::new(4 * init.len()), Buffers::new([0; 4]));
        mem.write_f32("init", op(DType::F32, 0), init).unwrap();
        mem
    }

    /// Runs `y[i] = 2·x[i] + 1` over `n` elements from `x` to `y` in memory holding `init`; returns
    /// the result and the memory's bytes after it.
    fn run(n: usize, x: Operand, y: Operand, init: &[f32]) -> (Result<(), FaultKind>, Vec<u8>) {
        let mut mem = memory(init);
        let (mut state, mut views) = (State::default(), ConvViews::default());
        let mut ctx = Ctx {
            mem: &mut mem,
            state: &mut state,
            features: Features::default(),
            views: &mut views,
            act: Activity::default(),
            deferred: None,
            background: None,
        };
        let done = map(&mut ctx, n, [("x", x)], [("y", y)], |[x], [y]| {
            y.iter_mut().zip(x).for_each(|(o, &v)| *o = 2.0 * v + 1.0);
        });
        (done, mem.dram().bytes().to_vec())
    }

    /// The same computation read whole, then written whole.
    fn whole(n: usize, x: Operand, y: Operand, init: &[f32]) -> Vec<u8> {
        let mut mem = memory(init);
        let xs = mem.read_f32("x", x, n).unwrap();
        let ys: Vec<f32> = xs.iter().map(|&v| 2.0 * v + 1.0).collect();
        mem.write_f32("y", y, &ys).unwrap();
        mem.dram().bytes().to_vec()
    }

    #[test]
    fn chunks_match_a_whole_pass_whatever_the_overlap() {
        let n = BATCH + 3 * CHUNK + 5;
        let init: Vec<f32> = (0..3 * n).map(|i| (i % 97) as f32 - 40.0).collect();
        let cases = [
            // Disjoint, in place (same and narrower dtype), overlapping ahead and behind.
            (op(DType::F32, 0), op(DType::F32, 4 * n as u32)),
            (op(DType::F32, 0), op(DType::F32, 0)),
            (op(DType::F32, 0), op(DType::F16, 0)),
            (op(DType::F16, 0), op(DType::F32, 0)),
            (op(DType::F32, 0), op(DType::F32, 8)),
            (op(DType::F32, 8), op(DType::F32, 0)),
            (op(DType::F32, 4), op(DType::B1, 0)),
            (op(DType::B1, 4), op(DType::B1, 4)),
        ];
        // Disjoint and in-place passes stream; the others run whole.
        let streams: Vec<bool> = cases
            .iter()
            .map(|&(x, y)| streamable(&[("x", x)], &[("y", y)], n))
            .collect();
        assert_eq!(streams, [true, true, true, false, false, false, false, true]);
        // Several batches, and passes of one chunk and less.
        for n in [n, CHUNK, 5] {
            for (x, y) in cases {
                let (done, bytes) = run(n, x, y, &init);
                done.unwrap();
                assert_eq!(bytes, whole(n, x, y, &init), "{n}: {x:?} -> {y:?}");
            }
        }
    }

    #[test]
    fn a_faulting_pass_writes_nothing() {
        let init: Vec<f32> = (0..2 * CHUNK).map(|i| i as f32).collect();
        // The output's first chunk fits, the rest runs past the end of memory.
        let n = CHUNK + 8;
        let untouched = memory(&init).dram().bytes().to_vec();
        let (done, bytes) = run(n, op(DType::F32, 0), op(DType::F32, 4 * CHUNK as u32), &init);
        assert!(
            matches!(done, Err(FaultKind::OutOfBounds { field: "y", .. })),
            "{done:?}"
        );
        assert!(bytes == untouched, "a faulting pass wrote");
        // So does an input's.
        let (done, bytes) = run(n, op(DType::F32, 4 * CHUNK as u32), op(DType::F32, 0), &init);
        assert!(
            matches!(done, Err(FaultKind::OutOfBounds { field: "x", .. })),
            "{done:?}"
        );
        assert!(bytes == untouched, "a faulting pass wrote");
    }
}
