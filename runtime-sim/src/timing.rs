//! Timing: the dma-load, dma-store and compute queues as timelines.
//!
//! Instructions are issued in program order; each runs on its queue after the queue's previous
//! instruction and after any `tok.wait` before it in that queue is satisfied (the time the matching
//! `tok.signal` was reached in its queue). `barrier` joins all queues. DMA transfers share one DRAM
//! channel of the machine's bandwidth. Compute cycles come from the work each PE group really gets:
//! output units (channels) are split into contiguous blocks across PE groups and the slowest group
//! decides, unless PE regrouping rebalances the work over all groups.

use std::collections::VecDeque;
use trainer_isa::names::{Precision, QueueName};

/// Throughput parameters of the machine (from the machine model).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimingParams {
    /// PE groups.
    pub pe_groups: usize,
    /// fp16 MAC lanes per PE group (fp16 MACs per cycle).
    pub lanes_per_group: usize,
    /// fp8 MACs per cycle per fp16 lane.
    pub fp8_multiplier: u64,
    /// fp16 lanes per fp32 MAC.
    pub fp32_divisor: u64,
    /// Clock frequency in Hz.
    pub clock_hz: f64,
    /// DRAM bandwidth in bits per cycle.
    pub dram_bits_per_cycle: f64,
    /// DRAM latency in cycles (added once per DMA instruction).
    pub dram_latency: u64,
    /// Vector-unit element operations per cycle.
    pub vec_per_cycle: u64,
    /// BN-unit element operations per cycle.
    pub bn_per_cycle: u64,
    /// Mask-unit operations per cycle.
    pub mask_per_cycle: u64,
    /// Speculation-unit operations per cycle.
    pub spec_per_cycle: u64,
    /// Fixed start-up cycles of every compute instruction (pipeline fill).
    pub compute_startup: u64,
}

impl TimingParams {
    /// Total fp16 MAC lanes.
    pub fn lanes(&self) -> u64 {
        (self.pe_groups * self.lanes_per_group) as u64
    }

    /// MACs per cycle of the whole array in a MAC mode, as a fraction `(numerator, denominator)`.
    fn rate(&self, prec: Precision) -> (u64, u64) {
        let lanes = self.lanes_per_group.max(1) as u64;
        match prec {
            Precision::Fp16 => (lanes, 1),
            Precision::Fp8 => (lanes * self.fp8_multiplier.max(1), 1),
            Precision::Fp32 => (lanes, self.fp32_divisor.max(1)),
        }
    }

    /// MACs per cycle of the whole array in a MAC mode.
    pub fn macs_per_cycle(&self, prec: Precision) -> f64 {
        let (num, den) = self.rate(prec);
        (num * self.pe_groups as u64) as f64 / den as f64
    }

    /// Cycles of PE-array work in MAC mode `prec`: `per_unit` performed MACs per output unit.
    pub fn pe_cycles(&self, per_unit: &[u64], regroup: bool, prec: Precision) -> u64 {
        let (num, den) = self.rate(prec);
        let total: u64 = per_unit.iter().sum();
        let groups = self.pe_groups.max(1);
        if regroup || per_unit.is_empty() {
            return (total * den).div_ceil(num * groups as u64);
        }
        let units = per_unit.len();
        (0..groups)
            .map(|g| {
                let (lo, hi) = (g * units / groups, (g + 1) * units / groups);
                (per_unit[lo..hi].iter().sum::<u64>() * den).div_ceil(num)
            })
            .max()
            .unwrap_or(0)
    }
}

/// Index of a queue in the timeline.
pub fn queue_index(q: QueueName) -> usize {
    match q {
        QueueName::Load => 0,
        QueueName::Store => 1,
        QueueName::Compute => 2,
    }
}

/// The three queue timelines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    /// When each queue finishes its last issued instruction.
    free: [u64; 3],
    /// Earliest start of each queue's next instruction (from `tok.wait`).
    gate: [u64; 3],
    /// Times at which pending token signals were reached, per token.
    tokens: Vec<VecDeque<u64>>,
    /// Busy intervals of the DRAM channel, sorted and disjoint.
    dram_busy: Vec<(u64, u64)>,
    /// Busy cycles per queue.
    busy: [u64; 3],
}

impl Timeline {
    /// An idle timeline at cycle 0.
    pub fn new() -> Self {
        Timeline {
            tokens: vec![VecDeque::new(); crate::state::TOKENS],
            ..Default::default()
        }
    }

    /// Runs an instruction of `dur` cycles on queue `q`; returns its (start, end).
    pub fn run(&mut self, q: usize, dur: u64) -> (u64, u64) {
        let start = self.free[q].max(self.gate[q]);
        let end = start + dur;
        self.free[q] = end;
        self.busy[q] += dur;
        (start, end)
    }

