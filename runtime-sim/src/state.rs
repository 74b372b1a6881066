//! Architectural state other than memory: registers, configuration, tokens, tags and the pc.

use trainer_isa::names::{AddrReg, CfgF32, CfgInt, Counter, Phase, Precision};
use trainer_isa::NamedEnum;

/// Number of token counters.
pub const TOKENS: usize = 256;

/// Registers and configuration of the machine (`spec/isa.md` §1.5), reset values from the spec.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// Address registers `ar0`–`ar7` (`ar0` always 0).
    ar: [u32; 8],
    /// Density counters `dc0`–`dc7`.
    dc: [u64; 8],
    /// f32 configuration registers in [`CfgF32`] code order.
    cfg_f32: [f32; 9],
    /// Integer configuration registers in [`CfgInt`] code order.
    cfg_int: [u32; 3],
    /// MAC mode.
    pub prec: Precision,
    /// Token counters (functional view: signals minus waits in program order).
    pub tokens: [u32; TOKENS],
    /// Current report tag: layer and phase.
    pub tag: (u16, Phase),
}

impl Default for State {
    fn default() -> Self {
        State {
            ar: [0; 8],
            dc: [0; 8],
            cfg_f32: [1.0, 0.0, 0.0, 0.0, 0.1, 1e-5, 0.0, 0.0, 0.0],
            cfg_int: [0, 1, 7],
            prec: Precision::Fp32,
            tokens: [0; TOKENS],
            tag: (0, Phase::Other),
        }
    }
}

impl State {
    /// Value of an address register.
    pub fn ar(&self, r: AddrReg) -> u32 {
        self.ar[r.code() as usize]
    }

    /// Sets an address register (writes to `ar0` are ignored).
    pub fn set_ar(&mut self, r: AddrReg, v: u32) {
        if r != AddrReg::Ar0 {
            self.ar[r.code() as usize] = v;
        }
    }

    /// Value of a density counter (`none` reads 0).
    pub fn dc(&self, c: Counter) -> u64 {
        match c {
            Counter::None => 0,
            c => self.dc[c.code() as usize - 1],
        }
    }

    /// Adds to a density counter (`none`: no effect).
    pub fn add_dc(&mut self, c: Counter, v: u64) {
        if c != Counter::None {
            let d = &mut self.dc[c.code() as usize - 1];
            *d = d.wrapping_add(v);
        }
    }

    /// Clears a density counter.
    pub fn clear_dc(&mut self, c: Counter) {
        if c != Counter::None {
            self.dc[c.code() as usize - 1] = 0;
        }
    }

    /// An f32 configuration register.
    pub fn f(&self, r: CfgF32) -> f32 {
        self.cfg_f32[r.code() as usize]
    }

    /// Sets an f32 configuration register.
    pub fn set_f(&mut self, r: CfgF32, v: f32) {
        self.cfg_f32[r.code() as usize] = v;
    }

    /// An integer configuration register.
    pub fn i(&self, r: CfgInt) -> u32 {
        self.cfg_int[r.code() as usize]
    }

    /// Sets an integer configuration register.
    pub fn set_i(&mut self, r: CfgInt, v: u32) {
        self.cfg_int[r.code() as usize] = v;
    }

    /// Whether speculation `s` (1, 2 or 3) is enabled by `spec_enable`.
    pub fn spec_enabled(&self, s: u32) -> bool {
        self.i(CfgInt::SpecEnable) >> (s - 1) & 1 == 1
    }
}
