//! Corrupted and hostile programs fault cleanly (an error naming pc and instruction, never a panic).

use trainer_sim::cost::CostModel;
use trainer_sim::{SimError, Simulator};

fn load(text: &str) -> Result<Simulator, SimError> {
    let prog = trainer_isa::assemble(text).unwrap();
    Simulator::new(prog, CostModel::resolve("trainer-28nm").unwrap())
}

fn fault(text: &str) -> String {
    load(text).unwrap().run().unwrap_err().to_string()
}

#[test]
fn out_of_bounds_accesses_fault_with_pc_and_mnemonic() {
    let e = fault(".dram 64\nnop\nrelu n=32 src=dram:f32@0 out=dram:f32@0");
    assert!(
        e.contains("pc 1") && e.contains("relu") && e.contains("outside"),
        "{e}"
    );
    let e = fault(".dram 64\ndma.load fmt=dense ar=ar0 ctr=none rows=2 row_bytes=16 dstride=0 bstride=131072 dram=dram:f32@0 buf=ibuf:f32@0");
    assert!(e.contains("dma.load") && e.contains("ibuf"), "{e}");
    // The address register pushes the DRAM side out of the image.
    let e = fault(".dram 64\nar.set reg=ar3 value=0xffffff00\ndma.load fmt=dense ar=ar3 ctr=none rows=1 row_bytes=16 dstride=0 bstride=0 dram=dram:f32@0 buf=ibuf:f32@0");
    assert!(e.contains("pc 1") && e.contains("dram"), "{e}");
    let e = fault(".dram 64\nfill n=1 value=1 out=gbuf:f32@0xfffffffc");
    assert!(e.contains("fill"), "{e}");
}

#[test]
fn statically_invalid_instructions_are_rejected_at_load() {
    // conv operands must be on-chip.
    let e = load(".dram 64\nconv mode=ff df=ws dci=none dcw=none n=1 c=1 h=1 w=1 k=1 r=1 s=1 stride_h=1 stride_w=1 pad_t=0 pad_l=0 pad_b=0 pad_r=0 dil_h=1 dil_w=1 groups=1 a=dram:f32@0 b=wbuf:f32@0 out=obuf:f32@0")
        .unwrap_err()
        .to_string();
    assert!(e.contains("instruction 0") && e.contains("on-chip"), "{e}");
    // Bad shape: groups do not divide channels.
    let e = load(".dram 64\nconv mode=ff df=ws dci=none dcw=none n=1 c=3 h=1 w=1 k=2 r=1 s=1 stride_h=1 stride_w=1 pad_t=0 pad_l=0 pad_b=0 pad_r=0 dil_h=1 dil_w=1 groups=2 a=ibuf:f32@0 b=wbuf:f32@0 out=obuf:f32@0")
        .unwrap_err()
        .to_string();
    assert!(e.contains("groups"), "{e}");
    // DMA with a buffer operand in DRAM.
    assert!(load(".dram 64\ndma.load fmt=dense ar=ar0 ctr=none rows=1 row_bytes=4 dstride=0 bstride=0 dram=dram:f32@0 buf=dram:f32@0").is_err());
    // Float ops on integer operands.
    assert!(load(".dram 64\nrelu n=1 src=dram:i32@0 out=dram:f32@0").is_err());
}

#[test]
fn precision_mode_is_enforced() {
    let e = fault(".dram 64\ncfg.prec prec=fp8\nmatmul mode=ff df=ws dci=none dcw=none m=1 k=1 n=1 a=ibuf:f16@0 b=wbuf:f16@0 out=obuf:f32@0");
    assert!(
        e.contains("pc 1") && e.contains("matmul") && e.contains("MAC mode"),
        "{e}"
    );
}

#[test]
fn deadlock_and_runaway_loops_fault() {
    let e = fault(".dram 64\ntok.signal q=load tok=1\ntok.wait q=compute tok=1\ntok.wait q=compute tok=1");
    assert!(e.contains("pc 2") && e.contains("deadlock"), "{e}");
    let mut sim = load(".dram 64\nloop count=1000000\nloop count=1000000\nnop\nendloop\nendloop").unwrap();
    sim.set_max_instructions(Some(10_000));
    let e = sim.run().unwrap_err().to_string();
    assert!(e.contains("instruction limit"), "{e}");
    // Loops run their bodies `count` times; count 0 skips.
    let mut sim = load(".dram 64\nloop count=3\nloop count=0\nnop\nendloop\nnop\nendloop").unwrap();
    // loop, then 3 × (inner loop skipped to past its endloop, nop, endloop).
    assert_eq!(sim.run().unwrap().instructions, 1 + 3 * 3);
}

#[test]
fn corrupted_binaries_are_rejected() {
    let prog = trainer_isa::assemble(".dram 64\nrelu n=4 src=dram:f32@0 out=dram:f32@16").unwrap();
    let bytes = trainer_isa::tbin::write(&prog).unwrap();
    let cost = CostModel::resolve("trainer-28nm").unwrap();
    assert!(Simulator::from_tbin(&bytes, cost.clone()).is_ok());
    // Every single-byte corruption and every truncation loads or errors, never panics; the ones
    // that load run or fault cleanly.
    for i in 0..bytes.len() {
        for v in [0x00u8, 0xff, 0x7f, 0x80] {
            let mut b = bytes.clone();
            b[i] = v;
            if let Ok(mut sim) = Simulator::from_tbin(&b, cost.clone()) {
                sim.set_max_instructions(Some(1000));
                let _ = sim.run();
            }
        }
        assert!(Simulator::from_tbin(&bytes[..i], cost.clone()).is_err());
    }
    // A bad opcode byte in the code section.
    let code_at = bytes.len() - prog_code_tail(&bytes);
    let mut b = bytes.clone();
    b[code_at] = 0xee;
    let e = Simulator::from_tbin(&b, cost).unwrap_err().to_string();
    assert!(e.contains("opcode"), "{e}");
}

/// Offset of the code section from the end is not fixed; find it from the section table.
fn prog_code_tail(bytes: &[u8]) -> usize {
    let off = u64::from_le_bytes(bytes[28..36].try_into().unwrap()) as usize;
    bytes.len() - off
}