    /// Runs a DMA transfer of `bits` on queue `q`, sharing the DRAM channel: the transfer takes
    /// the earliest gap in the channel's schedule at or after the queue is ready (transfers are
    /// placed in time, not in program order).
    pub fn dma(&mut self, q: usize, bits: u64, p: &TimingParams) -> (u64, u64) {
        let ready = self.free[q].max(self.gate[q]);
        let transfer = (bits as f64 / p.dram_bits_per_cycle).ceil() as u64;
        let start = self.reserve_dram(ready, transfer);
        let end = start + transfer + p.dram_latency;
        self.busy[q] += end - ready;
        self.free[q] = end;
        (ready, end)
    }

    /// Reserves `len` cycles of the DRAM channel at the earliest time `>= ready`.
    fn reserve_dram(&mut self, ready: u64, len: u64) -> u64 {
        // Intervals ending before every queue's next possible start can never matter again.
        let horizon = (0..3).map(|q| self.free[q].max(self.gate[q])).min().unwrap_or(0);
        self.dram_busy.retain(|&(_, e)| e > horizon);
        let mut start = ready;
        let mut at = self.dram_busy.len();
        for (i, &(s, e)) in self.dram_busy.iter().enumerate() {
            if e <= start {
                continue;
            }
            if s >= start + len {
                at = i;
                break;
            }
            start = start.max(e);
        }
        if len > 0 {
            self.dram_busy.insert(at, (start, start + len));
        }
        start
    }

    /// `tok.signal` reached in queue `q`.
    pub fn signal(&mut self, q: usize, tok: u8) {
        let t = self.free[q].max(self.gate[q]);
        self.tokens[tok as usize].push_back(t);
    }

    /// `tok.wait` in queue `q`: the queue's next instruction waits for the oldest pending signal.
    /// Returns `false` if there is none (deadlock).
    pub fn wait(&mut self, q: usize, tok: u8) -> bool {
        match self.tokens[tok as usize].pop_front() {
            Some(t) => {
                self.gate[q] = self.gate[q].max(t);
                true
            }
            None => false,
        }
    }

    /// `barrier`: every queue waits until all have drained.
    pub fn barrier(&mut self) {
        let t = self.end();
        self.gate = [t; 3];
    }

    /// Cycle at which everything issued so far has finished.
    pub fn end(&self) -> u64 {
        self.free.iter().chain(&self.gate).copied().max().unwrap_or(0)
    }

    /// Busy cycles of (load, store, compute).
    pub fn busy(&self) -> [u64; 3] {
        self.busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> TimingParams {
        TimingParams {
            pe_groups: 4,
            lanes_per_group: 2,
            fp8_multiplier: 2,
            fp32_divisor: 4,
            clock_hz: 1e9,
            dram_bits_per_cycle: 64.0,
            dram_latency: 10,
            vec_per_cycle: 8,
            bn_per_cycle: 8,
            mask_per_cycle: 8,
            spec_per_cycle: 8,
            compute_startup: 0,
        }
    }

    #[test]
    fn slowest_group_decides_unless_regrouped() {
        let p = params();
        let work = [8, 0, 0, 0, 0, 0, 0, 8];
        // Groups get units {0,1}, {2,3}, {4,5}, {6,7}: 8 MACs on 2 lanes = 4 cycles.
        assert_eq!(p.pe_cycles(&work, false, Precision::Fp16), 4);
        assert_eq!(p.pe_cycles(&work, true, Precision::Fp16), 2);
        assert_eq!(p.pe_cycles(&work, true, Precision::Fp8), 1);
        assert_eq!(p.pe_cycles(&work, false, Precision::Fp32), 16);
    }

    #[test]
    fn queues_overlap_through_tokens() {
        let p = params();
        let mut t = Timeline::new();
        t.dma(0, 640, &p); // load: 10 transfer + 10 latency = 0..20
        t.signal(0, 1);
        assert!(t.wait(2, 1));
        assert_eq!(t.run(2, 30), (20, 50));
        t.dma(0, 640, &p); // the next load overlaps the compute: 20..40
        assert_eq!(t.end(), 50);
        // A store issued later in program order but ready earlier than a reserved transfer
        // takes the gap before it.
        let mut u = Timeline::new();
        u.gate[0] = 100;
        assert_eq!(u.dma(0, 640, &p), (100, 120)); // channel 100..110
        assert_eq!(u.dma(1, 640, &p), (0, 20)); // channel 0..10
        assert_eq!(u.dma(1, 6400, &p), (20, 220)); // 100 cycles do not fit 20..100: 110..210
        assert!(!t.wait(2, 1));
        t.barrier();
        assert_eq!(t.run(1, 5), (50, 55));
    }
}
