//! DMA: strided copies between DRAM and the on-chip buffers, dense or bitmap-charged.

use super::{Background, Ctx, Left, Retire, Work};
use crate::decode::DmaOp;
use crate::error::FaultKind;
use crate::hazard;
use crate::ledger::Event;
use crate::memory::Strided;
use trainer_isa::names::Counter;
use trainer_isa::{DType, Space};

/// Executes `dma.load` / `dma.store`: a deferrable store ([`DmaOp::deferrable`]) copies when it
/// retires (see [`Background`]), any other transfer now.
pub fn run(d: &DmaOp, ctx: &mut Ctx) -> Result<(), FaultKind> {
    let base = hazard::dram_base(d, ctx.state);
    if !d.deferrable() {
        return transfer(d, base, ctx);
    }
    let d = d.clone();
    ctx.background = Some(Background {
        touches: hazard::dma(&d, base),
        left: Left::Retire(Retire(Box::new(move |ctx| transfer(&d, base, ctx)))),
    });
    Ok(())
}

/// Moves the rows of `d` from or to DRAM address `base` and records the activity.
fn transfer(d: &DmaOp, base: u64, ctx: &mut Ctx) -> Result<(), FaultKind> {
    let len = u64::from(d.row_bytes);
    let dtype = d.buf.dtype;
    let elems = if dtype == DType::B1 {
        len * 8
    } else {
        len / dtype.bytes(1)
    };
    let elem_bits = dtype.bits(1);
    let bitmap = d.bitmap && dtype != DType::B1;
    // Non-zeros matter only to a density counter and to bitmap-compressed rows.
    let count = bitmap || d.ctr != Counter::None;
    let (mut bits, mut sram_bytes, mut nonzero) = (0u64, 0u64, 0u64);
    let dram = Strided {
        field: "dram",
        space: Space::Dram,
        start: base,
        stride: d.dstride.into(),
    };
    let buf = Strided {
        field: "buf",
        space: d.buf.space,
        start: d.buf.addr.into(),
        stride: d.bstride.into(),
    };
    let (from, to) = if d.load { (dram, buf) } else { (buf, dram) };
    ctx.mem
        .copy_rows(from, to, (len, d.rows.into()), count.then_some(dtype), |_, z| {
            nonzero += z;
            let row_bits = if bitmap { elems + z * elem_bits } else { 8 * len };
            bits += row_bits;
            sram_bytes += row_bits.div_ceil(8);
        })?;
    ctx.state.add_dc(d.ctr, nonzero);
    let (dram_ev, sram_ev) = if d.load {
        (Event::DramRead, Event::write(d.buf.space))
    } else {
        (Event::DramWrite, Event::read(d.buf.space))
    };
    ctx.ev(dram_ev, bits);
    ctx.ev(sram_ev.expect("on-chip buffer"), sram_bytes);
    ctx.ev(Event::DmaRow, d.rows.into());
    ctx.act.work = Work::Dma {
        bits,
        rows: d.rows.into(),
    };
    Ok(())
}
